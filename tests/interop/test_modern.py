"""xpra 6.5.3 (the current release line) end to end through the relay: a 6.5.3 client attaches
to a 6.5.3 server (sqlite auth, hmac challenge), the xterm shows and typed keys run in it.

xpra 6.5.3 is built once per machine from ../shared/xpra-modern (xpra_modern.py, about 2
minutes the first time). Every modern server and client runs with its own HOME,
XDG_RUNTIME_DIR and socket dir, so it never meets Debian's xpra 3.1.3 on the same machine.
Both peers speak rencodeplus + lz4 (header flags 0x10/0x08), which the relay parses for the
login and then passes through as it does 3.1's frames.
"""

import contextlib
import os
import re
import signal
import subprocess

import control_util as cu
import harness
import xpra_modern
from harness import check

# Flags that keep a 6.5.3 server quick to start and quiet (3.1's SERVER_QUIET minus
# --dbus-proxy, which 6.x no longer has).
SERVER6_QUIET = [
    "--mdns=no", "--pulseaudio=no", "--notifications=no", "--webcam=no", "--speaker=off",
    "--microphone=off", "--printing=no", "--dbus-control=no", "--dbus-launch=", "--systemd-run=no",
    "--html=off", "--file-transfer=no", "--exit-with-client=no", "--terminate-children=yes",
    "--sharing=no", "--daemon=no",
]
# A 6.5.3 GUI client with no sound, GL, tray, dbus or mmap (mmap would carry the pixels through
# a shared file instead of the relayed connection).
CLIENT6_QUIET = [
    "--opengl=no", "--speaker=off", "--microphone=off", "--notifications=no", "--tray=no",
    "--system-tray=no", "--mdns=no", "--webcam=no", "--pulseaudio=no", "--mmap=no", "--printing=no",
    "--file-transfer=no", "--dbus-launch=", "--clipboard=no", "--bell=no", "--xsettings=no",
    "--splash=no",
]


def _xpra6():
    # The first run on a machine builds 6.5.3 (about 2 minutes, longer on a loaded machine; its own
    # BUILD_TIMEOUT bounds it) or waits for another process's build: not under the runner's
    # per-test alarm, which resumes with what was left of it afterwards.
    left = signal.alarm(0)
    try:
        return xpra_modern.ensure(log=lambda m: harness.event(m))
    except xpra_modern.BuildError as e:
        raise harness.TestFailure("xpra 6.5.3 is not available: %s" % e) from None
    finally:
        if left:
            signal.alarm(left)


def _private_env(run, x6, tag, **extra):
    """The run's environment with a HOME and XDG_RUNTIME_DIR of this peer's own, and 6.5.3's modules."""
    home = run.mkdir("home6-%s" % tag, 0o700)
    xdg = run.mkdir("xdg6-%s" % tag, 0o700)
    env = x6.env(run.env(HOME=home, XDG_RUNTIME_DIR=xdg, XAUTHORITY=os.path.join(home, ".Xauthority"), **extra))
    return env


@contextlib.contextmanager
def xpra6_server(run, x6, extra=()):
    """A 6.5.3 `xpra start` running one xterm, on tcp 127.0.0.1:<free port> and its own socket dir."""
    n = run.free_display()
    title = "sess6-%d" % n
    sdir = run.mkdir("sockets6-%d" % n, 0o700)
    port = run.free_port()
    log = run.path("server6-%d.log" % n)
    workdir = run.mkdir("work6-%d" % n, 0o777)
    argv = x6.cmd + ["start", ":%d" % n, "--socket-dirs=%s" % sdir, "--log-dir=%s" % run.logdir,
                     "--start=xterm -T %s -e /bin/sh" % title, "--bind-tcp=127.0.0.1:%d" % port] + SERVER6_QUIET + list(extra)
    p = harness.Proc("xpra 6.5.3 server :%d" % n, argv, log, _private_env(run, x6, "server-%d" % n, PS1="$ "),
                     cwd=workdir)
    srv = harness.XpraServer(run, p, n, sdir, port, title, log, workdir)
    try:
        harness.wait_for_log(log, r"xpra is ready", 90, proc=p)
        harness.wait_until(lambda: harness.port_listening(port) or not p.alive(), 10, what="server port %d" % port)
        check(p.alive(), "xpra 6.5.3 server :%d exited early:\n%s" % (n, harness.log_tail(log, 20)))
        check("version 6.5.3" in harness.read_text(log), "the server is not xpra 6.5.3:\n%s" % harness.log_tail(log))
        yield srv
    finally:
        # `xpra stop` of 3.1.3 would not find this server's socket dir layout: signals, then its Xvfb.
        p.stop(grace=8)
        xvfb = harness.xvfb_pid(n)
        if xvfb:
            harness.kill_pids([xvfb])
        run._displays.discard(n)


@contextlib.contextmanager
def xpra6_client(run, x6, uri, name="client6", extra=()):
    """`xpra attach URI` of 6.5.3 on its own Xvfb, HOME and XDG_RUNTIME_DIR. Yields an XpraClient."""
    with run.xvfb(1280, 800) as disp:
        log = run.path("%s-%d.log" % (name, disp))
        argv = x6.cmd + ["attach", uri] + CLIENT6_QUIET + list(extra)
        p = harness.Proc("%s on :%d" % (name, disp), argv, log,
                         _private_env(run, x6, "%s-%d" % (name, disp), DISPLAY=":%d" % disp))
        try:
            yield harness.XpraClient(run, p, disp, uri, log)
        finally:
            p.stop(grace=5)


@contextlib.contextmanager
def fixture(run):
    if run.target != "relay":
        yield None
        return
    x6 = _xpra6()
    # The second server asks for its own password (file auth; 6.x checks the username too): the
    # relay answers its hmac challenge with the entry's session option `password`.
    pwfile = run.path("server6-password.txt")
    with open(pwfile, "w") as f:
        f.write("srv6-secret")
    with xpra6_server(run, x6) as srv, \
            xpra6_server(run, x6, extra=["--tcp-auth=file:filename=%s" % pwfile]) as locked:
        sdir = run.mkdir("relay6-sockets", 0o700)
        db = run.sqlite_db([("alice6", "alice6-pw", srv.tcp_entry()),
                            ("bob6", "bob6-pw", "tcp://%s@127.0.0.1:%d/%d" % (os.environ.get("USER", "root"),
                                                                               locked.port, locked.display),
                             os.getuid(), os.getgid(), "", "password=srv6-secret")], name="users6.sdb")
        with cu.relay(run, "sqlite,filename=%s" % db, sdir, name="relay") as relay:
            yield {"x6": x6, "server": srv, "locked": locked, "relay": relay}


@harness.targets("relay")
def test_modern_client_attaches_through_relay_to_modern_server(run, fx):
    x6, srv, relay = fx["x6"], fx["server"], fx["relay"]
    start = harness.log_size(relay.log)
    with xpra6_client(run, x6, relay.uri("alice6", "alice6-pw")) as c:
        wid, geom, _img = harness.assert_window_painted(c, srv.title, save_as="modern-attach.png")
        check(c.proc.alive(), "the 6.5.3 client exited: %s" % harness.log_tail(c.log, 20))
        harness.prove_live(c, srv, wid, geom, "modern6")
        new = harness.read_text(relay.log)[start:]
        check("alice6" in new, "relay log does not name the user:\n%s" % new[-1500:])
        check("rencodeplus" in new, "relay log does not show the client's rencodeplus encoding:\n%s" % new[-1500:])
        check(c.proc.alive(), "the 6.5.3 client exited after typing: %s" % harness.log_tail(c.log, 20))


@harness.targets("relay")
def test_modern_relay_answers_a_modern_servers_challenge(run, fx):
    x6, locked, relay = fx["x6"], fx["locked"], fx["relay"]
    start = harness.log_size(locked.log)
    with xpra6_client(run, x6, relay.uri("bob6", "bob6-pw"), name="client6-locked") as c:
        harness.assert_window_painted(c, locked.title, save_as="modern-locked.png")
    new = harness.read_text(locked.log)[start:]
    check("sending challenge using 'hmac+sha512'" in new,
          "the 6.5.3 server did not challenge the relay:\n%s" % new[-1500:])
    check("authentication failed" not in new, "the 6.5.3 server refused the relay:\n%s" % new[-1500:])


def xpra6(run, x6, *args, timeout=60):
    """Runs `xpra ARGS...` of 6.5.3 with a private HOME (logged to client-xpra6-commands.log); a Result."""
    argv = x6.cmd + [str(a) for a in args]
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=_private_env(run, x6, "cmd"), timeout=timeout)
        res = cu.Result(argv, r.returncode, r.stdout.decode("utf-8", "replace"))
    except subprocess.TimeoutExpired as e:
        res = cu.Result(argv, None, (e.output or b"").decode("utf-8", "replace") + "\n(timed out)")
    with open(run.path("client-xpra6-commands.log"), "a") as f:
        f.write("%s\n\n" % res)
    check(res.rc is not None, "command timed out:\n%s" % res)
    return res


@harness.targets("relay")
def test_modern_list_info_version_against_the_relay(run, fx):
    x6, srv, relay = fx["x6"], fx["server"], fx["relay"]
    r = xpra6(run, x6, "list", "--socket-dirs=%s" % relay.socket_dir)
    check(r.rc == 0 and re.search(r"LIVE session at %s\b" % re.escape(relay.display), r.out),
          "xpra 6.5.3 list does not show the relay's display %s LIVE:\n%s" % (relay.display, r))
    r = xpra6(run, x6, "info", relay.display, "--socket-dirs=%s" % relay.socket_dir)
    info = cu.parse_info(r.out)
    check(r.rc == 0 and info.get("proxy.version") == cu.relay_version(),
          "xpra 6.5.3 info %s has no proxy.version=%s:\n%s" % (relay.display, cu.relay_version(), r))
    # xpra 5.0+ asks with request="version" on the relay's port, before any login.
    r = xpra6(run, x6, "version", "tcp://127.0.0.1:%d/" % relay.port)
    check(r.rc == 0 and cu.relay_version() in r.out, "xpra 6.5.3 version against the relay's port:\n%s" % r)
    # While a 6.5.3 client is relayed: its :proxy-N answers `xpra info` of 6.5.3 with the user.
    before = cu.proxy_ids(relay.socket_dir, relay.hostname)
    with xpra6_client(run, x6, relay.uri("alice6", "alice6-pw"), name="client6-info") as c:
        harness.assert_window_painted(c, srv.title)
        n = cu.wait_new_proxy_id(relay.socket_dir, before)
        r = xpra6(run, x6, "info", ":proxy-%d" % n, "--socket-dirs=%s" % relay.socket_dir)
        info = cu.parse_info(r.out)
        check(r.rc == 0 and info.get("username") == "alice6",
              "xpra 6.5.3 info :proxy-%d does not name alice6:\n%s" % (n, r))


@harness.targets("relay")
def test_modern_stop_stops_the_relay(run, fx):
    x6 = fx["x6"]
    sdir = run.mkdir("relay6-stop-sockets", 0o700)
    db = run.sqlite_db([("x", "y", "tcp://127.0.0.1:1/")], name="users6-stop.sdb")
    with cu.relay(run, "sqlite,filename=%s" % db, sdir, name="relay-stop") as relay:
        r = xpra6(run, x6, "stop", relay.display, "--socket-dirs=%s" % sdir)
        check(r.rc == 0, "xpra 6.5.3 stop %s failed:\n%s" % (relay.display, r))
        rc = relay.wait_exit(20)
        check(rc == 0, "the relay exited with %s after xpra 6.5.3 stop" % rc)


def _refused6(run, fx, user, pw, display, reason_rx, log_rx, name, extra=()):
    """A 6.5.3 client that must be refused with `reason_rx` in its log, and the relay log one line."""
    x6, relay = fx["x6"], fx["relay"]
    start = harness.log_size(relay.log)
    with xpra6_client(run, x6, relay.uri(user, pw, display=display), name=name, extra=extra) as c:
        rc = c.wait_exit(60)
        text = c.text()
        check(rc != 0, "the refused 6.5.3 client exited 0")
        check("running, 1 windows" not in text, "the 6.5.3 client got the session although it should be refused")
        check(re.search(reason_rx, text), "the 6.5.3 client did not show /%s/:\n%s" % (reason_rx, harness.log_tail(c.log, 25)))
    new = harness.read_text(relay.log)[start:]
    check(re.search(log_rx, new), "relay log has no /%s/ for this attempt:\n%s" % (log_rx, new[-1500:]))


@harness.targets("relay")
def test_modern_client_wrong_password_gets_the_reason(run, fx):
    _refused6(run, fx, "alice6", "wrong-pw", None, r"authentication failed", r"does not match", "client6-badpw")


@harness.targets("relay")
def test_modern_client_unknown_user_gets_the_reason(run, fx):
    _refused6(run, fx, "nobody6", "whatever", None, r"authentication failed", r"(?i)auth\w* fail|unknown user|not found",
              "client6-nouser")


@harness.targets("relay")
def test_modern_client_unknown_display_gets_the_reason(run, fx):
    srv = fx["server"]
    _refused6(run, fx, "alice6", "alice6-pw", srv.display + 1000, r"session not found|display '?:\d+'? not found",
              r"(?i)not found|unknown display|no such (display|session)", "client6-baddisp")


@harness.targets("relay")
def test_modern_client_asking_aes_of_a_port_without_it_is_refused(run, fx):
    # AES over 6.x end to end is test_modern_aes.py. Here the relay has no --tcp-encryption: it
    # refuses, in plain text since it has no key; the client, which keyed its receive side with
    # its hello, drops that packet ("unencrypted packet dropped") and exits rather than hang.
    r = fx["x6"].python("import cryptography")
    check(r.returncode == 0, "xpra 6.5.3's AES needs python3-cryptography (package python3-cryptography, "
          "tools/lib.sh XR_TEST_PACKAGES): %s" % r.stderr[-300:])
    keyfile = run.key_file("relay-aes-test-key", name="aes6-plainport.key")
    _refused6(run, fx, "alice6", "alice6-pw", None, r"unencrypted packet dropped|AES encryption is not enabled",
              r"AES encryption is not enabled on this port", "client6-aes-plainport",
              extra=["--encryption=AES-CBC", "--encryption-keyfile=%s" % keyfile])
