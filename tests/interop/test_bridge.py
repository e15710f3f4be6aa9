"""The bridge between xpra generations (issue 17, section 2): xpra 3.1.3 and 6.5.3 share no packet
encoder and no compressor, so the relay translates every packet between them (codec/bridge.h).

- a 3.1.3 client -> relay -> 6.5.3 server, and a 6.5.3 client -> relay -> 3.1.3 server: each
  attaches, the xterm shows, typed keys run a command in the session (a file appears), the window
  is resized and redrawn at its new size;
- `xpra info :proxy-N` says "bridging rencode+zlib <-> rencodeplus+lz4" (or the reverse) and
  counts the packets bridged;
- a same-generation pair through the same relay is not bridged (passthrough, no "bridge" info).

xpra 6.5.3 comes from test_modern's cache (built once per machine, about 2 minutes).
"""

import contextlib
import os

import control_util as cu
import harness
import test_modern as m6
from harness import check


@contextlib.contextmanager
def fixture(run):
    if run.target != "relay":
        yield None
        return
    x6 = m6._xpra6()
    with m6.xpra6_server(run, x6) as srv6, run.xpra_server() as srv3:
        sdir = run.mkdir("relay-bridge-sockets", 0o700)
        db = run.sqlite_db([("old2new", "o2n-pw", srv6.tcp_entry()),
                            ("new2old", "n2o-pw", srv3.tcp_entry()),
                            ("old2old", "o2o-pw", srv3.tcp_entry())], name="users-bridge.sdb")
        with cu.relay(run, "sqlite,filename=%s" % db, sdir, name="relay") as relay:
            yield {"x6": x6, "srv6": srv6, "srv3": srv3, "relay": relay}


def _steady_screenshots(client):
    """xwd of the client's root once failed with BadMatch (1 run in 6, 3.1.3 client of a 6.5.3
    server, never elsewhere): the grab raced a change of the client's screen. A grab that fails
    that way is taken again (at most 3 times); any other failure, or 3 in a row, still fails."""
    plain = client.screenshot

    def screenshot(save_as=None):
        for attempt in range(3):
            try:
                return plain(save_as=save_as)
            except harness.TestFailure as e:
                if "BadMatch" not in str(e) or attempt == 2:
                    raise
                harness.event("xwd BadMatch on :%d, grabbing again" % client.display)
    client.screenshot = screenshot
    return client


def _info_for(run, relay, user, env=None):
    """`xpra info :proxy-N` (3.1.3's command) of the instance relaying `user`."""
    n = cu.instance_for(run, relay, user)
    return n, cu.xpra_info(run, ":proxy-%d" % n, relay.socket_dir)


def _resize_and_redraw(client, wid, geom, tag):
    """Resizes the client's window; the server must follow (the xterm re-laid out and drawn at
    the new size: the new area gets painted, not left black)."""
    _wid, x, y, w, h = (wid,) + tuple(geom)
    nw, nh = min(w + 240, 1200), min(h + 160, 760)
    client.xdotool("windowsize", str(wid), str(nw), str(nh), check_rc=False)

    def resized():
        g = client.geometry(wid)
        return g if g and g[3] >= nw - 4 and g[4] >= nh - 4 else None
    g = harness.wait_until(resized, 20, interval=0.3, what="the %s window resized to %dx%d" % (tag, nw, nh))
    _w, gx, gy, gw, gh = g

    def new_area_painted():
        img = client.screenshot()
        # The strip the window gained on the right: drawn by the server after the resize.
        total, other, colours = img.stats(gx + w + 10, gy + 10, gw - w - 20, gh - 20)
        return (total, other) if total and other >= 0.5 * total else None
    try:
        harness.wait_until(new_area_painted, 20, interval=0.5, what="the %s window's new area painted" % tag)
    except harness.TestFailure:
        client.screenshot(save_as="bridge-resize-%s.png" % tag)
        raise
    client.screenshot(save_as="bridge-resized-%s.png" % tag)
    return (gx, gy, gw, gh)


@harness.targets("relay")
def test_bridge_old_client_to_modern_server(run, fx):
    srv6, relay = fx["srv6"], fx["relay"]
    start = harness.log_size(relay.log)
    with run.client(relay.uri("old2new", "o2n-pw"), name="client31-to-6") as c:
        _steady_screenshots(c)
        wid, geom, _img = harness.assert_window_painted(c, srv6.title, save_as="bridge-old2new.png")
        harness.prove_live(c, srv6, wid, geom, "old2new")
        geom2 = _resize_and_redraw(c, wid, geom[:], "old2new")
        # Input still reaches the session at the new size.
        harness.prove_live(c, srv6, wid, geom2, "old2new-resized")
        c.assert_attached("the 3.1.3 client")
        _n, info = _info_for(run, relay, "old2new")
        check(info.get("bridge.description") == "bridging rencode+zlib <-> rencodeplus+lz4",
              "xpra info does not say the instance bridges rencode+zlib <-> rencodeplus+lz4:\n%s"
              % "\n".join("%s=%s" % kv for kv in sorted(info.items()) if kv[0].startswith("bridge")))
        check(cu.as_int(info, "bridge.packets-to-client") > 10 and cu.as_int(info, "bridge.packets-to-server") > 10,
              "too few packets bridged: %s / %s" % (info.get("bridge.packets-to-client"),
                                                   info.get("bridge.packets-to-server")))
    new = harness.read_text(relay.log)[start:]
    check("bridging xpra 3.1 client <-> xpra 6.x server" in new, "relay log has no bridging line:\n%s" % new[-2000:])


@harness.targets("relay")
def test_bridge_modern_client_to_old_server(run, fx):
    x6, srv3, relay = fx["x6"], fx["srv3"], fx["relay"]
    start = harness.log_size(relay.log)
    with m6.xpra6_client(run, x6, relay.uri("new2old", "n2o-pw"), name="client6-to-31") as c:
        _steady_screenshots(c)
        wid, geom, _img = harness.assert_window_painted(c, srv3.title, save_as="bridge-new2old.png")
        harness.prove_live(c, srv3, wid, geom, "new2old")
        geom2 = _resize_and_redraw(c, wid, geom[:], "new2old")
        harness.prove_live(c, srv3, wid, geom2, "new2old-resized")
        check(c.proc.alive(), "the 6.5.3 client exited: %s" % harness.log_tail(c.log, 20))
        _n, info = _info_for(run, relay, "new2old")
        check(info.get("bridge.description") == "bridging rencodeplus+lz4 <-> rencode+zlib",
              "xpra info does not say the instance bridges rencodeplus+lz4 <-> rencode+zlib:\n%s"
              % "\n".join("%s=%s" % kv for kv in sorted(info.items()) if kv[0].startswith("bridge")))
        check(cu.as_int(info, "bridge.packets-to-client") > 10, "too few packets bridged to the client")
    new = harness.read_text(relay.log)[start:]
    check("bridging xpra 6.x client <-> xpra 3.1 server" in new, "relay log has no bridging line:\n%s" % new[-2000:])


@harness.targets("relay")
def test_bridge_same_generation_is_not_bridged(run, fx):
    srv3, relay = fx["srv3"], fx["relay"]
    with run.client(relay.uri("old2old", "o2o-pw"), name="client31-to-31") as c:
        harness.assert_window_painted(c, srv3.title)
        _n, info = _info_for(run, relay, "old2old")
        check(not any(k.startswith("bridge") for k in info),
              "a 3.1.3 client of a 3.1.3 server is bridged: %s" % {k: v for k, v in info.items() if k.startswith("bridge")})
