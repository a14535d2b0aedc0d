//! A token bucket for `kind: rate` pools: GCRA whose whole state one CAS
//! updates.
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
//! `depth / 64` ns later than the nominal rate says. Every sum saturates; a
//! saturated TAT is only a bucket in debt for ~9 years, never a special
//! value (no sentinel shares the word with the arithmetic).
//!
//! # The state word: a generation-tagged double buffer
//!
//! The word is `(tat, generation)`, read and CAS'd as one 128-bit value
//! ([`Word`]). The parameters of generation `g` (interval, depth, rate) live
//! in `slots[g % 2]`. Takers, refunds and debits CAS `(tat, g) → (tat', g)`;
//! [`Bucket::set_rate`] writes the new parameters into the *other* slot,
//! then CASes `(tat, g) → (tat'', g + 1)`, under a writer mutex that takers
//! never touch. Nobody waits for anybody: a take is lock-free (its CAS fails
//! only because another update succeeded), and a resize never blocks a take.
//!
//! **Claim:** a successful CAS from `(t, g)` was computed from generation
//! `g`'s parameters, and a read-only look that validates (word reloaded,
//! same generation) saw them whole. **Proof sketch:**
//!
//! 1. Slot `g % 2` is written only by the writer of generation `g` (before
//!    it publishes `g`) and by the writer of `g + 2`; the mutex orders all
//!    writers, and the writer of `g + 2` starts after `g + 1` was published.
//! 2. A reader that loads generation `g` (Acquire) synchronizes with the
//!    CAS that published `g` (Release; later takes' CASes are RMWs, so they
//!    continue its release sequence), so it sees at least `g`'s parameters.
//! 3. If it reads any value the writer of `g + 2` stored (Release store,
//!    Acquire load), that writer's past — the CAS publishing `g + 1` —
//!    happens before the reader's next access to the word, which by
//!    coherence then holds generation `≥ g + 1`: the CAS fails, or the
//!    validating reload sees the change and the look is retried.
//! 4. Generations only grow and never wrap, so `(t, g)` cannot reappear
//!    (no ABA).
//!
//! `pool/loom.rs` checks this with loom: concurrent takes, resizes and
//! reads never grant more than either generation's parameters allow and
//! never see a mix of two generations.

use super::Outlook;
use super::sync::{AtomicU64, Mutex, Ordering};
use super::word::{State, Word};
use crate::clock::{NANOS_PER_SEC, Nanos};

const TICKS_PER_NANO: u64 = 64;
const TICKS_PER_SEC: f64 = (NANOS_PER_SEC * TICKS_PER_NANO) as f64;

/// A rate pool.
#[derive(Debug)]
pub struct Bucket {
    word: Word,
    /// Generation `g`'s parameters are in `slots[g % 2]`.
    slots: [Slot; 2],
    /// Serializes [`Bucket::set_rate`]; never taken on the take path.
    writer: Mutex<()>,
}

/// One generation's parameters, each in its own atomic (written only by
/// the writer of that generation; see the module docs).
#[derive(Debug)]
struct Slot {
    interval: AtomicU64,
    depth: AtomicU64,
    nominal: AtomicU64,
}

/// One generation's parameters, as read.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Params {
    /// Ticks per token; 0 means the pool has no rate and grants nothing.
    interval: u64,
    /// Depth in tokens.
    depth: u64,
    /// The rate as asked, for reporting; `interval` rounds it.
    nominal: f64,
}

impl Params {
    fn new(rate: f64, depth: u64) -> Self {
        let interval = interval_for(rate);
        Self {
            interval,
            depth,
            nominal: if interval == 0 { 0.0 } else { rate },
        }
    }
}

impl Slot {
    fn new(p: Params) -> Self {
        Self {
            interval: AtomicU64::new(p.interval),
            depth: AtomicU64::new(p.depth),
            nominal: AtomicU64::new(p.nominal.to_bits()),
        }
    }

    #[inline]
    fn read(&self) -> Params {
        Params {
            interval: self.interval.load(Ordering::Acquire),
            depth: self.depth.load(Ordering::Acquire),
            nominal: f64::from_bits(self.nominal.load(Ordering::Acquire)),
        }
    }

    fn write(&self, p: Params) {
        self.interval.store(p.interval, Ordering::Release);
        self.depth.store(p.depth, Ordering::Release);
        self.nominal.store(p.nominal.to_bits(), Ordering::Release);
    }
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
    now.saturating_mul(TICKS_PER_NANO)
}

impl Bucket {
    /// A full bucket refilling at `rate` tokens/s, holding at most `depth`.
    pub fn new(rate: f64, depth: u64) -> Self {
        Self::with_tat(Params::new(rate, depth), 0)
    }

    /// An empty bucket at `now`: it fills at `rate`, like one drained.
    pub fn new_empty(rate: f64, depth: u64, now: Nanos) -> Self {
        let p = Params::new(rate, depth);
        let tat = ticks(now).saturating_add(depth.saturating_mul(p.interval));
        Self::with_tat(p, tat)
    }

    fn with_tat(p: Params, tat: u64) -> Self {
        Self {
            word: Word::new(State { tat, generation: 0 }),
            slots: [Slot::new(p), Slot::new(p)],
            writer: Mutex::new(()),
        }
    }

    #[inline]
    fn params(&self, s: State) -> Params {
        self.slots[(s.generation & 1) as usize].read()
    }

    /// A consistent look at the state and its parameters, for reading only:
    /// retried if a resize published a new generation meanwhile.
    #[inline]
    fn look(&self) -> (State, Params) {
        let mut s = self.word.load();
        loop {
            let p = self.params(s);
            let again = self.word.load();
            if again.generation == s.generation {
                return (s, p);
            }
            s = again;
        }
    }

    /// Tokens that could be taken now.
    #[inline]
    pub fn available(&self, now: Nanos) -> u64 {
        let (s, p) = self.look();
        available_at(s.tat, p, ticks(now))
    }

    /// Takes up to `want` tokens; returns how many were taken and how many
    /// were there.
    #[inline]
    pub fn take_up_to(&self, want: u64, now: Nanos) -> (u64, u64) {
        self.take_keeping(want, 0, now)
    }

    /// Takes up to `want` tokens, leaving at least `keep` in the bucket;
    /// returns how many were taken and how many were there.
    #[inline]
    pub fn take_keeping(&self, want: u64, keep: u64, now: Nanos) -> (u64, u64) {
        let now = ticks(now);
        let mut s = self.word.load();
        let mut p = self.params(s);
        loop {
            let available = available_at(s.tat, p, now);
            let k = want.min(available.saturating_sub(keep));
            if k == 0 {
                return (0, available);
            }
            let tat = s.tat.max(now).saturating_add(k.saturating_mul(p.interval));
            match self.word.compare_exchange(s, State { tat, ..s }) {
                Ok(()) => return (k, available),
                Err(actual) => {
                    if actual.generation != s.generation {
                        p = self.params(actual);
                    }
                    s = actual;
                }
            }
        }
    }

    /// Returns `n` tokens taken earlier; a full bucket stays full.
    pub fn put_back(&self, n: u64, now: Nanos) {
        self.update(now, |tat, interval, _, now| {
            if tat <= now {
                tat
            } else {
                tat.saturating_sub(n.saturating_mul(interval)).max(now)
            }
        });
    }

    /// Charges `n` tokens whether or not they are there (a Report that used
    /// more than it acquired): the bucket goes into debt and grants nothing
    /// until it has refilled past it. The debt after the charge is at most
    /// `max_debt` tokens (debt already beyond it stays, never grows); returns
    /// what was charged.
    pub fn charge(&self, n: u64, max_debt: u64, now: Nanos) -> u64 {
        let mut charged = 0;
        self.update(now, |tat, interval, depth, now| {
            // Deepest allowed: empty, then `max_debt` more.
            let floor = now.saturating_add(depth.saturating_add(max_debt).saturating_mul(interval));
            let to = tat
                .max(now)
                .saturating_add(n.saturating_mul(interval))
                .min(floor)
                .max(tat);
            charged = (to - tat.max(now).min(to))
                .checked_div(interval)
                .unwrap_or(0);
            to
        });
        charged
    }

    /// One CAS loop of `f(tat, interval, depth, now) -> tat`.
    fn update(&self, now: Nanos, mut f: impl FnMut(u64, u64, u64, u64) -> u64) {
        let now = ticks(now);
        let mut s = self.word.load();
        let mut p = self.params(s);
        loop {
            let tat = f(s.tat, p.interval, p.depth, now);
            if tat == s.tat {
                return;
            }
            match self.word.compare_exchange(s, State { tat, ..s }) {
                Ok(()) => return,
                Err(actual) => {
                    if actual.generation != s.generation {
                        p = self.params(actual);
                    }
                    s = actual;
                }
            }
        }
    }

    /// How long until `n` tokens can be taken, if nobody else takes any;
    /// `None` when never (no rate, or `n` deeper than the bucket).
    pub fn time_until(&self, n: u64, now: Nanos) -> Option<Nanos> {
        let (s, p) = self.look();
        if p.interval == 0 || n > p.depth {
            return None;
        }
        let now = ticks(now);
        let ready = s.tat.max(now).saturating_add(n.saturating_mul(p.interval));
        let limit = now.saturating_add(p.depth.saturating_mul(p.interval));
        Some(ready.saturating_sub(limit).div_ceil(TICKS_PER_NANO))
    }

    /// Refill rate in tokens/s as set (0 when the pool has no rate); the
    /// bucket refills at most this fast.
    pub fn rate(&self) -> f64 {
        self.look().1.nominal
    }

    /// The bucket at `now`, from one consistent look (what a denial
    /// reports: one look per pool, not one per figure).
    pub fn outlook(&self, now: Nanos) -> Outlook {
        let (s, p) = self.look();
        let now = ticks(now);
        Outlook {
            available: available_at(s.tat, p, now),
            fill: fill(s.tat, p, now),
            rate: rate_of(p.interval),
            depth: p.depth,
        }
    }

    /// Tokens owed now (0 unless a debit put the bucket below empty).
    pub fn debt(&self, now: Nanos) -> u64 {
        let fill = self.outlook(now).fill;
        if fill < 0.0 { (-fill).ceil() as u64 } else { 0 }
    }

    pub fn depth(&self) -> u64 {
        self.look().1.depth
    }

    /// Changes rate and depth, keeping the tokens held (capped at the new
    /// depth) and any debt; a pool that had no rate starts empty. Never
    /// creates tokens, so resizing cannot break the capacity invariant.
    /// Takes go on meanwhile; resizes are serialized among themselves.
    pub fn set_rate(&self, rate: f64, depth: u64, now: Nanos) {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = ticks(now);
        let new = Params::new(rate, depth);
        let mut s = self.word.load();
        // Only writers change the generation, and we hold the writer lock:
        // `s.generation` stays put, and so does its slot.
        let old = self.params(s);
        let next = s.generation + 1;
        self.slots[(next & 1) as usize].write(new);
        loop {
            let tat = retarget(s.tat, old, new, now);
            match self.word.compare_exchange(
                s,
                State {
                    tat,
                    generation: next,
                },
            ) {
                Ok(()) => return,
                Err(actual) => s = actual,
            }
        }
    }
}

/// The TAT that holds the same fill under `new` as `tat` holds under `old`
/// at `now`, capped at the new depth; a pool that had no rate starts empty.
fn retarget(tat: u64, old: Params, new: Params, now: u64) -> u64 {
    if new.interval == 0 {
        return now;
    }
    let fill = if old.interval == 0 {
        0.0
    } else {
        fill(tat, old, now)
    };
    let fill = fill.min(new.depth as f64);
    let backlog = ((new.depth as f64 - fill) * new.interval as f64).ceil();
    // f64 → u64 saturates: a debt beyond 2^64 ticks stays a saturated TAT.
    now.saturating_add(backlog as u64)
}

/// Fill at `now` in tokens, negative when in debt.
fn fill(tat: u64, p: Params, now: u64) -> f64 {
    if p.interval == 0 {
        return 0.0;
    }
    let backlog = tat.saturating_sub(now) as f64;
    p.depth as f64 - backlog / p.interval as f64
}

fn rate_of(interval: u64) -> f64 {
    match interval {
        0 => 0.0,
        i => TICKS_PER_SEC / i as f64,
    }
}

#[inline]
fn available_at(tat: u64, p: Params, now: u64) -> u64 {
    if p.interval == 0 {
        return 0;
    }
    let backlog = tat.saturating_sub(now);
    let tau = p.depth.saturating_mul(p.interval);
    if backlog == 0 && tau < u64::MAX {
        // Full: no division (the common case for a tenant under its rate).
        return p.depth;
    }
    if backlog >= tau {
        0
    } else {
        (tau - backlog) / p.interval
    }
}

#[cfg(test)]
#[path = "bucket_tests.rs"]
mod tests;
