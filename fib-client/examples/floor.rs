//! The floor: what blocking RPC over RabbitMQ costs with nothing else in it.
//!
//! The same connection code as fib-rpc (`common::open_connection`, so
//! TCP_NODELAY), the same declarations and message properties, but a server
//! that echoes the request body and a client that only waits: no Fibonacci,
//! no logging, no progress bar. `scripts/bench.sh` runs it beside fib-server
//! and fib-client, so fib-rpc's own overhead is a ratio from one run.
//!
//! ```text
//! floor server --exchange X --queue Q [--prefetch P]
//!     prints `ready` on stderr once consuming; stops on SIGINT/SIGTERM
//! floor client --exchange X [--count N] [--inflight K] [--json]
//!     K requests outstanding (1 = strictly sequential); prints the summary
//!     with the fields of `fib-client --json`
//! floor delete --exchange X --queue Q [--queue Q2 ...]
//!     deletes the queues, then the exchange (gone already is fine)
//! ```
//!
//! Exit codes as fib-client's: 2 bad flags, 3 broker, 4 unroutable (no server),
//! 5 no reply within --timeout, 1 a reply that is not the echo of its request.

use amiquip::{Channel, ConsumerMessage, ConsumerOptions, Publish};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use common::failure::Failure;
use common::protocol::{self, DEFAULT_ROUTING_KEY, DEFAULT_URL};
use common::topology::{self, Topology};
use common::{AmqpUrl, ConnectionSettings};
use crossbeam_channel::{select, Receiver};
use fib_client::stats::Latency;
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "floor",
    about = "Echo RPC over RabbitMQ: the floor under fib-rpc"
)]
struct Cli {
    /// Broker URL (amqp:// or amqps://).
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_URL, hide_env_values = true, global = true)]
    url: String,
    /// Topic exchange the requests go through.
    #[arg(long, global = true, default_value = "floor")]
    exchange: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Echo every request back to its reply_to.
    Server {
        /// Durable request queue, bound to the exchange with `#`.
        #[arg(long, default_value = "floor")]
        queue: String,
        /// Unacknowledged requests the broker may send ahead (basic.qos).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        prefetch: u16,
    },
    /// Time round trips through an echo server.
    Client {
        /// Number of requests.
        #[arg(long, default_value_t = 2000)]
        count: u64,
        /// Requests outstanding at once; 1 waits for each reply before the next.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        inflight: u64,
        /// Seconds any one wait for a reply may take.
        #[arg(long, default_value_t = 10.0, value_name = "SECS")]
        timeout: f64,
        /// Print the summary as one JSON object (the default is one text line).
        #[arg(long)]
        json: bool,
    },
    /// Delete the queues, then the exchange: clean-up after a benchmark.
    Delete {
        #[arg(long)]
        queue: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = AmqpUrl::parse(&cli.url).and_then(|url| {
        let settings = ConnectionSettings::new(url);
        match cli.command {
            Command::Server { queue, prefetch } => {
                let topology = Topology {
                    exchange: cli.exchange,
                    queue,
                    ..Topology::default()
                };
                server(&settings, &topology, prefetch)
            }
            Command::Client {
                count,
                inflight,
                timeout,
                json,
            } => {
                if !(timeout.is_finite() && timeout > 0.0 && timeout <= 86_400.0) {
                    return Err(
                        Failure::Usage(format!("--timeout {timeout} is out of range")).into(),
                    );
                }
                let timeout = Duration::from_secs_f64(timeout);
                client(&settings, &cli.exchange, count, inflight, timeout, json)
            }
            Command::Delete { queue } => delete(&settings, &cli.exchange, &queue),
        }
    });
    if let Err(error) = result {
        common::exit::fail(&error);
    }
}

// --- server ------------------------------------------------------------------

fn server(settings: &ConnectionSettings, topology: &Topology, prefetch: u16) -> Result<()> {
    let shutdown = on_signal()?;
    let mut connection = common::open_connection(settings)?;
    let channel = connection.open_channel(None)?;
    let queue = topology::declare_request_queue(&channel, topology)
        .context("cannot declare the request queue")?;
    channel.qos(0, prefetch, false)?;
    let consumer = queue.consume(ConsumerOptions::default())?;
    eprintln!("ready");
    loop {
        select! {
            recv(consumer.receiver()) -> message => match message {
                Ok(ConsumerMessage::Delivery(delivery)) => {
                    // fib-server's reply, with the request body as the value.
                    let id = delivery.properties.correlation_id().clone();
                    if let Some(reply_to) = delivery.properties.reply_to().clone() {
                        let properties = protocol::reply_properties(id.as_deref(), None);
                        let reply = Publish::with_properties(&delivery.body, reply_to, properties);
                        channel.basic_publish("", reply)?;
                    }
                    delivery.ack(&channel)?;
                }
                Ok(ended) => return Err(Failure::Broker(format!("stopped consuming: {ended:?}")).into()),
                Err(_) => return Err(Failure::Broker("the connection's I/O thread ended".into()).into()),
            },
            recv(shutdown) -> _ => break,
        }
    }
    common::consumer::cancel(consumer)?;
    channel.close()?;
    connection.close()?;
    Ok(())
}

/// The first SIGINT/SIGTERM sends on the returned channel; a second exits 130.
fn on_signal() -> Result<Receiver<()>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let (sender, receiver) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let mut signals = signals.forever();
        if signals.next().is_some() {
            let _ = sender.send(());
        }
        if signals.next().is_some() {
            std::process::exit(130);
        }
    });
    Ok(receiver)
}

/// RabbitMQ deletes idempotently: a queue or exchange already gone is no error.
fn delete(settings: &ConnectionSettings, exchange: &str, queues: &[String]) -> Result<()> {
    let mut connection = common::open_connection(settings)?;
    let channel = connection.open_channel(None)?;
    for queue in queues {
        channel.queue_delete(queue.as_str(), Default::default())?;
    }
    channel.exchange_delete(exchange, false)?;
    channel.close()?;
    connection.close()?;
    Ok(())
}

// --- client ------------------------------------------------------------------

/// The fields of `fib-client --json`.
#[derive(serde::Serialize)]
struct Summary {
    count: usize,
    ok: usize,
    failures: usize,
    total_ms: f64,
    requests_per_second: f64,
    latency_us: Option<Latency>,
}

fn client(
    settings: &ConnectionSettings,
    exchange: &str,
    count: u64,
    inflight: u64,
    timeout: Duration,
    json: bool,
) -> Result<()> {
    let mut connection = common::open_connection(settings)?;
    let channel = connection.open_channel(None)?;
    let summary = run_client(&channel, exchange, count, inflight, timeout)?;
    channel.close()?;
    connection.close()?;
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(stdout, "{}", serde_json::to_string(&summary)?)?;
    } else {
        let mean = summary.latency_us.map_or(0.0, |l| l.mean);
        writeln!(
            stdout,
            "{} round trips, {} failed, in {:.3} ms ({:.1} requests/s), mean {mean:.0} µs",
            summary.count, summary.failures, summary.total_ms, summary.requests_per_second
        )?;
    }
    if summary.failures > 0 {
        anyhow::bail!(
            "{} replies were not the echo of their request",
            summary.failures
        );
    }
    Ok(())
}

fn run_client(
    channel: &Channel,
    exchange: &str,
    count: u64,
    inflight: u64,
    timeout: Duration,
) -> Result<Summary> {
    topology::declare_exchange(channel, exchange)?;
    let returns = channel.listen_for_returns()?;
    let reply_queue = topology::declare_reply_queue(channel)?;
    let consumer = reply_queue.consume(ConsumerOptions {
        no_ack: true,
        exclusive: true,
        ..ConsumerOptions::default()
    })?;
    let reply_to = reply_queue.name().to_string();

    // correlation id -> (n, when its request was published)
    let mut pending: HashMap<String, (u64, Instant)> = HashMap::new();
    let mut latencies = Vec::with_capacity(count as usize);
    let (mut next, mut failures) = (0u64, 0usize);
    let started = Instant::now();
    while (latencies.len() as u64) < count {
        while next < count && (pending.len() as u64) < inflight {
            let sent_at = Instant::now();
            let id = Uuid::new_v4().to_string();
            channel.basic_publish(
                exchange,
                Publish {
                    body: protocol::request_body(next).as_bytes(),
                    routing_key: DEFAULT_ROUTING_KEY.to_string(),
                    mandatory: true,
                    immediate: false,
                    properties: protocol::request_properties(&id, &reply_to),
                },
            )?;
            pending.insert(id, (next, sent_at));
            next += 1;
        }
        select! {
            recv(consumer.receiver()) -> message => match message {
                Ok(ConsumerMessage::Delivery(delivery)) => {
                    let id = delivery.properties.correlation_id().as_deref();
                    // Unknown ids (late replies to an earlier run) are skipped.
                    if let Some((n, sent_at)) = id.and_then(|id| pending.remove(id)) {
                        latencies.push(sent_at.elapsed());
                        if delivery.body != protocol::request_body(n).as_bytes() {
                            failures += 1;
                        }
                    }
                }
                Ok(ended) => return Err(Failure::Broker(format!("reply consumer ended: {ended:?}")).into()),
                Err(_) => return Err(Failure::Broker("the connection's I/O thread ended".into()).into()),
            },
            recv(returns) -> _ => {
                return Err(Failure::Unroutable(format!(
                    "a request was returned: no queue is bound to exchange {exchange:?}; is the floor server running?"
                )).into());
            },
            recv(crossbeam_channel::after(timeout)) -> _ => {
                return Err(Failure::Timeout(format!(
                    "no reply within {:.1} s ({} outstanding)", timeout.as_secs_f64(), pending.len()
                )).into());
            },
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    common::consumer::cancel(consumer)?;
    Ok(Summary {
        count: latencies.len(),
        ok: latencies.len() - failures,
        failures,
        total_ms: seconds * 1e3,
        requests_per_second: if seconds > 0.0 {
            latencies.len() as f64 / seconds
        } else {
            0.0
        },
        latency_us: Latency::of(&{
            // The same histogram as fib-client's, so the two compare.
            let mut histogram = fib_client::stats::histogram();
            for latency in &latencies {
                fib_client::stats::record(&mut histogram, *latency);
            }
            histogram
        }),
    })
}
