//! Plain HTTP/1.1 over a socket, for the tests of the metrics endpoint and
//! of Prometheus' API: one request, one response, every wait bounded.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// What came back: the status code and the body as text.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends `request` (raw bytes) to `addr` and reads the response until the
/// server closes, within `limit` in all.
pub fn exchange(addr: &str, request: &[u8], limit: Duration) -> Result<Response> {
    let addr: SocketAddr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow!("{addr} names no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, limit)
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    // A server may answer and close before the whole request is written.
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // A reset after the response was read (a request head too long to
        // read whole) still leaves the response.
        Err(_) if !raw.is_empty() => {}
        Err(error) => return Err(error).with_context(|| format!("reading from {addr}")),
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no complete response from {addr}: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("no status in {head:?}"))?;
    Ok(Response {
        status,
        body: body.to_string(),
    })
}

/// `GET path` from `addr` (HOST:PORT).
pub fn get(addr: &str, path: &str) -> Result<Response> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes(), crate::WAIT)
}

/// `GET path` that must answer 200; its body.
pub fn get_ok(addr: &str, path: &str) -> Result<String> {
    let response = get(addr, path)?;
    if response.status != 200 {
        bail!(
            "GET {path} from {addr}: {} {}",
            response.status,
            response.body
        );
    }
    Ok(response.body)
}

/// The value of the sample `series` (name with labels, exactly as the text
/// format writes it) in a scrape.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// HOST:PORT out of a ready line's "... metrics at http://HOST:PORT/metrics".
pub fn metrics_addr(line: &str) -> Result<String> {
    let after = line
        .split("metrics at http://")
        .nth(1)
        .ok_or_else(|| anyhow!("no metrics address in {line:?}"))?;
    Ok(after.split('/').next().unwrap_or_default().to_string())
}

/// Polls `GET path` on `addr` until its status is `status`, within `limit`;
/// how long that took.
pub fn wait_for_status(
    addr: &str,
    path: &str,
    status: u16,
    limit: std::time::Duration,
) -> Result<std::time::Duration> {
    let started = std::time::Instant::now();
    loop {
        let got = get(addr, path).map(|r| r.status);
        if matches!(got, Ok(s) if s == status) {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= limit {
            bail!("GET {path} from {addr} was {got:?}, not {status}, after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
