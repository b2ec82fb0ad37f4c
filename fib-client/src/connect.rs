//! Sessions with the broker, renewed when the connection is lost.

use crate::options::Options;
use crate::rpc::RpcSession;
use anyhow::{Context, Result};
use common::backoff::Backoff;
use common::failure::{self, Failure};
use log::{info, warn};
use std::time::Instant;

/// Runs `work` on a fresh session until it succeeds. If the connection is
/// lost after the first session was up, reconnects with capped backoff and
/// calls `work` again with the next session number, for as long as
/// `options.reconnect_for` allows; then gives up with exit 3. A first
/// connection that fails is an error at once. Returns how many times it
/// reconnected.
pub fn with_sessions(
    options: &Options,
    work: &mut dyn FnMut(&RpcSession, u64) -> Result<()>,
) -> Result<u64> {
    let mut backoff = Backoff::default();
    let mut session_number = 0u64;
    let mut sessions = 0u64;
    let mut connected_once = false;
    let mut lost_since: Option<Instant> = None;
    loop {
        let attempt = session(options, &mut |session| {
            connected_once = true;
            sessions += 1;
            lost_since = None;
            backoff.reset();
            work(session, session_number)
        });
        let error = match attempt {
            Ok(()) => return Ok(sessions - 1),
            Err(error) if connected_once && failure::is_transient(&error) => error,
            Err(error) => return Err(error),
        };
        let since = *lost_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= options.reconnect_for {
            return Err(Failure::Disconnected(format!(
                "gave up reconnecting after {:.1} s: {error:#}",
                options.reconnect_for.as_secs_f64()
            ))
            .into());
        }
        let delay = backoff.next_delay();
        warn!("connection lost: {error:#}; reconnecting in {delay:?}");
        // Nothing to wait on but time: the broker is away.
        std::thread::sleep(delay);
        session_number += 1;
    }
}

fn session(options: &Options, work: &mut dyn FnMut(&RpcSession) -> Result<()>) -> Result<()> {
    let mut connection = common::open_connection(&options.connection)?;
    let channel = connection
        .open_channel(None)
        .context("cannot open a channel")?;
    let session = RpcSession::open(
        &channel,
        &options.exchange,
        &options.routing_key,
        options.reply_mode,
    )?;
    info!(
        "connected to {}; requests to exchange {:?} with routing key {:?}, replies on {:?}",
        options.connection.url,
        options.exchange,
        options.routing_key,
        session.reply_queue()
    );
    work(&session)?;
    // The work is done: a failure to close politely changes nothing.
    let closed = session
        .close()
        .and_then(|()| Ok(channel.close()?))
        .and_then(|()| Ok(connection.close()?));
    if let Err(error) = closed {
        warn!("closing the connection: {error:#}");
    }
    Ok(())
}
