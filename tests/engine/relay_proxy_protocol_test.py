"""PROXY protocol on accept (issue 19), with a real HAProxy in front of the relay.

HAProxy (`mode tcp`, `server ... send-proxy-v2`) listens on 127.0.0.1 and connects to the
relay from 127.0.0.1; the clients bind 127.0.0.2 and 127.0.0.3 as their source, so the address
the relay must report (the client's) differs from the socket's (HAProxy's). Checked: the
relay's log and its `xpra info` (the display's control socket, the request `xpra info` sends)
show the client's address; failed logins from 127.0.0.2 put 127.0.0.2 in back-off while
127.0.0.3, through the same HAProxy, logs in. A v1 bind is driven raw: a v1 header names a
documentation address, TLS and WebSocket work after the header (before the sniff), and a
connection from outside --proxy-protocol-from, a malformed header, a missing header and a
header that never comes are each refused with a log line.

usage: relay_proxy_protocol_test.py RELAY AUTH_TOOL [RELAY_ARGS...]
"""
import glob
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_lib import *  # noqa: E402,F401,F403  (check, start, RawClient, FakeTarget, wire, ...)
from relay_lib import procs, tmp  # noqa: E402

relay_bin, auth_bin = [os.path.abspath(p) for p in sys.argv[1:3]]
set_relay_args(relay_bin, sys.argv[3:])  # e.g. --io=epoll
haproxy_bin = need_program("haproxy", "haproxy")
sockdir = tempfile.mkdtemp(prefix="xr-proxyproto-", dir="/tmp")
DISPLAY = 431


def attempt(port, source, user, password):
    """One login; returns ("hello", client) or ("disconnect", packet-text)."""
    c = RawClient(port, source=source)
    try:
        c.login(user, password)
        return "hello", c
    except AssertionError:
        d = disconnects(c.packets)
        c.close()
        return "disconnect", " ".join(str(x) for x in (d[0] if d else c.packets))


def info_request():
    """What `xpra info :N` gets from the relay's display socket: the hello's text."""
    path = glob.glob(os.path.join(sockdir, "*-%d" % DISPLAY))
    if not path:
        return ""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path[0])
    s.sendall(wire.encode_packet(wire.hello_packet({"info_request": True})))
    buf = b""
    while True:
        try:
            data = s.recv(1 << 16)
        except OSError:
            break
        if not data:
            break
        buf += data
        frames, _ = split_frames(buf)
        if frames:
            break
    s.close()
    frames, _ = split_frames(buf)
    return repr([wire.rencode_decode(pl) if h[0] & wire.FLAG_RENCODE else wire.bencode_decode(pl) for h, pl in frames])


def closed_soon(sock, timeout):
    """True when the peer closes `sock` within `timeout` s without sending anything but a close."""
    sock.settimeout(timeout)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


try:
    targets = {u: FakeTarget() for u in ("ok1", "ok2", "ok3", "tls")}
    db = os.path.join(tmp, "users.db")
    subprocess.run([auth_bin, db, "create"], check=True, capture_output=True)
    for user, t in list(targets.items()) + [("victim", targets["ok1"])]:
        subprocess.run([auth_bin, db, "add", user, "pw", "", "", "tcp://127.0.0.1:%d/" % t.port], check=True,
                       capture_output=True)
    key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
    relay, _, rlog = start("relay", [relay_bin, ":%d" % DISPLAY, "--bind-tcp=127.0.0.1:0,proxy-protocol=v2",
                                     "--bind-tcp=127.0.0.1:0,proxy-protocol=v1",
                                     "--bind-ws=127.0.0.1:0,proxy-protocol=v1",
                                     "--proxy-protocol-from=127.0.0.1/32", "--tcp-auth=sqlite,filename=" + db,
                                     "--ssl-cert=" + cert, "--ssl-key=" + key, "--socket-dir=" + sockdir,
                                     "--threads=2", "--login-failures=1"],
                           r"xpra-relay \S+ on tcp:127\.0\.0\.1:(\d+)")
    line = re.search(r"xpra-relay \S+ on (.*?) \(", relay_log(rlog)).group(1)
    v2_port, v1_port, ws_port = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", line)]

    # A header that never comes: opened first, checked at the end (the bound is 5 s).
    idle = socket.create_connection(("127.0.0.1", v1_port), timeout=10)
    idle_start = time.time()

    hport = free_port()
    hcfg = os.path.join(tmp, "haproxy.cfg")
    with open(hcfg, "w") as f:
        f.write("global\n    maxconn 200\n"
                "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n"
                "frontend fe\n    bind 127.0.0.1:%d\n    default_backend be\n"
                "backend be\n    server relay 127.0.0.1:%d send-proxy-v2\n" % (hport, v2_port))
    hlog = open(os.path.join(tmp, "haproxy.log"), "w")
    haproxy = subprocess.Popen([haproxy_bin, "-f", hcfg, "-db"], stdout=hlog, stderr=subprocess.STDOUT)
    procs.append(haproxy)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", hport), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    # (That probe reached the relay too: a connection without a header, refused below.)

    # 1. A client at 127.0.0.2 through HAProxy: the relay's log and info name 127.0.0.2.
    kind, c1 = attempt(hport, "127.0.0.2", "ok1", "pw")
    check("v2 via HAProxy: the client logs in", kind == "hello", c1)
    text = relay_log(rlog)
    check("v2 via HAProxy: the log names the client's address and HAProxy's",
          re.search(r"peer=127\.0\.0\.2:\d+ via PROXY protocol v2 from 127\.0\.0\.1:\d+", text), text[-1500:])
    check("v2 via HAProxy: the relaying line names the client's address",
          re.search(r"peer=127\.0\.0\.2:\d+ user=ok1 relaying", text), text[-1500:])
    info = info_request()
    check("v2 via HAProxy: xpra info's instance peer is the client's address", "127.0.0.2:" in info, info[:1500])
    check("v2 via HAProxy: xpra info does not show HAProxy's address as the peer",
          not re.search(r"'peer': '127\.0\.0\.1:", info.replace('b"', "'").replace("b'", "'")), info[:1500])

    # 2. Failed logins from 127.0.0.2 put 127.0.0.2 in back-off; 127.0.0.3 is not.
    outcomes = []
    for _ in range(5):
        kind, what = attempt(hport, "127.0.0.2", "victim", "wrong")
        outcomes.append(what)
        if "too many failed logins" in str(what):
            break
    check("back-off: failed logins from 127.0.0.2 end in back-off", "too many failed logins" in outcomes[-1], outcomes)
    kind, c2 = attempt(hport, "127.0.0.3", "ok2", "pw")
    check("back-off: 127.0.0.3 through the same HAProxy logs in", kind == "hello", c2)
    text = relay_log(rlog)
    check("back-off: the log names 127.0.0.2 for the back-off",
          re.search(r"peer=127\.0\.0\.2:\d+ user=victim .*too many failed logins", text), text[-2000:])

    # 3. v1, raw: the header's source address stands for the client.
    c3 = RawClient(v1_port)
    c3.sock.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 %d\r\n" % v1_port)
    try:
        c3.login("ok3")
        ok = True
    except AssertionError as e:
        ok = e
    check("v1 raw: logs in after the header", ok is True, ok)
    check("v1 raw: the log names 192.0.2.7:5555",
          "peer=192.0.2.7:5555 via PROXY protocol v1" in relay_log(rlog), relay_log(rlog)[-1500:])

    # 4. TLS after the header (the sniff runs after it).
    raw = socket.create_connection(("127.0.0.1", v1_port), timeout=10)
    raw.sendall(b"PROXY TCP4 198.51.100.9 127.0.0.1 6000 %d\r\n" % v1_port)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c4 = RawClient.__new__(RawClient)
    c4.sock, c4.buf, c4.packets, c4.eof, c4.bad = ctx.wrap_socket(raw), b"", [], False, None
    try:
        c4.login("tls")
        ok = True
    except (AssertionError, OSError) as e:
        ok = e
    check("v1 + TLS: logs in over TLS after the header", ok is True, ok)
    check("v1 + TLS: the log names 198.51.100.9 with the TLS transport",
          re.search(r"peer=198\.51\.100\.9:6000 transport ssl", relay_log(rlog)), relay_log(rlog)[-1500:])

    # 5. WebSocket after the header.
    w = socket.create_connection(("127.0.0.1", ws_port), timeout=10)
    w.sendall(b"PROXY TCP4 203.0.113.5 127.0.0.1 7000 %d\r\n" % ws_port +
              b"GET / HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Protocol: binary\r\n\r\n")
    answer = w.recv(4096)
    check("v1 + WebSocket: 101 after the header", answer.startswith(b"HTTP/1.1 101"), answer[:200])
    check("v1 + WebSocket: the log names 203.0.113.5",
          "peer=203.0.113.5:7000 via PROXY protocol v1" in relay_log(rlog), relay_log(rlog)[-1500:])
    w.close()

    # 6. Refusals, each with its log line.
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", v2_port))
    check("not from --proxy-protocol-from: closed at once", closed_soon(s, 5))
    check("not from --proxy-protocol-from: logged",
          re.search(r"peer=127\.0\.0\.2:\d+ refused on .*not in --proxy-protocol-from", relay_log(rlog)),
          relay_log(rlog)[-1500:])
    s = socket.create_connection(("127.0.0.1", v1_port), timeout=10)
    s.sendall(b"PROXY NONSENSE\r\n")
    check("malformed header: closed", closed_soon(s, 5))
    s = socket.create_connection(("127.0.0.1", v1_port), timeout=10)
    s.sendall(wire.encode_packet(wire.hello_packet({"username": "ok3"})))
    check("no header (an xpra hello): closed", closed_soon(s, 5))
    refused = re.findall(r"PROXY protocol header refused: .*", relay_log(rlog))
    check("malformed and missing headers: one log line each", len(refused) >= 2, relay_log(rlog)[-1500:])
    check("a header that never comes: closed after the 5 s bound",
          closed_soon(idle, max(1, 9 - (time.time() - idle_start))) and time.time() - idle_start >= 4.5)
    check("a header that never comes: logged",
          "no complete PROXY protocol header within 5000 ms" in relay_log(rlog), relay_log(rlog)[-1500:])
    check("the relay is still up", relay.poll() is None)
finally:
    stop_all(sockdir)
failed = summary()
sys.exit(1 if failed else 0)
