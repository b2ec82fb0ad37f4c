//! Plain settings for a run, checked and free of clap.

use crate::cli::Cli;
use crate::measure::Plan;
use crate::rpc::ReplyMode;
use anyhow::Result;
use common::failure::Failure;
use common::logging::Verbosity;
use common::{AmqpUrl, ConnectionSettings};
use std::ops::Range;
use std::time::Duration;

/// The largest n the client asks for: it checks each reply against its own
/// F(n), and F(10^7) (2 million digits) already takes about a second.
pub const MAX_CHECKED_N: u64 = 10_000_000;

#[derive(Debug, Clone)]
pub struct Options {
    pub connection: ConnectionSettings,
    pub exchange: String,
    pub routing_key: String,
    pub mode: Mode,
    pub reply_mode: ReplyMode,
    pub inflight: usize,
    pub timeout: Duration,
    pub retries: u32,
    /// How long to keep reconnecting after the connection is lost.
    pub reconnect_for: Duration,
    pub output: Output,
    pub verbosity: Verbosity,
}

impl Options {
    /// What the measurement loop needs to know.
    pub fn plan(&self) -> Plan {
        let (requests, inflight) = match &self.mode {
            Mode::Benchmark(requests) => (requests.clone(), self.inflight),
            Mode::Single(n) => (*n..*n + 1, 1),
        };
        Plan {
            requests,
            inflight,
            timeout: self.timeout,
            retries: self.retries,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Time a run of requests for these n.
    Benchmark(Range<u64>),
    /// One call, F(n) alone on stdout.
    Single(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Human,
    Json,
}

impl Options {
    pub fn from_cli(cli: &Cli) -> Result<Options> {
        if !(cli.timeout.is_finite() && cli.timeout > 0.0 && cli.timeout <= 86_400.0) {
            return Err(Failure::Usage(format!(
                "--timeout {} is not a number of seconds in (0, 86400]",
                cli.timeout
            ))
            .into());
        }
        let requests = match cli.n {
            Some(n) => n..n.saturating_add(1),
            None => cli.start..cli.start.saturating_add(cli.count),
        };
        if requests.end > MAX_CHECKED_N + 1 {
            return Err(Failure::Usage(format!(
                "n goes up to {}, above {MAX_CHECKED_N}: fib-client computes every F(n) \
                 itself to check the replies",
                requests.end - 1
            ))
            .into());
        }
        let mode = match cli.n {
            Some(n) => Mode::Single(n),
            None => Mode::Benchmark(requests),
        };
        let timeout = Duration::from_secs_f64(cli.timeout);
        let mut connection = ConnectionSettings::new(AmqpUrl::parse(&cli.url)?);
        connection.tls_ca = cli.tls_ca.clone();
        Ok(Options {
            connection,
            exchange: cli.exchange.clone(),
            routing_key: cli.routing_key.clone(),
            mode,
            reply_mode: cli.reply_to,
            inflight: usize::from(cli.inflight),
            timeout,
            retries: cli.retries,
            // As long as a request may wait in all: a broker restart fits.
            reconnect_for: timeout * (cli.retries + 1),
            output: if cli.json {
                Output::Json
            } else {
                Output::Human
            },
            verbosity: Verbosity::from_flags(cli.quiet, cli.verbose),
        })
    }
}
