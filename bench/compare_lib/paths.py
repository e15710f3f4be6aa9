"""The paths bench/compare measures: how each one is started, addressed and stopped.

Each path owns its own synthetic server, so memory and connection counts never mix between paths.
Paths where the client authenticates end to end against the synthetic server (direct, HAProxy,
nginx) start it with a password, so every path does the same challenge round trip; the relay and
xpra proxy authenticate the client themselves (sqlite, hmac) and reach an open synthetic server,
as they would reach a session on a private network.
"""

import os
import pwd
import grp
import subprocess

from compare_lib import procs

USER = "bench"
PASSWORD = "bench-password-1"
AES_KEY = "bench-compare-aes-key-0123456789"   # the keyfile's contents for the AES workloads
USER6 = "bench6"              # the bridge rows' user: its entry is the xpra 6.x synthetic server

XPRA_USER = "xpra-bench"     # unprivileged account that runs `xpra proxy` (it refuses root)
XPRA_GROUP = "nogroup"


class Path:
    """One way from the bench client to a synthetic server."""

    key = ""            # command line name (--only/--skip)
    label = ""          # table column
    server_password = True
    only_workloads = ()  # if set, the workloads this path runs (others leave its cells empty)
    # Why this path cannot run the AES workloads (xpra 3.1's AES-CBC client leg); None: it can.
    no_aes = "an L4 proxy cannot speak xpra's AES (and the synthetic server behind it has none)"
    program = None      # (path, name, Debian packages) of the program this path needs, if any
    # Why this path cannot run the TLS rows (bench/compare --tls), and the WebSocket rows; None: it can.
    no_tls = None
    no_ws = "relay only: an L4 proxy would pass WebSocket frames to a server that must speak them, and the " \
            "synthetic server does not"
    # Why this path cannot run the bridge rows (a 3.1 client of an xpra 6.x server); None: it can.
    no_bridge = "only a proxy that translates packets lets a 3.1 client reach a 6.x server"

    def __init__(self, ctx):
        self.ctx = ctx
        self.procs = []
        self.port = None            # where the bench client connects
        self.server_port = None
        self.server = None
        self.proxy = None           # the proxy's process, if any
        self.version = ""

    def available(self):
        """Returns None if this path can run here, else the reason it cannot."""
        if self.program and not os.path.exists(self.program[0]):
            return "%s is not installed (apt-get install %s)" % self.program[1:]
        return None

    def start(self):
        """Starts the synthetic server and the proxy; returns when both listen."""
        self.server_port = procs.free_port()
        argv = [self.ctx.bins["synthetic_server"], "--bind=127.0.0.1:%d" % self.server_port,
                "--stream-size=%d" % self.ctx.stream_size]
        if self.ctx.server_threads:
            argv.append("--threads=%d" % self.ctx.server_threads)
        if self.server_password:
            argv.append("--password=%s" % PASSWORD)
        self.server = self._spawn("synthetic-server", argv)
        procs.wait_port(self.server_port, proc=self.server)
        self.start_proxy()

    def start_proxy(self):
        """Starts what sits between client and server (nothing for direct); sets self.port."""
        self.port = self.server_port

    def url(self):
        """The bench client's target."""
        return "tcp://%s:%s@127.0.0.1:%d/" % (USER, PASSWORD, self.port)

    def client_target(self, workload):
        """(url, extra bench client arguments) for one run of workload on this path."""
        if getattr(workload, "transport", "tcp") == "ssl" and getattr(self, "tls_port", None):
            pid = ["--pid=%d" % self.proxy.pid] if workload.mode in ("handshake", "tls-handshake") else []
            return self.tls_client_target(workload, self.tls_port, pid)
        return self.url(), []

    def measured_pid(self, workload=None):
        """The process whose tree's memory and CPU count as this path's for workload (None:
        nothing to measure)."""
        return self.proxy.pid if self.proxy else None

    def na_for(self, workload):
        """Why this path cannot run workload (a table cell's n/a), or None."""
        transport = getattr(workload, "transport", "tcp")
        if getattr(workload, "aes", False):
            return self.no_aes
        if getattr(workload, "bridge", False):
            return self.no_bridge
        if transport == "ssl":
            return self.no_tls
        if transport == "ws":
            return self.no_ws
        return None

    def prepare(self, workload):
        """Starts what workload needs beyond start() (a second relay); a no-op by default."""

    def client_port(self, workload):
        """The port the bench client connects to for workload (the idle workload counts its
        connections there)."""
        if getattr(workload, "transport", "tcp") == "ssl" and getattr(self, "tls_port", None):
            return self.tls_port
        return self.port

    def tls_url(self, port):
        """ssl:// on port, with the bench user and password."""
        return "ssl://%s:%s@127.0.0.1:%d/" % (USER, PASSWORD, port)

    def tls_client_target(self, workload, port, extra=()):
        """(url, extra arguments) of a TLS workload: tls-handshake runs need no credentials."""
        url = "ssl://127.0.0.1:%d/" % port if workload.mode == "tls-handshake" else self.tls_url(port)
        argv = list(TLS_CLIENT_ARGS) + list(extra)
        if getattr(workload, "resume", False):
            argv.append("--tls-resume")
        return url, argv

    def stop(self):
        """Stops everything this path started, proxy first."""
        for p in reversed(self.procs):
            p.stop()
        self.procs = []

    def _spawn(self, name, argv, **kwargs):
        p = procs.Proc(name, argv, os.path.join(self.ctx.tmpdir, "%s-%s.log" % (self.key, name)), **kwargs)
        self.procs.append(p)
        return p


# Options of the relay that serves the TLS and WebSocket rows beyond the plain relay's: every
# bench connection comes from 127.0.0.1, so the per-source TLS handshake rate is lifted as the
# per-address caps are (HAProxy and nginx have none by default).
TLS_RELAY_EXTRA = ["--ssl-max-handshake-rate-per-address=0"]

# Every TLS row: TLS 1.3 only, one cipher suite, the same ECDSA P-256 certificate on every path.
TLS_CIPHERSUITE = "TLS_AES_128_GCM_SHA256"
TLS_CLIENT_ARGS = ("--tls-version=1.3", "--tls-ciphersuites=" + TLS_CIPHERSUITE)


def make_certificate(tmpdir):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 (openssl req); returns (cert, key,
    pem with both for HAProxy)."""
    cert, key, pem = (os.path.join(tmpdir, n) for n in ("tls-cert.pem", "tls-key.pem", "tls-both.pem"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "7", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    with open(pem, "w") as out:
        for f in (cert, key):
            with open(f) as src:
                out.write(src.read())
    return cert, key, pem


class Direct(Path):
    key = "direct"
    label = "direct"
    no_aes = "the synthetic server has no AES"
    no_tls = "the synthetic server has no TLS"
    no_ws = "the synthetic server has no WebSocket"


class Relay(Path):
    key = "relay"
    label = "xpra-relay"
    server_password = False
    extra_args = []
    no_aes = None
    no_ws = None
    no_bridge = None

    def _relay_argv(self, port, extra=()):
        # Every bench connection comes from 127.0.0.1: lift the per-address cap and let the
        # handshake workload's loops all log in at once, as the L4 proxies do. The idle workload
        # holds its connections silent for 30 s + N/100 s after they attach (80 s at 5,000, plus
        # the ramp), which can pass the relay's default 90 s idle timeout: give the relay the
        # same 1 h the HAProxy and nginx paths get.
        argv = [self.ctx.bins["xpra_relay"], "--bind-tcp=127.0.0.1:%d" % port,
                "--tcp-auth=sqlite,filename=%s" % self.db, "--max-connections-per-address=0",
                "--max-logins-per-address=0", "--max-logins=5000", "--max-kdf-iterations=100000000",
                "--proxy-sockets=false", "--login-timeout=60", "--server-timeout=30",
                "--idle-timeout=3600"] + self.extra_args + list(extra)
        if self.ctx.relay_threads:
            argv.append("--threads=%d" % self.ctx.relay_threads)
        return argv

    def start_proxy(self):
        self.db = os.path.join(self.ctx.tmpdir, "relay-users.sdb")
        _make_db(self.ctx.bins["xpra_relay_auth"], self.db, self.server_port)
        # The bridge rows: a second synthetic server speaking xpra 6.x, reached by USER6 through
        # the same relay (so its CPU is measured with the same --pid).
        self.server6_port = procs.free_port()
        argv6 = [self.ctx.bins["synthetic_server"], "--bind=127.0.0.1:%d" % self.server6_port, "--xpra6",
                 "--stream-size=%d" % self.ctx.stream_size]
        if self.ctx.server_threads:
            argv6.append("--threads=%d" % self.ctx.server_threads)
        self.server6 = self._spawn("synthetic-server-xpra6", argv6)
        procs.wait_port(self.server6_port, proc=self.server6)
        subprocess.run([self.ctx.bins["xpra_relay_auth"], self.db, "add", USER6, PASSWORD, "", "",
                        "tcp://127.0.0.1:%d/" % self.server6_port], check=True, capture_output=True)
        self.port = procs.free_port()
        self.aes_proxy = None
        self.tls_proxy = None
        self.proxy = self._spawn("xpra-relay", self._relay_argv(self.port))
        procs.wait_port(self.port, proc=self.proxy)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        self.version = "xpra-relay " + (commit.stdout.strip() or "?")

    def _start_aes_relay(self):
        """A second relay, same database and synthetic server, with AES on its client legs
        (started on first use; stopped with the path)."""
        self.keyfile = os.path.join(self.ctx.tmpdir, "relay-aes.key")
        with open(self.keyfile, "w") as f:
            f.write(AES_KEY + "\n")
        self.aes_port = procs.free_port()
        self.aes_proxy = self._spawn("xpra-relay-aes", self._relay_argv(
            self.aes_port, ["--tcp-encryption=AES", "--tcp-encryption-keyfile=%s" % self.keyfile]))
        procs.wait_port(self.aes_port, proc=self.aes_proxy)

    def _start_tls_relay(self):
        """A second relay, same database and synthetic server, with a dedicated --bind-ssl port
        and a --bind-ws port (started on first use; stopped with the path). Its per-address TLS
        handshake rate is lifted as the other per-address caps are: every bench connection
        comes from 127.0.0.1."""
        self.tls_port = procs.free_port()
        self.ws_port = procs.free_port()
        argv = [a for a in self._relay_argv(self.tls_port, [
            "--bind-ssl=127.0.0.1:%d" % self.tls_port, "--bind-ws=127.0.0.1:%d" % self.ws_port,
            "--ssl-cert=%s" % self.ctx.tls_cert, "--ssl-key=%s" % self.ctx.tls_key] + TLS_RELAY_EXTRA)
                if not a.startswith("--bind-tcp=")]
        self.tls_proxy = self._spawn("xpra-relay-tls", argv)
        procs.wait_port(self.tls_port, proc=self.tls_proxy)
        procs.wait_port(self.ws_port, proc=self.tls_proxy)

    def prepare(self, workload):
        if getattr(workload, "transport", "tcp") != "tcp" and (self.tls_proxy is None or self.tls_proxy.poll() is not None):
            self._start_tls_relay()

    def measured_pid(self, workload=None):
        if workload is not None and getattr(workload, "transport", "tcp") != "tcp":
            self.prepare(workload)
            return self.tls_proxy.pid
        return super().measured_pid(workload)

    def client_port(self, workload):
        transport = getattr(workload, "transport", "tcp")
        if transport != "tcp":
            self.prepare(workload)
            return self.ws_port if transport == "ws" else self.tls_port
        return self.port

    def client_target(self, workload):
        """Throughput and handshake runs report the relay's CPU over the measured window (--pid:
        MB/s per core, CPU per session); AES runs go
        to the AES relay with the client leg encrypted; TLS and WebSocket runs to the TLS relay."""
        transport = getattr(workload, "transport", "tcp")
        if transport != "tcp":
            self.prepare(workload)
            pid = ["--pid=%d" % self.tls_proxy.pid] if workload.mode != "idle" else []
            if transport == "ws":
                return "ws://%s:%s@127.0.0.1:%d/" % (USER, PASSWORD, self.ws_port), pid
            return self.tls_client_target(workload, self.tls_port, pid)
        if getattr(workload, "aes", False):
            if self.aes_proxy is None or self.aes_proxy.poll() is not None:
                self._start_aes_relay()
            url = "tcp://%s:%s@127.0.0.1:%d/" % (USER, PASSWORD, self.aes_port)
            return url, ["--encryption=AES", "--encryption-keyfile=%s" % self.keyfile,
                         "--pid=%d" % self.aes_proxy.pid]
        if getattr(workload, "client6", False):
            return self.url(), ["--xpra6", "--pid=%d" % self.proxy.pid]
        if getattr(workload, "bridge", False):
            return "tcp://%s:%s@127.0.0.1:%d/" % (USER6, PASSWORD, self.port), ["--pid=%d" % self.proxy.pid]
        if workload.mode in ("throughput", "handshake"):
            return self.url(), ["--pid=%d" % self.proxy.pid]
        return self.url(), []


class RelayCopy(Relay):
    """The relay with its splice path off: every byte copied through user space, to measure
    the two paths side by side."""
    key = "relay-copy"
    label = "xpra-relay (copy)"
    extra_args = ["--splice=0"]
    only_workloads = ("thr1", "thrN")
    no_aes = "AES legs always take the copy path"  # the relay row measures it
    no_tls = "TLS legs always take the copy path"
    no_ws = "WebSocket legs always take the copy path"


class RelayEpoll(Relay):
    """The relay on its epoll backend (--io=epoll: what runs where io_uring is blocked, as under a
    container's default seccomp profile), every workload, beside the io_uring relay row."""
    key = "relay-epoll"
    label = "xpra-relay (epoll)"
    extra_args = ["--io=epoll"]
    no_tls = "not run: the TLS rows measure the io_uring relay (keeps the --tls section short)"
    no_ws = no_tls


class XpraProxy(Path):
    key = "xpra-proxy"
    label = "xpra proxy"
    program = ("/usr/bin/xpra", "xpra", "xpra")
    server_password = False
    no_aes = "not run: it would need a second xpra proxy started with --tcp-encryption=AES"
    no_tls = "not run: the TLS rows compare TLS terminators (xpra proxy forks per connection)"
    no_ws = no_tls

    def start_proxy(self):
        uid, gid = ensure_xpra_user()
        home = os.path.join(self.ctx.tmpdir, "xpra-home")
        sockdir = os.path.join(home, "sockets")
        os.makedirs(sockdir, exist_ok=True)
        for d in (home, sockdir):
            os.chown(d, uid, gid)
            os.chmod(d, 0o700)
        os.chmod(self.ctx.tmpdir, 0o755)
        db = os.path.join(self.ctx.tmpdir, "xpra-proxy-users.sdb")
        _make_db(self.ctx.bins["xpra_relay_auth"], db, self.server_port)
        os.chmod(db, 0o644)
        self.port = procs.free_port()
        display = ":%d" % (200 + self.port % 5000)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": home,
            "USER": XPRA_USER,
            "LOGNAME": XPRA_USER,
            "XDG_RUNTIME_DIR": home,
            "LANG": "C.UTF-8",
            # xpra parses the empty gid column as group "nobody", which Debian does not have
            "XPRA_AUTHENTICATION_DEFAULT_GID": XPRA_GROUP,
        }
        argv = ["/usr/bin/python3", "/usr/bin/xpra", "proxy", display,
                "--bind-tcp=127.0.0.1:%d" % self.port,
                "--tcp-auth=sqlite,filename=%s" % db,
                "--socket-dirs=%s" % sockdir, "--log-dir=%s" % home,
                "--mdns=no", "--daemon=no", "--dbus-proxy=no", "--dbus-control=no",
                "--systemd-run=no", "--notifications=no", "--pulseaudio=no",
                "--webcam=no", "--printing=no", "--file-transfer=no", "--html=off",
                "--speaker=off", "--microphone=off"]
        self.proxy = self._spawn("xpra-proxy", argv, env=env, user=uid, group=gid, cwd=home)
        procs.wait_port(self.port, timeout=30, proc=self.proxy)
        self.version = "xpra " + _first_line(["/usr/bin/xpra", "--version"]).split()[-1].lstrip("v")


class HAProxy(Path):
    key = "haproxy"
    label = "HAProxy"
    program = ("/usr/sbin/haproxy", "haproxy", "haproxy")

    def start_proxy(self):
        self.port = procs.free_port()
        maxconn = max(1000, (procs.fd_limit() - 200) // 2)
        cfg = os.path.join(self.ctx.tmpdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(maxconn=maxconn, threads=self.ctx.proxy_threads,
                                       port=self.port, server_port=self.server_port))
            if self.ctx.tls_cert:
                self.tls_port = procs.free_port()
                f.write(HAPROXY_TLS_CFG.format(port=self.tls_port, pem=self.ctx.tls_pem))
        self.proxy = self._spawn("haproxy", ["/usr/sbin/haproxy", "-db", "-f", cfg])
        procs.wait_port(self.port, proc=self.proxy)
        if self.ctx.tls_cert:
            procs.wait_port(self.tls_port, proc=self.proxy)
        self.version = "HAProxy " + _first_line(["/usr/sbin/haproxy", "-v"]).split()[2].split("-")[0]


HAPROXY_CFG = """\
global
    maxconn {maxconn}
    nbthread {threads}
defaults
    mode tcp
    maxconn {maxconn}
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend bench
    bind 127.0.0.1:{port}
    default_backend synthetic
backend synthetic
    server s1 127.0.0.1:{server_port}
"""

# bench/compare --tls: TLS terminated by HAProxy (its defaults: tickets on, no session cache
# tuning), then the same backend in mode tcp.
HAPROXY_TLS_CFG = """\
frontend bench_tls
    bind 127.0.0.1:{port} ssl crt {pem} ssl-min-ver TLSv1.2
    default_backend synthetic
"""


class Nginx(Path):
    key = "nginx"
    label = "nginx stream"
    program = ("/usr/sbin/nginx", "nginx", "nginx-core libnginx-mod-stream")

    MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

    def available(self):
        why = super().available()
        if why:
            return why
        if not os.path.exists(self.MODULE):
            return "nginx stream module missing (apt-get install libnginx-mod-stream)"
        return None

    def start_proxy(self):
        self.port = procs.free_port()
        prefix = os.path.join(self.ctx.tmpdir, "nginx")
        os.makedirs(prefix, exist_ok=True)
        cfg = os.path.join(prefix, "nginx.conf")
        limit = procs.fd_limit()
        tls = ""
        if self.ctx.tls_cert:
            self.tls_port = procs.free_port()
            tls = NGINX_TLS_SERVER.format(port=self.tls_port, cert=self.ctx.tls_cert, key=self.ctx.tls_key,
                                          server_port=self.server_port)
        with open(cfg, "w") as f:
            f.write(NGINX_CFG.format(module=self.MODULE, prefix=prefix, workers=self.ctx.proxy_threads,
                                     nofile=limit, connections=limit - 200,
                                     port=self.port, server_port=self.server_port, tls=tls))
        self.proxy = self._spawn("nginx", ["/usr/sbin/nginx", "-p", prefix, "-c", cfg,
                                           "-e", os.path.join(prefix, "error.log")])
        procs.wait_port(self.port, proc=self.proxy)
        if self.ctx.tls_cert:
            procs.wait_port(self.tls_port, proc=self.proxy)
        out = subprocess.run(["/usr/sbin/nginx", "-v"], capture_output=True, text=True)
        self.version = (out.stderr or out.stdout).strip().split("/")[-1]
        self.version = "nginx " + self.version.split()[0]


NGINX_CFG = """\
load_module {module};
daemon off;
master_process on;
user root;
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections {connections};
}}
stream {{
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        proxy_pass 127.0.0.1:{server_port};
        proxy_timeout 1h;
    }}
{tls}}}
"""

# bench/compare --tls: TLS terminated by nginx's stream ssl module (tickets on by default), then
# proxied to the same synthetic server.
NGINX_TLS_SERVER = """\
    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        proxy_pass 127.0.0.1:{server_port};
        proxy_timeout 1h;
    }}
"""

ALL = [Direct, Relay, RelayEpoll, RelayCopy, XpraProxy, HAProxy, Nginx]


def ensure_xpra_user():
    """Creates the unprivileged system account that runs `xpra proxy` if missing; returns (uid, gid)."""
    gid = grp.getgrnam(XPRA_GROUP).gr_gid
    try:
        return pwd.getpwnam(XPRA_USER).pw_uid, gid
    except KeyError:
        pass
    if os.getuid() != 0:
        raise RuntimeError("xpra proxy refuses to run as root and needs an unprivileged user "
                           "'%s': create it (useradd --system -g %s %s) or run as root"
                           % (XPRA_USER, XPRA_GROUP, XPRA_USER))
    subprocess.run(["useradd", "--system", "-g", XPRA_GROUP, "-d", "/nonexistent", "-M",
                    "-s", "/usr/sbin/nologin", XPRA_USER], check=True)
    return pwd.getpwnam(XPRA_USER).pw_uid, gid


def _make_db(tool, db, server_port):
    if os.path.exists(db):
        os.unlink(db)
    subprocess.run([tool, db, "create"], check=True, capture_output=True)
    subprocess.run([tool, db, "add", USER, PASSWORD, "", "", "tcp://127.0.0.1:%d/" % server_port],
                   check=True, capture_output=True)


def _first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        text = (out.stdout or out.stderr).strip()
        return text.splitlines()[0] if text else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""
