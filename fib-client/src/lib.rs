//! fib-client: times Fibonacci RPC round trips through RabbitMQ.
//!
//! Layout after hyperfine: `cli` parses, `options` holds plain settings,
//! `rpc` speaks AMQP and `connect` keeps a session up, `measure` times round
//! trips, `stats` and `summary` reduce them, `output` and `export` present
//! them.

pub mod cli;
pub mod connect;
pub mod export;
pub mod interrupt;
pub mod measure;
pub mod monitoring;
pub mod options;
pub mod output;
pub mod rpc;
pub mod stats;
pub mod summary;
pub mod workload;

use anyhow::Result;
use common::exit;
use common::logging::Verbosity;
use common::protocol::Reply;
use export::{Baseline, CsvWriter, Parameters};
use measure::{Observer, RoundTrip, Run, Stop, Verdict};
use options::{Mode, Options, Output};
use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};
use summary::{Ended, Summary};

/// How a run ended when nothing went wrong with the broker.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Benchmark(Box<Summary>),
    /// The `--n` call: was the reply F(n)?
    Single {
        correct: bool,
    },
}

impl Outcome {
    pub fn all_correct(&self) -> bool {
        match self {
            Outcome::Benchmark(summary) => summary.failures == 0,
            Outcome::Single { correct } => *correct,
        }
    }

    /// 130 if interrupted, else 1 for wrong replies, else 6 for a
    /// regression, else 0.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Benchmark(summary) if summary.interrupted => exit::INTERRUPTED,
            _ if !self.all_correct() => exit::WRONG_REPLIES,
            Outcome::Benchmark(summary)
                if summary.regression.as_ref().is_some_and(|r| r.failed) =>
            {
                exit::REGRESSION
            }
            _ => exit::OK,
        }
    }
}

/// Connects, runs the requests `options` ask for and prints the result.
pub fn run(options: &Options) -> Result<Outcome> {
    match &options.mode {
        Mode::Single(n) => single(*n, options),
        Mode::Benchmark(_) => benchmark(options),
    }
}

fn single(n: u64, options: &Options) -> Result<Outcome> {
    let mut run = Run::new(options.plan());
    let mut answer = None;
    connect::with_sessions(
        options,
        None,
        &mut connect::Sessions::default(),
        None,
        &mut |session, number| {
            run.drive(session, number, &mut |trip: &RoundTrip, reply: &Reply| {
                answer = Some((trip.verdict.clone(), reply.clone()));
            })
        },
    )?;
    let correct = match answer {
        Some((Verdict::Correct, Reply::Value(digits))) => {
            writeln!(std::io::stdout(), "{digits}")?;
            true
        }
        Some((verdict, _)) => {
            log::error!("n={n}: {verdict}");
            false
        }
        None => false,
    };
    Ok(Outcome::Single { correct })
}

/// What watches a timed run: the progress bar or per-request lines, the
/// interval lines and the CSV rows.
struct Live {
    progress: output::Progress,
    intervals: Option<output::Intervals>,
    csv: Option<CsvWriter>,
    /// With `--metrics`: the run's figures as it goes.
    metrics: Option<monitoring::ClientMetrics>,
}

impl Observer for Live {
    fn round_trip(&mut self, trip: &RoundTrip, reply: &Reply) {
        if let Some(metrics) = &self.metrics {
            metrics.round_trip(trip);
        }
        self.progress.observe(trip, reply);
        if !trip.is_correct() {
            log::warn!("n={}: {}", trip.n, trip.verdict);
        }
        if let Some(intervals) = self.intervals.as_mut() {
            intervals.observe(trip);
        }
        if let Some(csv) = self.csv.as_mut() {
            csv.row(trip);
        }
    }

    fn unanswered(&mut self, trip: &RoundTrip) {
        if let Some(metrics) = &self.metrics {
            metrics.unanswered(trip);
        }
        if let Some(csv) = self.csv.as_mut() {
            csv.row(trip);
        }
    }

    fn unsent(&mut self, count: u64) {
        // Only counted: the CSV has a row for each request sent, none for
        // these (the summary and every other export have their number).
        if let Some(metrics) = &self.metrics {
            metrics.unsent(count);
        }
    }

    fn blocked(&mut self, reason: Option<&str>) {
        self.progress.blocked(reason);
        if let Some(intervals) = self.intervals.as_mut() {
            intervals.blocked(reason);
        }
    }

    fn reconnecting(&mut self, reconnecting: bool) {
        self.progress.reconnecting(reconnecting);
        if let Some(intervals) = self.intervals.as_mut() {
            intervals.reconnecting(reconnecting);
        }
    }

    fn tick(&mut self, at: Duration) {
        if let Some(intervals) = self.intervals.as_mut() {
            self.progress
                .suspend(|| eprintln!("{}", intervals.line(at)));
        }
    }

    fn sent(&mut self, warmup: bool) {
        if let Some(metrics) = &self.metrics {
            metrics.sent(warmup);
        }
    }

    fn resent(&mut self, warmup: bool) {
        if let Some(metrics) = &self.metrics {
            metrics.resent(warmup);
        }
    }
}

fn benchmark(options: &Options) -> Result<Outcome> {
    let plan = options.plan();
    // Everything that can be refused is refused before connecting.
    let baseline = options
        .gate
        .as_ref()
        .map(|gate| Baseline::load(&gate.baseline))
        .transpose()?;
    let exports = &options.exports;
    for path in [
        &exports.json,
        &exports.markdown,
        &exports.hgrm,
        &exports.svg,
    ]
    .into_iter()
    .flatten()
    {
        export::check_writable(path)?;
    }
    let csv = exports.csv.as_deref().map(CsvWriter::create).transpose()?;
    // Bound before connecting: a wrong address is a usage error now.
    let metrics = match &options.metrics_addr {
        Some(addr) => {
            let endpoint = metrics::Endpoint::bind(addr)?;
            let metrics = monitoring::ClientMetrics::new(plan.rate, plan.inflight)?;
            let serving = endpoint.serve(metrics.registry.clone(), metrics.readiness.clone())?;
            log::info!(target: "startup", "metrics at {}/metrics", serving.url());
            Some((metrics, serving))
        }
        None => None,
    };
    let (metrics, _serving) = match metrics {
        Some((metrics, serving)) => (Some(metrics), Some(serving)),
        None => (None, None),
    };
    let interrupt = interrupt::on_stop_signal()?;
    let started = SystemTime::now();
    let expected = match plan.stop {
        Stop::Count(count) => Some(count.saturating_add(plan.warmup)),
        Stop::After(_) => None,
    };
    let show_bar = options.verbosity == Verbosity::Normal && std::io::stderr().is_terminal();
    let live = Live {
        progress: output::Progress::new(
            expected,
            show_bar,
            options.verbosity == Verbosity::Verbose,
        ),
        intervals: options
            .interval
            .map(|_| output::Intervals::up_to(plan.latency_ceiling())),
        csv,
        metrics,
    };
    let run = Run::new(plan);
    let mut sessions = connect::Sessions::default();
    // Shared by the sessions' work and the wait between sessions (which
    // keeps the interval lines on time while reconnecting); never both at once.
    let running = RefCell::new((run, live));
    let driven = connect::with_sessions(
        options,
        Some(&interrupt),
        &mut sessions,
        Some(&mut || {
            let (run, live) = &mut *running.borrow_mut();
            run.tick_between_sessions(live)
        }),
        &mut |session, number| {
            let (run, live) = &mut *running.borrow_mut();
            live.reconnecting(false);
            if let Some(metrics) = &live.metrics {
                metrics.session_started(number);
            }
            let driven = run.drive(session, number, live);
            if let Some(metrics) = &live.metrics {
                metrics.session_ended(driven.is_err());
            }
            driven
        },
    );
    let (mut run, mut live) = running.into_inner();
    if let Some(metrics) = &live.metrics {
        metrics.session_ended(false);
    }
    live.progress.finish();
    // Once the run has started, every way it ends gets its summary and
    // exports; the error then decides the exit code, at the edge (main).
    let driven = match driven {
        // Nothing was done: the error alone says why.
        Err(error) if !run.started() => return Err(error),
        driven => driven,
    };
    let ended = match &driven {
        Err(error) => {
            run.end_after_failure(std::time::Instant::now(), &mut live);
            Ended::of_error(error)
        }
        Ok(()) if sessions.stopped => {
            // Stopped while reconnecting: what is outstanding died with the
            // lost connection, and nothing more is sent.
            run.abandon(&mut live);
            Ended::Interrupted
        }
        Ok(()) => Ended::Completed,
    };
    let csv_written = live.csv.take().map_or(Ok(()), CsvWriter::finish);
    let measurement = run.finish();
    let (ended, driven) = match (ended, driven) {
        (Ended::Completed, _) if measurement.interrupted => (Ended::Interrupted, Ok(())),
        (Ended::Completed, Ok(())) => match unanswered_at_the_end(&measurement, options.timeout) {
            Some(failure) => (Ended::NoReply, Err(failure.into())),
            None => (Ended::Completed, Ok(())),
        },
        (ended, driven) => (ended, driven),
    };
    let mut summary = Summary::of(&measurement, sessions.reconnects, ended);
    if let (Some(baseline), Some(gate), Some(latency)) =
        (&baseline, &options.gate, &summary.latency_us)
    {
        summary.regression = Some(export::compare(latency, baseline, gate.max_regression));
    }
    let reported =
        csv_written.and_then(|()| report(options, started, &sessions, &measurement, &summary));
    match (driven, reported) {
        (Err(failure), Err(report_error)) => {
            // The run's failure decides the exit code; this one is told too.
            log::error!("{report_error:#}");
            Err(failure)
        }
        (Err(failure), Ok(())) | (Ok(()), Err(failure)) => Err(failure),
        (Ok(()), Ok(())) => Ok(Outcome::Benchmark(Box::new(summary))),
    }
}

/// A run that went to its end (`--duration`) with requests that then got
/// no reply within `--timeout` failed as one that waited for a reply in
/// vain before its end did (exit 5): a stalled server must not pass.
fn unanswered_at_the_end(
    measurement: &measure::Measurement,
    timeout: Duration,
) -> Option<common::Failure> {
    if measurement.unanswered == 0 || measurement.interrupted {
        return None;
    }
    Some(common::Failure::Timeout(format!(
        "{} of {} requests sent got no reply within {:.1} s (--timeout) of being sent, \
         awaited after the run stopped sending; is fib-server running?",
        measurement.unanswered,
        measurement.sent,
        timeout.as_secs_f64()
    )))
}

/// Prints the summary (text, or JSON on stdout) and writes every export
/// asked for, except the CSV written as the run went.
fn report(
    options: &Options,
    started: SystemTime,
    sessions: &connect::Sessions,
    measurement: &measure::Measurement,
    summary: &Summary,
) -> Result<()> {
    let exports = &options.exports;
    if summary.fell_behind() {
        if let Some(rate) = &summary.rate {
            log::warn!(
                "fell behind the asked rate: {} of {} requests sent more than {:.1} ms late, \
                 {} due but never sent; achieved {:.1}/s of {:.1}/s (raise --inflight?)",
                rate.late_sends,
                summary.sent,
                rate.late_ms,
                summary.unsent,
                rate.achieved,
                rate.asked
            );
        }
    }
    {
        let mut stdout = std::io::stdout().lock();
        match options.output {
            Output::Json => writeln!(stdout, "{}", export::json(summary)?)?,
            Output::Human => write!(stdout, "{}", output::summary_table(summary))?,
        }
        stdout.flush()?;
    }
    if options.output == Output::Json {
        // The comparison still reaches people, on stderr.
        if let Some(regression) = &summary.regression {
            eprint!("{}", output::regression_line(regression));
        }
    }
    if let Some(path) = &exports.json {
        let parameters = Parameters::new(options, started, sessions.broker.clone());
        export::write(path, &export::json_document(summary, &parameters)?)?;
    }
    if let Some(path) = &exports.markdown {
        export::write(path, &export::markdown(summary))?;
    }
    if let Some(path) = &exports.hgrm {
        export::write(
            path,
            &export::percentile_distribution(&measurement.corrected, summary.unsent),
        )?;
    }
    if let Some(path) = &exports.svg {
        let views: Vec<(&str, &hdrhistogram::Histogram<u64>)> = match summary.rate {
            Some(_) => vec![
                ("corrected (from when due)", &measurement.corrected),
                ("as sent (from first publish)", &measurement.as_sent),
            ],
            None => vec![("round trip", &measurement.corrected)],
        };
        let mut title = match summary.rate {
            Some(rate) => format!(
                "fib-client latency spectrum: {} requests at {} req/s",
                summary.count, rate.asked
            ),
            None => format!("fib-client latency spectrum: {} requests", summary.count),
        };
        if summary.unsent > 0 {
            title.push_str(&format!(", {} due but never sent", summary.unsent));
        }
        export::write(path, &export::spectrum_svg(&title, &views)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use measure::Plan;
    use workload::Workload;

    fn measurement(sent: u64, unanswered: u64, interrupted: bool) -> measure::Measurement {
        let mut measurement = Run::new(Plan {
            workload: Workload::Fixed(1),
            stop: Stop::After(Duration::from_secs(1)),
            warmup: 0,
            rate: Some(50.0),
            inflight: 1,
            timeout: Duration::from_secs(1),
            retries: 0,
            tick: None,
            max_blocked: None,
        })
        .finish();
        measurement.sent = sent;
        measurement.answered = sent - unanswered;
        measurement.correct = sent - unanswered;
        measurement.unanswered = unanswered;
        measurement.interrupted = interrupted;
        measurement
    }

    #[test]
    fn a_run_that_ends_with_requests_unanswered_exits_5_no_reply() {
        let timeout = Duration::from_secs(1);
        let failure = unanswered_at_the_end(&measurement(1, 1, false), timeout)
            .expect("an unanswered request fails the run");
        let error = anyhow::Error::new(failure);
        assert_eq!(exit::exit_code(&error), exit::TIMEOUT);
        assert_eq!(Ended::of_error(&error), Ended::NoReply);
        assert!(format!("{error}").starts_with("1 of 1 requests sent got no reply within 1.0 s"));
        // Every reply in: no failure. Ctrl-C: 130 says it, not 5.
        assert!(unanswered_at_the_end(&measurement(10, 0, false), timeout).is_none());
        assert!(unanswered_at_the_end(&measurement(10, 3, true), timeout).is_none());
    }
}
