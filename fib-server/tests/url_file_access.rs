//! `--url-file` as the packaged unit uses it, and files it must refuse.
//!
//! systemd (254 and newer, on a kernel whose tmpfs has `noswap`) writes a
//! `LoadCredential=` file root-owned, mode 0400, and gives the service's
//! dynamic user read access with a POSIX ACL entry (`user:UID:r--`,
//! src/core/exec-credential.c, `write_credential`). `stat` shows the ACL's
//! mask in the group bits: mode 0440, though no group may read it. The
//! server must accept that file, or the unit never starts (exit 2, which
//! `RestartPreventExitStatus=2` never retries).
//!
//! And a `--url-file` naming a FIFO nobody writes must end with exit 2, not
//! wait forever.

use anyhow::{ensure, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use testkit::Spawned;

const SERVER: &str = env!("CARGO_BIN_EXE_fib-server");
/// A port nothing listens on: a URL file accepted ends in exit 3 (cannot
/// connect), one refused in exit 2.
const URL: &str = "amqp://guest:guest@127.0.0.1:1/\n";
const NOBODY: u32 = 65534;

fn scratch(label: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("fib-url-file-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[test]
fn a_systemd_credential_given_by_acl_is_accepted() -> Result<()> {
    if not_root() {
        eprintln!("skipped: needs root to chown and setfacl");
        return Ok(());
    }
    let dir = scratch("acl")?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    let path = dir.join("amqp-url");
    std::fs::write(&path, URL)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400))?;
    testkit::grant_read_by_acl(&path, NOBODY)?;
    let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
    ensure!(mode == 0o440, "the ACL shows as mode {mode:o}, not 440");
    let mut server = Spawned::start(
        Command::new("setpriv")
            .args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".to_string(),
                "--".to_string(),
                SERVER.to_string(),
            ])
            .env_clear()
            .env("AMQP_URL_FILE", &path),
    )?;
    let code = server.wait(Duration::from_secs(30))?.code();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(3), "{:?}", server.stderr());
    Ok(())
}

#[test]
fn a_fifo_nobody_writes_is_refused_not_waited_on() -> Result<()> {
    let dir = scratch("fifo")?;
    let path = dir.join("amqp-url");
    let status = Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(&path)
        .status()?;
    ensure!(status.success(), "mkfifo failed");
    let mut server = Spawned::start(Command::new(SERVER).arg("--url-file").arg(&path))?;
    let ended = server.wait(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ended?.code(), Some(2), "{:?}", server.stderr());
    Ok(())
}

/// Inside `$CREDENTIALS_DIRECTORY` (which systemd makes readable by the
/// service alone) group bits are no leak; outside it they still are, and so
/// are other bits anywhere.
#[test]
fn group_bits_pass_inside_the_credentials_directory_only() -> Result<()> {
    let credentials = scratch("credentials")?;
    let elsewhere = scratch("elsewhere")?;
    let mut cases = Vec::new();
    for (dir, mode, expected) in [
        (&credentials, 0o440, 3),
        (&credentials, 0o640, 3),
        (&credentials, 0o644, 2),
        (&elsewhere, 0o440, 2),
        (&elsewhere, 0o644, 2),
    ] {
        let path = dir.join(format!("amqp-url-{mode:o}"));
        std::fs::write(&path, URL)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        let mut server = Spawned::start(
            Command::new(SERVER)
                .env_remove("AMQP_URL")
                .env("CREDENTIALS_DIRECTORY", &credentials)
                .env("AMQP_URL_FILE", &path),
        )?;
        let code = server.wait(Duration::from_secs(30))?.code();
        cases.push((path, mode, expected, code, server.stderr()));
    }
    let _ = std::fs::remove_dir_all(&credentials);
    let _ = std::fs::remove_dir_all(&elsewhere);
    for (path, mode, expected, code, stderr) in cases {
        assert_eq!(
            code,
            Some(expected),
            "{} {mode:o}: {stderr:?}",
            path.display()
        );
        if expected == 2 {
            assert!(
                stderr.iter().any(|line| line.contains("chmod 600")),
                "{stderr:?}"
            );
        }
    }
    Ok(())
}

/// `AMQP_URL_FILE=` (an empty value, as an uncommented settings line gives)
/// is a usage error that names the variable.
#[test]
fn an_empty_url_file_variable_is_named() -> Result<()> {
    let mut server = Spawned::start(
        Command::new(SERVER)
            .env_remove("AMQP_URL")
            .env("AMQP_URL_FILE", ""),
    )?;
    let code = server.wait(Duration::from_secs(30))?.code();
    let stderr = server.stderr();
    assert_eq!(code, Some(2), "{stderr:?}");
    assert!(
        stderr.iter().any(|line| line.contains("AMQP_URL_FILE")),
        "{stderr:?}"
    );
    Ok(())
}

fn not_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() != "0")
        .unwrap_or(true)
}
