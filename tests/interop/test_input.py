"""Keyboard input crosses the gate to the session, and the session's output comes back."""

import contextlib
import os

import harness
from harness import check


@contextlib.contextmanager
def fixture(run):
    with harness.Setup(run, auth="sqlite", name="input") as setup:
        srv = setup.server()
        setup.user("typist", "type-pw", [srv])
        setup.start()
        yield setup


def test_typed_command_runs_on_server(run, fx):
    srv = fx.servers[0]
    with fx.client("typist", "type-pw") as c:
        wid, geom, before = harness.assert_window_painted(c, srv.title)
        target = os.path.join(srv.workdir, "typed-mark")
        c.type_text(wid, "echo MARK-42 > %s" % target)
        harness.wait_until(lambda: harness.read_text(target).strip() == "MARK-42", 20,
                           what="the typed command to write %s" % target)
        # The echo and the new prompt are drawn by the server and must reach the client.
        changed = harness.wait_until(lambda: c.screenshot().diff(before, *geom), 15, interval=0.3,
                                     what="window pixels to change after typing")
        check(changed > 50, "only %d pixels changed after typing a command" % changed)
        c.screenshot(save_as="after-typing.png")


def test_second_command_in_same_session(run, fx):
    # The same session gets a fresh client: input still works after a detach/attach cycle.
    srv = fx.servers[0]
    with fx.client("typist", "type-pw", name="again") as c:
        wid, geom, _img = harness.assert_window_painted(c, srv.title)
        changed = harness.prove_live(c, srv, wid, geom, "again")
        check(changed > 0, "no pixel changed")
