//! The Acquire latency histogram: a fixed array of atomics, so the hot path
//! records a decision without the lock prometheus-client's own histogram
//! takes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// A latency histogram on atomics: `observe` is one array index and three
/// relaxed adds, no lock.
#[derive(Debug)]
pub struct LatencyHistogram {
    /// Upper bounds, seconds.
    bounds: Vec<f64>,
    /// Per bucket (not cumulative); the last is +Inf.
    counts: Vec<AtomicU64>,
    sum_ns: AtomicU64,
}

impl LatencyHistogram {
    /// Buckets from 1 µs to ~33 ms, doubling.
    pub fn new() -> Self {
        let bounds: Vec<f64> = (0..16).map(|i| 1e-6 * 2f64.powi(i)).collect();
        Self {
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            bounds,
            sum_ns: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn observe_ns(&self, ns: u64) {
        // Bucket i holds (bounds[i-1], bounds[i]]: 1 µs << i.
        let micros = ns.div_ceil(1_000).max(1);
        let i = (64 - (micros - 1).leading_zeros()) as usize;
        self.counts[i.min(self.bounds.len())].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            buckets.push((self.bounds.get(i).copied().unwrap_or(f64::MAX), cumulative));
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            sum, cumulative, &buckets, None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}
/// Registers the shared histogram (the registry wants an owned metric).
#[derive(Debug)]
pub(super) struct LatencyShared(pub(super) Arc<LatencyHistogram>);

impl TypedMetric for LatencyShared {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyShared {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn the_latency_histogram_buckets_by_doubling_microseconds() {
        let h = LatencyHistogram::new();
        h.observe_ns(500); // <= 1 µs
        h.observe_ns(1_500); // <= 2 µs
        h.observe_ns(3_000_000); // <= 4.096 ms
        let m = Metrics::new(10);
        m.acquire_latency.observe_ns(800);
        let text = m.encode();
        assert!(
            text.contains("prescient_acquire_latency_seconds_count 1"),
            "{text}"
        );
        assert_eq!(h.counts[0].load(Ordering::Relaxed), 1);
        assert_eq!(h.counts[1].load(Ordering::Relaxed), 1);
        assert_eq!(h.counts[12].load(Ordering::Relaxed), 1);
    }
}
