use super::*;

#[test]
fn embedded_defaults_load_with_the_documented_addresses() {
    let s = Settings::load(None, &Overrides::default()).unwrap();
    assert_eq!(s.listen, "127.0.0.1:50051".parse().unwrap());
    assert_eq!(s.admin_listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(s.policy, PathBuf::new());
    assert_eq!(s.tick, Duration::from_secs(1));
    assert_eq!(s.log.format, LogFormat::Text);
    assert_eq!(s.admission.idempotency_window, Duration::from_secs(300));
    assert_eq!(s.grpc.max_concurrent_streams, 1000);
    assert_eq!(s.grpc.keepalive_interval, Duration::from_secs(30));
    assert_eq!(s.grpc.max_connections, 4096);
    assert_eq!(s.grpc.idle_timeout, Duration::from_secs(300));
    assert_eq!(s.grpc.max_watch_streams, 1000);
    assert_eq!(s.grpc.shutdown_grace, Duration::from_secs(5));
    assert_eq!(s.admission.max_report_debt, Duration::from_secs(60));
}

#[test]
fn flags_override_the_file_which_overrides_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "listen: 127.0.0.1:7000\nadmin_listen: 127.0.0.1:7001\nadmission:\n  max_waiters: 7\n",
    )
    .unwrap();
    let flags = Overrides {
        listen: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let s = Settings::load(Some(&file), &flags).unwrap();
    assert_eq!(s.listen.port(), 0, "flag wins over the file");
    assert_eq!(s.admin_listen.port(), 7001, "file wins over the defaults");
    assert_eq!(s.admission.max_waiters, 7);
    assert_eq!(
        s.admission.max_leases, 1_000_000,
        "untouched keys keep defaults"
    );
}

#[test]
fn a_bad_value_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, "listen: nowhere\n").unwrap();
    let err = Settings::load(Some(&file), &Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("listen"), "{err}");
    std::fs::write(&file, "tick: 0s\n").unwrap();
    let err = Settings::load(Some(&file), &Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("tick"), "{err}");
    for key in ["max_connections", "max_watch_streams"] {
        std::fs::write(&file, format!("grpc:\n  {key}: 0\n")).unwrap();
        let err = Settings::load(Some(&file), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains(&format!("grpc.{key}")), "{err}");
    }
    for share in ["1.5", "-0.1"] {
        std::fs::write(&file, format!("reload:\n  max_removed_share: {share}\n")).unwrap();
        let err = Settings::load(Some(&file), &Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "reload.max_removed_share: must be in [0, 1]",
            "{share}"
        );
    }
    for debounce in ["0s", "9ms"] {
        std::fs::write(&file, format!("reload:\n  debounce: {debounce}\n")).unwrap();
        let err = Settings::load(Some(&file), &Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "reload.debounce: must be at least 10ms",
            "{debounce}"
        );
    }
    std::fs::write(&file, "reload:\n  debounce: 10ms\n").unwrap();
    Settings::load(Some(&file), &Overrides::default()).expect("10ms is enough");
}

fn from_env(vars: &[(&str, &str)]) -> Result<Settings, config::ConfigError> {
    let vars = vars.iter().map(|(k, v)| (k.into(), v.into()));
    Settings::load_from(None, &Overrides::default(), vars)
}

#[test]
fn the_environment_sets_nested_keys_and_ignores_variables_that_name_no_setting() {
    let s = from_env(&[
        ("PRESCIENT_ADMISSION__MAX_LEASES", "5000"),
        ("PRESCIENT_RELOAD__WATCH", "false"),
        ("PRESCIENT_ADMIN_LISTEN", "127.0.0.1:7001"),
        // A Service named `prescient` in the namespace, and the app's own.
        ("PRESCIENT_SERVICE_HOST", "10.96.0.10"),
        ("PRESCIENT_PORT", "tcp://10.96.0.10:50051"),
        ("PRESCIENT_PORT_50051_TCP_ADDR", "10.96.0.10"),
        ("PRESCIENT_ENDPOINT", "http://127.0.0.1:50051"),
    ])
    .unwrap();
    assert_eq!(s.admission.max_leases, 5000);
    assert!(!s.reload.watch);
    assert_eq!(s.admin_listen.port(), 7001);
    assert_eq!(
        s.unused_env,
        [
            "PRESCIENT_ENDPOINT",
            "PRESCIENT_PORT",
            "PRESCIENT_PORT_50051_TCP_ADDR",
            "PRESCIENT_SERVICE_HOST"
        ]
    );
}

#[test]
fn every_embedded_key_is_settable_from_the_environment() {
    let defaults = from_env(&[]).unwrap();
    let text: serde_norway::Value = serde_norway::from_str(EMBEDDED).unwrap();
    let mut vars = Vec::new();
    let mut stack = vec![(String::new(), &text)];
    while let Some((key, value)) = stack.pop() {
        match value {
            serde_norway::Value::Mapping(m) => {
                for (k, v) in m {
                    let k = k.as_str().unwrap();
                    let key = if key.is_empty() {
                        k.to_owned()
                    } else {
                        format!("{key}.{k}")
                    };
                    stack.push((key, v));
                }
            }
            serde_norway::Value::String(v) => vars.push((env::variable(&key), v.clone())),
            other => vars.push((
                env::variable(&key),
                serde_norway::to_string(other).unwrap().trim().to_owned(),
            )),
        }
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = from_env(&vars).unwrap();
    assert!(s.unused_env.is_empty(), "{:?}", s.unused_env);
    assert_eq!(s, defaults);
}

#[test]
fn a_bad_value_in_the_environment_names_its_key_and_source() {
    let err = from_env(&[("PRESCIENT_ADMISSION__MAX_LEASES", "many")]).unwrap_err();
    let err = err.to_string();
    assert!(
        err.starts_with("PRESCIENT_ADMISSION__MAX_LEASES: "),
        "{err}"
    );
    assert!(err.contains("admission.max_leases"), "{err}");
    let err = from_env(&[("PRESCIENT_LISTEN", "nowhere")]).unwrap_err();
    assert!(err.to_string().starts_with("PRESCIENT_LISTEN: "), "{err}");
    let err = from_env(&[("PRESCIENT_RELOAD__MAX_REMOVED_SHARE", "NaN")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "reload.max_removed_share: must be in [0, 1]"
    );
}

#[test]
fn cluster_settings_are_checked_and_name_the_member() {
    let alone = from_env(&[]).unwrap();
    assert!(alone.cluster_member().is_none(), "no redis_url: alone");
    let url = ("PRESCIENT_CLUSTER__REDIS_URL", "redis://127.0.0.1:6379");
    let s = from_env(&[url]).unwrap();
    let env = |pod: Option<&'static str>| {
        move |var: &str| match var {
            "POD_NAME" => pod.map(String::from),
            "HOSTNAME" => Some("host-7".to_string()),
            _ => None,
        }
    };
    let m = s.cluster_member_from(env(Some("api-5d9f"))).unwrap();
    assert!(m.id.starts_with("api-5d9f/"), "{}", m.id);
    assert!(
        s.cluster_member_from(env(None))
            .unwrap()
            .id
            .starts_with("host-7/")
    );
    let named = from_env(&[url, ("PRESCIENT_CLUSTER__INSTANCE_ID", "east-1")]).unwrap();
    assert!(
        named
            .cluster_member_from(env(Some("p")))
            .unwrap()
            .id
            .starts_with("east-1/")
    );
    for (vars, message) in [
        (
            vec![url, ("PRESCIENT_CLUSTER__LEASE_TTL", "1s")],
            "cluster.lease_ttl: must be at least two ticks (a lease is renewed every tick)",
        ),
        (
            vec![url, ("PRESCIENT_CLUSTER__STORE_TIMEOUT", "3s")],
            "cluster.store_timeout: must be > 0 and < lease_ttl",
        ),
        (
            vec![("PRESCIENT_CLUSTER__SAFE_SHARE", "1.5")],
            "cluster.safe_share: must be in [0, 1]",
        ),
        (
            vec![url, ("PRESCIENT_CLUSTER__NAMESPACE", "a{b")],
            "cluster.namespace: must be non-empty, without '{' or '}'",
        ),
        (
            vec![(
                "PRESCIENT_CLUSTER__REDIS_URL",
                "redis://10.0.0.1:6379,redis://10.0.0.2:6379",
            )],
            "cluster.redis_url: lists several servers: set cluster.redis_type: cluster for a Redis Cluster",
        ),
    ] {
        assert_eq!(from_env(&vars).unwrap_err().to_string(), message);
    }
    let bad = from_env(&[url, ("PRESCIENT_CLUSTER__ON_STORE_LOSS", "panic")]).unwrap_err();
    assert!(bad.to_string().contains("cluster.on_store_loss"), "{bad}");
    let nodes = "redis://10.0.0.1:6379,redis://10.0.0.2:6379";
    let cluster = from_env(&[
        ("PRESCIENT_CLUSTER__REDIS_URL", nodes),
        ("PRESCIENT_CLUSTER__REDIS_TYPE", "cluster"),
    ])
    .unwrap();
    assert_eq!(
        cluster.cluster.redis_type,
        crate::cluster::redis::RedisType::Cluster
    );
    let bad = from_env(&[url, ("PRESCIENT_CLUSTER__REDIS_TYPE", "sentinel")]).unwrap_err();
    assert!(bad.to_string().contains("cluster.redis_type"), "{bad}");
}

#[test]
fn the_runtime_layout_is_one_of_two_and_workers_default_to_the_cores() {
    let s = Settings::load(None, &Overrides::default()).unwrap();
    assert_eq!(s.grpc.workers, 0);
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(s.grpc.worker_count(), cores);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, "grpc:\n  runtime: per_core\n  workers: 3\n").unwrap();
    let s = Settings::load(Some(&file), &Overrides::default()).unwrap();
    assert_eq!(s.grpc.runtime, RuntimeLayout::PerCore);
    assert_eq!(s.grpc.worker_count(), 3);
    std::fs::write(&file, "grpc:\n  runtime: perCore\n").unwrap();
    let err = Settings::load(Some(&file), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("grpc.runtime"), "{err}");
    assert!(err.contains("multi_thread or per_core"), "{err}");
    std::fs::write(&file, "grpc:\n  workers: 1025\n").unwrap();
    let err = Settings::load(Some(&file), &Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("grpc.workers"), "{err}");
}

#[test]
fn the_risk_factor_is_on_by_default_and_can_be_turned_off() {
    let on = from_env(&[]).unwrap();
    assert!(on.planner_config().shrink_wide_bands);
    let off = from_env(&[("PRESCIENT_PLANNER__SHRINK_WIDE_BANDS", "false")]).unwrap();
    assert!(!off.planner_config().shrink_wide_bands);
}

#[test]
fn the_lending_rule_defaults_to_lending_everything_and_checks_its_share() {
    let c = from_env(&[]).unwrap().planner_config();
    assert_eq!(c.lend_hold_back, 0.0);
    assert_eq!(c.reserve_after_denial, Duration::from_secs(600));
    let set = from_env(&[
        ("PRESCIENT_PLANNER__LEND_HOLD_BACK", "0.25"),
        ("PRESCIENT_PLANNER__RESERVE_AFTER_DENIAL", "2m"),
    ])
    .unwrap()
    .planner_config();
    assert_eq!(set.lend_hold_back, 0.25);
    assert_eq!(set.reserve_after_denial, Duration::from_secs(120));
    let err = from_env(&[("PRESCIENT_PLANNER__LEND_HOLD_BACK", "1.5")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("planner.lend_hold_back"), "{err}");
    assert!(err.contains("[0, 1]"), "{err}");
}
