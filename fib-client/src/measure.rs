//! The measurement loop. It keeps up to `inflight` requests outstanding
//! (1: strictly one after another), times each round trip, resends what
//! timed out or what a lost connection took with it, and knows nothing of
//! printing: an [`Observer`] sees each finished round trip.
//!
//! Closed loop (no rate): a request goes out as soon as one finishes, and
//! its latency runs from its first publish. Open loop (`rate`): request i is
//! *due* at t0 + i/rate and goes out then, or as soon as fewer than
//! `inflight` are outstanding if it cannot; its *corrected* latency runs from
//! when it was due, so a stall that held sends back shows in the tail
//! (coordinated omission), and its *as-sent* latency from when it went out.
//!
//! A [`Run`] outlives connections: after a reconnection the caller hands it
//! the new session and it resends every request still outstanding (Fibonacci
//! is idempotent). Each send gets a fresh correlation id; a reply to any of a
//! request's ids answers it, and later duplicates are ignored.
//!
//! Time comes from the transport (`RpcTransport::now`), so that tests can
//! simulate a stall of known length without waiting for it.
//!
//! While the broker blocks the connection (a resource alarm) nothing is
//! sent and no reply is overdue: the broker reads nothing meanwhile, and
//! when the block lifts every outstanding request gets its whole timeout
//! again, so nothing is resent because of a block. A broker tells a
//! connection it is blocked only when it publishes; a client waiting for
//! replies that the alarm holds back publishes nothing. So before resending
//! anything that timed out, the run sends a probe (a message that routes
//! nowhere, see `RpcTransport::probe`): a blocked connection learns of its
//! block, a free one gets the probe back and resends. Requests due during a
//! block go out when it lifts, late (the corrected view shows it). A block
//! longer than `Plan::max_blocked` ends the run.

use crate::rpc::{Event, RpcTransport};
use crate::stats;
use crate::workload::{Expectations, Workload};
use anyhow::Result;
use common::blocking::{self, Blocking};
use common::failure::Failure;
use common::protocol::Reply;
use hdrhistogram::Histogram;
use log::{debug, warn};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How often a run blocked with no `--max-blocked` wakes up for nothing.
const BLOCKED_WAKE_UP: Duration = Duration::from_secs(60);

/// The longest wait for a probe's answer (or the request timeout, if
/// shorter) before resending anyway: a broker that answers neither is
/// probably gone, which heartbeats will tell.
const PROBE_WAIT: Duration = Duration::from_secs(5);

/// When to stop sending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this many measured requests.
    Count(u64),
    /// Once this long has passed since the first measured request (was due).
    After(Duration),
}

/// What to send and how patiently.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub workload: Workload,
    pub stop: Stop,
    /// Requests sent and checked first, but not counted.
    pub warmup: u64,
    /// Requests per second (open loop); None: closed loop.
    pub rate: Option<f64>,
    /// Requests outstanding at once, at least 1.
    pub inflight: usize,
    /// Wait for each reply at most this long before resending.
    pub timeout: Duration,
    /// Resends of a timed-out request before giving up.
    pub retries: u32,
    /// Call `Observer::tick` this often.
    pub tick: Option<Duration>,
    /// How long the broker may block the connection before the run ends
    /// (None: as long as it likes).
    pub max_blocked: Option<Duration>,
}

impl Plan {
    /// The longest latency the histograms record as itself: twice what one
    /// request may wait for its copies (`timeout × (retries + 1)`, as long
    /// again to reconnect) plus, in an open loop, the run's length (a
    /// request may be sent that much after it was due), plus
    /// `--max-blocked` (a block holds replies back that long), an hour at
    /// least. Only reconnections over and over, or a block with no bound,
    /// can go beyond it: those latencies are recorded at the ceiling and
    /// counted as clamped.
    pub fn latency_ceiling(&self) -> Duration {
        let attempts = f64::from(self.retries) + 1.0;
        let blocked = self.max_blocked.map_or(0.0, |limit| limit.as_secs_f64());
        let waiting = 2.0 * self.timeout.as_secs_f64() * attempts + blocked;
        let length = match (self.stop, self.rate) {
            (_, None) => 0.0,
            (Stop::After(length), Some(_)) => length.as_secs_f64(),
            (Stop::Count(count), Some(rate)) => count.saturating_add(self.warmup) as f64 / rate,
        };
        Duration::try_from_secs_f64(waiting + length).unwrap_or(Duration::MAX)
    }
}

/// One request and what came back. Times are offsets from the run's origin
/// (when it started driving).
#[derive(Debug, Clone)]
pub struct RoundTrip {
    pub n: u64,
    /// The id the answering reply carried (empty when unanswered).
    pub correlation_id: String,
    /// When it should have gone out: its send time in a closed loop.
    pub due: Duration,
    /// Its first publish.
    pub sent: Duration,
    /// Its reply (or when it was given up, for `Verdict::Unanswered`).
    pub replied: Duration,
    /// Copies published after the first.
    pub resends: u32,
    /// A warm-up request: checked, not counted.
    pub warmup: bool,
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
    /// Still outstanding when the run stopped waiting (Ctrl-C, the end of
    /// `--duration`, or a failure that ended it).
    Unanswered,
}

impl Verdict {
    /// One word, for per-request records.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::Wrong { .. } => "wrong",
            Verdict::Refused { .. } => "refused",
            Verdict::Unanswered => "unanswered",
        }
    }
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
            Verdict::Unanswered => f.write_str("no reply before the run stopped"),
        }
    }
}

impl RoundTrip {
    pub fn is_correct(&self) -> bool {
        self.verdict == Verdict::Correct
    }

    /// From when it was due to its reply (the corrected view).
    pub fn latency(&self) -> Duration {
        self.replied.saturating_sub(self.due)
    }

    /// From its first publish to its reply (the as-sent view).
    pub fn as_sent(&self) -> Duration {
        self.replied.saturating_sub(self.sent)
    }
}

/// Sees a run as it goes.
pub trait Observer {
    /// A request was answered (warm-up ones too).
    fn round_trip(&mut self, round_trip: &RoundTrip, reply: &Reply);
    /// A request was given up on when the run stopped waiting.
    fn unanswered(&mut self, _round_trip: &RoundTrip) {}
    /// `count` requests were due when the run stopped sending but never
    /// went out. Only their number: an overloaded run may have billions,
    /// and their due times say nothing more than it does.
    fn unsent(&mut self, _count: u64) {}
    /// `Plan::tick` has passed again; `at` is an offset from the origin.
    fn tick(&mut self, _at: Duration) {}
    /// A request went out for the first time.
    fn sent(&mut self, _warmup: bool) {}
    /// A request went out again (after a timeout or a lost connection).
    fn resent(&mut self, _warmup: bool) {}
    /// The broker blocked the connection for `Some(reason)`, or unblocked
    /// it (None).
    fn blocked(&mut self, _reason: Option<&str>) {}
    /// The connection was lost and the run is reconnecting (true), or a
    /// new session has begun (false).
    fn reconnecting(&mut self, _reconnecting: bool) {}
}

impl<F: FnMut(&RoundTrip, &Reply)> Observer for F {
    fn round_trip(&mut self, round_trip: &RoundTrip, reply: &Reply) {
        self(round_trip, reply)
    }
}

/// How well an open loop kept to its schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// The requests per second asked for.
    pub asked: f64,
    /// Measured requests sent after their due time by more than `late_by`.
    pub late_sends: u64,
    /// max(1/rate, 1 ms): what counts as late.
    pub late_by: Duration,
    /// The largest delay between a request's due time and its send.
    pub max_lag: Duration,
    /// From the first measured request's due time to when sending ended:
    /// the end of the last send's slot (its due time + 1/rate) or, if later,
    /// the last send itself or when the run stopped sending (Ctrl-C, the
    /// end of `--duration`). `Measurement::sent` over this is the achieved
    /// rate, equal to the asked one when the schedule held.
    pub send_window: Duration,
}

/// What a run measured. Warm-up requests are left out of every figure.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Measured requests sent (each once, however often resent).
    pub sent: u64,
    /// Of those, answered.
    pub answered: u64,
    pub correct: u64,
    /// Sent, but given up on when the run stopped waiting.
    pub unanswered: u64,
    /// Due (open loop) before the run stopped sending, but never sent: the
    /// clearest sign of overload. Not in `sent`, nor in any histogram.
    pub unsent: u64,
    /// Corrected latencies (due to reply), µs; as-sent in a closed loop.
    pub corrected: Histogram<u64>,
    /// First publish to reply, µs.
    pub as_sent: Histogram<u64>,
    /// Requests whose latency was above the histograms' ceiling
    /// (`Plan::latency_ceiling`), recorded at the ceiling.
    pub clamped: u64,
    /// From the first measured request (due) to the last measured reply
    /// (with none, to when the run stopped sending or its last send).
    pub total: Duration,
    /// Requests published again, after a timeout or a lost connection.
    pub resends: u64,
    pub warmup: u64,
    /// Open loop only.
    pub schedule: Option<Schedule>,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    /// Times the broker blocked the connection (resource alarms).
    pub blocks: u64,
    /// Time spent blocked, over all blocks.
    pub blocked: Duration,
}

struct Pending {
    due: Instant,
    first_sent: Instant,
    deadline: Instant,
    /// Resends after timeouts so far (reconnections do not count).
    retries: u32,
    /// Copies published after the first, for any reason.
    resends: u32,
    /// The session its latest copy went out on.
    session: u64,
    /// Every correlation id it was sent with.
    ids: Vec<String>,
    n: u64,
    warmup: bool,
}

/// A run in progress.
pub struct Run {
    plan: Plan,
    /// The expected replies, computed ahead off this thread: nothing is
    /// computed between a request's timestamps.
    expected: Expectations,
    /// Requests issued so far, warm-up included: the next one's index.
    issued: u64,
    /// The schedule's t0, set by the first `drive`.
    origin: Option<Instant>,
    /// When the first measured request was due (sent, in a closed loop).
    measure_start: Option<Instant>,
    last_measured_send: Option<Instant>,
    last_measured_reply: Option<Instant>,
    /// When the run stopped sending before it ran out of requests: Ctrl-C,
    /// or the end of `--duration`. From then on nothing is sent or resent,
    /// and what is outstanding is awaited up to its deadline.
    stopped_sending: Option<Instant>,
    next_tick: Option<Instant>,
    interrupted: bool,
    /// Outstanding requests by index.
    pending: BTreeMap<u64, Pending>,
    by_id: HashMap<String, u64>,
    measurement: Measurement,
    /// The broker's blocks of the connection (on every session).
    blocking: Blocking,
    /// A probe is out, unanswered; resend at this time without an answer.
    probe: Option<Instant>,
}

impl Run {
    pub fn new(plan: Plan) -> Run {
        let schedule = plan.rate.map(|asked| Schedule {
            asked,
            late_sends: 0,
            late_by: Duration::from_secs_f64(1.0 / asked).max(Duration::from_millis(1)),
            max_lag: Duration::ZERO,
            send_window: Duration::ZERO,
        });
        let total = match plan.stop {
            Stop::Count(count) => Some(count.saturating_add(plan.warmup)),
            Stop::After(_) => None,
        };
        Run {
            expected: Expectations::new(&plan.workload, plan.warmup, total),
            measurement: Measurement {
                sent: 0,
                answered: 0,
                correct: 0,
                unanswered: 0,
                unsent: 0,
                corrected: stats::histogram_up_to(plan.latency_ceiling()),
                as_sent: stats::histogram_up_to(plan.latency_ceiling()),
                clamped: 0,
                total: Duration::ZERO,
                resends: 0,
                warmup: plan.warmup,
                schedule,
                interrupted: false,
                blocks: 0,
                blocked: Duration::ZERO,
            },
            plan,
            issued: 0,
            origin: None,
            measure_start: None,
            last_measured_send: None,
            last_measured_reply: None,
            stopped_sending: None,
            next_tick: None,
            interrupted: false,
            pending: BTreeMap::new(),
            by_id: HashMap::new(),
            blocking: Blocking::default(),
            probe: None,
        }
    }

    /// Stops sending new requests at `now`, as Ctrl-C does; what is
    /// outstanding is still awaited, up to its deadline.
    pub fn interrupt(&mut self, now: Instant, observer: &mut dyn Observer) {
        self.interrupted = true;
        self.stop_sending(now, observer);
    }

    /// Whether the run has started driving (its schedule's t0 is set).
    pub fn started(&self) -> bool {
        self.origin.is_some()
    }

    /// Ends a run that failed at `now`: nothing more is sent, what was due
    /// and not sent is counted unsent, and what is outstanding is given up
    /// as unanswered (and shown to `observer`), so that its summary tells
    /// what was done.
    pub fn end_after_failure(&mut self, now: Instant, observer: &mut dyn Observer) {
        self.stop_sending(now, observer);
        self.give_up_outstanding(now, observer);
    }

    fn give_up_outstanding(&mut self, now: Instant, observer: &mut dyn Observer) {
        let outstanding: Vec<u64> = self.pending.keys().copied().collect();
        for index in outstanding {
            self.give_up(index, now, observer);
        }
    }

    /// Sending ends at `at`: requests due before then and not sent are
    /// counted (and shown to `observer`) as unsent.
    fn stop_sending(&mut self, at: Instant, observer: &mut dyn Observer) {
        if self.stopped_sending.is_some() {
            return;
        }
        self.stopped_sending = Some(at);
        let first = self.issued.max(self.plan.warmup);
        let unsent = self.due_before(at).saturating_sub(first);
        self.measurement.unsent += unsent;
        if unsent > 0 {
            observer.unsent(unsent);
        }
    }

    /// With `--duration`: once its time is up (or, in an open loop, once no
    /// request is due before its end), the run stops sending.
    fn close_window(&mut self, now: Instant, observer: &mut dyn Observer) {
        let Some(end) = self.window_end() else {
            return;
        };
        let schedule_done = self.plan.rate.is_some() && self.next_due() >= end;
        if now >= end || schedule_done {
            self.stop_sending(end, observer);
        }
    }

    /// When `--duration` ends, while the run is still sending.
    fn window_end(&self) -> Option<Instant> {
        let (Stop::After(length), Some(start)) = (self.plan.stop, self.measure_start) else {
            return None;
        };
        if self.stopped_sending.is_some() {
            return None;
        }
        // Past any Instant: the window never ends.
        start.checked_add(length)
    }

    /// How many requests (warm-up included) an open loop has due before
    /// `at`, as many as the run asks for at most; 0 in a closed loop, where
    /// nothing is due until it is sent.
    fn due_before(&self, at: Instant) -> u64 {
        let (Some(rate), Some(origin)) = (self.plan.rate, self.origin) else {
            return 0;
        };
        let limit = match self.plan.stop {
            Stop::Count(count) => count.saturating_add(self.plan.warmup),
            Stop::After(_) => u64::MAX,
        };
        // From the estimate, step to the exact count under `due_of`'s rounding.
        let estimate = (at.saturating_duration_since(origin).as_secs_f64() * rate).ceil();
        let mut k = (estimate as u64).min(limit);
        while k > 0 && self.due_of(k - 1) >= at {
            k -= 1;
        }
        while k < limit && self.due_of(k) < at {
            k += 1;
        }
        k
    }

    /// Ends an interrupted run without a session: nothing more is sent, and
    /// every request still outstanding is given up (its reply died with the
    /// lost connection).
    pub fn abandon(&mut self, observer: &mut dyn Observer) {
        if !self.interrupted {
            log::info!(
                "interrupted while reconnecting: sending nothing more; {} outstanding given up",
                self.pending.len()
            );
        }
        let now = Instant::now();
        self.interrupt(now, observer);
        self.give_up_outstanding(now, observer);
    }

    /// Drives the run on one session until every request is answered.
    /// `session_number` must change with every new connection: requests last
    /// sent on an earlier one are sent again first.
    pub fn drive(
        &mut self,
        session: &dyn RpcTransport,
        session_number: u64,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        if self.origin.is_none() {
            // The schedule starts once the first expected values are ready.
            self.expected.wait_until_ahead()?;
        }
        let origin = *self.origin.get_or_insert_with(|| session.now());
        if self.next_tick.is_none() {
            self.next_tick = self.plan.tick.map(|every| origin + every);
        }
        // A new connection starts unblocked; the broker says again if not.
        self.unblocked(session.now(), observer);
        self.probe = None;
        let stranded: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.session != session_number)
            .map(|(&i, _)| i)
            .collect();
        for i in stranded {
            if self.stopped_sending.is_some() {
                // Its reply died with the old connection; nothing more is sent.
                self.give_up(i, session.now(), observer);
            } else if let Some(warmup) = self.resend(session, session_number, i)? {
                observer.resent(warmup);
            }
        }
        loop {
            self.close_window(session.now(), observer);
            // While blocked, nothing is sent, and (unless the run stopped
            // sending) no reply is overdue: only the block's own limit counts.
            let held = self.blocking.is_blocked() && self.stopped_sending.is_none();
            while self.pending.len() < self.plan.inflight && !held {
                let Some(due) = self.due_now(session.now()) else {
                    break;
                };
                let warmup = self.send_new(session, session_number, due)?;
                observer.sent(warmup);
            }
            let more = self.more_to_send(session.now());
            if self.pending.is_empty() && !more {
                return Ok(());
            }
            let mut deadline = if held {
                // Without a limit, wake now and then to look again.
                Some(
                    self.block_limit()
                        .unwrap_or_else(|| session.now() + BLOCKED_WAKE_UP),
                )
            } else if let Some(probe) = self.probe {
                Some(probe)
            } else {
                self.pending.values().map(|p| p.deadline).min()
            };
            if !held && more && self.pending.len() < self.plan.inflight {
                // Only an open loop gets here: the next request is not due yet.
                deadline = earliest(deadline, Some(self.next_due()));
            }
            deadline = earliest(deadline, self.next_tick);
            deadline = earliest(deadline, self.window_end());
            let Some(deadline) = deadline else {
                return Ok(());
            };
            match session.next_event(deadline)? {
                Event::Reply {
                    correlation_id: Some(id),
                    reply,
                } => match self.by_id.get(&id) {
                    Some(&i) => self.complete(i, id, reply, session.now(), observer)?,
                    None => debug!("ignored a reply with unknown correlation id {id:?}"),
                },
                Event::Reply { .. } => debug!("ignored a reply without correlation id"),
                Event::TimedOut if held => self.check_block_limit(session.now())?,
                Event::TimedOut => match self.probe {
                    Some(probe) if session.now() < probe => {}
                    Some(_) => {
                        // No answer: the broker is not blocking, it is slow
                        // or gone. Resend as if it had answered.
                        self.probe = None;
                        self.handle_timeouts(session, session_number, observer, true)?;
                    }
                    None => self.handle_timeouts(session, session_number, observer, false)?,
                },
                Event::ProbeAnswered => {
                    if self.probe.take().is_some() {
                        self.handle_timeouts(session, session_number, observer, true)?;
                    }
                }
                Event::Blocked(reason) => {
                    self.probe = None;
                    if self.blocking.block(&reason, session.now()) {
                        observer.blocked(Some(&reason));
                    }
                }
                Event::Unblocked => self.unblocked(session.now(), observer),
                Event::Interrupted if !self.interrupted => {
                    log::info!(
                        "interrupted: sending nothing more; waiting up to {:.1} s for the {} \
                         outstanding (a second Ctrl-C or SIGTERM quits at once)",
                        self.plan.timeout.as_secs_f64(),
                        self.pending.len()
                    );
                    self.interrupt(session.now(), observer);
                }
                Event::Interrupted => {}
            }
            self.tick(session.now(), observer);
        }
    }

    pub fn finish(mut self) -> Measurement {
        let end = self
            .last_measured_reply
            .or(self.stopped_sending)
            .or(self.last_measured_send);
        if let (Some(start), Some(end)) = (self.measure_start, end) {
            self.measurement.total = end.saturating_duration_since(start);
        }
        if let (Some(start), Some(last)) = (self.measure_start, self.last_measured_send) {
            let slot_end = self.next_due();
            let window_end = [Some(slot_end), Some(last), self.stopped_sending]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(last);
            if let Some(schedule) = self.measurement.schedule.as_mut() {
                schedule.send_window = window_end.saturating_duration_since(start);
            }
        }
        self.measurement.interrupted = self.interrupted;
        self.measurement.blocks = self.blocking.blocks();
        // A block still in force (the run ended by --max-blocked) counts
        // up to now.
        self.measurement.blocked = self.blocking.total(Instant::now());
        self.measurement
    }

    /// When the block in force has lasted `Plan::max_blocked`, if there is
    /// such a block and a limit.
    fn block_limit(&self) -> Option<Instant> {
        let (since, _) = self.blocking.current()?;
        Some(since + self.plan.max_blocked?)
    }

    /// Ends the run if the block in force has lasted too long.
    fn check_block_limit(&self, now: Instant) -> Result<()> {
        let (Some(limit), Some((since, reason))) = (self.block_limit(), self.blocking.current())
        else {
            return Ok(());
        };
        if now < limit {
            return Ok(());
        }
        let outstanding = self.pending.len() as u64;
        Err(Failure::Blocked(format!(
            "the broker has blocked the connection for {} ({}: a resource alarm), longer \
             than --max-blocked allows; {} {} outstanding",
            common::text::duration(now.saturating_duration_since(since)),
            blocking::printable(reason),
            common::text::counted(outstanding, "request"),
            if outstanding == 1 { "was" } else { "were" }
        ))
        .into())
    }

    /// The connection is no longer blocked at `now` (or a new one starts):
    /// every request still outstanding gets its whole timeout again, from
    /// now. (The block began before the broker said so, at the alarm, which
    /// the client cannot know: its replies were held back from then.)
    fn unblocked(&mut self, now: Instant, observer: &mut dyn Observer) {
        if self.blocking.unblock(now).is_none() {
            return;
        }
        let fresh = now + self.plan.timeout;
        for pending in self.pending.values_mut() {
            pending.deadline = pending.deadline.max(fresh);
        }
        observer.blocked(None);
    }

    /// Between sessions (while reconnecting): the ticks due by now, on
    /// time although no session drives the run; returns when the next is
    /// due (None without ticks, or before the run has begun).
    pub fn tick_between_sessions(&mut self, observer: &mut dyn Observer) -> Option<Instant> {
        observer.reconnecting(true);
        self.tick(Instant::now(), observer);
        self.next_tick
    }

    fn tick(&mut self, now: Instant, observer: &mut dyn Observer) {
        let (Some(every), Some(origin)) = (self.plan.tick, self.origin) else {
            return;
        };
        while let Some(at) = self.next_tick.filter(|&at| at <= now) {
            observer.tick(at.saturating_duration_since(origin));
            self.next_tick = Some(at + every);
        }
    }

    /// The due time of request `issued` in an open loop.
    fn next_due(&self) -> Instant {
        self.due_of(self.issued)
    }

    /// The due time of request `index` in an open loop: t0 + index/rate
    /// (a century on, should that not be a time).
    fn due_of(&self, index: u64) -> Instant {
        let origin = self.origin.unwrap_or_else(Instant::now);
        let Some(rate) = self.plan.rate else {
            return origin;
        };
        const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);
        Duration::try_from_secs_f64(index as f64 / rate)
            .ok()
            .and_then(|offset| origin.checked_add(offset))
            .or_else(|| origin.checked_add(CENTURY))
            .unwrap_or(origin)
    }

    /// Whether the stop condition still allows another request at `now`
    /// (due times apart).
    fn more_to_send(&self, now: Instant) -> bool {
        if self.stopped_sending.is_some() {
            return false;
        }
        let Some(measured) = self.issued.checked_sub(self.plan.warmup) else {
            return true;
        };
        match self.plan.stop {
            Stop::Count(count) => measured < count,
            Stop::After(length) => match self.measure_start {
                None => true,
                Some(start) => {
                    let end = start.checked_add(length).unwrap_or(now);
                    now < end && (self.plan.rate.is_none() || self.next_due() < end)
                }
            },
        }
    }

    /// The due time of the next request if it may go out at `now`.
    fn due_now(&self, now: Instant) -> Option<Instant> {
        if !self.more_to_send(now) {
            return None;
        }
        match self.plan.rate {
            None => Some(now),
            Some(_) => Some(self.next_due()).filter(|&due| due <= now),
        }
    }

    fn send_new(
        &mut self,
        session: &dyn RpcTransport,
        session_number: u64,
        due: Instant,
    ) -> Result<bool> {
        let index = self.issued;
        let warmup = index < self.plan.warmup;
        let n = self.plan.workload.n_of(index, self.plan.warmup);
        let first_sent = session.now();
        let id = session.send(n)?;
        self.issued += 1;
        if !warmup {
            self.measurement.sent += 1;
            self.measure_start.get_or_insert(due);
            self.last_measured_send = Some(first_sent);
            if let Some(schedule) = self.measurement.schedule.as_mut() {
                let lag = first_sent.saturating_duration_since(due);
                schedule.max_lag = schedule.max_lag.max(lag);
                if lag > schedule.late_by {
                    schedule.late_sends += 1;
                }
            }
        }
        self.by_id.insert(id.clone(), index);
        self.pending.insert(
            index,
            Pending {
                due,
                first_sent,
                deadline: first_sent + self.plan.timeout,
                retries: 0,
                resends: 0,
                session: session_number,
                ids: vec![id],
                n,
                warmup,
            },
        );
        Ok(warmup)
    }

    /// Sends request `index` again; whether it is a warm-up one, None if it
    /// is not outstanding.
    fn resend(
        &mut self,
        session: &dyn RpcTransport,
        session_number: u64,
        index: u64,
    ) -> Result<Option<bool>> {
        let Some(n) = self.pending.get(&index).map(|p| p.n) else {
            return Ok(None);
        };
        let id = session.send(n)?;
        let mut warmup = None;
        if let Some(pending) = self.pending.get_mut(&index) {
            warmup = Some(pending.warmup);
            if !pending.warmup {
                self.measurement.resends += 1;
            }
            pending.deadline = session.now() + self.plan.timeout;
            pending.session = session_number;
            pending.resends += 1;
            pending.ids.push(id.clone());
        }
        self.by_id.insert(id, index);
        Ok(warmup)
    }

    /// Resends (or gives up) what is overdue; with a probe first unless
    /// `probed` (the broker answered one since, or never did).
    fn handle_timeouts(
        &mut self,
        session: &dyn RpcTransport,
        session_number: u64,
        observer: &mut dyn Observer,
        probed: bool,
    ) -> Result<()> {
        let now = session.now();
        // A timeout after the end of `--duration` gives up, never resends.
        self.close_window(now, observer);
        let overdue: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(&i, _)| i)
            .collect();
        let resending = self.stopped_sending.is_none();
        if !overdue.is_empty() && !probed && resending && session.probe()? {
            self.probe = Some(now + PROBE_WAIT.min(self.plan.timeout));
            return Ok(());
        }
        for i in overdue {
            if self.stopped_sending.is_some() {
                self.give_up(i, now, observer);
                continue;
            }
            let Some(pending) = self.pending.get_mut(&i) else {
                continue;
            };
            let n = pending.n;
            if pending.retries >= self.plan.retries {
                return Err(Failure::Timeout(format!(
                    "no reply to the request for n={n} within {:.1} s, sent {}; \
                     is fib-server running?",
                    self.plan.timeout.as_secs_f64(),
                    common::text::counted(pending.ids.len() as u64, "time")
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
            if let Some(warmup) = self.resend(session, session_number, i)? {
                observer.resent(warmup);
            }
        }
        Ok(())
    }

    fn take(&mut self, index: u64) -> Option<Pending> {
        let pending = self.pending.remove(&index)?;
        for id in &pending.ids {
            self.by_id.remove(id);
        }
        Some(pending)
    }

    fn round_trip(
        &self,
        pending: &Pending,
        correlation_id: String,
        at: Instant,
        verdict: Verdict,
    ) -> RoundTrip {
        let origin = self.origin.unwrap_or(pending.due);
        let offset = |t: Instant| t.saturating_duration_since(origin);
        RoundTrip {
            n: pending.n,
            correlation_id,
            due: offset(pending.due),
            sent: offset(pending.first_sent),
            replied: offset(at),
            resends: pending.resends,
            warmup: pending.warmup,
            verdict,
        }
    }

    fn give_up(&mut self, index: u64, now: Instant, observer: &mut dyn Observer) {
        let Some(pending) = self.take(index) else {
            return;
        };
        self.expected.discard(index);
        let round_trip = self.round_trip(&pending, String::new(), now, Verdict::Unanswered);
        if !pending.warmup {
            self.measurement.unanswered += 1;
        }
        observer.unanswered(&round_trip);
    }

    fn complete(
        &mut self,
        index: u64,
        correlation_id: String,
        reply: Reply,
        now: Instant,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let Some(pending) = self.take(index) else {
            return Ok(());
        };
        // Ready long before (see `workload`); `now` is already taken.
        let expected = self.expected.take(index)?;
        let verdict = judge(&reply, &expected);
        let round_trip = self.round_trip(&pending, correlation_id, now, verdict);
        if !pending.warmup {
            let m = &mut self.measurement;
            m.answered += 1;
            self.last_measured_reply = Some(now);
            if round_trip.is_correct() {
                m.correct += 1;
            }
            let clamped = stats::record(&mut m.corrected, round_trip.latency())
                | stats::record(&mut m.as_sent, round_trip.as_sent());
            m.clamped += u64::from(clamped);
        }
        observer.round_trip(&round_trip, &reply);
        Ok(())
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
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
    use std::ops::Range;

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
            stop: Stop::Count(requests.end - requests.start),
            workload: Workload::Cycle(requests),
            warmup: 0,
            rate: None,
            inflight,
            timeout: Duration::from_millis(20),
            retries: 2,
            tick: None,
            max_blocked: None,
        }
    }

    fn drive(run: &mut Run, transport: &dyn RpcTransport, session: u64) -> Result<Vec<RoundTrip>> {
        let mut seen = Vec::new();
        run.drive(transport, session, &mut |trip: &RoundTrip, _: &Reply| {
            seen.push(trip.clone())
        })?;
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
        assert_eq!((measurement.answered, measurement.resends), (50, 0));
        Ok(())
    }

    #[test]
    fn keeps_inflight_requests_outstanding() -> Result<()> {
        let transport = FakeTransport::new(|_, _| Answer::Correct);
        let mut run = Run::new(plan(0..40, 8));
        drive(&mut run, &transport, 0)?;
        // The first event is only awaited once eight requests are out.
        assert_eq!(transport.sent.borrow().len(), 40);
        assert_eq!(run.finish().answered, 40);
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
        assert_eq!((measurement.answered, measurement.resends), (6, 1));
        // Its latency runs from the first copy, so it includes the timeout.
        let three = seen.iter().find(|t| t.n == 3).expect("n = 3 answered");
        assert!(three.latency() >= Duration::from_millis(20));
        assert_eq!(three.resends, 1);
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
    fn warmup_resends_are_not_counted() -> Result<()> {
        // The warm-up request for n = 1 loses its first copy and is resent;
        // the measured one for n = 1 (its third copy) is answered at once.
        let transport = FakeTransport::new(|n, copy| match (n, copy) {
            (1, 0) => Answer::Silent,
            _ => Answer::Correct,
        });
        let mut run = Run::new(Plan {
            warmup: 2,
            ..plan(0..3, 1)
        });
        let seen = drive(&mut run, &transport, 0)?;
        assert_eq!(transport.copies_of(1), 3);
        assert!(seen.iter().all(RoundTrip::is_correct));
        let measurement = run.finish();
        assert_eq!((measurement.answered, measurement.resends), (3, 0));
        Ok(())
    }

    /// A server that answers at once from replies computed before the run,
    /// on the real clock: whatever a round trip measures is the client's.
    struct InstantServer {
        digits: HashMap<u64, String>,
        replies: RefCell<VecDeque<Event>>,
        sent: Cell<usize>,
    }

    impl RpcTransport for InstantServer {
        fn send(&self, n: u64) -> Result<String> {
            let id = format!("i-{}", self.sent.get());
            self.sent.set(self.sent.get() + 1);
            let digits = self.digits.get(&n).cloned().unwrap_or_default();
            self.replies
                .borrow_mut()
                .push_back(value_reply(&id, digits));
            Ok(id)
        }

        fn next_event(&self, deadline: Instant) -> Result<Event> {
            if let Some(reply) = self.replies.borrow_mut().pop_front() {
                return Ok(reply);
            }
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            Ok(Event::TimedOut)
        }
    }

    #[test]
    fn no_computation_sits_inside_a_round_trip() -> Result<()> {
        // A cycle of two large n, wrapped twice, after a warm-up: each wrap
        // and the restart after the warm-up used to compute F(start) and
        // F(start + 1) afresh, between a request's timestamps.
        let start = 200_000;
        let computing = Instant::now();
        let first = fib_math::fibonacci_decimal(start);
        let cost = computing.elapsed();
        let server = InstantServer {
            digits: HashMap::from([
                (start, first),
                (start + 1, fib_math::fibonacci_decimal(start + 1)),
            ]),
            replies: RefCell::default(),
            sent: Cell::new(0),
        };
        for rate in [None, Some(50.0)] {
            let mut run = Run::new(Plan {
                warmup: 1,
                stop: Stop::Count(6),
                rate,
                ..plan(start..start + 2, 1)
            });
            let seen = drive(&mut run, &server, 0)?;
            assert!(seen.iter().all(RoundTrip::is_correct));
            let m = run.finish();
            assert_eq!(m.correct, 6);
            // F(start) alone took `cost`. Each wrap and the restart used to
            // cost twice that inside four of the six round trips; now they
            // are all far below it (the median: one round trip that a busy
            // machine preempts must not fail the test).
            let median = Duration::from_micros(m.corrected.value_at_quantile(0.5));
            assert!(
                median * 4 < cost,
                "{rate:?}: median round trip {median:?}, F({start}) computed in {cost:?}"
            );
        }
        Ok(())
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
        assert_eq!((measurement.answered, measurement.resends), (10, 4));
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
        assert_eq!(run.finish().answered, 3);
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
        assert_eq!((measurement.answered, measurement.resends), (3, 1));
        Ok(())
    }

    /// A broker and one server in simulated time: the server takes `service`
    /// per request, one at a time in arrival order, and starts nothing while
    /// paused (`stall`: from, to). Waiting moves the clock instead of
    /// sleeping, so a stall of a second costs the test nothing.
    struct SimTransport {
        base: Instant,
        now: Cell<Duration>,
        service: Duration,
        stall: Option<(Duration, Duration)>,
        server_free: Cell<Duration>,
        /// Replies in the order the server finishes them (time order).
        replies: RefCell<VecDeque<(Duration, Event)>>,
        /// (n, when) of every publish.
        sent: RefCell<Vec<(u64, Duration)>>,
        /// Ctrl-C at this time.
        interrupt_at: Cell<Option<Duration>>,
        /// The broker blocks both connections (from, to): it reads nothing,
        /// so requests reach the server and replies the client at `to`. As
        /// a real broker, it tells the client only once it publishes then.
        block: Option<(Duration, Duration)>,
        /// Blocked/Unblocked notifications and probe answers still to hand
        /// out, in time order.
        notifications: RefCell<VecDeque<(Duration, Event)>>,
        block_told: Cell<bool>,
        probes: Cell<u32>,
    }

    impl SimTransport {
        fn new(service: Duration) -> SimTransport {
            SimTransport {
                base: Instant::now(),
                now: Cell::new(Duration::ZERO),
                service,
                stall: None,
                server_free: Cell::new(Duration::ZERO),
                replies: RefCell::default(),
                sent: RefCell::default(),
                interrupt_at: Cell::new(None),
                block: None,
                notifications: RefCell::default(),
                block_told: Cell::new(false),
                probes: Cell::new(0),
            }
        }

        fn blocked(service: Duration, from: Duration, to: Duration) -> SimTransport {
            SimTransport {
                block: Some((from, to)),
                ..SimTransport::new(service)
            }
        }

        /// A publish at the current time: during the block, the first one
        /// makes the broker say so. Returns whether it is blocked.
        fn published(&self) -> bool {
            let now = self.now.get();
            match self.block {
                Some((from, to)) if now >= from && now < to => {
                    if !self.block_told.replace(true) {
                        let mut notifications = self.notifications.borrow_mut();
                        notifications.push_front((now, Event::Blocked("low on memory".into())));
                        notifications.push_back((to, Event::Unblocked));
                    }
                    true
                }
                _ => false,
            }
        }

        /// When something published at `t` gets through the broker.
        fn through(&self, t: Duration) -> Duration {
            match self.block {
                Some((from, to)) if t >= from && t < to => to,
                _ => t,
            }
        }

        fn advance_to(&self, t: Duration) {
            self.now.set(self.now.get().max(t));
        }
    }

    impl RpcTransport for SimTransport {
        fn probe(&self) -> Result<bool> {
            self.probes.set(self.probes.get() + 1);
            if !self.published() {
                let now = self.now.get();
                self.notifications
                    .borrow_mut()
                    .push_front((now, Event::ProbeAnswered));
            }
            Ok(true)
        }

        fn send(&self, n: u64) -> Result<String> {
            let now = self.now.get();
            self.published();
            let id = format!("sim-{}", self.sent.borrow().len());
            self.sent.borrow_mut().push((n, now));
            let mut start = self.through(now).max(self.server_free.get());
            if let Some((from, to)) = self.stall {
                if start >= from && start < to {
                    start = to;
                }
            }
            let done = start + self.service;
            self.server_free.set(done);
            self.replies
                .borrow_mut()
                .push_back((self.through(done), value_reply(&id, f(n))));
            Ok(id)
        }

        fn next_event(&self, deadline: Instant) -> Result<Event> {
            let deadline = deadline.saturating_duration_since(self.base);
            let next_reply = self.replies.borrow().front().map(|(t, _)| *t);
            let next_notification = self.notifications.borrow().front().map(|(t, _)| *t);
            if let Some(at) = next_notification {
                if at <= deadline && next_reply.is_none_or(|t| at <= t) {
                    self.advance_to(at);
                    let (_, event) = self.notifications.borrow_mut().pop_front().expect("peeked");
                    return Ok(event);
                }
            }
            if let Some(at) = self.interrupt_at.get() {
                if at <= deadline && next_reply.is_none_or(|t| at <= t) {
                    self.interrupt_at.set(None);
                    self.advance_to(at);
                    return Ok(Event::Interrupted);
                }
            }
            match next_reply {
                Some(t) if t <= deadline => {
                    self.advance_to(t);
                    let (_, event) = self.replies.borrow_mut().pop_front().expect("peeked");
                    Ok(event)
                }
                _ => {
                    self.advance_to(deadline);
                    Ok(Event::TimedOut)
                }
            }
        }

        fn now(&self) -> Instant {
            self.base + self.now.get()
        }
    }

    fn open_loop(count: u64, rate: f64, inflight: usize) -> Plan {
        Plan {
            rate: Some(rate),
            timeout: Duration::from_secs(10),
            ..plan(0..count, inflight)
        }
    }

    #[test]
    fn open_loop_sends_request_i_at_t0_plus_i_over_rate() -> Result<()> {
        let sim = SimTransport::new(Duration::from_micros(100));
        let mut run = Run::new(open_loop(20, 1000.0, 4));
        let mut seen = drive(&mut run, &sim, 0)?;
        let times: Vec<Duration> = sim.sent.borrow().iter().map(|(_, t)| *t).collect();
        let due: Vec<Duration> = (0..20).map(Duration::from_millis).collect();
        assert_eq!(times, due);
        seen.sort_by_key(|t| t.n);
        assert!(seen.iter().all(|t| t.is_correct() && t.due == t.sent));
        let m = run.finish();
        let schedule = m.schedule.expect("open loop");
        assert_eq!((schedule.late_sends, schedule.max_lag), (0, Duration::ZERO));
        assert_eq!(
            schedule.send_window,
            Duration::from_millis(20),
            "20 slots of 1 ms"
        );
        assert_eq!((m.corrected.max(), m.as_sent.max()), (100, 100));
        Ok(())
    }

    #[test]
    fn a_stall_shows_in_the_corrected_p99_and_not_in_the_as_sent_one() -> Result<()> {
        // 1000 requests at 100/s (10 s), one outstanding at most, 1 ms each;
        // the server is paused for one second from t = 2.005 s. The request
        // due at 2.01 s waits out the pause; the 99 due after it cannot be
        // sent until it is answered, then go out late, back to back.
        let mut sim = SimTransport::new(Duration::from_millis(1));
        sim.stall = Some((Duration::from_millis(2005), Duration::from_millis(3005)));
        let mut run = Run::new(open_loop(1000, 100.0, 1));
        drive(&mut run, &sim, 0)?;
        let m = run.finish();
        let ms = |us: u64| us as f64 / 1000.0;
        let corrected_p99 = ms(m.corrected.value_at_quantile(0.99));
        let as_sent_p99 = ms(m.as_sent.value_at_quantile(0.99));
        // The top 1% of corrected latencies are the first ten delayed
        // requests: 996 ms down to about 907 ms.
        assert!(corrected_p99 > 900.0, "corrected p99 {corrected_p99} ms");
        assert!(as_sent_p99 < 1.01, "as-sent p99 {as_sent_p99} ms");
        // Both views see the one request that sat through the stall.
        assert!(ms(m.as_sent.max()) > 990.0 && ms(m.corrected.max()) > 990.0);
        let schedule = m.schedule.expect("open loop");
        assert!(schedule.late_sends >= 90, "{schedule:?}");
        assert!(
            schedule.max_lag >= Duration::from_millis(980),
            "{schedule:?}"
        );
        assert_eq!((m.sent, m.answered, m.correct), (1000, 1000, 1000));
        Ok(())
    }

    #[test]
    fn a_block_longer_than_the_timeout_resends_nothing_and_is_counted() -> Result<()> {
        // 40 s blocked from 205 ms, replies due in 10 ms, a 3 s timeout and
        // no retry. The request sent at 200 ms is answered at 210 ms, held
        // back by the block: the client publishes nothing until its timeout
        // at 3.2 s, when a probe tells it of the block. Without the probe
        // and the timeout given back, it would resend, or end the run.
        let sim = SimTransport::blocked(
            Duration::from_millis(10),
            Duration::from_millis(205),
            Duration::from_secs(40),
        );
        let mut run = Run::new(Plan {
            timeout: Duration::from_secs(3),
            retries: 0,
            ..plan(0..100, 1)
        });
        struct Seen(Vec<Option<String>>);
        impl Observer for Seen {
            fn round_trip(&mut self, _: &RoundTrip, _: &Reply) {}
            fn blocked(&mut self, reason: Option<&str>) {
                self.0.push(reason.map(str::to_string));
            }
        }
        let mut seen = Seen(Vec::new());
        run.drive(&sim, 0, &mut seen)?;
        // Nothing went out while blocked.
        let during = sim
            .sent
            .borrow()
            .iter()
            .filter(|(_, t)| *t > Duration::from_millis(205) && *t < Duration::from_secs(40))
            .count();
        assert_eq!(during, 0, "{:?}", sim.sent.borrow());
        assert_eq!(seen.0, [Some("low on memory".to_string()), None]);
        let m = run.finish();
        assert_eq!(
            (m.sent, m.answered, m.correct, m.resends),
            (100, 100, 100, 0)
        );
        assert_eq!(m.blocks, 1);
        assert!(
            (m.blocked.as_secs_f64() - 36.8).abs() < 1e-6,
            "{:?}",
            m.blocked
        );
        assert_eq!(sim.probes.get(), 1);
        Ok(())
    }

    #[test]
    fn a_timeout_without_a_block_is_resent_once_the_probe_comes_back() -> Result<()> {
        let transport = FakeTransport::new(|n, copy| match (n, copy) {
            (1, 0) => Answer::Silent,
            _ => Answer::Correct,
        });
        let sim = SimTransport::new(Duration::from_millis(1));
        // The fake server answers; the sim only answers the probe.
        struct Probed<'a>(&'a FakeTransport, &'a SimTransport);
        impl RpcTransport for Probed<'_> {
            fn send(&self, n: u64) -> Result<String> {
                self.0.send(n)
            }
            fn next_event(&self, deadline: Instant) -> Result<Event> {
                if let Some((_, event)) = self.1.notifications.borrow_mut().pop_front() {
                    return Ok(event);
                }
                self.0.next_event(deadline)
            }
            fn probe(&self) -> Result<bool> {
                self.1.probe()
            }
        }
        let mut run = Run::new(plan(0..3, 1));
        let seen = drive(&mut run, &Probed(&transport, &sim), 0)?;
        assert_eq!(seen.len(), 3);
        assert_eq!(transport.copies_of(1), 2);
        assert_eq!(sim.probes.get(), 1);
        let m = run.finish();
        assert_eq!((m.resends, m.blocks), (1, 0));
        Ok(())
    }

    #[test]
    fn a_block_longer_than_max_blocked_ends_the_run_with_exit_3() {
        let sim = SimTransport::blocked(
            Duration::from_millis(10),
            Duration::from_millis(100),
            Duration::from_secs(60),
        );
        let mut run = Run::new(Plan {
            max_blocked: Some(Duration::from_secs(5)),
            ..plan(0..100, 4)
        });
        let error = drive(&mut run, &sim, 0).expect_err("blocked for 60 s");
        assert_eq!(common::exit_code(&error), common::exit::BROKER);
        assert!(
            matches!(error.downcast_ref::<Failure>(), Some(Failure::Blocked(_))),
            "{error:#}"
        );
        assert!(format!("{error:#}").contains("low on memory"), "{error:#}");
        // Told at the first send in the block (100 ms), given up 5 s later.
        assert_eq!(sim.now.get(), Duration::from_millis(5100));
    }

    #[test]
    fn an_open_loop_sends_what_fell_due_in_a_block_after_it_late() -> Result<()> {
        let sim = SimTransport::blocked(
            Duration::from_millis(1),
            Duration::from_millis(1000),
            Duration::from_millis(3000),
        );
        let mut run = Run::new(open_loop(500, 100.0, 16));
        drive(&mut run, &sim, 0)?;
        let m = run.finish();
        assert_eq!((m.answered, m.correct, m.resends), (500, 500, 0));
        let schedule = m.schedule.expect("open loop");
        // The 200 requests due in the block went out after it.
        assert!(schedule.late_sends >= 190, "{schedule:?}");
        assert!(m.corrected.max() > 1_900_000, "{}", m.corrected.max());
        Ok(())
    }

    #[test]
    fn enough_inflight_keeps_the_schedule_through_a_stall() -> Result<()> {
        // The same stall with 200 outstanding allowed: nothing is sent late,
        // so both views agree, and both show the stall.
        let mut sim = SimTransport::new(Duration::from_millis(1));
        sim.stall = Some((Duration::from_millis(2005), Duration::from_millis(3005)));
        let mut run = Run::new(open_loop(1000, 100.0, 200));
        drive(&mut run, &sim, 0)?;
        let m = run.finish();
        assert_eq!(m.schedule.map(|s| s.late_sends), Some(0));
        assert_eq!(
            m.corrected.value_at_quantile(0.99),
            m.as_sent.value_at_quantile(0.99)
        );
        assert!(m.as_sent.value_at_quantile(0.99) > 900_000);
        Ok(())
    }

    #[test]
    fn warmup_is_sent_and_checked_but_not_counted_and_the_cycle_restarts() -> Result<()> {
        let sim = SimTransport::new(Duration::from_millis(1));
        let mut run = Run::new(Plan {
            warmup: 5,
            stop: Stop::Count(10),
            ..plan(0..3, 2)
        });
        let seen = drive(&mut run, &sim, 0)?;
        let ns: Vec<u64> = sim.sent.borrow().iter().map(|(n, _)| *n).collect();
        assert_eq!(ns, [0, 1, 2, 0, 1, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(seen.iter().filter(|t| t.warmup).count(), 5);
        assert!(seen.iter().all(RoundTrip::is_correct));
        let m = run.finish();
        assert_eq!((m.sent, m.answered, m.warmup), (10, 10, 5));
        assert_eq!(m.corrected.len(), 10);
        Ok(())
    }

    #[test]
    fn fixed_n_is_checked_every_time() -> Result<()> {
        let sim = SimTransport::new(Duration::from_millis(1));
        let mut run = Run::new(Plan {
            workload: Workload::Fixed(300),
            ..plan(0..7, 3)
        });
        drive(&mut run, &sim, 0)?;
        assert!(sim.sent.borrow().iter().all(|(n, _)| *n == 300));
        let m = run.finish();
        assert_eq!((m.sent, m.correct), (7, 7));
        Ok(())
    }

    #[test]
    fn duration_stops_sending_when_the_time_is_up() -> Result<()> {
        // Open loop: due times 0, 10, ..., 990 ms fall within one second.
        let sim = SimTransport::new(Duration::from_millis(1));
        let mut run = Run::new(Plan {
            stop: Stop::After(Duration::from_secs(1)),
            ..open_loop(1, 100.0, 4)
        });
        drive(&mut run, &sim, 0)?;
        assert_eq!(run.finish().sent, 100);
        // Closed loop: 10 ms round trips, sends at 0, 10, ..., 990 ms.
        let sim = SimTransport::new(Duration::from_millis(10));
        let mut run = Run::new(Plan {
            stop: Stop::After(Duration::from_secs(1)),
            ..plan(0..50, 1)
        });
        drive(&mut run, &sim, 0)?;
        let m = run.finish();
        assert_eq!((m.sent, m.answered), (100, 100));
        assert_eq!(m.total, Duration::from_secs(1));
        Ok(())
    }

    #[test]
    fn an_overloaded_duration_run_stops_sending_at_its_end_and_counts_the_unsent() -> Result<()> {
        // 5000/s asked of a server taking 2 ms each, one outstanding: about
        // 500 go out in the second; the other 4500 due in it never do, and
        // the run ends with the second (plus the last round trip), not 10 s on.
        let sim = SimTransport::new(Duration::from_millis(2));
        let mut run = Run::new(Plan {
            stop: Stop::After(Duration::from_secs(1)),
            ..open_loop(1, 5000.0, 1)
        });
        let mut unsent = Vec::new();
        struct Watch<'a>(&'a mut Vec<u64>);
        impl Observer for Watch<'_> {
            fn round_trip(&mut self, _: &RoundTrip, _: &Reply) {}
            fn unsent(&mut self, count: u64) {
                self.0.push(count);
            }
        }
        run.drive(&sim, 0, &mut Watch(&mut unsent))?;
        let last_send = sim.sent.borrow().last().map(|(_, t)| *t).expect("sent");
        assert!(last_send < Duration::from_secs(1), "{last_send:?}");
        let m = run.finish();
        assert_eq!(m.sent, 500);
        assert_eq!((m.answered, m.unanswered), (500, 0));
        assert_eq!(m.sent + m.unsent, 5000, "every request due in the second");
        assert_eq!(unsent, [m.unsent], "told once, as a count");
        assert_eq!(m.total, Duration::from_secs(1), "to the last reply");
        let schedule = m.schedule.expect("open loop");
        assert_eq!(schedule.send_window, Duration::from_secs(1));
        Ok(())
    }

    #[test]
    fn a_billion_unsent_are_counted_not_iterated() -> Result<()> {
        // A million a second for 1000 s at a server that never answers: one
        // request goes out, the other 10^9 - 1 due are counted at once, and
        // made one by one only for an observer that iterates them (CSV).
        let mut sim = SimTransport::new(Duration::from_millis(1));
        sim.stall = Some((Duration::ZERO, Duration::from_secs(1 << 40)));
        let mut run = Run::new(Plan {
            stop: Stop::After(Duration::from_secs(1000)),
            timeout: Duration::from_secs(2000),
            ..open_loop(1, 1e6, 1)
        });
        run.drive(&sim, 0, &mut |_: &RoundTrip, _: &Reply| {})?;
        let m = run.finish();
        assert_eq!((m.sent, m.unanswered, m.unsent), (1, 1, 999_999_999));
        Ok(())
    }

    #[test]
    fn after_the_duration_what_is_outstanding_is_awaited_up_to_its_timeout_never_resent(
    ) -> Result<()> {
        // The server stops at 0.5 s for good; eight requests are outstanding
        // when the second ends, each given up at its own deadline.
        let mut sim = SimTransport::new(Duration::from_millis(1));
        sim.stall = Some((Duration::from_millis(500), Duration::from_secs(3600)));
        let mut run = Run::new(Plan {
            stop: Stop::After(Duration::from_secs(1)),
            timeout: Duration::from_secs(2),
            ..open_loop(1, 100.0, 8)
        });
        run.drive(&sim, 0, &mut |_: &RoundTrip, _: &Reply| {})?;
        let m = run.finish();
        assert_eq!((m.sent, m.answered, m.unanswered), (58, 50, 8));
        assert_eq!((m.unsent, m.resends), (42, 0));
        // Sent at 0.57 s at the latest, given up 2 s later: the run's end.
        assert_eq!(sim.now.get(), Duration::from_millis(2570));
        assert_eq!(m.total, Duration::from_millis(491), "to the last reply");
        Ok(())
    }

    #[test]
    fn a_two_hour_wait_that_the_flags_allow_is_recorded_as_itself() -> Result<()> {
        // --timeout 3000 --retries 2: a request may wait 2.5 h for a reply;
        // the server answers after 2 h. An hour-high histogram clamped it.
        let mut sim = SimTransport::new(Duration::from_millis(1));
        sim.stall = Some((Duration::ZERO, Duration::from_secs(7200)));
        let mut run = Run::new(Plan {
            timeout: Duration::from_secs(3000),
            ..plan(0..1, 1)
        });
        drive(&mut run, &sim, 0)?;
        let m = run.finish();
        assert_eq!((m.correct, m.resends, m.clamped), (1, 2, 0));
        let max = m.corrected.max() as f64;
        assert!((max - 7.2e9).abs() <= 7.2e9 * 0.001, "{max} µs");
        Ok(())
    }

    #[test]
    fn the_latency_ceiling_covers_the_run_and_every_wait() {
        let ceiling = |plan: Plan| plan.latency_ceiling().as_secs_f64();
        let base = plan(0..10, 1);
        assert_eq!(
            ceiling(Plan {
                timeout: Duration::from_secs(10),
                ..base.clone()
            }),
            60.0
        );
        let long_open_loop = Plan {
            timeout: Duration::from_secs(10),
            rate: Some(0.01),
            stop: Stop::Count(1000),
            ..base.clone()
        };
        assert_eq!(ceiling(long_open_loop), 60.0 + 100_000.0);
        let most = Plan {
            timeout: Duration::from_secs(86_400),
            retries: u32::MAX,
            rate: Some(0.01),
            stop: Stop::Count(u64::MAX),
            ..base
        };
        assert!(ceiling(most) > 1e18, "no overflow, no panic");
    }

    #[test]
    fn ctrl_c_in_a_stall_counts_what_was_due_and_not_sent() -> Result<()> {
        // The server stops at 0.45 s; two may be outstanding, so from 0.47 s
        // on nothing goes out; Ctrl-C at 0.505 s.
        let mut sim = SimTransport::new(Duration::from_millis(1));
        sim.stall = Some((Duration::from_millis(450), Duration::from_secs(3600)));
        sim.interrupt_at.set(Some(Duration::from_millis(505)));
        let mut run = Run::new(Plan {
            timeout: Duration::from_millis(300),
            ..open_loop(1000, 100.0, 2)
        });
        run.drive(&sim, 0, &mut |_: &RoundTrip, _: &Reply| {})?;
        let m = run.finish();
        assert!(m.interrupted);
        assert_eq!((m.sent, m.answered, m.unanswered), (47, 45, 2));
        assert_eq!(m.unsent, 4, "due at 0.47, 0.48, 0.49 and 0.50 s");
        assert_eq!(m.total, Duration::from_millis(441), "to the last reply");
        let window = m.schedule.expect("open loop").send_window;
        assert_eq!(
            window,
            Duration::from_millis(505),
            "sending ended with Ctrl-C"
        );
        Ok(())
    }

    #[test]
    fn interrupted_runs_stop_sending_and_give_up_what_stays_unanswered() -> Result<()> {
        // The server stops at 0.45 s for good; Ctrl-C at 0.5 s.
        let mut sim = SimTransport::new(Duration::from_millis(1));
        sim.stall = Some((Duration::from_millis(450), Duration::from_secs(3600)));
        sim.interrupt_at.set(Some(Duration::from_millis(505)));
        let mut run = Run::new(Plan {
            timeout: Duration::from_millis(300),
            ..open_loop(1000, 100.0, 8)
        });
        let mut unanswered = Vec::new();
        struct Watch<'a>(&'a mut Vec<RoundTrip>);
        impl Observer for Watch<'_> {
            fn round_trip(&mut self, _: &RoundTrip, _: &Reply) {}
            fn unanswered(&mut self, trip: &RoundTrip) {
                self.0.push(trip.clone());
            }
        }
        run.drive(&sim, 0, &mut Watch(&mut unanswered))?;
        let last_send = sim.sent.borrow().last().map(|(_, t)| *t);
        assert_eq!(
            last_send,
            Some(Duration::from_millis(500)),
            "nothing sent after Ctrl-C"
        );
        let m = run.finish();
        assert!(m.interrupted);
        // 0 .. 0.44 s answered; 0.45 .. 0.50 s outstanding, then given up
        // (not resent) when their timeout passed.
        assert_eq!((m.sent, m.answered, m.unanswered), (51, 45, 6));
        assert_eq!(m.resends, 0);
        assert_eq!(unanswered.len(), 6);
        assert!(unanswered.iter().all(|t| t.verdict == Verdict::Unanswered));
        Ok(())
    }

    #[test]
    fn ticks_fire_on_time_even_while_nothing_arrives() -> Result<()> {
        let mut sim = SimTransport::new(Duration::from_millis(1));
        sim.stall = Some((Duration::from_millis(1500), Duration::from_millis(2500)));
        let mut run = Run::new(Plan {
            tick: Some(Duration::from_secs(1)),
            ..open_loop(300, 100.0, 1)
        });
        struct Ticks(Vec<(Duration, usize)>, usize);
        impl Observer for Ticks {
            fn round_trip(&mut self, _: &RoundTrip, _: &Reply) {
                self.1 += 1;
            }
            fn tick(&mut self, at: Duration) {
                self.0.push((at, self.1));
            }
        }
        let mut ticks = Ticks(Vec::new(), 0);
        run.drive(&sim, 0, &mut ticks)?;
        // The tick at 2 s comes during the stall, with nothing new answered.
        let at: Vec<Duration> = ticks.0.iter().map(|(t, _)| *t).collect();
        assert_eq!(at, [Duration::from_secs(1), Duration::from_secs(2)]);
        assert_eq!(ticks.0[0].1, 100);
        assert_eq!(ticks.0[1].1, 150);
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

    proptest::proptest! {
        /// Whatever bytes a server sends (decoded lossily, as the client
        /// does), judging never panics, a value is correct exactly when it
        /// is the expected digits, and the verdict's text is one printable
        /// line.
        #[test]
        fn judging_any_reply_never_panics_and_is_exact(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            error_header in proptest::option::of(".{0,40}"),
            n in 0u64..300,
        ) {
            let expected = fib_math::fibonacci(n).to_string();
            let text = String::from_utf8_lossy(&body).into_owned();
            let reply = match error_header {
                Some(code) => Reply::Error { code, message: text.clone() },
                None => Reply::Value(text.clone()),
            };
            let verdict = judge(&reply, &expected);
            match &reply {
                Reply::Value(digits) => proptest::prop_assert_eq!(
                    verdict == Verdict::Correct,
                    *digits == expected
                ),
                Reply::Error { .. } => {
                    let refused = matches!(verdict, Verdict::Refused { .. });
                    proptest::prop_assert!(refused);
                }
            }
            let line = verdict.to_string();
            proptest::prop_assert!(!line.chars().any(char::is_control), "{:?}", line);
        }

        /// The expected digits themselves, sent back, are always correct.
        #[test]
        fn the_right_digits_are_correct(n in 0u64..2000) {
            let expected = fib_math::fibonacci(n).to_string();
            proptest::prop_assert_eq!(judge(&Reply::Value(expected.clone()), &expected), Verdict::Correct);
        }
    }
}
