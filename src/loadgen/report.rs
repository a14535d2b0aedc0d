//! What a load measured: each stream's counts and latencies (`Tally`),
//! merged into one `Report` at the end of a run.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::Outcome;

/// Latencies above this are recorded at it (the histogram's range).
const MAX_LATENCY_US: u64 = 60_000_000;

/// What a run measured. `requests = granted + denied + errors`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub requests: u64,
    pub granted: u64,
    pub denied: u64,
    /// Calls answered with a gRPC error (an unknown tenant, a bad amount).
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Report {
    pub fn to_text(&self) -> String {
        format!(
            "requests {} (granted {}, denied {}, errors {}) in {:.2} s: {:.0} requests/s\n\
             latency p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs\n",
            self.requests,
            self.granted,
            self.denied,
            self.errors,
            self.seconds,
            self.requests_per_second,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.max_us
        )
    }
}

/// One stream's counts and latencies (µs).
pub(super) struct Tally {
    granted: u64,
    denied: u64,
    errors: u64,
    latency: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            granted: 0,
            denied: 0,
            errors: 0,
            // 3 significant digits over 1 µs ..= 60 s: bounds are constants.
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant histogram bounds are valid"),
        }
    }
}

impl Tally {
    pub(super) fn merge(&mut self, other: Tally) {
        self.granted += other.granted;
        self.denied += other.denied;
        self.errors += other.errors;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    /// One answered call and how long it took.
    pub(super) fn record(&mut self, outcome: Outcome, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(us.clamp(1, MAX_LATENCY_US));
        match outcome {
            Outcome::Granted => self.granted += 1,
            Outcome::Denied => self.denied += 1,
            Outcome::Error => self.errors += 1,
        }
    }

    /// The run's report, over `seconds` of wall time.
    pub(super) fn into_report(self, seconds: f64) -> Report {
        let requests = self.granted + self.denied + self.errors;
        let h = &self.latency;
        Report {
            requests,
            granted: self.granted,
            denied: self.denied,
            errors: self.errors,
            seconds,
            requests_per_second: requests as f64 / seconds,
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}
