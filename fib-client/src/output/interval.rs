//! `--interval`: one line per interval on stderr, as PerfTest prints them:
//! the requests answered in that interval, their rate, and p50/p99/max of
//! their (corrected) latency, "blocked (REASON)" when the broker blocked
//! the connection (a resource alarm) during the interval, and "reconnecting"
//! when the connection was lost during it.

use crate::measure::RoundTrip;
use crate::stats;
use hdrhistogram::Histogram;
use std::time::Duration;

pub struct Intervals {
    histogram: Histogram<u64>,
    since: Duration,
    /// The broker's reason while it blocks the connection.
    blocked: Option<String>,
    /// The reason of a block in force at any time in this interval.
    blocked_in_interval: Option<String>,
    /// While the connection is being made again.
    reconnecting: bool,
    /// Reconnecting at any time in this interval.
    reconnecting_in_interval: bool,
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
            blocked: None,
            blocked_in_interval: None,
            reconnecting: false,
            reconnecting_in_interval: false,
        }
    }

    /// Counts a measured round trip into the current interval.
    pub fn observe(&mut self, round_trip: &RoundTrip) {
        if !round_trip.warmup {
            // Clamping is counted once, by the run's own histograms.
            let _ = stats::record(&mut self.histogram, round_trip.latency());
        }
    }

    /// The broker blocked the connection for `Some(reason)`, or unblocked it.
    pub fn blocked(&mut self, reason: Option<&str>) {
        self.blocked = reason.map(common::blocking::printable);
        if self.blocked.is_some() {
            self.blocked_in_interval.clone_from(&self.blocked);
        }
    }

    /// The connection was lost and is being made again (true), or a new
    /// session has begun (false).
    pub fn reconnecting(&mut self, reconnecting: bool) {
        self.reconnecting = reconnecting;
        self.reconnecting_in_interval |= reconnecting;
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
        let mut line = if h.is_empty() {
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
        if let Some(reason) = self.blocked_in_interval.take() {
            line.push_str(&format!("  blocked ({reason})"));
        }
        self.blocked_in_interval.clone_from(&self.blocked);
        if std::mem::replace(&mut self.reconnecting_in_interval, self.reconnecting) {
            line.push_str("  reconnecting");
        }
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
        assert!(!second.contains("blocked"), "{second}");
    }

    #[test]
    fn intervals_during_a_block_say_so_with_the_reason() {
        let mut intervals = Intervals::new();
        intervals.blocked(Some("low on memory"));
        let during = intervals.line(Duration::from_secs(1));
        assert!(during.ends_with("  blocked (low on memory)"), "{during}");
        intervals.blocked(None);
        // Blocked for part of this interval still shows.
        let lifted = intervals.line(Duration::from_secs(2));
        assert!(lifted.ends_with("  blocked (low on memory)"), "{lifted}");
        let after = intervals.line(Duration::from_secs(3));
        assert!(!after.contains("blocked"), "{after}");
    }

    #[test]
    fn intervals_while_reconnecting_say_so() {
        let mut intervals = Intervals::new();
        intervals.reconnecting(true);
        let during = intervals.line(Duration::from_secs(1));
        assert!(during.ends_with("  reconnecting"), "{during}");
        intervals.reconnecting(false);
        // Reconnecting for part of this interval still shows.
        let reconnected = intervals.line(Duration::from_secs(2));
        assert!(reconnected.ends_with("  reconnecting"), "{reconnected}");
        let after = intervals.line(Duration::from_secs(3));
        assert!(!after.contains("reconnecting"), "{after}");
    }
}
