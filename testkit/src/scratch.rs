//! A uniquely named topology that deletes itself.

use crate::Peer;
use common::topology::Topology;
use uuid::Uuid;

/// Unique exchange and queue names for one test; both are deleted on drop.
pub struct Scratch {
    pub topology: Topology,
    /// What every name of this scratch begins with.
    pub prefix: String,
}

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        let id = Uuid::new_v4().simple().to_string();
        let prefix = format!("fibtest.{label}.{}", &id[..12]);
        Scratch {
            topology: Topology {
                exchange: format!("{prefix}.exchange"),
                queue: format!("{prefix}.queue"),
                ..Topology::default()
            },
            prefix,
        }
    }

    pub fn server_settings(&self) -> fib_server::Settings {
        fib_server::Settings {
            connection: crate::connection_settings(),
            topology: self.topology.clone(),
            // fib-server's default.
            prefetch: 2,
            max_n: common::protocol::DEFAULT_MAX_N,
            confirm_replies: true,
            workers: 1,
            cache_bytes: (fib_server::cli::DEFAULT_CACHE_MB << 20) as usize,
            metrics_addr: None,
            blocked: Default::default(),
        }
    }

    /// Starts `binary` (a path) pointed at this topology, with `args`.
    pub fn spawn(&self, binary: &str, args: &[&str]) -> anyhow::Result<crate::Spawned> {
        crate::Spawned::start(
            std::process::Command::new(binary)
                .args(self.url_and_exchange_args())
                .args(args),
        )
    }

    /// Flags that point either binary at this topology.
    pub fn url_and_exchange_args(&self) -> Vec<String> {
        vec![
            "--url".into(),
            crate::broker_url(),
            "--exchange".into(),
            self.topology.exchange.clone(),
        ]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let result = Peer::connect().and_then(|peer| {
            peer.delete_queue(&self.topology.queue)?;
            peer.delete_exchange(&self.topology.exchange)?;
            // What a quorum-queue server declares beside them; deleting what
            // is not there is no error.
            peer.delete_queue(&self.topology.dead_letter_queue())?;
            peer.delete_exchange(&self.topology.dead_letter_exchange())
        });
        if let Err(error) = result {
            eprintln!("testkit: could not clean up {:?}: {error:#}", self.topology);
        }
    }
}
