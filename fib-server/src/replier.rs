//! Publishing replies and acking their requests, with publisher confirms.
//!
//! With confirms on, a request is acked only once the broker has confirmed
//! its reply. The confirm is not waited for in line: the request is parked
//! and acked when its confirm arrives, so with `--prefetch` > 1 the server
//! keeps computing while earlier replies are being confirmed. A request is
//! never acked before its reply is safe, so batching loses nothing.
//!
//! A reply the broker refuses (a nack: the reply queue is full and rejects
//! publishes, `x-max-length` with `x-overflow reject-publish`, or an
//! operator's max-length policy) is published again after a short backoff,
//! [`REPLY_ATTEMPTS`] times in all, without computing it again; meanwhile its
//! request stays unacked and the others are served. Then the request is
//! rejected without requeue (dead-lettered where its queue has a dead-letter
//! exchange), logged and counted: a refusing reply queue costs bounded work.
//!
//! The replier speaks to the broker only through [`ReplyChannel`], so its
//! state machine is tested below without one.

use crate::monitoring::ReplyMetrics;
use amiquip::{AmqpProperties, Channel, Confirm, ConfirmSmoother, Delivery, Publish};
use anyhow::Result;
use common::failure::Failure;
use common::protocol::printable;
use crossbeam_channel::Receiver;
use log::{debug, warn};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the broker may take to confirm a reply before we give up on the
/// connection (the request, unacked, is then redelivered).
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a reply's confirm may wait unread while a free prefetch slot
/// lets the next request in. Confirms are read, and their requests acked,
/// when the next request has been answered, when every slot is taken, or
/// after this delay, whichever comes first: at prefetch 2 a sequential
/// client's next request arrives well within it, and the confirm costs no
/// wake-up of its own.
pub const ACK_DELAY: Duration = Duration::from_millis(2);

/// Publishes of one reply the broker may refuse before its request is given
/// up: the first and three retries.
pub const REPLY_ATTEMPTS: u32 = 4;

/// The wait before the first retry of a refused reply; each further retry
/// waits five times longer (10 ms, 50 ms, 250 ms: 310 ms in all). Short,
/// because the request holds a prefetch slot meanwhile (with every slot held
/// by refused replies, other requests wait for these retries); long enough
/// for a reply queue that was full for a moment to drain.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_millis(10);

/// The log target of the line for each request given up because its reply
/// was refused: one line per rejection, for whoever counts them.
pub const REFUSED_REPLY_TARGET: &str = "fib_server::refused_reply";

/// The wait before publishing a refused reply for the `attempt`-th time
/// (2 for the first retry).
pub fn retry_delay(attempt: u32) -> Duration {
    FIRST_RETRY_DELAY * 5u32.saturating_pow(attempt.saturating_sub(2))
}

/// What the replier needs from a channel.
pub trait ReplyChannel {
    /// A request as delivered, to be acked or nacked once.
    type Request;
    /// Publishes a reply through the default exchange.
    fn publish(&self, reply: Publish<'_>) -> Result<()>;
    /// Acks `request`, and with `multiple` every earlier unacked request.
    fn ack(&self, request: Self::Request, multiple: bool) -> Result<()>;
    /// Refuses `request`; with `requeue` the broker delivers it again.
    fn nack(&self, request: Self::Request, requeue: bool) -> Result<()>;
}

impl ReplyChannel for Channel {
    type Request = Delivery;

    fn publish(&self, reply: Publish<'_>) -> Result<()> {
        Ok(self.basic_publish("", reply)?)
    }

    fn ack(&self, request: Delivery, multiple: bool) -> Result<()> {
        let acked = if multiple {
            request.ack_multiple(self)
        } else {
            request.ack(self)
        };
        Ok(acked?)
    }

    fn nack(&self, request: Delivery, requeue: bool) -> Result<()> {
        Ok(request.nack(self, requeue)?)
    }
}

/// Turns on publisher confirms on `channel` and returns where they arrive.
pub fn enable_confirms(channel: &Channel) -> Result<Receiver<Confirm>> {
    // Listen before enabling, as amiquip's example does, so no confirm can
    // slip past.
    let receiver = channel.listen_for_publisher_confirms()?;
    channel.enable_publisher_confirms()?;
    Ok(receiver)
}

/// A reply, owned, so that it can be published again if the broker refuses
/// it. The body is shared with the reply cache: keeping it copies nothing.
#[derive(Debug, Clone)]
pub struct Reply {
    pub body: Arc<[u8]>,
    /// The request's `reply_to`: the queue the reply is routed to.
    pub reply_to: String,
    pub properties: AmqpProperties,
}

impl Reply {
    fn publish(&self) -> Publish<'_> {
        Publish::with_properties(&self.body, self.reply_to.as_str(), self.properties.clone())
    }

    /// The correlation id, made safe for a log line.
    fn id(&self) -> String {
        printable(
            self.properties.correlation_id().as_deref().unwrap_or("-"),
            40,
        )
    }
}

pub struct Replier<'a, C: ReplyChannel> {
    channel: &'a C,
    confirms: Option<Confirms<C::Request>>,
    /// Where the request queue dead-letters what is rejected, if anywhere.
    dead_letter_queue: Option<String>,
    /// Requests given up because the broker refused every publish of their
    /// reply.
    refused: u64,
    metrics: ReplyMetrics,
}

/// A request whose reply is published and awaits its confirm, or was
/// refused and waits to be published again.
struct Pending<R> {
    request: R,
    reply: Reply,
    /// Publishes of the reply so far.
    attempts: u32,
    /// When the reply was last published, or when it is due again.
    at: Instant,
    /// When the request was delivered: its ack ends its delivery-to-ack time.
    received: Instant,
}

struct Confirms<R> {
    receiver: Receiver<Confirm>,
    smoother: ConfirmSmoother,
    /// How long a reply may wait for its confirm.
    timeout: Duration,
    /// Requests whose replies await a confirm, in publish order: the broker
    /// numbers publishes 1, 2, ... on the channel, and the smoother hands
    /// confirms back in that order.
    parked: VecDeque<Pending<R>>,
    /// Requests whose replies were refused, each due to be published again
    /// at its `at`.
    retries: Vec<Pending<R>>,
    /// Requests whose replies were refused at least once and that are not
    /// settled yet (in `retries` or again in `parked`). While there is one,
    /// delivery order and publish order differ, so a confirmed run cannot
    /// be acked with one `multiple` ack: it would ack the refused request.
    refused_unsettled: usize,
}

impl<'a, C: ReplyChannel> Replier<'a, C> {
    /// A replier that acks at once (`confirms` None) or after each reply's
    /// confirm arrives on `confirms`, waiting at most `confirm_timeout`.
    pub fn new(
        channel: &'a C,
        confirms: Option<Receiver<Confirm>>,
        confirm_timeout: Duration,
    ) -> Replier<'a, C> {
        let confirms = confirms.map(|receiver| Confirms {
            receiver,
            smoother: ConfirmSmoother::new(),
            timeout: confirm_timeout,
            parked: VecDeque::new(),
            retries: Vec::new(),
            refused_unsettled: 0,
        });
        Replier {
            channel,
            confirms,
            dead_letter_queue: None,
            refused: 0,
            metrics: ReplyMetrics::unregistered(),
        }
    }

    /// Counts what happens to replies in `metrics` (not counted by default).
    pub fn with_metrics(mut self, metrics: ReplyMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Names, in the log line of a given-up request, the queue where the
    /// request queue dead-letters it.
    pub fn with_dead_letter_queue(mut self, queue: String) -> Self {
        self.dead_letter_queue = Some(queue);
        self
    }

    /// Publishes the reply to `request` (delivered at `received`), then acks
    /// the request at once (confirms off) or once the reply is confirmed.
    pub fn reply(&mut self, request: C::Request, received: Instant, reply: Reply) -> Result<()> {
        if let Err(error) = self.channel.publish(reply.publish()) {
            // The request goes with the connection: the broker redelivers it.
            self.metrics.failed.inc();
            self.metrics.in_flight.dec();
            return Err(error);
        }
        match &mut self.confirms {
            Some(confirms) => confirms.parked.push_back(Pending {
                request,
                reply,
                attempts: 1,
                at: Instant::now(),
                received,
            }),
            None => ack_one(self.channel, &self.metrics, request, received)?,
        }
        Ok(())
    }

    /// Acks a request (delivered at `received`) that needs no reply.
    pub fn drop_request(&mut self, request: C::Request, received: Instant) -> Result<()> {
        ack_one(self.channel, &self.metrics, request, received)
    }

    /// The channel confirms arrive on; never ready when confirms are off.
    pub fn confirms(&self) -> Receiver<Confirm> {
        match &self.confirms {
            Some(confirms) => confirms.receiver.clone(),
            None => crossbeam_channel::never(),
        }
    }

    /// Replies published and not yet settled (confirmed and acked).
    pub fn unsettled(&self) -> usize {
        self.confirms.as_ref().map_or(0, |c| c.parked.len())
    }

    /// When the oldest unsettled reply was published, if there is one.
    pub fn oldest_unsettled(&self) -> Option<Instant> {
        let confirms = self.confirms.as_ref()?;
        confirms.parked.front().map(|pending| pending.at)
    }

    /// Requests given up so far because the broker refused their replies
    /// [`REPLY_ATTEMPTS`] times (each also logged with target
    /// [`REFUSED_REPLY_TARGET`]).
    pub fn refused_replies(&self) -> u64 {
        self.refused
    }

    /// Acks the requests whose confirms have already arrived, without
    /// waiting for any.
    pub fn settle_arrived(&mut self) -> Result<()> {
        let next = self
            .confirms
            .as_ref()
            .and_then(|c| c.receiver.try_recv().ok());
        match next {
            Some(confirm) => self.on_confirm(confirm),
            None => Ok(()),
        }
    }

    /// When the oldest unconfirmed reply is overdue, if there is one.
    pub fn confirm_deadline(&self) -> Option<Instant> {
        let confirms = self.confirms.as_ref()?;
        let pending = confirms.parked.front()?;
        Some(pending.at + confirms.timeout)
    }

    /// When the next refused reply is due to be published again, if any.
    pub fn retry_deadline(&self) -> Option<Instant> {
        let confirms = self.confirms.as_ref()?;
        confirms.retries.iter().map(|pending| pending.at).min()
    }

    /// Publishes again every refused reply that is due; they await their
    /// confirms like any other.
    pub fn retry_due(&mut self) -> Result<()> {
        let Some(confirms) = &mut self.confirms else {
            return Ok(());
        };
        let now = Instant::now();
        let mut k = 0;
        while k < confirms.retries.len() {
            if confirms.retries[k].at > now {
                k += 1;
                continue;
            }
            let mut pending = confirms.retries.swap_remove(k);
            if let Err(error) = self.channel.publish(pending.reply.publish()) {
                self.metrics.failed.inc();
                self.metrics.in_flight.dec();
                return Err(error);
            }
            pending.attempts += 1;
            pending.at = now;
            debug!(
                "request id={}: publishing its refused reply again (attempt {} of {REPLY_ATTEMPTS})",
                pending.reply.id(),
                pending.attempts
            );
            confirms.parked.push_back(pending);
        }
        Ok(())
    }

    /// Acks (or, for a refused reply, schedules its retry or gives up its
    /// request) the requests that `first` and any confirms already waiting
    /// behind it cover. A run of confirmed requests is acked with one
    /// `multiple` ack when requests are parked in delivery order, so every
    /// earlier tag is already settled; while a refused request is unsettled
    /// they are acked one by one.
    pub fn on_confirm(&mut self, first: Confirm) -> Result<()> {
        let Some(confirms) = &mut self.confirms else {
            return Ok(());
        };
        let metrics = &self.metrics;
        let mut last_confirmed: Option<C::Request> = None;
        let mut next = Some(first);
        while let Some(raw) = next.take().or_else(|| confirms.receiver.try_recv().ok()) {
            for confirm in confirms.smoother.process(raw) {
                let Some(mut pending) = confirms.parked.pop_front() else {
                    return Err(
                        Failure::Broker(format!("a confirm for no reply: {confirm:?}")).into(),
                    );
                };
                let refused_before = pending.attempts > 1;
                match confirm {
                    Confirm::Ack(_) if confirms.refused_unsettled == 0 => {
                        metrics.confirmed.inc();
                        // Acked below, with the run it ends, at once.
                        metrics.acked(pending.received);
                        last_confirmed = Some(pending.request);
                    }
                    Confirm::Ack(_) => {
                        metrics.confirmed.inc();
                        if refused_before {
                            confirms.refused_unsettled -= 1;
                        }
                        ack_one(self.channel, metrics, pending.request, pending.received)?;
                    }
                    Confirm::Nack(_) => {
                        metrics.nacked.inc();
                        if let Some(done) = last_confirmed.take() {
                            if let Err(error) = self.channel.ack(done, true) {
                                // The connection is gone, and `pending` (no
                                // longer parked) with it.
                                metrics.in_flight.dec();
                                return Err(error);
                            }
                        }
                        if pending.attempts < REPLY_ATTEMPTS {
                            if !refused_before {
                                confirms.refused_unsettled += 1;
                            }
                            let delay = retry_delay(pending.attempts + 1);
                            debug!(
                                "the broker refused the reply to request id={} (attempt {} of {REPLY_ATTEMPTS}); publishing it again in {delay:?}",
                                pending.reply.id(),
                                pending.attempts
                            );
                            pending.at = Instant::now() + delay;
                            confirms.retries.push(pending);
                        } else {
                            if refused_before {
                                confirms.refused_unsettled -= 1;
                            }
                            self.refused += 1;
                            metrics.given_up.inc();
                            metrics.in_flight.dec();
                            warn!(
                                target: REFUSED_REPLY_TARGET,
                                "gave up request id={}: the broker refused its reply {REPLY_ATTEMPTS} times (reply queue {:?} full or refusing publishes); rejected without requeue{}",
                                pending.reply.id(),
                                printable(&pending.reply.reply_to, 255),
                                match &self.dead_letter_queue {
                                    Some(queue) => format!(", to queue {queue:?}"),
                                    None => String::new(),
                                }
                            );
                            self.channel.nack(pending.request, false)?;
                        }
                    }
                }
            }
        }
        if let Some(done) = last_confirmed {
            self.channel.ack(done, true)?;
        }
        Ok(())
    }

    /// Waits until every published reply is confirmed and its request acked
    /// (or, refused, scheduled again). Requests waiting to publish a refused
    /// reply again stay unacked: the broker requeues them when the channel
    /// closes.
    pub fn settle(&mut self) -> Result<()> {
        let receiver = self.confirms();
        while let Some(deadline) = self.confirm_deadline() {
            let confirm = receiver
                .recv_deadline(deadline)
                .map_err(|_| self.overdue())?;
            self.on_confirm(confirm)?;
        }
        Ok(())
    }

    /// The error for a reply whose confirm did not come in time: the
    /// connection is given up, and its unacked requests are redelivered.
    pub fn overdue(&self) -> anyhow::Error {
        let timeout = self
            .confirms
            .as_ref()
            .map(|c| c.timeout)
            .unwrap_or_default();
        Failure::Disconnected(format!(
            "no publisher confirm for a reply within {timeout:?}"
        ))
        .into()
    }
}

/// Acks one request. It is in flight no longer whether or not the ack gets
/// through: if not, the connection is gone and the broker has it back.
/// Its delivery-to-ack time is observed once the ack is sent.
fn ack_one<C: ReplyChannel>(
    channel: &C,
    metrics: &ReplyMetrics,
    request: C::Request,
    received: Instant,
) -> Result<()> {
    metrics.in_flight.dec();
    channel.ack(request, false)?;
    metrics
        .delivery_to_ack
        .observe(received.elapsed().as_secs_f64());
    Ok(())
}

impl<C: ReplyChannel> Drop for Replier<'_, C> {
    /// Requests still held go with their session: the broker delivers them
    /// again, and they are in flight no longer here.
    fn drop(&mut self) {
        if let Some(confirms) = &self.confirms {
            let held = confirms.parked.len() + confirms.retries.len();
            self.metrics
                .in_flight
                .sub(i64::try_from(held).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amiquip::ConfirmPayload;
    use crossbeam_channel::Sender;
    use std::cell::RefCell;

    /// What the replier did to the channel, in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Call {
        Publish(String),
        Ack { tag: u64, multiple: bool },
        Nack { tag: u64, requeue: bool },
    }

    /// A channel that records calls; requests are their delivery tags.
    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<Call>>,
        /// Every ack fails, as on a lost connection.
        acks_fail: bool,
    }

    impl ReplyChannel for Recorder {
        type Request = u64;
        fn publish(&self, reply: Publish<'_>) -> Result<()> {
            let body = String::from_utf8_lossy(reply.body).into_owned();
            self.calls.borrow_mut().push(Call::Publish(body));
            Ok(())
        }
        fn ack(&self, tag: u64, multiple: bool) -> Result<()> {
            self.calls.borrow_mut().push(Call::Ack { tag, multiple });
            anyhow::ensure!(!self.acks_fail, "the connection is gone");
            Ok(())
        }
        fn nack(&self, tag: u64, requeue: bool) -> Result<()> {
            self.calls.borrow_mut().push(Call::Nack { tag, requeue });
            Ok(())
        }
    }

    fn reply(body: &str) -> Reply {
        Reply {
            body: body.as_bytes().into(),
            reply_to: "reply-queue".into(),
            properties: AmqpProperties::default().with_correlation_id(format!("id-{body}")),
        }
    }

    fn ack(delivery_tag: u64, multiple: bool) -> Confirm {
        Confirm::Ack(ConfirmPayload {
            delivery_tag,
            multiple,
        })
    }

    fn nack(delivery_tag: u64) -> Confirm {
        Confirm::Nack(ConfirmPayload {
            delivery_tag,
            multiple: false,
        })
    }

    fn with_confirms(channel: &Recorder) -> (Replier<'_, Recorder>, Sender<Confirm>) {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let replier = Replier::new(channel, Some(receiver), CONFIRM_TIMEOUT);
        (replier, sender)
    }

    fn publishes(n: usize) -> Vec<Call> {
        (1..=n).map(|i| Call::Publish(format!("r{i}"))).collect()
    }

    #[test]
    fn without_confirms_each_request_is_acked_right_after_its_reply() -> Result<()> {
        let channel = Recorder::default();
        let mut replier = Replier::new(&channel, None, CONFIRM_TIMEOUT);
        replier.reply(7, Instant::now(), reply("r1"))?;
        assert_eq!(replier.confirm_deadline(), None);
        assert_eq!(
            channel.calls.borrow().as_slice(),
            [
                Call::Publish("r1".into()),
                Call::Ack {
                    tag: 7,
                    multiple: false
                }
            ]
        );
        Ok(())
    }

    #[test]
    fn nothing_is_acked_before_its_confirm() -> Result<()> {
        let channel = Recorder::default();
        let (mut replier, _sender) = with_confirms(&channel);
        replier.reply(1, Instant::now(), reply("r1"))?;
        replier.reply(2, Instant::now(), reply("r2"))?;
        assert_eq!(channel.calls.borrow().as_slice(), publishes(2));
        assert!(replier.confirm_deadline().is_some());
        Ok(())
    }

    #[test]
    fn a_confirmed_run_is_acked_with_one_multiple_ack() -> Result<()> {
        let channel = Recorder::default();
        let (mut replier, sender) = with_confirms(&channel);
        for tag in 1..=3 {
            replier.reply(tag, Instant::now(), reply(&format!("r{tag}")))?;
        }
        // Three single confirms, already waiting: drained into one ack.
        sender.send(ack(2, false))?;
        sender.send(ack(3, false))?;
        replier.on_confirm(ack(1, false))?;
        let mut expected = publishes(3);
        expected.push(Call::Ack {
            tag: 3,
            multiple: true,
        });
        assert_eq!(channel.calls.borrow().as_slice(), expected);
        assert_eq!(replier.confirm_deadline(), None);
        Ok(())
    }

    #[test]
    fn a_multiple_confirm_settles_every_earlier_reply() -> Result<()> {
        let channel = Recorder::default();
        let (mut replier, _sender) = with_confirms(&channel);
        for tag in [10, 11, 12] {
            replier.reply(tag, Instant::now(), reply("r"))?;
        }
        replier.on_confirm(ack(2, true))?;
        assert_eq!(
            channel.calls.borrow().last(),
            Some(&Call::Ack {
                tag: 11,
                multiple: true
            })
        );
        // The third is still waiting for its own confirm.
        assert!(replier.confirm_deadline().is_some());
        replier.on_confirm(ack(3, false))?;
        assert_eq!(replier.confirm_deadline(), None);
        Ok(())
    }

    #[test]
    fn a_nacked_reply_waits_for_its_retry_and_the_run_before_it_is_acked() -> Result<()> {
        let channel = Recorder::default();
        let (mut replier, sender) = with_confirms(&channel);
        for tag in 1..=3 {
            replier.reply(tag, Instant::now(), reply(&format!("r{tag}")))?;
        }
        sender.send(nack(2))?;
        sender.send(ack(3, false))?;
        let before = Instant::now();
        replier.on_confirm(ack(1, false))?;
        let mut expected = publishes(3);
        expected.extend([
            Call::Ack {
                tag: 1,
                multiple: true,
            },
            // Request 2 is refused and unsettled: 3 is acked alone, not
            // with a multiple ack that would cover 2.
            Call::Ack {
                tag: 3,
                multiple: false,
            },
        ]);
        assert_eq!(channel.calls.borrow().as_slice(), expected);
        // Nothing is published again before its time, and the loop is told
        // when that is.
        let due = replier.retry_deadline().expect("a retry is scheduled");
        assert!(due >= before + FIRST_RETRY_DELAY, "{due:?}");
        replier.retry_due()?;
        assert_eq!(channel.calls.borrow().len(), expected.len());
        assert_eq!(replier.unsettled(), 0);
        Ok(())
    }

    /// Refuses every publish of the reply in flight, calling `retry_due`
    /// when the replier says a retry is due, as the server's loop does.
    fn refuse_every_publish(
        replier: &mut Replier<'_, Recorder>,
        sender: &Sender<Confirm>,
        first_publish: u64,
    ) -> Result<()> {
        for (publish, attempt) in (first_publish..).zip(1..=REPLY_ATTEMPTS) {
            assert_eq!(
                replier.unsettled(),
                1,
                "attempt {attempt} awaits its confirm"
            );
            sender.send(nack(publish))?;
            replier.settle_arrived()?;
            if attempt < REPLY_ATTEMPTS {
                let due = replier.retry_deadline().expect("a retry is scheduled");
                crossbeam_channel::at(due).recv()?;
                replier.retry_due()?;
            }
        }
        Ok(())
    }

    #[test]
    fn a_reply_refused_every_time_costs_bounded_publishes_then_its_request_is_rejected(
    ) -> Result<()> {
        let channel = Recorder::default();
        let (sender, receiver) = crossbeam_channel::unbounded();
        let mut replier = Replier::new(&channel, Some(receiver), CONFIRM_TIMEOUT)
            .with_dead_letter_queue("q.dead".into());
        replier.reply(9, Instant::now(), reply("r9"))?;
        refuse_every_publish(&mut replier, &sender, 1)?;
        let mut expected: Vec<Call> = (0..REPLY_ATTEMPTS)
            .map(|_| Call::Publish("r9".into()))
            .collect();
        expected.push(Call::Nack {
            tag: 9,
            requeue: false,
        });
        assert_eq!(channel.calls.borrow().as_slice(), expected);
        assert_eq!(replier.refused_replies(), 1);
        assert_eq!(replier.retry_deadline(), None);
        assert_eq!(replier.unsettled(), 0);
        // Served as usual afterwards, runs acked with one ack again.
        replier.reply(10, Instant::now(), reply("r10"))?;
        replier.reply(11, Instant::now(), reply("r11"))?;
        sender.send(ack(REPLY_ATTEMPTS as u64 + 2, false))?;
        replier.on_confirm(ack(REPLY_ATTEMPTS as u64 + 1, false))?;
        assert_eq!(
            channel.calls.borrow().last(),
            Some(&Call::Ack {
                tag: 11,
                multiple: true
            })
        );
        Ok(())
    }

    #[test]
    fn refusals_rejections_confirms_and_in_flight_are_counted() -> Result<()> {
        let channel = Recorder::default();
        let (sender, receiver) = crossbeam_channel::unbounded();
        let metrics = ReplyMetrics::unregistered();
        let mut replier =
            Replier::new(&channel, Some(receiver), CONFIRM_TIMEOUT).with_metrics(metrics.clone());
        // What the handler does for each request it is handed.
        metrics.in_flight.inc();
        replier.reply(9, Instant::now(), reply("r9"))?;
        refuse_every_publish(&mut replier, &sender, 1)?;
        assert_eq!(metrics.nacked.get(), u64::from(REPLY_ATTEMPTS));
        assert_eq!(metrics.given_up.get(), 1);
        assert_eq!(metrics.in_flight.get(), 0);
        assert_eq!(metrics.delivery_to_ack.get_sample_count(), 0, "never acked");
        for tag in [10, 11, 12] {
            metrics.in_flight.inc();
            replier.reply(tag, Instant::now(), reply("r"))?;
        }
        let first = u64::from(REPLY_ATTEMPTS) + 1;
        replier.on_confirm(ack(first, false))?;
        assert_eq!(metrics.confirmed.get(), 1);
        assert_eq!(metrics.delivery_to_ack.get_sample_count(), 1);
        assert_eq!(metrics.in_flight.get(), 2);
        // The session ends with two unconfirmed: the broker has them back.
        drop(replier);
        assert_eq!(metrics.in_flight.get(), 0);
        Ok(())
    }

    #[test]
    fn retries_back_off_and_end() {
        let delays: Vec<u128> = (2..=REPLY_ATTEMPTS)
            .map(|attempt| retry_delay(attempt).as_millis())
            .collect();
        assert_eq!(delays, [10, 50, 250]);
        let total: Duration = (2..=REPLY_ATTEMPTS).map(retry_delay).sum();
        assert!(total < Duration::from_secs(1), "{total:?}");
    }

    #[test]
    fn a_refused_reply_accepted_on_retry_acks_its_request_and_others_are_served_meanwhile(
    ) -> Result<()> {
        let channel = Recorder::default();
        let (mut replier, sender) = with_confirms(&channel);
        replier.reply(1, Instant::now(), reply("r1"))?;
        replier.on_confirm(nack(1))?;
        // While request 1 waits for its retry, requests 2 and 3 are served
        // and acked one by one.
        replier.reply(2, Instant::now(), reply("r2"))?;
        replier.on_confirm(ack(2, false))?;
        let due = replier.retry_deadline().expect("a retry is scheduled");
        crossbeam_channel::at(due).recv()?;
        replier.retry_due()?;
        replier.reply(3, Instant::now(), reply("r3"))?;
        // Publish 3 is r1 again, publish 4 is r3.
        sender.send(ack(4, false))?;
        replier.on_confirm(ack(3, false))?;
        assert_eq!(
            channel.calls.borrow().as_slice(),
            [
                Call::Publish("r1".into()),
                Call::Publish("r2".into()),
                Call::Ack {
                    tag: 2,
                    multiple: false
                },
                Call::Publish("r1".into()),
                Call::Publish("r3".into()),
                Call::Ack {
                    tag: 1,
                    multiple: false
                },
                Call::Ack {
                    tag: 3,
                    multiple: true
                },
            ]
        );
        assert_eq!(replier.refused_replies(), 0);
        assert_eq!((replier.unsettled(), replier.retry_deadline()), (0, None));
        Ok(())
    }

    #[test]
    fn settle_leaves_a_request_awaiting_its_retry_unacked() -> Result<()> {
        let channel = Recorder::default();
        let (mut replier, sender) = with_confirms(&channel);
        replier.reply(1, Instant::now(), reply("r1"))?;
        sender.send(nack(1))?;
        replier.settle()?;
        // Not acked, not nacked: closing the channel requeues it.
        assert_eq!(channel.calls.borrow().as_slice(), publishes(1));
        assert!(replier.retry_deadline().is_some());
        Ok(())
    }

    #[test]
    fn a_confirm_for_no_reply_is_a_broker_failure() {
        let channel = Recorder::default();
        let (mut replier, _sender) = with_confirms(&channel);
        let error = replier.on_confirm(ack(1, false)).unwrap_err();
        assert_eq!(common::exit_code(&error), common::exit::BROKER);
    }

    #[test]
    fn an_overdue_confirm_gives_up_the_connection_without_acking() -> Result<()> {
        let channel = Recorder::default();
        let (_sender, receiver) = crossbeam_channel::unbounded();
        let timeout = Duration::from_millis(20);
        let mut replier = Replier::new(&channel, Some(receiver), timeout);
        let before = Instant::now();
        replier.reply(1, Instant::now(), reply("r1"))?;
        let deadline = replier
            .confirm_deadline()
            .expect("a reply awaits its confirm");
        assert!(deadline >= before + timeout);
        let error = replier.settle().unwrap_err();
        assert!(common::failure::is_transient(&error), "{error:#}");
        // The request stays unacked: the broker redelivers it.
        assert_eq!(channel.calls.borrow().as_slice(), publishes(1));
        Ok(())
    }

    #[test]
    fn settle_arrived_acks_what_came_and_waits_for_nothing() -> Result<()> {
        let channel = Recorder::default();
        let (mut replier, sender) = with_confirms(&channel);
        replier.settle_arrived()?;
        for tag in 1..=3 {
            replier.reply(tag, Instant::now(), reply(&format!("r{tag}")))?;
        }
        assert_eq!(replier.unsettled(), 3);
        sender.send(ack(1, false))?;
        sender.send(ack(2, false))?;
        replier.settle_arrived()?;
        assert_eq!(
            channel.calls.borrow().last(),
            Some(&Call::Ack {
                tag: 2,
                multiple: true
            })
        );
        assert_eq!(replier.unsettled(), 1, "the third awaits its confirm");
        assert!(replier.oldest_unsettled().is_some());
        Ok(())
    }

    #[test]
    fn settle_acks_what_is_confirmed_meanwhile() -> Result<()> {
        let channel = Recorder::default();
        let (mut replier, sender) = with_confirms(&channel);
        replier.reply(5, Instant::now(), reply("r1"))?;
        sender.send(ack(1, false))?;
        replier.settle()?;
        assert_eq!(
            channel.calls.borrow().last(),
            Some(&Call::Ack {
                tag: 5,
                multiple: true
            })
        );
        Ok(())
    }

    #[test]
    fn a_failed_ack_leaves_nothing_in_flight() -> Result<()> {
        let lost = Recorder {
            acks_fail: true,
            ..Recorder::default()
        };
        // Confirms off: the reply's ack, and a dropped request's.
        let metrics = ReplyMetrics::unregistered();
        let mut replier = Replier::new(&lost, None, CONFIRM_TIMEOUT).with_metrics(metrics.clone());
        metrics.in_flight.inc();
        assert!(replier.reply(1, Instant::now(), reply("r1")).is_err());
        assert_eq!(metrics.in_flight.get(), 0, "after a failed ack of a reply");
        metrics.in_flight.inc();
        assert!(replier.drop_request(2, Instant::now()).is_err());
        assert_eq!(metrics.in_flight.get(), 0, "after a failed ack of a drop");
        assert_eq!(metrics.delivery_to_ack.get_sample_count(), 0, "never acked");
        drop(replier);
        assert_eq!(metrics.in_flight.get(), 0);

        // Confirms on, a refused reply unsettled: each confirmed request is
        // acked on its own, and that ack fails.
        let metrics = ReplyMetrics::unregistered();
        let (sender, receiver) = crossbeam_channel::unbounded();
        let mut replier =
            Replier::new(&lost, Some(receiver), CONFIRM_TIMEOUT).with_metrics(metrics.clone());
        for tag in [1, 2] {
            metrics.in_flight.inc();
            replier.reply(tag, Instant::now(), reply("r"))?;
        }
        replier.on_confirm(nack(1))?;
        assert!(replier.on_confirm(ack(2, false)).is_err());
        assert_eq!(
            metrics.in_flight.get(),
            1,
            "the refused one, awaiting its retry"
        );
        drop(replier);
        assert_eq!(metrics.in_flight.get(), 0);
        drop(sender);

        // Confirms on: a confirmed run acked (and failing) as a refusal
        // behind it arrives.
        let metrics = ReplyMetrics::unregistered();
        let (sender, receiver) = crossbeam_channel::unbounded();
        let mut replier =
            Replier::new(&lost, Some(receiver), CONFIRM_TIMEOUT).with_metrics(metrics.clone());
        for tag in [1, 2, 3] {
            metrics.in_flight.inc();
            replier.reply(tag, Instant::now(), reply("r"))?;
        }
        sender.send(nack(2))?;
        assert!(replier.on_confirm(ack(1, false)).is_err());
        assert_eq!(metrics.in_flight.get(), 1, "only the unconfirmed third");
        drop(replier);
        assert_eq!(
            metrics.in_flight.get(),
            0,
            "the broker has every unacked one back"
        );
        Ok(())
    }
}
