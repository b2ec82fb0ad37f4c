use clap::Parser;
use common::logging::{self, Verbosity};
use fib_server::cli::Cli;

fn main() {
    let cli = Cli::parse();
    logging::init("fib-server", Verbosity::from_flags(cli.quiet, cli.verbose));
    let result = cli.settings().and_then(|settings| {
        let shutdown = fib_server::shutdown::on_signal()?;
        fib_server::run(&settings, &shutdown, &|| {})
    });
    if let Err(error) = result {
        log::error!("{error:#}");
        std::process::exit(common::exit_code(&error));
    }
}
