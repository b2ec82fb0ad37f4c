//! A TCP proxy in front of the broker, so that a test can take the broker
//! away from one program (and give it back) without touching the broker that
//! every test shares.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both ways.
    Open,
    /// Closes every connection it accepts at once: the broker is away.
    Refusing,
    /// Accepts connections and forwards nothing until the mode changes: a
    /// broker that answers TCP but not yet AMQP.
    Holding,
}

struct State {
    mode: Mode,
    /// Both ends of every connection now open, to cut them all.
    streams: Vec<TcpStream>,
    /// Connections accepted while holding, not yet let through.
    held: Vec<TcpStream>,
    accepted: u64,
}

/// Listens on a free local port; dropping it stops it and cuts everything.
pub struct Proxy {
    port: u16,
    target: SocketAddr,
    state: Arc<Mutex<State>>,
    closing: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy to the tests' broker (the host and port of `AMQP_URL`).
    pub fn to_broker() -> Result<Proxy> {
        let settings = crate::connection_settings();
        let url = settings.urls.first().context("no broker URL")?;
        let target = std::net::ToSocketAddrs::to_socket_addrs(&(url.host.as_str(), url.port))?
            .next()
            .context("the broker's host resolves to no address")?;
        Proxy::start(target)
    }

    pub fn start(target: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Open,
            streams: Vec::new(),
            held: Vec::new(),
            accepted: 0,
        }));
        let closing = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (state, closing) = (state.clone(), closing.clone());
            std::thread::Builder::new()
                .name("proxy".into())
                .spawn(move || accept(listener, target, &state, &closing))?
        };
        Ok(Proxy {
            port,
            target,
            state,
            closing,
            acceptor: Some(acceptor),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `url` (the tests' broker URL, with its credentials, naming the
    /// broker's address and port as the proxy's target) pointed at the proxy
    /// instead. Panics if `url` does not name the target: the test would
    /// otherwise bypass the proxy without a word.
    pub fn url_for(&self, url: &str) -> String {
        let from = format!("@{}:{}/", self.target.ip(), self.target.port());
        let to = format!("@127.0.0.1:{}/", self.port);
        assert!(
            url.contains(&from),
            "the broker URL does not name {from}: write AMQP_URL with the address and port"
        );
        url.replace(&from, &to)
    }

    /// Cuts every open connection and closes each new one at once.
    pub fn refuse(&self) {
        self.set_mode(Mode::Refusing);
    }

    /// Holds new connections (accepted, nothing forwarded) until `open`.
    pub fn hold(&self) {
        self.set_mode(Mode::Holding);
    }

    /// Forwards again, held connections included.
    pub fn open(&self) {
        self.set_mode(Mode::Open);
    }

    /// Connections accepted so far, whatever became of them.
    pub fn accepted(&self) -> u64 {
        self.state.lock().map(|s| s.accepted).unwrap_or(0)
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.state.lock().map(|s| s.held.len()).unwrap_or(0)
    }

    fn set_mode(&self, mode: Mode) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.mode = mode;
        match mode {
            Mode::Refusing => {
                let state = &mut *state;
                for stream in state.streams.drain(..).chain(state.held.drain(..)) {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
            Mode::Open => {
                let held: Vec<TcpStream> = state.held.drain(..).collect();
                for client in held {
                    if let Err(error) = forward(client, self.target, &mut state) {
                        eprintln!("testkit proxy: {error:#}");
                    }
                }
            }
            Mode::Holding => {}
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        self.set_mode(Mode::Refusing);
        // Wakes the acceptor, which then sees `closing`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept(listener: TcpListener, target: SocketAddr, state: &Mutex<State>, closing: &AtomicBool) {
    for client in listener.incoming() {
        if closing.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(mut state) = state.lock() else { return };
        state.accepted += 1;
        match state.mode {
            Mode::Refusing => {
                let _ = client.shutdown(Shutdown::Both);
            }
            Mode::Holding => state.held.push(client),
            Mode::Open => {
                if let Err(error) = forward(client, target, &mut state) {
                    eprintln!("testkit proxy: {error:#}");
                }
            }
        }
    }
}

/// Connects `client` to `target`, with a thread copying each way.
fn forward(client: TcpStream, target: SocketAddr, state: &mut State) -> Result<()> {
    let server = TcpStream::connect(target).context("cannot reach the broker")?;
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    state.streams.push(client.try_clone()?);
    state.streams.push(server.try_clone()?);
    let (client_in, server_out) = (client.try_clone()?, server.try_clone()?);
    std::thread::spawn(move || copy(client_in, server_out));
    std::thread::spawn(move || copy(server, client));
    Ok(())
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(buffer.get(..n).unwrap_or_default()).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
