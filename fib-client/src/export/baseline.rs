//! `--baseline FILE --max-regression PCT`: this run's mean and p99
//! (corrected view) against an earlier `--export-json` (or `--json`) file.

use crate::stats::Latency;
use crate::summary::Regression;
use anyhow::Result;
use common::failure::Failure;
use serde_json::Value;
use std::path::Path;

/// The figures a baseline provides.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    pub path: String,
    pub mean_us: f64,
    pub p99_us: f64,
}

impl Baseline {
    /// Reads it before the run, so that a bad file is a usage error (exit 2).
    pub fn load(path: &Path) -> Result<Baseline> {
        let shown = path.display().to_string();
        let bad = |why: String| Failure::Usage(format!("--baseline {shown}: {why}"));
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let document: Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        // An --export-json document, or a --json summary.
        let summary = document.get("summary").unwrap_or(&document);
        let figure = |name: &str| {
            summary
                .get("latency_us")
                .and_then(|l| l.get(name))
                .and_then(Value::as_f64)
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| bad(format!("no positive latency_us.{name} in its summary")))
        };
        Ok(Baseline {
            mean_us: figure("mean")?,
            p99_us: figure("p99")?,
            path: shown,
        })
    }
}

/// Positive percentages are worse (slower) than the baseline.
pub fn compare(latency: &Latency, baseline: &Baseline, max_regression_pct: f64) -> Regression {
    let change = |now: f64, before: f64| (now - before) / before * 100.0;
    let mean_change_pct = change(latency.mean, baseline.mean_us);
    let p99_change_pct = change(latency.p99, baseline.p99_us);
    Regression {
        baseline: baseline.path.clone(),
        max_regression_pct,
        mean_us: latency.mean,
        baseline_mean_us: baseline.mean_us,
        mean_change_pct,
        p99_us: latency.p99,
        baseline_p99_us: baseline.p99_us,
        p99_change_pct,
        failed: mean_change_pct > max_regression_pct || p99_change_pct > max_regression_pct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(mean: f64, p99: f64) -> Latency {
        Latency {
            min: 1.0,
            mean,
            stdev: 1.0,
            p50: mean,
            p90: p99,
            p99,
            p99_9: p99,
            p99_99: p99,
            max: p99,
        }
    }

    fn baseline() -> Baseline {
        Baseline {
            path: "b.json".into(),
            mean_us: 200.0,
            p99_us: 400.0,
        }
    }

    #[test]
    fn worse_by_more_than_the_limit_fails() {
        let r = compare(&latency(230.0, 400.0), &baseline(), 10.0);
        assert!((r.mean_change_pct - 15.0).abs() < 1e-9);
        assert!(r.failed);
        let r = compare(&latency(200.0, 460.0), &baseline(), 10.0);
        assert!((r.p99_change_pct - 15.0).abs() < 1e-9);
        assert!(r.failed);
    }

    #[test]
    fn within_the_limit_or_faster_passes() {
        let r = compare(&latency(210.0, 300.0), &baseline(), 10.0);
        assert!(!r.failed, "{r:?}");
        assert!(r.p99_change_pct < 0.0);
    }

    #[test]
    fn reads_both_document_shapes_and_refuses_others() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("fib-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let export = dir.join("export.json");
        std::fs::write(
            &export,
            r#"{"summary":{"latency_us":{"mean":250.5,"p99":600}},"parameters":{}}"#,
        )?;
        let summary = dir.join("summary.json");
        std::fs::write(&summary, r#"{"latency_us":{"mean":100,"p99":300}}"#)?;
        let broken = dir.join("broken.json");
        std::fs::write(&broken, r#"{"latency_us":null}"#)?;
        assert_eq!(Baseline::load(&export)?.mean_us, 250.5);
        assert_eq!(Baseline::load(&summary)?.p99_us, 300.0);
        for bad in [broken, dir.join("missing.json")] {
            let error = Baseline::load(&bad).unwrap_err();
            assert_eq!(common::exit_code(&error), common::exit::USAGE);
        }
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
