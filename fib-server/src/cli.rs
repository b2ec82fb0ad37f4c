//! Command-line flags and their translation into [`Settings`].

use crate::Settings;
use anyhow::Result;
use clap::Parser;
use common::cli::{ConnectionArgs, MetricsArgs, VerbosityArgs, LOG_NOTE};
use common::exit::{self, Program};
use common::failure::Failure;
use common::protocol::{check_name, DEFAULT_BINDING_KEY, DEFAULT_MAX_N, DEFAULT_QUEUE, MAX_N};
use common::topology::{QueueType, Topology, DEFAULT_DELIVERY_LIMIT};

/// `--cache-mb` by default: see docs/server.md (The reply cache) for why.
pub const DEFAULT_CACHE_MB: u64 = 64;

/// `--cache-mb` at most: 1 TiB, far beyond any machine this runs on, and
/// small enough that the byte count cannot overflow.
pub const MAX_CACHE_MB: u64 = 1 << 20;

fn after_help() -> String {
    format!("{}\n{LOG_NOTE}", exit::help_section(Program::Server))
}

/// Answers Fibonacci RPC requests from RabbitMQ, wire-compatible with the
/// classic pika RPC server.
#[derive(Debug, Parser)]
#[command(name = "fib-server", version, about, after_help = after_help(),
          mut_arg("quiet", |a| a.help("Print only start-up, shutdown and errors")),
          mut_arg("verbose", |a| a.help("Also print debug details")))]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Durable queue the server consumes.
    #[arg(long, env = "FIB_QUEUE", value_name = "NAME", default_value = DEFAULT_QUEUE)]
    pub queue: String,
    /// What kind of queue to declare: `quorum` replicates it over the nodes
    /// of a cluster. A queue's type cannot change once it exists.
    #[arg(long, env = "FIB_QUEUE_TYPE", value_enum, default_value_t = QueueType::Classic)]
    pub queue_type: QueueType,
    /// Quorum queues only: after this many returns (a server died or failed
    /// while holding it) a request goes to the dead-letter queue
    /// `<queue>.dead` instead of coming back again [default: 5].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub delivery_limit: Option<u32>,
    /// Binding key from the exchange to the queue.
    #[arg(long, value_name = "KEY", default_value = DEFAULT_BINDING_KEY)]
    pub binding_key: String,
    /// Unacknowledged requests the broker may send ahead (basic.qos). At 2
    /// the next request comes in while the last reply's confirm is pending;
    /// 1 gives strictly fair dispatch over several servers.
    #[arg(long, default_value_t = 2, value_name = "P",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// Consumers, each on its own thread and connection: for large n, where
    /// computing takes longer than the round trip.
    #[arg(long, default_value_t = 1, value_name = "W",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Largest n answered, at most 10,000,000; above it the reply is a
    /// `too-large` error.
    #[arg(long, env = "FIB_MAX_N", value_name = "N", default_value_t = DEFAULT_MAX_N,
          value_parser = clap::value_parser!(u64).range(0..=MAX_N))]
    pub max_n: u64,
    /// Megabytes (2^20 bytes) of replies to keep, least recently used
    /// evicted first, so that a repeated n costs a lookup; 0 turns the cache
    /// off.
    #[arg(long, env = "FIB_CACHE_MB", value_name = "MB", default_value_t = DEFAULT_CACHE_MB,
          value_parser = clap::value_parser!(u64).range(0..=MAX_CACHE_MB))]
    pub cache_mb: u64,
    /// Ack requests without waiting for the broker to confirm each reply:
    /// faster, but a reply can be lost if the broker fails in between.
    #[arg(long)]
    pub no_confirm: bool,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub verbosity: VerbosityArgs,
}

impl Cli {
    pub fn settings(&self) -> Result<Settings> {
        check_name("--queue", &self.queue)?;
        if self.queue_type == QueueType::Quorum {
            // Its dead-letter queue `<queue>.dead` must fit the limit too.
            check_name(
                "--queue (with its .dead suffix)",
                &format!("{}.dead", self.queue),
            )?;
        } else if self.delivery_limit.is_some() {
            return Err(Failure::Usage(
                "--delivery-limit applies to quorum queues only: add --queue-type quorum".into(),
            )
            .into());
        }
        check_name("--binding-key", &self.binding_key)?;
        Ok(Settings {
            connection: self.connection.settings()?,
            topology: Topology {
                exchange: self.connection.exchange.clone(),
                queue: self.queue.clone(),
                binding_key: self.binding_key.clone(),
                queue_type: self.queue_type,
                delivery_limit: self.delivery_limit.unwrap_or(DEFAULT_DELIVERY_LIMIT),
            },
            prefetch: self.prefetch,
            max_n: self.max_n,
            confirm_replies: !self.no_confirm,
            workers: usize::from(self.workers),
            cache_bytes: usize::try_from(self.cache_mb << 20).map_err(|_| {
                Failure::Usage(format!(
                    "--cache-mb {} is more than this machine can address",
                    self.cache_mb
                ))
            })?,
            metrics_addr: self.metrics.addr.clone(),
            blocked: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn queue_type_and_delivery_limit() -> Result<()> {
        let settings = |args: &[&str]| -> Result<Settings> {
            let cli =
                Cli::try_parse_from(std::iter::once("fib-server").chain(args.iter().copied()))?;
            cli.settings()
        };
        let classic = settings(&[])?.topology;
        assert_eq!(classic.queue_type, QueueType::Classic);
        let quorum = settings(&["--queue-type", "quorum"])?.topology;
        assert_eq!(
            (quorum.queue_type, quorum.delivery_limit),
            (QueueType::Quorum, 5)
        );
        let limited = settings(&["--queue-type", "quorum", "--delivery-limit", "2"])?;
        assert_eq!(limited.topology.delivery_limit, 2);
        let error = settings(&["--delivery-limit", "2"]).expect_err("classic has no limit");
        assert_eq!(common::exit_code(&error), exit::USAGE);
        assert!(
            format!("{error:#}").contains("--queue-type quorum"),
            "{error:#}"
        );
        let long = "q".repeat(252);
        assert!(settings(&["--queue", &long]).is_ok());
        assert!(settings(&["--queue", &long, "--queue-type", "quorum"]).is_err());
        Ok(())
    }

    #[test]
    fn max_n_has_an_upper_bound() {
        let parse = |n: &str| Cli::try_parse_from(["fib-server", "--max-n", n]);
        assert_eq!(parse("10000000").map(|cli| cli.max_n).ok(), Some(MAX_N));
        let error = parse("10000001").expect_err("above the bound");
        assert_eq!(error.exit_code(), exit::USAGE);
        assert!(error.to_string().contains("10000000"), "{error}");
    }

    #[test]
    fn cache_mb_is_bytes_and_zero_turns_it_off() -> Result<()> {
        let settings = |args: &[&str]| -> Result<Settings> {
            let cli =
                Cli::try_parse_from(std::iter::once("fib-server").chain(args.iter().copied()))?;
            cli.settings()
        };
        assert_eq!(settings(&[])?.cache_bytes, 64 << 20);
        assert_eq!(settings(&["--cache-mb", "0"])?.cache_bytes, 0);
        assert_eq!(settings(&["--cache-mb", "3"])?.cache_bytes, 3 << 20);
        for bad in ["-1", "x", "1048577", "1.5"] {
            let error = Cli::try_parse_from(["fib-server", "--cache-mb", bad])
                .expect_err("not a cache size");
            assert_eq!(error.exit_code(), exit::USAGE, "{bad}");
        }
        Ok(())
    }

    #[test]
    fn help_lists_the_exit_codes_and_the_shared_flags() {
        let help = Cli::command().render_long_help().to_string();
        assert!(
            help.contains(&exit::help_section(Program::Server)),
            "{help}"
        );
        for flag in ["--url", "--tls-ca", "--exchange", "--quiet", "--verbose"] {
            assert!(help.contains(flag), "{flag} missing from:\n{help}");
        }
        assert!(help.contains("Print only start-up, shutdown and errors"));
    }
}
