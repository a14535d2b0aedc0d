//! `history_memory`: bytes of one series' history at its bound.

use criterion::Criterion;
use prescient::planner::history::{History, QUARTER, QUARTERS_KEPT, Sample, TICKS_KEPT};

use crate::demand::Rng;
use crate::full_run;
use crate::heap::heap_growth;

/// One history filled to its bound at a 1 s tick (every tier full: 14 days
/// of quarter hours), and the same history after a postcard round trip (what a
/// restored snapshot holds).
pub fn history_memory(_: &mut Criterion) {
    let ticks = if full_run() {
        QUARTERS_KEPT as u64 * QUARTER as u64 * 60
    } else {
        TICKS_KEPT as u64 * 2
    };
    let (h, heap) = heap_growth(|| {
        let mut h = History::default();
        let mut rng = Rng(7);
        for _ in 0..ticks {
            let v = 100.0 + 10.0 * rng.signed();
            h.record(
                Sample {
                    demand: v,
                    granted: v,
                    arrivals: v / 10.0,
                    ..Default::default()
                },
                60,
            );
        }
        h
    });
    let reported = h.memory();
    let bytes = postcard::to_stdvec(&h).expect("a history serializes");
    let (restored, restored_heap) =
        heap_growth(|| postcard::from_bytes::<History>(&bytes).expect("a history deserializes"));
    assert_eq!(restored, h);
    eprintln!(
        "history_memory: at the bound ({} tick samples, {} minute samples, {} quarter hours): \
         History::memory() = {reported} B ({:.1} KiB); live heap + struct = {} B ({:.1} KiB); \
         restored from a snapshot: {} B ({:.1} KiB)",
        h.tick_demand.len(),
        h.minute_demand.len(),
        h.quarter_demand.len(),
        reported as f64 / 1024.0,
        heap as usize + std::mem::size_of::<History>(),
        (heap as usize + std::mem::size_of::<History>()) as f64 / 1024.0,
        restored_heap as usize + std::mem::size_of::<History>(),
        (restored_heap as usize + std::mem::size_of::<History>()) as f64 / 1024.0,
    );
}
