//! Decimal digits of big unsigned integers.
//!
//! `to_decimal` splits the number by 10^e with e about half its digit count,
//! then splits both halves the same way, down to leaves of a few hundred
//! digits that are converted by repeated division by 10^19 (with a
//! multiplication by a precomputed reciprocal instead of a hardware
//! division). The powers 10^e are computed once per call by squaring; the
//! divisions are num-bigint's (Burnikel–Ziegler above 64 limbs).
//!
//! Why not num-bigint's own `to_string`, which since 0.4.7 splits the same
//! way: scripts/decimal-vs-library.sh (table in BENCHMARKS.md) finds it
//! within 10% of this on one thread only from 10^5 digits on; below, its
//! leaves are slower (1.2 to 1.45 times our instructions at 10^3 and 10^4
//! digits). Above, the halves of a big split can be converted on two cores
//! (see `join`), and `fibonacci_decimal` computes the powers while the
//! Fibonacci number itself is being computed, which `to_string` cannot.
//!
//! `to_decimal_threads` takes the number of threads it may use; 1 keeps all
//! work on the calling thread. Threads change the order of work, never the
//! digits.

use std::sync::{mpsc, Arc, Mutex, OnceLock, PoisonError};
use std::thread;

use num_bigint::BigUint;
use num_integer::Integer;

/// Numbers with at most this many digits are converted by repeated division
/// by 10^19 (quadratic, but fast at this size).
const LEAF_DIGITS: usize = 19 * 16;

/// A split is converted on two threads only if the number has at least this
/// many bits; below it a thread costs more than it saves.
const PARALLEL_BITS: u64 = 1024 * 64;

/// 10^19, the largest power of ten in a u64; its top bit is set.
const TEN_POW_19: u64 = 10_000_000_000_000_000_000;

/// floor((2^128 - 1) / 10^19) - 2^64: the reciprocal for `div_by_ten_pow_19`.
const TEN_POW_19_RECIPROCAL: u64 = ((u128::MAX / TEN_POW_19 as u128) - (1u128 << 64)) as u64;

/// The decimal digits of `x`, as `x.to_string()` gives them.
pub fn to_decimal(x: &BigUint) -> String {
    to_decimal_threads(x, default_threads())
}

/// `to_decimal` with at most `threads` threads (0 and 1 both mean the calling
/// thread only).
pub fn to_decimal_threads(x: &BigUint, threads: usize) -> String {
    Powers::new(digits_bound(x.bits())).to_decimal(x, threads)
}

/// The number of threads `to_decimal` and `fibonacci_decimal` use by default:
/// the cores this process may run on (looked up once: the lookup reads
/// cgroup files, which would cost more than a small conversion).
pub fn default_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| thread::available_parallelism().map_or(1, |n| n.get()))
}

/// An upper bound of the number of decimal digits of a number below 2^bits
/// (at least 1). 0.30103 > log10(2), so the bound holds; it is at most a few
/// digits too high, and those come out as leading zeros that are dropped.
pub(crate) fn digits_bound(bits: u64) -> usize {
    (u128::from(bits) * 30_103 / 100_000) as usize + 1
}

/// Runs `here` on this thread and `there` on a new thread, and returns both
/// results. If `here` is done before the new thread has started `there`
/// (on a busy machine a new thread may wait a while for a core), this thread
/// runs `there` itself; so two threads cost at most a thread spawn more than
/// one, never a wait for a core. The new thread is not joined: if it starts
/// late it finds nothing to do and ends.
pub(crate) fn join<A, B>(
    here: impl FnOnce() -> A,
    there: impl FnOnce() -> B + Send + 'static,
) -> (A, B)
where
    B: Send + 'static,
{
    let task = Arc::new(Mutex::new(Some(there)));
    let (sender, receiver) = mpsc::sync_channel(1);
    let their_task = Arc::clone(&task);
    // If the spawn fails, the closure is dropped and `there` runs here.
    let _ = thread::Builder::new().spawn(move || {
        let there = their_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(there) = there {
            let _ = sender.send(there());
        }
    });
    let a = here();
    let there = task.lock().unwrap_or_else(PoisonError::into_inner).take();
    let b = match there {
        Some(there) => there(),
        None => receiver
            .recv()
            .expect("the helper thread panicked while running its half"),
    };
    (a, b)
}

/// The powers of ten by which numbers below 10^digits are split.
pub(crate) struct Powers {
    /// Every number below 10^digits can be converted with these powers.
    digits: usize,
    table: Arc<Table>,
}

struct Table {
    /// Ascending exponents: exps[i + 1] is 2 exps[i] or 2 exps[i] - 1, the
    /// last is ceil(digits / 2), and exps[0] <= LEAF_DIGITS.
    exps: Vec<usize>,
    /// pows[i] = 10^exps[i].
    pows: Vec<BigUint>,
}

impl Powers {
    /// The powers needed for numbers of up to `digits` digits.
    pub(crate) fn new(digits: usize) -> Powers {
        let mut exps = Vec::new();
        let mut e = digits;
        while e > LEAF_DIGITS {
            e = e.div_ceil(2);
            exps.push(e);
        }
        exps.reverse();
        let mut pows: Vec<BigUint> = Vec::with_capacity(exps.len());
        for (i, &e) in exps.iter().enumerate() {
            let p = match i {
                0 => BigUint::from(10u32).pow(e as u32),
                _ => {
                    let prev = &pows[i - 1];
                    let square = prev * prev;
                    if e == 2 * exps[i - 1] {
                        square
                    } else {
                        debug_assert_eq!(e, 2 * exps[i - 1] - 1);
                        square / 10u32
                    }
                }
            };
            pows.push(p);
        }
        Powers {
            digits,
            table: Arc::new(Table { exps, pows }),
        }
    }

    /// Whether these powers can convert every number below 2^bits.
    pub(crate) fn covers_bits(&self, bits: u64) -> bool {
        digits_bound(bits) <= self.digits
    }

    /// The decimal digits of `x`, which must be below 10^self.digits.
    pub(crate) fn to_decimal(&self, x: &BigUint, threads: usize) -> String {
        assert!(
            self.covers_bits(x.bits()),
            "powers of ten computed for numbers below 10^{}, got one of {} bits",
            self.digits,
            x.bits()
        );
        let mut out = vec![0u8; self.digits];
        let levels = self.table.exps.len();
        convert(x, &mut out, &self.table, levels, threads.max(1));
        let leading_zeros = out.iter().position(|&d| d != b'0').unwrap_or(out.len() - 1);
        out.drain(..leading_zeros);
        String::from_utf8(out).expect("only ASCII digits were written")
    }
}

/// Writes the out.len() decimal digits of `x` (below 10^out.len()) into `out`,
/// zero padded on the left, with the powers table.pows[..levels].
fn convert(x: &BigUint, out: &mut [u8], table: &Arc<Table>, levels: usize, threads: usize) {
    let width = out.len();
    if width <= LEAF_DIGITS {
        return convert_leaf(x, out);
    }
    // The largest power below 10^width; x < 10^width <= 10^(2 exps[i]).
    let Some(i) = table.exps[..levels].iter().rposition(|&e| e < width) else {
        return convert_leaf(x, out);
    };
    let (high, low) = x.div_rem(&table.pows[i]);
    let (high_out, low_out) = out.split_at_mut(width - table.exps[i]);
    if threads >= 2 && x.bits() >= PARALLEL_BITS {
        let high_threads = threads / 2;
        let low_threads = threads - high_threads;
        let their_table = Arc::clone(table);
        let high_width = high_out.len();
        let ((), high_digits) = join(
            || convert(&low, low_out, table, i, low_threads),
            move || {
                let mut digits = vec![0u8; high_width];
                convert(&high, &mut digits, &their_table, i, high_threads);
                digits
            },
        );
        high_out.copy_from_slice(&high_digits);
    } else {
        convert(&high, high_out, table, i, 1);
        convert(&low, low_out, table, i, 1);
    }
}

/// `convert` for small numbers: repeated division by 10^19.
fn convert_leaf(x: &BigUint, out: &mut [u8]) {
    let mut limbs: Vec<u64> = x.iter_u64_digits().collect();
    let mut end = out.len();
    while !limbs.is_empty() {
        let mut rem = 0u64;
        for limb in limbs.iter_mut().rev() {
            let (q, r) = div_by_ten_pow_19(rem, *limb);
            *limb = q;
            rem = r;
        }
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
        let start = end.saturating_sub(19);
        write_padded(rem, &mut out[start..end]);
        end = start;
        assert!(
            end > 0 || limbs.is_empty(),
            "number wider than its digit field"
        );
    }
    out[..end].fill(b'0');
}

/// Writes the dst.len() lowest decimal digits of `v` into `dst`, zero padded.
fn write_padded(mut v: u64, dst: &mut [u8]) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    assert_eq!(v, 0, "number wider than its digit field");
}

/// (hi·2^64 + lo) divided by 10^19, for hi < 10^19: quotient and remainder.
///
/// Möller and Granlund, "Improved division by invariant integers" (2011),
/// algorithm 4: one 64×64→128 multiplication instead of a hardware division.
#[inline]
fn div_by_ten_pow_19(hi: u64, lo: u64) -> (u64, u64) {
    const D: u64 = TEN_POW_19;
    debug_assert!(hi < D);
    let prod = u128::from(TEN_POW_19_RECIPROCAL) * u128::from(hi)
        + ((u128::from(hi) << 64) | u128::from(lo));
    let mut q = ((prod >> 64) as u64).wrapping_add(1);
    let mut r = lo.wrapping_sub(q.wrapping_mul(D));
    if r > prod as u64 {
        q = q.wrapping_sub(1);
        r = r.wrapping_add(D);
    }
    if r >= D {
        q += 1;
        r -= D;
    }
    (q, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_traits::{One, Zero};

    /// A small deterministic generator (64-bit LCG, high halves).
    struct Lcg(u64);

    impl Lcg {
        fn next_u32(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 32) as u32
        }

        fn number(&mut self, max_limbs: usize) -> BigUint {
            let len = (self.next_u32() as usize) % (max_limbs * 2 + 1);
            BigUint::new((0..len).map(|_| self.next_u32()).collect())
        }
    }

    fn check(x: &BigUint) {
        let expected = x.to_string();
        for threads in [1, 2, 3] {
            let got = to_decimal_threads(x, threads);
            if got != expected {
                let at = got.bytes().zip(expected.bytes()).position(|(a, b)| a != b);
                panic!(
                    "to_decimal of a {}-digit number ({threads} threads): got {} digits, \
                     first difference at {at:?}",
                    expected.len(),
                    got.len()
                );
            }
        }
    }

    #[test]
    fn division_by_ten_pow_19_is_exact() {
        let d = u128::from(TEN_POW_19);
        let mut rng = Lcg(7);
        let mut cases = vec![
            (0, 0),
            (0, u64::MAX),
            (TEN_POW_19 - 1, u64::MAX),
            (TEN_POW_19 - 1, 0),
        ];
        for _ in 0..10_000 {
            let hi = (u64::from(rng.next_u32()) << 32 | u64::from(rng.next_u32())) % TEN_POW_19;
            let lo = u64::from(rng.next_u32()) << 32 | u64::from(rng.next_u32());
            cases.push((hi, lo));
        }
        for (hi, lo) in cases {
            let n = (u128::from(hi) << 64) | u128::from(lo);
            let (q, r) = div_by_ten_pow_19(hi, lo);
            assert_eq!((u128::from(q), u128::from(r)), (n / d, n % d), "{n}");
        }
    }

    #[test]
    fn small_and_edge_values() {
        check(&BigUint::zero());
        check(&BigUint::one());
        for v in [
            9u64,
            10,
            11,
            99,
            100,
            TEN_POW_19 - 1,
            TEN_POW_19,
            TEN_POW_19 + 1,
            u64::MAX,
        ] {
            check(&BigUint::from(v));
        }
        check(&(BigUint::from(u64::MAX) + 1u32));
        check(&(BigUint::from(TEN_POW_19) * TEN_POW_19));
    }

    #[test]
    fn powers_of_ten_and_their_neighbours() {
        let ten = BigUint::from(10u32);
        for e in (0..3000)
            .step_by(7)
            .chain([607, 608, 609, 1215, 1216, 1217, 2431, 2432, 2433])
        {
            let p = ten.pow(e);
            check(&p);
            check(&(&p + 1u32));
            if e > 0 {
                check(&(&p - 1u32));
            }
        }
        for e in [10_000, 40_000] {
            let p = ten.pow(e);
            check(&p);
            check(&(&p - 1u32));
        }
    }

    #[test]
    fn numbers_with_runs_of_zero_digits() {
        let ten = BigUint::from(10u32);
        let mut rng = Lcg(11);
        for &(high_digits, zeros) in &[
            (1u32, 5000u32),
            (30, 600),
            (300, 608),
            (1000, 1216),
            (5000, 19),
            (7, 20_000),
        ] {
            // high · 10^(zeros + 40) + low, low having 40 digits at most:
            // a run of zeros across the split points.
            let high = ten.pow(high_digits) - 1u32 - (rng.number(1) % ten.pow(high_digits / 2));
            let low = rng.number(2) % ten.pow(40);
            check(&(&high * ten.pow(zeros + 40) + &low));
            check(&(&high * ten.pow(zeros + 40)));
            check(&(ten.pow(high_digits + zeros) + &low));
        }
    }

    #[test]
    fn random_values_of_many_sizes() {
        let mut rng = Lcg(3);
        for max_limbs in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610] {
            for _ in 0..12 {
                check(&rng.number(max_limbs));
            }
        }
        // Big enough for the two-thread split (PARALLEL_LIMBS) and several
        // levels of powers.
        for limbs in [2100usize, 5000] {
            let x = BigUint::new((0..limbs * 2).map(|_| rng.next_u32()).collect());
            check(&x);
        }
    }

    #[test]
    fn all_ones_and_all_nines() {
        for bits in [
            63u64, 64, 65, 127, 128, 129, 1000, 2047, 2048, 2049, 20_000, 140_000,
        ] {
            check(&((BigUint::one() << bits) - 1u32));
            check(&(BigUint::one() << bits));
        }
        for digits in [18u32, 19, 20, 38, 607, 608, 609, 5000] {
            check(&(BigUint::from(10u32).pow(digits) - 1u32));
        }
    }

    #[test]
    fn digits_bound_is_an_upper_bound() {
        for bits in 1..5000u64 {
            let x = (BigUint::one() << bits) - 1u32;
            let digits = x.to_string().len();
            let bound = digits_bound(bits);
            assert!(bound >= digits && bound <= digits + 1, "{bits} bits");
        }
    }
}
