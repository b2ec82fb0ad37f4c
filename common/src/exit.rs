//! Exit codes: the one list that the code, both programs' `--help` and the
//! table in docs/exit-codes.md come from, and the one way a program reports
//! the error that ends it.

use crate::failure::Failure;
use std::io::Write;

pub const OK: i32 = 0;
/// fib-client: some replies were wrong or error replies.
pub const WRONG_REPLIES: i32 = 1;
/// Bad flags, URL or TLS CA file (clap exits 2 for its own errors too).
pub const USAGE: i32 = 2;
pub const BROKER: i32 = 3;
pub const UNROUTABLE: i32 = 4;
pub const TIMEOUT: i32 = 5;
/// fib-client `--baseline`: mean or p99 worse than `--max-regression` allows.
pub const REGRESSION: i32 = 6;
/// An error that is neither a [`crate::Failure`] nor the broker's: a bug or
/// an unexpected local failure. 70 is EX_SOFTWARE in BSD's sysexits.h.
pub const INTERNAL: i32 = 70;
/// fib-server: a second SIGINT/SIGTERM during a graceful stop (128 + SIGINT).
pub const SECOND_SIGNAL: i32 = 130;
/// fib-client: stopped by Ctrl-C or SIGTERM, after printing the summary
/// (128 + SIGINT; SIGTERM is taken as the same request to stop).
pub const INTERRUPTED: i32 = 130;

/// Which program a text is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Client,
    Server,
}

impl Program {
    pub fn name(self) -> &'static str {
        match self {
            Program::Client => "fib-client",
            Program::Server => "fib-server",
        }
    }
}

/// One exit code and what it means for each program (None: never used by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitCode {
    pub code: i32,
    pub client: Option<&'static str>,
    pub server: Option<&'static str>,
}

impl ExitCode {
    pub fn meaning(&self, program: Program) -> Option<&'static str> {
        match program {
            Program::Client => self.client,
            Program::Server => self.server,
        }
    }
}

const BAD_SETTINGS: &str = "bad flags, URL or TLS CA file";
const NO_BROKER: &str = "cannot connect, or the broker closed the connection";
const BUG: &str =
    "internal error: a bug (a panic, on any thread), or an unexpected local failure (such as writing stdout)";

/// Every exit code either program uses, in order.
pub const EXIT_CODES: &[ExitCode] = &[
    ExitCode {
        code: OK,
        client: Some("every reply correct"),
        server: Some("stopped by SIGINT/SIGTERM after finishing the request in hand, or at once while connecting or waiting to reconnect"),
    },
    ExitCode {
        code: WRONG_REPLIES,
        client: Some("some replies wrong or error replies"),
        server: None,
    },
    ExitCode {
        code: USAGE,
        client: Some(BAD_SETTINGS),
        server: Some(BAD_SETTINGS),
    },
    ExitCode {
        code: BROKER,
        client: Some(
            "cannot connect, the broker closed the connection, or it blocked it (a resource alarm) longer than --max-blocked",
        ),
        server: Some(NO_BROKER),
    },
    ExitCode {
        code: UNROUTABLE,
        client: Some(
            "a request was returned unroutable: no queue is bound, fib-server probably not running",
        ),
        server: None,
    },
    ExitCode {
        code: TIMEOUT,
        client: Some(
            "a request got no reply within --timeout, --retries times over, or one outstanding when --duration ended got none within --timeout",
        ),
        server: None,
    },
    ExitCode {
        code: REGRESSION,
        client: Some("--baseline: mean or p99 worse than the baseline by more than --max-regression"),
        server: None,
    },
    ExitCode {
        code: INTERNAL,
        client: Some(BUG),
        server: Some(BUG),
    },
    ExitCode {
        code: SECOND_SIGNAL,
        client: Some("interrupted by Ctrl-C (SIGINT) or SIGTERM, also while reconnecting, the summary of what was done printed; or a second one, at once"),
        server: Some("a second SIGINT/SIGTERM during a graceful stop"),
    },
];

/// The "Exit codes:" section of `program`'s `--help`.
pub fn help_section(program: Program) -> String {
    let mut text = String::from("Exit codes:\n");
    for exit in EXIT_CODES {
        if let Some(meaning) = exit.meaning(program) {
            text.push_str(&format!("  {:<3}  {meaning}\n", exit.code));
        }
    }
    text
}

/// The exit-code table of docs/exit-codes.md, in markdown.
pub fn markdown_table() -> String {
    let mut text = String::from("| code | fib-client | fib-server |\n|---|---|---|\n");
    for exit in EXIT_CODES {
        text.push_str(&format!(
            "| {} | {} | {} |\n",
            exit.code,
            exit.client.unwrap_or(""),
            exit.server.unwrap_or("")
        ));
    }
    text
}

/// Reports the error that ends the program on stderr, in the style of
/// clap's own errors (`error: ...`, one line), and exits with its code. It
/// writes to stderr directly, not through `log`, so that `RUST_LOG=off`
/// cannot silence it.
pub fn fail(error: &anyhow::Error) -> ! {
    let mut stderr = std::io::stderr().lock();
    // Nowhere left to report a failure to write to stderr.
    let _ = writeln!(stderr, "{}", error_line(error));
    let _ = stderr.flush();
    std::process::exit(exit_code(error))
}

/// Makes a panic, on any thread, end the program as every other error does:
/// one `error: internal error: ...` line on stderr (where it happened
/// included) and exit 70, instead of Rust's message and 101. Call first
/// thing in `main`.
pub fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        let place = info
            .location()
            .map(|at| format!(" (at {}:{})", at.file(), at.line()))
            .unwrap_or_default();
        let error = anyhow::anyhow!("internal error: {message}{place}");
        let mut stderr = std::io::stderr().lock();
        // Nowhere left to report a failure to write to stderr.
        let _ = writeln!(stderr, "{}", error_line(&error));
        let _ = stderr.flush();
        std::process::exit(INTERNAL)
    }));
}

/// The exit code of a failure of this kind.
pub fn code_of(failure: &Failure) -> i32 {
    match failure {
        Failure::Usage(_) => USAGE,
        Failure::Broker(_) | Failure::Disconnected(_) | Failure::Blocked(_) => BROKER,
        Failure::Unroutable(_) => UNROUTABLE,
        Failure::Timeout(_) => TIMEOUT,
    }
}

/// The exit code for an error: that of the first [`Failure`] in its chain; an
/// amiquip error (the broker or the connection failed) counts as a broker
/// failure; anything else is an internal error (70), never confused with
/// fib-client's 1 for wrong replies.
pub fn exit_code(error: &anyhow::Error) -> i32 {
    for cause in error.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return code_of(failure);
        }
        if cause.is::<amiquip::Error>() {
            return BROKER;
        }
    }
    INTERNAL
}

/// `error: ` and the error with its causes, on one line.
pub fn error_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}").replace(['\n', '\r'], " ");
    format!("error: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_failure_under_context() {
        use anyhow::Context;
        let error = Err::<(), _>(Failure::Timeout("no reply".into()))
            .context("request 7")
            .unwrap_err();
        assert_eq!(exit_code(&error), TIMEOUT);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), INTERNAL);
        let broker = anyhow::Error::new(amiquip::Error::ClientClosedConnection).context("x");
        assert_eq!(exit_code(&broker), BROKER);
    }

    #[test]
    fn codes_are_listed_once_and_in_order() {
        let codes: Vec<i32> = EXIT_CODES.iter().map(|e| e.code).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "{codes:?}");
        for exit in EXIT_CODES {
            assert!(exit.client.is_some() || exit.server.is_some());
        }
        assert_eq!(INTERRUPTED, SECOND_SIGNAL, "one row for 130");
    }

    #[test]
    fn help_lists_only_the_programs_codes() {
        let client = help_section(Program::Client);
        assert!(client.contains("  5    a request got no reply"), "{client}");
        assert!(client.contains("  6    --baseline"), "{client}");
        assert!(client.contains("  130  interrupted by Ctrl-C"), "{client}");
        let server = help_section(Program::Server);
        assert!(server.contains("  130  a second SIGINT"), "{server}");
        assert!(
            !server.contains("  4 ") && !server.contains("  6 "),
            "{server}"
        );
        assert!(server.contains("  70   internal error"), "{server}");
    }

    #[test]
    fn the_docs_table_is_this_list() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/exit-codes.md");
        let page = std::fs::read_to_string(path).expect("docs/exit-codes.md in the workspace");
        let table = markdown_table();
        assert!(
            page.contains(&table),
            "docs/exit-codes.md's table differs from common::exit::EXIT_CODES; it should read:\n{table}"
        );
    }

    #[test]
    fn error_lines_are_one_line_with_clap_prefix() {
        let error = anyhow::anyhow!("inner\nsecond line").context("outer");
        assert_eq!(error_line(&error), "error: outer: inner second line");
    }
}
