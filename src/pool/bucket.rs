//! A token bucket for `kind: rate` pools: GCRA on one `AtomicU64`.
//!
//! The state is the theoretical arrival time (TAT): the bucket is full when
//! `tat <= now`, and taking `k` tokens moves it `k × interval` forward, which
//! is allowed while `tat - now` stays within the depth. One load and one CAS
//! decide a take; the rate and depth are parameters the planner may change
//! at run time ([`Bucket::set_rate`]).
//!
//! Time inside a bucket is in ticks of 1/64 ns, so an emission interval is
//! an exact integer to within 1/64 ns per token. The rounding is always in
//! the caller's disfavour, so capacity is never exceeded: it costs under
//! 0.2% of the rate up to 10^8 tokens/s, and an empty bucket is full at most
//! `depth / 64` ns later than the nominal rate says.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::{NANOS_PER_SEC, Nanos};

const TICKS_PER_NANO: u64 = 64;
const TICKS_PER_SEC: f64 = (NANOS_PER_SEC * TICKS_PER_NANO) as f64;
/// Marks the state while [`Bucket::set_rate`] swaps the parameters: takers
/// spin for those few instructions, so a take never mixes old and new.
const LOCKED: u64 = u64::MAX;
const MAX_TAT: u64 = LOCKED - 1;

/// A rate pool.
#[derive(Debug)]
pub struct Bucket {
    tat: AtomicU64,
    /// Ticks per token; 0 means the pool has no rate and grants nothing.
    interval: AtomicU64,
    /// Depth in tokens.
    depth: AtomicU64,
    /// The rate as asked (f64 bits), for reporting; `interval` rounds it.
    nominal: AtomicU64,
}

fn interval_for(rate: f64) -> u64 {
    if rate.is_finite() && rate >= 1e-6 {
        (TICKS_PER_SEC / rate).ceil().max(1.0) as u64
    } else {
        0
    }
}

#[inline]
fn ticks(now: Nanos) -> u64 {
    now.saturating_mul(TICKS_PER_NANO).min(MAX_TAT)
}

impl Bucket {
    /// A full bucket refilling at `rate` tokens/s, holding at most `depth`.
    pub fn new(rate: f64, depth: u64) -> Self {
        Self {
            tat: AtomicU64::new(0),
            interval: AtomicU64::new(interval_for(rate)),
            depth: AtomicU64::new(depth),
            nominal: AtomicU64::new(nominal(rate).to_bits()),
        }
    }

    /// An empty bucket at `now`: it fills at `rate`, like one drained.
    pub fn new_empty(rate: f64, depth: u64, now: Nanos) -> Self {
        let b = Self::new(rate, depth);
        let interval = interval_for(rate);
        let tat = ticks(now)
            .saturating_add(depth.saturating_mul(interval))
            .min(MAX_TAT);
        b.tat.store(tat, Ordering::Relaxed);
        b
    }

    /// Loads a consistent (tat, interval, depth), waiting out a concurrent
    /// [`set_rate`](Self::set_rate).
    #[inline]
    fn load(&self) -> (u64, u64, u64) {
        loop {
            let tat = self.tat.load(Ordering::Acquire);
            if tat != LOCKED {
                // Parameters written under LOCKED are published by the
                // Release store of the new tat; a take that read stale ones
                // fails its CAS because set_rate always changes tat.
                return (
                    tat,
                    self.interval.load(Ordering::Relaxed),
                    self.depth.load(Ordering::Relaxed),
                );
            }
            std::hint::spin_loop();
        }
    }

    /// Tokens that could be taken now.
    #[inline]
    pub fn available(&self, now: Nanos) -> u64 {
        let (tat, interval, depth) = self.load();
        available_at(tat, interval, depth, ticks(now))
    }

    /// Takes up to `want` tokens; returns how many were taken and how many
    /// were there.
    #[inline]
    pub fn take_up_to(&self, want: u64, now: Nanos) -> (u64, u64) {
        let now = ticks(now);
        loop {
            let (tat, interval, depth) = self.load();
            let available = available_at(tat, interval, depth, now);
            let k = want.min(available);
            if k == 0 {
                return (0, available);
            }
            let new = tat.max(now).saturating_add(k * interval).min(MAX_TAT);
            if self
                .tat
                .compare_exchange_weak(tat, new, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return (k, available);
            }
        }
    }

    #[cfg(test)]
    fn take_up_to_n(&self, want: u64, now: Nanos) -> u64 {
        self.take_up_to(want, now).0
    }

    /// Returns `n` tokens taken earlier; a full bucket stays full.
    pub fn put_back(&self, n: u64, now: Nanos) {
        self.update(now, |tat, interval, now| {
            if tat <= now {
                tat
            } else {
                tat.saturating_sub(n.saturating_mul(interval)).max(now)
            }
        });
    }

    /// Charges `n` tokens whether or not they are there (a Report that used
    /// more than it acquired): the bucket goes into debt and grants nothing
    /// until it has refilled past it.
    pub fn force_take(&self, n: u64, now: Nanos) {
        self.update(now, |tat, interval, now| {
            tat.max(now)
                .saturating_add(n.saturating_mul(interval))
                .min(MAX_TAT)
        });
    }

    fn update(&self, now: Nanos, f: impl Fn(u64, u64, u64) -> u64) {
        let now = ticks(now);
        loop {
            let (tat, interval, _) = self.load();
            let new = f(tat, interval, now);
            if new == tat
                || self
                    .tat
                    .compare_exchange_weak(tat, new, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
    }

    /// How long until `n` tokens can be taken, if nobody else takes any;
    /// `None` when never (no rate, or `n` deeper than the bucket).
    pub fn time_until(&self, n: u64, now: Nanos) -> Option<Nanos> {
        let (tat, interval, depth) = self.load();
        if interval == 0 || n > depth {
            return None;
        }
        let now = ticks(now);
        let ready = tat.max(now).saturating_add(n * interval);
        let limit = now.saturating_add(depth.saturating_mul(interval));
        Some(ready.saturating_sub(limit).div_ceil(TICKS_PER_NANO))
    }

    /// Refill rate in tokens/s as set (0 when the pool has no rate); the
    /// bucket refills at most this fast.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.nominal.load(Ordering::Relaxed))
    }

    /// Fill now in tokens (fractional, negative when in debt), the refill
    /// rate actually applied, and depth, read consistently.
    pub fn outlook(&self, now: Nanos) -> (f64, f64, u64) {
        let (tat, interval, depth) = self.load();
        if interval == 0 {
            return (0.0, 0.0, depth);
        }
        let backlog = tat.saturating_sub(ticks(now)) as f64;
        let fill = depth as f64 - backlog / interval as f64;
        (fill, rate_of(interval), depth)
    }

    pub fn depth(&self) -> u64 {
        self.load().2
    }

    /// Changes rate and depth, keeping the tokens held (capped at the new
    /// depth) and any debt; a pool that had no rate starts empty. Never
    /// creates tokens, so resizing cannot break the capacity invariant.
    pub fn set_rate(&self, rate: f64, depth: u64, now: Nanos) {
        let now = ticks(now);
        let new_interval = interval_for(rate);
        let tat = loop {
            let tat = self.tat.load(Ordering::Acquire);
            if tat != LOCKED
                && self
                    .tat
                    .compare_exchange_weak(tat, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break tat;
            }
            std::hint::spin_loop();
        };
        let old_interval = self.interval.load(Ordering::Relaxed);
        let old_depth = self.depth.load(Ordering::Relaxed);
        // Fill in tokens, negative when in debt.
        let fill: f64 = if old_interval == 0 {
            0.0
        } else {
            let backlog = tat.saturating_sub(now) as f64;
            old_depth as f64 - backlog / old_interval as f64
        };
        let new_tat = if new_interval == 0 {
            now
        } else {
            let fill = fill.min(depth as f64);
            let backlog = ((depth as f64 - fill) * new_interval as f64).ceil();
            now.saturating_add(backlog as u64).min(MAX_TAT)
        };
        // Always change the state word, so a take that read the old
        // parameters fails its CAS (no ABA).
        let new_tat = if new_tat == tat { new_tat + 1 } else { new_tat };
        self.interval.store(new_interval, Ordering::Relaxed);
        self.depth.store(depth, Ordering::Relaxed);
        self.nominal
            .store(nominal(rate).to_bits(), Ordering::Relaxed);
        self.tat.store(new_tat, Ordering::Release);
    }
}

fn nominal(rate: f64) -> f64 {
    if interval_for(rate) == 0 { 0.0 } else { rate }
}

fn rate_of(interval: u64) -> f64 {
    match interval {
        0 => 0.0,
        i => TICKS_PER_SEC / i as f64,
    }
}

#[inline]
fn available_at(tat: u64, interval: u64, depth: u64, now: u64) -> u64 {
    if interval == 0 {
        return 0;
    }
    let backlog = tat.saturating_sub(now);
    let tau = depth.saturating_mul(interval);
    if backlog == 0 && tau < u64::MAX {
        // Full: no division (the common case for a tenant under its rate).
        return depth;
    }
    if backlog >= tau {
        0
    } else {
        (tau - backlog) / interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Nanos = NANOS_PER_SEC;

    #[test]
    fn an_empty_bucket_fills_at_its_rate() {
        let b = Bucket::new_empty(100.0, 100, SEC);
        assert_eq!(b.available(SEC), 0);
        assert_eq!(b.available(SEC + SEC / 2), 50);
        assert_eq!(b.available(3 * SEC), 100);
    }

    #[test]
    fn a_full_bucket_holds_its_depth_and_one_token_less_after_a_take() {
        let b = Bucket::new(100.0, 100);
        assert_eq!(b.available(SEC), 100, "full: the short path");
        assert_eq!(b.take_up_to(1, SEC), (1, 100));
        assert_eq!(b.available(SEC), 99, "one in backlog: the division");
        // depth × interval past u64: never more than the division allows.
        let huge = Bucket::new(1e-6, u64::MAX / 2);
        assert_eq!(huge.available(0), u64::MAX / interval_for(1e-6));
    }

    #[test]
    fn full_bucket_grants_its_depth_then_refills_at_its_rate() {
        let b = Bucket::new(10.0, 20);
        assert_eq!(b.take_up_to_n(100, 0), 20);
        assert_eq!(b.take_up_to_n(1, 0), 0);
        assert_eq!(b.available(SEC / 2), 5);
        assert_eq!(b.take_up_to_n(100, SEC), 10);
        assert_eq!(b.available(100 * SEC), 20, "never more than depth");
    }

    #[test]
    fn uneven_intervals_still_grant_the_whole_depth_one_by_one() {
        let b = Bucket::new(3.0, 3);
        for _ in 0..3 {
            assert_eq!(b.take_up_to_n(1, 0), 1);
        }
        assert_eq!(b.take_up_to_n(1, 0), 0);
        // Intervals round up (never over-grant): full a hair after 1 s.
        assert_eq!(b.available(SEC), 2);
        assert_eq!(b.available(SEC + 1), 3);
    }

    #[test]
    fn put_back_returns_tokens_but_never_overfills() {
        let b = Bucket::new(10.0, 10);
        assert_eq!(b.take_up_to_n(6, 0), 6);
        b.put_back(4, 0);
        assert_eq!(b.available(0), 8);
        b.put_back(100, 0);
        assert_eq!(b.available(0), 10);
    }

    #[test]
    fn debt_blocks_until_refilled() {
        let b = Bucket::new(10.0, 10);
        b.force_take(30, 0);
        assert_eq!(b.available(0), 0);
        assert_eq!(b.available(2 * SEC), 0);
        assert_eq!(b.available(3 * SEC), 10);
        assert_eq!(b.time_until(10, 0), Some(3 * SEC));
    }

    #[test]
    fn time_until_follows_the_refill_rate() {
        let b = Bucket::new(100.0, 100);
        b.take_up_to_n(100, 0);
        assert_eq!(b.time_until(50, 0), Some(SEC / 2));
        assert_eq!(b.time_until(0, 0), Some(0));
        assert_eq!(b.time_until(101, 0), None, "deeper than the bucket");
        assert_eq!(Bucket::new(0.0, 10).time_until(1, 0), None, "no rate");
    }

    #[test]
    fn set_rate_keeps_tokens_and_caps_them_at_the_new_depth() {
        let b = Bucket::new(10.0, 10);
        b.take_up_to_n(4, 0);
        b.set_rate(100.0, 100, 0);
        assert_eq!(b.available(0), 6, "resizing creates no tokens");
        assert_eq!(b.available(SEC), 100);
        b.set_rate(1.0, 2, SEC);
        assert_eq!(b.available(SEC), 2);
        b.set_rate(0.0, 0, SEC);
        assert_eq!(b.available(SEC), 0);
        b.set_rate(5.0, 5, SEC);
        assert_eq!(b.available(SEC), 0, "a pool that had no rate starts empty");
        assert_eq!(b.available(2 * SEC), 5);
    }

    #[test]
    fn concurrent_takers_never_exceed_depth_plus_refill() {
        let b = std::sync::Arc::new(Bucket::new(1000.0, 1000));
        let taken: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let b = b.clone();
                    s.spawn(move || (0..2000).map(|_| b.take_up_to_n(1, 0)).sum::<u64>())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(taken, 1000);
    }
}
