//! Live output during a run. The bar goes to stderr and only when stderr is a
//! terminal (indicatif hides it otherwise); verbose lines go to stderr too so
//! stdout keeps only the result.

use crate::measure::{RoundTrip, Verdict};
use common::protocol::{printable, Reply};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::fmt::Write;

pub struct Progress {
    bar: ProgressBar,
    per_request_lines: bool,
}

impl Progress {
    /// `count`: the requests expected (warm-up included), if known.
    pub fn new(count: Option<u64>, show_bar: bool, per_request_lines: bool) -> Progress {
        let target = if show_bar && !per_request_lines {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(count, target);
        let template = match count {
            Some(_) => "{bar:40} {pos}/{len} round trips, {rate}, eta {eta} {msg}",
            None => "{spinner} {pos} round trips, {rate}, {elapsed} {msg}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            // indicatif's own {per_sec} prints four decimals (2,246.2006/s).
            bar.set_style(
                style.with_key("rate", |state: &ProgressState, out: &mut dyn Write| {
                    let _ = out.write_str(&rate_text(state.per_sec()));
                }),
            );
        }
        Progress {
            bar,
            per_request_lines,
        }
    }

    pub fn observe(&mut self, round_trip: &RoundTrip, reply: &Reply) {
        self.bar.inc(1);
        if self.per_request_lines {
            eprintln!("{}", request_line(round_trip, reply));
        }
    }

    /// Shows "blocked (REASON)" beside the bar while the broker blocks the
    /// connection (`Some(reason)`); clears it when it unblocks (None).
    pub fn blocked(&self, reason: Option<&str>) {
        match reason {
            Some(reason) => self
                .bar
                .set_message(format!("blocked ({})", common::blocking::printable(reason))),
            None => self.bar.set_message(""),
        }
    }

    /// Shows "reconnecting" beside the bar while the connection is being
    /// made again; clears it when a new session begins.
    pub fn reconnecting(&self, reconnecting: bool) {
        self.bar
            .set_message(if reconnecting { "reconnecting" } else { "" });
    }

    /// Runs `f` (which prints to stderr) with the bar out of the way.
    pub fn suspend(&self, f: impl FnOnce()) {
        self.bar.suspend(f);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A rate as the bar shows it: thousands grouped, one decimal (`2,246.2/s`).
fn rate_text(per_second: f64) -> String {
    if !per_second.is_finite() || per_second < 0.0 {
        return "-/s".to_string();
    }
    let tenths = (per_second * 10.0).round() as u64;
    let whole = (tenths / 10).to_string();
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{grouped}.{}/s", tenths % 10)
}

fn request_line(round_trip: &RoundTrip, reply: &Reply) -> String {
    let shown = match reply {
        Reply::Value(digits) => format!(
            "{} ({} characters)",
            printable(digits, 20),
            digits.chars().count()
        ),
        // Both come from the server as they are: shorten them as well.
        Reply::Error { code, message } => {
            format!("error {}: {}", printable(code, 20), printable(message, 60))
        }
    };
    let warmup = if round_trip.warmup { " (warm-up)" } else { "" };
    let verdict = match &round_trip.verdict {
        Verdict::Correct => "ok",
        Verdict::Wrong { .. } => "WRONG",
        Verdict::Refused { .. } => "REFUSED",
        Verdict::Unanswered => "UNANSWERED",
    };
    format!(
        "n={} id={} -> {shown} in {:.3} ms {verdict}{warmup}",
        round_trip.n,
        round_trip.correlation_id,
        round_trip.latency().as_secs_f64() * 1e3
    )
}

#[cfg(test)]
mod tests {
    use super::rate_text;

    #[test]
    fn a_rate_has_one_decimal_and_grouped_thousands() {
        assert_eq!(rate_text(2246.2006), "2,246.2/s");
        assert_eq!(rate_text(0.0), "0.0/s");
        assert_eq!(rate_text(7.96), "8.0/s");
        assert_eq!(rate_text(999.96), "1,000.0/s");
        assert_eq!(rate_text(1_234_567.04), "1,234,567.0/s");
        assert_eq!(rate_text(f64::NAN), "-/s");
        assert_eq!(rate_text(f64::INFINITY), "-/s");
    }
}
