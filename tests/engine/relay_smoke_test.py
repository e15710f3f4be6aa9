"""Smoke test of the whole relay with the bench tools: xpra-relay-bench -> xpra-relay (two
reactor threads, sqlite auth) -> xpra-synthetic-server, in every bench mode for ~2 s.
Asserts that sessions complete, pings come back and streamed bytes arrive intact (the bench
verifies sequence and checksum of every packet), that a wrong password is refused, that a
server's own challenge is answered from the entry's password= option, that a relay with AES on
its client legs (--tcp-encryption=AES) relays a verified stream to an AES bench client and
refuses a wrong key and a plain client, and that SIGTERM ends the relay with exit code 0.
Not how fast.

usage: relay_smoke_test.py RELAY SYNTHETIC_SERVER BENCH AUTH_TOOL
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

relay_bin, server_bin, bench_bin, auth_bin = [os.path.abspath(p) for p in sys.argv[1:5]]
# The I/O backend under test: "--io=epoll" or "--io=uring" (one sh_test target each), given to
# every relay this test starts.
io_args = sys.argv[5:]
tmp = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp()
procs = []
results = []


def start(name, args, pattern):
    """Starts a process logging to tmp/name.log (or its --log-file) and waits for `pattern`
    (one group: the port)."""
    log_arg = [a for a in args if a.startswith("--log-file=")]
    log = open(log_arg[0].split("=", 1)[1] if log_arg else os.path.join(tmp, name + ".log"), "a+")
    if args[0] == relay_bin:
        args = args[:1] + io_args + args[1:]
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    deadline = time.time() + 20
    while time.time() < deadline:
        log.seek(0)
        m = re.search(pattern, log.read())
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            break
        time.sleep(0.05)
    log.seek(0)
    sys.exit("%s did not start:\n%s" % (name, log.read()))


def bench(name, mode, url, expect_ok=True, *extra):
    out = os.path.join(tmp, name + ".json")
    r = subprocess.run([bench_bin, mode, url, "--connections=3", "--duration=2", "--quiet", "--json", out] + list(extra),
                       capture_output=True, text=True, timeout=120)
    j = json.load(open(out)) if os.path.exists(out) else {}
    if expect_ok and r.returncode != 0:
        return None, "exit %d: %s" % (r.returncode, r.stderr[-800:])
    if not expect_ok and r.returncode == 0:
        return None, "exit 0, wanted a failure"
    return j, r.stderr


def terminate(proc):
    """SIGTERM, then its exit status (or why there is none)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        return "still running after 15 s"


def check(name, ok, detail=""):
    results.append((name, bool(ok)))
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, "" if ok else ": " + str(detail)[:2000]))


try:
    _, sport = start("server", [server_bin, "--bind=127.0.0.1:0", "--threads=1"], r"listening on 127\.0\.0\.1:(\d+)")
    _, cport = start("server-pw", [server_bin, "--bind=127.0.0.1:0", "--threads=1", "--password=srv-secret"],
                     r"listening on 127\.0\.0\.1:(\d+)")
    db = os.path.join(tmp, "users.db")
    subprocess.run([auth_bin, db, "create"], check=True, capture_output=True)
    subprocess.run([auth_bin, db, "add", "bench", "pw", "", "", "tcp://127.0.0.1:%d/" % sport], check=True,
                   capture_output=True)
    subprocess.run([auth_bin, db, "add", "chal", "pw2", "", "", "tcp://127.0.0.1:%d/" % cport, "", "password=srv-secret"],
                   check=True, capture_output=True)
    # Unix socket paths are limited to 108 bytes; Bazel's TEST_TMPDIR is too deep for them.
    sockdir = tempfile.mkdtemp(prefix="xr-smoke-", dir="/tmp")
    relay_log = os.path.join(tmp, "relay-file.log")
    relay, rport = start("relay", [relay_bin, ":77", "--bind-tcp=127.0.0.1:0", "--threads=2",
                                   "--tcp-auth=sqlite,filename=" + db, "--socket-dir=" + sockdir,
                                   "--log-file=" + relay_log, "--max-logins-per-address=0"],
                         r"on tcp:127\.0\.0\.1:(\d+)")
    url = "tcp://bench:pw@127.0.0.1:%d/" % rport
    want = {"--io=epoll": "I/O backend: epoll", "--io=uring": "I/O backend: io_uring"}.get(" ".join(io_args))
    if want:
        check("start-up line names the backend (%s)" % want, want in open(relay_log).read(), open(relay_log).read()[-800:])

    j, err = bench("handshake", "handshake", url)
    check("handshake through the relay", j and j["errors"] == 0 and j["sessions"] > 0, err)
    j, err = bench("latency", "latency", url)
    check("pings through the relay", j and j["errors"] == 0 and j["pings"] > 0 and j["rtt_us"]["p50"] > 0, err)
    j, err = bench("throughput", "throughput", url)
    check("stream intact through the relay",
          j and j["errors"] == 0 and j["packets"] > 0 and j["payload_bytes"] == j["packets"] * 65536, err)
    # Large server packets go through the splice path (their payload never enters the relay's
    # memory); the close log line says how many bytes were spliced.
    lines = re.findall(r"user=bench closed: client \d+ bytes in / \d+ out, server (\d+) in / \d+ out \((\d+) spliced\)",
                       open(relay_log).read())
    check("64 KiB packets: most server bytes spliced",
          any(int(sp) > int(total) // 2 for total, sp in lines), lines)
    # Packet sizes around the splice threshold (32 KiB) and small ones, several streams: intact.
    for size in ("1000", "32760", "32768", "40001", "262144"):
        j, err = bench("throughput_%s" % size, "throughput", url, True, "--size=" + size)
        check("stream of %s-byte packets intact" % size,
              j and j["errors"] == 0 and j["packets"] > 0 and j["payload_bytes"] == j["packets"] * int(size), err)
    j, err = bench("idle", "idle", url, True, "--connections=50", "--pid=%d" % relay.pid)
    check("50 idle relayed connections", j and j["errors"] == 0 and j["held"] == 50, err)
    j, err = bench("server_challenge", "latency", "tcp://chal:pw2@127.0.0.1:%d/" % rport)
    check("server challenge answered from password= option", j and j["errors"] == 0 and j["pings"] > 0, err)
    # Last on this relay before the AES one: its failures put 127.0.0.1 in back-off for a while.
    j, err = bench("wrong_password", "handshake", "tcp://bench:nope@127.0.0.1:%d/" % rport, False)
    check("wrong password refused", j is not None and "authentication" in err.lower(), err)
    # AES-CBC on the client leg (xpra 3.1 --encryption=AES), the server leg plain.
    key = os.path.join(tmp, "aes.key")
    with open(key, "w") as f:
        f.write("smoke-aes-key-0123456789\n")
    wrong_key = os.path.join(tmp, "wrong.key")
    with open(wrong_key, "w") as f:
        f.write("not-the-key\n")
    aes_relay, aport = start("relay-aes", [relay_bin, ":78", "--bind-tcp=127.0.0.1:0", "--threads=2",
                                           "--tcp-auth=sqlite,filename=" + db, "--proxy-sockets=false",
                                           "--socket-dir=" + sockdir, "--tcp-encryption=AES", "--tcp-encryption-keyfile=" + key,
                                           "--max-logins-per-address=0", "--max-kdf-iterations=100000000",
                                           "--log-file=" + os.path.join(tmp, "relay-aes.log")],
                             r"on tcp:127\.0\.0\.1:(\d+)")
    aes_url = "tcp://bench:pw@127.0.0.1:%d/" % aport
    aes = ["--encryption=AES", "--encryption-keyfile=" + key]
    j, err = bench("aes_throughput", "throughput", aes_url, True, "--pid=%d" % aes_relay.pid, *aes)
    check("AES: stream intact through the relay",
          j and j["errors"] == 0 and j.get("encryption") == "AES" and j["packets"] > 0
          and j["payload_bytes"] == j["packets"] * 65536 and j.get("pid_cpu_seconds", 0) > 0, err)
    j, err = bench("aes_latency", "latency", aes_url, True, *aes)
    check("AES: pings through the relay", j and j["errors"] == 0 and j["pings"] > 0, err)
    j, err = bench("aes_handshake", "handshake", aes_url, True, *aes)
    check("AES: sessions end cleanly", j and j["errors"] == 0 and j["sessions"] > 0, err)
    j, err = bench("aes_wrong_key", "handshake", aes_url, False, "--encryption=AES",
                   "--encryption-keyfile=" + wrong_key)
    # The relay keys its challenge with its own key: our decryption of it fails ("AES padding error -
    # wrong key?"), or, should garbage pass the padding check, decoding it does.
    check("AES: wrong key refused", j is not None and j.get("errors", 0) > 0
          and ("wrong key" in err.lower() or "protocol error" in err.lower()), err)
    j, err = bench("aes_plain_client", "handshake", aes_url, False)
    check("AES: plain client refused", j is not None and "encryption" in err.lower(), err)
    rc = terminate(aes_relay)
    check("AES: SIGTERM exit 0", rc == 0, rc)

    # The bench client over TLS and WebSocket (what bench/compare --tls runs): ssl://, ws://,
    # wss:// streams intact, TLS handshakes full and resumed by ticket.
    cert, tkey = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", tkey, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    tls_ports = {}
    for scheme in ("ssl", "ws", "wss"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            tls_ports[scheme] = s.getsockname()[1]
    tls_relay, _ = start("relay-tls", [relay_bin, ":79", "--threads=2", "--tcp-auth=sqlite,filename=" + db,
                                       "--proxy-sockets=false", "--socket-dir=" + sockdir,
                                       "--ssl-cert=" + cert, "--ssl-key=" + tkey, "--max-logins-per-address=0",
                                       "--ssl-max-handshake-rate-per-address=0"]
                         + ["--bind-%s=127.0.0.1:%d" % (k, v) for k, v in tls_ports.items()]
                         + ["--log-file=" + os.path.join(tmp, "relay-tls.log")],
                         r"wss:127\.0\.0\.1:(\d+)")
    for scheme in ("ssl", "ws", "wss"):
        j, err = bench("%s_throughput" % scheme, "throughput", "%s://bench:pw@127.0.0.1:%d/" % (scheme, tls_ports[scheme]),
                       True, *(["--tls-version=1.3"] if scheme != "ws" else []))
        check("%s: stream intact through the relay" % scheme,
              j and j["errors"] == 0 and j["packets"] > 0 and j["payload_bytes"] == j["packets"] * 65536
              and (j.get("tls", "").startswith("TLSv1.3") if "ss" in scheme else "tls" not in j), err)
    ssl_url = "ssl://bench:pw@127.0.0.1:%d/" % tls_ports["ssl"]
    j, err = bench("ssl_handshake", "handshake", ssl_url)
    check("ssl: xpra logins over TLS", j and j["errors"] == 0 and j["sessions"] > 0, err)
    j, err = bench("tls_full", "tls-handshake", "ssl://127.0.0.1:%d/" % tls_ports["ssl"])
    check("TLS handshakes, full", j and j["errors"] == 0 and j["handshakes"] > 0 and j["resumed"] == 0, err)
    j, err = bench("tls_resumed", "tls-handshake", "ssl://127.0.0.1:%d/" % tls_ports["ssl"], True, "--tls-resume")
    check("TLS handshakes, resumed by ticket", j and j["errors"] == 0 and j["handshakes"] > 0
          and j["resumed_fraction"] > 0.9, err)
    j, err = bench("ws_on_ssl_port", "handshake", "ws://bench:pw@127.0.0.1:%d/" % tls_ports["ssl"], False)
    check("ws:// to a TLS-only port fails with a reason",
          j is not None and j.get("errors", 0) > 0 and "during the WebSocket upgrade" in err, err)
    rc = terminate(tls_relay)
    check("TLS relay: SIGTERM exit 0", rc == 0, rc)
    tls_log = open(os.path.join(tmp, "relay-tls.log")).read()
    check("TLS relay: the plain request on the TLS port logged with its reason",
          re.search(r"ssl: TLS: TLS handshake failed: .*http request", tls_log), tls_log[-1500:])

    check("control socket of the relay exists", os.path.exists(os.path.join(sockdir, os.uname().nodename + "-77")),
          os.listdir(sockdir) if os.path.isdir(sockdir) else "no socket dir")

    # SIGHUP: the log file is re-opened (after rotation) and auth reloaded; sessions carry on.
    os.rename(relay_log, relay_log + ".1")
    held = subprocess.Popen([bench_bin, "latency", url, "--connections=3", "--duration=3", "--quiet", "--json",
                             os.path.join(tmp, "sighup.json")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(1.5)
    relay.send_signal(signal.SIGHUP)
    _, held_err = held.communicate(timeout=60)
    check("SIGHUP: held connections carry on", held.returncode == 0, held_err[-800:])
    deadline = time.time() + 5
    while time.time() < deadline and not (os.path.exists(relay_log) and "SIGHUP" in open(relay_log).read()):
        time.sleep(0.1)
    check("SIGHUP: log file re-opened", os.path.exists(relay_log) and "SIGHUP" in open(relay_log).read(),
          os.listdir(tmp))
    subprocess.run([auth_bin, db, "add", "late", "pw3", "", "", "tcp://127.0.0.1:%d/" % sport], check=True,
                   capture_output=True)
    relay.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    j, err = bench("after_reload", "handshake", "tcp://late:pw3@127.0.0.1:%d/" % rport)
    check("user added to the database logs in", j and j["errors"] == 0 and j["sessions"] > 0, err)

    rc = terminate(relay)
    check("SIGTERM: exit 0", rc == 0, rc)
    check("SIGTERM: socket files removed", not [f for f in os.listdir(sockdir) if "-77" in f or "proxy-" in f],
          os.listdir(sockdir))
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    if "sockdir" in globals():
        subprocess.run(["rm", "-rf", sockdir])

failed = [n for n, ok in results if not ok]
print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
if failed:
    for path in [os.path.join(tmp, n) for n in ("relay-file.log", "relay-file.log.1", "server.log", "server-pw.log")]:
        name = os.path.basename(path)
        if os.path.exists(path):
            print("--- %s.log (tail)" % name)
            print("".join(open(path).readlines()[-30:]))
sys.exit(1 if failed else 0)
