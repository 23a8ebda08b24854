"""Calls opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export over
gRPC (HTTP/2 cleartext) with Python's grpcio, the request parsed and re-serialized by the
`opentelemetry-proto` package from PyPI (an independent OTLP encoder), and the answer
decoded with the package's ExportProfilesServiceResponse.

argv: host:port, file holding an ExportProfilesServiceRequest, compression "gzip" or
"none", tenant or "". Writes the bytes it sent to <file>.sent. Prints one line:
"OK <rejected_profiles>" or "ERR <status name> <details>". Driven by tests/http2.rs."""
import sys

import grpc
from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2 as svc

target, path, compression, tenant = sys.argv[1:5]
request = svc.ExportProfilesServiceRequest.FromString(open(path, "rb").read())
sent = request.SerializeToString()
open(path + ".sent", "wb").write(sent)
channel = grpc.insecure_channel(target)
export = channel.unary_unary(
    "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export",
    request_serializer=lambda m: m.SerializeToString(),
    response_deserializer=svc.ExportProfilesServiceResponse.FromString,
)
metadata = [("x-scope-orgid", tenant)] if tenant else []
try:
    response = export(
        request,
        timeout=10,
        metadata=metadata,
        compression=grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression,
    )
    print("OK", response.partial_success.rejected_profiles)
except grpc.RpcError as e:
    print("ERR", e.code().name, e.details())
channel.close()
