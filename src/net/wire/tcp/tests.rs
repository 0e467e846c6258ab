use super::*;
use crate::net::wire::ipv4::inet_checksum;

const SRC: [u8; 4] = [198, 18, 0, 1];
const DST: [u8; 4] = [198, 18, 0, 10];

fn ip(a: [u8; 4]) -> IpAddress {
    IpAddress::v4(a[0], a[1], a[2], a[3])
}

/// Fill in a TCP checksum with the independent RFC 1071 helper
/// (pseudo-header: src, dst, zero, protocol 6, TCP length).
fn fix(seg: &mut [u8]) {
    seg[16] = 0;
    seg[17] = 0;
    let len = (seg.len() as u16).to_be_bytes();
    let pseudo = [SRC[0], SRC[1], SRC[2], SRC[3], DST[0], DST[1], DST[2], DST[3], 0, 6, len[0], len[1]];
    let c = inet_checksum(&[&pseudo, seg]);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
}

/// A SYN laid out as Linux sends it: MSS 1460, SACK-permitted, timestamps,
/// NOP, window scale 7 (data offset 10 words), window 64240.
fn linux_syn() -> Vec<u8> {
    let mut s = vec![
        0xd4, 0x31, 0x01, 0xbb, // 54321 -> 443
        0x1a, 0x2b, 0x3c, 0x4d, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // offset 10, SYN, window 64240
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, // SACK permitted
        0x08, 0x0a, 0x00, 0x01, 0xe2, 0x40, 0x00, 0x00, 0x00, 0x00, // TS 123456, 0
        0x01, // NOP
        0x03, 0x03, 0x07, // WS 7
    ];
    fix(&mut s);
    s
}

/// A bare 20-byte header with `opts` appended (offset rounded to words
/// only if `opts.len()` is a multiple of 4) and `payload`.
fn seg_with(opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let off = ((20 + opts.len()) / 4) as u8;
    let mut s = vec![0x30, 0x39, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 2, off << 4, 0x18, 0x01, 0x00, 0, 0, 0, 0];
    s.extend_from_slice(opts);
    s.extend_from_slice(payload);
    fix(&mut s);
    s
}

#[test]
fn parses_linux_syn() {
    let s = linux_syn();
    let (h, p) = parse_tcp(ip(SRC), ip(DST), &s).unwrap();
    assert!(p.is_empty());
    assert_eq!((h.src_port, h.dst_port), (54321, 443));
    assert_eq!(h.seq, 0x1a2b3c4d);
    assert_eq!(h.flags, TcpFlags(TcpFlags::SYN));
    assert_eq!(h.window, 64240);
    assert_eq!(h.mss, Some(1460));
    assert!(h.sack_permitted);
    assert_eq!(h.timestamp, Some((123456, 0)));
    assert_eq!(h.wscale, Some(7));
    assert_eq!(h.sack_len, 0);
}

#[test]
fn emits_linux_syn_layout() {
    let (h, _) = parse_tcp(ip(SRC), ip(DST), &linux_syn()).unwrap();
    let mut buf = [0u8; 64];
    let n = emit_tcp_segment(&mut buf, Ipv4Addr::from(SRC), Ipv4Addr::from(DST), &h, &[]);
    assert_eq!(&buf[..n], &linux_syn()[..]);
}

#[test]
fn data_segment_with_ts_and_sack_round_trip() {
    // NOP NOP TS, NOP NOP SACK(2 blocks), payload "hello"
    let mut opts = vec![1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 1, 1, 5, 18];
    opts.extend_from_slice(&[0, 0, 0x10, 0, 0, 0, 0x20, 0, 0, 0, 0x30, 0, 0, 0, 0x40, 0]);
    let s = seg_with(&opts, b"hello");
    let (h, p) = parse_tcp(ip(SRC), ip(DST), &s).unwrap();
    assert_eq!(p, b"hello");
    assert_eq!(h.flags, TcpFlags(TcpFlags::PSH | TcpFlags::ACK));
    assert_eq!((h.seq, h.ack, h.window), (1, 2, 256));
    assert_eq!(h.timestamp, Some((5, 6)));
    assert_eq!(h.sack_blocks(), &[(0x1000, 0x2000), (0x3000, 0x4000)]);
    let mut buf = [0u8; 128];
    let n = emit_tcp_segment(&mut buf, Ipv4Addr::from(SRC), Ipv4Addr::from(DST), &h, p);
    assert_eq!(&buf[..n], &s[..]);
}

#[test]
fn four_sack_blocks_parse() {
    let mut opts = vec![1, 1, 5, 34];
    for k in 1..=8u32 {
        opts.extend_from_slice(&(k * 100).to_be_bytes());
    }
    let s = seg_with(&opts, &[]);
    let (h, _) = parse_tcp(ip(SRC), ip(DST), &s).unwrap();
    assert_eq!(h.sack_blocks(), &[(100, 200), (300, 400), (500, 600), (700, 800)]);
}

#[test]
fn options_capped_at_40_and_sack_dropped_that_do_not_fit() {
    let mut h = TcpHeader { timestamp: Some((1, 2)), sack_len: 4, ..Default::default() };
    h.sack = [(1, 2), (3, 4), (5, 6), (7, 8)];
    // TS 12 + 4 + 8n <= 40 -> 3 blocks
    assert_eq!(tcp_options_len(&h), 12 + 4 + 24);
    let mut buf = [0u8; 80];
    let n = emit_tcp_segment(&mut buf, Ipv4Addr::from(SRC), Ipv4Addr::from(DST), &h, &[]);
    assert_eq!(n, 60);
    assert_eq!(buf[12] >> 4, 15);
    let (back, _) = parse_tcp(ip(SRC), ip(DST), &buf[..n]).unwrap();
    assert_eq!(back.sack_blocks(), &[(1, 2), (3, 4), (5, 6)]);
    // Without timestamps all four fit.
    h.timestamp = None;
    assert_eq!(tcp_options_len(&h), 36);
    // A SYN-ACK with everything: MSS 4 + SP/TS 12 + WS 4 = 20, then 2 blocks.
    h.mss = Some(1460);
    h.wscale = Some(9);
    h.sack_permitted = true;
    h.timestamp = Some((7, 8));
    assert_eq!(tcp_options_len(&h), 40);
    let n = emit_tcp_segment(&mut buf, Ipv4Addr::from(SRC), Ipv4Addr::from(DST), &h, &[]);
    let (back, _) = parse_tcp(ip(SRC), ip(DST), &buf[..n]).unwrap();
    assert_eq!(back.sack_blocks(), &[(1, 2), (3, 4)]);
    assert_eq!(back.wscale, Some(9));
    assert_eq!(back.mss, Some(1460));
}

#[test]
fn option_layouts_are_word_aligned() {
    for bits in 0..32u32 {
        let mut h = TcpHeader::default();
        if bits & 1 != 0 {
            h.mss = Some(536);
        }
        if bits & 2 != 0 {
            h.wscale = Some(3);
        }
        if bits & 4 != 0 {
            h.sack_permitted = true;
        }
        if bits & 8 != 0 {
            h.timestamp = Some((9, 10));
        }
        if bits & 16 != 0 {
            h.sack_len = 1;
            h.sack[0] = (11, 12);
        }
        let len = tcp_options_len(&h);
        assert_eq!(len % 4, 0);
        assert!(len <= 40);
        let mut buf = [0u8; 64];
        let n = emit_tcp_segment(&mut buf, Ipv4Addr::from(SRC), Ipv4Addr::from(DST), &h, &[]);
        let (back, _) = parse_tcp(ip(SRC), ip(DST), &buf[..n]).unwrap();
        assert_eq!(back, h, "bits {bits:05b}");
    }
}

#[test]
fn truncated_tcp() {
    let s = seg_with(&[], &[]);
    for n in 0..20 {
        assert_eq!(parse_tcp(ip(SRC), ip(DST), &s[..n]).unwrap_err(), DropReason::TcpTruncated);
    }
}

#[test]
fn data_offset_below_five_or_past_length() {
    for off in 0..5u8 {
        let mut s = seg_with(&[], &[0; 8]);
        s[12] = off << 4;
        fix(&mut s);
        assert_eq!(parse_tcp(ip(SRC), ip(DST), &s).unwrap_err(), DropReason::TcpBadDataOffset);
    }
    let mut s = seg_with(&[], &[0; 8]);
    s[12] = 8 << 4; // 32 bytes of header in 28
    fix(&mut s);
    assert_eq!(parse_tcp(ip(SRC), ip(DST), &s).unwrap_err(), DropReason::TcpBadDataOffset);
}

#[test]
fn bad_tcp_checksum() {
    let mut s = linux_syn();
    s[17] ^= 0x01;
    assert_eq!(parse_tcp(ip(SRC), ip(DST), &s).unwrap_err(), DropReason::TcpBadChecksum);
    // Right bytes, wrong pseudo-header (another source address).
    let s = linux_syn();
    assert_eq!(parse_tcp(IpAddress::v4(198, 18, 0, 2), ip(DST), &s).unwrap_err(), DropReason::TcpBadChecksum);
}

#[test]
fn bad_option_lengths() {
    let cases: &[&[u8]] = &[
        &[2, 0, 0, 0],          // length 0
        &[2, 1, 0, 0],          // length 1
        &[99, 0, 1, 1],         // unknown kind, length 0
        &[99, 1, 1, 1],         // unknown kind, length 1
        &[1, 1, 1, 2],          // MSS kind as the last byte: no length byte
        &[2, 8, 5, 0xb4],       // MSS running past the header
        &[1, 1, 8, 10, 0, 0, 0, 1], // TS running past the header
        &[2, 3, 5, 0],          // MSS with length 3
        &[3, 4, 7, 0],          // WS with length 4
        &[4, 3, 0, 1],          // SACK-permitted with length 3
        &[1, 1, 5, 2],          // SACK with no block
        &[5, 6, 0, 0, 0, 0, 1, 1], // SACK length not 2 + 8n
        &[1, 1, 8, 6, 0, 0, 0, 0], // TS with length 6
    ];
    for opts in cases {
        let s = seg_with(opts, &[]);
        assert_eq!(parse_tcp(ip(SRC), ip(DST), &s).unwrap_err(), DropReason::TcpBadOption, "{opts:?}");
    }
}

#[test]
fn eol_stops_and_unknown_skipped_and_ws_clamped() {
    // unknown kind 30 len 4, WS 20 (clamped to 14), EOL, garbage after EOL
    let s = seg_with(&[30, 4, 0, 0, 3, 3, 20, 0, 0xff, 0xff, 0xff, 0xff], &[]);
    let (h, _) = parse_tcp(ip(SRC), ip(DST), &s).unwrap();
    assert_eq!(h.wscale, Some(14));
    assert_eq!(h.mss, None);
}

#[test]
fn emit_frame_checks_out() {
    let h = TcpHeader { src_port: 443, dst_port: 54321, seq: 9, ack: 10, flags: TcpFlags(TcpFlags::ACK), window: 512, ..Default::default() };
    let mut buf = [0u8; 128];
    let n = emit_tcp_frame(&mut buf, MacAddr([2; 6]), MacAddr([4; 6]), Ipv4Addr::from(DST), Ipv4Addr::from(SRC), &h, &[]);
    assert_eq!(n, 60); // 54 padded
    assert_eq!(&buf[..6], &[4; 6]);
    assert_eq!(&buf[12..14], &[8, 0]);
    assert_eq!(inet_checksum(&[&buf[14..34]]), 0);
    assert_eq!(buf[14 + 8], 64); // TTL
    assert_eq!(buf[14 + 6] & 0x40, 0x40); // DF
    let (ipf, seg) = crate::net::wire::parse_ipv4(&buf[14..n]).unwrap();
    assert_eq!(ipf.total_len, 40);
    let (back, p) = parse_tcp(ip(DST), ip(SRC), seg).unwrap();
    assert_eq!(back, h);
    assert!(p.is_empty());
    assert_eq!(emit_tcp_frame(&mut buf[..53], MacAddr::ZERO, MacAddr::ZERO, Ipv4Addr::from(DST), Ipv4Addr::from(SRC), &h, &[]), 0);
}
