//! The broker password, given as a fresh user's distinctive password, shows
//! in no output of either program, however much they are asked to log.

use anyhow::Result;
use faults::assert_password_hidden;
use std::process::Command;
use testkit::{Scratch, SecretUser, Spawned, WAIT};

/// Both programs at `RUST_LOG=trace` (and with `-v`), on a real connection
/// that authenticates with the user's password: amiquip logs its handshake,
/// PLAIN response included, at debug level.
#[test]
fn rust_log_trace_never_prints_the_password() -> Result<()> {
    let user = SecretUser::create()?;
    let scratch = Scratch::new("tracelog");
    let url = user.url();
    let exchange = &scratch.topology.exchange;
    let mut server = Spawned::start(
        Command::new(testkit::binary("fib-server"))
            .args(["--url", &url, "--exchange", exchange])
            .args(["--queue", &scratch.topology.queue, "-v"])
            .env("RUST_LOG", "trace"),
    )?;
    server.wait_for_line("ready", WAIT)?;
    let mut client = Spawned::start(
        Command::new(testkit::binary("fib-client"))
            .args(["--url", &url, "--exchange", exchange])
            .args(["--count", "3", "-v"])
            .env("RUST_LOG", "trace,amiquip=trace,amiquip::io_loop=trace"),
    )?;
    assert_eq!(client.wait(WAIT)?.code(), Some(0), "{:?}", client.stderr());
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    // The level took: both logged at trace.
    for program in [&server, &client] {
        let stderr = program.stderr();
        assert!(
            stderr.iter().any(|l| l.contains(" trace: ")),
            "no trace line: {stderr:?}"
        );
    }
    assert_password_hidden(&user, &[&server, &client]);
    Ok(())
}
