#!/usr/bin/env python3
"""Builds the input pcap for the net_pcap test and checks baton's output pcap.

Written independently of baton's own wire code (plain struct packing from
the RFC layouts), so it can catch baton's mistakes rather than repeat them.

    pcap_frames.py write IN.pcap
    pcap_frames.py check OUT.pcap
"""
import struct
import sys

BATON_IP = bytes([198, 18, 0, 2])
PEER_IP = bytes([198, 18, 0, 1])
PEER_MAC = bytes([0x02, 0, 0, 0, 0, 0x01])
BCAST = b"\xff" * 6


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(src, dst, proto, payload, ident=1, flags_frag=0x4000, ihl=5, total=None, bad_csum=False):
    total = 20 + len(payload) if total is None else total
    hdr = struct.pack("!BBHHHBBH4s4s", (4 << 4) | ihl, 0, total, ident, flags_frag, 64, proto, 0, src, dst)
    c = csum(hdr)
    if bad_csum:
        c ^= 0x1234
    hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
    return hdr + payload


def tcp(src_ip, dst_ip, sport, dport, seq, ack, flags, window, options=b"", payload=b"", bad_csum=False):
    while len(options) % 4:
        options += b"\x01"
    off = (20 + len(options)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, window, 0, 0) + options
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    c = csum(pseudo + hdr + payload)
    if bad_csum:
        c ^= 0x00FF
    return hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload


def arp_request(sender_mac, sender_ip, target_ip):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + sender_mac + sender_ip + b"\0" * 6 + target_ip
    return eth(BCAST, sender_mac, 0x0806, body)


def icmp_echo(ident, seq, data):
    h = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data
    c = csum(h)
    return h[:2] + struct.pack("!H", c) + h[4:]


# Linux's SYN options: MSS 1460, SACK-permitted, timestamps, NOP, WS 7.
SYN_OPTS = struct.pack("!BBH", 2, 4, 1460) + b"\x04\x02" + struct.pack("!BBII", 8, 10, 12345, 0) + b"\x01" + b"\x03\x03\x07"


def frames(baton_mac):
    f = []
    f.append(("arp_request", arp_request(PEER_MAC, PEER_IP, BATON_IP)))
    f.append(("arp_for_other_ip", arp_request(PEER_MAC, PEER_IP, bytes([198, 18, 0, 77]))))
    f.append(("icmp_echo", eth(baton_mac, PEER_MAC, 0x0800, ipv4(PEER_IP, BATON_IP, 1, icmp_echo(0x42, 7, b"baton-ping-payload")))))
    f.append(("syn", eth(baton_mac, PEER_MAC, 0x0800, ipv4(PEER_IP, BATON_IP, 6, tcp(PEER_IP, BATON_IP, 40001, 443, 1000, 0, 0x02, 64240, SYN_OPTS)))))
    f.append(("unknown_flow", eth(baton_mac, PEER_MAC, 0x0800, ipv4(PEER_IP, BATON_IP, 6, tcp(PEER_IP, BATON_IP, 40002, 443, 5000, 777, 0x10, 500, b"", b"data")))))
    f.append(("bad_tcp_csum", eth(baton_mac, PEER_MAC, 0x0800, ipv4(PEER_IP, BATON_IP, 6, tcp(PEER_IP, BATON_IP, 40003, 443, 1, 0, 0x02, 500, SYN_OPTS, bad_csum=True)))))
    f.append(("bad_ip_csum", eth(baton_mac, PEER_MAC, 0x0800, ipv4(PEER_IP, BATON_IP, 6, tcp(PEER_IP, BATON_IP, 40004, 443, 1, 0, 0x02, 500, SYN_OPTS), bad_csum=True))))
    f.append(("truncated_ip", eth(baton_mac, PEER_MAC, 0x0800, ipv4(PEER_IP, BATON_IP, 6, b"")[:12])))
    f.append(("ip_total_len_too_big", eth(baton_mac, PEER_MAC, 0x0800, ipv4(PEER_IP, BATON_IP, 6, tcp(PEER_IP, BATON_IP, 40005, 443, 1, 0, 0x02, 500), total=1400))))
    f.append(("fragment", eth(baton_mac, PEER_MAC, 0x0800, ipv4(PEER_IP, BATON_IP, 6, tcp(PEER_IP, BATON_IP, 40006, 443, 1, 0, 0x02, 500), flags_frag=0x2000))))
    f.append(("runt", eth(baton_mac, PEER_MAC, 0x0800, b"")[:10]))
    f.append(("tcp_data_offset_too_big", eth(baton_mac, PEER_MAC, 0x0800, ipv4(PEER_IP, BATON_IP, 6, struct.pack("!HHIIBBHHH", 40007, 443, 1, 0, 15 << 4, 0x02, 500, 0, 0)))))
    f.append(("udp", eth(baton_mac, PEER_MAC, 0x0800, ipv4(PEER_IP, BATON_IP, 17, b"\x00\x35\x00\x35\x00\x08\x00\x00"))))
    return f


def write_pcap(path, pkts):
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, p in enumerate(pkts):
            out.write(struct.pack("<IIII", 1, i, len(p), len(p)))
            out.write(p)


def read_pcap(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    pos, pkts = 24, []
    while pos + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[pos:pos + 16])
        pkts.append(data[pos + 16:pos + 16 + incl])
        pos += 16 + incl
    return pkts


def parse_tcp_opts(opts):
    out, i = {}, 0
    while i < len(opts):
        k = opts[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        ln = opts[i + 1]
        out[k] = opts[i + 2:i + ln]
        i += ln
    return out


def check(path, baton_mac):
    pkts = read_pcap(path)
    problems = []
    arp_replies = [p for p in pkts if p[12:14] == b"\x08\x06" and p[20:22] == b"\x00\x02"]
    if len(arp_replies) != 1:
        problems.append("expected exactly 1 ARP reply, got %d" % len(arp_replies))
    else:
        a = arp_replies[0]
        if a[0:6] != PEER_MAC or a[22:28] != baton_mac or a[28:32] != BATON_IP or a[32:38] != PEER_MAC or a[38:42] != PEER_IP:
            problems.append("ARP reply fields wrong: " + a.hex())
    ip = [p for p in pkts if p[12:14] == b"\x08\x00"]
    echo = [p for p in ip if p[23] == 1]
    if len(echo) != 1:
        problems.append("expected 1 ICMP echo reply, got %d" % len(echo))
    else:
        e = echo[0]
        ihl = (e[14] & 0xF) * 4
        icmp = e[14 + ihl:]
        if icmp[0] != 0 or struct.unpack("!HH", icmp[4:8]) != (0x42, 7) or icmp[8:] != b"baton-ping-payload" or csum(icmp) != 0:
            problems.append("echo reply wrong: " + icmp.hex())
        if csum(e[14:14 + ihl]) != 0:
            problems.append("echo reply IP checksum wrong")
    tcps = [p for p in ip if p[23] == 6]
    synacks = [p for p in tcps if p[14 + 20 + 13] & 0x12 == 0x12]
    if len(synacks) < 1:
        problems.append("expected a SYN-ACK, got none")
    for p in synacks:
        t = p[34:]
        sport, dport, seq, ack, off, flags, win = struct.unpack("!HHIIBBH", t[:16])
        if (dport, ack) != (40001, 1001):
            problems.append("SYN-ACK for the wrong flow: dport %d ack %d" % (dport, ack))
        opts = parse_tcp_opts(t[20:(off >> 4) * 4])
        if 2 not in opts or 4 not in opts or 8 not in opts or 3 not in opts:
            problems.append("SYN-ACK options missing: %r" % sorted(opts))
        elif struct.unpack("!II", opts[8])[1] != 12345:
            problems.append("SYN-ACK TSecr does not echo the SYN's TSval")
        pseudo = p[26:30] + p[30:34] + struct.pack("!BBH", 0, 6, len(t))
        if csum(pseudo + t) != 0:
            problems.append("SYN-ACK TCP checksum wrong")
    # At stop, the half-open connection the SYN made is reset (baton's
    # drain timeout): a RST to that flow only, after the SYN-ACK.
    def is_stop_rst(p):
        t = p[34:]
        return struct.unpack("!H", t[2:4])[0] == 40001 and t[13] & 0x04
    stop_rsts = [p for p in tcps if p not in synacks and is_stop_rst(p)]
    others = [p for p in tcps if p not in synacks and p not in stop_rsts]
    if others:
        problems.append("unexpected TCP frames (only the SYN-ACK, and a RST to that flow at stop): %d" % len(others))
    known = len(arp_replies) + len(echo) + len(synacks) + len(stop_rsts)
    arp_requests = [p for p in pkts if p[12:14] == b"\x08\x06" and p[20:22] == b"\x00\x01"]
    if len(pkts) != known + len(arp_requests):
        problems.append("unexpected frames: %d total, %d accounted for" % (len(pkts), known))
    for m in problems:
        print("pcap check:", m)
    return not problems


if __name__ == "__main__":
    mac = bytes.fromhex(sys.argv[3].replace(":", "")) if len(sys.argv) > 3 else bytes([0x02, 0, 0, 0, 0, 0x02])
    if sys.argv[1] == "write":
        write_pcap(sys.argv[2], [p for _, p in frames(mac)])
    else:
        sys.exit(0 if check(sys.argv[2], mac) else 1)
