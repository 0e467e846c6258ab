//! ICMPv4 (RFC 792): echo request in, echo reply out. Everything else is
//! counted as `IcmpUnsupported` for now (destination-unreachable
//! "fragmentation needed" would feed path MTU discovery later).

use super::{emit_ethernet_header, emit_ipv4_header, pad_min, Ipv4TxParams, ETHERTYPE_IPV4, ETH_HEADER_LEN, IPV4_HEADER_LEN, PROTO_ICMP};
use crate::net::stack::DropReason;
use crate::net::MacAddr;
use smoltcp::wire::{Icmpv4Message, Icmpv4Packet};
use std::net::Ipv4Addr;

pub const ICMP_ECHO_HEADER_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpMessage<'a> {
    EchoRequest { ident: u16, seq: u16, data: &'a [u8] },
}

/// Parse an ICMP message (the IPv4 payload); checksum verified.
pub fn parse_icmp(data: &[u8]) -> Result<IcmpMessage<'_>, DropReason> {
    let p = Icmpv4Packet::new_checked(data).map_err(|_| DropReason::IcmpMalformed)?;
    if !p.verify_checksum() {
        return Err(DropReason::IcmpBadChecksum);
    }
    match (p.msg_type(), p.msg_code()) {
        (Icmpv4Message::EchoRequest, 0) => Ok(IcmpMessage::EchoRequest {
            ident: p.echo_ident(),
            seq: p.echo_seq_no(),
            data: data.get(ICMP_ECHO_HEADER_LEN..).unwrap_or(&[]),
        }),
        _ => Err(DropReason::IcmpUnsupported),
    }
}

/// A whole echo-reply frame: Ethernet + IPv4 (`ip`'s TTL/ident/DF) + ICMP
/// echo reply carrying `ident`, `seq` and `data` back. Returns the length,
/// or 0 if `buf` is too small.
#[allow(clippy::too_many_arguments)]
pub fn emit_icmp_echo_reply(
    buf: &mut [u8],
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    ident: u16,
    seq: u16,
    data: &[u8],
    ip: &Ipv4TxParams,
) -> usize {
    let icmp_len = ICMP_ECHO_HEADER_LEN + data.len();
    let total = ETH_HEADER_LEN + IPV4_HEADER_LEN + icmp_len;
    if buf.len() < total {
        return 0;
    }
    emit_ethernet_header(buf, dst_mac, src_mac, ETHERTYPE_IPV4);
    let Some(iph) = buf.get_mut(ETH_HEADER_LEN..) else { return 0 };
    if emit_ipv4_header(iph, src_ip, dst_ip, PROTO_ICMP, icmp_len, ip) == 0 {
        return 0;
    }
    let Some(body) = buf.get_mut(ETH_HEADER_LEN + IPV4_HEADER_LEN..total) else { return 0 };
    let mut p = Icmpv4Packet::new_unchecked(body);
    p.set_msg_type(Icmpv4Message::EchoReply);
    p.set_msg_code(0);
    p.set_echo_ident(ident);
    p.set_echo_seq_no(seq);
    p.data_mut().copy_from_slice(data);
    p.fill_checksum();
    pad_min(buf, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::wire::ipv4::inet_checksum;

    fn echo_request(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
        let mut b = vec![8, 0, 0, 0];
        b.extend_from_slice(&ident.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(data);
        let c = inet_checksum(&[&b]);
        b[2..4].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn parses_echo_request() {
        let b = echo_request(0x1234, 7, b"ping!");
        assert_eq!(
            parse_icmp(&b).unwrap(),
            IcmpMessage::EchoRequest { ident: 0x1234, seq: 7, data: b"ping!" }
        );
    }

    #[test]
    fn malformed_and_bad_checksum_and_unsupported() {
        let b = echo_request(1, 1, b"x");
        for n in 0..8 {
            assert_eq!(parse_icmp(&b[..n]).unwrap_err(), DropReason::IcmpMalformed);
        }
        let mut bad = b.clone();
        bad[8] ^= 0xff;
        assert_eq!(parse_icmp(&bad).unwrap_err(), DropReason::IcmpBadChecksum);
        // echo reply (type 0) is not served
        let mut r = vec![0, 0, 0, 0, 0, 1, 0, 1];
        let c = inet_checksum(&[&r]);
        r[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(parse_icmp(&r).unwrap_err(), DropReason::IcmpUnsupported);
    }

    #[test]
    fn emit_reply_fields() {
        let mut buf = [0u8; 128];
        let n = emit_icmp_echo_reply(
            &mut buf,
            MacAddr([2; 6]),
            MacAddr([4; 6]),
            Ipv4Addr::new(198, 18, 0, 10),
            Ipv4Addr::new(198, 18, 0, 1),
            0xbeef,
            9,
            &[0x55; 40],
            &Ipv4TxParams::default(),
        );
        assert_eq!(n, 14 + 20 + 8 + 40);
        let icmp = &buf[34..n];
        assert_eq!(&icmp[..2], &[0, 0]);
        assert_eq!(&icmp[4..8], &[0xbe, 0xef, 0, 9]);
        assert_eq!(&icmp[8..], &[0x55; 40]);
        assert_eq!(inet_checksum(&[icmp]), 0);
        assert_eq!(inet_checksum(&[&buf[14..34]]), 0);
    }
}
