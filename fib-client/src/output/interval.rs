//! `--interval`: one line per interval on stderr, as PerfTest prints them:
//! the requests answered in that interval, their rate, and p50/p99/max of
//! their (corrected) latency.

use crate::measure::RoundTrip;
use crate::stats;
use hdrhistogram::Histogram;
use std::time::Duration;

pub struct Intervals {
    histogram: Histogram<u64>,
    since: Duration,
}

impl Intervals {
    pub fn new() -> Intervals {
        Intervals::up_to(Duration::ZERO)
    }

    /// Recording latencies up to `ceiling` (see `stats::histogram_up_to`).
    pub fn up_to(ceiling: Duration) -> Intervals {
        Intervals {
            histogram: stats::histogram_up_to(ceiling),
            since: Duration::ZERO,
        }
    }

    /// Counts a measured round trip into the current interval.
    pub fn observe(&mut self, round_trip: &RoundTrip) {
        if !round_trip.warmup {
            // Clamping is counted once, by the run's own histograms.
            let _ = stats::record(&mut self.histogram, round_trip.latency());
        }
    }

    /// The line for the interval ending `at` (since the run started); starts
    /// the next one.
    pub fn line(&mut self, at: Duration) -> String {
        let h = &self.histogram;
        let seconds = at.saturating_sub(self.since).as_secs_f64();
        let rate = if seconds > 0.0 {
            h.len() as f64 / seconds
        } else {
            0.0
        };
        let line = if h.is_empty() {
            format!(
                "[{:8.1} s] {:7} requests  {rate:9.1}/s  (no replies in this interval)",
                at.as_secs_f64(),
                0
            )
        } else {
            format!(
                "[{:8.1} s] {:7} requests  {rate:9.1}/s  p50 {} µs  p99 {} µs  max {} µs",
                at.as_secs_f64(),
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max()
            )
        };
        self.histogram.reset();
        self.since = at;
        line
    }
}

impl Default for Intervals {
    fn default() -> Intervals {
        Intervals::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Verdict;

    fn trip(latency_ms: u64, warmup: bool) -> RoundTrip {
        RoundTrip {
            n: 1,
            correlation_id: "x".into(),
            due: Duration::ZERO,
            sent: Duration::ZERO,
            replied: Duration::from_millis(latency_ms),
            resends: 0,
            warmup,
            verdict: Verdict::Correct,
        }
    }

    #[test]
    fn one_line_per_interval_then_starts_afresh() {
        let mut intervals = Intervals::new();
        for ms in [1, 2, 3, 4] {
            intervals.observe(&trip(ms, false));
        }
        intervals.observe(&trip(500, true));
        let first = intervals.line(Duration::from_secs(2));
        assert!(first.contains("      4 requests"), "{first}");
        assert!(first.contains("2.0/s"), "{first}");
        // Within the histogram's precision (0.1%) of 4 ms.
        assert!(
            first.contains("max 4000 µs") || first.contains("max 4001 µs"),
            "{first}"
        );
        let second = intervals.line(Duration::from_secs(3));
        assert!(second.contains("no replies in this interval"), "{second}");
    }
}
