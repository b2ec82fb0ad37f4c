//! What fib-client exposes with `--metrics`, so that a long run (say
//! `--duration 3600`) can be watched on a dashboard as it goes: requests
//! sent, answered by outcome, resends, reconnections, in flight, and a
//! latency histogram per view. The registry and the endpoint are the shared
//! ones (`metrics`); this module only names the run's figures and keeps them
//! as the run's observer reports them.

use crate::measure::{RoundTrip, Verdict};
use anyhow::Result;
use metrics::prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use metrics::{Readiness, State};

/// Every fib_client_* metric, registered once.
pub struct ClientMetrics {
    pub registry: metrics::prometheus::Registry,
    pub readiness: Readiness,
    sent: IntCounter,
    correct: IntCounter,
    wrong: IntCounter,
    refused: IntCounter,
    unanswered: IntCounter,
    unsent: IntCounter,
    resends: IntCounter,
    reconnections: IntCounter,
    in_flight: IntGauge,
    /// The corrected view (from when due); the only one in a closed loop.
    corrected: Histogram,
    /// The as-sent view (from the first publish), with `--rate` only.
    as_sent: Option<Histogram>,
}

impl ClientMetrics {
    /// `rate`: the asked rate of an open loop, None for a closed loop.
    pub fn new(rate: Option<f64>, inflight: usize) -> Result<ClientMetrics> {
        let registry = metrics::registry("fib_client", env!("CARGO_PKG_VERSION"))?;
        let r = &registry;
        let counter = |name: &str, help: &str| -> Result<IntCounter> {
            let counter = IntCounter::new(format!("fib_client_{name}"), help)?;
            r.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let answered = IntCounterVec::new(
            Opts::new(
                "fib_client_requests_answered_total",
                "Measured requests answered, by outcome: correct (F(n)), wrong (another \
                 number), refused (an error reply).",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(answered.clone()))?;
        let latency = metrics::prometheus::HistogramVec::new(
            HistogramOpts::new(
                "fib_client_latency_seconds",
                "Round-trip latency of measured requests, by view: with --rate, corrected \
                 (from when the request was due) and as_sent (from its first publish); in a \
                 closed loop, round_trip.",
            )
            .buckets(metrics::SECONDS_100US_TO_10S.to_vec()),
            &["view"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        let in_flight = IntGauge::new(
            "fib_client_requests_in_flight",
            "Requests sent and not yet answered or given up (warm-up ones included).",
        )?;
        registry.register(Box::new(in_flight.clone()))?;
        metrics::setting(
            r,
            "fib_client_inflight_limit",
            "The configured --inflight: requests outstanding at most.",
            i64::try_from(inflight).unwrap_or(i64::MAX),
        )?;
        if let Some(rate) = rate {
            let asked = metrics::prometheus::Gauge::new(
                "fib_client_rate_asked_requests_per_second",
                "The asked --rate of the open loop.",
            )?;
            asked.set(rate);
            registry.register(Box::new(asked))?;
        }
        let readiness = Readiness::new(1);
        metrics::register_ready(r, "fib_client_ready", &readiness)?;
        let (corrected, as_sent) = match rate {
            Some(_) => (
                latency.with_label_values(&["corrected"]),
                Some(latency.with_label_values(&["as_sent"])),
            ),
            None => (latency.with_label_values(&["round_trip"]), None),
        };
        Ok(ClientMetrics {
            sent: counter(
                "requests_sent_total",
                "Measured requests sent (each once, however often resent).",
            )?,
            correct: answered.with_label_values(&["correct"]),
            wrong: answered.with_label_values(&["wrong"]),
            refused: answered.with_label_values(&["refused"]),
            unanswered: counter(
                "requests_unanswered_total",
                "Measured requests given up without a reply when the run stopped waiting.",
            )?,
            unsent: counter(
                "requests_unsent_total",
                "Requests due (with --rate) before the run stopped sending, never sent.",
            )?,
            resends: counter(
                "resends_total",
                "Measured requests published again, after a timeout or a lost connection.",
            )?,
            reconnections: counter(
                "reconnections_total",
                "Connections opened again after a lost one.",
            )?,
            in_flight,
            corrected,
            as_sent,
            readiness,
            registry,
        })
    }

    /// A session (number `number`) is open and the run goes on on it.
    pub fn session_started(&self, number: u64) {
        if number > 0 {
            self.reconnections.inc();
        }
        self.readiness.set(0, State::Ready);
    }

    /// The session ended: `lost` if its connection went (a reconnection
    /// follows, or the run gives up), else the run is done.
    pub fn session_ended(&self, lost: bool) {
        let state = if lost {
            State::Reconnecting
        } else {
            State::Stopping
        };
        self.readiness.set(0, state);
    }

    pub fn sent(&self, warmup: bool) {
        self.in_flight.inc();
        if !warmup {
            self.sent.inc();
        }
    }

    pub fn resent(&self, warmup: bool) {
        if !warmup {
            self.resends.inc();
        }
    }

    pub fn round_trip(&self, trip: &RoundTrip) {
        self.in_flight.dec();
        if trip.warmup {
            return;
        }
        match trip.verdict {
            Verdict::Correct => self.correct.inc(),
            Verdict::Wrong { .. } => self.wrong.inc(),
            Verdict::Refused { .. } => self.refused.inc(),
            // Not answered: not counted here (see `unanswered`, `unsent`).
            Verdict::Unanswered => return,
        }
        self.corrected.observe(trip.latency().as_secs_f64());
        if let Some(as_sent) = &self.as_sent {
            as_sent.observe(trip.as_sent().as_secs_f64());
        }
    }

    pub fn unanswered(&self, trip: &RoundTrip) {
        self.in_flight.dec();
        if !trip.warmup {
            self.unanswered.inc();
        }
    }

    pub fn unsent(&self, count: u64) {
        self.unsent.inc_by(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn trip(verdict: Verdict, warmup: bool) -> RoundTrip {
        RoundTrip {
            n: 10,
            correlation_id: String::new(),
            due: Duration::from_millis(10),
            sent: Duration::from_millis(12),
            replied: Duration::from_millis(13),
            resends: 0,
            warmup,
            verdict,
        }
    }

    fn value(metrics: &ClientMetrics, series: &str) -> Option<f64> {
        let scrape = String::from_utf8_lossy(&metrics::encode(&metrics.registry)).into_owned();
        scrape.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
            rest.parse().ok()
        })
    }

    #[test]
    fn counts_measured_requests_by_outcome_and_in_flight_ones_all() -> Result<()> {
        let metrics = ClientMetrics::new(Some(100.0), 4)?;
        metrics.sent(true);
        metrics.round_trip(&trip(Verdict::Correct, true));
        for _ in 0..4 {
            metrics.sent(false);
        }
        metrics.resent(false);
        metrics.resent(true);
        metrics.round_trip(&trip(Verdict::Correct, false));
        metrics.round_trip(&trip(Verdict::Wrong { got: "1".into() }, false));
        let refused = Verdict::Refused {
            code: "too-large".into(),
            message: "no".into(),
        };
        metrics.round_trip(&trip(refused, false));
        metrics.unanswered(&trip(Verdict::Unanswered, false));
        metrics.unsent(7);
        metrics.session_started(1);
        for (series, expected) in [
            ("fib_client_requests_sent_total", 4.0),
            ("fib_client_resends_total", 1.0),
            (
                "fib_client_requests_answered_total{outcome=\"correct\"}",
                1.0,
            ),
            ("fib_client_requests_answered_total{outcome=\"wrong\"}", 1.0),
            (
                "fib_client_requests_answered_total{outcome=\"refused\"}",
                1.0,
            ),
            ("fib_client_requests_unanswered_total", 1.0),
            ("fib_client_requests_unsent_total", 7.0),
            ("fib_client_requests_in_flight", 0.0),
            ("fib_client_reconnections_total", 1.0),
            ("fib_client_latency_seconds_count{view=\"corrected\"}", 3.0),
            ("fib_client_latency_seconds_count{view=\"as_sent\"}", 3.0),
            ("fib_client_ready", 1.0),
        ] {
            assert_eq!(value(&metrics, series), Some(expected), "{series}");
        }
        // Corrected from due (3 ms each), as sent from the first publish (1 ms).
        let corrected = value(
            &metrics,
            "fib_client_latency_seconds_sum{view=\"corrected\"}",
        );
        assert!(
            corrected.is_some_and(|s| (s - 0.009).abs() < 1e-9),
            "{corrected:?}"
        );
        metrics.session_ended(true);
        assert_eq!(value(&metrics, "fib_client_ready"), Some(0.0));
        Ok(())
    }

    #[test]
    fn a_closed_loop_has_one_view() -> Result<()> {
        let metrics = ClientMetrics::new(None, 1)?;
        metrics.sent(false);
        metrics.round_trip(&trip(Verdict::Correct, false));
        let count = "fib_client_latency_seconds_count{view=\"round_trip\"}";
        assert_eq!(value(&metrics, count), Some(1.0));
        let as_sent = "fib_client_latency_seconds_count{view=\"as_sent\"}";
        assert_eq!(value(&metrics, as_sent), None);
        assert_eq!(
            value(&metrics, "fib_client_rate_asked_requests_per_second"),
            None
        );
        Ok(())
    }
}
