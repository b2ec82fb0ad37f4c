//! The run's sessions with the broker: each one opens the request path and
//! a reply queue on a channel of `common::lifecycle`, which reconnects after
//! a lost connection for as long as `options.reconnect_for` allows.

use crate::export::Broker;
use crate::options::Options;
use crate::rpc::RpcSession;
use anyhow::Result;
use common::lifecycle::{self, Ended, Policy, CLOSE_WAIT};
use crossbeam_channel::Receiver;
use log::{info, warn};

/// What the sessions of a run were.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    pub reconnects: u64,
    /// From the first connection's server properties.
    pub broker: Option<Broker>,
    /// A stop (Ctrl-C, SIGTERM) came while connecting or waiting to
    /// reconnect: the run's last session is gone and no new one was opened.
    pub stopped: bool,
}

/// Runs `work` with a session and its number until it succeeds, on a new
/// session after each lost connection. A first connection that fails is an
/// error at once. `interrupt` (Ctrl-C, SIGTERM) is handed to every session,
/// and also ends a wait to reconnect, or a connection attempt, at once. What
/// the sessions were goes to `seen`, also when they end in an error (the
/// summary of a failed run gives it).
pub fn with_sessions(
    options: &Options,
    interrupt: Option<&Receiver<()>>,
    seen: &mut Sessions,
    idle: lifecycle::Idle<'_>,
    work: &mut dyn FnMut(&RpcSession, u64) -> Result<()>,
) -> Result<()> {
    let mut sessions = 0u64;
    let broker = &mut seen.broker;
    let policy = Policy::GiveUpAfter {
        limit: options.reconnect_for,
        stop: interrupt,
    };
    let ended = lifecycle::run_sessions_idle(&options.connection, policy, idle, &mut |session| {
        let rpc = RpcSession::open(
            session,
            &options.exchange,
            &options.routing_key,
            options.reply_mode,
        )?
        .with_interrupt(interrupt.cloned());
        info!(
            "connected to {}; requests to exchange {:?} with routing key {:?}, replies on {:?}",
            session.url,
            options.exchange,
            options.routing_key,
            rpc.reply_queue()
        );
        broker.get_or_insert_with(|| Broker::from_server_properties(session.server_properties));
        session.ready();
        sessions += 1;
        seen.reconnects = sessions.saturating_sub(1);
        let worked = work(&rpc, session.number);
        // Bound what follows (a cancel waits for the broker, also when the
        // consumer is dropped): a blocked connection is cut at once, and
        // the broker drops the reply queue with it.
        let blocked = session.is_blocked();
        session.close_within(CLOSE_WAIT);
        worked?;
        if !blocked {
            // The work is done: a failure to stop consuming politely changes nothing.
            if let Err(error) = rpc.close() {
                warn!("closing the reply queue: {error:#}");
            }
        }
        Ok(())
    })?;
    seen.stopped = ended == Ended::Stopped;
    Ok(())
}
