//! The command line (DESIGN §7): `serve`, `check`, `simulate`, `suite`,
//! `bench`, one module each with its flags and what runs them.

mod bench;
mod check;
mod serve;
mod simulate;
mod suite;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use bench::BenchArgs;
pub use check::CheckArgs;
pub use serve::ServeArgs;
pub use simulate::{ModeArg, SimulateArgs};
pub use suite::SuiteArgs;

#[derive(Debug, Parser)]
#[command(
    name = "prescient",
    version,
    about = "Predictive admission-control daemon"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (gRPC and admin HTTP).
    Serve(ServeArgs),
    /// Validate a policy file offline; exit 1 with every reason if invalid.
    Check(CheckArgs),
    /// Replay a trace through the core and planner on a virtual clock:
    /// predictive vs reactive vs oracle.
    Simulate(SimulateArgs),
    /// Run the evaluation suite: every trace and policy of DIR in the
    /// two modes and against the oracle, one table (docs/simulation.md).
    Suite(SuiteArgs),
    /// Load a daemon on this machine with unary Acquire: requests/s and
    /// latency percentiles (loopback targets only).
    Bench(BenchArgs),
}

/// Runs a parsed command line; the exit code of the process.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => args.run(),
        Command::Simulate(args) => args.run(),
        Command::Suite(args) => args.run(),
        Command::Bench(args) => args.run(),
        Command::Check(args) => args.run(),
    }
}
