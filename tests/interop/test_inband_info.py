"""In-band info: a client attached through the relay sends "info-request"; the real server's
"info-response" reaches it with the server's own keys intact plus a "proxy" subtree added by
the relay (as xpra proxy does). The client here is a raw xpra 3.1 protocol speaker (wire.py)
so the request can be sent on demand; the server is real xpra 3.1.3."""

import contextlib
import hashlib
import hmac
import os
import socket
import time

import harness
import wire
from harness import check

TARGETS = ("relay",)


@contextlib.contextmanager
def fixture(run):
    with harness.Setup(run, auth="sqlite", name="inband") as setup:
        srv = setup.server()
        setup.user("info", "info-pw", [srv])
        setup.start()
        setup.srv = srv
        yield setup


class RawClient:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""

    def send(self, packet):
        self.sock.sendall(wire.encode_packet(packet))

    def packets(self, deadline):
        """Yields decoded packets until the deadline."""
        while time.time() < deadline:
            packets, self.buf = wire.decode_frames(self.buf)
            if packets:
                for p in packets:
                    yield p
                continue
            self.sock.settimeout(max(0.1, deadline - time.time()))
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                return
            if not data:
                return
            self.buf += data

    def expect(self, ptype, timeout=20):
        for p in self.packets(time.time() + timeout):
            if wire.text(p[0]) == ptype:
                return p
            if wire.text(p[0]) == "disconnect":
                raise harness.TestFailure("disconnected: %r" % ([wire.text(x) for x in p[1:]],))
        raise harness.TestFailure("no %r packet within %ss" % (ptype, timeout))


# What a real server needs to accept a (window-less) client.
CLIENT_CAPS = {"encodings": ["rgb"], "encodings.core": ["rgb24", "rgb32"], "windows": False, "keyboard": False,
               "randr_notify": False, "sound.receive": False, "sound.send": False}


def _login(fx, user, password, display):
    c = RawClient(fx.gate_port())
    c.send(wire.hello_packet(dict(CLIENT_CAPS, username=user, display=display, challenge=True)))
    ch = c.expect("challenge")
    server_salt = ch[1] if isinstance(ch[1], bytes) else ch[1].encode("latin1")
    digest, salt_digest = wire.text(ch[3]), wire.text(ch[4])
    check(digest.startswith("hmac"), "unexpected digest %r" % digest)
    alg = digest.split("+", 1)[1] if "+" in digest else "md5"
    salt_alg = salt_digest.split("+", 1)[1] if "+" in salt_digest else "md5"
    client_salt = os.urandom(32)
    salt = hmac.new(client_salt, server_salt, getattr(hashlib, salt_alg)).hexdigest().encode()
    response = hmac.new(password.encode(), salt, getattr(hashlib, alg)).hexdigest()
    c.send(wire.hello_packet(dict(CLIENT_CAPS, username=user, display=display, challenge_response=response,
                                  challenge_client_salt=client_salt)))
    hello = c.expect("hello")
    return c, hello


def test_info_response_gets_proxy_subtree(run, fx):
    c, hello = _login(fx, "info", "info-pw", ":%d" % fx.srv.display)
    caps = {wire.text(k): v for k, v in hello[1].items()}
    check(caps.get("proxy") in (True, 1), "the server hello lacks proxy=True: %r" % caps.get("proxy"))
    c.send(["info-request", ["0123456789abcdef"], [], []])
    resp = c.expect("info-response")
    info = {wire.text(k): v for k, v in resp[1].items()}
    check("proxy" in info, "info-response has no proxy subtree; keys: %s" % sorted(info)[:20])
    proxy = {wire.text(k): v for k, v in info["proxy"].items()}
    check(wire.text(proxy.get("implementation", b"")) == "xpra-relay", "proxy subtree: %r" % proxy)
    check("latency" in proxy, "no latency in the proxy subtree: %r" % proxy)
    # The server's own keys stay intact.
    check(any(k in info for k in ("server", "display", "threads")), "server keys missing: %s" % sorted(info)[:20])
    c.sock.close()
    return "info-response keys: %d, proxy: %s" % (len(info), sorted(proxy))
