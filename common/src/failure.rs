//! The kinds of failure, and which of them reconnecting may cure. Errors
//! travel as `anyhow::Error`; `exit::exit_code` turns the first of these in
//! the chain into the program's exit code.

use std::fmt;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Bad flags, URL or files: exit 2.
    Usage(String),
    /// The broker refused us in a way that would happen again (bad
    /// credentials, a channel error such as PRECONDITION_FAILED): exit 3.
    Broker(String),
    /// The connection could not be made or was lost; trying again may help
    /// (the broker is restarting, the network blipped): exit 3 when we stop
    /// trying.
    Disconnected(String),
    /// The broker returned a mandatory request: no queue is bound for it: exit 4.
    Unroutable(String),
    /// No reply within the timeout: exit 5.
    Timeout(String),
    /// The broker kept the connection blocked (a resource alarm) longer
    /// than fib-client's `--max-blocked`: exit 3. Not a lost connection:
    /// reconnecting would not help, the alarm is the broker's.
    Blocked(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(m)
            | Failure::Broker(m)
            | Failure::Disconnected(m)
            | Failure::Unroutable(m)
            | Failure::Timeout(m)
            | Failure::Blocked(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Failure {}

/// Whether reconnecting may cure `error`: the connection was lost or could
/// not be made, as opposed to a refusal that would simply happen again.
pub fn is_transient(error: &anyhow::Error) -> bool {
    for cause in error.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return matches!(failure, Failure::Disconnected(_));
        }
        if let Some(error) = cause.downcast_ref::<amiquip::Error>() {
            return amqp_error_is_transient(error);
        }
    }
    false
}

/// How long channel-level errors that a cluster raises for a moment (see
/// [`is_passing_channel_error`]) may go on, session after session with no
/// session getting ready in between, before they are taken as final: about
/// what a node takes to restart, with room to spare.
pub const CHANNEL_ERROR_LIMIT: Duration = Duration::from_secs(300);

/// Whether `error` is a channel-level error that a cluster raises for a
/// moment and a new session may cure: 404 NOT_FOUND because a classic
/// queue's home node is "down or inaccessible" (restarting), or a channel
/// closed on a timeout (a quorum queue electing its leader). Another 404
/// (an exchange deleted under a run) is the broker's refusal as before. Unlike a lost connection, such an error could also
/// be final (a node removed from the cluster for good), so it is retried
/// for [`CHANNEL_ERROR_LIMIT`] only. A 403 or 406 is never one of these: the
/// broker would refuse again.
pub fn is_passing_channel_error(error: &anyhow::Error) -> bool {
    for cause in error.chain() {
        if cause.downcast_ref::<Failure>().is_some() {
            return false;
        }
        if let Some(error) = cause.downcast_ref::<amiquip::Error>() {
            return match error {
                amiquip::Error::ServerClosedChannel { code, message, .. } => {
                    let message = message.to_ascii_lowercase();
                    !matches!(code, 403 | 406)
                        && (message.contains("down or inaccessible") || message.contains("timeout"))
                }
                _ => false,
            };
        }
    }
    false
}

/// The bound on passing channel errors: when the first of a run of them
/// came, the run ending when a session gets ready.
#[derive(Debug, Clone, Default)]
pub struct ChannelErrors {
    since: Option<Instant>,
}

impl ChannelErrors {
    /// One more passing channel error at `now`: whether it may still be
    /// retried (less than [`CHANNEL_ERROR_LIMIT`] since the first).
    pub fn retry(&mut self, now: Instant) -> bool {
        let since = *self.since.get_or_insert(now);
        now.saturating_duration_since(since) < CHANNEL_ERROR_LIMIT
    }

    /// A session got ready: the run is over.
    pub fn reset(&mut self) {
        self.since = None;
    }
}

/// amiquip's errors that mean "the connection is gone", not "you asked for
/// something the broker will refuse again".
pub fn amqp_error_is_transient(error: &amiquip::Error) -> bool {
    use amiquip::Error::*;
    match error {
        // 403 ACCESS_REFUSED, 530 NOT_ALLOWED (e.g. no such vhost): permanent.
        ServerClosedConnection { code, .. } => !matches!(code, 403 | 530),
        UnexpectedSocketClose
        | IoErrorReadingSocket { .. }
        | IoErrorWritingSocket { .. }
        | FailedToConnect { .. }
        | ConnectionTimeout
        | MissedServerHeartbeats
        | ClientClosedConnection
        | EventLoopClientDropped
        | EventLoopDropped => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_are_transient_refusals_are_not() {
        let forced = amiquip::Error::ServerClosedConnection {
            code: 320,
            message: "CONNECTION_FORCED - broker forced connection closure".into(),
        };
        assert!(is_transient(
            &anyhow::Error::new(forced).context("publishing")
        ));
        let refused = amiquip::Error::ServerClosedChannel {
            channel_id: 1,
            code: 406,
            message: "PRECONDITION_FAILED".into(),
        };
        assert!(!is_transient(&anyhow::Error::new(refused)));
        assert!(!is_transient(&anyhow::Error::new(
            amiquip::Error::InvalidCredentials
        )));
        assert!(is_transient(&Failure::Disconnected("gone".into()).into()));
        assert!(!is_transient(&Failure::Broker("refused".into()).into()));
        assert!(!is_transient(&anyhow::anyhow!("other")));
    }

    fn channel_closed(code: u16, message: &str) -> anyhow::Error {
        anyhow::Error::new(amiquip::Error::ServerClosedChannel {
            channel_id: 1,
            code,
            message: message.into(),
        })
        .context("cannot declare queue")
    }

    #[test]
    fn a_cluster_s_passing_channel_errors_are_told_from_final_ones() {
        let home_down = channel_closed(
            404,
            "NOT_FOUND - home node 'rabbit@n1' of durable queue 'q' in vhost '/' is down or inaccessible",
        );
        assert!(is_passing_channel_error(&home_down));
        assert!(!is_transient(&home_down), "bounded, not retried forever");
        let timeout = channel_closed(541, "INTERNAL_ERROR - timeout waiting for the leader");
        let deleted = channel_closed(404, "NOT_FOUND - no exchange 'x' in vhost '/'");
        assert!(!is_passing_channel_error(&deleted), "a refusal, as before");
        assert!(is_passing_channel_error(&timeout));
        for final_error in [
            channel_closed(406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type'"),
            channel_closed(403, "ACCESS_REFUSED - timeout in the message"),
            channel_closed(405, "RESOURCE_LOCKED - cannot obtain exclusive access"),
        ] {
            assert!(!is_passing_channel_error(&final_error), "{final_error:#}");
        }
        // A failure already classified, and connection-level errors, are
        // not channel errors.
        let classified: anyhow::Error = Failure::Broker("stopped consuming".into()).into();
        assert!(!is_passing_channel_error(&classified));
        let connection = anyhow::Error::new(amiquip::Error::ServerClosedConnection {
            code: 404,
            message: "NOT_FOUND".into(),
        });
        assert!(!is_passing_channel_error(&connection));
    }

    #[test]
    fn passing_channel_errors_are_retried_for_a_bounded_time() {
        let mut errors = ChannelErrors::default();
        let start = Instant::now();
        assert!(errors.retry(start));
        assert!(errors.retry(start + CHANNEL_ERROR_LIMIT - Duration::from_millis(1)));
        assert!(!errors.retry(start + CHANNEL_ERROR_LIMIT));
        // A session that got ready in between starts the count again.
        errors.reset();
        assert!(errors.retry(start + 2 * CHANNEL_ERROR_LIMIT));
    }
}
