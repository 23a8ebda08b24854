"""Calls push.v1.PusherService/Push over gRPC (HTTP/2 cleartext) with Python's grpcio, an
independent gRPC implementation (argv: host:port, file holding a PushRequest message,
compression "gzip" or "none", timeout in seconds, tenant or ""). grpcio sends the message
as it is; the gateway must decode it. Prints one line: "OK <response bytes>" or
"ERR <status name> <details>". Driven by tests/http2.rs."""
import sys

import grpc

target, path, compression, timeout, tenant = sys.argv[1:6]
message = open(path, "rb").read()
channel = grpc.insecure_channel(target)
push = channel.unary_unary(
    "/push.v1.PusherService/Push",
    request_serializer=lambda b: b,
    response_deserializer=lambda b: b,
)
metadata = [("x-scope-orgid", tenant)] if tenant else []
try:
    response, call = push.with_call(
        message,
        timeout=float(timeout),
        metadata=metadata,
        compression=grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression,
    )
    print("OK", len(response))
except grpc.RpcError as e:
    print("ERR", e.code().name, e.details())
channel.close()
