//! Resource alarms as both programs see them. When a RabbitMQ node runs low
//! on memory or disk it sends `connection.blocked` (with a reason such as
//! "low on memory") to every connection that publishes, stops reading from
//! it, and sends `connection.unblocked` when the alarm clears. A blocked
//! connection is not broken: heartbeats still flow, and everything published
//! into it is read once the alarm lifts. So neither program reconnects
//! because of a block, and neither counts the time blocked against a wait
//! for the broker (a reply's timeout, a confirm's).
//!
//! [`Blocking`] follows one connection (`lifecycle::Session` keeps one and
//! writes the log lines; fib-client's run keeps one for its summary);
//! [`BlockedState`] is the whole program's view (any of its connections
//! blocked), a plain shareable value for metrics and readiness.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One connection's blocks: whether it is blocked now, since when and why,
/// how many blocks it has seen and for how long in all.
#[derive(Debug, Clone, Default)]
pub struct Blocking {
    now: Option<(Instant, String)>,
    blocks: u64,
    total: Duration,
    /// Where transitions are also reported, if anywhere.
    shared: Option<BlockedState>,
}

impl Blocking {
    /// A tracker that also reports to `shared` (the program's view).
    pub fn reporting_to(shared: BlockedState) -> Blocking {
        Blocking {
            now: None,
            blocks: 0,
            total: Duration::ZERO,
            shared: Some(shared),
        }
    }

    /// The broker blocked the connection at `at` for `reason`. Returns false
    /// (and changes nothing) if it already was blocked.
    pub fn block(&mut self, reason: &str, at: Instant) -> bool {
        if self.now.is_some() {
            return false;
        }
        self.now = Some((at, reason.to_string()));
        self.blocks += 1;
        if let Some(shared) = &self.shared {
            shared.connection_blocked(reason, at);
        }
        true
    }

    /// The broker unblocked the connection at `at`; returns how long the
    /// block lasted (None if it was not blocked).
    pub fn unblock(&mut self, at: Instant) -> Option<Duration> {
        let (since, _) = self.now.take()?;
        let lasted = at.saturating_duration_since(since);
        self.total += lasted;
        if let Some(shared) = &self.shared {
            shared.connection_unblocked(at);
        }
        Some(lasted)
    }

    /// The reason and start of the block in force, if any.
    pub fn current(&self) -> Option<(Instant, &str)> {
        self.now
            .as_ref()
            .map(|(since, reason)| (*since, reason.as_str()))
    }

    pub fn is_blocked(&self) -> bool {
        self.now.is_some()
    }

    /// Blocks seen so far, the one in force included.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Time blocked so far, up to `at` for a block in force.
    pub fn total(&self, at: Instant) -> Duration {
        let current = self.now.as_ref().map_or(Duration::ZERO, |(since, _)| {
            at.saturating_duration_since(*since)
        });
        self.total + current
    }
}

impl Drop for Blocking {
    /// A connection that ends while blocked no longer holds the program's
    /// view blocked.
    fn drop(&mut self) {
        if self.now.is_some() {
            if let Some(shared) = &self.shared {
                shared.connection_unblocked(Instant::now());
            }
        }
    }
}

/// What [`BlockedState::status`] tells: plain figures to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockedStatus {
    /// The broker's reason while some connection is blocked (None: none is).
    pub reason: Option<String>,
    /// Times the program went from no connection blocked to one blocked.
    pub blocks: u64,
    /// Seconds during which some connection was blocked, up to now.
    pub seconds: f64,
}

impl BlockedStatus {
    pub fn blocked(&self) -> bool {
        self.reason.is_some()
    }
}

/// The program's blocked state over all its connections (fib-server's
/// workers each have one), cheap to clone and to read from another thread.
#[derive(Debug, Clone, Default)]
pub struct BlockedState(Arc<Mutex<Shared>>);

#[derive(Debug, Default)]
struct Shared {
    /// Connections blocked now.
    blocked: usize,
    reason: String,
    since: Option<Instant>,
    blocks: u64,
    total: Duration,
}

impl BlockedState {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // The state stays consistent even if a holder panicked.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn connection_blocked(&self, reason: &str, at: Instant) {
        let mut shared = self.lock();
        if shared.blocked == 0 {
            shared.since = Some(at);
            shared.blocks += 1;
        }
        shared.blocked += 1;
        shared.reason = reason.to_string();
    }

    fn connection_unblocked(&self, at: Instant) {
        let mut shared = self.lock();
        shared.blocked = shared.blocked.saturating_sub(1);
        if shared.blocked == 0 {
            if let Some(since) = shared.since.take() {
                shared.total += at.saturating_duration_since(since);
            }
        }
    }

    /// The state now.
    pub fn status(&self) -> BlockedStatus {
        let shared = self.lock();
        let current = shared.since.map_or(Duration::ZERO, |since| since.elapsed());
        BlockedStatus {
            reason: (shared.blocked > 0).then(|| shared.reason.clone()),
            blocks: shared.blocks,
            seconds: (shared.total + current).as_secs_f64(),
        }
    }
}

/// The broker's reason, as text safe for a log line or a summary (it comes
/// off the network).
pub fn printable(reason: &str) -> String {
    crate::protocol::printable(reason, 80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_counts_once_and_lasts_until_unblocked() {
        let shared = BlockedState::default();
        let mut blocking = Blocking::reporting_to(shared.clone());
        let t0 = Instant::now();
        assert!(blocking.block("low on memory", t0));
        assert!(!blocking.block("low on memory", t0 + Duration::from_secs(1)));
        assert_eq!(blocking.blocks(), 1);
        assert_eq!(shared.status().reason.as_deref(), Some("low on memory"));
        assert_eq!(
            blocking.unblock(t0 + Duration::from_secs(3)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(blocking.unblock(t0 + Duration::from_secs(4)), None);
        assert_eq!(
            blocking.total(t0 + Duration::from_secs(9)),
            Duration::from_secs(3)
        );
        let status = shared.status();
        assert!(!status.blocked());
        assert_eq!(status.blocks, 1);
        assert!((status.seconds - 3.0).abs() < 1e-6, "{status:?}");
    }

    #[test]
    fn the_program_is_blocked_while_any_connection_is() {
        let shared = BlockedState::default();
        let mut one = Blocking::reporting_to(shared.clone());
        let mut two = Blocking::reporting_to(shared.clone());
        let t0 = Instant::now();
        one.block("low on disk", t0);
        two.block("low on disk", t0 + Duration::from_secs(1));
        one.unblock(t0 + Duration::from_secs(2));
        assert!(shared.status().blocked());
        // A connection lost while blocked releases the program's view.
        drop(two);
        let status = shared.status();
        assert!(!status.blocked());
        assert_eq!(status.blocks, 1);
    }
}
