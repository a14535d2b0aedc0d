//! The core's request and answer values: what an Acquire asks, what it is
//! answered, and what a Release returns. Borrowed and allocation-free
//! where the hot path passes them.

use std::time::Duration;

use super::lease::LeaseId;
use crate::pool::Split;

/// One Acquire, as the core sees it (borrowed: the hot path copies nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct AcquireRequest<'a> {
    pub tenant: &'a str,
    pub resource: &'a str,
    pub amount: u64,
    pub priority: i32,
    pub max_wait: Duration,
    pub request_id: Option<&'a str>,
    /// Rate resources: keep a lease so Report can settle the grant.
    pub lease: bool,
}

/// The answer to an Acquire.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Granted(Grant),
    Denied(Denial),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub split: Split,
    pub lease: Option<LeaseId>,
    pub remaining: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    pub retry_after: Duration,
    pub remaining: u64,
}

/// The answer to a Release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    pub units: u64,
    pub already: bool,
}
