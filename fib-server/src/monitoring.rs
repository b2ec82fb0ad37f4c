//! What fib-server measures, registered once in one registry that all
//! workers share, and handed out as handles: counters, gauges and
//! histograms that are atomics underneath, with every labelled child
//! resolved here, once, so that the request path takes no lock and
//! allocates nothing for them.

use crate::Settings;
use anyhow::Result;
use common::AmqpUrl;
use metrics::prometheus::{
    Counter, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use metrics::{Readiness, State};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The counters the replier keeps: what happened to each reply and its
/// request after the answer was made.
#[derive(Clone)]
pub struct ReplyMetrics {
    /// Replies the broker confirmed.
    pub confirmed: IntCounter,
    /// Replies the broker refused (basic.nack).
    pub nacked: IntCounter,
    /// Replies whose publish failed (the connection went).
    pub failed: IntCounter,
    /// Requests rejected without requeue after the broker refused every
    /// publish of their reply.
    pub given_up: IntCounter,
    /// From a request's delivery to its ack.
    pub delivery_to_ack: Histogram,
    /// Requests delivered and not yet acked or nacked.
    pub in_flight: IntGauge,
}

impl ReplyMetrics {
    /// Handles registered nowhere: for the replier's own tests.
    pub fn unregistered() -> ReplyMetrics {
        let counter = |name: &str| IntCounter::new(name, name).expect("a valid name");
        ReplyMetrics {
            confirmed: counter("confirmed"),
            nacked: counter("nacked"),
            failed: counter("failed"),
            given_up: counter("given_up"),
            delivery_to_ack: Histogram::with_opts(metrics::prometheus::HistogramOpts::new(
                "delivery_to_ack",
                "delivery_to_ack",
            ))
            .expect("a valid name"),
            in_flight: IntGauge::new("in_flight", "in_flight").expect("a valid name"),
        }
    }
}

impl ReplyMetrics {
    /// A request was acked now: its delivery-to-ack time is done.
    pub fn acked(&self, received: std::time::Instant) {
        self.delivery_to_ack
            .observe(received.elapsed().as_secs_f64());
        self.in_flight.dec();
    }
}

/// The cache's counters; the cache updates them under its own lock.
#[derive(Clone)]
pub struct CacheMetrics {
    pub hits: IntCounter,
    pub misses: IntCounter,
    pub evictions: IntCounter,
    pub entries: IntGauge,
    pub bytes: IntGauge,
}

impl CacheMetrics {
    pub fn unregistered() -> CacheMetrics {
        let counter = |name: &str| IntCounter::new(name, name).expect("a valid name");
        let gauge = |name: &str| IntGauge::new(name, name).expect("a valid name");
        CacheMetrics {
            hits: counter("hits"),
            misses: counter("misses"),
            evictions: counter("evictions"),
            entries: gauge("entries"),
            bytes: gauge("bytes"),
        }
    }
}

/// Everything fib-server exposes.
pub struct ServerMetrics {
    pub registry: Registry,
    pub readiness: Readiness,
    pub received: IntCounter,
    pub answered: IntCounter,
    pub refused_invalid: IntCounter,
    pub refused_too_large: IntCounter,
    pub dropped: IntCounter,
    pub redelivered: IntCounter,
    pub compute: Histogram,
    pub reply: ReplyMetrics,
    pub cache: CacheMetrics,
    pub reconnections: IntCounter,
    pub session: IntGauge,
    /// Whether a worker's connection is blocked by a broker alarm (0/1 per
    /// worker, summed), and the seconds blocked in all.
    pub blocked: IntGauge,
    pub blocked_seconds: Counter,
    nodes: Nodes,
}

/// The `fib_server_broker_connections{url}` gauge with the count behind
/// each label, so that a node left by every worker disappears from it.
/// Locked only when a session starts or ends.
struct Nodes {
    gauge: IntGaugeVec,
    counts: Mutex<HashMap<String, i64>>,
}

impl ServerMetrics {
    pub fn new(settings: &Settings) -> Result<ServerMetrics> {
        let registry = metrics::registry("fib_server", env!("CARGO_PKG_VERSION"))?;
        let r = &registry;
        let counter = |name: &str, help: &str| -> Result<IntCounter> {
            let counter = IntCounter::new(format!("fib_server_{name}"), help)?;
            r.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge> {
            let gauge = IntGauge::new(format!("fib_server_{name}"), help)?;
            r.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let refused = IntCounterVec::new(
            Opts::new(
                "fib_server_requests_refused_total",
                "Requests answered with an error reply, by reason (the reply's error code).",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(refused.clone()))?;
        let nodes = IntGaugeVec::new(
            Opts::new(
                "fib_server_broker_connections",
                "Workers connected to the broker node at this URL (password masked).",
            ),
            &["url"],
        )?;
        registry.register(Box::new(nodes.clone()))?;
        let blocked_seconds = Counter::new(
            "fib_server_connection_blocked_seconds_total",
            "Seconds connections spent blocked by a broker resource alarm, all workers added.",
        )?;
        registry.register(Box::new(blocked_seconds.clone()))?;
        metrics::setting(
            r,
            "fib_server_prefetch",
            "The configured prefetch (--prefetch) of each worker.",
            i64::from(settings.prefetch),
        )?;
        metrics::setting(
            r,
            "fib_server_max_n",
            "The largest n answered (--max-n).",
            i64::try_from(settings.max_n).unwrap_or(i64::MAX),
        )?;
        metrics::setting(
            r,
            "fib_server_workers",
            "The configured number of workers (--workers).",
            i64::try_from(settings.workers).unwrap_or(i64::MAX),
        )?;
        metrics::setting(
            r,
            "fib_server_cache_capacity_bytes",
            "The reply cache's bound in bytes (--cache-mb); 0 when off.",
            i64::try_from(settings.cache_bytes).unwrap_or(i64::MAX),
        )?;
        let reply = ReplyMetrics {
            confirmed: counter(
                "replies_confirmed_total",
                "Replies the broker confirmed (publisher confirms).",
            )?,
            nacked: counter(
                "replies_nacked_total",
                "Publishes of a reply the broker refused with a basic.nack (each is retried, \
                 up to 4 publishes in all).",
            )?,
            given_up: counter(
                "requests_rejected_total",
                "Requests rejected without requeue (dead-lettered where the queue has a \
                 dead-letter exchange) after the broker refused every publish of their reply.",
            )?,
            failed: counter(
                "replies_publish_failed_total",
                "Replies that could not be published (the connection failed).",
            )?,
            delivery_to_ack: metrics::histogram(
                r,
                "fib_server_delivery_to_ack_seconds",
                "From a request's delivery to its ack, which waits for the reply's confirm.",
                metrics::SECONDS_100US_TO_10S,
            )?,
            in_flight: gauge(
                "requests_in_flight",
                "Requests delivered and not yet acked.",
            )?,
        };
        let cache = CacheMetrics {
            hits: counter(
                "cache_hits_total",
                "Requests answered from the reply cache.",
            )?,
            misses: counter(
                "cache_misses_total",
                "Requests whose F(n) was not cached and was computed.",
            )?,
            evictions: counter(
                "cache_evictions_total",
                "Entries evicted, least recently used first, to keep within the bound.",
            )?,
            entries: gauge("cache_entries", "Replies held in the cache.")?,
            bytes: gauge(
                "cache_bytes",
                "Bytes the cache holds, as counted against its bound.",
            )?,
        };
        let readiness = Readiness::new(settings.workers);
        metrics::register_ready(r, "fib_server_ready", &readiness)?;
        Ok(ServerMetrics {
            readiness,
            received: counter(
                "requests_received_total",
                "Requests delivered to the server.",
            )?,
            answered: counter("requests_answered_total", "Requests answered with F(n).")?,
            refused_invalid: refused.with_label_values(&["invalid-request"]),
            refused_too_large: refused.with_label_values(&["too-large"]),
            dropped: counter(
                "requests_dropped_total",
                "Requests acked without a reply: they had no reply_to.",
            )?,
            redelivered: counter(
                "requests_redelivered_total",
                "Requests delivered again after a consumer failed while holding them.",
            )?,
            compute: metrics::histogram(
                r,
                "fib_server_compute_seconds",
                "Time to compute F(n) in decimal, for requests not answered from the cache.",
                metrics::SECONDS_1US_TO_10S,
            )?,
            reply,
            cache,
            reconnections: counter(
                "reconnections_total",
                "Connections opened again after a lost one, all workers added.",
            )?,
            session: gauge(
                "session_number",
                "The session number of the worker that connected last: 0 for the first \
                 connection, one more after each reconnection.",
            )?,
            blocked: gauge(
                "connection_blocked",
                "Connections blocked by a broker resource alarm now (0 or 1 per worker).",
            )?,
            blocked_seconds,
            nodes: Nodes {
                gauge: nodes,
                counts: Mutex::new(HashMap::new()),
            },
            registry,
        })
    }

    /// Worker `worker` has a session on `url`, number `number`; the guard
    /// it gets back takes it off the node gauge when dropped.
    pub fn session_started(&self, number: u64, url: &AmqpUrl) -> OnNode<'_> {
        if number > 0 {
            self.reconnections.inc();
        }
        self.session.set(i64::try_from(number).unwrap_or(i64::MAX));
        // Display masks the password.
        let url = url.to_string();
        self.nodes.add(&url, 1);
        OnNode {
            nodes: &self.nodes,
            url,
        }
    }

    /// Worker `worker` is now in `state`.
    pub fn set_state(&self, worker: usize, state: State) {
        self.readiness.set(worker, state);
    }

    /// Worker `worker`'s connection is blocked by a broker alarm (or no
    /// longer): the gauge and readiness follow. The time blocked goes to
    /// `blocked_seconds` through [`ServerMetrics::add_blocked_seconds`].
    pub fn set_blocked(&self, worker: usize, blocked: bool) {
        // Only a change moves the gauge: a repeated report counts once.
        if self.readiness.set_blocked(worker, blocked) {
            if blocked {
                self.blocked.inc();
            } else {
                self.blocked.dec();
            }
        }
    }

    pub fn add_blocked_seconds(&self, seconds: f64) {
        if seconds.is_finite() && seconds > 0.0 {
            self.blocked_seconds.inc_by(seconds);
        }
    }
}

impl Nodes {
    fn add(&self, url: &str, delta: i64) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(url.to_string()).or_insert(0);
        *count += delta;
        if *count > 0 {
            self.gauge.with_label_values(&[url]).set(*count);
        } else {
            counts.remove(url);
            let _ = self.gauge.remove_label_values(&[url]);
        }
    }
}

/// A worker's presence on a node; dropped when its session ends.
pub struct OnNode<'a> {
    nodes: &'a Nodes,
    url: String,
}

impl Drop for OnNode<'_> {
    fn drop(&mut self) {
        self.nodes.add(&self.url, -1);
    }
}
