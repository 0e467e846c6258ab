//! TCP header (RFC 9293 §3.1) parse and emit, with options: MSS (§3.2),
//! window scale and timestamps (RFC 7323 §2, §3), SACK-permitted and SACK
//! blocks (RFC 2018 §2, §3).
//!
//! The fixed header goes through smoltcp's checked `TcpPacket` view and its
//! checksum; options are walked here with bounds-checked slices because
//! smoltcp keeps at most three SACK blocks and tolerates odd lengths.
//!
//! Option policy on receive: EOL ends the list; NOP is skipped; any other
//! kind must have a length byte ≥ 2 that stays inside the header, else the
//! segment is dropped (`TcpBadOption`), since the rest of the list cannot be
//! trusted. A known kind with the wrong length is dropped the same way.
//! Unknown kinds are skipped. A window-scale shift above 14 is clamped to 14
//! (RFC 7323 §2.3). Options are recorded whatever the flags; the state
//! machine decides which ones count (MSS/WS/SACK-permitted only on SYN).

use super::{emit_ethernet_header, emit_ipv4_header, pad_min, Ipv4TxParams, ETHERTYPE_IPV4, ETH_HEADER_LEN, IPV4_HEADER_LEN, PROTO_TCP};
use crate::net::segment::MAX_SACK_BLOCKS;
use crate::net::stack::DropReason;
use crate::net::{IpAddress, MacAddr, TcpFlags, TcpHeader};
use smoltcp::wire::{TcpPacket, TcpSeqNumber};
use std::net::Ipv4Addr;

pub const TCP_HEADER_LEN: usize = 20;
/// Option space: the data offset is 4 bits of 32-bit words, 60 - 20.
pub const TCP_MAX_OPTIONS: usize = 40;

const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_WS: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPT_SACK: u8 = 5;
const OPT_TS: u8 = 8;

fn smol_ip(a: IpAddress) -> smoltcp::wire::IpAddress {
    match a {
        IpAddress::V4(v4) => smoltcp::wire::IpAddress::Ipv4(v4),
    }
}

fn be16(b: &[u8]) -> u16 {
    match b {
        [a, c, ..] => u16::from_be_bytes([*a, *c]),
        _ => 0,
    }
}

fn be32(b: &[u8]) -> u32 {
    match b {
        [a, c, d, e, ..] => u32::from_be_bytes([*a, *c, *d, *e]),
        _ => 0,
    }
}

/// Parse a TCP segment (the IPv4 payload) sent from `src` to `dst`:
/// lengths checked, checksum verified, options decoded. Returns the header
/// and the payload.
pub fn parse_tcp(src: IpAddress, dst: IpAddress, data: &[u8]) -> Result<(TcpHeader, &[u8]), DropReason> {
    if data.len() < TCP_HEADER_LEN {
        return Err(DropReason::TcpTruncated);
    }
    let off = usize::from(data.get(12).copied().unwrap_or(0) >> 4) * 4;
    if off < TCP_HEADER_LEN || off > data.len() {
        return Err(DropReason::TcpBadDataOffset);
    }
    let p = TcpPacket::new_checked(data).map_err(|_| DropReason::TcpBadDataOffset)?;
    if !p.verify_checksum(&smol_ip(src), &smol_ip(dst)) {
        return Err(DropReason::TcpBadChecksum);
    }
    let mut flags = 0u8;
    for (on, bit) in [
        (p.fin(), TcpFlags::FIN),
        (p.syn(), TcpFlags::SYN),
        (p.rst(), TcpFlags::RST),
        (p.psh(), TcpFlags::PSH),
        (p.ack(), TcpFlags::ACK),
        (p.urg(), TcpFlags::URG),
        (p.ece(), TcpFlags::ECE),
        (p.cwr(), TcpFlags::CWR),
    ] {
        if on {
            flags |= bit;
        }
    }
    let mut h = TcpHeader {
        src_port: p.src_port(),
        dst_port: p.dst_port(),
        seq: p.seq_number().0 as u32,
        ack: p.ack_number().0 as u32,
        flags: TcpFlags(flags),
        window: p.window_len(),
        ..TcpHeader::default()
    };
    parse_tcp_options(p.options(), &mut h)?;
    Ok((h, p.payload()))
}

/// Decode the option bytes of a TCP header into `h` (see the module policy).
pub fn parse_tcp_options(opts: &[u8], h: &mut TcpHeader) -> Result<(), DropReason> {
    let bad = DropReason::TcpBadOption;
    let mut i = 0usize;
    while let Some(&kind) = opts.get(i) {
        match kind {
            OPT_EOL => break,
            OPT_NOP => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let len = usize::from(*opts.get(i + 1).ok_or(bad)?);
        if len < 2 {
            return Err(bad);
        }
        let body = opts.get(i + 2..i + len).ok_or(bad)?;
        match kind {
            OPT_MSS => {
                if len != 4 {
                    return Err(bad);
                }
                h.mss = Some(be16(body));
            }
            OPT_WS => {
                if len != 3 {
                    return Err(bad);
                }
                h.wscale = Some(body.first().copied().unwrap_or(0).min(14));
            }
            OPT_SACK_PERM => {
                if len != 2 {
                    return Err(bad);
                }
                h.sack_permitted = true;
            }
            OPT_SACK => {
                let n = (len - 2) / 8;
                if (len - 2) % 8 != 0 || n == 0 || n > MAX_SACK_BLOCKS {
                    return Err(bad);
                }
                for (k, block) in body.chunks_exact(8).enumerate() {
                    if let Some(slot) = h.sack.get_mut(k) {
                        *slot = (be32(block), be32(block.get(4..).unwrap_or(&[])));
                    }
                }
                h.sack_len = n as u8;
            }
            OPT_TS => {
                if len != 10 {
                    return Err(bad);
                }
                h.timestamp = Some((be32(body), be32(body.get(4..).unwrap_or(&[]))));
            }
            _ => {} // unknown: skipped
        }
        i += len;
    }
    Ok(())
}

/// Option layout for `h`: (bytes, SACK blocks that fit). Always a multiple
/// of 4 and ≤ 40; SACK blocks that would not fit are left out.
fn plan_options(h: &TcpHeader) -> (usize, usize) {
    let mut len = 0;
    if h.mss.is_some() {
        len += 4;
    }
    if h.timestamp.is_some() {
        len += 12; // (NOP NOP | SACK-permitted) + TS
    } else if h.sack_permitted {
        len += 4; // NOP NOP SACK-permitted
    }
    if h.wscale.is_some() {
        len += 4; // NOP WS
    }
    let want = usize::from(h.sack_len).min(MAX_SACK_BLOCKS);
    let mut n = 0;
    if want > 0 && len + 4 + 8 <= TCP_MAX_OPTIONS {
        n = ((TCP_MAX_OPTIONS - len - 4) / 8).min(want);
        len += 4 + 8 * n;
    }
    (len, n)
}

/// Bytes of options [`emit_tcp_segment`] will write for `h`.
pub fn tcp_options_len(h: &TcpHeader) -> usize {
    plan_options(h).0
}

fn write_options(h: &TcpHeader, nsack: usize, out: &mut [u8]) {
    let mut w = 0usize;
    let mut put = |bytes: &[u8]| {
        if let Some(dst) = out.get_mut(w..w + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        w += bytes.len();
    };
    if let Some(mss) = h.mss {
        let m = mss.to_be_bytes();
        put(&[OPT_MSS, 4, m[0], m[1]]);
    }
    match (h.timestamp, h.sack_permitted) {
        (Some((v, e)), sp) => {
            if sp {
                put(&[OPT_SACK_PERM, 2]);
            } else {
                put(&[OPT_NOP, OPT_NOP]);
            }
            put(&[OPT_TS, 10]);
            put(&v.to_be_bytes());
            put(&e.to_be_bytes());
        }
        (None, true) => put(&[OPT_NOP, OPT_NOP, OPT_SACK_PERM, 2]),
        (None, false) => {}
    }
    if let Some(ws) = h.wscale {
        put(&[OPT_NOP, OPT_WS, 3, ws]);
    }
    if nsack > 0 {
        put(&[OPT_NOP, OPT_NOP, OPT_SACK, (2 + 8 * nsack) as u8]);
        for &(l, r) in h.sack.iter().take(nsack) {
            put(&l.to_be_bytes());
            put(&r.to_be_bytes());
        }
    }
}

/// Write a TCP segment (header, options, payload, checksum over the IPv4
/// pseudo-header) into `buf`. Returns its length, or 0 if `buf` is too small.
pub fn emit_tcp_segment(buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, h: &TcpHeader, payload: &[u8]) -> usize {
    let (olen, nsack) = plan_options(h);
    let hlen = TCP_HEADER_LEN + olen;
    let total = hlen + payload.len();
    let Some(seg) = buf.get_mut(..total) else {
        return 0;
    };
    seg[..TCP_HEADER_LEN].fill(0);
    let mut p = TcpPacket::new_unchecked(&mut seg[..]);
    p.set_src_port(h.src_port);
    p.set_dst_port(h.dst_port);
    p.set_seq_number(TcpSeqNumber(h.seq as i32));
    p.set_ack_number(TcpSeqNumber(h.ack as i32));
    p.clear_flags();
    p.set_header_len(hlen as u8);
    let f = h.flags;
    p.set_fin(f.has(TcpFlags::FIN));
    p.set_syn(f.has(TcpFlags::SYN));
    p.set_rst(f.has(TcpFlags::RST));
    p.set_psh(f.has(TcpFlags::PSH));
    p.set_ack(f.has(TcpFlags::ACK));
    p.set_urg(f.has(TcpFlags::URG));
    p.set_ece(f.has(TcpFlags::ECE));
    p.set_cwr(f.has(TcpFlags::CWR));
    p.set_window_len(h.window);
    p.set_urgent_at(0);
    write_options(h, nsack, p.options_mut());
    p.payload_mut().copy_from_slice(payload);
    p.fill_checksum(&smol_ip(IpAddress::V4(src)), &smol_ip(IpAddress::V4(dst)));
    total
}

/// A whole TCP frame with TTL 64, IP id 0 and DF (see [`emit_tcp_frame_with`]).
pub fn emit_tcp_frame(
    buf: &mut [u8],
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    h: &TcpHeader,
    payload: &[u8],
) -> usize {
    emit_tcp_frame_with(buf, src_mac, dst_mac, src_ip, dst_ip, &Ipv4TxParams::default(), h, payload)
}

/// A whole Ethernet + IPv4 + TCP frame, both checksums filled. Returns the
/// frame length (padded to 60), or 0 if `buf` is too small.
#[allow(clippy::too_many_arguments)]
pub fn emit_tcp_frame_with(
    buf: &mut [u8],
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    ip: &Ipv4TxParams,
    h: &TcpHeader,
    payload: &[u8],
) -> usize {
    const L3: usize = ETH_HEADER_LEN;
    const L4: usize = ETH_HEADER_LEN + IPV4_HEADER_LEN;
    let seg_len = TCP_HEADER_LEN + tcp_options_len(h) + payload.len();
    if buf.len() < L4 + seg_len {
        return 0;
    }
    emit_ethernet_header(buf, dst_mac, src_mac, ETHERTYPE_IPV4);
    let Some(ipb) = buf.get_mut(L3..) else { return 0 };
    if emit_ipv4_header(ipb, src_ip, dst_ip, PROTO_TCP, seg_len, ip) == 0 {
        return 0;
    }
    let Some(seg) = buf.get_mut(L4..) else { return 0 };
    if emit_tcp_segment(seg, src_ip, dst_ip, h, payload) != seg_len {
        return 0;
    }
    pad_min(buf, L4 + seg_len)
}

#[cfg(test)]
mod tests;
