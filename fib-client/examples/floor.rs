//! The floor: what blocking RPC over RabbitMQ costs with nothing else in it.
//!
//! The same connection code as fib-rpc (`common::open_connection`, so
//! TCP_NODELAY), the same declarations and message properties, but a server
//! that echoes the request body and a client that only waits: no Fibonacci,
//! no logging, no progress bar. `scripts/bench.sh` runs it beside fib-server
//! and fib-client, so fib-rpc's own overhead is a ratio from one run.
//!
//! Each property fib-rpc adds to a bare echo can be switched on alone, so
//! that `scripts/bench.sh` can add them one at a time (the ablation): the
//! bare echo has persistent requests (as the pika client sends them),
//! transient replies, no mandatory flag, no publisher confirms, prefetch 1
//! and a counter for correlation ids.
//!
//! ```text
//! floor server --exchange X --queue Q [--prefetch P] [--persistent-replies]
//!              [--confirm] [--reply echo|pad|fib] [--log]
//!     prints `ready` on stderr once consuming; stops on SIGINT/SIGTERM
//! floor client --exchange X [--count N] [--inflight K] [--json]
//!              [--mandatory] [--uuid] [--check none|echo|pad|fib]
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
        /// Replies with delivery mode 2, as fib-server sends them.
        #[arg(long)]
        persistent_replies: bool,
        /// Publisher confirms: ack each request once its reply is confirmed
        /// (waiting in line, which at prefetch 1 is what fib-server does).
        #[arg(long)]
        confirm: bool,
        /// What to reply: the request body, as many bytes as F(n) has digits
        /// (without computing it), or F(n) itself.
        #[arg(long, value_enum, default_value_t = ReplyKind::Echo)]
        reply: ReplyKind,
        /// A line per request on stderr, as fib-server logs at its default level.
        #[arg(long)]
        log: bool,
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
        /// Requests with the mandatory flag (an unroutable one is returned).
        #[arg(long)]
        mandatory: bool,
        /// A random UUID per request for its correlation id, as fib-client;
        /// otherwise the request counter.
        #[arg(long)]
        uuid: bool,
        /// What a reply must be: anything, the echo, F(n)'s digit count in
        /// bytes, or F(n) (checked as fib-client does, one addition per n).
        #[arg(long, value_enum, default_value_t = Check::Echo)]
        check: Check,
    },
    /// Delete the queues, then the exchange: clean-up after a benchmark.
    Delete {
        #[arg(long)]
        queue: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReplyKind {
    Echo,
    Pad,
    Fib,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Check {
    None,
    Echo,
    Pad,
    Fib,
}

/// How the server behaves: the properties the ablation switches on.
#[derive(Debug, Clone, Copy)]
struct ServerOptions {
    prefetch: u16,
    persistent_replies: bool,
    confirm: bool,
    reply: ReplyKind,
    log: bool,
}

/// How the client behaves.
#[derive(Debug, Clone, Copy)]
struct ClientOptions {
    count: u64,
    inflight: u64,
    timeout: Duration,
    mandatory: bool,
    uuid: bool,
    check: Check,
}

/// The number of decimal digits of F(n), from Binet's formula: exact but
/// for n where n·log10(φ) falls within float error of an integer, where it
/// may be one off, which is all a reply's size needs.
fn fib_digit_count(n: u64) -> usize {
    if n < 2 {
        return 1;
    }
    let log10_phi = 0.208_987_640_249_978_73_f64;
    let log10_sqrt5 = 0.349_485_002_168_009_4_f64;
    ((n as f64) * log10_phi - log10_sqrt5).floor() as usize + 1
}

fn main() {
    let cli = Cli::parse();
    common::logging::init("floor", common::logging::Verbosity::Normal);
    let result = AmqpUrl::parse(&cli.url).and_then(|url| {
        let settings = ConnectionSettings::new(url);
        match cli.command {
            Command::Server {
                queue,
                prefetch,
                persistent_replies,
                confirm,
                reply,
                log,
            } => {
                let topology = Topology {
                    exchange: cli.exchange,
                    queue,
                    ..Topology::default()
                };
                let options = ServerOptions {
                    prefetch,
                    persistent_replies,
                    confirm,
                    reply,
                    log,
                };
                server(&settings, &topology, options)
            }
            Command::Client {
                count,
                inflight,
                timeout,
                json,
                mandatory,
                uuid,
                check,
            } => {
                if !(timeout.is_finite() && timeout > 0.0 && timeout <= 86_400.0) {
                    return Err(
                        Failure::Usage(format!("--timeout {timeout} is out of range")).into(),
                    );
                }
                let options = ClientOptions {
                    count,
                    inflight,
                    timeout: Duration::from_secs_f64(timeout),
                    mandatory,
                    uuid,
                    check,
                };
                client(&settings, &cli.exchange, options, json)
            }
            Command::Delete { queue } => delete(&settings, &cli.exchange, &queue),
        }
    });
    if let Err(error) = result {
        common::exit::fail(&error);
    }
}

// --- server ------------------------------------------------------------------

fn server(
    settings: &ConnectionSettings,
    topology: &Topology,
    options: ServerOptions,
) -> Result<()> {
    let shutdown = on_signal()?;
    let mut connection = common::open_connection(settings)?;
    let channel = connection.open_channel(None)?;
    let queue = topology::declare_request_queue(&channel, topology)
        .context("cannot declare the request queue")?;
    channel.qos(0, options.prefetch, false)?;
    let mut confirms = if options.confirm {
        let receiver = channel.listen_for_publisher_confirms()?;
        channel.enable_publisher_confirms()?;
        Some((receiver, amiquip::ConfirmSmoother::new()))
    } else {
        None
    };
    let consumer = queue.consume(ConsumerOptions::default())?;
    eprintln!("ready");
    loop {
        select! {
            recv(consumer.receiver()) -> message => match message {
                Ok(ConsumerMessage::Delivery(delivery)) => {
                    let started = Instant::now();
                    let id = delivery.properties.correlation_id().clone();
                    let Some(reply_to) = delivery.properties.reply_to().clone() else {
                        delivery.ack(&channel)?;
                        continue;
                    };
                    let n = || -> Result<u64> {
                        Ok(std::str::from_utf8(&delivery.body)?.trim().parse()?)
                    };
                    let body: Vec<u8> = match options.reply {
                        ReplyKind::Echo => delivery.body.clone(),
                        ReplyKind::Pad => vec![b'7'; fib_digit_count(n()?)],
                        ReplyKind::Fib => fib_math::fibonacci_decimal(n()?).into_bytes(),
                    };
                    let mut properties = protocol::reply_properties(id.as_deref(), None);
                    if !options.persistent_replies {
                        properties = properties.with_delivery_mode(1);
                    }
                    channel.basic_publish("", Publish::with_properties(&body, reply_to, properties))?;
                    if let Some((receiver, smoother)) = &mut confirms {
                        wait_for_confirm(receiver, smoother)?;
                    }
                    if options.log {
                        log::info!(
                            "n={} id={} -> {} digits {} in {:.3} ms",
                            String::from_utf8_lossy(&delivery.body),
                            id.as_deref().unwrap_or("-"),
                            body.len(),
                            protocol::abbreviate(&String::from_utf8_lossy(&body), 20),
                            started.elapsed().as_secs_f64() * 1e3
                        );
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

/// Waits for the broker to confirm the one reply just published.
fn wait_for_confirm(
    receiver: &Receiver<amiquip::Confirm>,
    smoother: &mut amiquip::ConfirmSmoother,
) -> Result<()> {
    loop {
        let raw = receiver
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| Failure::Broker("no publisher confirm within 30 s".into()))?;
        // One reply is outstanding, so the first confirm in order is its.
        match smoother.process(raw).next() {
            Some(amiquip::Confirm::Ack(_)) => return Ok(()),
            Some(amiquip::Confirm::Nack(_)) => {
                return Err(Failure::Broker("the broker refused a reply".into()).into())
            }
            None => continue,
        }
    }
}

/// The first SIGINT/SIGTERM closes the returned channel; a second exits 130.
fn on_signal() -> Result<Receiver<()>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    common::signals::stop_channel(&[SIGINT, SIGTERM], |_| {}, 130)
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
    options: ClientOptions,
    json: bool,
) -> Result<()> {
    let mut connection = common::open_connection(settings)?;
    let channel = connection.open_channel(None)?;
    let summary = run_client(&channel, exchange, options)?;
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
        anyhow::bail!("{} replies were not what was expected", summary.failures);
    }
    Ok(())
}

fn run_client(channel: &Channel, exchange: &str, options: ClientOptions) -> Result<Summary> {
    let ClientOptions {
        count,
        inflight,
        timeout,
        ..
    } = options;
    topology::declare_exchange(channel, exchange)?;
    let returns = channel.listen_for_returns()?;
    let reply_queue = topology::declare_reply_queue(channel)?;
    let consumer = reply_queue.consume(ConsumerOptions {
        no_ack: true,
        exclusive: true,
        ..ConsumerOptions::default()
    })?;
    let reply_to = reply_queue.name().to_string();

    // F(0), F(1), ... for --check fib, computed as the requests go out.
    let mut sequence = fib_math::DecimalSequence::starting_at(0);
    // correlation id -> (n, when its request was published, the expected F(n))
    let mut pending: HashMap<String, (u64, Instant, Option<String>)> = HashMap::new();
    let mut latencies = Vec::with_capacity(count as usize);
    let (mut next, mut failures) = (0u64, 0usize);
    let started = Instant::now();
    while (latencies.len() as u64) < count {
        while next < count && (pending.len() as u64) < inflight {
            let sent_at = Instant::now();
            let id = if options.uuid {
                Uuid::new_v4().to_string()
            } else {
                next.to_string()
            };
            channel.basic_publish(
                exchange,
                Publish {
                    body: protocol::request_body(next).as_bytes(),
                    routing_key: DEFAULT_ROUTING_KEY.to_string(),
                    mandatory: options.mandatory,
                    immediate: false,
                    properties: protocol::request_properties(&id, &reply_to),
                },
            )?;
            let expected = match options.check {
                Check::Fib => sequence.next(),
                _ => None,
            };
            pending.insert(id, (next, sent_at, expected));
            next += 1;
        }
        select! {
            recv(consumer.receiver()) -> message => match message {
                Ok(ConsumerMessage::Delivery(delivery)) => {
                    let id = delivery.properties.correlation_id().as_deref();
                    // Unknown ids (late replies to an earlier run) are skipped.
                    if let Some((n, sent_at, expected)) = id.and_then(|id| pending.remove(id)) {
                        latencies.push(sent_at.elapsed());
                        let body = &delivery.body;
                        let good = match options.check {
                            Check::None => true,
                            Check::Echo => *body == protocol::request_body(n).as_bytes(),
                            Check::Pad => body.len() == fib_digit_count(n),
                            Check::Fib => expected.is_some_and(|digits| *body == digits.as_bytes()),
                        };
                        if !good {
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
