//! `prescient serve`: settings from file, environment and flags, the log,
//! then the daemon on its runtime until a signal stops it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;

use crate::clock::SystemClock;
use crate::settings::{LogFormat, Overrides, Settings};

/// The flags of `serve`; each overrides its setting.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
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
}

impl ServeArgs {
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            config,
            policy,
            listen,
            admin_listen,
            state_dir,
            log_format,
        } = self;
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
        if !settings.unused_env.is_empty() {
            tracing::warn!(
                variables = settings.unused_env.join(", "),
                "environment variables with the PRESCIENT_ prefix that name no setting are ignored"
            );
        }
        let runtime = crate::daemon::runtime(&settings.grpc)?;
        runtime.block_on(crate::daemon::run(&settings, Arc::new(SystemClock::new())))?;
        Ok(ExitCode::SUCCESS)
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
