"""System-wide mode (issue 15): real local accounts, each with real xpra 3.1.3 sessions started AS
that account; the relay finds the authenticated user's own sessions by uid and starts one on
demand.

Accounts are made here with useradd (xrsw_<role>_<pid>: unique per run) and removed with
userdel -r at the end, even on failure, after every process of theirs is stopped (by pid).

Two relays:
  - "shared": the relay runs as an unprivileged account in a group that alone can read the
    shared socket dir (mode 3773 root:GROUP, setgid: sockets get GROUP; sessions use
    --socket-permissions=660). Proves discovery needs no root: docs/security.md.
  - "starter": the relay as root with --proxy-start-sessions and a runuser launcher.
Auth: sqlite with the uid column (swapping to pam is one relay argument: the registry only
needs the uid or the user name).
"""

import contextlib
import os
import pwd
import grp
import re
import shutil
import signal
import subprocess
import time

import harness
from harness import check

TARGETS = ("relay",)

QUIET = [o for o in harness.SERVER_QUIET if not o.startswith("--daemon")]

# The launcher the root relays here run (also test_sysauth's). --start-new-commands=no: `xpra
# start URI --start=CMD` also sends CMD as a run-command once attached (xpra's own proxy gets both
# too); a second xterm of the same title stacked on the first at 0,0 of a WM-less Xvfb stays black
# on the client, with or without the relay.
RUNUSER_LAUNCHER = "runuser -u %%u -- %s %%a --daemon=no --start-new-commands=no %s" % (harness.XPRA, " ".join(QUIET))


def _run(argv):
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    harness.event("$ %s -> %d" % (" ".join(argv), out.returncode))
    check(out.returncode == 0, "%s failed (rc=%d): %s" % (" ".join(argv), out.returncode, out.stdout.decode()[-300:]))


def _pids_of_uid(uid):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(d))
                        break
        except OSError:
            pass
    return pids


def _ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Accounts:
    """Local accounts and groups made for this run; removed (processes first) on exit."""

    def __init__(self):
        self.users = []
        self.groups = []

    def group(self, role):
        name = "xrsw_%s_%d" % (role, os.getpid())
        _run(["groupadd", name])
        self.groups.append(name)
        return name

    def user(self, role, home=True, group=None):
        name = "xrsw_%s_%d" % (role, os.getpid())
        argv = ["useradd", "-s", "/bin/sh"] + (["-m"] if home else ["-M", "-d", "/nonexistent"])
        if group:
            argv += ["-g", group]
        _run(argv + [name])
        self.users.append(name)
        return pwd.getpwnam(name)

    def close(self):
        for name in self.users:
            try:
                uid = pwd.getpwnam(name).pw_uid
            except KeyError:
                continue
            harness.kill_pids(_pids_of_uid(uid), grace=3)
            subprocess.call(["userdel", "-r", "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name in self.groups:
            subprocess.call(["groupdel", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _user_env(run, pw, **extra):
    env = run.env(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name,
                  XAUTHORITY=os.path.join(pw.pw_dir, ".Xauthority"), PS1="$ ", **extra)
    env.pop("XDG_RUNTIME_DIR", None)
    return env


@contextlib.contextmanager
def user_session(run, pw, socket_dir, title):
    """`xpra start :N` run AS the account (runuser), its socket in socket_dir, mode 660."""
    n = run.free_display()
    log = run.path("server-%s-%d.log" % (pw.pw_name, n))
    argv = ["runuser", "-u", pw.pw_name, "--", harness.XPRA, "start", ":%d" % n, "--socket-dirs=%s" % socket_dir,
            "--socket-permissions=660", "--start=xterm -T %s -e /bin/sh" % title, "--daemon=no"] + QUIET
    p = harness.Proc("xpra :%d as %s" % (n, pw.pw_name), argv, log, _user_env(run, pw), cwd=pw.pw_dir)
    try:
        harness.wait_for_log(log, r"xpra is ready", 60, proc=p)
        sock = os.path.join(socket_dir, "%s-%d" % (harness.HOSTNAME, n))
        harness.wait_until(lambda: os.path.exists(sock) or not p.alive(), 10, what="socket %s" % sock)
        check(os.lstat(sock).st_uid == pw.pw_uid, "%s not owned by %s" % (sock, pw.pw_name))
        yield n
    finally:
        p.stop(grace=5)
        run._displays.discard(n)


@contextlib.contextmanager
def relay_as(run, account, group, auth, socket_dirs, extra=(), name="relay"):
    """The relay binary copied where `account` can run it, started with runuser as account:group
    (or as root when account is None)."""
    port = run.free_port()
    log = run.path("%s.log" % name)
    binary = run.relay_bin
    if account is not None:
        bindir = run.mkdir("relay-bin", 0o755)
        binary = os.path.join(bindir, "xpra-relay")
        if not os.path.exists(binary):
            shutil.copy(run.relay_bin, binary)
            os.chmod(binary, 0o755)
    argv = [binary, "--bind-tcp=127.0.0.1:%d" % port, "--tcp-auth=%s" % auth, "--system-wide=yes"]
    argv += ["--socket-dirs=%s" % d for d in socket_dirs] + list(extra)
    if account is not None:
        argv = ["runuser", "-u", account, "-g", group, "--"] + argv
    env = run.env()
    if account is not None:
        home = run.mkdir("relay-home", 0o777)
        env.update(HOME=home, XDG_RUNTIME_DIR=home, USER=account, LOGNAME=account)
    p = harness.Proc(name, argv, log, env)
    gate = harness.Gate(run, p, port, log, "relay")
    try:
        harness.wait_until(lambda: harness.port_listening(port) or not p.alive(), 20, what="relay on %d" % port)
        check(p.alive(), "relay exited at startup:\n%s" % harness.log_tail(log, 20))
        yield gate
    finally:
        p.stop(grace=10)


@contextlib.contextmanager
def fixture(run):
    if shutil.which("runuser") is None or shutil.which("useradd") is None:
        raise harness.TestFailure("runuser/useradd missing: install util-linux (runuser) and passwd (useradd)")
    if os.geteuid() != 0:
        raise harness.TestFailure("system-wide tests make local accounts: run them as root")
    accounts = Accounts()
    with contextlib.ExitStack() as stack:
        stack.callback(accounts.close)
        fx = type("Fx", (), {})()
        relay_group = accounts.group("g")
        fx.alice = accounts.user("alice")
        fx.bob = accounts.user("bob")
        fx.carol = accounts.user("carol")
        fx.relay_user = accounts.user("relay", home=False, group=relay_group).pw_name
        # The shared socket dir: users may create (wx) but not list; the relay's group reads it;
        # setgid gives every socket the relay's group, sticky stops users removing others'.
        shared = run.mkdir("shared-sockets", 0o755)
        os.chown(shared, 0, grp.getgrnam(relay_group).gr_gid)
        os.chmod(shared, 0o3773)
        fx.shared = shared
        fx.a1 = stack.enter_context(user_session(run, fx.alice, shared, "alice-one"))
        fx.a2 = stack.enter_context(user_session(run, fx.alice, shared, "alice-two"))
        fx.b1 = stack.enter_context(user_session(run, fx.bob, shared, "bob-one"))
        db = run.sqlite_db([(u.pw_name, "pw-" + u.pw_name.split("_")[1], "", u.pw_uid, u.pw_gid)
                            for u in (fx.alice, fx.bob, fx.carol)], name="system-wide.sdb")
        fx.auth = "sqlite,filename=%s" % db
        fx.shared_relay = stack.enter_context(relay_as(run, fx.relay_user, relay_group, fx.auth, [shared],
                                                       name="relay-shared"))
        yield fx


def _pw(u):
    return "pw-" + u.pw_name.split("_")[1]


def _refused(run, gate, user, display, name):
    with run.client(gate.uri(user.pw_name, _pw(user), display), wait_attached=False, name=name) as c:
        rc = c.wait_exit(60)
        check(rc != 0, "%s: client exit code %s, expected a refusal" % (name, rc))
        return c.text()


def test_relay_runs_unprivileged(run, fx):
    # The discovery relay is not root: its process's uids (real, effective, saved) are the
    # relay account's, and it holds no capability.
    pid = fx.shared_relay.proc.pid
    if cmdline(pid).startswith("runuser"):   # runuser forks the relay and waits for it
        kids = [int(d) for d in os.listdir("/proc") if d.isdigit() and _ppid(int(d)) == pid]
        check(len(kids) == 1, "runuser %d has children %s" % (pid, kids))
        pid = kids[0]
    with open("/proc/%d/status" % pid) as f:
        status = f.read()
    uid = pwd.getpwnam(fx.relay_user).pw_uid
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    check(all(int(u) == uid for u in uids), "relay uids %s, expected %d" % (uids, uid))
    capeff = re.search(r"^CapEff:\s+(\S+)", status, re.M).group(1)
    check(int(capeff, 16) == 0, "relay has capabilities %s" % capeff)


def test_alice_picks_each_of_her_sessions(run, fx):
    for disp, title, other in ((fx.a2, "alice-two", "alice-one"), (fx.a1, "alice-one", "alice-two")):
        with run.client(fx.shared_relay.uri(fx.alice.pw_name, _pw(fx.alice), disp), name="alice-%d" % disp) as c:
            harness.assert_window_painted(c, title)
            out = c.xdotool("search", "--name", other, check_rc=False)
            check(not out.strip(), "alice's client for :%d also shows %s" % (disp, other))
            c.assert_attached("alice")


def test_alice_without_display_sees_only_her_displays(run, fx):
    text = _refused(run, fx.shared_relay, fx.alice, None, "alice-nodisp")
    want = "more than one is available: :%d, :%d" % tuple(sorted((fx.a1, fx.a2)))
    check(want in text, "no %r in the client's reason: %s" % (want, text[-600:]))
    check(":%d" % fx.b1 not in text, "bob's display :%d shown to alice" % fx.b1)


def test_bob_lands_in_his_only_session(run, fx):
    with run.client(fx.shared_relay.uri(fx.bob.pw_name, _pw(fx.bob)), name="bob") as c:
        harness.assert_window_painted(c, "bob-one")
        c.assert_attached("bob")


def test_bob_cannot_reach_alices_session(run, fx):
    # bob's socket and alice's sit in the same dir; bob asking for alice's display is told his
    # own list only, and alice asking for bob's never gets it.
    text = _refused(run, fx.shared_relay, fx.bob, fx.a1, "bob-to-alice")
    check("display ':%d' not found, available: :%d" % (fx.a1, fx.b1) in text,
          "bob's refusal does not list only his display: %s" % text[-600:])
    check(":%d" % fx.a2 not in text, "alice's other display shown to bob")
    text = _refused(run, fx.shared_relay, fx.alice, fx.b1, "alice-to-bob")
    check("display ':%d' not found" % fx.b1 in text, "alice reached bob's :%d: %s" % (fx.b1, text[-600:]))


def start_client(run, uri, title, name, extra=()):
    """`xpra start URI --start=xterm -T TITLE`: the client asks the relay for a new session and
    attaches to it (xpra's run_remote_server: hello key start-new-session). Also used by
    test_sysauth (pam over ssl://)."""
    stack = contextlib.ExitStack()
    disp = stack.enter_context(run.xvfb())
    log = run.path("%s-%d.log" % (name, disp))
    argv = [harness.XPRA, "start", uri, "--start=xterm -T %s -e /bin/sh" % title] + harness.CLIENT_QUIET + list(extra)
    p = harness.Proc("%s on :%d" % (name, disp), argv, log, run.env(DISPLAY=":%d" % disp))
    stack.callback(p.stop, 5)
    return stack, harness.XpraClient(run, p, disp, uri, log)


def test_start_on_demand_runs_as_the_user(run, fx):
    carol = fx.carol
    with relay_as(run, None, None, fx.auth, [run.mkdir("starter-ctl", 0o700), "~/.xpra"],
                  extra=["--proxy-start-sessions=yes", "--start-session-command=%s" % RUNUSER_LAUNCHER,
                         "--start-session-timeout=40", "--login-timeout=60"], name="relay-starter") as gate:
        n = run.free_display()
        stack, c = start_client(run, gate.uri(carol.pw_name, _pw(carol), n), "carol-new", "carol-start")
        with stack:
            # `xpra start URI` prints no "Attached to": the server's hello shows as "via: <relay>",
            # then the session's window (xterm) appears on the client.
            harness.wait_for_log(c.log, r"via: Linux proxy", 60, proc=c.proc)
            harness.assert_window_painted(c, "carol-new")
            # Its processes run as carol: the xpra server holding the new socket and the xterm.
            sock = os.path.join(carol.pw_dir, ".xpra", "%s-%d" % (harness.HOSTNAME, n))
            check(os.path.exists(sock) and os.lstat(sock).st_uid == carol.pw_uid, "no socket %s of carol's" % sock)
            cmds = [cmdline(p) for p in _pids_of_uid(carol.pw_uid)]
            check(any("xpra start :%d" % n in x for x in cmds), "no xpra server of carol's for :%d: %s" % (n, cmds))
            check(any(x.startswith("xterm -T carol-new") for x in cmds), "no xterm of carol's: %s" % cmds)
            check("connecting to unix:%s" % sock in harness.read_text(gate.log), "relay log does not name %s" % sock)
            check(c.proc.alive() and "Disconnect" not in c.text(), "carol's starting client gone: %s" % c.text()[-400:])
        # A second client of carol's finds the session started for her (her only one).
        with run.client(gate.uri(carol.pw_name, _pw(carol)), name="carol-again") as c2:
            harness.assert_window_painted(c2, "carol-new")
            c2.assert_attached("carol's second client")


def test_start_refused_when_not_enabled(run, fx):
    # The unprivileged relay has no --proxy-start-sessions: a start request is refused clearly.
    n = run.free_display()
    stack, c = start_client(run, fx.shared_relay.uri(fx.alice.pw_name, _pw(fx.alice), n), "never", "alice-start")
    with stack:
        rc = c.wait_exit(60)
        check(rc != 0, "start through a relay without --proxy-start-sessions succeeded")
        check("starting sessions is not enabled on this relay" in c.text(), "reason missing: %s" % c.text()[-600:])


def test_start_failure_is_reported_to_the_client(run, fx):
    # A launcher that fails: the client is told so with its exit status, the relay goes on.
    with relay_as(run, None, None, fx.auth, [run.mkdir("failing-ctl", 0o700), "~/.xpra"],
                  extra=["--proxy-start-sessions=yes", "--start-session-command=/bin/false"],
                  name="relay-failing") as gate:
        stack, c = start_client(run, gate.uri(fx.bob.pw_name, _pw(fx.bob), run.free_display()), "never", "bob-fail")
        with stack:
            rc = c.wait_exit(60)
            check(rc != 0, "a failed start attached")
            check("the session launcher failed (exit status 1)" in c.text(), "reason missing: %s" % c.text()[-600:])
        check(gate.alive(), "relay died after a failed start")


def test_start_limits_refused_clearly(run, fx):
    # Limits on starts: a user below --start-session-min-uid is not allowed one, a user at
    # --max-sessions-per-user live sessions gets none more; each client reads why, the launcher
    # never runs (it would fail: /bin/false), and the relay goes on.
    low, high = sorted((fx.alice, fx.bob), key=lambda u: u.pw_uid)
    high_n = 1 if high is fx.bob else 2   # bob has :b1, alice :a1 and :a2 in the shared dir
    with relay_as(run, None, None, fx.auth, [fx.shared], name="relay-limits",
                  extra=["--proxy-start-sessions=yes", "--start-session-command=/bin/false", "--max-sessions-per-user=1",
                         "--start-session-min-uid=%d" % high.pw_uid]) as gate:
        for user, want in ((low, "user not allowed to start sessions on this relay"),
                           (high, "%d sessions already running for this user (the limit is 1)" % high_n)):
            stack, c = start_client(run, gate.uri(user.pw_name, _pw(user), run.free_display()), "never",
                                    "limit-%s" % user.pw_name.split("_")[1])
            with stack:
                rc = c.wait_exit(60)
                check(rc != 0, "%s: a refused start attached" % user.pw_name)
                check(want in c.text(), "%s: reason %r missing: %s" % (user.pw_name, want, c.text()[-600:]))
        check("session launcher failed" not in harness.read_text(gate.log), "the launcher ran despite the limits")
        check(gate.alive(), "relay died after refused starts")


def test_start_timeout_kills_the_launcher(run, fx):
    # A launcher whose session never shows: the client is told within --start-session-timeout,
    # and the launcher's process group is gone (SIGTERM, then SIGKILL).
    d = run.mkdir("hung-launcher", 0o755)
    pidfile = os.path.join(d, "pid")
    script = os.path.join(d, "launch.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho $$ > %s\nexec sleep 60\n" % pidfile)
    os.chmod(script, 0o755)
    with relay_as(run, None, None, fx.auth, [run.mkdir("hung-ctl", 0o700), "~/.xpra"], name="relay-hung",
                  extra=["--proxy-start-sessions=yes", "--start-session-command=%s" % script,
                         "--start-session-timeout=2"]) as gate:
        t0 = time.time()
        stack, c = start_client(run, gate.uri(fx.carol.pw_name, _pw(fx.carol), run.free_display()), "never", "carol-hung")
        with stack:
            rc = c.wait_exit(60)
            took = time.time() - t0
            check(rc != 0, "a start that never showed attached")
            check("the new session did not start within 2 seconds" in c.text(), "reason missing: %s" % c.text()[-600:])
        check(took < 2 + 20, "the refusal took %.1f s" % took)
        pid = int(harness.read_text(pidfile).strip())
        harness.wait_until(lambda: not os.path.exists("/proc/%d" % pid), 10,
                           what="the hung launcher %d killed" % pid)
        check(gate.alive(), "relay died after a start timed out")
