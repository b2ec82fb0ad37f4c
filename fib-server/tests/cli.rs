//! fib-server's edges that need no broker: what --help shows against what
//! the docs say, the error style, usage errors at start, and fatal errors
//! that must reach stderr whatever RUST_LOG says.

use anyhow::Result;
use common::exit::Program;
use testkit::edges;

const SERVER: &str = env!("CARGO_BIN_EXE_fib-server");

fn server(args: &[&str], envs: &[(&str, &str)]) -> Result<(Option<i32>, Vec<String>)> {
    edges::run_to_end(SERVER, args, envs)
}

#[test]
fn the_docs_say_what_help_shows() -> Result<()> {
    edges::assert_docs_say_what_help_shows(SERVER, Program::Server)
}

#[test]
fn own_errors_and_clap_errors_share_the_prefix_and_exit_2() -> Result<()> {
    let cases: &[&[&str]] = &[
        &["--prefetch", "x"][..],
        &["--url", "http://alice:s3cret@h/"],
        &["--max-n", "10000001"],
        &["--queue", &"q".repeat(256)],
    ];
    edges::assert_usage_errors(SERVER, cases)
}

#[test]
fn tls_ca_is_checked_at_start() -> Result<()> {
    edges::assert_tls_ca_checked_at_start(SERVER)
}

#[test]
fn an_empty_user_or_password_in_the_url_is_not_taken_as_guest() -> Result<()> {
    edges::assert_empty_credentials_are_not_guest(SERVER)
}

#[test]
fn a_fatal_error_reaches_stderr_with_rust_log_off() -> Result<()> {
    edges::assert_fatal_error_survives_rust_log_off(SERVER)?;
    let (code, stderr) = server(&["--url", "amqp://h/?frob=1"], &[("RUST_LOG", "off")])?;
    assert_eq!(code, Some(2), "{stderr:?}");
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    Ok(())
}
