//! `prescient simulate`: replays a trace through the core and planner on a
//! virtual clock, in the modes asked for, and prints the comparison.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::policy::Policy;
use crate::settings::{Overrides, Settings};
use crate::sim::{self, Mode, Split, Trace};

/// The flags of `simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The policy to simulate.
    #[arg(long)]
    policy: PathBuf,
    /// CSV with the header timestamp,tenant,resource,amount.
    #[arg(long)]
    trace: PathBuf,
    /// Read each row as the total of this interval (a metrics export
    /// at 1m or 15s), replayed as one request per second of it.
    #[arg(long, value_name = "DURATION", value_parser = parse_spread)]
    spread: Option<std::time::Duration>,
    /// Which mode(s) to run.
    #[arg(long, value_enum, default_value_t = ModeArg::All)]
    mode: ModeArg,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Also draw demand, forecast band, reserve and denials to this SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Settings file (tick and planner keys are used).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Simulated daemons sharing each capacity through one lease
    /// store; above 1, each mode also runs on one daemon to compare.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_instances)]
    instances: usize,
    /// Which daemon each row reaches: round-robin, hash:tenant or
    /// hash:resource.
    #[arg(long, default_value_t = Split::RoundRobin)]
    split: Split,
    /// Pre-warm view: what one replica serves per second; with
    /// --startup, compares a reactive autoscaler with a forecast-driven
    /// one (replicas, unserved demand).
    #[arg(long, value_name = "N")]
    replica_capacity: Option<f64>,
    /// Pre-warm view: how long a new replica takes to serve (e.g. 60s);
    /// also the forecast's lead time.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    startup: Option<std::time::Duration>,
}

impl SimulateArgs {
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            policy,
            trace,
            spread,
            mode,
            json,
            plot,
            config,
            instances,
            split,
            replica_capacity,
            startup,
        } = self;
        let prewarm = match sim::prewarm::Prewarm::from_flags(replica_capacity, startup) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        if prewarm.is_some() && !mode.modes().contains(&Mode::Predictive) {
            eprintln!("--replica-capacity: the pre-warm view needs the predictive mode");
            return Ok(ExitCode::FAILURE);
        }
        simulate(
            &policy,
            (&trace, spread),
            mode.modes(),
            &sim::Daemons { instances, split },
            json,
            plot.as_deref(),
            config.as_deref(),
            prewarm,
        )
    }
}

/// `--spread`: a duration longer than zero.
fn parse_spread(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration ({e})"))?;
    if d.is_zero() {
        return Err("must be longer than 0".into());
    }
    Ok(d)
}

/// `--instances`: a whole number from 1 to [`sim::MAX_INSTANCES`].
fn parse_instances(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    if n > sim::MAX_INSTANCES {
        return Err(format!(
            "{n} is more than {} simulated daemons",
            sim::MAX_INSTANCES
        ));
    }
    Ok(n)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    Predictive,
    Reactive,
    Oracle,
    All,
}

impl ModeArg {
    fn modes(self) -> Vec<Mode> {
        match self {
            ModeArg::Predictive => vec![Mode::Predictive],
            ModeArg::Reactive => vec![Mode::Reactive],
            ModeArg::Oracle => vec![Mode::Oracle],
            ModeArg::All => Mode::ALL.to_vec(),
        }
    }
}

/// Runs the simulator; prints only once everything has succeeded.
#[allow(clippy::too_many_arguments)]
fn simulate(
    policy: &std::path::Path,
    (trace, spread): (&std::path::Path, Option<std::time::Duration>),
    modes: Vec<Mode>,
    daemons: &sim::Daemons,
    json: bool,
    plot: Option<&std::path::Path>,
    config: Option<&std::path::Path>,
    prewarm: Option<sim::prewarm::Prewarm>,
) -> anyhow::Result<ExitCode> {
    let policy = match Policy::load_file(policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let settings = Settings::load(config, &Overrides::default())
        .map_err(|e| anyhow::anyhow!("settings: {e}"))?;
    if !settings.unused_env.is_empty() {
        eprintln!(
            "prescient: ignoring environment variables with the PRESCIENT_ prefix that name no setting: {}",
            settings.unused_env.join(", ")
        );
    }
    let trace = match Trace::load(trace, &policy, spread) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // Hidden when stderr is not a terminal (indicatif checks). With many
    // daemons each mode runs twice (the second time on one daemon).
    let runs = if daemons.instances > 1 { 2 } else { 1 };
    let bar = indicatif::ProgressBar::new(trace.rows.len() as u64 * modes.len() as u64 * runs);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>10} {wide_bar} {pos}/{len} rows, {eta} left",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut view = None;
    let outcomes: Vec<sim::Outcome> = modes
        .iter()
        .map(|&mode| {
            bar.set_message(mode.as_str());
            if let (Mode::Predictive, Some(p)) = (mode, &prewarm) {
                let (outcome, v) = sim::run_prewarm(
                    &policy,
                    &trace,
                    &settings.planner_config(),
                    daemons,
                    p,
                    &mut |n| bar.inc(n),
                );
                view = Some(v);
                return outcome;
            }
            sim::run_compared(
                &policy,
                &trace,
                mode,
                &settings.planner_config(),
                daemons,
                &mut |n| bar.inc(n),
            )
        })
        .collect();
    bar.finish_and_clear();
    if let Some(path) = plot {
        sim::plot::write(path, &outcomes).map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    }
    let mut report = sim::Report::new(
        &trace,
        daemons,
        outcomes
            .into_iter()
            .map(|o| (o.mode.as_str(), o.report))
            .collect(),
    );
    report.prewarm = view;
    print!(
        "{}",
        if json {
            report.to_json() + "\n"
        } else {
            report.to_text()
        }
    );
    Ok(ExitCode::SUCCESS)
}
