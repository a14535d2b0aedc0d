//! The daemon's tasks under one supervisor: the gRPC and admin servers, the
//! watcher, the dispatchers and reaper, the planner thread. They all run
//! until shutdown; the first one to fail (an error, a panic, or ending on
//! its own before shutdown began) clears readiness and cancels the rest, so
//! a daemon whose gRPC server died never keeps answering `/readyz` "ready",
//! and the process ends non-zero with the failed task's name and error.

use std::future::Future;
use std::sync::Arc;

use anyhow::anyhow;
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::admin::Readiness;

/// A set of named tasks that stand or fall together.
pub struct Supervisor {
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
    /// Task names by task id, to name a task that panicked.
    names: Vec<(tokio::task::Id, &'static str)>,
    cancel: CancellationToken,
    readiness: Arc<Readiness>,
}

impl Supervisor {
    /// Tasks stop on `cancel`; a failure cancels it and clears `readiness`.
    pub fn new(cancel: CancellationToken, readiness: Arc<Readiness>) -> Self {
        Self {
            tasks: JoinSet::new(),
            names: Vec::new(),
            cancel,
            readiness,
        }
    }

    /// Runs `task` under supervision; `name` says which task failed.
    pub fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) -> AbortHandle {
        let handle = self.tasks.spawn(async move { (name, task.await) });
        self.names.push((handle.id(), name));
        handle
    }

    /// Runs blocking `work` (a thread's join) under supervision.
    pub fn spawn_blocking(
        &mut self,
        name: &'static str,
        work: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
    ) {
        let handle = self.tasks.spawn_blocking(move || (name, work()));
        self.names.push((handle.id(), name));
    }

    /// Waits until every task has ended. The first failure cancels the
    /// others (they wind down as at shutdown) and is returned; tasks ending
    /// with `Ok` after shutdown began are the normal case.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut failure: Option<anyhow::Error> = None;
        while let Some(joined) = self.tasks.join_next_with_id().await {
            let (name, outcome) = match joined {
                Ok((_, (name, outcome))) => (name, outcome),
                Err(e) => {
                    let name = self
                        .names
                        .iter()
                        .find(|(id, _)| *id == e.id())
                        .map_or("a daemon task", |(_, name)| *name);
                    (name, Err(anyhow!("panicked: {e}")))
                }
            };
            let outcome = match outcome {
                Ok(()) if !self.cancel.is_cancelled() => {
                    Err(anyhow!("stopped on its own before shutdown"))
                }
                other => other,
            };
            if let Err(e) = outcome {
                let e = e.context(format!("{name} failed"));
                if failure.is_none() {
                    tracing::error!(task = name, error = %format!("{e:#}"), "a daemon task failed; stopping the daemon");
                    self.readiness.set(false);
                    self.cancel.cancel();
                    failure = Some(e);
                } else {
                    tracing::warn!(task = name, error = %format!("{e:#}"), "another task failed while stopping");
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supervisor() -> (Supervisor, CancellationToken, Arc<Readiness>) {
        let cancel = CancellationToken::new();
        let readiness = Arc::new(Readiness::default());
        readiness.set(true);
        (
            Supervisor::new(cancel.clone(), readiness.clone()),
            cancel,
            readiness,
        )
    }

    /// A task that runs until shutdown, and says whether it was stopped.
    fn server(cancel: &CancellationToken) -> impl Future<Output = anyhow::Result<()>> + use<> {
        let cancel = cancel.clone();
        async move {
            cancel.cancelled().await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_first_failure_stops_the_rest_clears_readiness_and_is_returned() {
        let (mut s, cancel, readiness) = supervisor();
        s.spawn("grpc server", server(&cancel));
        s.spawn("admin server", server(&cancel));
        s.spawn("watcher", async { Err(anyhow!("inotify gone")) });
        let e = s.wait().await.unwrap_err();
        assert_eq!(format!("{e:#}"), "watcher failed: inotify gone");
        assert!(cancel.is_cancelled(), "the other tasks were told to stop");
        assert!(!readiness.is_ready());
    }

    #[tokio::test]
    async fn a_panic_or_an_early_end_is_a_failure_too() {
        let (mut s, cancel, _) = supervisor();
        s.spawn("grpc server", server(&cancel));
        s.spawn_blocking("planner", || panic!("boom"));
        let e = s.wait().await.unwrap_err();
        assert!(
            format!("{e:#}").starts_with("planner failed: panicked"),
            "{e:#}"
        );

        let (mut s, cancel, _) = supervisor();
        s.spawn("grpc server", server(&cancel));
        s.spawn("admin server", async { Ok(()) });
        let e = s.wait().await.unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "admin server failed: stopped on its own before shutdown"
        );
    }

    #[tokio::test]
    async fn a_shutdown_is_not_a_failure() {
        let (mut s, cancel, readiness) = supervisor();
        s.spawn("grpc server", server(&cancel));
        s.spawn("admin server", server(&cancel));
        cancel.cancel();
        s.wait().await.unwrap();
        assert!(readiness.is_ready(), "readiness is the daemon's to clear");
    }
}
