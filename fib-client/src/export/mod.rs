//! Machine-readable results.

use crate::summary::Summary;
use anyhow::Result;

/// The summary as one JSON object on one line.
pub fn json(summary: &Summary) -> Result<String> {
    Ok(serde_json::to_string(summary)?)
}
