//! The maths of fib-rpc, apart from any messaging: F(n) by fast doubling
//! (`fibonacci`), big integers to decimal (`decimal`), and consecutive F(n)
//! as decimal text for checking replies (`sequence`).

pub mod decimal;
pub mod fibonacci;
pub mod sequence;

pub use fibonacci::{fibonacci, fibonacci_decimal};
pub use sequence::DecimalSequence;
