//! The exchange, queue and binding both programs declare. Declaring them with
//! the exact arguments of the pika programs lets either side start first
//! against the other's declarations without PRECONDITION_FAILED.

use crate::protocol::{DEFAULT_BINDING_KEY, DEFAULT_EXCHANGE, DEFAULT_QUEUE};
use amiquip::{Channel, Exchange, ExchangeDeclareOptions, ExchangeType, FieldTable, Queue};
use amiquip::{QueueDeclareOptions, Result};

/// Names of the request path: exchange -> binding key -> request queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub exchange: String,
    pub queue: String,
    pub binding_key: String,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            exchange: DEFAULT_EXCHANGE.to_string(),
            queue: DEFAULT_QUEUE.to_string(),
            binding_key: DEFAULT_BINDING_KEY.to_string(),
        }
    }
}

/// The request exchange: topic, durable, as pika's
/// `exchange_declare(exchange_type='topic', durable=True)`.
pub fn declare_exchange<'a>(channel: &'a Channel, name: &str) -> Result<Exchange<'a>> {
    channel.exchange_declare(
        ExchangeType::Topic,
        name,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
    )
}

/// The request queue, durable and shared, bound to the exchange. Returns the
/// queue as declared (with its message count).
pub fn declare_request_queue<'a>(channel: &'a Channel, topology: &Topology) -> Result<Queue<'a>> {
    let exchange = declare_exchange(channel, &topology.exchange)?;
    let queue = channel.queue_declare(
        topology.queue.as_str(),
        QueueDeclareOptions {
            durable: true,
            exclusive: false,
            auto_delete: false,
            arguments: FieldTable::new(),
        },
    )?;
    queue.bind(&exchange, topology.binding_key.as_str(), FieldTable::new())?;
    Ok(queue)
}

/// A reply queue: server-named, exclusive and auto-delete, so the broker
/// removes it when the connection that declared it ends, however it ends
/// (the pika client's durable reply queue outlives every run).
pub fn declare_reply_queue(channel: &Channel) -> Result<Queue<'_>> {
    channel.queue_declare(
        "",
        QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
    )
}
