//! Publishing replies and acking their requests, with publisher confirms.
//!
//! With confirms on, a request is acked only once the broker has confirmed
//! its reply. The confirm is not waited for in line: the request is parked
//! and acked when its confirm arrives, so with `--prefetch` > 1 the server
//! keeps computing while earlier replies are being confirmed. A request is
//! never acked before its reply is safe, so batching loses nothing.

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

pub(crate) struct Replier<'a> {
    channel: &'a Channel,
    confirms: Option<Confirms>,
}

struct Confirms {
    receiver: Receiver<Confirm>,
    smoother: ConfirmSmoother,
    /// Requests whose replies await a confirm, in publish order: the broker
    /// numbers publishes 1, 2, ... on the channel, and the smoother hands
    /// confirms back in that order.
    parked: VecDeque<(Delivery, Instant)>,
}

impl<'a> Replier<'a> {
    pub(crate) fn new(channel: &'a Channel, confirm: bool) -> Result<Replier<'a>> {
        let confirms = if confirm {
            // Listen before enabling, as amiquip's example does, so no
            // confirm can slip past.
            let receiver = channel.listen_for_publisher_confirms()?;
            channel.enable_publisher_confirms()?;
            Some(Confirms {
                receiver,
                smoother: ConfirmSmoother::new(),
                parked: VecDeque::new(),
            })
        } else {
            None
        };
        Ok(Replier { channel, confirms })
    }

    /// Publishes the reply to `request`, then acks the request at once
    /// (confirms off) or once the reply is confirmed.
    pub(crate) fn reply(&mut self, request: Delivery, publish: Publish) -> Result<()> {
        self.channel.basic_publish("", publish)?;
        match &mut self.confirms {
            Some(confirms) => confirms.parked.push_back((request, Instant::now())),
            None => request.ack(self.channel)?,
        }
        Ok(())
    }

    /// Acks a request that needs no reply.
    pub(crate) fn drop_request(&mut self, request: Delivery) -> Result<()> {
        Ok(request.ack(self.channel)?)
    }

    /// The channel confirms arrive on; never ready when confirms are off.
    pub(crate) fn confirms(&self) -> Receiver<Confirm> {
        match &self.confirms {
            Some(confirms) => confirms.receiver.clone(),
            None => crossbeam_channel::never(),
        }
    }

    /// When the oldest unconfirmed reply is overdue, if there is one.
    pub(crate) fn confirm_deadline(&self) -> Option<Instant> {
        let confirms = self.confirms.as_ref()?;
        confirms.parked.front().map(|(_, at)| *at + CONFIRM_TIMEOUT)
    }

    /// Acks (or, for a refused reply, requeues) the requests that `first`
    /// and any confirms already waiting behind it cover. A run of confirmed
    /// requests is acked with one `multiple` ack: requests are parked in
    /// delivery order, so every earlier tag is already settled.
    pub(crate) fn on_confirm(&mut self, first: Confirm) -> Result<()> {
        let Some(confirms) = &mut self.confirms else {
            return Ok(());
        };
        let mut last_confirmed: Option<Delivery> = None;
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
                            done.ack_multiple(self.channel)?;
                        }
                        warn!("the broker refused a reply; requeueing its request");
                        request.nack(self.channel, true)?;
                    }
                }
            }
        }
        if let Some(done) = last_confirmed {
            done.ack_multiple(self.channel)?;
        }
        Ok(())
    }

    /// Waits until every published reply is confirmed and its request acked.
    pub(crate) fn settle(&mut self) -> Result<()> {
        let receiver = self.confirms();
        while let Some(deadline) = self.confirm_deadline() {
            let confirm = receiver.recv_deadline(deadline).map_err(|_| overdue())?;
            self.on_confirm(confirm)?;
        }
        Ok(())
    }
}

pub(crate) fn overdue() -> anyhow::Error {
    Failure::Disconnected(format!(
        "no publisher confirm for a reply within {CONFIRM_TIMEOUT:?}"
    ))
    .into()
}
