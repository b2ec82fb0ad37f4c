//! The test's own AMQP connection, for what the programs under test must
//! face: raw request bodies, rogue replies, queue depths.

use amiquip::{
    AmqpProperties, Channel, Connection, ConsumerMessage, ConsumerOptions, Publish,
    QueueDeleteOptions,
};
use anyhow::{anyhow, Context, Result};
use common::protocol::Reply;
use common::topology::{self, Topology};
use std::time::Duration;

pub struct Peer {
    connection: Option<Connection>,
    channel: Channel,
}

impl Peer {
    /// A peer on the tests' broker (`AMQP_URL` or the local default).
    pub fn connect() -> Result<Peer> {
        Peer::connect_to(&crate::connection_settings())
    }

    /// A peer on the first of these addresses that answers (a cluster node).
    pub fn connect_to(settings: &common::ConnectionSettings) -> Result<Peer> {
        let mut connection = common::open_connection(settings)?;
        let channel = connection.open_channel(None)?;
        Ok(Peer {
            connection: Some(connection),
            channel,
        })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Declares the request exchange and queue as fib-server does.
    pub fn declare(&self, topology: &Topology) -> Result<()> {
        topology::declare_request_queue(&self.channel, topology)?;
        Ok(())
    }

    pub fn declare_exchange(&self, name: &str) -> Result<()> {
        topology::declare_exchange(&self.channel, name)?;
        Ok(())
    }

    /// Messages ready in a queue, or None if it does not exist. Uses its own
    /// channel, since a passive declare of a missing queue closes the channel.
    pub fn queue_depth(&mut self, queue: &str) -> Result<Option<u32>> {
        let connection = self.connection.as_mut().context("peer is closed")?;
        let probe = connection.open_channel(None)?;
        match probe.queue_declare_passive(queue) {
            Ok(declared) => {
                let depth = declared.declared_message_count();
                probe.close()?;
                Ok(depth)
            }
            Err(amiquip::Error::ServerClosedChannel { code: 404, .. }) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }

    pub fn delete_queue(&self, queue: &str) -> Result<()> {
        self.channel
            .queue_delete(queue, QueueDeleteOptions::default())?;
        Ok(())
    }

    pub fn delete_exchange(&self, exchange: &str) -> Result<()> {
        self.channel.exchange_delete(exchange, false)?;
        Ok(())
    }

    pub fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: AmqpProperties,
    ) -> Result<()> {
        self.channel.basic_publish(
            exchange,
            Publish::with_properties(body, routing_key, properties),
        )?;
        Ok(())
    }

    /// A private reply queue for raw requests.
    pub fn reply_queue(&self) -> Result<ReplyInbox<'_>> {
        let queue = topology::declare_reply_queue(&self.channel)?;
        let consumer = queue.consume(ConsumerOptions {
            no_ack: true,
            ..ConsumerOptions::default()
        })?;
        Ok(ReplyInbox {
            name: queue.name().to_string(),
            consumer,
        })
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            let _ = connection.close();
        }
    }
}

/// Replies arriving for the test's raw requests.
pub struct ReplyInbox<'a> {
    pub name: String,
    consumer: amiquip::Consumer<'a>,
}

impl ReplyInbox<'_> {
    /// The next reply with its correlation id, waiting at most `timeout`.
    pub fn next(&self, timeout: Duration) -> Result<(Option<String>, Reply)> {
        match self.consumer.receiver().recv_timeout(timeout) {
            Ok(ConsumerMessage::Delivery(d)) => Ok((
                d.properties.correlation_id().clone(),
                Reply::from_message(&d.body, &d.properties),
            )),
            Ok(other) => Err(anyhow!("reply consumer ended: {other:?}")),
            Err(_) => Err(anyhow!("no reply within {timeout:?}")),
        }
    }
}
