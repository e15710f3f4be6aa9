"""Login back-off end to end, with the real relay, bench client and synthetic server: six failed
logins from one source put it in back-off (the next login is refused with the wait), and once the
wait is over a login with the right password gets through, over ws:// and tcp://. Before the fix
in engine/limits.h it waited in challenge-sent until its login timeout (found by bench/compare
--tls-only, where the idle row's client left six failures behind and every WebSocket row after it
timed out).

usage: relay_backoff_test.py RELAY SYNTHETIC_SERVER BENCH AUTH_TOOL [--io=...]
"""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_lib import RawClient, check, free_port, relay_log, set_relay_args, start, stop_all, summary  # noqa: E402
from relay_lib import results, tmp  # noqa: E402

relay_bin, server_bin, bench_bin, auth_bin = [os.path.abspath(p) for p in sys.argv[1:5]]
set_relay_args(relay_bin, sys.argv[5:])
sockdir = tempfile.mkdtemp(prefix="xr-backoff-", dir="/tmp")


def login(url, timeout=30):
    """One handshake loop for 2 s: (exit code, bench JSON, stderr)."""
    out = os.path.join(tmp, "b%d.json" % len(results))
    r = subprocess.run([bench_bin, "handshake", url, "--connections=1", "--duration=2", "--quiet", "--timeout=20",
                        "--json", out], capture_output=True, text=True, timeout=timeout)
    j = json.load(open(out)) if os.path.exists(out) else {}
    return r.returncode, j, r.stderr


rlog = None
try:
    _, sport, _ = start("server", [server_bin, "--bind=127.0.0.1:0", "--threads=1"], r"listening on 127\.0\.0\.1:(\d+)")
    db = os.path.join(tmp, "users.db")
    subprocess.run([auth_bin, db, "create"], check=True, capture_output=True)
    subprocess.run([auth_bin, db, "add", "bench", "pw", "", "", "tcp://127.0.0.1:%d/" % sport], check=True,
                   capture_output=True)
    wport = free_port()
    # A login timeout of 8 s: a login left waiting for a verification slot ends well within the
    # bench client's 20 s.
    relay, rport, rlog = start("relay", [relay_bin, "--bind-tcp=127.0.0.1:0", "--bind-ws=127.0.0.1:%d" % wport,
                                         "--threads=2", "--tcp-auth=sqlite,filename=" + db, "--socket-dir=" + sockdir,
                                         "--proxy-sockets=false", "--login-timeout=8"],
                               r"on tcp:127\.0\.0\.1:(\d+)")

    for i in range(6):  # the default --login-failures is 5: the sixth starts the back-off
        rc, j, err = login("tcp://bench:wrong@127.0.0.1:%d/" % rport)
        check("wrong password %d refused" % (i + 1), rc != 0 and "authentication" in err, err[-400:])
    rc, j, err = login("ws://bench:pw@127.0.0.1:%d/" % wport)
    check("in back-off: even the right password is refused with the wait",
          rc != 0 and "too many failed logins" in err, err[-400:])

    time.sleep(2.5)  # the 1 s wait after the sixth failure is over
    # One tcp:// login first (a bench loop that ends while a password is being checked closes that
    # login mid-check, which counts as a failure and would put the source back in back-off),
    # then the ws:// loop.
    c = RawClient(rport)
    try:
        c.login("bench")
        tcp_ok, why = True, ""
    except AssertionError as e:
        tcp_ok, why = False, str(e)[-400:]
    finally:
        c.close()
    check("after the back-off: a tcp:// login with the right password gets through", tcp_ok, why)
    t0 = time.monotonic()
    rc, j, err = login("ws://bench:pw@127.0.0.1:%d/" % wport)
    check("after the back-off: a ws:// login gets through too",
          rc == 0 and j.get("sessions", 0) > 0, "rc=%d sessions=%s after %.1f s: %s" %
          (rc, j.get("sessions"), time.monotonic() - t0, err[-400:]))
    log = relay_log(rlog)
    # The bug's mark: a login left in challenge-sent until --login-timeout. (The bench client
    # itself may close its last connection there when its 2 s loop ends: that is not it.)
    timed_out = [line for line in log.splitlines() if "login timeout" in line]
    check("no login left waiting in challenge-sent until the login timeout", not timed_out, timed_out[:3])
finally:
    stop_all(sockdir)

failed = summary()
if failed and rlog:
    print("--- relay.log (tail)")
    print("".join(open(rlog).readlines()[-40:]))
sys.exit(1 if failed else 0)
