"""Runs the real pyroscope-io SDK against the gateway for a bounded time (argv: server
address, seconds, tenant). Driven by tests/real_clients.rs."""
import hashlib
import sys
import time

import pyroscope

pyroscope.configure(
    application_name="pyrogate.test.python",
    server_address=sys.argv[1],
    tags={"env": "ci"},
    tenant_id=sys.argv[3] if len(sys.argv) > 3 else "",
    upload_interval=2,
    enable_logging=True,
)
end = time.time() + float(sys.argv[2])
x = 0
while time.time() < end:
    x += sum(hashlib.sha256(str(i).encode()).digest()[0] for i in range(2000))
pyroscope.shutdown()
print("done", x > 0)
