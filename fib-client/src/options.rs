//! Plain settings for a run, checked and free of clap.

use crate::cli::Cli;
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
    pub timeout: Duration,
    pub output: Output,
    pub verbosity: Verbosity,
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
            Some(n) => Mode::Single(n),
            None => {
                let end = cli
                    .start
                    .checked_add(cli.count)
                    .ok_or_else(|| Failure::Usage("--start + --count is beyond u64".to_string()))?;
                Mode::Benchmark(cli.start..end)
            }
        };
        let mut connection = ConnectionSettings::new(AmqpUrl::parse(&cli.url)?);
        connection.tls_ca = cli.tls_ca.clone();
        Ok(Options {
            connection,
            exchange: cli.exchange.clone(),
            routing_key: cli.routing_key.clone(),
            mode,
            timeout: Duration::from_secs_f64(cli.timeout),
            output: if cli.json {
                Output::Json
            } else {
                Output::Human
            },
            verbosity: Verbosity::from_flags(cli.quiet, cli.verbose),
        })
    }
}
