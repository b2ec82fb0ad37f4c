//! Connection settings and the one function that opens a connection.
//!
//! amiquip's `Connection::open` never sets TCP_NODELAY, and Nagle's algorithm
//! then holds each small RPC message back until the peer's delayed ACK: about
//! 44 ms per round trip instead of 0.35 ms. So we open the TCP socket
//! ourselves, set nodelay, and hand it to amiquip; TLS goes through the same
//! path.

use crate::failure::Failure;
use amiquip::{Auth, Connection, ConnectionOptions, ConnectionTuning};
use anyhow::{Context, Result};
use std::fmt;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Seconds between heartbeats unless the URL says `?heartbeat=`.
pub const DEFAULT_HEARTBEAT_SECS: u16 = 10;

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Where the broker answers, at least one address: the nodes of one
    /// cluster. The first connection tries them in order; after a lost one,
    /// the lifecycle goes on round-robin from the next.
    pub urls: Vec<AmqpUrl>,
    /// A CA to trust for `amqps://`, besides the system's.
    pub tls_ca: Option<TlsCa>,
    /// Bound on the TCP connect and on the AMQP handshake, each.
    pub connect_timeout: Duration,
}

impl ConnectionSettings {
    pub fn new(url: AmqpUrl) -> Self {
        ConnectionSettings::with_urls(vec![url])
    }

    /// Settings for several addresses of one broker (nodes of a cluster).
    pub fn with_urls(urls: Vec<AmqpUrl>) -> Self {
        ConnectionSettings {
            urls,
            tls_ca: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A CA certificate to trust, read and checked when the program starts, so
/// that a missing or broken file is a usage error (exit 2) at once rather
/// than a failure at the first TLS connection.
#[derive(Clone)]
pub struct TlsCa {
    path: PathBuf,
    certificate: native_tls::Certificate,
}

impl TlsCa {
    /// Reads the PEM certificate at `path`.
    pub fn load(path: &Path) -> Result<TlsCa> {
        let pem = std::fs::read(path).map_err(|e| {
            Failure::Usage(format!("cannot read TLS CA file {}: {e}", path.display()))
        })?;
        let certificate = native_tls::Certificate::from_pem(&pem).map_err(|e| {
            Failure::Usage(format!(
                "TLS CA file {} is not a PEM certificate: {e}",
                path.display()
            ))
        })?;
        Ok(TlsCa {
            path: path.to_path_buf(),
            certificate,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for TlsCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TlsCa({})", self.path.display())
    }
}

/// A parsed `amqp://` or `amqps://` URL (RabbitMQ's URI spec). Its `Display`
/// hides the password, so it is safe to log.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub username: String,
    password: String,
    pub heartbeat: Option<u16>,
    pub channel_max: Option<u16>,
}

impl AmqpUrl {
    /// Parses a URL as RabbitMQ's URI spec reads it, with the spec's
    /// defaults for what is left out: no user info (`amqp://h`) means
    /// `guest:guest`, a user with no `:` (`amqp://u@h`) the password `guest`;
    /// an empty user name or password is empty.
    pub fn parse(text: &str) -> Result<AmqpUrl> {
        // Never echo `text` nor any part of it: it may hold a password.
        refuse_what_would_be_dropped(text)?;
        let url = Url::parse(text)
            .map_err(|e| Failure::Usage(format!("invalid AMQP URL: {e}; {ENCODING_HINT}")))?;
        let tls = match url.scheme() {
            "amqp" => false,
            "amqps" => true,
            other => {
                return Err(Failure::Usage(format!(
                    "invalid AMQP URL: scheme {other:?} is neither amqp nor amqps"
                ))
                .into())
            }
        };
        let decode = |s: &str| -> Result<String> {
            let decoded = percent_encoding::percent_decode_str(s).decode_utf8();
            decoded.map(|text| text.into_owned()).map_err(|_| {
                Failure::Usage("invalid AMQP URL: not UTF-8 once decoded".into()).into()
            })
        };
        let host = match url.host_str() {
            None | Some("") => "localhost".to_string(),
            // An IPv6 literal comes back in brackets; the resolver wants it bare.
            Some(host) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        };
        let port = url.port().unwrap_or(if tls { 5671 } else { 5672 });
        let mut segments = url.path_segments().into_iter().flatten();
        let vhost = match segments.next() {
            None | Some("") => "/".to_string(),
            Some(segment) => decode(segment)?,
        };
        if segments.next().is_some() {
            return Err(Failure::Usage(
                "invalid AMQP URL: the path holds more than a vhost (escape '/' as %2f)".into(),
            )
            .into());
        }
        // The spec's defaults stand only for what is absent: an empty user
        // name or password (`amqp://:@h`, `amqp://u:@h`) is sent empty, and
        // the broker refuses it, never taken as guest. The url crate reads
        // `u:@h` as `u@h`, so what is present is read from the text.
        let given = given_credentials(text);
        let username = match given.username {
            true => decode(url.username())?,
            false => "guest".to_string(),
        };
        let password = match given.password {
            true => decode(url.password().unwrap_or(""))?,
            false => "guest".to_string(),
        };
        let mut parsed = AmqpUrl {
            tls,
            host,
            port,
            vhost,
            username,
            password,
            heartbeat: None,
            channel_max: None,
        };
        for (key, value) in url.query_pairs() {
            let number = |what: &str| -> Result<u16> {
                value.parse().map_err(|_| {
                    Failure::Usage(format!("invalid AMQP URL: {what}={value} is not a number"))
                        .into()
                })
            };
            match key.as_ref() {
                "heartbeat" => parsed.heartbeat = Some(number("heartbeat")?),
                "channel_max" => parsed.channel_max = Some(number("channel_max")?),
                other => {
                    return Err(Failure::Usage(format!(
                        "invalid AMQP URL: unsupported query parameter {other:?}"
                    ))
                    .into())
                }
            }
        }
        Ok(parsed)
    }
}

/// How to write what a URL cannot hold as it is; part of every error about a
/// URL's shape, since the usual cause is a password with one of these in it.
pub const ENCODING_HINT: &str = "percent-encode any of : / ? # @ [ ] % , in the user name or \
     password (# as %23, / as %2f, ? as %3f, @ as %40, % as %25, comma as %2c)";

/// Refuses what the URL parser would drop or misread without a word: a
/// fragment (`#...`, usually the rest of a password with a `#` in it), a
/// control character (tabs and newlines are removed), an `@` after the host
/// (a password's `/` or `?` cut the host short, so what looks like the host
/// is part of the password), and a `.` or `..` vhost (removed as a path
/// step). The messages quote nothing of `text`.
fn refuse_what_would_be_dropped(text: &str) -> Result<()> {
    let refuse = |why: &str| -> Result<()> {
        Err(Failure::Usage(format!("invalid AMQP URL: {why}; {ENCODING_HINT}")).into())
    };
    if text.chars().any(char::is_control) {
        return refuse(
            "it holds a control character (such as a tab or newline), which would be dropped",
        );
    }
    if text.contains('#') {
        return refuse("'#' starts a fragment, which would be dropped");
    }
    let after_scheme = text.split_once("://").map_or(text, |(_, rest)| rest);
    // The authority ends at the first '/' or '?'; whatever follows is the
    // vhost and the query.
    let mut parts = after_scheme.splitn(2, ['/', '?']);
    let _authority = parts.next();
    let after_authority = parts.next().unwrap_or("");
    if after_authority.contains('@') {
        return refuse(
            "an '@' after the host: the user name or password holds a '/' or '?', which ends the host",
        );
    }
    let path = after_authority.split('?').next().unwrap_or("");
    let dot_step = |segment: &str| {
        let segment = segment.to_ascii_lowercase().replace("%2e", ".");
        segment == "." || segment == ".."
    };
    if path.split('/').any(dot_step) {
        return refuse("a vhost '.' or '..' is a path step that would be dropped");
    }
    Ok(())
}

/// Which of the user name and password a URL's text holds, empty or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Given {
    username: bool,
    password: bool,
}

/// Reads from the text what the url crate does not say: whether the URL
/// has user info (an `@` in its authority: the part after `://` up to the
/// first `/` or `?`) and, in it, a password (a `:` before the last `@`).
fn given_credentials(text: &str) -> Given {
    let authority = text
        .split_once("://")
        .map_or("", |(_, rest)| rest.split(['/', '?']).next().unwrap_or(""));
    match authority.rsplit_once('@') {
        None => Given {
            username: false,
            password: false,
        },
        Some((userinfo, _)) => Given {
            username: true,
            password: userinfo.contains(':'),
        },
    }
}

/// Percent-encodes what a user name or vhost cannot hold as it is in a URL
/// that `--url` reads back: everything but letters, digits and `-._~!$&'()*+;=`,
/// in lower-case hex as RabbitMQ writes `%2f`.
fn encode_component(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+;=".contains(c) {
            encoded.push(c);
        } else {
            let mut bytes = [0u8; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                encoded.push_str(&format!("%{byte:02x}"));
            }
        }
    }
    encoded
}

/// The URL with its password as `***`, written so that it parses back to the
/// same address, user and vhost: an IPv6 host in brackets, the user name and
/// vhost percent-encoded where they must be.
impl fmt::Display for AmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        let user = encode_component(&self.username);
        let vhost = encode_component(&self.vhost);
        if self.host.contains(':') {
            write!(
                f,
                "{scheme}://{user}:***@[{}]:{}/{vhost}",
                self.host, self.port
            )
        } else {
            write!(
                f,
                "{scheme}://{user}:***@{}:{}/{vhost}",
                self.host, self.port
            )
        }
    }
}

impl fmt::Debug for AmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AmqpUrl({self})")
    }
}

/// Opens a connection to the first of the settings' addresses that answers,
/// trying them in order.
pub fn open_connection(settings: &ConnectionSettings) -> Result<Connection> {
    open_any(settings, 0).map(|opened| opened.connection)
}

/// A connection just opened: where, and a way to cut it.
pub struct Opened {
    pub connection: Connection,
    /// The index of its address in the settings.
    pub index: usize,
    pub socket: Socket,
}

/// A second handle on a connection's TCP socket, to cut it when amiquip's
/// own close cannot finish: amiquip waits for the broker's close-ok with no
/// timeout, and a broker that blocks the connection (a resource alarm) or
/// is frozen never sends it. Shutting the socket down wakes amiquip's I/O
/// thread, which then fails every wait.
#[derive(Debug)]
pub struct Socket(TcpStream);

impl Socket {
    /// Shuts both directions down; the broker sees the connection end.
    pub fn cut(&self) {
        // Already closed is as good as closed.
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// Opens a connection to the first address that answers, trying them
/// round-robin from index `start`; returns it with the index of its address.
/// A refusal that would happen again on any node (bad credentials, no such
/// vhost) ends the search at once.
pub fn open_any(settings: &ConnectionSettings, start: usize) -> Result<Opened> {
    let count = settings.urls.len();
    let mut last_error = None;
    for index in (0..count).map(|k| (start + k) % count) {
        let Some(url) = settings.urls.get(index) else {
            continue;
        };
        match open_one(settings, url) {
            Ok((connection, socket)) => {
                return Ok(Opened {
                    connection,
                    index,
                    socket,
                })
            }
            Err(error) if crate::failure::is_transient(&error) => {
                if count > 1 {
                    log::info!("{error:#}; trying the next address");
                }
                last_error = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| Failure::Usage("no broker URL given".into()).into()))
}

/// Opens a connection with TCP_NODELAY set, over TLS for `amqps://`.
/// Every step is bounded by `connect_timeout`.
fn open_one(settings: &ConnectionSettings, url: &AmqpUrl) -> Result<(Connection, Socket)> {
    let (stream, socket) = connect_tcp(url, settings.connect_timeout)
        .map_err(|e| Failure::Disconnected(format!("cannot connect to {url}: {e:#}")))?;
    let mut options = ConnectionOptions::<Auth>::default()
        .auth(Auth::Plain {
            username: url.username.clone(),
            password: url.password.clone(),
        })
        .virtual_host(url.vhost.clone())
        .connection_timeout(Some(settings.connect_timeout))
        // Heartbeats bound every synchronous AMQP call: if the broker goes
        // silent, amiquip fails the call after missed beats.
        .heartbeat(url.heartbeat.unwrap_or(DEFAULT_HEARTBEAT_SECS));
    if let Some(channel_max) = url.channel_max {
        options = options.channel_max(channel_max);
    }
    let tuning = ConnectionTuning::default();
    let connection = if url.tls {
        let connector = tls_connector(settings)?;
        Connection::open_tls_stream(connector, &url.host, stream, options, tuning)
    } else {
        Connection::insecure_open_stream(stream, options, tuning)
    };
    let connection = connection.map_err(|e| {
        let message = format!("cannot open AMQP connection to {url}: {e}");
        if crate::failure::amqp_error_is_transient(&e) {
            Failure::Disconnected(message)
        } else {
            Failure::Broker(message)
        }
    })?;
    Ok((connection, socket))
}

/// The stream for amiquip, and a second handle on the same socket.
fn connect_tcp(url: &AmqpUrl, timeout: Duration) -> Result<(mio::net::TcpStream, Socket)> {
    let addresses = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", url.host))?;
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                let socket = Socket(stream.try_clone()?);
                return Ok((mio::net::TcpStream::from_stream(stream)?, socket));
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) => e.into(),
        None => anyhow::anyhow!("{} resolves to no address", url.host),
    })
}

fn tls_connector(settings: &ConnectionSettings) -> Result<native_tls::TlsConnector> {
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(ca) = &settings.tls_ca {
        builder.add_root_certificate(ca.certificate.clone());
    }
    builder
        .build()
        .map_err(|e| Failure::Broker(format!("cannot set up TLS: {e}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_url() {
        let url = AmqpUrl::parse(crate::protocol::DEFAULT_URL).unwrap();
        assert!(!url.tls);
        assert_eq!((url.host.as_str(), url.port), ("127.0.0.1", 5672));
        assert_eq!(url.vhost, "/");
        assert_eq!(url.username, "guest");
        assert_eq!(url.password, "guest");
    }

    #[test]
    fn fills_in_defaults_like_the_uri_spec() {
        let url = AmqpUrl::parse("amqps://").unwrap();
        assert!(url.tls);
        assert_eq!((url.host.as_str(), url.port), ("localhost", 5671));
        assert_eq!((url.username.as_str(), url.vhost.as_str()), ("guest", "/"));
        let url = AmqpUrl::parse("amqp://u%40x:p%3Aw@h:1/v%2fh?heartbeat=5").unwrap();
        assert_eq!(url.username, "u@x");
        assert_eq!(url.password, "p:w");
        assert_eq!(url.vhost, "v/h");
        assert_eq!(url.heartbeat, Some(5));
    }

    #[test]
    fn display_and_errors_never_show_the_password() {
        let url = AmqpUrl::parse("amqp://alice:s3cret@example.com/prod").unwrap();
        assert_eq!(url.to_string(), "amqp://alice:***@example.com:5672/prod");
        assert!(!format!("{url:?}").contains("s3cret"));
        for bad in [
            "http://alice:s3cret@h/",
            "amqp://alice:s3cret@h/a/b",
            "amqp://alice:s3cret@h/?heartbeat=x",
            "amqp://alice:s3cret@h/?frob=1",
            "amqp://alice:s3cret@h:99999/",
        ] {
            let error = format!("{:#}", AmqpUrl::parse(bad).unwrap_err());
            assert!(!error.contains("s3cret"), "{error}");
            assert!(error.starts_with("invalid AMQP URL"), "{error}");
        }
    }

    #[test]
    fn what_would_be_dropped_is_refused_without_showing_it() {
        for (bad, why) in [
            // The case: "98765" of the password would become the port.
            ("amqp://u:98765#Qx@h", "'#' starts a fragment"),
            ("amqp://u:Qpw@h/#Qfrag", "'#' starts a fragment"),
            ("amqp://u:Qpw@h/%2f#", "'#' starts a fragment"),
            ("amqp://u:98765/Qx@h", "an '@' after the host"),
            ("amqp://u:98765?Qx@h", "an '@' after the host"),
            ("amqp://u:Qpw\t1@h", "control character"),
            ("amqp://u:Qpw1@h/\n", "control character"),
            ("amqp://u:Qpw@h/..", "'.' or '..'"),
            ("amqp://u:Qpw@h/%2E", "'.' or '..'"),
        ] {
            let error = AmqpUrl::parse(bad).expect_err(bad);
            assert_eq!(crate::exit_code(&error), crate::exit::USAGE);
            let error = format!("{error:#}");
            assert!(error.contains(why), "{bad}: {error}");
            assert!(
                error.contains("# as %23"),
                "{bad}: says how to encode: {error}"
            );
            for part in ["98765", "Qpw", "Qx", "Qfrag"] {
                assert!(!error.contains(part), "{bad}: {error}");
            }
        }
        // Encoded, each is fine.
        let url = AmqpUrl::parse("amqp://u:12345%23x@h").unwrap();
        assert_eq!((url.host.as_str(), url.password.as_str()), ("h", "12345#x"));
        let url = AmqpUrl::parse("amqp://u:a%2fb%3fc@h/v%40").unwrap();
        assert_eq!((url.password.as_str(), url.vhost.as_str()), ("a/b?c", "v@"));
    }

    #[test]
    fn ipv6_hosts_print_in_brackets_and_parse_back() {
        let url = AmqpUrl::parse("amqp://u:p@[::1]:1/").unwrap();
        assert_eq!(url.host, "::1");
        assert_eq!(url.to_string(), "amqp://u:***@[::1]:1/%2f");
        let again = AmqpUrl::parse(&url.to_string()).unwrap();
        assert_eq!(
            (again.host, again.port, again.vhost),
            (url.host, url.port, url.vhost)
        );
        let url = AmqpUrl::parse("amqp://a%40b%2cc:p@h/x%20y").unwrap();
        assert_eq!(url.to_string(), "amqp://a%40b%2cc:***@h:5672/x%20y");
    }

    #[test]
    fn an_empty_user_or_password_is_empty_only_an_absent_one_is_guest() {
        let credentials = |text: &str| {
            let url = AmqpUrl::parse(text).unwrap();
            (url.username, url.password)
        };
        let pair = |user: &str, password: &str| (user.to_string(), password.to_string());
        assert_eq!(credentials("amqp://127.0.0.1"), pair("guest", "guest"));
        assert_eq!(credentials("amqp://u@h"), pair("u", "guest"));
        assert_eq!(credentials("amqp://guest:@h:5672/%2f"), pair("guest", ""));
        assert_eq!(credentials("amqp://:guest@h"), pair("", "guest"));
        assert_eq!(credentials("amqp://:@h/"), pair("", ""));
        assert_eq!(credentials("amqp://@h"), pair("", "guest"));
        assert_eq!(credentials("amqp://u:p@h?heartbeat=5"), pair("u", "p"));
        // A '@' or ':' in the vhost or query is not user info.
        assert_eq!(credentials("amqp://h/a%40b?heartbeat=1").0, "guest");
        // The printed URL shows the empty user as it is, never the password.
        let url = AmqpUrl::parse("amqp://:secret@h").unwrap();
        assert_eq!(url.to_string(), "amqp://:***@h:5672/%2f");
        assert_eq!(AmqpUrl::parse(&url.to_string()).unwrap().username, "");
    }

    proptest::proptest! {
        /// Any password, empty or not, percent-encoded, reaches the broker
        /// as it was.
        #[test]
        fn passwords_decode_to_what_was_encoded(password in ".*") {
            let encoded = percent_encoding::utf8_percent_encode(
                &password,
                percent_encoding::NON_ALPHANUMERIC,
            );
            let url = AmqpUrl::parse(&format!("amqp://u:{encoded}@h/"));
            proptest::prop_assert_eq!(url.map(|url| url.password).ok(), Some(password));
        }

        /// A user name and password given in the URL, either or both empty,
        /// are what the broker gets; only what is absent takes the URI spec's
        /// default, `guest` (no user info at all, or no `:` in it).
        #[test]
        fn given_credentials_are_kept_even_empty_only_absent_ones_are_guest(
            user in proptest::option::of(".{0,8}"),
            password in proptest::option::of(".{0,8}"),
            rest in proptest::sample::select(vec!["h", "h:5672", "[::1]:1", "h/v", "h?heartbeat=5"]),
        ) {
            let encode = |text: &str| {
                percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            };
            let userinfo = match (&user, &password) {
                (None, None) => String::new(),
                (Some(user), None) => format!("{}@", encode(user)),
                (user, Some(password)) => format!(
                    "{}:{}@",
                    encode(user.as_deref().unwrap_or("")),
                    encode(password)
                ),
            };
            let url = AmqpUrl::parse(&format!("amqp://{userinfo}{rest}"))
                .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e:#}")))?;
            let expected_user = match (&user, &password) {
                (None, None) => "guest",
                (user, _) => user.as_deref().unwrap_or(""),
            };
            proptest::prop_assert_eq!(url.username.as_str(), expected_user);
            let expected_password = password.as_deref().unwrap_or("guest");
            proptest::prop_assert_eq!(url.password.as_str(), expected_password);
        }
    }
}
