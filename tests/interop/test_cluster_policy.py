"""A relay cluster's login policy (issue 16) with real xpra 3.1.3 clients: three relays share one
PostgreSQL 15 with `postgresql,uri=...,cluster=yes` (the database as in test_postgresql: initdb +
postgres as the postgres user on a free port, stopped by its pid). A real client logs in through
each node and sees its session painted; the password is changed with `xpra-relay-auth
postgresql://... remove/add`: right away the old one is refused on every node (each had the
user's row cached) and the new one lands in the session."""

import contextlib
import os

import harness
from harness import check
from test_postgresql import _pg_tool, _refused, postgres


@harness.targets("relay")
def test_cluster_policy(run, fx):
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(postgres(run, "postgres-cluster"))
        socket_dir = run.mkdir("sockets-cluster")
        srv = stack.enter_context(run.xpra_server(socket_dir=socket_dir))
        uid, gid = str(os.getuid()), str(os.getgid())
        _pg_tool(run, pg, ["create"])
        _pg_tool(run, pg, ["add", "cl-user", "cl-pw-1", uid, gid, srv.unix_entry(), "", ""])
        auth = "postgresql,uri=%s,cluster=yes" % pg.uri
        gates = [stack.enter_context(run.relay(auth + ",node=node%d" % i, socket_dir, name="relay-cl%d" % i))
                 for i in (1, 2, 3)]
        for i, gate in enumerate(gates, 1):
            with run.client(gate.uri("cl-user", "cl-pw-1"), name="cl-node%d" % i) as c:
                wid, geom, _img = harness.assert_window_painted(c, srv.title)
                harness.prove_live(c, srv, wid, geom, "cl%d" % i)
        # Every node has the row cached now; the change must reach all of them.
        _pg_tool(run, pg, ["remove", "cl-user"])
        _pg_tool(run, pg, ["add", "cl-user", "cl-pw-2", uid, gid, srv.unix_entry(), "", ""])
        for i, gate in enumerate(gates, 1):
            _refused(run, gate, "cl-user", "cl-pw-1", "authentication failed", "cl-old-pw-node%d" % i)
        with run.client(gates[2].uri("cl-user", "cl-pw-2"), name="cl-new-pw") as c:
            wid, geom, _img = harness.assert_window_painted(c, srv.title)
            harness.prove_live(c, srv, wid, geom, "cl-new")
        for i, gate in enumerate(gates, 1):
            check(gate.alive(), "relay node%d died" % i)
