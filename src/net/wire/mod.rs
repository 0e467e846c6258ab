//! Wire formats: checked parse and emit (Ethernet, ARP, IPv4, ICMP, TCP).
//!
//! Parsing goes through `smoltcp::wire`'s checked views (`new_checked`, then
//! accessors) after baton's own length checks, so each malformed kind maps
//! to its own [`DropReason`]. TCP options are parsed here (all four SACK
//! blocks, strict option lengths). Nothing outside this module sees a
//! smoltcp type: results are baton's `MacAddr`, `Ipv4Addr`, `TcpHeader`.
//!
//! Emitters write a whole frame into a caller buffer and return its length,
//! or 0 when the buffer is too small (nothing useful is written then).
//! Frames shorter than the 60-byte Ethernet minimum are zero-padded to it.

pub mod arp;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod tcp;

pub use arp::{emit_arp_reply, emit_arp_request, parse_arp, ArpOp, ArpRepr};
pub use ethernet::{
    emit_ethernet_header, parse_ethernet, EthHeader, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETH_HEADER_LEN,
    ETH_MIN_FRAME,
};
pub use icmp::{emit_icmp_echo_reply, parse_icmp, IcmpMessage};
pub use ipv4::{
    emit_ipv4_header, parse_ipv4, Ipv4Header, Ipv4TxParams, IPV4_HEADER_LEN, PROTO_ICMP,
    PROTO_TCP, PROTO_UDP,
};
pub use tcp::{
    emit_tcp_frame, emit_tcp_frame_with, emit_tcp_segment, parse_tcp, parse_tcp_options,
    tcp_options_len, TCP_HEADER_LEN, TCP_MAX_OPTIONS,
};

use crate::net::stack::DropReason;
use crate::net::MacAddr;
use std::net::Ipv4Addr;

/// A parsed frame, one level deep past Ethernet (TCP is parsed on demand by
/// [`parse_tcp`], ICMP by [`parse_icmp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Arp { eth: EthHeader, arp: ArpRepr },
    Ipv4 { eth: EthHeader, ip: Ipv4Header, payload: &'a [u8] },
}

/// Parse Ethernet and then ARP or IPv4 (checksum verified, fragments and
/// bad lengths rejected). No address filtering: that is [`crate::net::stack`]'s.
pub fn parse_frame(frame: &[u8]) -> Result<Frame<'_>, DropReason> {
    let (eth, payload) = parse_ethernet(frame)?;
    match eth.ethertype {
        ETHERTYPE_ARP => Ok(Frame::Arp { eth, arp: parse_arp(payload)? }),
        ETHERTYPE_IPV4 => {
            let (ip, payload) = parse_ipv4(payload)?;
            Ok(Frame::Ipv4 { eth, ip, payload })
        }
        _ => Err(DropReason::EtherTypeUnknown),
    }
}

pub(crate) fn mac_from(b: &[u8]) -> MacAddr {
    let mut m = [0u8; 6];
    if b.len() == 6 {
        m.copy_from_slice(b);
    }
    MacAddr(m)
}

pub(crate) fn ipv4_from(b: &[u8]) -> Ipv4Addr {
    match b {
        [a, b, c, d] => Ipv4Addr::new(*a, *b, *c, *d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

pub(crate) fn to_smol_mac(m: MacAddr) -> smoltcp::wire::EthernetAddress {
    smoltcp::wire::EthernetAddress(m.0)
}

/// Zero-pad a frame of `len` bytes to the Ethernet minimum if `buf` allows.
pub(crate) fn pad_min(buf: &mut [u8], len: usize) -> usize {
    if len >= ETH_MIN_FRAME {
        return len;
    }
    match buf.get_mut(len..ETH_MIN_FRAME) {
        Some(pad) => {
            pad.fill(0);
            ETH_MIN_FRAME
        }
        None => len,
    }
}
