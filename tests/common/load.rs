//! A steady load on daemons: one client per daemon sends the same Acquire
//! at a fixed pace until stopped, each call given a deadline; what every
//! client saw comes back when the load stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use prescient::proto::{AcquireRequest, Decision};

use super::Daemon;

/// What one client saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Tokens (or units) granted to it.
    pub granted: u64,
    pub grants: u64,
    pub denials: u64,
    /// Calls that failed or did not answer within the deadline.
    pub unanswered: u64,
    /// The slowest answer.
    pub slowest: Duration,
}

/// Clients running until [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Seen>>,
}

impl Load {
    /// One client per daemon, each sending `request` `per_second` times a
    /// second; a call not answered within `deadline` counts as unanswered.
    pub async fn start(
        daemons: &[&Daemon],
        request: AcquireRequest,
        per_second: u32,
        deadline: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for d in daemons {
            let mut client = d.client().await;
            let (stop, request) = (stop.clone(), request.clone());
            clients.push(tokio::spawn(async move {
                let mut seen = Seen::default();
                let mut pace = tokio::time::interval(Duration::from_secs(1) / per_second);
                pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !stop.load(Ordering::Relaxed) {
                    pace.tick().await;
                    let sent = Instant::now();
                    let answer = tokio::time::timeout(deadline, client.acquire(request.clone()));
                    match answer.await {
                        Ok(Ok(r)) if r.get_ref().decision() == Decision::Granted => {
                            seen.grants += 1;
                            seen.granted += request.amount;
                        }
                        Ok(Ok(_)) => seen.denials += 1,
                        Ok(Err(_)) | Err(_) => seen.unanswered += 1,
                    }
                    seen.slowest = seen.slowest.max(sent.elapsed());
                }
                seen
            }));
        }
        Self { stop, clients }
    }

    /// Stops every client; what each saw, in the daemons' order.
    pub async fn stop(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        let mut seen = Vec::new();
        for client in self.clients {
            seen.push(client.await.unwrap());
        }
        seen
    }
}
