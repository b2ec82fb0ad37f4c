//! Changing the local broker for fault tests: users with secret passwords,
//! TLS listeners, restarts. All through `rabbitmqctl`, so these need the
//! broker on this machine (and root, as Debian's wrapper does).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use uuid::Uuid;

fn rabbitmqctl(args: &[&str]) -> Result<String> {
    let output = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .context("cannot run rabbitmqctl (fault tests need the local broker)")?;
    if !output.status.success() {
        bail!(
            "rabbitmqctl {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The queues and exchanges of vhost `/` whose names contain `containing`,
/// as "queue NAME" and "exchange NAME", from `rabbitmqctl list_queues` and
/// `list_exchanges`: what a program under test declared, seen from outside.
pub fn broker_objects(containing: &str) -> Result<std::collections::BTreeSet<String>> {
    let mut objects = std::collections::BTreeSet::new();
    for kind in ["queue", "exchange"] {
        let listing = rabbitmqctl(&[&format!("list_{kind}s"), "--no-table-headers", "name"])?;
        objects.extend(
            listing
                .lines()
                .map(str::trim)
                .filter(|name| name.contains(containing))
                .map(|name| format!("{kind} {name}")),
        );
    }
    Ok(objects)
}

/// A broker user with a distinctive password, deleted on drop. Its URL lets
/// a test check that the password never reaches any output.
pub struct SecretUser {
    pub name: String,
    pub password: String,
}

impl SecretUser {
    pub fn create() -> Result<SecretUser> {
        let id = Uuid::new_v4().simple().to_string();
        let user = SecretUser {
            name: format!("fibtest-{}", &id[..8]),
            password: format!("pw-{}-secret", &id[8..24]),
        };
        rabbitmqctl(&["add_user", &user.name, &user.password])?;
        rabbitmqctl(&["set_permissions", "-p", "/", &user.name, ".*", ".*", ".*"])?;
        Ok(user)
    }

    /// The broker URL with this user's credentials.
    pub fn url(&self) -> String {
        self.url_at("amqp", "127.0.0.1", 5672)
    }

    pub fn url_at(&self, scheme: &str, host: &str, port: u16) -> String {
        format!(
            "{scheme}://{}:{}@{host}:{port}/%2f",
            self.name, self.password
        )
    }

    /// Fails if any of `lines` shows the password.
    pub fn assert_not_in(&self, what: &str, lines: &[String]) {
        for line in lines {
            assert!(
                !line.contains(&self.password),
                "{what} printed the password: {line}"
            );
        }
    }
}

impl Drop for SecretUser {
    fn drop(&mut self) {
        if let Err(error) = rabbitmqctl(&["delete_user", &self.name]) {
            eprintln!("testkit: could not delete user {}: {error:#}", self.name);
        }
    }
}

/// An extra TLS listener on a free port, with a CA and server certificate
/// made for it by openssl; stopped and removed on drop.
pub struct TlsListener {
    pub port: u16,
    pub ca_file: PathBuf,
    dir: PathBuf,
}

impl TlsListener {
    pub fn start() -> Result<TlsListener> {
        let dir = std::env::temp_dir().join(format!("fibtest-tls-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        make_certificates(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let path = |name: &str| dir.join(name).display().to_string();
        let listener = TlsListener {
            port,
            ca_file: dir.join("ca.pem"),
            dir: dir.clone(),
        };
        let options = format!(
            "[{{cacertfile,\"{}\"}},{{certfile,\"{}\"}},{{keyfile,\"{}\"}},{{verify,verify_none}},{{fail_if_no_peer_cert,false}}]",
            path("ca.pem"),
            path("server.pem"),
            path("server.key")
        );
        let out = rabbitmqctl(&[
            "eval",
            &format!("rabbit_networking:start_ssl_listener({port}, {options}, 1, 1)."),
        ])?;
        if out.trim() != "ok" {
            bail!("starting a TLS listener on port {port}: {out}");
        }
        Ok(listener)
    }
}

fn make_certificates(dir: &Path) -> Result<()> {
    let openssl = |args: &[&str]| -> Result<()> {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .context("cannot run openssl")?;
        if !status.success() {
            bail!("openssl {} failed", args.join(" "));
        }
        Ok(())
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=fibtest CA",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ])?;
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ])?;
    // The broker runs as its own user and must read the key.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o644),
    )?;
    Ok(())
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        let stop = format!("rabbit_networking:stop_tcp_listener({}).", self.port);
        if let Err(error) = rabbitmqctl(&["eval", &stop]) {
            eprintln!(
                "testkit: could not stop TLS listener {}: {error:#}",
                self.port
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Restarts of the local broker. Whatever happens in the test, dropping the
/// guard brings the broker back (scripts/broker.sh starts and waits for it).
pub struct BrokerRestarts;

impl BrokerRestarts {
    pub fn new() -> BrokerRestarts {
        BrokerRestarts
    }

    /// `rabbitmqctl stop_app` then `start_app`: the node stays up.
    pub fn restart_app(&self) -> Result<()> {
        self.stop_app()?;
        self.start_app()
    }

    /// Stops the RabbitMQ application; the guard starts it again on drop.
    pub fn stop_app(&self) -> Result<()> {
        rabbitmqctl(&["stop_app"]).map(drop)
    }

    pub fn start_app(&self) -> Result<()> {
        rabbitmqctl(&["start_app"]).map(drop)
    }

    /// The whole broker process: `rabbitmqctl stop`, then start and wait.
    pub fn restart_node(&self) -> Result<()> {
        rabbitmqctl(&["stop"])?;
        ensure_broker()
    }
}

impl Default for BrokerRestarts {
    fn default() -> Self {
        BrokerRestarts::new()
    }
}

impl Drop for BrokerRestarts {
    fn drop(&mut self) {
        // start_app is a no-op for a running app; broker.sh starts a stopped node.
        let _ = self.start_app();
        if let Err(error) = ensure_broker() {
            eprintln!("testkit: THE BROKER IS NOT BACK: {error:#}");
        }
    }
}

/// Runs scripts/broker.sh: starts the local broker if needed and waits for it.
pub fn ensure_broker() -> Result<()> {
    let script = crate::workspace_root().join("scripts/broker.sh");
    let status = Command::new("bash").arg(script).status()?;
    if !status.success() {
        bail!("scripts/broker.sh failed");
    }
    Ok(())
}
