//! Time as a value. Every function of time in the core takes `now` from a
//! [`Clock`], so the daemon runs on the system clock while tests and the
//! simulator drive the same code with a [`ManualClock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Nanoseconds since the clock's own epoch (its creation). Monotonic.
pub type Nanos = u64;

pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A monotonic source of [`Nanos`].
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Nanos;

    /// Wall-clock time at `at` (events and forecast points are in it).
    fn wall(&self, at: Nanos) -> SystemTime;
}

/// The real clock: a TSC-backed monotonic clock (`quanta`), a few ns a read,
/// which matters on a hot path that must decide in well under 100 ns.
pub struct SystemClock {
    clock: quanta::Clock,
    epoch: u64,
    wall_epoch: SystemTime,
}

impl SystemClock {
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let epoch = clock.raw();
        Self {
            clock,
            epoch,
            wall_epoch: SystemTime::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Nanos {
        self.clock.delta_as_nanos(self.epoch, self.clock.raw())
    }

    fn wall(&self, at: Nanos) -> SystemTime {
        self.wall_epoch + Duration::from_nanos(at)
    }
}

/// A clock that moves only when told to: tests and the simulator.
pub struct ManualClock {
    now: AtomicU64,
    /// Wall-clock time at `now == 0`.
    wall_epoch: SystemTime,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(0)
    }
}

impl ManualClock {
    pub fn new(start: Nanos) -> Self {
        Self::with_wall_epoch(start, SystemTime::UNIX_EPOCH)
    }

    /// A clock whose `0` is `wall_epoch` on the wall clock.
    pub fn with_wall_epoch(start: Nanos, wall_epoch: SystemTime) -> Self {
        Self {
            now: AtomicU64::new(start),
            wall_epoch,
        }
    }

    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(duration_to_nanos(by), Ordering::SeqCst);
    }

    pub fn set(&self, to: Nanos) {
        self.now.fetch_max(to, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Nanos {
        self.now.load(Ordering::SeqCst)
    }

    fn wall(&self, at: Nanos) -> SystemTime {
        self.wall_epoch + Duration::from_nanos(at)
    }
}

/// Saturating conversion: durations beyond ~584 years clamp to `u64::MAX`.
pub fn duration_to_nanos(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward_when_told() {
        let clock = ManualClock::new(5);
        assert_eq!(clock.now(), 5);
        clock.advance(Duration::from_millis(2));
        assert_eq!(clock.now(), 2_000_005);
        clock.set(1);
        assert_eq!(clock.now(), 2_000_005, "set never moves backwards");
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }
}
