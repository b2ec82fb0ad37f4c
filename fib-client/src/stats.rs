//! Summary statistics of round-trip latencies.

use std::time::Duration;

/// Latency figures in microseconds. Percentiles are nearest-rank: each is a
/// latency that was actually observed.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// None for an empty sample.
    pub fn of(samples: &[Duration]) -> Option<Latency> {
        let mut micros: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        micros.sort_by(f64::total_cmp);
        let (&min, &max) = (micros.first()?, micros.last()?);
        let mean = micros.iter().sum::<f64>() / micros.len() as f64;
        Some(Latency {
            min,
            mean,
            p50: percentile(&micros, 50.0),
            p90: percentile(&micros, 90.0),
            p99: percentile(&micros, 99.0),
            max,
        })
    }
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_one_to_hundred() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let latency = Latency::of(&samples).unwrap();
        assert_eq!(latency.min, 1.0);
        assert_eq!(latency.max, 100.0);
        assert_eq!(latency.mean, 50.5);
        assert_eq!(latency.p50, 50.0);
        assert_eq!(latency.p90, 90.0);
        assert_eq!(latency.p99, 99.0);
    }

    #[test]
    fn single_sample_and_empty() {
        let latency = Latency::of(&[Duration::from_micros(7)]).unwrap();
        assert_eq!((latency.p50, latency.p99), (7.0, 7.0));
        assert_eq!(Latency::of(&[]), None);
    }
}
