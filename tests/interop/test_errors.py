"""Refused logins and unreachable sessions: the client fails with xpra's reason, the gate logs
it, and a client attached before keeps working."""

import contextlib
import re

import harness
from harness import check


@contextlib.contextmanager
def fixture(run):
    with harness.Setup(run, auth="sqlite", name="errors") as setup:
        srv = setup.server()
        dead_port = run.free_port()          # allocated, never listened on
        dead_display = run.free_display()    # no server, no socket
        setup.user("good", "good-pw", [srv])
        setup.user("ghost", "ghost-pw", ["tcp://127.0.0.1:%d/" % dead_port])
        setup.user("lost", "lost-pw", [":%d" % dead_display])
        setup.start()
        with setup.client("good", "good-pw", name="good") as good:
            wid, geom, _img = harness.assert_window_painted(good, srv.title)
            setup.good = (good, wid, geom)
            yield setup


def _refused(run, fx, user, pw, display, reason_rx, log_rx, name, proxy_logs=True):
    gate_log = fx.gate_log
    start = harness.log_size(gate_log)
    with fx.client(user, pw, display=display, wait_attached=False, name=name) as c:
        rc = c.wait_exit(60)
        text = c.text()
        # A refusal sent as an xpra disconnect packet before the server hello makes the 3.1.3
        # client exit with CONNECTION_FAILED; a connection simply cut gives CONNECTION_LOST.
        check(rc == harness.EXIT_CONNECTION_FAILED, "client exit code %s, want %d (refused with a disconnect "
              "packet before the session was established)" % (rc, harness.EXIT_CONNECTION_FAILED))
        check("Attached to" not in text, "client attached although it should have been refused")
        check(re.search(reason_rx, text), "client log has no /%s/; it printed: %r" % (reason_rx, c.exit_reason()))
    new = harness.read_text(gate_log)[start:]
    # (xpra proxy itself logs nothing for some refusals; the relay must log every one.)
    check((run.target == "proxy" and not proxy_logs) or re.search(log_rx, new), "%s log has no /%s/ for this attempt; new lines:\n%s"
          % ("server" if run.target == "direct" else run.target, log_rx, new[-1500:]))
    _good_still_attached(fx)


def _good_still_attached(fx):
    good, _wid, _geom = fx.good
    good.assert_attached("the client attached before")


def test_wrong_password(run, fx):
    _refused(run, fx, "good", "not-the-password", None, r"authentication failed",
             r"(?i)auth\w* fail|wrong password|does not match|denied|reject", "wrongpw")


def test_unknown_user(run, fx):
    _refused(run, fx, "nobody-here", "whatever", None, r"authentication failed",
             r"(?i)auth\w* fail|unknown user|not found|no such user|denied|reject", "nouser")


@harness.targets("relay", "proxy")
def test_unknown_display(run, fx):
    srv = fx.servers[0]
    _refused(run, fx, "good", "good-pw", srv.display + 1000, r"session not found|display '?:\d+'? not found",
             r"(?i)not found|unknown display|no such (display|session)", "baddisp", proxy_logs=False)


@harness.targets("relay", "proxy")
def test_dead_tcp_target(run, fx):
    _refused(run, fx, "ghost", "ghost-pw", None, r"(?i)session not found|failed to connect|connection refused|cannot connect",
             r"(?i)fail\w* to connect|refused|cannot connect|unreachable|not found", "deadtcp")


@harness.targets("relay")
def test_dead_unix_target(run, fx):
    _refused(run, fx, "lost", "lost-pw", None, r"session not found|failed to connect|not found",
             r"(?i)fail\w* to connect|refused|cannot connect|not found|no such", "deadunix")


def test_good_client_still_live(run, fx):
    good, wid, geom = fx.good
    srv = fx.servers[0]
    harness.prove_live(good, srv, wid, geom, "afterrors")
    _good_still_attached(fx)
