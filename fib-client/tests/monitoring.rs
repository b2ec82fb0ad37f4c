//! fib-client --metrics: a run watched as it goes, its scrape accepted by
//! promtool, its figures equal to the summary's at the end.

use anyhow::Result;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::http::{self, sample};
use testkit::{InProcessServer, Scratch, Spawned, WAIT};

#[test]
fn a_rated_run_shows_its_progress_and_views_on_the_metrics_endpoint() -> Result<()> {
    let scratch = Scratch::new("clientmetrics");
    let _server = InProcessServer::start(scratch.server_settings())?;
    // 400 requests at 100/s: four seconds to watch.
    let mut client = scratch.spawn(
        env!("CARGO_BIN_EXE_fib-client"),
        &[
            "--count",
            "400",
            "--rate",
            "100",
            "--inflight",
            "4",
            "--json",
            "--metrics",
            "127.0.0.1:0",
        ],
    )?;
    let line = client.wait_for_line("metrics at", WAIT)?;
    let addr = http::metrics_addr(&line)?;
    // Mid-run: something sent and answered, not yet everything.
    let deadline = Instant::now() + WAIT;
    let scrape = loop {
        let scrape = http::get_ok(&addr, "/metrics")?;
        let correct = "fib_client_requests_answered_total{outcome=\"correct\"}";
        if sample(&scrape, correct).is_some_and(|v| v >= 50.0) {
            break scrape;
        }
        anyhow::ensure!(Instant::now() < deadline, "no progress: {scrape}");
        std::thread::sleep(Duration::from_millis(50));
    };
    testkit::prometheus::check_metrics(&scrape)?;
    let sent = sample(&scrape, "fib_client_requests_sent_total").unwrap_or(0.0);
    let correct = sample(
        &scrape,
        "fib_client_requests_answered_total{outcome=\"correct\"}",
    )
    .unwrap_or(0.0);
    assert!(
        sent >= correct && sent < 400.0,
        "sent {sent}, correct {correct}"
    );
    // One latency histogram per view, each counting every measured answer.
    for view in ["corrected", "as_sent"] {
        let count = format!("fib_client_latency_seconds_count{{view=\"{view}\"}}");
        let got = sample(&scrape, &count);
        assert!(got.is_some_and(|c| c >= correct), "{count}: {got:?}");
    }
    assert_eq!(
        sample(&scrape, "fib_client_rate_asked_requests_per_second"),
        Some(100.0)
    );
    assert_eq!(sample(&scrape, "fib_client_ready"), Some(1.0));
    assert_eq!(http::get_ok(&addr, "/readyz")?, "ready\n");
    let in_flight = sample(&scrape, "fib_client_requests_in_flight").unwrap_or(-1.0);
    assert!((0.0..=4.0).contains(&in_flight), "{in_flight}");
    let status = client.wait(WAIT)?;
    assert_eq!(status.code(), Some(0), "{:?}", client.stderr());
    let summary = testkit::json_summary(&client)?;
    assert_eq!(summary["ok"], 400);
    Ok(())
}

#[test]
fn metrics_need_a_timed_run_and_a_free_address() -> Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let taken = taken.local_addr()?.to_string();
    for (args, named) in [
        (vec!["--metrics", taken.as_str()], taken.as_str()),
        (vec!["--n", "10", "--metrics", "127.0.0.1:0"], "--n"),
    ] {
        let mut client = Spawned::start(
            Command::new(env!("CARGO_BIN_EXE_fib-client"))
                .args(["--url", "amqp://127.0.0.1:1/"])
                .args(&args),
        )?;
        let status = client.wait(WAIT)?;
        let stderr = client.stderr().join("\n");
        assert_eq!(status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
    }
    Ok(())
}
