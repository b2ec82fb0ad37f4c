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
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// The file an export is written to before it is renamed into place: beside
/// it (a rename within one directory is atomic), hidden, and unique to this
/// process, so that two runs never write into each other's.
pub fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.partial", std::process::id()))
}

/// Checks before the run that `path` can be written, so that a path that
/// cannot is a usage error (exit 2) before any request is sent; leaves what
/// is there untouched (a previous run's file stays whole until this run's
/// is complete). Returns the partial file, created and empty, whose name
/// [`partial_path`] gives.
pub fn create(path: &Path) -> Result<(PathBuf, File)> {
    let refuse = |error: &dyn std::fmt::Display| -> anyhow::Error {
        common::failure::Failure::Usage(format!("cannot create {}: {error}", path.display())).into()
    };
    if path.is_dir() {
        return Err(refuse(&"it is a directory"));
    }
    let partial = partial_path(path);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .map_err(|error| refuse(&error))?;
    Ok((partial, file))
}

/// [`create`], for an export written whole at the end: the check only.
pub fn check_writable(path: &Path) -> Result<()> {
    let (partial, file) = create(path)?;
    drop(file);
    std::fs::remove_file(&partial).with_context(|| format!("cannot remove {}", partial.display()))
}

/// Writes `text` to `path`, naming the file in the error: into the partial
/// file first, then renamed over `path`, so that `path` holds either what
/// was there or all of `text`, whenever the program stops.
pub fn write(path: &Path, text: &str) -> Result<()> {
    let (partial, mut file) = create(path)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    drop(file);
    finish(&partial, path, written)
}

/// Renames the partial file over `path` when it was written whole;
/// otherwise removes it and reports the write error.
pub fn finish(partial: &Path, path: &Path, written: std::io::Result<()>) -> Result<()> {
    let renamed = written.and_then(|()| std::fs::rename(partial, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(partial);
    }
    renamed.with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("export-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    }

    #[test]
    fn the_check_before_the_run_leaves_a_previous_file_whole() -> Result<()> {
        let dir = scratch_dir("check");
        let path = dir.join("base.json");
        std::fs::write(&path, "previous")?;
        check_writable(&path)?;
        assert_eq!(std::fs::read_to_string(&path)?, "previous");
        assert!(
            !partial_path(&path).exists(),
            "the check leaves no partial file"
        );
        write(&path, "new")?;
        assert_eq!(std::fs::read_to_string(&path)?, "new");
        assert!(!partial_path(&path).exists());
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn a_path_that_cannot_be_written_is_a_usage_error() {
        let dir = scratch_dir("refuse");
        for path in [dir.join("missing/run.json"), dir.clone()] {
            let error = check_writable(&path).expect_err("refused");
            assert!(
                matches!(
                    error.downcast_ref::<common::failure::Failure>(),
                    Some(common::failure::Failure::Usage(_))
                ),
                "{error:#}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
