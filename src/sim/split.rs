//! `--instances N --split …`: which simulated daemon each row of the trace
//! reaches, as a load balancer in front of N replicas (or N pods with a
//! sidecar each) would send it.
//!
//! * `round-robin`: row `i` goes to daemon `i mod N`, so every tenant is
//!   spread over every daemon (a plain L4/L7 balancer);
//! * `hash:tenant` / `hash:resource`: every row with the same value in
//!   that column goes to the same daemon (consistent routing by caller,
//!   or one shard per resource). The trace has no other columns.

use std::fmt;
use std::str::FromStr;

use super::trace::Trace;

/// The most simulated daemons one run may have: each is a whole core and
/// planner, and a larger number says more about a typo than a cluster.
pub const MAX_INSTANCES: usize = 1024;

/// A trace column rows can be routed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Tenant,
    Resource,
}

/// How rows are dealt to the daemons.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Split {
    #[default]
    RoundRobin,
    Hash(Column),
}

/// Why a `--split` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("split: {0}")]
pub struct SplitError(String);

impl FromStr for Split {
    type Err = SplitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "round-robin" => Ok(Split::RoundRobin),
            "hash:tenant" => Ok(Split::Hash(Column::Tenant)),
            "hash:resource" => Ok(Split::Hash(Column::Resource)),
            other => match other.strip_prefix("hash:") {
                Some(column) => Err(SplitError(format!(
                    "{column:?} is not a column rows can be routed by: use hash:tenant or hash:resource"
                ))),
                None => Err(SplitError(format!(
                    "{other:?} is not a split: use round-robin, hash:tenant or hash:resource"
                ))),
            },
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::RoundRobin => "round-robin",
            Split::Hash(Column::Tenant) => "hash:tenant",
            Split::Hash(Column::Resource) => "hash:resource",
        })
    }
}

impl Split {
    /// The daemon (`0..instances`) each row of `trace` reaches, in row
    /// order. The same trace is always dealt the same way.
    pub fn route(self, trace: &Trace, instances: usize) -> Vec<u32> {
        let n = instances.max(1) as u64;
        // Names hashed once each, not once per row.
        let by_name = |names: &[String]| -> Vec<u32> {
            names.iter().map(|name| (hash(name) % n) as u32).collect()
        };
        let tenants = by_name(&trace.tenants);
        let resources = by_name(&trace.resources);
        trace
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| match self {
                Split::RoundRobin => (i as u64 % n) as u32,
                Split::Hash(Column::Tenant) => tenants[row.tenant as usize],
                Split::Hash(Column::Resource) => resources[row.resource as usize],
            })
            .collect()
    }

    /// The daemon every row of tenant (or resource) `name` reaches under
    /// a hash split (tests and docs place tenants with it).
    pub fn hashed(name: &str, instances: usize) -> usize {
        (hash(name) % instances.max(1) as u64) as usize
    }
}

/// FNV-1a, then MurmurHash3's finalizer (FNV's low bits alone are the
/// parity of the bytes, so `mod 2` would follow the last letter): fixed,
/// so a trace is dealt the same way by every build (std's hashers promise
/// no such thing).
fn hash(s: &str) -> u64 {
    let mut h = s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn trace() -> Trace {
        let policy = Policy::load_str(
            "resources: { api: { kind: rate, capacity: 10 }, db: { kind: rate, capacity: 10 } }\n\
             tenants: { a: {}, b: {}, c: {} }\n",
            "p",
        )
        .unwrap();
        let csv = "timestamp,tenant,resource,amount\n\
                   0,a,api,1\n0,b,api,1\n0,c,db,1\n1,a,db,1\n1,b,api,1\n1,c,api,1\n2,a,api,1\n";
        Trace::read(csv.as_bytes(), "t.csv", &policy).unwrap()
    }

    #[test]
    fn round_robin_deals_rows_in_turn() {
        assert_eq!(Split::RoundRobin.route(&trace(), 3), [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(Split::RoundRobin.route(&trace(), 1), [0; 7]);
    }

    #[test]
    fn a_hash_split_sends_every_row_of_a_value_to_one_daemon() {
        let t = trace();
        let by_tenant = Split::Hash(Column::Tenant).route(&t, 4);
        let by_resource = Split::Hash(Column::Resource).route(&t, 4);
        for (i, x) in t.rows.iter().enumerate() {
            for (j, y) in t.rows.iter().enumerate() {
                if x.tenant == y.tenant {
                    assert_eq!(by_tenant[i], by_tenant[j], "rows {i} and {j}");
                }
                if x.resource == y.resource {
                    assert_eq!(by_resource[i], by_resource[j], "rows {i} and {j}");
                }
            }
        }
        // Not all on one daemon, and the same in every build: the docs'
        // two-daemon example relies on shop and batch parting.
        let spread = Split::Hash(Column::Tenant).route(&t, 2);
        assert!(spread.contains(&0) && spread.contains(&1), "{spread:?}");
        assert_eq!(
            (Split::hashed("shop", 2), Split::hashed("batch", 2)),
            (1, 0)
        );
    }

    #[test]
    fn the_split_reads_back_as_written_and_bad_ones_say_why() {
        for s in ["round-robin", "hash:tenant", "hash:resource"] {
            assert_eq!(s.parse::<Split>().unwrap().to_string(), s);
        }
        for (bad, why) in [
            (
                "hash:amount",
                "split: \"amount\" is not a column rows can be routed by: use hash:tenant or hash:resource",
            ),
            (
                "random",
                "split: \"random\" is not a split: use round-robin, hash:tenant or hash:resource",
            ),
        ] {
            assert_eq!(bad.parse::<Split>().unwrap_err().to_string(), why);
        }
    }
}
