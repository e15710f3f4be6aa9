#!/usr/bin/python3
"""Golden frame vectors for the framing codec, produced by xpra 3.1.3's own network code.

Run with Debian's interpreter (it has xpra, rencode, lz4 and python-cryptography):

    /usr/bin/python3 tools/golden/framing.py [OUTDIR]

OUTDIR defaults to tests/codec/testdata/framing. Every packet goes through
xpra.net.protocol.Protocol._add_packet_to_queue (encode -> chunking -> compression ->
encryption -> headers); raw_write is replaced to capture the bytes instead of writing them.
The packets and pixel/text patterns are repeated in tests/codec/packet_test.cc, so keep the two
in step. MANIFEST.txt lists the frame headers of every file for humans.
"""

import os
import struct
import sys

from xpra.net import compression, crypto
from xpra.net.compression import Compressed, LevelCompressed
from xpra.net.header import unpack_header, HEADER_SIZE, FLAGS_CIPHER
from xpra.net.protocol import Protocol

crypto.crypto_backend_init()


class _Scheduler:
    def timeout_add(self, *_args, **_kwargs):
        return 0

    def idle_add(self, *_args, **_kwargs):
        return 0

    def source_remove(self, *_args):
        pass


class _Conn:
    def __repr__(self):
        return "golden-conn"


def make_protocol(encoder="rencode", compressor="none", level=0, cipher=None):
    """A real xpra Protocol whose writes are captured in proto.captured."""
    proto = Protocol(_Scheduler(), _Conn(), lambda *_args: None)
    proto.enable_encoder(encoder)
    proto.enable_compressor(compressor)
    proto.set_compression_level(level)
    if cipher:
        proto.set_cipher_out("AES", cipher["iv"], cipher["password"], cipher["salt"],
                             cipher["iterations"], cipher["padding"])
    proto.captured = []

    def raw_write(_packet_type, items, *_args, **_kwargs):
        for item in items:
            proto.captured.append(bytes(item))
    proto.raw_write = raw_write
    return proto


def send(proto, packet):
    """Runs one packet through xpra's write path; returns the wire bytes it produced."""
    start = len(proto.captured)
    proto._add_packet_to_queue(packet)
    return b"".join(proto.captured[start:])


# --- deterministic data shared with the C++ tests ---------------------------------------------

def lcg_bytes(n, seed):
    """x = x*1103515245 + 12345 (mod 2^31); each byte is bits 16..23 of the new x."""
    x = seed
    out = bytearray(n)
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7fffffff
        out[i] = (x >> 16) & 0xff
    return bytes(out)


def draw_pixels(width, height):
    """BGRX pixels in runs of 8 equal pixels; each run's B, G, R come from lcg_bytes(seed=1)."""
    runs = width // 8
    colors = lcg_bytes(runs * height * 3, 1)
    out = bytearray()
    for r in range(runs * height):
        px = colors[r * 3:r * 3 + 3] + b"\xff"
        out += px * 8
    return bytes(out)


def clipboard_text(n):
    """n lower-case letters: 'a' + lcg_bytes(seed=2)[i] % 26."""
    return bytes(97 + b % 26 for b in lcg_bytes(n, 2))


def big_blob(n, seed):
    """n bytes: lcg_bytes(seed)[i] & 0x0f (compressible, no long runs)."""
    return bytes(b & 0x0f for b in lcg_bytes(n, seed))


HELLO = ["hello", {
    "version": "3.1.3",
    "rencode": True,
    "bencode": True,
    "yaml": False,
    "lz4": True,
    "zlib": True,
    "compressors": ["zlib", "lz4"],
    "compression_level": 1,
    "encodings": ["rgb24", "rgb32", "png", "jpeg", "webp", "h264"],
    "desktop_size": [1920, 1080],
    "screen_sizes": [[":0.0", 1920, 1080, 508, 286, [["DP-1", 0, 0, 1920, 1080, 508, 286]], 0, 0, 1920, 1080]],
    "dpi": -1,
    "uuid": "3f2a8c1e9b7d4e6fa0c5d2b8e1f47a93",
    "username": "alice",
    "display": ":100",
    "platform": "linux",
    "build.revision": 26000,
    "start_time": 1700000000123,
    "big": 2 ** 40,
    "digest": ["hmac", "hmac+sha256", "xor"],
    "salt-digest": ["hmac+sha256", "xor"],
    "clipboard": True,
    "notifications": True,
    "cursors": True,
    "bell": True,
    "keyboard": True,
    "xkbmap_layout": "us",
    "xkbmap_variant": "",
    "sound.receive": False,
    "encoding.rgb_lz4": True,
    "encoding.transparency": True,
    "websocket.multi-packet": True,
}]

PING = ["ping", 1700000000123, 1700000000, ""]
PING_ECHO = ["ping_echo", 1700000000123, 12, 34, 56, 7890, 0]
DRAW_W, DRAW_H = 160, 160


def ping_of_64_bytes():
    """A ping whose rencoded payload is exactly 64 bytes: encrypted, it gets a full 32-byte pad."""
    import rencode
    for n in range(64):
        packet = ["ping", 1700000000123, 1700000000, "p" * n]
        if len(rencode.dumps(packet)) == 64:
            return packet
    raise Exception("no 64-byte ping")


PING64 = ping_of_64_bytes()

# Tests in packet_test.cc decrypt with these.
CIPHER_PKCS7 = {"iv": "0123456789abcdef", "password": "relay-secret", "salt": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                "iterations": 1000, "padding": "PKCS#7"}
CIPHER_LEGACY = dict(CIPHER_PKCS7, padding="legacy", iv="fedcba9876543210")


def draw_packet_rgb(seq):
    """A draw packet as picture_encode.rgb_encode makes it for rgb32 with lz4: pixels compressed
    by lz4, the network level reset to 0 so the client's decode thread (not the network layer)
    decompresses them, and {"lz4": 1} in the client options."""
    pixels = draw_pixels(DRAW_W, DRAW_H)
    cwrapper = compression.compressed_wrapper("rgb32", pixels, lz4=True, level=1)
    assert len(cwrapper) > 32768 and len(cwrapper) < len(pixels) - 32, len(cwrapper)
    cwrapper.level = 0
    return ["draw", 3, 10, 20, DRAW_W, DRAW_H, b"rgb32", cwrapper, seq, DRAW_W * 4,
            {"rgb_format": "BGRX", "lz4": 1}]


def clipboard_packet():
    """clipboard-contents whose data is a zlib LevelCompressed over 32 KiB: sent as a chunk that
    the receiving network layer decompresses (its level byte is in the chunk header)."""
    data = compression.compressed_wrapper("text", clipboard_text(65536), zlib=True, level=6)
    assert isinstance(data, LevelCompressed) and len(data) > 32768
    return ["clipboard-contents", 7, "CLIPBOARD", "UTF8_STRING", 8, "bytes", data]


def three_chunk_packet():
    """Three plain bytes items over 4 KiB with compression on: xpra compresses each with the
    protocol compressor and sends it as its own chunk (indexes 1, 2, 3: the most it accepts)."""
    return ["xr-test-chunks", big_blob(5000, 3), big_blob(6000, 4), big_blob(7000, 5), 42]


def frames_of(data):
    """(flags, level, index, size, wire_size) of each frame in data."""
    out = []
    pos = 0
    while pos < len(data):
        _, flags, level, index, size = unpack_header(data[pos:pos + HEADER_SIZE])
        wire = size
        if flags & FLAGS_CIPHER:
            wire = size + (32 - size % 32)
        out.append((flags, level, index, size, wire))
        pos += HEADER_SIZE + wire
    assert pos == len(data)
    return out


def build():
    vectors = {}
    vectors["rencode_hello.bin"] = send(make_protocol("rencode"), HELLO)
    vectors["bencode_hello.bin"] = send(make_protocol("bencode"), HELLO)
    vectors["rencode_ping.bin"] = send(make_protocol("rencode"), PING)
    vectors["bencode_ping_echo.bin"] = send(make_protocol("bencode"), PING_ECHO)
    vectors["zlib_hello.bin"] = send(make_protocol("rencode", "zlib", 1), HELLO)
    vectors["zlib6_bencode_hello.bin"] = send(make_protocol("bencode", "zlib", 6), HELLO)
    vectors["lz4_hello.bin"] = send(make_protocol("rencode", "lz4", 1), HELLO)       # fast mode
    vectors["lz4_5_hello.bin"] = send(make_protocol("bencode", "lz4", 5), HELLO)     # default mode
    vectors["lz4_9_hello.bin"] = send(make_protocol("rencode", "lz4", 9), HELLO)     # HC mode
    vectors["chunked_draw.bin"] = send(make_protocol("rencode", "lz4", 1), draw_packet_rgb(5))
    vectors["chunked_clipboard.bin"] = send(make_protocol("rencode", "lz4", 1), clipboard_packet())
    vectors["chunked_three.bin"] = send(make_protocol("rencode", "lz4", 1), three_chunk_packet())

    # One connection's stream: several packets back to back through one protocol.
    p = make_protocol("rencode", "lz4", 1)
    vectors["multi_frames.bin"] = b"".join([
        send(p, PING), send(p, draw_packet_rgb(6)), send(p, PING_ECHO), send(p, HELLO), send(p, draw_packet_rgb(7)),
    ])

    # AES-CBC streams: one continuous CBC stream per direction, each frame padded on its own.
    for name, cipher in (("encrypted_pkcs7.bin", CIPHER_PKCS7), ("encrypted_legacy.bin", CIPHER_LEGACY)):
        p = make_protocol("rencode", "lz4", 1, cipher)
        vectors[name] = b"".join([send(p, PING), send(p, HELLO), send(p, draw_packet_rgb(8)), send(p, PING_ECHO),
                                  send(p, PING64)])
    # A single encrypted packet (for byte-exact re-encoding).
    vectors["encrypted_ping.bin"] = send(make_protocol("rencode", "none", 0, CIPHER_PKCS7), PING)
    return vectors


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "tests", "codec", "testdata",
                                                                "framing")
    os.makedirs(outdir, exist_ok=True)
    vectors = build()
    lines = ["# Generated by tools/golden/framing.py with xpra's net.protocol; do not edit.",
             "# file: frames as (flags, level, index, payload_size, wire_size)"]
    for name, data in sorted(vectors.items()):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
        lines.append("%s: %i bytes" % (name, len(data)))
        for fr in frames_of(data):
            lines.append("  flags=%#04x level=%#04x index=%i size=%i wire=%i" % fr)
    with open(os.path.join(outdir, "MANIFEST.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %i vectors to %s" % (len(vectors), outdir))


if __name__ == "__main__":
    main()
