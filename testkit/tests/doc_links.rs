//! No relative link in README.md, BENCHMARKS.md or docs/*.md points at a
//! file or a heading that is not there.

#[test]
fn every_relative_link_in_the_docs_resolves() -> anyhow::Result<()> {
    let files = testkit::links::doc_files(&testkit::workspace_root())?;
    for page in ["README.md", "docs/server.md", "docs/client.md"] {
        assert!(files.iter().any(|file| file.ends_with(page)), "{files:?}");
    }
    let problems = testkit::links::broken_links(&files)?;
    assert!(problems.is_empty(), "{problems:#?}");
    Ok(())
}

/// The README shows how to keep the broker password out of `ps`, and links
/// to the section that says it all.
#[test]
fn the_readme_shows_the_url_file() -> anyhow::Result<()> {
    let readme = testkit::readme::doc("README.md")?;
    for needed in [
        "--url-file ",
        "AMQP_URL_FILE=",
        "chmod 600",
        "(docs/delivery.md#keeping-the-password-out-of-ps)",
    ] {
        assert!(readme.contains(needed), "README.md lacks {needed:?}");
    }
    assert!(readme.lines().count() <= 250, "README.md is over 250 lines");
    Ok(())
}
