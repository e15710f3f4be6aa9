"""Faults on either leg of a relayed connection, with the real relay, bench client and
synthetic server. In every case the connection ends with a reason for whoever is still there,
its resources are released (the relay's fd count returns to its baseline), other connections
are untouched, and the relay never spins (CPU time stays low while it waits).

usage: relay_faults_test.py RELAY SYNTHETIC_SERVER BENCH AUTH_TOOL
"""
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

relay_bin, server_bin, bench_bin, auth_bin = [os.path.abspath(p) for p in sys.argv[1:5]]
tmp = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp()
sockdir = tempfile.mkdtemp(prefix="xr-faults-", dir="/tmp")
procs = []
results = []


def check(name, ok, detail=""):
    results.append((name, bool(ok)))
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, "" if ok else ": " + str(detail)[:1500]), flush=True)


def start(name, args, pattern, nofile=None):
    path = os.path.join(tmp, name + ".log")
    log = open(path, "w+")

    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit)
    procs.append(p)
    deadline = time.time() + 20
    while time.time() < deadline:
        m = re.search(pattern, open(path).read())
        if m:
            return p, int(m.group(1)), path
        if p.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit("%s did not start:\n%s" % (name, open(path).read()))


def fds(pid):
    """Open sockets of `pid`: what a leaked connection holds (the sqlite module's pooled
    database files are not counted)."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:
            pass
    return n


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_fds(pid, want, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline and fds(pid) > want:
        time.sleep(0.1)
    return fds(pid)


def bench(mode, url, *extra, timeout=60):
    out = os.path.join(tmp, "b%d.json" % len(results))
    r = subprocess.run([bench_bin, mode, url, "--quiet", "--json", out, "--max-errors=1000"] + list(extra),
                       capture_output=True, text=True, timeout=timeout)
    j = json.load(open(out)) if os.path.exists(out) else {}
    return r.returncode, j, r.stderr


def relay_log(path):
    return open(path).read()


try:
    _, sport, _ = start("server", [server_bin, "--bind=127.0.0.1:0", "--threads=1"], r"listening on 127\.0\.0\.1:(\d+)")
    # A target that accepts and never answers.
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(64)
    mute_port = mute.getsockname()[1]
    # A port nobody listens on.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    s.close()

    db = os.path.join(tmp, "users.db")
    subprocess.run([auth_bin, db, "create"], check=True, capture_output=True)
    for user, port in (("ok", sport), ("dead", dead_port), ("mute", mute_port)):
        subprocess.run([auth_bin, db, "add", user, "pw", "", "", "tcp://127.0.0.1:%d/" % port], check=True,
                       capture_output=True)
    relay, rport, rlog = start("relay", [relay_bin, "--bind-tcp=127.0.0.1:0", "--threads=2", "--server-timeout=2",
                                         "--tcp-auth=sqlite,filename=" + db, "--socket-dir=" + sockdir,
                                         "--max-connections-per-address=0"], r"on tcp:127\.0\.0\.1:(\d+)")
    url = lambda user: "tcp://%s:pw@127.0.0.1:%d/" % (user, rport)
    time.sleep(0.3)
    base = fds(relay.pid)

    # A steady session that must stay untouched by every fault below.
    steady = subprocess.Popen([bench_bin, "latency", url("ok"), "--connections=2", "--duration=25", "--rate=20",
                               "--quiet", "--json", os.path.join(tmp, "steady.json")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    with_steady = fds(relay.pid)

    rc, j, err = bench("handshake", url("dead"), "--connections=1", "--duration=1")
    check("target refuses: client told 'connection error'", rc != 0 and "connection" in err.lower(), err)
    check("target refuses: relay logs it", "Connection refused" in relay_log(rlog), relay_log(rlog)[-1500:])

    rc, j, err = bench("handshake", url("mute"), "--connections=1", "--duration=5", "--timeout=15")
    check("target never answers: ends with a reason after --server-timeout", rc != 0 and "did not answer" in err, err)

    # The target dies mid-stream: a second synthetic server, killed while streaming.
    dying, dport, _ = start("dying", [server_bin, "--bind=127.0.0.1:0", "--threads=1"], r"listening on 127\.0\.0\.1:(\d+)")
    subprocess.run([auth_bin, db, "add", "dying", "pw", "", "", "tcp://127.0.0.1:%d/" % dport], check=True,
                   capture_output=True)
    stream = subprocess.Popen([bench_bin, "throughput", url("dying"), "--connections=2", "--duration=20", "--quiet",
                               "--max-errors=100", "--json", os.path.join(tmp, "dying.json")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    dying.send_signal(signal.SIGKILL)
    _, err = stream.communicate(timeout=30)
    check("target dies mid-stream: client told, bench stops with an error", stream.returncode != 0 and
          ("server shutdown" in err or "closed" in err or "disconnect" in err), err[-600:])
    check("target dies mid-stream: fds released", wait_fds(relay.pid, with_steady) <= with_steady,
          "%d fds, want <= %d" % (fds(relay.pid), with_steady))

    # The client dies mid-stream (SIGKILL: no disconnect packet, just a reset).
    stream = subprocess.Popen([bench_bin, "throughput", url("ok"), "--connections=3", "--duration=20", "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    stream.send_signal(signal.SIGKILL)
    stream.wait()
    check("client dies mid-stream: server legs closed, fds released", wait_fds(relay.pid, with_steady) <= with_steady,
          "%d fds, want <= %d" % (fds(relay.pid), with_steady))

    # A client that reads nothing while the server streams at full speed: memory stays bounded.
    hog = socket.create_connection(("127.0.0.1", rport))
    slow = subprocess.Popen([bench_bin, "throughput", url("ok"), "--connections=1", "--duration=4", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=os.setsid)
    time.sleep(1)
    os.killpg(slow.pid, signal.SIGSTOP)  # the client stops reading; the relay must apply back-pressure
    rss0 = int(re.search(r"VmRSS:\s+(\d+)", open("/proc/%d/status" % relay.pid).read()).group(1))
    time.sleep(3)
    rss1 = int(re.search(r"VmRSS:\s+(\d+)", open("/proc/%d/status" % relay.pid).read()).group(1))
    os.killpg(slow.pid, signal.SIGKILL)
    slow.wait()
    hog.close()
    check("a client that stops reading: relay memory bounded by back-pressure", rss1 - rss0 < 16 * 1024,
          "RSS grew %d KiB in 3 s" % (rss1 - rss0))

    _, err = steady.communicate(timeout=60)
    sj = json.load(open(os.path.join(tmp, "steady.json")))
    check("a steady session through all of the above: no error", steady.returncode == 0 and sj["errors"] == 0, err[-600:])
    check("all connections gone: fds back to the baseline", wait_fds(relay.pid, base) <= base,
          "%d fds, baseline %d" % (fds(relay.pid), base))

    # Buffer ring exhaustion (-ENOBUFS): a relay with only 4 shared receive buffers, 8 streams
    # saturating it, and new logins at the same time. Each must complete (the receive that finds
    # the ring empty reads into the connection's own buffer), the streams stay intact.
    tiny, tport, tlog = start("tiny", [relay_bin, "--bind-tcp=127.0.0.1:0", "--threads=1", "--recv-buffers=4",
                                       "--tcp-auth=sqlite,filename=" + db, "--socket-dir=" + sockdir,
                                       "--max-connections-per-address=0", "--proxy-sockets=false"],
                              r"on tcp:127\.0\.0\.1:(\d+)")
    turl = "tcp://ok:pw@127.0.0.1:%d/" % tport
    flood = subprocess.Popen([bench_bin, "throughput", turl, "--connections=8", "--duration=6", "--quiet",
                              "--json", os.path.join(tmp, "flood.json")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    rc, j, err = bench("handshake", turl, "--connections=4", "--duration=2", "--timeout=10")
    check("ring exhausted: logins still complete", rc == 0 and j.get("sessions", 0) >= 4 and j.get("errors", 1) == 0,
          "rc=%d %s %s" % (rc, j, err[-400:]))
    _, err = flood.communicate(timeout=60)
    fj = json.load(open(os.path.join(tmp, "flood.json")))
    check("ring exhausted: streams verified intact", flood.returncode == 0 and fj["errors"] == 0 and fj.get("payload_bytes", 0) > 0,
          "%s %s" % (fj, err[-400:]))
    check("ring exhausted: counted and logged once", len(re.findall("shared receive buffers in use", open(tlog).read())) == 1,
          open(tlog).read()[-800:])
    tiny.terminate()
    tiny.wait(timeout=20)

    # Accept under fd exhaustion: a relay with only 48 open files.
    small, sport2, slog = start("small", [relay_bin, "--bind-tcp=127.0.0.1:0", "--threads=1", "--tcp-auth=sqlite,filename=" + db,
                                          "--socket-dir=" + sockdir, "--max-connections-per-address=0",
                                          "--proxy-sockets=false"], r"on tcp:127\.0\.0\.1:(\d+)", nofile=48)
    held = []
    for _ in range(60):
        try:
            held.append(socket.create_connection(("127.0.0.1", sport2), timeout=2))
        except OSError:
            break
    cpu0 = cpu_seconds(small.pid)
    time.sleep(3)
    cpu1 = cpu_seconds(small.pid)
    check("fd exhaustion: accepts pause (logged)", "pausing accepts" in open(slog).read(), open(slog).read()[-800:])
    check("fd exhaustion: no spinning (CPU < 0.5 s in 3 s)", cpu1 - cpu0 < 0.5, "%.2f s" % (cpu1 - cpu0))
    for h in held:
        h.close()
    time.sleep(1.5)
    rc, j, err = bench("handshake", "tcp://ok:pw@127.0.0.1:%d/" % sport2, "--connections=1", "--duration=1")
    check("fd exhaustion: recovers once connections close", rc == 0 and j.get("sessions", 0) > 0, err[-600:])
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    subprocess.run(["rm", "-rf", sockdir])

failed = [n for n, ok in results if not ok]
print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
if failed:
    for name in ("relay", "small"):
        path = os.path.join(tmp, name + ".log")
        if os.path.exists(path):
            print("--- %s.log (tail)" % name)
            print("".join(open(path).readlines()[-40:]))
sys.exit(1 if failed else 0)
