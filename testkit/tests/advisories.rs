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

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Calls that would reach the code of an ignored advisory.
const UNREACHED: &[(&str, &str)] = &[
    ("Connection::open(", "RUSTSEC-2024-0421"),
    ("Connection::open_tuned(", "RUSTSEC-2024-0421"),
    ("insecure_open(", "RUSTSEC-2024-0421"),
    ("insecure_open_tuned(", "RUSTSEC-2024-0421"),
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
                  use mio::net::TcpStream;\n";
    let found = unreached_calls(source);
    assert_eq!(
        found,
        [
            "line 2: insecure_open( (RUSTSEC-2024-0421)",
            "line 3: mio::net::TcpStream::connect (RUSTSEC-2020-0016)",
            "line 6: use mio (RUSTSEC-2020-0016)",
        ]
    );
}
