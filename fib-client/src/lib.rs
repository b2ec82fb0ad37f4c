//! fib-client: times Fibonacci RPC round trips through RabbitMQ.
//!
//! Layout after hyperfine: `cli` parses, `options` holds plain settings,
//! `rpc` speaks AMQP, `measure` times round trips, `stats` and `summary`
//! reduce them, `output` and `export` present them.

pub mod cli;
pub mod export;
pub mod measure;
pub mod options;
pub mod output;
pub mod rpc;
pub mod stats;
pub mod summary;

use anyhow::{Context, Result};
use common::logging::Verbosity;
use common::protocol::Reply;
use log::info;
use measure::Verdict;
use options::{Mode, Options, Output};
use rpc::RpcSession;
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
    let mut connection = common::open_connection(&options.connection)?;
    let channel = connection
        .open_channel(None)
        .context("cannot open a channel")?;
    let outcome = converse(&channel, options)?;
    channel.close()?;
    connection.close()?;
    Ok(outcome)
}

fn converse(channel: &amiquip::Channel, options: &Options) -> Result<Outcome> {
    let session = RpcSession::open(channel, &options.exchange, &options.routing_key)?;
    info!(
        "connected to {}; requests to exchange {:?} with routing key {:?}, replies on {:?}",
        options.connection.url,
        options.exchange,
        options.routing_key,
        session.reply_queue()
    );
    let outcome = match &options.mode {
        Mode::Single(n) => single(&session, *n, options)?,
        Mode::Benchmark(requests) => benchmark(&session, requests.clone(), options)?,
    };
    session.close()?;
    Ok(outcome)
}

fn single(session: &RpcSession, n: u64, options: &Options) -> Result<Outcome> {
    let (round_trip, reply) = measure::call(session, n, options.timeout)?;
    match (&round_trip.verdict, reply) {
        (Verdict::Correct, Reply::Value(digits)) => {
            writeln!(std::io::stdout(), "{digits}")?;
            Ok(Outcome::Single { correct: true })
        }
        (Verdict::Refused { code, message }, _) => {
            log::error!("the server refused n={n}: {code}: {message}");
            Ok(Outcome::Single { correct: false })
        }
        (_, reply) => {
            log::error!("wrong reply for n={n}: {reply:?}");
            Ok(Outcome::Single { correct: false })
        }
    }
}

fn benchmark(
    session: &RpcSession,
    requests: std::ops::Range<u64>,
    options: &Options,
) -> Result<Outcome> {
    let count = requests.end - requests.start;
    let show_bar = options.verbosity == Verbosity::Normal && std::io::stderr().is_terminal();
    let mut progress =
        output::Progress::new(count, show_bar, options.verbosity == Verbosity::Verbose);
    let measurement = measure::measure(session, requests, options.timeout, &mut |trip, reply| {
        progress.observe(trip, reply);
        if let Verdict::Wrong { .. } | Verdict::Refused { .. } = trip.verdict {
            log::warn!("n={}: {:?}", trip.n, trip.verdict);
        }
    })?;
    progress.finish();
    let summary = Summary::of(&measurement);
    let mut stdout = std::io::stdout().lock();
    match options.output {
        Output::Json => writeln!(stdout, "{}", export::json(&summary)?)?,
        Output::Human => write!(stdout, "{}", output::summary_table(&summary))?,
    }
    Ok(Outcome::Benchmark(summary))
}
