use clap::Parser;
use common::exit;
use common::logging;
use fib_client::cli::Cli;
use fib_client::options::Options;

fn main() {
    common::exit::exit_on_panic();
    let cli = Cli::parse();
    let result = Options::from_cli(&cli).and_then(|options| {
        logging::init("fib-client", options.verbosity);
        fib_client::run(&options)
    });
    let code = match result {
        Ok(outcome) => outcome.exit_code(),
        Err(error) => exit::fail(&error),
    };
    std::process::exit(code);
}
