//! fib-server's edges that need no broker: what --help shows against what
//! the README says, the error style, usage errors at start, and fatal errors
//! that must reach stderr whatever RUST_LOG says.

use anyhow::Result;
use std::path::Path;
use testkit::{edges, readme};

const SERVER: &str = env!("CARGO_BIN_EXE_fib-server");

fn server(args: &[&str], envs: &[(&str, &str)]) -> Result<(Option<i32>, Vec<String>)> {
    edges::run_to_end(SERVER, args, envs)
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
    edges::assert_tls_ca_checked_at_start(SERVER)
}

#[test]
fn a_fatal_error_reaches_stderr_with_rust_log_off() -> Result<()> {
    edges::assert_fatal_error_survives_rust_log_off(SERVER)?;
    let (code, stderr) = server(&["--url", "amqp://h/?frob=1"], &[("RUST_LOG", "off")])?;
    assert_eq!(code, Some(2), "{stderr:?}");
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    Ok(())
}
