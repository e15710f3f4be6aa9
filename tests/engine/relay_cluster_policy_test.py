"""The login policy of a relay cluster in PostgreSQL (issue 16; postgresql auth, cluster=yes): a real
PostgreSQL 15 (initdb + postgres, run as the postgres user under root, on a free port, stopped by
its pid) and three relay processes sharing it, with the synthetic server as every user's session.

- 20 wrong passwords for one user from one source, round-robin over the 3 nodes, meet exactly the
  refusals and waits that 20 on one node meet (another user and source for each run);
- failures of one user from several sources (one per node) put the user in back-off on every node;
- a password changed with `xpra_relay_auth postgresql://... remove/add` is in force on all three
  nodes at once although each had the user's row cached (LISTEN/NOTIFY), and a warm login costs
  one statement (pg_stat_statements: the password query is not run again);
- max_sessions_per_user=3 holds across nodes, and a closed session frees its place;
- PostgreSQL stopped: an attached session stays, a new login fails within 2 s with "authentication
  service unavailable" on every node; started again: logins work within 5 s, no relay restarted.

usage: relay_cluster_policy_test.py RELAY SYNTHETIC_SERVER AUTH_TOOL [--io=...]
"""
import hashlib
import hmac
import os
import pwd
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_lib import RawClient, check, free_port, set_relay_args, start, stop_all, summary  # noqa: E402
from relay_lib import procs, tmp  # noqa: E402
import wire  # noqa: E402  (relay_lib put tests/interop on the path)

relay_bin, server_bin, auth_bin = [os.path.abspath(p) for p in sys.argv[1:4]]
set_relay_args(relay_bin, sys.argv[4:])
PG_BIN = "/usr/lib/postgresql/15/bin"


def demote():
    if os.getuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)


class Postgres:
    def __init__(self):
        for prog in ("initdb", "postgres", "psql"):
            if not os.access(os.path.join(PG_BIN, prog), os.X_OK):
                print("FAIL %s/%s missing: install the Debian package postgresql-15 (tools/lib.sh "
                      "XR_TEST_PACKAGES)" % (PG_BIN, prog))
                print("0 passed, 1 failed")
                sys.exit(1)
        # Under /tmp: the postgres user cannot enter bazel's test directories.
        self.dir = tempfile.mkdtemp(prefix="xr-pgc-", dir="/tmp")
        self.password = secrets.token_hex(12)
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if os.getuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in (self.dir, pwfile):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.dir, "data")
        r = subprocess.run([PG_BIN + "/initdb", "-D", self.data, "-U", "xr", "--pwfile=" + pwfile,
                            "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
                           capture_output=True, text=True, preexec_fn=demote, cwd=self.dir, timeout=120)
        if r.returncode != 0:
            sys.exit("initdb failed: " + r.stdout[-2000:] + r.stderr[-2000:])
        self.port = free_port()
        self.uri = "postgresql://xr:%s@127.0.0.1:%d/postgres" % (self.password, self.port)
        self.proc = None
        self.starts = 0

    def start(self):
        path = os.path.join(tmp, "postgres.log")
        with open(path, "a") as log:
            self.proc = subprocess.Popen([
                PG_BIN + "/postgres", "-D", self.data, "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                "-c", "unix_socket_directories=", "-c", "fsync=off", "-c",
                "shared_preload_libraries=pg_stat_statements", "-c", "max_connections=200"],
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=demote, cwd=self.dir)
        procs.append(self.proc)
        deadline = time.time() + 30
        while time.time() < deadline and self.proc.poll() is None:
            if open(path).read().count("ready to accept connections") > self.starts:
                self.starts += 1
                return
            time.sleep(0.05)
        sys.exit("postgres did not start:\n" + open(path).read()[-3000:])

    def stop(self):
        """Fast shutdown (SIGINT), by pid."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)

    def sql(self, statement):
        r = subprocess.run([PG_BIN + "/psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.uri, "-c",
                            statement], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError("psql: " + r.stderr[-500:])
        return r.stdout.strip()


def attempt(port, user, password, source, hang_up=False):
    """One login over a raw socket: ("ok", client) with the session attached (the caller closes it),
    or (the disconnect's words, None). hang_up: close right after sending the response."""
    c = RawClient(port, source=source)

    def wait_for(kinds, timeout):
        # Short reads: RawClient.read() reads on for its whole timeout.
        deadline = time.time() + timeout
        while time.time() < deadline and not c.eof and not any(p[0] in kinds for p in c.packets):
            c.read(0.005)

    c.send(wire.hello_packet({"username": user, "challenge": True}))
    wait_for(("challenge", "disconnect"), 10)
    ch = [p for p in c.packets if p[0] == "challenge"]
    if ch:
        ch = ch[0]
        client_salt = os.urandom(32)
        salt = hmac.new(client_salt, ch[1].encode("latin1"), getattr(hashlib, ch[4].split("+", 1)[1])).hexdigest()
        response = hmac.new(password.encode(), salt.encode(), getattr(hashlib, ch[3].split("+", 1)[1])).hexdigest()
        c.send(wire.hello_packet({"username": user, "challenge_response": response,
                                  "challenge_client_salt": client_salt}))
        if hang_up:
            c.close()
            return "hung up", None
        wait_for(("hello", "disconnect"), 15)
    if any(p[0] == "hello" for p in c.packets):
        return "ok", c
    d = [p for p in c.packets if p[0] == "disconnect"]
    c.close()
    return (" ".join(str(x) for x in d[0][1:]) if d else "no answer: %r" % c.packets[:3]), None


def outcome(words):
    """What a refusal means: "failed", "wait N" (the back-off's seconds), or the words."""
    m = re.search(r"too many failed logins, try again in (\d+) seconds", words)
    if m:
        return "wait " + m.group(1)
    return "failed" if "authentication failed" in words else words


def login_ok(port, user, password, source):
    """A login whose session is closed at once (and its end written to the session counts)."""
    words, c = attempt(port, user, password, source)
    if c:
        c.close()
        time.sleep(0.15)
    return words == "ok", words


def tool(pg, *args):
    r = subprocess.run([auth_bin, pg.uri] + list(args), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("xpra_relay_auth %s: %s" % (args[0], r.stderr[-500:]))


pg = None
try:
    pg = Postgres()
    pg.start()
    pg.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    _, sport, _ = start("server", [server_bin, "--bind=127.0.0.1:0", "--threads=1"], r"listening on 127\.0\.0\.1:(\d+)")
    target = "tcp://127.0.0.1:%d/" % sport
    tool(pg, "create")
    for user in ("alice", "carol", "erin", "dave", "bob", "frank"):
        tool(pg, "add", user, "pw", "", "", target)
    sockdir = tempfile.mkdtemp(prefix="xr-pgc-sock-", dir="/tmp")
    nodes, relays = [], []
    for i in range(3):
        relay, port, _ = start("relay%d" % (i + 1), [
            relay_bin, "--bind-tcp=127.0.0.1:0", "--threads=1", "--socket-dir=" + sockdir, "--proxy-sockets=false",
            "--login-timeout=10",
            "--tcp-auth=postgresql,uri=%s,cluster=yes,max_sessions_per_user=3,node=node%d" % (pg.uri, i + 1)],
            r"on tcp:127\.0\.0\.1:(\d+)")
        nodes.append(port)
        relays.append(relay)

    # ---- 20 wrong passwords: one node vs round-robin over three (another user and source each).
    def run20(user, source, ports):
        seq = []
        for i in range(20):
            words, c = attempt(ports[i % len(ports)], user, "wrong", source)
            seq.append(outcome(words))
        return seq

    one = run20("alice", "127.0.0.2", nodes[:1])
    three = run20("carol", "127.0.0.3", nodes)
    print("one node:    ", one)
    print("three nodes: ", three)
    check("20 wrong passwords on one node: 6 checked and failed, then refused with the back-off's wait",
          one[:6] == ["failed"] * 6 and one[6].startswith("wait "), one)
    check("20 wrong passwords over three nodes meet the same refusals and waits as on one node", three == one,
          "one node %s, three nodes %s" % (one, three))
    rows = pg.sql("SELECT kind::text || ':' || key || '=' || failures FROM xr_login_failures ORDER BY 1")
    check("the shared state counts 6 failures for the user and the source of the three-node run",
          "s:127.0.0.3=6" in rows.split() and "u:carol=6" in rows.split(), rows)

    # ---- one user, a source per node: the user's own back-off holds on every node.
    seq = []
    for i in range(9):
        words, _ = attempt(nodes[i % 3], "erin", "wrong", "127.0.1.%d" % (i % 3 + 1))
        seq.append(outcome(words))
    words, _ = attempt(nodes[0], "erin", "pw", "127.0.1.9")
    check("failures of one user from three sources over three nodes: the user is in back-off on a fourth source",
          seq[:6] == ["failed"] * 6 and outcome(words).startswith("wait "), (seq, words))

    # ---- the user cache: warm rows, one statement per warm login, a password change seen at once.
    def calls(fragment):
        return int(pg.sql("SELECT COALESCE(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%%%s%%'"
                          % fragment) or 0)

    for port in nodes:
        ok, words = login_ok(port, "dave", "pw", "127.0.0.4")
        check("dave logs in on node port %d (the cache fills)" % port, ok, words)
    time.sleep(0.3)  # the session ends are written by the listener threads
    login_rows, wait_rows, sess_rows = calls("LEFT JOIN"), calls("SELECT xr_backoff_wait_ms($1"), calls("AND password=")
    for port in nodes:
        ok, words = login_ok(port, "dave", "pw", "127.0.0.4")
        check("dave logs in again on node port %d" % port, ok, words)
    d_login, d_wait, d_sess = (calls("LEFT JOIN") - login_rows, calls("SELECT xr_backoff_wait_ms($1") - wait_rows,
                               calls("AND password=") - sess_rows)
    check("warm logins: the user's row and sessions come from each node's cache, one back-off read each "
          "(3 logins: %d login statements, %d wait reads, %d session queries)" % (d_login, d_wait, d_sess),
          d_login == 0 and d_sess == 0 and d_wait == 3, (d_login, d_wait, d_sess))
    tool(pg, "remove", "dave")
    tool(pg, "add", "dave", "pw2", "", "", target)
    for port in nodes:
        ok, words = login_ok(port, "dave", "pw2", "127.0.0.4")
        check("right after the change: the new password works on node port %d" % port, ok, words)
    for port in nodes:
        ok, words = login_ok(port, "dave", "pw", "127.0.0.5")
        check("right after the change: the old password is refused on node port %d" % port,
              not ok and outcome(words) == "failed", words)

    # ---- max_sessions_per_user=3 across the nodes.
    def one_per_node(user, source):
        """A session of `user` held on each node (checked); the clients."""
        clients = []
        for port in nodes:
            words, c = attempt(port, user, "pw", source)
            check("%s's session on node port %d" % (user, port), c is not None, words)
            if c:
                clients.append(c)
        return clients

    held = one_per_node("bob", "127.0.0.6")
    words, c = attempt(nodes[1], "bob", "pw", "127.0.0.6")
    check("a fourth session of bob (one on each node already) is refused: the limit counts every node",
          c is None and "too many sessions" in words, words)
    if c:
        c.close()
    held.pop(0).close()
    deadline, ok, words = time.time() + 5, False, ""
    while time.time() < deadline and not ok:
        time.sleep(0.2)
        ok, words = login_ok(nodes[1], "bob", "pw", "127.0.0.6")
    check("once bob's session on the first node ended, one more is let in on the second", ok, words)

    # Clients that hang up while their right password is checked give their places back.
    for i in range(6):
        attempt(nodes[i % 3], "frank", "pw", "127.0.0.8", hang_up=True)
    deadline, held_by_frank = time.time() + 3, None
    while time.time() < deadline and held_by_frank != "0":
        time.sleep(0.2)
        held_by_frank = pg.sql("SELECT COALESCE(sum(sessions), 0) FROM xr_user_sessions WHERE username = 'frank'")
    check("6 logins that hung up mid-check hold no session place afterwards", held_by_frank == "0", held_by_frank)
    for c in one_per_node("frank", "127.0.0.8"):  # all three of his places are free
        c.close()

    # ---- PostgreSQL stopped, then started again.
    pg.stop()
    for port in nodes:
        t0 = time.monotonic()
        words, c = attempt(port, "dave", "pw2", "127.0.0.7")
        took = time.monotonic() - t0
        check("database down: a login on node port %d fails within 2 s (%.2f s) saying why" % (port, took),
              c is None and "authentication service unavailable" in words and took < 2, (took, words))
    check("database down: bob's attached session is still open", held and not held[0].eof and
          (held[0].read(0.2) or True) and not held[0].eof)
    pg.start()
    t0 = time.monotonic()
    for port in nodes:
        ok, words = False, ""
        while not ok and time.monotonic() - t0 < 10:
            ok, words = login_ok(port, "dave", "pw2", "127.0.0.7")
            if not ok:
                time.sleep(0.2)
        took = time.monotonic() - t0
        check("database back: a login on node port %d works %.2f s after the restart (no relay restarted)"
              % (port, took), ok and took < 5, (took, words))
    check("the relays never restarted", all(p.poll() is None for p in relays))
    for c in held:
        c.close()
finally:
    if pg:
        pg.stop()
    stop_all(*([pg.dir] if pg else []))

failed = summary()
sys.exit(1 if failed else 0)
