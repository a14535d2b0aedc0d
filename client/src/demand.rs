//! What an Acquire asks for: the builder [`Client::acquire`](crate::Client::acquire)
//! takes and the [`layer`](crate::layer)'s closure returns.

use std::time::Duration;

/// One Acquire's request: `amount` of `resource` for `tenant`, with its
/// options. Built with [`Demand::new`] and the setters; nothing is checked
/// here, the daemon says what is wrong ([`Error::InvalidArgument`](crate::Error::InvalidArgument)).
///
/// ```
/// use std::time::Duration;
/// use prescient_client::Demand;
///
/// let demand = Demand::new("checkout", "worker_slots", 1)
///     .priority(10)
///     .max_wait(Duration::from_millis(250))
///     .request_id("order-7f3a");
/// assert_eq!(demand.amount(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand {
    pub(crate) tenant: String,
    pub(crate) resource: String,
    pub(crate) amount: u64,
    pub(crate) priority: i32,
    pub(crate) max_wait: Duration,
    pub(crate) request_id: Option<String>,
    pub(crate) estimate: bool,
    pub(crate) timeout: Option<Duration>,
}

impl Demand {
    /// `amount` tokens (rate resource) or units (concurrency resource) of
    /// `resource` for `tenant`, answered at once (no waiting).
    pub fn new(tenant: impl Into<String>, resource: impl Into<String>, amount: u64) -> Self {
        Self {
            tenant: tenant.into(),
            resource: resource.into(),
            amount,
            priority: 0,
            max_wait: Duration::ZERO,
            request_id: None,
            estimate: false,
            timeout: None,
        }
    }

    /// Orders waiters of the same QoS class: higher first (default 0).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// How long the caller will wait for the tokens: in the daemon's queue,
    /// then, if it answers DENIED early, by retrying after its
    /// `retry_after`. Zero (the default): a denial is returned at once.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The idempotency key every attempt of this Acquire carries, so a
    /// retry is never paid twice. Default: a random one per Acquire.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Marks `amount` as an estimate to settle later with
    /// [`Permit::report`](crate::Permit::report) (e.g. LLM tokens): a rate
    /// grant then carries a lease, and the difference between the estimate
    /// and what was used is refunded or charged. Concurrency grants always
    /// carry a lease.
    pub fn estimate(mut self) -> Self {
        self.estimate = true;
        self
    }

    /// The overall deadline of this Acquire, retries and waiting included.
    /// Default: `max_wait` plus the client's
    /// [`RetryPolicy::timeout`](crate::RetryPolicy::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn resource(&self) -> &str {
        &self.resource
    }

    pub fn amount(&self) -> u64 {
        self.amount
    }
}
