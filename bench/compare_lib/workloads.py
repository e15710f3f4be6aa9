"""Workloads: what the bench client does on each path, and how one run becomes a figure."""

import json
import os
import signal
import statistics
import subprocess
import time

from compare_lib import procs


class Workload:
    """One row group of the table: a bench client mode, its size, and the figures it yields."""

    def __init__(self, key, title, mode, connections, small_connections, duration, metrics, aes=False,
                 transport="tcp", resume=False, max_repeats=0, bridge=False, client6=False):
        self.key = key
        self.title = title
        self.mode = mode
        self.connections = connections               # N for every path but xpra proxy
        self.small_connections = small_connections   # N for xpra proxy (and direct at that N)
        self.duration = duration
        self.metrics = metrics                       # [(metric key, unit, higher is better)]
        self.aes = aes                               # client leg AES-CBC (xpra 3.1 --encryption=AES)
        self.transport = transport                   # client leg: tcp, ssl (TLS 1.3) or ws
        self.resume = resume                         # tls-handshake: resume by ticket
        self.max_repeats = max_repeats               # 0: --repeats; else at most this many runs
        self.bridge = bridge                         # bridged: 3.1 client -> relay -> xpra 6.x server
        self.client6 = client6                       # ... or the reverse: a 6.x client (bench client --xpra6) of a 3.1 server

    def connections_for(self, path_key):
        """N for this path: xpra proxy forks one process per connection, so it gets a smaller N."""
        return self.small_connections if path_key == "xpra-proxy" else self.connections


# Figures of the throughput workloads: MB/s, and MB relayed per CPU-second of the proxy's
# processes (not for direct: nothing in between).
THR_METRICS = [("mbps", "MB/s", True), ("mb_per_cpu_s", "MB per proxy CPU-second", True)]

# Figures of the handshake workload: sessions per second, and the relay's CPU per full session
# (milliseconds; paths that report a process to measure with the bench client's --pid).
SESSION_METRICS = [("sessions_per_s", "sessions/s", True), ("cpu_ms_per_session", "proxy CPU-ms per session", False)]

# Figures of the AES workloads: throughput, the relay's CPU over the measured window (cores), and
# throughput per relay core = MB/s / cores.
AES_METRICS = [("mbps", "MB/s", True), ("cpu_cores", "cores", False), ("mbps_per_core", "MB/s per core", True)]


# Figures of the bridge workloads (issue 17): a 3.1 bench client through the relay to a synthetic
# server speaking xpra 6.x (rencodeplus + lz4), every packet translated: MB/s, MB per relay
# CPU-second, and the relay's CPU per stream packet (a 64 KiB chunk and its draw packet) in us.
BRIDGE_METRICS = THR_METRICS + [("us_per_packet", "relay CPU-us per packet", False)]

# The bridge section's workload keys (bench/compare --bridge, or by name in --workloads).
BRIDGE_KEYS = ("brg1", "brgN", "brg1r", "pass1", "passN")


def bridge_workloads(quick, scale=1.0):
    """Bridged streams beside same-generation passthrough through the same relay in the same
    run (pass1/passN: thr1/thrN with the per-packet figure): about 1 minute with 3 repeats."""
    t = 1.0 if quick else max(0.5, 2.0 * scale)
    return [
        Workload("brg1", "Bridged 3.1 <-> 6.x, 1 stream, 64 KiB draw packets", "throughput", 1, 1, t,
                 BRIDGE_METRICS, bridge=True),
        Workload("brg1r", "Bridged 6.x client <-> 3.1 server, 1 stream, 64 KiB draw packets", "throughput", 1, 1, t,
                 BRIDGE_METRICS, bridge=True, client6=True),
        Workload("pass1", "Same generation (passthrough), 1 stream, 64 KiB draw packets", "throughput", 1, 1, t,
                 BRIDGE_METRICS),
        Workload("brgN", "Bridged 3.1 <-> 6.x, 50 concurrent streams, aggregate", "throughput", 50, 50, t,
                 BRIDGE_METRICS, bridge=True),
        Workload("passN", "Same generation (passthrough), 50 concurrent streams, aggregate", "throughput", 50, 50, t,
                 BRIDGE_METRICS),
    ]


def make_workloads(quick, scale=1.0, streams=0):
    """The workloads, sized for < 10 minutes in all (quick: < 1 minute). streams: thrN's
    concurrent streams instead of the default."""
    workloads = _default_workloads(quick, scale)
    if streams > 0:
        for w in workloads:
            if w.key == "thrN":
                w.connections = streams
                w.small_connections = min(w.small_connections, streams)
                w.title = "Throughput, %s concurrent streams, aggregate" % format(streams, ",")
    return workloads


def _default_workloads(quick, scale):
    if quick:
        return [
            Workload("thr1", "Throughput, 1 stream, 64 KiB packets", "throughput", 1, 1, 1.0,
                     THR_METRICS),
            Workload("thrN", "Throughput, 50 concurrent streams, aggregate", "throughput", 50, 4, 1.0,
                     THR_METRICS),
            Workload("latency", "Ping latency at 50 connections", "latency", 50, 4, 1.0,
                     [("p50_us", "us", False), ("p99_us", "us", False)]),
            Workload("sessions", "Full sessions per second (hmac+sha256)", "handshake", 8, 2, 1.0,
                     SESSION_METRICS),
            Workload("idle", "Memory per idle connection at 200 connections", "idle", 200, 3, 0.0,
                     [("kib_per_conn", "KiB", False)]),
            Workload("aes1", "AES client leg, 1 stream, 64 KiB packets", "throughput", 1, 1, 1.0,
                     AES_METRICS, aes=True),
            Workload("aesN", "AES client leg, 10 concurrent streams, aggregate", "throughput", 10, 1, 1.0,
                     AES_METRICS, aes=True),
        ]
    d = lambda s: max(0.5, s * scale)
    return [
        Workload("thr1", "Throughput, 1 stream, 64 KiB packets", "throughput", 1, 1, d(3.0),
                 THR_METRICS),
        Workload("thrN", "Throughput, 1,000 concurrent streams, aggregate", "throughput", 1000, 20, d(4.0),
                 THR_METRICS),
        Workload("latency", "Ping latency at 1,000 connections", "latency", 1000, 20, d(4.0),
                 [("p50_us", "us", False), ("p99_us", "us", False)]),
        Workload("sessions", "Full sessions per second (sqlite, hmac+sha256)", "handshake", 32, 4, d(3.0),
                 SESSION_METRICS),
        Workload("idle", "Memory per idle connection at 5,000 connections", "idle", 5000, 20, 0.0,
                 [("kib_per_conn", "KiB", False)]),
        Workload("aes1", "AES client leg, 1 stream, 64 KiB packets", "throughput", 1, 1, d(3.0),
                 AES_METRICS, aes=True),
        Workload("aesN", "AES client leg, 50 concurrent streams, aggregate", "throughput", 50, 50, d(4.0),
                 AES_METRICS, aes=True),
    ]


# Figures of the TLS handshake workloads (bench client tls-handshake mode: connect, TLS 1.3
# handshake, close; resumed: with the ticket of the loop's previous connection).
TLS_HS_METRICS = [("handshakes_per_s", "handshakes/s", True), ("cpu_ms_per_handshake", "proxy CPU-ms per handshake", False)]

# Memory per idle connection: PSS growth (the plain idle row's figure) and RSS growth.
IDLE_TLS_METRICS = [("kib_per_conn", "KiB PSS", False), ("rss_kib_per_conn", "KiB RSS", False)]

# The --tls section's workload keys (bench/compare --tls / --tls-only, or by name in --workloads).
TLS_KEYS = ("tls1", "tlsN", "tlshs", "tlsres", "tlslogin", "tlsidle", "ws1", "wsN")


def tls_workloads(quick, scale=1.0):
    """TLS 1.3 termination (relay vs HAProxy vs nginx) and the relay's WebSocket leg: about
    3 minutes with the default 3 repeats (the idle row runs once), quick: < 1 minute."""
    d = lambda s: max(0.5, s * scale)
    n = {"N": 10, "hs": 8, "login": 8, "idle": 200} if quick else {"N": 50, "hs": 16, "login": 32, "idle": 5000}
    t = 1.0 if quick else d(2.0)
    return [
        Workload("tls1", "TLS 1.3 termination, 1 stream, 64 KiB packets", "throughput", 1, 1, t, THR_METRICS,
                 transport="ssl"),
        Workload("tlsN", "TLS 1.3 termination, %d concurrent streams, aggregate" % n["N"], "throughput", n["N"],
                 n["N"], t, THR_METRICS, transport="ssl"),
        Workload("tlshs", "TLS 1.3 full handshakes per second (%d loops)" % n["hs"], "tls-handshake", n["hs"],
                 n["hs"], t, TLS_HS_METRICS, transport="ssl"),
        Workload("tlsres", "TLS 1.3 resumed handshakes per second (tickets, %d loops)" % n["hs"], "tls-handshake",
                 n["hs"], n["hs"], t, TLS_HS_METRICS, transport="ssl", resume=True),
        Workload("tlslogin", "Full xpra logins over TLS 1.3 per second (%d loops)" % n["login"], "handshake",
                 n["login"], n["login"], t, SESSION_METRICS, transport="ssl"),
        Workload("tlsidle", "Memory per idle TLS connection at %s connections" % format(n["idle"], ","), "idle",
                 n["idle"], n["idle"], 0.0, IDLE_TLS_METRICS, transport="ssl", max_repeats=1),
        Workload("ws1", "WebSocket client leg, 1 stream, 64 KiB packets", "throughput", 1, 1, t, AES_METRICS,
                 transport="ws"),
        Workload("wsN", "WebSocket client leg, %d concurrent streams, aggregate" % n["N"], "throughput", n["N"],
                 n["N"], t, AES_METRICS, transport="ws"),
    ]


HANDSHAKE_TIMEOUT_S = 60
LATENCY_PING_RATE = 10      # pings per second per connection: 10,000/s at 1,000 connections


class RunError(Exception):
    """A run that produced no figure; the message says why."""


def client_argv(ctx, workload, path, connections, json_path, duration=None):
    """The bench client's command line for one run."""
    url, extra = path.client_target(workload)
    argv = [ctx.bins["bench_client"], workload.mode, url,
            "--connections=%d" % connections,
            "--duration=%g" % (duration if duration is not None else workload.duration),
            "--size=%d" % ctx.stream_size, "--json", json_path, "--quiet",
            # held modes attach every connection before the clock starts; with streams already
            # flowing on the first ones the last handshakes can take tens of seconds on 2 cores
            "--timeout=%d" % HANDSHAKE_TIMEOUT_S]
    if workload.mode == "latency":
        argv.append("--rate=%g" % LATENCY_PING_RATE)
    if workload.mode in ("throughput", "latency"):
        # Start every handshake at once so they finish before the first streams saturate the
        # cores, and reconnect a connection that fails to attach instead of ending the run: the
        # failures are reported next to the figure.
        argv += ["--ramp=%d" % connections, "--max-errors=%d" % max(1, connections)]
    return argv + extra


def run_client(ctx, workload, path, connections, tag):
    """Runs the bench client to completion and returns its JSON report (dict)."""
    json_path = os.path.join(ctx.tmpdir, "%s-%s-%s.json" % (workload.key, path.key, tag))
    log_path = os.path.join(ctx.tmpdir, "%s-%s-%s.log" % (workload.key, path.key, tag))
    argv = client_argv(ctx, workload, path, connections, json_path)
    timeout = workload.duration + HANDSHAKE_TIMEOUT_S + 60 + connections / 50.0
    with open(log_path, "wb") as log:
        log.write(("$ %s\n" % " ".join(argv)).encode())
        log.flush()
        try:
            rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            raise RunError("bench client timed out after %.0f s (log: %s)" % (timeout, log_path))
    report = _read_json(json_path)
    if rc == 1 and report is not None and _only_connection_errors(report) \
            and (report.get("errors") or 0) < connections:
        return report   # figures are valid; extract() records the reconnected connections
    if rc != 0 or report is None:
        raise RunError("bench client exited with %s (log: %s): %s" % (rc, log_path, _tail(log_path)))
    return report


DATA_ERROR_WORDS = ("corrupt", "gap", "checksum", "crc", "sequence", "size mismatch", "trailer")


def _only_connection_errors(report):
    """True when the run has figures and its errors are failed attaches, not bad data."""
    reasons = report.get("error_reasons") or []
    if not reasons or not report.get("attached"):
        return False
    for r in reasons:
        text = str(r.get("reason", "")).lower()
        if any(w in text for w in DATA_ERROR_WORDS):
            return False
    return True


def measure(ctx, workload, path, connections, tag):
    """One run of workload on path: returns {metric: value, ...} plus raw client fields."""
    if workload.mode == "idle":
        return measure_idle(ctx, workload, path, connections, tag)
    path.prepare(workload)
    # Not for xpra proxy: its per-connection processes fork from a daemon and exit with the
    # run, so part of their CPU may be in no process the sample can see.
    pid = path.measured_pid(workload) if workload.mode == "throughput" and not workload.aes \
        and path.key != "xpra-proxy" else None
    if workload.transport == "ssl" and workload.mode != "throughput":
        pid = path.measured_pid(workload)   # CPU per handshake / login: the whole process tree
    cpu0 = procs.tree_cpu_seconds(pid) if pid else None
    report = run_client(ctx, workload, path, connections, tag)
    out = extract(workload, report)
    if pid:
        # The proxy's CPU (all its processes) over the whole client run, against every byte the
        # client received in that run: MB relayed per proxy CPU-second. Unlike MB/s this does
        # not depend on what else shares the cores.
        cpu = procs.tree_cpu_seconds(pid) - cpu0
        wire = report.get("wire_bytes_in")
        if cpu > 0 and isinstance(wire, (int, float)) and workload.mode == "throughput":
            out["mb_per_cpu_s"] = wire / 1e6 / cpu
        # TLS handshakes and logins: the proxy tree's CPU over the whole run (nginx's workers are
        # processes the bench client's --pid does not see) per handshake or login counted.
        count = report.get("handshakes") if workload.mode == "tls-handshake" else report.get("sessions")
        if workload.mode != "throughput" and cpu > 0 and count:
            key = "cpu_ms_per_handshake" if workload.mode == "tls-handshake" else "cpu_ms_per_session"
            out[key] = 1000.0 * cpu / count
    return out


def extract(workload, report):
    """Maps the bench client's JSON onto the workload's metrics."""
    out = {"client": report}
    if workload.mode == "throughput":
        out["mbps"] = _num(report, "mb_per_s")
        # The relay's CPU over the measured window (bench client --pid: /proc/PID/stat utime+stime).
        if isinstance(report.get("pid_cpu_cores"), (int, float)):
            out["cpu_cores"] = float(report["pid_cpu_cores"])
            if out["cpu_cores"] > 0:
                out["mbps_per_core"] = out["mbps"] / out["cpu_cores"]
            # CPU-seconds per second over packets per second: the relay's CPU per stream packet.
            pps = report.get("packets_per_s")
            if isinstance(pps, (int, float)) and pps > 0:
                out["us_per_packet"] = 1e6 * out["cpu_cores"] / pps
    elif workload.mode == "latency":
        rtt = report.get("rtt_us") or {}
        out["p50_us"] = _num(rtt, "p50")
        out["p99_us"] = _num(rtt, "p99")
    elif workload.mode == "tls-handshake":
        out["handshakes_per_s"] = _num(report, "handshakes_per_s")
        out["resumed_fraction"] = _num(report, "resumed_fraction")
        cores = report.get("pid_cpu_cores")
        if isinstance(cores, (int, float)) and out["handshakes_per_s"] > 0:
            out["cpu_ms_per_handshake"] = 1000.0 * cores / out["handshakes_per_s"]
        # A resumed row is only one if (nearly) every handshake in the window resumed.
        if workload.resume and out["resumed_fraction"] < 0.9:
            raise RunError("only %.0f%% of the handshakes resumed" % (100 * out["resumed_fraction"]))
        if not workload.resume and out["resumed_fraction"] > 0:
            raise RunError("%.0f%% of the full handshakes resumed" % (100 * out["resumed_fraction"]))
    elif workload.mode == "handshake":
        out["sessions_per_s"] = _num(report, "sessions_per_s")
        cores = report.get("pid_cpu_cores")
        if isinstance(cores, (int, float)) and out["sessions_per_s"] > 0:
            # CPU-seconds per second over sessions per second: CPU per session.
            out["cpu_ms_per_session"] = 1000.0 * cores / out["sessions_per_s"]
    if workload.mode == "throughput" and not out["mbps"] > 0:
        raise RunError("no stream data was measured (%s connection errors)" % report.get("errors", 0))
    if workload.mode == "latency" and not report.get("pings_per_s", 1):
        raise RunError("no ping was answered (%s connection errors)" % report.get("errors", 0))
    errors = report.get("errors", 0) or 0
    if errors:
        out["errors"] = errors
        out["error_reasons"] = report.get("error_reasons", [])
    return out


def measure_idle(ctx, workload, path, connections, tag):
    """Opens N idle sessions through path and returns the proxy's memory growth per connection.

    The path is restarted first so every run starts from a fresh process (an allocator that kept
    freed memory from an earlier run would otherwise hide the cost). Memory is the sum over the
    proxy's process tree (nginx workers, xpra proxy instances) of PSS from /proc/PID/smaps_rollup;
    RSS is recorded too.
    """
    pid = path.measured_pid(workload)
    if pid is None:
        raise RunError("nothing to measure on this path")
    path.stop()
    path.start()
    path.prepare(workload)
    pid = path.measured_pid(workload)
    time.sleep(0.5)
    before = procs.tree_memory_kib(pid)
    json_path = os.path.join(ctx.tmpdir, "%s-%s-%s.json" % (workload.key, path.key, tag))
    hold = 30.0 + connections / 100.0
    # Not --quiet: the client says when every connection is attached (logged in), which the
    # established TCP count cannot tell (5,000 connections are up well before the last logins
    # end; stopping the client then closes logins whose passwords are being checked, which the
    # relay counts as failed logins, and the memory would miss their sessions).
    argv = [a for a in client_argv(ctx, workload, path, connections, json_path, duration=hold) if a != "--quiet"]
    argv.append("--pid=%d" % pid)
    client = procs.Proc("bench-client", argv,
                        os.path.join(ctx.tmpdir, "%s-%s-%s.log" % (workload.key, path.key, tag)))
    start = time.monotonic()
    try:
        count = _wait_connections(path.client_port(workload), connections, client, timeout=hold - 5)
        attached = count >= connections and _wait_attached(client, hold - 5 - (time.monotonic() - start))
        if attached:
            after = _wait_stable_memory(pid, client)
    finally:
        client.stop(signal.SIGINT, grace=10)
    if count < connections:
        raise RunError("only %d of %d connections were established (log: %s)"
                       % (count, connections, client.log_path))
    if not attached:
        raise RunError("%d connections were established but not all attached within %.0f s (log: %s): %s"
                       % (count, hold - 5, client.log_path, _tail(client.log_path, 3)))
    _wait_drained(path.client_port(workload))
    out = {
        "connections": count,
        "before_kib": before,
        "after_kib": after,
        "kib_per_conn": (after["pss"] - before["pss"]) / count,
        "rss_kib_per_conn": (after["rss"] - before["rss"]) / count,
        "processes_after": after["processes"],
    }
    report = _read_json(json_path)
    if report is not None:
        out["client"] = report
    return out


def _wait_connections(port, want, client, timeout):
    """Waits until want connections to port are established and the count stops growing."""
    deadline = time.monotonic() + timeout
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = procs.established(port)
        if n != last:
            last, last_change = n, time.monotonic()
        if n >= want:
            return n
        if client.poll() is not None:
            return n
        if time.monotonic() - last_change > 15:
            return n
        time.sleep(0.2)
    return last


def _wait_attached(client, timeout):
    """Waits until the (not --quiet) bench client logs that every connection is attached."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(client.log_path, "rb") as f:
                if b"connections attached" in f.read():
                    return True
        except OSError:
            pass
        if client.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def _wait_stable_memory(pid, client, timeout=20.0):
    """Samples the tree's memory until two samples 1 s apart differ by < 0.5%; returns the last."""
    deadline = time.monotonic() + timeout
    prev = procs.tree_memory_kib(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        cur = procs.tree_memory_kib(pid)
        if abs(cur["pss"] - prev["pss"]) <= 0.005 * max(prev["pss"], 1) and cur["processes"] == prev["processes"]:
            return cur
        prev = cur
    return prev


def _wait_drained(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and procs.established(port) > 0:
        time.sleep(0.2)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _tail(path, n=5):
    try:
        with open(path, "rb") as f:
            return " | ".join(f.read().decode(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _num(report, *names):
    for n in names:
        v = report.get(n)
        if isinstance(v, (int, float)):
            return float(v)
    raise RunError("bench client JSON lacks %s: %s" % (" / ".join(names), json.dumps(report)[:300]))


def median(values):
    """Median of the numbers in values (None if empty)."""
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None
