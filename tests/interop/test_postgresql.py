"""The postgresql auth module (issue 16) with real xpra 3.1.3 clients. A real PostgreSQL 15
(initdb + postgres, started here as the postgres user on a free port of 127.0.0.1, stopped by
its pid) holds the users, written with xpra-relay-auth (add, and migrate from a sqlite file);
the relay runs --tcp-auth=postgresql,uri=...: a login lands in the user's session, a wrong
password is refused, the database stopped -> an attached client keeps working and a new login
is told "authentication service unavailable", the database started again -> logins work with
the same relay process."""

import contextlib
import os
import pwd
import re
import secrets
import signal
import subprocess
import time

import harness
from harness import check

PG_BIN = "/usr/lib/postgresql/15/bin"


def _demote():
    """preexec: run as the postgres user when root (PostgreSQL refuses to run as root)."""
    if os.getuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)


class Postgres:
    """A PostgreSQL cluster in the run dir; start()/stop() the server by its pid."""

    def __init__(self, run, name="postgres"):
        for prog in ("initdb", "postgres"):
            if not os.access(os.path.join(PG_BIN, prog), os.X_OK):
                raise harness.TestFailure("%s/%s missing: install the Debian package postgresql-15 "
                                          "(tools/lib.sh XR_TEST_PACKAGES)" % (PG_BIN, prog))
        self.run = run
        self.dir = run.mkdir(name, 0o700)  # one per test module (the run dir is shared)
        if os.getuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.password = secrets.token_hex(12)
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if os.getuid() == 0:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.dir, "data")
        p = harness.Proc("initdb", [os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "xr",
                                    "--pwfile=" + pwfile, "--auth=scram-sha-256", "-E", "UTF8", "--locale=C",
                                    "--no-sync"], run.path("initdb.log"), run.env(), cwd=self.dir, preexec=_demote)
        check(p.wait(120) == 0, "initdb failed: %s" % harness.log_tail(run.path("initdb.log"), 10))
        p.stop()
        self.port = run.free_port()
        self.proc = None
        self.uri = "postgresql://xr:%s@127.0.0.1:%d/postgres" % (self.password, self.port)

    def start(self):
        self.proc = harness.Proc("postgres", [os.path.join(PG_BIN, "postgres"), "-D", self.data, "-p",
                                              str(self.port), "-c", "listen_addresses=127.0.0.1", "-c",
                                              "unix_socket_directories=", "-c", "fsync=off"],
                                 self.run.path("postgres.log"), self.run.env(), cwd=self.dir, preexec=_demote)
        harness.wait_for_log(self.proc.log_path, r"database system is ready to accept connections", 30,
                             proc=self.proc)

    def stop(self):
        """Fast shutdown (SIGINT: clients are disconnected, unlike SIGTERM's smart shutdown)."""
        if self.proc and self.proc.alive():
            os.kill(self.proc.pid, signal.SIGINT)
            self.proc.wait(30)
        if self.proc:
            self.proc.stop()
        self.proc = None


@contextlib.contextmanager
def postgres(run, name="postgres"):
    pg = Postgres(run, name)
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()


def _pg_tool(run, pg, args):
    """xpra-relay-auth URI ARGS...: must succeed and never print the database password (the
    command line logged here has the password masked)."""
    out = subprocess.run([run.auth_bin, pg.uri] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=run.env(), timeout=30)
    text = out.stdout.decode(errors="replace")
    with open(run.path("auth-tool.log"), "a") as f:
        f.write("$ xpra-relay-auth postgresql://xr:***@127.0.0.1:%d/postgres %s\n%s" % (pg.port, " ".join(args), text))
    check(out.returncode == 0, "xpra-relay-auth %s failed (rc=%d): %s" % (args[0], out.returncode, text))
    check(pg.password not in text, "the database password is in the output of xpra-relay-auth %s" % args[0])
    return text


def _refused(run, gate, user, pw, reason, name):
    start = harness.log_size(gate.log)
    with run.client(gate.uri(user, pw), wait_attached=False, name=name) as c:
        rc = c.wait_exit(60)
        text = c.text()
        check(rc == harness.EXIT_CONNECTION_FAILED, "client exit code %s, want %d" % (rc, harness.EXIT_CONNECTION_FAILED))
        check("Attached to" not in text, "client attached although it should have been refused")
        check(reason in text, "client log has no %r; it printed: %r" % (reason, c.exit_reason()))
    new = harness.read_text(gate.log)[start:]
    check(re.search(r"disconnect.*%s" % re.escape(reason), new) or reason in new,
          "relay log has no %r line:\n%s" % (reason, new[-2000:]))
    return new


@harness.targets("relay")
def test_postgresql_auth(run, fx):
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(postgres(run))
        socket_dir = run.mkdir("sockets-pg")
        srv = stack.enter_context(run.xpra_server(socket_dir=socket_dir))
        other = stack.enter_context(run.xpra_server(socket_dir=socket_dir))
        uid, gid = str(os.getuid()), str(os.getgid())
        _pg_tool(run, pg, ["create"])
        _pg_tool(run, pg, ["add", "pg-user", "pg-user-pw", uid, gid, srv.unix_entry(), "", ""])
        # A second user comes from a sqlite file through migrate.
        sdb = run.sqlite_db([("migrated", "migrated-pw", other.unix_entry())], name="to-migrate.sdb")
        check("copied 1 rows (1 users, 0 replaced)" in _pg_tool(run, pg, ["migrate", sdb]), "migrate did not copy the user")

        gate = stack.enter_context(run.relay("postgresql,uri=" + pg.uri, socket_dir, name="relay-pg"))
        with run.client(gate.uri("pg-user", "pg-user-pw"), name="pg-user") as c:
            wid, geom, _img = harness.assert_window_painted(c, srv.title)
            harness.prove_live(c, srv, wid, geom, "pg1")
            _refused(run, gate, "pg-user", "wrong-pw", "authentication failed", "pg-wrong")

            # Database down: the attached client goes on, a new login is told why, at once.
            pg.stop()
            t0 = time.monotonic()
            new = _refused(run, gate, "migrated", "migrated-pw", "authentication service unavailable", "pg-down")
            run_time = time.monotonic() - t0
            check("too many failed logins" not in new, "a database outage counted as failed logins")
            harness.prove_live(c, srv, wid, geom, "pg2")
            c.assert_attached("client attached before the database stopped")

            # Database back: logins work again, same relay process.
            pg.start()
            relay_pid = gate.proc.pid
            with run.client(gate.uri("migrated", "migrated-pw"), name="migrated") as m:
                mwid, mgeom, _img = harness.assert_window_painted(m, other.title)
                harness.prove_live(m, other, mwid, mgeom, "pg3")
            check(gate.alive() and gate.proc.pid == relay_pid, "the relay was restarted")
        # (The harness's own first line echoes the relay's command line, which holds the URI.)
        relay_text = "\n".join(l for l in harness.read_text(gate.log).splitlines() if not l.startswith("$ "))
        check(pg.password not in relay_text, "the database password is in the relay's log")
        check("xr@127.0.0.1:%d/postgres" % pg.port in relay_text, "the relay's log does not name the database")
        harness.event("refused client with the database down ran %.1f s (client start-up included)" % run_time)
