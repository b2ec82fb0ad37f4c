//! What a run amounts to: counts, wall time, throughput, latency in both
//! views, how well an open loop kept to its rate, and the baseline check.

use crate::measure::Measurement;
use crate::stats::Latency;
use serde::{Deserialize, Serialize};

/// The figures a report shows; `--json` prints exactly these fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Measured requests answered.
    pub count: u64,
    pub ok: u64,
    /// Wrong values and error replies.
    pub failures: u64,
    /// Wall time from the first measured request (due) to the last reply
    /// (with no reply at all, to when the run stopped sending).
    pub total_ms: f64,
    /// Answered requests per second of `total_ms`.
    pub requests_per_second: f64,
    /// Requests published again after a timeout or a lost connection.
    pub resends: u64,
    pub reconnects: u64,
    /// Measured requests sent: `count` + `unanswered`.
    pub sent: u64,
    /// Warm-up requests (sent and checked, not counted anywhere else).
    pub warmup: u64,
    /// Sent, but left unanswered when the run stopped waiting (Ctrl-C, the
    /// end of `--duration`, or a failure that ended the run).
    pub unanswered: u64,
    /// Due (open loop) before the run stopped sending, but never sent: at
    /// the end of `--duration` or on Ctrl-C, with `--inflight` requests
    /// outstanding. Not in `sent`, nor in any latency figure.
    #[serde(default)]
    pub unsent: u64,
    pub interrupted: bool,
    /// Why the run ended.
    pub ended: Ended,
    /// Times the broker blocked the connection (memory or disk alarms).
    #[serde(default)]
    pub blocks: u64,
    /// Time the connection spent blocked, over all blocks.
    #[serde(default)]
    pub blocked_ms: f64,
    /// Corrected latency: from when each request was due (open loop) or sent
    /// (closed loop, where both views are the same) to its reply.
    pub latency_us: Option<Latency>,
    /// From each request's first publish to its reply.
    pub latency_as_sent_us: Option<Latency>,
    /// Requests whose latency was above the histograms' ceiling (an hour
    /// at least, more for long runs and long `--timeout × --retries`):
    /// recorded at the ceiling, so the figures above are too low for them.
    #[serde(default)]
    pub latency_clamped: u64,
    /// Open loop only.
    pub rate: Option<Rate>,
    /// With `--baseline` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<Regression>,
}

/// Why a timed run ended: the summary's `ended`. Every way a run that
/// started can end has its own word, printed with the summary of what was
/// done before it, whatever the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ended {
    /// It ran to its `--count` or `--duration` (exit 0, 1 or 6).
    Completed,
    /// Ctrl-C (exit 130).
    Interrupted,
    /// A request got no reply within `--timeout`, `--retries` times over,
    /// or (`--duration`) requests outstanding at the end got none within
    /// `--timeout` (exit 5).
    NoReply,
    /// The connection was lost and could not be made again within the
    /// reconnection budget (exit 3).
    GaveUpReconnecting,
    /// The broker closed the channel or the connection for a reason that
    /// reconnecting would not cure (exit 3).
    BrokerError,
    /// A request was returned unroutable: nothing is bound (exit 4).
    Unroutable,
    /// The broker blocked the connection (a resource alarm) longer than
    /// `--max-blocked` (exit 3).
    Blocked,
    /// Anything else, such as a bug (exit 70).
    InternalError,
}

impl Ended {
    /// Why a run that failed with `error` ended. Decided from the error's
    /// exit code (`common::exit`, the one mapping), with a lost connection
    /// told apart from a refusal.
    pub fn of_error(error: &anyhow::Error) -> Ended {
        use common::exit;
        let blocked = error.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<common::Failure>(),
                Some(common::Failure::Blocked(_))
            )
        });
        if blocked {
            return Ended::Blocked;
        }
        match exit::exit_code(error) {
            exit::TIMEOUT => Ended::NoReply,
            exit::UNROUTABLE => Ended::Unroutable,
            exit::BROKER if common::failure::is_transient(error) => Ended::GaveUpReconnecting,
            exit::BROKER => Ended::BrokerError,
            _ => Ended::InternalError,
        }
    }

    /// The word in the JSON summary: `no-reply`, ...
    pub fn word(self) -> &'static str {
        match self {
            Ended::Completed => "completed",
            Ended::Interrupted => "interrupted",
            Ended::NoReply => "no-reply",
            Ended::GaveUpReconnecting => "gave-up-reconnecting",
            Ended::BrokerError => "broker-error",
            Ended::Unroutable => "unroutable",
            Ended::Blocked => "blocked",
            Ended::InternalError => "internal-error",
        }
    }
}

/// How an open loop kept to its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub asked: f64,
    /// Measured sends per second over the send window: from the first
    /// one's due time to when sending ended (the end of the last send's
    /// slot, or the last send, or the end of `--duration`, or Ctrl-C,
    /// whichever is latest). Equals `asked` when the schedule held.
    pub achieved: f64,
    /// Sends later than `late_ms` after their due time.
    pub late_sends: u64,
    pub late_ms: f64,
    pub max_lag_ms: f64,
}

/// This run against a baseline: positive percentages are worse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    pub baseline: String,
    pub max_regression_pct: f64,
    pub mean_us: f64,
    pub baseline_mean_us: f64,
    pub mean_change_pct: f64,
    pub p99_us: f64,
    pub baseline_p99_us: f64,
    pub p99_change_pct: f64,
    /// Either change above `max_regression_pct`.
    pub failed: bool,
}

impl Summary {
    pub fn of(measurement: &Measurement, reconnects: u64, ended: Ended) -> Summary {
        let seconds = measurement.total.as_secs_f64();
        let count = measurement.answered;
        Summary {
            count,
            ok: measurement.correct,
            failures: count - measurement.correct,
            total_ms: seconds * 1e3,
            requests_per_second: if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            },
            resends: measurement.resends,
            reconnects,
            sent: measurement.sent,
            warmup: measurement.warmup,
            unanswered: measurement.unanswered,
            unsent: measurement.unsent,
            interrupted: measurement.interrupted,
            ended,
            blocks: measurement.blocks,
            blocked_ms: measurement.blocked.as_secs_f64() * 1e3,
            latency_us: Latency::of(&measurement.corrected),
            latency_as_sent_us: Latency::of(&measurement.as_sent),
            latency_clamped: measurement.clamped,
            rate: measurement.schedule.map(|s| {
                let window = s.send_window.as_secs_f64();
                Rate {
                    asked: s.asked,
                    achieved: if window > 0.0 {
                        measurement.sent as f64 / window
                    } else {
                        0.0
                    },
                    late_sends: s.late_sends,
                    late_ms: s.late_by.as_secs_f64() * 1e3,
                    max_lag_ms: s.max_lag.as_secs_f64() * 1e3,
                }
            }),
            regression: None,
        }
    }

    /// An open loop that sent some requests late or never, or whose sends
    /// took longer than their schedule by more than what counts as late
    /// (`late_ms`, max(1/rate, 1 ms)): one tolerance for both. (A ratio of
    /// rates would judge a window of microseconds, two requests at 10^5/s,
    /// by a few microseconds' delay that no send counts as late.)
    pub fn fell_behind(&self) -> bool {
        self.unsent > 0
            || self
                .rate
                .is_some_and(|r| r.late_sends > 0 || r.behind_schedule_ms(self.sent) > r.late_ms)
    }
}

impl Rate {
    /// How much longer than their schedule (`sent` / `asked`) the `sent`
    /// requests took to go out, in ms: the send window less the schedule's.
    pub fn behind_schedule_ms(&self, sent: u64) -> f64 {
        if sent == 0 || self.achieved <= 0.0 || self.asked <= 0.0 {
            return 0.0;
        }
        let sent = sent as f64;
        (sent / self.achieved - sent / self.asked) * 1e3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::failure::Failure;
    use std::time::Duration;

    const ALL: [Ended; 7] = [
        Ended::Completed,
        Ended::Interrupted,
        Ended::NoReply,
        Ended::GaveUpReconnecting,
        Ended::BrokerError,
        Ended::Unroutable,
        Ended::InternalError,
    ];

    #[test]
    fn each_end_has_one_word_in_text_and_json() {
        for ended in ALL {
            let json = serde_json::to_string(&ended).expect("serializes");
            assert_eq!(json, format!("\"{}\"", ended.word()));
            assert_eq!(serde_json::from_str::<Ended>(&json).ok(), Some(ended));
        }
    }

    /// The summary of an open loop at `asked`/s that sent `sent` requests
    /// over `window`, `late` of them late, `unsent` never.
    fn open_loop(asked: f64, sent: u64, window: Duration, late: u64, unsent: u64) -> Summary {
        let mut measurement = crate::measure::Run::new(crate::measure::Plan {
            workload: crate::workload::Workload::Fixed(1),
            stop: crate::measure::Stop::Count(sent),
            warmup: 0,
            rate: Some(asked),
            inflight: 8,
            timeout: Duration::from_secs(10),
            retries: 0,
            tick: None,
            max_blocked: None,
        })
        .finish();
        measurement.sent = sent;
        measurement.unsent = unsent;
        if let Some(schedule) = measurement.schedule.as_mut() {
            schedule.send_window = window;
            schedule.late_sends = late;
        }
        Summary::of(&measurement, 0, Ended::Completed)
    }

    #[test]
    fn falling_behind_is_judged_with_the_tolerance_of_a_late_send() {
        // Two requests at 10^5/s, the second sent 95 µs after the first was
        // due (75 µs after its own due time): nothing late, nothing unsent,
        // though 2 in 95 µs is 21,000/s. Once a false "fell behind".
        let quick = open_loop(1e5, 2, Duration::from_micros(95), 0, 0);
        assert_eq!(quick.rate.map(|r| r.late_ms), Some(1.0));
        assert!(quick.rate.is_some_and(|r| r.achieved < 25_000.0));
        assert!(!quick.fell_behind(), "{:?}", quick.rate);
        // The window 1 ms longer than the schedule and a bit: behind.
        assert!(open_loop(1e5, 2, Duration::from_micros(1_021), 0, 0).fell_behind());
        assert!(!open_loop(1e5, 2, Duration::from_micros(1_019), 0, 0).fell_behind());
        // At 100/s (10 ms slots), 100 sends in 1.005 s: on time.
        assert!(!open_loop(100.0, 100, Duration::from_millis(1_005), 0, 0).fell_behind());
        assert!(open_loop(100.0, 100, Duration::from_millis(1_011), 0, 0).fell_behind());
        // A late send or one never sent is enough, whatever the rate says.
        assert!(open_loop(1e5, 2, Duration::from_micros(20), 1, 0).fell_behind());
        assert!(open_loop(1e5, 2, Duration::from_micros(20), 0, 1).fell_behind());
        // Nothing sent: nothing to judge but the unsent.
        assert!(!open_loop(1e5, 0, Duration::ZERO, 0, 0).fell_behind());
    }

    #[test]
    fn a_failure_says_why_the_run_ended() {
        let of = |failure: Failure| Ended::of_error(&anyhow::Error::new(failure).context("run"));
        assert_eq!(of(Failure::Timeout("t".into())), Ended::NoReply);
        assert_eq!(of(Failure::Unroutable("u".into())), Ended::Unroutable);
        assert_eq!(
            of(Failure::Disconnected("gave up reconnecting".into())),
            Ended::GaveUpReconnecting
        );
        assert_eq!(of(Failure::Broker("refused".into())), Ended::BrokerError);
        let closed = amiquip::Error::ServerClosedChannel {
            channel_id: 1,
            code: 404,
            message: "NOT_FOUND - no exchange".into(),
        };
        assert_eq!(Ended::of_error(&closed.into()), Ended::BrokerError);
        assert_eq!(
            Ended::of_error(&anyhow::anyhow!("bug")),
            Ended::InternalError
        );
    }
}
