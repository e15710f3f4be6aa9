"""System-wide auth modules (issue 15) against real programs: local accounts made here with
useradd/chpasswd (removed with userdel -r, whatever happens), an xpra 3.1.3 session started as
one of them, real xpra 3.1.3 clients, PAM (the shipped deploy/pam.d/xpra-relay stack, read
through the module's confdir=, so pam_unix checks /etc/shadow as the relay runs as root), a
real OpenLDAP slapd configured and started here on a free port, and a unix-socket bind with
peercred (the kernel's SO_PEERCRED of a client running as the user).

The relays run with --system-wide=yes: after pam (or ldap, or peercred) accepts a user, the
user's uid selects that user's own live sessions (issue 15, "Finding a user's sessions"). alice
has two sessions, started as alice in a shared sticky directory: she picks each with /N; bob,
who has none there, is told so and never sees hers. A root relay with --proxy-start-sessions
starts a session as bob when his `xpra start ssl://bob@RELAY/` asks for one over pam.
"""

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time

import harness
import wire
from harness import check
from test_tls_ws import _make_cert
from test_system_wide import RUNUSER_LAUNCHER, cmdline, start_client

TARGETS = ("relay",)

PAM_DIR = os.path.join(harness.ROOT, "deploy", "pam.d")
LDAP_SUFFIX = "dc=xr, dc=test"  # ", " keeps the commas inside one auth option (xpra's syntax)
LDAP_TIMEOUT = 2


def _need(prog, package):
    if not shutil.which(prog):
        raise harness.TestFailure("%s not found: install the Debian package %s (tools/lib.sh)" % (prog, package))


class User:
    """A local account made with useradd and a password set with chpasswd; remove() deletes it
    (and its home) after killing, by pid, any process still running as it."""

    def __init__(self, name, password):
        self.name = name
        self.password = password
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-K", "UMASK=0077", name], check=True,
                       capture_output=True, timeout=30)
        harness.event("useradd %s" % name)
        self.created = True
        subprocess.run(["chpasswd"], input=("%s:%s\n" % (name, password)).encode(), check=True,
                       capture_output=True, timeout=30)
        pw = pwd.getpwnam(name)
        self.uid, self.gid, self.home = pw.pw_uid, pw.pw_gid, pw.pw_dir

    def mkdir(self, name, mode=0o700):
        p = os.path.join(self.home, name)
        os.makedirs(p, exist_ok=True)
        os.chown(p, self.uid, self.gid)
        os.chmod(p, mode)
        return p

    def become(self):
        """preexec_fn: drop to this user."""
        os.setgroups([])
        os.setgid(self.gid)
        os.setuid(self.uid)

    def pids(self):
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat("/proc/" + d).st_uid == self.uid:
                        out.append(int(d))
        return out

    def remove(self):
        if not self.created:
            return
        left = self.pids()
        if left:
            harness.kill_pids(left, grace=2)
        r = subprocess.run(["userdel", "-r", self.name], capture_output=True, timeout=30)
        harness.event("userdel -r %s: rc=%d %s" % (self.name, r.returncode, r.stderr.decode(errors="replace").strip()))
        self.created = False


@contextlib.contextmanager
def _user_session(run, user, sdir):
    """A real `xpra start` session running as `user`, its socket in `sdir`."""
    n = run.free_display()
    title = "sysauth-%d" % n
    work = user.mkdir("work-%d" % n, 0o755)
    logdir = user.mkdir("xpra-log")
    xdg = user.mkdir("xdg")
    argv = [harness.XPRA, "start", ":%d" % n, "--socket-dirs=%s" % sdir, "--log-dir=%s" % logdir,
            "--start=xterm -T %s -e /bin/sh" % title] + harness.SERVER_QUIET
    env = run.env(HOME=user.home, XDG_RUNTIME_DIR=xdg, USER=user.name, LOGNAME=user.name,
                  XAUTHORITY=os.path.join(user.home, ".Xauthority"), PS1="$ ")
    log = run.path("server-%s-%d.log" % (user.name, n))
    p = harness.Proc("xpra :%d as %s" % (n, user.name), argv, log, env, cwd=work, preexec=user.become)
    srv = harness.XpraServer(run, p, n, sdir, None, title, log, work)
    try:
        harness.wait_for_log(log, r"xpra is ready", 60, proc=p)
        harness.wait_until(lambda: os.path.exists(srv.socket_path) or not p.alive(), 10,
                           what="session socket %s" % srv.socket_path)
        check(os.stat(srv.socket_path).st_uid == user.uid, "session socket not owned by %s" % user.name)
        yield srv
    finally:
        srv.stop()
        run._displays.discard(n)


@contextlib.contextmanager
def _slapd(run, people):
    """slapd on 127.0.0.1:<free port> from a slapd.conf written here (no debconf, no cn=config),
    its database loaded with slapadd. people: [(uid, password, uidNumber, gidNumber)]."""
    _need("slapd", "slapd")
    _need("slapadd", "slapd")
    d = run.mkdir("slapd")
    db = os.path.join(d, "db")
    os.makedirs(db, exist_ok=True)
    conf = os.path.join(d, "slapd.conf")
    with open(conf, "w") as f:
        f.write("\n".join(["include /etc/ldap/schema/%s.schema" % s for s in ("core", "cosine", "nis", "inetorgperson")] + [
            "pidfile %s/slapd.pid" % d, "modulepath /usr/lib/ldap", "moduleload back_mdb", "database mdb",
            'suffix "dc=xr,dc=test"', 'rootdn "cn=admin,dc=xr,dc=test"', "rootpw admin-%d" % os.getpid(),
            "directory %s" % db,
            "access to attrs=userPassword by anonymous auth by self write by * none",
            "access to * by * read", ""]))
    entries = ["dn: dc=xr,dc=test\nobjectClass: dcObject\nobjectClass: organization\no: xr\ndc: xr\n",
               "dn: ou=people,dc=xr,dc=test\nobjectClass: organizationalUnit\nou: people\n"]
    for uid, password, uid_number, gid_number in people:
        entries.append("dn: uid=%s,ou=people,dc=xr,dc=test\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
                       "uid: %s\ncn: %s\nsn: Test\nuidNumber: %d\ngidNumber: %d\nhomeDirectory: /nonexistent\n"
                       "userPassword: %s\n" % (uid, uid, uid, uid_number, gid_number, password))
    ldif = os.path.join(d, "data.ldif")
    with open(ldif, "w") as f:
        f.write("\n".join(entries))
    r = subprocess.run(["slapadd", "-f", conf, "-l", ldif], capture_output=True, timeout=60)
    check(r.returncode == 0, "slapadd failed: %s" % r.stderr.decode(errors="replace")[-500:])
    port = run.free_port()
    log = run.path("slapd.log")
    p = harness.Proc("slapd", ["slapd", "-f", conf, "-h", "ldap://127.0.0.1:%d/" % port, "-d", "0"], log, run.env())
    try:
        harness.wait_until(lambda: harness.port_listening(port) or not p.alive(), 20, what="slapd on %d" % port)
        check(p.alive(), "slapd exited: %s" % harness.log_tail(log, 20))
        p.port = port
        yield p
    finally:
        p.signal_group(signal.SIGCONT)
        p.stop(grace=5)


@contextlib.contextmanager
def fixture(run):
    _need("useradd", "passwd")
    _need("chpasswd", "passwd")
    check(os.geteuid() == 0, "test_sysauth needs root (useradd, and pam_unix reading /etc/shadow)")
    tag = os.getpid()
    users = []
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [u.remove() for u in users])
        alice = User("xrauth_alice_%d" % tag, "Alice pw %d!" % tag)
        users.append(alice)
        bob = User("xrauth_bob_%d" % tag, "bob-pw-%d" % tag)
        users.append(bob)
        sdir = run.mkdir("sysauth-sockets", 0o1777)
        srv = stack.enter_context(_user_session(run, alice, sdir))
        srv2 = stack.enter_context(_user_session(run, alice, sdir))
        cert, key = _make_cert(run, name="sysauth")
        # carol exists only in the directory; her uidNumber is alice's: she lands in alice's session.
        slapd = stack.enter_context(_slapd(run, [("carol", "carol-ldap-pw", alice.uid, alice.gid)]))
        pam = "pam,service=xpra-relay,confdir=%s,timeout=5" % PAM_DIR
        unix_path = os.path.join(run.mkdir("sysauth-unix", 0o755), "relay.sock")
        ssl_port = run.free_port()
        relay = stack.enter_context(run.relay(pam, sdir, name="relay-pam", extra=[
            "--system-wide=yes", "--bind-ssl=127.0.0.1:%d" % ssl_port, "--ssl-cert=%s" % cert, "--ssl-key=%s" % key, "--ssl-auth=%s" % pam,
            "--bind=%s" % unix_path, "--auth=peercred,uid=%d" % alice.uid]))
        ldap = "ldap,host=127.0.0.1,port=%d,username_format=uid=%%username, ou=people, %s,timeout=%d" % (
            slapd.port, LDAP_SUFFIX, LDAP_TIMEOUT)
        ldap_ssl_port = run.free_port()
        ldap_relay = stack.enter_context(run.relay(ldap, sdir, name="relay-ldap", extra=[
            "--system-wide=yes", "--bind-ssl=127.0.0.1:%d" % ldap_ssl_port, "--ssl-cert=%s" % cert, "--ssl-key=%s" % key,
            "--ssl-auth=%s" % ldap]))
        harness.wait_until(lambda: os.path.exists(unix_path), 10, what="relay unix socket")
        os.chmod(unix_path, 0o666)  # any local user may connect; peercred decides who gets in
        yield _Fx(pam=pam, sdir=sdir, alice=alice, bob=bob, srv=srv, srv2=srv2, cert=cert, key=key, relay=relay, ssl_port=ssl_port, ldap_relay=ldap_relay,
                  ldap_ssl_port=ldap_ssl_port, slapd=slapd, unix_path=unix_path)


class _Fx:
    """The module fixture's parts, as attributes."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _ssl_uri(user, password, port, display=None):
    return "ssl://%s:%s@127.0.0.1:%d/%s" % (user, password, port, "" if display is None else display)


def _refused(run, fx, uri, name, relay, want, shown, extra=()):
    """Runs a client that must not attach; checks that the relay's disconnect line for it holds
    `want` and that the client printed `shown` (the disconnect's words). Returns (client's
    reason, seconds it took, the relay's line).

    Over ssl:// the 3.1.3 client sometimes prints only "Connection lost": the relay closes TLS
    without close_notify and the client's read error can win over the queued disconnect packet
    (an engine issue outside issue 15). The relay's line is then the authority."""
    start = len(harness.read_text(relay.log))
    t0 = time.time()
    with run.client(uri, extra=["--ssl-ca-certs=%s" % fx.cert] + list(extra), wait_attached=False, name=name) as c:
        rc = c.wait_exit(60)
        took = time.time() - t0
        check(rc != 0, "%s: client exited %s" % (name, rc))
        check("Attached to" not in c.text(), "%s: client attached" % name)
        reason = c.exit_reason()
        text = c.text()
    lines = [l for l in harness.read_text(relay.log)[start:].splitlines() if "disconnect:" in l]
    check(len(lines) == 1 and want in lines[0], "%s: relay's disconnect line lacks %r: %s" % (name, want, lines))
    check(shown in text or (uri.startswith("ssl:") and text.rstrip().endswith("Connection lost")),
          "%s: the client did not show %r: %s" % (name, shown, reason or harness.log_tail(c.log, 5)))
    return reason, took, lines[0]


def test_pam_password_over_ssl_lands_in_own_session(run, fx):
    a = fx.alice
    with run.client(_ssl_uri(a.name, a.password, fx.ssl_port, fx.srv.display), extra=["--ssl-ca-certs=%s" % fx.cert],
                    name="pam-alice") as c:
        harness.assert_window_painted(c, fx.srv.title, save_as="sysauth-pam.png")
        log = harness.read_text(fx.relay.log)
        check("authenticated as %s" % a.name in log, "relay log does not show alice authenticated:\n%s"
              % harness.log_tail(fx.relay.log, 10))
        check(a.password not in log, "the password is in the relay log")


def test_pam_alice_picks_her_second_session(run, fx):
    # /N picks her other session; without /N she is told her two displays (and only hers).
    a = fx.alice
    with run.client(_ssl_uri(a.name, a.password, fx.ssl_port, fx.srv2.display), extra=["--ssl-ca-certs=%s" % fx.cert],
                    name="pam-alice-2") as c:
        harness.assert_window_painted(c, fx.srv2.title)
        check(not c.xdotool("search", "--name", fx.srv.title, check_rc=False).strip(),
              "alice's client for :%d also shows %s" % (fx.srv2.display, fx.srv.title))
    want = "please specify a display, more than one is available: :%d, :%d" % tuple(
        sorted((fx.srv.display, fx.srv2.display)))
    _refused(run, fx, _ssl_uri(a.name, a.password, fx.ssl_port), "pam-alice-nodisp", fx.relay, want, want)


def test_pam_password_over_aes_tcp(run, fx):
    # A relay whose tcp bind requires AES: xor is allowed inside the AES stream.
    a = fx.alice
    key = run.key_file("sysauth-aes-key-%d" % os.getpid(), name="sysauth-aes.key")
    with run.relay(fx.pam, fx.sdir, name="relay-pam-aes",
                   extra=["--system-wide=yes", "--tcp-encryption=AES", "--tcp-encryption-keyfile=%s" % key]) as relay:
        with run.client("tcp://%s:%s@127.0.0.1:%d/%d" % (a.name, a.password, relay.port, fx.srv.display),
                        extra=["--encryption=AES", "--encryption-keyfile=%s" % key], name="pam-aes") as c:
            harness.assert_window_painted(c, fx.srv.title)
            check("sending data using AES encryption" in c.text(), "client log does not show AES")
        check("authenticated as %s" % a.name in harness.read_text(relay.log), "relay log lacks alice's AES login")


def test_pam_wrong_password_refused(run, fx):
    a = fx.alice
    _refused(run, fx, _ssl_uri(a.name, a.password + "x", fx.ssl_port), "pam-wrong", fx.relay,
             "authentication error: authentication failed (pam: PAM authenticate for '%s'" % a.name,
             "authentication failed")
    log = harness.read_text(fx.relay.log)
    check("PAM authenticate for '%s'" % a.name in log, "relay log lacks the PAM refusal:\n%s"
          % harness.log_tail(fx.relay.log, 10))


def test_pam_over_plain_tcp_refused_with_reason(run, fx):
    a = fx.alice
    reason, _, _ = _refused(run, fx, "tcp://%s:%s@127.0.0.1:%d/" % (a.name, a.password, fx.relay.port), "pam-plain",
                            fx.relay, "connect with ssl:// (or wss://), or use AES encryption",
                            "connect with ssl:// (or wss://), or use AES encryption")
    # Plain tcp: the client always gets the packet; the user reads the advice.
    check("ssl://" in reason and "AES" in reason, "the client does not show the ssl:// / AES advice: %s" % reason)


def test_pam_other_user_does_not_reach_alices_session(run, fx):
    b = fx.bob
    reason, _, line = _refused(run, fx, _ssl_uri(b.name, b.password, fx.ssl_port), "pam-bob", fx.relay,
                               "session not found error: no sessions found for this user",
                               "no sessions found for this user")
    check("user=%s" % b.name in line, "the refusal is not bob's: %s" % line)
    # Asking for alice's display by number does not reach it either, nor name it back.
    reason2, _, line2 = _refused(run, fx, _ssl_uri(b.name, b.password, fx.ssl_port, fx.srv.display), "pam-bob-to-alice",
                                 fx.relay, "session not found error: no sessions found for this user",
                                 "no sessions found for this user")
    for srv in (fx.srv, fx.srv2):
        for text in (line, reason, line2):
            check(srv.socket_path not in text, "bob's refusal shows alice's socket: %s" % text)
        check(":%d" % srv.display not in reason, "bob's refusal shows alice's display: %s" % reason)
    check(":%d" % fx.srv2.display not in reason2, "bob's refusal shows alice's other display: %s" % reason2)


def test_ldap_login_uses_directory_uid(run, fx):
    with run.client(_ssl_uri("carol", "carol-ldap-pw", fx.ldap_ssl_port, fx.srv.display), extra=["--ssl-ca-certs=%s" % fx.cert],
                    name="ldap-carol") as c:
        harness.assert_window_painted(c, fx.srv.title)
    check("authenticated as carol" in harness.read_text(fx.ldap_relay.log), "relay log does not show carol")


def test_ldap_wrong_password_refused(run, fx):
    _refused(run, fx, _ssl_uri("carol", "carol-ldap-px", fx.ldap_ssl_port), "ldap-wrong", fx.ldap_relay,
             "authentication error: authentication failed (ldap: LDAP bind as 'uid=carol, ou=people, dc=xr, dc=test': "
             "Invalid credentials)", "authentication failed")
    check("Invalid credentials" in harness.read_text(fx.ldap_relay.log), "relay log lacks the LDAP refusal")


def test_ldap_search_then_bind(run, fx):
    # search_base=: the relay finds the user's DN by (uid=NAME) anonymously, then binds as it;
    # the entry's uidNumber (alice's) selects alice's sessions.
    ldap = "ldap,host=127.0.0.1,port=%d,search_base=ou=people, %s,timeout=%d" % (fx.slapd.port, LDAP_SUFFIX, LDAP_TIMEOUT)
    ssl_port = run.free_port()
    with run.relay(ldap, fx.sdir, name="relay-ldap-search", extra=[
            "--system-wide=yes", "--bind-ssl=127.0.0.1:%d" % ssl_port, "--ssl-cert=%s" % fx.cert,
            "--ssl-key=%s" % fx.key, "--ssl-auth=%s" % ldap]) as relay:
        with run.client(_ssl_uri("carol", "carol-ldap-pw", ssl_port, fx.srv2.display),
                        extra=["--ssl-ca-certs=%s" % fx.cert], name="ldap-search-carol") as c:
            harness.assert_window_painted(c, fx.srv2.title)
        check("authenticated as carol" in harness.read_text(relay.log), "relay log does not show carol")
        _refused(run, fx, _ssl_uri("carol", "carol-ldap-px", ssl_port), "ldap-search-wrong", relay,
                 "authentication failed (ldap: LDAP bind as 'uid=carol,ou=people,dc=xr,dc=test': Invalid credentials)",
                 "authentication failed")
        _refused(run, fx, _ssl_uri("nosuch", "whatever", ssl_port), "ldap-search-unknown", relay,
                 "authentication failed (ldap: LDAP search (uid=nosuch) matches no entry)", "authentication failed")


def test_ldap_directory_hung_then_down_clear_error(run, fx):
    # Hung (SIGSTOP: connects, never answers), then stopped: both end within the timeout.
    fx.slapd.signal_group(signal.SIGSTOP)
    try:
        _, took, _ = _refused(run, fx, _ssl_uri("carol", "carol-ldap-pw", fx.ldap_ssl_port), "ldap-hung",
                              fx.ldap_relay, "server error: authentication service unavailable",
                              "authentication service unavailable")
    finally:
        fx.slapd.signal_group(signal.SIGCONT)
    # The client itself needs a few seconds to start; the relay's share is at most 2 x timeout.
    check(took < 2 * LDAP_TIMEOUT + 12, "hung directory: refusal took %.1f s" % took)
    fx.slapd.stop(grace=5)
    check(not fx.slapd.alive(), "slapd still running")
    _, took, _ = _refused(run, fx, _ssl_uri("carol", "carol-ldap-pw", fx.ldap_ssl_port), "ldap-down", fx.ldap_relay,
                          "server error: authentication service unavailable", "authentication service unavailable")
    check(took < LDAP_TIMEOUT + 12, "stopped directory: refusal took %.1f s" % took)
    check("unreachable" in harness.read_text(fx.ldap_relay.log), "relay log does not say the directory is unreachable")


def _unix_hello(path, user, display):
    """Sends a client hello over the relay's unix socket from a child running as `user` (None:
    this process, root); returns what came back (classify_reply)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(r)
            if user is not None:
                user.become()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(15)
            s.connect(path)
            s.sendall(wire.encode_packet(wire.hello_packet({"username": user.name if user else "root", "display": display})))
            data = b""
            end = time.time() + 15
            while time.time() < end and len(data) < 1 << 20:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                data += chunk
                packets, _rest = wire.decode_frames(data) if data[:1] == b"P" else ([], b"")
                if any(p and wire.text(p[0]) in ("hello", "disconnect") for p in packets):
                    break
            os.write(w, data[:65536])
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    packets = []
    with contextlib.suppress(wire.DecodeError):
        packets, _ = wire.decode_frames(data)
    return [p for p in packets], wire.classify_reply(data)


def test_peercred_allows_listed_uid_only(run, fx):
    display = ":%d" % fx.srv.display
    packets, (kind, detail) = _unix_hello(fx.unix_path, fx.alice, display)
    names = [wire.text(p[0]) for p in packets if p]
    # Allowed: the relay connects to alice's session and relays its answer (its hello).
    check("hello" in names or (kind == "disconnect" and "authentication" not in detail),
          "alice (allowed uid) got: %s %s" % (kind, detail))
    log = harness.read_text(fx.relay.log)
    check("authenticated as %s, connecting to" % fx.alice.name in log, "relay log lacks alice's peercred login:\n%s"
          % harness.log_tail(fx.relay.log, 10))
    for who in (fx.bob, None):
        _packets, (kind, detail) = _unix_hello(fx.unix_path, who, display)
        check(kind == "disconnect" and "authentication failed" in detail,
              "%s (not listed) was not refused: %s %s" % (who.name if who else "root", kind, detail))
    check("peercred: uid %d is not allowed" % fx.bob.uid in harness.read_text(fx.relay.log),
          "relay log lacks the peercred refusal")


def test_pam_start_on_demand_over_ssl_runs_as_the_user(run, fx):
    # `xpra start ssl://bob@RELAY/N --start=xterm`: pam checks bob's system password, a root relay
    # with --proxy-start-sessions starts :N as bob (runuser), the client attaches; bob's second
    # client finds it (his only session). alice's sessions stay out of bob's reach.
    b = fx.bob
    ssl_port = run.free_port()
    with run.relay(fx.pam, fx.sdir, name="relay-pam-start", extra=[
            "--system-wide=yes", "--socket-dirs=~/.xpra", "--proxy-start-sessions=yes",
            "--start-session-command=%s" % RUNUSER_LAUNCHER, "--start-session-timeout=40", "--login-timeout=60",
            "--bind-ssl=127.0.0.1:%d" % ssl_port, "--ssl-cert=%s" % fx.cert, "--ssl-key=%s" % fx.key,
            "--ssl-auth=%s" % fx.pam]) as relay:
        n = run.free_display()
        try:
            stack, c = start_client(run, _ssl_uri(b.name, b.password, ssl_port, n), "bob-new", "pam-bob-start",
                                    extra=["--ssl-ca-certs=%s" % fx.cert])
            with stack:
                harness.wait_for_log(c.log, r"via: Linux proxy", 60, proc=c.proc)
                harness.assert_window_painted(c, "bob-new")
                sock = os.path.join(b.home, ".xpra", "%s-%d" % (harness.HOSTNAME, n))
                check(os.path.exists(sock) and os.lstat(sock).st_uid == b.uid, "no socket %s of bob's" % sock)
                cmds = {pid: cmdline(pid) for pid in b.pids()}
                check(any("xpra start :%d" % n in x for x in cmds.values()), "no xpra server of bob's for :%d: %s" % (n, cmds))
                check(any(x.startswith("xterm -T bob-new") for x in cmds.values()), "no xterm of bob's: %s" % cmds)
                log = harness.read_text(relay.log)
                check("authenticated as %s" % b.name in log and "connecting to unix:%s" % sock in log,
                      "relay log lacks bob's pam login to %s:\n%s" % (sock, harness.log_tail(relay.log, 10)))
                check(b.password not in log, "the password is in the relay log")
            with run.client(_ssl_uri(b.name, b.password, ssl_port), extra=["--ssl-ca-certs=%s" % fx.cert],
                            name="pam-bob-again") as c2:
                harness.assert_window_painted(c2, "bob-new")
                c2.assert_attached("bob's second client")
        finally:
            harness.kill_pids(b.pids(), grace=3)   # bob's started session: the later tests expect him with none
            run._displays.discard(n)


def test_exec_allows_refuses_and_times_out(run, fx):
    # exec,command=SCRIPT: the script decides by XPRA_AUTH_USERNAME; alice (allowed) lands in her
    # own session by /N, bob is refused, a hung script is killed at timeout= and the client is
    # told the service is unavailable, in about that time.
    a, b = fx.alice, fx.bob
    script = os.path.join(run.mkdir("exec-auth", 0o755), "decide.sh")
    with open(script, "w") as f:
        f.write('#!/bin/sh\ncase "$XPRA_AUTH_USERNAME" in\n  %s) exit 0 ;;\n  xrslow) sleep 30 ;;\nesac\nexit 1\n' % a.name)
    os.chmod(script, 0o755)
    auth = "exec,command=%s,timeout=2" % script
    with run.relay(auth, fx.sdir, name="relay-exec", extra=["--system-wide=yes"]) as relay:
        with run.client("tcp://%s@127.0.0.1:%d/%d" % (a.name, relay.port, fx.srv2.display), name="exec-alice") as c:
            harness.assert_window_painted(c, fx.srv2.title)
        check("authenticated as %s" % a.name in harness.read_text(relay.log), "relay log lacks alice's exec login")
        _refused(run, fx, "tcp://%s@127.0.0.1:%d/" % (b.name, relay.port), "exec-bob", relay,
                 "authentication failed (exec: %s refused '%s' (exit status 1))" % (script, b.name),
                 "authentication failed")
        _, took, _ = _refused(run, fx, "tcp://xrslow@127.0.0.1:%d/" % relay.port, "exec-slow", relay,
                              "server error: authentication service unavailable", "authentication service unavailable")
        check(took < 2 + 12, "hung exec command: refusal took %.1f s" % took)
        check("did not decide within 2 s" in harness.read_text(relay.log), "relay log lacks the exec timeout")
