//! The operations interleaved on the core: Acquire, Release, Report,
//! reserve resizes, time steps, reaps, planner ticks and reloads.

use proptest::prelude::*;

#[derive(Debug, Clone)]
pub enum Op {
    Acquire {
        tenant: usize,
        rate: bool,
        amount: u64,
        lease: bool,
    },
    Release {
        pick: usize,
    },
    Report {
        pick: usize,
        used_pct: u64,
    },
    Reserve {
        tenant: usize,
        rate: bool,
        size: u64,
    },
    Advance {
        ms: u64,
    },
    Reap,
    /// A planner tick: fold, forecast, resize reserves, spill.
    Plan,
    /// Puts the other policy of the case in force.
    Reload,
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..5usize, any::<bool>(), 1..400u64, any::<bool>())
            .prop_map(|(tenant, rate, amount, lease)| Op::Acquire { tenant, rate, amount, lease }),
        2 => (0..64usize).prop_map(|pick| Op::Release { pick }),
        2 => (0..64usize, 0..200u64).prop_map(|(pick, used_pct)| Op::Report { pick, used_pct }),
        1 => (0..5usize, any::<bool>(), 0..2000u64)
            .prop_map(|(tenant, rate, size)| Op::Reserve { tenant, rate, size }),
        3 => (0..1500u64).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Reap),
        2 => Just(Op::Plan),
        1 => Just(Op::Reload),
    ]
}
