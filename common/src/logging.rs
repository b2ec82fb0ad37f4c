//! Logging to stderr through `log` + `env_logger`; `RUST_LOG` overrides the
//! level chosen by `--quiet` / `--verbose`.

use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Start-up and errors only.
    Quiet,
    Normal,
    Verbose,
}

impl Verbosity {
    pub fn from_flags(quiet: bool, verbose: bool) -> Verbosity {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, true) => Verbosity::Verbose,
            (false, false) => Verbosity::Normal,
        }
    }

    fn default_filter(self, program: &str) -> String {
        let crate_name = program.replace('-', "_");
        match self {
            // Start-up lines are logged with target "startup" so that --quiet keeps them.
            Verbosity::Quiet => "warn,startup=info".to_string(),
            Verbosity::Normal => format!("warn,startup=info,{crate_name}=info,common=info"),
            Verbosity::Verbose => format!("info,{crate_name}=debug,common=debug"),
        }
    }
}

/// Sets up logging for `program`; call once, first thing in `main`.
pub fn init(program: &'static str, verbosity: Verbosity) {
    let env = env_logger::Env::default().default_filter_or(verbosity.default_filter(program));
    env_logger::Builder::from_env(env)
        .format(move |out, record| {
            writeln!(
                out,
                "{} {program} {}: {}",
                out.timestamp_millis(),
                record.level().as_str().to_lowercase(),
                record.args()
            )
        })
        .init();
}
