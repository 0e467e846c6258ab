//! Ethernet II framing (IEEE 802.3 with an EtherType; no VLAN tags).

use super::{mac_from, to_smol_mac};
use crate::net::stack::DropReason;
use crate::net::MacAddr;
use smoltcp::wire::{EthernetFrame, EthernetProtocol};

pub const ETH_HEADER_LEN: usize = 14;
/// Minimum frame length without the FCS; shorter frames are padded.
pub const ETH_MIN_FRAME: usize = 60;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthHeader {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: u16,
}

/// Split a frame into its header and payload (which may include padding:
/// the IPv4 total length is what bounds the packet).
pub fn parse_ethernet(frame: &[u8]) -> Result<(EthHeader, &[u8]), DropReason> {
    let f = EthernetFrame::new_checked(frame).map_err(|_| DropReason::TooShort)?;
    let hdr = EthHeader {
        dst: mac_from(f.dst_addr().as_bytes()),
        src: mac_from(f.src_addr().as_bytes()),
        ethertype: u16::from(f.ethertype()),
    };
    Ok((hdr, f.payload()))
}

/// Write a 14-byte Ethernet header at the start of `buf`; returns 14, or 0
/// if `buf` is shorter.
pub fn emit_ethernet_header(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) -> usize {
    let Some(hdr) = buf.get_mut(..ETH_HEADER_LEN) else {
        return 0;
    };
    let mut f = EthernetFrame::new_unchecked(hdr);
    f.set_dst_addr(to_smol_mac(dst));
    f.set_src_addr(to_smol_mac(src));
    f.set_ethertype(EthernetProtocol::from(ethertype));
    ETH_HEADER_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hand_made_header() {
        let mut f = vec![1, 2, 3, 4, 5, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x08, 0x06];
        f.extend_from_slice(&[0xaa; 4]);
        let (h, p) = parse_ethernet(&f).unwrap();
        assert_eq!(h.dst, MacAddr([1, 2, 3, 4, 5, 6]));
        assert_eq!(h.src, MacAddr([0xa, 0xb, 0xc, 0xd, 0xe, 0xf]));
        assert_eq!(h.ethertype, 0x0806);
        assert_eq!(p, &[0xaa; 4]);
    }

    #[test]
    fn truncated_ethernet_is_too_short() {
        for n in 0..14 {
            assert_eq!(parse_ethernet(&[0u8; 14][..n]).unwrap_err(), DropReason::TooShort);
        }
    }

    #[test]
    fn emit_header_layout() {
        let mut b = [0u8; 14];
        assert_eq!(emit_ethernet_header(&mut b, MacAddr([1; 6]), MacAddr([2; 6]), 0x0800), 14);
        assert_eq!(b, [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 8, 0]);
        assert_eq!(emit_ethernet_header(&mut b[..13], MacAddr([1; 6]), MacAddr([2; 6]), 0x0800), 0);
    }
}
