//! fib-server: answers Fibonacci requests from a RabbitMQ queue.
//!
//! `main.rs` parses flags into [`Settings`] and calls [`run`]; tests call
//! [`run`] in-process with their own shutdown channel.

pub mod cache;
pub mod cli;
mod handler;
pub mod monitoring;
mod replier;
mod server;
pub mod shutdown;

pub use handler::{answer, Answer};
pub use replier::{REFUSED_REPLY_TARGET, REPLY_ATTEMPTS};
pub use server::{run, Settings};
