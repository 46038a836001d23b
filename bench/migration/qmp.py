#!/usr/bin/env python3
"""The peer: plain QEMU live migration between two QEMU processes on this machine, no Ferry in
between. Usage: qmp.py SOURCE_SOCKET TARGET_SOCKET URI DOWNTIME_MS. Sets the same downtime limit and
bandwidth Ferry uses, migrates, resumes the target on completion (the target runs with -S, as
Ferry's does) and prints QEMU's downtime and total time in ms."""
import json, socket, sys, time

def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    f = s.makefile("rw")
    json.loads(f.readline())
    call(f, "qmp_capabilities")
    return f

def call(f, command, args=None):
    f.write(json.dumps({"execute": command, **({"arguments": args} if args else {})}) + "\n")
    f.flush()
    while True:
        reply = json.loads(f.readline())
        if "return" in reply:
            return reply["return"]
        if "error" in reply:
            raise RuntimeError(reply["error"])

source, target = connect(sys.argv[1]), connect(sys.argv[2])
call(target, "migrate-incoming", {"uri": sys.argv[3]})
call(source, "migrate-set-parameters", {"downtime-limit": int(sys.argv[4]), "max-bandwidth": 1 << 30})
call(source, "migrate", {"uri": sys.argv[3]})
while True:
    status = call(source, "query-migrate")
    if status["status"] in ("completed", "failed", "cancelled"):
        break
    time.sleep(0.005)
if status["status"] != "completed":
    sys.exit(f"migration {status['status']}: {status.get('error-desc')}")
call(target, "cont")
try:
    call(source, "quit")
except (OSError, ValueError):
    pass  # QEMU may close the socket before it answers
print(status["downtime"], status["total-time"])
