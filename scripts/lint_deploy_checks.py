#!/usr/bin/env python3
"""Checks of deploy/kubernetes that no schema can make; run by scripts/lint-deploy
with the Python of .tools/venv (PyYAML and jsonschema come with
kubernetes-validate).

  configmap-sync               deploy/kubernetes/configmap.yaml carries config/policies.yaml
  monitoring-schema FILE...    ServiceMonitor/PodMonitor objects match the strict subset schema
  invariants FILE...           every Deployment running prescient is wired and hardened as
                               docs/deployment.md says; one that shares capacity
                               (PRESCIENT_CLUSTER__REDIS_URL) is named by its pod and may
                               reach its lease store past the NetworkPolicies in FILE...

Each prints one line per problem ("ERROR file: object: reason") and exits 1 if
there was any.
"""

import difflib
import ipaddress
import json
import os
import posixpath
import sys
import urllib.parse

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGMAP = "deploy/kubernetes/configmap.yaml"
POLICY = "config/policies.yaml"
SCHEMA = "scripts/schemas/monitoring.coreos.com-v1.subset.schema.json"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
# What the daemon's Redis client accepts in cluster.redis_url.
REDIS_SCHEMES = {"redis": 6379, "rediss": 6379, "valkey": 6379, "valkeys": 6379,
                 "redis+unix": None, "valkey+unix": None, "unix": None}


def docs(path):
    with open(os.path.join(ROOT, path) if not os.path.isabs(path) else path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def name_of(doc):
    return "%s/%s" % (doc.get("kind"), (doc.get("metadata") or {}).get("name"))


def configmap_sync(_args):
    want = open(os.path.join(ROOT, POLICY)).read()
    maps = [d for d in docs(CONFIGMAP) if d.get("kind") == "ConfigMap"]
    if len(maps) != 1 or "policies.yaml" not in (maps[0].get("data") or {}):
        print("ERROR %s: expected one ConfigMap with data key policies.yaml" % CONFIGMAP)
        return 1
    got = maps[0]["data"]["policies.yaml"]
    if got == want:
        print("ok: %s data.policies.yaml is %s" % (CONFIGMAP, POLICY))
        return 0
    print("ERROR %s: data.policies.yaml differs from %s:" % (CONFIGMAP, POLICY))
    sys.stdout.writelines(
        difflib.unified_diff(want.splitlines(True), got.splitlines(True), POLICY, CONFIGMAP)
    )
    return 1


def monitoring_schema(files):
    schema = json.load(open(os.path.join(ROOT, SCHEMA)))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    checked = bad = 0
    for path in files:
        for doc in docs(path):
            if not str(doc.get("apiVersion", "")).startswith("monitoring.coreos.com/"):
                continue
            checked += 1
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
            for e in errors:
                where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
                print("ERROR %s: %s: %s: %s" % (path, name_of(doc), where, e.message))
            bad += bool(errors)
            if not errors:
                print("ok: %s: %s matches %s" % (path, name_of(doc), SCHEMA))
    if checked == 0:
        print("ERROR %s: no monitoring.coreos.com objects" % " ".join(files))
        return 1
    return 1 if bad else 0


def flag(args, name):
    """The value of `--name VALUE` or `--name=VALUE` in a container's args."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a[len(name) + 1:]
    return None


def host_port(addr):
    host, _, port = (addr or "").rpartition(":")
    return host, port


def selects(selector, labels):
    """Whether a label selector (matchLabels, matchExpressions) selects `labels`."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if not {"In": lambda: labels.get(key) in values,
                "NotIn": lambda: labels.get(key) not in values,
                "Exists": lambda: key in labels,
                "DoesNotExist": lambda: key not in labels}.get(op, lambda: False)():
            return False
    return True


def allows_port(rule, port):
    """Whether a NetworkPolicy egress rule lets traffic out to `port`, on any
    protocol (a named port is taken to match: only the pod knows it)."""
    ports = rule.get("ports")
    if not ports:
        return True
    for p in ports:
        n = p.get("port")
        if n is None or isinstance(n, str) or n == port or (n <= port <= p.get("endPort", n)):
            return True
    return False


def check_cluster(env, pod_labels, policies, problem):
    """A daemon that shares capacity (cluster.redis_url set) is named apart
    from its replicas and can reach its lease store."""
    url = env.get("PRESCIENT_CLUSTER__REDIS_URL") or {}
    if "value" not in url and "valueFrom" not in url:
        return
    if "value" in url and not url["value"]:
        return  # set empty: this daemon runs alone

    instance, pod_name = env.get("PRESCIENT_CLUSTER__INSTANCE_ID"), env.get("POD_NAME")
    if instance is not None and "value" in instance:
        problem("PRESCIENT_CLUSTER__INSTANCE_ID is a literal: every replica would have the same name "
                "in the lease store; take it from the downward API (fieldRef metadata.name)")
    elif instance is None:
        if pod_name is None:
            problem("cluster.redis_url is set, but neither POD_NAME (fieldRef metadata.name) nor "
                    "PRESCIENT_CLUSTER__INSTANCE_ID: daemons would be told apart only by host name")
        elif ((pod_name.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") != "metadata.name":
            problem("POD_NAME must come from the downward API (valueFrom.fieldRef.fieldPath: "
                    "metadata.name), or every replica has the same name in the lease store")

    if "value" not in url:
        return  # from a Secret or ConfigMap: nothing more to read here
    parsed = urllib.parse.urlsplit(str(url["value"]))
    if parsed.scheme not in REDIS_SCHEMES:
        problem("PRESCIENT_CLUSTER__REDIS_URL %r: the scheme must be one of %s"
                % (url["value"], ", ".join(sorted(REDIS_SCHEMES))))
        return
    # `$(VAR)`: Kubernetes puts in another variable, e.g. one from a Secret.
    if parsed.password and not parsed.password.startswith("$("):
        problem("PRESCIENT_CLUSTER__REDIS_URL holds a password in the manifest: take the URL from a "
                "Secret (valueFrom.secretKeyRef)")
    port = REDIS_SCHEMES[parsed.scheme]
    if port is None:
        return  # a Unix socket: no network involved
    port = parsed.port or port
    try:
        ipaddress.ip_address(parsed.hostname or "")
        by_name = False
    except ValueError:
        by_name = True
    for np in policies:
        spec = np.get("spec") or {}
        types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
        if "Egress" not in types or not selects(spec.get("podSelector"), pod_labels):
            continue
        rules = spec.get("egress") or []
        if not any(allows_port(r, port) for r in rules):
            problem("%s allows no egress to port %d: the daemon cannot reach the lease store %s"
                    % (name_of(np), port, parsed.hostname))
        if by_name and not any(allows_port(r, 53) for r in rules):
            problem("%s allows no egress to port 53: the daemon cannot resolve %s"
                    % (name_of(np), parsed.hostname))


def check_prescient(c, pod, pod_labels, sidecar, configmaps, policies, problem):
    args = [str(a) for a in c.get("args") or []]
    if not args or args[0] != "serve":
        problem("args must start with `serve` (the image's ENTRYPOINT is the binary)")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    env = {e.get("name"): e.get("value") for e in c.get("env") or []}

    listen, admin = flag(args, "--listen"), flag(args, "--admin-listen")
    if not listen or not admin:
        problem("--listen and --admin-listen must both be given")
    else:
        lhost, lport = host_port(listen)
        ahost, aport = host_port(admin)
        if ahost != "0.0.0.0":
            problem("--admin-listen %s: must bind 0.0.0.0 for the kubelet's probes and Prometheus" % admin)
        if str(ports.get("admin")) != aport:
            problem("--admin-listen port %s is not the container port named admin (%s)" % (aport, ports.get("admin")))
        if sidecar and lhost not in LOOPBACK:
            problem("--listen %s: a sidecar's plaintext, unauthenticated gRPC port must bind loopback" % listen)
        if not sidecar and str(ports.get("grpc")) != lport:
            problem("--listen port %s is not the container port named grpc (%s)" % (lport, ports.get("grpc")))

    if sidecar and c.get("restartPolicy") != "Always":
        problem("a native sidecar needs restartPolicy: Always")

    for probe, path in (("startupProbe", None), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (c.get(probe) or {}).get("httpGet") or {}
        if not get:
            problem("%s: httpGet on the admin port is missing" % probe)
            continue
        if path and get.get("path") != path:
            problem("%s: path %s, expected %s" % (probe, get.get("path"), path))
        if get.get("port") not in ("admin", ports.get("admin")):
            problem("%s: port %s is not the admin port" % (probe, get.get("port")))

    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        if "memory" not in (res.get(kind) or {}):
            problem("resources.%s.memory is not set" % kind)

    psc, sc = pod.get("securityContext") or {}, c.get("securityContext") or {}
    eff = dict(psc, **sc)
    want = {"runAsNonRoot": True, "runAsUser": 65532, "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False}
    for key, value in want.items():
        if eff.get(key) != value:
            problem("securityContext.%s is %r, expected %r" % (key, eff.get(key), value))
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        problem("securityContext.capabilities.drop must contain ALL")
    if (eff.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problem("seccompProfile.type must be RuntimeDefault (container or pod)")

    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    mounts = {m.get("mountPath"): m for m in c.get("volumeMounts") or []}

    policy = flag(args, "--policy")
    if not policy:
        problem("--policy is not given (the embedded example policy would be used)")
    else:
        # A file mount (subPath) sits at the file's own path, a directory
        # mount at its parent.
        mount = mounts.get(policy) or mounts.get(posixpath.dirname(policy))
        if mount is None:
            problem("--policy %s: its directory is not a volumeMount (mount the ConfigMap as a directory)" % policy)
        elif "subPath" in mount or "subPathExpr" in mount:
            problem("--policy %s: the mount uses subPath, which never sees ConfigMap updates" % policy)
        else:
            cm = (volumes.get(mount.get("name")) or {}).get("configMap")
            if not cm:
                problem("--policy %s: volume %s is not a ConfigMap" % (policy, mount.get("name")))
            elif cm.get("items"):
                problem("--policy %s: configMap.items would hide other keys; mount the whole map" % policy)
            elif posixpath.basename(policy) not in configmaps.get(cm.get("name"), set()):
                problem("--policy %s: ConfigMap %s has no key %s" % (policy, cm.get("name"), posixpath.basename(policy)))

    state = flag(args, "--state-dir") or env.get("PRESCIENT_STATE_DIR")
    if not state:
        problem("no --state-dir / PRESCIENT_STATE_DIR: forecast history would be lost on every restart")
    else:
        mount = mounts.get(state)
        vol = volumes.get((mount or {}).get("name")) or {}
        if mount is None or mount.get("readOnly"):
            problem("state dir %s is not a writable volumeMount (the root filesystem is read-only)" % state)
        elif not ({"emptyDir", "persistentVolumeClaim", "ephemeral"} & vol.keys()):
            problem("state dir %s: volume %s is not emptyDir, ephemeral or a PVC" % (state, mount.get("name")))

    check_cluster({e.get("name"): e for e in c.get("env") or []}, pod_labels, policies, problem)


def invariants(files):
    configmaps, policies = {}, []
    for path in [CONFIGMAP] + list(files):
        for d in docs(path):
            if d.get("kind") == "ConfigMap":
                configmaps[d["metadata"]["name"]] = set((d.get("data") or {}).keys())
    for path in files:
        policies += [d for d in docs(path) if d.get("kind") == "NetworkPolicy"]
    bad = found = 0
    for path in files:
        for doc in docs(path):
            if doc.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet"):
                continue
            template = (doc.get("spec") or {}).get("template") or {}
            pod = template.get("spec") or {}
            pod_labels = (template.get("metadata") or {}).get("labels") or {}
            for field, sidecar in (("initContainers", True), ("containers", False)):
                for c in pod.get(field) or []:
                    if c.get("name") != "prescient":
                        continue
                    found += 1
                    problems = []
                    check_prescient(c, pod, pod_labels, sidecar, configmaps, policies, problems.append)
                    where = "%s: %s %s" % (path, name_of(doc), field)
                    for p in problems:
                        print("ERROR %s: %s" % (where, p))
                    if not problems:
                        print("ok: %s: prescient (%s) wired and hardened" % (where, "sidecar" if sidecar else "service"))
                    bad += bool(problems)
    if found == 0:
        print("ERROR %s: no container named prescient" % " ".join(files))
        return 1
    return 1 if bad else 0


def main():
    commands = {"configmap-sync": configmap_sync, "monitoring-schema": monitoring_schema,
                "invariants": invariants}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
