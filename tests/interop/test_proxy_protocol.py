"""PROXY protocol v2 with a real xpra 3.1.3 client behind a real HAProxy (issue 19).

HAProxy (`mode tcp`, `server ... send-proxy-v2 source 127.0.0.5`) takes the client's
connection on 127.0.0.1 and connects to the relay's `proxy-protocol=v2` bind from 127.0.0.5,
so the socket's peer (HAProxy) and the client's address (127.0.0.1) differ. The client
attaches and sees its window; `xpra info :proxy-N` and the relay's log show the client's
address, never HAProxy's; a direct connection to that bind from a peer outside
--proxy-protocol-from is refused with a log line.
"""

import contextlib
import os
import re
import shutil
import socket

import control_util as cu
import harness
from harness import check

TARGETS = ("relay",)


@contextlib.contextmanager
def fixture(run):
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    check(os.access(haproxy, os.X_OK), "haproxy not found: install the Debian package 'haproxy' "
                                       "(tools/lib.sh XR_TEST_PACKAGES)")
    pp_port = run.free_port()
    relay_args = ["--bind-tcp=127.0.0.1:%d,proxy-protocol=v2" % pp_port, "--proxy-protocol-from=127.0.0.5/32"]
    with harness.Setup(run, auth="sqlite", relay_args=relay_args, name="pp") as setup:
        srv = setup.server(title="pp-xterm")
        setup.user("carol", "carol-pw", [srv])
        setup.start()
        harness.wait_until(lambda: harness.port_listening(pp_port), 10, what="relay PROXY bind on %d" % pp_port)
        hport = run.free_port()
        cfg = run.path("haproxy-pp.cfg")
        with open(cfg, "w") as f:
            f.write("global\n    maxconn 100\n"
                    "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n"
                    "frontend fe\n    bind 127.0.0.1:%d\n    default_backend be\n"
                    "backend be\n    server relay 127.0.0.1:%d send-proxy-v2 source 127.0.0.5\n" % (hport, pp_port))
        p = harness.Proc("haproxy", [haproxy, "-f", cfg, "-db"], run.path("haproxy.log"), run.env())
        try:
            harness.wait_until(lambda: harness.port_listening(hport) or not p.alive(), 15,
                               what="haproxy listening on %d" % hport)
            check(p.alive(), "haproxy exited at startup:\n%s" % harness.log_tail(run.path("haproxy.log"), 20))
            setup.haproxy_port = hport
            setup.pp_port = pp_port
            yield setup
        finally:
            p.stop(grace=5)


def test_client_behind_haproxy_is_seen_by_its_own_address(run, fx):
    srv = fx.servers[0]
    before = cu.proxy_ids(fx.socket_dir)
    uri = "tcp://carol:carol-pw@127.0.0.1:%d/" % fx.haproxy_port
    with run.client(uri, name="client-pp") as c:
        wid, geom, _img = harness.assert_window_painted(c, srv.title, save_as="proxy-protocol.png")
        n = cu.wait_new_proxy_id(fx.socket_dir, before)
        info = cu.xpra_info(run, ":proxy-%d" % n, fx.socket_dir)
        peer = info.get("client.peer", "")
        check(re.match(r"^127\.0\.0\.1:\d+$", peer), "xpra info client.peer %r: want the client's 127.0.0.1:PORT, "
                                                     "not HAProxy's 127.0.0.5" % peer)
        log = harness.read_text(fx.gate_log)
        check(re.search(r"peer=127\.0\.0\.1:\d+ via PROXY protocol v2 from 127\.0\.0\.5:\d+", log),
              "relay log has no 'via PROXY protocol v2 from 127.0.0.5' line:\n%s" % harness.log_tail(fx.gate_log, 20))
        check(re.search(r"peer=127\.0\.0\.1:\d+ user=carol relaying", log),
              "relay log's relaying line does not name the client's address:\n%s" % harness.log_tail(fx.gate_log, 20))
        # HAProxy's address shows only where the socket is accepted (before its header is read).
        leaked = [ln for ln in log.splitlines() if "peer=127.0.0.5" in ln and " accepted on " not in ln]
        check(not leaked, "HAProxy's address stands for the client in: %s" % leaked[:3])
        harness.prove_live(c, srv, wid, geom, "proxy-protocol")
        c.assert_attached()


def test_direct_connection_to_proxy_bind_is_refused(run, fx):
    s = socket.create_connection(("127.0.0.1", fx.pp_port), timeout=10)
    try:
        data = s.recv(4096)
    except ConnectionResetError:
        data = b""
    s.close()
    check(data == b"", "a peer outside --proxy-protocol-from got %r" % data[:100])
    harness.wait_until(lambda: "not in --proxy-protocol-from" in harness.read_text(fx.gate_log), 10,
                       what="the refusal's log line")
