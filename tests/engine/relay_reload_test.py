"""SIGHUP reloads the configuration of a running relay without dropping a connection: the
real relay started with --config=FILE holds a relayed login (a raw client through the relay to
a fake target) while the test rewrites the file and sends SIGHUP. Each reload's effect is
checked (a bind added and then removed, a per-address limit, the debug log level, the default
tcp auth, an option that needs a restart), then broken configs (a parse error, a bind that
cannot be opened, an unknown auth module, a bad certificate) are refused with the reason in
the log while the old configuration keeps serving; last a certificate added and renewed in
place (a new TLS handshake gets the new one). After every step the live connection still
relays both ways.

usage: relay_reload_test.py RELAY AUTH_TOOL [--io=uring|--io=epoll]
"""
import glob
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_lib import *  # noqa: E402,F401,F403  (check, start, RawClient, FakeTarget, relays, wire, ...)
from relay_lib import procs, results, tmp  # noqa: E402

relay_bin, auth_bin = [os.path.abspath(p) for p in sys.argv[1:3]]
io_args = sys.argv[3:]
set_relay_args(relay_bin, io_args)
sockdir = tempfile.mkdtemp(prefix="xr-reload-", dir="/tmp")
DISPLAY = ":%d" % (5700 + os.getpid() % 1000)


def make_db(name, users):
    db = os.path.join(tmp, name)
    subprocess.run([auth_bin, db, "create"], check=True, capture_output=True)
    for user, port in users:
        subprocess.run([auth_bin, db, "add", user, "pw", "", "", "tcp://127.0.0.1:%d/" % port], check=True,
                       capture_output=True)
    return db


def can_login(port, user, source="127.0.0.1"):
    try:
        c = RawClient(port, source=source)
        c.login(user)
        c.close()
        return True
    except (AssertionError, OSError) as e:
        return str(e) or type(e).__name__


def fresh_user(db, n=[0]):
    """A user of `db` with a target of its own (a FakeTarget serves one connection)."""
    n[0] += 1
    t = FakeTarget()
    user = "fresh%d" % n[0]
    subprocess.run([auth_bin, db, "add", user, "pw", "", "", "tcp://127.0.0.1:%d/" % t.port], check=True,
                   capture_output=True)
    return user


def relay_info():
    """The relay's own info (its :DISPLAY control socket, as `xpra info` asks)."""
    path = glob.glob(os.path.join(sockdir, "*-" + DISPLAY[1:]))[0]
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    s.sendall(wire.encode_packet(["hello", {"info_request": True}]))
    buf = b""
    while True:
        data = s.recv(1 << 16)
        if not data:
            return {}
        buf += data
        packets, _ = wire.decode_frames(buf)
        for p in packets:
            if wire.text(p[0]) == "hello":
                s.close()
                return p[1]


def info_proxy():
    info = relay_info()
    return info.get(b"proxy") or info.get("proxy") or {}


def info_listeners():
    proxy = info_proxy()
    return [wire.text(x) for x in proxy.get(b"listeners", proxy.get("listeners", []))]


def relayed_connections():
    """How many connections the relay holds past the handshake or in it (its info's counts)."""
    counts = info_proxy().get(b"connections") or info_proxy().get("connections") or {}
    return sum(counts.get(k, counts.get(k.decode(), 0)) for k in (b"active", b"handshaking"))


def write_conf(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def reload_and_wait(relay, log_path):
    """SIGHUP, then waits for the reload's last line: applied or refused. Returns the new log text."""
    before = len(relay_log(log_path))
    relay.send_signal(signal.SIGHUP)
    wait_until(lambda: re.search(r"SIGHUP: (configuration reloaded|reload refused)", relay_log(log_path)[before:]), 10)
    time.sleep(0.3)  # the reactors apply their part on their own threads
    return relay_log(log_path)[before:]


try:
    targets = [FakeTarget() for _ in range(8)]
    db1 = make_db("users1.db", [("live", targets[0].port)] + [("u%d" % i, targets[i].port) for i in range(1, 8)])
    # The second database knows other users (its u1..u7 targets are the same servers).
    db2 = make_db("users2.db", [("only2-%d" % i, targets[i].port) for i in range(1, 8)])
    p1, p2, held_port = free_port(), free_port(), None
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    held_port = held.getsockname()[1]
    log_path = os.path.join(tmp, "relay.log")
    conf = os.path.join(tmp, "relay.conf")
    base = ["tcp-auth = sqlite,filename=" + db1, "socket-dir = " + sockdir, "threads = 2",
            "max-logins-per-address = 0", "log-file = " + log_path, "display = " + DISPLAY]
    write_conf(conf, base + ["bind-tcp = 127.0.0.1:%d" % p1])
    relay = subprocess.Popen([relay_bin] + io_args + ["--config=" + conf], stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT)
    procs.append(relay)
    check("relay starts from the config file", wait_until(lambda: os.path.exists(log_path) and
                                                          "on tcp:127.0.0.1:%d" % p1 in relay_log(log_path), 20),
          relay_log(log_path) if os.path.exists(log_path) else "no log")

    live = RawClient(p1)
    live.login("live")
    targets[0].attached.wait(5)
    check("a live relayed connection", relays(live, targets[0]))

    # 1. A bind added, a limit changed, the debug log level raised.
    write_conf(conf, base + ["bind-tcp = 127.0.0.1:%d" % p1, "bind-tcp = 127.0.0.1:%d" % p2,
                             "max-connections-per-address = 2", "debug = all"])
    out = reload_and_wait(relay, log_path)
    check("reload 1 applied", "SIGHUP: configuration reloaded from %s: 3 changes applied" % conf in out, out)
    check("reload 1 logs each change on its own line",
          re.search(r"\[reload\] bind-tcp added 127\.0\.0\.1:%d\n" % p2, out) and
          re.search(r"\[reload\] max-connections-per-address: 256 -> 2\n", out) and
          re.search(r"\[reload\] debug: \(none\) -> all\n", out), out)
    check("the added bind accepts logins", can_login(p2, "u1") is True, can_login(p2, "u1"))
    check("the relay's info lists the added bind", "tcp:127.0.0.1:%d" % p2 in info_listeners(), info_listeners())
    check("the old bind still accepts logins", can_login(p1, "u2") is True)
    check("debug lines are logged after the reload", "DEBUG" in relay_log(log_path)[len(relay_log(log_path)) - 20000:])
    # The live connection holds one of 127.0.0.1's two: a second fits, a third is refused. The
    # relay must have seen the logins above close first (it learns of a close asynchronously).
    check("the relay holds only the live connection", wait_until(lambda: relayed_connections() == 1, 5),
          info_proxy())
    second = RawClient(p2)
    second.login("u3")
    third = RawClient(p2)
    third.wait_for(lambda: any(p[0] == "disconnect" for p in third.packets), 5)
    check("the new per-address limit refuses a third connection from 127.0.0.1",
          any(p[0] == "disconnect" and "too many connections from your address" in str(p) for p in third.packets),
          third.packets)
    check("...while another address still gets in", can_login(p2, "u4", source="127.0.0.2") is True)
    second.close()
    third.close()
    check("the live connection relays after reload 1", relays(live, targets[0]))

    # 2. The first bind removed (the live connection came in on it), the default auth changed,
    # and an option that needs a restart.
    write_conf(conf, [b.replace(db1, db2).replace("threads = 2", "threads = 1") for b in base] +
               ["bind-tcp = 127.0.0.1:%d" % p2])
    out = reload_and_wait(relay, log_path)
    check("reload 2 applied", "SIGHUP: configuration reloaded" in out, out)
    check("reload 2 logs the removed bind and the auth change",
          "bind-tcp removed 127.0.0.1:%d" % p1 in out and "tcp-auth changed" in out, out)
    check("reload 2 says threads needs a restart", "threads: 2 -> 1: needs a restart, not applied" in out, out)
    check("the auth spec is never shown", db2 not in out, out)
    refused = None
    try:
        socket.create_connection(("127.0.0.1", p1), timeout=3).close()
    except ConnectionRefusedError:
        refused = True
    check("the removed bind refuses connections", refused, "connected")
    check("the relay's info no longer lists it", "tcp:127.0.0.1:%d" % p1 not in info_listeners() and
          "tcp:127.0.0.1:%d" % p2 in info_listeners(), info_listeners())
    check("new logins use the new auth (a user only it knows)", can_login(p2, "only2-5") is True,
          can_login(p2, "only2-5"))
    check("...and no longer the old one", can_login(p2, "u5") is not True)
    check("the live connection (accepted on the removed bind, old auth) relays after reload 2",
          relays(live, targets[0]))
    good = open(conf).read()

    # 3. Broken configurations: refused whole, with the reason; the old one keeps running.
    cert = os.path.join(tmp, "bad-cert.pem")
    with open(cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    p3 = free_port()
    broken = [
        ("a parse error", good + "max-connections = lots\n", r"relay\.conf:\d+: "),
        ("an unknown option", good + "no-such-option = 1\n", "unknown option 'no-such-option'"),
        ("a bind that cannot be opened", good + "bind-tcp = 127.0.0.1:%d\n" % held_port, "address already in use"),
        ("an unknown auth module", good.replace("tcp-auth = sqlite,filename=" + db2, "tcp-auth = no-such-module"),
         "no-such-module"),
        ("a bad certificate", good + "ssl-cert = %s\n" % cert, cert),
        ("a new bind with a bad certificate", good + "bind-tcp = 127.0.0.1:%d\nssl-cert = %s\n" % (p3, cert), cert),
    ]
    for name, text, reason in broken:
        with open(conf, "w") as f:
            f.write(text)
        out = reload_and_wait(relay, log_path)
        check("%s: refused with the reason" % name,
              "reload refused, the running configuration stays" in out and re.search(reason, out), out)
        check("%s: nothing applied (no change line)" % name, "SIGHUP: configuration reloaded" not in out and
              "bind-tcp added" not in out, out)
        check("%s: the running config still serves" % name, can_login(p2, fresh_user(db2)) is True)
        check("%s: the live connection relays" % name, relays(live, targets[0]))
    refused = None
    try:
        socket.create_connection(("127.0.0.1", p3), timeout=3).close()
    except ConnectionRefusedError:
        refused = True
    check("the refused reload opened nothing (its new bind is closed)", refused)

    # 4. Back to the good file: applies (nothing changed since reload 2).
    with open(conf, "w") as f:
        f.write(good)
    out = reload_and_wait(relay, log_path)
    check("a good file after refused ones reloads with no change", "SIGHUP: configuration reloaded from %s: 0 changes" % conf in out, out)

    # 5. Certificates: added, then renewed in place (same files, new key and subject); each
    # reload re-reads them: a new TLS handshake gets the new one, the live connection stays.
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")

    def make_cert(cn):
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                            "-days", "2", "-subj", "/CN=" + cn], capture_output=True)
        if r.returncode != 0:
            sys.exit("openssl req failed (Debian package openssl): %s" % r.stderr.decode(errors="replace"))
        return ssl.PEM_cert_to_DER_cert(open(cert).read())

    def served_cert():
        try:
            return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", p2), timeout=5))
        except (OSError, ssl.SSLError) as e:
            return repr(e)

    first = make_cert("first.test")
    with open(conf, "w") as f:
        f.write(good + "ssl-cert = %s\nssl-key = %s\n" % (cert, key))
    out = reload_and_wait(relay, log_path)
    check("a certificate added: applied and logged", "SIGHUP: configuration reloaded from %s: 1 change applied, TLS "
          "certificates reloaded" % conf in out and "[reload] ssl-cert/ssl-key changed" in out, out)
    check("...a TLS handshake gets it", served_cert() == first)
    renewed = make_cert("renewed.test")
    out = reload_and_wait(relay, log_path)
    check("a certificate renewed in place: re-read on SIGHUP",
          "SIGHUP: configuration reloaded from %s: 0 changes applied, TLS certificates reloaded" % conf in out, out)
    check("...a new TLS handshake gets the renewed one", served_cert() == renewed and renewed != first)
    check("...plain xpra still logs in on the bind", can_login(p2, fresh_user(db2)) is True)
    check("the live connection relays after the certificate reloads", relays(live, targets[0]))

    live.close()
    relay.send_signal(signal.SIGTERM)
    check("exit 0 after the reloads", relay.wait(timeout=20) == 0)
finally:
    stop_all(sockdir)

failed = summary()
sys.exit(1 if failed or not results else 0)
