//! Scenario helpers for the fault suite (tests/): the real binaries, started
//! with a user whose password must never show, and the figures of a run.

use anyhow::{Context, Result};
use std::process::Command;
use testkit::{Scratch, SecretUser, Spawned, WAIT};

/// Starts the fib-server binary on `scratch` and waits until it consumes.
pub fn start_server(url: &str, scratch: &Scratch, extra: &[&str]) -> Result<Spawned> {
    let server = Spawned::start(
        Command::new(testkit::binary("fib-server"))
            .args(["--url", url, "--exchange", &scratch.topology.exchange])
            .args(["--queue", &scratch.topology.queue])
            .args(extra),
    )?;
    server.wait_for_line("ready", WAIT)?;
    Ok(server)
}

/// HOST:PORT where a server started with `--metrics` serves them, from its
/// ready line (already read by `start_server`).
pub fn metrics_addr_of(server: &Spawned) -> Result<String> {
    let stderr = server.stderr();
    let line = stderr
        .iter()
        .find(|line| line.contains("metrics at"))
        .context("no metrics address in the server's ready line")?;
    testkit::http::metrics_addr(line)
}

/// Starts the fib-client binary on `scratch`, with a line per request on
/// stderr (so a test can act mid-run) and the JSON summary on stdout.
pub fn start_client(url: &str, scratch: &Scratch, args: &[&str]) -> Result<Spawned> {
    Spawned::start(
        Command::new(testkit::binary("fib-client"))
            .args(["--url", url, "--exchange", &scratch.topology.exchange])
            .args(["--json", "-v"])
            .args(args),
    )
}

/// Waits until the client has finished the request for `n`.
pub fn wait_for_reply(client: &Spawned, n: u64) -> Result<()> {
    client.wait_for_line(&format!("n={n} id="), WAIT)?;
    Ok(())
}

/// What a client run reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub count: u64,
    pub ok: u64,
    pub failures: u64,
    pub resends: u64,
    pub reconnects: u64,
    pub total_ms: f64,
    pub max_latency_ms: f64,
}

impl Figures {
    /// Parses the client's `--json` line.
    pub fn of(client: &Spawned) -> Result<Figures> {
        let stdout = client.stdout();
        let line = stdout.last().context("the client printed no summary")?;
        let json: serde_json::Value = serde_json::from_str(line)?;
        let int = |key: &str| {
            json[key]
                .as_u64()
                .with_context(|| format!("{key} in {line}"))
        };
        let float = |v: &serde_json::Value| v.as_f64().with_context(|| format!("{v} in {line}"));
        Ok(Figures {
            count: int("count")?,
            ok: int("ok")?,
            failures: int("failures")?,
            resends: int("resends")?,
            reconnects: int("reconnects")?,
            total_ms: float(&json["total_ms"])?,
            max_latency_ms: float(&json["latency_us"]["max"])? / 1e3,
        })
    }

    /// The scenario's one line of figures.
    pub fn line(&self, scenario: &str, depth_after: u32) -> String {
        format!(
            "{scenario}: sent {}, correct {}, failures {}, resends {}, reconnects {}, \
             queue depth after {depth_after}, total {:.0} ms, slowest round trip {:.0} ms",
            self.count,
            self.ok,
            self.failures,
            self.resends,
            self.reconnects,
            self.total_ms,
            self.max_latency_ms
        )
    }
}

/// Asserts that no output of `programs` shows the user's password.
pub fn assert_password_hidden(user: &SecretUser, programs: &[&Spawned]) {
    for program in programs {
        user.assert_not_in("stderr", &program.stderr());
        user.assert_not_in("stdout", &program.stdout());
    }
}

/// Resident memory of a process in KiB, from /proc.
pub fn resident_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}
