//! Fibonacci numbers of arbitrary size, and their decimal digits.
//!
//! Fast doubling needs O(log n) big multiplications and no recursion, so a
//! cold `fibonacci(1_000_000)` takes a few milliseconds where the memoised
//! recursion of the pika server overflows its stack near n = 500.
//!
//! Each doubling step costs two squarings (num-bigint 0.4 has no faster
//! squaring, so these are two plain multiplications, but one fewer than the
//! textbook F(2k) = F(k)(2F(k+1) - F(k)), F(2k+1) = F(k)^2 + F(k+1)^2), and
//! the last step one multiplication, since only F(n) is needed there.
//! With `threads` >= 2 the two squarings of the big steps, and the two halves
//! of the last product, run on two threads (see `decimal::join`).
//!
//! Callers that want the digits should use `fibonacci_decimal`: it computes
//! the powers of ten for the conversion while the doubling runs, and
//! converts with `decimal::to_decimal`, which can use two cores.

use std::sync::Arc;

use num_bigint::BigUint;
use num_traits::{One, Zero};

use crate::decimal::{default_threads, digits_bound, join, Powers};

/// Squarings of numbers of at least this many bits run on two threads when
/// that is allowed; below it a thread costs more than it saves.
const PARALLEL_SQUARE_BITS: u64 = 1024 * 64;

/// The last product is split over two threads from this many bits on.
const PARALLEL_PRODUCT_BITS: u64 = 2048 * 64;

/// From this n on, `fibonacci_decimal` computes the powers of ten on a
/// second thread while the doubling runs.
const PARALLEL_POWERS_N: u64 = 500_000;

/// F(n), with F(0) = 0 and F(1) = 1.
pub fn fibonacci(n: u64) -> BigUint {
    fibonacci_threads(n, default_threads())
}

/// The decimal digits of F(n): `fibonacci(n).to_string()`, but faster.
pub fn fibonacci_decimal(n: u64) -> String {
    fibonacci_decimal_threads(n, default_threads())
}

/// `fibonacci` on two threads if `threads` >= 2, else on the calling thread
/// only.
pub fn fibonacci_threads(n: u64, threads: usize) -> BigUint {
    let parallel = threads >= 2;
    if n <= 2 {
        return if n == 0 {
            BigUint::zero()
        } else {
            BigUint::one()
        };
    }
    // Invariant: (f, g) = (F(k), F(k-1)) for k = the bits of n read so far,
    // and k_odd says whether k is odd. Reading the top bit gives k = 1.
    let mut f = BigUint::one();
    let mut g = BigUint::zero();
    let mut k_odd = true;
    let top = 63 - n.leading_zeros();
    for bit in (1..top).rev() {
        // With A = F(k)^2, B = F(k-1)^2:
        //   F(2k+1) = 4A - B + 2(-1)^k,  F(2k-1) = A + B,  F(2k) = F(2k+1) - F(2k-1).
        let (a, b) = if parallel && g.bits() >= PARALLEL_SQUARE_BITS {
            join(|| &f * &f, move || &g * &g)
        } else {
            (&f * &f, &g * &g)
        };
        let mut f_2k_plus_1 = &a << 2u32;
        f_2k_plus_1 -= &b;
        if k_odd {
            f_2k_plus_1 -= 2u32;
        } else {
            f_2k_plus_1 += 2u32;
        }
        let mut f_2k_minus_1 = a;
        f_2k_minus_1 += b;
        if (n >> bit) & 1 == 1 {
            g = &f_2k_plus_1 - f_2k_minus_1;
            f = f_2k_plus_1;
            k_odd = true;
        } else {
            f_2k_plus_1 -= &f_2k_minus_1;
            f = f_2k_plus_1;
            g = f_2k_minus_1;
            k_odd = false;
        }
    }
    // The last bit needs F(n) only: one product.
    if n & 1 == 0 {
        // F(2k) = F(k) (F(k) + 2F(k-1))
        let mut t = g << 1u32;
        t += &f;
        multiply(f, t, parallel)
    } else {
        // F(2k+1) = (2F(k) + F(k-1)) (2F(k) - F(k-1)) + 2(-1)^k
        let twice_f = f << 1u32;
        let sum = &twice_f + &g;
        let difference = twice_f - g;
        let mut product = multiply(sum, difference, parallel);
        if k_odd {
            product -= 2u32;
        } else {
            product += 2u32;
        }
        product
    }
}

/// `fibonacci_decimal` using at most `threads` threads (0 and 1 both mean the
/// calling thread only).
pub fn fibonacci_decimal_threads(n: u64, threads: usize) -> String {
    let (f, powers) = if threads >= 2 && n >= PARALLEL_POWERS_N {
        // The powers of ten depend on the digit count only, which n bounds:
        // compute them while the doubling runs.
        let (f, powers) = join(
            || fibonacci_threads(n, threads),
            move || Powers::new(digits_bound(fibonacci_bits_bound(n))),
        );
        (f, Some(powers))
    } else {
        (fibonacci_threads(n, threads), None)
    };
    let powers = match powers {
        Some(p) if p.covers_bits(f.bits()) => p,
        _ => Powers::new(digits_bound(f.bits())),
    };
    powers.to_decimal(&f, threads)
}

/// An upper bound of the number of bits of F(n): F(n) <= φ^(n-1) and
/// 0.69424192 > log2(φ).
fn fibonacci_bits_bound(n: u64) -> u64 {
    (u128::from(n) * 69_424_192 / 100_000_000) as u64 + 1
}

/// a·b, on two threads (each multiplying a by one half of b) if `parallel`
/// and both are big.
fn multiply(a: BigUint, b: BigUint, parallel: bool) -> BigUint {
    if !parallel || a.bits().min(b.bits()) < PARALLEL_PRODUCT_BITS {
        return a * b;
    }
    let digits = b.to_u32_digits();
    drop(b);
    let half = digits.len() / 2;
    let b_low = BigUint::from_slice(&digits[..half]);
    let b_high = BigUint::from_slice(&digits[half..]);
    drop(digits);
    let a = Arc::new(a);
    let their_a = Arc::clone(&a);
    let (low, high) = join(|| &*a * &b_low, move || &*their_a * &b_high);
    (high << (32 * half)) + low
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_iteration(n: u64) -> BigUint {
        let (mut a, mut b) = (BigUint::zero(), BigUint::one());
        for _ in 0..n {
            let next = &a + &b;
            a = std::mem::replace(&mut b, next);
        }
        a
    }

    #[test]
    fn known_values() {
        let known: [(u64, &str); 8] = [
            (0, "0"),
            (1, "1"),
            (2, "1"),
            (3, "2"),
            (10, "55"),
            (50, "12586269025"),
            (93, "12200160415121876738"),
            (100, "354224848179261915075"),
        ];
        for (n, expected) in known {
            assert_eq!(fibonacci(n).to_string(), expected, "F({n})");
        }
    }

    #[test]
    fn f1000_has_209_digits() {
        let expected = concat!(
            "4346655768693745643568852767504062580256466051737178040248172908953655",
            "5417949051890403879840079255169295922593080322634775209689623239873322",
            "471161642996440906533187938298969649928516003704476137795166849228875",
        );
        assert_eq!(fibonacci(1000).to_string(), expected);
        assert_eq!(expected.len(), 209);
    }

    #[test]
    fn fast_doubling_matches_iteration_up_to_3000() {
        let (mut a, mut b) = (BigUint::zero(), BigUint::one());
        for n in 0..3000u64 {
            assert_eq!(fibonacci_threads(n, 1), a, "F({n})");
            assert_eq!(fibonacci_threads(n, 2), a, "F({n}), 2 threads");
            assert_eq!(
                fibonacci_decimal_threads(n, 1),
                a.to_string(),
                "digits of F({n})"
            );
            let next = &a + &b;
            a = std::mem::replace(&mut b, next);
        }
        assert_eq!(fibonacci(4321), by_iteration(4321));
    }

    #[test]
    fn big_values_agree_across_methods_and_threads() {
        // Odd and even n, n with long runs of 0 and 1 bits, and sizes on
        // both sides of the two-thread thresholds (two-thread last product
        // from n ~ 190,000, two-thread squarings from n ~ 380,000).
        for n in [
            92_000u64, 131_071, 131_072, 131_073, 250_001, 400_001, 524_287,
        ] {
            let serial = fibonacci_threads(n, 1);
            assert_eq!(fibonacci_threads(n, 2), serial, "F({n}), 2 threads");
            let digits = serial.to_string();
            assert_eq!(fibonacci_decimal_threads(n, 1), digits, "digits of F({n})");
            assert_eq!(
                fibonacci_decimal_threads(n, 2),
                digits,
                "digits of F({n}), 2 threads"
            );
            if n < 200_000 {
                // F(n+1) = F(n) + F(n-1) ties the two formulas of the last
                // step (odd and even n) together.
                assert_eq!(
                    fibonacci_threads(n + 1, 2),
                    &serial + fibonacci_threads(n - 1, 1),
                    "F({n}+1) = F({n}) + F({n}-1)"
                );
            }
        }
    }

    #[test]
    fn bits_bound_holds() {
        for n in (1..3000u64).chain([100_000, 1_000_000]) {
            let bits = fibonacci(n).bits();
            let bound = fibonacci_bits_bound(n);
            assert!(
                bound >= bits && bound <= bits + 2,
                "F({n}): {bits} bits, bound {bound}"
            );
        }
    }

    #[test]
    fn a_million_works_cold() {
        // F(10^7) (2,089,877 digits) takes ~10 s in a debug build: it is
        // checked by the fib_timing example (against num-bigint) and
        // scripts/fib-vs-gmp.sh (against GMP) instead.
        let digits = fibonacci_decimal_threads(1_000_000, 2);
        assert_eq!(digits.len(), 208_988);
        assert!(digits.starts_with("19532821287077577316"));
        assert!(digits.ends_with("68996526838242546875"));
        assert_eq!(fibonacci_decimal_threads(1_000_000, 1), digits);
        assert_eq!(fibonacci(1_000_000).to_string(), digits);
    }
}
