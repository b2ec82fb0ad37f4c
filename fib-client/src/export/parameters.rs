//! The run's parameters, for `--export-json`: what was asked, against which
//! broker, from which machine, when. The URL's password is masked.

use crate::measure::Stop;
use crate::options::{Mode, Options};
use crate::workload::Workload;
use amiquip::{AmqpValue, FieldTable};
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Serialize)]
pub struct Parameters {
    pub fib_rpc_version: &'static str,
    pub host: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// The broker's URL (several, comma-separated, for a cluster), each with
    /// the password as `***`.
    pub url: String,
    pub broker: Option<Broker>,
    pub exchange: String,
    pub routing_key: String,
    pub reply_to: String,
    /// `A..B` (cycled) or `N` (fixed).
    pub n: String,
    pub count: Option<u64>,
    pub duration_s: Option<f64>,
    pub warmup: u64,
    pub rate: Option<f64>,
    pub inflight: usize,
    pub timeout_s: f64,
    pub retries: u32,
    /// The command line, with any `--url` value masked.
    pub args: Vec<String>,
}

/// The broker's product and version, from the connection's server properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broker {
    pub product: Option<String>,
    pub version: Option<String>,
}

impl Broker {
    pub fn from_server_properties(properties: &FieldTable) -> Broker {
        let text = |key: &str| match properties.get(key) {
            Some(AmqpValue::LongString(value)) => Some(value.clone()),
            _ => None,
        };
        Broker {
            product: text("product"),
            version: text("version"),
        }
    }
}

impl Parameters {
    pub fn new(options: &Options, started: SystemTime, broker: Option<Broker>) -> Parameters {
        let url = options
            .connection
            .urls
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let (n, count, duration_s, warmup, rate) = match &options.mode {
            Mode::Benchmark(load) => (
                match &load.workload {
                    Workload::Cycle(range) => format!("{}..{}", range.start, range.end),
                    Workload::Fixed(n) => n.to_string(),
                },
                match load.stop {
                    Stop::Count(count) => Some(count),
                    Stop::After(_) => None,
                },
                match load.stop {
                    Stop::After(length) => Some(length.as_secs_f64()),
                    Stop::Count(_) => None,
                },
                load.warmup,
                load.rate,
            ),
            Mode::Single(n) => (n.to_string(), Some(1), None, 0, None),
        };
        Parameters {
            fib_rpc_version: env!("CARGO_PKG_VERSION"),
            host: host_name(),
            started_at: rfc3339(started),
            args: masked_args(std::env::args().skip(1)),
            url,
            broker,
            exchange: options.exchange.clone(),
            routing_key: options.routing_key.clone(),
            reply_to: format!("{:?}", options.reply_mode).to_lowercase(),
            n,
            count,
            duration_s,
            warmup,
            rate,
            inflight: options.inflight,
            timeout_s: options.timeout.as_secs_f64(),
            retries: options.retries,
        }
    }
}

/// The arguments with each `--url` value's passwords masked.
fn masked_args(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut next_is_url = false;
    for arg in args {
        if next_is_url {
            out.push(mask_urls(&arg));
            next_is_url = false;
        } else if arg == "--url" {
            out.push(arg);
            next_is_url = true;
        } else if let Some(value) = arg.strip_prefix("--url=") {
            out.push(format!("--url={}", mask_urls(value)));
        } else {
            out.push(arg);
        }
    }
    out
}

/// A `--url` value (one URL or several, comma-separated) as `AmqpUrl`
/// shows it; `***` for a part that does not parse, which may hold anything.
fn mask_urls(value: &str) -> String {
    value
        .split(',')
        .map(|part| {
            common::cli::parse_url(part.trim())
                .map_or_else(|_| "***".to_string(), |u| u.to_string())
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// `2026-11-27T21:34:42.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil: days since 1970-01-01 to (y, m, d).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_in_rfc3339() {
        let at = |secs: u64| rfc3339(UNIX_EPOCH + Duration::from_millis(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_795_815_282_123), "2026-11-27T21:34:42.123Z");
    }

    #[test]
    fn the_url_is_masked_in_the_arguments() {
        let args = [
            "--url",
            "amqp://u:secret@h:5672/%2f",
            "--url=amqp://u:secret@a:5681/%2f,amqp://u:secret@b:5682/%2f",
            "--url",
            "not a url secret",
            "--count",
            "3",
        ];
        let masked = masked_args(args.iter().map(|s| s.to_string()));
        assert_eq!(
            masked,
            [
                "--url",
                "amqp://u:***@h:5672/%2f",
                "--url=amqp://u:***@a:5681/%2f,amqp://u:***@b:5682/%2f",
                "--url",
                "***",
                "--count",
                "3"
            ]
        );
        assert!(!masked.iter().any(|a| a.contains("secret")));
    }

    #[test]
    fn broker_product_and_version_from_server_properties() {
        let mut properties = FieldTable::new();
        properties.insert("product".into(), AmqpValue::LongString("RabbitMQ".into()));
        properties.insert("version".into(), AmqpValue::LongString("3.10.8".into()));
        let broker = Broker::from_server_properties(&properties);
        assert_eq!(broker.product.as_deref(), Some("RabbitMQ"));
        assert_eq!(broker.version.as_deref(), Some("3.10.8"));
    }
}
