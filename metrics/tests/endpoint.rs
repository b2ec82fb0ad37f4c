//! The endpoint on its own: paths, readiness, and hostile clients.

use anyhow::Result;
use metrics::{Endpoint, Readiness, State};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use testkit::http::{exchange, get, get_ok, sample};

fn serving() -> Result<(metrics::Serving, Readiness, String)> {
    let registry = metrics::registry("fib_test", "9.9.9")?;
    let readiness = Readiness::new(1);
    let serving = Endpoint::bind("127.0.0.1:0")?.serve(registry, readiness.clone())?;
    let addr = serving.local_addr().to_string();
    Ok((serving, readiness, addr))
}

#[test]
fn the_three_paths_and_404() -> Result<()> {
    let (_serving, readiness, addr) = serving()?;
    let scrape = get_ok(&addr, "/metrics")?;
    assert_eq!(
        sample(&scrape, "fib_test_build_info{version=\"9.9.9\"}"),
        Some(1.0),
        "{scrape}"
    );
    assert!(sample(&scrape, "process_resident_memory_bytes").is_some_and(|v| v > 0.0));
    assert_eq!(get_ok(&addr, "/healthz")?, "alive\n");
    let not_ready = get(&addr, "/readyz")?;
    assert_eq!(
        (not_ready.status, not_ready.body.as_str()),
        (503, "not ready: connecting\n")
    );
    readiness.set(0, State::Ready);
    assert_eq!(get_ok(&addr, "/readyz?verbose=1")?, "ready\n");
    readiness.set(0, State::Reconnecting);
    let lost = get(&addr, "/readyz")?;
    assert_eq!(lost.status, 503);
    assert!(lost.body.contains("reconnecting"), "{lost:?}");
    assert_eq!(
        get_ok(&addr, "/healthz")?,
        "alive\n",
        "alive while reconnecting"
    );
    assert_eq!(get(&addr, "/")?.status, 404);
    assert_eq!(get(&addr, "/metricsx")?.status, 404);
    let post = exchange(&addr, b"POST /metrics HTTP/1.1\r\n\r\n", testkit::WAIT)?;
    assert_eq!(post.status, 405);
    Ok(())
}

#[test]
fn an_address_that_cannot_be_bound_is_a_usage_error_naming_it() -> Result<()> {
    let taken = Endpoint::bind("127.0.0.1:0")?;
    let addr = taken.local_addr().to_string();
    for bad in [addr.as_str(), "nonsense", "256.1.1.1:80", "127.0.0.1:99999"] {
        let error = Endpoint::bind(bad).err().expect("cannot be bound");
        assert_eq!(common::exit_code(&error), common::exit::USAGE, "{error:#}");
        assert!(format!("{error:#}").contains(bad), "{error:#}");
    }
    Ok(())
}

#[test]
fn garbage_huge_heads_and_idle_connections_do_not_stop_the_endpoint() -> Result<()> {
    let (_serving, _readiness, addr) = serving()?;
    let garbage = exchange(&addr, b"\x00\xff\xfe not http\r\n\r\n", testkit::WAIT)?;
    assert_eq!(garbage.status, 400);
    let mut long_line = b"GET /".to_vec();
    long_line.extend(std::iter::repeat_n(b'a', 1 << 20));
    long_line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    assert_eq!(exchange(&addr, &long_line, testkit::WAIT)?.status, 431);
    let mut long_header = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    long_header.extend(std::iter::repeat_n(b'b', 1 << 20));
    long_header.extend_from_slice(b"\r\n\r\n");
    assert_eq!(exchange(&addr, &long_header, testkit::WAIT)?.status, 431);
    // A hundred connections that never send a byte, held open.
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&addr))
        .collect::<std::io::Result<_>>()?;
    let started = Instant::now();
    let scrape = get_ok(&addr, "/metrics")?;
    let took = started.elapsed();
    assert!(scrape.contains("fib_test_build_info"));
    // Served at once, not after the idle ones' 5 s deadline.
    assert!(
        took < Duration::from_secs(2),
        "a scrape beside 100 idle connections took {took:?}"
    );
    drop(idle);
    // A client that sends half a head and stops is answered 408 by the
    // deadline, not held forever.
    let started = Instant::now();
    let slow = exchange(&addr, b"GET /metrics HTT", testkit::WAIT)?;
    assert_eq!(slow.status, 408);
    assert!(started.elapsed() < metrics::HEAD_DEADLINE + Duration::from_secs(5));
    assert_eq!(get_ok(&addr, "/healthz")?, "alive\n");
    Ok(())
}

/// `count` connections opened in a burst: every other one sends the start
/// of a request and stops (a slowloris), the others send nothing.
fn burst(addr: &str, count: usize, held: &mut VecDeque<TcpStream>) -> Result<()> {
    for i in 0..count {
        let mut stream = TcpStream::connect(addr)?;
        if i % 2 == 1 {
            stream.write_all(b"GET /metrics HTT")?;
        }
        if held.len() >= 1000 {
            held.pop_front();
        }
        held.push_back(stream);
    }
    Ok(())
}

#[test]
fn probes_are_answered_through_a_flood_of_connections() -> Result<()> {
    let (_serving, readiness, addr) = serving()?;
    readiness.set(0, State::Ready);
    let mut held = VecDeque::new();
    // Every place the endpoint holds is taken...
    burst(&addr, 2 * metrics::MAX_CONNECTIONS, &mut held)?;
    let mut answers = Vec::new();
    for _ in 0..20 {
        // ...and each probe, its request sent, is followed by more
        // connections than the endpoint holds, accepted in the same round
        // as the probe: none of them may close the probe unanswered.
        let mut probe = TcpStream::connect(&addr)?;
        probe.set_read_timeout(Some(testkit::WAIT))?;
        probe.write_all(format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())?;
        burst(&addr, metrics::MAX_CONNECTIONS + 36, &mut held)?;
        let mut response = String::new();
        let read = probe.read_to_string(&mut response);
        answers.push(read.map(|_| response).map_err(|error| error.to_string()));
    }
    let failed: Vec<_> = answers
        .iter()
        .filter(|answer| !matches!(answer, Ok(text) if text.starts_with("HTTP/1.1 200 ") && text.ends_with("\r\n\r\nready\n")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 20 probes not answered 200 ready in a flood of connections: {failed:?}",
        failed.len()
    );
    drop(held);
    assert_eq!(get_ok(&addr, "/readyz")?, "ready\n");
    Ok(())
}
