//! The command line (DESIGN §7): `serve`, `check`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::clock::SystemClock;
use crate::policy::Policy;
use crate::settings::{LogFormat, Overrides, Settings};

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
    Serve {
        /// Settings file (YAML), layered over the embedded defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Policy file; default: the embedded example policy.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// gRPC address, e.g. 127.0.0.1:50051 (port 0: any free port).
        #[arg(long)]
        listen: Option<String>,
        /// Admin HTTP address, e.g. 127.0.0.1:9090.
        #[arg(long)]
        admin_listen: Option<String>,
        /// Directory for forecasting state snapshots.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Log format: text or json.
        #[arg(long)]
        log_format: Option<String>,
    },
    /// Validate a policy file offline; exit 1 with every reason if invalid.
    Check {
        /// The policy file.
        policy: PathBuf,
    },
}

/// Runs a parsed command line; the exit code of the process.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            policy,
            listen,
            admin_listen,
            state_dir,
            log_format,
        } => {
            let overrides = Overrides {
                policy,
                listen,
                admin_listen,
                state_dir,
                log_format,
            };
            let settings = Settings::load(config.as_deref(), &overrides)
                .map_err(|e| anyhow::anyhow!("settings: {e}"))?;
            init_logs(&settings);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(crate::daemon::run(&settings, Arc::new(SystemClock::new())))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { policy } => match Policy::load_file(&policy) {
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
        },
    }
}

fn init_logs(settings: &Settings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match settings.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
