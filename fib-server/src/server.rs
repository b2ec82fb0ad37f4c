//! The consume loop: declare, consume with manual acks, answer until told to
//! stop; when the connection is lost, reconnect with backoff and go on.

use crate::handler;
use crate::replier::{self, Replier};
use amiquip::{ConsumerMessage, ConsumerOptions};
use anyhow::{Context, Result};
use common::backoff::Backoff;
use common::failure;
use common::topology::{self, Topology};
use common::ConnectionSettings;
use crossbeam_channel::{select, Receiver, RecvTimeoutError};
use log::{debug, info, warn};

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
}

/// How a session with the broker ended.
enum SessionEnd {
    /// Told to stop.
    Stopped,
    /// The connection failed after the server had been ready.
    Lost(anyhow::Error),
}

/// Serves requests until a message arrives on `shutdown` or its sender is
/// dropped. `on_ready` is called each time a consumer is declared, bound and
/// consuming. With `workers` > 1, each worker consumes on its own connection
/// and thread; if one fails for good, the others are stopped and its error
/// returned.
pub fn run(
    settings: &Settings,
    shutdown: &Receiver<()>,
    on_ready: &(dyn Fn() + Sync),
) -> Result<()> {
    if settings.workers <= 1 {
        return serve(settings, shutdown, on_ready);
    }
    // Dropping `stop_all` wakes every worker at once.
    let (stop_all, stop) = crossbeam_channel::bounded::<()>(0);
    let (failed_tx, failed) = crossbeam_channel::unbounded::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            select! {
                recv(shutdown) -> _ => {},
                recv(failed) -> _ => {},
            }
            drop(stop_all);
        });
        let workers: Vec<_> = (0..settings.workers)
            .map(|_| {
                let (stop, failed_tx) = (stop.clone(), failed_tx.clone());
                scope.spawn(move || {
                    let result = serve(settings, &stop, on_ready);
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

/// One consumer: sessions, reconnecting after a lost connection.
///
/// A first connection that fails is an error (exit 3): the settings are
/// probably wrong. Once the server has served, a lost connection is retried
/// with capped backoff until it comes back or the server is stopped.
fn serve(settings: &Settings, shutdown: &Receiver<()>, on_ready: &dyn Fn()) -> Result<()> {
    let mut backoff = Backoff::default();
    let mut served = false;
    loop {
        let error = match session(settings, shutdown, &mut || {
            served = true;
            backoff.reset();
            on_ready();
        }) {
            Ok(SessionEnd::Stopped) => return Ok(()),
            Ok(SessionEnd::Lost(error)) => error,
            Err(error) if served && failure::is_transient(&error) => error,
            Err(error) => return Err(error),
        };
        let delay = backoff.next_delay();
        warn!("connection lost: {error:#}; reconnecting in {delay:?}");
        // The wait for the next attempt is also a wait for a stop request.
        if !matches!(shutdown.recv_timeout(delay), Err(RecvTimeoutError::Timeout)) {
            info!(target: "startup", "fib-server stopped while reconnecting");
            return Ok(());
        }
    }
}

/// One connection's worth of serving.
fn session(
    settings: &Settings,
    shutdown: &Receiver<()>,
    on_ready: &mut dyn FnMut(),
) -> Result<SessionEnd> {
    let url = &settings.connection.url;
    let mut connection = common::open_connection(&settings.connection)?;
    let channel = connection
        .open_channel(None)
        .context("cannot open a channel")?;
    let queue =
        topology::declare_request_queue(&channel, &settings.topology).with_context(|| {
            format!(
                "cannot declare exchange {:?} and queue {:?}",
                settings.topology.exchange, settings.topology.queue
            )
        })?;
    channel.qos(0, settings.prefetch, false)?;
    let mut replier = Replier::new(&channel, settings.confirm_replies)?;
    let consumer = queue.consume(ConsumerOptions::default())?;
    info!(
        target: "startup",
        "fib-server ready: consuming {:?} bound to {:?} with {:?} at {url} (prefetch {}, max n {}, reply confirms {})",
        settings.topology.queue,
        settings.topology.exchange,
        settings.topology.binding_key,
        settings.prefetch,
        settings.max_n,
        if settings.confirm_replies { "on" } else { "off" },
    );
    on_ready();
    let confirms = replier.confirms();
    let lost = loop {
        let overdue = match replier.confirm_deadline() {
            Some(deadline) => crossbeam_channel::at(deadline),
            None => crossbeam_channel::never(),
        };
        select! {
            recv(consumer.receiver()) -> message => match message {
                Ok(ConsumerMessage::Delivery(delivery)) => {
                    if let Err(error) = handler::respond(&mut replier, delivery, settings.max_n) {
                        break error;
                    }
                }
                Ok(ended) => break common::consumer::ended(&ended),
                Err(_) => break common::consumer::io_thread_gone(),
            },
            recv(confirms) -> confirm => match confirm {
                Ok(confirm) => {
                    if let Err(error) = replier.on_confirm(confirm) {
                        break error;
                    }
                }
                Err(_) => break common::consumer::io_thread_gone(),
            },
            recv(overdue) -> _ => break replier::overdue(),
            recv(shutdown) -> _ => {
                debug!("shutting down: cancelling the consumer, settling confirms");
                common::consumer::cancel(consumer)?;
                replier.settle()?;
                channel.close()?;
                connection.close()?;
                info!(target: "startup", "fib-server stopped");
                return Ok(SessionEnd::Stopped);
            }
        }
    };
    if failure::is_transient(&lost) {
        Ok(SessionEnd::Lost(lost))
    } else {
        Err(lost)
    }
}
