use clap::Parser;
use common::failure::{EXIT_OK, EXIT_WRONG_REPLIES};
use common::logging;
use fib_client::cli::Cli;
use fib_client::options::Options;

fn main() {
    let cli = Cli::parse();
    let result = Options::from_cli(&cli).and_then(|options| {
        logging::init("fib-client", options.verbosity);
        fib_client::run(&options)
    });
    let code = match result {
        Ok(outcome) if outcome.all_correct() => EXIT_OK,
        Ok(_) => EXIT_WRONG_REPLIES,
        Err(error) => {
            eprintln!("fib-client: error: {error:#}");
            common::exit_code(&error)
        }
    };
    std::process::exit(code);
}
