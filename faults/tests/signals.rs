//! A stop asked for while a program has lost its broker (SIGINT or SIGTERM
//! during the wait between reconnection attempts, or while an attempt
//! hangs) is acted on at once. The broker is taken away through a proxy in
//! front of it (`testkit::Proxy`), never stopped. Each scenario prints one
//! line with the time from the signal to the exit.

use anyhow::{Context, Result};
use common::lifecycle::{self, Ended, Policy};
use faults::{start_client, start_server, wait_for_reply};
use std::time::{Duration, Instant};
use testkit::{Proxy, Scratch, Spawned, WAIT};

/// Bound on the time from the signal to the exit: "at once", with room for
/// a loaded machine.
const PROMPT: Duration = Duration::from_secs(2);

/// How the proxy keeps the program from its broker.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// Every attempt is refused at once: the program spends its time in the
    /// backoff between attempts.
    Refused,
    /// An attempt's TCP connection is accepted and then answered by nothing:
    /// the program waits inside the attempt (up to its 10 s connect timeout).
    Hanging,
}

/// Takes the broker away from `program` (which reaches it through `proxy`)
/// and returns once it is reconnecting as `outage` says.
fn lose_broker(proxy: &Proxy, program: &Spawned, outage: Outage) -> Result<()> {
    proxy.refuse();
    program.wait_for_line("reconnecting in", WAIT)?;
    if let Outage::Hanging = outage {
        proxy.hold();
        let deadline = Instant::now() + WAIT;
        while proxy.held() == 0 {
            anyhow::ensure!(Instant::now() < deadline, "no reconnection attempt came");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// Signals `program` and returns its exit code and the time it took to exit.
fn stop(program: &mut Spawned, signal: &str) -> Result<(Option<i32>, Duration)> {
    let sent = Instant::now();
    program.signal(signal)?;
    let status = program.wait(WAIT)?;
    Ok((status.code(), sent.elapsed()))
}

fn client_stopped_while_reconnecting(signal: &str, outage: Outage) -> Result<()> {
    let scratch = Scratch::new("clientstop");
    let url = testkit::broker_url();
    let mut server = start_server(&url, &scratch, &["--quiet"])?;
    let proxy = Proxy::to_broker()?;
    // A long --timeout: the reconnection budget (timeout x attempts) is far
    // longer than the test waits, so only the signal can end the run.
    let mut client = start_client(
        &proxy.url_for(&url),
        &scratch,
        &["--count", "1000000", "--timeout", "60"],
    )?;
    wait_for_reply(&client, 20)?;
    lose_broker(&proxy, &client, outage)?;
    let (code, took) = stop(&mut client, signal)?;
    assert_eq!(code, Some(130), "{:?}", client.stderr());
    assert!(took < PROMPT, "exit {took:?} after SIG{signal}");
    let summary = testkit::json_summary(&client)?;
    assert_eq!(summary["interrupted"], true, "{summary}");
    let count = summary["count"].as_u64().context("count")?;
    assert!(count >= 20, "{summary}");
    assert_eq!(
        summary["sent"].as_u64(),
        Some(count + summary["unanswered"].as_u64().context("unanswered")?),
        "{summary}"
    );
    let stderr = client.stderr();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("interrupted while reconnecting")),
        "{stderr:?}"
    );
    assert!(
        !stderr.iter().any(|l| l.contains("reconnected to")),
        "{stderr:?}"
    );
    // Let the held attempt through: the client is gone, nothing follows.
    proxy.open();
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    eprintln!(
        "client SIG{signal} while reconnecting ({outage:?}): exit 130 after {:.0} ms, \
         summary with {count} answered",
        took.as_secs_f64() * 1e3
    );
    Ok(())
}

#[test]
fn client_sigint_during_the_backoff_ends_with_the_summary() -> Result<()> {
    client_stopped_while_reconnecting("INT", Outage::Refused)
}

#[test]
fn client_sigterm_during_the_backoff_ends_with_the_summary() -> Result<()> {
    client_stopped_while_reconnecting("TERM", Outage::Refused)
}

#[test]
fn client_sigint_during_a_hanging_reconnection_ends_with_the_summary() -> Result<()> {
    client_stopped_while_reconnecting("INT", Outage::Hanging)
}

fn server_stopped_while_reconnecting(signal: &str, outage: Outage) -> Result<()> {
    let scratch = Scratch::new("serverstop");
    let proxy = Proxy::to_broker()?;
    let mut server = start_server(&proxy.url_for(&testkit::broker_url()), &scratch, &[])?;
    lose_broker(&proxy, &server, outage)?;
    let (code, took) = stop(&mut server, signal)?;
    assert_eq!(code, Some(common::exit::OK), "{:?}", server.stderr());
    assert!(took < PROMPT, "exit {took:?} after SIG{signal}");
    let stderr = server.stderr();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("fib-server stopped while connecting")),
        "{stderr:?}"
    );
    proxy.open();
    eprintln!(
        "server SIG{signal} while reconnecting ({outage:?}): exit 0 after {:.0} ms",
        took.as_secs_f64() * 1e3
    );
    Ok(())
}

#[test]
fn server_sigterm_during_the_backoff_stops_it() -> Result<()> {
    server_stopped_while_reconnecting("TERM", Outage::Refused)
}

#[test]
fn server_sigint_during_the_backoff_stops_it() -> Result<()> {
    server_stopped_while_reconnecting("INT", Outage::Refused)
}

#[test]
fn server_sigterm_during_a_hanging_reconnection_stops_it() -> Result<()> {
    server_stopped_while_reconnecting("TERM", Outage::Hanging)
}

/// A stop that comes while a connection attempt is under way, which then
/// succeeds: the work never gets that session, so nothing more is sent. And
/// a stop already there before an attempt: no attempt at all.
#[test]
fn a_stop_during_a_connection_that_succeeds_gives_the_work_nothing() -> Result<()> {
    let proxy = Proxy::to_broker()?;
    proxy.hold();
    let url = common::AmqpUrl::parse(&proxy.url_for(&testkit::broker_url()))?;
    let settings = common::ConnectionSettings::new(url);
    let (stop_tx, stop) = crossbeam_channel::bounded::<()>(0);
    let mut sessions = 0;
    let started = Instant::now();
    let ended = std::thread::scope(|scope| {
        scope.spawn(|| {
            let deadline = Instant::now() + WAIT;
            while proxy.held() == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(stop_tx);
            // The attempt now completes, after the stop.
            proxy.open();
        });
        let policy = Policy::GiveUpAfter {
            limit: WAIT,
            stop: Some(&stop),
        };
        lifecycle::run_sessions(&settings, policy, &mut |_| {
            sessions += 1;
            Ok(())
        })
    })?;
    assert_eq!(ended, Ended::Stopped);
    assert_eq!(sessions, 0, "the work got a session after the stop");
    assert!(started.elapsed() < WAIT);
    let attempts = proxy.accepted();
    let ended = lifecycle::run_sessions(&settings, Policy::UntilStopped(&stop), &mut |_| {
        sessions += 1;
        Ok(())
    })?;
    assert_eq!((ended, sessions), (Ended::Stopped, 0));
    assert_eq!(proxy.accepted(), attempts, "connected after the stop");
    Ok(())
}

/// SIGTERM mid-run, the broker there: the client stops as for Ctrl-C,
/// awaits what is outstanding and prints its summary (it used to die of the
/// signal, with nothing printed).
#[test]
fn client_sigterm_mid_run_is_taken_as_ctrl_c() -> Result<()> {
    let scratch = Scratch::new("clientterm");
    let url = testkit::broker_url();
    let mut server = start_server(&url, &scratch, &["--quiet"])?;
    let mut client = start_client(&url, &scratch, &["--count", "1000000", "--inflight", "4"])?;
    wait_for_reply(&client, 50)?;
    let (code, took) = stop(&mut client, "TERM")?;
    assert_eq!(code, Some(130), "{:?}", client.stderr());
    let summary = testkit::json_summary(&client)?;
    assert_eq!(summary["interrupted"], true, "{summary}");
    let count = summary["count"].as_u64().context("count")?;
    assert_eq!(summary["ok"].as_u64(), Some(count), "{summary}");
    assert_eq!(
        summary["unanswered"], 0,
        "the outstanding were awaited: {summary}"
    );
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    eprintln!(
        "client SIGTERM mid-run: exit 130 after {:.0} ms, summary with {count} answered",
        took.as_secs_f64() * 1e3
    );
    Ok(())
}

/// Without a stop, both programs reconnect through the same path once the
/// broker is back (refused for a while, then a hanging attempt let
/// through), and the run completes: every reply correct.
#[test]
fn without_a_stop_both_reconnect_when_the_broker_is_back() -> Result<()> {
    let scratch = Scratch::new("comeback");
    let proxy = Proxy::to_broker()?;
    let url = proxy.url_for(&testkit::broker_url());
    let mut server = start_server(&url, &scratch, &[])?;
    let mut client = start_client(&url, &scratch, &["--count", "300"])?;
    wait_for_reply(&client, 20)?;
    lose_broker(&proxy, &client, Outage::Hanging)?;
    proxy.open();
    assert_eq!(client.wait(WAIT)?.code(), Some(0), "{:?}", client.stderr());
    let summary = testkit::json_summary(&client)?;
    assert_eq!(summary["ok"], 300, "{summary}");
    assert!(summary["reconnects"].as_u64() >= Some(1), "{summary}");
    server.wait_for_line("reconnected to", WAIT)?;
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    Ok(())
}
