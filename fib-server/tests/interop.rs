//! A pika client, written for this test in testkit/pika, against the
//! fib-server binary: the wire protocol is the pika pair's.

use anyhow::Result;
use std::process::Command;
use testkit::{Scratch, Spawned, WAIT};

fn fib_server(scratch: &Scratch) -> Result<Spawned> {
    Spawned::start(
        Command::new(env!("CARGO_BIN_EXE_fib-server"))
            .args(scratch.url_and_exchange_args())
            .args(["--queue", &scratch.topology.queue]),
    )
}

fn pika(script: &str, scratch: &Scratch, args: &[&str]) -> Result<Spawned> {
    Spawned::start(
        Command::new(testkit::python()?)
            .arg(testkit::pika_script(script))
            .args(scratch.url_and_exchange_args())
            .args(args),
    )
}

#[test]
fn a_pika_client_gets_correct_replies_from_fib_server() -> Result<()> {
    let scratch = Scratch::new("pikaclient");
    let mut server = fib_server(&scratch)?;
    server.wait_for_line("ready", WAIT)?;
    let mut client = pika(
        "pika_client.py",
        &scratch,
        &["--count", "300", "--timeout", "10"],
    )?;
    let status = client.wait(WAIT)?;
    assert_eq!(status.code(), Some(0), "pika client: {:?}", client.stderr());
    // 300 numbers and 3 bad bodies.
    assert_eq!(
        client.stdout(),
        vec!["pika_client: ok=303 failures=0".to_string()]
    );
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    Ok(())
}

#[test]
fn fib_server_starts_against_the_pika_servers_declarations() -> Result<()> {
    // The pika server declares queue, exchange and binding first; fib-server
    // must declare the same without PRECONDITION_FAILED, and both serve.
    let scratch = Scratch::new("pikadecl");
    let mut pika_server = pika(
        "pika_server.py",
        &scratch,
        &["--queue", &scratch.topology.queue],
    )?;
    pika_server.wait_for_line("ready", WAIT)?;
    let mut server = fib_server(&scratch)?;
    server.wait_for_line("ready", WAIT)?;
    let mut client = pika(
        "pika_client.py",
        &scratch,
        &["--count", "40", "--timeout", "10"],
    )?;
    assert_eq!(client.wait(WAIT)?.code(), Some(0), "{:?}", client.stderr());
    for program in [&mut server, &mut pika_server] {
        program.signal("TERM")?;
        assert_eq!(
            program.wait(WAIT)?.code(),
            Some(0),
            "{:?}",
            program.stderr()
        );
    }
    Ok(())
}
