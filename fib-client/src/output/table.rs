//! The end-of-run summary for people.

use crate::summary::Summary;
use std::fmt::Write;

pub fn summary_table(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} round trips: {} correct, {} failed, {} resent ({} reconnects) in {:.3} ms ({:.1} requests/s)",
        summary.count,
        summary.ok,
        summary.failures,
        summary.resends,
        summary.reconnects,
        summary.total_ms,
        summary.requests_per_second
    );
    if let Some(l) = &summary.latency_us {
        let _ = writeln!(
            out,
            "latency (µs): min {:.0}  mean {:.0}  p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}",
            l.min, l.mean, l.p50, l.p90, l.p99, l.max
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Latency;

    #[test]
    fn shows_counts_time_and_latency() {
        let summary = Summary {
            count: 3,
            ok: 2,
            failures: 1,
            total_ms: 1.5,
            requests_per_second: 2000.0,
            resends: 2,
            reconnects: 1,
            latency_us: Latency::of(&[std::time::Duration::from_micros(500)]),
        };
        let text = summary_table(&summary);
        assert!(
            text.starts_with("3 round trips: 2 correct, 1 failed, 2 resent (1 reconnects) in 1.500 ms (2000.0 requests/s)")
        );
        assert!(text.contains("p99 500"), "{text}");
    }
}
