//! The state word of a [`Bucket`](super::Bucket): a theoretical arrival time
//! and a parameter generation, read and compare-and-swapped as one value.
//!
//! In the daemon it is one 128-bit atomic (`cmpxchg16b` on x86_64, `casp` or
//! `ldxp/stxp` on aarch64, via `portable-atomic`, which detects them at run
//! time). Under `--cfg loom` it is a loom `AtomicU64` holding the generation
//! in the top 16 bits and the time in the rest, so loom explores the same
//! acquire/release orderings on a word it models; loom tests keep both
//! numbers small enough to fit (checked).

/// A (tat, generation) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct State {
    /// Theoretical arrival time, in bucket ticks.
    pub tat: u64,
    /// Bumped by every parameter change; never wraps (2^64 resizes).
    pub generation: u64,
}

#[cfg(not(loom))]
mod imp {
    use portable_atomic::{AtomicU128, Ordering};

    use super::State;

    #[derive(Debug)]
    pub(in crate::pool) struct Word(AtomicU128);

    fn pack(s: State) -> u128 {
        (u128::from(s.generation) << 64) | u128::from(s.tat)
    }

    fn unpack(w: u128) -> State {
        State {
            tat: w as u64,
            generation: (w >> 64) as u64,
        }
    }

    impl Word {
        pub fn new(s: State) -> Self {
            Self(AtomicU128::new(pack(s)))
        }

        #[inline]
        pub fn load(&self) -> State {
            unpack(self.0.load(Ordering::Acquire))
        }

        /// Replaces `current` by `new` if the word still holds `current`;
        /// otherwise returns what it holds.
        #[inline]
        pub fn compare_exchange(&self, current: State, new: State) -> Result<(), State> {
            self.0
                .compare_exchange_weak(
                    pack(current),
                    pack(new),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .map(drop)
                .map_err(unpack)
        }
    }
}

#[cfg(loom)]
mod imp {
    use loom::sync::atomic::{AtomicU64, Ordering};

    use super::State;

    const TAT_BITS: u32 = 48;

    #[derive(Debug)]
    pub(in crate::pool) struct Word(AtomicU64);

    fn pack(s: State) -> u64 {
        assert!(
            s.tat < 1 << TAT_BITS && s.generation < 1 << (64 - TAT_BITS),
            "loom tests keep the word small: {s:?}"
        );
        (s.generation << TAT_BITS) | s.tat
    }

    fn unpack(w: u64) -> State {
        State {
            tat: w & ((1 << TAT_BITS) - 1),
            generation: w >> TAT_BITS,
        }
    }

    impl Word {
        pub fn new(s: State) -> Self {
            Self(AtomicU64::new(pack(s)))
        }

        pub fn load(&self) -> State {
            unpack(self.0.load(Ordering::Acquire))
        }

        pub fn compare_exchange(&self, current: State, new: State) -> Result<(), State> {
            self.0
                .compare_exchange(
                    pack(current),
                    pack(new),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .map(drop)
                .map_err(unpack)
        }
    }
}

pub(super) use imp::Word;
