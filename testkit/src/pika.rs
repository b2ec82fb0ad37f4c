//! The Python with pika that interop tests run, from scripts/pika-venv.sh.

use anyhow::{bail, Result};
use std::path::PathBuf;

/// `FIB_RPC_PYTHON` if set (scripts/test.sh sets it), else the venv that
/// scripts/pika-venv.sh makes under target/.
pub fn python() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("FIB_RPC_PYTHON") {
        return Ok(PathBuf::from(path));
    }
    let venv = crate::workspace_root().join("target/pika-venv/bin/python");
    if venv.exists() {
        return Ok(venv);
    }
    bail!(
        "no Python with pika: run scripts/test.sh, or scripts/pika-venv.sh and set FIB_RPC_PYTHON"
    )
}

/// A script of testkit/pika/.
pub fn script(name: &str) -> PathBuf {
    crate::workspace_root().join("testkit/pika").join(name)
}
