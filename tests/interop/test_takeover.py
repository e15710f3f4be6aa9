"""Restart without dropping a session, with real xpra 3.1.3: a new relay started with
--takeover=<the running relay's control socket> takes its listening sockets (SCM_RIGHTS over
that socket) and accepts at once; the old relay stops accepting and keeps relaying the
sessions it has until they end, then exits 0. Checked: an attached client keeps working
across the takeover (prove_live), a client attaching afterwards is served by the new relay
(its log, not the old one's), and a loop opening connections all the while (a hello that must
be answered with a challenge) sees no refusal, reset or silence.
"""

import contextlib
import os
import socket
import threading
import time

import harness
import control_util as cu
import wire
from harness import check

TARGETS = ("relay",)   # the takeover is the relay's own


class ConnectLoop:
    """Every 50 ms: connect, send a hello asking for a challenge, read the first answer."""

    def __init__(self, port):
        self.port, self.served, self.failures = port, 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _one(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            s.sendall(wire.encode_packet(wire.hello_packet({"username": "loop", "challenge": True})))
            buf = b""
            deadline = time.time() + 10
            while time.time() < deadline:
                data = s.recv(65536)
                if not data:
                    return "closed without an answer"
                buf += data
                packets, _rest = wire.decode_frames(buf)
                if any(p and wire.text(p[0]) == "challenge" for p in packets):
                    return None
                if packets:
                    return "answered %r, not a challenge" % [wire.text(p[0]) for p in packets]
            return "no challenge in 10 s"
        finally:
            s.close()

    def _run(self):
        while not self.stop.is_set():
            try:
                why = self._one()
            except (OSError, wire.DecodeError) as e:
                why = repr(e)
            if why:
                self.failures.append(why)
            else:
                self.served += 1
            time.sleep(0.05)

    def finish(self):
        self.stop.set()
        self.thread.join(30)
        return self.served, self.failures


@contextlib.contextmanager
def fixture(run):
    sdir = run.mkdir("sockets-takeover", 0o700)
    with contextlib.ExitStack() as stack:
        s1 = stack.enter_context(run.xpra_server(socket_dir=sdir, tcp=False, title="tko-alice"))
        s2 = stack.enter_context(run.xpra_server(socket_dir=sdir, tcp=False, title="tko-bob"))
        db = run.sqlite_db([("alice", "alice-pw", s1.unix_entry()), ("bob", "bob-pw", s2.unix_entry())],
                           name="takeover-users.sdb")
        yield {"dir": sdir, "alice": s1, "bob": s2, "auth": "sqlite,filename=%s" % db}


def test_takeover_keeps_sessions_and_refuses_nobody(run, fx):
    common = ["--max-logins-per-address=0", "--max-connections-per-address=0", "--login-failures=100000"]
    with cu.relay(run, fx["auth"], fx["dir"], extra=["--threads=2"] + common, name="relay-old") as old:
        with run.client(old.uri("alice", "alice-pw"), name="client-alice") as alice:
            wid, geom, _ = harness.assert_window_painted(alice, fx["alice"].title)
            harness.prove_live(alice, fx["alice"], wid, geom, "before")
            loop = ConnectLoop(old.port)
            time.sleep(1.5)
            log = run.path("relay-new.log")
            argv = cu.relay_argv(run, old.port, fx["auth"], fx["dir"], old.display,
                                 ["--takeover=%s" % old.display_socket, "--threads=1"] + common)
            new = harness.Proc("relay-new", argv, log, run.env())
            try:
                harness.wait_for_log(log, r"accepting on the sockets taken over", 20, proc=new)
                harness.wait_for_log(old.log, r"stopped accepting and drains 1 session ", 10, proc=old.proc)
                time.sleep(3)
                served, failures = loop.finish()
                harness.event("connect loop across the takeover: %d served, %d failures" % (served, len(failures)))
                check(served >= 20 and not failures, "connect loop across the takeover: %d served, failures %s"
                      % (served, failures[:5]))
                check("took over 2 listening sockets" in harness.read_text(log) or
                      "took over 3 listening sockets" in harness.read_text(log),
                      "new relay did not say what it took over:\n%s" % harness.log_tail(log, 20))
                # The attached client keeps working through the old relay.
                harness.prove_live(alice, fx["alice"], wid, geom, "after")
                alice.assert_attached()
                check(old.alive(), "the old relay exited while its session was up")
                # A new client is served by the new relay.
                before_old = harness.read_text(old.log)
                with run.client(old.uri("bob", "bob-pw"), name="client-bob") as bob:
                    wid_b, geom_b, _ = harness.assert_window_painted(bob, fx["bob"].title)
                    check("user=bob relaying to" in harness.read_text(log),
                          "bob's session is not in the new relay's log:\n%s" % harness.log_tail(log, 20))
                    check("bob" not in harness.read_text(old.log)[len(before_old):],
                          "the old relay served bob after the takeover:\n%s" % harness.log_tail(old.log, 20))
                    harness.prove_live(bob, fx["bob"], wid_b, geom_b, "bob")
                    # alice leaves: the old relay has nothing left and exits 0.
                    alice.proc.stop()
                    rc = old.wait_exit(30)
                    check(rc == 0, "old relay exit code %s after draining (want 0)" % rc)
                    check("drained: every connection has ended" in harness.read_text(old.log),
                          "old relay did not say it drained:\n%s" % harness.log_tail(old.log, 20))
                    check(cu.probe_socket(old.display_socket) == "LIVE",
                          "the display's control socket is not served by the new relay after the old one exited")
                    harness.prove_live(bob, fx["bob"], wid_b, geom_b, "bob-after")
                    bob.assert_attached()
                    # `xpra info` on the display reaches the new relay (it counts bob, not alice).
                    info = cu.xpra_info(run, old.display, fx["dir"])
                    check(cu.as_int(info, "proxy.connections.active") == 1,
                          "xpra info on the display after the takeover: %s" % info.get("proxy.connections.active"))
            finally:
                new.stop(grace=10)
            check(new.returncode() == 0, "new relay exit code %s after SIGTERM" % new.returncode())
