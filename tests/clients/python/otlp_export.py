"""Sends OpenTelemetry profiles to POST /v1development/profiles as OTLP/HTTP clients do,
with messages built by the `opentelemetry-proto` package from PyPI (1.45.2, generated from
opentelemetry-proto v1.10.0): an independent encoder of ExportProfilesServiceRequest.

argv: base URL (http://host:port), output directory, tenant or "".
Three requests: protobuf (application/x-protobuf), the same gzip'd, and OTLP/JSON
(protobuf's json_format). Each body sent is written to the output directory (proto.bin,
proto.bin.gz, request.json) so the test can compare what the sinks got byte for byte. Each
response is decoded with the package's own ExportProfilesServiceResponse. Prints one line
per request: "OK <name> <status> <content-type> <rejected_profiles>". Driven by
tests/otlp_python.rs."""
import gzip
import os
import sys
import urllib.request

from google.protobuf import json_format
from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2 as svc
from opentelemetry.proto.common.v1 import common_pb2 as common
from opentelemetry.proto.profiles.v1development import profiles_pb2 as prof
from opentelemetry.proto.resource.v1 import resource_pb2 as resource

base, out, tenant = sys.argv[1:4]


def build_request():
    strings = ["", "cpu", "nanoseconds", "main", "main.go", "work", "thread.name", "worker-1"]
    d = prof.ProfilesDictionary()
    d.string_table.extend(strings)
    d.mapping_table.add()
    d.function_table.add()
    d.function_table.add(name_strindex=3, filename_strindex=4)
    d.function_table.add(name_strindex=5, filename_strindex=4)
    d.location_table.add()
    loc = d.location_table.add(address=0x1000)
    loc.lines.add(function_index=1, line=10)
    loc = d.location_table.add(address=0x2000)
    loc.lines.add(function_index=2, line=20)
    d.stack_table.add()
    d.stack_table.add(location_indices=[2, 1])
    d.link_table.add()
    d.attribute_table.add()
    a = d.attribute_table.add(key_strindex=6)
    a.value.string_value = "worker-1"
    p = prof.Profile(
        time_unix_nano=1_700_000_000_000_000_000,
        duration_nano=10_000_000_000,
        period=10_000_000,
        profile_id=bytes(range(16)),
    )
    p.sample_type.type_strindex = 1
    p.sample_type.unit_strindex = 2
    p.period_type.type_strindex = 1
    p.period_type.unit_strindex = 2
    for i in range(5):
        p.samples.add(stack_index=1, values=[10_000_000 * (i + 1)], attribute_indices=[1])
    req = svc.ExportProfilesServiceRequest(dictionary=d)
    rp = req.resource_profiles.add(
        resource=resource.Resource(
            attributes=[
                common.KeyValue(key="service.name", value=common.AnyValue(string_value="py-otlp")),
            ]
        )
    )
    sp = rp.scope_profiles.add(scope=common.InstrumentationScope(name="otlp_export.py"))
    sp.profiles.append(p)
    return req


def post(name, body, content_type, encoding=None):
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    with open(os.path.join(out, name), "wb") as f:
        f.write(body)
    r = urllib.request.Request(base + "/v1development/profiles", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(r, timeout=10) as resp:
        data = resp.read()
        ct = resp.headers.get("Content-Type")
        msg = svc.ExportProfilesServiceResponse()
        if ct == "application/json":
            json_format.Parse(data.decode(), msg)
        else:
            msg.ParseFromString(data)
        print("OK", name, resp.status, ct, msg.partial_success.rejected_profiles, flush=True)


req = build_request()
raw = req.SerializeToString()
post("proto.bin", raw, "application/x-protobuf")
post("proto.bin.gz", gzip.compress(raw), "application/x-protobuf", "gzip")
post("request.json", json_format.MessageToJson(req).encode(), "application/json")
