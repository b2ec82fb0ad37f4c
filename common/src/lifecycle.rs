//! The connection lifecycle, written once for both programs: connect, open a
//! channel, hand it to the program's work, and when the connection is lost,
//! back off and do it all again, until the work is done, a stop is asked for,
//! or the policy gives up.
//!
//! The work declares what it needs on the channel and calls
//! [`Session::ready`] once it is serving; from then on a lost connection is
//! worth retrying. A session that never got ready on the very first attempt
//! is an error at once: the settings are probably wrong, and a user is better
//! told now than after minutes of retries.
//!
//! A session also carries the broker's `connection.blocked` notifications
//! (resource alarms, see [`crate::blocking`]) for the work to select on, and
//! bounds the end of every session: closing a connection waits for the
//! broker's answer, which a blocked or frozen broker never sends, so after
//! [`CLOSE_WAIT`] (or at once if the connection is blocked) the socket is
//! cut instead.

use crate::backoff::Backoff;
use crate::blocking::{self, BlockedState, Blocking};
use crate::connection::{open_any, AmqpUrl, ConnectionSettings, Opened, Socket};
use crate::failure::{self, Failure};
use amiquip::{Channel, Connection, ConnectionBlockedNotification, FieldTable};
use anyhow::{Context, Result};
use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender, TryRecvError};
use log::{info, warn};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a session's polite end (cancelling consumers, closing the
/// channel and the connection) may take before the socket is cut. Each step
/// normally takes a round trip.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// When to stop reconnecting. Either way a stop (a message on the receiver,
/// or its sender dropped: a signal) ends the wait for the next attempt and a
/// connection attempt at once, and a reconnection that succeeds after a stop
/// is closed before the work sees it: nothing more is sent.
#[derive(Debug, Clone, Copy)]
pub enum Policy<'a> {
    /// Until a stop: the server, which should outlive any broker outage.
    UntilStopped(&'a Receiver<()>),
    /// Until the connection has been lost for `limit`, or a stop: the
    /// client, whose run has a deadline (and no stop in a one-off call).
    GiveUpAfter {
        limit: Duration,
        stop: Option<&'a Receiver<()>>,
    },
}

impl<'a> Policy<'a> {
    fn stop(&self) -> Option<&'a Receiver<()>> {
        match *self {
            Policy::UntilStopped(stop) => Some(stop),
            Policy::GiveUpAfter { stop, .. } => stop,
        }
    }
}

/// Whether a stop has been asked for (without waiting).
fn stopped(stop: Option<&Receiver<()>>) -> bool {
    stop.is_some_and(|stop| !matches!(stop.try_recv(), Err(TryRecvError::Empty)))
}

/// What runs while no session does (between connection attempts, and
/// during one): called at once, then again each time the instant it
/// returned has passed, as the client's `--interval` lines need.
pub type Idle<'a> = Option<&'a mut dyn FnMut() -> Option<Instant>>;

/// Calls `idle` if it is due (or has not said when it is); returns when it
/// is due next.
fn call_idle(idle: &mut Idle<'_>, due: &mut Option<Instant>) -> Option<Instant> {
    let idle = idle.as_mut()?;
    if due.is_none_or(|at| at <= Instant::now()) {
        *due = idle();
    }
    *due
}

/// Waits `delay`, or less if a stop comes first; true if it did. `idle`
/// is called on time meanwhile.
fn wait_or_stop(stop: Option<&Receiver<()>>, delay: Duration, idle: &mut Idle<'_>) -> bool {
    let until = Instant::now() + delay;
    let never = crossbeam_channel::never();
    let stop = stop.unwrap_or(&never);
    let mut due = None;
    loop {
        let next = call_idle(idle, &mut due);
        let wake = next.map_or(until, |next| next.min(until));
        select! {
            recv(stop) -> _ => return true,
            recv(crossbeam_channel::at(wake)) -> _ => {
                if Instant::now() >= until {
                    return false;
                }
            }
        }
    }
}

/// One connection's worth of work: its channel and where it is.
pub struct Session<'a> {
    pub channel: &'a Channel,
    /// The broker this session is on (its `Display` hides the password).
    pub url: &'a AmqpUrl,
    /// 0 for the first session, one more after each reconnection.
    pub number: u64,
    /// What the broker said of itself when the connection opened (product,
    /// version, ...).
    pub server_properties: &'a FieldTable,
    /// The broker's `connection.blocked`/`unblocked` notifications: hand
    /// each to [`Session::note`].
    pub blocked: Receiver<ConnectionBlockedNotification>,
    blocking: RefCell<Blocking>,
    socket: Arc<Socket>,
    /// Armed by `close_within`: cuts the socket at its deadline.
    cutter: RefCell<Option<Cutter>>,
    /// The socket was cut on purpose, because the connection was blocked.
    cut: Cell<bool>,
    ready: Cell<bool>,
    /// For channels besides `channel`: see [`Session::open_channel`].
    connection: RefCell<&'a mut Connection>,
}

/// What a `connection.blocked` notification changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// The connection is blocked from now on, for this reason.
    Blocked(String),
    /// It is no longer blocked, after this long.
    Unblocked(Duration),
    /// Nothing (a repeated notification).
    Unchanged,
}

impl Session<'_> {
    /// The work is set up and serving: a later loss is worth a reconnection,
    /// and the backoff starts again from its first delay.
    pub fn ready(&self) {
        self.ready.set(true);
    }

    /// Another channel on this session's connection, for a call that may
    /// fail without ending the session: a passive declare of something
    /// missing closes its channel with 404.
    pub fn open_channel(&self) -> Result<Channel> {
        let mut connection = self
            .connection
            .try_borrow_mut()
            .map_err(|_| anyhow::anyhow!("the connection is busy opening a channel"))?;
        connection
            .open_channel(None)
            .context("cannot open another channel")
    }

    /// Records and logs a notification from [`Session::blocked`] and says
    /// what changed.
    pub fn note(&self, notification: ConnectionBlockedNotification) -> Block {
        let now = Instant::now();
        let mut blocking = self.blocking.borrow_mut();
        match notification {
            ConnectionBlockedNotification::Blocked(reason) => {
                if !blocking.block(&reason, now) {
                    return Block::Unchanged;
                }
                warn!(
                    "the broker at {} blocked the connection: {} (a resource alarm); waiting \
                     until it clears, not reconnecting",
                    self.url,
                    blocking::printable(&reason)
                );
                Block::Blocked(reason)
            }
            ConnectionBlockedNotification::Unblocked => match blocking.unblock(now) {
                Some(lasted) => {
                    info!(
                        "the broker at {} unblocked the connection after {}",
                        self.url,
                        crate::text::duration(lasted)
                    );
                    Block::Unblocked(lasted)
                }
                None => Block::Unchanged,
            },
        }
    }

    /// How long the block in force has lasted, if the broker blocks this
    /// connection now.
    pub fn block_in_force(&self) -> Option<Duration> {
        let blocking = self.blocking.borrow();
        let (since, _) = blocking.current()?;
        Some(since.elapsed())
    }

    /// Whether the broker blocks this connection now.
    pub fn is_blocked(&self) -> bool {
        self.blocking.borrow().is_blocked()
    }

    /// Makes this session's blocks count in `shared` (the program's view)
    /// too, the one in force included.
    pub fn report_blocks_to(&self, shared: &BlockedState) {
        let mut blocking = self.blocking.borrow_mut();
        let mut reporting = Blocking::reporting_to(shared.clone());
        if let Some((since, reason)) = blocking.current() {
            reporting.block(reason, since);
        }
        *blocking = reporting;
    }

    /// Bounds the rest of this session: if it has not ended (connection
    /// closed) within `limit`, its socket is cut, which fails every wait
    /// on the broker at once. A blocked connection is cut now: the broker
    /// reads nothing from it, so no cancel or close could be answered.
    /// Call it before a graceful stop's cancels and closes, and before
    /// dropping a consumer (its drop cancels it and waits).
    pub fn close_within(&self, limit: Duration) {
        if self.cut.get() {
            return;
        }
        if self.is_blocked() {
            // Said once, however many steps of the end ask for it.
            self.cut.set(true);
            info!(
                "cutting the blocked connection to {} instead of closing it",
                self.url
            );
            self.socket.cut();
            return;
        }
        let mut cutter = self.cutter.borrow_mut();
        if cutter.is_none() {
            *cutter = Some(Cutter::arm(
                self.socket.clone(),
                limit,
                self.url.to_string(),
            ));
        }
    }
}

/// Cuts a socket after a delay unless dropped first.
struct Cutter {
    /// Dropping it wakes the thread, which then leaves the socket alone.
    _disarm: Sender<()>,
}

impl Cutter {
    fn arm(socket: Arc<Socket>, limit: Duration, url: String) -> Cutter {
        let (disarm, disarmed) = crossbeam_channel::bounded::<()>(0);
        let fallback = socket.clone();
        let spawned = std::thread::Builder::new()
            .name("close-wait".into())
            .spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit) {
                    warn!(
                        "the broker at {url} did not answer the close within {:.1} s; \
                         cutting the connection",
                        limit.as_secs_f64()
                    );
                    socket.cut();
                }
            });
        if spawned.is_err() {
            // No thread, no wait: cut now rather than risk hanging.
            warn!("cannot start a thread to bound the close; cutting the connection");
            fallback.cut();
        }
        Cutter { _disarm: disarm }
    }
}

/// How [`run_sessions`] ended without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended<T> {
    /// The work returned this, on the last session.
    Done(T),
    /// A stop was asked for while connecting or waiting to reconnect; the
    /// work did not get the session that followed.
    Stopped,
}

/// Runs `work` on a fresh session until it returns. When it fails with a
/// lost connection after some session got ready, reconnects with capped
/// backoff and calls it again with the next session number, as `policy`
/// allows. Any other failure is returned as it is.
pub fn run_sessions<T>(
    settings: &ConnectionSettings,
    policy: Policy<'_>,
    work: &mut dyn FnMut(&Session<'_>) -> Result<T>,
) -> Result<Ended<T>> {
    run_sessions_idle(settings, policy, None, work)
}

/// [`run_sessions`], calling `idle` on time whenever no session runs:
/// while connecting, and while waiting to reconnect (never during the
/// first connection attempt, whose wait is the start's own).
pub fn run_sessions_idle<T>(
    settings: &ConnectionSettings,
    policy: Policy<'_>,
    mut idle: Idle<'_>,
    work: &mut dyn FnMut(&Session<'_>) -> Result<T>,
) -> Result<Ended<T>> {
    let mut backoff = Backoff::default();
    let mut ever_ready = false;
    let mut lost_since: Option<Instant> = None;
    let mut channel_errors = failure::ChannelErrors::default();
    let mut number = 0u64;
    // Where the next attempt starts: the first address at first, then the
    // one after the address that was lost (round-robin over a cluster).
    let mut start = 0usize;
    let stop = policy.stop();
    loop {
        let mut ready = false;
        let mut on = start;
        let mut no_idle: Idle<'_> = None;
        let idle_now = if number == 0 { &mut no_idle } else { &mut idle };
        let attempt = one_session(settings, number, stop, &mut on, &mut ready, idle_now, work);
        start = (on + 1) % settings.urls.len().max(1);
        if ready {
            ever_ready = true;
            lost_since = None;
            channel_errors.reset();
            backoff.reset();
        }
        let error = match attempt {
            Ok(Some(value)) => return Ok(Ended::Done(value)),
            Ok(None) => return Ok(Ended::Stopped),
            Err(error) if failure::is_transient(&error) && stopped(stop) => {
                return Ok(Ended::Stopped)
            }
            Err(error) if ever_ready && failure::is_transient(&error) => error,
            // A cluster's passing channel error (a queue's node restarting):
            // retried like a lost connection, but for a bounded time.
            Err(error) if ever_ready && failure::is_passing_channel_error(&error) => {
                if !channel_errors.retry(Instant::now()) {
                    let limit = failure::CHANNEL_ERROR_LIMIT.as_secs();
                    return Err(
                        error.context(format!("the broker kept closing the channel for {limit} s"))
                    );
                }
                error
            }
            Err(error) => return Err(error),
        };
        let delay = backoff.next_delay();
        if let Policy::GiveUpAfter { limit, .. } = policy {
            let since = *lost_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= limit {
                return Err(Failure::Disconnected(format!(
                    "gave up reconnecting after {:.1} s: {error:#}",
                    limit.as_secs_f64()
                ))
                .into());
            }
        }
        warn!("connection lost: {error:#}; reconnecting in {delay:?}");
        // The wait for the next attempt is also a wait for a stop.
        if wait_or_stop(stop, delay, &mut idle) {
            return Ok(Ended::Stopped);
        }
        number += 1;
    }
}

/// Opens a connection as `open_any` does, unless a stop comes first: then
/// None at once, and the attempt, left to finish on its own thread, closes
/// whatever connection it still makes.
fn open_unless_stopped(
    settings: &ConnectionSettings,
    start: usize,
    stop: Option<&Receiver<()>>,
    idle: &mut Idle<'_>,
) -> Result<Option<Opened>> {
    if stop.is_none() && idle.is_none() {
        return open_any(settings, start).map(Some);
    }
    if stopped(stop) {
        return Ok(None);
    }
    let (opened_tx, opened) = crossbeam_channel::bounded(1);
    let attempt = settings.clone();
    std::thread::Builder::new()
        .name("connect".into())
        .spawn(move || {
            // After a stop nobody listens: the connection is dropped, which closes it.
            let _ = opened_tx.send(open_any(&attempt, start));
        })
        .context("cannot start a thread to connect")?;
    let never = crossbeam_channel::never();
    let stop_or_never = stop.unwrap_or(&never);
    let mut due = None;
    let result = loop {
        let wake = match call_idle(idle, &mut due) {
            Some(at) => crossbeam_channel::at(at),
            None => crossbeam_channel::never(),
        };
        select! {
            recv(opened) -> result => {
                break result.context("the connecting thread ended without a word")?
            }
            recv(stop_or_never) -> _ => return Ok(None),
            recv(wake) -> _ => {}
        }
    };
    // Both may have been ready at once: a stop wins.
    if stopped(stop) {
        return Ok(None);
    }
    result.map(Some)
}

/// Connect (to the first address from `on` on that answers, whose index
/// then goes to `on`), open a channel, work, close politely. `idle` runs
/// while connecting.
/// None if a stop came before the work began.
fn one_session<T>(
    settings: &ConnectionSettings,
    number: u64,
    stop: Option<&Receiver<()>>,
    on: &mut usize,
    ready: &mut bool,
    idle: &mut Idle<'_>,
    work: &mut dyn FnMut(&Session<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let Some(Opened {
        mut connection,
        index,
        socket,
    }) = open_unless_stopped(settings, *on, stop, idle)?
    else {
        return Ok(None);
    };
    *on = index;
    let socket = Arc::new(socket);
    let url = settings
        .urls
        .get(index)
        .context("open_any returned an address it was not given")?;
    let blocked = connection.listen_for_connection_blocked()?;
    let channel = connection
        .open_channel(None)
        .context("cannot open a channel")?;
    if stopped(stop) {
        // A stop during the connection's last steps: close it unused.
        let _ = connection.close();
        return Ok(None);
    }
    if number > 0 {
        info!("reconnected to {url} (session {number})");
    }
    let server_properties = connection.server_properties().clone();
    let session = Session {
        channel: &channel,
        url,
        number,
        server_properties: &server_properties,
        blocked,
        blocking: RefCell::new(Blocking::default()),
        socket: socket.clone(),
        cutter: RefCell::new(None),
        cut: Cell::new(false),
        ready: Cell::new(false),
        connection: RefCell::new(&mut connection),
    };
    let result = work(&session);
    *ready = session.ready.get();
    // Everything below is bounded: a blocked connection is cut at once (the
    // broker reads nothing from it, so a close could only wait), any other
    // after CLOSE_WAIT.
    session.close_within(CLOSE_WAIT);
    let cutter = session.cutter.take();
    let was_cut = session.cut.get();
    drop(session);
    let outcome = match result {
        Ok(value) if was_cut => {
            // Cut on purpose (blocked): there is nothing left to close.
            drop(channel);
            drop(connection);
            Ok(Some(value))
        }
        Ok(value) => {
            // The work is done: a failure to close politely changes nothing.
            let closed = channel
                .close()
                .and_then(|()| connection.close())
                .map_err(anyhow::Error::from);
            if let Err(error) = closed {
                warn!("closing the connection to {url}: {error:#}");
            }
            Ok(Some(value))
        }
        Err(error) => {
            drop(channel);
            drop(connection);
            Err(error)
        }
    };
    drop(cutter);
    outcome
}
