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
