use clap::Parser;
use common::logging;
use fib_server::cli::Cli;

fn main() {
    common::exit::exit_on_panic();
    let cli = Cli::parse();
    logging::init("fib-server", cli.verbosity.verbosity());
    let result = cli.settings().and_then(|settings| {
        let shutdown = fib_server::shutdown::on_signal()?;
        fib_server::run(&settings, &shutdown, &|| {})
    });
    if let Err(error) = result {
        common::exit::fail(&error);
    }
}
