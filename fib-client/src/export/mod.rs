//! Machine-readable results: the `--json` summary on stdout and the
//! `--export-*` files.

mod baseline;
mod csv;
mod hgrm;
mod markdown;
mod parameters;
mod svg;

pub use baseline::{compare, Baseline};
pub use csv::CsvWriter;
pub use hgrm::percentile_distribution;
pub use markdown::markdown;
pub use parameters::{Broker, Parameters};
pub use svg::spectrum_svg;

use crate::summary::Summary;
use anyhow::{Context, Result};
use std::path::Path;

/// The summary as one JSON object on one line.
pub fn json(summary: &Summary) -> Result<String> {
    Ok(serde_json::to_string(summary)?)
}

/// `--export-json`: the summary and the run's parameters.
pub fn json_document(summary: &Summary, parameters: &Parameters) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Document<'a> {
        summary: &'a Summary,
        parameters: &'a Parameters,
    }
    Ok(serde_json::to_string_pretty(&Document {
        summary,
        parameters,
    })? + "\n")
}

/// Creates (empties) an export file before the run, so that a path that
/// cannot be written is a usage error (exit 2) before any request is sent.
pub fn create(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).map_err(|error| {
        common::failure::Failure::Usage(format!("cannot create {}: {error}", path.display())).into()
    })
}

/// Writes `text` to `path`, naming the file in the error.
pub fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
