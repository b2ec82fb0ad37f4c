//! `--export-csv`: one row per measured request sent, written as the run
//! goes (constant memory, however long the run). Requests due but never
//! sent have no row: an overloaded run may have billions, each saying no
//! more than their number, which the summary and other exports give.

use crate::measure::RoundTrip;
use anyhow::Result;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub const HEADER: &str = "n,sent_us,due_us,replied_us,latency_us,as_sent_us,outcome,resends";

pub struct CsvWriter {
    path: PathBuf,
    /// Where the rows go until `finish` renames it over `path`.
    partial: PathBuf,
    out: BufWriter<File>,
    /// The first write error, reported by `finish`.
    error: Option<std::io::Error>,
}

impl CsvWriter {
    /// Creates the partial file at once, so that a bad path fails before
    /// the run; `path` itself is replaced only by `finish`.
    pub fn create(path: &Path) -> Result<CsvWriter> {
        let (partial, file) = super::create(path)?;
        let mut writer = CsvWriter {
            path: path.to_path_buf(),
            partial,
            out: BufWriter::new(file),
            error: None,
        };
        writer.line(format_args!("{HEADER}"));
        Ok(writer)
    }

    /// Times are µs from the start of the run; latency is the corrected one
    /// (from when the request was due), as_sent from its first publish.
    /// Unanswered requests have empty reply times. Warm-up ones are skipped.
    pub fn row(&mut self, trip: &RoundTrip) {
        if trip.warmup {
            return;
        }
        let us = |d: std::time::Duration| format!("{:.1}", d.as_secs_f64() * 1e6);
        use crate::measure::Verdict;
        let (sent, replied, latency, as_sent) = match trip.verdict {
            Verdict::Unanswered => (us(trip.sent), String::new(), String::new(), String::new()),
            _ => (
                us(trip.sent),
                us(trip.replied),
                us(trip.latency()),
                us(trip.as_sent()),
            ),
        };
        self.line(format_args!(
            "{},{sent},{},{replied},{latency},{as_sent},{},{}",
            trip.n,
            us(trip.due),
            trip.verdict.word(),
            trip.resends
        ));
    }

    fn line(&mut self, args: std::fmt::Arguments) {
        if self.error.is_none() {
            if let Err(error) = writeln!(self.out, "{args}") {
                self.error = Some(error);
            }
        }
    }

    pub fn finish(mut self) -> Result<()> {
        let flushed = self
            .out
            .flush()
            .and_then(|()| self.out.get_ref().sync_all());
        let written = self.error.take().map_or(flushed, Err);
        super::finish(&self.partial, &self.path, written)
    }
}

impl Drop for CsvWriter {
    /// A run that ends without `finish` (an error before the summary)
    /// leaves no partial file behind; after `finish` there is none.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.partial);
    }
}
