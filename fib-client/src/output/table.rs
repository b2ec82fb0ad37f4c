//! The end-of-run summary for people.

use crate::stats::Latency;
use crate::summary::{Ended, Regression, Summary};
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
    if summary.warmup > 0 {
        let _ = writeln!(
            out,
            "after {} warm-up requests (not counted)",
            summary.warmup
        );
    }
    if summary.interrupted {
        let _ = writeln!(
            out,
            "interrupted: {} sent, {} answered, {} unanswered",
            summary.sent, summary.count, summary.unanswered
        );
    }
    if !matches!(summary.ended, Ended::Completed | Ended::Interrupted) {
        let _ = writeln!(
            out,
            "ended early ({}): {} sent, {} answered, {} unanswered",
            summary.ended.word(),
            summary.sent,
            summary.count,
            summary.unanswered
        );
    }
    if summary.unsent > 0 {
        let _ = writeln!(
            out,
            "{} requests due but never sent (the run stopped sending with --inflight requests outstanding)",
            summary.unsent
        );
    }
    if summary.blocks > 0 {
        let _ = writeln!(
            out,
            "blocked by the broker (resource alarm) {} for {} in all: nothing sent \
             meanwhile, no timeout ran",
            common::text::counted(summary.blocks, "time"),
            common::text::duration(
                std::time::Duration::try_from_secs_f64(summary.blocked_ms / 1e3)
                    .unwrap_or_default()
            )
        );
    }
    if let Some(rate) = &summary.rate {
        let _ = write!(
            out,
            "rate: asked {:.1}/s, achieved {:.1}/s",
            rate.asked, rate.achieved
        );
        if summary.fell_behind() {
            let _ = write!(
                out,
                "; FELL BEHIND: {} of {} requests sent more than {:.1} ms after they were due \
                 (at most {:.1} ms)",
                rate.late_sends, summary.sent, rate.late_ms, rate.max_lag_ms
            );
        }
        out.push('\n');
    }
    if let Some(corrected) = &summary.latency_us {
        let _ = writeln!(
            out,
            "{:<14}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
            "latency (µs)", "min", "mean", "stdev", "p50", "p90", "p99", "p99.9", "p99.99", "max"
        );
        match (&summary.rate, &summary.latency_as_sent_us) {
            (Some(_), Some(as_sent)) => {
                row(&mut out, "corrected", corrected);
                row(&mut out, "as sent", as_sent);
            }
            _ => row(&mut out, "round trip", corrected),
        }
    }
    if summary.latency_clamped > 0 {
        let _ = writeln!(
            out,
            "{} latencies above the histogram's ceiling were recorded at it: their figures are too low",
            summary.latency_clamped
        );
    }
    if let Some(regression) = &summary.regression {
        out.push_str(&regression_line(regression));
    }
    out
}

fn row(out: &mut String, label: &str, l: &Latency) {
    let _ = writeln!(
        out,
        "{label:<14}{:>9.0}{:>9.0}{:>9.0}{:>9.0}{:>9.0}{:>9.0}{:>9.0}{:>9.0}{:>9.0}",
        l.min, l.mean, l.stdev, l.p50, l.p90, l.p99, l.p99_9, l.p99_99, l.max
    );
}

/// `vs baseline FILE: mean +3.1% (250 -> 258 µs), p99 ...: within 10%`.
pub fn regression_line(r: &Regression) -> String {
    format!(
        "vs baseline {}: mean {:+.1}% ({:.0} -> {:.0} µs), p99 {:+.1}% ({:.0} -> {:.0} µs): {}\n",
        r.baseline,
        r.mean_change_pct,
        r.baseline_mean_us,
        r.mean_us,
        r.p99_change_pct,
        r.baseline_p99_us,
        r.p99_us,
        if r.failed {
            format!("REGRESSION, worse by more than {}%", r.max_regression_pct)
        } else {
            format!("within {}%", r.max_regression_pct)
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::Rate;

    fn latency(us: f64) -> Latency {
        Latency {
            min: us,
            mean: us,
            stdev: 0.0,
            p50: us,
            p90: us,
            p99: us,
            p99_9: us,
            p99_99: us,
            max: us,
        }
    }

    fn summary() -> Summary {
        Summary {
            count: 3,
            ok: 2,
            failures: 1,
            total_ms: 1.5,
            requests_per_second: 2000.0,
            resends: 2,
            reconnects: 1,
            sent: 3,
            warmup: 0,
            unanswered: 0,
            unsent: 0,
            interrupted: false,
            ended: Ended::Completed,
            blocks: 0,
            blocked_ms: 0.0,
            latency_us: Some(latency(500.0)),
            latency_as_sent_us: Some(latency(500.0)),
            latency_clamped: 0,
            rate: None,
            regression: None,
        }
    }

    #[test]
    fn shows_counts_time_and_one_latency_row_in_a_closed_loop() {
        let text = summary_table(&summary());
        assert!(
            text.starts_with("3 round trips: 2 correct, 1 failed, 2 resent (1 reconnects) in 1.500 ms (2000.0 requests/s)"),
            "{text}"
        );
        assert!(text.contains("round trip"), "{text}");
        assert!(!text.contains("corrected"), "{text}");
        assert!(!text.contains("rate:"), "{text}");
        assert!(!text.contains("blocked"), "{text}");
    }

    #[test]
    fn shows_how_often_and_how_long_the_broker_blocked() {
        let mut s = summary();
        s.blocks = 2;
        s.blocked_ms = 40_250.0;
        let text = summary_table(&s);
        assert!(
            text.contains("blocked by the broker (resource alarm) 2 times for 40.2 s in all"),
            "{text}"
        );
    }

    #[test]
    fn one_short_block_reads_one_time_in_milliseconds() {
        let mut s = summary();
        s.blocks = 1;
        s.blocked_ms = 1.2;
        let text = summary_table(&s);
        assert!(
            text.contains("blocked by the broker (resource alarm) 1 time for 1.2 ms in all"),
            "{text}"
        );
    }

    #[test]
    fn open_loop_shows_both_views_and_falling_behind() {
        let mut s = summary();
        s.latency_us = Some(latency(900_000.0));
        s.rate = Some(Rate {
            asked: 1000.0,
            achieved: 700.0,
            late_sends: 42,
            late_ms: 1.0,
            max_lag_ms: 950.0,
        });
        s.unsent = 17;
        let text = summary_table(&s);
        assert!(
            text.contains("rate: asked 1000.0/s, achieved 700.0/s; FELL BEHIND: 42 of 3"),
            "{text}"
        );
        assert!(text.contains("17 requests due but never sent"), "{text}");
        let corrected = text.lines().find(|l| l.starts_with("corrected")).unwrap();
        let as_sent = text.lines().find(|l| l.starts_with("as sent")).unwrap();
        assert!(corrected.contains("900000"), "{text}");
        assert!(
            as_sent.contains("500") && !as_sent.contains("900000"),
            "{text}"
        );
    }
}
