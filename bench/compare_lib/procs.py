"""Process orchestration for bench/compare: ports, child processes, memory and connection probes.

Every process is started in its own session (process group) so that stopping it also stops the
children it forked (nginx workers, xpra proxy instances), and nothing outside what we started is
ever signalled.
"""

import os
import signal
import socket
import subprocess
import time


def free_port():
    """Returns a TCP port on 127.0.0.1 that was free a moment ago (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0, proc=None):
    """Waits until 127.0.0.1:port accepts a connection; raises RuntimeError on timeout or if proc died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with status %s before listening on %d (log: %s)"
                               % (proc.name, proc.poll(), port, proc.log_path))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on 127.0.0.1:%d after %.0f s" % (port, timeout))


class Proc:
    """A child process in its own process group, with stdout+stderr sent to a log file."""

    def __init__(self, name, argv, log_path, env=None, user=None, group=None, cwd=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self._log.write(("$ %s\n" % " ".join(self.argv)).encode())
        self._log.flush()
        kwargs = {}
        if user is not None:
            kwargs["user"] = user
            kwargs["group"] = group
            kwargs["extra_groups"] = []
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                      start_new_session=True, **kwargs)
        self.pid = self.popen.pid

    def poll(self):
        """Returns the exit status, or None while running."""
        return self.popen.poll()

    def wait(self, timeout=None):
        """Waits for exit; returns the status (raises subprocess.TimeoutExpired on timeout)."""
        return self.popen.wait(timeout)

    def stop(self, sig=signal.SIGTERM, grace=5.0):
        """Signals the process group, escalates to SIGKILL after grace seconds, reaps; idempotent."""
        pids = [self.pid] + descendants(self.pid)
        if self.popen.poll() is None or len(pids) > 1:
            _signal_group(self.pid, sig)
            for p in pids[1:]:
                _signal_pid(p, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and (self.popen.poll() is None or _any_alive(pids[1:])):
                time.sleep(0.05)
            if self.popen.poll() is None or _any_alive(pids[1:]):
                _signal_group(self.pid, signal.SIGKILL)
                for p in pids[1:]:
                    _signal_pid(p, signal.SIGKILL)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if not self._log.closed:
            self._log.close()

    def log_tail(self, n=20):
        """Returns the last n lines of the log file."""
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _any_alive(pids):
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    return True
        except OSError:
            pass
    return False


def _ppid_map():
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants(pid):
    """Returns the pids of all live descendants of pid (children, grandchildren...)."""
    children = _ppid_map()
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def memory_kib(pids):
    """Returns {'rss': KiB, 'pss': KiB, 'processes': n} summed over pids (smaps_rollup)."""
    rss = pss = n = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                text = f.read()
        except OSError:
            continue
        n += 1
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return {"rss": rss, "pss": pss, "processes": n}


def cpu_seconds(pids):
    """CPU seconds used by pids and their waited-for children (processes that are gone and were
    not waited for count nothing)."""
    total = 0
    tck = os.sysconf("SC_CLK_TCK")
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, and cutime, cstime: children that exited and were waited for (xpra
        # proxy's per-connection processes) still count.
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / tck


def tree_cpu_seconds(pid):
    """cpu_seconds over pid and all its descendants (nginx and HAProxy workers, say)."""
    return cpu_seconds([pid] + descendants(pid))


def tree_memory_kib(pid):
    """memory_kib over pid and all its descendants."""
    return memory_kib([pid] + descendants(pid))


def established(port):
    """Counts ESTABLISHED IPv4 TCP sockets whose local port is port (the server side of connections)."""
    want = ":%04X" % port
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split(None, 4)
            if parts[3] == "01" and parts[1].endswith(want):
                n += 1
    return n


def fd_limit():
    """Returns the soft RLIMIT_NOFILE of this process."""
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
