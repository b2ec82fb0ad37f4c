//! Criterion benchmarks of F(n) with its decimal digits, n = 10^3 .. 10^7,
//! and of its two parts (doubling, decimal conversion) at n = 10^6.
//!
//! `cargo bench -p fib-math --bench fibonacci` takes about two minutes on two
//! cores; `cargo bench -p fib-math --bench fibonacci -- 'decimal/1000000$'` runs
//! one size.
//! For the comparison with GMP see scripts/fib-vs-gmp.sh.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

use fib_math::decimal::{default_threads, to_decimal_threads};
use fib_math::fibonacci::{fibonacci_decimal_threads, fibonacci_threads};

/// (n, samples, measurement seconds): fewer samples for big n, so that the
/// whole run stays near two minutes.
const SIZES: [(u64, usize, u64); 5] = [
    (1_000, 100, 3),
    (10_000, 100, 3),
    (100_000, 50, 4),
    (1_000_000, 20, 8),
    (10_000_000, 10, 15),
];

fn fibonacci_decimal(c: &mut Criterion) {
    let threads = default_threads();
    let mut group = c.benchmark_group("fibonacci_decimal");
    for (n, samples, seconds) in SIZES {
        group.sample_size(samples);
        group.warm_up_time(Duration::from_secs(2));
        group.measurement_time(Duration::from_secs(seconds));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| fibonacci_decimal_threads(n, threads))
        });
    }
    group.finish();
}

fn parts_at_a_million(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let threads = default_threads();
    let f = fibonacci_threads(N, threads);
    let mut group = c.benchmark_group("parts_1000000");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("doubling", |b| b.iter(|| fibonacci_threads(N, threads)));
    group.bench_function("to_decimal", |b| b.iter(|| to_decimal_threads(&f, threads)));
    group.bench_function("doubling_1_thread", |b| b.iter(|| fibonacci_threads(N, 1)));
    group.bench_function("to_decimal_1_thread", |b| {
        b.iter(|| to_decimal_threads(&f, 1))
    });
    // num-bigint's own conversion, for reference.
    group.bench_function("num_bigint_to_string", |b| b.iter(|| f.to_string()));
    group.finish();
}

criterion_group!(benches, fibonacci_decimal, parts_at_a_million);
criterion_main!(benches);
