//! Our decimal conversion against num-bigint's own `BigUint::to_string`,
//! for scripts/decimal-vs-library.sh.
//!
//! Usage:
//!   decimal_vs_library [--reps R] [--min-ms MS] [DIGITS...]
//!   decimal_vs_library --once METHOD DIGITS
//!
//! For each DIGITS (default 10^3 .. 10^7) the number converted is F(n) for
//! the n whose F(n) has that many digits (what the server converts), and
//! the methods are:
//!
//! - `ours1`: `to_decimal_threads(&f, 1)`, one thread;
//! - `ours2`: `to_decimal_threads(&f, 2)`, two threads (the server's default
//!   on two cores);
//! - `lib`:   `f.to_string()`, num-bigint's conversion (one thread);
//! - `fib2`:  `fibonacci_decimal_threads(n, 2)`, F(n) and its digits as the
//!   server computes them (the powers of ten computed while the doubling
//!   runs);
//! - `fib2lib`: `fibonacci_threads(n, 2).to_string()`, the same with the
//!   library's conversion.
//!
//! The methods alternate within each repetition (the order rotating from one
//! repetition to the next), so a change in the machine's load falls on all of
//! them; each sample repeats the call until it has run MS / R ms (default
//! 200 ms in all). Prints one tab-separated line per size: median wall ms of
//! each method over R samples (default 5), and the ratios library / ours.
//!
//! `--once METHOD DIGITS` makes the number, then runs METHOD once inside the
//! function `measured_call`, for `valgrind --tool=callgrind
//! --toggle-collect='*measured_call*'`, which counts the instructions of
//! that call alone.
//!
//! Every method's digits are checked against `to_string` before timing.

use std::time::Instant;

use fib_math::decimal::to_decimal_threads;
use fib_math::fibonacci::{fibonacci_decimal_threads, fibonacci_threads};
use num_bigint::BigUint;

const METHODS: [&str; 5] = ["ours1", "ours2", "lib", "fib2", "fib2lib"];

fn main() {
    let mut reps = 5usize;
    let mut min_ms = 200.0f64;
    let mut once: Option<String> = None;
    let mut sizes = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--reps" => reps = parse(&value("--reps")),
            "--min-ms" => min_ms = parse(&value("--min-ms")),
            "--once" => once = Some(value("--once")),
            "-h" | "--help" => usage(""),
            _ => sizes.push(parse::<u64>(&arg)),
        }
    }
    if sizes.is_empty() {
        sizes = vec![1_000, 10_000, 100_000, 1_000_000, 10_000_000];
    }
    if reps == 0 || sizes.contains(&0) {
        usage("--reps and DIGITS must be at least 1");
    }
    if let Some(method) = once {
        if !METHODS.contains(&method.as_str()) || sizes.len() != 1 {
            usage("--once needs one of ours1, ours2, lib, fib2, fib2lib and one DIGITS");
        }
        let n = n_with_digits(sizes[0]);
        let f = fibonacci_threads(n, 2);
        let len = measured_call(&method, n, &f);
        println!("{method}\tn={n}\t{len} digits");
        return;
    }
    println!("digits\tn\tours1_ms\tours2_ms\tlib_ms\tlib/ours1\tlib/ours2\tfib2_ms\tfib2lib_ms\tfib2lib/fib2");
    for digits in sizes {
        let n = n_with_digits(digits);
        let f = fibonacci_threads(n, 2);
        let expected = f.to_string();
        for method in METHODS {
            assert!(
                run(method, n, &f) == expected,
                "{method}: digits of F({n}) disagree with to_string"
            );
        }
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); METHODS.len()];
        // One call of each sizes the samples (and warms the caches).
        let calls: Vec<u32> = METHODS
            .iter()
            .map(|method| {
                let start = Instant::now();
                std::hint::black_box(run(method, n, &f));
                let once_ms = (start.elapsed().as_secs_f64() * 1e3).max(1e-4);
                ((min_ms / reps as f64) / once_ms).clamp(1.0, 1e6) as u32
            })
            .collect();
        for rep in 0..reps {
            for k in 0..METHODS.len() {
                let i = (k + rep) % METHODS.len();
                let start = Instant::now();
                for _ in 0..calls[i] {
                    std::hint::black_box(run(METHODS[i], n, &f));
                }
                samples[i].push(start.elapsed().as_secs_f64() * 1e3 / f64::from(calls[i]));
            }
        }
        let m: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
        println!(
            "{}\t{n}\t{:.4}\t{:.4}\t{:.4}\t{:.2}\t{:.2}\t{:.4}\t{:.4}\t{:.2}",
            expected.len(),
            m[0],
            m[1],
            m[2],
            m[2] / m[0],
            m[2] / m[1],
            m[3],
            m[4],
            m[4] / m[3],
        );
    }
}

/// The smallest n whose F(n) has at least `digits` digits: F(n) has
/// floor(n log10(φ) - log10(√5)) + 1 digits for n >= 2.
fn n_with_digits(digits: u64) -> u64 {
    const LOG10_PHI: f64 = 0.208_987_640_249_978_73;
    const LOG10_SQRT5: f64 = 0.349_485_002_168_009_4;
    let mut n = (((digits - 1) as f64 + LOG10_SQRT5) / LOG10_PHI).ceil() as u64;
    // Guard against rounding: step to the first n with enough digits.
    while n > 2 && fib_digits(n - 1) >= digits {
        n -= 1;
    }
    while fib_digits(n) < digits {
        n += 1;
    }
    n
}

fn fib_digits(n: u64) -> u64 {
    const LOG10_PHI: f64 = 0.208_987_640_249_978_73;
    const LOG10_SQRT5: f64 = 0.349_485_002_168_009_4;
    if n < 7 {
        return 1;
    }
    (n as f64 * LOG10_PHI - LOG10_SQRT5).floor() as u64 + 1
}

fn run(method: &str, n: u64, f: &BigUint) -> String {
    match method {
        "ours1" => to_decimal_threads(f, 1),
        "ours2" => to_decimal_threads(f, 2),
        "lib" => f.to_string(),
        "fib2" => fibonacci_decimal_threads(n, 2),
        "fib2lib" => fibonacci_threads(n, 2).to_string(),
        other => usage(&format!("unknown method {other}")),
    }
}

#[inline(never)]
fn measured_call(method: &str, n: u64, f: &BigUint) -> usize {
    std::hint::black_box(run(method, n, f)).len()
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn parse<T: std::str::FromStr>(s: &str) -> T {
    s.parse()
        .unwrap_or_else(|_| usage(&format!("not a number: {s}")))
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("decimal_vs_library: {problem}");
    }
    eprintln!("usage: decimal_vs_library [--reps R] [--min-ms MS] [DIGITS...]");
    eprintln!("       decimal_vs_library --once ours1|ours2|lib|fib2|fib2lib DIGITS");
    std::process::exit(2)
}
