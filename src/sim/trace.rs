//! The simulator's input (DESIGN §7): CSV with the header
//! `timestamp,tenant,resource,amount`, one Acquire per row, timestamps in
//! seconds (fractional allowed) or RFC 3339, never going backwards. Read
//! whole and checked before anything runs, so a bad row is an error naming
//! its line and nothing is half-printed.
//!
//! Traces as exports have them: an `amount` of 0 is a quiet step (no
//! Acquire; its time passes and the forecast sees no demand), a gap between
//! timestamps is time in which nothing is asked, and with a spread each
//! row is an interval's total, replayed as requests over the interval
//! ([`super::spread`]).

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::clock::{Nanos, duration_to_nanos};
use crate::policy::Policy;

/// One step of the trace: an Acquire, or with `amount` 0 a quiet step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// Since the first row.
    pub at: Nanos,
    pub tenant: u32,
    pub resource: u32,
    pub amount: u64,
}

/// A checked trace with its names interned.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Wall-clock time of the first row (events in the policy use it).
    pub start: SystemTime,
    pub tenants: Vec<String>,
    pub resources: Vec<String>,
    pub rows: Vec<Row>,
}

/// Why a trace was refused: where and why.
#[derive(Debug, thiserror::Error)]
#[error("{origin}:{line}: {reason}")]
pub struct TraceError {
    pub origin: String,
    /// 1-based; the header is line 1.
    pub line: u64,
    pub reason: String,
}

const HEADER: [&str; 4] = ["timestamp", "tenant", "resource", "amount"];

impl Trace {
    /// Reads and checks a trace against the policy it will run under;
    /// with `spread`, each row is the total of the interval it starts.
    pub fn load(
        path: &Path,
        policy: &Policy,
        spread: Option<Duration>,
    ) -> Result<Self, TraceError> {
        let origin = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| TraceError {
            origin: origin.clone(),
            line: 0,
            reason: format!("cannot read: {e}"),
        })?;
        Self::read_spread(file, &origin, policy, spread)
    }

    /// One Acquire per row.
    pub fn read(
        input: impl std::io::Read,
        origin: &str,
        policy: &Policy,
    ) -> Result<Self, TraceError> {
        Self::read_spread(input, origin, policy, None)
    }

    /// With `spread` (> 0), each row is the total of the interval of that
    /// length it starts, replayed as one request per second of it; rows
    /// of one tenant and resource must then be at least that far apart.
    pub fn read_spread(
        input: impl std::io::Read,
        origin: &str,
        policy: &Policy,
        spread: Option<Duration>,
    ) -> Result<Self, TraceError> {
        let every = spread.map(|d| duration_to_nanos(d).max(1));
        let err = |line: u64, reason: String| TraceError {
            origin: origin.to_owned(),
            line,
            reason,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(input);
        let mut records = reader.records();
        let header = match records.next() {
            None => {
                return Err(err(
                    1,
                    "empty trace: expected the header timestamp,tenant,resource,amount".into(),
                ));
            }
            Some(r) => r.map_err(|e| err(1, e.to_string()))?,
        };
        if header.iter().collect::<Vec<_>>() != HEADER {
            return Err(err(
                1,
                format!(
                    "expected the header timestamp,tenant,resource,amount, got {:?}",
                    header.iter().collect::<Vec<_>>().join(",")
                ),
            ));
        }
        let mut trace = Trace {
            start: SystemTime::UNIX_EPOCH,
            tenants: Vec::new(),
            resources: Vec::new(),
            rows: Vec::new(),
        };
        let mut tenant_ids = std::collections::HashMap::new();
        let mut resource_ids = std::collections::HashMap::new();
        let mut last: Option<SystemTime> = None;
        // Per (tenant, resource): the start and line of its last interval.
        let mut interval_of = std::collections::HashMap::new();
        // Every report sums amounts in u64 (per tenant, per mode, per
        // tick): a trace whose total does not fit is refused here, where
        // the line can be named, not wrapped or panicked on later.
        let mut total: u64 = 0;
        for record in records {
            let record =
                record.map_err(|e| err(e.position().map_or(0, |p| p.line()), e.to_string()))?;
            let line = record.position().map_or(0, |p| p.line());
            if record.len() != 4 {
                return Err(err(
                    line,
                    format!("expected 4 fields, got {}", record.len()),
                ));
            }
            let at = parse_time(&record[0]).map_err(|r| err(line, format!("timestamp: {r}")))?;
            if let Some(prev) = last
                && at < prev
            {
                return Err(err(
                    line,
                    format!(
                        "timestamp: {:?} goes backwards (the previous row is {})",
                        &record[0],
                        humantime::format_rfc3339_nanos(prev)
                    ),
                ));
            }
            let tenant = &record[1];
            if !policy.tenants.contains_key(tenant) && policy.defaults.is_none() {
                return Err(err(
                    line,
                    format!("tenant: unknown tenant {tenant:?} and the policy has no defaults"),
                ));
            }
            let resource = &record[2];
            if !policy.resources.contains_key(resource) {
                return Err(err(
                    line,
                    format!("resource: unknown resource {resource:?}"),
                ));
            }
            let amount: u64 = record[3].parse().map_err(|_| {
                err(
                    line,
                    format!("amount: {:?} is not a whole number", &record[3]),
                )
            })?;
            total = total.checked_add(amount).ok_or_else(|| {
                err(
                    line,
                    format!(
                        "amount: {amount} takes the trace's total past {}, the most tokens \
                         a simulation can count",
                        u64::MAX
                    ),
                )
            })?;
            let first = *last.get_or_insert(at);
            if trace.rows.is_empty() {
                trace.start = first;
            }
            last = Some(at);
            let since = at.duration_since(trace.start).unwrap_or(Duration::ZERO);
            let tenant = intern(&mut tenant_ids, &mut trace.tenants, tenant);
            let resource = intern(&mut resource_ids, &mut trace.resources, resource);
            let at = duration_to_nanos(since);
            if let Some(every) = every
                && let Some(&(prev, prev_line)) = interval_of.get(&(tenant, resource))
                && at < prev + every
            {
                return Err(err(
                    line,
                    format!(
                        "timestamp: {:?} is inside the spread interval of line {prev_line} \
                         (the same tenant and resource): rows must be a spread apart",
                        &record[0]
                    ),
                ));
            }
            interval_of.insert((tenant, resource), (at, line));
            trace.rows.push(Row {
                at,
                tenant,
                resource,
                amount,
            });
        }
        if trace.rows.is_empty() {
            return Err(err(2, "the trace has a header but no rows".into()));
        }
        if let Some(every) = every {
            trace.rows = spread_rows(&trace.rows, every);
        }
        Ok(trace)
    }

    /// Seconds from the first row to the last.
    pub fn seconds(&self) -> f64 {
        self.rows.last().map_or(0.0, |r| r.at as f64 / 1e9)
    }
}

/// Every row as its interval's slots, in time order (stable: rows of one
/// instant keep the file's order).
fn spread_rows(rows: &[Row], every: Nanos) -> Vec<Row> {
    let mut out: Vec<Row> = rows
        .iter()
        .flat_map(|r| {
            super::spread::slots(r.at, r.amount, every).map(|(at, amount)| Row { at, amount, ..*r })
        })
        .collect();
    out.sort_by_key(|r| r.at);
    out
}

fn intern(
    ids: &mut std::collections::HashMap<String, u32>,
    names: &mut Vec<String>,
    name: &str,
) -> u32 {
    if let Some(&id) = ids.get(name) {
        return id;
    }
    let id = names.len() as u32;
    names.push(name.to_owned());
    ids.insert(name.to_owned(), id);
    id
}

/// Seconds since the Unix epoch (fractional allowed) or RFC 3339.
fn parse_time(s: &str) -> Result<SystemTime, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(format!("{s:?} must be a finite number of seconds >= 0"));
        }
        return Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d))
            .ok_or_else(|| format!("{s:?} is out of range"));
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?} is neither seconds nor RFC 3339 ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(defaults: bool) -> Policy {
        let d = if defaults {
            "defaults: { qos: bronze }\n"
        } else {
            ""
        };
        Policy::load_str(
            &format!(
                "resources: {{ api: {{ kind: rate, capacity: 10 }} }}\ntenants: {{ a: {{}} }}\n{d}"
            ),
            "p",
        )
        .unwrap()
    }

    fn read(csv: &str, defaults: bool) -> Result<Trace, String> {
        Trace::read(csv.as_bytes(), "t.csv", &policy(defaults)).map_err(|e| e.to_string())
    }

    #[test]
    fn seconds_and_rfc3339_rows_read_relative_to_the_first() {
        let t = read(
            "timestamp,tenant,resource,amount\n10.5,a,api,3\n1970-01-01T00:00:12Z,a,api,1\n12,b,api,2\n",
            true,
        )
        .unwrap();
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.rows[0].at, 0);
        assert_eq!(t.rows[1].at, 1_500_000_000);
        assert_eq!(t.tenants, ["a", "b"]);
        assert_eq!(t.seconds(), 1.5);
    }

    #[test]
    fn zero_rows_are_quiet_steps_and_gaps_are_kept() {
        let t = read(
            "timestamp,tenant,resource,amount\n0,a,api,3\n60,a,api,0\n3600,a,api,2\n",
            false,
        )
        .unwrap();
        let got: Vec<_> = t
            .rows
            .iter()
            .map(|r| (r.at / 1_000_000_000, r.amount))
            .collect();
        assert_eq!(got, [(0, 3), (60, 0), (3600, 2)]);
        assert_eq!(t.seconds(), 3600.0);
    }

    fn spread(csv: &str, every: Duration) -> Result<Trace, String> {
        Trace::read_spread(csv.as_bytes(), "t.csv", &policy(true), Some(every))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_spread_replays_each_row_over_its_interval_in_time_order() {
        let t = spread(
            "timestamp,tenant,resource,amount\n0,a,api,31\n0,b,api,0\n15,a,api,15\n",
            Duration::from_secs(15),
        )
        .unwrap();
        assert_eq!(t.rows.len(), 45);
        assert!(t.rows.windows(2).all(|w| w[0].at <= w[1].at));
        let total = |tenant: u32, from: u64, to: u64| -> u64 {
            let s = |r: &&Row| r.tenant == tenant && (from..to).contains(&(r.at / 1_000_000_000));
            t.rows.iter().filter(s).map(|r| r.amount).sum()
        };
        assert_eq!(total(0, 0, 15), 31);
        assert_eq!(total(0, 15, 30), 15);
        assert_eq!(total(1, 0, 30), 0);
        assert_eq!(t.seconds(), 29.0);
    }

    #[test]
    fn rows_closer_than_the_spread_name_the_line_and_the_earlier_one() {
        let got = spread(
            "timestamp,tenant,resource,amount\n0,a,api,1\n0,b,api,1\n30,a,api,1\n",
            Duration::from_secs(60),
        )
        .unwrap_err();
        assert!(
            got.starts_with("t.csv:4: timestamp: \"30\" is inside the spread interval of line 2"),
            "{got}"
        );
    }

    #[test]
    fn bad_input_names_the_line_and_the_reason() {
        let h = "timestamp,tenant,resource,amount\n";
        for (csv, expect) in [
            ("", "t.csv:1: empty trace"),
            (
                "time,who,what,n\n1,a,api,1\n",
                "t.csv:1: expected the header",
            ),
            (
                &format!("{h}1,a,api,1\nxx,a,api,1\n"),
                "t.csv:3: timestamp: \"xx\" is neither",
            ),
            (
                &format!("{h}5,a,api,1\n4,a,api,1\n"),
                "t.csv:3: timestamp: \"4\" goes backwards",
            ),
            (
                &format!("{h}1,a,api,-2\n"),
                "t.csv:2: amount: \"-2\" is not a whole number",
            ),
            (
                &format!("{h}1,a,api,18446744073709551615\n2,a,api,1\n"),
                "t.csv:3: amount: 1 takes the trace's total past 18446744073709551615",
            ),
            (
                &format!("{h}9e300,a,api,1\n"),
                "t.csv:2: timestamp: \"9e300\" is out of range",
            ),
            (
                &format!("{h}1,zed,api,1\n"),
                "t.csv:2: tenant: unknown tenant \"zed\"",
            ),
            (
                &format!("{h}1,a,disk,1\n"),
                "t.csv:2: resource: unknown resource \"disk\"",
            ),
            (
                &format!("{h}1,a,api\n"),
                "t.csv:2: expected 4 fields, got 3",
            ),
            (h, "t.csv:2: the trace has a header but no rows"),
        ] {
            let got = read(csv, false).unwrap_err();
            assert!(
                got.starts_with(expect),
                "{got:?} should start with {expect:?}"
            );
        }
    }
}
