//! ARP for Ethernet/IPv4 (RFC 826).

use super::{emit_ethernet_header, ipv4_from, mac_from, pad_min, to_smol_mac, ETHERTYPE_ARP, ETH_HEADER_LEN};
use crate::net::stack::DropReason;
use crate::net::MacAddr;
use smoltcp::wire::{ArpHardware, ArpOperation, ArpPacket};
use std::net::Ipv4Addr;

/// ARP body length for Ethernet/IPv4.
pub const ARP_LEN: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    Request,
    Reply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub op: ArpOp,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

/// Parse an Ethernet/IPv4 ARP body. Other hardware/protocol types, other
/// address lengths and unknown operations are `ArpMalformed`.
pub fn parse_arp(payload: &[u8]) -> Result<ArpRepr, DropReason> {
    let p = ArpPacket::new_checked(payload).map_err(|_| DropReason::ArpMalformed)?;
    if p.hardware_type() != ArpHardware::Ethernet
        || u16::from(p.protocol_type()) != super::ETHERTYPE_IPV4
        || p.hardware_len() != 6
        || p.protocol_len() != 4
    {
        return Err(DropReason::ArpMalformed);
    }
    let op = match p.operation() {
        ArpOperation::Request => ArpOp::Request,
        ArpOperation::Reply => ArpOp::Reply,
        _ => return Err(DropReason::ArpMalformed),
    };
    Ok(ArpRepr {
        op,
        sender_mac: mac_from(p.source_hardware_addr()),
        sender_ip: ipv4_from(p.source_protocol_addr()),
        target_mac: mac_from(p.target_hardware_addr()),
        target_ip: ipv4_from(p.target_protocol_addr()),
    })
}

fn emit_arp(buf: &mut [u8], eth_dst: MacAddr, r: &ArpRepr) -> usize {
    if buf.len() < ETH_HEADER_LEN + ARP_LEN {
        return 0;
    }
    emit_ethernet_header(buf, eth_dst, r.sender_mac, ETHERTYPE_ARP);
    let Some(body) = buf.get_mut(ETH_HEADER_LEN..ETH_HEADER_LEN + ARP_LEN) else {
        return 0;
    };
    let repr = smoltcp::wire::ArpRepr::EthernetIpv4 {
        operation: match r.op {
            ArpOp::Request => ArpOperation::Request,
            ArpOp::Reply => ArpOperation::Reply,
        },
        source_hardware_addr: to_smol_mac(r.sender_mac),
        source_protocol_addr: r.sender_ip,
        target_hardware_addr: to_smol_mac(r.target_mac),
        target_protocol_addr: r.target_ip,
    };
    repr.emit(&mut ArpPacket::new_unchecked(body));
    pad_min(buf, ETH_HEADER_LEN + ARP_LEN)
}

/// Broadcast "who has `target_ip`? tell `src_ip`". Returns the frame length.
pub fn emit_arp_request(buf: &mut [u8], src_mac: MacAddr, src_ip: Ipv4Addr, target_ip: Ipv4Addr) -> usize {
    let r = ArpRepr { op: ArpOp::Request, sender_mac: src_mac, sender_ip: src_ip, target_mac: MacAddr::ZERO, target_ip };
    emit_arp(buf, MacAddr::BROADCAST, &r)
}

/// Unicast "`src_ip` is at `src_mac`" to the asker.
pub fn emit_arp_reply(buf: &mut [u8], src_mac: MacAddr, src_ip: Ipv4Addr, dst_mac: MacAddr, dst_ip: Ipv4Addr) -> usize {
    let r = ArpRepr { op: ArpOp::Reply, sender_mac: src_mac, sender_ip: src_ip, target_mac: dst_mac, target_ip: dst_ip };
    emit_arp(buf, dst_mac, &r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 826 layout: htype 1, ptype 0x0800, hlen 6, plen 4, op, sha, spa, tha, tpa.
    fn request_bytes() -> Vec<u8> {
        let mut b = vec![0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01];
        b.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        b.extend_from_slice(&[198, 18, 0, 1]);
        b.extend_from_slice(&[0; 6]);
        b.extend_from_slice(&[198, 18, 0, 10]);
        b
    }

    #[test]
    fn parses_hand_made_request() {
        let r = parse_arp(&request_bytes()).unwrap();
        assert_eq!(r.op, ArpOp::Request);
        assert_eq!(r.sender_mac, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(r.sender_ip, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(r.target_ip, Ipv4Addr::new(198, 18, 0, 10));
    }

    #[test]
    fn malformed_arp_kinds() {
        let good = request_bytes();
        for n in 0..good.len() {
            assert_eq!(parse_arp(&good[..n]).unwrap_err(), DropReason::ArpMalformed, "len {n}");
        }
        let mut b = good.clone();
        b[1] = 6; // htype IEEE 802
        assert_eq!(parse_arp(&b).unwrap_err(), DropReason::ArpMalformed);
        let mut b = good.clone();
        b[5] = 16; // plen 16 (IPv6-sized) and buffer too short for it
        assert_eq!(parse_arp(&b).unwrap_err(), DropReason::ArpMalformed);
        let mut b = good.clone();
        b[7] = 3; // RARP request
        assert_eq!(parse_arp(&b).unwrap_err(), DropReason::ArpMalformed);
    }

    #[test]
    fn emit_reply_bytes() {
        let mut buf = [0xeeu8; 64];
        let n = emit_arp_reply(
            &mut buf,
            MacAddr([2, 0, 0, 0, 0, 0xa]),
            Ipv4Addr::new(198, 18, 0, 10),
            MacAddr([2, 0, 0, 0, 0, 1]),
            Ipv4Addr::new(198, 18, 0, 1),
        );
        assert_eq!(n, 60);
        let expect: [u8; 42] = [
            2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xa, 0x08, 0x06, // ethernet
            0, 1, 8, 0, 6, 4, 0, 2, // reply
            2, 0, 0, 0, 0, 0xa, 198, 18, 0, 10, // sender
            2, 0, 0, 0, 0, 1, 198, 18, 0, 1, // target
        ];
        assert_eq!(&buf[..42], &expect[..]);
        assert!(buf[42..60].iter().all(|&b| b == 0));
        assert_eq!(emit_arp_reply(&mut buf[..41], MacAddr::ZERO, Ipv4Addr::UNSPECIFIED, MacAddr::ZERO, Ipv4Addr::UNSPECIFIED), 0);
    }

    #[test]
    fn emit_request_is_broadcast() {
        let mut buf = [0u8; 60];
        let n = emit_arp_request(&mut buf, MacAddr([2; 6]), Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(n, 60);
        assert_eq!(&buf[..6], &[0xff; 6]);
        assert_eq!(&buf[20..22], &[0, 1]);
        assert_eq!(&buf[32..38], &[0; 6]);
        assert_eq!(&buf[38..42], &[198, 18, 0, 1]);
    }
}
