//! fib-client's edges that need no broker: what --help shows against what
//! the README says, the error style, usage errors at start, and fatal errors
//! that must reach stderr whatever RUST_LOG says.

use anyhow::Result;
use std::path::Path;
use std::process::Command;
use testkit::{readme, Spawned, WAIT};

const CLIENT: &str = env!("CARGO_BIN_EXE_fib-client");

fn client(args: &[&str], envs: &[(&str, &str)]) -> Result<(Option<i32>, Vec<String>)> {
    let mut command = Command::new(CLIENT);
    command.args(args).env_remove("AMQP_TLS_CA");
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut run = Spawned::start(&mut command)?;
    let status = run.wait(WAIT)?;
    Ok((status.code(), run.stderr()))
}

#[test]
fn the_readme_says_what_help_shows() -> Result<()> {
    let help = readme::help_of(Path::new(CLIENT))?;
    let problems = readme::mismatches(&readme::readme()?, "fib-client", &help)?;
    assert!(problems.is_empty(), "{problems:#?}\n--help:\n{help}");
    assert!(help.contains(&common::exit::help_section(common::exit::Program::Client)));
    assert!(!help.contains("guest:guest"), "{help}");
    Ok(())
}

#[test]
fn own_errors_and_clap_errors_share_the_prefix_and_exit_2() -> Result<()> {
    let long_key = "k".repeat(256);
    for args in [
        &["--count", "x"][..],
        &["-q", "-v"],
        &["--timeout", "0"],
        &["--timeout", "NaN"],
        &["--url", "http://alice:s3cret@h/"],
        &["--n", "10000001"],
        &["--routing-key", &long_key],
    ] {
        let (code, stderr) = client(args, &[])?;
        assert_eq!(code, Some(2), "{args:?}: {stderr:?}");
        let first = stderr.first().map(String::as_str).unwrap_or_default();
        assert!(first.starts_with("error: "), "{args:?}: {stderr:?}");
        assert!(!stderr.join("\n").contains("s3cret"), "{stderr:?}");
    }
    Ok(())
}

#[test]
fn tls_ca_is_checked_at_start() -> Result<()> {
    let missing = "/nonexistent/fib-rpc/ca.pem";
    let not_pem = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let cases = [
        (
            ["--url", "amqps://127.0.0.1:1/", "--tls-ca", missing],
            missing,
        ),
        (
            ["--url", "amqps://127.0.0.1:1/", "--tls-ca", not_pem],
            "not a PEM certificate",
        ),
        (
            ["--url", "amqp://127.0.0.1:1/", "--tls-ca", not_pem],
            "needs an amqps:// URL",
        ),
    ];
    for (args, needle) in cases {
        let (code, stderr) = client(&args, &[])?;
        assert_eq!(code, Some(2), "{args:?}: {stderr:?}");
        let text = stderr.join("\n");
        assert!(
            text.starts_with("error: ") && text.contains(needle),
            "{text}"
        );
    }
    // The same file through the environment.
    let (code, stderr) = client(
        &["--url", "amqps://127.0.0.1:1/"],
        &[("AMQP_TLS_CA", missing)],
    )?;
    assert_eq!(code, Some(2), "{stderr:?}");
    Ok(())
}

#[test]
fn a_fatal_error_reaches_stderr_with_rust_log_off() -> Result<()> {
    // Nothing listens on port 1: the first connection fails, exit 3.
    let (code, stderr) = client(&["--url", "amqp://127.0.0.1:1/"], &[("RUST_LOG", "off")])?;
    assert_eq!(code, Some(3), "{stderr:?}");
    assert_eq!(stderr.len(), 1, "only the error: {stderr:?}");
    assert!(
        stderr[0].starts_with("error: cannot connect to amqp://guest:***@127.0.0.1:1/"),
        "{stderr:?}"
    );
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
