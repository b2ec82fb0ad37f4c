//! Relative links in the Markdown docs: every `[text](target)` that is not a
//! URL must name a file that exists and, when it has a `#fragment` into a
//! Markdown file, a heading of that file (anchors as GitHub makes them).

use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The Markdown files of the docs: the `.md` files at the workspace root
/// (README.md, BENCHMARKS.md) and in `docs/`.
pub fn doc_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for dir in [root.to_path_buf(), root.join("docs")] {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The broken relative links of `files`, one line each: the file, the link
/// and what is wrong with it.
pub fn broken_links(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            let linked = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            if !linked.exists() {
                problems.push(format!("{}: ({target}): no such file", file.display()));
                continue;
            }
            let Some(fragment) = fragment else { continue };
            if linked.extension().is_none_or(|ext| ext != "md") {
                continue;
            }
            let linked_text = std::fs::read_to_string(&linked)
                .with_context(|| format!("reading {}", linked.display()))?;
            if !anchors(&linked_text).contains(fragment) {
                problems.push(format!(
                    "{}: ({target}): no heading with anchor #{fragment} in {}",
                    file.display(),
                    linked.display()
                ));
            }
        }
    }
    Ok(problems)
}

/// The targets of the inline links and images of a Markdown text, outside
/// code blocks and code spans.
pub fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(text) {
        let prose = without_code_spans(line);
        let mut rest = prose.as_str();
        while let Some(start) = rest.find("](") {
            let after = rest.get(start + 2..).unwrap_or_default();
            let end = after.find([')', ' ']).unwrap_or(after.len());
            let target = after.get(..end).unwrap_or_default();
            if !target.is_empty() {
                targets.push(target.to_string());
            }
            rest = after.get(end..).unwrap_or_default();
        }
    }
    targets
}

/// The anchors GitHub gives the headings of a Markdown text: lower case,
/// punctuation but `-` and `_` dropped, spaces made `-`, and `-1`, `-2`
/// after a repeated one.
pub fn anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for line in prose_lines(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let slug = slug(heading.trim());
        let mut anchor = slug.clone();
        let mut repeat = 0;
        while anchors.contains(&anchor) {
            repeat += 1;
            anchor = format!("{slug}-{repeat}");
        }
        anchors.insert(anchor);
    }
    anchors
}

fn slug(heading: &str) -> String {
    heading
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_lowercase)
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The lines of a Markdown text outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut fence: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match fence {
            Some(marker) if trimmed.starts_with(marker) => fence = None,
            Some(_) => {}
            None if trimmed.starts_with("```") => fence = Some("```"),
            None if trimmed.starts_with("~~~") => fence = Some("~~~"),
            None => lines.push(line),
        }
    }
    lines
}

fn without_code_spans(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_links_outside_code() {
        let text = "See [a](docs/a.md#x-y) and ![img](b.svg).\n\
                    `[not](code.md)` [c](https://example.com) [d](#local \"title\")\n\
                    ```\n[in](fence.md)\n```\n";
        assert_eq!(
            link_targets(text),
            vec!["docs/a.md#x-y", "b.svg", "https://example.com", "#local"]
        );
    }

    #[test]
    fn anchors_as_github_makes_them() {
        let text =
            "# fib-rpc\n## Quick start (fresh Debian machine)\n### `--url-file` and Ctrl-C\n\
                    ## Flags\n## Flags\n```\n# not a heading\n```\n#hashtag\n";
        let anchors = anchors(text);
        let expected = [
            "fib-rpc",
            "quick-start-fresh-debian-machine",
            "--url-file-and-ctrl-c",
            "flags",
            "flags-1",
        ];
        assert_eq!(
            anchors,
            expected
                .iter()
                .map(|a| a.to_string())
                .collect::<BTreeSet<_>>()
        );
    }

    #[test]
    fn reports_a_missing_file_and_a_missing_anchor() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("fib-links-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let page = dir.join("page.md");
        std::fs::write(&page, "# Page\n## Here\n")?;
        let index = dir.join("index.md");
        std::fs::write(
            &index,
            "[ok](page.md#here) [top](#index) [gone](nothere.md) [bad](page.md#there)\n# Index\n",
        )?;
        let problems = broken_links(&[index, page]);
        std::fs::remove_dir_all(&dir)?;
        let problems = problems?;
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].contains("nothere.md"), "{problems:#?}");
        assert!(problems[1].contains("#there"), "{problems:#?}");
        Ok(())
    }
}
