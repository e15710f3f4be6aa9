#!/usr/bin/python3
"""Python baseline for //bench:codec_bench: python-rencode 1.0.6 and xpra 3.1.3's bencode.

Times encode and decode of the same golden packets (tests/codec/testdata/{rencode,bencode}/
{hello,draw}.bin) the same way the C++ bench does: the median of 5 rounds, each repeating
one operation for about SECONDS/5 seconds of the thread's CPU time.

  /usr/bin/python3 bench/codec_bench_baseline.py                 table
  /usr/bin/python3 bench/codec_bench_baseline.py --json          JSON (same shape as codec_bench --json)
  bazel run -c opt //bench:codec_bench -- --json > /tmp/cpp.json
  /usr/bin/python3 bench/codec_bench_baseline.py --cpp /tmp/cpp.json   both, with C++/python ratios
  ... --python /tmp/py.json --cpp /tmp/cpp.json                       combine saved runs only
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = 5


def measure_rate(fn, seconds):
    """Median calls per CPU second (this thread) over ROUNDS rounds of about seconds/ROUNDS each."""
    clock = time.thread_time
    batch = 1
    while True:
        t0 = clock()
        for _ in range(batch):
            fn()
        if clock() - t0 > 0.01 or batch > 1 << 30:
            break
        batch *= 2
    rates = []
    for _ in range(ROUNDS):
        calls = 0
        t0 = clock()
        while True:
            for _ in range(batch):
                fn()
            calls += batch
            dt = clock() - t0
            if dt >= seconds / ROUNDS:
                break
        rates.append(calls / dt)
    rates.sort()
    return rates[len(rates) // 2]


def run_python(data_dir, seconds):
    import rencode
    import xpra.net.bencode as xb
    from xpra.net.bencode import bencode, bdecode
    if not xb.cython_bencode_loaded:
        print("warning: xpra's Cython bencode is not loaded; timing the pure python one", file=sys.stderr)

    def bdecode_all(data):
        value, used = bdecode(data)
        assert used == len(data)
        return value

    codecs = [("rencode", rencode.loads, rencode.dumps), ("bencode", bdecode_all, bencode)]
    results = []
    for codec, decode, encode in codecs:
        for packet in ("hello", "draw"):
            with open(os.path.join(data_dir, codec, packet + ".bin"), "rb") as f:
                wire = f.read()
            value = decode(wire)
            if encode(value) != wire:
                # rencode decodes str as bytes and lists as tuples: re-encoding still matches.
                sys.exit("%s %s: python does not re-encode the golden bytes" % (codec, packet))
            for op, fn in (("decode", lambda: decode(wire)), ("encode", lambda: encode(value))):
                rate = measure_rate(fn, seconds)
                results.append({"codec": codec, "packet": packet, "op": op, "bytes": len(wire),
                                "packets_per_s": round(rate, 1), "mb_per_s": round(rate * len(wire) / 1e6, 2)})
    return {"impl": "python", "versions": {"rencode": list(rencode.__version__),
                                           "bencode": [str(x) if isinstance(x, bytes) else x
                                                       for x in xb.__version__]},
            "unit": {"mb_per_s": "1e6 wire bytes/s"}, "results": results}


def key(r):
    return (r["codec"], r["packet"], r["op"])


def print_table(py, cpp=None):
    cpp_by_key = {key(r): r for r in cpp["results"]} if cpp else {}
    head = "%-8s %-6s %7s %-7s %12s %10s" % ("codec", "packet", "bytes", "op", "py pkt/s", "py MB/s")
    if cpp:
        head += " %12s %10s %8s" % ("c++ pkt/s", "c++ MB/s", "c++/py")
    print(head)
    for r in py["results"]:
        line = "%-8s %-6s %7d %-7s %12.0f %10.1f" % (r["codec"], r["packet"], r["bytes"], r["op"],
                                                       r["packets_per_s"], r["mb_per_s"])
        c = cpp_by_key.get(key(r))
        if c:
            line += " %12.0f %10.1f %7.1fx" % (c["packets_per_s"], c["mb_per_s"],
                                                c["packets_per_s"] / r["packets_per_s"])
        print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--seconds", type=float, default=2.5, help="time per codec/packet/op (default 2.5)")
    ap.add_argument("--data", default=os.path.join(ROOT, "tests", "codec", "testdata"))
    ap.add_argument("--cpp", help="codec_bench --json output to compare with")
    ap.add_argument("--python", help="use this saved --json output instead of measuring")
    args = ap.parse_args()
    if args.python:
        with open(args.python) as f:
            py = json.load(f)
    else:
        py = run_python(args.data, args.seconds)
    cpp = None
    if args.cpp:
        with open(args.cpp) as f:
            cpp = json.load(f)
    if args.json:
        out = dict(py)
        if cpp:
            out = {"python": py, "cpp": cpp}
        print(json.dumps(out, indent=1))
    else:
        print_table(py, cpp)


if __name__ == "__main__":
    main()
