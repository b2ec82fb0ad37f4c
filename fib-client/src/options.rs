//! Plain settings for a run, checked and free of clap.

use crate::cli::Cli;
use crate::measure::{Plan, Stop};
use crate::rpc::ReplyMode;
use crate::workload::Workload;
use anyhow::Result;
use common::failure::Failure;
use common::logging::Verbosity;
use common::protocol::check_name;
use common::ConnectionSettings;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

/// The largest n the client asks for: it checks each reply against its own
/// F(n), and F(10^7) (2 million digits) already takes about a second.
pub const MAX_CHECKED_N: u64 = common::protocol::MAX_N;

/// The values a number flag accepts, both ends included, and what it counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub min: f64,
    pub max: f64,
    pub unit: &'static str,
}

impl Bounds {
    /// `value` if it is a number within the bounds, else a usage error (exit
    /// 2) that names them. NaN and the infinities are outside any bounds.
    pub fn check(&self, flag: &str, value: f64) -> Result<f64> {
        if value.is_finite() && value >= self.min && value <= self.max {
            Ok(value)
        } else {
            Err(self.out_of_range(flag, &format!("{value:?}")))
        }
    }

    /// `value` if it is within the bounds, else the usage error of `check`:
    /// for the flags that take whole numbers (bounds well inside the whole
    /// numbers an f64 holds exactly).
    pub fn check_whole(&self, flag: &str, value: u64) -> Result<u64> {
        // Above 2^53 the conversion rounds, but to far above any bound.
        let as_float = value as f64;
        if as_float >= self.min && as_float <= self.max {
            Ok(value)
        } else {
            Err(self.out_of_range(flag, &value.to_string()))
        }
    }

    fn out_of_range(&self, flag: &str, value: &str) -> anyhow::Error {
        usage(format!(
            "{flag} {value} is out of range: {} from {} to {}",
            self.unit, self.min, self.max
        ))
    }
}

/// `--count`: 1 to a billion requests (at 100,000 a second, far above what a
/// broker answers one client, nearly three hours).
pub const COUNT: Bounds = Bounds {
    min: 1.0,
    max: 1e9,
    unit: "requests",
};
/// `--warmup`: none to a billion requests, as `--count`.
pub const WARMUP: Bounds = Bounds {
    min: 0.0,
    max: 1e9,
    unit: "requests",
};

/// `--timeout`: 1 ms (shorter than any round trip through a broker) to a day.
pub const TIMEOUT: Bounds = Bounds {
    min: 0.001,
    max: 86_400.0,
    unit: "seconds",
};
/// `--duration`: 1 ms to a day.
pub const DURATION: Bounds = Bounds {
    min: 0.001,
    max: 86_400.0,
    unit: "seconds",
};
/// `--interval`: at most ten lines a second, at least one a day.
pub const INTERVAL: Bounds = Bounds {
    min: 0.1,
    max: 86_400.0,
    unit: "seconds",
};
/// `--rate`: one request per 100 s to a million a second (far above what a
/// broker takes; its interval, 1 µs, is still a `Duration`).
pub const RATE: Bounds = Bounds {
    min: 0.01,
    max: 1_000_000.0,
    unit: "requests per second",
};
/// `--max-regression`: 0 to 10,000 % (a hundred times worse).
/// `--max-blocked`: 0 (no bound: wait as long as the alarm lasts) to a day.
pub const MAX_BLOCKED: Bounds = Bounds {
    min: 0.0,
    max: 86_400.0,
    unit: "seconds",
};

pub const MAX_REGRESSION: Bounds = Bounds {
    min: 0.0,
    max: 10_000.0,
    unit: "percent",
};

/// The longest wait for one reply that `--timeout` accepts, in seconds.
pub const MAX_TIMEOUT_SECS: f64 = TIMEOUT.max;

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
    /// How long the broker may block the connection (None: forever).
    pub max_blocked: Option<Duration>,
    pub output: Output,
    pub verbosity: Verbosity,
    /// Print a line on stderr this often.
    pub interval: Option<Duration>,
    pub exports: Exports,
    pub gate: Option<Gate>,
    /// Where to serve the run's metrics (`--metrics`), if at all.
    pub metrics_addr: Option<String>,
}

/// Files to write the results to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exports {
    pub json: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    pub markdown: Option<PathBuf>,
    pub hgrm: Option<PathBuf>,
    pub svg: Option<PathBuf>,
}

/// The CI gate: compare with an earlier run.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub baseline: PathBuf,
    /// Percent.
    pub max_regression: f64,
}

/// A timed run's load.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    pub workload: Workload,
    pub stop: Stop,
    pub warmup: u64,
    pub rate: Option<f64>,
}

impl Options {
    /// What the measurement loop needs to know.
    pub fn plan(&self) -> Plan {
        let (load, inflight) = match &self.mode {
            Mode::Benchmark(load) => (load.clone(), self.inflight),
            Mode::Single(n) => (
                Load {
                    workload: Workload::Fixed(*n),
                    stop: Stop::Count(1),
                    warmup: 0,
                    rate: None,
                },
                1,
            ),
        };
        Plan {
            workload: load.workload,
            stop: load.stop,
            warmup: load.warmup,
            rate: load.rate,
            inflight,
            timeout: self.timeout,
            retries: self.retries,
            tick: self.interval,
            max_blocked: self.max_blocked,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Time a run of requests.
    Benchmark(Load),
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
        let timeout = Duration::from_secs_f64(TIMEOUT.check("--timeout", cli.timeout)?);
        check_name("--routing-key", &cli.routing_key)?;
        if cli.duration.is_none() && cli.n.is_none() {
            COUNT.check_whole("--count", cli.count)?;
        }
        let warmup = WARMUP.check_whole("--warmup", cli.warmup)?;
        let workload = match (cli.n, cli.fixed_n, &cli.n_range) {
            (Some(n), _, _) | (None, Some(n), _) => Workload::Fixed(n),
            (None, None, Some(range)) => Workload::Cycle(parse_range(range)?),
            (None, None, None) => {
                // With --duration, --count still sets the cycle's length.
                Workload::Cycle(cli.start..cli.start.saturating_add(cli.count.max(1)))
            }
        };
        let span = workload.span();
        if span.end > MAX_CHECKED_N + 1 {
            return Err(usage(format!(
                "n goes up to {}, above {MAX_CHECKED_N}: fib-client computes every F(n) \
                 itself to check the replies",
                span.end - 1
            )));
        }
        if cli.n.is_some() && cli.metrics.addr.is_some() {
            return Err(usage(
                "--metrics watches a timed run; --n makes a single call".to_string(),
            ));
        }
        let mode = match cli.n {
            Some(n) => Mode::Single(n),
            None => Mode::Benchmark(Load {
                workload,
                stop: match cli.duration {
                    Some(secs) => {
                        Stop::After(Duration::from_secs_f64(DURATION.check("--duration", secs)?))
                    }
                    None => Stop::Count(cli.count),
                },
                warmup,
                rate: cli.rate.map(|r| RATE.check("--rate", r)).transpose()?,
            }),
        };
        let interval = cli
            .interval
            .map(|secs| {
                INTERVAL
                    .check("--interval", secs)
                    .map(Duration::from_secs_f64)
            })
            .transpose()?;
        let gate = match (&cli.baseline, cli.max_regression) {
            (Some(baseline), Some(pct)) => Some(Gate {
                baseline: baseline.clone(),
                max_regression: MAX_REGRESSION.check("--max-regression", pct)?,
            }),
            _ => None,
        };
        let max_blocked = match MAX_BLOCKED.check("--max-blocked", cli.max_blocked)? {
            0.0 => None,
            secs => Some(Duration::from_secs_f64(secs)),
        };
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
            max_blocked,
            output: if cli.json {
                Output::Json
            } else {
                Output::Human
            },
            verbosity: cli.verbosity.verbosity(),
            interval,
            exports: Exports {
                json: cli.export_json.clone(),
                csv: cli.export_csv.clone(),
                markdown: cli.export_markdown.clone(),
                hgrm: cli.export_hgrm.clone(),
                svg: cli.export_svg.clone(),
            },
            gate,
            metrics_addr: cli.metrics.addr.clone(),
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

fn usage(message: String) -> anyhow::Error {
    Failure::Usage(message).into()
}

/// `A..B`: n from A up to B-1, not empty.
fn parse_range(text: &str) -> Result<Range<u64>> {
    let bad = || {
        usage(format!(
            "--n-range {text:?} is not A..B with whole numbers A < B (e.g. 0..2000)"
        ))
    };
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if a >= b {
        return Err(bad());
    }
    Ok(a..b)
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

    fn load(args: &[&str]) -> Load {
        match options(args).map(|o| o.mode) {
            Ok(Mode::Benchmark(load)) => load,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn default_is_the_closed_loop_of_today() {
        let load = load(&[]);
        assert_eq!(load.workload, Workload::Cycle(0..2000));
        assert_eq!(
            (load.stop, load.warmup, load.rate),
            (Stop::Count(2000), 0, None)
        );
    }

    #[test]
    fn workload_and_run_length_flags() {
        let l = load(&["--n-range", "10..20", "--duration", "2.5", "--rate", "500"]);
        assert_eq!(l.workload, Workload::Cycle(10..20));
        assert_eq!(l.stop, Stop::After(Duration::from_millis(2500)));
        assert_eq!(l.rate, Some(500.0));
        assert_eq!(load(&["--fixed-n", "7"]).workload, Workload::Fixed(7));
        assert_eq!(
            options(&["--n", "7"]).map(|o| o.mode).ok(),
            Some(Mode::Single(7))
        );
    }

    #[test]
    fn max_blocked_defaults_to_five_minutes_and_zero_means_forever() -> Result<()> {
        assert_eq!(options(&[])?.max_blocked, Some(Duration::from_secs(300)));
        assert_eq!(options(&["--max-blocked", "0"])?.max_blocked, None);
        assert_eq!(
            options(&["--max-blocked", "5"])?.max_blocked,
            Some(Duration::from_secs(5))
        );
        Ok(())
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["--n-range", "5..5"][..],
            &["--n-range", "9..3"],
            &["--n-range", "x..3"],
            &["--n-range", "3"],
            &["--n-range", "0..20000000"],
            &["--fixed-n", "10000001"],
            &["--rate", "0"],
            &["--rate", "NaN"],
            &["--duration=-1"],
            &["--interval", "0"],
            &["--count", "0"],
            &["--baseline", "b.json", "--max-regression=-5"],
            &["--baseline", "b.json", "--max-regression", "1e9"],
            &["--rate", "1e-30"],
            &["--rate", "inf"],
            &["--interval", "0.000001"],
            &["--timeout", "1e-300"],
            &["--duration", "1e300"],
            &["--max-blocked=-1"],
            &["--max-blocked", "NaN"],
            &["--max-blocked", "86401"],
        ] {
            let error = options(args).expect_err(&format!("{args:?} accepted"));
            assert_eq!(common::exit_code(&error), common::exit::USAGE, "{args:?}");
        }
    }

    /// Every number flag with the bounds it must keep.
    const NUMBER_FLAGS: [(&str, Bounds); 6] = [
        ("--rate", RATE),
        ("--duration", DURATION),
        ("--interval", INTERVAL),
        ("--timeout", TIMEOUT),
        ("--max-regression", MAX_REGRESSION),
        ("--max-blocked", MAX_BLOCKED),
    ];

    /// Every whole-number flag with the bounds it must keep.
    const WHOLE_NUMBER_FLAGS: [(&str, Bounds); 2] = [("--count", COUNT), ("--warmup", WARMUP)];

    #[test]
    fn count_and_warmup_are_bounded() {
        let max = u64::MAX.to_string();
        for args in [
            &["--warmup", &max, "--count", "1"][..],
            &["--count", &max, "--fixed-n", "1"],
            &["--count", "1000000001", "--fixed-n", "1"],
            &["--warmup", "1000000001"],
        ] {
            let error = options(args).expect_err(&format!("{args:?} accepted"));
            assert_eq!(common::exit_code(&error), common::exit::USAGE, "{args:?}");
            let message = error.to_string();
            assert!(
                message.contains("is out of range: requests from ")
                    && message.contains(" to 1000000000"),
                "{message}"
            );
        }
        let top = load(&[
            "--count",
            "1000000000",
            "--warmup",
            "1000000000",
            "--fixed-n",
            "1",
        ]);
        assert_eq!(
            (top.stop, top.warmup),
            (Stop::Count(1_000_000_000), 1_000_000_000)
        );
    }

    proptest::proptest! {
        /// Any whole number given to `--count` or `--warmup` is taken exactly
        /// when it is within the flag's bounds, and refused otherwise with
        /// exit 2 and a message naming them; never a panic, also when the
        /// run is set up.
        #[test]
        fn whole_number_flags_take_their_range_and_name_it_otherwise(
            value in proptest::prop_oneof![
                proptest::num::u64::ANY,
                0u64..3_000_000_000,
                proptest::sample::select(vec![0, 1, 999_999_999, 1_000_000_000, 1_000_000_001]),
            ],
            which in 0usize..WHOLE_NUMBER_FLAGS.len(),
        ) {
            let (flag, bounds) = WHOLE_NUMBER_FLAGS[which];
            let given = format!("{flag}={value}");
            let args = ["--fixed-n", "1", given.as_str()];
            let inside = value as f64 >= bounds.min && value as f64 <= bounds.max;
            match options(&args) {
                Ok(options) => {
                    proptest::prop_assert!(inside, "{} accepted", given);
                    drop(crate::measure::Run::new(options.plan()));
                }
                Err(error) => {
                    proptest::prop_assert!(!inside, "{} refused: {:#}", given, error);
                    proptest::prop_assert_eq!(common::exit_code(&error), common::exit::USAGE);
                    let range = format!("from {} to {}", bounds.min, bounds.max);
                    let message = error.to_string();
                    proptest::prop_assert!(
                        message.contains(&range) && message.contains(flag),
                        "{}", message
                    );
                }
            }
        }

        /// Any number given to a number flag is taken exactly when it is
        /// within the flag's bounds, and refused otherwise with exit 2 and a
        /// message naming them; never a panic, also when the run is set up.
        #[test]
        fn number_flags_take_their_range_and_name_it_otherwise(
            value in proptest::prop_oneof![
                proptest::num::f64::ANY,
                -1e7f64..1e7,
                0.0f64..1.0,
                proptest::sample::select(vec![0.001, 0.01, 0.1, 86_400.0, 1e6, 1e4, 0.0]),
            ],
            which in 0usize..NUMBER_FLAGS.len(),
        ) {
            let (flag, bounds) = NUMBER_FLAGS[which];
            let given = format!("{flag}={value}");
            let mut args = vec!["--fixed-n", "1", given.as_str()];
            if flag == "--max-regression" {
                args.extend(["--baseline", "b.json"]);
            }
            let inside = value.is_finite() && value >= bounds.min && value <= bounds.max;
            match options(&args) {
                Ok(options) => {
                    proptest::prop_assert!(inside, "{} accepted", given);
                    drop(crate::measure::Run::new(options.plan()));
                }
                Err(error) => {
                    proptest::prop_assert!(!inside, "{} refused: {:#}", given, error);
                    proptest::prop_assert_eq!(common::exit_code(&error), common::exit::USAGE);
                    let range = format!("from {} to {}", bounds.min, bounds.max);
                    let message = error.to_string();
                    proptest::prop_assert!(
                        message.contains(&range) && message.contains(flag),
                        "{}", message
                    );
                }
            }
        }
    }
}
