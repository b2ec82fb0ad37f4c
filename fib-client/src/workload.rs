//! Which n each request asks for, and the F(n) its reply must equal.
//!
//! Checking costs the client little per request: over a range, consecutive
//! F(n) come from one decimal addition each (`DecimalSequence`), and a new
//! cycle costs one fast doubling of F(start); a fixed n is computed once and
//! shared by every request (`Rc<str>`, no copy of its digits).

use fib_math::DecimalSequence;
use std::ops::Range;
use std::rc::Rc;

/// The n of successive requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// n = start, start+1, ..., end-1, then start again. Never empty.
    Cycle(Range<u64>),
    /// The same n every time.
    Fixed(u64),
}

impl Workload {
    /// The range of n it asks for.
    pub fn span(&self) -> Range<u64> {
        match self {
            Workload::Cycle(range) => range.clone(),
            Workload::Fixed(n) => *n..n.saturating_add(1),
        }
    }
}

/// Hands out the n of each request and then its expected reply.
pub struct Requests {
    next_n: u64,
    expected: Expected,
}

enum Expected {
    Cycle {
        range: Range<u64>,
        sequence: DecimalSequence,
    },
    Fixed(Rc<str>),
}

impl Requests {
    pub fn new(workload: Workload) -> Requests {
        match workload {
            Workload::Cycle(range) => Requests {
                next_n: range.start,
                expected: Expected::Cycle {
                    sequence: DecimalSequence::starting_at(range.start),
                    range,
                },
            },
            Workload::Fixed(n) => Requests {
                next_n: n,
                expected: Expected::Fixed(Rc::from(fib_math::fibonacci_decimal(n))),
            },
        }
    }

    /// Back to the first n (after the warm-up, so that the measured
    /// requests are the same with or without one).
    pub fn restart(&mut self) {
        if let Expected::Cycle { range, sequence } = &mut self.expected {
            if self.next_n != range.start {
                self.next_n = range.start;
                *sequence = DecimalSequence::starting_at(range.start);
            }
        }
    }

    /// The n of the next request.
    pub fn peek(&self) -> u64 {
        self.next_n
    }

    /// F(peek()), and moves on to the next request. Called after publishing,
    /// so that the computation overlaps the server's.
    pub fn advance(&mut self) -> Rc<str> {
        match &mut self.expected {
            Expected::Fixed(digits) => digits.clone(),
            Expected::Cycle { range, sequence } => {
                let digits: Rc<str> = Rc::from(sequence.next().unwrap_or_default());
                self.next_n += 1;
                if self.next_n >= range.end {
                    self.next_n = range.start;
                    *sequence = DecimalSequence::starting_at(range.start);
                }
                digits
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(requests: &mut Requests, k: usize) -> Vec<(u64, String)> {
        (0..k)
            .map(|_| {
                let n = requests.peek();
                (n, requests.advance().to_string())
            })
            .collect()
    }

    #[test]
    fn cycles_a_range_in_order_with_the_right_values() {
        let mut requests = Requests::new(Workload::Cycle(5..8));
        let got = take(&mut requests, 7);
        let ns: Vec<u64> = got.iter().map(|(n, _)| *n).collect();
        assert_eq!(ns, [5, 6, 7, 5, 6, 7, 5]);
        for (n, digits) in got {
            assert_eq!(digits, fib_math::fibonacci_decimal(n), "n={n}");
        }
    }

    #[test]
    fn fixed_n_repeats_and_restart_goes_back_to_the_start() {
        let mut fixed = Requests::new(Workload::Fixed(90));
        let got = take(&mut fixed, 3);
        assert!(got
            .iter()
            .all(|(n, d)| *n == 90 && *d == fib_math::fibonacci_decimal(90)));
        let mut cycle = Requests::new(Workload::Cycle(10..20));
        take(&mut cycle, 4);
        cycle.restart();
        assert_eq!(take(&mut cycle, 1), [(10, fib_math::fibonacci_decimal(10))]);
    }
}
