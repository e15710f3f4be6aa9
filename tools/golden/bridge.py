#!/usr/bin/python3
"""Golden packets for the bridge between xpra 3.1 and 6.x (codec/bridge.h), made by each
generation's own encoder: Debian's python3-rencode (what xpra 3.1.3 uses) and xpra 6.5.3's
rencodeplus (built once per machine, tests/interop/xpra_modern.py).

    /usr/bin/python3 tools/golden/bridge.py

For each packet NAME it writes tests/codec/testdata/bridge/:
  NAME.in.bin   the frame(s) as the sending generation writes them (3.1: rencode, zlib above
                378 bytes; 6.x: rencodeplus + flush, lz4 above 378 bytes; chunks raw at index 7);
  NAME.out.bin  the main packet's payload as the receiving generation's own encoder writes the
                same packet (uncompressed): what the relay's translation must decode to, byte
                for byte once decompressed.
and seeds codec/fuzz_corpus/bridge_fuzzer with the inputs (first byte: the fuzzer's mode).
The output is deterministic; re-running it must leave `git diff` empty.
"""

import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))

import lz4.block  # noqa: E402  (python3-lz4, as xpra 3.1.3 uses)
import rencode  # noqa: E402  (python3-rencode 1.0.6: xpra 3.1.3's encoder)
import xpra_modern  # noqa: E402
from rencodeplus import RencodePlus  # noqa: E402

OUT = os.path.join(ROOT, "tests", "codec", "testdata", "bridge")
CORPUS = os.path.join(ROOT, "codec", "fuzz_corpus", "bridge_fuzzer")


def header(flags, level, index, size):
    return struct.pack("!cBBBL", b"P", flags, level, index, size)


def frame3(payload):
    """A 3.1 main frame: rencode (0x1), zlib level 1 above 378 bytes as xpra does."""
    if len(payload) > 378:
        payload = zlib.compress(payload, 1)
        return header(0x1, 1, 0, len(payload)) + payload
    return header(0x1, 0, 0, len(payload)) + payload


def frame6(payload):
    """A 6.x main frame: rencodeplus (0x10) + flush (0x8), lz4 level 1 above 378 bytes."""
    if len(payload) > 378:
        payload = lz4.block.compress(payload, store_size=True)
        return header(0x18, 0x11, 0, len(payload)) + payload
    return header(0x18, 0, 0, len(payload)) + payload


def chunk(data):
    return header(0, 0, 7, len(data)) + data


def to_bytes(v):
    """A 6.x value as 3.1 would hold it (str -> bytes)."""
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (list, tuple)):
        return [to_bytes(x) for x in v]
    if isinstance(v, dict):
        return {to_bytes(k): to_bytes(x) for k, x in v.items()}
    return v


PIXELS = bytes((i * 7) & 0xff for i in range(4096))

# (name, direction, packet as the receiving 6.x side holds it (str), chunk or None)
# direction "3to6": a 3.1 sender (every str as bytes on its wire); "6to3": a 6.x sender.
PACKETS = [
    ("key_action_3to6", "3to6",
     ["key-action", 1, "Return", True, ["mod2"], 65293, "\r", 36, 0], None),
    ("pointer_position_3to6", "3to6",
     ["pointer-position", 1, [640, 400], ["mod2"], [], {"relative-position": [12, 30]}], None),
    ("damage_sequence_3to6", "3to6", ["damage-sequence", 5, 1, 128, 128, 1500, ""], None),
    ("configure_window_3to6", "3to6",
     ["configure-window", 1, 0, 0, 960, 560, {"encodings.rgb_formats": ["RGB", "RGBX"], "state": {"focused": True}},
      0, {}, False, [640, 400], ["mod2"]], None),
    ("draw_chunk_6to3", "6to3",
     ["draw", 1, 0, 0, 64, 21, "rgb24", "", 5, 192, {"lz4": True, "flush": 0}], PIXELS),
    ("new_window_6to3", "6to3",
     ["new-window", 1, 0, 0, 499, 316, {"title": "sess6-700", "class-instance": ["xterm", "XTerm"],
                                        "pid": 8883, "size-constraints": {"minimum-size": [10, 17]},
                                        "opacity": -1, "role": ""}, {}], None),
    ("ping_6to3", "6to3", ["ping", 1765000000000, 1765000000, "sid-1"], None),
]


def main():
    try:
        x6 = xpra_modern.ensure(log=lambda m: print(m, file=sys.stderr))
    except xpra_modern.BuildError as e:
        sys.exit("error: %s" % e)
    rp = RencodePlus(x6)
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(CORPUS, exist_ok=True)
    for name, direction, packet, data in PACKETS:
        if direction == "3to6":
            wire = frame3(rencode.dumps(to_bytes(packet)))
            expected = rp.dumps(packet)
            mode = b"\x02"   # bridge_fuzzer: 3.1 -> 6.x, lz4
        else:
            six = list(packet)
            if data is not None:
                six[7] = b""     # the chunk's placeholder, bytes in 6.x as in 3.1
            wire = (chunk(data) if data is not None else b"") + frame6(rp.dumps(six))
            three = to_bytes(six)
            expected = rencode.dumps(three)
            mode = b"\x03"   # bridge_fuzzer: 6.x -> 3.1, zlib
        with open(os.path.join(OUT, name + ".in.bin"), "wb") as f:
            f.write(wire)
        with open(os.path.join(OUT, name + ".out.bin"), "wb") as f:
            f.write(expected)
        with open(os.path.join(CORPUS, name), "wb") as f:
            f.write(mode + wire)
    print("rencodeplus child: %s" % rp.close(), file=sys.stderr)


if __name__ == "__main__":
    main()
