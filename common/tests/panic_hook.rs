//! A panic on any thread ends the program with one `error: internal error:`
//! line and exit 70, through the hook both programs install first thing
//! (`common::exit::exit_on_panic`). The panic is a real one, in a child
//! process: this test binary runs itself again, and only in that child does
//! `panicking_child` install the hook and panic on a thread of its own.

use std::process::Command;

/// Set only in the child that this file's test starts.
const CHILD: &str = "FIB_RPC_PANIC_HOOK_CHILD";

#[test]
fn panicking_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    common::exit::exit_on_panic();
    let worker = std::thread::Builder::new()
        .name("worker".into())
        .spawn(|| {
            let values: Vec<u64> = Vec::new();
            // A real out-of-bounds panic, not a call of panic!.
            let index = values.len() + 3;
            values[index]
        })
        .expect("a thread");
    // The hook exits the process before the thread's result comes back.
    let _ = worker.join();
    unreachable!("the panic hook did not exit");
}

#[test]
fn a_panic_on_any_thread_is_one_error_line_and_exit_70() {
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(exe)
        .args([
            "--exact",
            "panicking_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs again");
    assert_eq!(
        output.status.code(),
        Some(common::exit::INTERNAL),
        "{output:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let line = errors[0];
    assert!(line.starts_with("error: internal error: "), "{line}");
    assert!(line.contains("index out of bounds"), "{line}");
    assert!(line.contains("panic_hook.rs:"), "{line}");
    assert!(
        !stderr.contains("panicked at"),
        "Rust's own message: {stderr}"
    );
}
