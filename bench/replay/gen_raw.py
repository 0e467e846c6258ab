#!/usr/bin/env python3
"""bench/replay/gen_raw.py: writes the pcap that `bench/replay/run.sh --raw`
replays into baton through net_pcap (paths that need no answer from a
client): a SYN flood from many sources, malformed and hostile frames of
several kinds, ARP requests and ICMP echo requests for baton's address.

Usage: gen_raw.py OUT.pcap [SYNS]   (Ethernet, IPv4, classic pcap)
Addresses: baton 198.18.0.2; ARP requests go to broadcast, every other
frame to net_pcap's fixed port MAC (PMAC below).
"""
import random
import struct
import sys

VIP = bytes([198, 18, 0, 2])
BCAST = b"\xff" * 6
# net_pcap gives its port 02:70:63:61:70:<port> ("pcap"); IP frames go there.
PMAC = bytes([0x02, 0x70, 0x63, 0x61, 0x70, 0x00])


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth(dst, src, typ, payload):
    return dst + src + struct.pack("!H", typ) + payload


def ipv4(src, dst, proto, payload, ttl=64, bad_csum=False, ihl=5, version=4, total=None, frag=0):
    total = 20 + len(payload) if total is None else total
    h = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total, 0x1234, frag, ttl, proto, 0, src, dst)
    c = csum(h)
    if bad_csum:
        c ^= 0x5555
    return h[:10] + struct.pack("!H", c) + h[12:] + payload


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b"", opts=b"", doff=None):
    off = (20 + len(opts)) // 4 if doff is None else doff
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, 64240, 0, 0) + opts
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(h) + len(payload))
    c = csum(pseudo + h + payload)
    return h[:16] + struct.pack("!H", c) + h[18:] + payload


def main():
    out = sys.argv[1]
    nsyn = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    rnd = random.Random(5)
    frames = []
    mac = lambda: bytes([0x02, 0, 0, 0x10, rnd.randrange(256), rnd.randrange(256)])
    # SYN flood: distinct sources 198.19.x.y, MSS + wscale + SACK-permitted.
    opts = b"\x02\x04\x05\xb4\x04\x02\x01\x03\x03\x07"
    opts += b"\0" * ((4 - len(opts) % 4) % 4)
    for i in range(nsyn):
        src = bytes([198, 19, rnd.randrange(256), rnd.randrange(1, 255)])
        t = tcp(src, VIP, rnd.randrange(1024, 65535), 443, rnd.getrandbits(32), 0, 0x02, opts=opts)
        frames.append(("syn", eth(PMAC, mac(), 0x0800, ipv4(src, VIP, 6, t))))
    for i in range(200):  # ARP who-has VIP
        sm, sip = mac(), bytes([198, 18, 0, 100 + i % 100])
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, sm, sip, b"\0" * 6, VIP)
        frames.append(("arp", eth(BCAST, sm, 0x0806, arp)))
    for i in range(200):  # ICMP echo request
        src = bytes([198, 18, 0, 100 + i % 100])
        body = struct.pack("!BBHHH", 8, 0, 0, 7, i) + b"baton-raw" * 4
        body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
        frames.append(("icmp", eth(PMAC, mac(), 0x0800, ipv4(src, VIP, 1, body))))
    src = bytes([198, 18, 0, 200])
    good_tcp = tcp(src, VIP, 40000, 443, 1, 0, 0x02, opts=opts)
    bad = {
        "runt": lambda: b"\xff" * 10,
        "ethertype_unknown": lambda: eth(PMAC, mac(), 0x88B5, b"\0" * 46),
        "ipv6": lambda: eth(PMAC, mac(), 0x86DD, b"\x60" + b"\0" * 45),
        "ip_bad_version": lambda: eth(PMAC, mac(), 0x0800, ipv4(src, VIP, 6, good_tcp, version=6)),
        "ip_bad_ihl": lambda: eth(PMAC, mac(), 0x0800, ipv4(src, VIP, 6, good_tcp, ihl=3)),
        "ip_bad_checksum": lambda: eth(PMAC, mac(), 0x0800, ipv4(src, VIP, 6, good_tcp, bad_csum=True)),
        "ip_total_len_too_big": lambda: eth(PMAC, mac(), 0x0800, ipv4(src, VIP, 6, good_tcp, total=1400)),
        "ip_fragment": lambda: eth(PMAC, mac(), 0x0800, ipv4(src, VIP, 6, good_tcp, frag=0x2000)),
        "ip_not_for_us": lambda: eth(PMAC, mac(), 0x0800, ipv4(src, bytes([198, 18, 0, 99]), 6, good_tcp)),
        "tcp_truncated": lambda: eth(PMAC, mac(), 0x0800, ipv4(src, VIP, 6, good_tcp[:12])),
        "tcp_bad_offset": lambda: eth(PMAC, mac(), 0x0800, ipv4(src, VIP, 6, tcp(src, VIP, 40001, 443, 1, 0, 0x02, doff=15))),
        "tcp_bad_checksum": lambda: eth(PMAC, mac(), 0x0800, ipv4(src, VIP, 6, good_tcp[:16] + b"\xde\xad" + good_tcp[18:])),
        "tcp_closed_port": lambda: eth(PMAC, mac(), 0x0800, ipv4(src, VIP, 6, tcp(src, VIP, 40002, 8081, 1, 0, 0x02))),
        "tcp_ack_no_conn": lambda: eth(PMAC, mac(), 0x0800, ipv4(src, VIP, 6, tcp(src, VIP, 40003, 443, 5, 77, 0x10))),
        "udp": lambda: eth(PMAC, mac(), 0x0800, ipv4(src, VIP, 17, b"\x00\x35\x00\x35\x00\x08\x00\x00")),
    }
    for k, f in bad.items():
        for _ in range(50):
            frames.append((k, f()))
    rnd.shuffle(frames)
    with open(out, "wb") as fo:
        fo.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, (_, fr) in enumerate(frames):
            fo.write(struct.pack("<IIII", i // 1000000, i % 1000000, len(fr), len(fr)) + fr)
    kinds = {}
    for k, _ in frames:
        kinds[k] = kinds.get(k, 0) + 1
    sys.stderr.write("gen_raw: %d frames: %s\n" % (len(frames), ", ".join("%s=%d" % kv for kv in sorted(kinds.items()))))


if __name__ == "__main__":
    main()
