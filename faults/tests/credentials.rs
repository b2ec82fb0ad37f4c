//! The broker password, given as a fresh user's distinctive password, shows
//! in no output of either program, however much they are asked to log, and
//! given in a URL file, not in the process's command line or environment.

use anyhow::Result;
use faults::assert_password_hidden;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use testkit::{Scratch, SecretUser, Spawned, WAIT};

/// Both programs at `RUST_LOG=trace` (and with `-v`), on a real connection
/// that authenticates with the user's password: amiquip logs its handshake,
/// PLAIN response included, at debug level.
#[test]
fn rust_log_trace_never_prints_the_password() -> Result<()> {
    let user = SecretUser::create()?;
    let scratch = Scratch::new("tracelog");
    let url = user.url();
    let exchange = &scratch.topology.exchange;
    let mut server = Spawned::start(
        Command::new(testkit::binary("fib-server"))
            .args(["--url", &url, "--exchange", exchange])
            .args(["--queue", &scratch.topology.queue, "-v"])
            .env("RUST_LOG", "trace"),
    )?;
    server.wait_for_line("ready", WAIT)?;
    let mut client = Spawned::start(
        Command::new(testkit::binary("fib-client"))
            .args(["--url", &url, "--exchange", exchange])
            .args(["--count", "3", "-v"])
            .env("RUST_LOG", "trace,amiquip=trace,amiquip::io_loop=trace"),
    )?;
    assert_eq!(client.wait(WAIT)?.code(), Some(0), "{:?}", client.stderr());
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    // The level took: both logged at trace.
    for program in [&server, &client] {
        let stderr = program.stderr();
        assert!(
            stderr.iter().any(|l| l.contains(" trace: ")),
            "no trace line: {stderr:?}"
        );
    }
    assert_password_hidden(&user, &[&server, &client]);
    Ok(())
}

/// A URL file in a folder of its own, removed on drop.
struct UrlFile {
    dir: PathBuf,
    path: PathBuf,
}

impl UrlFile {
    fn new(text: &str, mode: u32) -> Result<UrlFile> {
        let dir = std::env::temp_dir().join(format!("fibtest-url-{}", uuid_like()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("broker.url");
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        Ok(UrlFile { dir, path })
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap_or_default()
    }
}

impl Drop for UrlFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

/// What a process shows every local user (its command line) and its own
/// user and root (its environment), as bytes.
fn proc_file(pid: u32, name: &str) -> Result<Vec<u8>> {
    Ok(std::fs::read(format!("/proc/{pid}/{name}"))?)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// A server started with `AMQP_URL_FILE` (as a service would be) and a
/// client with `--url-file` both connect as the user, and neither the
/// server's command line nor its environment holds the password.
#[test]
fn a_url_file_keeps_the_password_out_of_cmdline_and_environ() -> Result<()> {
    let user = SecretUser::create()?;
    let scratch = Scratch::new("urlfile");
    let file = UrlFile::new(
        &format!("# the test's broker, as {}\n\n{}\n", user.name, user.url()),
        0o600,
    )?;
    let exchange = &scratch.topology.exchange;
    let mut server = Spawned::start(
        Command::new(testkit::binary("fib-server"))
            .args(["--exchange", exchange, "--queue", &scratch.topology.queue])
            .env_remove("AMQP_URL")
            .env("AMQP_URL_FILE", file.arg()),
    )?;
    server.wait_for_line("ready", WAIT)?;
    let cmdline = proc_file(server.pid(), "cmdline")?;
    let environ = proc_file(server.pid(), "environ")?;
    assert!(
        contains(&environ, "AMQP_URL_FILE="),
        "the file came by the environment"
    );
    for (what, bytes) in [("cmdline", &cmdline), ("environ", &environ)] {
        assert!(
            !contains(bytes, &user.password),
            "/proc/<pid>/{what} holds the password"
        );
    }
    let mut client = Spawned::start(
        Command::new(testkit::binary("fib-client"))
            .args(["--url-file", file.arg(), "--exchange", exchange])
            .args(["--count", "5", "--json"])
            .env_remove("AMQP_URL"),
    )?;
    assert_eq!(client.wait(WAIT)?.code(), Some(0), "{:?}", client.stderr());
    let summary = testkit::json_summary(&client)?;
    assert_eq!(summary["ok"], 5, "{summary}");
    server.signal("TERM")?;
    assert_eq!(server.wait(WAIT)?.code(), Some(0), "{:?}", server.stderr());
    assert!(
        server
            .stderr()
            .iter()
            .any(|l| l.contains(&format!("{}:***@", user.name))),
        "the server connected as the file's user: {:?}",
        server.stderr()
    );
    assert_password_hidden(&user, &[&server, &client]);
    Ok(())
}

/// Every way a URL file cannot serve is exit 2 with one error line that
/// names the file and quotes nothing of it, on both programs.
#[test]
fn url_file_errors_exit_2_on_both_programs() -> Result<()> {
    let secret = "Qz9-not-shown";
    let url = format!("amqp://u:{secret}@127.0.0.1:1/");
    let loose = UrlFile::new(&format!("{url}\n"), 0o644)?;
    let comments_only = UrlFile::new(&format!("# {url}\n\n"), 0o600)?;
    let fragment = UrlFile::new(&format!("amqp://u:{secret}#x@h/\n"), 0o600)?;
    let good = UrlFile::new(&format!("{url}\n"), 0o600)?;
    let fix = format!("chmod 600 {}", loose.arg());
    // Flags, environment, and what the error line must say.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--url-file", loose.arg()], vec![], fix.as_str()),
        (vec![], vec![("AMQP_URL_FILE", loose.arg())], fix.as_str()),
        (
            vec!["--url-file", comments_only.arg()],
            vec![],
            "holds no URL",
        ),
        (vec!["--url-file", fragment.arg()], vec![], "line 1"),
        (
            vec!["--url-file", "/nonexistent/fib.url"],
            vec![],
            "cannot read URL file",
        ),
        (
            vec!["--url-file", good.arg(), "--url", "amqp://h/"],
            vec![],
            "cannot be used with",
        ),
    ];
    for binary in ["fib-server", "fib-client"] {
        let path = testkit::binary(binary);
        for (args, envs, expected) in &cases {
            let mut command = Command::new(&path);
            command
                .args(args)
                .env_remove("AMQP_URL")
                .env_remove("AMQP_URL_FILE");
            for (key, value) in envs {
                command.env(key, value);
            }
            let mut run = Spawned::start(&mut command)?;
            let code = run.wait(WAIT)?.code();
            let stderr = run.stderr();
            assert_eq!(code, Some(2), "{binary} {args:?} {envs:?}: {stderr:?}");
            assert!(
                stderr
                    .iter()
                    .any(|l| l.starts_with("error: ") && l.contains(expected)),
                "{binary} {args:?}: {stderr:?}"
            );
            assert!(!stderr.iter().any(|l| l.contains(secret)), "{stderr:?}");
        }
    }
    Ok(())
}
