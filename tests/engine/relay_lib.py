"""What the relay's end-to-end Python tests share: starting programs and checking results,
reading a process's sockets, CPU time and RSS, and raw xpra peers for fault injection (a client
that logs in and then does only what a test says; a fake target speaking just enough xpra).
The importing test sets `tmp` (logs) before starting anything; `procs` are killed by the test.
"""
import hashlib
import hmac
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
import wire  # noqa: E402  (frame header, rencode/bencode: tests/interop/wire.py)

tmp = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp()
procs = []
results = []


def check(name, ok, detail=""):
    results.append((name, bool(ok)))
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, "" if ok else ": " + str(detail)[:1500]), flush=True)


# Arguments given to every relay a test starts (the I/O backend under test, "--io=epoll"),
# inserted after the relay binary: set_relay_args(relay_bin, ["--io=epoll"]).
_relay_args = {}


def set_relay_args(binary, extra):
    _relay_args[binary] = list(extra)


def start(name, args, pattern, nofile=None):
    if args[0] in _relay_args:
        args = args[:1] + _relay_args[args[0]] + args[1:]
    path = os.path.join(tmp, name + ".log")
    log = open(path, "w+")

    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit)
    procs.append(p)
    deadline = time.time() + 20
    while time.time() < deadline:
        m = re.search(pattern, open(path).read())
        if m:
            return p, int(m.group(1)), path
        if p.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit("%s did not start:\n%s" % (name, open(path).read()))


def stop_all(*dirs):
    """Kills what the test started and is still running (by pid), removes its temp dirs."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for d in dirs:
        subprocess.run(["rm", "-rf", d])


def summary():
    """Prints the closing "N passed, N failed" line; returns the names of the failed checks."""
    failed = [n for n, ok in results if not ok]
    print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
    return failed


def fds(pid):
    """Open sockets of `pid`: what a leaked connection holds (the sqlite module's pooled
    database files are not counted)."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:
            pass
    return n


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_fds(pid, want, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline and fds(pid) > want:
        time.sleep(0.1)
    return fds(pid)


def need_program(name, package):
    """The path of program `name`; without it the test fails at once naming the Debian package."""
    import shutil
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if not path:
        print("FAIL %s not found: install the Debian package '%s' (tools/lib.sh XR_TEST_PACKAGES)" % (name, package))
        print("0 passed, 1 failed")
        sys.exit(1)
    return path


def free_port():
    """A loopback port free now (for a program that needs its port on the command line)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def relay_log(path):
    return open(path).read()


def rss_kib(pid):
    return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/%d/status" % pid).read()).group(1))


# ---------------------------------------------------------------- raw xpra peers for fault injection

def split_frames(buf):
    """(frames, rest): each frame ((flags, level, index, size), payload) complete in buf."""
    out, pos = [], 0
    while len(buf) - pos >= wire.HEADER_SIZE:
        h = wire.unpack_header(buf[pos:pos + wire.HEADER_SIZE])
        if len(buf) - pos - wire.HEADER_SIZE < h[3]:
            break
        out.append((h, buf[pos + wire.HEADER_SIZE:pos + wire.HEADER_SIZE + h[3]]))
        pos += wire.HEADER_SIZE + h[3]
    return out, buf[pos:]


def decode(h, payload):
    """The packet of a plain main frame, as a list of text/values; None for chunks, compressed frames."""
    flags, level, index, _ = h
    if index != 0 or level != 0 or flags & wire.FLAG_CIPHER:
        return None
    p = wire.rencode_decode(payload) if flags & wire.FLAG_RENCODE else wire.bencode_decode(payload)
    return [wire.text(x) for x in p]


def disconnects(packets):
    return [p for p in packets if p and p[0] == "disconnect"]


class RawClient:
    """A client socket that logs in as `user` (hmac challenge) and then does only what the test says."""

    def __init__(self, port, rcvbuf=0, source="127.0.0.1"):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((source, 0))
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.packets = []
        self.eof = False
        self.bad = None  # a frame header that is not one

    def send(self, packet):
        self.sock.sendall(wire.encode_packet(packet))

    def read(self, timeout):
        """Reads for up to `timeout` s (less at EOF); decodes what arrived into self.packets."""
        deadline = time.time() + timeout
        while not self.eof and time.time() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.time()))
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                break
            except OSError:
                data = b""
            if not data:
                self.eof = True
                break
            self.buf += data
            try:
                frames, self.buf = split_frames(self.buf)
            except wire.DecodeError as e:
                self.bad = str(e)
                break
            self.packets += [p for p in (decode(h, pl) for h, pl in frames) if p is not None]

    def wait_for(self, pred, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline and not self.eof and not pred():
            self.read(min(0.2, deadline - time.time()))
        return pred()

    def login(self, user, password="pw"):
        self.send(wire.hello_packet({"username": user, "challenge": True}))
        self.wait_for(lambda: any(p[0] in ("challenge", "disconnect") for p in self.packets), 10)
        ch = [p for p in self.packets if p[0] == "challenge"]
        if not ch:
            raise AssertionError("no challenge: %r" % self.packets)
        ch = ch[0]
        salt_alg = ch[4].split("+", 1)[1]
        alg = ch[3].split("+", 1)[1]
        client_salt = os.urandom(32)
        salt = hmac.new(client_salt, ch[1].encode("latin1"), getattr(hashlib, salt_alg)).hexdigest().encode()
        response = hmac.new(password.encode(), salt, getattr(hashlib, alg)).hexdigest()
        self.send(wire.hello_packet({"username": user, "challenge_response": response,
                                     "challenge_client_salt": client_salt}))
        if not self.wait_for(lambda: any(p[0] in ("hello", "disconnect") for p in self.packets), 15) or \
                not any(p[0] == "hello" for p in self.packets):
            raise AssertionError("no hello from the server: %r" % self.packets)

    def close(self):
        self.sock.close()


SERVER_CAPS = {"version": "3.1.3", "rencode": True, "bencode": True, "compressors": ["none"],
               "ping-echo-sourceid": True}


class FakeTarget:
    """A session server that answers the relay's hello with a canned one, then runs
    `script(self)` on its own thread while this one records what it receives (every frame
    header as it arrives, decoded packets, and when the relay closed the leg). With
    read=False it stops reading after the hello (a server that reads nothing)."""

    def __init__(self, script=None, ping_every=0, read=True, after_hello=b""):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.script, self.ping_every, self.reading = script, ping_every, read
        self.after_hello = after_hello  # bytes sent in the same write as the hello
        self.headers, self.packets = [], []
        self.partial = self.bad = None
        self.attached = threading.Event()
        self.eof = threading.Event()
        self.stop = threading.Event()
        self.conn = None
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        self.lsock.settimeout(60)
        try:
            self.conn, _ = self.lsock.accept()
        except OSError:
            return
        buf = b""
        while not any(p and p[0] == "hello" for p in self.packets):
            data = self.conn.recv(1 << 16)
            if not data:
                self.eof.set()
                return
            buf = self._take(buf + data)
        self.conn.sendall(wire.encode_packet(["hello", SERVER_CAPS]) + self.after_hello)
        self.attached.set()
        if self.script:
            threading.Thread(target=self.script, args=(self,), daemon=True).start()
        if self.ping_every:
            threading.Thread(target=self._pinger, daemon=True).start()
        if not self.reading:
            return
        while True:
            try:
                data = self.conn.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                self.eof.set()
                return
            buf = self._take(buf + data)

    def _take(self, buf):
        """Records the complete frames at the start of buf and returns the rest; a header whose
        payload has not all arrived yet is kept in self.partial."""
        pos = 0
        self.partial = None
        while len(buf) - pos >= wire.HEADER_SIZE:
            try:
                h = wire.unpack_header(buf[pos:pos + wire.HEADER_SIZE])
            except wire.DecodeError as e:
                self.bad = str(e)
                return b""
            if len(buf) - pos - wire.HEADER_SIZE < h[3]:
                self.partial = h
                break
            self.headers.append(h)
            p = decode(h, buf[pos + wire.HEADER_SIZE:pos + wire.HEADER_SIZE + h[3]])
            if p is not None:
                self.packets.append(p)
            pos += wire.HEADER_SIZE + h[3]
        return buf[pos:]

    def _pinger(self):
        while not self.eof.is_set() and not self.stop.is_set():
            try:
                self.send(["ping", int(time.monotonic() * 1000), int(time.time() * 1000), "fake"])
            except OSError:
                return
            time.sleep(self.ping_every)

    def send(self, packet):
        self.conn.sendall(wire.encode_packet(packet))

    def drain(self, timeout=10):
        """For a target that stopped reading: reads what is left until EOF."""
        self.conn.settimeout(timeout)
        buf = b""
        try:
            while True:
                data = self.conn.recv(1 << 16)
                if not data:
                    self.eof.set()
                    break
                buf = self._take(buf + data)
        except OSError:
            pass

    def close(self):
        self.stop.set()
        for s in (self.conn, self.lsock):
            try:
                s and s.close()
            except OSError:
                pass


def wait_until(pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and not pred():
        time.sleep(0.05)
    return pred()


def relays(c, t, n=[0]):
    """A live connection (RawClient `c` through the relay to FakeTarget `t`) relays both ways:
    a packet from the client reaches the target, one from the target reaches the client."""
    n[0] += 1
    mark = "live-%d" % n[0]
    c.send(["ping", n[0], 0, mark])
    up = wait_until(lambda: any(p[0] == "ping" and len(p) > 3 and p[3] == mark for p in t.packets), 5)
    t.send(["ping", n[0], 0, mark])
    down = c.wait_for(lambda: any(p[0] == "ping" and len(p) > 3 and p[3] == mark for p in c.packets), 5)
    return up and down and not c.eof
