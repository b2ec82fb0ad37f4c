//! One request in, one reply out: parse, compute, publish, confirm, ack.

use amiquip::{Channel, Confirm, ConfirmSmoother, Delivery, Publish};
use anyhow::Result;
use common::failure::Failure;
use common::protocol::{self, abbreviate, RequestError};
use crossbeam_channel::Receiver;
use log::{info, warn};
use std::time::{Duration, Instant};

/// How long the broker may take to confirm a reply before we give up on the
/// connection (the request, unacked, is then redelivered).
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server has to say to a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// F(n) in decimal.
    Value {
        n: u64,
        digits: String,
    },
    Refused(RequestError),
}

/// The reply to a request body, computed without any I/O.
pub fn answer(body: &[u8], max_n: u64) -> Answer {
    match protocol::parse_request(body, max_n) {
        Ok(n) => Answer::Value {
            n,
            digits: common::fibonacci(n).to_string(),
        },
        Err(error) => Answer::Refused(error),
    }
}

/// Publishes replies on a channel, with publisher confirms when asked.
pub(crate) struct Replier<'a> {
    channel: &'a Channel,
    confirms: Option<(Receiver<Confirm>, ConfirmSmoother)>,
}

impl<'a> Replier<'a> {
    pub(crate) fn new(channel: &'a Channel, confirm: bool) -> Result<Replier<'a>> {
        let confirms = if confirm {
            // Listen before enabling, as amiquip's example does, so no
            // confirm can slip past.
            let receiver = channel.listen_for_publisher_confirms()?;
            channel.enable_publisher_confirms()?;
            Some((receiver, ConfirmSmoother::new()))
        } else {
            None
        };
        Ok(Replier { channel, confirms })
    }

    /// Publishes a reply; with confirms, returns once the broker has taken
    /// responsibility for it (true) or refused it (false).
    fn publish(&mut self, publish: Publish) -> Result<bool> {
        self.channel.basic_publish("", publish)?;
        let Some((receiver, smoother)) = &mut self.confirms else {
            return Ok(true);
        };
        let deadline = Instant::now() + CONFIRM_TIMEOUT;
        loop {
            let raw = receiver.recv_deadline(deadline).map_err(|_| {
                Failure::Disconnected(format!(
                    "no publisher confirm for a reply within {CONFIRM_TIMEOUT:?}"
                ))
            })?;
            // One publish in flight: the first smoothed confirm is ours.
            if let Some(confirm) = smoother.process(raw).next() {
                return Ok(matches!(confirm, Confirm::Ack(_)));
            }
        }
    }
}

/// Answers one delivery and acks it only once the reply is published (and
/// confirmed), so a crash in between leaves the request to be redelivered
/// rather than lost. A bad body gets an error reply and is acked: it must
/// never loop back. A reply the broker refuses (nack) sends the request back
/// to the queue to be tried again.
pub(crate) fn respond(replier: &mut Replier, delivery: Delivery, max_n: u64) -> Result<()> {
    let started = Instant::now();
    let channel = replier.channel;
    let correlation_id = delivery.properties.correlation_id().clone();
    let id = correlation_id.as_deref().unwrap_or("-");
    let Some(reply_to) = delivery.properties.reply_to().clone() else {
        warn!(
            "dropped a request without reply_to (correlation id {id}, {} bytes)",
            delivery.body.len()
        );
        return Ok(delivery.ack(channel)?);
    };
    let answer = answer(&delivery.body, max_n);
    let (body, error) = match &answer {
        Answer::Value { digits, .. } => (digits.as_bytes(), None),
        Answer::Refused(error) => (error.message.as_bytes(), Some(error.code)),
    };
    let properties = protocol::reply_properties(correlation_id.as_deref(), error);
    if !replier.publish(Publish::with_properties(body, reply_to, properties))? {
        warn!("the broker refused the reply to id={id}; requeueing the request");
        return Ok(delivery.nack(channel, true)?);
    }
    delivery.ack(channel)?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    match answer {
        Answer::Value { n, digits } => info!(
            "n={n} id={id} -> {} digits {} in {elapsed_ms:.3} ms",
            digits.len(),
            abbreviate(&digits, 20)
        ),
        Answer::Refused(error) => warn!("refused request id={id}: {error} ({elapsed_ms:.3} ms)"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::protocol::ErrorCode;

    #[test]
    fn answers_values_and_refusals() {
        assert_eq!(
            answer(b"10", 100),
            Answer::Value {
                n: 10,
                digits: "55".into()
            }
        );
        match answer(b"101", 100) {
            Answer::Refused(error) => assert_eq!(error.code, ErrorCode::TooLarge),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
