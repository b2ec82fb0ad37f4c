//! The kinds of failure, and which of them reconnecting may cure. Errors
//! travel as `anyhow::Error`; `exit::exit_code` turns the first of these in
//! the chain into the program's exit code.

use std::fmt;

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
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(m)
            | Failure::Broker(m)
            | Failure::Disconnected(m)
            | Failure::Unroutable(m)
            | Failure::Timeout(m) => f.write_str(m),
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
}
