#!/usr/bin/python3
"""Golden vectors for codec/websocket, computed by xpra 3.1.3's own WebSocket code.

Run with Debian's interpreter (it has the xpra module):
    /usr/bin/python3 tools/golden/websocket.py [OUTDIR]
OUTDIR defaults to tests/codec/testdata/websocket. Every input is fixed, so the output is
reproducible. Format as tools/golden/crypto.py (records of "name value"; hex values, "_str"
plain text, "_int" decimal).

Which xpra code produces what:
  handshake.txt  xpra.net.websockets.handler.WebSocketRequestHandler.handle_websocket() on a
                 request's headers: the exact 101 response bytes the server writes, or the
                 exception text when xpra refuses (accept_int 0)
  frames.txt     (payload i = (i*7 + (i>>8)) & 0xff; "body" = the bytes after the header, written
                 only for payloads up to 300 bytes) server frames: encode_hybi_header(OPCODE_BINARY/PONG/CLOSE, len) + payload
                 (net/websockets/header.py, as protocol.py make_wsframe_header / _process_ws_ping
                 send them); client frames: encode_hybi_header(op, len, has_mask=True) + mask +
                 hybi_mask(mask, payload) (the masking path of make_wsframe_header), each checked
                 by xpra's decode_hybi() to give back (opcode, payload, fin); and "client_default"
                 frames as xpra's own client sends them by default: make_wsframe_header() with
                 ws_mask = protocol.MASK (XPRA_WEBSOCKET_MASK, default False: unmasked)
"""

import io
import os
import sys

if os.getcwd().startswith("/usr/lib/python3/dist-packages/xpra"):
    os.chdir("/")

from xpra.net.websockets.handler import WebSocketRequestHandler  # noqa: E402
from xpra.net.websockets.header import encode_hybi_header, decode_hybi  # noqa: E402
from xpra.codecs.xor.cyxor import hybi_mask  # noqa: E402
from xpra.net.websockets.protocol import MASK  # noqa: E402


class FakeRequest:
    """Just what handle_websocket() reads: headers.get(), wfile, new_websocket_client."""

    def __init__(self, headers):
        self.headers = headers
        self.wfile = io.BytesIO()
        self.new_websocket_client = lambda _handler: None
        self.request = None  # only logged


def handshake_records():
    cases = [
        ("rfc6455", {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
                     "Sec-WebSocket-Protocol": "binary"}),
        ("html5", {"Sec-WebSocket-Key": "x3JJHMbDL1EzLkh9GBhXDw==", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Protocol": "binary"}),
        ("zeros", {"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAAAA==", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Protocol": "binary"}),
        ("no_binary", {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
                       "Sec-WebSocket-Protocol": "base64"}),
        ("no_version", {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "binary"}),
        ("version_99", {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "99",
                        "Sec-WebSocket-Protocol": "binary"}),
        ("no_key", {"Sec-WebSocket-Version": "13", "Sec-WebSocket-Protocol": "binary"}),
    ]
    out = []
    for name, headers in cases:
        req = FakeRequest(headers)
        lines = ["name_str %s" % name]
        for k in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol"):
            if k in headers:
                lines.append("%s_str %s" % (k.lower().replace("-", "_"), headers[k]))
        try:
            WebSocketRequestHandler.handle_websocket(req)
            lines.append("accept_int 1")
            lines.append("response %s" % req.wfile.getvalue().hex())
        except Exception as e:  # xpra answers 403 "failed to handle websocket: <e>"
            lines.append("accept_int 0")
            lines.append("refusal_str %s" % e)
        out.append("\n".join(lines))
    return out


def payload(n):
    return bytes((i * 7 + (i >> 8)) & 0xff for i in range(n))


def record(kind, op, fin, n, header, body):
    lines = ["kind_str %s" % kind, "opcode_int %i" % op, "fin_int %i" % int(fin), "payload_len_int %i" % n,
             "header %s" % header.hex()]
    if n <= 300:
        lines.append("body %s" % body.hex())
    return "\n".join(lines)


def frame_records():
    out = []
    # Server frames, as xpra writes them (unmasked).
    for op, n in ((2, 0), (2, 5), (2, 125), (2, 126), (2, 65535), (2, 65536), (2, 70000), (10, 4), (8, 2)):
        data = payload(n)
        frame = encode_hybi_header(op, n) + data
        opcode, back, length, fin = decode_hybi(frame)
        assert opcode == op and bytes(back) == data and length == len(frame) and fin
        hlen = length - n
        out.append(record("server", op, True, n, frame[:hlen], frame[hlen:]))
    # Client frames, masked, as xpra's masking path makes them.
    mask = bytes([0x37, 0xfa, 0x21, 0x3d])
    for op, n, fin in ((2, 0, True), (2, 11, True), (2, 300, True), (2, 70000, True), (1, 3, True),
                       (2, 10, False), (0, 10, True), (9, 5, True)):
        data = payload(n)
        frame = encode_hybi_header(op, n, has_mask=True, fin=fin) + mask + bytes(hybi_mask(mask, data))
        opcode, back, length, dfin = decode_hybi(frame)
        assert opcode == op and bytes(back) == data and length == len(frame) and dfin == fin
        hlen = length - n
        out.append(record("client", op, fin, n, frame[:hlen], frame[hlen:]))
    # xpra's client by default (WebSocketProtocol.make_wsframe_header with ws_mask = MASK).
    for n in (5, 300, 70000):
        data = payload(n)
        header = encode_hybi_header(2, n, MASK)
        body = data
        if MASK:
            header += mask
            body = bytes(hybi_mask(mask, data))
        frame = header + body
        opcode, back, length, fin = decode_hybi(frame)
        assert opcode == 2 and bytes(back) == data and length == len(frame) and fin
        out.append(record("client_default", 2, True, n, header, body) + "\nmasked_int %i" % int(bool(MASK)))
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/codec/testdata/websocket"
    os.makedirs(outdir, exist_ok=True)
    header = "# generated by tools/golden/websocket.py from xpra 3.1.3 - do not edit\n"
    for name, records in (("handshake.txt", handshake_records()), ("frames.txt", frame_records())):
        with open(os.path.join(outdir, name), "w") as f:
            f.write(header + "\n\n".join(records) + "\n")


if __name__ == "__main__":
    main()
