//! History snapshots in `--state-dir`, so a restart does not forget the
//! daily pattern (DESIGN §6). The file is a magic header, a format version
//! and a postcard body; it is written to a temporary file, synced, then
//! renamed over the old one, so a crash mid-write leaves the previous
//! snapshot intact. A corrupt, truncated or foreign file, or one whose
//! histories break an invariant (a ring's bound, its head), is reported and
//! ignored: the daemon starts with empty history rather than not at all.
//! A format 2 snapshot (before the history's tiers) is read and upgraded:
//! the newest samples of each ring move into the tiers.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::history::History;
use super::history::v2::HistoryV2;
use super::ring::Invalid;
use crate::echo::Echo;

const MAGIC: &[u8; 16] = b"prescient-hist\0\0";
/// Bump on any change to the serialized types (and read the old one).
pub const VERSION: u32 = 3;
/// The format before the history's tiers, still read.
const V2: u32 = 2;
const FILE: &str = "history.snapshot";

/// The saved history of one (tenant, resource).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedSeries {
    pub tenant: String,
    pub resource: String,
    pub history: History,
}

/// A series as format 2 saved it.
#[derive(Debug, Deserialize)]
struct SavedSeriesV2 {
    tenant: String,
    resource: String,
    history: HistoryV2,
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}: cannot read: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: not a prescient history snapshot")]
    Foreign(PathBuf),
    #[error("{0}: snapshot format version {1}, this build reads versions {V2} and {VERSION}")]
    Version(PathBuf, u32),
    #[error("{0}: corrupt snapshot: {1}")]
    Corrupt(PathBuf, postcard::Error),
    #[error(
        "{file}: invalid snapshot: series {:?}/{:?}: {why}",
        Echo(tenant),
        Echo(resource)
    )]
    Invalid {
        file: PathBuf,
        tenant: String,
        resource: String,
        why: Invalid,
    },
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// A series to save, borrowed (serializes exactly like [`SavedSeries`]).
#[derive(Debug, Serialize)]
pub struct SeriesRef<'a> {
    pub tenant: &'a str,
    pub resource: &'a str,
    pub history: &'a History,
}

/// Writes the snapshot atomically (temp file, fsync, rename); returns its
/// size in bytes.
pub fn save(dir: &Path, series: &[SeriesRef<'_>]) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let body = postcard::to_stdvec(series).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(&VERSION.to_le_bytes())?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path(dir))?;
    Ok(MAGIC.len() + 4 + body.len())
}

/// Reads the snapshot; `Ok(None)` when there is none yet.
pub fn load(dir: &Path) -> Result<Option<Vec<SavedSeries>>, SnapshotError> {
    let file = path(dir);
    match std::fs::read(&file) {
        Ok(bytes) => decode(file, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SnapshotError::Io(file, e)),
    }
}

/// Decodes and checks the bytes of a snapshot `file`: every history must
/// pass [`History::check`], or the whole snapshot is refused.
fn decode(file: PathBuf, bytes: &[u8]) -> Result<Vec<SavedSeries>, SnapshotError> {
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(SnapshotError::Foreign(file));
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&bytes[MAGIC.len()..MAGIC.len() + 4]);
    let version = u32::from_le_bytes(version);
    let body = &bytes[MAGIC.len() + 4..];
    let series: Vec<SavedSeries> = match version {
        VERSION => {
            postcard::from_bytes(body).map_err(|e| SnapshotError::Corrupt(file.clone(), e))?
        }
        V2 => upgrade(&file, body)?,
        _ => return Err(SnapshotError::Version(file, version)),
    };
    if let Some((s, why)) = series
        .iter()
        .find_map(|s| s.history.check().err().map(|why| (s, why)))
    {
        return Err(SnapshotError::Invalid {
            file,
            tenant: s.tenant.clone(),
            resource: s.resource.clone(),
            why,
        });
    }
    Ok(series)
}

/// Reads a format 2 body into today's histories.
fn upgrade(file: &Path, body: &[u8]) -> Result<Vec<SavedSeries>, SnapshotError> {
    let old: Vec<SavedSeriesV2> =
        postcard::from_bytes(body).map_err(|e| SnapshotError::Corrupt(file.to_path_buf(), e))?;
    old.into_iter()
        .map(|s| match s.history.upgrade() {
            Ok(history) => Ok(SavedSeries {
                tenant: s.tenant,
                resource: s.resource,
                history,
            }),
            Err(why) => Err(SnapshotError::Invalid {
                file: file.to_path_buf(),
                tenant: s.tenant,
                resource: s.resource,
                why,
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::history::Sample;

    fn series() -> Vec<SavedSeries> {
        let mut history = History::default();
        for i in 0..150 {
            history.record(
                Sample {
                    demand: i as f64,
                    granted: 1.0,
                    arrivals: 2.0,
                    hold: None,
                },
                60,
            );
        }
        vec![SavedSeries {
            tenant: "t".into(),
            resource: "r".into(),
            history,
        }]
    }

    fn refs(s: &[SavedSeries]) -> Vec<SeriesRef<'_>> {
        s.iter()
            .map(|s| SeriesRef {
                tenant: &s.tenant,
                resource: &s.resource,
                history: &s.history,
            })
            .collect()
    }

    #[test]
    fn a_snapshot_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none(), "none yet");
        save(dir.path(), &refs(&series())).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap(), series());
        assert!(!dir.path().join("history.snapshot.tmp").exists());
    }

    #[test]
    fn corrupt_foreign_and_future_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &refs(&series())).unwrap();
        let file = path(dir.path());
        let good = std::fs::read(&file).unwrap();

        std::fs::write(&file, &good[..good.len() / 2]).unwrap();
        assert!(matches!(load(dir.path()), Err(SnapshotError::Corrupt(..))));

        std::fs::write(&file, b"{\"json\": true}").unwrap();
        assert!(matches!(load(dir.path()), Err(SnapshotError::Foreign(..))));

        let mut future = good.clone();
        future[MAGIC.len()] = 99;
        std::fs::write(&file, &future).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
    }

    #[test]
    fn a_snapshot_with_a_broken_history_is_refused_naming_series_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = series();
        s.push(SavedSeries {
            tenant: "x".repeat(1_000),
            ..s[0].clone()
        });
        s[1].history.tick_demand = crate::planner::ring::Ring::new(0);
        save(dir.path(), &refs(&s)).unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, SnapshotError::Invalid { .. }), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains("invalid snapshot: series \"xxxx")
                && err.contains("…(1000 bytes)/\"r\": tick_demand.cap: 0, but this ring keeps 600"),
            "{err}"
        );
    }

    #[test]
    fn a_format_2_snapshot_is_upgraded_not_forgotten() {
        use crate::planner::history::v2;
        let dir = tempfile::tempdir().unwrap();
        let write = |series: &[(&str, &str, HistoryV2)]| {
            let mut bytes = MAGIC.to_vec();
            bytes.extend(V2.to_le_bytes());
            bytes.extend(postcard::to_stdvec(series).unwrap());
            std::fs::write(path(dir.path()), bytes).unwrap();
        };
        let days = v2::sample(5 * 1440);
        write(&[("t", "r", days.clone())]);
        let loaded = load(dir.path()).unwrap().unwrap();
        assert_eq!(
            (loaded[0].tenant.as_str(), loaded[0].resource.as_str()),
            ("t", "r")
        );
        assert_eq!(loaded[0].history, days.clone().upgrade().unwrap());

        let mut broken = v2::sample(10);
        broken.minute_hold.push(f32::NAN);
        write(&[("t", "r", v2::sample(10)), ("u", "r", broken)]);
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.ends_with("invalid snapshot: series \"u\"/\"r\": minute_hold.buf[10]: NaN is not a finite rate >= 0"),
            "{err}"
        );
    }
}
