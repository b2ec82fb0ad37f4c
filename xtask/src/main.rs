//! Workspace tasks, run as `cargo xtask TASK` (an alias in .cargo/config.toml).
//!
//! `cargo xtask assets [--out DIR]` writes shell completions (bash, zsh,
//! fish, PowerShell, elvish) and man pages for fib-server and fib-client,
//! generated from their own clap definitions with clap_complete and
//! clap_mangen, as hyperfine ships them. The default DIR is target/assets.
//! A crate of its own keeps both generators out of the programs' builds and
//! out of `cargo install`.

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use std::path::{Path, PathBuf};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "fib-rpc workspace tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Write shell completions to DIR/completions and man pages to
    /// DIR/man/man1.
    Assets {
        /// Where to write them.
        #[arg(long, value_name = "DIR", default_value = "target/assets")]
        out: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Assets { out } => assets(&out),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn assets(out: &Path) -> Result<()> {
    let completions = out.join("completions");
    let man = out.join("man").join("man1");
    for dir in [&completions, &man] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for mut command in [
        fib_server::cli::Cli::command(),
        fib_client::cli::Cli::command(),
    ] {
        let name = command.get_name().to_string();
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::PowerShell,
            Shell::Elvish,
        ] {
            let path = clap_complete::generate_to(shell, &mut command, &name, &completions)
                .with_context(|| format!("writing {shell} completions for {name}"))?;
            println!("{}", path.display());
        }
        let path = man.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone()).render(&mut page)?;
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
