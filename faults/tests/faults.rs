//! Faults that leave the broker up: killed and stopped servers, a killed
//! client, lost requests, hostile input, TLS. Each prints one line of figures
//! (see them with `--nocapture`) and checks exact counts. Every program runs
//! as a fresh broker user whose password must never appear in any output.

use amiquip::{AmqpProperties, ConsumerMessage, ConsumerOptions};
use anyhow::{Context, Result};
use common::protocol::{reply_properties, request_properties, Reply, DEFAULT_ROUTING_KEY};
use common::topology::QueueType;
use faults::{
    assert_password_hidden, resident_kib, start_client, start_server, wait_for_reply, Figures,
};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use testkit::{Peer, Scratch, SecretUser, TlsListener, WAIT};

fn depth(scratch: &Scratch) -> Result<u32> {
    Peer::connect()?
        .queue_depth(&scratch.topology.queue)?
        .context("request queue missing")
}

fn assert_all_correct(figures: &Figures, count: u64) {
    assert_eq!(
        (figures.count, figures.ok, figures.failures),
        (count, count, 0),
        "{figures:?}"
    );
}

/// A client run of `count` during which the first server gets `signal`;
/// another server, consuming from the start (`spare`) or started after the
/// signal, finishes the run. Nothing may be lost: every reply correct, no
/// resend (the broker redelivers what the first server held), queue empty.
fn server_interrupted_mid_run(scenario: &str, signal: &str, spare: bool, count: u64) -> Result<()> {
    let user = SecretUser::create()?;
    let scratch = Scratch::new("interrupted");
    let mut first = start_server(&user.url(), &scratch, &["--quiet"])?;
    let spare = if spare {
        Some(start_server(&user.url(), &scratch, &["--quiet"])?)
    } else {
        None
    };
    let mut client = start_client(&user.url(), &scratch, &["--count", &count.to_string()])?;
    wait_for_reply(&client, 500)?;
    first.signal(signal)?;
    let status = first.wait(WAIT)?;
    if signal == "TERM" {
        assert_eq!(status.code(), Some(0), "{:?}", first.stderr());
        assert!(first
            .stderr()
            .iter()
            .any(|l| l.contains("fib-server stopped")));
    }
    let mut next = match spare {
        Some(server) => server,
        None => start_server(&user.url(), &scratch, &["--quiet"])?,
    };
    assert_eq!(client.wait(WAIT)?.code(), Some(0), "{:?}", client.stderr());
    let figures = Figures::of(&client)?;
    assert_all_correct(&figures, count);
    assert_eq!(figures.resends, 0);
    next.signal("TERM")?;
    assert_eq!(next.wait(WAIT)?.code(), Some(0));
    let depth = depth(&scratch)?;
    assert_eq!(depth, 0);
    eprintln!("{}", figures.line(scenario, depth));
    assert_password_hidden(&user, &[&first, &next, &client]);
    Ok(())
}

#[test]
fn server_killed_mid_run_then_restarted() -> Result<()> {
    server_interrupted_mid_run("server SIGKILL mid-run, restarted", "KILL", false, 2000)
}

#[test]
fn server_killed_mid_run_with_a_second_one_consuming() -> Result<()> {
    server_interrupted_mid_run(
        "server SIGKILL mid-run, second server consuming",
        "KILL",
        true,
        2000,
    )
}

#[test]
fn sigterm_under_load_loses_nothing() -> Result<()> {
    server_interrupted_mid_run("server SIGTERM mid-run, restarted", "TERM", false, 3000)
}

#[test]
fn client_killed_mid_run_disturbs_nothing() -> Result<()> {
    let user = SecretUser::create()?;
    let scratch = Scratch::new("clientkill");
    let mut server = start_server(&user.url(), &scratch, &[])?;
    let mut doomed = start_client(&user.url(), &scratch, &["--count", "100000"])?;
    let reply_queue = testkit::client_reply_queue(&doomed)?;
    wait_for_reply(&doomed, 300)?;
    doomed.signal("KILL")?;
    doomed.wait(WAIT)?;
    // The broker drops an exclusive queue when it notices the connection
    // is gone; there is no event to wait on, so look until it is gone.
    let mut peer = Peer::connect()?;
    let deadline = Instant::now() + WAIT;
    while peer.queue_depth(&reply_queue)?.is_some() {
        assert!(
            Instant::now() < deadline,
            "reply queue {reply_queue} outlived its client"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut client = start_client(&user.url(), &scratch, &["--count", "200"])?;
    assert_eq!(client.wait(WAIT)?.code(), Some(0), "{:?}", client.stderr());
    let figures = Figures::of(&client)?;
    assert_all_correct(&figures, 200);
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    let errors: Vec<_> = server
        .stderr()
        .into_iter()
        .filter(|l| l.contains(" error:") || l.contains(" warn:"))
        .collect();
    assert!(errors.is_empty(), "server complained: {errors:?}");
    let depth = depth(&scratch)?;
    assert_eq!(depth, 0);
    eprintln!(
        "{}",
        figures.line(
            "client SIGKILL mid-run, reply queue gone, next client",
            depth
        )
    );
    assert_password_hidden(&user, &[&server, &doomed, &client]);
    Ok(())
}

#[test]
fn a_lost_request_is_sent_again_after_the_timeout() -> Result<()> {
    // A server that swallows the first copy of every request (acks it, never
    // answers) and answers the next: each request needs exactly one resend.
    let scratch = Scratch::new("lost");
    let peer = Peer::connect()?;
    peer.declare(&scratch.topology)?;
    let queue = scratch.topology.queue.clone();
    let count = 12u64;
    let server = std::thread::spawn(move || -> Result<()> {
        let consumer = peer
            .channel()
            .basic_consume(queue, ConsumerOptions::default())?;
        let mut seen: HashMap<u64, u32> = HashMap::new();
        let mut answered = 0;
        while answered < count {
            let ConsumerMessage::Delivery(delivery) = consumer.receiver().recv_timeout(WAIT)?
            else {
                anyhow::bail!("consumer ended");
            };
            let n: u64 = std::str::from_utf8(&delivery.body)?.parse()?;
            let copies = seen.entry(n).or_default();
            *copies += 1;
            if *copies == 2 {
                let reply_to = delivery.properties.reply_to().clone().context("reply_to")?;
                let id = delivery.properties.correlation_id().clone();
                let value = fib_math::fibonacci(n).to_string();
                peer.publish(
                    "",
                    &reply_to,
                    value.as_bytes(),
                    reply_properties(id.as_deref(), None),
                )?;
                answered += 1;
            }
            consumer.ack(delivery)?;
        }
        Ok(())
    });
    let url = testkit::broker_url();
    let mut client = start_client(
        &url,
        &scratch,
        &["--count", "12", "--timeout", "0.5", "--retries", "2"],
    )?;
    assert_eq!(client.wait(WAIT)?.code(), Some(0), "{:?}", client.stderr());
    server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    let figures = Figures::of(&client)?;
    assert_all_correct(&figures, count);
    assert_eq!(figures.resends, count);
    let depth = depth(&scratch)?;
    assert_eq!(depth, 0);
    eprintln!(
        "{}",
        figures.line("first copy of every request lost, --timeout 0.5", depth)
    );
    Ok(())
}

#[test]
fn hostile_input_burst_gets_replies_and_memory_stays_flat() -> Result<()> {
    let user = SecretUser::create()?;
    let scratch = Scratch::new("hostile");
    let max_n = 5000u64;
    let mut server = start_server(
        &user.url(),
        &scratch,
        &["--quiet", "--max-n", &max_n.to_string()],
    )?;
    let peer = Peer::connect()?;
    let inbox = peer.reply_queue()?;
    let exchange = &scratch.topology.exchange;
    let ten_thousand_digits = vec![b'9'; 10_000];
    let just_above = (max_n + 1).to_string();
    // Seven invalid-request bodies, then one too-large: of every 1,000 bad
    // requests, 875 and 125.
    let bad: Vec<&[u8]> = vec![
        b"",
        b"seven",
        b"-3",
        b"2.5",
        b"1e5",
        &ten_thousand_digits,
        b"\xc3\x28\xa0\xa1",
        just_above.as_bytes(),
    ];
    let one_mib = vec![b'4'; 1 << 20];

    // One burst: 1,000 bad requests (plus ones without reply_to, without
    // correlation id, to a missing queue, and 1 MiB bodies) mixed with 1,000
    // good ones. Returns replies by kind.
    let burst = |round: u32| -> Result<HashMap<String, u64>> {
        let mut expected = 0u64;
        for i in 0..1000u64 {
            let body = bad[i as usize % bad.len()];
            let id = format!("bad-{round}-{i}");
            peer.publish(
                exchange,
                DEFAULT_ROUTING_KEY,
                body,
                request_properties(&id, &inbox.name),
            )?;
            let good = format!("good-{round}-{i}");
            peer.publish(
                exchange,
                DEFAULT_ROUTING_KEY,
                i.to_string().as_bytes(),
                request_properties(&good, &inbox.name),
            )?;
            expected += 2;
            if i % 100 == 0 {
                let dropped = AmqpProperties::default().with_correlation_id(format!("noreply-{i}"));
                peer.publish(exchange, DEFAULT_ROUTING_KEY, b"12", dropped)?;
                let missing = request_properties("missing", "fibtest.no-such-reply-queue");
                peer.publish(exchange, DEFAULT_ROUTING_KEY, b"12", missing)?;
                let anonymous = AmqpProperties::default().with_reply_to(inbox.name.clone());
                peer.publish(exchange, DEFAULT_ROUTING_KEY, b"13", anonymous)?;
                peer.publish(
                    exchange,
                    DEFAULT_ROUTING_KEY,
                    &one_mib,
                    request_properties("huge", &inbox.name),
                )?;
                expected += 2;
            }
        }
        let mut kinds: HashMap<String, u64> = HashMap::new();
        for _ in 0..expected {
            let (id, reply) = inbox.next(WAIT)?;
            let kind = match (id.as_deref(), &reply) {
                (Some(id), Reply::Value(digits)) if id.starts_with("good-") => {
                    let n: u64 = id.rsplit('-').next().context("n")?.parse()?;
                    assert_eq!(digits, &fib_math::fibonacci(n).to_string(), "F({n})");
                    "correct".to_string()
                }
                (None, Reply::Value(digits)) => {
                    assert_eq!(digits, "233");
                    "answered without correlation id".to_string()
                }
                (_, Reply::Error { code, .. }) => code.clone(),
                other => panic!("unexpected reply {other:?}"),
            };
            *kinds.entry(kind).or_default() += 1;
        }
        Ok(kinds)
    };

    let started = Instant::now();
    let first = burst(1)?;
    let first_secs = started.elapsed().as_secs_f64();
    let rss_after_first = resident_kib(server.pid())?;
    let second = burst(2)?;
    let rss_after_second = resident_kib(server.pid())?;

    for kinds in [&first, &second] {
        assert_eq!(kinds["correct"], 1000);
        assert_eq!(kinds["too-large"], 125);
        assert_eq!(kinds["invalid-request"], 875 + 10, "incl. ten 1 MiB bodies");
        assert_eq!(kinds["answered without correlation id"], 10);
        assert_eq!(kinds.values().sum::<u64>(), 2020);
    }
    let growth_kib = rss_after_second.saturating_sub(rss_after_first);
    assert!(
        growth_kib < 4 * 1024,
        "server RSS grew by {growth_kib} KiB over a second burst"
    );
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    let depth = depth(&scratch)?;
    assert_eq!(depth, 0);
    eprintln!(
        "hostile burst x2: each 2,040 requests (1,000 good, 1,000 bad, 10 x 1 MiB, 30 odd) -> \
         1,000 correct, 885 invalid-request, 125 too-large, 10 without id, 20 dropped/unroutable replies; \
         first burst {:.0} requests/s; server RSS {} KiB after first, {} KiB after second; queue depth after {depth}",
        2040.0 / first_secs,
        rss_after_first,
        rss_after_second
    );
    assert_password_hidden(&user, &[&server]);
    Ok(())
}

#[test]
fn amqps_with_a_ca_file() -> Result<()> {
    let user = SecretUser::create()?;
    let tls = TlsListener::start()?;
    let scratch = Scratch::new("tls");
    let url = user.url_at("amqps", "localhost", tls.port);
    let ca = tls.ca_file.display().to_string();
    let mut server = start_server(&url, &scratch, &["--quiet", "--tls-ca", &ca])?;
    let mut client = start_client(&url, &scratch, &["--count", "200", "--tls-ca", &ca])?;
    assert_eq!(client.wait(WAIT)?.code(), Some(0), "{:?}", client.stderr());
    let figures = Figures::of(&client)?;
    assert_all_correct(&figures, 200);
    // Without the CA the self-signed chain is refused: exit 3, clear message.
    let mut untrusting = start_client(&url, &scratch, &["--count", "1"])?;
    assert_eq!(untrusting.wait(WAIT)?.code(), Some(3));
    let stderr = untrusting.stderr().join("\n");
    assert!(stderr.contains("certificate verify failed"), "{stderr}");
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    let depth = depth(&scratch)?;
    assert_eq!(depth, 0);
    eprintln!(
        "{}",
        figures.line("amqps:// with --tls-ca on a TLS listener", depth)
    );
    assert_password_hidden(&user, &[&server, &client, &untrusting]);
    Ok(())
}

/// Declares `topology`'s request queue (and its exchange) as a server of
/// that type would.
fn existing_queue(queue_type: QueueType, limit: u32) -> impl Fn(&Peer, &Scratch) -> Result<()> {
    move |peer, scratch| {
        let mut topology = scratch.topology.clone();
        topology.queue_type = queue_type;
        topology.delivery_limit = limit;
        peer.declare(&topology)
    }
}

/// Every start that ends in exit 2 because something exists other than the
/// server declares it declares nothing, or deletes again what it declared:
/// the broker's queues and exchanges of the test's names are the same
/// before and after.
#[test]
fn a_failed_start_leaves_nothing_behind() -> Result<()> {
    type Setup = Box<dyn Fn(&Peer, &Scratch) -> Result<()>>;
    let cases: Vec<(&str, Setup, &[&str])> = vec![
        (
            "classic queue, asked quorum",
            Box::new(existing_queue(QueueType::Classic, 5)),
            &["--queue-type", "quorum"],
        ),
        (
            "quorum queue, asked classic",
            Box::new(existing_queue(QueueType::Quorum, 5)),
            &["--queue-type", "classic"],
        ),
        (
            "quorum queue with delivery limit 5, asked 3",
            Box::new(existing_queue(QueueType::Quorum, 5)),
            &["--queue-type", "quorum", "--delivery-limit", "3"],
        ),
        (
            "no queue, the exchange a direct one",
            Box::new(|peer: &Peer, scratch: &Scratch| {
                peer.channel().exchange_declare(
                    amiquip::ExchangeType::Direct,
                    scratch.topology.exchange.as_str(),
                    amiquip::ExchangeDeclareOptions {
                        durable: true,
                        ..amiquip::ExchangeDeclareOptions::default()
                    },
                )?;
                Ok(())
            }),
            &[],
        ),
        (
            "no queue, the dead-letter queue a classic one, asked quorum",
            Box::new(|peer: &Peer, scratch: &Scratch| {
                peer.channel().queue_declare(
                    scratch.topology.dead_letter_queue(),
                    amiquip::QueueDeclareOptions {
                        durable: true,
                        ..amiquip::QueueDeclareOptions::default()
                    },
                )?;
                Ok(())
            }),
            &["--queue-type", "quorum"],
        ),
    ];
    for (case, setup, args) in cases {
        let scratch = Scratch::new("failedstart");
        setup(&Peer::connect()?, &scratch)?;
        let before = testkit::broker_objects(&scratch.prefix)?;
        let mut server = testkit::Spawned::start(
            std::process::Command::new(testkit::binary("fib-server"))
                .args(scratch.url_and_exchange_args())
                .args(["--queue", &scratch.topology.queue])
                .args(args),
        )?;
        let status = server.wait(WAIT)?;
        assert_eq!(status.code(), Some(2), "{case}: {:?}", server.stderr());
        let after = testkit::broker_objects(&scratch.prefix)?;
        assert_eq!(after, before, "{case}: the failed start left something");
        eprintln!("{case}: exit 2, broker objects before and after: {before:?}");
    }
    Ok(())
}
