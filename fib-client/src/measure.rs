//! The measurement loop. It keeps up to `inflight` requests outstanding
//! (1: strictly one after another), times each from its first publish to its
//! reply, resends what timed out or what a lost connection took with it, and
//! knows nothing of printing: an observer sees each finished round trip.
//!
//! A [`Run`] outlives connections: after a reconnection the caller hands it
//! the new session and it resends every request still outstanding (Fibonacci
//! is idempotent). Each send gets a fresh correlation id; a reply to any of a
//! request's ids answers it, and later duplicates are ignored.

use crate::rpc::{Event, RpcSession};
use anyhow::Result;
use common::failure::Failure;
use common::protocol::Reply;
use common::sequence::DecimalSequence;
use log::{debug, warn};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::{Duration, Instant};

/// What to send and how patiently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub requests: Range<u64>,
    /// Requests outstanding at once, at least 1.
    pub inflight: usize,
    /// Wait for each reply at most this long before resending.
    pub timeout: Duration,
    /// Resends of a timed-out request before giving up.
    pub retries: u32,
}

/// One request and what came back.
#[derive(Debug, Clone)]
pub struct RoundTrip {
    pub n: u64,
    /// The id the answering reply carried.
    pub correlation_id: String,
    /// From the first publish of the request to its reply.
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

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Correct => f.write_str("correct"),
            Verdict::Wrong { got } => write!(
                f,
                "wrong reply {} ({} digits)",
                common::protocol::abbreviate(got, 20),
                got.len()
            ),
            Verdict::Refused { code, message } => write!(f, "error reply {code}: {message}"),
        }
    }
}

impl RoundTrip {
    pub fn is_correct(&self) -> bool {
        self.verdict == Verdict::Correct
    }
}

/// All round trips of a run, the wall time of the request loop alone, and
/// what it took to get there.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub round_trips: Vec<RoundTrip>,
    pub total: Duration,
    /// Requests published again, after a timeout or a lost connection.
    pub resends: u64,
}

struct Pending {
    first_sent: Instant,
    deadline: Instant,
    /// Resends after timeouts so far (reconnections do not count).
    retries: u32,
    /// The session its latest copy went out on.
    session: u64,
    /// Every correlation id it was sent with.
    ids: Vec<String>,
    expected: String,
}

/// A run in progress.
pub struct Run {
    plan: Plan,
    next_n: u64,
    /// F(next_n), F(next_n + 1), ...: what the replies must say.
    expected: DecimalSequence,
    pending: BTreeMap<u64, Pending>,
    by_id: HashMap<String, u64>,
    round_trips: Vec<RoundTrip>,
    resends: u64,
    started: Option<Instant>,
}

impl Run {
    pub fn new(plan: Plan) -> Run {
        let count = plan.requests.end.saturating_sub(plan.requests.start);
        Run {
            next_n: plan.requests.start,
            expected: DecimalSequence::starting_at(plan.requests.start),
            round_trips: Vec::with_capacity(count.min(1 << 20) as usize),
            plan,
            pending: BTreeMap::new(),
            by_id: HashMap::new(),
            resends: 0,
            started: None,
        }
    }

    /// Drives the run on one session until every request is answered.
    /// `session_number` must change with every new connection: requests last
    /// sent on an earlier one are sent again first.
    pub fn drive(
        &mut self,
        session: &RpcSession,
        session_number: u64,
        observer: &mut dyn FnMut(&RoundTrip, &Reply),
    ) -> Result<()> {
        self.started.get_or_insert_with(Instant::now);
        let stranded: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.session != session_number)
            .map(|(&n, _)| n)
            .collect();
        for n in stranded {
            self.resend(session, session_number, n)?;
        }
        loop {
            while self.pending.len() < self.plan.inflight && self.next_n < self.plan.requests.end {
                self.send_new(session, session_number)?;
            }
            let Some(deadline) = self.pending.values().map(|p| p.deadline).min() else {
                return Ok(());
            };
            match session.next_event(deadline)? {
                Event::Reply {
                    correlation_id: Some(id),
                    reply,
                } => match self.by_id.get(&id) {
                    Some(&n) => self.complete(n, id, reply, observer),
                    None => debug!("ignored a reply with unknown correlation id {id:?}"),
                },
                Event::Reply { .. } => debug!("ignored a reply without correlation id"),
                Event::TimedOut => self.handle_timeouts(session, session_number)?,
            }
        }
    }

    pub fn finish(self) -> Measurement {
        Measurement {
            total: self.started.map(|s| s.elapsed()).unwrap_or_default(),
            round_trips: self.round_trips,
            resends: self.resends,
        }
    }

    fn send_new(&mut self, session: &RpcSession, session_number: u64) -> Result<()> {
        let n = self.next_n;
        let first_sent = Instant::now();
        let id = session.send(n)?;
        self.next_n += 1;
        // Computed after publishing, while the server works on the same n.
        let expected = self.expected.next().unwrap_or_default();
        self.by_id.insert(id.clone(), n);
        self.pending.insert(
            n,
            Pending {
                first_sent,
                deadline: first_sent + self.plan.timeout,
                retries: 0,
                session: session_number,
                ids: vec![id],
                expected,
            },
        );
        Ok(())
    }

    fn resend(&mut self, session: &RpcSession, session_number: u64, n: u64) -> Result<()> {
        let id = session.send(n)?;
        self.resends += 1;
        if let Some(pending) = self.pending.get_mut(&n) {
            pending.deadline = Instant::now() + self.plan.timeout;
            pending.session = session_number;
            pending.ids.push(id.clone());
        }
        self.by_id.insert(id, n);
        Ok(())
    }

    fn handle_timeouts(&mut self, session: &RpcSession, session_number: u64) -> Result<()> {
        let now = Instant::now();
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(&n, _)| n)
            .collect();
        for n in due {
            let Some(pending) = self.pending.get_mut(&n) else {
                continue;
            };
            if pending.retries >= self.plan.retries {
                return Err(Failure::Timeout(format!(
                    "no reply to the request for n={n} within {:.1} s, sent {} times; \
                     is fib-server running?",
                    self.plan.timeout.as_secs_f64(),
                    pending.ids.len()
                ))
                .into());
            }
            pending.retries += 1;
            warn!(
                "no reply for n={n} within {:.1} s; sending it again (retry {} of {})",
                self.plan.timeout.as_secs_f64(),
                pending.retries,
                self.plan.retries
            );
            self.resend(session, session_number, n)?;
        }
        Ok(())
    }

    fn complete(
        &mut self,
        n: u64,
        correlation_id: String,
        reply: Reply,
        observer: &mut dyn FnMut(&RoundTrip, &Reply),
    ) {
        let Some(pending) = self.pending.remove(&n) else {
            return;
        };
        for id in &pending.ids {
            self.by_id.remove(id);
        }
        let round_trip = RoundTrip {
            n,
            correlation_id,
            latency: pending.first_sent.elapsed(),
            verdict: judge(&reply, &pending.expected),
        };
        observer(&round_trip, &reply);
        self.round_trips.push(round_trip);
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
