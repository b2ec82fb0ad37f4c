//! Command-line flags. `options.rs` turns them into plain settings.

use crate::rpc::ReplyMode;
use clap::Parser;
use common::cli::{ConnectionArgs, MetricsArgs, VerbosityArgs, LOG_NOTE};
use common::exit::{self, Program};
use common::protocol::DEFAULT_ROUTING_KEY;
use std::path::PathBuf;

fn after_help() -> String {
    format!(
        "{}\nA lost connection is retried with backoff for up to --timeout x (--retries + 1)\n\
         seconds; requests still outstanding are sent again on the new connection.\n{LOG_NOTE}",
        exit::help_section(Program::Client)
    )
}

/// Times Fibonacci RPC round trips through RabbitMQ, wire-compatible with the
/// classic pika RPC client.
#[derive(Debug, Parser)]
#[command(name = "fib-client", version, about, after_help = after_help(),
          mut_arg("quiet", |a| a.help("Print only the summary (and errors)")),
          mut_arg("verbose", |a| a.help("Print a line per request")))]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Routing key of the requests (the server's binding `#` takes any).
    #[arg(long, value_name = "KEY", default_value = DEFAULT_ROUTING_KEY)]
    pub routing_key: String,
    /// Number of requests, for n = start, start+1, ... (1 to 1000000000; n
    /// at most 10,000,000: the client checks each reply against its own F(n))
    #[arg(long, default_value_t = 2000, value_name = "N", conflicts_with_all = ["n", "duration"])]
    pub count: u64,
    /// First n of the run.
    #[arg(long, default_value_t = 0, value_name = "N", conflicts_with_all = ["n", "n_range", "fixed_n"])]
    pub start: u64,
    /// Send requests for this long instead of --count of them (0.001 to
    /// 86400).
    #[arg(long, value_name = "SECS", conflicts_with = "n")]
    pub duration: Option<f64>,
    /// Open loop: send R requests per second on a fixed schedule (at most
    /// --inflight outstanding); latency is counted from when each was due.
    /// R from 0.01 to 1000000.
    #[arg(long, value_name = "R", conflicts_with = "n")]
    pub rate: Option<f64>,
    /// Requests sent and checked before the measured ones, not counted (0
    /// to 1000000000).
    #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "n")]
    pub warmup: u64,
    /// Ask for n = A, A+1, ..., B-1, then A again (default: start..start+count).
    #[arg(long, value_name = "A..B", conflicts_with_all = ["n", "fixed_n"])]
    pub n_range: Option<String>,
    /// Ask for the same n every time.
    #[arg(long, value_name = "N", conflicts_with = "n")]
    pub fixed_n: Option<u64>,
    /// Print a line per interval on stderr: requests, rate, p50/p99/max
    /// (0.1 to 86400).
    #[arg(long, value_name = "SECS", conflicts_with = "n")]
    pub interval: Option<f64>,
    /// Write the summary and the run's parameters as JSON.
    #[arg(long, value_name = "FILE", conflicts_with = "n")]
    pub export_json: Option<PathBuf>,
    /// Write one CSV row per request sent.
    #[arg(long, value_name = "FILE", conflicts_with = "n")]
    pub export_csv: Option<PathBuf>,
    /// Write the summary as a Markdown table.
    #[arg(long, value_name = "FILE", conflicts_with = "n")]
    pub export_markdown: Option<PathBuf>,
    /// Write HdrHistogram's percentile distribution (corrected view).
    #[arg(long, value_name = "FILE", conflicts_with = "n")]
    pub export_hgrm: Option<PathBuf>,
    /// Draw the latency percentile spectrum as SVG.
    #[arg(long, value_name = "FILE", conflicts_with = "n")]
    pub export_svg: Option<PathBuf>,
    /// Compare mean and p99 with an earlier --export-json file.
    #[arg(
        long,
        value_name = "FILE",
        requires = "max_regression",
        conflicts_with = "n"
    )]
    pub baseline: Option<PathBuf>,
    /// With --baseline: exit 6 when mean or p99 is worse by more than PCT %
    /// (0 to 10000).
    #[arg(long, value_name = "PCT", requires = "baseline")]
    pub max_regression: Option<f64>,
    /// Ask for F(N) once and print it alone on stdout.
    #[arg(long, value_name = "N")]
    pub n: Option<u64>,
    /// Where replies come back: a reply queue of our own, or RabbitMQ's
    /// direct reply-to (amq.rabbitmq.reply-to, no queue at all).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ReplyMode::Queue)]
    pub reply_to: ReplyMode,
    /// Requests kept outstanding at once (1: one after another).
    #[arg(long, default_value_t = 1, value_name = "K",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub inflight: u16,
    /// Seconds to wait for each reply before sending the request again
    /// (0.001 to 86400).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub timeout: f64,
    /// Resends of a request that timed out, before giving up with exit 5.
    #[arg(long, default_value_t = 2, value_name = "K")]
    pub retries: u32,
    /// Longest the broker may block the connection (a memory or disk alarm)
    /// before the run ends with exit 3; 0: wait as long as the alarm lasts.
    /// Blocked time counts against no --timeout: nothing is resent.
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    pub max_blocked: f64,
    /// Print the summary as one JSON object on stdout, nothing else there.
    #[arg(long, conflicts_with = "n")]
    pub json: bool,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub verbosity: VerbosityArgs,
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
    fn help_lists_the_exit_codes_and_the_shared_flags() {
        let help = Cli::command().render_long_help().to_string();
        assert!(
            help.contains(&exit::help_section(Program::Client)),
            "{help}"
        );
        for flag in ["--url", "--tls-ca", "--exchange", "--quiet", "--verbose"] {
            assert!(help.contains(flag), "{flag} missing from:\n{help}");
        }
        assert!(help.contains("Print a line per request"), "{help}");
    }
}
