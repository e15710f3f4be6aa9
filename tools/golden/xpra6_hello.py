#!/usr/bin/python3
"""Captures the first frame a real xpra 6.5.3 client sends (its hello) into
tests/codec/testdata/framing/xpra6_client_hello.bin.

    /usr/bin/python3 tools/golden/xpra6_hello.py [DISPLAY_NUMBER]

Starts its own Xvfb (:DISPLAY_NUMBER, default 551) for the GTK client, listens on a free
loopback port, runs `xpra attach` of 6.5.3 (tests/interop/xpra_modern.py builds it when absent)
with its own HOME and XDG_RUNTIME_DIR, keeps the first complete frame and stops both by pid.
Not deterministic: the hello carries a fresh uuid, session id and mmap token each run.
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
import xpra_modern  # noqa: E402

OUT = os.path.join(ROOT, "tests", "codec", "testdata", "framing", "xpra6_client_hello.bin")


def main():
    display = int(sys.argv[1]) if len(sys.argv) > 1 else 551
    x6 = xpra_modern.ensure(log=lambda m: print(m, file=sys.stderr))
    tmp = tempfile.mkdtemp(prefix="xpra6-hello.")
    procs = []
    try:
        xvfb = subprocess.Popen(["Xvfb", ":%d" % display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(xvfb)
        time.sleep(1)
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(60)
        port = srv.getsockname()[1]
        run = os.path.join(tmp, "run")
        os.makedirs(run, mode=0o700)
        env = x6.env()
        env.update(HOME=tmp, XDG_RUNTIME_DIR=run, DISPLAY=":%d" % display)
        client = subprocess.Popen(x6.cmd + ["attach", "tcp://alice@127.0.0.1:%d/" % port, "--password=secret",
                                            "--socket-dirs=" + run, "--splash=no", "--notifications=no",
                                            "--tray=no", "--mdns=no"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(client)
        conn, _ = srv.accept()
        conn.settimeout(30)
        data = b""
        while len(data) < 8 or len(data) < 8 + struct.unpack(">I", data[4:8])[0]:
            chunk = conn.recv(65536)
            if not chunk:
                sys.exit("the client closed before its first frame was complete")
            data += chunk
        frame = data[:8 + struct.unpack(">I", data[4:8])[0]]
        with open(OUT, "wb") as f:
            f.write(frame)
        print("%s: header %s, %d bytes" % (OUT, frame[:8].hex(), len(frame)))
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
