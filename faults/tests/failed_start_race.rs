//! A failed start removes only what it itself declared, and only if nobody
//! uses it. Two quorum servers that disagree on --delivery-limit start at
//! once on a fresh queue: one fails with exit 2, and the other keeps running
//! with its queue (a failed start used to delete what it had found missing,
//! although the other server had declared it meanwhile, and the other died
//! with exit 3, 541 INTERNAL_ERROR).

use anyhow::Result;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{Peer, Scratch, WAIT};

#[test]
fn a_failed_start_never_deletes_what_another_server_declared() -> Result<()> {
    let mut lost = Vec::new();
    for round in 0..8 {
        let scratch = Scratch::new("racestart");
        let queue = scratch.topology.queue.clone();
        let server = |limit: &str| -> Result<Child> {
            Ok(Command::new(testkit::binary("fib-server"))
                .args(scratch.url_and_exchange_args())
                .args([
                    "--queue",
                    &queue,
                    "--queue-type",
                    "quorum",
                    "--delivery-limit",
                    limit,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?)
        };
        let mut servers = [server("5")?, server("7")?];
        // Wait until one has exited (the loser, exit 2), then a while
        // longer: the other must still run, with its queue.
        let deadline = Instant::now() + WAIT;
        let mut exited: Vec<Option<i32>> = Vec::new();
        while exited.is_empty() && Instant::now() < deadline {
            for s in servers.iter_mut() {
                if let Some(status) = s.try_wait()? {
                    exited.push(status.code());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_secs(2));
        let objects = testkit::broker_objects(&scratch.prefix)?;
        let mut running = 0;
        for s in servers.iter_mut() {
            if s.try_wait()?.is_none() {
                running += 1;
            }
        }
        if !objects.contains(&format!("queue {queue}")) || running != 1 {
            lost.push(format!(
                "round {round}: exits {exited:?}, {running} running, objects {objects:?}"
            ));
        }
        for s in servers.iter_mut() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let peer = Peer::connect()?;
        let _ = peer.delete_queue(&scratch.topology.dead_letter_queue());
        let _ = peer.delete_exchange(&scratch.topology.dead_letter_exchange());
    }
    assert!(
        lost.is_empty(),
        "a failed start deleted another server's queue:\n{}",
        lost.join("\n")
    );
    Ok(())
}
