//! fib-client's edges that need no broker: what --help shows against what
//! the docs say, the error style, usage errors at start, and fatal errors
//! that must reach stderr whatever RUST_LOG says.

use anyhow::Result;
use common::exit::Program;
use testkit::edges;

const CLIENT: &str = env!("CARGO_BIN_EXE_fib-client");

fn client(args: &[&str], envs: &[(&str, &str)]) -> Result<(Option<i32>, Vec<String>)> {
    edges::run_to_end(CLIENT, args, envs)
}

#[test]
fn the_docs_say_what_help_shows() -> Result<()> {
    edges::assert_docs_say_what_help_shows(CLIENT, Program::Client)
}

#[test]
fn own_errors_and_clap_errors_share_the_prefix_and_exit_2() -> Result<()> {
    let long_key = "k".repeat(256);
    let cases: &[&[&str]] = &[
        &["--count", "x"][..],
        &["-q", "-v"],
        &["--timeout", "0"],
        &["--timeout", "NaN"],
        &["--url", "http://alice:s3cret@h/"],
        &["--n", "10000001"],
        &["--routing-key", &long_key],
    ];
    edges::assert_usage_errors(CLIENT, cases)
}

#[test]
fn tls_ca_is_checked_at_start() -> Result<()> {
    edges::assert_tls_ca_checked_at_start(CLIENT)
}

#[test]
fn an_empty_user_or_password_in_the_url_is_not_taken_as_guest() -> Result<()> {
    edges::assert_empty_credentials_are_not_guest(CLIENT)
}

#[test]
fn a_fatal_error_reaches_stderr_with_rust_log_off() -> Result<()> {
    edges::assert_fatal_error_survives_rust_log_off(CLIENT)?;
    Ok(())
}

#[test]
fn retries_near_u32_max_are_accepted() -> Result<()> {
    // Parsed and turned into settings without overflow; then the connection
    // fails as usual (exit 3), not a panic (101).
    let max = u32::MAX.to_string();
    let args = [
        "--url",
        "amqp://127.0.0.1:1/",
        "--retries",
        &max,
        "--timeout",
        "86400",
    ];
    let (code, stderr) = client(&args, &[])?;
    assert_eq!(code, Some(3), "{stderr:?}");
    Ok(())
}
