//! The AMQP side of a call: publish a request, receive replies.
//!
//! One reply queue serves the whole run; replies are told apart by
//! correlation id. Waits block on the reply consumer, on returned (unroutable)
//! requests and on a deadline at once, so an idle wait costs no CPU.

use amiquip::Return;
use amiquip::{Channel, Consumer, ConsumerMessage, ConsumerOptions, Publish};
use anyhow::{Context, Result};
use common::failure::Failure;
use common::lifecycle::{Block, Session};
use common::protocol::{self, Reply};
use common::topology;
use crossbeam_channel::{select, Receiver};
use std::cell::Cell;
use std::time::Instant;
use uuid::Uuid;

/// Where replies come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplyMode {
    /// A server-named, exclusive, auto-delete queue per run.
    Queue,
    /// RabbitMQ's direct reply-to pseudo-queue `amq.rabbitmq.reply-to`: no
    /// queue at all; replies go straight to this channel's consumer.
    Direct,
}

/// The broker's pseudo-queue for direct reply-to.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// The routing key of a probe: no queue has this name, so the broker,
/// unless it blocks the connection, returns the probe at once.
pub const PROBE_ROUTING_KEY: &str = "fib-client.probe: no such queue";

/// Where this run's replies arrive. A reply queue is server-named, exclusive
/// and auto-delete: the broker removes it when the client's connection ends,
/// however it ends.
pub struct ReplyQueue<'a> {
    name: String,
    consumer: Consumer<'a>,
}

impl<'a> ReplyQueue<'a> {
    pub fn open(channel: &'a Channel, mode: ReplyMode) -> Result<ReplyQueue<'a>> {
        // No acks: the queue dies with us, so an ack would protect nothing
        // (and direct reply-to refuses them).
        let options = ConsumerOptions {
            no_ack: true,
            exclusive: mode == ReplyMode::Queue,
            ..ConsumerOptions::default()
        };
        if mode == ReplyMode::Direct {
            // Must consume before publishing, on the channel that publishes.
            let consumer = channel
                .basic_consume(DIRECT_REPLY_TO, options)
                .context("cannot consume from amq.rabbitmq.reply-to")?;
            return Ok(ReplyQueue {
                name: DIRECT_REPLY_TO.to_string(),
                consumer,
            });
        }
        let queue =
            topology::declare_reply_queue(channel).context("cannot declare the reply queue")?;
        let consumer = queue.consume(options)?;
        Ok(ReplyQueue {
            name: queue.name().to_string(),
            consumer,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops consuming; the queue itself goes when the connection closes.
    pub fn close(self) -> Result<()> {
        common::consumer::cancel(self.consumer)
    }
}

/// Where requests go and how replies come back, on one channel.
/// `'a`: the session's channel and consumer; `'s`: the session's own.
pub struct RpcSession<'a, 's> {
    session: &'a Session<'s>,
    channel: &'a Channel,
    exchange: String,
    routing_key: String,
    replies: ReplyQueue<'a>,
    returns: Receiver<Return>,
    /// Closed (or sent to) on Ctrl-C; seen once per session.
    interrupt: Option<Receiver<()>>,
    interrupt_seen: Cell<bool>,
}

/// What arrived while waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Reply {
        correlation_id: Option<String>,
        reply: Reply,
    },
    /// The deadline passed first.
    TimedOut,
    /// The user asked to stop (Ctrl-C): send nothing more.
    Interrupted,
    /// The broker blocked the connection (a resource alarm), for this
    /// reason: it reads nothing more until it unblocks it.
    Blocked(String),
    /// The broker unblocked the connection.
    Unblocked,
    /// The broker returned a probe: it reads the connection, no alarm
    /// blocks it.
    ProbeAnswered,
}

impl<'a, 's> RpcSession<'a, 's> {
    pub fn open(
        session: &'a Session<'s>,
        exchange: &str,
        routing_key: &str,
        reply_mode: ReplyMode,
    ) -> Result<RpcSession<'a, 's>> {
        let channel = session.channel;
        topology::declare_exchange(channel, exchange)
            .with_context(|| format!("cannot declare exchange {exchange:?}"))?;
        let returns = channel.listen_for_returns()?;
        let replies = ReplyQueue::open(channel, reply_mode)?;
        Ok(RpcSession {
            session,
            channel,
            exchange: exchange.to_string(),
            routing_key: routing_key.to_string(),
            replies,
            returns,
            interrupt: None,
            interrupt_seen: Cell::new(false),
        })
    }

    /// Makes `next_event` return `Event::Interrupted` (once) when `interrupt`
    /// receives a message or is closed.
    pub fn with_interrupt(mut self, interrupt: Option<Receiver<()>>) -> RpcSession<'a, 's> {
        self.interrupt = interrupt;
        self
    }

    pub fn close(self) -> Result<()> {
        self.replies.close()
    }

    pub fn reply_queue(&self) -> &str {
        self.replies.name()
    }
}

/// What a run needs from a session. `RpcSession` is the real one; the seam
/// lets `measure::Run`'s state machine be tested without a broker.
pub trait RpcTransport {
    /// Publishes a request for F(n) and returns its fresh correlation id.
    fn send(&self, n: u64) -> Result<String>;
    /// Blocks until a reply arrives or `deadline` passes.
    fn next_event(&self, deadline: Instant) -> Result<Event>;
    /// Publishes a probe that routes nowhere, to learn whether the broker
    /// blocks the connection: it answers with `Event::ProbeAnswered` if not,
    /// else with `Event::Blocked` (a broker notifies a block only to a
    /// connection that publishes). False: no probe was sent (a transport
    /// without them), so nothing will answer.
    fn probe(&self) -> Result<bool> {
        Ok(false)
    }
    /// The clock the run is timed with: the real one, except in tests that
    /// simulate time.
    fn now(&self) -> Instant {
        Instant::now()
    }
}

impl RpcTransport for RpcSession<'_, '_> {
    /// `mandatory` makes the broker return the request if no queue is bound.
    fn send(&self, n: u64) -> Result<String> {
        let correlation_id = Uuid::new_v4().to_string();
        let properties = protocol::request_properties(&correlation_id, self.replies.name());
        let body = protocol::request_body(n);
        self.channel.basic_publish(
            self.exchange.as_str(),
            Publish {
                body: body.as_bytes(),
                routing_key: self.routing_key.clone(),
                mandatory: true,
                immediate: false,
                properties,
            },
        )?;
        Ok(correlation_id)
    }

    /// Mandatory, to the default exchange, with a routing key no queue has:
    /// the broker returns it at once unless it blocks the connection.
    fn probe(&self) -> Result<bool> {
        self.channel.basic_publish(
            "",
            Publish {
                body: b"",
                routing_key: PROBE_ROUTING_KEY.to_string(),
                mandatory: true,
                immediate: false,
                properties: Default::default(),
            },
        )?;
        Ok(true)
    }

    /// A returned request ends the run: nothing would ever answer it.
    fn next_event(&self, deadline: Instant) -> Result<Event> {
        loop {
            match self.next_event_or_repeat(deadline)? {
                Some(event) => return Ok(event),
                // A repeated blocked notification: nothing happened.
                None => continue,
            }
        }
    }
}

impl RpcSession<'_, '_> {
    fn next_event_or_repeat(&self, deadline: Instant) -> Result<Option<Event>> {
        let never = crossbeam_channel::never();
        let interrupt = match &self.interrupt {
            Some(interrupt) if !self.interrupt_seen.get() => interrupt,
            _ => &never,
        };
        let event = select! {
            recv(interrupt) -> _ => {
                self.interrupt_seen.set(true);
                Ok(Event::Interrupted)
            },
            recv(self.replies.consumer.receiver()) -> message => match message {
                Ok(ConsumerMessage::Delivery(delivery)) => Ok(Event::Reply {
                    correlation_id: delivery.properties.correlation_id().clone(),
                    reply: Reply::from_message(&delivery.body, &delivery.properties),
                }),
                Ok(ended) => Err(common::consumer::ended(&ended)),
                Err(_) => Err(common::consumer::io_thread_gone()),
            },
            recv(self.returns) -> returned => match returned {
                Ok(returned) if returned.routing_key == PROBE_ROUTING_KEY => {
                    // amiquip hands frames on in the order they came, and a
                    // broker blocks a connection (and says so) on reading
                    // the publish, before it routes it: a notification
                    // that came before this return is waiting already.
                    match self.session.blocked.try_recv() {
                        Ok(notification) => match self.session.note(notification) {
                            Block::Blocked(reason) => Ok(Event::Blocked(reason)),
                            Block::Unblocked(_) => Ok(Event::Unblocked),
                            Block::Unchanged => Ok(Event::ProbeAnswered),
                        },
                        Err(_) => Ok(Event::ProbeAnswered),
                    }
                }
                Ok(returned) => Err(Failure::Unroutable(format!(
                    "the broker returned the request ({} {}): no queue is bound to exchange \
                     {:?} for routing key {:?}; fib-server is probably not running",
                    returned.reply_code, returned.reply_text, self.exchange, self.routing_key
                ))
                .into()),
                // The channel's I/O side is gone: a lost connection, not a return.
                Err(_) => Err(common::consumer::io_thread_gone()),
            },
            recv(self.session.blocked) -> notification => match notification {
                Ok(notification) => match self.session.note(notification) {
                    Block::Blocked(reason) => Ok(Event::Blocked(reason)),
                    Block::Unblocked(_) => Ok(Event::Unblocked),
                    Block::Unchanged => return Ok(None),
                },
                Err(_) => Err(common::consumer::io_thread_gone()),
            },
            recv(crossbeam_channel::at(deadline)) -> _ => Ok(Event::TimedOut),
        };
        event.map(Some)
    }
}
