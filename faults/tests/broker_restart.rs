//! Broker restarts in the middle of a run. They take the broker away from
//! every other test too, so they are ignored by a plain `cargo test` and run
//! on their own, one at a time, by scripts/test.sh:
//!
//!     cargo test -p faults --test broker_restart -- --ignored --test-threads=1
//!
//! The restart guard brings the broker back even when a test fails.

use anyhow::Result;
use faults::{assert_password_hidden, start_client, start_server, wait_for_reply, Figures};
use testkit::{BrokerRestarts, Peer, Scratch, SecretUser, WAIT};

/// A run of `count` with `inflight` requests outstanding (server prefetch
/// likewise) during which `restart` takes the broker away and back. `count`
/// must leave the run going for well over the second rabbitmqctl takes to
/// act; `reconnects >= 1` below catches a run that ended first.
fn restart_mid_run(
    scenario: &str,
    count: u64,
    inflight: u16,
    restart: impl FnOnce(&BrokerRestarts) -> Result<()>,
) -> Result<()> {
    let restarts = BrokerRestarts::new();
    let user = SecretUser::create()?;
    let scratch = Scratch::new("restart");
    let inflight = inflight.to_string();
    let mut server = start_server(&user.url(), &scratch, &["--prefetch", &inflight])?;
    let count_arg = count.to_string();
    let args = [
        "--count",
        &count_arg,
        "--timeout",
        "10",
        "--inflight",
        &inflight,
    ];
    let mut client = start_client(&user.url(), &scratch, &args)?;
    wait_for_reply(&client, 500)?;
    restart(&restarts)?;
    assert_eq!(
        client.wait(WAIT * 2)?.code(),
        Some(0),
        "{:?}",
        client.stderr()
    );
    let figures = Figures::of(&client)?;
    assert_eq!(
        (figures.count, figures.ok, figures.failures),
        (count, count, 0),
        "{figures:?}"
    );
    assert!(figures.reconnects >= 1, "{figures:?}");
    // At most the requests in flight were stranded by the restart.
    assert!(figures.resends <= inflight.parse()?, "{figures:?}");
    let server_log = server.stderr();
    assert!(
        server_log.iter().any(|l| l.contains("connection lost")),
        "{server_log:?}"
    );
    assert!(
        server_log
            .iter()
            .filter(|l| l.contains("fib-server ready"))
            .count()
            >= 2
    );
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    let mut peer = Peer::connect()?;
    let depth = peer.queue_depth(&scratch.topology.queue)?.unwrap_or(0);
    assert_eq!(depth, 0);
    eprintln!("{}", figures.line(scenario, depth));
    assert_password_hidden(&user, &[&server, &client]);
    Ok(())
}

#[test]
#[ignore = "restarts the broker: run alone (scripts/test.sh does)"]
fn broker_app_restarted_mid_run() -> Result<()> {
    restart_mid_run("broker stop_app/start_app mid-run", 10_000, 1, |broker| {
        broker.restart_app()
    })
}

#[test]
#[ignore = "restarts the broker: run alone (scripts/test.sh does)"]
fn broker_process_restarted_mid_run() -> Result<()> {
    restart_mid_run("broker process stop/start mid-run", 10_000, 1, |broker| {
        broker.restart_node()
    })
}

#[test]
#[ignore = "restarts the broker: run alone (scripts/test.sh does)"]
fn broker_app_restarted_mid_pipelined_run() -> Result<()> {
    restart_mid_run(
        "broker stop_app/start_app mid-run, 16 in flight",
        12_000,
        16,
        |broker| broker.restart_app(),
    )
}

#[test]
#[ignore = "stops the broker: run alone (scripts/test.sh does)"]
fn client_gives_up_reconnecting_with_exit_3() -> Result<()> {
    let restarts = BrokerRestarts::new();
    let user = SecretUser::create()?;
    let scratch = Scratch::new("giveup");
    let mut server = start_server(&user.url(), &scratch, &["--quiet"])?;
    // Reconnection budget: --timeout x (--retries + 1) = 1 s.
    let args = ["--count", "100000", "--timeout", "0.5", "--retries", "1"];
    let mut client = start_client(&user.url(), &scratch, &args)?;
    wait_for_reply(&client, 200)?;
    restarts.stop_app()?;
    let status = client.wait(WAIT)?;
    restarts.start_app()?;
    assert_eq!(status.code(), Some(3), "{:?}", client.stderr());
    let stderr = client.stderr().join("\n");
    assert!(
        stderr.contains("gave up reconnecting after 1.0 s"),
        "{stderr}"
    );
    // The server, meanwhile, waits for the broker and comes back.
    server.wait_for_line("fib-server ready", WAIT)?;
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    eprintln!("broker stopped for good mid-run: client exit 3 after its 1.0 s reconnection budget; server reconnected once the broker was back");
    assert_password_hidden(&user, &[&server, &client]);
    Ok(())
}
