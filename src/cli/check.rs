//! `prescient check`: validates a policy file offline.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::policy::Policy;

/// The flags of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The policy file.
    policy: PathBuf,
}

impl CheckArgs {
    /// Prints OK and a summary, or every problem and exits 1.
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        let policy = self.policy;
        match Policy::load_file(&policy) {
            Ok(p) => {
                println!("{}: OK: {}", policy.display(), p.summary());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                println!("{e}");
                println!(
                    "{}: {} problem{}",
                    policy.display(),
                    e.problems.len(),
                    if e.problems.len() == 1 { "" } else { "s" }
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
