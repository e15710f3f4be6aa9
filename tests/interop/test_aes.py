"""AES-CBC on the client leg: `--encryption=AES --encryption-keyfile=K` against a gate
started with `--tcp-encryption=AES --tcp-encryption-keyfile=K`."""

import contextlib

import harness
from harness import check

KEY = "interop-aes-key-0123456789"


@contextlib.contextmanager
def fixture(run):
    with harness.Setup(run, auth="sqlite", encryption_key=KEY, name="aes") as setup:
        srv = setup.server()
        setup.user("crypt", "crypt-pw", [srv])
        setup.start()
        yield setup


def test_aes_client_attaches_and_sees_window(run, fx):
    srv = fx.servers[0]
    with fx.client("crypt", "crypt-pw") as c:
        wid, geom, _img = harness.assert_window_painted(c, srv.title, save_as="aes.png")
        text = c.text()
        check("sending data using AES encryption" in text and "receiving data using AES encryption" in text,
              "client log does not show AES in both directions")
        harness.prove_live(c, srv, wid, geom, "aes")
        c.assert_attached()


def test_wrong_key_is_refused(run, fx):
    bad = run.key_file("not-the-right-key", name="wrong.key")
    uri = fx.uri("crypt", "crypt-pw")
    with run.client(uri, extra=["--encryption=AES", "--encryption-keyfile=%s" % bad], wait_attached=False,
                    name="wrongkey") as c:
        rc = c.wait_exit(60)
        check(rc != 0, "client with the wrong AES key exited %s" % rc)
        check("Attached to" not in c.text(), "client with the wrong AES key attached")


def test_plain_client_is_refused(run, fx):
    uri = fx.uri("crypt", "crypt-pw")
    with run.client(uri, wait_attached=False, name="plain") as c:
        rc = c.wait_exit(60)
        check(rc != 0, "client without encryption exited %s" % rc)
        check("Attached to" not in c.text(), "client without encryption attached to an AES-only gate")
