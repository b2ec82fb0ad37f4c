//! Whether the program is ready to serve, as `/readyz` tells it: one state
//! per worker (consume loop), each an atomic byte its loop sets, and a
//! blocked flag per worker that a broker alarm sets.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

/// Where one worker is in its connection lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Opening its first connection.
    Connecting = 0,
    /// Consuming on a live connection.
    Ready = 1,
    /// Its connection was lost; backing off or connecting again.
    Reconnecting = 2,
    /// Told to stop: finishing what it holds, then ending.
    Stopping = 3,
}

impl State {
    fn from_byte(byte: u8) -> State {
        match byte {
            1 => State::Ready,
            2 => State::Reconnecting,
            3 => State::Stopping,
            _ => State::Connecting,
        }
    }

    /// The one-line reason `/readyz` gives for a worker in this state.
    pub fn reason(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Ready => "ready",
            State::Reconnecting => "reconnecting after a lost connection",
            State::Stopping => "stopping",
        }
    }
}

/// The readiness of all of a program's workers; cheap to clone (shared).
#[derive(Clone)]
pub struct Readiness {
    workers: Arc<[Worker]>,
    /// Set once a stop is asked for, and never cleared: from then on the
    /// program is stopping, whatever a worker still busy with the request
    /// in hand (or still connecting) would say of itself.
    stopping: Arc<AtomicBool>,
}

struct Worker {
    state: AtomicU8,
    blocked: AtomicBool,
}

/// What `/readyz` says when a connection is blocked.
pub const BLOCKED: &str = "blocked by a broker alarm";

impl Readiness {
    /// `workers` workers (at least one), all connecting.
    pub fn new(workers: usize) -> Readiness {
        let workers = (0..workers.max(1))
            .map(|_| Worker {
                state: AtomicU8::new(State::Connecting as u8),
                blocked: AtomicBool::new(false),
            })
            .collect();
        Readiness {
            workers,
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A stop has been asked for: every worker is stopping from now on,
    /// before any of them has finished what it holds.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Worker `worker` is now in `state` (an index past the last is ignored).
    pub fn set(&self, worker: usize, state: State) {
        if let Some(w) = self.workers.get(worker) {
            w.state.store(state as u8, Ordering::Relaxed);
        }
    }

    /// Worker `worker`'s connection is blocked by a broker alarm, or no
    /// longer; whether that changed anything.
    pub fn set_blocked(&self, worker: usize, blocked: bool) -> bool {
        self.workers
            .get(worker)
            .is_some_and(|w| w.blocked.swap(blocked, Ordering::Relaxed) != blocked)
    }

    /// Ok when every worker consumes on a live, unblocked connection;
    /// otherwise the reason of the first that does not, stopping first.
    pub fn check(&self) -> Result<(), &'static str> {
        let states = || {
            self.workers
                .iter()
                .map(|w| State::from_byte(w.state.load(Ordering::Relaxed)))
        };
        if self.stopping.load(Ordering::Relaxed) || states().any(|s| s == State::Stopping) {
            return Err(State::Stopping.reason());
        }
        if let Some(state) = states().find(|s| *s != State::Ready) {
            return Err(state.reason());
        }
        if self
            .workers
            .iter()
            .any(|w| w.blocked.load(Ordering::Relaxed))
        {
            return Err(BLOCKED);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_worker_is() {
        let readiness = Readiness::new(2);
        assert_eq!(readiness.check(), Err("connecting"));
        readiness.set(0, State::Ready);
        assert_eq!(readiness.check(), Err("connecting"));
        readiness.set(1, State::Ready);
        assert_eq!(readiness.check(), Ok(()));
        assert!(readiness.set_blocked(1, true));
        assert!(!readiness.set_blocked(1, true), "no change");
        assert_eq!(readiness.check(), Err(BLOCKED));
        readiness.set(0, State::Reconnecting);
        assert_eq!(
            readiness.check(),
            Err("reconnecting after a lost connection")
        );
        readiness.set(1, State::Stopping);
        assert_eq!(readiness.check(), Err("stopping"));
        // Out of range: ignored, not a panic.
        readiness.set(7, State::Ready);
        readiness.set_blocked(7, true);
    }

    #[test]
    fn a_stop_asked_for_outlasts_what_workers_say_of_themselves() {
        let readiness = Readiness::new(2);
        readiness.set(0, State::Ready);
        readiness.set(1, State::Ready);
        assert_eq!(readiness.check(), Ok(()));
        readiness.stop();
        assert_eq!(readiness.check(), Err("stopping"));
        // A worker that reaches its consumer after the stop was asked for
        // does not make the program ready again.
        readiness.set(1, State::Connecting);
        readiness.set(1, State::Ready);
        assert_eq!(readiness.clone().check(), Err("stopping"));
    }
}
