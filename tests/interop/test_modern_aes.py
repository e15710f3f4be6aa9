"""AES as xpra 6.x speaks it, end to end: a 6.5.3 client with `--encryption=AES-CBC` or
`AES-CTR` and a keyfile -> relay (`--tcp-encryption=AES --tcp-encryption-keyfile=K`) -> a plain
6.5.3 server. The client's hello asks for AES in an "encryption" dict; the relay answers with its
own parameters in the challenge and its hello, derives the keys on its worker pool, decrypts the
client's frames for the server and encrypts the server's for the client.

Covered: CBC and CTR with 6.x's default continuous stream, CTR with per-packet IVs
(XPRA_CRYPTO_STREAM=0 in the client), the xterm shows and typed keys run; a wrong key, a wrong
password, an unknown user and an unknown display each end with the client showing why.
Needs python3-cryptography for 6.5.3's AES (tools/lib.sh XR_TEST_PACKAGES).
"""

import contextlib
import re

import control_util as cu
import harness
import test_modern as tm
from harness import check

KEY = "relay-aes6-interop-key"


@contextlib.contextmanager
def fixture(run):
    if run.target != "relay":
        yield None
        return
    x6 = tm._xpra6()
    r = x6.python("import cryptography")
    check(r.returncode == 0, "xpra 6.5.3's AES needs python3-cryptography (package python3-cryptography, "
          "tools/lib.sh XR_TEST_PACKAGES): %s" % r.stderr[-300:])
    keyfile = run.key_file(KEY, name="aes6.key")
    with tm.xpra6_server(run, x6) as srv:
        sdir = run.mkdir("relay6-aes-sockets", 0o700)
        db = run.sqlite_db([("alice6", "alice6-pw", srv.tcp_entry())], name="users6-aes.sdb")
        with cu.relay(run, "sqlite,filename=%s" % db, sdir, name="relay-aes6",
                      extra=["--tcp-encryption=AES", "--tcp-encryption-keyfile=%s" % keyfile]) as relay:
            yield {"x6": x6, "server": srv, "relay": relay, "keyfile": keyfile}


@contextlib.contextmanager
def aes_client(run, fx, mode, name, user="alice6", pw="alice6-pw", display=None, keyfile=None, env=None):
    """A 6.5.3 `xpra attach` through the relay asking for AES-<mode> (extra environment `env`)."""
    x6, relay = fx["x6"], fx["relay"]
    extra = ["--encryption=AES-%s" % mode, "--encryption-keyfile=%s" % (keyfile or fx["keyfile"])]
    with run.xvfb(1280, 800) as disp:
        log = run.path("%s-%d.log" % (name, disp))
        argv = x6.cmd + ["attach", relay.uri(user, pw, display=display)] + tm.CLIENT6_QUIET + extra
        p = harness.Proc("%s on :%d" % (name, disp), argv, log,
                         tm._private_env(run, x6, "%s-%d" % (name, disp), DISPLAY=":%d" % disp, **(env or {})))
        try:
            yield harness.XpraClient(run, p, disp, relay.uri(user, pw, display=display), log)
        finally:
            p.stop(grace=5)


def _attach(run, fx, mode, tag, env=None, stream=True):
    srv, relay = fx["server"], fx["relay"]
    start = harness.log_size(relay.log)
    with aes_client(run, fx, mode, "client6-aes-%s" % tag, env=env) as c:
        wid, geom, _img = harness.assert_window_painted(c, srv.title, save_as="modern-aes-%s.png" % tag)
        check(c.proc.alive(), "the 6.5.3 client over AES-%s exited: %s" % (mode, harness.log_tail(c.log, 20)))
        harness.prove_live(c, srv, wid, geom, "aes6%s" % tag)
        text = c.text()
        # 6.5.3 logs "receiving data using 'AES-CBC' stream encryption" (no "stream " per packet).
        rx = r"receiving data using '?AES-%s'? %sencryption" % (mode, "stream " if stream else "")
        check(re.search(rx, text), "the 6.5.3 client does not say /%s/:\n%s" % (rx, harness.log_tail(c.log, 30)))
        new = harness.read_text(relay.log)[start:]
        check(re.search(r"relaying to .*AES-%s%s\)" % (mode, "" if stream else " per-packet iv"), new),
              "relay log has no 'relaying ... AES-%s' line:\n%s" % (mode, new[-1500:]))
        check(c.proc.alive(), "the 6.5.3 client over AES-%s exited after typing: %s" % (mode, harness.log_tail(c.log, 20)))


@harness.targets("relay")
def test_modern_aes_cbc_attaches_and_types(run, fx):
    _attach(run, fx, "CBC", "cbc")


@harness.targets("relay")
def test_modern_aes_ctr_attaches_and_types(run, fx):
    _attach(run, fx, "CTR", "ctr")


@harness.targets("relay")
def test_modern_aes_ctr_per_packet_ivs_attaches_and_types(run, fx):
    # `stream` false: a fresh 16-byte IV before every frame, counted in the header's size.
    _attach(run, fx, "CTR", "ctr-iv", env={"XPRA_CRYPTO_STREAM": "0"}, stream=False)


def _refused(run, fx, mode, name, reason_rx, log_rx, **kw):
    relay = fx["relay"]
    start = harness.log_size(relay.log)
    with aes_client(run, fx, mode, name, **kw) as c:
        rc = c.wait_exit(60)
        text = c.text()
        check(rc != 0, "the refused 6.5.3 AES client exited 0")
        check("running, 1 windows" not in text, "the 6.5.3 AES client got the session although it should be refused")
        check(re.search(reason_rx, text),
              "the 6.5.3 AES client did not show /%s/:\n%s" % (reason_rx, harness.log_tail(c.log, 25)))
    new = harness.read_text(relay.log)[start:]
    check(re.search(log_rx, new), "relay log has no /%s/ for this attempt:\n%s" % (log_rx, new[-1500:]))


@harness.targets("relay")
def test_modern_aes_wrong_key_gets_a_reason(run, fx):
    bad = run.key_file("not-the-relay-key", name="aes6-wrong.key")
    # The client cannot decrypt the relay's challenge: 6.5.3 says so itself, and the relay logs
    # the client leaving during the login.
    _refused(run, fx, "CBC", "client6-aes-wrongkey", r"encryption padding error - wrong key\?",
             r"client closed the connection|disconnect", keyfile=bad)


@harness.targets("relay")
def test_modern_aes_wrong_password_gets_the_reason(run, fx):
    _refused(run, fx, "CBC", "client6-aes-badpw", r"authentication failed", r"does not match", pw="wrong-pw")


@harness.targets("relay")
def test_modern_aes_unknown_user_gets_the_reason(run, fx):
    _refused(run, fx, "CTR", "client6-aes-nouser", r"authentication failed",
             r"(?i)auth\w* fail|unknown user|not found", user="nobody6", pw="whatever")


@harness.targets("relay")
def test_modern_aes_unknown_display_gets_the_reason(run, fx):
    _refused(run, fx, "CBC", "client6-aes-baddisp", r"session not found|display '?:\d+'? not found",
             r"(?i)not found|unknown display|no such (display|session)", display=fx["server"].display + 1000)
