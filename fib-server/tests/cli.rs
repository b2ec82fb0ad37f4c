//! fib-server's edges that need no broker: what --help shows against what
//! the README says, the error style, usage errors at start, and fatal errors
//! that must reach stderr whatever RUST_LOG says.

use anyhow::Result;
use std::path::Path;
use std::process::Command;
use testkit::{readme, Spawned, WAIT};

const SERVER: &str = env!("CARGO_BIN_EXE_fib-server");

fn server(args: &[&str], envs: &[(&str, &str)]) -> Result<(Option<i32>, Vec<String>)> {
    let mut command = Command::new(SERVER);
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
    let help = readme::help_of(Path::new(SERVER))?;
    let problems = readme::mismatches(&readme::readme()?, "fib-server", &help)?;
    assert!(problems.is_empty(), "{problems:#?}\n--help:\n{help}");
    assert!(help.contains(&common::exit::help_section(common::exit::Program::Server)));
    assert!(!help.contains("guest:guest"), "{help}");
    Ok(())
}

#[test]
fn own_errors_and_clap_errors_share_the_prefix_and_exit_2() -> Result<()> {
    for args in [
        &["--prefetch", "x"][..],
        &["--url", "http://alice:s3cret@h/"],
        &["--max-n", "10000001"],
        &["--queue", &"q".repeat(256)],
    ] {
        let (code, stderr) = server(args, &[])?;
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
        let (code, stderr) = server(&args, &[])?;
        assert_eq!(code, Some(2), "{args:?}: {stderr:?}");
        let text = stderr.join("\n");
        assert!(
            text.starts_with("error: ") && text.contains(needle),
            "{text}"
        );
    }
    Ok(())
}

#[test]
fn a_fatal_error_reaches_stderr_with_rust_log_off() -> Result<()> {
    // Nothing listens on port 1: the first connection fails, exit 3.
    let (code, stderr) = server(&["--url", "amqp://127.0.0.1:1/"], &[("RUST_LOG", "off")])?;
    assert_eq!(code, Some(3), "{stderr:?}");
    assert_eq!(stderr.len(), 1, "only the error: {stderr:?}");
    assert!(
        stderr[0].starts_with("error: cannot connect to amqp://guest:***@127.0.0.1:1/"),
        "{stderr:?}"
    );
    let (code, stderr) = server(&["--url", "amqp://h/?frob=1"], &[("RUST_LOG", "off")])?;
    assert_eq!(code, Some(2), "{stderr:?}");
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    Ok(())
}
