//! The fib-client binary against a pika server, written for this test in
//! testkit/pika, that mirrors the classic pika RPC server on the wire.

use anyhow::Result;
use serde_json::Value;
use std::process::Command;
use testkit::{Scratch, Spawned, WAIT};

#[test]
fn fib_client_gets_correct_replies_from_a_pika_server() -> Result<()> {
    let scratch = Scratch::new("pikaserver");
    let mut server = Spawned::start(
        Command::new(testkit::python()?)
            .arg(testkit::pika_script("pika_server.py"))
            .args(scratch.url_and_exchange_args())
            .args(["--queue", &scratch.topology.queue]),
    )?;
    server.wait_for_line("ready", WAIT)?;
    let mut client = Spawned::start(
        Command::new(env!("CARGO_BIN_EXE_fib-client"))
            .args(scratch.url_and_exchange_args())
            .args(["--count", "300", "--json"]),
    )?;
    assert_eq!(client.wait(WAIT)?.code(), Some(0), "{:?}", client.stderr());
    let summary: Value = serde_json::from_str(&client.stdout().join(""))?;
    assert_eq!(
        (summary["ok"].as_u64(), summary["failures"].as_u64()),
        (Some(300), Some(0))
    );
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    Ok(())
}
