"""The relay cluster (issue 16) with real components: a real PostgreSQL 15 (initdb + postgres in
the run dir, free port), three relay nodes and a real HAProxy 2.6 (`mode tcp`, `balance
leastconn`, health checks on each node's /metrics) in front, all configured from the reference
files in deploy/cluster/ (relay-node.conf.in, haproxy.cfg.in; the schema in
deploy/cluster/schema/ is what the relays apply), and real xpra 3.1.3 clients and servers.

- clients land in their own sessions through whichever node HAProxy picks; `xpra_relay cluster
  list` with node 1's config shows the connections held by nodes 2 and 3; `cluster info`, and
  `xpra info` on node 1's display shows the cluster; `cluster stop` from node 1 ends a
  connection on another node, whose client is told why, and its row goes;
- SIGKILL of a node: its client reattaches through HAProxy to another node, and the dead
  node's rows are gone within its TTL;
- PostgreSQL stopped: attached clients keep working; started again: registration resumes, no
  relay restarted.

Everything is started here on 127.0.0.1 and stopped by its pid."""

import contextlib
import itertools
import os
import re
import shutil
import subprocess
import time
import types

import harness
from harness import check
from test_postgresql import Postgres, _pg_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy", "cluster")
TTL_S = 10        # relay-node.conf.in's cluster-ttl
HEARTBEAT_S = 2   # ... and cluster-heartbeat
USERS = ("ann", "ben", "cat")


def _fill(template, values):
    """deploy/cluster/TEMPLATE with every @NAME@ replaced; fails on a placeholder left over."""
    text = harness.read_text(os.path.join(DEPLOY, template))
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z0-9_]+@", text)
    check(not left, "%s: placeholders the test did not fill: %s" % (template, left))
    return text


class Node:
    """One relay started from deploy/cluster/relay-node.conf.in."""

    def __init__(self, run, index, uri):
        self.run = run
        self.index = index
        self.name = "node%d" % index
        self.port = run.free_port()
        self.metrics_port = run.free_port()
        self.display = run.free_display()
        self.socket_dir = run.mkdir("sockets-%s" % self.name)
        self.conf = run.path("%s.conf" % self.name)
        with open(self.conf, "w") as f:
            f.write(_fill("relay-node.conf.in", {
                "DISPLAY": ":%d" % self.display, "SOCKET_DIR": self.socket_dir,
                "BIND": "127.0.0.1:%d" % self.port, "HAPROXY_FROM": "127.0.0.1/32",
                "METRICS": "127.0.0.1:%d" % self.metrics_port, "DATABASE_URI": uri, "NODE": self.name}))
        os.chmod(self.conf, 0o600)  # it holds the database password
        self.log = run.path("relay-%s.log" % self.name)
        self.proc = None

    def start(self):
        self.proc = harness.Proc("relay " + self.name, [self.run.relay_bin, "--config=" + self.conf], self.log,
                                 self.run.env())
        harness.wait_until(lambda: harness.port_listening(self.port) or not self.proc.alive(), 20,
                           what="%s listening on %d" % (self.name, self.port))
        check(self.proc.alive(), "%s exited at start-up:\n%s" % (self.name, harness.log_tail(self.log, 20)))

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def stop(self):
        if self.proc:
            self.proc.stop(grace=10)


def cluster_cmd(run, node, *args, rc=0):
    """`xpra_relay cluster --config=NODE.conf ARGS` (the database from that node's config file)."""
    res = subprocess.run([run.relay_bin, "cluster", "--config=" + node.conf] + list(args), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=run.env(), timeout=30)
    out, err = res.stdout.decode(errors="replace"), res.stderr.decode(errors="replace")
    with open(run.path("cluster-cli.log"), "a") as f:
        f.write("$ xpra_relay cluster --config=%s %s  (rc=%d)\n%s%s" % (node.conf, " ".join(args), res.returncode,
                                                                     out, err))
    if rc is not None:
        check(res.returncode == rc, "cluster %s: rc=%d (want %d):\n%s%s" % (" ".join(args), res.returncode, rc, out, err))
    return res.returncode, out, err


def listed(run, node, rc=0):
    """`cluster list` as {user: (id, node name)} and the summary line (rc=None: a failed list
    is ({}, its error))."""
    code, out, err = cluster_cmd(run, node, "list", rc=rc)
    if code != 0:
        return {}, err.strip()
    rows = {}
    for line in out.splitlines()[1:-1]:
        f = line.split()
        rows[f[1]] = (f[0], f[0].split("/")[0])
    return rows, out.splitlines()[-1]


_PG_DIRS = itertools.count(1)


@contextlib.contextmanager
def fixture(run):
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    check(os.access(haproxy, os.X_OK), "haproxy not found: install the Debian package 'haproxy' "
                                       "(tools/lib.sh XR_TEST_PACKAGES)")
    with contextlib.ExitStack() as stack:
        # Its own data directory per fixture (test_postgresql and test_cluster_policy share the run dir).
        pg = Postgres(run, "postgres-cluster-%d" % next(_PG_DIRS))
        stack.callback(pg.stop)
        pg.start()
        _pg_tool(run, pg, ["create"])
        fx = types.SimpleNamespace()
        fx.pg = pg
        fx.servers = {}
        for user in USERS:
            srv = stack.enter_context(run.xpra_server(title="cl-%s" % user))
            fx.servers[user] = srv
            _pg_tool(run, pg, ["add", user, user + "-pw", "", "", srv.tcp_entry()])
        fx.nodes = [Node(run, i, pg.uri) for i in (1, 2, 3)]
        for n in fx.nodes:
            stack.callback(n.stop)
            n.start()
        front = run.free_port()
        cfg = run.path("haproxy.cfg")
        values = {"FRONTEND": "127.0.0.1:%d" % front}
        for n in fx.nodes:
            values["NODE%d" % n.index] = "127.0.0.1:%d" % n.port
            values["NODE%d_METRICS_HOST" % n.index] = "127.0.0.1"
            values["NODE%d_METRICS_PORT" % n.index] = n.metrics_port
        with open(cfg, "w") as f:
            f.write(_fill("haproxy.cfg.in", values))
        hp = harness.Proc("haproxy", [haproxy, "-f", cfg, "-db"], run.path("haproxy.log"), run.env())
        stack.callback(hp.stop, 5)
        harness.wait_until(lambda: harness.port_listening(front) or not hp.alive(), 15, what="haproxy on %d" % front)
        check(hp.alive(), "haproxy exited at start-up:\n%s" % harness.log_tail(run.path("haproxy.log"), 20))
        fx.front = front
        # Every node registered (a heartbeat each), and HAProxy's first checks passed (inter 1s).
        harness.wait_until(lambda: listed(run, fx.nodes[0])[1].endswith("on 3 live nodes"), 20,
                           what="3 live nodes in `cluster list`")
        time.sleep(2)
        yield fx


def _uri(fx, user):
    return "tcp://%s:%s-pw@127.0.0.1:%d/" % (user, user, fx.front)


def _attach(run, stack, fx, user, tag):
    """A client of `user` through HAProxy, proven in its own session (its xterm painted, a typed
    command runs there)."""
    c = stack.enter_context(run.client(_uri(fx, user), name="%s-%s" % (user, tag)))
    srv = fx.servers[user]
    wid, geom, _img = harness.assert_window_painted(c, srv.title)
    harness.prove_live(c, srv, wid, geom, "%s-%s" % (user, tag))
    return c, wid, geom


def _wait_rows(run, fx, want_users, timeout):
    """Waits until `cluster list` shows exactly these users' connections; returns the rows."""
    got = {}

    def probe():
        got.clear()
        got.update(listed(run, fx.nodes[0], rc=None)[0])
        return set(got) == set(want_users)
    harness.wait_until(probe, timeout, interval=0.5, what="cluster list to show %s (has %s)" % (sorted(want_users), got))
    return dict(got)


def test_cluster_list_info_stop(run, fx):
    n1 = fx.nodes[0]
    with contextlib.ExitStack() as stack:
        clients = {u: _attach(run, stack, fx, u, "a") for u in USERS}
        rows = _wait_rows(run, fx, USERS, HEARTBEAT_S + 5)
        holders = {u: rows[u][1] for u in USERS}
        harness.event("cluster list: %s" % holders)
        # leastconn spread the three sessions over the three nodes: node 1 lists the others'.
        check(sorted(holders.values()) == ["node1", "node2", "node3"],
              "the three clients are not one per node (HAProxy leastconn): %s" % holders)
        check(listed(run, n1)[1] == "3 connections on 3 live nodes", "cluster list summary: %r" % listed(run, n1)[1])
        # No secret in what operators see.
        _rc, out, _err = cluster_cmd(run, n1, "list")
        check(fx.pg.password not in out, "the database password is in `cluster list`")
        # info ID: one row, with the node's own details.
        remote = next(u for u in USERS if holders[u] == "node3")
        _rc, info, _err = cluster_cmd(run, n1, "info", rows[remote][0])
        check("node: node3" in info and "user: %s" % remote in info and "transport: tcp" in info,
              "cluster info %s:\n%s" % (rows[remote][0], info))
        check("target: tcp://127.0.0.1:%d/" % fx.servers[remote].port in info, "cluster info has no target:\n%s" % info)
        check(re.search(r"client: 127\.0\.0\.1:\d+", info), "cluster info has no client address:\n%s" % info)
        check(re.search(r"bytes-to-client: [1-9]\d*", info), "no bytes counted to the client:\n%s" % info)
        # xpra info on node 1's own display: the cluster, its live nodes and their counts.
        # (What node 1 saw at its last heartbeat: wait for one after every node's.)
        wants = ("cluster.node=node1", "cluster.live-nodes=3", "cluster.nodes.node2.connections=1",
                 "cluster.nodes.node3.connections=1", "cluster.connections=3", "cluster.connected=True")
        info_text = [""]

        def info_shows_cluster():
            res = subprocess.run([harness.XPRA, "info", ":%d" % n1.display, "--socket-dirs=%s" % n1.socket_dir],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=run.env(), timeout=30)
            info_text[0] = res.stdout.decode(errors="replace")
            return all(w in info_text[0] for w in wants)
        try:
            harness.wait_until(info_shows_cluster, 2 * HEARTBEAT_S + 2, interval=0.5, what="xpra info to show the cluster")
        except harness.TestFailure:
            missing = [w for w in wants if w not in info_text[0]]
            check(False, "xpra info :%d has no %s:\n%s" % (n1.display, missing, info_text[0][-3000:]))
        text = info_text[0]
        check(fx.pg.password not in text, "the database password is in xpra info")
        # A bad id is refused with a reason.
        rc, _out, err = cluster_cmd(run, n1, "stop", "node3/:proxy-x", rc=None)
        check(rc == 1 and "connection id" in err, "a malformed id: rc=%d %r" % (rc, err))
        # stop from node 1 ends node 3's connection; its client is told why; the row goes.
        t0 = time.monotonic()
        _rc, out, _err = cluster_cmd(run, n1, "stop", rows[remote][0])
        check("stopped %s" % rows[remote][0] in out, "cluster stop did not confirm:\n%s" % out)
        c, _wid, _geom = clients[remote]
        harness.wait_until(lambda: not c.proc.alive(), 30, what="client of %s to exit" % remote)
        text = c.text()
        check("this session was stopped by the cluster operator" in text,
              "the stopped client was not told why; it printed: %r" % c.exit_reason())
        harness.event("cluster stop ran %.1f s to the client's exit" % (time.monotonic() - t0))
        node3 = fx.nodes[2]
        check("stop request for %s: connection stopped" % rows[remote][0].split("/")[1] in harness.read_text(node3.log),
              "node3's log has no line for the stop")
        rows2, summary = listed(run, n1)
        check(remote not in rows2, "the stopped connection's row is still listed: %s" % rows2)
        check(summary == "2 connections on 3 live nodes", "cluster list summary after stop: %r" % summary)
        for u in USERS:
            if u != remote:
                clients[u][0].assert_attached("%s's client (not stopped)" % u)


def test_cluster_sigkill_node(run, fx):
    n1 = fx.nodes[0]
    with contextlib.ExitStack() as stack:
        clients = {u: _attach(run, stack, fx, u, "k") for u in USERS}
        rows = _wait_rows(run, fx, USERS, HEARTBEAT_S + 5)
        victim_user = next(u for u in USERS if rows[u][1] != "node1")
        victim = next(n for n in fx.nodes if n.name == rows[victim_user][1])
        harness.event("SIGKILL %s (holding %s)" % (victim.name, victim_user))
        os.kill(victim.proc.pid, 9)
        t_kill = time.monotonic()
        c = clients[victim_user][0]
        harness.wait_until(lambda: not c.proc.alive() or not c.attached(), 30,
                           what="%s's client to lose its connection" % victim_user)
        # Its user reattaches through HAProxy: the same address, another node, the same session.
        c2, _wid, _geom = _attach(run, stack, fx, victim_user, "re")
        # The dead node's rows go within its TTL (any live node deletes them).
        def dead_rows_gone():
            got, summary = listed(run, n1)
            return all(node != victim.name for _id, node in got.values()) and summary.endswith("on 2 live nodes")
        harness.wait_until(dead_rows_gone, TTL_S + HEARTBEAT_S + 5, interval=0.5,
                           what="%s's rows to leave `cluster list`" % victim.name)
        gone_s = time.monotonic() - t_kill
        harness.event("%s's rows gone %.1f s after SIGKILL (ttl %d s)" % (victim.name, gone_s, TTL_S))
        check(gone_s <= TTL_S + HEARTBEAT_S + 1, "rows gone %.1f s after the kill, over the ttl" % gone_s)
        rows2 = _wait_rows(run, fx, USERS, HEARTBEAT_S + 5)
        check(rows2[victim_user][1] != victim.name, "the reattached client is listed on the dead node")
        survivors = [n for n in fx.nodes if n is not victim]
        # Readers ignore the node from its TTL on; a live node deletes it at its next heartbeat.
        harness.wait_until(lambda: any("node %s expired" % victim.name in harness.read_text(n.log) for n in survivors),
                           HEARTBEAT_S + 3, what="a live node to log removing %s's rows" % victim.name)
        for u in USERS:
            if u != victim_user:
                clients[u][0].assert_attached("%s's client (on a live node)" % u)
        c2.assert_attached("the reattached client")


def test_cluster_database_restart(run, fx):
    n1 = fx.nodes[0]
    live = [n for n in fx.nodes if n.alive()]
    check(len(live) >= 2, "fewer than 2 live nodes left: %s" % [n.name for n in live])
    pids = {n.name: n.proc.pid for n in live}
    with contextlib.ExitStack() as stack:
        clients = {u: _attach(run, stack, fx, u, "d") for u in USERS}
        _wait_rows(run, fx, USERS, HEARTBEAT_S + 5)
        fx.pg.stop()
        harness.event("PostgreSQL stopped")
        time.sleep(HEARTBEAT_S + 1)  # every node has noticed (a heartbeat failed)
        for n in live:
            check("cluster: lost the database" in harness.read_text(n.log) or
                  "cluster: cannot reach the database" in harness.read_text(n.log),
                  "%s did not log losing the database" % n.name)
        # Attached clients go on: input and output still cross every node.
        for u in USERS:
            c, wid, geom = clients[u]
            c.assert_attached("%s's client with the database down" % u)
            harness.prove_live(c, fx.servers[u], wid, geom, "%s-pgdown" % u)
        fx.pg.start()
        harness.wait_until(lambda: harness.port_listening(fx.pg.port), 30, what="PostgreSQL listening again")
        t0 = time.monotonic()
        harness.event("PostgreSQL started again")
        # Registration resumes without a restart (back-off at most 5 s, then a heartbeat). The
        # rows of before the stop are still on PostgreSQL's disk, so `cluster list` alone would
        # pass at once: each node must say it registered again.
        harness.wait_until(lambda: all("registered again in database" in harness.read_text(n.log) for n in live), 15,
                           what="every live node to log 'registered again in database'")
        resumed = time.monotonic() - t0
        harness.event("every node registered again %.1f s after PostgreSQL restarted" % resumed)
        rows = _wait_rows(run, fx, USERS, 15)
        check(listed(run, n1)[1] == "3 connections on %d live nodes" % len(live),
              "cluster list after the restart: %r" % listed(run, n1)[1])
        for n in live:
            check(n.alive() and n.proc.pid == pids[n.name], "%s was restarted" % n.name)
        for u in USERS:
            clients[u][0].assert_attached("%s's client after the database came back" % u)
        check(all(rows[u][1] in pids for u in USERS), "rows on nodes that are not live: %s" % rows)
    for n in fx.nodes:
        text = "\n".join(l for l in harness.read_text(n.log).splitlines() if not l.startswith("$ "))
        check(fx.pg.password not in text, "the database password is in %s's log" % n.name)
