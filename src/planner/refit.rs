//! Refits: which series are due, within the CPU budget, and the worker
//! thread that fits them off the tick (inline in tests and the simulator).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::Planner;
use super::backtest::{Candidate, Choice, RESCORE_MINUTES};
use super::model::{self, FitJob, Fitted};
use crate::metrics;

/// The cost (s) of one fit assumed before any is measured, and charged
/// for every inline fit (see [`super::PlannerConfig::inline_refits`]).
pub(super) const NOMINAL_FIT_COST: f64 = 0.005;

/// The refit thread's nice value (Linux, per thread). Refits share cores
/// with the request workers; at 19 a refit gets about 1/70 of a core a
/// worker also wants (weights 15 and 1024) and all of its idle time, the
/// budget still bounding them (docs/performance.md, "Acquire with 10,000
/// series refitting": at nice 0 a refitting core cost Acquire up to 9× its
/// idle p99).
pub(super) const NICE: i32 = 19;

/// A series as the worker knows it: its key (a reload may move it in the
/// planner's list, or end it) and its fit generation (a reload may change
/// its seasons).
type Target = (u64, u32);

pub(super) struct Done {
    series: Target,
    fitted: Option<Fitted>,
    from: u64,
    cost: Duration,
}

/// The refit worker: a thread of its own, so fits never run on the gRPC
/// runtime or delay a tick.
pub(super) struct Worker {
    jobs: mpsc::Sender<(Target, u64, FitJob)>,
    done: mpsc::Receiver<Done>,
}

impl Worker {
    pub(super) fn start() -> Self {
        let (jobs, inbox) = mpsc::channel::<(Target, u64, FitJob)>();
        let (outbox, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("prescient-refit".into())
            .spawn(move || {
                yield_to_requests();
                // Ends when the planner (the jobs sender) is dropped.
                for (series, from, job) in inbox {
                    let started = Instant::now();
                    let fitted = model::fit(&job);
                    let cost = started.elapsed();
                    if outbox
                        .send(Done {
                            series,
                            fitted,
                            from,
                            cost,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            })
            .expect("spawn the refit thread");
        Self { jobs, done }
    }
}

/// Lowers the calling thread to [`NICE`]; a refusal (a seccomp or
/// container policy) is logged, and refits then compete with requests.
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority reads its
        // arguments only, and PRIO_PROCESS with a thread id changes that
        // thread alone.
        let tid = unsafe { libc::gettid() };
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE) } != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                nice = NICE,
                "could not lower the refit thread's priority: refits compete with requests for CPU"
            );
        }
    }
}

impl Planner {
    pub(super) fn collect_refits(&mut self) -> usize {
        let Some(worker) = &self.worker else {
            return 0;
        };
        let done: Vec<Done> = worker.done.try_iter().collect();
        let n = done.len();
        for d in done {
            self.apply(d);
        }
        n
    }

    fn apply(&mut self, d: Done) {
        self.fit_cost += 0.2 * (d.cost.as_secs_f64() - self.fit_cost);
        if let Some(m) = &self.metrics {
            m.refit_seconds.observe(d.cost.as_secs_f64());
        }
        let (key, generation) = d.series;
        let Some(&i) = self.by_key.get(&key) else {
            return; // a reload ended the series
        };
        let s = &mut self.series[i];
        if s.fit_generation != generation {
            return; // fitted for seasons a reload changed; a new fit is due
        }
        s.fitting = false;
        s.last_fit = Some(d.from);
        let Some(fitted) = d.fitted else {
            return;
        };
        if fitted.scored {
            s.scored_at = Some(d.from);
            s.kept = fitted.error.map(|error| Choice {
                candidate: Candidate {
                    kind: fitted.kind,
                    seasons: fitted.seasons.clone(),
                },
                error,
                damped: fitted.damped,
            });
            if let Some(m) = &self.metrics {
                m.model_choices
                    .get_or_create(&metrics::Model {
                        model: fitted.kind.as_str(),
                    })
                    .inc();
                // Tenants beyond the label bound share one label: their
                // gauges would overwrite each other.
                if s.label != metrics::OTHER {
                    let series = metrics::Series {
                        tenant: s.label.clone(),
                        resource: self.core.registry().resources[s.resource].name.to_string(),
                    };
                    let error = fitted.error.unwrap_or(0.0);
                    m.backtest_error.get_or_create(&series).set(error);
                }
            }
        } else if fitted.error.is_none() {
            // The ladder chose (too short to backtest): score next time.
            s.kept = None;
            s.scored_at = None;
        }
        s.forecaster.install(fitted, d.from);
    }

    /// Starts the refits that are due, most urgent first, within the CPU
    /// budget: each tick earns `budget × tick` seconds of fitting.
    pub(super) fn start_refits(&mut self) -> usize {
        let tpm = self.ticks_per_minute as u64;
        let every = (self.config.refit_every.as_secs() / 60).max(1);
        let threshold = self.config.refit_threshold;
        let mut due: Vec<(bool, u64, usize)> = Vec::new();
        for (i, s) in self.series.iter().enumerate() {
            let minutes = s.history.ticks / tpm;
            if s.fitting || (minutes as usize) < model::MIN_MINUTES {
                continue;
            }
            let next = s.history.ticks / tpm;
            let horizon = s.horizon.as_secs().div_ceil(60) + 1;
            let stale = match s.last_fit {
                None => true,
                Some(at) => minutes >= at + every || !s.forecaster.covers(next, horizon),
            };
            // Drift is acted on at most once a minute per series.
            let drifted =
                s.last_fit.is_some_and(|at| minutes > at) && s.forecaster.drifted(threshold);
            if stale || drifted {
                due.push((drifted, s.last_fit.unwrap_or(0), i));
            }
        }
        // Drifted first, then the longest unfitted.
        due.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        // Credit saved for at most two ticks: due refits start a tick's
        // worth at a time (each copies its history tail), rather than in
        // one burst of thousands at a minute boundary.
        let budget = self.config.refit_budget * self.config.tick.as_secs_f64();
        self.credit = (self.credit + budget).min(budget * 2.0);
        let mut started = 0;
        for (drifted, _, i) in due {
            if self.credit < self.fit_cost && started > 0 {
                break;
            }
            self.credit -= self.fit_cost;
            let s = &mut self.series[i];
            let s_key = (s.key, s.fit_generation);
            let from = s.history.ticks / tpm;
            // Enough minutes for a few cycles of the longest season, and
            // until the next refit plus the horizon.
            let steps = (every + s.horizon.as_secs().div_ceil(60) + 5) as usize * 2;
            // A kept choice is refit alone; the candidates are scored
            // again every few minutes, and at once when it drifted.
            let rescore = drifted || s.scored_at.is_none_or(|at| from >= at + RESCORE_MINUTES);
            let job = FitJob {
                series: s.history.minute_demand.tail(model::MAX_FIT_MINUTES),
                seasons: s.seasons.clone(),
                steps,
                keep: if rescore { None } else { s.kept.clone() },
            };
            s.fitting = true;
            started += 1;
            match &self.worker {
                Some(w) => {
                    if w.jobs.send((s_key, from, job)).is_err() {
                        self.series[i].fitting = false;
                    }
                }
                None => {
                    // Charged at the nominal cost, not the measured one:
                    // inline fits serve replays, whose refit turns must
                    // not depend on how fast the machine ran this one.
                    let fitted = model::fit(&job);
                    self.apply(Done {
                        series: s_key,
                        fitted,
                        from,
                        cost: Duration::from_secs_f64(NOMINAL_FIT_COST),
                    });
                }
            }
        }
        started
    }
}
