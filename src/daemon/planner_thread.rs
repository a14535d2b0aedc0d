//! The planner's own thread: a tick every `tick`, policy reloads applied
//! between ticks (so a reload never races the sizing of reserves), history
//! snapshots every so often and once more at the end. In a cluster, each
//! tick ends with an exchange with the lease store: shares are lowered and
//! raised here, on the thread that sizes reserves and applies reloads, so
//! none of them interleave.

use std::sync::Arc;

use crate::admission::Admission;
use crate::clock::Nanos;
use crate::cluster::member::Member;
use crate::cluster::store::{Ask, Reply};
use crate::metrics::Metrics;
use crate::planner::Planner;
use crate::watcher::Reload;

/// What the planner thread is asked between ticks.
pub(super) enum PlannerCall {
    /// Put a policy in force (the watcher's reloads).
    Reload(Reload),
    /// The lease store's answer to the asks sent at `sent_at`.
    Answered {
        sent_at: Nanos,
        asks: Vec<Ask>,
        replies: Result<Vec<Reply>, String>,
    },
    Stop,
}

/// Asks on their way to the lease store.
pub(super) struct Exchange {
    pub sent_at: Nanos,
    pub asks: Vec<Ask>,
}

/// The planner thread's side of the cluster: the membership, and the way
/// to the task that talks to the store.
pub(super) struct ClusterLink {
    pub member: Member,
    pub core: Arc<Admission>,
    pub to_store: tokio::sync::mpsc::Sender<Exchange>,
    pub metrics: Arc<Metrics>,
    /// The last exchange failed (logged once per outage).
    pub failing: bool,
}

impl ClusterLink {
    /// After a tick: lower, then ask (one exchange at a time).
    fn exchange(&mut self, planner: &mut Planner, now: Nanos) {
        let wants = planner.wants(now);
        let asks = crate::cluster::begin(&mut self.member, &wants, &self.core, now);
        if !asks.is_empty()
            && self
                .to_store
                .try_send(Exchange { sent_at: now, asks })
                .is_err()
        {
            self.member.answered();
        }
        self.metrics.cluster.leases(&self.member.leases(), now);
    }

    fn answered(&mut self, sent_at: Nanos, asks: &[Ask], replies: Result<Vec<Reply>, String>) {
        let now = self.core.clock().now();
        let done =
            crate::cluster::finish(&mut self.member, &self.core, asks, replies, sent_at, now);
        match done {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!("lease store answering again");
            }
            Ok(()) => {}
            Err(e) => {
                self.metrics.cluster.store_errors.inc();
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(error = %e, "lease store unreachable; leases are kept until they expire");
                }
            }
        }
        self.metrics.cluster.leases(&self.member.leases(), now);
    }
}

/// Runs the planner on a thread of its own, a tick every `tick`, until
/// told to stop; applies reloads between ticks; snapshots history every so
/// often and once more at the end. Dropping the planner closes its
/// forecast channel, which ends every WatchForecast stream (so shutdown is
/// not held up).
pub(super) fn spawn_planner(
    mut planner: Planner,
    tick: std::time::Duration,
    snapshots: Option<(std::path::PathBuf, std::time::Duration)>,
    calls: std::sync::mpsc::Receiver<PlannerCall>,
    mut cluster: Option<ClusterLink>,
) -> std::thread::JoinHandle<()> {
    let save = |planner: &Planner, dir: &std::path::Path| match planner.save(dir) {
        Ok(bytes) => tracing::debug!(bytes, "history snapshot written"),
        Err(e) => tracing::warn!(error = %e, dir = %dir.display(), "history snapshot failed"),
    };
    std::thread::Builder::new()
        .name("prescient-planner".into())
        .spawn(move || {
            let clock = planner.clock();
            let mut next = std::time::Instant::now() + tick;
            let mut last_save = std::time::Instant::now();
            // The first lease is asked for at once, not a tick later.
            if let Some(link) = &mut cluster {
                link.exchange(&mut planner, clock.now());
            }
            loop {
                let wait = next.saturating_duration_since(std::time::Instant::now());
                match calls.recv_timeout(wait) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(PlannerCall::Reload(r)) => {
                        let reloaded = planner.reload(&r.policy, &r.origin);
                        if let (Ok(_), Some(link)) = (&reloaded, &mut cluster) {
                            // The reload put the policy's sizes back.
                            let applies = link.member.set_policy(&r.policy);
                            crate::cluster::put_in_force(&link.core, applies, clock.now());
                        }
                        let _ = r.done.send(reloaded);
                        continue;
                    }
                    Ok(PlannerCall::Answered {
                        sent_at,
                        asks,
                        replies,
                    }) => {
                        if let Some(link) = &mut cluster {
                            link.answered(sent_at, &asks, replies);
                        }
                        continue;
                    }
                    Ok(PlannerCall::Stop) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        if let Some((dir, _)) = &snapshots {
                            save(&planner, dir);
                        }
                        return;
                    }
                }
                if let Some((dir, every)) = &snapshots
                    && last_save.elapsed() >= *every
                {
                    save(&planner, dir);
                    last_save = std::time::Instant::now();
                }
                let report = planner.tick(clock.now());
                if let Some(link) = &mut cluster {
                    link.exchange(&mut planner, clock.now());
                }
                if report.elapsed > tick {
                    tracing::warn!(elapsed = ?report.elapsed, series = report.series, "planner tick overran");
                }
                // A late tick does not cause a burst of catch-up ticks.
                next = (next + tick).max(std::time::Instant::now());
            }
        })
        .expect("spawn the planner thread")
}
