//! `--interval` lines keep coming on time while the client reconnects, each
//! saying "reconnecting", against the real broker through a proxy the test
//! cuts. (They used to stop while no session ran, then arrive all at once,
//! stale, when the connection was back.)

use anyhow::Result;
use std::time::{Duration, Instant};
use testkit::{InProcessServer, Proxy, Scratch, Spawned, WAIT};

/// The interval lines of `run` that say it was reconnecting.
fn reconnecting_lines(run: &Spawned) -> Vec<String> {
    run.stderr()
        .into_iter()
        .filter(|line| line.starts_with('[') && line.ends_with("  reconnecting"))
        .collect()
}

#[test]
fn interval_lines_come_on_time_while_reconnecting() -> Result<()> {
    let scratch = Scratch::new("ivreconnect");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let proxy = Proxy::to_broker()?;
    let relayed = proxy.url_for(&testkit::broker_url());
    let mut run = Spawned::start(
        std::process::Command::new(env!("CARGO_BIN_EXE_fib-client")).args([
            "--url",
            &relayed,
            "--exchange",
            &scratch.topology.exchange,
            "--rate",
            "50",
            "--count",
            "100000",
            "--fixed-n",
            "10",
            "--interval",
            "0.2",
            "--timeout",
            "20",
        ]),
    )?;
    run.wait_for_line(" p50 ", WAIT)?;
    proxy.refuse();
    // While every connection attempt is refused, the lines go on, five of
    // them (a second's worth) saying so, before the broker is back.
    let deadline = Instant::now() + WAIT;
    while reconnecting_lines(&run).len() < 5 {
        assert!(
            Instant::now() < deadline,
            "fewer than 5 interval lines while reconnecting: {:?}",
            run.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // No reconnection has succeeded meanwhile: these came while refused.
    assert!(
        !run.stderr()
            .iter()
            .any(|line| line.contains("reconnected to")),
        "{:?}",
        run.stderr()
    );
    proxy.open();
    run.wait_for_line("reconnected to", WAIT)?;
    // Replies again, in a line of its own that no longer says reconnecting.
    let deadline = Instant::now() + WAIT;
    loop {
        let back = run
            .stderr()
            .into_iter()
            .skip_while(|l| !l.contains("reconnected to"));
        let answered = back
            .filter(|l| l.contains(" p50 ") && !l.ends_with("reconnecting"))
            .count();
        if answered > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no replies after reconnecting: {:?}",
            run.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    run.signal("INT")?;
    assert_eq!(run.wait(WAIT)?.code(), Some(130), "{:?}", run.stderr());
    Ok(())
}
