//! The failures that decide a program's exit code. Errors travel as
//! `anyhow::Error`; `exit_code` finds the first of these in the chain.

use std::fmt;

pub const EXIT_OK: i32 = 0;
pub const EXIT_WRONG_REPLIES: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_BROKER: i32 = 3;
pub const EXIT_UNROUTABLE: i32 = 4;
pub const EXIT_TIMEOUT: i32 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Bad flags, URL or files: exit 2.
    Usage(String),
    /// Cannot connect, or the broker closed the connection or a channel: exit 3.
    Broker(String),
    /// The broker returned a mandatory request: no queue is bound for it: exit 4.
    Unroutable(String),
    /// No reply within the timeout: exit 5.
    Timeout(String),
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Broker(_) => EXIT_BROKER,
            Failure::Unroutable(_) => EXIT_UNROUTABLE,
            Failure::Timeout(_) => EXIT_TIMEOUT,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(m)
            | Failure::Broker(m)
            | Failure::Unroutable(m)
            | Failure::Timeout(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Failure {}

/// The exit code for an error: that of the first [`Failure`] in its chain; an
/// amiquip error (the broker or the connection failed) counts as a broker
/// failure; anything else exits 1.
pub fn exit_code(error: &anyhow::Error) -> i32 {
    for cause in error.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return failure.exit_code();
        }
        if cause.is::<amiquip::Error>() {
            return EXIT_BROKER;
        }
    }
    EXIT_WRONG_REPLIES
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn finds_the_failure_under_context() {
        let error = Err::<(), _>(Failure::Timeout("no reply".into()))
            .context("request 7")
            .unwrap_err();
        assert_eq!(exit_code(&error), EXIT_TIMEOUT);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), EXIT_WRONG_REPLIES);
        let broker = anyhow::Error::new(amiquip::Error::ClientClosedConnection).context("x");
        assert_eq!(exit_code(&broker), EXIT_BROKER);
    }
}
