//! fib-client: times Fibonacci RPC round trips through RabbitMQ.
//!
//! Layout after hyperfine: `cli` parses, `options` holds plain settings,
//! `rpc` speaks AMQP and `connect` keeps a session up, `measure` times round
//! trips, `stats` and `summary` reduce them, `output` and `export` present
//! them.

pub mod cli;
pub mod connect;
pub mod export;
pub mod measure;
pub mod options;
pub mod output;
pub mod rpc;
pub mod stats;
pub mod summary;

use anyhow::Result;
use common::logging::Verbosity;
use common::protocol::Reply;
use measure::{Run, Verdict};
use options::{Mode, Options, Output};
use std::io::{IsTerminal, Write};
use summary::Summary;

/// How a run ended when nothing went wrong with the broker.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Benchmark(Summary),
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
    connect::with_sessions(options, &mut |session, number| {
        run.drive(session, number, &mut |trip, reply| {
            answer = Some((trip.verdict.clone(), reply.clone()));
        })
    })?;
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

fn benchmark(options: &Options) -> Result<Outcome> {
    let plan = options.plan();
    let count = plan.requests.end - plan.requests.start;
    let show_bar = options.verbosity == Verbosity::Normal && std::io::stderr().is_terminal();
    let mut progress =
        output::Progress::new(count, show_bar, options.verbosity == Verbosity::Verbose);
    let mut run = Run::new(plan);
    let reconnects = connect::with_sessions(options, &mut |session, number| {
        run.drive(session, number, &mut |trip, reply| {
            progress.observe(trip, reply);
            if !trip.is_correct() {
                log::warn!("n={}: {}", trip.n, trip.verdict);
            }
        })
    })?;
    progress.finish();
    let summary = Summary::of(&run.finish(), reconnects);
    let mut stdout = std::io::stdout().lock();
    match options.output {
        Output::Json => writeln!(stdout, "{}", export::json(&summary)?)?,
        Output::Human => write!(stdout, "{}", output::summary_table(&summary))?,
    }
    Ok(Outcome::Benchmark(summary))
}
