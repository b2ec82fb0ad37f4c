//! The consume loop: declare, consume with manual acks, answer until told to
//! stop or the broker goes away.

use crate::handler;
use amiquip::{ConsumerMessage, ConsumerOptions};
use anyhow::{Context, Result};
use common::failure::Failure;
use common::topology::{self, Topology};
use common::ConnectionSettings;
use crossbeam_channel::{select, Receiver};
use log::{debug, info};

/// Everything the server needs to know, parsed and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connection: ConnectionSettings,
    pub topology: Topology,
    pub prefetch: u16,
    pub max_n: u64,
}

/// Serves requests until a message arrives on `shutdown` (or it is dropped).
/// `on_ready` is called once the queue is declared, bound and consumed.
///
/// On shutdown the request in hand is finished and acked; any prefetched but
/// unacked requests go back to the queue when the channel closes.
pub fn run(settings: &Settings, shutdown: &Receiver<()>, on_ready: &dyn Fn()) -> Result<()> {
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
    let consumer = queue.consume(ConsumerOptions::default())?;
    info!(
        target: "startup",
        "fib-server ready: consuming {:?} bound to {:?} with {:?} at {url} (prefetch {}, max n {})",
        settings.topology.queue,
        settings.topology.exchange,
        settings.topology.binding_key,
        settings.prefetch,
        settings.max_n
    );
    on_ready();
    loop {
        select! {
            recv(consumer.receiver()) -> message => match message {
                Ok(ConsumerMessage::Delivery(delivery)) => {
                    handler::respond(&channel, delivery, settings.max_n)?;
                }
                Ok(ended) => {
                    return Err(Failure::Broker(format!("stopped consuming: {ended:?}")).into());
                }
                Err(_) => {
                    return Err(Failure::Broker("the connection's I/O thread ended".into()).into());
                }
            },
            recv(shutdown) -> _ => break,
        }
    }
    debug!("shutting down: cancelling the consumer");
    common::consumer::cancel(consumer)?;
    channel.close()?;
    connection.close()?;
    info!(target: "startup", "fib-server stopped");
    Ok(())
}
