//! The consume loop: declare, consume with manual acks, answer until told to
//! stop. Reconnecting after a lost connection is `common::lifecycle`'s job.
//!
//! While the broker blocks the connection (a memory or disk alarm) the
//! server waits: no confirm is overdue while blocked (a confirm's timeout
//! starts again when the block lifts) and nothing reconnects because of it.
//! A stop asked for meanwhile does not wait for the alarm: the connection
//! is cut, and the requests not yet acked go back to the queue.

use crate::cache::SharedCache;
use crate::handler;
use crate::monitoring::ServerMetrics;
use crate::replier::{self, Replier};
use amiquip::{Channel, ConsumerMessage, ConsumerOptions, Queue};
use anyhow::{Context, Result};
use common::blocking::BlockedState;
use common::lifecycle::{self, Block, Ended, Policy, Session};
use common::topology::{self, Object, QueueType, Removal, Topology};
use common::ConnectionSettings;
use crossbeam_channel::{select, Receiver};
use log::{debug, info, warn};
use metrics::State;
use std::time::Instant;

/// Everything the server needs to know, parsed and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connection: ConnectionSettings,
    pub topology: Topology,
    pub prefetch: u16,
    pub max_n: u64,
    /// Wait for the broker to confirm each reply before acking its request.
    pub confirm_replies: bool,
    /// Consumers, each on its own thread and connection.
    pub workers: usize,
    /// The bytes of replies the cache may keep (all workers together); 0
    /// turns it off.
    pub cache_bytes: usize,
    /// Where to serve metrics and health probes (`--metrics`), if at all.
    pub metrics_addr: Option<String>,
    /// Where every worker reports whether the broker blocks its connection
    /// (resource alarms): for metrics and readiness to read.
    pub blocked: BlockedState,
}

/// Serves requests until a message arrives on `shutdown` or its sender is
/// dropped. `on_ready` is called each time a consumer is declared, bound and
/// consuming. With `workers` > 1, each worker consumes on its own connection
/// and thread; if one fails for good, the others are stopped and its error
/// returned. Readiness says "stopping" from the moment the stop is
/// received, before any worker has finished the request in hand. The
/// workers share one reply cache, which lives as long as this
/// call: across reconnections, not across restarts.
pub fn run(
    settings: &Settings,
    shutdown: &Receiver<()>,
    on_ready: &(dyn Fn() + Sync),
) -> Result<()> {
    let metrics = &ServerMetrics::new(settings)?;
    // Bound before any connection: a wrong address is a usage error now.
    let endpoint = match &settings.metrics_addr {
        Some(addr) => Some(
            metrics::Endpoint::bind(addr)?
                .serve(metrics.registry.clone(), metrics.readiness.clone())?,
        ),
        None => None,
    };
    let metrics_url = endpoint.as_ref().map(metrics::Serving::url);
    let metrics_url = metrics_url.as_deref();
    let cache = &SharedCache::with_metrics(settings.cache_bytes, metrics.cache.clone());
    // The stop is received here, for every worker at once: readiness says
    // "stopping" from that moment, while workers still finish the request
    // in hand. Dropping `stop_all` then wakes every worker.
    let (stop_all, stop) = crossbeam_channel::bounded::<()>(0);
    let (failed_tx, failed) = crossbeam_channel::unbounded::<()>();
    let readiness = metrics.readiness.clone();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            select! {
                recv(shutdown) -> _ => {},
                // A worker failed for good, or (disconnected) all ended.
                recv(failed) -> _ => {},
            }
            readiness.stop();
            drop(stop_all);
        });
        let workers: Vec<_> = (0..settings.workers.max(1))
            .map(|worker| {
                let (stop, failed_tx) = (stop.clone(), failed_tx.clone());
                scope.spawn(move || {
                    let result = serve(
                        settings,
                        cache,
                        metrics,
                        worker,
                        metrics_url,
                        &stop,
                        on_ready,
                    );
                    if result.is_err() {
                        let _ = failed_tx.send(());
                    }
                    result
                })
            })
            .collect();
        drop(failed_tx);
        let mut first_error = None;
        for worker in workers {
            let result = worker
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")));
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}

/// What one worker shares with the others.
struct Shared<'a> {
    settings: &'a Settings,
    cache: &'a SharedCache,
    metrics: &'a ServerMetrics,
    /// Which worker this is (0-based), for its readiness.
    worker: usize,
    /// Where metrics are served, for the ready line.
    metrics_url: Option<&'a str>,
}

/// One consumer, kept consuming across lost connections.
///
/// A first connection that fails is an error (exit 3): the settings are
/// probably wrong. Once the server has served, a lost connection is retried
/// with capped backoff until it comes back or the server is stopped.
fn serve(
    settings: &Settings,
    cache: &SharedCache,
    metrics: &ServerMetrics,
    worker: usize,
    metrics_url: Option<&str>,
    shutdown: &Receiver<()>,
    on_ready: &dyn Fn(),
) -> Result<()> {
    let shared = Shared {
        settings,
        cache,
        metrics,
        worker,
        metrics_url,
    };
    let policy = Policy::UntilStopped(shutdown);
    let ended = lifecycle::run_sessions(&settings.connection, policy, &mut |session| {
        session.report_blocks_to(&settings.blocked);
        let _on_node = metrics.session_started(session.number, session.url);
        let result = consume(&shared, session, shutdown, on_ready);
        if let Some(lasted) = session.block_in_force() {
            // The session ends blocked (cut): it no longer holds readiness.
            metrics.set_blocked(worker, false);
            metrics.add_blocked_seconds(lasted.as_secs_f64());
        }
        // A failed session is followed by a reconnection (or by the end,
        // which sets Stopping below).
        let next = if result.is_ok() {
            State::Stopping
        } else {
            State::Reconnecting
        };
        metrics.set_state(worker, next);
        result
    });
    metrics.set_state(worker, State::Stopping);
    match ended? {
        Ended::Done(()) => info!(target: "startup", "fib-server stopped"),
        Ended::Stopped => info!(target: "startup", "fib-server stopped while connecting"),
    }
    Ok(())
}

/// Bounds the rest of a session when dropped.
struct BoundedEnd<'s, 'a>(&'s Session<'a>);

impl Drop for BoundedEnd<'_, '_> {
    fn drop(&mut self) {
        self.0.close_within(lifecycle::CLOSE_WAIT);
    }
}

/// Declares the request queue, its exchange and binding, and a quorum
/// queue's dead-letter exchange and queue; returns the queue and what kind
/// it is, for the ready line. On the first session, what did not exist
/// before is deleted again if the declaration fails: a failed start leaves
/// nothing behind.
/// Declares the topology; a start that fails removes what it created, and
/// only that: what it found missing beforehand and then itself declared
/// (a refused declaration created nothing), and of that only what nobody
/// uses, since another server may have declared the same names meanwhile.
fn declare<'c>(session: &Session<'c>, topology: &Topology) -> Result<(Queue<'c>, String)> {
    let missing = if session.number == 0 {
        topology::missing(&|| session.open_channel(), &topology.server_objects())?
    } else {
        Vec::new()
    };
    let mut declared = Vec::new();
    let result = declare_all(session.channel, topology, &mut declared);
    let created: Vec<Object> = declared
        .into_iter()
        .filter(|object| missing.contains(object))
        .collect();
    if result.is_err() && !created.is_empty() {
        match topology::delete_unused(&|| session.open_channel(), &created) {
            Ok(removals) => {
                for removal in removals {
                    match removal {
                        Removal::Deleted(object) => {
                            info!("removed {object}, which this failed start had declared")
                        }
                        Removal::Gone(object) => debug!("{object} was already gone"),
                        Removal::Kept(object, why) => info!(
                            "kept {object}, which this failed start had declared too: \
                             another user has it ({why})"
                        ),
                    }
                }
            }
            Err(error) => {
                let names: Vec<String> = created.iter().map(ToString::to_string).collect();
                warn!(
                    "the failed start may leave {} behind: {error:#}",
                    names.join(", ")
                );
            }
        }
    }
    result
}

fn declare_all<'c>(
    channel: &'c Channel,
    topology: &Topology,
    declared: &mut Vec<Object>,
) -> Result<(Queue<'c>, String)> {
    // The request queue first: if it exists with other arguments, the
    // broker refuses it before anything has been declared. Its dead-letter
    // exchange may be declared after it: until then the broker drops what
    // it would dead-letter, and a new queue has nothing to dead-letter yet.
    let queue =
        topology::declare_request_queue_noting(channel, topology, declared).with_context(|| {
            format!(
                "cannot declare queue {:?} and exchange {:?}",
                topology.queue, topology.exchange
            )
        })?;
    let queue_kind = match topology.queue_type {
        QueueType::Classic => "classic queue".to_string(),
        QueueType::Quorum => {
            let dead = topology::declare_dead_letters_noting(channel, topology, declared)
                .context("cannot declare the dead-letter exchange and queue")?;
            format!(
                "quorum queue, delivery limit {}, then to queue {:?} ({dead} there now)",
                topology.delivery_limit,
                topology.dead_letter_queue()
            )
        }
    };
    Ok((queue, queue_kind))
}

/// One session's worth of serving: declare, consume, answer until told to
/// stop (Ok) or until the session fails (Err, which the lifecycle sorts into
/// reconnect or give up).
fn consume(
    shared: &Shared<'_>,
    session: &Session<'_>,
    shutdown: &Receiver<()>,
    on_ready: &dyn Fn(),
) -> Result<()> {
    let Shared {
        settings,
        cache,
        metrics,
        worker,
        metrics_url,
    } = *shared;
    let channel = session.channel;
    let topology = &settings.topology;
    let (queue, queue_kind) = declare(session, topology)?;
    channel.qos(0, settings.prefetch, false)?;
    let confirms = if settings.confirm_replies {
        Some(replier::enable_confirms(channel)?)
    } else {
        None
    };
    let mut replier = Replier::new(channel, confirms, replier::CONFIRM_TIMEOUT)
        .with_metrics(metrics.reply.clone());
    if topology.queue_type == QueueType::Quorum {
        replier = replier.with_dead_letter_queue(topology.dead_letter_queue());
    }
    let consumer = queue.consume(ConsumerOptions::default())?;
    // Declared after the consumer, so dropped before it: however this
    // session ends, the consumer's drop (a cancel that waits for the broker)
    // is bounded, and at once cut short if the connection is blocked.
    let _bounded = BoundedEnd(session);
    // Ready before the line says so: a probe sent on seeing it gets 200.
    metrics.set_state(worker, State::Ready);
    info!(
        target: "startup",
        "fib-server ready: consuming {:?} ({queue_kind}) bound to {:?} with {:?} at {} (prefetch {}, max n {}, reply confirms {}, cache {}){}",
        settings.topology.queue,
        settings.topology.exchange,
        settings.topology.binding_key,
        session.url,
        settings.prefetch,
        settings.max_n,
        if settings.confirm_replies { "on" } else { "off" },
        match settings.cache_bytes {
            0 => "off".to_string(),
            bytes if bytes % (1 << 20) == 0 => format!("{} MB", bytes >> 20),
            bytes => format!("{bytes} bytes"),
        },
        match metrics_url {
            Some(url) => format!("; metrics at {url}/metrics"),
            None => String::new(),
        },
    );
    session.ready();
    on_ready();
    let confirms = replier.confirms();
    let prefetch = usize::from(settings.prefetch);
    // When the last block lifted: a confirm is overdue only CONFIRM_TIMEOUT
    // after both its publish and that (blocked time does not count).
    let mut unblocked_at: Option<Instant> = None;
    loop {
        let deadline = replier
            .confirm_deadline()
            .map(|deadline| match unblocked_at {
                Some(at) => deadline.max(at + replier::CONFIRM_TIMEOUT),
                None => deadline,
            });
        let overdue = match deadline {
            Some(deadline) if !session.is_blocked() => crossbeam_channel::at(deadline),
            _ => crossbeam_channel::never(),
        };
        // A refused reply is published again when its backoff ends; the
        // loop serves everything else meanwhile.
        let retry = match replier.retry_deadline() {
            Some(due) => crossbeam_channel::at(due),
            None => crossbeam_channel::never(),
        };
        // Confirms are waited for only when every prefetch slot is taken or
        // the oldest has waited ACK_DELAY; otherwise the next request comes
        // first and its answer settles what was confirmed meanwhile.
        let oldest = replier.oldest_unsettled();
        let slots_full = replier.unsettled() >= prefetch;
        let ack_due = oldest.map(|at| at + replier::ACK_DELAY);
        let (wanted, ack_timer) = match ack_due {
            Some(due) if !slots_full && Instant::now() < due => {
                (crossbeam_channel::never(), crossbeam_channel::at(due))
            }
            Some(_) => (confirms.clone(), crossbeam_channel::never()),
            None => (crossbeam_channel::never(), crossbeam_channel::never()),
        };
        select! {
            recv(consumer.receiver()) -> message => match message {
                Ok(ConsumerMessage::Delivery(delivery)) => {
                    handler::respond(&mut replier, delivery, settings, cache, metrics)?;
                    replier.settle_arrived()?;
                }
                Ok(ended) => return Err(common::consumer::ended(&ended)),
                Err(_) => return Err(common::consumer::io_thread_gone()),
            },
            recv(wanted) -> confirm => match confirm {
                Ok(confirm) => replier.on_confirm(confirm)?,
                Err(_) => return Err(common::consumer::io_thread_gone()),
            },
            recv(ack_timer) -> _ => {}
            recv(retry) -> _ => replier.retry_due()?,
            recv(overdue) -> _ => return Err(replier.overdue()),
            recv(session.blocked) -> notification => match notification {
                Ok(notification) => match session.note(notification) {
                    Block::Blocked(_) => metrics.set_blocked(worker, true),
                    Block::Unblocked(lasted) => {
                        unblocked_at = Some(Instant::now());
                        metrics.set_blocked(worker, false);
                        metrics.add_blocked_seconds(lasted.as_secs_f64());
                    }
                    Block::Unchanged => {}
                },
                Err(_) => return Err(common::consumer::io_thread_gone()),
            },
            recv(shutdown) -> _ => {
                metrics.set_state(worker, State::Stopping);
                debug!("shutting down: cancelling the consumer, settling confirms");
                // A blocked broker answers neither the cancel nor the
                // confirms: bound the stop (cut at once while blocked).
                let blocked = session.is_blocked();
                session.close_within(lifecycle::CLOSE_WAIT);
                let settled = common::consumer::cancel(consumer).and_then(|()| replier.settle());
                if let Err(error) = settled {
                    let why = if blocked {
                        "the broker blocks the connection (a resource alarm)".to_string()
                    } else {
                        format!("{error:#}")
                    };
                    warn!(
                        "stopping without the broker's last answers: {why}; {} request(s) not \
                         acked go back to the queue",
                        replier.unsettled()
                    );
                }
                if replier.refused_replies() > 0 {
                    info!(
                        "this session gave up {} requests whose replies the broker refused",
                        replier.refused_replies()
                    );
                }
                return Ok(());
            }
        }
    }
}
