//! The run's sessions with the broker: each one opens the request path and
//! a reply queue on a channel of `common::lifecycle`, which reconnects after
//! a lost connection for as long as `options.reconnect_for` allows.

use crate::options::Options;
use crate::rpc::RpcSession;
use anyhow::Result;
use common::lifecycle::{self, Policy};
use log::{info, warn};

/// Runs `work` with a session and its number until it succeeds, on a new
/// session after each lost connection. A first connection that fails is an
/// error at once. Returns how many times it reconnected.
pub fn with_sessions(
    options: &Options,
    work: &mut dyn FnMut(&RpcSession, u64) -> Result<()>,
) -> Result<u64> {
    let mut sessions = 0u64;
    let policy = Policy::GiveUpAfter(options.reconnect_for);
    lifecycle::run_sessions(&options.connection, policy, &mut |session| {
        let rpc = RpcSession::open(
            session.channel,
            &options.exchange,
            &options.routing_key,
            options.reply_mode,
        )?;
        info!(
            "connected to {}; requests to exchange {:?} with routing key {:?}, replies on {:?}",
            session.url,
            options.exchange,
            options.routing_key,
            rpc.reply_queue()
        );
        session.ready();
        sessions += 1;
        work(&rpc, session.number)?;
        // The work is done: a failure to stop consuming politely changes nothing.
        if let Err(error) = rpc.close() {
            warn!("closing the reply queue: {error:#}");
        }
        Ok(())
    })?;
    Ok(sessions.saturating_sub(1))
}
