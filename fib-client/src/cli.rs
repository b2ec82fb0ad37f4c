//! Command-line flags. `options.rs` turns them into plain settings.

use crate::rpc::ReplyMode;
use clap::Parser;
use common::protocol::{DEFAULT_EXCHANGE, DEFAULT_ROUTING_KEY, DEFAULT_URL};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Exit codes:
  0  every reply was correct
  1  some replies were wrong or error replies
  2  bad flags, URL or TLS CA file
  3  cannot connect, or the broker closed the connection
  4  a request was unroutable: no queue is bound (is fib-server running?)
  5  a request got no reply within --timeout, --retries times over

A lost connection is retried with backoff for up to --timeout x (--retries + 1)
seconds; requests still outstanding are sent again on the new connection.

Logs go to stderr; RUST_LOG (e.g. RUST_LOG=debug) overrides -q/-v.";

/// Times Fibonacci RPC round trips through RabbitMQ, wire-compatible with the
/// classic pika RPC client.
#[derive(Debug, Parser)]
#[command(name = "fib-client", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Broker URL (amqp:// or amqps://); the password is never printed.
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_URL, hide_env_values = true)]
    pub url: String,
    /// PEM file of an extra CA to trust for amqps://.
    #[arg(long, env = "AMQP_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Topic exchange to publish requests to.
    #[arg(long, env = "FIB_EXCHANGE", default_value = DEFAULT_EXCHANGE)]
    pub exchange: String,
    /// Routing key of the requests (the server's binding `#` takes any).
    #[arg(long, default_value = DEFAULT_ROUTING_KEY)]
    pub routing_key: String,
    /// Number of requests, for n = start, start+1, ... (n at most 10,000,000:
    /// the client checks each reply against its own F(n))
    #[arg(long, default_value_t = 2000, conflicts_with = "n")]
    pub count: u64,
    /// First n of the run.
    #[arg(long, default_value_t = 0, conflicts_with = "n")]
    pub start: u64,
    /// Ask for F(N) once and print it alone on stdout.
    #[arg(long, value_name = "N")]
    pub n: Option<u64>,
    /// Where replies come back: a reply queue of our own, or RabbitMQ's
    /// direct reply-to (amq.rabbitmq.reply-to, no queue at all).
    #[arg(long, value_enum, default_value_t = ReplyMode::Queue)]
    pub reply_to: ReplyMode,
    /// Requests kept outstanding at once (1: one after another).
    #[arg(long, default_value_t = 1, value_name = "K",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub inflight: u16,
    /// Seconds to wait for each reply before sending the request again.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub timeout: f64,
    /// Resends of a request that timed out, before giving up with exit 5.
    #[arg(long, default_value_t = 2, value_name = "K")]
    pub retries: u32,
    /// Print the summary as one JSON object on stdout, nothing else there.
    #[arg(long, conflicts_with = "n")]
    pub json: bool,
    /// Print only the summary (and errors).
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print a line per request.
    #[arg(short, long)]
    pub verbose: bool,
}
