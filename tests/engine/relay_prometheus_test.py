"""The relay's metrics as an ops team reads them (issue 19): a real Prometheus server (Debian
`prometheus`), started here on a free loopback port with its own config (scrape interval 1 s)
and data dir, scrapes the relay's --bind-metrics endpoint while the relay does N successful
and M failed logins (raw clients, fake targets); PromQL over Prometheus' HTTP API
(/api/v1/query) then returns N and M, the relaying connections, the login-latency histogram's
count, the relayed bytes and the backend in use. The endpoint's 404 is checked directly.

usage: relay_prometheus_test.py RELAY AUTH_TOOL [RELAY_ARGS...]
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_lib import *  # noqa: E402,F401,F403  (check, start, RawClient, FakeTarget, wire, ...)
from relay_lib import procs, tmp  # noqa: E402

relay_bin, auth_bin = [os.path.abspath(p) for p in sys.argv[1:3]]
set_relay_args(relay_bin, sys.argv[3:])  # e.g. --io=epoll
prom_bin = need_program("prometheus", "prometheus")
sockdir = tempfile.mkdtemp(prefix="xr-prom-", dir="/tmp")
N, M = 3, 2


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError as e:
        return None, str(e)


def query(prom_port, promql):
    """The value of a PromQL instant query with one result (None when none)."""
    status, body = http_get("http://127.0.0.1:%d/api/v1/query?%s" % (prom_port, urllib.parse.urlencode({"query": promql})))
    if status != 200:
        return None
    res = json.loads(body)["data"]["result"]
    return float(res[0]["value"][1]) if len(res) == 1 else None


def wait_value(prom_port, promql, want, timeout=20):
    deadline = time.time() + timeout
    v = None
    while time.time() < deadline:
        v = query(prom_port, promql)
        if v == want:
            return v
        time.sleep(0.5)
    return v


try:
    targets = [FakeTarget() for _ in range(N)]
    db = os.path.join(tmp, "users.db")
    subprocess.run([auth_bin, db, "create"], check=True, capture_output=True)
    for i, t in enumerate(targets):
        subprocess.run([auth_bin, db, "add", "u%d" % i, "pw", "", "", "tcp://127.0.0.1:%d/" % t.port], check=True,
                       capture_output=True)
    mport = free_port()
    relay, rport, rlog = start("relay", [relay_bin, "--bind-tcp=127.0.0.1:0", "--tcp-auth=sqlite,filename=" + db,
                                         "--socket-dir=" + sockdir, "--threads=2",
                                         "--bind-metrics=127.0.0.1:%d" % mport],
                               r"on tcp:127\.0\.0\.1:(\d+)")
    check("the start-up log names the metrics endpoint",
          "metrics on http://127.0.0.1:%d/metrics" % mport in relay_log(rlog), relay_log(rlog)[-800:])
    status, _ = http_get("http://127.0.0.1:%d/other" % mport)
    check("the endpoint answers 404 for other paths", status == 404, status)

    pport = free_port()
    pdir = os.path.join(tmp, "prometheus")
    os.makedirs(pdir)
    pcfg = os.path.join(pdir, "prometheus.yml")
    with open(pcfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: relay\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % mport)
    plog = open(os.path.join(tmp, "prometheus.log"), "w")
    prom = subprocess.Popen([prom_bin, "--config.file=" + pcfg, "--storage.tsdb.path=" + os.path.join(pdir, "data"),
                             "--web.listen-address=127.0.0.1:%d" % pport], stdout=plog, stderr=subprocess.STDOUT,
                            cwd=pdir)
    procs.append(prom)
    deadline = time.time() + 30
    while time.time() < deadline and http_get("http://127.0.0.1:%d/-/ready" % pport)[0] != 200:
        if prom.poll() is not None:
            break
        time.sleep(0.3)
    check("Prometheus is ready", http_get("http://127.0.0.1:%d/-/ready" % pport)[0] == 200,
          open(os.path.join(tmp, "prometheus.log")).read()[-1500:])
    check("Prometheus scrapes the relay (up == 1)", wait_value(pport, 'up{job="relay"}', 1.0) == 1.0,
          query(pport, 'up{job="relay"}'))

    clients = []
    for i in range(N):
        c = RawClient(rport)
        c.login("u%d" % i)
        clients.append(c)
    for i in range(M):
        c = RawClient(rport)
        try:
            c.login("u0", "wrong")
        except AssertionError:
            pass
        c.close()
    # Some bytes through one relayed connection.
    clients[0].send(["ping", 1, 2, "x" * 1000])

    got = wait_value(pport, 'sum(xpra_relay_logins_total{result="ok"})', float(N))
    check("PromQL: successful logins == N (%d)" % N, got == N, got)
    got = wait_value(pport, 'sum(xpra_relay_logins_total{result="failed"})', float(M))
    check("PromQL: failed logins == M (%d)" % M, got == M, got)
    got = wait_value(pport, 'xpra_relay_logins_total{result="failed",reason="authentication"}', float(M))
    check("PromQL: the failures' reason is 'authentication'", got == M, got)
    got = wait_value(pport, 'sum(xpra_relay_connections{state="relaying"})', float(N))
    check("PromQL: N connections relaying now", got == N, got)
    got = wait_value(pport, 'sum(xpra_relay_login_seconds_count)', float(N))
    check("PromQL: the login-latency histogram counted N logins", got == N, got)
    got = wait_value(pport, 'xpra_relay_server_handshake_seconds_count', float(N))
    check("PromQL: the server-handshake histogram counted N handshakes", got == N, got)
    deadline = time.time() + 15
    got = None
    while time.time() < deadline:
        got = query(pport, 'xpra_relay_bytes_total{direction="to_server",path="copy"}')
        if got and got >= 1000:
            break
        time.sleep(0.5)
    check("PromQL: relayed bytes to the server counted on the copy path", got and got >= 1000, got)
    got = query(pport, 'count(xpra_relay_backend == 1)')
    check("PromQL: one backend in use", got == 1, got)
    backend = re.search(r"I/O backend: (\S+)", relay_log(rlog)).group(1)
    got = query(pport, 'xpra_relay_backend{backend="%s"}' % backend)
    check("PromQL: the backend in use is the one the start-up line names (%s)" % backend, got == 1, got)
    check("PromQL: build info present", query(pport, 'count(xpra_relay_build_info)') == 1)

    for c in clients:
        c.close()
    got = wait_value(pport, 'sum(xpra_relay_connections)', 0.0)
    check("PromQL: connections back to 0 once the clients leave", got == 0, got)
    check("the relay is still up", relay.poll() is None)
finally:
    stop_all(sockdir)
failed = summary()
sys.exit(1 if failed else 0)
