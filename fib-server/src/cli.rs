//! Command-line flags and their translation into [`Settings`].

use crate::Settings;
use anyhow::Result;
use clap::Parser;
use common::protocol::{
    DEFAULT_BINDING_KEY, DEFAULT_EXCHANGE, DEFAULT_MAX_N, DEFAULT_QUEUE, DEFAULT_URL,
};
use common::topology::Topology;
use common::{AmqpUrl, ConnectionSettings};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Exit codes:
  0  stopped by SIGINT/SIGTERM after finishing the request in hand
  1  any other error (e.g. cannot install signal handlers)
  2  bad flags, URL or TLS CA file
  3  cannot connect, or the broker closed the connection

A second SIGINT/SIGTERM exits at once with 130.
Logs go to stderr; RUST_LOG (e.g. RUST_LOG=debug) overrides -q/-v.";

/// Answers Fibonacci RPC requests from RabbitMQ, wire-compatible with the
/// classic pika RPC server.
#[derive(Debug, Parser)]
#[command(name = "fib-server", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Broker URL (amqp:// or amqps://); the password is never printed.
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_URL, hide_env_values = true)]
    pub url: String,
    /// PEM file of an extra CA to trust for amqps://.
    #[arg(long, env = "AMQP_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Topic exchange the requests are published to.
    #[arg(long, env = "FIB_EXCHANGE", default_value = DEFAULT_EXCHANGE)]
    pub exchange: String,
    /// Durable queue the server consumes.
    #[arg(long, env = "FIB_QUEUE", default_value = DEFAULT_QUEUE)]
    pub queue: String,
    /// Binding key from the exchange to the queue.
    #[arg(long, default_value = DEFAULT_BINDING_KEY)]
    pub binding_key: String,
    /// Unacknowledged requests the broker may send ahead (basic.qos).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// Consumers, each on its own thread and connection: for large n, where
    /// computing takes longer than the round trip.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Largest n answered; above it the reply is a `too-large` error.
    #[arg(long, env = "FIB_MAX_N", default_value_t = DEFAULT_MAX_N)]
    pub max_n: u64,
    /// Ack requests without waiting for the broker to confirm each reply:
    /// faster, but a reply can be lost if the broker fails in between.
    #[arg(long)]
    pub no_confirm: bool,
    /// Print only start-up, shutdown and errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also print debug details.
    #[arg(short, long)]
    pub verbose: bool,
}

impl Cli {
    pub fn settings(&self) -> Result<Settings> {
        let mut connection = ConnectionSettings::new(AmqpUrl::parse(&self.url)?);
        connection.tls_ca = self.tls_ca.clone();
        Ok(Settings {
            connection,
            topology: Topology {
                exchange: self.exchange.clone(),
                queue: self.queue.clone(),
                binding_key: self.binding_key.clone(),
            },
            prefetch: self.prefetch,
            max_n: self.max_n,
            confirm_replies: !self.no_confirm,
            workers: usize::from(self.workers),
        })
    }
}
