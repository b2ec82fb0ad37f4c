//! The HTTP endpoint: `/metrics`, `/healthz`, `/readyz`, 404 otherwise, on a
//! blocking listener served by one thread of its own.
//!
//! Requests are parsed by `httparse`; the socket policy is ours, because
//! that is where a monitoring port gets hurt: tiny_http (the obvious small
//! server) reads a request line or header without any bound, sets no read
//! timeout, starts one thread per connection without a limit, and ends its
//! accept loop for good on the first accept error (EMFILE when connections
//! pile up). Here one thread serves every connection: it sleeps in a
//! blocking `accept` while nothing is pending, and while connections are
//! open it polls them (non-blocking reads, every [`POLL`]), so idle or
//! trickling clients cost nothing but their socket and cannot hold up a
//! scrape. Each connection gets one request, read within [`HEAD_DEADLINE`]
//! and [`HEAD_LIMIT`] bytes, one response, then is closed; an accept error
//! is logged and the loop goes on.
//!
//! At most [`MAX_CONNECTIONS`] are held, and a flood of connections must
//! not close a probe before its request is read. So a new connection is
//! read at once (under a flood, a client's request is in by the time its
//! connection is accepted) and answered without taking room if it is
//! complete. Only then, if it must wait and every place is taken by a
//! connection still waiting (all are read again first), room is made by
//! closing the oldest connection that has had a poll interval ([`POLL`])
//! since it was accepted to send its request, was read again after it, and
//! still has not sent it whole (idle or trickling: a flood or a slowloris);
//! when all were accepted in this very round, the newcomer is closed
//! instead. A client sends its request as it connects: to close it before
//! it is read, a flood would need all of the places filled within one poll
//! interval just as the request is late. An accept
//! round takes at most [`ACCEPT_ROUND`] connections before the held ones
//! are read again.

use crate::readiness::Readiness;
use anyhow::Result;
use common::failure::Failure;
use log::{debug, warn};
use prometheus::Registry;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest request head (request line and headers) read; a scrape's is
/// about 200 bytes.
pub const HEAD_LIMIT: usize = 8 << 10;
/// How long a client has to send its request head, in all, however slowly
/// it trickles in.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// How long writing a response may take.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(1);
/// Connections held at once, waiting for their request head.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections accepted in a row before the held ones are read again.
pub const ACCEPT_ROUND: usize = 256;
/// The most headers a request may have (a scrape sends about five).
pub const MAX_HEADERS: usize = 100;
/// How often open connections are polled while there are any.
pub const POLL: Duration = Duration::from_millis(5);

/// A bound listening socket, not yet served.
pub struct Endpoint {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Endpoint {
    /// Listens on `addr` (`HOST:PORT`; port 0 picks a free port). An
    /// address that cannot be bound is a usage error naming it (exit 2),
    /// so that a mistake shows before any connection to the broker.
    pub fn bind(addr: &str) -> Result<Endpoint> {
        let cannot = |why: String| Failure::Usage(format!("--metrics {addr}: {why}"));
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|error| cannot(format!("not an address to listen on ({error})")))?
            .collect();
        let listener = TcpListener::bind(&addrs[..])
            .map_err(|error| cannot(format!("cannot listen there: {error}")))?;
        let addr = listener
            .local_addr()
            .map_err(|error| cannot(format!("cannot tell the bound address: {error}")))?;
        Ok(Endpoint { listener, addr })
    }

    /// The address bound, with the port picked when 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `registry` and `readiness` on a thread of its own until the
    /// returned guard is dropped.
    pub fn serve(self, registry: Registry, readiness: Readiness) -> Result<Serving> {
        let stop = Arc::new(AtomicBool::new(false));
        let pages = Pages {
            registry,
            readiness,
        };
        let (listener, stopping) = (self.listener, Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || accept_loop(&listener, &pages, &stopping))?;
        Ok(Serving {
            addr: self.addr,
            stop,
            thread: Some(thread),
        })
    }
}

/// The endpoint being served; dropping it stops its thread.
pub struct Serving {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Serving {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` as a person or Prometheus would reach it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake a blocking accept with a connection of our own; an
        // unspecified address (0.0.0.0, ::) is reached through loopback.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let woken = TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok();
        if let Some(thread) = self.thread.take() {
            if woken {
                let _ = thread.join();
            }
        }
    }
}

struct Pages {
    registry: Registry,
    readiness: Readiness,
}

/// A connection whose request head is still coming in.
struct Pending {
    stream: TcpStream,
    head: Vec<u8>,
    /// The accept round it came in: one held since an earlier round has
    /// had a poll interval to send its request.
    round: u64,
    deadline: Instant,
}

fn accept_loop(listener: &TcpListener, pages: &Pages, stop: &AtomicBool) {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut round: u64 = 0;
    loop {
        round = round.wrapping_add(1);
        // Asleep in accept while nothing is open; polling while anything is.
        let blocking = pending.is_empty();
        if let Err(error) = listener.set_nonblocking(!blocking) {
            warn!("metrics endpoint: {error}");
        }
        for _ in 0..ACCEPT_ROUND {
            let accepted = listener.accept();
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match accepted {
                Ok((stream, _)) => admit(stream, &mut pending, pages, round),
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) => {
                    // EMFILE and the like pass; the loop must not end, and
                    // must not spin on them either.
                    warn!("metrics endpoint: accept failed: {error}");
                    std::thread::sleep(Duration::from_millis(100));
                    break;
                }
            }
            if blocking {
                break;
            }
        }
        pending.retain_mut(|connection| !progress(connection, pages));
        if !pending.is_empty() {
            std::thread::sleep(POLL);
        }
    }
}

/// Reads a new connection at once and answers it if its request is in;
/// otherwise holds it, making room as the module's comment says.
fn admit(stream: TcpStream, pending: &mut VecDeque<Pending>, pages: &Pages, round: u64) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let mut connection = Pending {
        stream,
        head: Vec::new(),
        round,
        deadline: Instant::now() + HEAD_DEADLINE,
    };
    if progress(&mut connection, pages) {
        return;
    }
    if pending.len() >= MAX_CONNECTIONS {
        // First let go of what is done with: a request now complete (it is
        // answered), a client gone.
        pending.retain_mut(|held| !progress(held, pages));
    }
    if pending.len() >= MAX_CONNECTIONS {
        // Held in the order accepted: the oldest is the first that may go.
        if evictable(pending.front(), round) {
            debug!("metrics endpoint: {MAX_CONNECTIONS} connections open; closing the oldest");
            pending.pop_front();
        } else {
            debug!(
                "metrics endpoint: {MAX_CONNECTIONS} connections open, all new; closing the newest"
            );
            return;
        }
    }
    pending.push_back(connection);
}

/// Whether `oldest` (held, request not in yet) may be closed to make room
/// for a connection accepted in `round`.
fn evictable(oldest: Option<&Pending>, round: u64) -> bool {
    oldest.is_some_and(|held| held.round != round)
}

/// Reads what has come in on `connection` and answers it once its head is
/// complete, refused or overdue. True when the connection is done with.
fn progress(connection: &mut Pending, pages: &Pages) -> bool {
    let mut chunk = [0u8; 2048];
    loop {
        let room = HEAD_LIMIT.saturating_sub(connection.head.len());
        let Some(buffer) = chunk.get_mut(..room.min(2048)) else {
            return true;
        };
        if buffer.is_empty() {
            return answer(connection, &too_large());
        }
        match connection.stream.read(buffer) {
            Ok(0) => return true,
            Ok(n) => {
                connection
                    .head
                    .extend_from_slice(buffer.get(..n).unwrap_or_default());
                match parse(&connection.head) {
                    Some(Ok(asked)) => return answer(connection, &respond(&asked, pages)),
                    Some(Err(refusal)) => return answer(connection, &refusal),
                    None => {}
                }
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= connection.deadline {
                    let late = plain(408, "Request Timeout", "request head too slow\n");
                    return answer(connection, &late);
                }
                return false;
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => {
                debug!("metrics endpoint: {error}");
                return true;
            }
        }
    }
}

/// Writes `response` within the write deadline and closes the connection.
/// Always true: the connection is done with.
fn answer(connection: &mut Pending, response: &[u8]) -> bool {
    let stream = &mut connection.stream;
    let written = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(WRITE_DEADLINE)))
        .and_then(|()| stream.write_all(response))
        .and_then(|()| stream.flush());
    if let Err(error) = written {
        debug!("metrics endpoint: writing a response: {error}");
    }
    // Say we are done; what the client sent beyond the head is not read.
    let _ = stream.shutdown(Shutdown::Write);
    true
}

/// What a request asked for, as far as the answer depends on it.
struct Asked {
    head_only: bool,
    path: String,
}

/// The request in `head` if it is complete, or the response that refuses
/// it; None while it is incomplete.
fn parse(head: &[u8]) -> Option<Result<Asked, Vec<u8>>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {
            let method = request.method.unwrap_or_default();
            if method != "GET" && method != "HEAD" {
                return Some(Err(response(
                    405,
                    "Method Not Allowed",
                    "text/plain; charset=utf-8",
                    "Allow: GET, HEAD\r\n",
                    b"only GET and HEAD\n",
                    false,
                )));
            }
            let path = path_of(request.path.unwrap_or_default());
            Some(Ok(Asked {
                head_only: method == "HEAD",
                path,
            }))
        }
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => Some(Err(plain(
            431,
            "Request Header Fields Too Large",
            &format!("too many headers (at most {MAX_HEADERS})\n"),
        ))),
        Err(_) => Some(Err(plain(400, "Bad Request", "not an HTTP request\n"))),
    }
}

/// The path a request target names, without its query: from the origin
/// form (`/readyz?x`) or the absolute form (`http://host:port/readyz`),
/// which a server must accept (RFC 9112, section 3.2.2).
fn path_of(target: &str) -> String {
    let path = match target.split_once("://") {
        Some((scheme, rest)) if !scheme.is_empty() && !scheme.contains('/') => {
            // After the authority; no path at all is "/".
            match rest.find(['/', '?']) {
                Some(at) => rest.get(at..).unwrap_or_default(),
                None => "",
            }
        }
        _ => target,
    };
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    }
}

fn too_large() -> Vec<u8> {
    plain(
        431,
        "Request Header Fields Too Large",
        "request head too large\n",
    )
}

fn respond(asked: &Asked, pages: &Pages) -> Vec<u8> {
    let text = "text/plain; charset=utf-8";
    match asked.path.as_str() {
        "/metrics" => {
            let body = crate::encode(&pages.registry);
            let format = "text/plain; version=0.0.4; charset=utf-8";
            response(200, "OK", format, "", &body, asked.head_only)
        }
        "/healthz" => response(200, "OK", text, "", b"alive\n", asked.head_only),
        "/readyz" => match pages.readiness.check() {
            Ok(()) => response(200, "OK", text, "", b"ready\n", asked.head_only),
            Err(reason) => {
                let body = format!("not ready: {reason}\n");
                let status = "Service Unavailable";
                response(503, status, text, "", body.as_bytes(), asked.head_only)
            }
        },
        _ => response(
            404,
            "Not Found",
            text,
            "",
            b"not found: try /metrics, /healthz or /readyz\n",
            asked.head_only,
        ),
    }
}

fn plain(status: u16, reason: &str, body: &str) -> Vec<u8> {
    response(
        status,
        reason,
        "text/plain; charset=utf-8",
        "",
        body.as_bytes(),
        false,
    )
}

fn response(
    status: u16,
    reason: &str,
    content_type: &str,
    extra_headers: &str,
    body: &[u8],
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\n{extra_headers}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(head: &str) -> String {
        match parse(head.as_bytes()) {
            Some(Ok(asked)) => asked.path,
            Some(Err(refusal)) => panic!("refused: {}", String::from_utf8_lossy(&refusal)),
            None => panic!("incomplete"),
        }
    }

    #[test]
    fn the_absolute_form_names_the_same_path() {
        assert_eq!(path("GET /readyz HTTP/1.1\r\n\r\n"), "/readyz");
        assert_eq!(path("GET /readyz?x=/y HTTP/1.1\r\n\r\n"), "/readyz");
        assert_eq!(
            path("GET http://127.0.0.1/readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
            "/readyz"
        );
        assert_eq!(
            path("GET HTTP://[::1]:9464/metrics?a=1 HTTP/1.1\r\n\r\n"),
            "/metrics"
        );
        assert_eq!(path("GET http://127.0.0.1:9464 HTTP/1.1\r\n\r\n"), "/");
        assert_eq!(path("GET http://host?q HTTP/1.1\r\n\r\n"), "/");
        // Not an absolute form: a path that merely holds "://".
        assert_eq!(path("GET /a://b HTTP/1.1\r\n\r\n"), "/a://b");
    }

    fn with_headers(count: usize) -> String {
        let mut head = String::from("GET /healthz HTTP/1.1\r\n");
        for i in 0..count {
            head.push_str(&format!("X-H{i}: {i}\r\n"));
        }
        head + "\r\n"
    }

    #[test]
    fn forty_short_headers_are_a_request_and_too_many_says_so() {
        assert_eq!(path(&with_headers(40)), "/healthz");
        assert_eq!(path(&with_headers(MAX_HEADERS)), "/healthz");
        let refusal = match parse(with_headers(MAX_HEADERS + 1).as_bytes()) {
            Some(Err(refusal)) => String::from_utf8_lossy(&refusal).into_owned(),
            _ => panic!("more than {MAX_HEADERS} headers accepted"),
        };
        assert!(refusal.starts_with("HTTP/1.1 431 "), "{refusal}");
        assert!(
            refusal.ends_with("too many headers (at most 100)\n"),
            "{refusal}"
        );
    }

    fn held(round: u64) -> Option<Pending> {
        let listener = TcpListener::bind("127.0.0.1:0").ok()?;
        let stream = TcpStream::connect(listener.local_addr().ok()?).ok()?;
        Some(Pending {
            stream,
            head: Vec::new(),
            round,
            deadline: Instant::now() + HEAD_DEADLINE,
        })
    }

    #[test]
    fn only_a_connection_held_since_an_earlier_round_makes_room() {
        assert!(!evictable(None, 7));
        let this_round = held(7).expect("a loopback connection");
        assert!(!evictable(Some(&this_round), 7));
        let earlier = held(6).expect("a loopback connection");
        assert!(evictable(Some(&earlier), 7));
    }
}
