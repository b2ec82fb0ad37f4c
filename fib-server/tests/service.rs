//! The systemd units and the settings file the package ships
//! (`fib-server/debian/`), checked without building the package: the
//! settings file documents every variable the server reads, the template is
//! the service with its instance's files, and the sandbox scores an exposure
//! of 2.0 or less. `tests/package.rs` checks the installed package.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

const SERVER: &str = env!("CARGO_BIN_EXE_fib-server");

fn debian(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("debian")
        .join(file)
}

fn read(file: &str) -> Result<String> {
    let path = debian(file);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The variables a settings file sets or shows commented out (`VAR=` or
/// `#VAR=` at the start of a line).
fn settings_named(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.strip_prefix('#').unwrap_or(line))
        .filter_map(|line| line.split_once('='))
        .map(|(name, _)| name)
        .filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn the_settings_file_documents_every_variable_the_server_reads() -> Result<()> {
    let help = testkit::readme::help_of(std::path::Path::new(SERVER))?;
    let mut read_by_server: Vec<String> = testkit::readme::help_flags(&help)
        .into_values()
        .filter_map(|flag| flag.env)
        .collect();
    // Not a flag: the log filter, which env_logger reads.
    read_by_server.push("RUST_LOG".into());
    // Set by the unit to the credential: the settings file says so in prose
    // and offers no line for it (a value there would replace the unit's).
    read_by_server.retain(|name| name != "AMQP_URL_FILE");
    read_by_server.sort();
    let text = read("fib-server.default")?;
    assert!(
        text.contains("# AMQP_URL_FILE: do not set it in this file."),
        "{text}"
    );
    let mut documented = settings_named(&text);
    documented.sort();
    assert_eq!(
        documented, read_by_server,
        "fib-server/debian/fib-server.default should show each variable of fib-server --help once"
    );
    Ok(())
}

#[test]
fn the_template_is_the_service_with_its_instances_files() -> Result<()> {
    let service = read("fib-server.service")?;
    let template = read("fib-server@.service")?;
    let directives = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| {
                line.replace("/etc/default/fib-server-%i", "/etc/default/fib-server")
                    .replace("/etc/fib-server/amqp-url-%i", "/etc/fib-server/amqp-url")
                    .replace(" (%i)", "")
            })
            .collect()
    };
    assert_eq!(directives(&template), directives(&service));
    assert!(template.contains("EnvironmentFile=/etc/default/fib-server-%i\n"));
    assert!(template.contains("LoadCredential=amqp-url:/etc/fib-server/amqp-url-%i\n"));
    Ok(())
}

/// `systemd-analyze security --offline=true`'s overall exposure of a unit file.
pub fn exposure(unit: &std::path::Path) -> Result<f64> {
    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
        .context("running systemd-analyze (Debian's systemd package)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(line) = text
        .lines()
        .find(|line| line.contains("Overall exposure level"))
    else {
        bail!(
            "no exposure in systemd-analyze's output:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let score = line
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .with_context(|| format!("no number in {line:?}"))?;
    Ok(score)
}

#[test]
fn both_units_expose_at_most_2_0() -> Result<()> {
    for unit in ["fib-server.service", "fib-server@.service"] {
        let score = exposure(&debian(unit))?;
        assert!(score <= 2.0, "{unit}: exposure {score}");
    }
    Ok(())
}
