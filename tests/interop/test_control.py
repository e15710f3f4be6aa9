"""The relay's control plane, driven by the stock xpra 3.1.3 commands users know: `xpra list`,
`xpra info`, `xpra version` and `xpra stop`, against the relay's own :DISPLAY socket and the
:proxy-N socket of every relayed connection, with real clients attached to real sessions.

Every test starts its own relay (display first: `xpra-relay :N --bind-tcp=... --socket-dir=DIR`)
in the socket dir the two sessions use, so `xpra list` there shows what a user would see.
Beyond list/info/version/stop, SIGTERM/SIGINT, stale sockets and --proxy-sockets=false, it
checks the display argument given after the options, two relays sharing one socket dir, and
XPRA_SOCKET_HOSTNAME.
"""

import contextlib
import os
import re
import signal
import time

import harness
import control_util as cu
from harness import check

TARGETS = ("relay",)   # the control sockets are the relay's own


class Fixture:
    """Two xpra sessions (alice's and bob's) in one socket dir, and the users' DB."""

    def __init__(self, run, socket_dir, servers, db):
        self.run = run
        self.socket_dir = socket_dir
        self.alice_srv, self.bob_srv = servers
        self.auth = "sqlite,filename=%s" % db
        self.passwords = {"alice": "alice-pw", "bob": "bob-pw"}
        self.sessions = {"alice": self.alice_srv, "bob": self.bob_srv}

    def relay(self, name, extra=(), display=None):
        """A relay with its own display in the sessions' socket dir (context manager)."""
        return cu.relay(self.run, self.auth, self.socket_dir, display=display, extra=extra, name=name)

    def client(self, relay, user, password=None, name=None, wait_attached=True):
        """`xpra attach` through `relay` as `user` (context manager yielding an XpraClient)."""
        pw = self.passwords[user] if password is None else password
        return self.run.client(relay.uri(user, pw), name=name or "client-%s" % user, wait_attached=wait_attached)

    @contextlib.contextmanager
    def attached(self, relay, user, name=None):
        """A client of `user` whose xterm is painted; yields (client, N of its :proxy-N, wid, geom)."""
        before = cu.proxy_ids(self.socket_dir)
        with self.client(relay, user, name=name) as c:
            wid, geom, _img = harness.assert_window_painted(c, self.sessions[user].title)
            n = cu.wait_new_proxy_id(self.socket_dir, before)
            yield c, n, wid, geom


@contextlib.contextmanager
def fixture(run):
    sdir = run.mkdir("sockets-control", 0o700)
    with contextlib.ExitStack() as stack:
        s1 = stack.enter_context(run.xpra_server(socket_dir=sdir, tcp=False, title="ctl-alice"))
        s2 = stack.enter_context(run.xpra_server(socket_dir=sdir, tcp=False, title="ctl-bob"))
        db = run.sqlite_db([("alice", "alice-pw", s1.unix_entry()), ("bob", "bob-pw", s2.unix_entry())],
                           name="control-users.sdb")
        yield Fixture(run, sdir, (s1, s2), db)


def _relay_entries(listing, relay):
    """The entries of an `xpra list` that belong to this relay (its display and :proxy-N)."""
    return {d: s for d, s in listing.items() if d == relay.display or d.startswith(":proxy-")}


def _check_told(client, detail):
    """The client exited cleanly after the relay's disconnect, printing reason and detail."""
    rc = cu.wait_client_told(client, ["server shutdown", detail], timeout=30)
    check(rc == 0, "client %s exit code %s after a 'server shutdown' disconnect (xpra exits 0 for it)"
          % (client.proc.name, rc))


# ---------------------------------------------------------------- 1. xpra list
def test_list_shows_relay_and_live_instances(run, fx):
    with fx.relay("relay-list") as r:
        cu.check_control_socket(r.display_socket)
        listing = cu.xpra_list(run, fx.socket_dir)
        check(_relay_entries(listing, r) == {r.display: "LIVE"},
              "before any client, xpra list shows %s (want only %s LIVE)" % (listing, r.display))
        with fx.attached(r, "alice") as (_ca, na, _w, _g):
            with fx.attached(r, "bob") as (_cb, nb, _w2, _g2):
                check(na != nb, "two clients got the same instance number %d" % na)
                for n in (na, nb):
                    cu.check_control_socket(r.proxy_socket(n))
                listing = cu.xpra_list(run, fx.socket_dir)
                want = {r.display: "LIVE", ":proxy-%d" % na: "LIVE", ":proxy-%d" % nb: "LIVE"}
                check(_relay_entries(listing, r) == want, "xpra list with two clients: %s, want %s" % (listing, want))
                check(listing.get(":%d" % fx.alice_srv.display) == "LIVE", "the session itself is not listed: %s"
                      % listing)
            # bob detached: his instance socket goes (checked on disk before xpra list, which
            # would delete a dead file itself).
            cu.wait_gone(r.proxy_socket(nb))
            check(os.path.exists(r.proxy_socket(na)), "alice's instance socket vanished when bob detached")
            listing = cu.xpra_list(run, fx.socket_dir)
            want = {r.display: "LIVE", ":proxy-%d" % na: "LIVE"}
            check(_relay_entries(listing, r) == want, "after bob detached, xpra list shows %s, want %s"
                  % (listing, want))
        cu.wait_gone(r.proxy_socket(na))
        check(cu.proxy_ids(fx.socket_dir) == [], "instance sockets left: %s" % cu.proxy_ids(fx.socket_dir))
        listing = cu.xpra_list(run, fx.socket_dir)
        check(_relay_entries(listing, r) == {r.display: "LIVE"}, "after both detached, xpra list shows %s" % listing)
        check(r.alive(), "relay exited")


# ---------------------------------------------------------------- 2. xpra info :proxy-N
def test_info_per_instance(run, fx):
    with fx.relay("relay-info") as r:
        with fx.attached(r, "alice") as (c, n, wid, geom):
            srv = fx.alice_srv
            first = cu.xpra_info(run, ":proxy-%d" % n, fx.socket_dir)
            want = {
                "username": "alice",
                "state": "relay",
                "display": ":proxy-%d" % n,
                "instance": str(n),
                "server.target": "unix:%s" % srv.socket_path,
                "server.display": ":%d" % srv.display,
                "server.encoder": "rencode",          # what xpra 3.1.3 server and client agree on
                "server.client-encoder": "rencode",
                "client.encoding": "rencode",
                "client.encryption": "",
                "proxy.implementation": "xpra-relay",
                "proxy.version": cu.relay_version(),
            }
            bad = {k: (first.get(k), v) for k, v in want.items() if first.get(k) != v}
            check(not bad, "xpra info :proxy-%d: (got, want) %s" % (n, bad))
            check(re.match(r"^127\.0\.0\.1:\d+$", first.get("client.peer", "")), "client.peer %r"
                  % first.get("client.peer"))
            counters = ["client.bytes-received", "client.bytes-sent", "client.packets-received", "client.packets-sent",
                        "server.bytes-received", "server.bytes-sent", "server.packets-received",
                        "server.packets-sent"]
            for k in counters:
                check(cu.as_int(first, k) > 0, "%s is %s after the session started" % (k, first[k]))

            # Type a command: key events go client->server, the redraw server->client.
            typed = "echo info > %s/" % srv.workdir   # the least prove_live types
            time.sleep(1.1)   # so uptime can move too
            harness.prove_live(c, srv, wid, geom, "info")
            second = cu.xpra_info(run, ":proxy-%d" % n, fx.socket_dir)
            grew = {k: (cu.as_int(first, k), cu.as_int(second, k)) for k in counters}
            flat = {k: v for k, v in grew.items() if v[1] <= v[0]}
            check(not flat, "counters did not grow while the client typed and the xterm redrew: %s" % flat)
            # Every key press and release is a packet from the client.
            extra = cu.as_int(second, "client.packets-received") - cu.as_int(first, "client.packets-received")
            check(extra >= len(typed), "only %d more client packets after typing %d characters" % (extra, len(typed)))
            check(cu.as_int(second, "uptime") >= cu.as_int(first, "uptime") + 1, "uptime did not advance: %s -> %s"
                  % (first.get("uptime"), second.get("uptime")))
            check(second.get("state") == "relay" and c.attached(), "the client is no longer relayed after info")


# ---------------------------------------------------------------- 3. xpra version
def test_version_answers_relay_version(run, fx):
    want = cu.relay_version()
    with fx.relay("relay-version") as r:
        check(r.startup_version() == want, "start-up line says version %s, engine/version.h %s"
              % (r.startup_version(), want))
        with fx.attached(r, "alice") as (c, n, _wid, _geom):
            got = cu.xpra_version(run, ":proxy-%d" % n, fx.socket_dir)
            check(got == want, "xpra version :proxy-%d printed %r, want %r" % (n, got, want))
            got = cu.xpra_version(run, r.display, fx.socket_dir)
            check(got == want, "xpra version %s printed %r, want %r" % (r.display, got, want))
            check(c.attached(), "version requests disturbed the client: %r" % c.exit_reason())


# ---------------------------------------------------------------- 4. xpra stop :proxy-N
FLOOD = ["od", "-An", "-tx8", "/dev/urandom"]


def _flood(run, fx, client, n, wid, min_bytes=256 * 1024):
    """Makes the client's xterm large and fills it with random hex non-stop (for 60 s at most),
    then waits until the relay has sent the client `min_bytes` more (read with xpra info
    :proxy-N)."""
    def sent():
        return cu.as_int(cu.xpra_info(run, ":proxy-%d" % n, fx.socket_dir), "client.bytes-sent")
    client.xdotool("windowsize", str(wid), "1200", "760", check_rc=False)
    start = sent()
    client.type_text(wid, "timeout 60 " + " ".join(FLOOD))
    harness.wait_until(lambda: sent() - start >= min_bytes, 20, interval=0.5,
                       what="the scrolling xterm to send %d bytes to the client" % min_bytes)


def test_stop_one_instance_of_two(run, fx):
    with fx.relay("relay-stop1") as r:
        with fx.attached(r, "alice") as (ca, na, wa, _ga), fx.attached(r, "bob") as (cb, nb, wb, gb):
            # alice's xterm scrolls non-stop, so the stop lands while the server streams frames:
            # the client must still get a clean disconnect, not a cut frame.
            _flood(run, fx, ca, na, wa)
            res = cu.xpra_stop(run, ":proxy-%d" % na, fx.socket_dir)
            check(res.rc == 0, "xpra stop :proxy-%d failed:\n%s" % (na, res))
            check("stopped :proxy-%d" % na in res.out, "xpra stop did not confirm the stop:\n%s" % res)
            _check_told(ca, "this session was stopped by the relay's operator")
            check(cu.stop_commands_in(fx.alice_srv.workdir, FLOOD), "the flood command was not running in alice's xterm")
            cu.wait_gone(r.proxy_socket(na))
            # bob's instance is untouched: still attached, socket live, input and output flow.
            check(cb.attached(), "bob's client was disconnected too: %r" % cb.exit_reason())
            cu.check_control_socket(r.proxy_socket(nb))
            harness.prove_live(cb, fx.bob_srv, wb, gb, "afterstop")
            check(cb.attached(), "bob's client detached after typing: %r" % cb.exit_reason())
            listing = cu.xpra_list(run, fx.socket_dir)
            want = {r.display: "LIVE", ":proxy-%d" % nb: "LIVE"}
            check(_relay_entries(listing, r) == want, "after the stop, xpra list shows %s, want %s" % (listing, want))
            info = cu.xpra_info(run, r.display, fx.socket_dir)
            names = {k.split(".")[1] for k in info if k.startswith("instances.")}
            check(names == {":proxy-%d" % nb}, "relay info lists instances %s, want only :proxy-%d" % (names, nb))
            # Stopping it again: the socket is gone, xpra says so.
            res = cu.xpra_stop(run, ":proxy-%d" % na, fx.socket_dir)
            check(res.rc != 0, "a second xpra stop :proxy-%d succeeded:\n%s" % (na, res))
        check(re.search(r"conn=%d stopped by request on :proxy-%d" % (na, na), r.text()),
              "relay log does not record the stop of conn=%d" % na)
        check(r.alive(), "relay exited")


# ---------------------------------------------------------------- 5. xpra info :DISPLAY
def test_relay_info_counts(run, fx):
    with fx.relay("relay-counts") as r:
        with fx.client(r, "alice", password="not-alices-password", name="client-wrongpw",
                       wait_attached=False) as bad:
            rc = bad.wait_exit(60)
            check(rc != 0 and "authentication failed" in bad.text(),
                  "the wrong-password client was not refused (rc=%s): %r" % (rc, bad.exit_reason()))
        with fx.attached(r, "alice") as (c, n, _wid, _geom):
            info = cu.xpra_info(run, r.display, fx.socket_dir)
            want = {
                "proxy.connections.accepted": "2",
                "proxy.connections.active": "1",
                "proxy.connections.total": "1",
                "proxy.connections.failed-auth": "1",
                "proxy.connections.handshaking": "0",
                "proxy.connections.closed": "1",
                "proxy.display": r.display,
                "proxy.implementation": "xpra-relay",
                "proxy.version": cu.relay_version(),
            }
            bad_keys = {k: (info.get(k), v) for k, v in want.items() if info.get(k) != v}
            check(not bad_keys, "xpra info %s: (got, want) %s" % (r.display, bad_keys))
            inst = ":proxy-%d" % n
            names = {k.split(".")[1] for k in info if k.startswith("instances.")}
            check(names == {inst}, "instances listed: %s, want %s" % (names, inst))
            check(info.get("instances.%s.username" % inst) == "alice", "instance user %r"
                  % info.get("instances.%s.username" % inst))
            check(info.get("instances.%s.target" % inst) == "unix:%s" % fx.alice_srv.socket_path,
                  "instance target %r" % info.get("instances.%s.target" % inst))
            check("tcp:127.0.0.1:%d" % r.port in info.get("proxy.listeners", ""), "proxy.listeners %r"
                  % info.get("proxy.listeners"))
            check(c.attached(), "the client detached during info")
        cu.wait_gone(r.proxy_socket(n))
        info = cu.xpra_info(run, r.display, fx.socket_dir)
        after = {k: info.get("proxy.connections." + k) for k in ("accepted", "active", "total", "closed")}
        check(after == {"accepted": "2", "active": "0", "total": "1", "closed": "2"},
              "counts after the client left: %s" % after)
        check(not [k for k in info if k.startswith("instances.")], "instances still listed after the client left")


# ---------------------------------------------------------------- 6. xpra stop :DISPLAY
def _check_relay_gone(r, proxies):
    for path in [r.display_socket] + [r.proxy_socket(n) for n in proxies]:
        check(not os.path.lexists(path), "socket file %s left behind after the relay stopped" % path)
    check(cu.proxy_ids(r.socket_dir) == [], "instance sockets left: %s" % cu.proxy_ids(r.socket_dir))


def test_relay_stop_command(run, fx):
    with fx.relay("relay-stopall") as r:
        with fx.attached(r, "alice") as (ca, na, wa, _ga), fx.attached(r, "bob") as (cb, nb, _wb, _gb):
            _flood(run, fx, ca, na, wa)   # the stop lands while alice's session streams
            res = cu.xpra_stop(run, r.display, fx.socket_dir)
            check(res.rc == 0, "xpra stop %s failed:\n%s" % (r.display, res))
            for c in (ca, cb):
                _check_told(c, "the relay is shutting down")
            cu.stop_commands_in(fx.alice_srv.workdir, FLOOD)
            rc = r.wait_exit(20)
            check(rc == 0, "relay exit code %s after xpra stop" % rc)
            _check_relay_gone(r, (na, nb))
            listing = cu.xpra_list(run, fx.socket_dir)
            check(not _relay_entries(listing, r), "xpra list still shows %s" % _relay_entries(listing, r))
        check("stop requested on the control socket %s" % r.display in r.text(),
              "relay log does not say who stopped it")


# ---------------------------------------------------------------- 7. SIGTERM (and SIGINT)
def _signal_stop(run, fx, sig, users):
    with fx.relay("relay-%s" % sig.name.lower()) as r:
        with contextlib.ExitStack() as stack:
            attached = [stack.enter_context(fx.attached(r, u)) for u in users]
            r.signal(sig)
            for c, _n, _w, _g in attached:
                _check_told(c, "the relay is shutting down")
            rc = r.wait_exit(20)
            check(rc == 0, "relay exit code %s after %s" % (rc, sig.name))
            _check_relay_gone(r, [n for _c, n, _w, _g in attached])
        check("%s: stopping" % sig.name in r.text(), "relay log does not record %s" % sig.name)


def test_sigterm_stops_relay(run, fx):
    _signal_stop(run, fx, signal.SIGTERM, ("alice", "bob"))


def test_sigint_stops_relay(run, fx):
    _signal_stop(run, fx, signal.SIGINT, ("bob",))


# ---------------------------------------------------------------- 8. stale sockets, display in use
def test_stale_sockets_and_display_in_use(run, fx):
    host = cu.socket_hostname()
    display = ":%d" % run.free_display()
    stale = os.path.join(fx.socket_dir, "%s-proxy-99" % host)
    stale_display = cu.sock_path(fx.socket_dir, display)
    not_socket = os.path.join(fx.socket_dir, "%s-proxy-98" % host)
    live_other = os.path.join(fx.socket_dir, "%s-proxy-97" % host)
    cu.make_stale_socket(stale)
    cu.make_stale_socket(stale_display)
    with open(not_socket, "w") as f:
        f.write("not a socket\n")
    try:
        with cu.listening_socket(live_other), fx.relay("relay-stale", display=display) as r:
            check(not os.path.lexists(stale), "stale %s still there after start-up" % stale)
            cu.check_control_socket(r.display_socket)   # the dead one was replaced by a live one
            check(os.path.exists(not_socket), "the relay removed %s, which is not a socket" % not_socket)
            check(cu.probe_socket(live_other) == "LIVE", "the relay removed or broke %s, which someone listens on"
                  % live_other)
            check("removed stale control socket %s" % stale in r.text(), "relay log does not name the stale socket")

            rc, out = cu.run_relay_once(run, fx.auth, fx.socket_dir, display, "relay-second")
            check(rc is not None, "a second relay with display %s kept running:\n%s" % (display, out[-1500:]))
            check(rc != 0, "the second relay exited with 0")
            check(re.search(r"display %s is already in use" % re.escape(display), out),
                  "the second relay's refusal is not clear:\n%s" % out[-1500:])
            # The first relay still owns its display.
            cu.check_control_socket(r.display_socket)
            info = cu.xpra_info(run, display, fx.socket_dir)
            check(info.get("proxy.display") == display, "xpra info %s after the refusal: %s" % (display, info))
            with fx.attached(r, "alice") as (c, n, _w, _g):
                check(c.attached(), "client could not attach after the refusal")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(not_socket)


# ---------------------------------------------------------------- 9. --proxy-sockets=false
def test_no_proxy_sockets(run, fx):
    with fx.relay("relay-nosockets", extra=["--proxy-sockets=false"]) as r:
        with fx.client(r, "alice") as c:
            harness.assert_window_painted(c, fx.alice_srv.title)
            time.sleep(1)
            check(cu.proxy_ids(fx.socket_dir) == [], "instance sockets exist with --proxy-sockets=false: %s"
                  % cu.proxy_ids(fx.socket_dir))
            listing = cu.xpra_list(run, fx.socket_dir)
            check(_relay_entries(listing, r) == {r.display: "LIVE"}, "xpra list shows %s" % listing)
            info = cu.xpra_info(run, r.display, fx.socket_dir)
            users = {k: v for k, v in info.items() if k.startswith("instances.") and k.endswith(".username")}
            check(list(users.values()) == ["alice"], "relay info instances: %s" % users)
            res = cu.xpra_stop(run, r.display, fx.socket_dir)
            check(res.rc == 0, "xpra stop %s failed:\n%s" % (r.display, res))
            _check_told(c, "the relay is shutting down")
            rc = r.wait_exit(20)
            check(rc == 0, "relay exit code %s after xpra stop" % rc)
            _check_relay_gone(r, ())


# ---------------------------------------------------------------- the display argument
def test_display_after_options(run, fx):
    # `xpra-relay --bind-tcp=... --socket-dir=DIR :N` (display last, as xpra accepts it) must
    # either create :N or refuse to start; silently running without the control socket is wrong.
    display = ":%d" % run.free_display()
    port = run.free_port()
    argv = [run.relay_bin, "--bind-tcp=127.0.0.1:%d" % port, "--tcp-auth=%s" % fx.auth,
            "--socket-dir=%s" % fx.socket_dir, display]
    p = harness.Proc("relay-display-last", argv, run.path("relay-display-last.log"), run.env())
    try:
        path = cu.sock_path(fx.socket_dir, display)
        harness.wait_until(lambda: not p.alive() or harness.port_listening(port), 20, what="relay start")
        time.sleep(0.5)
        if p.alive():
            check(cu.probe_socket(path) == "LIVE", "relay started with display %s last but %s is %s (was %s taken as "
                  "another --socket-dir value?); its log:\n%s"
                  % (display, path, cu.probe_socket(path), display, harness.log_tail(p.log_path, 5)))
        else:
            check(p.returncode() != 0 and display in harness.read_text(p.log_path),
                  "relay exited (rc=%s) without naming %s" % (p.returncode(), display))
    finally:
        p.stop(grace=5)


# ---------------------------------------------------------------- two relays, one socket dir
def test_two_relays_share_socket_dir(run, fx):
    # Two relays on one host with the same socket dir (e.g. the default /run/user/UID/xpra):
    # each relayed connection must keep its own :proxy-N endpoint, as xpra proxy's
    # :proxy-<pid> names do.
    with fx.relay("relay-a") as ra, fx.relay("relay-b") as rb:
        with fx.attached(ra, "alice") as (ca, na, _wa, _ga):
            alice_sock = ra.proxy_socket(na)
            with fx.client(rb, "bob") as cb:
                harness.assert_window_painted(cb, fx.bob_srv.title)
                harness.wait_for_log(rb.log, r"user=bob relaying", 10)
                time.sleep(0.5)
                ids = cu.proxy_ids(fx.socket_dir)
                info = cu.xpra_info(run, ":proxy-%d" % na, fx.socket_dir)
                check(info.get("username") == "alice",
                      "relay %s's instance socket %s now answers for %r (relay %s reused the name :proxy-%d); "
                      "instance sockets: %s" % (ra.display, alice_sock, info.get("username"), rb.display, na, ids))
                check(len(ids) == 2, "two relayed connections, instance sockets %s" % ids)
            time.sleep(1)
            check(cu.probe_socket(alice_sock) == "LIVE", "bob's relay removed alice's %s when bob left (%s)"
                  % (alice_sock, cu.probe_socket(alice_sock)))
            check(ca.attached(), "alice detached: %r" % ca.exit_reason())


# ---------------------------------------------------------------- XPRA_SOCKET_HOSTNAME
def test_socket_hostname_override(run, fx):
    # With XPRA_SOCKET_HOSTNAME set (as for every xpra process of that host), socket names use
    # it: the relay's own and its instances', and the sessions it looks up. The session here is
    # alice's, seen under the alternative name through a symlink in a socket dir of its own.
    alt = "ctl-alt-host"
    env = run.env(XPRA_SOCKET_HOSTNAME=alt)
    sdir = run.mkdir("sockets-althost", 0o700)
    os.symlink(fx.alice_srv.socket_path, cu.sock_path(sdir, ":%d" % fx.alice_srv.display, alt))
    with cu.relay(run, fx.auth, sdir, name="relay-althost", env=env) as r:
        check(r.hostname == alt, "relay socket hostname %r" % r.hostname)
        cu.check_control_socket(cu.sock_path(sdir, r.display, alt))
        default_name = cu.sock_path(sdir, r.display, harness.HOSTNAME)
        check(not os.path.lexists(default_name), "control socket also made under the host name: %s" % default_name)
        listing = cu.xpra_list(run, sdir, env=env)
        check(listing.get(r.display) == "LIVE", "xpra list (XPRA_SOCKET_HOSTNAME=%s) shows %s" % (alt, listing))
        info = cu.xpra_info(run, r.display, sdir, env=env)
        check(info.get("proxy.display") == r.display, "xpra info %s: %s" % (r.display, info))
        with fx.client(r, "alice", wait_attached=False) as c:
            harness.wait_until(lambda: "Attached to " in c.text() or not c.proc.alive(), 40,
                               what="alice to attach or fail")
            check(c.attached(), "alice could not attach to :%d, a session named %s-%d in %s: %r; relay log:\n%s"
                  % (fx.alice_srv.display, alt, fx.alice_srv.display, sdir, c.exit_reason(),
                     harness.log_tail(r.log, 3)))
            harness.assert_window_painted(c, fx.alice_srv.title)
            n = harness.wait_until(lambda: cu.proxy_ids(sdir, alt), 10, what="%s-proxy-N" % alt)[0]
            cu.check_control_socket(cu.sock_path(sdir, ":proxy-%d" % n, alt))
            info = cu.xpra_info(run, ":proxy-%d" % n, sdir, env=env)
            check(info.get("username") == "alice", "xpra info :proxy-%d: %s" % (n, info))
