//! Live output during a run. The bar goes to stderr and only when stderr is a
//! terminal (indicatif hides it otherwise); verbose lines go to stderr too so
//! stdout keeps only the result.

use crate::measure::{RoundTrip, Verdict};
use common::protocol::{printable, Reply};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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
            Some(_) => "{bar:40} {pos}/{len} round trips, {per_sec}, eta {eta}",
            None => "{spinner} {pos} round trips, {per_sec}, {elapsed}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
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

    /// Runs `f` (which prints to stderr) with the bar out of the way.
    pub fn suspend(&self, f: impl FnOnce()) {
        self.bar.suspend(f);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
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
