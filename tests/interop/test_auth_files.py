"""The file-based auth modules: multifile (user|password|uid|gid|displays|...) and file (one
password; sessions found in the socket dir)."""

import harness
from harness import check


def _attach(run, setup, user, pw, srv, tag):
    with setup.client(user, pw, name="%s-%s" % (tag, user)) as c:
        wid, geom, _img = harness.assert_window_painted(c, srv.title)
        harness.prove_live(c, srv, wid, geom, tag)
        c.assert_attached()


def _refused(setup, user, pw, tag):
    with setup.client(user, pw, wait_attached=False, name="%s-refused" % tag) as c:
        rc = c.wait_exit(60)
        check(rc != 0 and "Attached to" not in c.text(), "wrong password accepted (rc=%s)" % rc)
        check("authentication failed" in c.text(), "no 'authentication failed' in client log: %r" % c.exit_reason())


def test_multifile_auth(run, fx):
    with harness.Setup(run, auth="multifile", name="multifile") as setup:
        srv = setup.server()
        other = setup.server()
        setup.user("mf-one", "mf-one-pw", [srv])
        setup.user("mf-two", "mf-two-pw", [other], via="tcp")
        setup.start()
        _attach(run, setup, "mf-one", "mf-one-pw", srv, "mf1")
        _attach(run, setup, "mf-two", "mf-two-pw", other, "mf2")
        _refused(setup, "mf-one", "mf-two-pw", "mf")


@harness.targets("relay", "direct")  # xpra proxy (as nobody) finds no root-owned sessions
def test_file_auth(run, fx):
    with harness.Setup(run, auth="file", name="file") as setup:
        srv = setup.server()
        setup.user("anyone", "file-secret", [srv])
        setup.start()
        _attach(run, setup, "anyone", "file-secret", srv, "file")
        _refused(setup, "anyone", "not-the-secret", "file")
