#!/usr/bin/env python3
"""Sends N SYNs to baton from spoofed, unresolvable sources in 198.18.0.0/24
through an AF_PACKET socket on IFACE (run inside the test's namespace).

    synflood.py IFACE DST_MAC N
"""
import socket
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
import pcap_frames as P  # noqa: E402

iface, dst_mac, n = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
src_mac = bytes([0x02, 0, 0, 0, 0, 0x66])
for i in range(n):
    src = bytes([198, 18, 0, 100 + i % 100])
    seg = P.tcp(src, P.BATON_IP, 30000 + i, 443, 1000 + i, 0, 0x02, 64240, P.SYN_OPTS)
    s.send(P.eth(dst_mac, src_mac, 0x0800, P.ipv4(src, P.BATON_IP, 6, seg, ident=i)))
print(f"sent {n} SYNs")
