"""Runs the real pyroscope-io SDK against the gateway for a bounded time (argv: server
address, seconds, tenant). Basic auth from PYROGATE_TEST_BASIC_USER and
PYROGATE_TEST_BASIC_PASSWORD when set. Driven by tests/real_clients.rs and tests/auth.rs."""
import hashlib
import os
import sys
import time

import pyroscope

pyroscope.configure(
    application_name="pyrogate.test.python",
    server_address=sys.argv[1],
    tags={"env": "ci"},
    tenant_id=sys.argv[3] if len(sys.argv) > 3 else "",
    upload_interval=2,
    basic_auth_username=os.environ.get("PYROGATE_TEST_BASIC_USER", ""),
    basic_auth_password=os.environ.get("PYROGATE_TEST_BASIC_PASSWORD", ""),
    enable_logging=True,
)
end = time.time() + float(sys.argv[2])
x = 0
while time.time() < end:
    x += sum(hashlib.sha256(str(i).encode()).digest()[0] for i in range(2000))
pyroscope.shutdown()
print("done", x > 0)
