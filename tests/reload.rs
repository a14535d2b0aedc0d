//! Live policy reload on the real binary: a real file edit, a real
//! Kubernetes-style `..data` symlink swap, SIGHUP, and a bad edit, each
//! observed over gRPC and on `/metrics` (polled against a deadline; nothing
//! sleeps for synchronisation).

mod common;

use std::path::Path;
use std::time::Duration;

use common::answers::outcome;
use common::policies::EXAMPLE;
use common::requests::{AcquireExt, acquire, release};
use common::{Daemon, eventually};
use prescient::proto::Decision;
use prescient::proto::admission_client::AdmissionClient;
use tonic::Code;
use tonic::transport::Channel;

const LIMIT: Duration = Duration::from_secs(20);

/// `slots` holds 10; tenant `t` is guaranteed `g` of them and may not
/// borrow; `old` exists only when `with_old`.
fn policy(g: u64, with_old: bool) -> String {
    let old = if with_old {
        "  old: { limits: { slots: { guaranteed: 1 } } }\n"
    } else {
        ""
    };
    format!(
        "resources:\n  slots: {{ kind: concurrency, capacity: 10 }}\n\
         tenants:\n  t: {{ qos: bronze, limits: {{ slots: {{ guaranteed: {g} }} }} }}\n{old}"
    )
}

/// Acquires at once; the lease id if granted.
async fn take(c: &mut AdmissionClient<Channel>, tenant: &str, amount: u64) -> Option<String> {
    let r = c
        .acquire(acquire(tenant, "slots", amount))
        .await
        .unwrap()
        .into_inner();
    (r.decision() == Decision::Granted).then_some(r.lease_id)
}

/// Releases `lease`; the units it gave back.
async fn give_back(c: &mut AdmissionClient<Channel>, lease: &str) -> u64 {
    c.release(release(lease))
        .await
        .unwrap()
        .into_inner()
        .released_units
}

/// Waits until `/metrics` reports `n` reloads with `result`.
async fn reloads(d: &Daemon, result: &str, n: f64) {
    let series = format!("prescient_policy_reloads_total{{result=\"{result}\"}}");
    eventually(LIMIT, &format!("{n} reloads {result}"), || async {
        (d.metric(&series) == Some(n)).then_some(())
    })
    .await;
}

/// Writes `text` to `path` the way Kubernetes updates a mounted ConfigMap:
/// a new timestamped directory, a temporary `..data` link to it renamed
/// over `..data` (atomic), the old directory removed. `path` itself is a
/// link to `..data/<name>`, made on the first call.
fn configmap_write(dir: &Path, name: &str, text: &str, generation: u32) {
    let version = format!("..2026_11_25_{generation:02}");
    std::fs::create_dir(dir.join(&version)).unwrap();
    std::fs::write(dir.join(&version).join(name), text).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::os::unix::fs::symlink(&version, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
    let link = dir.join(name);
    if link.symlink_metadata().is_err() {
        std::os::unix::fs::symlink(Path::new("..data").join(name), link).unwrap();
    }
}

fn sha256(text: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}

/// A daemon on a policy file of its own: (dir, file, daemon).
fn start(text: &str, env: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    let d = Daemon::start_at(&path, env);
    (dir, path, d)
}

#[tokio::test]
async fn an_edit_is_put_in_force_keeping_leases_and_waiters_and_removed_tenants_drain() {
    let (_dir, path, d) = start(&policy(2, true), &[]);
    let mut c = d.client().await;
    let held = take(&mut c, "t", 2).await.expect("t is guaranteed 2");
    let old_lease = take(&mut c, "old", 1).await.expect("old is guaranteed 1");
    assert!(
        take(&mut c, "t", 1).await.is_none(),
        "bronze: 2 is all t has"
    );
    // A waiter parked under the old policy.
    let waiter = {
        let mut c = c.clone();
        tokio::spawn(async move {
            c.acquire(acquire("t", "slots", 1).waiting(Duration::from_secs(60)))
                .await
                .unwrap()
                .into_inner()
        })
    };
    // The planner publishes the gauge each tick.
    eventually(LIMIT, "the waiter to park", || async {
        (d.metric("prescient_waiters{resource=\"slots\"}") == Some(1.0)).then_some(())
    })
    .await;

    std::fs::write(&path, policy(4, false)).unwrap();
    reloads(&d, "ok", 1.0).await;

    // The waiter is served under the new limits without any release.
    let served = waiter.await.unwrap();
    assert_eq!(served.decision(), Decision::Granted, "{served:?}");
    // Held units carried over: t holds 3 of its 4.
    let fourth = take(&mut c, "t", 1).await.expect("the 4th of 4");
    assert!(take(&mut c, "t", 1).await.is_none(), "4 is all t has now");
    // The lease from before the reload comes back whole.
    assert_eq!(give_back(&mut c, &held).await, 2);
    give_back(&mut c, &served.lease_id).await;
    give_back(&mut c, &fourth).await;
    // `old` is gone for new work, but its lease still releases.
    let gone = c.acquire(acquire("old", "slots", 1)).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
    assert_eq!(give_back(&mut c, &old_lease).await, 1);
    assert!(
        d.logged(&["policy reloaded", "tenants: 1 removed (old), 1 changed (t)"]),
        "{:?}",
        d.log.lock().unwrap()
    );
    assert_eq!(
        d.metric("prescient_policy_last_reload_successful"),
        Some(1.0)
    );
    // The policy in force is the file on disk, by its hash.
    let info = |text: &str| format!("prescient_policy_info{{sha256=\"{}\"}}", sha256(text));
    assert_eq!(d.metric(&info(&policy(4, false))), Some(1.0));
    assert_eq!(
        d.metric(&info(&policy(2, true))),
        None,
        "the old one is gone"
    );
}

#[tokio::test]
async fn a_configmap_symlink_swap_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    configmap_write(dir.path(), "policies.yaml", &policy(2, false), 1);
    let d = Daemon::start_at(&dir.path().join("policies.yaml"), &[]);
    let mut c = d.client().await;
    let unknown = c.acquire(acquire("old", "slots", 1)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    configmap_write(dir.path(), "policies.yaml", &policy(2, true), 2);
    reloads(&d, "ok", 1.0).await;
    assert!(
        take(&mut c, "old", 1).await.is_some(),
        "the new tenant is in force"
    );
}

#[tokio::test]
async fn an_invalid_edit_is_refused_and_the_last_good_policy_stays() {
    let (_dir, path, d) = start(&policy(2, false), &[]);
    let mut c = d.client().await;

    // 20 of a capacity of 10: valid YAML, invalid policy.
    std::fs::write(&path, policy(20, false)).unwrap();
    reloads(&d, "error", 1.0).await;
    assert_eq!(
        d.metric("prescient_policy_last_reload_successful"),
        Some(0.0)
    );
    assert!(
        d.logged(&[
            "invalid policy",
            "policy.yaml",
            "tenants.t.limits.slots.guaranteed",
            "exceeds capacity"
        ]),
        "{:?}",
        d.log.lock().unwrap()
    );
    // Still the old limits: 2, not 20.
    assert!(take(&mut c, "t", 2).await.is_some());
    assert!(take(&mut c, "t", 1).await.is_none());

    // Not YAML at all: refused the same way.
    std::fs::write(&path, "resources: [unclosed").unwrap();
    reloads(&d, "error", 2.0).await;
    assert!(take(&mut c, "t", 1).await.is_none());

    // Fixed: in force.
    std::fs::write(&path, policy(3, false)).unwrap();
    reloads(&d, "ok", 1.0).await;
    assert_eq!(
        d.metric("prescient_policy_last_reload_successful"),
        Some(1.0)
    );
    assert!(take(&mut c, "t", 1).await.is_some(), "the third of 3");
}

#[tokio::test]
async fn sighup_reloads_when_watching_is_off() {
    let (_dir, path, d) = start(&policy(2, false), &[("PRESCIENT_RELOAD__WATCH", "false")]);
    let mut c = d.client().await;
    std::fs::write(&path, policy(2, true)).unwrap();
    d.signal("HUP");
    reloads(&d, "ok", 1.0).await;
    assert!(take(&mut c, "old", 1).await.is_some());
    assert!(d.logged(&["SIGHUP"]));
}

/// The shipped example policy cut at the line before `defaults:`, as an
/// editor or a script writing in place can leave it: it still parses and
/// validates, and would drop `defaults` (and the events after it).
fn example_cut_before_defaults() -> (String, String) {
    let full = EXAMPLE.to_owned();
    let cut = full[..full.find("\ndefaults:").unwrap() + 1].to_owned();
    prescient::policy::Policy::load_str(&cut, "cut").expect("the cut file is valid");
    (full, cut)
}

/// One `db_queries` token for `tenant`: `Code::Ok` if granted, else the
/// status code.
async fn code(c: &mut AdmissionClient<Channel>, tenant: &str) -> Code {
    outcome(c.acquire(acquire(tenant, "db_queries", 1)).await)
}

#[tokio::test]
async fn a_file_cut_before_defaults_is_refused_until_sighup_forces_it() {
    let (full, cut) = example_cut_before_defaults();
    let (_dir, path, d) = start(&full, &[]);
    let mut c = d.client().await;
    assert_eq!(
        code(&mut c, "walk-in").await,
        Code::Ok,
        "served from defaults"
    );

    std::fs::write(&path, &cut).unwrap();
    reloads(&d, "refused", 1.0).await;
    assert_eq!(
        d.metric("prescient_policy_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(
        d.metric("prescient_policy_reloads_total{result=\"ok\"}"),
        Some(0.0)
    );
    assert!(
        d.logged(&[
            "policy reload refused",
            "defaults removed",
            "drops `defaults`",
            "reload.max_removed_share 50%",
            "SIGHUP"
        ]),
        "{:?}",
        d.log.lock().unwrap()
    );
    // Nothing changed: listed tenants and those from defaults are served.
    assert_eq!(code(&mut c, "checkout").await, Code::Ok);
    assert_eq!(code(&mut c, "walk-in").await, Code::Ok);
    assert_eq!(code(&mut c, "another").await, Code::Ok);

    // The operator means it.
    d.signal("HUP");
    reloads(&d, "ok", 1.0).await;
    assert_eq!(
        d.metric("prescient_policy_last_reload_successful"),
        Some(1.0)
    );
    assert!(d.logged(&["policy reloaded", "defaults removed"]));
    assert_eq!(code(&mut c, "checkout").await, Code::Ok);
    assert_eq!(code(&mut c, "newcomer").await, Code::NotFound);
}

/// `n` tenants `t0`.. on `db_queries`, one per line.
fn tenants(n: usize) -> String {
    let mut yaml =
        String::from("resources:\n  db_queries: { kind: rate, capacity: 1000 }\ntenants:\n");
    for i in 0..n {
        yaml +=
            &format!("  t{i}: {{ qos: gold, limits: {{ db_queries: {{ guaranteed: 10 }} }} }}\n");
    }
    yaml
}

#[tokio::test]
async fn removing_most_tenants_is_refused_while_removing_a_few_is_applied() {
    let (_dir, path, d) = start(&tenants(4), &[]);
    let mut c = d.client().await;
    // Cut after the first tenant: 3 of 4 gone.
    std::fs::write(&path, tenants(1)).unwrap();
    reloads(&d, "refused", 1.0).await;
    assert!(
        d.logged(&[
            "policy reload refused",
            "tenants: 3 removed (t1, t2, t3)",
            "it removes 3 of 4 tenants (75%)"
        ]),
        "{:?}",
        d.log.lock().unwrap()
    );
    assert_eq!(code(&mut c, "t3").await, Code::Ok, "still in force");
    // Half is not more than half: an ordinary edit goes through.
    std::fs::write(&path, tenants(2)).unwrap();
    reloads(&d, "ok", 1.0).await;
    assert!(d.logged(&["policy reloaded", "tenants: 2 removed (t2, t3)"]));
    assert_eq!(code(&mut c, "t3").await, Code::NotFound);
    assert_eq!(code(&mut c, "t1").await, Code::Ok);
}

#[tokio::test]
async fn the_removal_guard_can_be_turned_off() {
    let (full, cut) = example_cut_before_defaults();
    let (_dir, path, d) = start(&full, &[("PRESCIENT_RELOAD__MAX_REMOVED_SHARE", "1")]);
    std::fs::write(&path, &cut).unwrap();
    reloads(&d, "ok", 1.0).await;
    assert_eq!(
        d.metric("prescient_policy_reloads_total{result=\"refused\"}"),
        Some(0.0)
    );
    let mut c = d.client().await;
    assert_eq!(code(&mut c, "walk-in").await, Code::NotFound);
}
