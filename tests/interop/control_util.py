"""Helpers for test_control.py: a relay started with its own :DISPLAY control socket, and the
stock xpra 3.1.3 control commands (`xpra list / info / version / stop`) run against its socket
dir, with their output parsed.

Beware: `xpra list` itself deletes DEAD socket files it finds. Check that the relay removed a
file (os.path.exists) before running `xpra list`, or the check proves nothing.
"""

import contextlib
import os
import re
import signal
import socket
import stat
import subprocess
import time

import harness
from harness import TestFailure, check

VERSION_H = os.path.join(harness.ROOT, "engine", "version.h")
XPRA_STATES = ("LIVE", "DEAD", "UNKNOWN", "INACCESSIBLE")


def relay_version():
    """The version engine/version.h declares (kRelayVersion)."""
    m = re.search(r'kRelayVersion\s*=\s*"([^"]+)"', harness.read_text(VERSION_H))
    check(m, "no kRelayVersion in %s" % VERSION_H)
    return m.group(1)


def socket_hostname(env=None):
    """The HOSTNAME part of socket names, as both xpra and the relay compute it."""
    env = os.environ if env is None else env
    return env.get("XPRA_SOCKET_HOSTNAME") or socket.gethostname()


def sock_path(socket_dir, display, hostname=None):
    """DIR/HOSTNAME-NAME for display ':NAME' (':20', ':proxy-3')."""
    return os.path.join(socket_dir, "%s-%s" % (hostname or socket_hostname(), str(display).lstrip(":")))


def proxy_ids(socket_dir, hostname=None):
    """Sorted N of every HOSTNAME-proxy-N file in the socket dir (sockets or not)."""
    prefix = "%s-proxy-" % (hostname or socket_hostname())
    out = []
    for name in os.listdir(socket_dir):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            out.append(int(name[len(prefix):]))
    return sorted(out)


def wait_new_proxy_id(socket_dir, before, timeout=15):
    """Waits for exactly one HOSTNAME-proxy-N file that is not in `before`; returns N."""
    def probe():
        new = [n for n in proxy_ids(socket_dir) if n not in before]
        check(len(new) <= 1, "more than one new instance socket appeared: %s" % new)
        return new[0] if new else None
    return harness.wait_until(probe, timeout, what="a new %s-proxy-N socket in %s" % (socket_hostname(), socket_dir))


def wait_gone(path, timeout=10):
    """Waits until `path` no longer exists."""
    harness.wait_until(lambda: not os.path.lexists(path), timeout, what="%s to be removed" % path)


def probe_socket(path):
    """'LIVE' when something accepts on the unix socket, 'DEAD' when the file is missing,
    'REFUSED' when it exists but nobody listens (a stale file), else the errno name."""
    if not os.path.lexists(path):
        return "DEAD"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(path)
        return "LIVE"
    except ConnectionRefusedError:
        return "REFUSED"
    except OSError as e:
        return e.__class__.__name__
    finally:
        s.close()


def check_control_socket(path):
    """Checks `path` is a live unix socket with mode 0600 (only its owner may control it)."""
    try:
        st = os.lstat(path)
    except OSError as e:
        raise TestFailure("control socket %s missing: %s" % (path, e.strerror))
    check(stat.S_ISSOCK(st.st_mode), "%s is not a socket (mode %o)" % (path, st.st_mode))
    check(stat.S_IMODE(st.st_mode) == 0o600, "%s has mode %o, expected 0600" % (path, stat.S_IMODE(st.st_mode)))
    state = probe_socket(path)
    check(state == "LIVE", "%s is not live: %s" % (path, state))


def make_stale_socket(path):
    """Leaves a unix socket file nobody listens on (bind, close, no unlink), as a killed
    process would."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    check(stat.S_ISSOCK(os.lstat(path).st_mode), "%s is not a socket" % path)
    check(probe_socket(path) == "REFUSED", "stale socket %s is not refusing connections" % path)


@contextlib.contextmanager
def listening_socket(path):
    """A unix socket some other process (this test) listens on: a live file that must be left alone."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    try:
        yield s
    finally:
        s.close()
        with contextlib.suppress(OSError):
            os.unlink(path)


# ---------------------------------------------------------------- xpra commands
class Result:
    """A finished command: argv, exit code, combined output."""

    def __init__(self, argv, rc, out):
        self.argv, self.rc, self.out = argv, rc, out

    def lines(self):
        """Output lines without xpra's root warning and blank lines."""
        return [ln for ln in self.out.splitlines()
                if ln.strip() and not ln.startswith("Warning: running as root")]

    def __str__(self):
        return "$ %s\n(rc=%s)\n%s" % (" ".join(self.argv), self.rc, self.out.rstrip())


def xpra(run, *args, timeout=60, env=None):
    """Runs `xpra ARGS...` (logged to client-xpra-commands.log); returns a Result."""
    argv = [harness.XPRA] + [str(a) for a in args]
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=env or run.env(), timeout=timeout)
        res = Result(argv, r.returncode, r.stdout.decode("utf-8", "replace"))
    except subprocess.TimeoutExpired as e:
        res = Result(argv, None, (e.output or b"").decode("utf-8", "replace") + "\n(timed out after %ss)" % timeout)
    with open(run.path("client-xpra-commands.log"), "a") as f:
        f.write("%s %s\n\n" % (time.strftime("%H:%M:%S"), res))
    check(res.rc is not None, "command timed out:\n%s" % res)
    return res


def xpra_list(run, socket_dir, env=None):
    """`xpra list --socket-dirs=DIR`: {display: state}. Fails when the command fails."""
    r = xpra(run, "list", "--socket-dirs=%s" % socket_dir, env=env)
    check(r.rc == 0, "xpra list failed:\n%s" % r)
    out = {}
    for ln in r.lines():
        m = re.match(r"^\s*(%s) session at (\S+)" % "|".join(XPRA_STATES), ln)
        if m:
            out[m.group(2)] = m.group(1)
    return out


def parse_info(text):
    """`key=value` lines of `xpra info` as a dict of strings."""
    out = {}
    for ln in text.splitlines():
        if "=" in ln and not ln.startswith((" ", "\t", "Warning")):
            k, v = ln.split("=", 1)
            out[k] = v
    return out


def xpra_info(run, display, socket_dir, env=None):
    """`xpra info DISPLAY --socket-dirs=DIR` as a flat dict; fails when the command fails."""
    r = xpra(run, "info", display, "--socket-dirs=%s" % socket_dir, env=env)
    check(r.rc == 0, "xpra info %s failed:\n%s" % (display, r))
    info = parse_info(r.out)
    check(info, "xpra info %s printed no key=value lines:\n%s" % (display, r))
    return info


def xpra_version(run, display, socket_dir):
    """`xpra version DISPLAY --socket-dirs=DIR`: the version line it printed."""
    r = xpra(run, "version", display, "--socket-dirs=%s" % socket_dir)
    check(r.rc == 0, "xpra version %s failed:\n%s" % (display, r))
    lines = r.lines()
    check(lines, "xpra version %s printed nothing:\n%s" % (display, r))
    return lines[-1].strip()


def xpra_stop(run, display, socket_dir):
    """`xpra stop DISPLAY --socket-dirs=DIR`: the Result (not checked)."""
    return xpra(run, "stop", display, "--socket-dirs=%s" % socket_dir)


def as_int(info, key):
    """info[key] as an int (TestFailure when missing or not a number)."""
    check(key in info, "no '%s' in the info (keys: %s)" % (key, ", ".join(sorted(info))))
    try:
        return int(info[key])
    except ValueError:
        raise TestFailure("info '%s' is not a number: %r" % (key, info[key]))


# ---------------------------------------------------------------- the relay with a display
class Relay:
    """A running relay with a :DISPLAY control socket."""

    def __init__(self, run, proc, port, log, display, socket_dir, hostname):
        self.run = run
        self.proc = proc
        self.port = port
        self.log = log
        self.display = display            # ":N"
        self.socket_dir = socket_dir
        self.hostname = hostname

    @property
    def display_socket(self):
        """DIR/HOSTNAME-N, the relay's own control socket."""
        return sock_path(self.socket_dir, self.display, self.hostname)

    def proxy_socket(self, n):
        """DIR/HOSTNAME-proxy-N, the control socket of instance N."""
        return sock_path(self.socket_dir, ":proxy-%d" % n, self.hostname)

    def uri(self, user=None, password=None, display=None):
        """tcp://USER:PASS@127.0.0.1:PORT/DISPLAY."""
        cred = ""
        if user is not None:
            cred = user + (":" + password if password is not None else "") + "@"
        return "tcp://%s127.0.0.1:%d/%s" % (cred, self.port, "" if display is None else display)

    def alive(self):
        """True while the relay runs."""
        return self.proc.alive()

    def text(self):
        """The relay's log so far."""
        return harness.read_text(self.log)

    def startup_version(self):
        """The version in the relay's start-up line ('xpra-relay X on ...')."""
        m = re.search(r"xpra-relay (\S+) on ", self.text())
        check(m, "no 'xpra-relay VERSION on' start-up line in %s" % self.log)
        return m.group(1)

    def signal(self, sig):
        """Sends `sig` to the relay process itself."""
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout):
        """Waits for the relay to exit; returns its exit code."""
        return self.proc.wait(timeout)


def relay_argv(run, port, auth, socket_dir, display, extra=()):
    """The relay command line, display first as in `xpra-relay :20 --bind-tcp=...`."""
    argv = [run.relay_bin]
    if display:
        argv.append(display)
    argv += ["--bind-tcp=127.0.0.1:%d" % port, "--tcp-auth=%s" % auth, "--socket-dir=%s" % socket_dir]
    return argv + list(extra)


@contextlib.contextmanager
def relay(run, auth, socket_dir, display=None, extra=(), name="relay", env=None):
    """Starts the relay with its own display (a fresh ':N' unless given) and waits until it
    listens and its display socket is live. Yields a Relay; stops it on exit (SIGTERM)."""
    if not os.access(run.relay_bin, os.X_OK):
        raise TestFailure("relay binary missing: %s (bazel build //:xpra-relay)" % run.relay_bin)
    display = display or ":%d" % run.free_display()
    port = run.free_port()
    log = run.path("%s.log" % name)
    env = env or run.env()
    p = harness.Proc(name, relay_argv(run, port, auth, socket_dir, display, extra), log, env)
    r = Relay(run, p, port, log, display, socket_dir, socket_hostname(env))
    try:
        harness.wait_until(lambda: harness.port_listening(port) or not p.alive(), 20,
                           what="relay listening on %d" % port)
        check(p.alive(), "relay exited at startup (rc=%s):\n%s" % (p.returncode(), harness.log_tail(log, 20)))
        harness.wait_until(lambda: probe_socket(r.display_socket) == "LIVE" or not p.alive(), 10,
                           what="relay control socket %s" % r.display_socket)
        check(p.alive(), "relay exited at startup (rc=%s):\n%s" % (p.returncode(), harness.log_tail(log, 20)))
        yield r
    finally:
        p.stop(grace=8)


def run_relay_once(run, auth, socket_dir, display, name, timeout=15, extra=()):
    """Runs a relay expected to refuse to start; returns (exit code or None if it kept
    running, its output). A relay that does start is stopped."""
    port = run.free_port()
    log = run.path("%s.log" % name)
    p = harness.Proc(name, relay_argv(run, port, auth, socket_dir, display, extra), log, run.env())
    try:
        try:
            rc = p.p.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
    finally:
        p.stop(grace=5)
    return rc, harness.read_text(log)


def instance_for(run, relay_, user, timeout=15):
    """The N of the live :proxy-N whose `xpra info` names `user`."""
    def probe():
        for n in proxy_ids(relay_.socket_dir, relay_.hostname):
            r = xpra(run, "info", ":proxy-%d" % n, "--socket-dirs=%s" % relay_.socket_dir)
            if r.rc == 0 and parse_info(r.out).get("username") == user:
                return n
        return None
    return harness.wait_until(probe, timeout, interval=0.5, what="a :proxy-N instance for user %s" % user)


def wait_client_told(client, texts, timeout=30):
    """Waits for the client to exit and checks every text in `texts` is in its output;
    returns its exit code."""
    rc = client.wait_exit(timeout)
    out = client.text()
    missing = [t for t in texts if t not in out]
    check(not missing, "client %s exited (rc=%s) without %s in its output; it printed: %r"
          % (client.proc.name, rc, missing, client.exit_reason() or harness.log_tail(client.log, 8)))
    return rc


def sigterm(relay_):
    """SIGTERM to the relay process."""
    relay_.signal(signal.SIGTERM)


def stop_commands_in(workdir, argv_prefix):
    """SIGTERM to the processes whose command line starts with `argv_prefix` and whose current
    directory is `workdir` (a command typed into one session's xterm, nothing else); returns
    their pids."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                args = f.read().decode("utf-8", "replace").split("\0")
            cwd = os.readlink("/proc/%s/cwd" % d)
        except OSError:
            continue
        if args[:len(argv_prefix)] == list(argv_prefix) and cwd == workdir:
            pids.append(int(d))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return pids
