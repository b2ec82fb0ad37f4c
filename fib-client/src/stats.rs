//! Latency histograms and the figures drawn from them.
//!
//! Latencies go into an HdrHistogram in whole microseconds with 3
//! significant digits: constant memory for any run length, exact below
//! 2048 µs and within 0.1% above, up to an hour (longer values are clamped).

use hdrhistogram::Histogram;
use std::time::Duration;

/// Largest latency recorded as itself: one hour, in µs.
const HIGHEST_US: u64 = 3_600_000_000;
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// An empty latency histogram (µs).
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants that the crate accepts.
    Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Records a latency, rounded to the nearest microsecond.
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = (latency.as_nanos() + 500) / 1000;
    histogram.saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
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
}
