//! Thin entry point: parse the command line, hand it to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = prescient::cli::Cli::parse();
    match prescient::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("prescient: {e:#}");
            ExitCode::FAILURE
        }
    }
}
