//! Policies the test files share. A test whose scenario needs a policy of
//! its own (a reserve to snapshot, a tenant without limits) keeps it beside
//! the test and says why.

/// The shipped example (`config/policies.yaml`): the policy the README and
/// the Kubernetes manifests run.
pub const EXAMPLE: &str = include_str!("../../config/policies.yaml");

/// One resource of each kind and a scarce one: `api` (rate 100/s, 10%
/// emergency), `slots` (2 units, leases reclaimed after 1 s) and `gpu` (1
/// unit). `web` is gold (borrows), guaranteed 20 api, 1 slot and the gpu;
/// `batch` is bronze (its bucket is all it has), guaranteed 10 api and 1
/// slot.
pub const WEB_AND_BATCH: &str = r#"
resources:
  api: { kind: rate, capacity: 100, emergency: 0.1 }
  slots: { kind: concurrency, capacity: 2, lease_ttl: 1s }
  gpu: { kind: concurrency, capacity: 1, lease_ttl: 1h }
tenants:
  web:
    qos: gold
    limits:
      api: { guaranteed: 20 }
      slots: { guaranteed: 1 }
      gpu: { guaranteed: 1 }
  batch:
    qos: bronze
    limits:
      api: { guaranteed: 10 }
      slots: { guaranteed: 1 }
"#;

/// `slots` (4 units, the default lease TTL) shared by `web` and `batch`,
/// both gold and guaranteed 2: enough for tests about who may call, not
/// about capacity.
pub const SLOTS: &str = "resources:\n  slots: { kind: concurrency, capacity: 4 }\n\
                         tenants:\n  web: { qos: gold, limits: { slots: { guaranteed: 2 } } }\n  \
                         batch: { qos: gold, limits: { slots: { guaranteed: 2 } } }\n";
