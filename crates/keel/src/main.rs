//! The `keel` binary: parses the command line ([`keel::Cli`]), sets up logging and runs it.
//! No logic lives here.

use clap::Parser;

fn main() {
    let cli = keel::Cli::parse();
    keel_utils::logging::init(cli.verbose);
    if let Err(e) = keel::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
