"""Calls envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit the way
Envoy does, with Envoy's own generated messages and stubs (PyPI
`xds-protos`, built upstream from envoyproxy/data-plane-api; none of
prescient's code or vendored protos). Used by tests/envoy.rs.

    python client.py HOST:PORT < calls.json

stdin: a JSON list of calls, each {"domain": str, "hits_addend": int?,
"descriptors": [{"entries": [[key, value], ...], "hits_addend": int?}]}.
stdout: a JSON list, per call either the RateLimitResponse as JSON (field
names as in the proto, every field printed) or {"error": {"code", "details"}}.
"""

import json
import sys

import grpc
from google.protobuf import json_format
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc


def request(call):
    descriptors = []
    for d in call["descriptors"]:
        descriptor = ratelimit_pb2.RateLimitDescriptor(
            entries=[
                ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v)
                for k, v in d["entries"]
            ]
        )
        if "hits_addend" in d:
            descriptor.hits_addend.value = d["hits_addend"]
        descriptors.append(descriptor)
    return rls_pb2.RateLimitRequest(
        domain=call["domain"],
        descriptors=descriptors,
        hits_addend=call.get("hits_addend", 0),
    )


def main():
    address = sys.argv[1]
    calls = json.load(sys.stdin)
    results = []
    with grpc.insecure_channel(address) as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        for call in calls:
            try:
                response = stub.ShouldRateLimit(request(call), timeout=30)
                results.append(
                    json_format.MessageToDict(
                        response,
                        preserving_proto_field_name=True,
                        always_print_fields_with_no_presence=True,
                    )
                )
            except grpc.RpcError as e:
                results.append(
                    {"error": {"code": e.code().name, "details": e.details()}}
                )
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
