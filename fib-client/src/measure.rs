//! The measurement loop: one request at a time, each timed from publish to
//! its reply. It knows nothing of printing; an observer sees each round trip.

use crate::rpc::{Event, RpcSession};
use anyhow::Result;
use common::failure::Failure;
use common::protocol::Reply;
use log::debug;
use std::ops::Range;
use std::time::{Duration, Instant};

/// One request and what came back.
#[derive(Debug, Clone)]
pub struct RoundTrip {
    pub n: u64,
    pub correlation_id: String,
    pub latency: Duration,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The reply equals our own F(n).
    Correct,
    /// A number, but not F(n).
    Wrong { got: String },
    /// An error reply.
    Refused { code: String, message: String },
}

impl RoundTrip {
    pub fn is_correct(&self) -> bool {
        self.verdict == Verdict::Correct
    }
}

/// All round trips of a run, and the wall time of the request loop alone.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub round_trips: Vec<RoundTrip>,
    pub total: Duration,
}

/// Sends F(n) requests for each n of `requests`, one after another.
pub fn measure(
    session: &RpcSession,
    requests: Range<u64>,
    timeout: Duration,
    observer: &mut dyn FnMut(&RoundTrip, &Reply),
) -> Result<Measurement> {
    let mut round_trips = Vec::with_capacity(requests.end.saturating_sub(requests.start) as usize);
    let started = Instant::now();
    for n in requests {
        let (round_trip, reply) = call(session, n, timeout)?;
        observer(&round_trip, &reply);
        round_trips.push(round_trip);
    }
    Ok(Measurement {
        round_trips,
        total: started.elapsed(),
    })
}

/// One timed call. Replies for other correlation ids (late answers to
/// requests of an earlier run) are skipped.
pub fn call(session: &RpcSession, n: u64, timeout: Duration) -> Result<(RoundTrip, Reply)> {
    let sent_at = Instant::now();
    let correlation_id = session.send(n)?;
    // Computed while the server works on the same n: it costs no latency.
    let expected = common::fibonacci(n).to_string();
    let deadline = sent_at + timeout;
    loop {
        match session.next_event(deadline)? {
            Event::Reply {
                correlation_id: Some(id),
                reply,
            } if id == correlation_id => {
                let latency = sent_at.elapsed();
                let verdict = judge(&reply, &expected);
                let round_trip = RoundTrip {
                    n,
                    correlation_id,
                    latency,
                    verdict,
                };
                return Ok((round_trip, reply));
            }
            Event::Reply { correlation_id, .. } => {
                debug!("ignored a reply with unknown correlation id {correlation_id:?}");
            }
            Event::TimedOut => {
                return Err(Failure::Timeout(format!(
                    "no reply to the request for n={n} within {:.1} s; is fib-server running?",
                    timeout.as_secs_f64()
                ))
                .into())
            }
        }
    }
}

fn judge(reply: &Reply, expected: &str) -> Verdict {
    match reply {
        Reply::Value(digits) if digits == expected => Verdict::Correct,
        Reply::Value(digits) => Verdict::Wrong {
            got: digits.clone(),
        },
        Reply::Error { code, message } => Verdict::Refused {
            code: code.clone(),
            message: message.clone(),
        },
    }
}
