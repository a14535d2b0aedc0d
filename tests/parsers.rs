//! The policy and trace parsers and the history snapshot loader take
//! input from outside: whatever the bytes, they answer Ok or a reasoned
//! error, never a panic; and a history the loader accepts never panics in
//! use.

mod common;

use std::sync::LazyLock;

use common::snapshot as mirror;
use prescient::planner::history::{History, Sample};
use prescient::planner::snapshot::{self, SeriesRef};
use prescient::policy::{EMBEDDED_POLICY, Policy};
use prescient::sim::Trace;
use proptest::prelude::*;

/// The example policy with a few bytes overwritten, inserted or removed:
/// close enough to YAML to reach deep into the parser and the validator.
fn mutated_policy() -> impl Strategy<Value = String> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8);
    edits.prop_map(|edits| {
        let mut bytes = EMBEDDED_POLICY.as_bytes().to_vec();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i.min(bytes.len()), byte),
                _ if i < bytes.len() => {
                    bytes.remove(i);
                }
                _ => {}
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn trace_text() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        "[0-9]{1,6}(\\.[0-9]{1,3})?",
        "-?[0-9e.+-]{1,8}",
        "2026-11-2[0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z",
        "(checkout|search|zed|api|db_queries|)",
        ".{0,6}",
    ];
    let row = prop::collection::vec(field, 0..6).prop_map(|f| f.join(","));
    prop::collection::vec(row, 0..20)
        .prop_map(|rows| format!("timestamp,tenant,resource,amount\n{}", rows.join("\n")))
}

/// A snapshot as the daemon writes it: a young series, and one whose tick
/// rings are full and have wrapped.
static GENUINE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let histories: Vec<History> = [150, 3_700]
        .into_iter()
        .map(|ticks| {
            let mut h = History::default();
            for i in 0..ticks {
                let sample = Sample {
                    demand: (i % 17) as f64,
                    granted: 1.0,
                    arrivals: 2.0,
                    hold: (i % 3 == 0).then_some(0.25),
                };
                h.record(sample, 60);
            }
            h
        })
        .collect();
    let series: Vec<SeriesRef<'_>> = histories
        .iter()
        .map(|history| SeriesRef {
            tenant: "checkout",
            resource: "db_queries",
            history,
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    snapshot::save(dir.path(), &series).unwrap();
    std::fs::read(snapshot::path(dir.path())).unwrap()
});

/// Loads `bytes` as the daemon does; whatever it accepts is then used as
/// the planner uses a history: ticks recorded, rings read.
fn load_and_use(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(snapshot::path(dir.path()), bytes).unwrap();
    match snapshot::load(dir.path()) {
        Ok(loaded) => {
            for mut s in loaded.unwrap() {
                let h = &mut s.history;
                for tpm in [1, 60, 60, 7] {
                    h.record(Sample::default(), tpm);
                }
                for ring in [
                    &h.tick_demand,
                    &h.tick_granted,
                    &h.tick_arrivals,
                    &h.minute_demand,
                    &h.minute_arrivals,
                    &h.minute_hold,
                    &h.quarter_demand,
                ] {
                    let _ = (ring.tail(usize::MAX), ring.tail(60), ring.last());
                }
                let _ = (h.recent_hold(), h.memory(), h.ticks / 60);
            }
        }
        Err(e) => prop_assert!(e.to_string().contains("history.snapshot"), "{e}"),
    }
    Ok(())
}

/// One field of a series (first of the pair) set to a value close to a
/// bound, or to any value.
#[derive(Debug, Clone)]
enum Edit {
    Head(usize, usize),
    Cap(usize, usize),
    Len(usize, usize),
    Sample(usize, f32),
    AccTicks(u32),
    AccHolds(u32),
    AccMinutes(u32),
    Ticks(u64),
    AccDemand(f64),
}

fn near_bounds() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(599),
        Just(600),
        Just(601),
        Just(1_344),
        Just(1_440),
        Just(5_760),
        Just(20_160),
        Just(1_000_000),
        Just(usize::MAX),
        any::<usize>(),
        0..200usize,
    ]
}

fn edit() -> impl Strategy<Value = (usize, Edit)> {
    let ring = 0..7usize;
    let field = prop_oneof![
        (ring.clone(), near_bounds()).prop_map(|(r, v)| Edit::Head(r, v)),
        (ring.clone(), near_bounds()).prop_map(|(r, v)| Edit::Cap(r, v)),
        (ring.clone(), 0..4_000usize).prop_map(|(r, v)| Edit::Len(r, v)),
        (ring, any::<f32>()).prop_map(|(r, v)| Edit::Sample(r, v)),
        any::<u32>().prop_map(Edit::AccTicks),
        any::<u32>().prop_map(Edit::AccHolds),
        (0..20u32).prop_map(Edit::AccMinutes),
        any::<u64>().prop_map(Edit::Ticks),
        any::<f64>().prop_map(Edit::AccDemand),
    ];
    (0..2usize, field)
}

fn apply(snap: &mut mirror::Snapshot, (series, edit): (usize, Edit)) {
    let h = &mut snap.series[series].history;
    match edit {
        Edit::Head(r, v) => rings(h)[r].head = v,
        Edit::Cap(r, v) => rings(h)[r].cap = v,
        Edit::Len(r, v) => rings(h)[r].buf.resize(v, 1.0),
        Edit::Sample(r, v) => {
            if let Some(x) = rings(h)[r].buf.first_mut() {
                *x = v;
            }
        }
        Edit::AccTicks(v) => h.acc_ticks = v,
        Edit::AccHolds(v) => h.acc_holds = v,
        Edit::AccMinutes(v) => h.acc_minutes = v,
        Edit::Ticks(v) => h.ticks = v,
        Edit::AccDemand(v) => h.acc_demand = v,
    }
}

fn rings(h: &mut mirror::History) -> [&mut mirror::Ring; 7] {
    [
        &mut h.tick_demand,
        &mut h.tick_granted,
        &mut h.tick_arrivals,
        &mut h.minute_demand,
        &mut h.minute_arrivals,
        &mut h.minute_hold,
        &mut h.quarter_demand,
    ]
}

#[test]
fn the_snapshot_mirror_follows_the_format() {
    let snap = mirror::read(&GENUINE);
    assert_eq!(mirror::write(&snap), *GENUINE);
    assert_eq!(snap.series[1].history.tick_demand.buf.len(), 600);
    assert_eq!(snap.series[1].history.tick_demand.head, 100);
    load_and_use(&GENUINE).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if std::env::var_os("CI").is_some() { 2048 } else { 512 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_policy_parser_never_panics(yaml in mutated_policy()) {
        if let Err(e) = Policy::load_str(&yaml, "fuzz.yaml") {
            prop_assert!(!e.problems.is_empty());
            prop_assert!(e.to_string().starts_with("fuzz.yaml: "));
        }
    }

    #[test]
    fn the_policy_parser_never_panics_on_any_text(yaml in ".{0,200}") {
        let _ = Policy::load_str(&yaml, "fuzz.yaml");
    }

    #[test]
    fn the_trace_parser_never_panics(csv in trace_text(), raw in prop::collection::vec(any::<u8>(), 0..200)) {
        let policy = Policy::load_str(EMBEDDED_POLICY, "p").unwrap();
        if let Err(e) = Trace::read(csv.as_bytes(), "fuzz.csv", &policy) {
            prop_assert!(e.to_string().starts_with("fuzz.csv:"));
        }
        let _ = Trace::read(raw.as_slice(), "raw.csv", &policy);
    }

    #[test]
    fn the_snapshot_loader_never_panics_on_mutated_bytes(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
        raw in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = GENUINE.clone();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => {
                    bytes.remove(i);
                }
            }
        }
        load_and_use(&bytes)?;
        let mut foreign = GENUINE[..20].to_vec();
        foreign.extend(raw);
        load_and_use(&foreign)?;
    }

    #[test]
    fn the_snapshot_loader_never_panics_on_any_field_value(edits in prop::collection::vec(edit(), 1..4)) {
        let mut snap = mirror::read(&GENUINE);
        for e in edits {
            apply(&mut snap, e);
        }
        load_and_use(&mirror::write(&snap))?;
    }
}
