//! The task that carries the planner thread's asks to the lease store and
//! its replies back: the only network I/O of a cluster member, off the
//! planner thread (a slow store never delays a tick) and far from Acquire.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use super::planner_thread::{Exchange, PlannerCall};
use crate::cluster::store::{Ask, Reply};

/// Runs until cancelled or until the planner thread is gone: each batch of
/// asks goes to `exchange`, and its outcome back to the planner thread.
/// When cancelled, `leave` turns the last asks into ones that hand the
/// leases back (after it stopped new grants), so the others need not wait
/// out the TTL of a daemon that stopped cleanly.
pub(super) async fn run<F, Fut>(
    exchange: F,
    leave: impl FnOnce(Vec<Ask>) -> Vec<Ask>,
    mut asks: tokio::sync::mpsc::Receiver<Exchange>,
    to_planner: std::sync::mpsc::Sender<PlannerCall>,
    cancel: CancellationToken,
) -> anyhow::Result<()>
where
    F: Fn(Vec<Ask>) -> Fut,
    Fut: Future<Output = Result<Vec<Reply>, String>>,
{
    let mut last = Vec::new();
    loop {
        // Cancelled, or the planner thread is gone: the daemon is stopping.
        let batch = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            batch = asks.recv() => batch,
        };
        let Some(Exchange {
            sent_at,
            asks: batch,
        }) = batch
        else {
            if !last.is_empty() {
                match exchange(leave(last)).await {
                    Ok(_) => tracing::info!("leases handed back to the lease store"),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "leases not handed back; the others get them when they expire"
                    ),
                }
            }
            return Ok(());
        };
        let replies = exchange(batch.clone()).await;
        last.clone_from(&batch);
        let answered = PlannerCall::Answered {
            sent_at,
            asks: batch,
            replies,
        };
        // A planner thread that is gone means the daemon is stopping: the
        // next turn hands the leases back.
        let _ = to_planner.send(answered);
    }
}
