//! `--export-markdown`: the summary as a table, as hyperfine writes one.

use crate::stats::Latency;
use crate::summary::Summary;
use std::fmt::Write;

pub fn markdown(summary: &Summary) -> String {
    let mut out = String::new();
    out.push_str(
        "| view | requests | req/s | mean µs | stdev µs | p50 µs | p90 µs | p99 µs | p99.9 µs | p99.99 µs | max µs |\n\
         |:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut row = |label: &str, l: &Latency| {
        let _ = writeln!(
            out,
            "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            summary.count,
            summary.requests_per_second,
            l.mean,
            l.stdev,
            l.p50,
            l.p90,
            l.p99,
            l.p99_9,
            l.p99_99,
            l.max
        );
    };
    match (
        &summary.rate,
        &summary.latency_us,
        &summary.latency_as_sent_us,
    ) {
        (Some(_), Some(corrected), Some(as_sent)) => {
            row("corrected", corrected);
            row("as sent", as_sent);
        }
        (_, Some(latency), _) => row("round trip", latency),
        _ => {}
    }
    if summary.unsent > 0 {
        let _ = write!(
            out,
            "\n{} requests were due but never sent (not in the figures above).\n",
            summary.unsent
        );
    }
    out
}
