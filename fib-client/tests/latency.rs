//! The latency tool against the real broker: open loop, run length,
//! warm-up, fixed n, every export, Ctrl-C and the baseline gate. Each test
//! uses its own exchange and queue. Nothing here asserts a speed: figures
//! are checked for shape and consistency, counts exactly.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::Path;
use testkit::{json_summary, InProcessServer, Scratch, Spawned, TempDir as Dir, WAIT};

fn client(scratch: &Scratch, args: &[&str]) -> Result<Spawned> {
    scratch.spawn(env!("CARGO_BIN_EXE_fib-client"), args)
}

fn number(value: &Value, path: &[&str]) -> Result<f64> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_f64)
        .with_context(|| format!("no number at {path:?} in {value}"))
}

fn ordered(latency: &Value) -> Result<()> {
    let names = ["min", "p50", "p90", "p99", "p99.9", "p99.99", "max"];
    let figures: Vec<f64> = names
        .iter()
        .map(|n| number(latency, &[n]))
        .collect::<Result<_>>()?;
    assert!(figures.windows(2).all(|w| w[0] <= w[1]), "{latency}");
    Ok(())
}

#[test]
fn open_loop_reports_both_views_and_the_rate() -> Result<()> {
    let scratch = Scratch::new("rate");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let args = [
        "--rate",
        "200",
        "--count",
        "100",
        "--inflight",
        "8",
        "--json",
    ];
    let mut run = client(&scratch, &args)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());
    let summary = json_summary(&run)?;
    assert_eq!(
        (summary["count"].as_u64(), summary["ok"].as_u64()),
        (Some(100), Some(100))
    );
    assert_eq!(summary["sent"].as_u64(), Some(100));
    assert_eq!(number(&summary, &["rate", "asked"])?, 200.0);
    assert!(number(&summary, &["rate", "achieved"])? > 0.0);
    ordered(&summary["latency_us"])?;
    ordered(&summary["latency_as_sent_us"])?;
    // Due never comes after the first publish: corrected >= as sent.
    for figure in ["mean", "p50", "max"] {
        assert!(
            number(&summary, &["latency_us", figure])?
                >= number(&summary, &["latency_as_sent_us", figure])?,
            "{figure}: {summary}"
        );
    }
    Ok(())
}

#[test]
fn duration_sends_what_the_schedule_holds() -> Result<()> {
    // At 100/s for 1 s, requests are due at 0, 10, ..., 990 ms: exactly 100,
    // each sent, or (on a machine too busy to keep 16 outstanding in time)
    // counted as never sent.
    let scratch = Scratch::new("duration");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let args = [
        "--rate",
        "100",
        "--duration",
        "1",
        "--inflight",
        "16",
        "--json",
    ];
    let mut run = client(&scratch, &args)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());
    let summary = json_summary(&run)?;
    let count = |name: &str| summary[name].as_u64().with_context(|| name.to_string());
    assert_eq!(count("sent")? + count("unsent")?, 100, "{summary}");
    assert_eq!(count("ok")?, count("sent")?, "{summary}");
    Ok(())
}

#[test]
fn warmup_is_sent_and_checked_but_not_counted() -> Result<()> {
    let scratch = Scratch::new("warmup");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let args = ["--count", "50", "--warmup", "20", "--verbose", "--json"];
    let mut run = client(&scratch, &args)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());
    let summary = json_summary(&run)?;
    assert_eq!(
        (summary["count"].as_u64(), summary["warmup"].as_u64()),
        (Some(50), Some(20))
    );
    let stderr = run.stderr();
    let answered: Vec<&String> = stderr.iter().filter(|l| l.starts_with("n=")).collect();
    assert_eq!(answered.len(), 70, "{stderr:?}");
    assert!(answered.iter().all(|l| l.contains(" ok")), "{answered:?}");
    assert_eq!(
        answered.iter().filter(|l| l.ends_with("(warm-up)")).count(),
        20
    );
    // The measured requests start the cycle again at n = 0.
    assert!(answered[20].starts_with("n=0 "), "{}", answered[20]);
    Ok(())
}

#[test]
fn fixed_n_asks_for_the_same_n_and_checks_every_reply() -> Result<()> {
    let scratch = Scratch::new("fixedn");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let args = [
        "--fixed-n",
        "5000",
        "--count",
        "30",
        "--inflight",
        "4",
        "--verbose",
        "--json",
    ];
    let mut run = client(&scratch, &args)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());
    assert_eq!(json_summary(&run)?["ok"].as_u64(), Some(30));
    let stderr = run.stderr();
    let lines: Vec<&String> = stderr.iter().filter(|l| l.starts_with("n=")).collect();
    assert_eq!(lines.len(), 30);
    assert!(lines
        .iter()
        .all(|l| l.starts_with("n=5000 ") && l.contains("(1045 characters)")));
    Ok(())
}

#[test]
fn n_range_cycles_in_order() -> Result<()> {
    let scratch = Scratch::new("nrange");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let args = ["--n-range", "90..93", "--count", "7", "--verbose", "--json"];
    let mut run = client(&scratch, &args)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());
    let stderr = run.stderr();
    let ns: Vec<&str> = stderr
        .iter()
        .filter_map(|l| l.strip_prefix("n=")?.split(' ').next())
        .collect();
    assert_eq!(ns, ["90", "91", "92", "90", "91", "92", "90"]);
    Ok(())
}

fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
}

#[test]
fn every_export_writes_what_it_says() -> Result<()> {
    let scratch = Scratch::new("exports");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let dir = Dir::new("exports")?;
    let (json, csv, md, hgrm, svg) = (
        dir.file("run.json"),
        dir.file("run.csv"),
        dir.file("run.md"),
        dir.file("run.hgrm"),
        dir.file("run.svg"),
    );
    let args = [
        "--rate",
        "300",
        "--count",
        "120",
        "--inflight",
        "8",
        "--warmup",
        "10",
        "--export-json",
        &json,
        "--export-csv",
        &csv,
        "--export-markdown",
        &md,
        "--export-hgrm",
        &hgrm,
        "--export-svg",
        &svg,
    ];
    let mut run = client(&scratch, &args)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());

    // JSON: the summary and the parameters, the password masked.
    let document: Value = serde_json::from_str(&read(&json)?)?;
    let summary = &document["summary"];
    assert_eq!(summary["count"].as_u64(), Some(120));
    let parameters = &document["parameters"];
    assert_eq!(parameters["broker"]["product"].as_str(), Some("RabbitMQ"));
    assert!(parameters["broker"]["version"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));
    let url = parameters["url"].as_str().context("url")?;
    assert!(
        url.contains(":***@") && !url.contains("guest:guest"),
        "{url}"
    );
    assert_eq!(
        parameters["fib_rpc_version"].as_str(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(parameters["rate"].as_f64(), Some(300.0));
    assert_eq!(parameters["warmup"].as_u64(), Some(10));
    assert!(parameters["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(parameters["started_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let args: Vec<&str> = parameters["args"]
        .as_array()
        .context("args")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--export-csv") && !args.iter().any(|a| a.contains("guest:guest")));

    // CSV: a header and one row per measured request, with consistent times.
    let text = read(&csv)?;
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("n,sent_us,due_us,replied_us,latency_us,as_sent_us,outcome,resends")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 120);
    for row in &rows {
        let f = |i: usize| row[i].parse::<f64>().with_context(|| format!("{row:?}"));
        let (sent, due, replied, latency, as_sent) = (f(1)?, f(2)?, f(3)?, f(4)?, f(5)?);
        assert!(due <= sent && sent <= replied, "{row:?}");
        assert!((latency - (replied - due)).abs() < 0.2, "{row:?}");
        assert!((as_sent - (replied - sent)).abs() < 0.2, "{row:?}");
        assert_eq!((row[6], row[7]), ("correct", "0"));
    }
    // The measured requests start at n = 0 again after the warm-up.
    assert_eq!(rows.iter().filter(|r| r[0] == "0").count(), 1);

    // Markdown: a table with both views.
    let markdown = read(&md)?;
    assert!(markdown.starts_with("| view | requests |"), "{markdown}");
    assert!(markdown.contains("\n| corrected | 120 |") && markdown.contains("\n| as sent | 120 |"));

    // hgrm: HdrHistogram's text, ending at 100% with every request.
    let hgrm_text = read(&hgrm)?;
    assert!(hgrm_text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
    let last_row = hgrm_text
        .lines()
        .rev()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .context("no rows")?;
    let cells: Vec<&str> = last_row.split_whitespace().collect();
    assert_eq!(&cells[1..], ["1.000000000000", "120"], "{last_row}");
    let max_ms: f64 = cells[0].parse()?;
    let max_us = number(summary, &["latency_us", "max"])?;
    assert!(
        (max_ms * 1000.0 - max_us).abs() < 1.0,
        "{max_ms} ms vs {max_us} µs"
    );
    assert!(
        hgrm_text.contains("Total count    =          120]"),
        "{hgrm_text}"
    );

    // SVG: a document with a curve per view.
    let svg_text = read(&svg)?;
    assert!(svg_text.starts_with("<svg") && svg_text.trim_end().ends_with("</svg>"));
    assert!(svg_text.contains("corrected") && svg_text.contains("as sent"));
    assert!(Path::new(&svg).metadata()?.len() > 1000);
    Ok(())
}

#[test]
fn ctrl_c_stops_prints_what_was_done_and_exits_130() -> Result<()> {
    let scratch = Scratch::new("sigint");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let dir = Dir::new("sigint")?;
    let exported = dir.file("run.json");
    let args = [
        "--export-json",
        &exported,
        "--rate",
        "100",
        "--count",
        "1000000",
        "--inflight",
        "4",
        "--interval",
        "0.2",
        "--json",
    ];
    let mut run = client(&scratch, &args)?;
    // An interval line shows requests are being answered.
    run.wait_for_line(" requests ", WAIT)?;
    run.signal("INT")?;
    assert_eq!(run.wait(WAIT)?.code(), Some(130), "{:?}", run.stderr());
    let summary = json_summary(&run)?;
    assert_eq!(summary["interrupted"].as_bool(), Some(true));
    assert_eq!(summary["ended"].as_str(), Some("interrupted"));
    let document: Value = serde_json::from_str(&read(&exported)?)?;
    assert_eq!(document["summary"], summary, "the export says the same");
    let count = |name: &str| summary[name].as_u64().with_context(|| name.to_string());
    assert!(count("count")? > 0);
    assert_eq!(
        count("sent")?,
        count("count")? + count("unanswered")?,
        "{summary}"
    );
    assert_eq!(count("ok")?, count("count")?);
    assert!(count("sent")? < 1_000_000);
    let stderr = run.stderr().join("\n");
    assert!(
        stderr.contains("interrupted: sending nothing more"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn ctrl_c_summary_for_people() -> Result<()> {
    let scratch = Scratch::new("sigint2");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let args = ["--count", "1000000", "--interval", "0.2"];
    let mut run = client(&scratch, &args)?;
    run.wait_for_line(" requests ", WAIT)?;
    run.signal("INT")?;
    assert_eq!(run.wait(WAIT)?.code(), Some(130), "{:?}", run.stderr());
    let stdout = run.stdout().join("\n");
    assert!(
        stdout.contains(" round trips: ") && stdout.contains("interrupted: "),
        "{stdout}"
    );
    assert!(stdout.contains("round trip "), "{stdout}");
    Ok(())
}

#[test]
fn the_gate_fails_with_exit_6_on_a_regression_and_passes_a_fair_baseline() -> Result<()> {
    let scratch = Scratch::new("gate");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let dir = Dir::new("gate")?;
    let fair = dir.file("fair.json");
    let mut first = client(&scratch, &["--count", "200", "--export-json", &fair])?;
    assert_eq!(first.wait(WAIT)?.code(), Some(0), "{:?}", first.stderr());

    // Doctored: the baseline claims a thousand times faster.
    let mut document: Value = serde_json::from_str(&read(&fair)?)?;
    for figure in ["mean", "p99"] {
        let latency = &mut document["summary"]["latency_us"][figure];
        *latency = Value::from(latency.as_f64().context("figure")? / 1000.0);
    }
    let doctored = dir.file("doctored.json");
    std::fs::write(&doctored, serde_json::to_string(&document)?)?;
    let regressed = dir.file("regressed.json");
    let args = [
        "--count",
        "200",
        "--baseline",
        &doctored,
        "--max-regression",
        "10",
        "--export-json",
        &regressed,
    ];
    let mut run = client(&scratch, &args)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(6), "{:?}", run.stderr());
    let document: Value = serde_json::from_str(&read(&regressed)?)?;
    let summary = &document["summary"];
    assert_eq!(summary["ended"].as_str(), Some("completed"), "{summary}");
    assert_eq!(summary["regression"]["failed"].as_bool(), Some(true));
    assert_eq!(summary["count"].as_u64(), Some(200));
    let stdout = run.stdout().join("\n");
    assert!(
        stdout.contains("REGRESSION, worse by more than 10%"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("vs baseline {doctored}: mean +")),
        "{stdout}"
    );

    // Fair: the first run itself, with room for a busy machine.
    let args = [
        "--count",
        "200",
        "--baseline",
        &fair,
        "--max-regression",
        "400",
        "--json",
    ];
    let mut run = client(&scratch, &args)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());
    let regression = &json_summary(&run)?["regression"];
    assert_eq!(regression["failed"].as_bool(), Some(false), "{regression}");
    assert!(regression["mean_change_pct"].as_f64().is_some());
    Ok(())
}

#[test]
fn bad_new_flags_exit_2() -> Result<()> {
    let scratch = Scratch::new("badflags");
    for args in [
        &["--n-range", "10..5"][..],
        &["--rate", "0"],
        &["--duration", "0"],
        &["--fixed-n", "20000000"],
        &[
            "--baseline",
            "/nonexistent/base.json",
            "--max-regression",
            "5",
        ],
        &["--baseline", "/nonexistent/base.json"],
        &["--count", "5", "--duration", "2"],
        &["--export-csv", "/nonexistent/dir/run.csv"],
        &["--export-svg", "/nonexistent/dir/run.svg"],
    ] {
        let mut run = client(&scratch, args)?;
        let code = run.wait(WAIT)?.code();
        let stderr = run.stderr().join("\n");
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    Ok(())
}

/// A server that answers each request at once from replies computed before
/// it started, until `requests` are answered.
fn precomputed_server(
    scratch: &Scratch,
    replies: std::collections::HashMap<u64, String>,
    requests: usize,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    use amiquip::{ConsumerMessage, ConsumerOptions};
    let peer = testkit::Peer::connect()?;
    peer.declare(&scratch.topology)?;
    let queue = scratch.topology.queue.clone();
    Ok(std::thread::spawn(move || {
        let options = ConsumerOptions {
            no_ack: true,
            ..ConsumerOptions::default()
        };
        let consumer = peer.channel().basic_consume(queue, options)?;
        for _ in 0..requests {
            let delivery = match consumer.receiver().recv_timeout(WAIT)? {
                ConsumerMessage::Delivery(delivery) => delivery,
                other => anyhow::bail!("consumer ended: {other:?}"),
            };
            let reply_to = delivery.properties.reply_to().clone().context("reply_to")?;
            let id = delivery.properties.correlation_id().clone();
            let n: u64 = std::str::from_utf8(&delivery.body)?.parse()?;
            let digits = replies.get(&n).context("an n it has no reply for")?;
            let properties = common::protocol::reply_properties(id.as_deref(), None);
            peer.publish("", &reply_to, digits.as_bytes(), properties)?;
        }
        Ok(())
    }))
}

#[test]
fn a_server_answering_at_once_is_measured_without_the_clients_own_work_at_n_10_6() -> Result<()> {
    // The client computes F(999998) and F(999999) to check the replies, and
    // its cycle of two wraps twice after a warm-up request. None of that
    // may sit inside a round trip: each must stay far below what computing
    // F(10^6) costs on this machine, measured here, now.
    let scratch = Scratch::new("instant");
    let computing = std::time::Instant::now();
    let first = fib_math::fibonacci_decimal(999_998);
    let cost = computing.elapsed();
    let second = fib_math::fibonacci_decimal(999_999);
    let replies = std::collections::HashMap::from([(999_998, first), (999_999, second)]);
    let server = precomputed_server(&scratch, replies, 5)?;
    let args = [
        "--n-range",
        "999998..1000000",
        "--count",
        "4",
        "--warmup",
        "1",
        "--json",
    ];
    let mut run = client(&scratch, &args)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());
    server
        .join()
        .map_err(|_| anyhow::anyhow!("server panicked"))??;
    let summary = json_summary(&run)?;
    assert_eq!(summary["ok"].as_u64(), Some(4), "{summary}");
    // Three of the four round trips used to hold twice `cost`; the median
    // is now far below it, and even the worst is below it.
    let median_us = number(&summary, &["latency_us", "p50"])?;
    let worst_us = number(&summary, &["latency_us", "max"])?;
    let cost_us = cost.as_secs_f64() * 1e6;
    assert!(
        median_us * 4.0 < cost_us && worst_us < cost_us,
        "round trips {median_us} µs (median), {worst_us} µs (worst); F(999998) took \
         {cost_us:.0} µs to compute: {summary}"
    );
    Ok(())
}

/// The rows of an `--export-csv` file, split.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn an_overloaded_duration_run_ends_with_its_duration_and_counts_the_unsent() -> Result<()> {
    // 100,000 requests a second, one at a time: far more than any broker
    // answers, so most requests due in the second are never sent. The run
    // stops sending at 1 s; its last reply comes one round trip later.
    let scratch = Scratch::new("overload");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let dir = Dir::new("overload")?;
    let (json, csv, md, hgrm) = (
        dir.file("run.json"),
        dir.file("run.csv"),
        dir.file("run.md"),
        dir.file("run.hgrm"),
    );
    let args = [
        "--rate",
        "100000",
        "--duration",
        "1",
        "--inflight",
        "1",
        "--fixed-n",
        "1000",
        "--json",
        "--export-json",
        &json,
        "--export-csv",
        &csv,
        "--export-markdown",
        &md,
        "--export-hgrm",
        &hgrm,
    ];
    let started = std::time::Instant::now();
    let mut run = client(&scratch, &args)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());
    let wall = started.elapsed();
    let summary = json_summary(&run)?;
    let count = |name: &str| summary[name].as_u64().with_context(|| name.to_string());
    assert_eq!(count("sent")? + count("unsent")?, 100_000, "{summary}");
    assert!(count("unsent")? > 0, "{summary}");
    assert_eq!(count("sent")?, count("count")?, "{summary}");
    let total_ms = number(&summary, &["total_ms"])?;
    let last_round_trip_ms = number(&summary, &["latency_as_sent_us", "max"])? / 1e3;
    assert!(
        total_ms <= 1000.0 + last_round_trip_ms,
        "{total_ms} ms: {summary}"
    );
    let achieved = number(&summary, &["rate", "achieved"])?;
    let sent = count("sent")? as f64;
    assert!(
        (achieved - sent).abs() < 1.0,
        "{achieved}/s over 1 s for {sent} sent"
    );
    // Connecting and the rest of the process take little beside it.
    assert!(wall < std::time::Duration::from_secs(10), "{wall:?}");
    // Every export says it too.
    let document: Value = serde_json::from_str(&read(&json)?)?;
    assert_eq!(document["summary"]["unsent"], summary["unsent"]);
    // The CSV has a row for each request sent and none for the unsent
    // (tens of thousands here, billions in a long overload).
    let rows = csv_rows(&read(&csv)?);
    assert_eq!(rows.len() as u64, count("sent")?, "{summary}");
    assert!(rows.iter().all(|r| r[6] == "correct" && !r[1].is_empty()));
    let unsent = count("unsent")?;
    assert!(read(&md)?.contains(&format!("{unsent} requests were due but never sent")));
    assert!(read(&hgrm)?.contains(&format!("#[Unsent  = {unsent:>12}")));
    Ok(())
}

#[test]
fn ctrl_c_in_a_stall_counts_the_unsent_and_ends_total_at_the_last_reply() -> Result<()> {
    // The server answers 30 requests, then nothing: with two outstanding,
    // the requests due from then on are held back until Ctrl-C.
    let scratch = Scratch::new("stall");
    let replies = std::collections::HashMap::from([(5, "5".to_string())]);
    let server = precomputed_server(&scratch, replies, 30)?;
    let dir = Dir::new("stall")?;
    let csv = dir.file("run.csv");
    let args = [
        "--rate",
        "100",
        "--count",
        "100000",
        "--fixed-n",
        "5",
        "--inflight",
        "2",
        "--interval",
        "0.2",
        "--timeout",
        "0.5",
        "--json",
        "--export-csv",
        &csv,
    ];
    let mut run = client(&scratch, &args)?;
    server
        .join()
        .map_err(|_| anyhow::anyhow!("server panicked"))??;
    run.wait_for_line("no replies in this interval", WAIT)?;
    run.signal("INT")?;
    assert_eq!(run.wait(WAIT)?.code(), Some(130), "{:?}", run.stderr());
    let summary = json_summary(&run)?;
    let count = |name: &str| summary[name].as_u64().with_context(|| name.to_string());
    assert_eq!(
        (count("count")?, count("unanswered")?),
        (30, 2),
        "{summary}"
    );
    assert!(
        count("unsent")? >= 20,
        "a 0.2 s interval at 100/s: {summary}"
    );
    let rows = csv_rows(&read(&csv)?);
    assert_eq!(rows.len() as u64, count("sent")?, "no row for the unsent");
    // total_ms runs to the last reply, not to when the two were given up.
    let last_reply_us = rows
        .iter()
        .filter(|r| r[6] == "correct")
        .filter_map(|r| r[3].parse::<f64>().ok())
        .fold(0.0, f64::max);
    let total_ms = number(&summary, &["total_ms"])?;
    assert!(
        (total_ms * 1e3 - last_reply_us).abs() < 1.0,
        "total {total_ms} ms, last reply at {last_reply_us} µs"
    );
    // The send window runs to Ctrl-C, past the stall: the achieved rate
    // shows the stall (it used to end at the last send, showing 100/s).
    let achieved = number(&summary, &["rate", "achieved"])?;
    assert!(achieved < 90.0, "{summary}");
    Ok(())
}
