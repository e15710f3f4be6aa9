"""Restart without dropping a session: a new relay started with --takeover=SOCKET takes the
listening sockets of the running one over its control socket, accepts at once, and the old
one stops accepting, keeps relaying its sessions until they end (then exits 0) or until
--drain-timeout (then tells them "server shutdown"). All the while a loop of fresh clients
connects and must never be refused or reset. Real relays, raw clients and fake targets.

usage: relay_takeover_test.py RELAY AUTH_TOOL [--io=uring|--io=epoll]
"""
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_lib import *  # noqa: E402,F401,F403  (check, start, RawClient, FakeTarget, relays, wire, ...)
from relay_lib import procs, results, tmp  # noqa: E402

relay_bin, auth_bin = [os.path.abspath(p) for p in sys.argv[1:3]]
io_args = sys.argv[3:]
set_relay_args(relay_bin, io_args)
sockdir = tempfile.mkdtemp(prefix="xr-takeover-", dir="/tmp")
DISPLAY = ":%d" % (4700 + os.getpid() % 1000)


def fresh_user(n=[0]):
    """A user with a target of its own (a FakeTarget serves one connection)."""
    n[0] += 1
    t = FakeTarget()
    user = "user%d" % n[0]
    subprocess.run([auth_bin, db, "add", user, "pw", "", "", "tcp://127.0.0.1:%d/" % t.port], check=True,
                   capture_output=True)
    return user, t


class ConnectLoop:
    """Connects every 20 ms, sends a hello asking for a challenge and expects one back (the
    relay served it); records every failure: a refusal, a reset, a close without an answer."""

    def __init__(self, port):
        self.port, self.ok, self.failures = port, 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                c = RawClient(self.port)
                c.send(wire.hello_packet({"username": "loop", "challenge": True}))
                if c.wait_for(lambda: any(p[0] == "challenge" for p in c.packets), 10):
                    self.ok += 1
                else:
                    self.failures.append("no challenge: %r eof=%s" % (c.packets, c.eof))
                c.close()
            except OSError as e:
                self.failures.append(repr(e))
            time.sleep(0.02)

    def finish(self):
        self.stop.set()
        self.thread.join(30)
        return self.ok, self.failures


def accepted_peers(log_text):
    return set(re.findall(r"peer=(127\.0\.0\.1:\d+) accepted on", log_text))


try:
    db = os.path.join(tmp, "users.db")
    subprocess.run([auth_bin, db, "create"], check=True, capture_output=True)
    port, port2 = free_port(), free_port()
    unix_bind = os.path.join(sockdir, "relay.sock")
    common = ["--tcp-auth=sqlite,filename=" + db, "--socket-dir=" + sockdir, "--max-logins-per-address=0",
              "--max-connections-per-address=0", "--login-failures=1000"]
    a, _, alog = start("old", [relay_bin, DISPLAY, "--bind-tcp=127.0.0.1:%d" % port, "--bind=" + unix_bind, "--auth=none",
                               "--threads=2"] + common, r"on tcp:127\.0\.0\.1:(\d+)")
    ctl = [p for p in glob.glob(os.path.join(sockdir, "*-" + DISPLAY[1:]))]
    check("the old relay has its control socket", len(ctl) == 1, os.listdir(sockdir))
    ctl = ctl[0] if ctl else ""

    user, target = fresh_user()
    live = RawClient(port)
    live.login(user)
    target.attached.wait(5)
    check("a live session on the old relay", relays(live, target))

    loop = ConnectLoop(port)
    time.sleep(1)
    # The new relay: one reactor (the old had two: it takes both sockets), a bind the old one
    # lacks, and without the old one's unix bind.
    b, _, blog = start("new", [relay_bin, DISPLAY, "--takeover=" + ctl, "--bind-tcp=127.0.0.1:%d" % port,
                               "--bind-tcp=127.0.0.1:%d" % port2, "--threads=1", "--drain-timeout=2"] + common,
                       r"on tcp:127\.0\.0\.1:(\d+)")
    wait_until(lambda: "accepting on the sockets taken over" in relay_log(blog), 10)
    check("the new relay took the sockets over", re.search(r"took over 4 listening sockets", relay_log(blog)),
          relay_log(blog))
    check("the new relay closes what its configuration lacks", "unix:%s: not in this configuration, closed" % unix_bind
          in relay_log(blog), relay_log(blog))
    check("the old relay stops accepting and drains its session",
          wait_until(lambda: "stopped accepting and drains" in relay_log(alog), 5), relay_log(alog)[-1500:])
    time.sleep(3)
    ok, failures = loop.finish()
    check("a loop connecting all the while saw no refusal or reset (%d served)" % ok, ok >= 10 and not failures,
          "%d served, failures: %s" % (ok, failures[:5]))

    check("the live session still relays, on the old relay", relays(live, target) and a.poll() is None)
    user2, target2 = fresh_user()
    fresh = RawClient(port)
    fresh.login(user2)
    peer = "127.0.0.1:%d" % fresh.sock.getsockname()[1]
    check("a new client is served by the new relay", peer in accepted_peers(relay_log(blog)) and
          peer not in accepted_peers(relay_log(alog)), peer)
    check("the new relay's added bind accepts", RawClient(port2).sock is not None)
    refused = False
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(unix_bind)
    except OSError:
        refused = True
    check("the unix bind the new configuration dropped is closed", refused)
    check("...and its socket file removed", not os.path.exists(unix_bind), os.listdir(sockdir))

    live.close()
    check("the old relay exits 0 once its session ended", a.wait(timeout=15) == 0, relay_log(alog)[-1000:])
    check("...saying it drained", "drained: every connection has ended" in relay_log(alog))
    check("the new relay's session is untouched", relays(fresh, target2))

    # A second takeover, of a relay with --drain-timeout=2 and a live session: at the
    # timeout the session is told "server shutdown" and the old relay exits 0.
    c, _, clog = start("third", [relay_bin, DISPLAY, "--takeover=" + ctl, "--bind-tcp=127.0.0.1:%d" % port,
                                 "--threads=2"] + common, r"on tcp:127\.0\.0\.1:(\d+)")
    wait_until(lambda: "accepting on the sockets taken over" in relay_log(clog), 10)
    # The second relay had its one reactor accept on both of the first one's sockets, plus its
    # own added bind and the control socket: all four are handed on.
    check("a relay that took over can be taken over (all its sockets handed on)",
          "took over 4 listening sockets" in relay_log(clog) and
          "tcp:127.0.0.1:%d: not in this configuration, closed" % port2 in relay_log(clog), relay_log(clog))
    t0 = time.time()
    got = fresh.wait_for(lambda: any(p[0] == "disconnect" for p in fresh.packets), 15)
    check("at --drain-timeout the old relay's session is told 'server shutdown'",
          got and any(p[0] == "disconnect" and "shutdown" in str(p) for p in fresh.packets) and time.time() - t0 > 1,
          fresh.packets[-3:])
    check("...and it exits 0", b.wait(timeout=15) == 0, relay_log(blog)[-1000:])
    check("the drained relay removed no socket file of the new one", os.path.exists(ctl))
    user3, target3 = fresh_user()
    c3 = RawClient(port)
    c3.login(user3)
    check("the third relay serves", relays(c3, target3))

    # Only the relay's own control socket hands sockets over.
    proxy = [p for p in glob.glob(os.path.join(sockdir, "*-proxy-*"))]
    if proxy:
        r = subprocess.run([relay_bin, ":%d" % (int(DISPLAY[1:]) + 1), "--takeover=" + proxy[0],
                            "--bind-tcp=127.0.0.1:%d" % port] + common, capture_output=True, text=True, timeout=30)
        check("a :proxy-N socket refuses a takeover, readably", r.returncode == 1 and "cannot be taken over" in r.stderr,
              r.stderr)
    else:
        check("a :proxy-N socket exists to try", False, os.listdir(sockdir))
    r = subprocess.run([relay_bin, DISPLAY, "--takeover=" + ctl, "--bind-tcp=127.0.0.1:%d" % port,
                        "--tcp-auth=no-such-module", "--socket-dir=" + sockdir], capture_output=True, text=True,
                       timeout=30)
    check("a new relay with a bad configuration fails before asking", r.returncode == 1 and "no-such-module" in r.stderr
          and "takeover asked" not in relay_log(clog), r.stderr)
    check("...and the running one still serves", relays(c3, target3) and c.poll() is None)
    c3.close()
    c.send_signal(signal.SIGTERM)
    check("the last relay stops with SIGTERM, exit 0", c.wait(timeout=15) == 0)
finally:
    stop_all(sockdir)

failed = summary()
sys.exit(1 if failed or not results else 0)
