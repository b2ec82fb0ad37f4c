//! Latency histograms and the figures drawn from them.
//!
//! Latencies go into an HdrHistogram in whole microseconds with 3
//! significant digits: constant memory for any run length, exact below
//! 2048 µs and within 0.1% above, up to a ceiling the run's flags set (an
//! hour at least: `Plan::latency_ceiling`). A longer latency, which only
//! repeated reconnections can bring, is recorded at the ceiling and counted
//! as clamped, never silently. Each doubling of the ceiling costs 8 KB.

use hdrhistogram::Histogram;
use std::time::Duration;

/// The smallest ceiling: one hour, in µs.
const HOUR_US: u64 = 3_600_000_000;
/// The largest: 2^52 µs, about 143 years (and 344 KB a histogram).
const MAX_US: u64 = 1 << 52;
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// An empty latency histogram (µs) up to an hour.
pub fn histogram() -> Histogram<u64> {
    histogram_up_to(Duration::ZERO)
}

/// An empty latency histogram (µs) that records `ceiling` (an hour at
/// least, about 143 years at most) as itself.
pub fn histogram_up_to(ceiling: Duration) -> Histogram<u64> {
    let highest = u64::try_from(ceiling.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(HOUR_US, MAX_US);
    // Both bounds are within what the crate accepts: 1 <= 2 <= highest < 2^63.
    Histogram::new_with_bounds(1, highest, SIGNIFICANT_DIGITS)
        .expect("histogram bounds between an hour and 2^52 µs are valid")
}

/// Records a latency, rounded to the nearest microsecond; one above the
/// histogram's ceiling is recorded at the ceiling, and `true` returned.
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) -> bool {
    let micros = u64::try_from((latency.as_nanos() + 500) / 1000).unwrap_or(u64::MAX);
    let clamped = micros > histogram.high();
    histogram.saturating_record(micros);
    clamped
}

/// Latency figures in microseconds. Percentiles are HdrHistogram's: the
/// highest value equivalent (within the histogram's precision) to the one at
/// that rank.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub stdev: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    #[serde(rename = "p99.99")]
    pub p99_99: f64,
    pub max: f64,
}

impl Latency {
    /// None for an empty histogram.
    pub fn of(histogram: &Histogram<u64>) -> Option<Latency> {
        if histogram.is_empty() {
            return None;
        }
        let at = |q: f64| histogram.value_at_quantile(q) as f64;
        Some(Latency {
            min: histogram.min() as f64,
            mean: histogram.mean(),
            stdev: histogram.stdev(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p99_9: at(0.999),
            p99_99: at(0.9999),
            max: histogram.max() as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(micros: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = histogram();
        for m in micros {
            record(&mut h, Duration::from_micros(m));
        }
        h
    }

    #[test]
    fn percentiles_on_one_to_ten_thousand() {
        let latency = Latency::of(&of((1..=10_000).rev())).unwrap();
        assert_eq!(latency.min, 1.0);
        assert!((latency.p50 - 5000.0).abs() <= 5.0, "{latency:?}");
        assert!((latency.p99 - 9900.0).abs() <= 10.0, "{latency:?}");
        assert!((latency.p99_9 - 9990.0).abs() <= 10.0, "{latency:?}");
        assert!((latency.max - 10_000.0).abs() <= 10.0, "{latency:?}");
        assert!((latency.mean - 5000.5).abs() <= 5.0, "{latency:?}");
        // The standard deviation of 1..=N is N / sqrt(12).
        assert!((latency.stdev - 2886.75).abs() <= 5.0, "{latency:?}");
    }

    #[test]
    fn exact_below_two_thousand_microseconds_and_rounded() {
        let latency = Latency::of(&of([7])).unwrap();
        assert_eq!((latency.p50, latency.p99, latency.max), (7.0, 7.0, 7.0));
        let mut h = histogram();
        record(&mut h, Duration::from_nanos(1_499));
        record(&mut h, Duration::from_nanos(1_500));
        assert_eq!((h.min(), h.max()), (1, 2));
        assert_eq!(Latency::of(&histogram()), None);
    }

    #[test]
    fn the_ceiling_grows_with_what_is_asked_and_clamping_is_told() {
        let two_hours = Duration::from_secs(7200);
        let mut hour = histogram();
        assert!(record(&mut hour, two_hours), "above an hour: clamped");
        assert!(hour.max() < 3_700_000_000);
        let mut day = histogram_up_to(Duration::from_secs(86_400));
        assert!(!record(&mut day, two_hours));
        let max = day.max() as f64;
        assert!((max - 7.2e9).abs() <= 7.2e9 * 0.001, "{max}");
        // The largest ceiling is taken, not refused.
        let mut most = histogram_up_to(Duration::MAX);
        assert!(!record(&mut most, Duration::from_secs(100 * 365 * 86_400)));
        assert!(record(&mut most, Duration::MAX));
    }
}
