//! Monitoring, written once for both programs: a Prometheus registry with
//! the standard process metrics, a [`Readiness`] that the consume loops keep
//! up to date, and a small blocking HTTP endpoint on its own thread that
//! serves `/metrics`, `/healthz` and `/readyz` ([`Endpoint`]).
//!
//! The request path only ever touches atomics (prometheus' counters, gauges
//! and histograms are atomics underneath; readiness is an array of atomic
//! bytes): the endpoint's thread never holds anything the request path
//! waits for.

mod http;
mod readiness;

pub use http::{
    Endpoint, Serving, ACCEPT_ROUND, HEAD_DEADLINE, HEAD_LIMIT, MAX_CONNECTIONS, MAX_HEADERS,
};
pub use prometheus;
pub use readiness::{Readiness, State};

use anyhow::Result;
use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntGauge, Opts, Registry};

/// A registry holding the standard process metrics (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_open_fds`,
/// `process_start_time_seconds`, ...; Linux only) and
/// `<prefix>_build_info{version="..."} 1`.
pub fn registry(prefix: &str, version: &str) -> Result<Registry> {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let build = IntGauge::with_opts(
        Opts::new(
            format!("{prefix}_build_info"),
            "Always 1; its labels say which build this is.",
        )
        .const_label("version", version),
    )?;
    build.set(1);
    registry.register(Box::new(build))?;
    Ok(registry)
}

/// Registers `name`, a gauge that is 1 when `/readyz` would answer 200 and 0
/// otherwise, read from `readiness` at each scrape (so that an alert can say
/// "not ready for a minute").
pub fn register_ready(registry: &Registry, name: &str, readiness: &Readiness) -> Result<()> {
    let gauge = IntGauge::new(
        name,
        "1 while /readyz answers 200 (every worker consuming on a live, unblocked connection), else 0.",
    )?;
    registry.register(Box::new(ReadyGauge {
        gauge,
        readiness: readiness.clone(),
    }))?;
    Ok(())
}

/// The ready gauge, computed when scraped.
struct ReadyGauge {
    gauge: IntGauge,
    readiness: Readiness,
}

impl Collector for ReadyGauge {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.gauge.set(i64::from(self.readiness.check().is_ok()));
        self.gauge.collect()
    }
}

/// Registers and returns a gauge set once to a configured value.
pub fn setting(registry: &Registry, name: &str, help: &str, value: i64) -> Result<IntGauge> {
    let gauge = IntGauge::new(name, help)?;
    gauge.set(value);
    registry.register(Box::new(gauge.clone()))?;
    Ok(gauge)
}

/// Registers a histogram, with `buckets` as upper bounds in seconds.
pub fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> Result<Histogram> {
    let histogram = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
    registry.register(Box::new(histogram.clone()))?;
    Ok(histogram)
}

/// Buckets for times from 100 µs to 10 s, about three per decade
/// (1, 2.5, 5): fine enough for a round trip on one machine (a few hundred
/// µs) and for a reply held back by a slow broker.
pub const SECONDS_100US_TO_10S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Buckets for computing F(n): from 1 µs (a cached-size small n) to 10 s
/// (n near the 10,000,000 bound), one per half decade.
pub const SECONDS_1US_TO_10S: &[f64] = &[
    0.000001, 0.000003, 0.00001, 0.00003, 0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0,
    3.0, 10.0,
];

/// The registry in Prometheus' text exposition format.
pub fn encode(registry: &Registry) -> Vec<u8> {
    use prometheus::Encoder;
    let mut out = Vec::with_capacity(8 << 10);
    let encoder = prometheus::TextEncoder::new();
    if let Err(error) = encoder.encode(&registry.gather(), &mut out) {
        // Only a metric family with no metric fails to encode; say so in
        // the scrape rather than serve half of it silently.
        log::warn!("encoding metrics: {error}");
    }
    out
}
