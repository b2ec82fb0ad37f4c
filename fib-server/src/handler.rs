//! One request in, one reply out: parse, compute, hand to the replier.

use crate::cache::SharedCache;
use crate::monitoring::ServerMetrics;
use crate::replier::{Replier, Reply};
use crate::Settings;
use amiquip::{Channel, Delivery};
use anyhow::Result;
use common::protocol::{self, abbreviate, printable, ErrorCode, RequestError};
use common::topology::QueueType;
use log::{debug, info, warn};
use metrics::prometheus::Histogram;
use std::sync::Arc;
use std::time::Instant;

/// What the server has to say to a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// F(n) in decimal; `cached` if it came from the reply cache.
    Value {
        n: u64,
        digits: Arc<str>,
        cached: bool,
    },
    Refused(RequestError),
}

/// The reply to a request body, computed without any I/O and without a
/// cache.
pub fn answer(body: &[u8], max_n: u64) -> Answer {
    answer_with(body, max_n, &SharedCache::new(0))
}

/// The reply to a request body: from `cache` if it holds F(n), else computed
/// and offered to `cache`.
pub fn answer_with(body: &[u8], max_n: u64, cache: &SharedCache) -> Answer {
    answer_timed(body, max_n, cache, None)
}

/// [`answer_with`], with the time spent computing F(n) (on a cache miss)
/// observed in `compute`.
fn answer_timed(
    body: &[u8],
    max_n: u64,
    cache: &SharedCache,
    compute: Option<&Histogram>,
) -> Answer {
    match protocol::parse_request(body, max_n) {
        Ok(n) => match cache.get(n) {
            Some(digits) => Answer::Value {
                n,
                digits,
                cached: true,
            },
            None => {
                let started = Instant::now();
                let digits: Arc<str> = fib_math::fibonacci_decimal(n).into();
                if let Some(compute) = compute {
                    compute.observe(started.elapsed().as_secs_f64());
                }
                cache.insert(n, Arc::clone(&digits));
                Answer::Value {
                    n,
                    digits,
                    cached: false,
                }
            }
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
    cache: &SharedCache,
    metrics: &ServerMetrics,
) -> Result<()> {
    let started = Instant::now();
    metrics.received.inc();
    metrics.reply.in_flight.inc();
    if delivery.redelivered {
        metrics.redelivered.inc();
    }
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
        metrics.dropped.inc();
        return replier.drop_request(delivery, started);
    };
    let compute = Some(&metrics.compute);
    let answer = answer_timed(&delivery.body, settings.max_n, cache, compute);
    // The body is the cache's own digits, shared, not copied.
    let (body, error): (Arc<[u8]>, _) = match &answer {
        Answer::Value { digits, .. } => (Arc::clone(digits).into(), None),
        Answer::Refused(error) => (error.message.as_bytes().into(), Some(error.code)),
    };
    let properties = protocol::reply_properties(correlation_id.as_deref(), error);
    let reply = Reply {
        body,
        reply_to,
        properties,
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    // The reply goes out first: the log line is not on the round trip.
    // Counted as the reply is handed over, whatever becomes of it: every
    // request received is then exactly one of answered, refused, dropped.
    match &answer {
        Answer::Value { .. } => metrics.answered.inc(),
        Answer::Refused(error) => match error.code {
            ErrorCode::InvalidRequest => metrics.refused_invalid.inc(),
            ErrorCode::TooLarge => metrics.refused_too_large.inc(),
        },
    }
    replier.reply(delivery, started, reply)?;
    match &answer {
        Answer::Value { n, digits, cached } => info!(
            "n={n} id={id} -> {} digits {} in {elapsed_ms:.3} ms{}",
            digits.len(),
            abbreviate(digits, 20),
            if *cached { " (cached)" } else { "" }
        ),
        Answer::Refused(error) => warn!("refused request id={id}: {error} ({elapsed_ms:.3} ms)"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_values_and_refusals() {
        assert_eq!(
            answer(b"10", 100),
            Answer::Value {
                n: 10,
                digits: "55".into(),
                cached: false,
            }
        );
        match answer(b"101", 100) {
            Answer::Refused(error) => assert_eq!(error.code, ErrorCode::TooLarge),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_repeated_n_comes_from_the_cache_and_refusals_are_not_cached() {
        let cache = SharedCache::new(1 << 20);
        let first = answer_with(b"1000", 2000, &cache);
        let again = answer_with(b" 1000\n", 2000, &cache);
        match (&first, &again) {
            (
                Answer::Value {
                    digits: computed,
                    cached: false,
                    ..
                },
                Answer::Value {
                    n: 1000,
                    digits: from_cache,
                    cached: true,
                },
            ) => {
                assert_eq!(computed, from_cache);
                assert_eq!(&**from_cache, fib_math::fibonacci(1000).to_string());
            }
            other => panic!("expected a computed then a cached F(1000), got {other:?}"),
        }
        // A refusal for n above max n, then the same n allowed: computed.
        assert!(matches!(
            answer_with(b"3000", 2000, &cache),
            Answer::Refused(_)
        ));
        assert!(matches!(
            answer_with(b"3000", 4000, &cache),
            Answer::Value { cached: false, .. }
        ));
        // Without a cache nothing is ever cached.
        let off = SharedCache::new(0);
        for _ in 0..2 {
            assert!(matches!(
                answer_with(b"1000", 2000, &off),
                Answer::Value { cached: false, .. }
            ));
        }
    }
}
