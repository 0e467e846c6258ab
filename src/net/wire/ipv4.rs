//! IPv4 (RFC 791) header parse and emit.
//!
//! Policy on receive:
//! - the header checksum is verified;
//! - fragments (MF set or a non-zero offset) are dropped and counted
//!   (`Ipv4Fragment`): baton never asks for fragmentation (it sends DF) and
//!   does not reassemble;
//! - IP options (IHL > 5) are accepted and skipped, as RFC 1122 §3.2.1.8
//!   lets a host ignore options it does not implement; none of them change
//!   how baton answers (source routes are never honoured: replies go by
//!   baton's own next hop);
//! - TTL is not checked (a host is the final hop);
//! - Ethernet padding past the total length is cut off.

use super::ipv4_from;
use crate::net::stack::DropReason;
use smoltcp::wire::{IpProtocol, Ipv4Packet};
use std::net::Ipv4Addr;

pub const IPV4_HEADER_LEN: usize = 20;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ttl: u8,
    pub ident: u16,
    /// Header length in bytes (20..=60).
    pub header_len: u8,
    pub total_len: u16,
    pub dscp: u8,
    pub ecn: u8,
}

/// Parameters of an emitted IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4TxParams {
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Default for Ipv4TxParams {
    fn default() -> Self {
        Ipv4TxParams { ttl: 64, ident: 0, dont_frag: true }
    }
}

/// Parse an IPv4 packet (the Ethernet payload, padding allowed). Returns
/// the header and the payload bounded by the total length.
pub fn parse_ipv4(data: &[u8]) -> Result<(Ipv4Header, &[u8]), DropReason> {
    let first = *data.first().ok_or(DropReason::Ipv4Truncated)?;
    if data.len() < IPV4_HEADER_LEN {
        return Err(DropReason::Ipv4Truncated);
    }
    if first >> 4 != 4 {
        return Err(DropReason::Ipv4BadVersion);
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < IPV4_HEADER_LEN || ihl > data.len() {
        return Err(DropReason::Ipv4BadHeaderLen);
    }
    let p = Ipv4Packet::new_unchecked(data);
    let total = usize::from(p.total_len());
    if total < ihl || total > data.len() {
        return Err(DropReason::Ipv4BadLength);
    }
    // Lengths are now consistent; the checked view agrees.
    let p = Ipv4Packet::new_checked(&data[..total]).map_err(|_| DropReason::Ipv4BadLength)?;
    if !p.verify_checksum() {
        return Err(DropReason::Ipv4BadChecksum);
    }
    if p.more_frags() || p.frag_offset() != 0 {
        return Err(DropReason::Ipv4Fragment);
    }
    let hdr = Ipv4Header {
        src: ipv4_from(&p.src_addr().octets()),
        dst: ipv4_from(&p.dst_addr().octets()),
        proto: u8::from(p.next_header()),
        ttl: p.hop_limit(),
        ident: p.ident(),
        header_len: ihl as u8,
        total_len: total as u16,
        dscp: p.dscp(),
        ecn: p.ecn(),
    };
    Ok((hdr, p.payload()))
}

/// Write a 20-byte IPv4 header (no options, checksum filled) for a payload
/// of `payload_len` bytes. Returns 20, or 0 if `buf` is too short or the
/// total length would not fit in 16 bits.
pub fn emit_ipv4_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    payload_len: usize,
    params: &Ipv4TxParams,
) -> usize {
    let total = IPV4_HEADER_LEN + payload_len;
    let Ok(total16) = u16::try_from(total) else {
        return 0;
    };
    let Some(hdr) = buf.get_mut(..IPV4_HEADER_LEN) else {
        return 0;
    };
    let mut p = Ipv4Packet::new_unchecked(hdr);
    p.set_version(4);
    p.set_header_len(IPV4_HEADER_LEN as u8);
    p.set_dscp(0);
    p.set_ecn(0);
    p.set_total_len(total16);
    p.set_ident(params.ident);
    p.clear_flags();
    p.set_dont_frag(params.dont_frag);
    p.set_more_frags(false);
    p.set_frag_offset(0);
    p.set_hop_limit(params.ttl);
    p.set_next_header(IpProtocol::from(proto));
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    p.fill_checksum();
    IPV4_HEADER_LEN
}

/// RFC 1071 Internet checksum over `data` (complemented), for tests.
#[cfg(test)]
pub(crate) fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in part.iter() {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A hand-made 20-byte header (RFC 791 §3.1) followed by `payload`,
    /// checksum computed by the independent test helper.
    pub(crate) fn ipv4_bytes(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut h = vec![0x45, 0x00];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        let c = inet_checksum(&[&h]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    fn fix_checksum(h: &mut [u8]) {
        let ihl = usize::from(h[0] & 0xf) * 4;
        h[10] = 0;
        h[11] = 0;
        let c = inet_checksum(&[&h[..ihl]]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn parses_hand_made_packet_and_strips_padding() {
        let mut b = ipv4_bytes([198, 18, 0, 1], [198, 18, 0, 10], 6, &[1, 2, 3]);
        b.extend_from_slice(&[0; 10]); // Ethernet padding
        let (h, p) = parse_ipv4(&b).unwrap();
        assert_eq!(h.src, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(h.dst, Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(h.proto, 6);
        assert_eq!(h.ttl, 64);
        assert_eq!(h.ident, 0x1234);
        assert_eq!(h.total_len, 23);
        assert_eq!(p, &[1, 2, 3]);
    }

    #[test]
    fn truncated_ipv4() {
        let b = ipv4_bytes([1, 1, 1, 1], [2, 2, 2, 2], 6, &[]);
        for n in 0..20 {
            assert_eq!(parse_ipv4(&b[..n]).unwrap_err(), DropReason::Ipv4Truncated);
        }
    }

    #[test]
    fn bad_version() {
        let mut b = ipv4_bytes([1, 1, 1, 1], [2, 2, 2, 2], 6, &[]);
        b[0] = 0x65;
        assert_eq!(parse_ipv4(&b).unwrap_err(), DropReason::Ipv4BadVersion);
    }

    #[test]
    fn ihl_below_five() {
        for ihl in 0..5u8 {
            let mut b = ipv4_bytes([1, 1, 1, 1], [2, 2, 2, 2], 6, &[0; 8]);
            b[0] = 0x40 | ihl;
            assert_eq!(parse_ipv4(&b).unwrap_err(), DropReason::Ipv4BadHeaderLen);
        }
    }

    #[test]
    fn ihl_past_buffer() {
        let mut b = ipv4_bytes([1, 1, 1, 1], [2, 2, 2, 2], 6, &[0; 4]);
        b[0] = 0x4f; // 60-byte header in a 24-byte packet
        assert_eq!(parse_ipv4(&b).unwrap_err(), DropReason::Ipv4BadHeaderLen);
    }

    #[test]
    fn total_length_past_frame_or_below_header() {
        let mut b = ipv4_bytes([1, 1, 1, 1], [2, 2, 2, 2], 6, &[0; 4]);
        b[2..4].copy_from_slice(&25u16.to_be_bytes());
        fix_checksum(&mut b);
        assert_eq!(parse_ipv4(&b).unwrap_err(), DropReason::Ipv4BadLength);
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        fix_checksum(&mut b);
        assert_eq!(parse_ipv4(&b).unwrap_err(), DropReason::Ipv4BadLength);
    }

    #[test]
    fn bad_header_checksum() {
        let mut b = ipv4_bytes([1, 1, 1, 1], [2, 2, 2, 2], 6, &[]);
        b[11] ^= 1;
        assert_eq!(parse_ipv4(&b).unwrap_err(), DropReason::Ipv4BadChecksum);
    }

    #[test]
    fn fragments_dropped() {
        // MF set
        let mut b = ipv4_bytes([1, 1, 1, 1], [2, 2, 2, 2], 6, &[0; 8]);
        b[6] = 0x20;
        fix_checksum(&mut b);
        assert_eq!(parse_ipv4(&b).unwrap_err(), DropReason::Ipv4Fragment);
        // offset 8 bytes, last fragment
        b[6] = 0x00;
        b[7] = 0x01;
        fix_checksum(&mut b);
        assert_eq!(parse_ipv4(&b).unwrap_err(), DropReason::Ipv4Fragment);
    }

    #[test]
    fn options_accepted_and_skipped() {
        let mut b = vec![0x46, 0, 0, 28, 0, 0, 0x40, 0, 64, 6, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2];
        b.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        b.extend_from_slice(&[9, 9, 9, 9]);
        fix_checksum(&mut b);
        let (h, p) = parse_ipv4(&b).unwrap();
        assert_eq!(h.header_len, 24);
        assert_eq!(p, &[9, 9, 9, 9]);
    }

    #[test]
    fn emit_header_bytes() {
        let mut b = [0u8; 20];
        let params = Ipv4TxParams { ttl: 64, ident: 0xabcd, dont_frag: true };
        let n = emit_ipv4_header(&mut b, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 6, 40, &params);
        assert_eq!(n, 20);
        let mut expect = [0x45, 0, 0, 60, 0xab, 0xcd, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let c = inet_checksum(&[&expect]);
        expect[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(b, expect);
        assert_eq!(emit_ipv4_header(&mut b, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, 6, 70000, &params), 0);
    }
}
