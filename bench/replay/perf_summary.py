#!/usr/bin/env python3
"""bench/replay/perf_summary.py: where baton's samples went.

Reads `perf script -F comm,tid,ip,sym --inline` (inlined frames included,
so functions the compiler folded into Worker::poll still show) on stdin and
prints, per thread and for the whole process: samples, the top functions by
self share (the leaf frame) and by inclusive share (anywhere on the stack,
once per sample), and a split into categories (first rule that matches
walking from the leaf up).

    perf script -i perf.data -F comm,tid,ip,sym --inline | bench/replay/perf_summary.py [TOP]
"""
import collections
import re
import sys

TOP = int(sys.argv[1]) if len(sys.argv) > 1 else 15

# (category, regex on a frame's symbol); first match from the leaf up wins.
RULES = [
    ("idle: sleep / scheduler", r"nanosleep|std::thread::functions::sleep|finish_task_switch|__schedule|do_sched_yield"),
    ("handshake crypto: X25519", r"x25519|curve25519|fe4_|fe_|ge_"),
    ("handshake crypto: ECDSA P-256 sign", r"nistz256|p256|ecdsa|ecp_|SigningKey|ring::ec::suite_b"),
    ("record crypto: AES-GCM", r"aes_gcm|gcm_|aes_hw|aesni|RecordProtector|ghash|gcm"),
    ("handshake: hashes / HKDF / key schedule", r"sha256|sha512|sha384|key_schedule|hkdf|hmac|Transcript|ring::digest"),
    ("clock reads", r"clock_gettime|Instant>::now|Instant>::elapsed|MonotonicClock|Timespec"),
    ("slow path / fabric channels", r"crossbeam|poll_fabric|Fabric|OwnerDirectory|Arc<T,A> as core::clone"),
    ("NIC I/O (memif driver, rx/tx bursts, mbufs)", r"memif|rte_|shim_rte|rx_burst|tx_burst|DpdkQueue|PortQueue|mbuf|Mbuf"),
    ("memory: malloc / free / memcpy", r"malloc|_int_free|cfree|memmove|memcpy|memset|realloc|alloc::raw_vec"),
    ("TLS state machine / messages", r"baton::tls::"),
    ("TCP / IP / ARP stack", r"baton::net::"),
    ("proxy / flow table / timers", r"ProxiedConn|baton::worker::conn|baton::proxy|BinaryHeap|hashbrown|FlowTable"),
    ("session tables / tickets", r"baton::session|tickets"),
    ("worker loop (other, inlined into poll)", r"Worker::poll|poll_loop_with"),
]
RULES = [(c, re.compile(r, re.I)) for c, r in RULES]


def samples(f):
    cur = None
    for line in f:
        if not line.strip():
            if cur:
                yield cur
            cur = None
            continue
        if not line.startswith((" \t", "\t")) and not line.startswith("\t"):
            parts = line.split()
            if cur:
                yield cur
            cur = (parts[0] if parts else "?", [])
            continue
        t = line.strip().split(None, 1)
        sym = t[1] if len(t) > 1 else "?"
        sym = re.sub(r" \(inlined\)$", "", sym)
        cur[1].append(sym)
    if cur:
        yield cur


def short(s, n=78):
    s = re.sub(r"\+0x[0-9a-f]+$", "", s)
    return s if len(s) <= n else s[: n - 3] + "..."


def report(name, ss):
    n = len(ss)
    if n == 0:
        return
    selfc, incl, cat = collections.Counter(), collections.Counter(), collections.Counter()
    for stack in ss:
        selfc[stack[0] if stack else "?"] += 1
        for s in set(stack):
            incl[s] += 1
        for s in stack:
            c = next((c for c, r in RULES if r.search(s)), None)
            if c:
                cat[c] += 1
                break
        else:
            cat["other"] += 1
    print(f"== {name}: {n} samples")
    print("  categories (leaf-first rule match):")
    for c, k in cat.most_common():
        print(f"    {100.0 * k / n:5.1f}%  {c}")
    print(f"  top {TOP} by self:")
    for s, k in selfc.most_common(TOP):
        print(f"    {100.0 * k / n:5.1f}%  {short(s)}")
    skip = re.compile(r"catch_unwind|call_once|spawn_unchecked|thread_start|start_thread|clone3|rust_begin_short|runtime::run|poll_loop_published|^\[unknown\]|FnOnce|do_call")
    print(f"  top {TOP} by inclusive (thread entry frames left out):")
    for s, k in [x for x in incl.most_common() if not skip.search(x[0])][:TOP]:
        print(f"    {100.0 * k / n:5.1f}%  {short(s)}")
    print()


# A sample is "work" (not the empty-poll spin) when its stack is inside one
# of these: frame handling, connection service, job completion, TX.
WORK = re.compile(r"handle_frame|Worker::service|ProxiedConn|job_done|TlsServer|connect_backend|Worker::remove|Worker::deliver|tx_burst|baton::net::|adopt", re.I)


def main():
    by = collections.defaultdict(list)
    for comm, stack in samples(sys.stdin):
        by[comm].append(stack)
    allss = [s for v in by.values() for s in v]
    total = len(allss)
    print(f"perf samples: {total}; by thread: " + ", ".join(f"{k} {100.0 * len(v) / max(total, 1):.1f}%" for k, v in sorted(by.items(), key=lambda kv: -len(kv[1]))))
    print()
    for k, v in sorted(by.items(), key=lambda kv: -len(kv[1])):
        if len(v) >= total * 0.05:
            report(k, v)
    report("whole baton process", allss)
    for k, v in sorted(by.items(), key=lambda kv: -len(kv[1])):
        if "worker" in k:
            w = [st for st in v if any(WORK.search(f) for f in st)]
            print(f"(worker samples doing work, not the empty-poll spin: {len(w)} of {len(v)}, {100.0 * len(w) / max(len(v), 1):.1f}%)")
            report(k + ", work samples only", w)


if __name__ == "__main__":
    main()
