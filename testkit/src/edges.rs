//! Checks both programs must pass at their edges, run against either binary:
//! usage errors at start and fatal errors that reach stderr. The programs'
//! own tests call these with their binary's path.

use crate::{Spawned, WAIT};
use anyhow::Result;
use std::process::Command;

/// Runs `binary` to its end; returns its exit code and stderr lines.
/// AMQP_TLS_CA from the test's environment is left out.
pub fn run_to_end(
    binary: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Result<(Option<i32>, Vec<String>)> {
    let mut command = Command::new(binary);
    command.args(args).env_remove("AMQP_TLS_CA");
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut run = Spawned::start(&mut command)?;
    let status = run.wait(WAIT)?;
    Ok((status.code(), run.stderr()))
}

/// What the usage table in `program`'s page of the docs says matches
/// `binary --help`, which also ends with the program's exit codes and never
/// shows the default password.
pub fn assert_docs_say_what_help_shows(binary: &str, program: common::exit::Program) -> Result<()> {
    use crate::readme;
    let help = readme::help_of(std::path::Path::new(binary))?;
    let page = readme::doc(readme::usage_page(program))?;
    let problems = readme::mismatches(&page, readme::USAGE_SECTION, &help)?;
    assert!(problems.is_empty(), "{problems:#?}\n--help:\n{help}");
    assert!(help.contains(&common::exit::help_section(program)));
    assert!(!help.contains("guest:guest"), "{help}");
    Ok(())
}

/// Each of `cases` is a usage error: exit 2, one `error: ` line first on
/// stderr (clap's errors and the program's own alike), and no password
/// (cases may carry `s3cret`) anywhere.
pub fn assert_usage_errors(binary: &str, cases: &[&[&str]]) -> Result<()> {
    for args in cases {
        let (code, stderr) = run_to_end(binary, args, &[])?;
        assert_eq!(code, Some(2), "{args:?}: {stderr:?}");
        let first = stderr.first().map(String::as_str).unwrap_or_default();
        assert!(first.starts_with("error: "), "{args:?}: {stderr:?}");
        assert!(!stderr.join("\n").contains("s3cret"), "{stderr:?}");
    }
    Ok(())
}

/// `--tls-ca` is read and checked at start: a missing file or one that is
/// not PEM is exit 2 naming it; with an amqp:// URL, exit 2 saying it needs
/// amqps://; the same through AMQP_TLS_CA.
pub fn assert_tls_ca_checked_at_start(binary: &str) -> Result<()> {
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
        let (code, stderr) = run_to_end(binary, &args, &[])?;
        assert_eq!(code, Some(2), "{args:?}: {stderr:?}");
        let text = stderr.join("\n");
        assert!(
            text.starts_with("error: ") && text.contains(needle),
            "{text}"
        );
    }
    let (code, stderr) = run_to_end(
        binary,
        &["--url", "amqps://127.0.0.1:1/"],
        &[("AMQP_TLS_CA", missing)],
    )?;
    assert_eq!(code, Some(2), "{stderr:?}");
    Ok(())
}

/// With RUST_LOG=off a failed first connection (nothing listens on port 1)
/// still prints its one error line, password masked, and exits 3.
pub fn assert_fatal_error_survives_rust_log_off(binary: &str) -> Result<()> {
    let args = ["--url", "amqp://127.0.0.1:1/"];
    let (code, stderr) = run_to_end(binary, &args, &[("RUST_LOG", "off")])?;
    assert_eq!(code, Some(3), "{stderr:?}");
    assert_eq!(stderr.len(), 1, "only the error: {stderr:?}");
    assert!(
        stderr[0].starts_with("error: cannot connect to amqp://guest:***@127.0.0.1:1/"),
        "{stderr:?}"
    );
    Ok(())
}

/// An empty user name or password given in the URL is sent empty, as
/// RabbitMQ's URI spec says, never replaced by `guest`: against the tests'
/// broker, `guest:` and `:guest` are refused (exit 3, one error line naming
/// the URL with its user as given and no password), where they once
/// connected as guest:guest.
pub fn assert_empty_credentials_are_not_guest(binary: &str) -> Result<()> {
    let broker = common::AmqpUrl::parse(&crate::broker_url())?;
    let host = match broker.host.contains(':') {
        true => format!("[{}]", broker.host),
        false => broker.host.clone(),
    };
    let scheme = if broker.tls { "amqps" } else { "amqp" };
    for (userinfo, shown) in [("guest:", "guest:***@"), (":guest", ":***@")] {
        let url = format!("{scheme}://{userinfo}@{host}:{}/%2f", broker.port);
        // Were it to connect, an exchange of its own keeps it off the others'.
        let args = ["--url", &url, "--exchange", "fibtest.empty-credentials"];
        let (code, stderr) = run_to_end(binary, &args, &[("RUST_LOG", "off")])?;
        assert_eq!(code, Some(3), "{url}: {stderr:?}");
        assert_eq!(stderr.len(), 1, "only the error: {stderr:?}");
        assert!(
            stderr[0].starts_with("error: cannot open AMQP connection to ")
                && stderr[0].contains(&format!("://{shown}{host}"))
                && stderr[0].contains("invalid credentials"),
            "{url}: {stderr:?}"
        );
    }
    Ok(())
}
