//! Every way a timed run ends once it has started, against the real broker:
//! the summary of what was done is printed (the JSON object on stdout with
//! `--json`) and every `--export-*` written, saying why it ended, whatever
//! the exit code. (Exit 6 and 130 are in latency.rs, beside the gate and
//! Ctrl-C.)

use anyhow::{Context, Result};
use serde_json::Value;
use testkit::{json_summary, InProcessServer, Peer, Proxy, Scratch, Spawned, TempDir, WAIT};

/// What a run wrote besides its stdout.
struct Written {
    document: Value,
    csv: Vec<Vec<String>>,
    markdown: String,
}

/// The export flags for files in `dir`.
fn export_args(dir: &TempDir) -> Vec<String> {
    vec![
        "--export-json".into(),
        dir.file("run.json"),
        "--export-csv".into(),
        dir.file("run.csv"),
        "--export-markdown".into(),
        dir.file("run.md"),
    ]
}

fn written(dir: &TempDir) -> Result<Written> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.file(name)).with_context(|| format!("reading {name}"))
    };
    let csv = read("run.csv")?
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    Ok(Written {
        document: serde_json::from_str(&read("run.json")?)?,
        csv,
        markdown: read("run.md")?,
    })
}

fn count(summary: &Value, name: &str) -> Result<u64> {
    summary[name]
        .as_u64()
        .with_context(|| format!("no {name} in {summary}"))
}

/// The summary's counts agree with themselves and with the CSV rows.
fn consistent(summary: &Value, written: &Written) -> Result<()> {
    assert_eq!(
        count(summary, "sent")?,
        count(summary, "count")? + count(summary, "unanswered")?,
        "{summary}"
    );
    assert_eq!(written.document["summary"], *summary);
    let rows_with = |outcome: &str| written.csv.iter().filter(|r| r[6] == outcome).count() as u64;
    assert_eq!(rows_with("correct"), count(summary, "ok")?);
    assert_eq!(rows_with("unanswered"), count(summary, "unanswered")?);
    assert_eq!(
        written.csv.len() as u64,
        count(summary, "sent")?,
        "a row per request sent"
    );
    assert!(written.markdown.starts_with("| view | requests |"));
    Ok(())
}

fn start(scratch: &Scratch, args: &[&str], dir: &TempDir) -> Result<Spawned> {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(export_args(dir));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    scratch.spawn(env!("CARGO_BIN_EXE_fib-client"), &all)
}

#[test]
fn wrong_replies_exit_1_with_the_summary_and_exports() -> Result<()> {
    let scratch = Scratch::new("end1");
    let mut settings = scratch.server_settings();
    settings.max_n = 10;
    let _server = InProcessServer::start(settings)?;
    let dir = TempDir::new("end1")?;
    let mut run = start(&scratch, &["--start", "5", "--count", "10", "--json"], &dir)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(1), "{:?}", run.stderr());
    let summary = json_summary(&run)?;
    assert_eq!(summary["ended"].as_str(), Some("completed"), "{summary}");
    assert_eq!(
        (count(&summary, "ok")?, count(&summary, "failures")?),
        (6, 4)
    );
    let written = written(&dir)?;
    consistent(&summary, &written)?;
    assert_eq!(written.csv.iter().filter(|r| r[6] == "refused").count(), 4);
    Ok(())
}

#[test]
fn no_reply_exit_5_prints_what_was_done() -> Result<()> {
    // A queue with nothing consuming it: the first request is never answered.
    let scratch = Scratch::new("end5");
    let peer = Peer::connect()?;
    peer.declare(&scratch.topology)?;
    let dir = TempDir::new("end5")?;
    let args = [
        "--count",
        "3",
        "--timeout",
        "0.3",
        "--retries",
        "1",
        "--json",
    ];
    let mut run = start(&scratch, &args, &dir)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(5), "{:?}", run.stderr());
    let summary = json_summary(&run)?;
    assert_eq!(summary["ended"].as_str(), Some("no-reply"), "{summary}");
    assert_eq!(
        (count(&summary, "sent")?, count(&summary, "count")?),
        (1, 0)
    );
    assert_eq!(count(&summary, "unanswered")?, 1);
    assert_eq!(count(&summary, "resends")?, 1);
    consistent(&summary, &written(&dir)?)?;
    let stderr = run.stderr().join("\n");
    assert!(
        stderr.contains("error: no reply to the request for n=0"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_duration_run_that_ends_with_requests_unanswered_exits_5() -> Result<()> {
    // Nothing consumes the queue: the one request sent (each --timeout 1 s
    // outlives the 0.5 s window) is awaited after the end, then given up. A
    // run that got no reply must not pass, in an open loop or a closed one.
    let scratch = Scratch::new("end5d");
    let peer = Peer::connect()?;
    peer.declare(&scratch.topology)?;
    let open_loop = ["--rate", "50", "--duration", "0.5", "--timeout", "1"];
    let closed_loop = ["--duration", "0.5", "--timeout", "1"];
    for (args, unsent) in [(&open_loop[..], 24), (&closed_loop[..], 0)] {
        let dir = TempDir::new("end5d")?;
        let args = [args, &["--fixed-n", "3", "--json"]].concat();
        let mut run = start(&scratch, &args, &dir)?;
        assert_eq!(
            run.wait(WAIT)?.code(),
            Some(5),
            "{args:?}: {:?}",
            run.stderr()
        );
        let summary = json_summary(&run)?;
        assert_eq!(summary["ended"].as_str(), Some("no-reply"), "{summary}");
        assert_eq!(
            (count(&summary, "sent")?, count(&summary, "count")?),
            (1, 0),
            "{summary}"
        );
        assert_eq!(count(&summary, "unanswered")?, 1, "{summary}");
        assert_eq!(count(&summary, "unsent")?, unsent, "{summary}");
        consistent(&summary, &written(&dir)?)?;
        let stderr = run.stderr().join("\n");
        assert!(
            stderr.contains("error: 1 of 1 requests sent got no reply within 1.0 s"),
            "{stderr}"
        );
    }
    Ok(())
}

#[test]
fn a_broker_refusal_mid_run_exits_3_with_the_summary_in_text() -> Result<()> {
    // The exchange is deleted under the running client: its next publish
    // closes the channel (404), which reconnecting would not cure.
    let scratch = Scratch::new("end3b");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let dir = TempDir::new("end3b")?;
    let args = ["--rate", "100", "--count", "100000", "--interval", "0.2"];
    let mut run = start(&scratch, &args, &dir)?;
    // An interval line with replies in it: the run is under way.
    run.wait_for_line(" p50 ", WAIT)?;
    Peer::connect()?.delete_exchange(&scratch.topology.exchange)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(3), "{:?}", run.stderr());
    let stdout = run.stdout().join("\n");
    assert!(stdout.contains(" round trips: "), "{stdout}");
    assert!(stdout.contains("ended early (broker-error): "), "{stdout}");
    let written = written(&dir)?;
    let summary = &written.document["summary"];
    assert_eq!(summary["ended"].as_str(), Some("broker-error"), "{summary}");
    assert!(count(summary, "count")? > 0);
    consistent(summary, &written)?;
    Ok(())
}

#[test]
fn a_broker_gone_for_good_exits_3_having_given_up_reconnecting() -> Result<()> {
    let scratch = Scratch::new("end3g");
    let _server = InProcessServer::start(scratch.server_settings())?;
    // The broker, through a proxy the test can cut.
    let proxy = Proxy::to_broker()?;
    let dir = TempDir::new("end3g")?;
    let relayed = proxy.url_for(&testkit::broker_url());
    let mut args: Vec<String> = [
        "--url",
        &relayed,
        "--exchange",
        &scratch.topology.exchange,
        "--rate",
        "100",
        "--count",
        "100000",
        "--interval",
        "0.2",
        "--timeout",
        "0.5",
        "--retries",
        "1",
        "--json",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(export_args(&dir));
    let mut run =
        Spawned::start(std::process::Command::new(env!("CARGO_BIN_EXE_fib-client")).args(&args))?;
    // An interval line with replies in it: the run is under way.
    run.wait_for_line(" p50 ", WAIT)?;
    proxy.refuse();
    assert_eq!(run.wait(WAIT)?.code(), Some(3), "{:?}", run.stderr());
    let summary = json_summary(&run)?;
    assert_eq!(
        summary["ended"].as_str(),
        Some("gave-up-reconnecting"),
        "{summary}"
    );
    assert!(count(&summary, "count")? > 0);
    consistent(&summary, &written(&dir)?)?;
    let stderr = run.stderr().join("\n");
    assert!(stderr.contains("gave up reconnecting"), "{stderr}");
    Ok(())
}

#[test]
fn an_unroutable_request_exits_4_with_the_summary() -> Result<()> {
    // The client declares the exchange itself; nothing is bound to it.
    let scratch = Scratch::new("end4");
    let dir = TempDir::new("end4")?;
    let args = ["--count", "3", "--timeout", "60", "--json"];
    let mut run = start(&scratch, &args, &dir)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(4), "{:?}", run.stderr());
    let summary = json_summary(&run)?;
    assert_eq!(summary["ended"].as_str(), Some("unroutable"), "{summary}");
    assert_eq!(
        (count(&summary, "sent")?, count(&summary, "count")?),
        (1, 0)
    );
    consistent(&summary, &written(&dir)?)?;
    Ok(())
}
