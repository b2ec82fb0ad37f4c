//! An --export-* file holds either what was there before the run or the
//! whole of this run's, however the run ends: a second Ctrl-C (like SIGKILL
//! or a crash) used to leave it empty, since it was emptied when the run
//! started, and `--export-json base.json` lost the previous baseline.

use anyhow::Result;
use std::time::Duration;
use testkit::{Peer, Scratch, TempDir, WAIT};

#[test]
fn a_second_ctrl_c_leaves_the_export_whole() -> Result<()> {
    let scratch = Scratch::new("exportkept");
    // A queue bound and never consumed: the request waits for its reply.
    Peer::connect()?.declare(&scratch.topology)?;
    let dir = TempDir::new("exportkept")?;
    let export = dir.file("base.json");
    let previous = r#"{"parameters":{},"summary":{"count":1}}"#;
    std::fs::write(&export, previous)?;
    let mut client = scratch.spawn(
        testkit::binary("fib-client")
            .to_str()
            .unwrap_or("fib-client"),
        &[
            "--count",
            "5",
            "--timeout",
            "20",
            "--json",
            "--export-json",
            &export,
        ],
    )?;
    client.wait_for_line("replies on", WAIT)?;
    client.signal("INT")?;
    client.wait_for_line("interrupted", WAIT)?;
    std::thread::sleep(Duration::from_millis(200));
    client.signal("INT")?;
    let status = client.wait(WAIT)?;
    assert_eq!(status.code(), Some(130), "{:?}", client.stderr());
    let text = std::fs::read_to_string(&export)?;
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_ok(),
        "the export holds neither the previous file nor a summary: {text:?}"
    );
    Ok(())
}
