//! Times `fibonacci_decimal(n)`, F(n) with its decimal digits, for
//! scripts/fib-vs-gmp.sh.
//!
//! Usage: fib_timing [--reps R] [--threads T] [--min-ms MS] [--parts] N...
//!
//! Prints a header, then one tab-separated line per N: n, the number of
//! digits, the first and the last 20 digits (to compare with another
//! implementation), T, and the median milliseconds of one
//! `fibonacci_decimal_threads(n, T)`. With --parts, also the medians of its
//! two parts, `fibonacci_threads(n, T)` and `to_decimal_threads(&F(n), T)`,
//! and of num-bigint's own `F(n).to_string()`. Each median is over R samples
//! (default 7); a sample repeats the call until it has run at least MS / R
//! milliseconds (default MS 300), so that small n are timed reliably.
//! T defaults to the number of cores. The digits are checked against
//! num-bigint's `to_string` before anything is timed.

use std::time::Instant;

use fib_math::decimal::{default_threads, to_decimal_threads};
use fib_math::fibonacci::{fibonacci_decimal_threads, fibonacci_threads};

fn main() {
    let mut reps = 7usize;
    let mut threads = default_threads();
    let mut min_ms = 300.0f64;
    let mut parts = false;
    let mut ns = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--reps" => reps = parse(&value("--reps")),
            "--threads" => threads = parse(&value("--threads")),
            "--min-ms" => min_ms = parse(&value("--min-ms")),
            "--parts" => parts = true,
            "-h" | "--help" => usage(""),
            _ => ns.push(parse::<u64>(&arg)),
        }
    }
    if ns.is_empty() || reps == 0 {
        usage("no N given");
    }
    let mut header = String::from("n\tdigits\tfirst20\tlast20\tthreads\tfib_decimal_ms");
    if parts {
        header.push_str("\tfib_ms\tto_decimal_ms\tnum_bigint_to_string_ms");
    }
    println!("{header}");
    for n in ns {
        let digits = fibonacci_decimal_threads(n, threads);
        let f = fibonacci_threads(n, threads);
        assert!(
            digits == f.to_string(),
            "F({n}): digits disagree with num-bigint"
        );
        let total = median_ms(reps, min_ms, || fibonacci_decimal_threads(n, threads).len());
        let first = &digits[..digits.len().min(20)];
        let last = &digits[digits.len().saturating_sub(20)..];
        let mut line = format!(
            "{n}\t{}\t{first}\t{last}\t{threads}\t{total:.6}",
            digits.len()
        );
        if parts {
            let doubling = median_ms(reps, min_ms, || {
                fibonacci_threads(n, threads).bits() as usize
            });
            let conversion = median_ms(reps, min_ms, || to_decimal_threads(&f, threads).len());
            let to_string = median_ms(reps, min_ms, || f.to_string().len());
            line.push_str(&format!("\t{doubling:.6}\t{conversion:.6}\t{to_string:.6}"));
        }
        println!("{line}");
    }
}

/// The median over `reps` samples of the time of one call of `work`; each
/// sample repeats `work` until it has run at least min_ms / reps ms.
fn median_ms(reps: usize, min_ms: f64, mut work: impl FnMut() -> usize) -> f64 {
    // One warm-up call, which also sizes the samples.
    let start = Instant::now();
    std::hint::black_box(work());
    let once_ms = (start.elapsed().as_secs_f64() * 1e3).max(1e-4);
    let calls = ((min_ms / reps as f64) / once_ms).clamp(1.0, 1e6) as u32;
    let mut samples: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                std::hint::black_box(work());
            }
            start.elapsed().as_secs_f64() * 1e3 / f64::from(calls)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn parse<T: std::str::FromStr>(s: &str) -> T {
    s.parse()
        .unwrap_or_else(|_| usage(&format!("not a number: {s}")))
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("fib_timing: {problem}");
    }
    eprintln!("usage: fib_timing [--reps R] [--threads T] [--min-ms MS] [--parts] N...");
    std::process::exit(2)
}
