//! When to try again: transport failures and UNAVAILABLE with jittered
//! exponential backoff, a denial after the daemon's `retry_after` when the
//! caller asked to wait, and never past the call's deadline. Every attempt
//! of one call is the same request (the caller keeps its `request_id`), so
//! a retry is never paid twice.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Code, Status};

use crate::Error;

/// How a [`Client`](crate::Client) retries a call that got no answer.
///
/// Backoff before retry `n` (1, 2, …) is drawn uniformly from
/// `[b/2, b]` with `b = min(max_backoff, initial_backoff × 2^(n-1))`, so
/// clients that failed together do not retry together. A call gives up
/// after `max_attempts` failed attempts ([`Error::Unavailable`]) or at its
/// deadline ([`Error::Deadline`]), whichever comes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    initial_backoff: Duration,
    max_backoff: Duration,
    max_attempts: u32,
    timeout: Duration,
}

impl Default for RetryPolicy {
    /// 50 ms doubling up to 2 s, 8 attempts, 10 s per call.
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            max_attempts: 8,
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt, its failure returned as is.
    pub fn never() -> Self {
        Self::default().max_attempts(1)
    }

    /// The first backoff (before jitter).
    pub fn initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }

    /// The longest backoff (before jitter).
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }

    /// Attempts that failed without an answer before giving up (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The deadline of a call that does not set its own; an Acquire's
    /// `max_wait` is added to it.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    pub(crate) fn default_timeout(&self) -> Duration {
        self.timeout
    }

    /// The pause before retry `n` (from 1), for `unit` drawn from [0, 1).
    fn backoff(&self, n: u32, unit: f64) -> Duration {
        let doubled = self
            .initial_backoff
            .saturating_mul(1u32 << (n.saturating_sub(1)).min(30));
        let b = doubled.min(self.max_backoff);
        b.mul_f64(0.5 + 0.5 * unit)
    }
}

/// Why an attempt did not succeed.
pub(crate) enum Failure {
    /// No answer (the connection failed, or the daemon is UNAVAILABLE):
    /// the same request may be sent again.
    Transient(Status),
    /// The daemon answered DENIED; the error carries its `retry_after`.
    Denied(Error),
    /// An answer that another attempt would not change.
    Fatal(Error),
}

impl Failure {
    pub(crate) fn from_status(status: Status) -> Self {
        if is_transient(&status) {
            Self::Transient(status)
        } else {
            Self::Fatal(Error::from_status(status))
        }
    }
}

/// UNAVAILABLE, or a failure made on this side from a broken connection
/// (tonic gives those a source error; statuses the daemon sent have none).
fn is_transient(status: &Status) -> bool {
    use std::error::Error as _;
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Internal | Code::Cancelled => status.source().is_some(),
        _ => false,
    }
}

/// A status with its source chain: tonic's own message ("transport
/// error") alone does not say what failed.
pub(crate) fn describe(status: &Status) -> String {
    use std::error::Error as _;
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source = status.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// What one call may spend: `timeout` in all, of which `max_wait` waiting
/// for tokens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub timeout: Duration,
    pub max_wait: Duration,
}

/// What is left of a budget when an attempt starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Left {
    /// Of the wait for tokens (zero: answer at once).
    pub wait: Duration,
    /// Of the whole call.
    pub time: Duration,
}

/// Runs `attempt` until it succeeds or fails for good, within `budget`.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    budget: Budget,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut(Left) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let start = Instant::now();
    let deadline = start + budget.timeout;
    let wait_until = start + budget.max_wait;
    let mut attempts = 0;
    let mut unanswered = 0;
    let mut last = None;
    let expired = |attempts, last| Error::Deadline {
        timeout: budget.timeout,
        attempts,
        last,
    };
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(expired(attempts, last));
        }
        attempts += 1;
        let left = Left {
            wait: wait_until.saturating_duration_since(now),
            time: deadline - now,
        };
        let failure = match tokio::time::timeout_at(deadline, attempt(left)).await {
            Err(_) => return Err(expired(attempts, last)),
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(failure)) => failure,
        };
        let now = Instant::now();
        let pause = match failure {
            Failure::Fatal(e) => return Err(e),
            Failure::Transient(status) if status.code() == Code::DeadlineExceeded => {
                return Err(expired(attempts, Some(describe(&status))));
            }
            Failure::Transient(status) => {
                unanswered += 1;
                let text = describe(&status);
                if unanswered >= policy.max_attempts {
                    return Err(Error::Unavailable {
                        attempts: unanswered,
                        last: text,
                    });
                }
                last = Some(text);
                policy.backoff(unanswered, fastrand::f64())
            }
            Failure::Denied(denied) => {
                let retry_after = denied.retry_after().unwrap_or_default();
                // Not waiting, or the tokens come too late: the denial is
                // the answer.
                if budget.max_wait.is_zero() || now + retry_after > wait_until {
                    return Err(denied);
                }
                last = Some(denied.to_string());
                // Up to 10% later, so callers denied together spread out.
                // At least 1 ms: a zero `retry_after` must not spin.
                let pause = retry_after.mul_f64(1.0 + 0.1 * fastrand::f64());
                pause.max(Duration::from_millis(1)).min(wait_until - now)
            }
        };
        if now + pause >= deadline {
            return Err(expired(attempts, last));
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
