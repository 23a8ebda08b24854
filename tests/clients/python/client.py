import os, sys, time, hashlib
import pyroscope
pyroscope.configure(application_name="pyrogate.test.python", server_address=sys.argv[1], tags={"env": "ci"}, enable_logging=True)
end = time.time() + float(sys.argv[2])
x = 0
while time.time() < end:
    x += sum(hashlib.sha256(str(i).encode()).digest()[0] for i in range(2000))
pyroscope.shutdown()
print("done", x > 0)
