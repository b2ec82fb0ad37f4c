//! The flags both programs share, defined once and flattened into each
//! program's `Cli` with `#[command(flatten)]`: where the broker is, how to
//! trust it, which exchange, and how much to say.

use crate::connection::{AmqpUrl, ConnectionSettings, TlsCa};
use crate::failure::Failure;
use crate::logging::Verbosity;
use crate::protocol::{check_name, DEFAULT_EXCHANGE, DEFAULT_URL};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The shared notes at the end of both programs' `--help`.
pub const LOG_NOTE: &str = "\
Logs go to stderr; RUST_LOG (e.g. RUST_LOG=debug) overrides -q/-v.
A fatal error is one line on stderr starting with \"error: \", like clap's own
errors, whatever RUST_LOG says.";

/// Where the broker is and which exchange the requests go through.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    // The default is shown with its password hidden, as every URL is.
    #[arg(long = "url", env = "AMQP_URL", value_name = "URL", default_value = DEFAULT_URL,
          value_delimiter = ',', action = clap::ArgAction::Append,
          hide_default_value = true, hide_env_values = true, help = url_help())]
    pub urls: Vec<String>,
    /// File holding the broker URL(s), one a line, '#' starting a comment
    /// line; keeps the password out of the command line and the environment.
    /// Must not be readable by group or others (chmod 600).
    #[arg(
        long,
        env = "AMQP_URL_FILE",
        value_name = "FILE",
        value_parser = UrlFilePath,
        conflicts_with = "urls"
    )]
    pub url_file: Option<PathBuf>,
    /// PEM file of an extra CA to trust; needs an amqps:// URL.
    #[arg(long, env = "AMQP_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Topic exchange the requests go through.
    #[arg(long, env = "FIB_EXCHANGE", value_name = "NAME", default_value = DEFAULT_EXCHANGE)]
    pub exchange: String,
}

/// A `--url-file` path, any bytes, but not empty: an empty one most often
/// comes from `AMQP_URL_FILE=` in a settings file, which clap's own message
/// (no value for --url-file) would not name.
#[derive(Debug, Clone, Copy)]
struct UrlFilePath;

impl clap::builder::TypedValueParser for UrlFilePath {
    type Value = PathBuf;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<PathBuf, clap::Error> {
        if value.is_empty() {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                "--url-file (or AMQP_URL_FILE) is empty; name the URL file, or unset \
                 AMQP_URL_FILE\n",
            )
            .with_cmd(cmd));
        }
        Ok(PathBuf::from(value))
    }
}

fn url_help() -> String {
    let shown = AmqpUrl::parse(DEFAULT_URL).map_or_else(|_| String::new(), |url| url.to_string());
    format!(
        "Broker URL, amqp:// or amqps://; its password is never printed (to keep it out of \
         ps, use --url-file). Repeat it (or give a comma-separated list) for the nodes of a \
         cluster: tried in order, then round-robin after a lost connection [default: {shown}]"
    )
}

impl ConnectionArgs {
    /// Checked connection settings: the URL parsed and the TLS CA file read,
    /// so that every mistake in them is a usage error (exit 2) at start.
    pub fn settings(&self) -> Result<ConnectionSettings> {
        let urls = match &self.url_file {
            Some(path) => read_url_file(path)?,
            None => self
                .urls
                .iter()
                .map(|text| parse_url(text))
                .collect::<Result<Vec<_>>>()?,
        };
        if urls.is_empty() {
            return Err(Failure::Usage("--url needs at least one broker URL".into()).into());
        }
        let mut settings = ConnectionSettings::with_urls(urls);
        if let Some(path) = &self.tls_ca {
            if let Some(plain) = settings.urls.iter().find(|url| !url.tls) {
                return Err(Failure::Usage(format!(
                    "--tls-ca {} needs an amqps:// URL; {plain} is amqp:// (no TLS)",
                    path.display(),
                ))
                .into());
            }
            settings.tls_ca = Some(TlsCa::load(path)?);
        }
        check_name("--exchange", &self.exchange)?;
        Ok(settings)
    }
}

/// The most a URL file may hold: a few URLs, with room for comments.
const URL_FILE_MAX_BYTES: u64 = 64 * 1024;

/// The URLs of a `--url-file`: one a line, blank lines and lines starting
/// with `#` skipped. Refused, as ssh refuses a loose key, if group or others
/// may read or write it, unless only this service may read it anyway (see
/// [`readable_by_others`]). No message quotes a line of it.
pub fn read_url_file(path: &Path) -> Result<Vec<AmqpUrl>> {
    use std::io::Read;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let shown = path.display();
    let usage = |message: String| -> anyhow::Error { Failure::Usage(message).into() };
    // O_NONBLOCK: opening a FIFO nobody writes would otherwise wait forever
    // before the regular-file check below could refuse it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| usage(format!("cannot read URL file {shown}: {e}")))?;
    let metadata = file
        .metadata()
        .map_err(|e| usage(format!("cannot read URL file {shown}: {e}")))?;
    if !metadata.is_file() {
        return Err(usage(format!("URL file {shown} is not a regular file")));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if readable_by_others(path, &file, mode) {
        return Err(usage(format!(
            "URL file {shown} may be read by others (mode {mode:03o}); it holds a password: \
             run `chmod 600 {shown}`"
        )));
    }
    let mut text = String::new();
    file.take(URL_FILE_MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| usage(format!("cannot read URL file {shown}: {e}")))?;
    if text.len() as u64 > URL_FILE_MAX_BYTES {
        return Err(usage(format!(
            "URL file {shown} is larger than {URL_FILE_MAX_BYTES} bytes"
        )));
    }
    // A byte-order mark, as some editors write one, is no part of the URL.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut urls = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at_line = format!("URL file {shown}, line {}", number + 1);
        if line.contains(char::is_whitespace) {
            return Err(usage(format!(
                "{at_line}: a URL holds no spaces (one URL a line; a space in a password is %20)"
            )));
        }
        let url = parse_url(line).map_err(|e| usage(format!("{at_line}: {e:#}")))?;
        urls.push(url);
    }
    if urls.is_empty() {
        return Err(usage(format!("URL file {shown} holds no URL")));
    }
    Ok(urls)
}

/// Whether a URL file with permission bits `mode` may be read or written by
/// anyone but its owner and the user reading it. Group or other bits alone
/// do not say so in two cases, both how systemd (254 and newer) hands a
/// service its `LoadCredential=` file: root's, mode 0400, with a POSIX ACL
/// entry letting the service's dynamic user read it, so that `stat` shows the
/// ACL's mask as the group bits (0440).
/// - The file lies inside `$CREDENTIALS_DIRECTORY`: systemd makes that folder
///   readable by this service only.
/// - Its ACL grants nothing to anyone but the owner and the user reading it.
fn readable_by_others(path: &Path, file: &std::fs::File, mode: u32) -> bool {
    if mode & 0o077 == 0 {
        return false;
    }
    if mode & 0o007 != 0 {
        // The other bits are never an ACL's: anyone may read or write it.
        return true;
    }
    !(in_credentials_directory(path) || acl_grants_only_owner_and(file, current_uid()))
}

/// Whether `path`, its links resolved, lies inside `$CREDENTIALS_DIRECTORY`.
fn in_credentials_directory(path: &Path) -> bool {
    let Some(folder) = std::env::var_os("CREDENTIALS_DIRECTORY").filter(|f| !f.is_empty()) else {
        return false;
    };
    match (std::fs::canonicalize(&folder), std::fs::canonicalize(path)) {
        (Ok(folder), Ok(file)) => file.starts_with(&folder) && file != folder,
        _ => false,
    }
}

fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether the file's POSIX ACL (the `system.posix_acl_access` extended
/// attribute) gives read or write to nobody but the owner and user `uid`.
/// No ACL, or one that cannot be read, says no.
fn acl_grants_only_owner_and(file: &std::fs::File, uid: u32) -> bool {
    use std::os::unix::io::AsRawFd;
    let mut value = [0u8; 1024];
    let name = c"system.posix_acl_access";
    // SAFETY: the name is NUL-terminated and the buffer's length is given.
    let length = unsafe {
        libc::fgetxattr(
            file.as_raw_fd(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    let Ok(length) = usize::try_from(length) else {
        return false;
    };
    value
        .get(..length)
        .is_some_and(|acl| acl_grants_only(acl, uid))
}

/// The Linux ACL xattr format: a little-endian u32 version (2), then
/// entries of u16 tag, u16 permissions, u32 id.
fn acl_grants_only(acl: &[u8], uid: u32) -> bool {
    const USER_OBJ: u16 = 0x01;
    const USER: u16 = 0x02;
    const MASK: u16 = 0x10;
    let Some((version, entries)) = acl.split_first_chunk::<4>() else {
        return false;
    };
    if u32::from_le_bytes(*version) != 2 || entries.is_empty() || entries.len() % 8 != 0 {
        return false;
    }
    entries.chunks_exact(8).all(|entry| {
        let Ok::<[u8; 8], _>([t0, t1, p0, p1, i0, i1, i2, i3]) = entry.try_into() else {
            return false;
        };
        let tag = u16::from_le_bytes([t0, t1]);
        let permissions = u16::from_le_bytes([p0, p1]);
        let id = u32::from_le_bytes([i0, i1, i2, i3]);
        match tag {
            USER_OBJ | MASK => true,
            USER if id == uid => true,
            // Read (4) or write (2) for any other user, the group, a named
            // group or others.
            _ => permissions & 0o6 == 0,
        }
    })
}

/// The one place a `--url` value becomes an [`AmqpUrl`].
pub fn parse_url(text: &str) -> Result<AmqpUrl> {
    AmqpUrl::parse(text)
}

/// `--metrics ADDR`: where to serve metrics and health probes, if at all.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics (/metrics) and health probes (/healthz,
    /// /readyz) over HTTP at ADDR, HOST:PORT such as 127.0.0.1:9464; port 0
    /// picks a free port, which the ready line names. Off by default.
    #[arg(long = "metrics", env = "FIB_METRICS_ADDR", value_name = "ADDR")]
    pub addr: Option<String>,
}

/// `-q` and `-v`. Each program words their help for what it prints, with
/// `mut_arg`; the flags themselves are these.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct VerbosityArgs {
    /// Print less.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more.
    #[arg(short, long)]
    pub verbose: bool,
}

impl VerbosityArgs {
    pub fn verbosity(&self) -> Verbosity {
        Verbosity::from_flags(self.quiet, self.verbose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        verbosity: VerbosityArgs,
    }

    fn settings(args: &[&str]) -> Result<ConnectionSettings> {
        let cli = Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied()))?;
        cli.connection.settings()
    }

    fn usage_error(args: &[&str]) -> String {
        let error = settings(args).expect_err("a usage error");
        assert_eq!(crate::exit_code(&error), crate::exit::USAGE, "{error:#}");
        format!("{error:#}")
    }

    #[test]
    fn the_help_hides_the_default_password() {
        let help = <Cli as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(
            help.contains("[default: amqp://guest:***@127.0.0.1:5672/%2f]"),
            "{help}"
        );
        assert!(!help.contains("guest:guest"), "{help}");
    }

    #[test]
    fn tls_ca_is_read_at_start() {
        let missing = "/nonexistent/fib-rpc-ca.pem";
        let error = usage_error(&["--url", "amqps://h/", "--tls-ca", missing]);
        assert!(error.contains(missing), "{error}");
        let not_pem = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let error = usage_error(&["--url", "amqps://h/", "--tls-ca", not_pem]);
        assert!(
            error.contains(not_pem) && error.contains("not a PEM"),
            "{error}"
        );
    }

    #[test]
    fn several_urls_repeated_or_comma_separated() -> Result<()> {
        let hosts = |settings: ConnectionSettings| -> Vec<(String, u16)> {
            settings
                .urls
                .into_iter()
                .map(|u| (u.host, u.port))
                .collect()
        };
        let expected = vec![("a".to_string(), 5681), ("b".to_string(), 5682)];
        let repeated = settings(&["--url", "amqp://a:5681", "--url", "amqp://b:5682"])?;
        assert_eq!(hosts(repeated), expected);
        let listed = settings(&["--url", "amqp://a:5681,amqp://b:5682"])?;
        assert_eq!(hosts(listed), expected);
        assert_eq!(settings(&[])?.urls.len(), 1, "the default alone");
        let error = usage_error(&["--url", "amqp://u:s3cret@a:5681,"]);
        assert!(!error.contains("s3cret"), "{error}");
        Ok(())
    }

    /// A file in the temp folder with `text` and `mode`, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(text: &str, mode: u32) -> TempFile {
            use std::os::unix::fs::PermissionsExt;
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let number = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = std::env::temp_dir()
                .join(format!("fib-rpc-url-file-{}-{number}", std::process::id()));
            std::fs::write(&path, text).expect("a temp file");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            TempFile(path)
        }

        fn arg(&self) -> &str {
            self.0.to_str().expect("a UTF-8 temp path")
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn a_url_file_holds_urls_and_comments() -> Result<()> {
        let file = TempFile::new(
            "# the cluster\n\n  amqp://u:Qs3cr%23t@a:5681/%2f  \r\n# node 2\namqp://u:Qs3cr%23t@[::1]:5682\n",
            0o600,
        );
        let from_file = settings(&["--url-file", file.arg()])?;
        let places: Vec<_> = from_file
            .urls
            .iter()
            .map(|u| (u.host.as_str(), u.port, u.username.as_str()))
            .collect();
        assert_eq!(places, [("a", 5681, "u"), ("::1", 5682, "u")]);
        let read_only = TempFile::new("amqps://h/\n", 0o400);
        assert_eq!(settings(&["--url-file", read_only.arg()])?.urls.len(), 1);
        Ok(())
    }

    #[test]
    fn a_url_file_others_may_read_is_refused_with_the_fix() {
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
            let file = TempFile::new("amqp://u:Qs3cret@h/\n", mode);
            let error = usage_error(&["--url-file", file.arg()]);
            assert!(
                error.contains(&format!("run `chmod 600 {}`", file.arg())),
                "{mode:o}: {error}"
            );
            assert!(error.contains(&format!("mode {mode:03o}")), "{error}");
            assert!(!error.contains("Qs3cret"), "{error}");
        }
    }

    #[test]
    fn a_url_file_that_cannot_serve_is_a_usage_error_quoting_none_of_it() {
        let missing = "/nonexistent/fib-rpc-url";
        let error = usage_error(&["--url-file", missing]);
        assert!(
            error.contains(missing) && error.contains("cannot read"),
            "{error}"
        );
        let error = usage_error(&["--url-file", "/tmp"]);
        assert!(error.contains("not a regular file"), "{error}");
        let comments = TempFile::new("# amqp://u:Qs3cret@h/\n\n", 0o600);
        let error = usage_error(&["--url-file", comments.arg()]);
        assert!(
            error.contains("holds no URL") && !error.contains("Qs3cret"),
            "{error}"
        );
        // A '#' inside a URL is a fragment, refused as on the command line.
        let fragment = TempFile::new("# ok\namqp://u:Qs3c#ret@h/\n", 0o600);
        let error = usage_error(&["--url-file", fragment.arg()]);
        assert!(
            error.contains("line 2") && error.contains("fragment"),
            "{error}"
        );
        assert!(
            !error.contains("Qs3c") && !error.contains("ret@h"),
            "{error}"
        );
        let big = TempFile::new(&"#\n".repeat(40_000), 0o600);
        let error = usage_error(&["--url-file", big.arg()]);
        assert!(error.contains("larger than"), "{error}");
    }

    /// A Linux ACL xattr value from (tag, permissions, id) entries.
    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut value = 2u32.to_le_bytes().to_vec();
        for (tag, permissions, id) in entries {
            value.extend(tag.to_le_bytes());
            value.extend(permissions.to_le_bytes());
            value.extend(id.to_le_bytes());
        }
        value
    }

    #[test]
    fn an_acl_granting_only_the_owner_and_the_reader_passes() {
        const ANY: u32 = u32::MAX;
        // systemd's credential: root r--, user:65534 r--, group ---, mask r--, other ---.
        let systemd = acl(&[
            (1, 4, ANY),
            (2, 4, 65534),
            (4, 0, ANY),
            (0x10, 4, ANY),
            (0x20, 0, ANY),
        ]);
        assert!(acl_grants_only(&systemd, 65534));
        assert!(!acl_grants_only(&systemd, 1000), "another user may read it");
        let group_reads = acl(&[(1, 6, ANY), (4, 4, ANY), (0x10, 4, ANY), (0x20, 0, ANY)]);
        assert!(!acl_grants_only(&group_reads, 0));
        let named_group = acl(&[
            (1, 6, ANY),
            (4, 0, ANY),
            (8, 4, 100),
            (0x10, 4, ANY),
            (0x20, 0, ANY),
        ]);
        assert!(!acl_grants_only(&named_group, 0));
        let mut truncated = systemd.clone();
        truncated.pop();
        assert!(!acl_grants_only(&truncated, 65534));
        assert!(!acl_grants_only(&[], 0));
        assert!(!acl_grants_only(&1u32.to_le_bytes(), 0));
    }

    #[test]
    fn a_url_file_with_a_byte_order_mark_or_a_space_in_a_url() -> Result<()> {
        let bom = TempFile::new("\u{feff}amqp://u:Qs3cret@h:5681/\n", 0o600);
        assert_eq!(settings(&["--url-file", bom.arg()])?.urls[0].port, 5681);
        let spaced = TempFile::new("amqp://u:Qs3cret@h:5681/ extra\n", 0o600);
        let error = usage_error(&["--url-file", spaced.arg()]);
        assert!(
            error.contains("line 1") && error.contains("no spaces"),
            "{error}"
        );
        assert!(!error.contains("Qs3cret"), "{error}");
        Ok(())
    }

    #[test]
    fn url_and_url_file_exclude_each_other() {
        let file = TempFile::new("amqp://h/\n", 0o600);
        let error = Cli::try_parse_from(["test", "--url", "amqp://h/", "--url-file", file.arg()])
            .expect_err("a conflict");
        assert_eq!(error.exit_code(), crate::exit::USAGE);
        assert!(error.to_string().contains("cannot be used with"), "{error}");
    }

    #[test]
    fn tls_ca_needs_amqps() {
        let error = usage_error(&["--url", "amqps://a/,amqp://b/", "--tls-ca", "/any/ca.pem"]);
        assert!(error.contains("amqp://guest:***@b:5672"), "{error}");
        let error = usage_error(&["--url", "amqp://h/", "--tls-ca", "/any/ca.pem"]);
        assert!(error.contains("needs an amqps:// URL"), "{error}");
    }

    #[test]
    fn long_exchange_names_are_refused() {
        let long = "x".repeat(256);
        let error = usage_error(&["--exchange", &long]);
        assert!(error.contains("at most 255"), "{error}");
        assert!(settings(&["--exchange", &"x".repeat(255)]).is_ok());
    }

    #[test]
    fn quiet_and_verbose_conflict() {
        assert!(Cli::try_parse_from(["test", "-q", "-v"]).is_err());
        let cli = Cli::try_parse_from(["test", "-v"]).expect("-v alone parses");
        assert_eq!(cli.verbosity.verbosity(), Verbosity::Verbose);
    }
}
