//! One request in, one reply out: parse, compute, hand to the replier.

use crate::replier::Replier;
use crate::Settings;
use amiquip::{Channel, Delivery, Publish};
use anyhow::Result;
use common::protocol::{self, abbreviate, printable, RequestError};
use common::topology::QueueType;
use log::{debug, info, warn};
use std::time::Instant;

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
            digits: fib_math::fibonacci_decimal(n),
        },
        Err(error) => Answer::Refused(error),
    }
}

/// Answers one delivery. The request is acked only once its reply is
/// published (and confirmed), so a crash in between leaves it to be
/// redelivered rather than lost. A bad body gets an error reply and is
/// acked: it must never loop back.
pub(crate) fn respond(
    replier: &mut Replier<'_, Channel>,
    delivery: Delivery,
    settings: &Settings,
) -> Result<()> {
    let started = Instant::now();
    let correlation_id = delivery.properties.correlation_id().clone();
    // From the network: escaped and shortened before it reaches a log line.
    let id = &printable(correlation_id.as_deref().unwrap_or("-"), 40);
    debug!("request id={id}: {} bytes, answering", delivery.body.len());
    let topology = &settings.topology;
    if let Some(returns) = protocol::delivery_count(&delivery.properties) {
        if topology.queue_type == QueueType::Quorum {
            warn!(
                "request id={id} came back {returns} times (a server failed while holding it); \
                 after {} the broker moves it to queue {:?}",
                topology.delivery_limit,
                topology.dead_letter_queue()
            );
        }
    }
    let Some(reply_to) = delivery.properties.reply_to().clone() else {
        warn!(
            "dropped a request without reply_to (correlation id {id}, {} bytes)",
            delivery.body.len()
        );
        return replier.drop_request(delivery);
    };
    let answer = answer(&delivery.body, settings.max_n);
    let (body, error) = match &answer {
        Answer::Value { digits, .. } => (digits.as_bytes(), None),
        Answer::Refused(error) => (error.message.as_bytes(), Some(error.code)),
    };
    let properties = protocol::reply_properties(correlation_id.as_deref(), error);
    let publish = Publish::with_properties(body, reply_to, properties);
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    // The reply goes out first: the log line is not on the round trip.
    replier.reply(delivery, publish)?;
    match &answer {
        Answer::Value { n, digits } => info!(
            "n={n} id={id} -> {} digits {} in {elapsed_ms:.3} ms",
            digits.len(),
            abbreviate(digits, 20)
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
