//! A Prometheus server of the test's own (Debian's `prometheus`, installed
//! by scripts/prometheus.sh when missing): its own config, data folder in a
//! temporary folder and free port; killed and its folder removed on drop,
//! also when the test fails. The package's system service is never used.
//! Also `promtool check`, for scrapes and rule files.

use crate::http;
use anyhow::{anyhow, bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs scripts/prometheus.sh once per test process: prometheus and
/// promtool are there afterwards, or the error says why not.
pub fn ensure_installed() -> Result<()> {
    static INSTALLED: std::sync::OnceLock<std::result::Result<(), String>> =
        std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let script = crate::workspace_root().join("scripts/prometheus.sh");
            let output = Command::new("bash")
                .arg(&script)
                .stdin(Stdio::null())
                .output()
                .map_err(|error| format!("cannot run {}: {error}", script.display()))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "scripts/prometheus.sh failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ))
            }
        })
        .clone()
        .map_err(|error| anyhow!(error))
}

/// `promtool check metrics` on `scrape`: Ok, or what promtool said. Any
/// complaint at all (lint included) is an error.
pub fn check_metrics(scrape: &str) -> Result<()> {
    ensure_installed()?;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run promtool")?;
    let mut stdin = child.stdin.take().context("no stdin pipe")?;
    stdin.write_all(scrape.as_bytes())?;
    drop(stdin);
    let output = child.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() || !said.trim().is_empty() {
        bail!("promtool check metrics ({}): {said}", output.status);
    }
    Ok(())
}

/// `promtool check rules FILE`: Ok, or what promtool said.
pub fn check_rules(file: &Path) -> Result<String> {
    ensure_installed()?;
    let output = Command::new("promtool")
        .args(["check", "rules"])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .context("cannot run promtool")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!(
            "promtool check rules {} ({}): {said}",
            file.display(),
            output.status
        );
    }
    Ok(said)
}

/// A running Prometheus scraping some targets every second.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    addr: String,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (HOST:PORT) every second and
    /// returns once it answers as ready.
    pub fn start(targets: &[String]) -> Result<Prometheus> {
        ensure_installed()?;
        let dir = std::env::temp_dir().join(format!(
            "fib-rpc-prometheus-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(dir.join("data"))?;
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: fib-rpc\n    static_configs:\n      - targets: [{list}]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let addr = format!("127.0.0.1:{}", free_port()?);
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start prometheus")?;
        // The guard exists before the wait, so that a failed start is
        // cleaned up too.
        let prometheus = Prometheus { child, dir, addr };
        let deadline = Instant::now() + crate::WAIT;
        loop {
            if matches!(http::get(&prometheus.addr, "/-/ready"), Ok(r) if r.status == 200) {
                return Ok(prometheus);
            }
            if Instant::now() >= deadline {
                bail!(
                    "prometheus not ready within {:?}: {}",
                    crate::WAIT,
                    prometheus.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The value of an instant query that yields one sample, None when it
    /// yields none.
    pub fn query(&self, promql: &str) -> Result<Option<f64>> {
        let path = format!("/api/v1/query?query={}", encode(promql));
        let body = http::get_ok(&self.addr, &path)?;
        let json: serde_json::Value =
            serde_json::from_str(&body).with_context(|| format!("Prometheus answered {body:?}"))?;
        if json["status"] != "success" {
            bail!("query {promql:?}: {body}");
        }
        let result = json["data"]["result"]
            .as_array()
            .ok_or_else(|| anyhow!("query {promql:?}: no result in {body}"))?;
        match result.as_slice() {
            [] => Ok(None),
            [one] => {
                let value = one["value"][1]
                    .as_str()
                    .ok_or_else(|| anyhow!("query {promql:?}: no value in {body}"))?;
                Ok(Some(value.parse()?))
            }
            _ => bail!("query {promql:?} yields {} series: {body}", result.len()),
        }
    }

    /// Waits until `promql` yields `expected`; the last value seen if it
    /// never does within `limit`.
    pub fn wait_for(&self, promql: &str, expected: f64, limit: Duration) -> Result<f64> {
        let deadline = Instant::now() + limit;
        loop {
            let value = self.query(promql)?;
            if value == Some(expected) {
                return Ok(expected);
            }
            if Instant::now() >= deadline {
                bail!("{promql} was {value:?}, not {expected}, after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on now (the kernel's pick, released at once).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
