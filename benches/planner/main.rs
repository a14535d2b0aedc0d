//! Costs of the planner (DESIGN §6; issue 4, point 10):
//!
//! * `history_memory`: bytes of one series' history at its bound, as
//!   `History::memory()` reports them and as the allocator sees them.
//! * `acquire_p99`: latency of single `try_acquire` calls, each timed on its
//!   own, with no planner and while a second thread fits models without a
//!   pause (refits at full budget). Not a criterion measurement: 1,000,000
//!   calls per run, runs alternating, percentiles printed.
//! * `fit`: one `model::fit` (fit + predict) by model and history length,
//!   on synthetic per-minute demand: fits per second per core. Before it,
//!   a check (not a timing) of how often season detection finds a known
//!   60-minute cycle.
//! * `fit_alternative`: cheaper fits for hour + day seasons, straight on
//!   augurs, each with its forecast error (what the planner could run).
//! * `fit_choice`: a refit that scores the candidates by backtest against
//!   one that refits the kept choice, and the cost amortised over the
//!   minutes a choice is kept (series kept fresh each minute per core).
//! * `planner_tick`, `planner_tick_metrics`: one `Planner::tick` with 1,000
//!   and 10,000 series after some minutes of history, refits on the worker
//!   thread; without metrics (tests, simulator) and feeding `Metrics` as the
//!   daemon does.
//!
//! `cargo bench --bench planner`; results and how to read them are in
//! `docs/performance.md`. Run without `--bench` (e.g. `cargo test
//! --benches`), every group shrinks to a smoke test.

mod acquire_p99;
mod choice;
mod demand;
mod fit;
mod heap;
mod memory;
mod report;
mod tick;

use criterion::{criterion_group, criterion_main};

/// `cargo bench` passes `--bench`; without it (`cargo test --benches`)
/// every group runs a small smoke version.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Minutes forecast per fit, as the planner asks with its defaults
/// (`refit_every` 60 s, horizon 30 s): `(1 + 1 + 5) × 2`.
pub const STEPS: usize = 14;

criterion_group!(
    benches,
    memory::history_memory,
    acquire_p99::acquire_p99,
    fit::fits,
    fit::fit_alternatives,
    choice::fit_choices,
    tick::planner_tick
);
criterion_main!(benches);
