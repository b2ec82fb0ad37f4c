//! What a run amounts to: counts, wall time, throughput, latency.

use crate::measure::Measurement;
use crate::stats::Latency;
use serde::Serialize;

/// The figures a report shows; `--json` prints exactly these fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub ok: usize,
    pub failures: usize,
    /// Wall time of the request loop, connection set-up excluded.
    pub total_ms: f64,
    pub requests_per_second: f64,
    /// Requests published again after a timeout or a lost connection.
    pub resends: u64,
    pub reconnects: u64,
    pub latency_us: Option<Latency>,
}

impl Summary {
    pub fn of(measurement: &Measurement, reconnects: u64) -> Summary {
        let count = measurement.round_trips.len();
        let ok = measurement
            .round_trips
            .iter()
            .filter(|r| r.is_correct())
            .count();
        let seconds = measurement.total.as_secs_f64();
        let latencies: Vec<_> = measurement.round_trips.iter().map(|r| r.latency).collect();
        Summary {
            count,
            ok,
            failures: count - ok,
            total_ms: seconds * 1e3,
            requests_per_second: if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            },
            resends: measurement.resends,
            reconnects,
            latency_us: Latency::of(&latencies),
        }
    }
}
