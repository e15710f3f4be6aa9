"""Fixtures and helpers for the xpra-relay interop suite (Python 3 stdlib only).

Everything a test starts is a context manager that always stops what it started (process
groups, SIGTERM then SIGKILL). All files of one run live under one directory
(Run.dir); each fixture writes its own log there. See README.md.
"""

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
XPRA = "/usr/bin/xpra"
PYTHON = "/usr/bin/python3"
SQLITE_AUTH_PY = "/usr/lib/python3/dist-packages/xpra/server/auth/sqlite_auth.py"
HOSTNAME = socket.gethostname()

TARGETS = ("relay", "direct", "proxy")

# Flags that keep an xpra 3.1.3 server quick to start and quiet.
SERVER_QUIET = [
    "--mdns=no", "--pulseaudio=no", "--notifications=no", "--webcam=no", "--speaker=off",
    "--microphone=off", "--printing=no", "--dbus-proxy=no", "--dbus-control=no",
    "--dbus-launch=", "--systemd-run=no", "--html=off", "--file-transfer=no",
    "--exit-with-client=no", "--terminate-children=yes", "--sharing=no", "--daemon=no",
]
# Flags for a GUI client that needs no sound, GL, tray or dbus, and never uses mmap (which
# would carry pixels through a shared file instead of the relayed connection).
CLIENT_QUIET = [
    "--opengl=no", "--speaker=off", "--microphone=off", "--notifications=no", "--tray=no",
    "--system-tray=no", "--mdns=no", "--webcam=no", "--pulseaudio=no", "--mmap=no",
    "--printing=no", "--file-transfer=no", "--dbus-launch=", "--clipboard=no", "--bell=no",
    "--xsettings=no",
]


# xpra 3.1.3 client exit codes (xpra/exit_codes.py)
EXIT_OK = 0
EXIT_CONNECTION_LOST = 1
EXIT_CONNECTION_FAILED = 18   # disconnected before the session could be established


class TestFailure(AssertionError):
    """A check failed; the message says which."""


class TestSkip(Exception):
    """The test does not apply to this target."""


def check(cond, message):
    """Raises TestFailure(message) unless cond."""
    if not cond:
        raise TestFailure(message)


def skip(reason):
    """Marks the running test as skipped."""
    raise TestSkip(reason)


def log_tail(path, lines=40):
    """Last `lines` lines of a text file (or a note that it is missing)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "(no log %s: %s)" % (path, e.strerror)
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


def read_text(path):
    """Whole file as text ('' when missing)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def wait_until(pred, timeout, interval=0.1, what="condition"):
    """Polls pred() until it returns a truthy value (returned) or raises TestFailure after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_for_log(path, regex, timeout, start=0, proc=None):
    """Waits until `regex` matches the log text after byte offset `start`; returns the match.

    Fails early when `proc` (a Proc) exits before the line appears.
    """
    rx = re.compile(regex, re.M)

    def probe():
        m = rx.search(read_text(path)[start:])
        if m:
            return m
        if proc is not None and not proc.alive():
            m = rx.search(read_text(path)[start:])
            if m:
                return m
            raise TestFailure("%s exited (rc=%s) before its log showed /%s/" % (proc.name, proc.returncode(), regex))
        return None
    return wait_until(probe, timeout, what="/%s/ in %s" % (regex, os.path.basename(path)))


def log_size(path):
    """Current size of a log (an offset for wait_for_log's `start`)."""
    try:
        return len(read_text(path))
    except OSError:
        return 0


# ---------------------------------------------------------------- ports and displays
def port_listening(port):
    """True when some socket on this host listens on TCP `port` (read from /proc/net/tcp*)."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, st = parts[1], parts[3]
                    if st == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            continue
    return False


def display_in_use(n):
    """True when X display :n has a socket or lock file."""
    return os.path.exists("/tmp/.X11-unix/X%d" % n) or os.path.exists("/tmp/.X%d-lock" % n)


# ---------------------------------------------------------------- processes
EVENT_LOG = None   # set by Run: every process start and signal the harness sends goes here


def event(msg):
    """Appends a timestamped line to the run's harness.log."""
    if EVENT_LOG:
        with open(EVENT_LOG, "a") as f:
            f.write("%s %s\n" % (time.strftime("%H:%M:%S"), msg))


class Proc:
    """A child process in its own process group, output to a log file."""

    def __init__(self, name, argv, log_path, env, cwd=None, preexec=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self._log.write(("$ %s\n" % " ".join(_quote(a) for a in argv)).encode())
        self._log.flush()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                  env=env, cwd=cwd, start_new_session=True, preexec_fn=preexec)
        self.pid = self.p.pid
        self._stopped = False
        event("start pid %d %s: %s" % (self.pid, name, " ".join(argv)[:200]))

    def alive(self):
        """True while the process has not exited."""
        return self.p.poll() is None

    def returncode(self):
        """Exit code, or None while running."""
        return self.p.poll()

    def wait(self, timeout):
        """Waits up to `timeout` seconds; returns the exit code or raises TestFailure."""
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s still running after %.0fs" % (self.name, timeout))

    def signal_group(self, sig):
        """Sends `sig` to the process group (ignores a group that is already gone)."""
        try:
            os.killpg(self.pid, sig)
            event("signal %d to group %d (%s)" % (sig, self.pid, self.name))
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace=8.0):
        """SIGTERM to the group, then SIGKILL after `grace` seconds; always reaps the child."""
        if self._stopped:
            return
        self._stopped = True
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Anything left in the group (children that ignored SIGTERM) goes too.
        self.signal_group(signal.SIGKILL)
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def _quote(a):
    return a if re.match(r"^[\w@%+=:,./-]+$", a) else "'" + a.replace("'", "'\\''") + "'"


def kill_pids(pids, grace=3.0):
    """SIGTERM, then SIGKILL, a list of pids that this run started indirectly."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            event("SIGTERM to pid %d" % pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def xvfb_pid(n):
    """The pid in /tmp/.X<n>-lock when it is an X server for display :n, else None."""
    try:
        with open("/tmp/.X%d-lock" % n) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            args = f.read().decode("utf-8", "replace").split("\0")
    except (OSError, ValueError):
        return None
    return pid if ":%d" % n in args and "Xvfb" in args[0] else None


def pids_matching(arg, fragment):
    """Pids with `arg` as one exact argument and `fragment` somewhere in their command line (to
    find our own indirectly started children, e.g. the Xvfb of one xpra server of this run)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                args = f.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if arg in args and any(fragment in a for a in args):
            out.append(int(d))
    return out


# ---------------------------------------------------------------- sanitizers
# A relay (or auth tool) built with --config=sanitize / asan / ubsan / tsan writes its reports
# to files under the run's sanitizer/ dir (log_path) and stops at the first one
# (halt_on_error, abort_on_error). The runner calls Run.sanitizer_reports() after every test
# and after every module's fixture is torn down (LeakSanitizer reports when the relay exits):
# any report fails that test. A binary built without sanitizers ignores these variables.
SANITIZER_OPTIONS = {
    "ASAN_OPTIONS": "halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1",
    "UBSAN_OPTIONS": "halt_on_error=1:abort_on_error=1:print_stacktrace=1",
    "TSAN_OPTIONS": "halt_on_error=1:abort_on_error=1:second_deadlock_stack=1",
}
# What a report printed to a relay log instead (log_path overridden by the caller) looks like.
SANITIZER_REPORT_RX = re.compile(r"==\d+==ERROR: \w+Sanitizer|WARNING: ThreadSanitizer|SUMMARY: \w+Sanitizer|"
                                 r"^\S+:\d+:\d+: runtime error: ", re.M)
SANITIZER_SCANNED_LOGS = ("relay", "auth-tool")


def sanitizer_env(report_prefix):
    """ASAN/UBSAN/TSAN_OPTIONS writing reports to `report_prefix`.PID; options already in this
    process's environment are appended, so they win."""
    env = {}
    for var, opts in SANITIZER_OPTIONS.items():
        v = "%s:log_path=%s" % (opts, report_prefix)
        if os.environ.get(var):
            v += ":" + os.environ[var]
        env[var] = v
    return env


# ---------------------------------------------------------------- the run
class Run:
    """One suite run: a temp dir, a target, port/display allocation and the base environment."""

    def __init__(self, target="relay", base_dir=None, relay_bin=None, auth_bin=None, verbose=False):
        self.target = target
        self.verbose = verbose
        base = base_dir or os.environ.get("XR_INTEROP_DIR", "/tmp/xpra-relay-test/interop")
        os.makedirs(base, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.dir = os.path.join(base, "run-%s-%d" % (stamp, os.getpid()))
        os.makedirs(self.dir)
        # The proxy target runs xpra as an unprivileged user that must read DB files here.
        for d in (base, self.dir):
            os.chmod(d, 0o755)
        global EVENT_LOG
        EVENT_LOG = os.path.join(self.dir, "harness.log")
        self.home = self.mkdir("home", 0o700)
        self.xdg = self.mkdir("xdg", 0o700)
        self.relay_bin = relay_bin or os.environ.get("XR_RELAY_BIN", os.path.join(ROOT, "bazel-bin", "xpra-relay"))
        self.auth_bin = auth_bin or os.environ.get("XR_RELAY_AUTH_BIN",
                                                   os.path.join(ROOT, "bazel-bin", "xpra-relay-auth"))
        self._ports = set()
        self._displays = set()
        self._next_display = int(os.environ.get("XR_INTEROP_DISPLAY_BASE", "150"))
        self.logdir = self.dir   # set per module / test by the runner
        self.sanitizer_dir = self.mkdir("sanitizer")
        self._sanitizer_env = sanitizer_env(os.path.join(self.sanitizer_dir, "report"))
        self._report_offsets = {}

    # -- layout
    def mkdir(self, name, mode=0o755):
        """Creates (if needed) and returns a directory under the run dir."""
        p = os.path.join(self.dir, name)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        return p

    def path(self, name):
        """A file path in the current log dir."""
        return os.path.join(self.logdir, name)

    def set_logdir(self, name):
        """Points fixture logs at a subdirectory of the run dir (one per module or test)."""
        self.logdir = self.mkdir(name)
        return self.logdir

    # -- allocation
    def free_port(self):
        """A TCP port on 127.0.0.1 that nothing listens on and this run has not handed out."""
        for _ in range(100):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            if port not in self._ports and not port_listening(port):
                self._ports.add(port)
                return port
        raise RuntimeError("no free port")

    def free_display(self, preferred=None):
        """An X display number not in use (tries `preferred` first)."""
        if preferred is not None and preferred not in self._displays and not display_in_use(preferred):
            self._displays.add(preferred)
            return preferred
        n = self._next_display
        while n in self._displays or display_in_use(n):
            n += 1
        self._displays.add(n)
        self._next_display = n + 1
        return n

    def env(self, **extra):
        """A clean environment for xpra and X programs (Debian's python first, private HOME)."""
        env = {
            "PATH": "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": self.home,
            "XDG_RUNTIME_DIR": self.xdg,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "SHELL": "/bin/sh",
            "TERM": "xterm",
            "USER": os.environ.get("USER", "root"),
            "LOGNAME": os.environ.get("LOGNAME", "root"),
            "XAUTHORITY": os.path.join(self.home, ".Xauthority"),
            "NO_AT_BRIDGE": "1",
            "XPRA_CONNECT_TIMEOUT": "3",
        }
        env.update(self._sanitizer_env)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def sanitizer_reports(self):
        """Sanitizer reports written since the last call: new text in any file under
        sanitizer/, and report lines in relay / auth-tool logs. Returns [(path, text)]."""
        out = []
        for root, _dirs, files in os.walk(self.dir):
            for f in sorted(files):
                in_dir = root == self.sanitizer_dir
                if not in_dir and not (f.endswith(".log") and f.startswith(SANITIZER_SCANNED_LOGS)):
                    continue
                p = os.path.join(root, f)
                text = read_text(p)
                new = text[self._report_offsets.get(p, 0):]
                self._report_offsets[p] = len(text)
                if not new:
                    continue
                if in_dir:
                    out.append((p, new))
                else:
                    m = SANITIZER_REPORT_RX.search(new)
                    if m:
                        out.append((p, new[new.rfind("\n", 0, m.start()) + 1:]))
        return out

    # -- fixtures
    @contextlib.contextmanager
    def xvfb(self, width=1280, height=800):
        """An Xvfb display for one client; yields its number."""
        n = self.free_display()
        log = self.path("xvfb-%d.log" % n)
        p = Proc("Xvfb :%d" % n, ["Xvfb", ":%d" % n, "-screen", "0", "%dx%dx24" % (width, height),
                                  "-nolisten", "tcp", "-br", "-noreset"], log, self.env())
        try:
            wait_until(lambda: os.path.exists("/tmp/.X11-unix/X%d" % n) or not p.alive(), 15,
                       what="Xvfb :%d socket" % n)
            check(p.alive(), "Xvfb :%d exited: %s" % (n, log_tail(log, 10)))
            yield n
        finally:
            p.stop(grace=3)
            self._displays.discard(n)

    @contextlib.contextmanager
    def xpra_server(self, display=None, socket_dir=None, tcp=True, title=None, auth_args=(), extra=(),
                    name=None):
        """A real `xpra start` session running one xterm titled `title`.

        Yields an XpraServer. socket_dir defaults to a fresh one under the run dir; tcp=True
        also binds 127.0.0.1:<free port>.
        """
        n = self.free_display(display)
        title = title or "sess-%d" % n
        sdir = socket_dir or self.mkdir("sockets-%d" % n)
        port = self.free_port() if tcp else None
        log = self.path("server-%d.log" % n)
        argv = [XPRA, "start", ":%d" % n, "--socket-dirs=%s" % sdir, "--log-dir=%s" % self.logdir,
                "--start=xterm -T %s -e /bin/sh" % title]
        if port:
            argv.append("--bind-tcp=127.0.0.1:%d" % port)
        argv += SERVER_QUIET + list(auth_args) + list(extra)
        # The shell in the xterm writes its files here (see type_command).
        workdir = self.mkdir("work-%d" % n, 0o777)
        p = Proc(name or "xpra server :%d" % n, argv, log, self.env(PS1="$ "), cwd=workdir)
        srv = XpraServer(self, p, n, sdir, port, title, log, workdir)
        try:
            wait_for_log(log, r"xpra is ready", 60, proc=p)
            if port:
                wait_until(lambda: port_listening(port) or not p.alive(), 10, what="server port %d" % port)
            wait_until(lambda: os.path.exists(srv.socket_path) or not p.alive(), 10,
                       what="server socket %s" % srv.socket_path)
            check(p.alive(), "xpra server :%d exited early" % n)
            yield srv
        finally:
            srv.stop()
            self._displays.discard(n)

    @contextlib.contextmanager
    def client(self, uri, extra=(), width=1280, height=800, name="client", wait_attached=True, timeout=40):
        """`xpra attach URI` on its own Xvfb. Yields an XpraClient (attached unless wait_attached=False)."""
        with self.xvfb(width, height) as disp:
            log = self.path("%s-%d.log" % (name, disp))
            argv = [XPRA, "attach", uri] + CLIENT_QUIET + list(extra)
            p = Proc("%s on :%d" % (name, disp), argv, log, self.env(DISPLAY=":%d" % disp))
            c = XpraClient(self, p, disp, uri, log)
            try:
                if wait_attached:
                    c.wait_attached(timeout)
                yield c
            finally:
                p.stop(grace=5)

    @contextlib.contextmanager
    def relay(self, auth, socket_dir, extra=(), name="relay"):
        """The relay under test on 127.0.0.1:<free port>, foreground, output to relay.log.

        auth: the --tcp-auth value, e.g. "sqlite,filename=/path/db".
        """
        if not os.access(self.relay_bin, os.X_OK):
            raise TestFailure("relay binary missing: %s (bazel build //:xpra-relay)" % self.relay_bin)
        port = self.free_port()
        log = self.path("%s.log" % name)
        # XR_RELAY_EXTRA_ARGS: arguments every relay of the run gets (tools/test: --io=epoll).
        argv = [self.relay_bin, "--bind-tcp=127.0.0.1:%d" % port, "--tcp-auth=%s" % auth,
                "--socket-dir=%s" % socket_dir] + shlex.split(os.environ.get("XR_RELAY_EXTRA_ARGS", "")) + list(extra)
        p = Proc(name, argv, log, self.env())
        r = Gate(self, p, port, log, "relay")
        try:
            wait_until(lambda: port_listening(port) or not p.alive(), 20, what="relay listening on %d" % port)
            check(p.alive(), "relay exited at startup (rc=%s):\n%s" % (p.returncode(), log_tail(log, 20)))
            if "--io=epoll" in argv:
                check("I/O backend: epoll" in read_text(log), "relay not on epoll:\n%s" % log_tail(log, 20))
            yield r
        finally:
            p.stop(grace=10)   # time for LeakSanitizer's exit check in a sanitized build

    @contextlib.contextmanager
    def xpra_proxy(self, auth, socket_dir, extra=(), name="proxy"):
        """Real `xpra proxy` (3.1.3 refuses root: runs as nobody:nogroup), for checking the harness."""
        port = self.free_port()
        n = self.free_display()
        log = self.path("%s.log" % name)
        pdir = self.mkdir("proxy-sockets-%d" % n, 0o777)
        phome = self.mkdir("proxy-home-%d" % n, 0o777)
        env = self.env(HOME=phome, XDG_RUNTIME_DIR=phome)
        env.pop("XAUTHORITY", None)
        argv = [XPRA, "proxy", ":%d" % n, "--bind-tcp=127.0.0.1:%d" % port, "--tcp-auth=%s" % auth,
                "--socket-dirs=%s" % pdir, "--mdns=no", "--daemon=no", "--dbus-control=no", "--dbus-launch=",
                "--html=off", "--log-dir=%s" % phome] + list(extra)
        if os.getuid() == 0:
            argv = ["runuser", "-u", "nobody", "-g", "nogroup", "--"] + argv
        p = Proc(name, argv, log, env)
        r = Gate(self, p, port, log, "proxy")
        try:
            wait_for_log(log, r"xpra is ready", 30, proc=p)
            wait_until(lambda: port_listening(port), 10, what="proxy listening on %d" % port)
            yield r
        finally:
            p.stop(grace=5)
            self._displays.discard(n)

    # -- auth files
    def sqlite_db(self, rows, name="users.sdb"):
        """Creates a sqlite auth DB with our xpra-relay-auth (or xpra's sqlite_auth.py outside the
        relay target when ours is not built). rows: (user, password, displays_csv[, uid, gid,
        env_options, session_options]). Returns its path."""
        path = self.path(name)
        if os.path.exists(path):
            os.unlink(path)
        if os.access(self.auth_bin, os.X_OK):
            tool = [self.auth_bin]
        elif self.target != "relay":
            tool = [PYTHON, SQLITE_AUTH_PY]
        else:
            raise TestFailure("auth tool missing: %s (bazel build //:xpra-relay-auth)" % self.auth_bin)
        log = self.path("auth-tool.log")
        self._tool(tool + [path, "create"], log)
        for row in rows:
            user, pw, displays = row[0], row[1], row[2]
            uid = str(row[3]) if len(row) > 3 else str(os.getuid())
            gid = str(row[4]) if len(row) > 4 else str(os.getgid())
            env_opts = row[5] if len(row) > 5 else ""
            sess_opts = row[6] if len(row) > 6 else ""
            self._tool(tool + [path, "add", user, pw, uid, gid, displays, env_opts, sess_opts], log)
        os.chmod(path, 0o644)
        return path

    def _tool(self, argv, log):
        with open(log, "ab") as f:
            f.write(("$ %s\n" % " ".join(_quote(a) for a in argv)).encode())
            f.flush()
            rc = subprocess.call(argv, stdout=f, stderr=subprocess.STDOUT, env=self.env(), timeout=30)
        check(rc == 0, "%s failed (rc=%d): %s" % (argv[0], rc, log_tail(log, 5)))

    def multifile(self, rows, name="users.multifile"):
        """Writes a multifile auth file: user|password|uid|gid|displays|env|session per line."""
        path = self.path(name)
        with open(path, "w") as f:
            f.write("# interop test users\n")
            for row in rows:
                user, pw, displays = row[0], row[1], row[2]
                uid = row[3] if len(row) > 3 else os.getuid()
                gid = row[4] if len(row) > 4 else os.getgid()
                f.write("%s|%s|%s|%s|%s||\n" % (user, pw, uid, gid, displays))
        os.chmod(path, 0o644)
        return path

    def password_file(self, password, name="password.txt"):
        """Writes a `file` auth password file (the password only, no newline)."""
        path = self.path(name)
        with open(path, "w") as f:
            f.write(password)
        os.chmod(path, 0o644)
        return path

    def key_file(self, key, name="aes.key"):
        """Writes an AES key file (contents used as the PBKDF2 secret)."""
        path = self.path(name)
        with open(path, "w") as f:
            f.write(key)
        os.chmod(path, 0o644)
        return path


class XpraServer:
    """A running `xpra start` session."""

    def __init__(self, run, proc, display, socket_dir, port, title, log, workdir):
        self.run = run
        self.proc = proc
        self.display = display
        self.socket_dir = socket_dir
        self.port = port
        self.title = title
        self.log = log
        self.workdir = workdir
        self.socket_path = os.path.join(socket_dir, "%s-%d" % (HOSTNAME, display))

    def tcp_entry(self, with_display=True):
        """The DB `displays` entry that reaches this server over TCP."""
        return "tcp://127.0.0.1:%d/%s" % (self.port, self.display if with_display else "")

    def unix_entry(self):
        """The DB `displays` entry that reaches this server through its socket dir (":N")."""
        return ":%d" % self.display

    def stop(self):
        """Stops xpra, then makes sure its Xvfb and xterm of this run are gone too."""
        if self.proc.alive():
            event("xpra stop :%d" % self.display)
            # A clean `xpra stop` also ends the session's Xvfb; signals alone may not.
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run([XPRA, "stop", ":%d" % self.display, "--socket-dirs=%s" % self.socket_dir],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.run.env(),
                               timeout=15)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.p.wait(10)
        self.proc.stop(grace=5)
        xvfb = xvfb_pid(self.display)
        if xvfb:
            kill_pids([xvfb])


class Gate:
    """The thing clients connect to: the relay or a real xpra proxy."""

    def __init__(self, run, proc, port, log, kind):
        self.run = run
        self.proc = proc
        self.port = port
        self.log = log
        self.kind = kind

    def uri(self, user=None, password=None, display=None):
        """tcp://USER:PASS@127.0.0.1:PORT/DISPLAY (parts left out when None)."""
        cred = ""
        if user is not None:
            cred = user + (":" + password if password is not None else "") + "@"
        return "tcp://%s127.0.0.1:%d/%s" % (cred, self.port, "" if display is None else display)

    def alive(self):
        """True while the relay / proxy process runs."""
        return self.proc.alive()


class XpraClient:
    """A running `xpra attach` on its own Xvfb display."""

    def __init__(self, run, proc, display, uri, log):
        self.run = run
        self.proc = proc
        self.display = display
        self.uri = uri
        self.log = log

    def text(self):
        """The client's log so far."""
        return read_text(self.log)

    def wait_attached(self, timeout=40):
        """Waits for 'Attached to' in the client log (fails if the client exits first)."""
        wait_for_log(self.log, r"Attached to ", timeout, proc=self.proc)

    def wait_exit(self, timeout=60):
        """Waits for the client to exit; returns its exit code."""
        return self.proc.wait(timeout)

    def attached(self):
        """True while the client runs and has logged 'Attached to' with no disconnect after it."""
        t = self.text()
        i = t.rfind("Attached to ")
        return self.proc.alive() and i >= 0 and not re.search(
            r"server requested disconnect|Connection lost|Session Disconnected|connection failure", t[i:])

    def assert_attached(self, what="client"):
        """Fails (with the client's last disconnect text) unless the client is still attached."""
        check(self.attached(), "%s no longer attached: %r" % (what, self.exit_reason()))

    def env(self):
        """Environment for X tools on this client's display."""
        return self.run.env(DISPLAY=":%d" % self.display)

    def xdotool(self, *args, check_rc=True, timeout=20):
        """Runs xdotool on the client display; returns its stdout."""
        r = subprocess.run(["xdotool"] + list(args), env=self.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if check_rc and r.returncode != 0:
            raise TestFailure("xdotool %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
        return r.stdout.decode(errors="replace")

    def find_window(self, title, timeout=20):
        """Waits for a visible client window whose name contains `title`; returns (wid, x, y, w, h)."""
        def probe():
            out = self.xdotool("search", "--onlyvisible", "--name", re.escape(title), check_rc=False)
            for wid in out.split():
                g = self.geometry(wid)
                if g and g[3] > 20 and g[4] > 20:
                    return (wid,) + g[1:]
            return None
        return wait_until(probe, timeout, interval=0.25, what="window '%s' on client :%d" % (title, self.display))

    def geometry(self, wid):
        """(wid, x, y, w, h) of a window, or None."""
        out = self.xdotool("getwindowgeometry", "--shell", str(wid), check_rc=False)
        vals = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        try:
            return (wid, int(vals["X"]), int(vals["Y"]), int(vals["WIDTH"]), int(vals["HEIGHT"]))
        except (KeyError, ValueError):
            return None

    def screenshot(self, save_as=None):
        """Grabs the client's root window (xwd) and returns an Image; keeps a PNG when save_as."""
        r = subprocess.run(["xwd", "-root", "-silent", "-display", ":%d" % self.display], env=self.env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        check(r.returncode == 0, "xwd failed: %s" % r.stderr.decode(errors="replace"))
        img = Image.from_xwd(r.stdout)
        if save_as:
            img.save_png(self.run.path(save_as))
        return img

    def type_text(self, wid, text, enter=True):
        """Focuses window `wid` and types `text` (XTEST keystrokes) then Return."""
        g = self.geometry(wid)
        if g:
            self.xdotool("mousemove", str(g[1] + g[3] // 2), str(g[2] + g[4] // 2))
        self.xdotool("windowfocus", "--sync", str(wid), check_rc=False)
        time.sleep(0.3)
        self.xdotool("type", "--delay", "30", text)
        if enter:
            self.xdotool("key", "Return")

    def exit_reason(self):
        """The disconnect text the client printed (the lines after the last failure header)."""
        t = self.text()
        m = None
        for m in re.finditer(r"(?:server connection failure:|server requested disconnect:|Connection Failed: |"
                             r"Session Disconnected: )(.*(?:\n\S+ \S+\s+.*)*)", t):
            pass
        out = m.group(0) if m else ""
        sig = re.search(r"got signal (\w+)", t)
        if sig:
            out += " [client got %s: killed from outside the suite?]" % sig.group(1)
        return out


# ---------------------------------------------------------------- screenshots
class Image:
    """A decoded xwd screenshot (ZPixmap, 24/32 bpp TrueColor)."""

    def __init__(self, width, height, bpl, bpp, masks, lsb_first, data):
        self.width, self.height, self.bpl, self.bpp = width, height, bpl, bpp
        self.masks = masks
        self.lsb_first = lsb_first
        self.data = data

    @classmethod
    def from_xwd(cls, blob):
        """Parses an X Window Dump (XWDFileHeader: 25 big-endian CARD32, name, colormap, pixels)."""
        if len(blob) < 100:
            raise TestFailure("xwd output too short (%d bytes)" % len(blob))
        f = struct.unpack(">25I", blob[:100])
        header_size, version, pixmap_format, width, height = f[0], f[1], f[2], f[4], f[5]
        byte_order, bpp, bpl = f[7], f[11], f[12]
        red, green, blue = f[14], f[15], f[16]
        ncolors = f[19]
        check(version == 7, "xwd version %d" % version)
        check(pixmap_format == 2, "xwd pixmap format %d (want ZPixmap)" % pixmap_format)
        check(bpp in (24, 32), "xwd bits per pixel %d" % bpp)
        off = header_size + ncolors * 12
        data = blob[off:off + bpl * height]
        check(len(data) == bpl * height, "xwd truncated")
        return cls(width, height, bpl, bpp, (red, green, blue), byte_order == 0, data)

    def pixel(self, x, y):
        """(r, g, b) at x, y."""
        step = self.bpp // 8
        o = y * self.bpl + x * step
        raw = self.data[o:o + step]
        v = int.from_bytes(raw, "little" if self.lsb_first else "big")
        return tuple((v & m) >> _shift(m) for m in self.masks)

    def region(self, x, y, w, h):
        """The pixels of a rectangle (clipped to the image) as a list of rows of raw pixel bytes."""
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self.width, x + w), min(self.height, y + h)
        step = self.bpp // 8
        return [self.data[yy * self.bpl + x0 * step: yy * self.bpl + x1 * step] for yy in range(y0, y1)]

    def stats(self, x, y, w, h, background=(0, 0, 0)):
        """(pixels, non-background pixels, distinct colours) in a rectangle."""
        step = self.bpp // 8
        bg = self._raw(background)
        total = other = 0
        colours = set()
        for row in self.region(x, y, w, h):
            for i in range(0, len(row), step):
                px = row[i:i + step]
                total += 1
                if px[:3] != bg[:3]:
                    other += 1
                if len(colours) < 64:
                    colours.add(px[:3])
        return total, other, len(colours)

    def diff(self, other, x, y, w, h):
        """Number of pixels in a rectangle that differ between two screenshots of the same size."""
        step = self.bpp // 8
        n = 0
        for ra, rb in zip(self.region(x, y, w, h), other.region(x, y, w, h)):
            if ra == rb:
                continue
            for i in range(0, len(ra), step):
                if ra[i:i + 3] != rb[i:i + 3]:
                    n += 1
        return n

    def _raw(self, rgb):
        v = 0
        for c, m in zip(rgb, self.masks):
            v |= (c << _shift(m)) & m
        step = self.bpp // 8
        return v.to_bytes(step, "little" if self.lsb_first else "big")

    def save_png(self, path):
        """Writes the screenshot as an RGB PNG (for a human looking at a failure)."""
        import zlib
        rows = bytearray()
        for y in range(self.height):
            rows.append(0)
            for x in range(self.width):
                rows += bytes(self.pixel(x, y))

        def chunk(tag, body):
            return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
        png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0))
        png += chunk(b"IDAT", zlib.compress(bytes(rows), 6)) + chunk(b"IEND", b"")
        with open(path, "wb") as f:
            f.write(png)


def _shift(mask):
    s = 0
    while mask and not (mask >> s) & 1:
        s += 1
    return s


def assert_window_painted(client, title, min_fraction=0.3, save_as=None):
    """Finds the client window titled `title` and checks its screen area is painted (not the
    black root background). Returns (wid, geometry, image)."""
    wid, x, y, w, h = client.find_window(title)

    def painted():
        img = client.screenshot()
        total, other, colours = img.stats(x, y, w, h)
        return (img, total, other, colours) if total and other >= min_fraction * total and colours >= 2 else None
    try:
        img, total, other, colours = wait_until(painted, 20, interval=0.5, what="window '%s' painted" % title)
    except TestFailure:
        img = client.screenshot(save_as=save_as or "unpainted-%d.png" % client.display)
        total, other, colours = img.stats(x, y, w, h)
        raise TestFailure("window '%s' at %d,%d %dx%d not painted: %d/%d non-background pixels, %d colours"
                          % (title, x, y, w, h, other, total, colours))
    if save_as:
        img.save_png(client.run.path(save_as))
    return wid, (x, y, w, h), img


def prove_live(client, server, wid, geom, tag):
    """Types a command into the client's xterm and checks that it runs on the server (a file
    appears) and that the window's pixels change: input and output both cross the link."""
    x, y, w, h = geom
    before = client.screenshot()
    path = os.path.join(server.workdir, "live-%s-%d" % (tag, int(time.time() * 1000) % 100000))
    written = lambda: os.path.exists(path) and read_text(path).strip() == tag
    # XTEST keystrokes need the client window to hold the input focus, and with no window
    # manager on the client's Xvfb a focus change can be lost on a loaded machine (seen once in
    # CI: nothing typed arrived, the relay had the session up). Typing the same idempotent
    # command again is not a retry of the relay: a broken link fails all three attempts.
    for attempt in range(3):
        client.type_text(wid, "echo %s > %s" % (tag, path))
        try:
            wait_until(written, 12, what="file %s written by the session's shell" % path)
            break
        except TestFailure:
            if attempt == 2:
                client.screenshot(save_as="not-live-%s-%d.png" % (tag, client.display))
                raise
            sys.stderr.write("prove_live(%s): typed command not seen after 12 s, focusing and typing again\n" % tag)
    changed = wait_until(lambda: client.screenshot().diff(before, x, y, w, h), 15, interval=0.3,
                         what="window pixels to change after typing")
    return changed


# ---------------------------------------------------------------- raw sockets (hostile tests)
def raw_connect(port, timeout=10):
    """A plain TCP connection to 127.0.0.1:port."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_eof(sock, timeout, limit=1 << 20):
    """Reads until the peer closes; returns (data, seconds, how) with how in
    'eof' / 'reset' / 'timeout'."""
    t0 = time.monotonic()
    data = b""
    sock.settimeout(0.5)
    how = "timeout"
    while time.monotonic() - t0 < timeout:
        try:
            b = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            how = "reset"
            break
        if not b:
            how = "eof"
            break
        data += b
        if len(data) > limit:
            how = "flood"
            break
    return data, time.monotonic() - t0, how


def local_port(sock):
    """The client-side port of a connected socket (what a server log would name)."""
    return sock.getsockname()[1]


def cleanup_run_dir(run, keep):
    """Removes the run dir unless `keep`."""
    if not keep:
        shutil.rmtree(run.dir, ignore_errors=True)


# ---------------------------------------------------------------- targets
def targets(*names):
    """Decorator: the test runs only for these targets (others report it skipped)."""
    def deco(fn):
        fn.targets = names
        return fn
    return deco


class Setup:
    """Sessions + users + the gate clients connect to, for the run's target.

    relay:  our relay with --tcp-auth=<kind> over the users, --socket-dir shared by the servers.
    proxy:  real `xpra proxy` (as nobody) with the same auth; sessions only as tcp entries.
    direct: no gate; each server itself checks the users' password (same auth kind), and
            uri() points at the user's server.
    Use as a context manager; servers and the gate stop on exit.
    """

    def __init__(self, run, auth="sqlite", encryption_key=None, relay_args=(), name="setup"):
        self.run = run
        self.target = run.target
        self.auth = auth
        self.name = name
        self.relay_args = list(relay_args)
        self.socket_dir = run.mkdir("sockets-%s" % name)
        self.users = []            # (user, password, [XpraServer or str], via)
        self.servers = []
        self.gate = None
        self._stack = contextlib.ExitStack()
        self.key_file = run.key_file(encryption_key, name="%s.key" % name) if encryption_key else None
        ext = {"sqlite": "sdb", "multifile": "multifile", "file": "password"}[auth]
        self.auth_file = os.path.join(run.logdir, "%s-users.%s" % (name, ext))

    def __enter__(self):
        self._stack.__enter__()
        return self

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)

    # -- pieces
    def _auth_option(self):
        return "%s,filename=%s" % (self.auth, self.auth_file)

    def _encryption_args(self):
        if not self.key_file:
            return []
        return ["--tcp-encryption=AES", "--tcp-encryption-keyfile=%s" % self.key_file]

    def server(self, display=None, tcp=True, title=None, extra=()):
        """Starts one xpra session in this setup's socket dir; returns the XpraServer."""
        auth_args = []
        if self.target == "direct":
            auth_args = ["--tcp-auth=%s" % self._auth_option()] + self._encryption_args()
        srv = self._stack.enter_context(self.run.xpra_server(display=display, socket_dir=self.socket_dir,
                                                             tcp=tcp or self.target != "relay", title=title,
                                                             auth_args=auth_args, extra=extra))
        self.servers.append(srv)
        return srv

    def user(self, name, password, sessions, via="unix"):
        """Declares a user. sessions: XpraServer objects (entered as ':N' with via='unix', as
        'tcp://127.0.0.1:PORT/N' with via='tcp') or raw display strings."""
        self.users.append((name, password, list(sessions), via))

    def _entries(self, sessions, via):
        out = []
        for s in sessions:
            if isinstance(s, XpraServer):
                if self.target == "proxy" or via == "tcp":
                    # xpra proxy runs as nobody and cannot use root's unix sockets.
                    out.append(s.tcp_entry(with_display=via == "tcp"))
                else:
                    out.append(s.unix_entry())
            else:
                out.append(s)
        return out

    def _write_auth(self):
        rows = [(u, p, ",".join(self._entries(sess, via))) for u, p, sess, via in self.users]
        if self.target == "proxy":
            rows = [r + (65534, 65534) for r in rows]
        d, base = os.path.split(self.auth_file)
        old = self.run.logdir
        self.run.logdir = d
        try:
            if self.auth == "sqlite":
                self.run.sqlite_db(rows, name=base)
            elif self.auth == "multifile":
                self.run.multifile(rows, name=base)
            else:
                check(len(self.users) <= 1, "file auth holds one password")
                self.run.password_file(self.users[0][1] if self.users else "", name=base)
        finally:
            self.run.logdir = old

    def start(self):
        """Writes the auth file and starts the gate (relay or proxy) when the target has one."""
        self._write_auth()
        if self.target == "relay":
            self.gate = self._stack.enter_context(self.run.relay(self._auth_option(), self.socket_dir,
                                                                 extra=self._encryption_args() + self.relay_args,
                                                                 name="relay-%s" % self.name))
        elif self.target == "proxy":
            self.gate = self._stack.enter_context(self.run.xpra_proxy(self._auth_option(), self.socket_dir,
                                                                      extra=self._encryption_args(),
                                                                      name="proxy-%s" % self.name))
        return self

    @property
    def gate_log(self):
        """The relay's (or proxy's) log; in direct mode the first server's log."""
        if self.gate:
            return self.gate.log
        return self.servers[0].log if self.servers else None

    def gate_port(self):
        """Where hostile raw connections go: the relay/proxy port, or the first server's port."""
        if self.gate:
            return self.gate.port
        return self.servers[0].port

    def uri(self, user, password, display=None):
        """The attach URI for `user`; display: None, a number or a raw string."""
        if self.gate:
            return self.gate.uri(user, password, display)
        # direct: the server the user's display names (or the user's first server)
        srv = None
        for u, _p, sess, _via in self.users:
            if u == user:
                for s in sess:
                    if isinstance(s, XpraServer) and (display is None or str(s.display) == str(display)):
                        srv = s
                        break
        if srv is None:
            srv = self.servers[0]
        cred = user + (":" + password if password is not None else "") + "@"
        return "tcp://%s127.0.0.1:%d/%s" % (cred, srv.port, "" if display is None else display)

    def client_args(self):
        """Extra `xpra attach` flags this setup needs (AES)."""
        if not self.key_file:
            return []
        return ["--encryption=AES", "--encryption-keyfile=%s" % self.key_file]

    def client(self, user, password, display=None, extra=(), name=None, wait_attached=True, timeout=40):
        """Context manager: a client attached as `user` (see Run.client)."""
        return self.run.client(self.uri(user, password, display), extra=self.client_args() + list(extra),
                               name=name or "client-%s" % user, wait_attached=wait_attached, timeout=timeout)
