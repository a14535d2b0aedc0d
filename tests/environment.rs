//! The binary in the environment it is given: variables that share the
//! `PRESCIENT_` prefix without naming a setting (Kubernetes service links of
//! a Service named `prescient`, an app's `PRESCIENT_ENDPOINT`) are logged
//! and ignored, and the shipped manifests, rendered, start and serve with
//! every variable Kubernetes would put in their containers, sharing
//! capacity through the rendered Redis.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::policies::EXAMPLE;
use common::requests::acquire;
use common::{Daemon, eventually};
use prescient::proto::Decision;
use serde::Deserialize;
use serde_norway::Value;

const LIMIT: Duration = Duration::from_secs(30);

/// What Kubernetes injects for a Service `prescient` (ClusterIP 10.96.0.10,
/// port 50051), and what the sample app container reads.
const STRAY: &[(&str, &str)] = &[
    ("PRESCIENT_SERVICE_HOST", "10.96.0.10"),
    ("PRESCIENT_SERVICE_PORT", "50051"),
    ("PRESCIENT_PORT", "tcp://10.96.0.10:50051"),
    ("PRESCIENT_PORT_50051_TCP_ADDR", "10.96.0.10"),
    ("PRESCIENT_ENDPOINT", "http://127.0.0.1:50051"),
];

/// Waits for `/readyz`, then asks for one `db_queries` token as `tenant`.
async fn serves(d: &Daemon, tenant: &str) {
    eventually(LIMIT, "/readyz 200", || async {
        (d.http_get("/readyz").0 == 200).then_some(())
    })
    .await;
    let granted = d
        .client()
        .await
        .acquire(acquire(tenant, "db_queries", 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(granted.decision(), Decision::Granted, "{granted:?}");
}

#[tokio::test]
async fn serve_ignores_prescient_variables_that_name_no_setting_and_logs_them() {
    let mut env = STRAY.to_vec();
    // A real setting beside them still applies.
    env.push(("PRESCIENT_RELOAD__WATCH", "false"));
    let d = Daemon::start(EXAMPLE, &env);
    serves(&d, "checkout").await;
    assert!(d.logged(&["prescient listening", "watch=false"]));
    let names: Vec<&str> = STRAY.iter().map(|(k, _)| *k).collect();
    let mut parts = vec!["WARN", "name no setting are ignored"];
    parts.extend(&names);
    assert!(d.logged(&parts), "{:?}", d.log.lock().unwrap());
    assert!(
        !d.logged_yet(&["10.96.0.10"]),
        "values are never logged (one could be a token)"
    );
}

#[test]
fn simulate_ignores_prescient_variables_that_name_no_setting() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO_BIN_EXE_prescient"))
        .args(["simulate", "--policy"])
        .arg(format!("{dir}/examples/sim/policy.yaml"))
        .arg("--trace")
        .arg(format!("{dir}/examples/sim/trace.csv"))
        .args(["--mode", "reactive", "--json"])
        .envs(STRAY.iter().copied())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["modes"]["reactive"]["capacity_violations"], 0);
    assert_eq!(err.lines().count(), 1, "one warning: {err}");
    for (name, _) in STRAY {
        assert!(err.contains(name), "{name} not named in: {err}");
    }
}

/// `deploy/kubernetes` rendered: with `kubectl kustomize` when kubectl is
/// installed (CI has it), else by concatenating the kustomization's
/// `resources`, which is the whole rendering while it lists nothing else
/// (checked).
fn rendered() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");
    let text = match Command::new("kubectl").args(["kustomize", dir]).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "kubectl kustomize: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!("rendered with kubectl kustomize");
            String::from_utf8(out.stdout).unwrap()
        }
        Err(e) => {
            eprintln!("kubectl not found ({e}): rendering the resources list by hand");
            let k: Value = serde_norway::from_str(
                &std::fs::read_to_string(format!("{dir}/kustomization.yaml")).unwrap(),
            )
            .unwrap();
            let keys: Vec<&str> = k
                .as_mapping()
                .unwrap()
                .keys()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(
                keys,
                ["apiVersion", "kind", "resources"],
                "the kustomization does more than list resources: install kubectl to render it"
            );
            k["resources"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|f| std::fs::read_to_string(format!("{dir}/{}", f.as_str().unwrap())).unwrap())
                .collect::<Vec<_>>()
                .join("\n---\n")
        }
    };
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// The variables Kubernetes puts in every container of the namespace for
/// `services` (each given a ClusterIP here), and for the API server's
/// `kubernetes` Service, as the kubelet does (docker-link style included).
fn service_links(services: &[&Value]) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    let mut link = |name: &str, ip: &str, ports: &[(Option<String>, u64, String)]| {
        let name = name.to_uppercase().replace('-', "_");
        vars.push((format!("{name}_SERVICE_HOST"), ip.to_owned()));
        vars.push((format!("{name}_SERVICE_PORT"), ports[0].1.to_string()));
        for (port_name, port, _) in ports {
            if let Some(p) = port_name {
                let p = p.to_uppercase().replace('-', "_");
                vars.push((format!("{name}_SERVICE_PORT_{p}"), port.to_string()));
            }
        }
        let (_, first, proto) = &ports[0];
        vars.push((format!("{name}_PORT"), format!("{proto}://{ip}:{first}")));
        for (_, port, proto) in ports {
            let prefix = format!("{name}_PORT_{port}_{}", proto.to_uppercase());
            vars.push((prefix.clone(), format!("{proto}://{ip}:{port}")));
            vars.push((format!("{prefix}_PROTO"), proto.clone()));
            vars.push((format!("{prefix}_PORT"), port.to_string()));
            vars.push((format!("{prefix}_ADDR"), ip.to_owned()));
        }
    };
    link(
        "kubernetes",
        "10.96.0.1",
        &[(Some("https".into()), 443, "tcp".into())],
    );
    for (i, s) in services.iter().enumerate() {
        let ip = format!("10.96.0.{}", 10 + i);
        let ports: Vec<_> = s["spec"]["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| {
                let name = p["name"].as_str().map(str::to_owned);
                let proto = p["protocol"].as_str().unwrap_or("TCP").to_lowercase();
                (name, p["port"].as_u64().unwrap(), proto)
            })
            .collect();
        link(str_of(&s["metadata"], "name"), &ip, &ports);
    }
    vars
}

/// The pod labels of a Deployment that a Service's selector selects.
fn selects(service: &Value, deployment: &Value) -> bool {
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    service["spec"]["selector"]
        .as_mapping()
        .is_some_and(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The rendered Redis, run here: `redis-server` with its container's args,
/// on a free loopback port (killed on drop).
struct Redis {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start(container: &Value) -> Self {
        let args: Vec<&str> = container["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args[0], "redis-server", "{args:?}");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(&args[1..])
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's package; scripts/install-tools)");
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A prescient container of a rendered pod, made to run here: its volume
/// mounts are directories under `root` (a ConfigMap's keys written as
/// files), paths under a mount point in its args and env point there, and
/// both listen addresses are port 0 on loopback. `POD_NAME` from the
/// downward API is `pod`.
struct Container {
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Mount path -> local directory.
    mounts: BTreeMap<String, PathBuf>,
}

impl Container {
    fn new(
        pod: &Value,
        pod_name: &str,
        container: &Value,
        config_maps: &[&Value],
        root: &Path,
    ) -> Self {
        let volumes = pod["volumes"].as_sequence().cloned().unwrap_or_default();
        let mut mounts = BTreeMap::new();
        for m in container["volumeMounts"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let name = str_of(m, "name");
            let local = root.join(name);
            std::fs::create_dir_all(&local).unwrap();
            let volume = volumes
                .iter()
                .find(|v| str_of(v, "name") == name)
                .unwrap_or_else(|| panic!("no volume {name}"));
            if let Some(cm) = volume["configMap"]["name"].as_str() {
                let map = config_maps
                    .iter()
                    .find(|c| str_of(&c["metadata"], "name") == cm)
                    .unwrap_or_else(|| panic!("no ConfigMap {cm} in the rendering"));
                for (key, text) in map["data"].as_mapping().unwrap() {
                    std::fs::write(local.join(key.as_str().unwrap()), text.as_str().unwrap())
                        .unwrap();
                }
            } else {
                assert!(
                    volume.get("emptyDir").is_some(),
                    "volume {name}: only configMap and emptyDir volumes are mapped here"
                );
            }
            mounts.insert(str_of(m, "mountPath").to_owned(), local);
        }
        let mut c = Self {
            args: Vec::new(),
            env: Vec::new(),
            mounts,
        };
        let mut args: Vec<String> = container["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| c.local(a.as_str().unwrap()))
            .collect();
        for flag in ["--listen", "--admin-listen"] {
            let at = args.iter().position(|a| a == flag).unwrap();
            args[at + 1] = "127.0.0.1:0".into();
        }
        c.args = args;
        for e in container["env"].as_sequence().into_iter().flatten() {
            let from = e["valueFrom"]["fieldRef"]["fieldPath"].as_str();
            let value = match (e["value"].as_str(), from) {
                (Some(v), _) => v,
                (None, Some("metadata.name")) => pod_name,
                _ => panic!(
                    "env {}: only plain values and the pod's name are mapped here",
                    str_of(e, "name")
                ),
            };
            c.env.push((str_of(e, "name").to_owned(), c.local(value)));
        }
        c
    }

    /// `value` with a mount point replaced by its local directory.
    fn local(&self, value: &str) -> String {
        for (mount, local) in &self.mounts {
            if let Some(rest) = value.strip_prefix(mount.as_str()) {
                return format!("{}{rest}", local.display());
            }
        }
        value.to_owned()
    }
}

// Multi-threaded: the client's connection closes while `terminate` blocks.
#[tokio::test(flavor = "multi_thread")]
async fn the_rendered_manifests_start_and_serve_with_the_environment_kubernetes_gives_them() {
    let objects = rendered();
    let of_kind = |kind: &str| -> Vec<&Value> {
        objects
            .iter()
            .filter(|o| str_of(o, "kind") == kind)
            .collect()
    };
    let config_maps = of_kind("ConfigMap");
    let services = of_kind("Service");
    let links = service_links(&services);
    // The lease store: the Deployment that runs redis-server.
    let redis_server = |d: &Value| {
        d["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|c| c["args"][0].as_str() == Some("redis-server"))
            .cloned()
    };
    let (redis, redis_deployment) = of_kind("Deployment")
        .into_iter()
        .find_map(|d| redis_server(d).map(|c| (Redis::start(&c), d)))
        .expect("a Deployment running redis-server in the rendering");
    assert!(
        links.iter().any(|(k, _)| k == "PRESCIENT_SERVICE_HOST"),
        "the sample Service is named prescient: {links:?}"
    );
    let mut started = Vec::new();
    for deployment in of_kind("Deployment") {
        let pod = &deployment["spec"]["template"]["spec"];
        let containers = ["initContainers", "containers"]
            .iter()
            .flat_map(|k| pod[*k].as_sequence().cloned().unwrap_or_default());
        for container in containers {
            let args = container["args"].as_sequence().cloned().unwrap_or_default();
            if args.first().and_then(Value::as_str) != Some("serve") {
                continue; // not prescient (the sample app)
            }
            let what = format!(
                "{}/{}",
                str_of(&deployment["metadata"], "name"),
                str_of(&container, "name")
            );
            let root = tempfile::tempdir().unwrap();
            let pod_name = format!(
                "{}-7c9d8f6b5-x2x4q",
                str_of(&deployment["metadata"], "name")
            );
            let mut c = Container::new(pod, &pod_name, &container, &config_maps, root.path());
            // The lease store's URL names a Service (and port) in front of
            // the Redis Deployment: here, the Redis started above.
            let url = c
                .env
                .iter_mut()
                .find(|(k, _)| k == "PRESCIENT_CLUSTER__REDIS_URL")
                .unwrap_or_else(|| panic!("{what}: no PRESCIENT_CLUSTER__REDIS_URL"));
            let (host, port) = url
                .1
                .strip_prefix("redis://")
                .and_then(|a| a.split_once(':'))
                .unwrap_or_else(|| panic!("{what}: {} is not redis://HOST:PORT", url.1));
            assert!(
                services
                    .iter()
                    .any(|s| str_of(&s["metadata"], "name") == host
                        && selects(s, redis_deployment)
                        && s["spec"]["ports"]
                            .as_sequence()
                            .unwrap()
                            .iter()
                            .any(|p| p["port"].as_u64().map(|n| n.to_string()).as_deref()
                                == Some(port))),
                "{what}: {} is no Service port in front of the Redis Deployment",
                url.1
            );
            url.1 = format!("redis://127.0.0.1:{}", redis.port);
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_prescient"));
            cmd.args(&c.args)
                .env_clear()
                .envs(c.env.iter().map(|(k, v)| (k, v)))
                .envs(links.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut d = Daemon::start_command(cmd);
            eventually(LIMIT, "the daemon joined under its pod's name", || async {
                d.logged_yet(&["sharing capacity through the lease store", &pod_name])
                    .then_some(())
            })
            .await;
            // Alone in the store, once the lease is granted: the whole
            // capacity (the previous daemon's lease runs out first).
            eventually(LIMIT, "the whole db_queries capacity leased", || async {
                let leased = d.metric(r#"prescient_cluster_lease_capacity{resource="db_queries"}"#);
                let valid = d.metric(r#"prescient_cluster_lease_valid{resource="db_queries"}"#);
                (leased == Some(5000.0) && valid == Some(1.0)).then_some(())
            })
            .await;
            serves(&d, "checkout").await;
            assert!(
                d.logged(&["name no setting are ignored", "PRESCIENT_SERVICE_HOST"]),
                "{what}: {:?}",
                d.log.lock().unwrap()
            );
            // The manifest's own settings applied: its state directory
            // gets the last history snapshot.
            assert!(
                d.terminate().success(),
                "{what}: {:?}",
                d.log.lock().unwrap()
            );
            let state = c
                .env
                .iter()
                .find(|(k, _)| k == "PRESCIENT_STATE_DIR")
                .map(|(_, v)| PathBuf::from(v))
                .unwrap_or_else(|| panic!("{what}: no PRESCIENT_STATE_DIR"));
            assert!(
                state.join("history.snapshot").exists(),
                "{what}: no snapshot in {}",
                state.display()
            );
            started.push(what);
        }
    }
    started.sort();
    assert_eq!(started, ["prescient/prescient", "shop-api/prescient"]);
}
