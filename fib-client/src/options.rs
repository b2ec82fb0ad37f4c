//! Plain settings for a run, checked and free of clap.

use crate::cli::Cli;
use crate::measure::Plan;
use crate::rpc::ReplyMode;
use anyhow::Result;
use common::failure::Failure;
use common::logging::Verbosity;
use common::protocol::check_name;
use common::ConnectionSettings;
use std::ops::Range;
use std::time::Duration;

/// The largest n the client asks for: it checks each reply against its own
/// F(n), and F(10^7) (2 million digits) already takes about a second.
pub const MAX_CHECKED_N: u64 = common::protocol::MAX_N;

/// The longest wait for one reply that `--timeout` accepts, in seconds.
pub const MAX_TIMEOUT_SECS: f64 = 86_400.0;

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
        if !(cli.timeout.is_finite() && cli.timeout > 0.0 && cli.timeout <= MAX_TIMEOUT_SECS) {
            return Err(Failure::Usage(format!(
                "--timeout {} is not a number of seconds in (0, {MAX_TIMEOUT_SECS}]",
                cli.timeout
            ))
            .into());
        }
        check_name("--routing-key", &cli.routing_key)?;
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
        let connection: ConnectionSettings = cli.connection.settings()?;
        Ok(Options {
            connection,
            exchange: cli.connection.exchange.clone(),
            routing_key: cli.routing_key.clone(),
            mode,
            reply_mode: cli.reply_to,
            inflight: usize::from(cli.inflight),
            timeout,
            retries: cli.retries,
            reconnect_for: reconnect_budget(timeout, cli.retries),
            output: if cli.json {
                Output::Json
            } else {
                Output::Human
            },
            verbosity: cli.verbosity.verbosity(),
        })
    }
}

/// How long to keep reconnecting: as long as a request may wait in all,
/// `timeout × (retries + 1)`, so a broker restart fits. Computed in u64 and
/// f64, so `--retries` up to u32::MAX cannot overflow: with `timeout` at most
/// [`MAX_TIMEOUT_SECS`] the product stays below 4 × 10^14 s, far inside a
/// `Duration`; should it not, the budget is `Duration::MAX`.
pub fn reconnect_budget(timeout: Duration, retries: u32) -> Duration {
    let attempts = u64::from(retries) + 1;
    Duration::try_from_secs_f64(timeout.as_secs_f64() * attempts as f64).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn options(args: &[&str]) -> Result<Options> {
        let cli = Cli::try_parse_from(std::iter::once("fib-client").chain(args.iter().copied()))?;
        Options::from_cli(&cli)
    }

    #[test]
    fn retries_near_u32_max_cannot_overflow() {
        let max = u32::MAX.to_string();
        let options = options(&["--retries", &max, "--timeout", "86400"]).expect("valid flags");
        assert_eq!(options.retries, u32::MAX);
        let expected = 86_400 * (u64::from(u32::MAX) + 1);
        assert_eq!(options.reconnect_for.as_secs(), expected);
        assert_eq!(
            reconnect_budget(Duration::from_secs(10), 2),
            Duration::from_secs(30)
        );
        assert_eq!(
            reconnect_budget(Duration::MAX, u32::MAX),
            Duration::MAX,
            "saturates instead of panicking"
        );
    }

    #[test]
    fn n_above_the_checked_limit_is_a_usage_error() {
        let error = options(&["--n", "10000001"]).expect_err("above the limit");
        assert_eq!(common::exit_code(&error), common::exit::USAGE);
        assert!(options(&["--n", "10000000"]).is_ok());
        let max = u64::MAX.to_string();
        assert!(options(&["--start", &max, "--count", &max]).is_err());
    }
}
