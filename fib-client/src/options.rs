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
        let mode = match cli.n {
            Some(n) if n == u64::MAX => {
                return Err(Failure::Usage("--n must be below 2^64 - 1".to_string()).into())
            }
            Some(n) => Mode::Single(n),
            None => {
                let end = cli
                    .start
                    .checked_add(cli.count)
                    .ok_or_else(|| Failure::Usage("--start + --count is beyond u64".to_string()))?;
                Mode::Benchmark(cli.start..end)
            }
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
