#!/usr/bin/env python3
"""Prints bench/compare's table from results.tsv (server, key, value).

usage: table.py RESULTS.tsv IDLE_CONNS BULK_BYTES THREADS SERVER...
"""
import sys

res_path, idle_conns, bulk_bytes, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
servers = sys.argv[5:]
R = {}
for line in open(res_path):
    parts = line.rstrip("\n").split("\t")
    if len(parts) == 3:
        R[(parts[0], parts[1])] = parts[2]


def kv(srv, mode):
    line = R.get((srv, mode + ".line"), "")
    d = {}
    for tok in line.split()[1:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            d[k] = v
    return d


def num(srv, key):
    try:
        return float(R[(srv, key)])
    except (KeyError, ValueError):
        return None


def ok(srv, mode):
    return kv(srv, mode).get("status") == "ok"


def util(srv, mode):
    wall, cpu = num(srv, mode + ".wall"), num(srv, mode + ".server_cpu")
    client = kv(srv, mode).get("client_cpu")
    su = cpu / wall if wall and cpu is not None else None
    cu = float(client) / wall if wall and client else None
    core = num(srv, mode + ".client_core_busy")
    return su, cu, core


def bottleneck(srv, mode):
    su, cu, core = util(srv, mode)
    if su is None:
        return "-"
    if su >= 0.85:
        return "server"
    if (core or 0) >= 0.85 or (cu or 0) >= 0.85:
        return "client"
    p99 = kv(srv, mode).get("p99_us")
    if mode != "bulk" and p99 and int(p99) >= 900_000:
        return "neither (stalls: p99 >= 0.9 s)"
    return "neither"


def tag(srv, mode):
    su, cu, core = util(srv, mode)
    if su is None:
        return ""
    return f" [S{su*100:.0f}% C{(core or 0)*100:.0f}%]"


# Each figure: (label, mode, function(srv) -> value or None, format, lower_is_better)
def per_cpu(mode, need_resumed=False):
    def f(srv):
        d = kv(srv, mode)
        if not ok(srv, mode):
            return None
        if need_resumed and d.get("resumption") != "yes":
            return "n/a"
        cpu = num(srv, mode + ".server_cpu")
        return int(d["ok"]) / cpu if cpu else None
    return f


def from_line(mode, key, scale=1.0):
    def f(srv):
        d = kv(srv, mode)
        return float(d[key]) * scale if ok(srv, mode) and key in d else None
    return f


def cpu_per_gib(srv):
    d = kv(srv, "bulk")
    cpu = num(srv, "bulk.server_cpu")
    if not ok(srv, "bulk") or not cpu or not float(d.get("bytes", 0)):
        return None
    return cpu / (float(d["bytes"]) / (1 << 30))


def idle_opened(srv):
    try:
        return int(R.get((srv, "idle.ready"), "0") or 0)
    except ValueError:
        return 0


def idle_per_10k(srv):
    b, d, k = num(srv, "idle.rss_before_kb"), num(srv, "idle.rss_during_kb"), idle_opened(srv)
    if b is None or d is None or k == 0:
        return None
    v = (d - b) / 1024.0 / k * 10000
    return v if ok(srv, "idle") else f"FAILED ({v:.1f} with {k} open)"


def idle_total(srv):
    d, k = num(srv, "idle.rss_during_kb"), idle_opened(srv)
    if d is None or k == 0:
        return None
    return d / 1024.0 if ok(srv, "idle") else f"FAILED ({d / 1024.0:.0f} with {k} open)"


rows = [
    ("full handshakes/s (wall clock)", "handshakes", from_line("handshakes", "rate"), "{:.0f}", False),
    ("full handshakes per server-CPU-s", "handshakes", per_cpu("handshakes"), "{:.0f}", False),
    ("resumed handshakes per server-CPU-s", "resumed", per_cpu("resumed", True), "{:.0f}", False),
    ("new conn + GET / p50 (ms)", "handshakes", from_line("handshakes", "p50_us", 1e-3), "{:.2f}", True),
    ("new conn + GET / p99 (ms)", "handshakes", from_line("handshakes", "p99_us", 1e-3), "{:.2f}", True),
    ("small request p50 (us, kept alive)", "latency", from_line("latency", "p50_us"), "{:.0f}", True),
    ("small request p99 (us, kept alive)", "latency", from_line("latency", "p99_us"), "{:.0f}", True),
    ("bulk download (Gbit/s)", "bulk", from_line("bulk", "gbps"), "{:.2f}", False),
    ("server CPU-s per GiB downloaded", "bulk", cpu_per_gib, "{:.2f}", True),
    (f"RSS per 10k idle conns (MiB; {idle_conns} held, scaled)", "idle", idle_per_10k, "{:.1f}", True),
    (f"server RSS with {idle_conns} idle (MiB)", "idle", idle_total, "{:.0f}", True),
]


def cell(v, fmt):
    if v is None:
        return "FAILED"
    if isinstance(v, str):
        return v
    return fmt.format(v)


peers = [s for s in servers if s != "baton"]
head = ["figure"] + servers + ([f"baton/{p}" for p in peers] if "baton" in servers else [])
table = []
for label, mode, f, fmt, lower in rows:
    vals = {s: f(s) for s in servers}
    line = [label + (" (lower=better)" if lower else "")]
    for s in servers:
        line.append(cell(vals[s], fmt) + tag(s, mode))
    if "baton" in servers:
        for p in peers:
            a, b = vals["baton"], vals[p]
            if isinstance(a, float) and isinstance(b, float) and b:
                line.append(f"{a / b:.2f}")
            else:
                line.append("n/a")
    table.append(line)
widths = [max(len(r[i]) for r in [head] + table) for i in range(len(head))]
fmt_row = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
print()
print(f"bench/compare: server pinned to one core, client ({threads} threads) + backends on the other; "
      f"bulk {bulk_bytes >> 20} MiB per download; TLS 1.3 AES-128-GCM X25519, ECDSA P-256")
print(fmt_row(head))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in table:
    print(fmt_row(r))
print("[S = server process CPU / wall (all its threads), C = client core busy (loadgen + backends + softirq)]")
print()
print("bottleneck (server >= 85% of its core; client: client core >= 85%):")
for s in servers:
    print(f"  {s}: " + ", ".join(f"{m} {bottleneck(s, m)}" for m in ["handshakes", "resumed", "latency", "bulk", "idle"])
          + f"; load average after run {R.get((s, 'loadavg'), '?')}")
if "baton" in servers:
    left = [(m, R.get(("baton", m + ".open_at_stop"), ""), R.get(("baton", m + ".time_wait_at_stop"), ""))
            for m in ["handshakes", "resumed", "latency", "bulk", "idle"]]
    print("baton: connections still held when stopped after each figure (every client had closed), of them in TIME_WAIT: "
          + ", ".join(f"{m} {v or '?'} ({tw or '?'})" for m, v, tw in left))
print("server CPU per thread (pid/name), bulk figure:")
for s in servers:
    print(f"  {s}: {R.get((s, 'bulk.threads'), '?')}")
