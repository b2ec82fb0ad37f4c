//! Fibonacci numbers of arbitrary size.
//!
//! Fast doubling needs O(log n) big multiplications and no recursion, so a
//! cold `fibonacci(1_000_000)` takes a fraction of a second where the
//! memoised recursion of the pika server overflows its stack near n = 500.

use num_bigint::BigUint;
use num_traits::{One, Zero};

/// F(n), with F(0) = 0 and F(1) = 1.
pub fn fibonacci(n: u64) -> BigUint {
    if n == 0 {
        return BigUint::zero();
    }
    // Invariant: (a, b) = (F(k), F(k+1)) for k = the bits of n read so far.
    let mut a = BigUint::zero();
    let mut b = BigUint::one();
    let top = 63 - n.leading_zeros();
    for bit in (0..=top).rev() {
        // F(2k) = F(k) * (2F(k+1) - F(k)),  F(2k+1) = F(k)^2 + F(k+1)^2
        let doubled_k = &a * ((&b << 1u32) - &a);
        let doubled_k_plus_1 = &a * &a + &b * &b;
        if (n >> bit) & 1 == 1 {
            b = &doubled_k + &doubled_k_plus_1;
            a = doubled_k_plus_1;
        } else {
            a = doubled_k;
            b = doubled_k_plus_1;
        }
    }
    a
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
            assert_eq!(fibonacci(n), a, "F({n})");
            let next = &a + &b;
            a = std::mem::replace(&mut b, next);
        }
        assert_eq!(fibonacci(4321), by_iteration(4321));
    }

    #[test]
    fn a_million_works_cold() {
        let digits = fibonacci(1_000_000).to_string();
        assert_eq!(digits.len(), 208_988);
        assert!(digits.starts_with("19532821287077577316"));
        assert!(digits.ends_with("68996526838242546875"));
    }
}
