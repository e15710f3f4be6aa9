#!/usr/bin/python3
"""Golden rencode / bencode vectors from the python implementations xpra 3.1.3 runs on.

Run with Debian's interpreter (it has python3-rencode and xpra):

    /usr/bin/python3 tools/golden/rencode_bencode.py

For each codec it writes tests/codec/testdata/<codec>/:
  NAME.bin      bytes produced by the real encoder (rencode.dumps / xpra's bencode), or, for
                "decode-only" vectors, hand-made input the real decoder accepts;
  NAME.out.bin  decode-only vectors: what the real encoder writes for the decoded object;
  vectors.inc   C++ table entries {name, Value, canonical} giving, for every NAME.bin, the
                value a C++ caller builds for that Python object (rencode_test.cc /
                bencode_test.cc include it). str -> T(), bytes -> B(), float32 -> F32().
The output is deterministic; re-running it must leave `git diff` empty.
"""

import os
import struct
import sys

import rencode
import xpra.net.bencode as xpra_bencode
from xpra.net.bencode import bencode, bdecode

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "codec", "testdata")


def pattern(n):
    """Deterministic pixel-like bytes; tests/codec and bench rebuild them with Pattern(n)."""
    return bytes(((i * 7) + (i >> 8) * 3 + (i >> 16)) & 0xFF for i in range(n))


def keycodes():
    """A slice of a real us keymap as the GTK client sends it (keyval, name, keycode, group, level)."""
    names = [("Escape", 65307, 9), ("1", 49, 10), ("exclam", 33, 10), ("2", 50, 11), ("at", 64, 11),
             ("3", 51, 12), ("numbersign", 35, 12), ("4", 52, 13), ("dollar", 36, 13), ("5", 53, 14),
             ("percent", 37, 14), ("minus", 45, 20), ("underscore", 95, 20), ("equal", 61, 21),
             ("plus", 43, 21), ("BackSpace", 65288, 22), ("Tab", 65289, 23), ("ISO_Left_Tab", 65056, 23),
             ("q", 113, 24), ("Q", 81, 24), ("w", 119, 25), ("W", 87, 25), ("Return", 65293, 36),
             ("Control_L", 65507, 37), ("a", 97, 38), ("A", 65, 38), ("Shift_L", 65505, 50),
             ("space", 32, 65), ("Caps_Lock", 65509, 66), ("F1", 65470, 67), ("Num_Lock", 65407, 77),
             ("KP_Home", 65429, 79), ("KP_7", 65463, 79), ("Super_L", 65515, 133), ("Menu", 65383, 135)]
    out = []
    for name, keyval, keycode in names:
        level = 1 if (len(name) == 1 and name.isupper()) or name in ("exclam", "at", "numbersign", "dollar",
                                                                         "percent", "underscore", "plus",
                                                                         "ISO_Left_Tab", "KP_7") else 0
        out.append((keyval, name, keycode, 0, level))
    return tuple(out)


ALIASES = ["hello", "info", "open-url", "send-file", "send-data-request", "send-data-response",
           "ack-file-chunk", "send-file-chunk", "sound-data", "new-stream", "state-changed", "new-buffer",
           "ping", "ping_echo", "info-response", "server-event", "disconnect", "set_deflate",
           "connection-lost", "gibberish", "invalid", "show-desktop", "desktop_size", "new-window",
           "new-override-redirect", "new-tray", "raise-window", "initiate-moveresize", "window-move-resize",
           "window-resized", "window-metadata", "configure-override-redirect", "lost-window", "window-icon",
           "draw", "eos", "cursor", "bell", "notify_show", "notify_close", "set-clipboard-enabled",
           "clipboard-token", "clipboard-request", "clipboard-contents", "clipboard-contents-none",
           "clipboard-pending-requests", "clipboard-enable-selections", "control", "pointer-position"]


def client_hello():
    """A client hello shaped like xpra 3.1.3's GTK client's first hello (make_hello), with
    neutral host details and AES cipher caps."""
    caps = {
        "digest": ("xor", "hmac", "hmac+sha512", "hmac+sha384", "hmac+sha256", "hmac+sha224",
                   "hmac+sha1", "hmac+md5"),
        "salt-digest": ("hmac+sha512", "hmac+sha384", "hmac+sha256", "hmac+sha224", "hmac+sha1",
                        "hmac+md5", "xor"),
        "compressors": ("zlib", "lz4", "lzo", "brotli"),
        "encoders": ("rencode", "bencode", "yaml"),
        "lz4": True, "lz4.version": "4.0.2+dfsg",
        "lzo": True, "lzo.version": "2.10",
        "zlib": True, "zlib.version": "1.0",
        "brotli": True, "brotli.version": "1.0.9",
        "rencode": True, "rencode.version": ("Cython", 1, 0, 6),
        "bencode": True, "bencode.version": ("Cython", 3, 0),
        "yaml": True, "yaml.version": "6.0",
        "file-transfer": True, "file-transfer-ask": True, "file-size-limit": 100, "file-chunks": 65536,
        "open-files": True, "open-url": True, "printing": False, "file-ask-timeout": 3600,
        "version": "3.1.3",
        "encoding.generic": True, "namespace": True, "websocket.multi-packet": True,
        "hostname": "client-host", "uuid": "6f1c2a4b8e0d47f39a5c7e21b3d94f08a6c1e2d7",
        "username": "alice", "name": "Alice Example", "client_type": "Python/GTK3",
        "python.version": (3, 11, 2), "python.bits": 64, "compression_level": 1,
        "argv": ("/usr/bin/xpra", "attach", "tcp://127.0.0.1:14500/100", "--opengl=no"),
        "build.version": "3.1.3", "build.revision": "unknown", "build.date": "2023-02-09",
        "build.bit": "64bit", "build.compiler": "gcc (Debian 12.2.0-14) 12.2.0",
        "build.python": "3.11.2", "build.cython": "0.29.32",
        "build.lib.gtk": "3.24.36", "build.lib.vpx": "1.12.0", "build.lib.x264": "0.164.3095",
        "display": ":100",
        "cipher": "AES", "cipher.mode": "CBC", "cipher.iv": "9f3a0c55e71b2d84",
        "cipher.key_salt": b"\x8d\x01\xfe\x7f\x00=\xc3\xa9salt\xff\x80\x3b\x3c\x3d\x7fend-of-salt-32",
        "cipher.key_hash": "SHA1", "cipher.key_stretch_iterations": 1000,
        "cipher.padding.options": ("PKCS#7", " "),
        "randr_notify": True, "windows": True,
        "aliases": {name: i + 1 for i, name in enumerate(ALIASES)},
        "session-type": "", "server_uuid": "",
        "notify-startup-complete": True, "wants_events": True, "setting-change": True,
        "share": False, "lock": False,
        "xkbmap_layout": "us", "xkbmap_layouts": ("us",), "xkbmap_variant": "", "xkbmap_raw": False,
        "xkbmap_query": "rules:      evdev\nmodel:      pc105\nlayout:     us\n",
        "xkbmap_query_struct": {"rules": "evdev", "model": "pc105", "layout": "us"},
        "xkbmap_mod_meanings": {"Shift_L": "shift", "Shift_R": "shift", "Caps_Lock": "lock",
                                "Control_L": "control", "Control_R": "control", "Alt_L": "mod1",
                                "Num_Lock": "mod2", "Super_L": "mod4", "ISO_Level3_Shift": "mod5"},
        "xkbmap_mod_pointermissing": ("mod2",),
        "xkbmap_keycodes": keycodes(),
        "xkbmap_x11_keycodes": {9: ("Escape", "", "Escape"), 10: ("1", "exclam", "1", "exclam"),
                                22: ("BackSpace", "BackSpace"), 65: ("space",)},
        "modifiers": (), "key_repeat": (660, 40), "keyboard_sync": True,
        "desktop_size": (1920, 1080), "desktops": 1, "desktop.names": ("Main",),
        "screen_sizes": ((":0.0", 1920, 1080, 508, 286,
                          (("DP-1", 0, 0, 1920, 1080, 527, 296),), 0, 0, 1920, 1050),),
        "antialias": {}, "cursor": {"size": 24}, "icc": {},
        "dpi.x": 96, "dpi.y": 96, "dpi": 96,
        "screen-scaling": True, "screen-scaling.enabled": False, "screen-scaling.values": (1000, 1000),
        "mouse.show": True, "mouse.initial-position": (960, 540),
        "named_cursors": True, "cursors": True,
        "double_click.time": 400, "double_click.distance": (-1, -1),
        "bell": True, "vrefresh": 60, "auto_refresh_delay": 150, "system_tray": True,
        "window.raise": True, "window.resize-counter": True,
        "window.min-size": (0, 0), "window.max-size": (32767, 32767),
        "encoding.eos": True, "av-sync": True, "av-sync.delay.default": 150,
        "sound.send": False, "sound.receive": True, "sound.decoders": ("opus", "vorbis", "wav"),
        "sound.pulseaudio": {"wrapper": "pactl", "found": True, "id": "",
                             "cookie-hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        "clipboard": True, "clipboard.notifications": True,
        "clipboard.selections": ("CLIPBOARD", "PRIMARY", "SECONDARY"),
        "clipboard.preferred-targets": ("UTF8_STRING", "TEXT", "STRING", "text/plain", "image/png"),
        "info-namespace": True, "bandwidth-detection": True, "ping-echo-sourceid": True,
        "connection-data": {"type": "wifi", "speed": 300000000, "adapter-type": "wireless", "jitter": 20},
        "encodings": ("h264", "vp9", "vp8", "mpeg4", "png", "png/P", "png/L", "webp", "rgb", "jpeg"),
        "encodings.core": ("h264", "vp9", "vp8", "png", "png/P", "png/L", "webp", "rgb24", "rgb32", "jpeg"),
        "encodings.window-icon": ("premult_argb32", "BGRA", "default", "png"),
        "encodings.cursor": ("raw", "png"),
        "encoding": "auto", "encoding.flush": True, "encoding.video_scaling": True,
        "encoding.video_max_size": (4096, 4096), "encoding.min-quality": 30, "encoding.min-speed": 30,
        "encoding.speed": 0, "encoding.rgb_lz4": True, "encoding.rgb_formats": ("RGB", "RGBX", "RGBA"),
        "encoding.full_csc_modes": {"h264": ("BGRX", "XRGB", "YUV420P", "YUV444P"),
                                    "vp9": ("YUV420P", "YUV444P"), "webp": ("BGRX", "BGRA")},
        "encoding.h264.YUV420P.profile": "high",
        "control_commands": ("show_session_info", "debug", "enable_zlib", "enable_lz4", "enable_rencode"),
        "platform": "linux", "platform.name": "Linux Debian 12 bookworm",
        "platform.release": "6.1.0-18-amd64", "platform.machine": "x86_64",
        "platform.linux_distribution": ("Debian", "12", "bookworm"),
        "gtk.version": (3, 24, 36), "cairo.version": (1, 20, 1), "pango.version": "1.50.12",
        "window.states": ("fullscreen", "maximized", "sticky", "above", "below", "shaded",
                          "iconified", "skip-taskbar", "skip-pager"),
        "metadata.supported": ("title", "icon-title", "pid", "iconic", "size-hints", "class-instance",
                               "client-machine", "transient-for", "window-type", "fullscreen",
                               "maximized", "decorations", "has-alpha", "override-redirect", "tray",
                               "modal", "role", "opacity", "xid", "group-leader", "command"),
        "pointer.grabs": True, "pointer.relative": True,
        "encoding.icons.size": (64, 64), "encoding.icons.max_size": (128, 128),
        "encoding.delta_buckets": 5,
        "start-new-session": {},
        "connect_test_request": False,
        "screen-id": 12345678901234567890,
    }
    return ["hello", caps]


def draw_packet():
    """A window update carrying 64 KiB of pixels: 128x128 BGRX, as the server's draw packet."""
    return ["draw", 2, 64, 32, 128, 128, "rgb32", pattern(65536), 417, 512,
            {"rgb_format": "BGRX", "flush": 0, "lz4": 0}]


def int_vectors():
    values = [0, 1, 43, 44, -1, -32, -33, 127, 128, -128, -129, 32767, 32768, -32768, -32769,
              2 ** 31 - 1, 2 ** 31, -2 ** 31, -2 ** 31 - 1, 2 ** 63 - 1, 2 ** 63, -2 ** 63, -2 ** 63 - 1,
              10 ** 62, -(10 ** 62 - 1)]
    out = []
    for v in values:
        name = ("neg_" if v < 0 else "") + ("1e62" if abs(v) == 10 ** 62 else
                                           "1e62m1" if abs(v) == 10 ** 62 - 1 else str(abs(v)))
        out.append(("int_" + name, v))
    return out


def common_vectors():
    """Vectors both codecs can carry (no None, no float)."""
    vecs = int_vectors()
    vecs += [
        ("true", True), ("false", False),
        ("bytes_empty", b""), ("bytes_1", b"a"), ("bytes_63", b"x" * 63), ("bytes_64", b"y" * 64),
        ("bytes_1000", b"z" * 1000), ("bytes_all", bytes(range(256))),
        ("str_empty", ""), ("str_ascii", "hello"), ("str_utf8", "caf\u00e9 \u20ac \U0001f600"),
        ("list_empty", []), ("list_nested", [1, [2, [3, []]], b"x"]), ("tuple", (1, "two", b"3")),
        ("list_63", list(range(63))), ("list_64", list(range(64))), ("list_200", list(range(-100, 100))),
        ("dict_empty", {}),
        ("dict_24", {"k%02d" % i: i for i in range(24)}),
        ("dict_25", {"k%02d" % i: i for i in range(25)}),
        ("dict_100", {"key.%d" % (99 - i): [i, "v"] for i in range(100)}),
        ("dict_unsorted", {"zeta": 1, "alpha": 2, "mid": {"b": 1, "a": 2}}),
        ("dict_int_keys", {3: "c", 1: "a", -70000: "neg", 2 ** 64: "big"}),
        ("bool_in_list", [True, False, 1, 0]),
        ("hello", client_hello()),
        ("draw", draw_packet()),
    ]
    return vecs


def rencode_vectors():
    vecs = common_vectors()
    vecs += [
        ("none", None),
        ("list_with_none", [None, 1, None]),
        ("dict_tuple_keys", {(1, 2): "pair", (): "empty", ("a", (b"b",)): None}),
        ("dict_mixed_keys", {None: 0, True: "t", 2: "two", b"b": "bytes"}),
    ]
    # Python floats: rencode.dumps writes float32 unless asked for 64 bits.
    floats32 = [("float32_0", 0.0), ("float32_neg0", -0.0), ("float32_1_5", 1.5), ("float32_0_1", 0.1),
                ("float32_neg_big", -2.5e10), ("float32_inf", float("inf")), ("float32_neg_inf", float("-inf")),
                ("float32_denormal", 1e-40), ("float32_max", 3.4028234663852886e38),
                ("float32_in_list", [0.5, 2, -0.25])]
    floats64 = [("float64_0_1", 0.1), ("float64_third", 1.0 / 3), ("float64_neg_huge", -1e300),
                ("float64_tiny", 5e-324), ("float64_in_dict", {"latency": 0.0125})]
    vecs += [(n, v, 32) for n, v in floats32] + [(n, v, 64) for n, v in floats64]
    # Accepted by python-rencode but never written by it: (name, input, ...)
    decode_only = [
        ("dec_int4_small", b"@\x00\x00\x00\x05"),
        ("dec_int8_small", b"A\xff\xff\xff\xff\xff\xff\xff\xfe"),
        ("dec_long_form_short_str", b"\xc15:hello"),
        ("dec_terminated_list_short", b";\x01\x02\x7f"),
        ("dec_terminated_dict_short", b"<\x81a\x01\x7f"),
        ("dec_dup_keys", b"i\x81a\x01\x81b\x02\x81a\x03"),
        ("dec_int_true_key", b"h\x01\x81iC\x81t"),
        ("dec_float_int_key", b"h\x01\x81iB?\x80\x00\x00\x81f"),
        # 20 distinct keys, then 1 / True / 1.0, a tuple twice and a big int twice: the sorted path.
        ("dec_dup_keys_large", b"<" + b"".join(b"\x83k%02d" % i + bytes([i]) for i in range(20)) +
         b"\x01\x81aC\x81bB?\x80\x00\x00\x81c\xc2\x01\x02\x81d\xc2\x01\x02\x81e" +
         b"=18446744073709551616\x7f\x81f=18446744073709551616\x7f\x81g\x7f"),
    ]
    return vecs, decode_only


def bencode_vectors():
    vecs = common_vectors()
    vecs += [("int_1e100", 10 ** 100), ("int_neg_1e100", -(10 ** 100))]
    decode_only = [
        ("dec_text", b"u5:hello"),
        ("dec_text_utf8", b"u7:caf\xc3\xa9 !"),
        ("dec_text_in_dict", b"du4:namel1:au1:bee"),
        ("dec_dup_keys", b"d1:ai1e1:bi2e1:ai3ee"),
        ("dec_bytes_and_int_keys", b"di1e1:a1:1i2ee"),
        ("dec_zero_len", b"l0:u0:e"),
        ("dec_dup_keys_large", b"d" + b"".join(b"3:k%02di%de" % (i, i) for i in range(20)) +
         b"1:ai1ei7e1:xi7e1:yu1:bi1e1:ai2ei7ei3eu1:bi4ee"),
    ]
    return vecs, decode_only


# --- C++ rendering -------------------------------------------------------------------------------

def cpp_string(b):
    """A C++ string_view literal ("..."sv) for bytes b, octal escapes for anything unusual."""
    out = []
    for c in b:
        ch = chr(c)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif 0x20 <= c < 0x7F and ch != "?":
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append("\\%03o" % c)
    return '"' + "".join(out) + '"sv'


def cpp_double(x):
    if x != x:
        return "std::numeric_limits<double>::quiet_NaN()"
    if x in (float("inf"), float("-inf")):
        return ("-" if x < 0 else "") + "std::numeric_limits<double>::infinity()"
    if x == 0:
        return "-0.0" if struct.pack(">d", x)[0] & 0x80 else "0.0"
    return x.hex()


class Renderer:
    def __init__(self, float_bits):
        self.float_bits = float_bits

    def inline(self, v):
        if v is None:
            return "N()"
        if v is True or v is False:
            return "Value(%s)" % ("true" if v else "false")
        if isinstance(v, int):
            if -2 ** 63 <= v < 2 ** 63:
                return "I(std::numeric_limits<int64_t>::min())" if v == -2 ** 63 else "I(%d)" % v
            return 'Big("%d")' % v
        if isinstance(v, float):
            if self.float_bits == 32:
                # What the real encoder keeps: the float32 it writes, widened back.
                narrowed = struct.unpack(">f", rencode.dumps(v)[1:5])[0]
                return "F32(%s)" % cpp_double(narrowed)
            return "F64(%s)" % cpp_double(v)
        if isinstance(v, bytes):
            if len(v) >= 4096 and v == pattern(len(v)):
                return "B(Pattern(%d))" % len(v)
            if len(v) > 16 and v == v[:1] * len(v):
                return "B(std::string(%d, '%s'))" % (len(v), chr(v[0]))
            return "B(%s)" % cpp_string(v)
        if isinstance(v, str):
            return "T(%s)" % cpp_string(v.encode("utf8"))
        if isinstance(v, (list, tuple)):
            return "L({%s})" % ", ".join(self.inline(e) for e in v)
        if isinstance(v, dict):
            return "D({%s})" % ", ".join("{%s, %s}" % (self.inline(k), self.inline(e)) for k, e in v.items())
        raise TypeError(type(v))

    def render(self, v, indent):
        """Inline when it fits in 100 columns; else lists fill lines and dicts get a line per entry."""
        text = self.inline(v)
        if len(text) + indent <= 100 or not isinstance(v, (list, tuple, dict)) or not v:
            return text
        pad = " " * (indent + 2)
        if isinstance(v, dict):
            parts = ["{%s, %s}" % (self.inline(k), self.render(e, indent + 2)) for k, e in v.items()]
            opener = "D({"
        else:
            parts = [self.render(e, indent + 2) for e in v]
            opener = "L({"
        lines, line = [], ""
        for part in parts:
            if line and ("\n" in part or "\n" in line or len(pad) + len(line) + len(part) + 2 > 100):
                lines.append(pad + line + ",")
                line = ""
            line = part if not line else line + ", " + part
        lines.append(pad + line)
        return opener + "\n%s})" % "\n".join(lines)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def generate(codec, encode, decode, vectors, decode_only, origin):
    d = os.path.join(OUT, codec)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.endswith(".bin") or f == "vectors.inc":
            os.unlink(os.path.join(d, f))
    lines = ["// Generated by tools/golden/rencode_bencode.py from %s; do not edit." % origin,
             "// {name, value a C++ caller builds, canonical}: NAME.bin is what the real encoder writes",
             "// for the value (canonical), or input the real decoder accepts (NAME.out.bin: re-encoded).",
             ""]
    for vec in vectors:
        name, value = vec[0], vec[1]
        bits = vec[2] if len(vec) > 2 else 32
        data = encode(value, bits)
        # The real decoder must accept what the real encoder wrote.
        decode(data)
        write(os.path.join(d, name + ".bin"), data)
        lines.append('{"%s", %s, true},' % (name, Renderer(bits).render(value, 0)))
    for name, data in decode_only:
        value = decode(data)
        write(os.path.join(d, name + ".bin"), data)
        write(os.path.join(d, name + ".out.bin"), encode(value, 32))
        lines.append('{"%s", %s, false},' % (name, Renderer(32).render(value, 0)))
    with open(os.path.join(d, "vectors.inc"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%s: %d vectors in %s" % (codec, len(vectors) + len(decode_only), d))


def main():
    if getattr(rencode, "__version__", None) != ("Cython", 1, 0, 6):
        sys.exit("need python3-rencode 1.0.6 (Cython), got %r" % (getattr(rencode, "__version__", None),))
    if not xpra_bencode.cython_bencode_loaded:
        sys.exit("xpra's Cython bencode module is not loaded")
    rvecs, rdec = rencode_vectors()
    generate("rencode", lambda v, bits: rencode.dumps(v, bits), rencode.loads, rvecs, rdec,
             "python-rencode %s" % (rencode.__version__,))

    def bdec(data):
        value, used = bdecode(data)
        assert used == len(data)
        return value

    bvecs, bdecs = bencode_vectors()
    generate("bencode", lambda v, bits: bencode(v), bdec, bvecs, bdecs,
             "xpra 3.1.3 cython_bencode %s" % (xpra_bencode.__version__,))


if __name__ == "__main__":
    main()
