"""--io=auto falls back to epoll where io_uring is blocked, as under a container's default
seccomp profile (podman/CRI-O: ENOSYS; Docker 25+/containerd 2: EPERM). The relay runs under a
seccomp filter made by seccomp_exec.py (python3-seccomp) in place of a container runtime: the
start-up line names the filter and the backend, a relayed session works (handshake, pings, an
intact stream, the splice path), `xpra info` of the relay says "epoll", and --io=uring under the
same filter fails at once with the reason and the fix. Without a filter, and under a filter that
leaves io_uring alone, --io=auto picks io_uring (the seccomp check is not a guess from
"Seccomp: 2" alone).

Args: xpra_relay synthetic_server bench_client xpra_relay_auth seccomp_exec.py"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_lib import check, results, start, stop_all, summary, tmp  # noqa: E402

relay_bin, server_bin, bench_bin, auth_bin, seccomp_exec = [os.path.abspath(p) for p in sys.argv[1:6]]
python = "/usr/bin/python3"
sockdir = tempfile.mkdtemp(prefix="xr-fallback-", dir="/tmp")  # unix paths: 108 bytes at most


def bench(name, mode, url):
    out = os.path.join(tmp, name + ".json")
    r = subprocess.run([bench_bin, mode, url, "--connections=2", "--duration=2", "--quiet", "--json", out],
                       capture_output=True, text=True, timeout=120)
    j = json.load(open(out)) if os.path.exists(out) else {}
    return j, "exit %d: %s" % (r.returncode, r.stderr[-800:])


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return "still running after 15 s"


def relay_argv(display, io, code=None):
    argv = [relay_bin, display, "--io=" + io, "--bind-tcp=127.0.0.1:0", "--threads=2", "--tcp-auth=sqlite,filename=" + db,
            "--socket-dir=" + sockdir]
    return ([python, seccomp_exec, code] if code else []) + argv


try:
    if subprocess.run([python, "-c", "import seccomp"], capture_output=True).returncode != 0:
        sys.exit("FAIL: /usr/bin/python3 has no seccomp module: install python3-seccomp (tools/lib.sh XR_TEST_PACKAGES)")
    _, sport, _ = start("server", [server_bin, "--bind=127.0.0.1:0", "--threads=1"], r"listening on 127\.0\.0\.1:(\d+)")
    db = os.path.join(tmp, "users.db")
    subprocess.run([auth_bin, db, "create"], check=True, capture_output=True)
    subprocess.run([auth_bin, db, "add", "bench", "pw", "", "", "tcp://127.0.0.1:%d/" % sport], check=True,
                   capture_output=True)

    for n, code in enumerate(("ENOSYS", "EPERM")):
        display = ":%d" % (81 + n)
        relay, rport, rlog = start("relay-auto-" + code, relay_argv(display, "auto", code), r"on tcp:127\.0\.0\.1:(\d+)")
        text = open(rlog).read()
        line = "io_uring blocked by seccomp (%s, Seccomp: 2 in /proc/self/status): using epoll" % code
        check("%s filter, --io=auto: the start-up line says '%s'" % (code, line), line in text, text[-1500:])
        check("%s filter: the line names the fix (deploy/seccomp-io_uring.json)" % code,
              "--security-opt seccomp=deploy/seccomp-io_uring.json" in text, text[-1500:])
        check("%s filter: the old 'kernel has no io_uring' message is gone" % code,
              "Linux 6.1 or newer is required" not in text, text[-1500:])
        url = "tcp://bench:pw@127.0.0.1:%d/" % rport
        j, err = bench("handshake-" + code, "handshake", url)
        check("%s filter: logins through the epoll relay" % code, j and j["errors"] == 0 and j["sessions"] > 0, err)
        j, err = bench("latency-" + code, "latency", url)
        check("%s filter: pings through the epoll relay" % code, j and j["errors"] == 0 and j["pings"] > 0, err)
        j, err = bench("throughput-" + code, "throughput", url)
        check("%s filter: a 64 KiB-packet stream intact through the epoll relay" % code,
              j and j["errors"] == 0 and j["packets"] > 0 and j["payload_bytes"] == j["packets"] * 65536, err)
        spliced = re.findall(r"user=bench closed: .* \((\d+) spliced\)", open(rlog).read())
        check("%s filter: the splice path runs on epoll" % code, any(int(s) > 0 for s in spliced), spliced)
        if n == 0:
            r = subprocess.run(["xpra", "info", display, "--socket-dirs=" + sockdir], capture_output=True, text=True,
                               timeout=60, env=dict(os.environ, HOME=tmp))
            check("xpra info of the relay: proxy.io-backend=epoll", "proxy.io-backend=epoll" in r.stdout,
                  "exit %s: %s %s" % (r.returncode, r.stdout[-800:], r.stderr[-800:]))
        rc = stop(relay)
        check("%s filter: SIGTERM stops the epoll relay cleanly (exit 0)" % code, rc == 0, rc)

        r = subprocess.run(relay_argv(":%d" % (83 + n), "uring", code), capture_output=True, text=True, timeout=30)
        out = r.stdout + r.stderr
        check("%s filter, --io=uring: fails at once" % code, r.returncode == 1, "exit %s: %s" % (r.returncode, out))
        check("%s filter, --io=uring: says io_uring is blocked by seccomp, and the fix" % code,
              ("--io=uring: io_uring blocked by seccomp (%s, Seccomp: 2 in /proc/self/status)" % code) in out and
              "seccomp-io_uring.json" in out and "--io=epoll" in out, out)

    relay, rport, rlog = start("relay-auto-nofilter", relay_argv(":85", "auto"), r"on tcp:127\.0\.0\.1:(\d+)")
    text = open(rlog).read()
    check("no filter, --io=auto: io_uring runs", "I/O backend: io_uring (--io=auto" in text, text[-1500:])
    stop(relay)
    relay, rport, rlog = start("relay-auto-otherfilter", relay_argv(":86", "auto", "none"), r"on tcp:127\.0\.0\.1:(\d+)")
    text = open(rlog).read()
    check("a seccomp filter that allows io_uring, --io=auto: io_uring runs", "I/O backend: io_uring (--io=auto" in text,
          text[-1500:])
    j, err = bench("handshake-otherfilter", "handshake", "tcp://bench:pw@127.0.0.1:%d/" % rport)
    check("... and relays", j and j["errors"] == 0 and j["sessions"] > 0, err)
    stop(relay)
finally:
    stop_all(sockdir)

failed = summary()
sys.exit(1 if failed or not results else 0)
