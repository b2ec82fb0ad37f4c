//! Which n each request asks for, and the F(n) its reply must equal.
//!
//! The measuring loop never computes between a request's timestamps, so the
//! expected replies are computed ahead, off its thread ([`Expectations`]):
//! a fixed n once, before the run; a range on a thread of its own that runs
//! ahead of the requests by a bounded number of values, and that the run
//! waits for, before its first request, until it is that far ahead (for a
//! short run: until every value the run needs is ready). Consecutive F(n)
//! come from one decimal addition each (`DecimalSequence`); a new cycle
//! starts from a copy of the first one's state, so F(start) is computed once
//! per run; a cycle whose values fit in [`KEEP_CYCLE_BYTES`] is kept and
//! handed out again without any computation.
//!
//! Why a thread rather than computing between requests: in an open loop the
//! next request's due time does not wait for the client, so any computation
//! on the measuring thread either delays a send (corrected latency) or a
//! reply's timestamp (both views). On its own thread it can only compete for
//! a core, and at the sizes where that matters (n near 10^7) the values of a
//! short run are all computed before it starts.

use anyhow::{anyhow, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use fib_math::DecimalSequence;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// The n of successive requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// n = start, start+1, ..., end-1, then start again. Never empty.
    Cycle(Range<u64>),
    /// The same n every time.
    Fixed(u64),
}

impl Workload {
    /// The range of n it asks for.
    pub fn span(&self) -> Range<u64> {
        match self {
            Workload::Cycle(range) => range.clone(),
            Workload::Fixed(n) => *n..n.saturating_add(1),
        }
    }

    /// The n of request `index` (warm-up ones included) of a run with
    /// `warmup` warm-up requests: the measured requests start the cycle
    /// afresh, so that they are the same with or without a warm-up.
    pub fn n_of(&self, index: u64, warmup: u64) -> u64 {
        match self {
            Workload::Fixed(n) => *n,
            Workload::Cycle(range) => {
                let position = index.checked_sub(warmup).unwrap_or(index);
                let length = range.end.saturating_sub(range.start).max(1);
                range.start + position % length
            }
        }
    }
}

/// Values computed ahead are held to about this many bytes of digits.
const LOOKAHEAD_BYTES: u64 = 32 << 20;
/// ...and to at most this many values (small n).
const MAX_LOOKAHEAD: u64 = 4096;
/// A cycle whose digits add up to at most this is computed once and kept.
pub const KEEP_CYCLE_BYTES: u64 = 64 << 20;
/// The longest wait for one expected value: F(10^7) takes about a second,
/// so this only ends a run whose computing thread is gone or starved.
const VALUE_WAIT: Duration = Duration::from_secs(600);

/// About how many decimal digits F(n) has: n log10(φ) + 1.
fn digits_of(n: u64) -> u64 {
    (n as f64 * 0.208_987_640_249_978_7) as u64 + 1
}

/// The expected replies of a run's requests, by request index.
pub struct Expectations {
    source: Source,
    /// Values received from the computing thread, not yet claimed.
    ready: BTreeMap<u64, Arc<str>>,
    /// Indices given up before their value arrived: dropped on arrival.
    skip: BTreeSet<u64>,
    /// The index of the next value the thread will hand over.
    next_index: u64,
}

enum Source {
    Fixed(Arc<str>),
    Ahead {
        values: Receiver<Arc<str>>,
        primed: Receiver<()>,
        primed_seen: bool,
    },
}

impl Expectations {
    /// Starts computing the expected replies of `workload`'s requests:
    /// `warmup` warm-up ones first, then the measured ones, `total` in all
    /// (None: as many as the run asks for).
    pub fn new(workload: &Workload, warmup: u64, total: Option<u64>) -> Expectations {
        Expectations::keeping(workload, warmup, total, KEEP_CYCLE_BYTES)
    }

    /// As `new`, keeping a cycle's values when they add up to `keep_bytes`
    /// at most.
    fn keeping(
        workload: &Workload,
        warmup: u64,
        total: Option<u64>,
        keep_bytes: u64,
    ) -> Expectations {
        let source = match workload {
            Workload::Fixed(n) => Source::Fixed(Arc::from(fib_math::fibonacci_decimal(*n))),
            Workload::Cycle(range) => {
                let lookahead = (LOOKAHEAD_BYTES / digits_of(range.end.saturating_sub(1)))
                    .clamp(1, MAX_LOOKAHEAD);
                let lookahead = total.map_or(lookahead, |t| lookahead.min(t.max(1)));
                let capacity = usize::try_from(lookahead).unwrap_or(1);
                let (values_tx, values) = crossbeam_channel::bounded(capacity);
                let (primed_tx, primed) = crossbeam_channel::bounded(1);
                let ahead = Ahead {
                    range: range.clone(),
                    warmup,
                    total,
                    lookahead,
                    keep_bytes,
                };
                let spawned = std::thread::Builder::new()
                    .name("expected-values".into())
                    .spawn(move || ahead.compute(&values_tx, primed_tx));
                // Without the thread the senders are gone: `take` says so.
                if let Err(error) = spawned {
                    log::error!("cannot start the thread that computes expected values: {error}");
                }
                Source::Ahead {
                    values,
                    primed,
                    primed_seen: false,
                }
            }
        };
        Expectations {
            source,
            ready: BTreeMap::new(),
            skip: BTreeSet::new(),
            next_index: 0,
        }
    }

    /// Waits until the values computed ahead are as many as the lookahead
    /// holds, or all the run needs: called before the run's first request.
    pub fn wait_until_ahead(&mut self) -> Result<()> {
        if let Source::Ahead {
            primed,
            primed_seen,
            ..
        } = &mut self.source
        {
            if !*primed_seen {
                match primed.recv_timeout(VALUE_WAIT) {
                    // Disconnected: the thread is done (or gone, which
                    // `take` reports).
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => *primed_seen = true,
                    Err(RecvTimeoutError::Timeout) => {
                        return Err(anyhow!(
                            "the expected values were not computed within {VALUE_WAIT:?}"
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// The expected reply of request `index`, waiting for it if it is not
    /// computed yet.
    pub fn take(&mut self, index: u64) -> Result<Arc<str>> {
        let values = match &self.source {
            Source::Fixed(digits) => return Ok(digits.clone()),
            Source::Ahead { values, .. } => values,
        };
        while self.next_index <= index {
            let value = values.recv_timeout(VALUE_WAIT).map_err(|error| {
                anyhow!("the expected value of request {index} was not computed: {error}")
            })?;
            if !self.skip.remove(&self.next_index) {
                self.ready.insert(self.next_index, value);
            }
            self.next_index += 1;
        }
        self.ready
            .remove(&index)
            .ok_or_else(|| anyhow!("the expected value of request {index} was already taken"))
    }

    /// Request `index` will not be judged: forget its value.
    pub fn discard(&mut self, index: u64) {
        if index < self.next_index {
            self.ready.remove(&index);
        } else if matches!(self.source, Source::Ahead { .. }) {
            self.skip.insert(index);
        }
    }
}

/// What the computing thread computes.
struct Ahead {
    range: Range<u64>,
    warmup: u64,
    total: Option<u64>,
    lookahead: u64,
    keep_bytes: u64,
}

impl Ahead {
    /// Sends F(n) for each request in order, `lookahead` ahead of what was
    /// taken at most (the channel's bound), and says so on `primed` once it got
    /// that far or sent all `total`. Ends when `total` are sent or the run is
    /// over (the receiver dropped).
    fn compute(self, values: &Sender<Arc<str>>, primed: Sender<()>) {
        let Ahead {
            range,
            warmup,
            total,
            lookahead,
            keep_bytes,
        } = self;
        let length = range.end.saturating_sub(range.start).max(1);
        let cycle_bytes = (digits_of(range.start) + digits_of(range.end.saturating_sub(1)))
            .saturating_mul(length)
            / 2;
        let keep = cycle_bytes <= keep_bytes;
        let first = DecimalSequence::starting_at(range.start);
        let mut sequence = first.clone();
        let mut kept: Vec<Arc<str>> = Vec::new();
        let mut position = 0u64;
        let mut sent = 0u64;
        let mut say_primed = Some(primed);
        loop {
            if total.is_some_and(|t| sent >= t) {
                break;
            }
            if sent == warmup && warmup > 0 {
                // The measured requests start the cycle afresh.
                position = 0;
                if !keep {
                    sequence = first.clone();
                }
            }
            let value = match usize::try_from(position).ok().and_then(|p| kept.get(p)) {
                Some(value) => value.clone(),
                None => {
                    let value: Arc<str> = Arc::from(sequence.next().unwrap_or_default());
                    if keep {
                        kept.push(value.clone());
                    }
                    value
                }
            };
            position += 1;
            if position == length {
                position = 0;
                if !keep {
                    sequence = first.clone();
                }
            }
            if values.send(value).is_err() {
                return;
            }
            sent += 1;
            if sent >= lookahead {
                if let Some(primed) = say_primed.take() {
                    let _ = primed.send(());
                }
            }
        }
        // Dropping `primed` (if not yet used) tells the run everything is ready.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(expectations: &mut Expectations, indices: Range<u64>) -> Vec<String> {
        indices
            .map(|i| expectations.take(i).map(|v| v.to_string()))
            .collect::<Result<_>>()
            .expect("computed")
    }

    fn f(n: u64) -> String {
        fib_math::fibonacci_decimal(n)
    }

    #[test]
    fn n_of_cycles_and_restarts_after_the_warmup() {
        let cycle = Workload::Cycle(5..8);
        let ns: Vec<u64> = (0..9).map(|i| cycle.n_of(i, 2)).collect();
        assert_eq!(ns, [5, 6, 5, 6, 7, 5, 6, 7, 5]);
        assert_eq!(Workload::Fixed(9).n_of(123, 4), 9);
    }

    #[test]
    fn expected_values_follow_the_requests_through_warmup_and_wraps() {
        for (range, warmup) in [(5..8, 2), (10..20, 0), (0..1, 3)] {
            let workload = Workload::Cycle(range.clone());
            let mut expectations = Expectations::new(&workload, warmup, Some(25));
            expectations.wait_until_ahead().expect("primed");
            let got = take(&mut expectations, 0..25);
            let want: Vec<String> = (0..25).map(|i| f(workload.n_of(i, warmup))).collect();
            assert_eq!(got, want, "{range:?} warmup {warmup}");
            assert!(
                expectations.take(25).is_err(),
                "only the run's 25 are computed"
            );
        }
        let mut fixed = Expectations::new(&Workload::Fixed(90), 0, None);
        assert_eq!(take(&mut fixed, 0..3), vec![f(90); 3]);
    }

    #[test]
    fn a_cycle_too_large_to_keep_is_computed_again_from_its_first_state() {
        let workload = Workload::Cycle(990..1000);
        let mut expectations = Expectations::keeping(&workload, 4, None, 0);
        let got = take(&mut expectations, 0..23);
        let want: Vec<String> = (0..23).map(|i| f(workload.n_of(i, 4))).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn values_may_be_taken_out_of_order_and_discarded() {
        let workload = Workload::Cycle(0..50);
        let mut expectations = Expectations::new(&workload, 0, Some(50));
        expectations.discard(3);
        assert_eq!(expectations.take(7).expect("7").as_ref(), f(7));
        expectations.discard(5);
        assert_eq!(expectations.take(2).expect("2").as_ref(), f(2));
        assert!(expectations.take(3).is_err() && expectations.take(5).is_err());
        assert_eq!(expectations.take(40).expect("40").as_ref(), f(40));
    }
}
