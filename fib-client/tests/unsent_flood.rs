//! The end of `--duration` (or Ctrl-C) after a long stall of a fast open
//! loop must not count the requests due but never sent one by one (once,
//! each was an `Observer::unsent` call, hence a CSV row): an hour at the
//! largest `--rate` is 3.6 billion of them, minutes of work after the run
//! should have ended. Sending stops at the end of the window, promptly, and
//! observers are told their number once.

use anyhow::Result;
use common::protocol::Reply;
use fib_client::measure::{Observer, Plan, RoundTrip, Run, Stop};
use fib_client::rpc::{Event, RpcTransport};
use fib_client::workload::Workload;
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// A server that answers each request, but the first reply only after a
/// simulated stall of `stall` (the clock jumps; nothing waits).
struct StallingServer {
    base: Instant,
    offset: Cell<Duration>,
    stall: Duration,
    stalled: Cell<bool>,
    ids: RefCell<Vec<String>>,
}

impl RpcTransport for StallingServer {
    fn send(&self, _n: u64) -> Result<String> {
        let id = format!("r-{}", self.ids.borrow().len());
        self.ids.borrow_mut().push(id.clone());
        Ok(id)
    }

    fn next_event(&self, deadline: Instant) -> Result<Event> {
        if !self.stalled.replace(true) {
            self.offset.set(self.offset.get() + self.stall);
        }
        match self.ids.borrow_mut().pop() {
            Some(id) => Ok(Event::Reply {
                correlation_id: Some(id),
                reply: Reply::Value("1".into()),
            }),
            None => {
                self.offset.set(
                    deadline
                        .saturating_duration_since(self.base)
                        .max(self.offset.get()),
                );
                Ok(Event::TimedOut)
            }
        }
    }

    fn now(&self) -> Instant {
        self.base + self.offset.get()
    }
}

struct Counting(u64);

impl Observer for Counting {
    fn round_trip(&mut self, _: &RoundTrip, _: &Reply) {}
    fn unsent(&mut self, count: u64) {
        self.0 += count;
    }
}

#[test]
fn an_hour_long_stall_at_the_top_rate_ends_promptly() {
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let server = StallingServer {
            base: Instant::now(),
            offset: Cell::new(Duration::ZERO),
            stall: Duration::from_secs(3601),
            stalled: Cell::new(false),
            ids: RefCell::default(),
        };
        let mut run = Run::new(Plan {
            workload: Workload::Fixed(1),
            stop: Stop::After(Duration::from_secs(3600)),
            warmup: 0,
            rate: Some(1_000_000.0),
            inflight: 1,
            timeout: Duration::from_secs(10),
            retries: 0,
            tick: None,
            max_blocked: None,
        });
        let mut observer = Counting(0);
        let driven = run
            .drive(&server, 0, &mut observer)
            .map_err(|e| format!("{e:#}"));
        let _ = done_tx.send((driven, run.finish().unsent, observer.0));
    });
    let (driven, unsent, calls) = done
        .recv_timeout(Duration::from_secs(10))
        .expect("the run did not end within 10 s of its simulated end");
    driven.expect("drive");
    assert_eq!(unsent, 3_600_000_000 - 1);
    assert_eq!(calls, unsent, "observers are told the number");
}
