//! A local three-node RabbitMQ cluster (scripts/cluster.sh) beside the default
//! broker, for tests of what happens when a node goes. Nodes are numbered 1
//! to 3 as in the script (fibq1@localhost ...). Dropping the guard stops the
//! cluster, also when the test panics.

use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;
use wait_timeout::ChildExt;

/// Bound on a script run that starts or stops nodes: the script gives up by
/// itself after FIB_CLUSTER_TIMEOUT (120 s by default); this catches a hang.
const NODES_WAIT: Duration = Duration::from_secs(180);

/// The running cluster; stopped (`scripts/cluster.sh stop`) on drop.
pub struct Cluster {
    urls: Vec<String>,
}

impl Cluster {
    /// Starts the three nodes (or takes the complete cluster already
    /// running) and returns once all three run in one cluster.
    pub fn start() -> Result<Cluster> {
        // The guard exists before the script runs, so that a start that
        // fails half-way is stopped too.
        let mut cluster = Cluster { urls: Vec::new() };
        let out = cluster_script(&["start"], NODES_WAIT)?;
        let urls: Vec<String> = out
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_string)
            .collect();
        if urls.len() != 3 || !urls.iter().all(|url| url.starts_with("amqp://")) {
            bail!("scripts/cluster.sh start printed {urls:?}, not three AMQP URLs");
        }
        cluster.urls = urls;
        Ok(cluster)
    }

    /// The AMQP URLs of nodes 1, 2 and 3, in that order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The AMQP URL of node `i` (1, 2 or 3); panics on another index.
    pub fn url(&self, i: usize) -> &str {
        match i.checked_sub(1).and_then(|k| self.urls.get(k)) {
            Some(url) => url,
            None => panic!("cluster node index {i} is not 1, 2 or 3"),
        }
    }

    /// SIGKILLs node `i`'s Erlang VM and returns once it is gone.
    pub fn kill(&self, i: usize) -> Result<()> {
        cluster_script(&["kill", &index(i)?], crate::WAIT).map(drop)
    }

    /// Stops node `i` gracefully (`rabbitmqctl stop`), as for maintenance.
    pub fn stop_node(&self, i: usize) -> Result<()> {
        cluster_script(&["stop-node", &index(i)?], NODES_WAIT).map(drop)
    }

    /// Stops the RabbitMQ application on node `i` (`rabbitmqctl stop_app`):
    /// its connections close and its port with them, its Erlang VM stays.
    /// `start_node` starts it again.
    pub fn stop_app(&self, i: usize) -> Result<()> {
        cluster_script(&["stop-app", &index(i)?], NODES_WAIT).map(drop)
    }

    /// Starts node `i` again after `kill` or `stop_node` and returns once it
    /// runs in the cluster again.
    pub fn start_node(&self, i: usize) -> Result<()> {
        cluster_script(&["start-node", &index(i)?], NODES_WAIT).map(drop)
    }

    /// The node (1-3) that leads quorum queue `queue` now.
    pub fn leader(&self, queue: &str) -> Result<usize> {
        let out = cluster_script(&["leader", queue], crate::WAIT)?;
        let leader: usize = out
            .trim()
            .parse()
            .with_context(|| format!("scripts/cluster.sh leader printed {out:?}"))?;
        if !(1..=3).contains(&leader) {
            bail!("scripts/cluster.sh leader printed {leader}, not a node index");
        }
        Ok(leader)
    }

    /// How many members of quorum queue `queue` are online.
    pub fn members(&self, queue: &str) -> Result<usize> {
        let out = cluster_script(&["members", queue], crate::WAIT)?;
        out.trim()
            .parse()
            .with_context(|| format!("scripts/cluster.sh members printed {out:?}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(error) = cluster_script(&["stop"], NODES_WAIT) {
            eprintln!(
                "testkit: THE CLUSTER IS NOT STOPPED (see scripts/cluster.sh status): {error:#}"
            );
        }
    }
}

fn index(i: usize) -> Result<String> {
    if !(1..=3).contains(&i) {
        bail!("cluster node index {i} is not 1, 2 or 3");
    }
    Ok(i.to_string())
}

/// Runs `bash scripts/cluster.sh ARGS`, waiting at most `limit`, and returns
/// its stdout. Its log (stderr) goes to the test's output; on failure it is
/// in the error too.
fn cluster_script(args: &[&str], limit: Duration) -> Result<String> {
    let script = crate::workspace_root().join("scripts/cluster.sh");
    let mut child = Command::new("bash")
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", script.display()))?;
    let stdout = read_all(child.stdout.take().context("no stdout pipe")?);
    let stderr = read_all(child.stderr.take().context("no stderr pipe")?);
    let what = format!("scripts/cluster.sh {}", args.join(" "));
    let status = match child.wait_timeout(limit)? {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} still running after {limit:?}");
        }
    };
    let stderr = joined(stderr)?;
    let stdout = joined(stdout)?;
    eprint!("{stderr}");
    if !status.success() {
        bail!("{what} failed ({status}):\n{stderr}");
    }
    Ok(stdout)
}

fn read_all(mut pipe: impl Read + Send + 'static) -> JoinHandle<std::io::Result<String>> {
    std::thread::spawn(move || {
        let mut text = String::new();
        pipe.read_to_string(&mut text).map(|_| text)
    })
}

fn joined(reader: JoinHandle<std::io::Result<String>>) -> Result<String> {
    reader
        .join()
        .map_err(|_| anyhow!("output reader panicked"))?
        .context("reading scripts/cluster.sh output")
}
