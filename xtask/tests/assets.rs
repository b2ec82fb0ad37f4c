//! `cargo xtask assets` writes every completion and man page, each naming
//! the programs' flags and the man pages their exit codes.

use std::process::Command;

#[test]
fn writes_completions_and_man_pages() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("assets");
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["assets", "--out"])
        .arg(&out)
        .status()
        .expect("xtask runs");
    assert!(status.success(), "{status:?}");
    let read = |path: &str| {
        std::fs::read_to_string(out.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    for name in ["fib-server", "fib-client"] {
        for file in [
            format!("completions/{name}.bash"),
            format!("completions/_{name}"),
            format!("completions/{name}.fish"),
            format!("completions/_{name}.ps1"),
            format!("completions/{name}.elv"),
        ] {
            let text = read(&file);
            assert!(text.contains("tls-ca"), "{file} lacks --tls-ca:\n{text}");
            assert!(text.contains("exchange"), "{file} lacks --exchange");
        }
        let page = read(&format!("man/man1/{name}.1"));
        assert!(page.starts_with(".ie"), "not a roff page: {name}.1");
        assert!(page.contains(&format!(".TH {name} 1")), "{page}");
        assert!(page.contains("tls\\-ca"), "{page}");
        assert!(page.contains("Exit codes"), "{page}");
    }
    let server = read("man/man1/fib-server.1");
    assert!(server.contains("max\\-n"), "{server}");
    let client = read("man/man1/fib-client.1");
    assert!(client.contains("inflight"), "{client}");
}
