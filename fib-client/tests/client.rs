//! fib-client against the real broker: a real run, every way a run can end,
//! and what it leaves behind. Each test uses its own exchange and queue.

use amiquip::{ConsumerMessage, ConsumerOptions};
use anyhow::{Context, Result};
use common::protocol::reply_properties;
use testkit::{json_summary, InProcessServer, Peer, Scratch, Spawned, WAIT};

fn client(scratch: &Scratch, args: &[&str]) -> Result<Spawned> {
    scratch.spawn(env!("CARGO_BIN_EXE_fib-client"), args)
}

#[test]
fn a_run_of_500_is_all_correct() -> Result<()> {
    let scratch = Scratch::new("run500");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let mut run = client(&scratch, &["--count", "500", "--json"])?;
    assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());
    let summary = json_summary(&run)?;
    assert_eq!(summary["count"], 500);
    assert_eq!(summary["ok"], 500);
    assert_eq!(summary["failures"], 0);
    assert!(summary["total_ms"].as_f64().context("total_ms")? > 0.0);
    assert!(summary["requests_per_second"].as_f64().context("rps")? > 0.0);
    let latency = &summary["latency_us"];
    let field = |name: &str| latency[name].as_f64().with_context(|| name.to_string());
    let ordered = [
        field("min")?,
        field("p50")?,
        field("p90")?,
        field("p99")?,
        field("max")?,
    ];
    assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{latency}");
    assert!(field("min")? <= field("mean")? && field("mean")? <= field("max")?);
    Ok(())
}

#[test]
fn single_call_prints_f_n_alone() -> Result<()> {
    let scratch = Scratch::new("single");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let mut run = client(&scratch, &["--n", "100"])?;
    assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());
    assert_eq!(run.stdout(), vec!["354224848179261915075".to_string()]);
    Ok(())
}

#[test]
fn error_replies_count_as_failures_and_exit_1() -> Result<()> {
    let scratch = Scratch::new("toolarge");
    let mut settings = scratch.server_settings();
    settings.max_n = 10;
    let _server = InProcessServer::start(settings)?;
    let mut run = client(&scratch, &["--start", "5", "--count", "10", "--json"])?;
    assert_eq!(run.wait(WAIT)?.code(), Some(1), "{:?}", run.stderr());
    let summary = json_summary(&run)?;
    assert_eq!(
        (summary["ok"].as_u64(), summary["failures"].as_u64()),
        (Some(6), Some(4))
    );
    Ok(())
}

#[test]
fn unroutable_exits_4_at_once() -> Result<()> {
    // The client declares the exchange itself; nothing is bound to it. The
    // timeout is long so that exit 4 (not 5) shows the return was noticed.
    let scratch = Scratch::new("unroutable");
    let mut run = client(&scratch, &["--count", "3", "--timeout", "60"])?;
    assert_eq!(run.wait(WAIT)?.code(), Some(4), "{:?}", run.stderr());
    let stderr = run.stderr().join("\n");
    assert!(stderr.contains("no queue is bound"), "{stderr}");
    assert!(
        stderr.contains("fib-server is probably not running"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn no_server_consuming_exits_5_after_the_timeout_and_retries() -> Result<()> {
    let scratch = Scratch::new("timeout");
    let mut peer = Peer::connect()?;
    peer.declare(&scratch.topology)?;
    let args = ["--count", "3", "--timeout", "0.5", "--retries", "2"];
    let mut run = client(&scratch, &args)?;
    assert_eq!(run.wait(WAIT)?.code(), Some(5), "{:?}", run.stderr());
    let stderr = run.stderr().join("\n");
    assert!(
        stderr.contains("no reply to the request for n=0 within 0.5 s, sent 3 times"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("sending it again").count(), 2, "{stderr}");
    assert_eq!(
        peer.queue_depth(&scratch.topology.queue)?,
        Some(3),
        "1 send + 2 resends"
    );
    Ok(())
}

/// A server that, before each reply, sends a stale reply (unknown
/// correlation id, wrong value), then answers request n with `answer(n)`.
fn rogue_server(
    scratch: &Scratch,
    requests: usize,
    answer: fn(u64) -> Vec<u8>,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    let peer = Peer::connect()?;
    peer.declare(&scratch.topology)?;
    let queue = scratch.topology.queue.clone();
    Ok(std::thread::spawn(move || {
        let consumer = peer
            .channel()
            .basic_consume(queue, ConsumerOptions::default())?;
        for _ in 0..requests {
            let delivery = match consumer.receiver().recv_timeout(WAIT)? {
                ConsumerMessage::Delivery(delivery) => delivery,
                other => anyhow::bail!("rogue consumer ended: {other:?}"),
            };
            let reply_to = delivery.properties.reply_to().clone().context("reply_to")?;
            let id = delivery.properties.correlation_id().clone();
            let n: u64 = std::str::from_utf8(&delivery.body)?.parse()?;
            let stale = reply_properties(Some("stale-id-from-an-earlier-run"), None);
            peer.publish("", &reply_to, b"999", stale)?;
            let value = answer(n);
            peer.publish("", &reply_to, &value, reply_properties(id.as_deref(), None))?;
            consumer.ack(delivery)?;
        }
        Ok(())
    }))
}

#[test]
fn stale_replies_are_ignored_and_wrong_ones_counted() -> Result<()> {
    let scratch = Scratch::new("stale");
    // Right but for n = 3.
    let answer = |n: u64| match n {
        3 => b"3".to_vec(),
        n => fib_math::fibonacci(n).to_string().into_bytes(),
    };
    let server = rogue_server(&scratch, 6, answer)?;
    let mut run = client(&scratch, &["--count", "6", "--json"])?;
    assert_eq!(run.wait(WAIT)?.code(), Some(1), "{:?}", run.stderr());
    let summary = json_summary(&run)?;
    assert_eq!(
        (summary["ok"].as_u64(), summary["failures"].as_u64()),
        (Some(5), Some(1))
    );
    server
        .join()
        .map_err(|_| anyhow::anyhow!("rogue server panicked"))??;
    Ok(())
}

#[test]
fn replies_that_are_not_utf8_are_wrong_replies_not_a_panic() -> Result<()> {
    // 60 bytes of invalid UTF-8 decode to 60 replacement characters of 3
    // bytes each; shortening them for the warning and the per-request line
    // (-v) must cut between characters.
    let scratch = Scratch::new("notutf8");
    let server = rogue_server(&scratch, 3, |_| vec![0xff; 60])?;
    let mut run = client(&scratch, &["--count", "3", "--json", "-v"])?;
    let status = run.wait(WAIT)?;
    let stderr = run.stderr().join("\n");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let summary = json_summary(&run)?;
    assert_eq!(
        (summary["ok"].as_u64(), summary["failures"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(stderr.matches("WRONG").count(), 3, "{stderr}");
    assert_eq!(stderr.matches("wrong reply").count(), 3, "{stderr}");
    server
        .join()
        .map_err(|_| anyhow::anyhow!("rogue server panicked"))??;
    Ok(())
}

#[test]
fn the_reply_queue_is_gone_after_the_client_exits() -> Result<()> {
    let scratch = Scratch::new("replyq");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let mut run = client(&scratch, &["--count", "5"])?;
    let name = testkit::client_reply_queue(&run)?;
    assert!(name.starts_with("amq.gen-"), "{name}");
    assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());
    let mut peer = Peer::connect()?;
    assert_eq!(
        peer.queue_depth(&name)?,
        None,
        "reply queue {name} still exists"
    );
    Ok(())
}

#[test]
fn usage_errors_exit_2() -> Result<()> {
    let scratch = Scratch::new("usage");
    for args in [
        &["--count", "x"][..],
        &["--timeout", "0"],
        &["--url", "http://h/"],
    ] {
        let mut run = client(&scratch, args)?;
        assert_eq!(
            run.wait(WAIT)?.code(),
            Some(2),
            "{args:?}: {:?}",
            run.stderr()
        );
    }
    Ok(())
}

#[test]
fn pipelined_runs_are_all_correct() -> Result<()> {
    let scratch = Scratch::new("inflight");
    let mut settings = scratch.server_settings();
    settings.prefetch = 20;
    let _server = InProcessServer::start(settings)?;
    let mut run = client(&scratch, &["--count", "1000", "--inflight", "32", "--json"])?;
    assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());
    let summary = json_summary(&run)?;
    assert_eq!(
        (summary["ok"].as_u64(), summary["failures"].as_u64()),
        (Some(1000), Some(0))
    );
    assert_eq!(summary["resends"].as_u64(), Some(0));
    Ok(())
}

#[test]
fn direct_reply_to_runs_are_all_correct() -> Result<()> {
    let scratch = Scratch::new("direct");
    let _server = InProcessServer::start(scratch.server_settings())?;
    for inflight in ["1", "16"] {
        let args = [
            "--count",
            "300",
            "--reply-to",
            "direct",
            "--inflight",
            inflight,
            "--json",
        ];
        let mut run = client(&scratch, &args)?;
        assert_eq!(run.wait(WAIT)?.code(), Some(0), "{:?}", run.stderr());
        let summary = json_summary(&run)?;
        assert_eq!(
            (summary["ok"].as_u64(), summary["failures"].as_u64()),
            (Some(300), Some(0))
        );
        assert!(run
            .stderr()
            .join("\n")
            .contains("replies on \"amq.rabbitmq.reply-to\""));
    }
    Ok(())
}
