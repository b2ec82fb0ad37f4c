//! Publishing replies and acking their requests, with publisher confirms.
//!
//! With confirms on, a request is acked only once the broker has confirmed
//! its reply. The confirm is not waited for in line: the request is parked
//! and acked when its confirm arrives, so with `--prefetch` > 1 the server
//! keeps computing while earlier replies are being confirmed. A request is
//! never acked before its reply is safe, so batching loses nothing.
//!
//! The replier speaks to the broker only through [`ReplyChannel`], so its
//! state machine is tested below without one.

use amiquip::{Channel, Confirm, ConfirmSmoother, Delivery, Publish};
use anyhow::Result;
use common::failure::Failure;
use crossbeam_channel::Receiver;
use log::warn;
use std::collections::VecDeque;
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

pub struct Replier<'a, C: ReplyChannel> {
    channel: &'a C,
    confirms: Option<Confirms<C::Request>>,
}

struct Confirms<R> {
    receiver: Receiver<Confirm>,
    smoother: ConfirmSmoother,
    /// How long a reply may wait for its confirm.
    timeout: Duration,
    /// Requests whose replies await a confirm, in publish order: the broker
    /// numbers publishes 1, 2, ... on the channel, and the smoother hands
    /// confirms back in that order.
    parked: VecDeque<(R, Instant)>,
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
        });
        Replier { channel, confirms }
    }

    /// Publishes the reply to `request`, then acks the request at once
    /// (confirms off) or once the reply is confirmed.
    pub fn reply(&mut self, request: C::Request, reply: Publish<'_>) -> Result<()> {
        self.channel.publish(reply)?;
        match &mut self.confirms {
            Some(confirms) => confirms.parked.push_back((request, Instant::now())),
            None => self.channel.ack(request, false)?,
        }
        Ok(())
    }

    /// Acks a request that needs no reply.
    pub fn drop_request(&mut self, request: C::Request) -> Result<()> {
        self.channel.ack(request, false)
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
        confirms.parked.front().map(|(_, published)| *published)
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
        let (_, published) = confirms.parked.front()?;
        Some(*published + confirms.timeout)
    }

    /// Acks (or, for a refused reply, requeues) the requests that `first`
    /// and any confirms already waiting behind it cover. A run of confirmed
    /// requests is acked with one `multiple` ack: requests are parked in
    /// delivery order, so every earlier tag is already settled.
    pub fn on_confirm(&mut self, first: Confirm) -> Result<()> {
        let Some(confirms) = &mut self.confirms else {
            return Ok(());
        };
        let mut last_confirmed: Option<C::Request> = None;
        let mut next = Some(first);
        while let Some(raw) = next.take().or_else(|| confirms.receiver.try_recv().ok()) {
            for confirm in confirms.smoother.process(raw) {
                let Some((request, _)) = confirms.parked.pop_front() else {
                    return Err(
                        Failure::Broker(format!("a confirm for no reply: {confirm:?}")).into(),
                    );
                };
                match confirm {
                    Confirm::Ack(_) => last_confirmed = Some(request),
                    Confirm::Nack(_) => {
                        if let Some(done) = last_confirmed.take() {
                            self.channel.ack(done, true)?;
                        }
                        warn!("the broker refused a reply; requeueing its request");
                        self.channel.nack(request, true)?;
                    }
                }
            }
        }
        if let Some(done) = last_confirmed {
            self.channel.ack(done, true)?;
        }
        Ok(())
    }

    /// Waits until every published reply is confirmed and its request acked.
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

#[cfg(test)]
mod tests {
    use super::*;
    use amiquip::{AmqpProperties, ConfirmPayload};
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
            Ok(())
        }
        fn nack(&self, tag: u64, requeue: bool) -> Result<()> {
            self.calls.borrow_mut().push(Call::Nack { tag, requeue });
            Ok(())
        }
    }

    fn reply(body: &str) -> Publish<'_> {
        Publish::with_properties(body.as_bytes(), "reply-queue", AmqpProperties::default())
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
        replier.reply(7, reply("r1"))?;
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
        replier.reply(1, reply("r1"))?;
        replier.reply(2, reply("r2"))?;
        assert_eq!(channel.calls.borrow().as_slice(), publishes(2));
        assert!(replier.confirm_deadline().is_some());
        Ok(())
    }

    #[test]
    fn a_confirmed_run_is_acked_with_one_multiple_ack() -> Result<()> {
        let channel = Recorder::default();
        let (mut replier, sender) = with_confirms(&channel);
        for tag in 1..=3 {
            replier.reply(tag, reply(&format!("r{tag}")))?;
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
            replier.reply(tag, reply("r"))?;
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
    fn a_nacked_reply_requeues_its_request_and_acks_the_run_before_it() -> Result<()> {
        let channel = Recorder::default();
        let (mut replier, sender) = with_confirms(&channel);
        for tag in 1..=3 {
            replier.reply(tag, reply(&format!("r{tag}")))?;
        }
        sender.send(nack(2))?;
        sender.send(ack(3, false))?;
        replier.on_confirm(ack(1, false))?;
        let mut expected = publishes(3);
        expected.extend([
            Call::Ack {
                tag: 1,
                multiple: true,
            },
            Call::Nack {
                tag: 2,
                requeue: true,
            },
            Call::Ack {
                tag: 3,
                multiple: true,
            },
        ]);
        assert_eq!(channel.calls.borrow().as_slice(), expected);
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
        replier.reply(1, reply("r1"))?;
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
            replier.reply(tag, reply(&format!("r{tag}")))?;
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
        replier.reply(5, reply("r1"))?;
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
}
