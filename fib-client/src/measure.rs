//! The measurement loop. It keeps up to `inflight` requests outstanding
//! (1: strictly one after another), times each from its first publish to its
//! reply, resends what timed out or what a lost connection took with it, and
//! knows nothing of printing: an observer sees each finished round trip.
//!
//! A [`Run`] outlives connections: after a reconnection the caller hands it
//! the new session and it resends every request still outstanding (Fibonacci
//! is idempotent). Each send gets a fresh correlation id; a reply to any of a
//! request's ids answers it, and later duplicates are ignored.

use crate::rpc::{Event, RpcTransport};
use anyhow::Result;
use common::failure::Failure;
use common::protocol::Reply;
use fib_math::DecimalSequence;
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
        use common::protocol::printable;
        match self {
            Verdict::Correct => f.write_str("correct"),
            Verdict::Wrong { got } => write!(
                f,
                "wrong reply {} ({} characters)",
                printable(got, 20),
                got.chars().count()
            ),
            Verdict::Refused { code, message } => write!(
                f,
                "error reply {}: {}",
                printable(code, 20),
                printable(message, 60)
            ),
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
        session: &dyn RpcTransport,
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

    fn send_new(&mut self, session: &dyn RpcTransport, session_number: u64) -> Result<()> {
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

    fn resend(&mut self, session: &dyn RpcTransport, session_number: u64, n: u64) -> Result<()> {
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

    fn handle_timeouts(&mut self, session: &dyn RpcTransport, session_number: u64) -> Result<()> {
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

#[cfg(test)]
mod tests {
    //! The run's state machine against a scripted transport: no broker, and
    //! no wait longer than a few short reply timeouts.

    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;

    /// What the fake server does with one copy of a request.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Answer {
        Correct,
        /// Never answers this copy.
        Silent,
    }

    /// A transport whose server answers each send as `answer(n, copy)` says
    /// (copy 0 is the first send of n). Replies queue up in send order;
    /// `inject` puts events in front of them; `lose_after` makes the session
    /// fail like a lost connection once that many events were handed out.
    struct FakeTransport {
        answer: fn(u64, usize) -> Answer,
        sent: RefCell<Vec<(u64, String)>>,
        replies: RefCell<VecDeque<Event>>,
        inject: RefCell<VecDeque<Event>>,
        events: Cell<usize>,
        lose_after: Option<usize>,
        id_prefix: &'static str,
    }

    impl FakeTransport {
        fn new(answer: fn(u64, usize) -> Answer) -> FakeTransport {
            FakeTransport {
                answer,
                sent: RefCell::default(),
                replies: RefCell::default(),
                inject: RefCell::default(),
                events: Cell::new(0),
                lose_after: None,
                id_prefix: "s0",
            }
        }

        fn copies_of(&self, n: u64) -> usize {
            self.sent.borrow().iter().filter(|(m, _)| *m == n).count()
        }
    }

    fn value_reply(id: &str, digits: String) -> Event {
        Event::Reply {
            correlation_id: Some(id.to_string()),
            reply: Reply::Value(digits),
        }
    }

    fn f(n: u64) -> String {
        fib_math::fibonacci(n).to_string()
    }

    impl RpcTransport for FakeTransport {
        fn send(&self, n: u64) -> Result<String> {
            let copy = self.copies_of(n);
            let id = format!("{}-{}", self.id_prefix, self.sent.borrow().len());
            self.sent.borrow_mut().push((n, id.clone()));
            if (self.answer)(n, copy) == Answer::Correct {
                self.replies.borrow_mut().push_back(value_reply(&id, f(n)));
            }
            Ok(id)
        }

        fn next_event(&self, deadline: Instant) -> Result<Event> {
            if self.lose_after == Some(self.events.get()) {
                return Err(Failure::Disconnected("connection lost (simulated)".into()).into());
            }
            self.events.set(self.events.get() + 1);
            let next = self.inject.borrow_mut().pop_front();
            if let Some(event) = next.or_else(|| self.replies.borrow_mut().pop_front()) {
                return Ok(event);
            }
            // Nothing will arrive: wait out the deadline as the broker would.
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            Ok(Event::TimedOut)
        }
    }

    fn plan(requests: Range<u64>, inflight: usize) -> Plan {
        Plan {
            requests,
            inflight,
            timeout: Duration::from_millis(20),
            retries: 2,
        }
    }

    fn drive(run: &mut Run, transport: &FakeTransport, session: u64) -> Result<Vec<RoundTrip>> {
        let mut seen = Vec::new();
        run.drive(transport, session, &mut |trip, _| seen.push(trip.clone()))?;
        Ok(seen)
    }

    #[test]
    fn answers_every_request_once_in_order_when_sequential() -> Result<()> {
        let transport = FakeTransport::new(|_, _| Answer::Correct);
        let mut run = Run::new(plan(0..50, 1));
        let seen = drive(&mut run, &transport, 0)?;
        assert_eq!(
            seen.iter().map(|t| t.n).collect::<Vec<_>>(),
            (0..50).collect::<Vec<_>>()
        );
        assert!(seen.iter().all(RoundTrip::is_correct));
        let measurement = run.finish();
        assert_eq!(
            (measurement.round_trips.len(), measurement.resends),
            (50, 0)
        );
        Ok(())
    }

    #[test]
    fn keeps_inflight_requests_outstanding() -> Result<()> {
        let transport = FakeTransport::new(|_, _| Answer::Correct);
        let mut run = Run::new(plan(0..40, 8));
        drive(&mut run, &transport, 0)?;
        // The first event is only awaited once eight requests are out.
        assert_eq!(transport.sent.borrow().len(), 40);
        assert_eq!(run.finish().round_trips.len(), 40);
        Ok(())
    }

    #[test]
    fn resends_a_request_whose_reply_timed_out() -> Result<()> {
        // The first copy of n = 3 is lost; the second is answered.
        let transport = FakeTransport::new(|n, copy| match (n, copy) {
            (3, 0) => Answer::Silent,
            _ => Answer::Correct,
        });
        let mut run = Run::new(plan(0..6, 1));
        let seen = drive(&mut run, &transport, 0)?;
        assert_eq!(transport.copies_of(3), 2);
        assert!(seen.iter().all(RoundTrip::is_correct));
        let measurement = run.finish();
        assert_eq!((measurement.round_trips.len(), measurement.resends), (6, 1));
        // Its latency runs from the first copy, so it includes the timeout.
        let three = seen.iter().find(|t| t.n == 3).expect("n = 3 answered");
        assert!(three.latency >= Duration::from_millis(20));
        Ok(())
    }

    #[test]
    fn gives_up_with_exit_5_after_the_last_retry() {
        let transport = FakeTransport::new(|n, _| match n {
            1 => Answer::Silent,
            _ => Answer::Correct,
        });
        let mut run = Run::new(plan(0..3, 1));
        let error = drive(&mut run, &transport, 0).unwrap_err();
        assert_eq!(common::exit_code(&error), common::exit::TIMEOUT);
        // Sent once, then retried twice.
        assert_eq!(transport.copies_of(1), 3);
        assert!(format!("{error:#}").contains("n=1"), "{error:#}");
    }

    #[test]
    fn resends_what_a_lost_connection_stranded_on_the_next_session() -> Result<()> {
        // Session 0 keeps 4 requests out, hands out two replies (each
        // followed by a new request), then is lost with 2, 3, 4, 5 outstanding.
        let mut first = FakeTransport::new(|_, _| Answer::Correct);
        first.lose_after = Some(2);
        let mut run = Run::new(plan(0..10, 4));
        let error = drive(&mut run, &first, 0).unwrap_err();
        assert!(common::failure::is_transient(&error));
        // Its unanswered replies die with it; session 1 resends the stranded four first.
        let mut second = FakeTransport::new(|_, _| Answer::Correct);
        second.id_prefix = "s1";
        let seen = drive(&mut run, &second, 1)?;
        let resent: Vec<u64> = second
            .sent
            .borrow()
            .iter()
            .take(4)
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(resent, [2, 3, 4, 5]);
        assert!(seen.iter().all(RoundTrip::is_correct));
        let measurement = run.finish();
        assert_eq!(
            (measurement.round_trips.len(), measurement.resends),
            (10, 4)
        );
        Ok(())
    }

    #[test]
    fn ignores_unknown_ids_missing_ids_and_duplicates() -> Result<()> {
        let transport = FakeTransport::new(|_, _| Answer::Correct);
        transport.inject.borrow_mut().extend([
            value_reply("from-another-run", "1".into()),
            Event::Reply {
                correlation_id: None,
                reply: Reply::Value("0".into()),
            },
        ]);
        let mut run = Run::new(plan(0..3, 1));
        let mut seen = drive(&mut run, &transport, 0)?;
        assert_eq!(seen.len(), 3);
        // A late duplicate of an answered request changes nothing either:
        // the next run on the same transport would ignore it, and so does
        // this one, which has nothing outstanding.
        transport
            .inject
            .borrow_mut()
            .push_back(value_reply("s0-0", f(0)));
        seen.extend(drive(&mut run, &transport, 0)?);
        assert_eq!(seen.len(), 3);
        assert_eq!(run.finish().round_trips.len(), 3);
        Ok(())
    }

    #[test]
    fn a_reply_to_an_earlier_copy_answers_the_request_once() -> Result<()> {
        // n = 1's first copy is answered late, after its resend went out;
        // the resend's own reply then arrives as a duplicate.
        let transport = FakeTransport::new(|n, copy| match (n, copy) {
            (1, 0) => Answer::Silent,
            _ => Answer::Correct,
        });
        let mut run = Run::new(plan(0..3, 1));
        let mut observed = Vec::new();
        let mut observer = |trip: &RoundTrip, _: &Reply| observed.push(trip.clone());
        // Deliver the late first copy ahead of the resend's reply.
        let late = RefCell::new(false);
        struct LateFirstCopy<'a> {
            inner: &'a FakeTransport,
            late: &'a RefCell<bool>,
        }
        impl RpcTransport for LateFirstCopy<'_> {
            fn send(&self, n: u64) -> Result<String> {
                let id = self.inner.send(n)?;
                if n == 1 && self.inner.copies_of(1) == 2 && !*self.late.borrow() {
                    *self.late.borrow_mut() = true;
                    let first = self.inner.sent.borrow()[1].1.clone();
                    self.inner
                        .inject
                        .borrow_mut()
                        .push_back(value_reply(&first, f(1)));
                }
                Ok(id)
            }
            fn next_event(&self, deadline: Instant) -> Result<Event> {
                self.inner.next_event(deadline)
            }
        }
        let wrapper = LateFirstCopy {
            inner: &transport,
            late: &late,
        };
        run.drive(&wrapper, 0, &mut observer)?;
        let ones: Vec<&RoundTrip> = observed.iter().filter(|t| t.n == 1).collect();
        assert_eq!(ones.len(), 1, "{observed:?}");
        assert_eq!(ones[0].correlation_id, "s0-1", "answered by the first copy");
        assert!(observed.iter().all(RoundTrip::is_correct));
        let measurement = run.finish();
        assert_eq!((measurement.round_trips.len(), measurement.resends), (3, 1));
        Ok(())
    }

    #[test]
    fn judges_wrong_values_and_error_replies() {
        assert_eq!(judge(&Reply::Value("55".into()), "55"), Verdict::Correct);
        assert_eq!(
            judge(&Reply::Value("56".into()), "55"),
            Verdict::Wrong { got: "56".into() }
        );
        let refused = Reply::Error {
            code: "too-large".into(),
            message: "no".into(),
        };
        assert!(
            matches!(judge(&refused, "55"), Verdict::Refused { code, .. } if code == "too-large")
        );
    }
}
