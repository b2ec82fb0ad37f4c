//! Logging to stderr through `log` + `env_logger`; `RUST_LOG` overrides the
//! level chosen by `--quiet` / `--verbose`, except where credentials live.

use log::{Level, Log, Metadata, Record};
use std::io::Write;

/// Crates that see the broker password. amiquip logs its handshake at debug
/// level, PLAIN response (`"\0user\0password"`) included, and its frames at
/// trace. Their records above [`CREDENTIALS_MAX_LEVEL`] are dropped whatever
/// `RUST_LOG` says: no directive, however specific, lets them through.
pub const CREDENTIAL_CRATES: &[&str] = &["amiquip", "amq_protocol"];

/// The most detailed level a crate of [`CREDENTIAL_CRATES`] may log at. At
/// info and above amiquip says only what happened (a blocked connection,
/// say), never what was sent.
pub const CREDENTIALS_MAX_LEVEL: Level = Level::Info;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Start-up and errors only.
    Quiet,
    Normal,
    Verbose,
}

impl Verbosity {
    pub fn from_flags(quiet: bool, verbose: bool) -> Verbosity {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, true) => Verbosity::Verbose,
            (false, false) => Verbosity::Normal,
        }
    }

    fn default_filter(self, program: &str) -> String {
        let crate_name = program.replace('-', "_");
        match self {
            // Start-up lines are logged with target "startup" so that --quiet keeps them.
            Verbosity::Quiet => "warn,startup=info".to_string(),
            Verbosity::Normal => format!("warn,startup=info,{crate_name}=info,common=info"),
            Verbosity::Verbose => format!("info,{crate_name}=debug,common=debug"),
        }
    }
}

/// Whether a record of this target and level could carry credentials.
pub fn may_carry_credentials(target: &str, level: Level) -> bool {
    level > CREDENTIALS_MAX_LEVEL
        && CREDENTIAL_CRATES.iter().any(|name| {
            target
                .strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// Whether a record is amiquip's warning that the broker closed a channel
/// with 404 NOT_FOUND. fib-server asks whether its queues and exchanges
/// exist with passive declares, each on a channel of its own that a 404
/// closes: that is an answer, not a problem, and a 404 met anywhere else
/// reaches the call that failed, which reports it with its context.
pub fn is_channel_not_found_warning(target: &str, level: Level, text: &str) -> bool {
    level == Level::Warn
        && target.starts_with("amiquip")
        && text.starts_with("server closing channel")
        && text.contains("reply_code: 404,")
}

/// Whether a record is amiquip's warning that the broker blocked or
/// unblocked the connection (`server has blocked connection; reason = ...`):
/// both programs log each block themselves, with the broker's reason and,
/// at its end, how long it lasted (`lifecycle::Session::note`), and a block
/// is not a failure to warn of twice.
pub fn is_block_notice(target: &str, level: Level, text: &str) -> bool {
    level == Level::Warn
        && target.starts_with("amiquip")
        && (text.starts_with("server has blocked connection")
            || text.starts_with("server has unblocked connection"))
}

/// env_logger's logger behind the credentials check.
struct Guarded(env_logger::Logger);

impl Log for Guarded {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        !may_carry_credentials(metadata.target(), metadata.level()) && self.0.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Formatted only for amiquip's warnings, which are rare.
        if record.level() == Level::Warn && record.target().starts_with("amiquip") {
            let text = record.args().to_string();
            if is_channel_not_found_warning(record.target(), record.level(), &text)
                || is_block_notice(record.target(), record.level(), &text)
            {
                return;
            }
        }
        self.0.log(record);
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Sets up logging for `program`; call once, first thing in `main`.
pub fn init(program: &'static str, verbosity: Verbosity) {
    let env = env_logger::Env::default().default_filter_or(verbosity.default_filter(program));
    let logger = env_logger::Builder::from_env(env)
        .format(move |out, record| {
            writeln!(
                out,
                "{} {program} {}: {}",
                out.timestamp_millis(),
                record.level().as_str().to_lowercase(),
                record.args()
            )
        })
        .build();
    let max_level = logger.filter();
    // Only fails if a logger is already set: then that one stays.
    if log::set_boxed_logger(Box::new(Guarded(logger))).is_ok() {
        log::set_max_level(max_level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amiquip_s_block_notices_are_dropped_ours_are_not() {
        let target = "amiquip::io_loop::connection_state";
        for text in [
            "server has blocked connection; reason = low on memory",
            "server has unblocked connection",
        ] {
            assert!(is_block_notice(target, Level::Warn, text));
            assert!(!is_block_notice("common::lifecycle", Level::Warn, text));
        }
        assert!(!is_block_notice(
            target,
            Level::Warn,
            "missed heartbeats from server - closing connection"
        ));
    }

    #[test]
    fn only_amiquip_s_404_channel_close_warning_is_dropped() {
        let target = "amiquip::io_loop::connection_state";
        let not_found = "server closing channel 2: Close { reply_code: 404, reply_text: \"NOT_FOUND - no queue 'q' in vhost '/'\", class_id: 50, method_id: 10 }";
        assert!(is_channel_not_found_warning(target, Level::Warn, not_found));
        let mismatch = not_found.replace("404", "406");
        assert!(!is_channel_not_found_warning(
            target,
            Level::Warn,
            &mismatch
        ));
        assert!(!is_channel_not_found_warning(
            "fib_server",
            Level::Warn,
            not_found
        ));
        assert!(!is_channel_not_found_warning(
            target,
            Level::Warn,
            "server has blocked connection; reason = low on memory"
        ));
    }

    #[test]
    fn credential_crates_stay_at_info_or_above() {
        for target in [
            "amiquip",
            "amiquip::io_loop::handshake_state",
            "amq_protocol",
        ] {
            assert!(may_carry_credentials(target, Level::Debug), "{target}");
            assert!(may_carry_credentials(target, Level::Trace), "{target}");
            assert!(!may_carry_credentials(target, Level::Info), "{target}");
            assert!(!may_carry_credentials(target, Level::Warn), "{target}");
        }
        for target in ["fib_client", "common::lifecycle", "amiquipx", "startup"] {
            assert!(!may_carry_credentials(target, Level::Trace), "{target}");
        }
    }
}
