"""Minimal xpra 3.1 wire helpers for the interop tests (Python 3 stdlib only).

Enough of the protocol to craft hostile input and to decode whatever a peer sends back:
the 8-byte frame header, python-rencode 1.0.6 and xpra's bencode variant. Written from the
format, not from xpra's code; `selftest()` cross-checks it against python3-rencode when that
module is importable.
"""

import struct

HEADER_SIZE = 8
FLAG_RENCODE = 0x01
FLAG_CIPHER = 0x02
FLAG_YAML = 0x04


class DecodeError(Exception):
    """Raised on malformed or truncated input."""


def pack_header(payload_size, flags=0, level=0, index=0):
    """Returns the 8-byte xpra frame header ('P', flags, level, index, big-endian u32 size)."""
    return struct.pack(">cBBBI", b"P", flags, level, index, payload_size)


def unpack_header(data):
    """Returns (flags, level, index, payload_size) of the header at data[:8]; DecodeError if not one."""
    if len(data) < HEADER_SIZE:
        raise DecodeError("short header: %d bytes" % len(data))
    magic, flags, level, index, size = struct.unpack(">cBBBI", data[:HEADER_SIZE])
    if magic != b"P":
        raise DecodeError("bad magic %r" % magic)
    return flags, level, index, size


# ---------------------------------------------------------------- rencode (python-rencode 1.0.6)
_R_LIST, _R_DICT, _R_INT = 59, 60, 61
_R_INT1, _R_INT2, _R_INT4, _R_INT8 = 62, 63, 64, 65
_R_FLOAT32, _R_FLOAT64 = 66, 44
_R_TRUE, _R_FALSE, _R_NONE, _R_TERM = 67, 68, 69, 127
_R_INT_POS_START, _R_INT_POS_COUNT = 0, 44
_R_INT_NEG_START, _R_INT_NEG_COUNT = 70, 32
_R_STR_START, _R_STR_COUNT = 128, 64
_R_LIST_START, _R_LIST_COUNT = 192, 64
_R_DICT_START, _R_DICT_COUNT = 102, 25


def rencode_decode(data):
    """Decodes exactly one rencode value filling `data` (bytes strings stay bytes)."""
    value, pos = _r_dec(bytes(data), 0, 0)
    if pos != len(data):
        raise DecodeError("rencode: %d trailing bytes" % (len(data) - pos))
    return value


def _need(data, pos, n):
    if pos + n > len(data):
        raise DecodeError("truncated at %d (need %d)" % (pos, n))


def _r_dec(data, pos, depth):
    if depth > 100:
        raise DecodeError("rencode: too deep")
    _need(data, pos, 1)
    t = data[pos]
    if _R_INT_POS_START <= t < _R_INT_POS_START + _R_INT_POS_COUNT:
        return t - _R_INT_POS_START, pos + 1
    if _R_INT_NEG_START <= t < _R_INT_NEG_START + _R_INT_NEG_COUNT:
        return -1 - (t - _R_INT_NEG_START), pos + 1
    if _R_STR_START <= t < _R_STR_START + _R_STR_COUNT:
        n = t - _R_STR_START
        _need(data, pos + 1, n)
        return data[pos + 1:pos + 1 + n], pos + 1 + n
    if _R_LIST_START <= t < _R_LIST_START + _R_LIST_COUNT:
        out, pos = [], pos + 1
        for _ in range(t - _R_LIST_START):
            v, pos = _r_dec(data, pos, depth + 1)
            out.append(v)
        return out, pos
    if _R_DICT_START <= t < _R_DICT_START + _R_DICT_COUNT:
        out, pos = {}, pos + 1
        for _ in range(t - _R_DICT_START):
            k, pos = _r_dec(data, pos, depth + 1)
            v, pos = _r_dec(data, pos, depth + 1)
            out[_hashable(k)] = v
        return out, pos
    if 48 <= t <= 57:  # "len:bytes"
        colon = data.find(b":", pos)
        if colon < 0:
            raise DecodeError("rencode: string length without ':'")
        n = int(data[pos:colon])
        _need(data, colon + 1, n)
        return data[colon + 1:colon + 1 + n], colon + 1 + n
    if t == _R_LIST:
        out, pos = [], pos + 1
        while True:
            _need(data, pos, 1)
            if data[pos] == _R_TERM:
                return out, pos + 1
            v, pos = _r_dec(data, pos, depth + 1)
            out.append(v)
    if t == _R_DICT:
        out, pos = {}, pos + 1
        while True:
            _need(data, pos, 1)
            if data[pos] == _R_TERM:
                return out, pos + 1
            k, pos = _r_dec(data, pos, depth + 1)
            v, pos = _r_dec(data, pos, depth + 1)
            out[_hashable(k)] = v
    if t == _R_INT:
        end = data.find(bytes([_R_TERM]), pos + 1)
        if end < 0:
            raise DecodeError("rencode: unterminated big int")
        return int(data[pos + 1:end]), end + 1
    fixed = {_R_INT1: ">b", _R_INT2: ">h", _R_INT4: ">i", _R_INT8: ">q", _R_FLOAT32: ">f", _R_FLOAT64: ">d"}
    if t in fixed:
        fmt = fixed[t]
        n = struct.calcsize(fmt)
        _need(data, pos + 1, n)
        return struct.unpack(fmt, data[pos + 1:pos + 1 + n])[0], pos + 1 + n
    if t == _R_TRUE:
        return True, pos + 1
    if t == _R_FALSE:
        return False, pos + 1
    if t == _R_NONE:
        return None, pos + 1
    raise DecodeError("rencode: bad type byte %d at %d" % (t, pos))


def _hashable(k):
    return tuple(k) if isinstance(k, list) else k


def rencode_encode(v):
    """Returns the python-rencode 1.0.6 encoding of v (str as UTF-8 bytes; floats as float64)."""
    out = bytearray()
    _r_enc(v, out)
    return bytes(out)


def _r_enc(v, out):
    if v is True:
        out.append(_R_TRUE)
    elif v is False:
        out.append(_R_FALSE)
    elif v is None:
        out.append(_R_NONE)
    elif isinstance(v, int):
        if 0 <= v < _R_INT_POS_COUNT:
            out.append(_R_INT_POS_START + v)
        elif -_R_INT_NEG_COUNT <= v < 0:
            out.append(_R_INT_NEG_START - 1 - v)
        elif -128 <= v < 128:
            out += struct.pack(">Bb", _R_INT1, v)
        elif -32768 <= v < 32768:
            out += struct.pack(">Bh", _R_INT2, v)
        elif -2**31 <= v < 2**31:
            out += struct.pack(">Bi", _R_INT4, v)
        elif -2**63 <= v < 2**63:
            out += struct.pack(">Bq", _R_INT8, v)
        else:
            out.append(_R_INT)
            out += str(v).encode()
            out.append(_R_TERM)
    elif isinstance(v, float):
        out += struct.pack(">Bd", _R_FLOAT64, v)
    elif isinstance(v, (str, bytes, bytearray)):
        b = v.encode("utf-8") if isinstance(v, str) else bytes(v)
        if len(b) < _R_STR_COUNT:
            out.append(_R_STR_START + len(b))
        else:
            out += b"%d:" % len(b)
        out += b
    elif isinstance(v, (list, tuple)):
        if len(v) < _R_LIST_COUNT:
            out.append(_R_LIST_START + len(v))
            for x in v:
                _r_enc(x, out)
        else:
            out.append(_R_LIST)
            for x in v:
                _r_enc(x, out)
            out.append(_R_TERM)
    elif isinstance(v, dict):
        if len(v) < _R_DICT_COUNT:
            out.append(_R_DICT_START + len(v))
        else:
            out.append(_R_DICT)
        for k, x in v.items():
            _r_enc(k, out)
            _r_enc(x, out)
        if len(v) >= _R_DICT_COUNT:
            out.append(_R_TERM)
    else:
        raise TypeError("cannot rencode %r" % type(v))


# ---------------------------------------------------------------- bencode (xpra 3.1 variant)
def bencode_decode(data):
    """Decodes exactly one xpra-bencode value filling `data` (u<len>: strings decode as str)."""
    value, pos = _b_dec(bytes(data), 0, 0)
    if pos != len(data):
        raise DecodeError("bencode: %d trailing bytes" % (len(data) - pos))
    return value


def _b_dec(data, pos, depth):
    if depth > 100:
        raise DecodeError("bencode: too deep")
    _need(data, pos, 1)
    c = data[pos:pos + 1]
    if c == b"i":
        end = data.find(b"e", pos)
        if end < 0:
            raise DecodeError("bencode: unterminated int")
        return int(data[pos + 1:end]), end + 1
    if c in (b"l", b"d"):
        items, pos = [], pos + 1
        while True:
            _need(data, pos, 1)
            if data[pos:pos + 1] == b"e":
                pos += 1
                break
            v, pos = _b_dec(data, pos, depth + 1)
            items.append(v)
        if c == b"l":
            return items, pos
        if len(items) % 2:
            raise DecodeError("bencode: odd dict")
        return {_hashable(items[i]): items[i + 1] for i in range(0, len(items), 2)}, pos
    text = c == b"u"
    start = pos + 1 if text else pos
    colon = data.find(b":", start)
    if colon < 0 or not data[start:colon].isdigit():
        raise DecodeError("bencode: bad token at %d" % pos)
    n = int(data[start:colon])
    _need(data, colon + 1, n)
    raw = data[colon + 1:colon + 1 + n]
    return (raw.decode("utf-8") if text else raw), colon + 1 + n


def bencode_encode(v):
    """Returns the xpra-bencode encoding of v (bools as ints, str as UTF-8 byte strings)."""
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode("utf-8")
    if isinstance(v, (bytes, bytearray)):
        return b"%d:" % len(v) + bytes(v)
    if isinstance(v, (list, tuple)):
        return b"l" + b"".join(bencode_encode(x) for x in v) + b"e"
    if isinstance(v, dict):
        return b"d" + b"".join(bencode_encode(k) + bencode_encode(x) for k, x in v.items()) + b"e"
    raise TypeError("cannot bencode %r" % type(v))


# ---------------------------------------------------------------- frames and replies
def encode_packet(packet, use_rencode=True):
    """Returns header + payload for one uncompressed, unencrypted packet."""
    if use_rencode:
        payload = rencode_encode(packet)
        return pack_header(len(payload), FLAG_RENCODE) + payload
    payload = bencode_encode(packet)
    return pack_header(len(payload), 0) + payload


def hello_packet(extra=None):
    """A plausible client hello (no auth fields), as a list."""
    caps = {
        "version": "3.1.3",
        "rencode": True,
        "bencode": True,
        "compression_level": 0,
        "compressors": ["none"],
        "username": "nobody",
        "uuid": "0123456789abcdef",
        "digest": ["hmac", "hmac+sha1", "hmac+sha256", "hmac+sha512"],
        "salt-digest": ["hmac+sha1", "hmac+sha256", "hmac+sha512"],
    }
    caps.update(extra or {})
    return ["hello", caps]


def decode_frames(data):
    """Splits `data` into frames and decodes each uncompressed main packet.

    Returns (packets, rest): packets is a list of decoded lists, rest the undecodable tail
    (a partial frame). Raises DecodeError on bad magic, compressed or encrypted frames.
    """
    packets = []
    pos = 0
    while len(data) - pos >= HEADER_SIZE:
        flags, level, index, size = unpack_header(data[pos:pos + HEADER_SIZE])
        if len(data) - pos - HEADER_SIZE < size:
            break
        payload = data[pos + HEADER_SIZE:pos + HEADER_SIZE + size]
        pos += HEADER_SIZE + size
        if flags & FLAG_CIPHER:
            raise DecodeError("encrypted frame")
        if level != 0:
            payload = _decompress(level, payload)
        if index != 0:
            raise DecodeError("chunked frame index %d" % index)
        if flags & FLAG_RENCODE:
            packets.append(rencode_decode(payload))
        elif flags & FLAG_YAML:
            raise DecodeError("yaml frame")
        else:
            packets.append(bencode_decode(payload))
    return packets, data[pos:]


def _decompress(level, payload):
    import zlib
    kind = level & 0xF0
    if kind == 0x00:
        return zlib.decompress(payload)
    raise DecodeError("compressor 0x%02x not supported by the test decoder" % kind)


def text(v):
    """bytes -> str (latin-1, as xpra converts); anything else unchanged."""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("latin-1")
    return v


def classify_reply(data):
    """Describes what a peer sent back before closing a bad connection.

    Returns (kind, detail): ("nothing", ""), ("disconnect", reason text) for framed disconnect
    packets, ("text-disconnect", line) for xpra's plain "disconnect: ..." line, ("http", status
    line) for an HTTP error reply, or ("other", repr) for anything else.
    """
    if not data:
        return "nothing", ""
    if data[:1] == b"P":
        try:
            packets, rest = decode_frames(data)
        except DecodeError as e:
            return "other", "undecodable frames (%s): %r" % (e, data[:120])
        if packets and not rest and all(p and text(p[0]) == "disconnect" for p in packets):
            return "disconnect", "; ".join(" | ".join(str(text(x)) for x in p[1:]) for p in packets)
        return "other", "packets %r rest %r" % ([p[:1] for p in packets], rest[:40])
    if data.startswith(b"disconnect: "):
        return "text-disconnect", data.decode("latin-1").strip()
    if data.startswith(b"HTTP/1.") and data[9:10] in (b"4", b"5"):
        return "http", data.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("latin-1")
    return "other", repr(data[:120])


def selftest():
    """Round-trips sample values; cross-checks against python3-rencode when available."""
    samples = [
        ["disconnect", "authentication failed", "x"],
        ["hello", {"version": "3.1.3", "n": 1000, "neg": -5, "big": 2**40, "huge": 2**70,
                   "f": 1.5, "t": True, "none": None, "l": list(range(70)), "s": "x" * 100}],
    ]
    for s in samples:
        assert _norm(rencode_decode(rencode_encode(s))) == _norm(s), s
        plain = _bencodable(s)
        assert _norm(bencode_decode(bencode_encode(plain))) == _norm(_bools_to_int(plain)), s
    try:
        import rencode  # python3-rencode, present on Debian's /usr/bin/python3
    except ImportError:
        return "selftest ok (python3-rencode not importable: no cross-check)"
    for s in samples:
        theirs = rencode.dumps(s)
        assert _norm(rencode_decode(theirs)) == _norm(s), s
        assert _norm(rencode.loads(rencode_encode(s))) == _norm(s), s
    return "selftest ok (cross-checked with python3-rencode)"


def _bencodable(v):
    if isinstance(v, list):
        return [_bencodable(x) for x in v]
    if isinstance(v, dict):
        return {k: _bencodable(x) for k, x in v.items() if x is not None and not isinstance(x, float)}
    return v


def _bools_to_int(v):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, list):
        return [_bools_to_int(x) for x in v]
    if isinstance(v, dict):
        return {k: _bools_to_int(x) for k, x in v.items()}
    return v


def _norm(v):
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {_norm(k): _norm(x) for k, x in v.items()}
    return v


if __name__ == "__main__":
    print(selftest())
