#!/usr/bin/env python3
"""bench/replay/workload.py: turns a capture made by record.sh into the
workload file the replayer reads (JSON on stdout).

The capture holds both legs of every proxied connection, as seen on the
kernel side of baton's TAP: the client leg (client <-> baton:443, TLS) and
the backend leg (baton <-> backend:8080, plaintext). From the client leg: the
arrival time of each connection (its SYN) and whether its ClientHello offered
a PSK (pre_shared_key, extension 41: a resumption attempt). From the backend
leg: the bytes each way, reassembled by sequence number, split into
exchanges (a request, then its response), the think time before each
request, and which side closed first. Client legs and backend legs are paired
in the order of their SYNs (baton opens the backend connection in the order
it accepts clients; in the concurrent part of a recording two pairings could
swap, which changes nothing the replayer checks).

Usage: workload.py CAPTURE.pcap > workload.json
Only the classic pcap format (what tcpdump -w writes), Ethernet, IPv4.
"""
import base64
import json
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        end = "<"
    elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
        end = ">"
    else:
        raise SystemExit("not a classic pcap file")
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    linktype = struct.unpack(end + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit(f"link type {linktype}, want Ethernet (1)")
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + incl]
        off += incl
        t_us = sec * 1_000_000 + (frac // 1000 if nano else frac)
        yield t_us, frame


def tcp_of(frame):
    """(src, sport, dst, dport, seq, flags, payload) of an IPv4/TCP frame, or None."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != 6 or len(ip) < ihl + 20:
        return None
    total = struct.unpack(">H", ip[2:4])[0]
    src, dst = ip[12:16], ip[16:20]
    tcp = ip[ihl:total]
    sport, dport, seq = struct.unpack(">HHI", tcp[:8])
    doff = (tcp[12] >> 4) * 4
    return src, sport, dst, dport, seq, tcp[13], bytes(tcp[doff:])


def offers_psk(payload):
    """True if this (first) client payload is a ClientHello with pre_shared_key."""
    try:
        if payload[0] != 22 or payload[5] != 1:
            return False
        p = 9 + 2 + 32  # record header 5, handshake header 4, version, random
        p += 1 + payload[p]  # session id
        p += 2 + struct.unpack(">H", payload[p:p + 2])[0]  # cipher suites
        p += 1 + payload[p]  # compression
        end = p + 2 + struct.unpack(">H", payload[p:p + 2])[0]
        p += 2
        while p + 4 <= end:
            typ, ln = struct.unpack(">HH", payload[p:p + 4])
            if typ == 41:
                return True
            p += 4 + ln
    except (IndexError, struct.error):
        pass
    return False


class Flow:
    def __init__(self, t):
        self.syn_t = t
        self.isn = {}  # direction -> ISN
        self.data = {0: {}, 1: {}}  # direction -> {rel offset: (t, bytes)}
        self.fin_t = {}
        self.first_payload = None
        self.second_payload_t = None  # the client's second flight (Finished)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    flows = {}
    for t, frame in packets(sys.argv[1]):
        p = tcp_of(frame)
        if p is None:
            continue
        src, sport, dst, dport, seq, flags, payload = p
        if dport in (443, 8080):  # direction 0: towards the server side
            key, d = (src, sport, dst, dport), 0
        elif sport in (443, 8080):
            key, d = (dst, dport, src, sport), 1
        else:
            continue
        syn, fin = flags & 0x02, flags & 0x01
        if syn and d == 0 and not flags & 0x10:
            flows[key] = Flow(t)  # a new SYN starts the flow (port reuse)
        f = flows.get(key)
        if f is None:
            continue
        if syn:
            f.isn[d] = seq
            continue
        if d not in f.isn:
            continue
        rel = (seq - f.isn[d] - 1) & 0xFFFFFFFF
        if payload:
            f.data[d].setdefault(rel, (t, payload))  # first copy wins (retransmissions)
            if d == 0 and f.first_payload is None:
                f.first_payload = payload
            elif d == 0 and f.second_payload_t is None and rel > 0:
                f.second_payload_t = t
        if fin and d not in f.fin_t:
            f.fin_t[d] = t
    # baton connects to the backend once the client's handshake is done, so
    # the legs are paired in the order of the client's Finished.
    client = sorted((f for k, f in flows.items() if k[3] == 443), key=lambda f: f.second_payload_t or f.syn_t)
    backend = sorted((f for k, f in flows.items() if k[3] == 8080), key=lambda f: f.syn_t)
    if not client or len(client) != len(backend):
        raise SystemExit(f"{len(client)} client legs but {len(backend)} backend legs")
    t0 = min(c.syn_t for c in client)
    conns = []
    for c, b in zip(client, backend):
        up = sum(len(pl) for _, pl in c.data[0].values()) - len(c.first_payload or b"")
        # Segments of both directions in time order, contiguous bytes only.
        segs = []
        for d in (0, 1):
            want = 0
            for rel in sorted(b.data[d]):
                t, pl = b.data[d][rel]
                if rel + len(pl) <= want:
                    continue
                if rel > want:
                    raise SystemExit(f"hole in the backend leg at {rel} (capture lost a packet)")
                pl = pl[want - rel:]
                segs.append((t, d, pl))
                want += len(pl)
        segs.sort(key=lambda s: (s[0], s[1]))
        exchanges, last_resp_t = [], None
        for t, d, pl in segs:
            if d == 0 and (not exchanges or exchanges[-1]["response"]):
                think = 0 if last_resp_t is None else max(0, t - last_resp_t)
                exchanges.append({"think_us": think, "request": b"", "response": b""})
            if not exchanges:
                raise SystemExit("backend spoke before any request")
            key = "request" if d == 0 else "response"
            exchanges[-1][key] += pl
            if d == 1:
                last_resp_t = t
        if up < sum(len(e["request"]) for e in exchanges):
            sys.stderr.write(f"workload: warning: client leg at {c.syn_t - t0} us sent less than its paired backend leg\n")
        backend_closes = b.fin_t.get(1, 1 << 62) < b.fin_t.get(0, 1 << 62)
        close_think = 0
        if not backend_closes and 0 in c.fin_t and last_resp_t is not None:
            close_think = max(0, c.fin_t[0] - last_resp_t)
        conns.append({
            "start_us": c.syn_t - t0,
            "resumed": offers_psk(c.first_payload or b""),
            "backend_closes": backend_closes,
            "close_think_us": close_think,
            "exchanges": [{"think_us": e["think_us"],
                           "request": base64.b64encode(e["request"]).decode(),
                           "response": base64.b64encode(e["response"]).decode()} for e in exchanges],
        })
    # Concurrency: most connections open at once in the recording.
    ev = []
    for c in client:
        ev.append((c.syn_t, 1))
        ev.append((max(c.fin_t.values()) if c.fin_t else c.syn_t, -1))
    ev.sort()
    cur = peak = 0
    for _, k in ev:
        cur += k
        peak = max(peak, cur)
    out = {
        "format": "baton-replay-workload/1",
        "source": sys.argv[1].rsplit("/", 1)[-1],
        "peak_concurrency": peak,
        "connections": conns,
    }
    conns.sort(key=lambda c: c["start_us"])
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    full = sum(1 for c in conns if not c["resumed"])
    sys.stderr.write(f"workload: {len(conns)} connections ({full} full, {len(conns) - full} resumed), "
                     f"{sum(len(c['exchanges']) for c in conns)} exchanges, peak concurrency {peak}\n")


if __name__ == "__main__":
    main()
