//! The retry loop on virtual time (`tokio::time::pause`): scripted
//! attempts, exact elapsed times, no daemon.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tonic::Status;

use super::*;

const MS: Duration = Duration::from_millis(1);

fn denied(retry_after: Duration) -> Failure {
    Failure::Denied(Error::Denied {
        tenant: "t".into(),
        resource: "r".into(),
        amount: 1,
        retry_after,
    })
}

/// A transport failure as tonic makes it: a status with a source error.
fn broken() -> Failure {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
    Failure::from_status(Status::from_error(Box::new(io)))
}

/// Runs `script` (one outcome per attempt; `None` never answers) and
/// records when each attempt started and what it had left.
async fn play(
    policy: RetryPolicy,
    budget: Budget,
    script: Vec<Option<Result<u32, Failure>>>,
) -> (Result<u32, Error>, Vec<(Duration, Left)>) {
    let start = Instant::now();
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let result = run(&policy, budget, |left| {
        seen.lock().unwrap().push((start.elapsed(), left));
        let next = script
            .lock()
            .unwrap()
            .pop_front()
            .expect("an attempt too many");
        async move {
            match next {
                Some(outcome) => outcome,
                None => std::future::pending().await,
            }
        }
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    (result, seen)
}

fn budget(timeout_ms: u64, max_wait_ms: u64) -> Budget {
    Budget {
        timeout: MS * timeout_ms as u32,
        max_wait: MS * max_wait_ms as u32,
    }
}

#[test]
fn backoff_doubles_up_to_the_cap_and_is_jittered_within_its_lower_half() {
    let p = RetryPolicy::default(); // 50 ms doubling, 2 s cap
    assert_eq!(p.backoff(1, 0.0), MS * 25);
    assert_eq!(p.backoff(1, 0.999_999).as_millis(), 49);
    assert_eq!(p.backoff(3, 0.0), MS * 100);
    assert_eq!(p.backoff(10, 0.0), MS * 1000, "capped at 2 s before jitter");
    assert_eq!(p.backoff(u32::MAX, 0.0), MS * 1000, "no overflow");
}

#[test]
fn statuses_the_daemon_sent_are_not_retried_but_broken_connections_are() {
    assert!(is_transient(&Status::unavailable("shutting down")));
    assert!(!is_transient(&Status::internal("from the daemon")));
    assert!(!is_transient(&Status::invalid_argument(
        "amount: must be > 0"
    )));
    assert!(matches!(broken(), Failure::Transient(_)));
}

#[tokio::test(start_paused = true)]
async fn transport_failures_are_retried_after_a_growing_backoff() {
    let (result, seen) = play(
        RetryPolicy::default(),
        budget(10_000, 0),
        vec![Some(Err(broken())), Some(Err(broken())), Some(Ok(7))],
    )
    .await;
    assert_eq!(result.unwrap(), 7);
    assert_eq!(seen.len(), 3);
    let first = seen[1].0 - seen[0].0;
    let second = seen[2].0 - seen[1].0;
    assert!((MS * 25..=MS * 50).contains(&first), "{first:?}");
    assert!((MS * 50..=MS * 100).contains(&second), "{second:?}");
}

#[tokio::test(start_paused = true)]
async fn a_denial_is_the_answer_when_the_caller_does_not_wait() {
    let (result, seen) = play(
        RetryPolicy::default(),
        budget(10_000, 0),
        vec![Some(Err(denied(MS * 300)))],
    )
    .await;
    assert_eq!(result.unwrap_err().retry_after(), Some(MS * 300));
    assert_eq!(seen.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_caller_retries_no_sooner_than_retry_after() {
    let (result, seen) = play(
        RetryPolicy::default(),
        budget(10_000, 2_000),
        vec![Some(Err(denied(MS * 700))), Some(Ok(1))],
    )
    .await;
    assert_eq!(result.unwrap(), 1);
    let pause = seen[1].0;
    assert!((MS * 700..=MS * 770).contains(&pause), "{pause:?}");
    assert_eq!(
        seen[0].1.wait,
        MS * 2_000,
        "the daemon may queue it that long"
    );
    assert_eq!(seen[1].1.wait, MS * 2_000 - pause, "the rest of max_wait");
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_max_wait_is_answered_at_once() {
    let (result, seen) = play(
        RetryPolicy::default(),
        budget(10_000, 500),
        vec![Some(Err(denied(MS * 700)))],
    )
    .await;
    assert!(result.unwrap_err().is_denied());
    assert_eq!(seen.len(), 1, "no pointless wait");
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_never_answers_ends_at_the_deadline() {
    let start = Instant::now();
    let (result, seen) = play(RetryPolicy::default(), budget(1_500, 0), vec![None]).await;
    assert_eq!(start.elapsed(), MS * 1_500);
    match result.unwrap_err() {
        Error::Deadline {
            timeout, attempts, ..
        } => assert_eq!((timeout, attempts), (MS * 1_500, 1)),
        e => panic!("{e}"),
    }
    assert_eq!(seen[0].1.time, MS * 1_500);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_deadline_with_the_last_failure() {
    let policy = RetryPolicy::default().max_attempts(100);
    let script = (0..100).map(|_| Some(Err(broken()))).collect();
    let start = Instant::now();
    let (result, seen) = play(policy, budget(1_000, 0), script).await;
    assert!(start.elapsed() <= MS * 1_000);
    match result.unwrap_err() {
        Error::Deadline { attempts, last, .. } => {
            assert_eq!(attempts as usize, seen.len());
            assert!(last.unwrap().contains("reset by peer"));
        }
        e => panic!("{e}"),
    }
}

#[tokio::test(start_paused = true)]
async fn retries_stop_after_max_attempts_as_unavailable() {
    let policy = RetryPolicy::default().max_attempts(3);
    let script = (0..3).map(|_| Some(Err(broken()))).collect();
    let (result, seen) = play(policy, budget(60_000, 0), script).await;
    assert_eq!(seen.len(), 3);
    assert!(
        matches!(result.unwrap_err(), Error::Unavailable { attempts: 3, ref last } if last.contains("reset by peer"))
    );
}
