//! deny.toml ignores two advisories because the code they are about is never
//! reached from ours. This keeps that reason true:
//!
//! - RUSTSEC-2024-0421 (idna 0.1.5 through amq-protocol's url 1.7): amiquip
//!   parses a URL with it only in `Connection::open`, `open_tuned`,
//!   `insecure_open` and `insecure_open_tuned`. We parse URLs with url 2
//!   (`common::AmqpUrl`) and open with `open_tls_stream` /
//!   `insecure_open_stream`.
//! - RUSTSEC-2020-0016 (net2 through mio 0.6): mio uses net2 only in its own
//!   `TcpStream::connect`/`connect_stream`, its UDP sockets and its
//!   keepalive/linger setters. We connect with std and hand the stream to
//!   `mio::net::TcpStream::from_stream`. mio is always named by its full
//!   path (no `use mio`), so that a text search sees every call into it.
//!
//! Two checks: the sources (no call by any spelling: an alias, a path held
//! as a value, a qualified path), and the symbols of the built programs
//! (the linker keeps only the functions a program can reach, so none of
//! those may be among them, however the call was spelt).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Calls that would reach the code of an ignored advisory.
const UNREACHED: &[(&str, &str)] = &[
    ("amq_protocol::uri", "RUSTSEC-2024-0421"),
    ("AMQPUri", "RUSTSEC-2024-0421"),
    ("net2", "RUSTSEC-2020-0016"),
    ("TcpBuilder", "RUSTSEC-2020-0016"),
    // mio is named by its full path only, so that these see every use.
    ("use mio", "RUSTSEC-2020-0016"),
    ("mio::net::TcpStream::connect", "RUSTSEC-2020-0016"),
    ("mio::net::UdpSocket", "RUSTSEC-2020-0016"),
    ("set_keepalive(", "RUSTSEC-2020-0016"),
    ("set_linger(", "RUSTSEC-2020-0016"),
];

/// amiquip's functions that parse a URL (RUSTSEC-2024-0421), reached by
/// whatever path: `Connection::open`, `<Connection>::open`, a value
/// `Connection::open` without a call.
const URL_OPENERS: &[&str] = &["open", "open_tuned", "insecure_open", "insecure_open_tuned"];

/// The places in `source` (one file's text, line comments left out) that
/// call what `UNREACHED` lists: `line: call (advisory)`.
fn unreached_calls(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (number, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        for (call, advisory) in UNREACHED {
            if code.contains(call) {
                found.push(format!("line {}: {call} ({advisory})", number + 1));
            }
        }
        for (path, opener) in connection_paths(code) {
            if URL_OPENERS.contains(&opener) {
                found.push(format!(
                    "line {}: {path}{opener} (RUSTSEC-2024-0421)",
                    number + 1
                ));
            }
        }
        // Another name for amiquip's Connection hides its calls from the
        // checks above.
        if code.contains("Connection as ")
            || (code.contains("type ") && code.contains("= amiquip::Connection"))
        {
            found.push(format!(
                "line {}: amiquip's Connection renamed (RUSTSEC-2024-0421)",
                number + 1
            ));
        }
    }
    found
}

/// Each `Connection::NAME` / `Connection>::NAME` in `code`: the path up to
/// and including `::`, and NAME.
fn connection_paths(code: &str) -> Vec<(&'static str, &str)> {
    let mut found = Vec::new();
    for path in ["Connection::", "Connection>::"] {
        for (start, _) in code.match_indices(path) {
            let rest = code.get(start + path.len()..).unwrap_or_default();
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            found.push((path, rest.get(..end).unwrap_or_default()));
        }
    }
    found
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, files)?;
            }
        } else if name.ends_with(".rs") && !path.ends_with("testkit/tests/advisories.rs") {
            files.push(path);
        }
    }
    Ok(())
}

#[test]
fn no_source_reaches_the_code_of_an_ignored_advisory() -> Result<()> {
    let root = testkit::workspace_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files)?;
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("common/src/connection.rs")),
        "{files:?}"
    );
    let mut problems = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file)?;
        for call in unreached_calls(&source) {
            problems.push(format!("{}: {call}", file.display()));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The way we do open a connection, so that the list above stays the
    // right one to look for.
    let connection = std::fs::read_to_string(root.join("common/src/connection.rs"))?;
    assert!(connection.contains("Connection::insecure_open_stream("));
    assert!(connection.contains("Connection::open_tls_stream("));
    assert!(connection.contains("mio::net::TcpStream::from_stream("));
    Ok(())
}

/// Functions in a program's symbols that hold the code of an ignored
/// advisory: a path ending in `::` is looked for anywhere in a symbol,
/// another names one function.
const UNREACHED_SYMBOLS: &[(&str, &str)] = &[
    ("amiquip::connection::Connection::open", "RUSTSEC-2024-0421"),
    (
        "amiquip::connection::Connection::open_tuned",
        "RUSTSEC-2024-0421",
    ),
    (
        "amiquip::connection::Connection::insecure_open",
        "RUSTSEC-2024-0421",
    ),
    (
        "amiquip::connection::Connection::insecure_open_tuned",
        "RUSTSEC-2024-0421",
    ),
    ("amq_protocol::uri::", "RUSTSEC-2024-0421"),
    ("net2::", "RUSTSEC-2020-0016"),
    ("mio::net::tcp::TcpStream::connect", "RUSTSEC-2020-0016"),
    (
        "mio::net::tcp::TcpStream::set_keepalive",
        "RUSTSEC-2020-0016",
    ),
    ("mio::net::tcp::TcpStream::set_linger", "RUSTSEC-2020-0016"),
    ("mio::net::tcp::TcpListener::bind", "RUSTSEC-2020-0016"),
    ("mio::net::udp::", "RUSTSEC-2020-0016"),
];

/// The symbols of `names` (demangled, one a line as `nm -C` prints them)
/// that hold the code of an ignored advisory.
fn unreached_symbols(names: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in names.lines() {
        // "ADDRESS TYPE NAME": the name may hold spaces (`<A as B>::f`).
        let name = line.splitn(3, ' ').nth(2).unwrap_or(line);
        for (symbol, advisory) in UNREACHED_SYMBOLS {
            let hit = if symbol.ends_with("::") {
                name.contains(symbol)
            } else {
                // The function itself, its closures and its instances,
                // not `open_channel` beside `open`.
                name.match_indices(symbol).any(|(at, _)| {
                    let next = name.get(at + symbol.len()..).unwrap_or_default();
                    next.is_empty() || next.starts_with("::") || next.starts_with('<')
                })
            };
            if hit {
                found.push(format!("{name} ({advisory})"));
            }
        }
    }
    found
}

/// The programs as built for the tests: no function of an ignored
/// advisory's code was linked in, so none can be reached.
#[test]
fn no_program_links_the_code_of_an_ignored_advisory() -> Result<()> {
    for program in ["fib-server", "fib-client"] {
        let path = testkit::binary(program);
        let output = std::process::Command::new("nm")
            .args(["-C", "--defined-only"])
            .arg(&path)
            .output()
            .context("running nm (binutils)")?;
        anyhow::ensure!(
            output.status.success(),
            "nm {}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let names = String::from_utf8_lossy(&output.stdout);
        // The symbols are there and readable: the way we do connect is.
        for used in [
            "amiquip::connection::Connection::insecure_open_stream",
            "mio::net::tcp::TcpStream::from_stream",
        ] {
            anyhow::ensure!(
                names.contains(used),
                "{program}: no {used} among its symbols"
            );
        }
        let found = unreached_symbols(&names);
        assert!(found.is_empty(), "{program} links {found:#?}");
    }
    Ok(())
}

#[test]
fn finds_an_advisory_symbol_and_not_its_neighbours() {
    let names = "0000000000001000 T amiquip::connection::Connection::open_channel\n\
                 0000000000001100 T amiquip::connection::Connection::insecure_open_stream\n\
                 0000000000001200 T amiquip::connection::Connection::open\n\
                 0000000000001300 t amiquip::connection::Connection::insecure_open::{{closure}}\n\
                 0000000000001400 T <net2::tcp::TcpBuilder as core::fmt::Debug>::fmt\n";
    assert_eq!(
        unreached_symbols(names),
        [
            "amiquip::connection::Connection::open (RUSTSEC-2024-0421)",
            "amiquip::connection::Connection::insecure_open::{{closure}} (RUSTSEC-2024-0421)",
            "<net2::tcp::TcpBuilder as core::fmt::Debug>::fmt (RUSTSEC-2020-0016)",
        ]
    );
}

#[test]
fn deny_toml_ignores_exactly_these_two() -> Result<()> {
    let deny = std::fs::read_to_string(testkit::workspace_root().join("deny.toml"))?;
    let mut ignored: Vec<&str> = deny
        .lines()
        .filter(|line| line.trim_start().starts_with("{ id = \"RUSTSEC-"))
        .filter_map(|line| line.split('"').nth(1))
        .collect();
    ignored.sort_unstable();
    assert_eq!(ignored, ["RUSTSEC-2020-0016", "RUSTSEC-2024-0421"]);
    Ok(())
}

#[test]
fn finds_a_call_and_skips_a_comment() {
    let source = "// amiquip's Connection::open(url) is never called\n\
                  let c = amiquip::Connection::insecure_open(&url)?;\n\
                  let s = mio::net::TcpStream::connect(&addr)?;\n\
                  let std = std::net::TcpStream::connect(&addr)?;\n\
                  let t = mio::net::TcpStream::from_stream(stream)?;\n\
                  use mio::net::TcpStream;\n\
                  use amiquip::Connection as Amqp;\n\
                  let open = Connection::open;\n\
                  let c = <Connection>::open(url)?;\n\
                  let c = Connection::open_tls_stream(c, d, s)?;\n";
    let found = unreached_calls(source);
    assert_eq!(
        found,
        [
            "line 2: Connection::insecure_open (RUSTSEC-2024-0421)",
            "line 3: mio::net::TcpStream::connect (RUSTSEC-2020-0016)",
            "line 6: use mio (RUSTSEC-2020-0016)",
            "line 7: amiquip's Connection renamed (RUSTSEC-2024-0421)",
            "line 8: Connection::open (RUSTSEC-2024-0421)",
            "line 9: Connection>::open (RUSTSEC-2024-0421)",
        ]
    );
}
