#!/usr/bin/env python3
"""Checks deploy/keda offline; run by scripts/lint-deploy with the Python of
.tools/venv (PyYAML and jsonschema come with kubernetes-validate).

  lint_keda.py FILE...   every ScaledObject matches KEDA's CRD schema
                         (scripts/schemas/keda.sh-v1alpha1-scaledobject.schema.json),
                         with unknown fields refused as the API server's strict
                         field validation does; and every `external` trigger is one
                         prescient serves: its metadata keys are the ones
                         src/grpc/keda/trigger.rs reads, its resource and tenant
                         are in config/policies.yaml, its scalerAddress is the
                         shared service's gRPC port.

Prints one line per problem ("ERROR file: object: path: reason") and exits 1
if there was any.
"""

import json
import os
import re
import sys

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = "scripts/schemas/keda.sh-v1alpha1-scaledobject.schema.json"
POLICY = "config/policies.yaml"
GRPC_PORT = "50051"
# What the daemon reads (src/grpc/keda/trigger.rs), and KEDA's own keys.
PRESCIENT_KEYS = {"tenant", "resource", "leadTime", "replicaCapacity", "activationThreshold"}
KEDA_KEYS = {"scalerAddress", "enableTLS", "unsafeSsl"}
REQUIRED = ["scalerAddress", "tenant", "resource", "leadTime", "replicaCapacity"]
# A humantime duration such as 90s, 2m, 1m30s.
DURATION = re.compile(r"^(\d+\s*(ns|us|ms|s|sec|m|min|h|hr|d|day|days))(\s*\d+\s*(ns|us|ms|s|sec|m|min|h|hr|d|day|days))*$")


def strict(schema):
    """The schema with unknown fields refused wherever the CRD lists them."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def where(path):
    out = ""
    for p in path:
        out += "[%d]" % p if isinstance(p, int) else ("." if out else "") + str(p)
    return out or "(root)"


def trigger_problems(i, trigger, policy):
    meta = trigger.get("metadata") or {}
    at = "spec.triggers[%d].metadata" % i
    for key in sorted(set(meta) - PRESCIENT_KEYS - KEDA_KEYS):
        yield '%s: "%s": unknown key (prescient reads %s)' % (at, key, ", ".join(sorted(PRESCIENT_KEYS)))
    for key in REQUIRED:
        if not str(meta.get(key, "")).strip():
            yield "%s.%s: required" % (at, key)
    resource, tenant = meta.get("resource"), meta.get("tenant")
    if resource and resource not in (policy.get("resources") or {}):
        yield "%s.resource: %r is not a resource of %s" % (at, resource, POLICY)
    if tenant and tenant not in (policy.get("tenants") or {}) and not policy.get("defaults"):
        yield "%s.tenant: %r is not a tenant of %s, which has no defaults" % (at, tenant, POLICY)
    lead = str(meta.get("leadTime", ""))
    if lead and not DURATION.match(lead.strip()):
        yield "%s.leadTime: %r is not a duration" % (at, lead)
    for key, low in (("replicaCapacity", False), ("activationThreshold", True)):
        if key in meta:
            try:
                v = float(meta[key])
                ok = v >= 0 if low else v > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                yield "%s.%s: %r must be a number %s 0" % (at, key, meta[key], ">=" if low else ">")
    address = str(meta.get("scalerAddress", ""))
    if address and not (address.startswith("prescient.") and address.endswith(":" + GRPC_PORT)):
        yield "%s.scalerAddress: %r is not the prescient Service's gRPC port (prescient.<namespace>...:%s)" % (
            at, address, GRPC_PORT)


def main(files):
    with open(os.path.join(ROOT, SCHEMA)) as f:
        validator = jsonschema.Draft7Validator(strict(json.load(f)))
    with open(os.path.join(ROOT, POLICY)) as f:
        policy = yaml.safe_load(f)
    problems = 0
    for path in files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        objects = [d for d in docs if d.get("kind") == "ScaledObject"]
        if not objects:
            print("ERROR %s: no ScaledObject" % path)
            problems += 1
        for doc in objects:
            name = "ScaledObject/%s" % (doc.get("metadata") or {}).get("name")
            found = ["%s: %s" % (where(e.absolute_path), e.message)
                     for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]
            for i, t in enumerate(((doc.get("spec") or {}).get("triggers")) or []):
                if isinstance(t, dict) and t.get("type") in ("external", "external-push"):
                    found.extend(trigger_problems(i, t, policy))
            for p in found:
                print("ERROR %s: %s: %s" % (path, name, p))
            problems += len(found)
            if not found:
                print("ok: %s: %s (KEDA CRD schema, prescient trigger)" % (path, name))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
