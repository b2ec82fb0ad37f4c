//! What `fib-server` and `fib-client` share: the wire protocol, Fibonacci, the
//! connection settings with the one function that opens a connection, the
//! error kinds that decide exit codes, and logging set-up.

pub mod backoff;
pub mod cli;
pub mod connection;
pub mod consumer;
pub mod decimal;
pub mod exit;
pub mod failure;
pub mod fibonacci;
pub mod logging;
pub mod protocol;
pub mod sequence;
pub mod topology;

pub use connection::{open_connection, AmqpUrl, ConnectionSettings, TlsCa};
pub use failure::{exit_code, Failure};
pub use fibonacci::{fibonacci, fibonacci_decimal};
