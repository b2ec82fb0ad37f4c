//! What /readyz says at the edges of a server's life: "stopping" from the
//! moment a graceful stop begins, also while the request in hand is still
//! being answered (an orchestrator stops routing to, and a rollout stops
//! waiting for, a pod that got SIGTERM); and "ready" as soon as the ready
//! line is logged.

use anyhow::Result;
use common::protocol::{request_properties, DEFAULT_ROUTING_KEY};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::http::{self, sample};
use testkit::{Peer, Scratch, Spawned, WAIT};

#[test]
fn readyz_says_stopping_while_the_request_in_hand_finishes() -> Result<()> {
    let scratch = Scratch::new("readyz-stopping");
    let mut server = Spawned::start(
        Command::new(env!("CARGO_BIN_EXE_fib-server"))
            .args(scratch.url_and_exchange_args())
            .args([
                "--queue",
                &scratch.topology.queue,
                "--metrics",
                "127.0.0.1:0",
                "--cache-mb",
                "0",
                "--max-n",
                "3000000",
            ]),
    )?;
    let ready = server.wait_for_line("ready", WAIT)?;
    let addr = http::metrics_addr(&ready)?;
    // (The next test holds /readyz to the ready line; this one only needs
    // the server ready before it is stopped.)
    let deadline = Instant::now() + WAIT;
    while http::get(&addr, "/readyz")?.status != 200 {
        anyhow::ensure!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(10));
    }

    // F(3000000) takes seconds in a debug build, also on a quiet machine: a
    // request in hand for longer than the polls below need.
    let peer = Peer::connect()?;
    let inbox = peer.reply_queue()?;
    peer.publish(
        &scratch.topology.exchange,
        DEFAULT_ROUTING_KEY,
        b"3000000",
        request_properties("slow", &inbox.name),
    )?;
    let deadline = Instant::now() + WAIT;
    loop {
        let scrape = http::get_ok(&addr, "/metrics")?;
        if sample(&scrape, "fib_server_requests_in_flight") == Some(1.0) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.signal("TERM")?;
    // Give the signal thread a moment to pass the stop on; then, while the
    // request is still in hand, readiness must already be gone.
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut last = None;
    while Instant::now() < deadline {
        // Once the request is answered the server exits and its endpoint
        // with it: a refused connection ends the watch, it is not an error.
        let Ok(scrape) = http::get_ok(&addr, "/metrics") else {
            break;
        };
        let in_hand = sample(&scrape, "fib_server_requests_in_flight") == Some(1.0);
        let Ok(readyz) = http::get(&addr, "/readyz") else {
            break;
        };
        if !in_hand {
            break;
        }
        last = Some((readyz.status, readyz.body));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = last.expect("the request was still in hand after the signal");
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: stopping\n"),
        "/readyz during a graceful stop, request still in hand"
    );
    let (_, _reply) = inbox.next(WAIT)?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0));
    Ok(())
}

/// The ready line says the server consumes; /readyz asked right after it
/// must agree (were the line logged before the worker's readiness is set,
/// the first probe after it would get 503 "not ready: connecting", in
/// about one start of five).
#[test]
fn readyz_agrees_with_the_ready_line() -> Result<()> {
    let scratch = Scratch::new("readyz-readyline");
    let mut seen = Vec::new();
    for _ in 0..5 {
        let mut server = Spawned::start(
            Command::new(env!("CARGO_BIN_EXE_fib-server"))
                .args(scratch.url_and_exchange_args())
                .args([
                    "--queue",
                    &scratch.topology.queue,
                    "--metrics",
                    "127.0.0.1:0",
                ]),
        )?;
        let ready = server.wait_for_line("ready", WAIT)?;
        let addr = http::metrics_addr(&ready)?;
        let readyz = http::get(&addr, "/readyz")?;
        seen.push((readyz.status, readyz.body));
        server.signal("TERM")?;
        assert_eq!(server.wait(WAIT)?.code(), Some(0));
    }
    assert!(
        seen.iter().all(|(status, _)| *status == 200),
        "/readyz right after each ready line: {seen:?}"
    );
    Ok(())
}
