"""Ends of a relayed session: the session server stops (the client hears "server shutdown"
through the gate), and the gate itself stops (attached clients are told, not just cut)."""

import re

import harness
from harness import check


def test_session_stop_reaches_client(run, fx):
    with harness.Setup(run, auth="sqlite", name="srvstop") as setup:
        doomed = setup.server()
        other = setup.server()
        setup.user("doomed", "doomed-pw", [doomed])
        setup.user("other", "other-pw", [other])
        setup.start()
        with setup.client("other", "other-pw", name="bystander") as by:
            wid_b, geom_b, _ = harness.assert_window_painted(by, other.title)
            with setup.client("doomed", "doomed-pw", name="doomed") as c:
                harness.assert_window_painted(c, doomed.title)
                doomed.stop()
                rc = c.wait_exit(30)
                text = c.text()
                check(re.search(r"server shutdown", text), "client was not told 'server shutdown': %r" % c.exit_reason())
                # "server shutdown" is not an error to the 3.1.3 client: it exits 0 when the
                # disconnect packet arrives (a cut connection would give CONNECTION_LOST).
                check(rc == harness.EXIT_OK, "client exit code %s after 'server shutdown', want 0" % rc)
            # The gate keeps serving the other session.
            harness.prove_live(by, other, wid_b, geom_b, "bystander")
            by.assert_attached()
            check(setup.gate is None or setup.gate.alive(), "the gate died when one session stopped")


@harness.targets("relay", "proxy")
def test_gate_stop_tells_clients(run, fx):
    with harness.Setup(run, auth="sqlite", name="gatestop") as setup:
        srv = setup.server()
        setup.user("leaver", "leaver-pw", [srv])
        setup.start()
        with setup.client("leaver", "leaver-pw", name="leaver") as c:
            harness.assert_window_painted(c, srv.title)
            setup.gate.proc.stop(grace=10)
            rc = c.wait_exit(30)
            text = c.text()
            if run.target == "relay":
                check(re.search(r"server shutdown", text) and rc == harness.EXIT_OK,
                      "client was not told 'server shutdown' by the stopping relay (rc=%s): %r"
                      % (rc, c.exit_reason()))
            check(re.search(r"server shutdown|Session Disconnected|Connection lost", text),
                  "client shows no disconnect reason after the gate stopped: %r" % c.exit_reason())
            rc = setup.gate.proc.returncode()
            check(rc == 0 or run.target == "proxy", "relay exit code %s after SIGTERM (want 0)" % rc)
        # The session survives its gate: a direct check that the server is still up.
        check(srv.proc.alive(), "the session server died with the gate")
