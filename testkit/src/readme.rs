//! What the docs say about each program's flags (the usage table in
//! `docs/server.md` and `docs/client.md`), and what its `--help` says, read
//! so that a test can hold one against the other.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::process::Command;

/// One flag as documented: its names (`-q`, `--quiet`), env var and default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagDoc {
    pub names: Vec<String>,
    pub env: Option<String>,
    pub default: Option<String>,
}

impl FlagDoc {
    /// The long name, which both the docs and `--help` always give.
    pub fn long(&self) -> Option<&str> {
        self.names
            .iter()
            .find(|name| name.starts_with("--"))
            .map(String::as_str)
    }
}

/// The heading in a program's page under which its usage table stands.
pub const USAGE_SECTION: &str = "Flags";

/// The page of the docs that documents `program`'s flags, relative to the
/// workspace root.
pub fn usage_page(program: common::exit::Program) -> &'static str {
    match program {
        common::exit::Program::Server => "docs/server.md",
        common::exit::Program::Client => "docs/client.md",
    }
}

/// The text of a file of the docs, `relative` to the workspace root.
pub fn doc(relative: &str) -> Result<String> {
    let path = crate::workspace_root().join(relative);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The rows of the first `| flag | env | default | meaning |` table under
/// the heading `## {section}` of a page of the docs.
pub fn usage_table(page: &str, section: &str) -> Result<Vec<FlagDoc>> {
    let heading = format!("## {section}\n");
    let start = page
        .find(&heading)
        .with_context(|| format!("no heading {heading:?} in the page"))?;
    let rest = page.get(start + heading.len()..).unwrap_or_default();
    let mut lines = rest
        .lines()
        .skip_while(|line| !line.starts_with("| flag | env | default |"));
    if lines.next().is_none() {
        bail!("no usage table under {heading:?}");
    }
    let mut rows = Vec::new();
    for line in lines.skip(1).take_while(|line| line.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let cell = |i: usize| cells.get(i).copied().unwrap_or_default();
        let names: Vec<String> = code_spans(cell(1))
            .iter()
            .filter_map(|span| span.split_whitespace().next())
            .filter(|word| word.starts_with('-'))
            .map(str::to_string)
            .collect();
        if names.is_empty() {
            bail!("no flag in usage table row {line:?}");
        }
        let optional = |text: &str| {
            let text = text.trim_matches('`');
            (!text.is_empty()).then(|| text.to_string())
        };
        rows.push(FlagDoc {
            names,
            env: optional(cell(2)),
            default: optional(cell(3)),
        });
    }
    Ok(rows)
}

fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// `program --help`, run with no env var of its own set, so that the help
/// shows the defaults as a user without them would see.
pub fn help_of(program: &std::path::Path) -> Result<String> {
    let mut command = Command::new(program);
    command.arg("--help");
    for var in [
        "AMQP_URL",
        "AMQP_TLS_CA",
        "FIB_EXCHANGE",
        "FIB_QUEUE",
        "FIB_MAX_N",
    ] {
        command.env_remove(var);
    }
    let output = command.output()?;
    if !output.status.success() {
        bail!("{} --help failed: {:?}", program.display(), output.status);
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// The flags in a `--help` text, keyed by long name, with the env var and
/// default it shows for each (`--help` and `--version` left out).
pub fn help_flags(help: &str) -> BTreeMap<String, FlagDoc> {
    let mut flags = BTreeMap::new();
    let mut current: Option<(FlagDoc, String)> = None;
    let mut finish = |entry: Option<(FlagDoc, String)>| {
        if let Some((mut flag, text)) = entry {
            flag.env = bracketed(&text, "[env: ")
                .map(|env| env.split('=').next().unwrap_or_default().to_string());
            // clap quotes a default with spaces in it.
            flag.default = bracketed(&text, "[default: ").map(|default| {
                match default.strip_prefix('"').and_then(|d| d.strip_suffix('"')) {
                    Some(inner) => inner.to_string(),
                    None => default,
                }
            });
            if let Some(long) = flag.long().map(str::to_string) {
                if long != "--help" && long != "--version" {
                    flags.insert(long, flag);
                }
            }
        }
    };
    for line in help.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        if trimmed.starts_with('-') && indent <= 6 {
            finish(current.take());
            let names = trimmed
                .split("  ")
                .next()
                .unwrap_or_default()
                .split([',', ' '])
                .filter(|word| word.starts_with('-'))
                .map(str::to_string)
                .collect();
            let flag = FlagDoc {
                names,
                env: None,
                default: None,
            };
            current = Some((flag, trimmed.to_string()));
        } else if trimmed.is_empty() || indent == 0 {
            // A blank line inside a long help, or the text after the flags.
            if indent == 0 && !trimmed.is_empty() {
                finish(current.take());
            }
        } else if let Some((_, text)) = current.as_mut() {
            text.push(' ');
            text.push_str(trimmed);
        }
    }
    finish(current.take());
    flags
}

/// Where the usage table under `## {section}` of `page` and `help` disagree:
/// a flag on one side only, or another env var or default. URLs compare as
/// printed, with the password hidden, as `--help` shows them.
pub fn mismatches(page: &str, section: &str, help: &str) -> Result<Vec<String>> {
    let documented = usage_table(page, section)?;
    let shown = help_flags(help);
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for doc in &documented {
        let Some(long) = doc.long() else {
            problems.push(format!("docs row {:?} has no long flag", doc.names));
            continue;
        };
        seen.push(long.to_string());
        let Some(flag) = shown.get(long) else {
            problems.push(format!("the docs list {long}, --help does not"));
            continue;
        };
        if flag.names != doc.names {
            problems.push(format!(
                "{long}: docs name {:?}, --help {:?}",
                doc.names, flag.names
            ));
        }
        if flag.env != doc.env {
            problems.push(format!(
                "{long}: docs env {:?}, --help {:?}",
                doc.env, flag.env
            ));
        }
        let documented_default = doc.default.as_deref().map(|text| {
            common::AmqpUrl::parse(text).map_or_else(|_| text.to_string(), |url| url.to_string())
        });
        if flag.default != documented_default {
            problems.push(format!(
                "{long}: docs default {documented_default:?}, --help {:?}",
                flag.default
            ));
        }
    }
    for long in shown.keys() {
        if !seen.contains(long) {
            problems.push(format!("--help shows {long}, the docs table does not"));
        }
    }
    Ok(problems)
}

fn bracketed(text: &str, opening: &str) -> Option<String> {
    let start = text.find(opening)? + opening.len();
    let rest = text.get(start..)?;
    let end = rest.find(']')?;
    rest.get(..end).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_usage_table() -> Result<()> {
        let readme = "## prog\n\ntext\n\n| flag | env | default | meaning |\n|---|---|---|---|\n\
                      | `--url` | `AMQP_URL` | `amqp://h` | broker |\n\
                      | `-q`, `--quiet` | | | less |\n\nafter\n";
        let rows = usage_table(readme, "prog")?;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].env.as_deref(), Some("AMQP_URL"));
        assert_eq!(rows[0].default.as_deref(), Some("amqp://h"));
        assert_eq!(rows[1].names, vec!["-q", "--quiet"]);
        assert_eq!(rows[1].default, None);
        Ok(())
    }

    #[test]
    fn reads_short_and_long_help() {
        let help = "Usage: p [OPTIONS]\n\nOptions:\n      --url <URL>\n          Broker [default: amqp://h]\n          [env: AMQP_URL]\n\n  -q, --quiet\n          Less\n\n  -h, --help  Print help\n\nExit codes:\n  0  fine\n";
        let flags = help_flags(help);
        assert_eq!(flags.len(), 2, "{flags:?}");
        assert_eq!(flags["--url"].env.as_deref(), Some("AMQP_URL"));
        assert_eq!(flags["--url"].default.as_deref(), Some("amqp://h"));
        assert_eq!(flags["--quiet"].names, vec!["-q", "--quiet"]);
        let short = "Options:\n      --max-n <N>  Largest [env: FIB_MAX_N=] [default: 1000000]\n";
        let flags = help_flags(short);
        assert_eq!(flags["--max-n"].env.as_deref(), Some("FIB_MAX_N"));
        assert_eq!(flags["--max-n"].default.as_deref(), Some("1000000"));
    }
}
