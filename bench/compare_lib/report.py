"""Turns bench/compare results into a markdown table, a target check, JSON and a PNG bar plot."""

import json
import math


def fmt(v, unit=""):
    """A number with 3 significant figures and thousands separators ('-' for None)."""
    if v is None:
        return "-"
    a = abs(v)
    if a >= 100:
        s = "{:,.0f}".format(v)
    elif a >= 10:
        s = "{:.1f}".format(v)
    elif a >= 1:
        s = "{:.2f}".format(v)
    else:
        s = "{:.3g}".format(v)
    return s + (" " + unit if unit else "")


def ratio(a, b):
    """a / b, or None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    if r is None:
        return "-"
    if r >= 10:
        return "{:,.0f}x".format(r)
    if r >= 0.1:
        return "{:.2f}x".format(r)
    return "{:.3f}x".format(r)


def med(results, wl, path, metric):
    """Median of metric for path in workload wl (None if missing)."""
    p = results.get(wl, {}).get("paths", {}).get(path)
    if not p:
        return None
    return p.get("median", {}).get(metric)


def cell_status(results, wl, path, metric):
    """(text, None) when path has no figure for metric in wl ("-", "n/a" or "failed"), else (None, value)."""
    d = results.get(wl, {}).get("paths", {}).get(path)
    if d is None:
        return "-", None
    if "na" in d:
        return "n/a", None
    v = med(results, wl, path, metric)
    if v is None:
        return ("failed" if d.get("error") else "-"), None
    return None, v


def direct_ref(results, wl, path, metric):
    """The direct figure to compare path with: direct at the same N (xpra proxy runs a smaller N)."""
    if path == "xpra-proxy":
        v = med(results, wl, "direct@small", metric)
        if v is not None:
            return v
    return med(results, wl, "direct", metric)


def build_rows(results, path_keys):
    """Table rows: [(label, {path: cell text})] with every figure and its ratio to direct."""
    rows = []

    def conns(wl, path):
        return results.get(wl, {}).get("connections", {}).get(path)

    def note_n(wl, path):
        w = results.get(wl, {})
        if path == "xpra-proxy" and w.get("connections", {}).get(path) != w.get("connections", {}).get("direct"):
            return " [N=%s]" % conns(wl, path)
        return ""

    def lookup(wl, metric, path):
        """(median, None), or (None, the cell's text when there is no figure: failed or -)."""
        v = med(results, wl, path, metric)
        if v is not None:
            return v, None
        err = results.get(wl, {}).get("paths", {}).get(path, {}).get("error")
        return None, "failed" if err else "-"

    def cell_ratio(wl, metric, path, extra=None):
        v, empty = lookup(wl, metric, path)
        if empty:
            return empty
        if path == "direct":
            return fmt(v)
        parts = [fmt_ratio(ratio(v, direct_ref(results, wl, path, metric)))]
        if extra:
            parts += extra(v)
        return "%s (%s)%s" % (fmt(v), ", ".join(parts), note_n(wl, path))

    def cell_added(wl, metric, path):
        v, empty = lookup(wl, metric, path)
        if empty:
            return empty
        if path == "direct":
            return fmt(v)
        d = direct_ref(results, wl, path, metric)
        added = "%+.0f" % (v - d) if d is not None else "-"
        return "%s (%s)%s" % (fmt(v), added, note_n(wl, path))

    def cell_plain(wl, metric, path):
        v, empty = lookup(wl, metric, path)
        return empty or fmt(v) + note_n(wl, path)

    def vs(wl, metric, other, name):
        def extra(v):
            o = med(results, wl, other, metric)
            return ["%s %s" % (fmt_ratio(ratio(v, o)), name)] if o else []
        return extra

    def title(wl, default):
        return results.get(wl, {}).get("title", default)

    def per_cpu(wl, path, extra=None):
        def f(v):
            out = extra(v) if extra else []
            c = med(results, wl, path, "mb_per_cpu_s")
            return out + (["%s MB/CPU-s" % fmt(c)] if c else [])
        return f

    if "thr1" in results:
        rows.append(("%s, MB/s (x direct; MB relayed per proxy CPU-second)" % title("thr1", ""),
                     {p: cell_ratio("thr1", "mbps", p, per_cpu("thr1", p)) for p in path_keys}))
    if "thrN" in results:
        rows.append(("%s, MB/s (x direct; relay: x nginx too; MB per proxy CPU-second)" % title("thrN", ""),
                     {p: cell_ratio("thrN", "mbps", p,
                                    per_cpu("thrN", p, vs("thrN", "mbps", "nginx", "nginx") if p == "relay" else None))
                      for p in path_keys}))
    if "latency" in results:
        rows.append(("%s, p50 us (added vs direct)" % title("latency", ""),
                     {p: cell_added("latency", "p50_us", p) for p in path_keys}))
        rows.append(("%s, p99 us (added vs direct)" % title("latency", ""),
                     {p: cell_added("latency", "p99_us", p) for p in path_keys}))
    if "sessions" in results:
        def per_session(p):
            def f(v):
                out = vs("sessions", "sessions_per_s", "xpra-proxy", "xpra proxy")(v) if p == "relay" else []
                c = med(results, "sessions", p, "cpu_ms_per_session")
                return out + (["%.2f CPU-ms/session" % c] if c else [])
            return f
        rows.append(("%s (x direct; relay: x xpra proxy too; proxy CPU-ms per session)" % title("sessions", ""),
                     {p: cell_ratio("sessions", "sessions_per_s", p, per_session(p)) for p in path_keys}))
    if "idle" in results:
        rows.append(("%s, KiB of user-space memory per connection" % title("idle", ""),
                     {p: ("n/a" if p == "direct" else cell_plain("idle", "kib_per_conn", p)) for p in path_keys}))

    def cell_aes(wl, path):
        status, v = cell_status(results, wl, path, "mbps")
        if status:
            return status
        cores = med(results, wl, path, "cpu_cores")
        per_core = med(results, wl, path, "mbps_per_core")
        parts = []
        if cores is not None:
            parts.append("%.2f cores" % cores)
        if per_core is not None:
            parts.append("%s/core" % fmt(per_core))
        plain = med(results, "thr1", path, "mbps_per_core") if wl == "aes1" else None
        if plain is not None:
            parts.append("plain thr1 %s/core" % fmt(plain))
        return "%s (%s)" % (fmt(v), ", ".join(parts)) if parts else fmt(v)

    for wl in ("aes1", "aesN"):
        if wl in results:
            rows.append(("%s, MB/s (relay CPU in cores; MB/s per relay core)" % title(wl, ""),
                         {p: cell_aes(wl, p) for p in path_keys}))
    rows += build_tls_rows(results, path_keys)
    rows += build_bridge_rows(results, path_keys)
    for wl in ("ws1", "wsN"):
        if wl in results:
            rows.append(("%s, MB/s (relay CPU in cores; MB/s per relay core)" % title(wl, ""),
                         {p: cell_aes(wl, p) for p in path_keys}))
    return rows


# The TLS terminators every TLS cell of the relay is compared with (ratios from the same run).
TLS_PEERS = (("haproxy", "HAProxy"), ("nginx", "nginx"))


def build_tls_rows(results, path_keys):
    """The --tls rows: each figure, and in the relay's cells its ratio to HAProxy's and nginx's."""
    rows = []

    def vs_peers(wl, metric, v):
        out = []
        for key, name in TLS_PEERS:
            r = ratio(v, med(results, wl, key, metric))
            if r is not None:
                out.append("%s %s" % (fmt_ratio(r), name))
        return out

    def cell(wl, path, metric, second=None, second_fmt="%s"):
        d = results.get(wl, {}).get("paths", {}).get(path)
        if d is None:
            return "-"
        if "na" in d:
            return "n/a"
        v = med(results, wl, path, metric)
        if v is None:
            return "failed" if d.get("error") else "-"
        parts = vs_peers(wl, metric, v) if path == "relay" else []
        if second:
            v2 = med(results, wl, path, second)
            if v2 is not None:
                parts.append(second_fmt % fmt(v2))
                if path == "relay":
                    parts += ["%s" % x for x in vs_peers(wl, second, v2)]
        return "%s (%s)" % (fmt(v), ", ".join(parts)) if parts else fmt(v)

    def title(wl):
        return results[wl].get("title", wl)

    for wl in ("tls1", "tlsN"):
        if wl in results:
            rows.append(("%s, MB/s (relay: x HAProxy, x nginx; MB per proxy CPU-second, relay: x HAProxy, x nginx)"
                         % title(wl), {p: cell(wl, p, "mbps", "mb_per_cpu_s", "%s MB/CPU-s") for p in path_keys}))
    for wl in ("tlshs", "tlsres"):
        if wl in results:
            rows.append(("%s (relay: x HAProxy, x nginx; proxy CPU-ms per handshake)" % title(wl),
                         {p: cell(wl, p, "handshakes_per_s", "cpu_ms_per_handshake", "%s CPU-ms") for p in path_keys}))
    if "tlslogin" in results:
        rows.append(("%s (relay: x HAProxy, x nginx; proxy CPU-ms per login)" % title("tlslogin"),
                     {p: cell("tlslogin", p, "sessions_per_s", "cpu_ms_per_session", "%s CPU-ms") for p in path_keys}))
    if "tlsidle" in results:
        rows.append(("%s, KiB per connection: PSS growth (RSS growth)" % title("tlsidle"),
                     {p: cell("tlsidle", p, "kib_per_conn", "rss_kib_per_conn", "RSS %s") for p in path_keys}))
    return rows


def build_bridge_rows(results, path_keys):
    """The --bridge rows: bridged (3.1 client, 6.x server) and passthrough streams through the same
    relay: MB/s, MB per relay CPU-second and relay CPU-us per packet; a bridged cell also gives its
    CPU per packet over the passthrough row's at the same N."""
    rows = []

    def cell(wl, path, pair):
        status, v = cell_status(results, wl, path, "mbps")
        if status:
            return status
        parts = []
        cpu = med(results, wl, path, "mb_per_cpu_s")
        if cpu is not None:
            parts.append("%s MB/CPU-s" % fmt(cpu))
        us = med(results, wl, path, "us_per_packet")
        if us is not None:
            parts.append("%s CPU-us/packet" % fmt(us))
            base = med(results, pair, path, "us_per_packet") if pair else None
            r = ratio(us, base)
            if r is not None:
                parts.append("%s the passthrough's" % fmt_ratio(r))
        return "%s (%s)" % (fmt(v), ", ".join(parts)) if parts else fmt(v)

    for wl, pair in (("brg1", "pass1"), ("brg1r", "pass1"), ("pass1", None), ("brgN", "passN"), ("passN", None)):
        if wl in results:
            rows.append(("%s, MB/s (MB per relay CPU-second, relay CPU-us per packet)" % results[wl].get("title", wl),
                         {p: cell(wl, p, pair) for p in path_keys}))
    return rows


def markdown_table(results, paths):
    """The table as markdown; paths is [(key, label)]."""
    keys = [k for k, _ in paths]
    lines = ["| Workload | " + " | ".join(label for _, label in paths) + " |",
             "|---|" + "---:|" * len(paths)]
    for label, cells in build_rows(results, keys):
        lines.append("| %s | %s |" % (label, " | ".join(cells.get(k, "-") for k in keys)))
    return "\n".join(lines)


TARGETS = [
    ("1 stream >= 0.85x direct",
     lambda r: _ge(ratio(med(r, "thr1", "relay", "mbps"), med(r, "thr1", "direct", "mbps")), 0.85)),
    ("1,000 streams >= 1.2x nginx",
     lambda r: _ge(ratio(med(r, "thrN", "relay", "mbps"), med(r, "thrN", "nginx", "mbps")), 1.2)),
    ("added ping latency p50 <= 20 us",
     lambda r: _le(_diff(med(r, "latency", "relay", "p50_us"), med(r, "latency", "direct", "p50_us")), 20)),
    ("added ping latency p99 <= 100 us",
     lambda r: _le(_diff(med(r, "latency", "relay", "p99_us"), med(r, "latency", "direct", "p99_us")), 100)),
    (">= 5,000 sessions/s",
     lambda r: _ge(med(r, "sessions", "relay", "sessions_per_s"), 5000)),
    (">= 100x xpra proxy sessions/s",
     lambda r: _ge(ratio(med(r, "sessions", "relay", "sessions_per_s"),
                         med(r, "sessions", "xpra-proxy", "sessions_per_s")), 100)),
    ("<= 4 KiB user-space memory per idle relayed connection",
     lambda r: _le(med(r, "idle", "relay", "kib_per_conn"), 4.0)),
    # MB = 10^6 bytes, so 1 GB/s = 1,000 MB/s, judged per relay core (MB/s / relay CPU cores)
    ("AES-CBC client leg >= 1 GB/s relayed per core (1 stream, MB/s per relay core)",
     lambda r: _ge(med(r, "aes1", "relay", "mbps_per_core"), 1000)),
]


TARGET_WORKLOADS = ["thr1", "thrN", "latency", "latency", "sessions", "sessions", "idle", "aes1"]
TARGET_METRIC = {"thr1": "mbps", "thrN": "mbps", "latency": "p50_us", "sessions": "sessions_per_s",
                 "idle": "kib_per_conn", "aes1": "mbps_per_core"}


def _ge(v, t):
    return (None, None) if v is None else (v >= t, v)


def _le(v, t):
    return (None, None) if v is None else (v <= t, v)


def _diff(a, b):
    return None if a is None or b is None else a - b


TLS_TARGETS = [
    ("TLS 1.3 termination, 1 stream: MB per proxy CPU-second >= HAProxy's",
     lambda r: _ge(ratio(med(r, "tls1", "relay", "mb_per_cpu_s"), med(r, "tls1", "haproxy", "mb_per_cpu_s")), 1.0)),
    ("TLS 1.3 termination, many streams: MB per proxy CPU-second >= HAProxy's",
     lambda r: _ge(ratio(med(r, "tlsN", "relay", "mb_per_cpu_s"), med(r, "tlsN", "haproxy", "mb_per_cpu_s")), 1.0)),
    ("<= 16 KiB per idle TLS connection (PSS growth)",
     lambda r: _le(med(r, "tlsidle", "relay", "kib_per_conn"), 16.0)),
    ("<= 16 KiB per idle TLS connection (RSS growth)",
     lambda r: _le(med(r, "tlsidle", "relay", "rss_kib_per_conn"), 16.0)),
]


def tls_target_lines(results):
    """The --tls targets (ratios: x = relay / HAProxy), when a TLS row was run."""
    out = []
    for name, check in TLS_TARGETS:
        ok, v = check(results)
        if ok is None:
            out.append("- %s: not measured" % name)
        else:
            out.append("- %s: %s (%s)" % (name, "met" if ok else "MISSED",
                                          fmt_ratio(v) if "HAProxy" in name else fmt(v, "KiB")))
    return out


def target_lines(results):
    """One line per relay target: met / MISSED / not measured, with the measured figure."""
    if not any(k in results for k in ("thr1", "thrN", "latency", "sessions", "idle", "aes1")):
        return tls_target_lines(results)
    if any(k.startswith("tls") for k in results):
        return _plain_target_lines(results) + tls_target_lines(results)
    return _plain_target_lines(results)


def _plain_target_lines(results):
    out = []
    for (name, check), wl in zip(TARGETS, TARGET_WORKLOADS):
        ok, v = check(results)
        err = results.get(wl, {}).get("paths", {}).get("relay", {}).get("error")
        if ok is None and err and med(results, wl, "relay", TARGET_METRIC[wl]) is None:
            out.append("- %s: MISSED (the relay run failed: %s)" % (name, err.split(" (log:")[0]))
        elif ok is None:
            out.append("- %s: not measured" % name)
        else:
            out.append("- %s: %s (%s)" % (name, "met" if ok else "MISSED", fmt(v)))
    return out


def write_json(path, doc):
    """Writes doc as indented JSON."""
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=False)
        f.write("\n")


COLORS = {"direct": "#7f7f7f", "relay": "#d62728", "relay-epoll": "#8c564b", "relay-copy": "#ff9896",
          "xpra-proxy": "#9467bd", "haproxy": "#1f77b4", "nginx": "#2ca02c"}


def plot(path, results, paths, subtitle):
    """Writes a PNG with one bar chart per figure (median of the repeats, one bar per path)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("thr1", "mbps", "1 stream, MB/s (higher is better)"),
        ("thrN", "mbps", "many streams, aggregate MB/s (higher is better)"),
        ("latency", "p50_us", "ping p50, us (lower is better)"),
        ("latency", "p99_us", "ping p99, us (lower is better)"),
        ("sessions", "sessions_per_s", "full sessions/s (higher is better)"),
        ("idle", "kib_per_conn", "KiB per idle connection (lower is better)"),
        ("aes1", "mbps_per_core", "AES client leg, 1 stream, MB/s per relay core"),
    ]
    panels = [p for p in panels if p[0] in results]
    if not panels:
        return
    cols = 3
    rows = int(math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (wl, metric, name) in zip(axes.flat, panels):
        labels, values, colors = [], [], []
        for key, label in paths:
            v = med(results, wl, key, metric)
            if v is None:
                if not results[wl].get("paths", {}).get(key, {}).get("error"):
                    continue
                v = 0.0   # failed: drawn as an empty slot labelled "failed"
            n = results[wl].get("connections", {}).get(key)
            if key == "xpra-proxy" and n != results[wl].get("connections", {}).get("direct"):
                label = "%s\n(N=%s)" % (label, n)
            labels.append(label)
            values.append(v)
            colors.append(COLORS.get(key, "#333333"))
        ax.set_title(name, fontsize=10)
        if not values:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            continue
        bars = ax.bar(range(len(values)), values, color=colors)
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(labels, fontsize=8)
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > 30:
            ax.set_yscale("log")
        for b, v in zip(bars, values):
            text = fmt(v) if v > 0 else "failed"
            y = b.get_height() if v > 0 else (min(positive) if positive else 0)
            ax.annotate(text, (b.get_x() + b.get_width() / 2, y),
                        ha="center", va="bottom", fontsize=7, color="black" if v > 0 else "#d62728")
        ax.margins(y=0.15)
    fig.suptitle("xpra-relay vs direct, xpra proxy, HAProxy, nginx (loopback, medians)\n" + subtitle,
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
