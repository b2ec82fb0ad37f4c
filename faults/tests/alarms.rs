//! Faults that must disturb a broker, on an extra RabbitMQ node of their own
//! (`testkit::Node`: scripts/cluster.sh's one-node variant, fibalarm1 on
//! port 5691), never on the default broker that every other test shares:
//! resource alarms (memory, disk) mid-run, a block longer than
//! `--max-blocked`, a graceful stop while blocked, and the node hung by
//! SIGSTOP. One test starts the node once (about 25 s) and runs the
//! scenarios in turn, those that fit in one alarm side by side; each prints
//! one line of exact counts. The node's guard lifts every alarm, resumes and
//! stops the node even when a scenario fails. The node is fixed, so the test
//! runs alone:
//!
//!     cargo test -p faults --test alarms -- --ignored --nocapture

use anyhow::{Context, Result};
use common::{AmqpUrl, ConnectionSettings};
use faults::{start_client, start_server, wait_for_reply, Figures};
use std::time::{Duration, Instant};
use testkit::{Node, Peer, Scratch, Spawned, WAIT};

/// How long the memory alarm lasts: longer than a reply's whole budget
/// with the default flags (`--timeout 10`, `--retries 2`: 30 s), so a block
/// counted against it would end the run.
const MEMORY_ALARM: Duration = Duration::from_secs(40);

/// The disk alarm: longer than one `--timeout` (10 s), so that a block
/// counted against it would resend.
const DISK_ALARM: Duration = Duration::from_secs(15);

/// How long the node is hung (SIGSTOP) mid-run.
const HUNG: Duration = Duration::from_secs(30);

/// A server and a client run on their own queue of the node.
struct Pair {
    scenario: String,
    scratch: Scratch,
    server: Spawned,
    client: Spawned,
}

impl Pair {
    /// The client runs for `length` (`--duration`: however fast the
    /// machine, it is still running when the alarm comes), with
    /// `client_args` besides.
    fn start(node: &Node, scenario: &str, length: Duration, client_args: &[&str]) -> Result<Pair> {
        Pair::start_with(node, scenario, length, &[], client_args)
    }

    fn start_with(
        node: &Node,
        scenario: &str,
        length: Duration,
        server_args: &[&str],
        client_args: &[&str],
    ) -> Result<Pair> {
        let scratch = Scratch::new("alarm");
        let server = start_server(node.url(), &scratch, server_args)?;
        let length = length.as_secs().to_string();
        let mut args = vec!["--duration", &length];
        args.extend_from_slice(client_args);
        let client = start_client(node.url(), &scratch, &args)?;
        Ok(Pair {
            scenario: scenario.to_string(),
            scratch,
            server,
            client,
        })
    }

    /// Waits until the client logged that the broker blocked it, and the
    /// server too if `server_too`. (A server is blocked only once it
    /// publishes during the alarm: with 16 requests in flight it always
    /// has one in hand; a sequential client's one request may be held back
    /// before it reached the queue.)
    fn await_blocked(&self, server_too: bool) -> Result<()> {
        let programs = if server_too {
            vec![&self.client, &self.server]
        } else {
            vec![&self.client]
        };
        for program in programs {
            program
                .wait_for_line("blocked the connection", WAIT)
                .with_context(|| format!("{}: no block logged", self.scenario))?;
        }
        Ok(())
    }

    /// The client ends with every reply correct, exit 0, nothing resent,
    /// no reconnection on either side, and both logged the block's end with
    /// how long it lasted; prints the scenario's line.
    fn assert_through(mut self, node: &Node, blocked_at_least: Duration) -> Result<()> {
        let scenario = &self.scenario;
        let status = self.client.wait(Duration::from_secs(120))?;
        assert_eq!(
            status.code(),
            Some(0),
            "{scenario}: {:?}",
            self.client.stderr()
        );
        let figures = Figures::of(&self.client)?;
        let (blocks, blocked_ms) = blocked_figures(&self.client)?;
        assert_all_answered(scenario, &figures, &self.client)?;
        assert_eq!(
            (figures.resends, figures.reconnects),
            (0, 0),
            "{scenario}: {figures:?}"
        );
        assert!(blocks >= 1, "{scenario}: {blocks} blocks");
        // The broker tells the client at its first publish in the alarm: at
        // once, or at its probe one --timeout (10 s) after its last request.
        let least = blocked_at_least.as_secs_f64() * 1e3 - 12_000.0;
        assert!(blocked_ms >= least, "{scenario}: blocked {blocked_ms} ms");
        for (who, program) in [("client", &self.client), ("server", &self.server)] {
            let stderr = program.stderr();
            let blocked = stderr
                .iter()
                .filter(|l| l.contains("blocked the connection:"));
            let unblocked = stderr
                .iter()
                .filter(|l| l.contains("unblocked the connection after"));
            assert_eq!(
                blocked.count(),
                unblocked.count(),
                "{scenario}: the {who} logged a block without its end: {stderr:?}"
            );
            // Its own lines only, not amiquip's as well.
            assert!(
                !stderr
                    .iter()
                    .any(|l| l.contains("server has blocked connection")),
                "{scenario}: the {who} logged the library's block line: {stderr:?}"
            );
            assert!(
                !stderr
                    .iter()
                    .any(|l| l.contains("reconnected to") || l.contains("connection lost")),
                "{scenario}: the {who} reconnected: {stderr:?}"
            );
        }
        self.server.signal("TERM")?;
        assert_eq!(self.server.wait(WAIT)?.code(), Some(0), "{scenario}");
        let depth = depth(node, &self.scratch)?;
        eprintln!(
            "{}, blocks {blocks}, blocked {:.1} s",
            figures.line(scenario, depth),
            blocked_ms / 1e3
        );
        assert_eq!(depth, 0, "{scenario}");
        Ok(())
    }
}

/// Every request sent was answered, correctly (more than a few hundred).
fn assert_all_answered(scenario: &str, figures: &Figures, client: &Spawned) -> Result<()> {
    let json = testkit::json_summary(client)?;
    let sent = json["sent"].as_u64().context("sent")?;
    assert!(figures.count >= 300, "{scenario}: {figures:?}");
    assert_eq!(
        (figures.count, figures.ok, figures.failures),
        (sent, sent, 0),
        "{scenario}: {figures:?}"
    );
    Ok(())
}

/// The client's `blocks` and `blocked_ms` from its JSON summary.
fn blocked_figures(client: &Spawned) -> Result<(u64, f64)> {
    let stdout = client.stdout();
    let line = stdout.last().context("no summary")?;
    let json: serde_json::Value = serde_json::from_str(line)?;
    Ok((
        json["blocks"].as_u64().context("blocks")?,
        json["blocked_ms"].as_f64().context("blocked_ms")?,
    ))
}

/// Requests left in `scratch`'s queue on the node.
fn depth(node: &Node, scratch: &Scratch) -> Result<u32> {
    let settings = ConnectionSettings::new(AmqpUrl::parse(node.url())?);
    Peer::connect_to(&settings)?
        .queue_depth(&scratch.topology.queue)?
        .context("request queue missing")
}

/// Waits until `length` has passed since `since` (the alarm's length is the
/// scenario, not a stand-in for an event).
fn hold_until(since: Instant, length: Duration) {
    std::thread::sleep((since + length).saturating_duration_since(Instant::now()));
}

#[test]
#[ignore = "starts an extra RabbitMQ node; scripts/test.sh runs it alone"]
fn resource_alarms_and_a_hung_broker() -> Result<()> {
    let node = Node::start()?;
    memory_alarm(&node)?;
    disk_alarm(&node)?;
    hung_broker(&node)?;
    Ok(())
}

/// A stop while blocked cuts the connection, says so once, and warns of
/// nothing: the cut was meant.
fn assert_cut_once(scenario: &str, program: &Spawned) {
    let stderr = program.stderr();
    let cuts = stderr
        .iter()
        .filter(|l| l.contains("cutting the blocked connection"))
        .count();
    assert_eq!(cuts, 1, "{scenario}: {stderr:?}");
    assert!(
        !stderr
            .iter()
            .any(|l| l.contains("closing the connection to")),
        "{scenario}: {stderr:?}"
    );
}

/// A 40 s memory alarm under a sequential client, a client with 16 in
/// flight, a client allowed 5 s of block, and a server stopped while
/// blocked, all at once.
fn memory_alarm(node: &Node) -> Result<()> {
    let length = MEMORY_ALARM + Duration::from_secs(15);
    let sequential = Pair::start(node, "memory alarm 40 s, sequential", length, &[])?;
    // Its server's readiness and gauges are watched through the block.
    let parallel = Pair::start_with(
        node,
        "memory alarm 40 s, --inflight 16",
        length,
        &["--metrics", "127.0.0.1:0"],
        &["--inflight", "16"],
    )?;
    let interrupted = Pair::start(
        node,
        "memory alarm, client interrupted while blocked, --inflight 16 --timeout 3",
        length,
        &["--inflight", "16", "--timeout", "3"],
    )?;
    let mut impatient = Pair::start(
        node,
        "memory alarm, --max-blocked 5",
        length,
        &["--max-blocked", "5"],
    )?;
    let stopped = Pair::start(
        node,
        "memory alarm, server stopped while blocked, --inflight 16",
        length,
        &["--inflight", "16"],
    )?;
    for pair in [&sequential, &parallel, &impatient, &stopped, &interrupted] {
        wait_for_reply(&pair.client, 300)?;
    }
    let metrics = faults::metrics_addr_of(&parallel.server)?;
    let alarm = node.memory_alarm()?;
    let since = Instant::now();
    sequential.await_blocked(false)?;
    impatient.await_blocked(false)?;
    parallel.await_blocked(true)?;
    stopped.await_blocked(true)?;
    interrupted.await_blocked(true)?;

    // The blocked server is not ready, and says why.
    let readyz = testkit::http::get(&metrics, "/readyz")?;
    assert_eq!(readyz.status, 503, "{readyz:?}");
    assert!(
        readyz.body.contains("blocked by a broker alarm"),
        "{readyz:?}"
    );
    let scrape = testkit::http::get_ok(&metrics, "/metrics")?;
    let gauge = testkit::http::sample(&scrape, "fib_server_connection_blocked");
    assert_eq!(gauge, Some(1.0), "{scrape}");

    // Ctrl-C while blocked: the replies cannot come, so the outstanding are
    // given up after --timeout and the connection is cut, not closed (a
    // close would wait for the alarm): exit 130 with the summary, at once.
    let Pair {
        scenario: interrupted_scenario,
        client: mut interrupted_client,
        server: mut interrupted_server,
        ..
    } = interrupted;
    let asked = Instant::now();
    interrupted_client.signal("INT")?;
    let status = interrupted_client.wait(WAIT)?;
    let took = asked.elapsed();
    assert_eq!(
        status.code(),
        Some(130),
        "{:?}",
        interrupted_client.stderr()
    );
    assert!(
        took < Duration::from_secs(8),
        "{interrupted_scenario}: took {took:?}"
    );
    let json = testkit::json_summary(&interrupted_client)?;
    assert_eq!(json["ended"], "interrupted", "{json}");
    assert_cut_once(&interrupted_scenario, &interrupted_client);
    assert_eq!(json["blocks"], 1, "{json}");
    eprintln!(
        "{}: exit 130 {:.1} s after SIGINT, sent {}, answered {}, unanswered {}, resends {}",
        interrupted_scenario,
        took.as_secs_f64(),
        json["sent"],
        json["count"],
        json["unanswered"],
        json["resends"]
    );
    interrupted_server.signal("TERM")?;

    // A graceful stop does not wait for the alarm: the connection is cut,
    // the request in hand goes back to the queue, and a new server (started
    // during the alarm) answers it once the alarm is gone.
    let Pair {
        scenario: stop_scenario,
        scratch: stop_scratch,
        server: mut blocked_server,
        client: mut stop_client,
    } = stopped;
    let asked = Instant::now();
    blocked_server.signal("TERM")?;
    let status = blocked_server.wait(WAIT)?;
    let took = asked.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "{stop_scenario}: {:?}",
        blocked_server.stderr()
    );
    assert!(
        took < Duration::from_secs(5),
        "{stop_scenario}: took {took:?}"
    );
    assert!(
        blocked_server
            .stderr()
            .iter()
            .any(|l| l.contains("stopping without the broker's last answers")),
        "{stop_scenario}: {:?}",
        blocked_server.stderr()
    );
    assert_cut_once(&stop_scenario, &blocked_server);
    let mut next_server = start_server(node.url(), &stop_scratch, &[])?;

    // Longer than --max-blocked 5: exit 3, naming the alarm.
    let status = impatient.client.wait(WAIT)?;
    let stderr = impatient.client.stderr();
    assert_eq!(status.code(), Some(3), "{stderr:?}");
    let error = stderr
        .iter()
        .find(|l| l.starts_with("error:"))
        .context("no error line")?;
    assert!(
        error.contains("--max-blocked") && error.contains("low on memory"),
        "{error}"
    );
    // The summary of what was done is printed all the same.
    let json = testkit::json_summary(&impatient.client)?;
    assert_eq!(json["ended"], "blocked", "{json}");
    let (blocks, blocked_ms) = blocked_figures(&impatient.client)?;
    assert_eq!(blocks, 1, "{json}");
    assert!(blocked_ms >= 5_000.0, "{json}");
    eprintln!(
        "{}: exit 3 after {:.1} s blocked ({blocks} blocks in the summary): {error}",
        impatient.scenario,
        blocked_ms / 1e3
    );
    impatient.server.signal("TERM")?;

    hold_until(since, MEMORY_ALARM);
    alarm.lift()?;
    // Ready again once the block lifts, and the time blocked counted.
    testkit::http::wait_for_status(&metrics, "/readyz", 200, WAIT)?;
    let scrape = testkit::http::get_ok(&metrics, "/metrics")?;
    let blocked_seconds =
        testkit::http::sample(&scrape, "fib_server_connection_blocked_seconds_total");
    assert!(blocked_seconds.is_some_and(|s| s >= 20.0), "{scrape}");
    assert_eq!(
        testkit::http::sample(&scrape, "fib_server_connection_blocked"),
        Some(0.0)
    );
    sequential.assert_through(node, MEMORY_ALARM)?;
    parallel.assert_through(node, MEMORY_ALARM)?;

    let status = stop_client.wait(Duration::from_secs(120))?;
    assert_eq!(
        status.code(),
        Some(0),
        "{stop_scenario}: {:?}",
        stop_client.stderr()
    );
    let figures = Figures::of(&stop_client)?;
    assert_all_answered(&stop_scenario, &figures, &stop_client)?;
    assert_eq!(figures.resends, 0, "{stop_scenario}: {figures:?}");
    eprintln!(
        "{}, server exit 0 {:.1} s after SIGTERM",
        figures.line(&stop_scenario, 0),
        took.as_secs_f64()
    );
    next_server.signal("TERM")?;
    assert_eq!(next_server.wait(WAIT)?.code(), Some(0));
    assert_eq!(impatient.server.wait(WAIT)?.code(), Some(0));
    assert_eq!(interrupted_server.wait(WAIT)?.code(), Some(0));
    Ok(())
}

/// A disk alarm, sequential and 16 in flight at once.
fn disk_alarm(node: &Node) -> Result<()> {
    let length = DISK_ALARM + Duration::from_secs(15);
    let sequential = Pair::start(node, "disk alarm 15 s, sequential", length, &[])?;
    let parallel = Pair::start(
        node,
        "disk alarm 15 s, --inflight 16",
        length,
        &["--inflight", "16"],
    )?;
    for pair in [&sequential, &parallel] {
        wait_for_reply(&pair.client, 300)?;
    }
    let alarm = node.disk_alarm()?;
    let since = Instant::now();
    sequential.await_blocked(false)?;
    parallel.await_blocked(true)?;
    hold_until(since, DISK_ALARM);
    alarm.lift()?;
    sequential.assert_through(node, DISK_ALARM)?;
    parallel.assert_through(node, DISK_ALARM)?;
    Ok(())
}

/// The node SIGSTOPped for 30 s mid-run, then SIGCONTed: heartbeats find
/// the connections dead, both programs reconnect, nothing is lost.
fn hung_broker(node: &Node) -> Result<()> {
    let scenario = "broker hung (SIGSTOP) 30 s, sequential";
    let count = 2000u64;
    let scratch = Scratch::new("hung");
    let mut server = start_server(node.url(), &scratch, &[])?;
    let mut client = start_client(node.url(), &scratch, &["--count", &count.to_string()])?;
    wait_for_reply(&client, 300)?;
    node.pause()?;
    let since = Instant::now();
    hold_until(since, HUNG);
    node.resume()?;
    let status = client.wait(Duration::from_secs(120))?;
    assert_eq!(status.code(), Some(0), "{scenario}: {:?}", client.stderr());
    let figures = Figures::of(&client)?;
    assert_eq!(
        (figures.count, figures.ok, figures.failures),
        (count, count, 0),
        "{scenario}: {figures:?}"
    );
    // What a user sees: the client's request in flight times out and is
    // resent (retry 1), heartbeats then find the connection dead (two
    // missed, 20-40 s at the default 10 s, less once a resend is stuck),
    // and the reconnection succeeds once the node runs again; the request
    // is resent on the new connection.
    assert_eq!(figures.reconnects, 1, "{scenario}: {figures:?}");
    assert!(
        (1..=2).contains(&figures.resends),
        "{scenario}: {figures:?}"
    );
    let lost = client
        .stderr()
        .iter()
        .any(|l| l.contains("connection lost"));
    assert!(lost, "{scenario}: {:?}", client.stderr());
    server.wait_for_line("reconnected to", WAIT)?;
    let depth = depth(node, &scratch)?;
    assert_eq!(depth, 0, "{scenario}");
    eprintln!("{}", figures.line(scenario, depth));
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0));
    Ok(())
}
