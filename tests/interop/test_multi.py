"""Several users and sessions behind one gate; the client's display path selects the session."""

import contextlib

import harness
from harness import check


@contextlib.contextmanager
def fixture(run):
    with harness.Setup(run, auth="sqlite", name="multi") as setup:
        s200 = setup.server(display=200)
        s201 = setup.server(display=201)
        other = setup.server()
        # carol has two sessions reached through the socket dir; dave has two tcp entries
        # with display paths; erin has one session of her own.
        setup.user("carol", "carol-pw", [s200, s201], via="unix")
        setup.user("dave", "dave-pw", [s200, s201], via="tcp")
        setup.user("erin", "erin-pw", [other])
        setup.start()
        yield setup


def _attach_and_check(fx, user, pw, display, want, avoid, tag):
    with fx.client(user, pw, display=display, name="%s-%s" % (user, tag)) as c:
        harness.assert_window_painted(c, want.title)
        # The other session's xterm must not be on this client.
        out = c.xdotool("search", "--name", avoid.title, check_rc=False)
        check(not out.strip(), "client for %s:%s also shows '%s'" % (user, display, avoid.title))
        c.assert_attached()


@harness.targets("relay", "direct")
def test_unix_sessions_selected_by_display(run, fx):
    s200, s201 = fx.servers[0], fx.servers[1]
    _attach_and_check(fx, "carol", "carol-pw", s200.display, s200, s201, "a")
    _attach_and_check(fx, "carol", "carol-pw", s201.display, s201, s200, "b")


@harness.targets("relay", "direct")
def test_tcp_sessions_selected_by_display(run, fx):
    s200, s201 = fx.servers[0], fx.servers[1]
    _attach_and_check(fx, "dave", "dave-pw", s201.display, s201, s200, "b")
    _attach_and_check(fx, "dave", "dave-pw", s200.display, s200, s201, "a")


def test_two_users_two_sessions_at_once(run, fx):
    s200, other = fx.servers[0], fx.servers[2]
    display = s200.display if run.target != "proxy" else None
    user, pw = ("carol", "carol-pw") if run.target != "proxy" else ("erin", "erin-pw")
    with fx.client("erin", "erin-pw", name="erin") as ce:
        wid_e, geom_e, _ = harness.assert_window_painted(ce, other.title)
        if run.target == "proxy":
            return
        with fx.client(user, pw, display=display, name="carol-both") as cc:
            wid_c, geom_c, _ = harness.assert_window_painted(cc, s200.title)
            # Both links carry input and output at the same time.
            harness.prove_live(ce, other, wid_e, geom_e, "erin")
            harness.prove_live(cc, s200, wid_c, geom_c, "carol")
            ce.assert_attached("erin")
            cc.assert_attached("carol")


@harness.targets("relay", "proxy")
def test_no_display_with_two_sessions_is_refused(run, fx):
    # carol has two sessions: attaching without naming one must fail with xpra's reason.
    with fx.client("carol", "carol-pw", wait_attached=False, name="carol-nodisp") as c:
        rc = c.wait_exit(60)
        check(rc != 0, "client exit code %s, expected failure" % rc)
        check("please specify a display" in c.text() or "more than one" in c.text(),
              "no 'please specify a display' reason in client log: %r" % c.exit_reason())
