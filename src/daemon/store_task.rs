//! The task that carries the planner thread's asks to the lease store and
//! its replies back: the only network I/O of a cluster member, off the
//! planner thread (a slow store never delays a tick) and far from Acquire.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use super::planner_thread::{Exchange, PlannerCall};
use crate::cluster::store::{Ask, Reply};

/// Runs until cancelled or until the planner thread is gone: each batch of
/// asks goes to `exchange`, and its outcome back to the planner thread.
pub(super) async fn run<F, Fut>(
    exchange: F,
    mut asks: tokio::sync::mpsc::Receiver<Exchange>,
    to_planner: std::sync::mpsc::Sender<PlannerCall>,
    cancel: CancellationToken,
) -> anyhow::Result<()>
where
    F: Fn(Vec<Ask>) -> Fut,
    Fut: Future<Output = Result<Vec<Reply>, String>>,
{
    loop {
        let batch = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            batch = asks.recv() => batch,
        };
        let Some(Exchange {
            sent_at,
            asks: batch,
        }) = batch
        else {
            return Ok(());
        };
        let replies = exchange(batch.clone()).await;
        let answered = PlannerCall::Answered {
            sent_at,
            asks: batch,
            replies,
        };
        if to_planner.send(answered).is_err() {
            return Ok(());
        }
    }
}
