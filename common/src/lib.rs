//! The AMQP side of what `fib-server` and `fib-client` share: the wire
//! protocol, the topology both declare, the connection settings with the one
//! function that opens a connection, the error kinds that decide exit codes,
//! and logging set-up. The maths lives apart, in `fib-math`.

pub mod backoff;
pub mod blocking;
pub mod cli;
pub mod connection;
pub mod consumer;
pub mod exit;
pub mod failure;
pub mod lifecycle;
pub mod logging;
pub mod protocol;
pub mod signals;
pub mod text;
pub mod topology;

pub use connection::{open_connection, AmqpUrl, ConnectionSettings, TlsCa};
pub use exit::exit_code;
pub use failure::Failure;
