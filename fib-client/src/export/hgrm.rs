//! `--export-hgrm`: HdrHistogram's percentile distribution text, as Java's
//! `outputPercentileDistribution(out, 5, 1000.0)` and wrk2 print it (values
//! in milliseconds), which HdrHistogram's plotter reads.

use crate::stats::SIGNIFICANT_DIGITS;
use hdrhistogram::Histogram;
use std::fmt::Write;

/// Latencies recorded in µs, printed in ms.
const SCALE: f64 = 1000.0;
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// `unsent` requests (due, never sent) are not in `histogram`; a count above
/// 0 is said on a last `#[...]` line, which readers of the format skip.
pub fn percentile_distribution(histogram: &Histogram<u64>, unsent: u64) -> String {
    let digits = usize::from(SIGNIFICANT_DIGITS);
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for step in histogram.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += step.count_since_last_iteration();
        let value = step.value_iterated_to() as f64 / SCALE;
        let quantile = step.quantile_iterated_to();
        if quantile < 1.0 {
            let _ = writeln!(
                out,
                "{value:>12.digits$} {quantile:>2.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - quantile)
            );
        } else {
            let _ = writeln!(out, "{value:>12.digits$} {quantile:>2.12} {total:>10}");
        }
    }
    let (mean, stdev, max) = if histogram.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            histogram.mean() / SCALE,
            histogram.stdev() / SCALE,
            histogram.max() as f64 / SCALE,
        )
    };
    let _ = writeln!(
        out,
        "#[Mean    = {mean:>12.digits$}, StdDeviation   = {stdev:>12.digits$}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {max:>12.digits$}, Total count    = {:>12}]",
        histogram.len()
    );
    let sub_buckets = (2 * 10u64.pow(u32::from(SIGNIFICANT_DIGITS))).next_power_of_two();
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {sub_buckets:>12}]",
        histogram.buckets()
    );
    if unsent > 0 {
        let _ = writeln!(
            out,
            "#[Unsent  = {unsent:>12} (due, never sent: not above)]"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats;
    use std::time::Duration;

    #[test]
    fn header_rows_and_footer_in_the_java_format() {
        let mut h = stats::histogram();
        for us in 1..=1000u64 {
            stats::record(&mut h, Duration::from_micros(us));
        }
        let text = percentile_distribution(&h, 0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        assert_eq!(
            lines[2],
            "       0.001 0.000000000000          1           1.00"
        );
        let rows: Vec<Vec<&str>> = lines[2..]
            .iter()
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        let last = rows.last().unwrap();
        assert_eq!(last, &["1.000", "1.000000000000", "1000"]);
        // Values, percentiles and counts never go down.
        for pair in rows.windows(2) {
            for column in 0..3 {
                let (a, b): (f64, f64) = (
                    pair[0][column].parse().unwrap(),
                    pair[1][column].parse().unwrap(),
                );
                assert!(a <= b, "{pair:?}");
            }
        }
        assert!(
            text.contains("#[Mean    =        0.500, StdDeviation   =        0.289]"),
            "{text}"
        );
        assert!(
            text.contains("#[Max     =        1.000, Total count    =         1000]"),
            "{text}"
        );
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
    }
}
