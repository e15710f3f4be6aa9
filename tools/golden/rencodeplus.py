#!/usr/bin/python3
"""Golden rencodeplus vectors from xpra 6.5.3's own rencodeplus module (xpra.net.rencodeplus).

Run with Debian's interpreter:

    /usr/bin/python3 tools/golden/rencodeplus.py

It builds xpra 6.5.3 once per machine from ../shared/xpra-modern when the cache has none
(tests/interop/xpra_modern.py, about 2 minutes), then runs rencodeplus.dumps / loads in a
child process with the 6.5.3 modules on its path (this process keeps Debian's xpra 3.1.3 for
the shared value renderer of tools/golden/rencode_bencode.py). It writes
tests/codec/testdata/rencodeplus/:
  NAME.bin      bytes rencodeplus.dumps() wrote, or, for "dec_*" vectors, hand-made input
                rencodeplus.loads() accepts;
  NAME.out.bin  dec_* vectors: what dumps() writes for the decoded object;
  vectors.inc   {name, Value, canonical}: str -> T(), bytes -> B(), float64 -> F64().
and seeds codec/fuzz_corpus/rencodeplus_fuzzer with the same NAME.bin files. The output is
deterministic; re-running it must leave `git diff` empty.
"""

import os
import pickle
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))

import rencode_bencode as rb  # noqa: E402  (the renderer and the vectors shared with rencode)
import xpra_modern  # noqa: E402

OUT = os.path.join(ROOT, "tests", "codec", "testdata", "rencodeplus")
CORPUS = os.path.join(ROOT, "codec", "fuzz_corpus", "rencodeplus_fuzzer")

# The child: reads pickled requests ("dumps", obj) / ("loads", bytes) from stdin, answers each
# with a pickled ("ok", result) or ("error", repr); results of loads keep tuples and str/bytes.
CHILD = r"""
import pickle, sys
from xpra.net.rencodeplus import rencodeplus as rp
print(repr(rp.__version__), file=sys.stderr)
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    try:
        op, arg = pickle.load(inp)
    except EOFError:
        break
    try:
        res = ("ok", bytes(rp.dumps(arg)) if op == "dumps" else rp.loads(arg))
    except Exception as e:
        res = ("error", "%s: %s" % (type(e).__name__, e))
    pickle.dump(res, out)
    out.flush()
"""


class RencodePlus:
    """xpra 6.5.3's rencodeplus, in a child process."""

    def __init__(self, x6):
        self.proc = subprocess.Popen([xpra_modern.PYTHON, "-c", CHILD], env=x6.env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def call(self, op, arg):
        pickle.dump((op, arg), self.proc.stdin)
        self.proc.stdin.flush()
        try:
            status, res = pickle.load(self.proc.stdout)
        except EOFError:
            sys.exit("rencodeplus child died: " + self.proc.stderr.read().decode(errors="replace"))
        if status != "ok":
            raise ValueError(res)
        return res

    def dumps(self, v):
        return self.call("dumps", v)

    def loads(self, b):
        return self.call("loads", b)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        return self.proc.stderr.read().decode().strip()


def modern_hello():
    """A hello shaped like a 6.x client's: capabilities nested in dicts, bytes where 6.x sends bytes."""
    return ["hello", {
        "version": "6.5.3",
        "build": {"revision": "0", "local-modifications": 0, "date": "2026-01-01"},
        "username": "alice", "uuid": "6f1c2a4b8e0d47f39a5c7e21b3d94f08", "display": ":100",
        "digest": ("hmac+sha512", "hmac+sha384", "hmac+sha256", "xor", "keycloak"),
        "salt-digest": ("hmac+sha512", "hmac+sha384", "hmac+sha256", "xor"),
        "compressors": ("lz4", "none"), "encoders": ("rencodeplus", "yaml", "none"),
        "lz4": {"version": (1, 9, 4)}, "rencodeplus": {"version": ("Cython", 1, 0, 10)},
        "compression_level": 1,
        "packet-types": ("hello", "challenge", "disconnect", "ping", "ping_echo", "draw"),
        "encryption": {"cipher": "AES", "mode": "CBC", "iv": b"0123456789abcdef",
                       "key_salt": bytes(range(32)), "key_hash": "SHA256",
                       "key_stretch_iterations": 10000, "padding": {"options": ("PKCS#7",)},
                       "always-pad": False, "stream": True},
        "network": {"pings": 5, "bandwidth-limit": 0},
        "challenge": True,
        "ssl-upgrade": True,
        "start-new-session": {},
        "screen-id": 12345678901234567890,
        "latency": 0.0125,
    }]


def vectors():
    vecs = [v for v in rb.common_vectors() if v[0] not in ("hello",)]
    vecs += [
        ("none", None),
        ("list_with_none", [None, 1, None]),
        ("str_63", "s" * 63), ("str_64", "t" * 64), ("str_1000", "\u00e9" * 500),
        ("str_and_bytes", ["abc", b"abc", "", b""]),
        ("dict_tuple_keys", {(1, 2): "pair", (): "empty", ("a", (b"b",)): None}),
        ("dict_mixed_keys", {None: 0, True: "t", 2: "two", b"b": "bytes"}),
        ("float64_0", 0.0), ("float64_neg0", -0.0), ("float64_0_1", 0.1), ("float64_third", 1.0 / 3),
        ("float64_neg_huge", -1e300), ("float64_tiny", 5e-324), ("float64_inf", float("inf")),
        ("float64_in_dict", {"latency": 0.0125}),
        ("hello_31_shape", rb.client_hello()),
        ("hello", modern_hello()),
    ]
    # Accepted by rencodeplus.loads but never written by dumps: (name, input).
    decode_only = [
        ("dec_float32", b"B?\xc0\x00\x00"),
        ("dec_float32_in_list", b"\xc2B>\x80\x00\x00\x05"),
        ("dec_int4_small", b"@\x00\x00\x00\x05"),
        ("dec_int8_small", b"A\xff\xff\xff\xff\xff\xff\xff\xfe"),
        ("dec_long_form_short_str", b"\xc15:hello"),
        ("dec_long_form_empty_str", b"0:"),
        ("dec_terminated_list_short", b";\x01\x02\x7f"),
        ("dec_terminated_dict_short", b"<\x81a\x01\x7f"),
        ("dec_dup_keys", b"i\x81a\x01\x81b\x02\x81a\x03"),
        ("dec_int_true_key", b"h\x01\x81iC\x81t"),
        ("dec_big_18_chars", b"=100000000000000000\x7f"),
        ("dec_big_63_chars", b"=" + b"9" * 63 + b"\x7f"),
    ]
    return vecs, decode_only


def render(value, bits):
    r = rb.Renderer(bits)
    return r.render(value, 0)


def main():
    try:
        x6 = xpra_modern.ensure(log=lambda m: print(m, file=sys.stderr))
    except xpra_modern.BuildError as e:
        sys.exit("error: %s" % e)
    rp = RencodePlus(x6)
    vecs, decode_only = vectors()
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(CORPUS, exist_ok=True)
    for d in (OUT, CORPUS):
        for f in os.listdir(d):
            if f.endswith(".bin") or f == "vectors.inc":
                os.unlink(os.path.join(d, f))
    lines = ["// Generated by tools/golden/rencodeplus.py from xpra 6.5.3 rencodeplus; do not edit.",
             "// {name, value a C++ caller builds, canonical}: NAME.bin is what rencodeplus.dumps writes",
             "// for the value (canonical), or input rencodeplus.loads accepts (NAME.out.bin: re-encoded).",
             ""]

    def emit(name, data):
        for d in (OUT, CORPUS):
            rb.write(os.path.join(d, name + ".bin"), data)

    for name, value in vecs:
        data = rp.dumps(value)
        back = rp.loads(data)   # the real decoder must accept what the real encoder wrote
        assert type(back) is type(value) or isinstance(value, list), (name, type(back))
        emit(name, data)
        lines.append('{"%s", %s, true},' % (name, render(value, 64)))
    for name, data in decode_only:
        value = rp.loads(data)
        emit(name, data)
        rb.write(os.path.join(OUT, name + ".out.bin"), rp.dumps(value))
        # a float that came from a float32 on the wire renders as F32 (the decoder keeps its width)
        bits = 32 if data[:1] == b"B" or data[1:2] == b"B" else 64
        lines.append('{"%s", %s, false},' % (name, render(value, bits)))
    with open(os.path.join(OUT, "vectors.inc"), "w") as f:
        f.write("\n".join(lines) + "\n")
    version = rp.close()
    print("rencodeplus %s: %d vectors in %s" % (version, len(vecs) + len(decode_only), OUT))


if __name__ == "__main__":
    main()
