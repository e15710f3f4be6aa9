"""Port 443: real xpra 3.1.3 clients attach through ONE relay port with tcp://, ssl://, ws:// and
wss:// (a self-signed certificate made here, verified by the client with --ssl-ca-certs=) and
through dedicated --bind-ssl/--bind-wss ports; curl gets the HTML5 client over http and https,
traversal gets no file; openssl s_client: TLS 1.1 refused, 1.2 and 1.3 served; hostile peers
are closed with a log line while a real client keeps working."""

import contextlib
import os
import re
import socket
import subprocess
import time

import signal

import control_util as cu
import harness
from harness import check

TARGETS = ("relay",)


def _make_cert(run, name="relay", cn="localhost", org=None):
    d = run.mkdir("tls")
    cert = os.path.join(d, "%s-cert.pem" % name)
    key = os.path.join(d, "%s-key.pem" % name)
    subj = "/CN=%s" % cn + ("/O=%s" % org if org else "")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", subj,
                    "-addext", "subjectAltName=DNS:%s,IP:127.0.0.1" % cn],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@contextlib.contextmanager
def fixture(run):
    cert, key = _make_cert(run)
    other_cert, other_key = _make_cert(run, name="other", cn="other.test")
    ssl_port = run.free_port()
    wss_port = run.free_port()
    args = ["--ssl-cert=%s" % cert, "--ssl-key=%s" % key, "--ssl-cert=%s" % other_cert, "--ssl-key=%s" % other_key,
            "--bind-ssl=127.0.0.1:%d" % ssl_port, "--bind-wss=127.0.0.1:%d" % wss_port,
            "--ssl-handshake-timeout=2", "--peek-timeout=1", "--http-timeout=2",
            "--websocket-max-frame=65536"]
    with harness.Setup(run, auth="sqlite", name="tls", relay_args=args) as setup:
        srv = setup.server()
        setup.user("alice", "alice-pw", [srv], via="unix")
        setup.start()
        setup.cert = cert
        setup.other_cert = other_cert
        setup.ssl_port = ssl_port
        setup.wss_port = wss_port
        yield setup


def _uri(scheme, port):
    return "%s://alice:alice-pw@127.0.0.1:%d/" % (scheme, port)


def _attach(run, fx, scheme, port, name):
    extra = ["--ssl-ca-certs=%s" % fx.cert] if scheme in ("ssl", "wss") else []
    srv = fx.servers[0]
    start = harness.log_size(fx.gate_log)
    with run.client(_uri(scheme, port), extra=extra, name=name) as c:
        wid, geom, _ = harness.assert_window_painted(c, srv.title, save_as="%s.png" % name)
        c.assert_attached()
        harness.prove_live(c, srv, wid, geom, name.replace("-", ""))  # keys typed reach the session
        new = harness.read_text(fx.gate_log)[start:]
        if scheme != "tcp":
            check("transport %s" % scheme in new, "relay log does not name transport %s:\n%s" % (scheme, new[-1500:]))


def test_one_port_tcp(run, fx):
    _attach(run, fx, "tcp", fx.gate.port, "one-port-tcp")


def test_one_port_ssl(run, fx):
    _attach(run, fx, "ssl", fx.gate.port, "one-port-ssl")


def test_one_port_ws(run, fx):
    _attach(run, fx, "ws", fx.gate.port, "one-port-ws")


def test_one_port_wss(run, fx):
    _attach(run, fx, "wss", fx.gate.port, "one-port-wss")


def test_dedicated_ssl_port(run, fx):
    _attach(run, fx, "ssl", fx.ssl_port, "bind-ssl")


def test_dedicated_wss_port(run, fx):
    _attach(run, fx, "wss", fx.wss_port, "bind-wss")


def _curl(fx, url, extra=()):
    out = subprocess.run(["curl", "-s", "--path-as-is", "-o", "-", "-w", "\n%{http_code}",
                          "--cacert", fx.cert] + list(extra) + [url],
                         capture_output=True, timeout=30)
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code or b"0"), body


def test_curl_html5_client_http_and_https(run, fx):
    if not os.path.isdir("/usr/share/xpra/www"):
        harness.skip("xpra's HTML5 client is not installed")
    for url in ("http://127.0.0.1:%d/" % fx.gate.port, "https://localhost:%d/" % fx.gate.port):
        code, body = _curl(fx, url)
        check(code == 200, "%s: HTTP %d" % (url, code))
        check(b"<html" in body.lower(), "%s: not the HTML5 client page" % url)
    for path in ("/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/js/..%2f..%2f..%2fetc%2fpasswd"):
        code, body = _curl(fx, "http://127.0.0.1:%d%s" % (fx.gate.port, path))
        check(code >= 400 and b"root:" not in body, "%s: HTTP %d, %d bytes" % (path, code, len(body)))


def _s_client(fx, port, *opts):
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", fx.cert] + list(opts),
                         input=b"", capture_output=True, timeout=30)
    return (out.stdout + out.stderr).decode(errors="replace")


def test_s_client_versions(run, fx):
    text = _s_client(fx, fx.gate.port, "-tls1_1")
    check("Cipher is (NONE)" in text or "alert" in text, "TLS 1.1 was served:\n%s" % text[-1500:])
    for opt, want in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        text = _s_client(fx, fx.gate.port, opt, "-servername", "localhost")
        check("New, %s" % want in text and "Verify return code: 0" in text, "%s not served:\n%s" % (want, text[-1500:]))


def _hostile(fx, payload, wait_log, start):
    s = socket.create_connection(("127.0.0.1", fx.gate.port), timeout=10)
    try:
        if payload:
            s.sendall(payload)
        s.settimeout(10)
        t0 = time.time()
        try:
            while s.recv(65536):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        check(time.time() - t0 < 9.5, "the relay did not close the connection")
    finally:
        s.close()
    harness.wait_for_log(fx.gate_log, wait_log, 10, start=start)


def test_hostile_peers_closed_while_client_works(run, fx):
    srv = fx.servers[0]
    with run.client(_uri("wss", fx.gate.port), extra=["--ssl-ca-certs=%s" % fx.cert], name="bystander") as c:
        harness.assert_window_painted(c, srv.title)
        start = harness.log_size(fx.gate_log)
        # a peer that sends nothing, and one whose first byte decides nothing: closed after
        # --peek-timeout (1 s here)
        t0 = time.time()
        _hostile(fx, b"", r"tcp: no complete first bytes in time", start)
        check(time.time() - t0 >= 0.9, "a silent peer closed before --peek-timeout")
        _hostile(fx, b"G", r"tcp: no complete first bytes in time", start)
        harness.wait_until(lambda: _log_count(fx, r"tcp: no complete first bytes in time", start) >= 2, 10,
                           what="a log line for each silent peer")
        check(_log_count(fx, r"tcp: no complete first bytes in time", start) == 2, "not one log line per silent peer")
        # an HTTP request head that never ends: closed after --http-timeout (2 s here)
        _hostile(fx, b"GET / HTTP/1.1\r\nHost: x\r\n", r"no complete HTTP request head in time", start)
        # a stalled TLS handshake: a record header and nothing more
        _hostile(fx, b"\x16\x03\x01\x00\x40", r"no complete TLS handshake in time", start)
        # garbage after a TLS record header
        _hostile(fx, b"\x16\x03\x01\x00\x10" + b"\xff" * 16, r"ssl: TLS: ", start)
        # an HTTP header flood
        flood = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 200) for i in range(200))
        _hostile(fx, flood, r"HTTP 431", start)
        # an oversized WebSocket frame after a valid upgrade
        up = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Protocol: binary\r\n\r\n")
        big = b"\x82\x7f" + (1 << 30).to_bytes(8, "big")
        _hostile(fx, up + big, r"ws: .*(WebSocket|frame|1009|too big)", start)
        c.assert_attached("a real wss client through the hostile connections")
        harness.assert_window_painted(c, srv.title)


_UPGRADE = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: binary\r\n\r\n")


def _ws_frame(opcode, payload, mask=None):
    """One client frame (FIN set), masked with the 4 bytes `mask` unless it is None."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _log_count(fx, regex, start):
    return len(re.findall(regex, harness.read_text(fx.gate_log)[start:]))


def test_more_hostile_peers_closed_while_wss_client_types(run, fx):
    """Oversized ClientHello, WebSocket frames switching between masked and unmasked, a
    WebSocket ping flood: each closed with one log line naming it, while a real xpra 3.1.3 wss
    client stays attached and its typing still reaches the session."""
    srv = fx.servers[0]
    with run.client(_uri("wss", fx.gate.port), extra=["--ssl-ca-certs=%s" % fx.cert], name="typist") as c:
        wid, geom, _ = harness.assert_window_painted(c, srv.title)
        start = harness.log_size(fx.gate_log)
        # A ClientHello declaring 65,535 bytes, sent in full records past --ssl-max-handshake-bytes
        # (32 KiB by default): closed before OpenSSL has parsed it.
        hello = b"\x01\x00\xff\xff" + b"\x03\x03" + b"\x00" * (16384 - 6)
        records = b"".join(b"\x16\x03\x01" + (16384).to_bytes(2, "big") + chunk
                           for chunk in (hello, b"\x00" * 16384, b"\x00" * 16384))
        _hostile(fx, records, r"TLS handshake over 32768 bytes", start)
        check(_log_count(fx, r"TLS handshake over 32768 bytes", start) == 1, "not one log line for the ClientHello")
        # Masked, then unmasked: the first frame decides (MaskPolicy kConsistent), a switch is 1002.
        mask = b"\x11\x22\x33\x44"
        _hostile(fx, _UPGRADE + _ws_frame(0x9, b"a", mask) + _ws_frame(0x9, b"b"),
                 r"switch between masked and unmasked", start)
        # Unmasked first (as xpra 3.1.3's client), then masked: the same.
        _hostile(fx, _UPGRADE + _ws_frame(0x9, b"a") + _ws_frame(0x9, b"b", mask),
                 r"switch between masked and unmasked", start)
        check(_log_count(fx, r"switch between masked and unmasked", start) == 2,
              "not one log line per mask switch")
        # A ping flood: 200 pings at once, over the 10/s (burst 20) bound -> close 1008.
        flood = b"".join(_ws_frame(0x9, b"%03d" % i, mask) for i in range(200))
        _hostile(fx, _UPGRADE + flood, r"more than 10 pings per second", start)
        check(_log_count(fx, r"more than 10 pings per second", start) == 1, "not one log line for the ping flood")
        c.assert_attached("a real wss client through the hostile connections")
        harness.prove_live(c, srv, wid, geom, "hostile443")


def _client_hello():
    """A real ClientHello (Python's ssl over memory BIOs), as bytes to send on raw sockets."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def test_tls_handshake_rate_per_address(run, fx):
    """80 ClientHellos from one address as fast as they are answered (one at a time: handshakes
    in progress also count against the 16 logins per source): the first 40 (the default burst)
    and the 20/s refill are answered, the rest are closed unanswered with one log line each,
    while a wss client keeps working."""
    srv = fx.servers[0]
    hello = _client_hello()
    check(hello[:1] == b"\x16", "not a TLS record: %r" % hello[:8])
    with run.client(_uri("wss", fx.gate.port), extra=["--ssl-ca-certs=%s" % fx.cert], name="rate") as c:
        wid, geom, _ = harness.assert_window_painted(c, srv.title)
        time.sleep(2.5)  # the attach's handshake refilled: the burst is whole again
        start = harness.log_size(fx.gate_log)
        served = refused = 0
        t0 = time.time()
        for _ in range(80):
            s = socket.create_connection(("127.0.0.1", fx.gate.port), timeout=10)
            try:
                s.sendall(hello)
                first = s.recv(5)
            except (ConnectionResetError, BrokenPipeError, socket.timeout):
                first = b""
            finally:
                s.close()
            if first[:1] == b"\x16":
                served += 1
            else:
                refused += 1
        elapsed = time.time() - t0
        # 40 at once, then 20 per second over the time the 80 took to open
        check(40 <= served <= 40 + int(20 * elapsed) + 2, "served %d of 80 in %.2f s" % (served, elapsed))
        check(refused >= 80 - 40 - int(20 * elapsed) - 2, "refused only %d of 80 in %.2f s" % (refused, elapsed))
        harness.wait_until(lambda: _log_count(fx, r"--ssl-max-handshake-rate-per-address", start) >= refused, 10,
                           what="one log line per refused handshake")
        check(_log_count(fx, r"--ssl-max-handshake-rate-per-address", start) == refused,
              "%d refused, %d log lines" % (refused, _log_count(fx, r"--ssl-max-handshake-rate-per-address", start)))
        c.assert_attached("a wss client while its address is over the handshake rate")
        harness.prove_live(c, srv, wid, geom, "rate443")
    time.sleep(2.5)  # leave the burst whole for the next test


def test_sni_picks_the_certificate(run, fx):
    text = _s_client(fx, fx.gate.port, "-servername", "other.test", "-CAfile", fx.other_cert)
    check("CN = other.test" in text and "Verify return code: 0" in text, "SNI other.test:\n%s" % text[-1500:])
    text = _s_client(fx, fx.gate.port, "-servername", "localhost")
    check("CN = localhost" in text and "CN = other.test" not in text, "SNI localhost:\n%s" % text[-1500:])
    text = _s_client(fx, fx.gate.port)  # no SNI: the first certificate
    check("CN = localhost" in text, "no SNI:\n%s" % text[-1500:])


def test_xpra_info_shows_transport(run, fx):
    srv = fx.servers[0]
    before = cu.proxy_ids(fx.socket_dir)
    extra = ["--ssl-ca-certs=%s" % fx.cert, "--ssl-server-hostname=localhost"]
    with run.client(_uri("wss", fx.gate.port), extra=extra, name="info-wss") as c:
        harness.assert_window_painted(c, srv.title)
        n = cu.wait_new_proxy_id(fx.socket_dir, before)
        info = cu.xpra_info(run, ":proxy-%d" % n, fx.socket_dir)
        want = {"client.transport": "wss", "client.tls.sni": "localhost"}
        bad = {k: (info.get(k), v) for k, v in want.items() if info.get(k) != v}
        check(not bad, "xpra info :proxy-%d: (got, want) %s" % (n, bad))
        check(info.get("client.tls.version") in ("TLSv1.2", "TLSv1.3"), "tls.version %r" % info.get("client.tls.version"))
        check(info.get("client.tls.cipher"), "no client.tls.cipher in %s" % sorted(info))
        # TLS 1.3 (what xpra's client negotiates here): records sealed by the relay's own layer.
        want_layer = "relay" if info.get("client.tls.version") == "TLSv1.3" else "openssl"
        check(info.get("client.tls.record-layer") == want_layer,
              "client.tls.record-layer %r for %s" % (info.get("client.tls.record-layer"), info.get("client.tls.version")))


def test_sighup_renewed_certificate(run, fx):
    """Runs last: it renews the fixture's certificate in place."""
    srv = fx.servers[0]
    with run.client(_uri("ssl", fx.gate.port), extra=["--ssl-ca-certs=%s" % fx.cert], name="before-renewal") as c:
        harness.assert_window_painted(c, srv.title)
        old = _s_client(fx, fx.gate.port, "-servername", "localhost")
        check("O = renewed" not in old, "renewed before the renewal?\n%s" % old[-800:])
        _make_cert(run, name="relay", cn="localhost", org="renewed")  # same files, new key and subject
        start = harness.log_size(fx.gate_log)
        fx.gate.proc.signal_group(signal.SIGHUP)
        harness.wait_for_log(fx.gate_log, r"TLS certificates reloaded", 10, start=start)
        new = _s_client(fx, fx.gate.port, "-servername", "localhost")
        check("O = renewed" in new and "Verify return code: 0" in new, "new handshake after SIGHUP:\n%s" % new[-1500:])
        c.assert_attached("a TLS client attached across the certificate reload")
        harness.assert_window_painted(c, srv.title)


def _start_fails(run, args):
    out = subprocess.run([run.relay_bin, "--config=none", "--bind-tcp=127.0.0.1:%d" % run.free_port(),
                          "--tcp-auth=none", "--socket-dir=%s" % run.mkdir("sockets-startfail", 0o700)] + args,
                         capture_output=True, timeout=30, env=run.env())
    return out.returncode, (out.stdout + out.stderr).decode(errors="replace")


def test_bad_certificate_stops_startup(run, fx):
    missing = os.path.join(run.dir, "tls", "missing.pem")
    rc, text = _start_fails(run, ["--ssl-cert=%s" % missing])
    check(rc != 0 and missing in text, "a missing certificate (rc=%s):\n%s" % (rc, text[-800:]))
    key_of_other = fx.other_cert.replace("-cert.pem", "-key.pem")
    rc, text = _start_fails(run, ["--ssl-cert=%s" % fx.cert, "--ssl-key=%s" % key_of_other])
    check(rc != 0 and key_of_other in text and "match" in text,
          "a key that does not match (rc=%s):\n%s" % (rc, text[-800:]))


def test_ssl_off_and_html_dir(run, fx):
    """--html=DIR serves that directory on a one-port bind (http and https); --html=off serves no
    page; --ssl=off with a certificate given leaves the tcp bind xpra only (no TLS, no HTTP)."""
    key = fx.cert.replace("-cert.pem", "-key.pem")
    www = run.mkdir("www-own")
    marker = b"xpra-relay-html-dir-%d" % os.getpid()
    with open(os.path.join(www, "index.html"), "wb") as f:
        f.write(b"<html><body>" + marker + b"</body></html>\n")
    tls = ["--ssl-cert=%s" % fx.cert, "--ssl-key=%s" % key]
    with run.relay("none", run.mkdir("sockets-html-dir", 0o700), extra=tls + ["--html=%s" % www],
                   name="relay-html-dir") as r:
        for url in ("http://127.0.0.1:%d/" % r.port, "https://localhost:%d/index.html" % r.port):
            code, body = _curl(fx, url)
            check(code == 200 and marker in body, "--html=DIR, %s: HTTP %d, %r" % (url, code, body[:200]))
    with run.relay("none", run.mkdir("sockets-html-off", 0o700), extra=tls + ["--html=off"],
                   name="relay-html-off") as r:
        code, body = _curl(fx, "https://localhost:%d/" % r.port)
        check(code >= 400 and b"<html" not in body.lower(), "--html=off: HTTP %d, %r" % (code, body[:200]))
        check("TLSv1.3" in _s_client(fx, r.port, "-servername", "localhost"), "--html=off: TLS not served")
    with run.relay("none", run.mkdir("sockets-ssl-off", 0o700), extra=tls + ["--ssl=off"],
                   name="relay-ssl-off") as r:
        text = _s_client(fx, r.port, "-servername", "localhost")
        check("Cipher is (NONE)" in text or "New, " not in text, "--ssl=off: TLS was served:\n%s" % text[-800:])
        code, _ = _curl(fx, "http://127.0.0.1:%d/" % r.port)
        check(code == 0, "--ssl=off: the xpra-only tcp bind answered HTTP %d" % code)
