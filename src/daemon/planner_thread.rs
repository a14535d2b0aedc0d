//! The planner's own thread: a tick every `tick`, policy reloads applied
//! between ticks (so a reload never races the sizing of reserves), history
//! snapshots every so often and once more at the end.

use crate::planner::Planner;
use crate::watcher::Reload;

/// What the planner thread is asked between ticks.
pub(super) enum PlannerCall {
    /// Put a policy in force (the watcher's reloads).
    Reload(Reload),
    Stop,
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
            loop {
                let wait = next.saturating_duration_since(std::time::Instant::now());
                match calls.recv_timeout(wait) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(PlannerCall::Reload(r)) => {
                        let _ = r.done.send(planner.reload(&r.policy, &r.origin));
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
                if report.elapsed > tick {
                    tracing::warn!(elapsed = ?report.elapsed, series = report.series, "planner tick overran");
                }
                // A late tick does not cause a burst of catch-up ticks.
                next = (next + tick).max(std::time::Instant::now());
            }
        })
        .expect("spawn the planner thread")
}
