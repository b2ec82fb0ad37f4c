//! The exchange, queue and binding both programs declare. Declaring them with
//! the exact arguments of the pika programs lets either side start first
//! against the other's declarations without PRECONDITION_FAILED.

use crate::failure::Failure;
use crate::protocol::{DEFAULT_BINDING_KEY, DEFAULT_EXCHANGE, DEFAULT_QUEUE};
use amiquip::{AmqpValue, Channel, Exchange, ExchangeDeclareOptions, ExchangeType, FieldTable};
use amiquip::{Queue, QueueDeclareOptions};

/// A quorum queue gives up on a request after this many returns unless
/// `--delivery-limit` says otherwise.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 5;

/// What kind of queue holds the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueType {
    /// One node's queue, as the pika programs declare it.
    Classic,
    /// Replicated over a cluster's nodes (Raft); a request that keeps coming
    /// back is dead-lettered after the delivery limit.
    Quorum,
}

impl QueueType {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

/// Names of the request path: exchange -> binding key -> request queue, and
/// what kind of queue that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub exchange: String,
    pub queue: String,
    pub binding_key: String,
    pub queue_type: QueueType,
    /// Quorum only: returns of one request before it is dead-lettered.
    pub delivery_limit: u32,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            exchange: DEFAULT_EXCHANGE.to_string(),
            queue: DEFAULT_QUEUE.to_string(),
            binding_key: DEFAULT_BINDING_KEY.to_string(),
            queue_type: QueueType::Classic,
            delivery_limit: DEFAULT_DELIVERY_LIMIT,
        }
    }
}

impl Topology {
    /// Where a quorum queue's given-up requests go: this exchange...
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.queue)
    }

    /// ...and this queue bound to it.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }

    /// The request queue's declaration arguments: none for a classic queue
    /// (exactly what pika declares), the type, delivery limit and
    /// dead-letter exchange for a quorum queue.
    fn queue_arguments(&self) -> FieldTable {
        let mut arguments = FieldTable::new();
        if self.queue_type == QueueType::Quorum {
            arguments.insert("x-queue-type".into(), quorum());
            let limit = i64::from(self.delivery_limit);
            arguments.insert("x-delivery-limit".into(), AmqpValue::LongLongInt(limit));
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AmqpValue::LongString(self.dead_letter_exchange()),
            );
        }
        arguments
    }
}

fn quorum() -> AmqpValue {
    AmqpValue::LongString(QueueType::Quorum.as_str().to_string())
}

/// The request exchange: topic, durable, as pika's
/// `exchange_declare(exchange_type='topic', durable=True)`.
pub fn declare_exchange<'a>(channel: &'a Channel, name: &str) -> amiquip::Result<Exchange<'a>> {
    channel.exchange_declare(
        ExchangeType::Topic,
        name,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
    )
}

/// The request queue, durable and shared, bound to the exchange (a quorum
/// queue's dead letters are declared by [`declare_dead_letters`]). Returns the queue
/// as declared (with its message count). A queue that exists with other
/// arguments (another type, above all) is a usage error naming the fix.
pub fn declare_request_queue<'a>(
    channel: &'a Channel,
    topology: &Topology,
) -> anyhow::Result<Queue<'a>> {
    let exchange = declare_exchange(channel, &topology.exchange)?;
    let queue = channel
        .queue_declare(
            topology.queue.as_str(),
            QueueDeclareOptions {
                durable: true,
                exclusive: false,
                auto_delete: false,
                arguments: topology.queue_arguments(),
            },
        )
        .map_err(|error| inequivalent(error, topology))?;
    queue.bind(&exchange, topology.binding_key.as_str(), FieldTable::new())?;
    Ok(queue)
}

/// The dead-letter exchange (fanout, durable) and its queue (quorum, so the
/// given-up requests survive a node too). Returns the queue's depth.
pub fn declare_dead_letters(channel: &Channel, topology: &Topology) -> anyhow::Result<u32> {
    let exchange = channel.exchange_declare(
        ExchangeType::Fanout,
        topology.dead_letter_exchange(),
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
    )?;
    let mut arguments = FieldTable::new();
    arguments.insert("x-queue-type".into(), quorum());
    let queue = channel.queue_declare(
        topology.dead_letter_queue(),
        QueueDeclareOptions {
            durable: true,
            arguments,
            ..QueueDeclareOptions::default()
        },
    )?;
    queue.bind(&exchange, "", FieldTable::new())?;
    Ok(queue.declared_message_count().unwrap_or(0))
}

/// PRECONDITION_FAILED on the request queue: it exists with other arguments.
/// Its type cannot change in place, so reconnecting would never help.
fn inequivalent(error: amiquip::Error, topology: &Topology) -> anyhow::Error {
    let amiquip::Error::ServerClosedChannel {
        code: 406, message, ..
    } = &error
    else {
        return error.into();
    };
    let queue = &topology.queue;
    let asked = topology.queue_type.as_str();
    let other = match topology.queue_type {
        QueueType::Classic => QueueType::Quorum,
        QueueType::Quorum => QueueType::Classic,
    };
    Failure::Usage(format!(
        "queue {queue:?} already exists with other arguments than this server declares \
         (--queue-type {asked}); the broker says: {message}. A queue's type cannot change: \
         delete the queue (rabbitmqctl delete_queue {queue}; the requests in it are lost) \
         or start the server with the type it has (probably --queue-type {})",
        other.as_str()
    ))
    .into()
}

/// A reply queue: server-named, exclusive and auto-delete, so the broker
/// removes it when the connection that declared it ends, however it ends
/// (the pika client's durable reply queue outlives every run).
pub fn declare_reply_queue(channel: &Channel) -> amiquip::Result<Queue<'_>> {
    channel.queue_declare(
        "",
        QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
    )
}
