//! Human-readable output: the progress bar, per-request lines and the summary.

mod interval;
mod progress;
mod table;

pub use interval::Intervals;
pub use progress::Progress;
pub use table::{regression_line, summary_table};
