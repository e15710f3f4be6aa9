"""A client attaches through the gate with sqlite auth and sees the session's xterm."""

import contextlib
import time

import harness
from harness import check

# The relay runs with a short idle timeout here: real xpra 3.1 clients and servers ping every
# 5 s, so a live session must never trip it (docs/protocol-notes.md, "Liveness").
IDLE_TIMEOUT = 10


@contextlib.contextmanager
def fixture(run):
    with harness.Setup(run, auth="sqlite", name="attach", relay_args=["--idle-timeout=%d" % IDLE_TIMEOUT]) as setup:
        srv = setup.server()
        # alice reaches the session through the socket dir (":N"), tcpuser through a tcp entry.
        setup.user("alice", "alice-pw", [srv], via="unix")
        setup.user("tcpuser", "tcp-pw", [srv], via="tcp")
        setup.start()
        yield setup


def _gate_saw(run, fx, user, start):
    """The relay / proxy log names the user after an attach (the connection went through it)."""
    if fx.gate is None:
        return
    new = harness.read_text(fx.gate_log)[start:]
    check(user in new, "%s log does not mention user %s after the attach:\n%s" % (run.target, user, new[-800:]))


def test_attach_unix_entry_shows_xterm(run, fx):
    srv = fx.servers[0]
    start = harness.log_size(fx.gate_log)
    with fx.client("alice", "alice-pw") as c:
        _gate_saw(run, fx, "alice", start)
        check("Attached to" in c.text(), "no 'Attached to' in the client log")
        wid, geom, img = harness.assert_window_painted(c, srv.title, save_as="attach-unix.png")
        c.assert_attached()


@harness.targets("relay", "direct")  # xpra proxy matches display strings literally
def test_attach_tcp_entry_with_display_shows_xterm(run, fx):
    srv = fx.servers[0]
    # The user names the display explicitly, as `xpra attach tcp://.../N` does.
    start = harness.log_size(fx.gate_log)
    with fx.client("tcpuser", "tcp-pw", display=srv.display) as c:
        _gate_saw(run, fx, "tcpuser", start)
        harness.assert_window_painted(c, srv.title, save_as="attach-tcp.png")
        c.assert_attached()


def test_client_detach_then_reattach(run, fx):
    srv = fx.servers[0]
    with fx.client("alice", "alice-pw", name="first") as c:
        harness.assert_window_painted(c, srv.title)
    # The first client is gone (stopped by the fixture); a second attach must work again.
    with fx.client("alice", "alice-pw", name="second") as c2:
        harness.assert_window_painted(c2, srv.title)


@harness.targets("relay")
def test_idle_session_outlives_idle_timeout(run, fx):
    srv = fx.servers[0]
    with fx.client("alice", "alice-pw", name="idle") as c:
        harness.assert_window_painted(c, srv.title)
        start = harness.log_size(fx.gate_log)
        time.sleep(3 * IDLE_TIMEOUT)  # nobody types, nothing changes on screen: only pings flow
        c.assert_attached("client idle for %d s through --idle-timeout=%d" % (3 * IDLE_TIMEOUT, IDLE_TIMEOUT))
        new = harness.read_text(fx.gate_log)[start:]
        check("ping timeout" not in new, "the relay timed the session out:\n%s" % new[-800:])
        harness.assert_window_painted(c, srv.title)
