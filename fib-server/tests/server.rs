//! fib-server against the real broker: its replies, its refusals, and how it
//! stops. Each test uses its own exchange and queue.

use amiquip::AmqpProperties;
use anyhow::Result;
use common::protocol::{request_properties, Reply, DEFAULT_ROUTING_KEY, PERSISTENT};
use std::process::Command;
use testkit::{InProcessServer, Peer, Scratch, Spawned, WAIT};

fn error(code: &str) -> impl Fn(&Reply) -> bool + '_ {
    move |reply| matches!(reply, Reply::Error { code: c, .. } if c == code)
}

#[test]
fn every_kind_of_bad_body_gets_its_error_reply_and_the_server_keeps_serving() -> Result<()> {
    let scratch = Scratch::new("badbody");
    let mut settings = scratch.server_settings();
    settings.max_n = 1000;
    let mut server = InProcessServer::start(settings)?;
    let peer = Peer::connect()?;
    let inbox = peer.reply_queue()?;
    let exchange = &scratch.topology.exchange;

    let ten_thousand_digits = vec![b'7'; 10_000];
    let one_mib = vec![b'1'; 1 << 20];
    let cases: Vec<(&[u8], &str)> = vec![
        (b"", "invalid-request"),
        (b"abc", "invalid-request"),
        (b"-1", "invalid-request"),
        (b"1.5", "invalid-request"),
        (b"1e5", "invalid-request"),
        (b"\xff\xfe\x00", "invalid-request"),
        (&ten_thousand_digits, "invalid-request"),
        (&one_mib, "invalid-request"),
        (b"1001", "too-large"),
        (b"99999999999999999999999", "too-large"),
    ];
    for (i, (body, code)) in cases.iter().enumerate() {
        let id = format!("bad-{i}");
        peer.publish(
            exchange,
            DEFAULT_ROUTING_KEY,
            body,
            request_properties(&id, &inbox.name),
        )?;
        let (got_id, reply) = inbox.next(WAIT)?;
        assert_eq!(got_id.as_deref(), Some(id.as_str()));
        assert!(
            error(code)(&reply),
            "case {i}: expected {code}, got {reply:?}"
        );
        if let Reply::Error { message, .. } = reply {
            assert!(
                !message.contains('\n') && !message.is_empty(),
                "{message:?}"
            );
        }
    }

    // Still serving, whitespace around n is accepted, n = max-n is answered.
    peer.publish(
        exchange,
        DEFAULT_ROUTING_KEY,
        b" 10\n",
        request_properties("good", &inbox.name),
    )?;
    assert_eq!(
        inbox.next(WAIT)?,
        (Some("good".into()), Reply::Value("55".into()))
    );
    peer.publish(
        exchange,
        DEFAULT_ROUTING_KEY,
        b"1000",
        request_properties("max", &inbox.name),
    )?;
    match inbox.next(WAIT)? {
        (Some(id), Reply::Value(digits)) => assert_eq!((id.as_str(), digits.len()), ("max", 209)),
        other => panic!("expected F(1000), got {other:?}"),
    }

    // Without a correlation id: answered without one.
    let no_id = AmqpProperties::default()
        .with_reply_to(inbox.name.clone())
        .with_delivery_mode(PERSISTENT);
    peer.publish(exchange, DEFAULT_ROUTING_KEY, b"12", no_id)?;
    assert_eq!(inbox.next(WAIT)?, (None, Reply::Value("144".into())));

    // Without reply_to: dropped (acked), so the next reply is the next request's.
    let no_reply_to = AmqpProperties::default().with_correlation_id("lost".into());
    peer.publish(exchange, DEFAULT_ROUTING_KEY, b"5", no_reply_to)?;
    peer.publish(
        exchange,
        DEFAULT_ROUTING_KEY,
        b"6",
        request_properties("after", &inbox.name),
    )?;
    assert_eq!(
        inbox.next(WAIT)?,
        (Some("after".into()), Reply::Value("8".into()))
    );

    server.stop()?;
    let mut probe = Peer::connect()?;
    assert_eq!(
        probe.queue_depth(&scratch.topology.queue)?,
        Some(0),
        "nothing requeued"
    );
    Ok(())
}

#[test]
fn a_reply_to_a_missing_queue_does_not_disturb_the_server() -> Result<()> {
    let scratch = Scratch::new("noqueue");
    let _server = InProcessServer::start(scratch.server_settings())?;
    let peer = Peer::connect()?;
    let inbox = peer.reply_queue()?;
    let exchange = &scratch.topology.exchange;
    let gone = request_properties("gone", "fibtest.no-such-queue");
    peer.publish(exchange, DEFAULT_ROUTING_KEY, b"20", gone)?;
    peer.publish(
        exchange,
        DEFAULT_ROUTING_KEY,
        b"20",
        request_properties("here", &inbox.name),
    )?;
    assert_eq!(
        inbox.next(WAIT)?,
        (Some("here".into()), Reply::Value("6765".into()))
    );
    Ok(())
}

fn server_command(scratch: &Scratch) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fib-server"));
    command
        .args(scratch.url_and_exchange_args())
        .args(["--queue", &scratch.topology.queue]);
    command
}

#[test]
fn sigterm_finishes_and_exits_zero() -> Result<()> {
    let scratch = Scratch::new("sigterm");
    let mut server = Spawned::start(&mut server_command(&scratch))?;
    server.wait_for_line("ready", WAIT)?;
    let peer = Peer::connect()?;
    let inbox = peer.reply_queue()?;
    let id = "before-stop";
    peer.publish(
        &scratch.topology.exchange,
        "any.key",
        b"90",
        request_properties(id, &inbox.name),
    )?;
    assert_eq!(
        inbox.next(WAIT)?,
        (Some(id.into()), Reply::Value("2880067194370816120".into()))
    );
    server.signal("TERM")?;
    let status = server.wait(WAIT)?;
    assert_eq!(status.code(), Some(0), "stderr: {:?}", server.stderr());
    assert!(server
        .stderr()
        .iter()
        .any(|l| l.contains("fib-server stopped")));
    Ok(())
}

#[test]
fn bad_credentials_exit_3_without_showing_the_password() -> Result<()> {
    let scratch = Scratch::new("badpass");
    let url = testkit::broker_url();
    let Some(host_part) = url.split('@').nth(1) else {
        panic!("AMQP_URL {url:?} has no user part to replace")
    };
    let secret = "Sup3r-S3cret-pw";
    let mut server = Spawned::start(
        Command::new(env!("CARGO_BIN_EXE_fib-server"))
            .args(["--url", &format!("amqp://guest:{secret}@{host_part}")])
            .args([
                "--exchange",
                &scratch.topology.exchange,
                "--queue",
                &scratch.topology.queue,
            ]),
    )?;
    let status = server.wait(WAIT)?;
    assert_eq!(status.code(), Some(3));
    let stderr = server.stderr().join("\n");
    assert!(stderr.contains("cannot open AMQP connection"), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
    Ok(())
}

#[test]
fn nothing_listening_exits_3() -> Result<()> {
    // Port 1 on loopback: refused at once.
    let mut server = Spawned::start(
        Command::new(env!("CARGO_BIN_EXE_fib-server")).args(["--url", "amqp://u:pw@127.0.0.1:1/"]),
    )?;
    assert_eq!(server.wait(WAIT)?.code(), Some(3), "{:?}", server.stderr());
    assert!(server
        .stderr()
        .join("\n")
        .contains("cannot connect to amqp://u:***@127.0.0.1:1/"));
    Ok(())
}

#[test]
fn workers_share_the_queue_and_stop_together() -> Result<()> {
    let scratch = Scratch::new("workers");
    let mut server =
        Spawned::start(server_command(&scratch).args(["--workers", "3", "--prefetch", "5"]))?;
    for _ in 0..3 {
        server.wait_for_line("ready", WAIT)?;
    }
    let peer = Peer::connect()?;
    let inbox = peer.reply_queue()?;
    for n in 0..300u64 {
        let id = n.to_string();
        peer.publish(
            &scratch.topology.exchange,
            "k",
            id.as_bytes(),
            request_properties(&id, &inbox.name),
        )?;
    }
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let (id, reply) = inbox.next(WAIT)?;
        let n: u64 = id.as_deref().unwrap_or("").parse()?;
        assert_eq!(reply, Reply::Value(fib_math::fibonacci(n).to_string()));
        answered.insert(n);
    }
    assert_eq!(answered.len(), 300);
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    let stopped = server
        .stderr()
        .iter()
        .filter(|l| l.contains("fib-server stopped"))
        .count();
    assert_eq!(stopped, 3, "every worker stops");
    let mut probe = Peer::connect()?;
    assert_eq!(probe.queue_depth(&scratch.topology.queue)?, Some(0));
    Ok(())
}

/// One request through `scratch`'s exchange, answered correctly.
fn one_round_trip(scratch: &Scratch, n: u64) -> Result<()> {
    let peer = Peer::connect()?;
    let inbox = peer.reply_queue()?;
    let id = format!("n{n}");
    peer.publish(
        &scratch.topology.exchange,
        "k",
        n.to_string().as_bytes(),
        request_properties(&id, &inbox.name),
    )?;
    assert_eq!(
        inbox.next(WAIT)?,
        (Some(id), Reply::Value(fib_math::fibonacci(n).to_string()))
    );
    Ok(())
}

#[test]
fn a_quorum_queue_serves_and_has_its_dead_letter_queue() -> Result<()> {
    let scratch = Scratch::new("quorum");
    let mut server = Spawned::start(server_command(&scratch).args(["--queue-type", "quorum"]))?;
    let ready = server.wait_for_line("ready", WAIT)?;
    let dead = scratch.topology.dead_letter_queue();
    assert!(ready.contains("quorum queue, delivery limit 5"), "{ready}");
    assert!(ready.contains(&dead), "{ready}");
    one_round_trip(&scratch, 300)?;
    let mut probe = Peer::connect()?;
    assert_eq!(
        probe.queue_depth(&dead)?,
        Some(0),
        "the dead-letter queue exists"
    );
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    Ok(())
}

#[test]
fn declaring_a_queue_over_one_of_the_other_type_is_a_usage_error() -> Result<()> {
    for (existing, asked) in [("classic", "quorum"), ("quorum", "classic")] {
        let scratch = Scratch::new("qtype");
        let mut topology = scratch.topology.clone();
        if existing == "quorum" {
            topology.queue_type = common::topology::QueueType::Quorum;
        }
        let peer = Peer::connect()?;
        common::topology::declare_request_queue(peer.channel(), &topology)?;
        let mut server = Spawned::start(server_command(&scratch).args(["--queue-type", asked]))?;
        let status = server.wait(WAIT)?;
        let stderr = server.stderr().join("\n");
        assert_eq!(status.code(), Some(2), "{existing} -> {asked}: {stderr}");
        let queue = format!("{:?}", scratch.topology.queue);
        let is = format!("{existing} queue");
        let fix = format!("start the server with --queue-type {existing}");
        // The broker names the first argument it finds different.
        for needle in [&queue, "inequivalent arg", &is, asked, &fix, "delete_queue"] {
            assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
        }
        assert!(!stderr.contains("reconnecting"), "{stderr}");
    }
    Ok(())
}

#[test]
fn an_exchange_of_another_type_is_a_usage_error_naming_it() -> Result<()> {
    let scratch = Scratch::new("xtype");
    let peer = Peer::connect()?;
    peer.channel().exchange_declare(
        amiquip::ExchangeType::Direct,
        scratch.topology.exchange.as_str(),
        amiquip::ExchangeDeclareOptions {
            durable: true,
            ..amiquip::ExchangeDeclareOptions::default()
        },
    )?;
    let mut server = Spawned::start(&mut server_command(&scratch))?;
    let status = server.wait(WAIT)?;
    let stderr = server.stderr().join("\n");
    assert_eq!(status.code(), Some(2), "{stderr}");
    let exchange = format!("{:?}", scratch.topology.exchange);
    for needle in [
        &exchange,
        "topic exchange",
        "(type direct)",
        "another --exchange",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
    Ok(())
}

#[test]
fn another_delivery_limit_is_a_usage_error_naming_the_limit_not_the_type() -> Result<()> {
    let scratch = Scratch::new("qlimit");
    let mut topology = scratch.topology.clone();
    topology.queue_type = common::topology::QueueType::Quorum;
    topology.delivery_limit = 5;
    common::topology::declare_request_queue(Peer::connect()?.channel(), &topology)?;
    let mut server = Spawned::start(server_command(&scratch).args([
        "--queue-type",
        "quorum",
        "--delivery-limit",
        "3",
    ]))?;
    let status = server.wait(WAIT)?;
    let stderr = server.stderr().join("\n");
    assert_eq!(status.code(), Some(2), "{stderr}");
    for needle in [
        "x-delivery-limit",
        "delivery limit 5",
        "declares 3",
        "--delivery-limit 5",
        "delete_queue",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
    for wrong in ["--queue-type", "type cannot change"] {
        assert!(!stderr.contains(wrong), "{wrong:?} in: {stderr}");
    }
    Ok(())
}

#[test]
fn a_consumer_cancelled_by_the_broker_declares_and_consumes_again() -> Result<()> {
    let scratch = Scratch::new("cancel");
    let mut server = Spawned::start(&mut server_command(&scratch))?;
    server.wait_for_line("ready", WAIT)?;
    one_round_trip(&scratch, 10)?;
    // Deleting the queue makes the broker cancel the server's consumer.
    Peer::connect()?.delete_queue(&scratch.topology.queue)?;
    server.wait_for_line("reconnecting in", WAIT)?;
    server.wait_for_line("ready", WAIT)?;
    one_round_trip(&scratch, 11)?;
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    Ok(())
}

#[test]
fn a_repeated_large_n_is_answered_from_the_cache_unless_it_is_off() -> Result<()> {
    const N: u64 = 300_000;
    let expected = fib_math::fibonacci(N).to_string();
    let cases: [(&[&str], &str, bool); 2] = [
        (&[], "cache 64 MB", true),
        (&["--cache-mb", "0"], "cache off", false),
    ];
    for (cache_args, ready_says, repeats_cached) in cases {
        let scratch = Scratch::new("cache");
        let mut server = Spawned::start(server_command(&scratch).args(cache_args))?;
        let ready = server.wait_for_line("ready", WAIT)?;
        assert!(ready.contains(ready_says), "{ready}");
        let peer = Peer::connect()?;
        let inbox = peer.reply_queue()?;
        for (i, cached) in [(0, false), (1, repeats_cached), (2, repeats_cached)] {
            let id = format!("big-{i}");
            peer.publish(
                &scratch.topology.exchange,
                "k",
                N.to_string().as_bytes(),
                request_properties(&id, &inbox.name),
            )?;
            assert_eq!(
                inbox.next(WAIT)?,
                (Some(id.clone()), Reply::Value(expected.clone())),
                "{cache_args:?}, request {i}"
            );
            let line = server.wait_for_line(&format!("n={N} id={id} "), WAIT)?;
            assert_eq!(
                line.contains("(cached)"),
                cached,
                "{cache_args:?}, request {i}: {line}"
            );
        }
        server.signal("TERM")?;
        assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    }
    Ok(())
}

/// A reply queue that refuses every publish (`x-max-length` 0 with
/// `x-overflow` `reject-publish`): the broker nacks each reply sent to it.
fn refusing_reply_queue(peer: &Peer) -> Result<String> {
    let mut arguments = amiquip::FieldTable::new();
    arguments.insert("x-max-length".into(), amiquip::AmqpValue::LongInt(0));
    arguments.insert(
        "x-overflow".into(),
        amiquip::AmqpValue::LongString("reject-publish".into()),
    );
    let queue = peer.channel().queue_declare(
        "",
        amiquip::QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            arguments,
            ..amiquip::QueueDeclareOptions::default()
        },
    )?;
    Ok(queue.name().to_string())
}

/// Two clients whose reply queues refuse every reply, and a normal one: the
/// normal one is answered while the refused requests wait for their retries,
/// and each refused request is computed once, published a bounded number of
/// times, then rejected (dead-lettered on a quorum queue), never requeued.
#[test]
fn refused_replies_cost_bounded_work_and_the_others_are_served() -> Result<()> {
    for queue_type in ["classic", "quorum"] {
        let scratch = Scratch::new("refused");
        let exchange = &scratch.topology.exchange;
        let mut server =
            Spawned::start(server_command(&scratch).args(["--queue-type", queue_type, "-v"]))?;
        server.wait_for_line("ready", WAIT)?;
        let refusing = [Peer::connect()?, Peer::connect()?];
        for (peer, id) in refusing.iter().zip(["refused-a", "refused-b"]) {
            let queue = refusing_reply_queue(peer)?;
            peer.publish(exchange, "k", b"1000", request_properties(id, &queue))?;
        }
        let normal = Peer::connect()?;
        let inbox = normal.reply_queue()?;
        let sent = std::time::Instant::now();
        normal.publish(
            exchange,
            "k",
            b"30",
            request_properties("normal", &inbox.name),
        )?;
        assert_eq!(
            inbox.next(WAIT)?,
            (Some("normal".into()), Reply::Value("832040".into())),
            "{queue_type}"
        );
        let answered_ms = sent.elapsed().as_secs_f64() * 1e3;
        let mut given_up = Vec::new();
        for _ in 0..2 {
            given_up.push(server.wait_for_line("gave up request id=", WAIT)?);
        }
        server.signal("TERM")?;
        assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
        let stderr = server.stderr();
        let count = |needle: &str| stderr.iter().filter(|l| l.contains(needle)).count();
        for id in ["refused-a", "refused-b"] {
            assert_eq!(count(&format!("n=1000 id={id} ")), 1, "{id} computed once");
            assert_eq!(count(&format!("gave up request id={id}:")), 1, "{id}");
            let retries = count(&format!(
                "request id={id}: publishing its refused reply again"
            ));
            assert_eq!(retries, fib_server::REPLY_ATTEMPTS as usize - 1, "{id}");
        }
        assert!(count("gave up 2 requests") == 1, "{stderr:?}");
        let mut probe = Peer::connect()?;
        assert_eq!(
            probe.queue_depth(&scratch.topology.queue)?,
            Some(0),
            "{queue_type}: nothing requeued"
        );
        let dead = if queue_type == "quorum" {
            assert!(given_up.iter().all(|l| l.contains(".dead")), "{given_up:?}");
            // The broker dead-letters a rejected message after the reject.
            let dead_queue = scratch.topology.dead_letter_queue();
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let depth = probe.queue_depth(&dead_queue)?.unwrap_or(0);
                if depth >= 2 || std::time::Instant::now() >= deadline {
                    assert_eq!(depth, 2, "both refused requests dead-lettered");
                    break depth;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        } else {
            0
        };
        eprintln!(
            "{queue_type}: normal request answered in {answered_ms:.1} ms; each refused request \
             computed once, its reply published {} times, then rejected; dead-lettered {dead}",
            fib_server::REPLY_ATTEMPTS
        );
    }
    Ok(())
}

#[test]
fn a_built_in_exchange_of_another_type_is_a_usage_error_advising_another_name() -> Result<()> {
    // amq.direct exists on every broker, as a direct exchange, and cannot
    // be deleted: the advice is another --exchange, never deleting it.
    let scratch = Scratch::new("amqdirect");
    let mut server = Spawned::start(Command::new(env!("CARGO_BIN_EXE_fib-server")).args([
        "--url",
        &testkit::broker_url(),
        "--exchange",
        "amq.direct",
        "--queue",
        &scratch.topology.queue,
    ]))?;
    let status = server.wait(WAIT)?;
    let stderr = server.stderr().join("\n");
    assert_eq!(status.code(), Some(2), "{stderr}");
    let error = server
        .stderr()
        .into_iter()
        .find(|line| line.starts_with("error:"))
        .unwrap_or_default();
    assert!(error.contains("choose another --exchange"), "{error}");
    assert!(!error.contains("delete exchange"), "{error}");
    // The queue this failed start declared is removed again.
    let objects = testkit::broker_objects(&scratch.prefix)?;
    assert!(objects.is_empty(), "{objects:?}");
    Ok(())
}
