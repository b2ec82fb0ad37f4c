//! The Debian package, for real: installed with `dpkg -i`, every file where
//! it belongs, the unit verified and left disabled, the server started
//! exactly as the unit's `ExecStart` would start it (its settings file, its
//! credential, an unprivileged user) answering a client, then `dpkg --purge`
//! leaving nothing behind.
//!
//! Ignored by a plain `cargo test`: it needs the package (FIB_DEB, from
//! scripts/package.sh), root or password-less sudo, and the broker.
//! scripts/test.sh runs it in its packaging stage.

use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testkit::{Scratch, Spawned};

const PACKAGE: &str = "fib-rpc";
const UNIT: &str = "/usr/lib/systemd/system/fib-server.service";
const TEMPLATE: &str = "/usr/lib/systemd/system/fib-server@.service";
const DOCS: &str = "/usr/share/doc/fib-rpc";
const SETTINGS: &str = "/etc/default/fib-server";
const URL_FILE: &str = "/etc/fib-server/amqp-url";
/// The user DynamicUser= would pick is unknown: nobody stands in for it.
const NOBODY: u32 = 65534;

/// Every file the package installs, with its mode.
const FILES: &[(&str, u32)] = &[
    ("/usr/bin/fib-server", 0o755),
    ("/usr/bin/fib-client", 0o755),
    ("/usr/share/man/man1/fib-server.1.gz", 0o644),
    ("/usr/share/man/man1/fib-client.1.gz", 0o644),
    ("/usr/share/bash-completion/completions/fib-server", 0o644),
    ("/usr/share/bash-completion/completions/fib-client", 0o644),
    ("/usr/share/zsh/vendor-completions/_fib-server", 0o644),
    ("/usr/share/zsh/vendor-completions/_fib-client", 0o644),
    (
        "/usr/share/fish/vendor_completions.d/fib-server.fish",
        0o644,
    ),
    (
        "/usr/share/fish/vendor_completions.d/fib-client.fish",
        0o644,
    ),
    ("/usr/share/doc/fib-rpc/README.md", 0o644),
    ("/usr/share/doc/fib-rpc/docs/server.md", 0o644),
    ("/usr/share/doc/fib-rpc/BENCHMARKS.md", 0o644),
    ("/usr/share/doc/fib-rpc/LICENSE-MIT", 0o644),
    ("/usr/share/doc/fib-rpc/LICENSE-APACHE", 0o644),
    ("/usr/share/doc/fib-rpc/copyright", 0o644),
    (UNIT, 0o644),
    (TEMPLATE, 0o644),
    (SETTINGS, 0o640),
    (URL_FILE, 0o600),
];

/// Folders that are the package's own, gone after a purge.
const OWN_DIRS: &[&str] = &["/usr/share/doc/fib-rpc", "/etc/fib-server"];

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|meta| meta.uid() == 0)
        .unwrap_or(false)
}

/// `program args` as root: directly when we are root, else through
/// password-less sudo.
fn as_root(program: &str, args: &[&str]) -> Command {
    if is_root() {
        let mut command = Command::new(program);
        command.args(args);
        command
    } else {
        let mut command = Command::new("sudo");
        command.arg("-n").arg(program).args(args);
        command
    }
}

/// Runs `command`; its stdout, or an error with its stderr.
fn run(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?}: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Writes `text` to the root-owned `path`, keeping its mode.
fn write_as_root(path: &str, text: &str) -> Result<()> {
    use std::io::Write;
    let mut child = as_root("tee", &[path])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .context("no stdin for tee")?
        .write_all(text.as_bytes())?;
    ensure!(child.wait()?.success(), "writing {path} failed");
    Ok(())
}

fn installed() -> Result<bool> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", PACKAGE])
        .output()?;
    Ok(output.status.success() && String::from_utf8_lossy(&output.stdout) == "installed")
}

/// Purges the package when the test ends, however it ends.
struct Installation;

impl Drop for Installation {
    fn drop(&mut self) {
        let _ = as_root("dpkg", &["--purge", PACKAGE]).output();
    }
}

/// The `[Service]` settings of a unit file, each with all its values in order.
fn service_section(unit: &str) -> BTreeMap<String, Vec<String>> {
    let mut settings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut in_service = false;
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.starts_with('#') && !line.starts_with(';') {
            if let Some((key, value)) = line.split_once('=') {
                settings
                    .entry(key.to_string())
                    .or_default()
                    .push(value.to_string());
            }
        }
    }
    settings
}

/// The variables an EnvironmentFile= sets, as systemd reads it.
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with(';'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| {
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (key.trim().to_string(), unquoted.to_string())
        })
        .collect()
}

/// `${NAME}` in `word` replaced from `env`.
fn expand(word: &str, env: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = word;
    while let Some(start) = rest.find("${") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 2..).unwrap_or_default();
        let end = after.find('}').context("unclosed ${ in ExecStart")?;
        let name = after.get(..end).unwrap_or_default();
        out.push_str(env.get(name).map(String::as_str).unwrap_or_default());
        rest = after.get(end + 1..).unwrap_or_default();
    }
    ensure!(
        !rest.contains('$'),
        "ExecStart uses $ in a way this test does not read: {word}"
    );
    out.push_str(rest);
    Ok(out)
}

/// The server as the unit would start it: a clean environment with the
/// unit's Environment= (`%d` being the credentials folder), then its
/// EnvironmentFile=; its LoadCredential= files copied into that folder,
/// readable by the service's user only; ExecStart run as that user.
fn start_as_the_unit_would(unit: &str, credentials: &Path) -> Result<Spawned> {
    let service = service_section(unit);
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_string(),
        "/usr/local/bin:/usr/bin:/bin".to_string(),
    );
    env.insert(
        "CREDENTIALS_DIRECTORY".to_string(),
        credentials.display().to_string(),
    );
    for assignment in service.get("Environment").into_iter().flatten() {
        let (key, value) = assignment
            .split_once('=')
            .with_context(|| format!("Environment={assignment}"))?;
        let value = value.replace("%d", &credentials.display().to_string());
        ensure!(
            !value.contains('%'),
            "a specifier this test does not know: {value}"
        );
        env.insert(key.to_string(), value);
    }
    for file in service.get("EnvironmentFile").into_iter().flatten() {
        let text = run(&mut as_root("cat", &[file.trim_start_matches('-')]))?;
        env.extend(environment_file(&text));
    }
    for credential in service.get("LoadCredential").into_iter().flatten() {
        let (id, path) = credential
            .split_once(':')
            .with_context(|| format!("LoadCredential={credential}"))?;
        let copy = credentials.join(id);
        std::fs::write(&copy, run(&mut as_root("cat", &[path]))?)?;
        if is_root() {
            // As systemd 254 and newer writes it: root's, 0400, the service's
            // user let in by an ACL entry, which `stat` shows as mode 0440.
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o400))?;
            testkit::grant_read_by_acl(&copy, NOBODY)?;
        } else {
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o440))?;
        }
        let mode = std::fs::metadata(&copy)?.permissions().mode() & 0o777;
        ensure!(mode == 0o440, "the credential has mode {mode:o}, not 440");
    }
    let exec_start = service
        .get("ExecStart")
        .and_then(|values| values.last())
        .context("no ExecStart")?;
    let argv: Vec<String> = exec_start
        .trim_start_matches(['@', '-', ':', '+', '!'])
        .split_whitespace()
        .map(|word| expand(word, &env))
        .collect::<Result<_>>()?;
    let (program, args) = argv
        .split_first()
        .with_context(|| format!("an empty ExecStart={exec_start}"))?;
    ensure!(program.starts_with('/'), "ExecStart={exec_start}");
    let mut command = if is_root() {
        // DynamicUser=: an unprivileged user owns the credentials.
        // DynamicUser=: the credentials folder is the service's; the files
        // in it stay root's, readable through their ACL.
        std::os::unix::fs::chown(credentials, Some(NOBODY), Some(NOBODY))?;
        let mut command = Command::new("setpriv");
        command.args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".to_string(),
            "--".to_string(),
        ]);
        command.arg(program).args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    };
    command.env_clear().envs(&env).current_dir("/");
    Spawned::start(&mut command)
}

/// A maintainer script never enables or starts the service: it may enable it
/// again on an upgrade only if the administrator had enabled it
/// (`was-enabled`), and restart it on an upgrade only if it runs
/// (`try-restart`).
fn check_maintainer_script(name: &str, text: &str) -> Result<()> {
    for forbidden in [
        "systemctl enable",
        "systemctl start",
        "systemctl restart",
        "deb-systemd-invoke start",
        "deb-systemd-invoke restart",
    ] {
        ensure!(
            !text.contains(forbidden),
            "{name} runs {forbidden}:\n{text}"
        );
    }
    if text.contains("deb-systemd-helper enable") {
        ensure!(
            text.contains("if deb-systemd-helper --quiet was-enabled"),
            "{name} enables the unit unconditionally:\n{text}"
        );
    }
    Ok(())
}

fn stop_timeout(unit: &str) -> Result<Duration> {
    let value = service_section(unit)
        .get("TimeoutStopSec")
        .and_then(|values| values.last().cloned())
        .context("no TimeoutStopSec")?;
    let seconds: u64 = value.trim_end_matches('s').parse()?;
    Ok(Duration::from_secs(seconds))
}

#[test]
#[ignore = "needs FIB_DEB (scripts/package.sh), root or sudo, and the broker; run by scripts/test.sh"]
fn the_package_installs_serves_and_purges_leaving_nothing() -> Result<()> {
    let deb = std::env::var("FIB_DEB")
        .context("FIB_DEB=path of the .deb (scripts/package.sh prints it)")?;
    ensure!(Path::new(&deb).is_file(), "no package at {deb}");
    ensure!(
        !installed()?,
        "{PACKAGE} is installed already; this test installs and purges it: dpkg --purge {PACKAGE} first"
    );

    // The package as built: its files, and maintainer scripts that neither
    // enable nor start the service.
    let listing = run(Command::new("dpkg-deb").args(["-c", &deb]))?;
    for (path, _) in FILES {
        ensure!(
            listing.contains(&format!(".{path}\n")),
            "{path} is not in the package:\n{listing}"
        );
    }
    let control = tempdir("control")?;
    run(Command::new("dpkg-deb").args(["-e", &deb]).arg(&control))?;
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        let Ok(text) = std::fs::read_to_string(control.join(script)) else {
            continue;
        };
        check_maintainer_script(script, &text)?;
    }
    // The template's running instances: restarted on an upgrade, stopped on
    // removal (the generated parts skip template units).
    for (script, action) in [("postinst", "try-restart"), ("prerm", "stop")] {
        let text = std::fs::read_to_string(control.join(script)).unwrap_or_default();
        ensure!(
            text.contains(&format!("systemctl {action} 'fib-server@*.service'")),
            "{script} does not {action} the instances of {TEMPLATE}:\n{text}"
        );
    }
    std::fs::remove_dir_all(&control)?;

    let installation = Installation;
    run(&mut as_root("dpkg", &["-i", &deb]))?;
    ensure!(installed()?, "dpkg -i did not leave {PACKAGE} installed");
    for (path, mode) in FILES {
        let meta = std::fs::metadata(path).with_context(|| format!("{path} after dpkg -i"))?;
        ensure!(meta.uid() == 0 && meta.gid() == 0, "{path} is not root's");
        ensure!(
            meta.permissions().mode() & 0o7777 == *mode,
            "{path}: mode {:o}, not {mode:o}",
            meta.permissions().mode() & 0o7777
        );
    }
    // The installed docs link to nothing missing.
    let docs = testkit::links::doc_files(Path::new(DOCS))?;
    ensure!(docs.len() > 2, "only {docs:?} in {DOCS}");
    let broken = testkit::links::broken_links(&docs)?;
    ensure!(
        broken.is_empty(),
        "broken links in the installed docs:\n{}",
        broken.join("\n")
    );
    let conffiles = run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]))?;
    for path in [SETTINGS, URL_FILE] {
        ensure!(
            conffiles.contains(path),
            "{path} is no conffile: {conffiles}"
        );
    }
    ensure!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/fib-server.service").exists(),
        "the package enabled fib-server.service"
    );
    run(Command::new("systemd-analyze").args(["verify", UNIT]))?;
    let instance = tempdir("instance")?;
    let instance_unit = instance.join("fib-server@check.service");
    std::fs::copy(TEMPLATE, &instance_unit)?;
    run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(&instance_unit))?;
    std::fs::remove_dir_all(&instance)?;
    let exposure = exposure(Path::new(UNIT))?;
    ensure!(exposure <= 2.0, "exposure {exposure}");

    // What an operator does: the broker's URL in the URL file and their
    // own queue in the settings file.
    let scratch = Scratch::new("package");
    let url = testkit::broker_url();
    // The same broker, written so that the server's ready line shows that
    // the URL came from the file.
    let url_in_file = url.replacen("@127.0.0.1:", "@localhost:", 1);
    write_as_root(URL_FILE, &format!("# the test's broker\n{url_in_file}\n"))?;
    let settings = run(&mut as_root("cat", &[SETTINGS]))?;
    write_as_root(
        SETTINGS,
        &format!(
            "{settings}\nFIB_EXCHANGE={}\nFIB_QUEUE={}\n",
            scratch.topology.exchange, scratch.topology.queue
        ),
    )?;

    let unit = std::fs::read_to_string(UNIT)?;
    let credentials = tempdir("credentials")?;
    let mut server = start_as_the_unit_would(&unit, &credentials)?;
    let ready = server.wait_for_line("ready", Duration::from_secs(30))?;
    ensure!(ready.contains(&scratch.topology.queue), "{ready}");
    if url_in_file != url {
        ensure!(ready.contains("@localhost:"), "{ready}");
    }
    let client = run(Command::new("/usr/bin/fib-client").args([
        "--url",
        &url,
        "--exchange",
        &scratch.topology.exchange,
        "--count",
        "50",
        "-q",
    ]))
    .context("fib-client against the installed server")?;
    ensure!(client.contains("50 correct, 0 failed"), "{client}");
    server.signal("TERM")?;
    let status = server.wait(stop_timeout(&unit)?)?;
    ensure!(status.code() == Some(0), "server stopped with {status:?}");
    let stderr = server.stderr().join("\n");
    if url.contains(":guest@") {
        ensure!(
            !stderr.contains(":guest@"),
            "the password in the log:\n{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&credentials);

    // Purge: nothing of the package is left, conffiles included.
    run(&mut as_root("dpkg", &["--purge", PACKAGE]))?;
    drop(installation);
    ensure!(!installed()?, "{PACKAGE} still installed after the purge");
    for path in FILES
        .iter()
        .map(|(path, _)| *path)
        .chain(OWN_DIRS.iter().copied())
    {
        ensure!(!Path::new(path).exists(), "{path} left after dpkg --purge");
    }
    let leftovers: Vec<PathBuf> = walk("/var/lib/systemd")?
        .into_iter()
        .filter(|path| path.to_string_lossy().contains("fib-server"))
        .collect();
    ensure!(
        leftovers.is_empty(),
        "systemd state left after the purge: {leftovers:?}"
    );
    Ok(())
}

fn exposure(unit: &Path) -> Result<f64> {
    let output = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit))?;
    output
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .and_then(|line| line.rsplit(':').next())
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .with_context(|| format!("no exposure in:\n{output}"))
}

fn tempdir(label: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "fib-package-{label}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

fn walk(dir: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::from(dir)];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            found.push(path);
        }
    }
    Ok(found)
}

#[test]
fn a_maintainer_script_that_would_enable_or_start_is_refused() {
    let kept = "if deb-systemd-helper --quiet was-enabled fib-server.service; then\n\
                deb-systemd-helper enable fib-server.service\nfi\n\
                deb-systemd-invoke try-restart fib-server.service\n";
    assert!(check_maintainer_script("postinst", kept).is_ok());
    for bad in [
        "deb-systemd-helper enable fib-server.service\n",
        "deb-systemd-invoke start fib-server.service\n",
        "systemctl enable --now fib-server\n",
    ] {
        assert!(check_maintainer_script("postinst", bad).is_err(), "{bad}");
    }
}

/// The settings file is read after the unit's `Environment=`: an
/// `AMQP_URL_FILE=` line in it, even one waiting to be uncommented, would
/// replace the credential's path.
#[test]
fn the_settings_file_never_sets_the_url_file() -> Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/debian/fib-server.default");
    let text = std::fs::read_to_string(path)?;
    for line in text.lines() {
        let setting = line.trim_start_matches(['#', ' ']);
        ensure!(
            !setting.starts_with("AMQP_URL_FILE="),
            "{path} offers {line:?}"
        );
    }
    Ok(())
}

#[test]
fn reads_a_unit_and_a_settings_file_as_systemd_does() -> Result<()> {
    let unit = "[Unit]\nDescription=x\n[Service]\n# ExecStart=/wrong\nEnvironment=A=%d/a\nEnvironment=B=2\nExecStart=/usr/bin/fib-server --url-file ${CREDS}/a\n[Install]\nWantedBy=multi-user.target\n";
    let service = service_section(unit);
    assert_eq!(service["Environment"], ["A=%d/a", "B=2"]);
    assert_eq!(
        service["ExecStart"],
        ["/usr/bin/fib-server --url-file ${CREDS}/a"]
    );
    assert!(!service.contains_key("WantedBy"));
    let env: BTreeMap<String, String> = [("CREDS".to_string(), "/run/c".to_string())].into();
    assert_eq!(expand("${CREDS}/a", &env)?, "/run/c/a");
    assert!(expand("$CREDS/a", &env).is_err());
    let settings = environment_file("# comment\n#FIB_QUEUE=x\n\nFIB_QUEUE=q\nRUST_LOG=\"warn\"\n");
    assert_eq!(
        settings,
        [
            ("FIB_QUEUE".to_string(), "q".to_string()),
            ("RUST_LOG".to_string(), "warn".to_string())
        ]
    );
    Ok(())
}
