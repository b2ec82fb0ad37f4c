//! A local three-node RabbitMQ cluster (scripts/cluster.sh) beside the default
//! broker, for tests of what happens when a node goes. Nodes are numbered 1
//! to 3 as in the script (fibq1@localhost ...). Dropping the guard stops the
//! cluster, also when the test panics.
//!
//! [`Node`] is the script's one-node variant under another name, folder and
//! ports, for tests that must disturb a broker (resource alarms, SIGSTOP)
//! and so never do it to the default broker every test shares.

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
        let out = cluster_script(CLUSTER, &["start"], NODES_WAIT)?;
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
        cluster_script(CLUSTER, &["kill", &index(i)?], crate::WAIT).map(drop)
    }

    /// Stops node `i` gracefully (`rabbitmqctl stop`), as for maintenance.
    pub fn stop_node(&self, i: usize) -> Result<()> {
        cluster_script(CLUSTER, &["stop-node", &index(i)?], NODES_WAIT).map(drop)
    }

    /// Stops the RabbitMQ application on node `i` (`rabbitmqctl stop_app`):
    /// its connections close and its port with them, its Erlang VM stays.
    /// `start_node` starts it again.
    pub fn stop_app(&self, i: usize) -> Result<()> {
        cluster_script(CLUSTER, &["stop-app", &index(i)?], NODES_WAIT).map(drop)
    }

    /// Starts node `i` again after `kill` or `stop_node` and returns once it
    /// runs in the cluster again.
    pub fn start_node(&self, i: usize) -> Result<()> {
        cluster_script(CLUSTER, &["start-node", &index(i)?], NODES_WAIT).map(drop)
    }

    /// The node (1-3) that leads quorum queue `queue` now.
    pub fn leader(&self, queue: &str) -> Result<usize> {
        let out = cluster_script(CLUSTER, &["leader", queue], crate::WAIT)?;
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
        let out = cluster_script(CLUSTER, &["members", queue], crate::WAIT)?;
        out.trim()
            .parse()
            .with_context(|| format!("scripts/cluster.sh members printed {out:?}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A paused node would not stop politely; the others do nothing.
        for i in 1..=3 {
            let _ = self.resume(i);
        }
        if let Err(error) = cluster_script(CLUSTER, &["stop"], NODES_WAIT) {
            eprintln!(
                "testkit: THE CLUSTER IS NOT STOPPED (see scripts/cluster.sh status): {error:#}"
            );
        }
    }
}

/// The script's defaults: the three-node cluster.
const CLUSTER: &[(&str, &str)] = &[];

/// The single node: its own node name, folder and ports (AMQP 5691,
/// distribution 25691), so that it runs beside the cluster too.
const SINGLE: &[(&str, &str)] = &[
    ("FIB_CLUSTER_NODES", "1"),
    ("FIB_CLUSTER_NAME", "fibalarm"),
    ("FIB_CLUSTER_DIR", "/tmp/fib-rpc-single"),
    ("FIB_CLUSTER_BASE_PORT", "5690"),
];

/// One extra RabbitMQ node of its own, beside the default broker, for a
/// test to disturb. Dropping it resumes it (if paused), lifts its alarms and
/// stops it, also when the test panics.
pub struct Node {
    url: String,
}

/// A resource alarm set on a [`Node`]; dropping it lifts the alarm.
pub struct Alarm<'a> {
    node: &'a Node,
    lift: &'static [&'static str],
    lifted: bool,
}

impl Alarm<'_> {
    /// Lifts the alarm now (and reports a failure to).
    pub fn lift(mut self) -> Result<()> {
        self.lifted = true;
        self.node.ctl(self.lift).map(drop)
    }
}

impl Drop for Alarm<'_> {
    fn drop(&mut self) {
        if !self.lifted {
            if let Err(error) = self.node.ctl(self.lift) {
                eprintln!(
                    "testkit: could not lift the alarm (the node is stopped next): {error:#}"
                );
            }
        }
    }
}

impl Node {
    /// Starts the node (or takes it already running) and returns once it
    /// answers.
    pub fn start() -> Result<Node> {
        let mut node = Node { url: String::new() };
        let out = cluster_script(SINGLE, &["start"], NODES_WAIT)?;
        let urls: Vec<&str> = out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        match urls.as_slice() {
            [url] if url.starts_with("amqp://") => node.url = url.to_string(),
            _ => bail!("scripts/cluster.sh start printed {urls:?}, not one AMQP URL"),
        }
        Ok(node)
    }

    /// Its AMQP URL (guest/guest).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `rabbitmqctl ARGS` against the node; its stdout.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["ctl", "1"];
        all.extend_from_slice(args);
        cluster_script(SINGLE, &all, crate::WAIT * 3)
    }

    /// A memory alarm: the high watermark set to 1 byte (lifted with 0.4,
    /// RabbitMQ's default).
    pub fn memory_alarm(&self) -> Result<Alarm<'_>> {
        self.alarm(
            &["set_vm_memory_high_watermark", "absolute", "1"],
            &["set_vm_memory_high_watermark", "0.4"],
        )
    }

    /// A disk alarm: the free-disk limit set far above any disk's free
    /// space (lifted with 50MB, RabbitMQ's default).
    pub fn disk_alarm(&self) -> Result<Alarm<'_>> {
        self.alarm(
            &["set_disk_free_limit", "1000000GB"],
            &["set_disk_free_limit", "50MB"],
        )
    }

    fn alarm(&self, set: &[&str], lift: &'static [&'static str]) -> Result<Alarm<'_>> {
        // The guard exists before the alarm is set: a set that fails
        // half-way is lifted too.
        let alarm = Alarm {
            node: self,
            lift,
            lifted: false,
        };
        self.ctl(set)?;
        Ok(alarm)
    }

    /// SIGSTOPs the node's Erlang VM: hung, not dead.
    pub fn pause(&self) -> Result<()> {
        cluster_script(SINGLE, &["pause", "1"], crate::WAIT).map(drop)
    }

    /// SIGCONTs it again.
    pub fn resume(&self) -> Result<()> {
        cluster_script(SINGLE, &["resume", "1"], crate::WAIT).map(drop)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A paused node cannot stop; resuming a running one does nothing.
        let _ = self.resume();
        if let Err(error) = cluster_script(SINGLE, &["stop"], NODES_WAIT) {
            eprintln!(
                "testkit: THE EXTRA NODE IS NOT STOPPED (see FIB_CLUSTER_NODES=1 \
                 FIB_CLUSTER_NAME=fibalarm FIB_CLUSTER_DIR=/tmp/fib-rpc-single \
                 scripts/cluster.sh status): {error:#}"
            );
        }
    }
}

impl Cluster {
    /// SIGSTOPs node `i`'s Erlang VM: hung, not dead.
    pub fn pause(&self, i: usize) -> Result<()> {
        cluster_script(CLUSTER, &["pause", &index(i)?], crate::WAIT).map(drop)
    }

    /// SIGCONTs node `i` again after `pause`.
    pub fn resume(&self, i: usize) -> Result<()> {
        cluster_script(CLUSTER, &["resume", &index(i)?], crate::WAIT).map(drop)
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
fn cluster_script(env: &[(&str, &str)], args: &[&str], limit: Duration) -> Result<String> {
    let script = crate::workspace_root().join("scripts/cluster.sh");
    let mut child = Command::new("bash")
        .arg(&script)
        .args(args)
        .envs(env.iter().copied())
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
