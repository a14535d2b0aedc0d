//! `prescient suite`: the evaluation suite (docs/simulation.md).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::settings::{Overrides, Settings};
use crate::sim;

/// The flags of `suite`.
#[derive(Debug, clap::Args)]
pub struct SuiteArgs {
    /// Subdirectories holding trace.csv and policies (*.yaml).
    dir: PathBuf,
    /// Print one JSON object instead of the markdown table.
    #[arg(long)]
    json: bool,
    /// Settings file (tick and planner keys are used).
    #[arg(long)]
    config: Option<PathBuf>,
}

impl SuiteArgs {
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        suite(&self.dir, self.json, self.config.as_deref())
    }
}

/// Runs the evaluation suite; prints only once every pair has run.
fn suite(
    dir: &std::path::Path,
    json: bool,
    config: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(config, &Overrides::default())
        .map_err(|e| anyhow::anyhow!("settings: {e}"))?;
    let report = sim::suite::entries(dir).and_then(|e| {
        sim::suite::run(&e, &settings.planner_config(), &mut |n| {
            eprintln!("suite: {n}")
        })
    });
    match report {
        Ok(r) if json => println!("{}", r.to_json()),
        Ok(r) => print!("{}", r.to_markdown()),
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}
