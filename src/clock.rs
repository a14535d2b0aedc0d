//! Time as a value. Every function of time in the core takes `now` from a
//! [`Clock`], so the daemon runs on the system clock while tests and the
//! simulator drive the same code with a [`ManualClock`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

/// Nanoseconds since the clock's own epoch (its creation). Monotonic.
pub type Nanos = u64;

pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A monotonic source of [`Nanos`].
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Nanos;

    /// Wall-clock time at `at` (events and forecast points are in it).
    fn wall(&self, at: Nanos) -> SystemTime;

    /// Resolves once `now() >= at`: how background tasks (the waiter
    /// dispatchers, the lease reaper) wait, so tests drive them with a
    /// [`ManualClock`] instead of real time.
    fn sleep_until(&self, at: Nanos) -> Sleep<'_>;
}

/// A [`Clock::sleep_until`] in progress.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

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

    fn sleep_until(&self, at: Nanos) -> Sleep<'_> {
        let wait = Duration::from_nanos(at.saturating_sub(self.now()));
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told to: tests and the simulator.
pub struct ManualClock {
    now: AtomicU64,
    /// Wakes sleepers when the clock moves.
    moved: Notify,
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
            moved: Notify::new(),
            wall_epoch,
        }
    }

    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(duration_to_nanos(by), Ordering::SeqCst);
        self.moved.notify_waiters();
    }

    pub fn set(&self, to: Nanos) {
        self.now.fetch_max(to, Ordering::SeqCst);
        self.moved.notify_waiters();
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

    fn sleep_until(&self, at: Nanos) -> Sleep<'_> {
        Box::pin(async move {
            loop {
                // Registered before the check: a move in between still
                // wakes us (`notify_waiters` reaches created futures).
                let moved = self.moved.notified();
                if self.now() >= at {
                    return;
                }
                moved.await;
            }
        })
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

    #[tokio::test]
    async fn a_manual_sleep_ends_when_the_clock_passes_its_time() {
        let clock = std::sync::Arc::new(ManualClock::new(0));
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(1_000).await })
        };
        clock.advance(Duration::from_nanos(999));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "999 ns is before 1000");
        clock.advance(Duration::from_nanos(1));
        sleeper.await.unwrap();
        clock.sleep_until(5).await; // already past: at once
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }
}
