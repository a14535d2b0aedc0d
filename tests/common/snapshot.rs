//! A mirror of the history snapshot's layout (`src/planner/snapshot.rs`,
//! `history.rs`, `ring.rs`) with every field public, so a test can change
//! one field of a genuine snapshot. [`read`] then [`write`] of a genuine
//! file gives back the same bytes (checked in `tests/parsers.rs`), so the
//! mirror follows the format.

use serde::{Deserialize, Serialize};

/// Magic and format version, kept as read.
const HEADER: usize = 16 + 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ring {
    pub buf: Vec<f32>,
    pub head: usize,
    pub cap: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    pub tick_demand: Ring,
    pub tick_granted: Ring,
    pub tick_arrivals: Ring,
    pub minute_demand: Ring,
    pub minute_arrivals: Ring,
    pub minute_hold: Ring,
    pub quarter_demand: Ring,
    pub acc_demand: f64,
    pub acc_arrivals: f64,
    pub acc_ticks: u32,
    pub acc_hold: f64,
    pub acc_holds: u32,
    pub acc_quarter: f64,
    pub acc_minutes: u32,
    pub ticks: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Series {
    pub tenant: String,
    pub resource: String,
    pub history: History,
}

/// A snapshot's header and series.
pub struct Snapshot {
    pub header: Vec<u8>,
    pub series: Vec<Series>,
}

pub fn read(bytes: &[u8]) -> Snapshot {
    Snapshot {
        header: bytes[..HEADER].to_vec(),
        series: postcard::from_bytes(&bytes[HEADER..]).expect("a genuine snapshot"),
    }
}

pub fn write(snapshot: &Snapshot) -> Vec<u8> {
    let mut bytes = snapshot.header.clone();
    bytes.extend(postcard::to_stdvec(&snapshot.series).unwrap());
    bytes
}

/// Writes a genuine snapshot into `dir` with the library's own writer: one
/// series, web/api, of `ticks` ticks at `tpm` a minute whose demand, grants
/// and arrivals at tick `t` are `rate(t)` per second.
pub fn save_web_api(dir: &std::path::Path, ticks: u64, tpm: u32, mut rate: impl FnMut(u64) -> f64) {
    use prescient::planner::{history, snapshot};
    let mut h = history::History::default();
    for t in 0..ticks {
        let r = rate(t);
        let s = history::Sample {
            demand: r,
            granted: r,
            arrivals: r,
            hold: None,
        };
        h.record(s, tpm);
    }
    let series = [snapshot::SeriesRef {
        tenant: "web",
        resource: "api",
        history: &h,
    }];
    snapshot::save(dir, &series).unwrap();
}
