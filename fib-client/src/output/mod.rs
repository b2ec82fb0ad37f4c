//! Human-readable output: the progress bar, per-request lines and the summary.

mod progress;
mod table;

pub use progress::Progress;
pub use table::summary_table;
