//! Helpers for fib-rpc's tests against the real broker. Every test works on
//! its own uniquely named exchange and queue, removed when the test ends, so
//! runs never disturb each other or a real `logs_rpc`.

mod acl;
mod broker;
mod cluster;
pub mod edges;
pub mod http;
pub mod links;
mod peer;
mod pika;
mod process;
pub mod prometheus;
mod proxy;
pub mod readme;
mod scratch;
mod server;

pub use acl::grant_read_by_acl;
pub use broker::{broker_objects, ensure_broker, BrokerRestarts, SecretUser, TlsListener};
pub use cluster::{Alarm, Cluster, Node};
pub use peer::Peer;
pub use pika::{python, script as pika_script};
pub use process::Spawned;
pub use proxy::Proxy;
pub use scratch::Scratch;
pub use server::InProcessServer;

use common::{AmqpUrl, ConnectionSettings};
use std::time::Duration;

/// The broker the tests use: `AMQP_URL`, or the local default.
pub fn broker_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| common::protocol::DEFAULT_URL.to_string())
}

pub fn connection_settings() -> ConnectionSettings {
    let url = AmqpUrl::parse(&broker_url()).expect("AMQP_URL must be a valid AMQP URL");
    ConnectionSettings::new(url)
}

/// The root of the workspace (testkit's parent folder).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::PathBuf::from)
        .unwrap_or_default()
}

/// A binary of this workspace, built beside the running test (cargo puts
/// test executables in target/<profile>/deps/). Integration tests of another
/// package use this for the binaries Cargo does not hand them.
pub fn binary(name: &str) -> std::path::PathBuf {
    let found = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join(name)));
    match found {
        Some(path) if path.exists() => path,
        _ => panic!("{name} is not built: run `cargo build --bins` first (scripts/test.sh does)"),
    }
}

/// The reply queue a running fib-client logged ("... replies on \"NAME\"").
pub fn client_reply_queue(client: &Spawned) -> anyhow::Result<String> {
    let line = client.wait_for_line("replies on", WAIT)?;
    let name = line.rsplit('"').nth(1);
    name.map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no reply queue name in {line:?}"))
}

/// The one line a `fib-client --json` run printed on stdout, parsed.
pub fn json_summary(client: &Spawned) -> anyhow::Result<serde_json::Value> {
    let stdout = client.stdout();
    anyhow::ensure!(stdout.len() == 1, "--json prints one line: {stdout:?}");
    Ok(serde_json::from_str(&stdout[0])?)
}

/// Generous bound for anything a test waits on: long enough never to fire on
/// a loaded CI machine, short enough that a hang fails the test.
pub const WAIT: Duration = Duration::from_secs(30);

/// A directory of its own for a test's files, removed at the end.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(label: &str) -> anyhow::Result<TempDir> {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let path = std::env::temp_dir().join(format!("fib-test-{label}-{}", &unique[..12]));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    /// The path of `name` in it, as text (for a command line).
    pub fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
