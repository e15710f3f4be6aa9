"""The relay as an ops team runs it: options from a config file (--config=FILE, the command
line winning), JSON log lines (--log-format=json) with a connection's id in its lines, and the
systemd notify protocol over a unix datagram socket the test owns (NOTIFY_SOCKET): READY=1
once listening, RELOADING=1 + MONOTONIC_USEC then READY=1 around SIGHUP, STOPPING=1 on
SIGTERM. A config file error stops the start with the file and line named.

usage: relay_ops_test.py RELAY
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

relay_bin = os.path.abspath(sys.argv[1])
tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, "" if ok else ": " + str(detail)[:2000]))


def recv(sock, timeout=10):
    sock.settimeout(timeout)
    try:
        return sock.recv(4096).decode()
    except socket.timeout:
        return None


notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify_name = "@xr-relay-ops-test-%d" % os.getpid()
notify.bind("\0" + notify_name[1:])

log_path = os.path.join(tmp, "relay.log")
conf = os.path.join(tmp, "relay.conf")
with open(conf, "w") as f:
    f.write("# test relay\n"
            "bind-tcp = 127.0.0.1:0\n"
            "tcp-auth = none\n"
            "socket-dir = %s\n"
            "threads = 1\n"
            "log-format = text\n"
            "log-file = %s\n" % (os.path.join(tmp, "sockets"), log_path))

env = dict(os.environ, NOTIFY_SOCKET=notify_name)
# The command line wins over the file's log-format = text.
relay = subprocess.Popen([relay_bin, "--config=" + conf, "--log-format=json"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
try:
    ready = recv(notify, 20)
    check("READY=1 with a status once listening", ready is not None and ready.startswith("READY=1\nSTATUS=listening on "),
          ready)
    port = int(re.search(r"127\.0\.0\.1:(\d+)", ready or "").group(1)) if ready and re.search(r"127\.0\.0\.1:(\d+)", ready) else 0

    # A connection that sends garbage: its lines carry its id.
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"GET / HTTP/1.0\r\n\r\n")
    try:
        while c.recv(4096):
            pass
    except OSError:
        pass
    c.close()

    before = time.monotonic_ns() // 1000
    relay.send_signal(signal.SIGHUP)
    reloading = recv(notify)
    after = time.monotonic_ns() // 1000
    m = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", reloading or "")
    check("RELOADING=1 with MONOTONIC_USEC on SIGHUP", m and before <= int(m.group(1)) <= after, reloading)
    check("READY=1 after the reload", recv(notify) == "READY=1")

    relay.send_signal(signal.SIGTERM)
    check("STOPPING=1 on SIGTERM", recv(notify) == "STOPPING=1")
    rc = relay.wait(timeout=15)
    check("exit 0", rc == 0, rc)

    lines = open(log_path).read().splitlines()
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            parsed.append(None)
    check("every log line is a JSON object", lines and all(isinstance(p, dict) for p in parsed), lines[:5])
    objs = [p for p in parsed if isinstance(p, dict)]
    check("each has time, level, category, message",
          objs and all(set(["time", "level", "category", "message"]) <= set(p) for p in objs), objs[:3])
    conn_lines = [p for p in objs if p.get("message", "").startswith("conn=")]
    check("a connection's lines carry its id", conn_lines and all(
        p.get("conn") == int(re.match(r"conn=(\d+)", p["message"]).group(1)) for p in conn_lines), conn_lines[:3] or objs)
    check("the SIGHUP reload is logged", any("SIGHUP" in p.get("message", "") for p in objs))
finally:
    if relay.poll() is None:
        relay.kill()
        relay.wait()

# A bad line in the config file: no start, the file and line named.
bad = os.path.join(tmp, "bad.conf")
with open(bad, "w") as f:
    f.write("bind-tcp = 127.0.0.1:0\ntcp-auth = none\n\nthreads = many\n")
r = subprocess.run([relay_bin, "--config=" + bad], capture_output=True, text=True, timeout=30)
check("a config error stops the start naming FILE:LINE", r.returncode == 1 and (bad + ":4: ") in r.stderr, r.stderr)

print("%d/%d passed" % (sum(results), len(results)))
sys.exit(0 if results and all(results) else 1)
