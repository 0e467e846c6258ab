//! Wire formats: checked parse and emit (Ethernet, ARP, IPv4, ICMP, TCP).
