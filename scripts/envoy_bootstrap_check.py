"""Offline check of deploy/envoy/envoy.yaml, run by scripts/lint-deploy with
the python of .tools/pyenvoy (scripts/install-python-test-deps). No Envoy
binary is involved:

1. The YAML is parsed into Envoy's own `envoy.config.bootstrap.v3.Bootstrap`
   (PyPI xds-protos): unknown fields are errors, and every typed_config
   `Any` must name a message Envoy has, and parse as it.
2. The rate-limit filter must use transport V3 and point at a cluster that
   exists and speaks HTTP/2 (gRPC).
3. Every descriptor the routes' rate-limit actions can make must match a
   rule of the policy's `envoy:` section for the filter's domain, and every
   rule must be matched by one (the rules of src/policy/envoy.rs: the same
   keys, `match` values equal; the tenant_key's value is any).

    python scripts/envoy_bootstrap_check.py deploy/envoy/envoy.yaml deploy/envoy/policy.yaml
"""

import sys

import yaml
from google.protobuf import json_format

# Imported for their descriptors: ParseDict resolves each `@type` from them.
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.filters.http.ratelimit.v3 import rate_limit_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

HCM = http_connection_manager_pb2.HttpConnectionManager
RATELIMIT = rate_limit_pb2.RateLimit


def descriptor(actions):
    """The (key, value) entries one rate_limits entry makes; value None when
    it comes from the request (a header, an address)."""
    entries = []
    for a in actions:
        kind = a.WhichOneof("action_specifier")
        if kind == "request_headers":
            entries.append((a.request_headers.descriptor_key, None))
        elif kind == "remote_address":
            entries.append(("remote_address", None))
        elif kind == "generic_key":
            key = a.generic_key.descriptor_key or "generic_key"
            entries.append((key, a.generic_key.descriptor_value))
        elif kind == "destination_cluster":
            entries.append(("destination_cluster", None))
        elif kind == "source_cluster":
            entries.append(("source_cluster", None))
        else:
            raise SystemExit(f"rate-limit action {kind}: not understood by this check")
    return entries


def matches(rule, entries):
    keys = [k for k, _ in entries]
    wanted = set(rule.get("match", {})) | ({rule["tenant_key"]} if "tenant_key" in rule else set())
    if len(keys) != len(set(keys)) or set(keys) != wanted:
        return False
    for key, value in entries:
        if key == rule.get("tenant_key"):
            continue
        if value is None or rule["match"][key] != value:
            return False
    return True


def main(bootstrap_path, policy_path):
    with open(bootstrap_path) as f:
        doc = yaml.safe_load(f)
    bootstrap = json_format.ParseDict(doc, bootstrap_pb2.Bootstrap())
    problems = []
    clusters = {c.name: c for c in bootstrap.static_resources.clusters}
    shapes = {}  # domain -> [(where, entries)]
    filters = 0
    for listener in bootstrap.static_resources.listeners:
        for chain in listener.filter_chains:
            for nf in chain.filters:
                if not nf.typed_config.Is(HCM.DESCRIPTOR):
                    continue
                hcm = HCM()
                nf.typed_config.Unpack(hcm)
                domains = []
                for hf in hcm.http_filters:
                    if not hf.typed_config.Is(RATELIMIT.DESCRIPTOR):
                        continue
                    filters += 1
                    rl = RATELIMIT()
                    hf.typed_config.Unpack(rl)
                    domains.append(rl.domain)
                    service = rl.rate_limit_service
                    if service.transport_api_version != 2:  # V3
                        problems.append(f"{hf.name}: rate_limit_service.transport_api_version must be V3")
                    name = service.grpc_service.envoy_grpc.cluster_name
                    cluster = clusters.get(name)
                    if cluster is None:
                        problems.append(f"{hf.name}: cluster {name!r} is not defined")
                        continue
                    options = cluster.typed_extension_protocol_options.get(
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
                    )
                    http = http_protocol_options_pb2.HttpProtocolOptions()
                    if options is None or not options.Unpack(http) or not http.explicit_http_config.HasField("http2_protocol_options"):
                        problems.append(f"cluster {name!r}: gRPC needs explicit_http_config.http2_protocol_options")
                for vh in hcm.route_config.virtual_hosts:
                    for route in list(vh.routes):
                        for i, rl in enumerate(list(vh.rate_limits) + list(route.route.rate_limits)):
                            where = f"{vh.name} {route.match.prefix or route.match.path} rate_limits[{i}]"
                            for domain in domains:
                                shapes.setdefault(domain, []).append((where, descriptor(rl.actions)))
    if filters == 0:
        problems.append("no envoy.filters.http.ratelimit filter")
    with open(policy_path) as f:
        envoy = (yaml.safe_load(f) or {}).get("envoy") or {}
    rules = envoy.get("domains", {})
    for domain, made in shapes.items():
        domain_rules = rules.get(domain)
        if domain_rules is None:
            problems.append(f"domain {domain!r}: the policy has no rules for it")
            continue
        used = set()
        for where, entries in made:
            hit = next((j for j, r in enumerate(domain_rules) if matches(r, entries)), None)
            if hit is None:
                problems.append(f"{where}: descriptor {entries} matches no rule of domain {domain!r}")
            else:
                used.add(hit)
                print(f"ok: {where}: {entries} -> rule [{hit}] ({domain_rules[hit]})")
        for j, r in enumerate(domain_rules):
            if j not in used:
                problems.append(f"envoy.domains.{domain}[{j}] ({r}): no descriptor of the bootstrap matches it")
    for p in problems:
        print(f"FAIL: {p}")
    if problems:
        sys.exit(1)
    print(f"ok: {bootstrap_path} parses as envoy.config.bootstrap.v3.Bootstrap; {policy_path} covers its descriptors")


if __name__ == "__main__":
    main(*sys.argv[1:3])
