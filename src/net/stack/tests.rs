//! Stack-level tests. Frames are built byte by byte here (Ethernet II,
//! RFC 826, RFC 791, RFC 792, RFC 9293 layouts) with an independent RFC
//! 1071 checksum, not with the emitters under test.

use super::*;
use crate::net::wire::ipv4::inet_checksum;
use crate::net::wire::ipv4::tests::ipv4_bytes;
use crate::net::TcpFlags;

const OUR_MAC: MacAddr = MacAddr([0x02, 0xba, 0x70, 0x00, 0x00, 0x01]);
const OUR_IP: [u8; 4] = [198, 18, 0, 10];
const PEER_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x21]);
const PEER_IP: [u8; 4] = [198, 18, 0, 33];

fn stack() -> Stack {
    stack_with(|_| {})
}

fn stack_with(f: impl FnOnce(&mut StackConfig)) -> Stack {
    let mut cfg = StackConfig::new(OUR_MAC, Ipv4Addr::from(OUR_IP), 1500);
    f(&mut cfg);
    Stack::new(cfg, Arc::new(ArpCache::new(64)))
}

fn eth(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn arp_body(op: u16, sha: MacAddr, spa: [u8; 4], tha: MacAddr, tpa: [u8; 4]) -> Vec<u8> {
    let mut b = vec![0, 1, 8, 0, 6, 4];
    b.extend_from_slice(&op.to_be_bytes());
    b.extend_from_slice(&sha.0);
    b.extend_from_slice(&spa);
    b.extend_from_slice(&tha.0);
    b.extend_from_slice(&tpa);
    b
}

fn arp_request(sha: MacAddr, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    eth(MacAddr::BROADCAST, sha, 0x0806, &arp_body(1, sha, spa, MacAddr::ZERO, tpa))
}

fn arp_reply(sha: MacAddr, spa: [u8; 4], tha: MacAddr, tpa: [u8; 4]) -> Vec<u8> {
    eth(tha, sha, 0x0806, &arp_body(2, sha, spa, tha, tpa))
}

fn tcp_bytes(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&1000u32.to_be_bytes());
    s.extend_from_slice(&2000u32.to_be_bytes());
    s.extend_from_slice(&[0x50, flags, 0x10, 0x00, 0, 0, 0, 0]);
    s.extend_from_slice(payload);
    let len = (s.len() as u16).to_be_bytes();
    let pseudo = [src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3], 0, 6, len[0], len[1]];
    let c = inet_checksum(&[&pseudo, &s]);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

fn tcp_frame(payload: &[u8]) -> Vec<u8> {
    let seg = tcp_bytes(PEER_IP, OUR_IP, 40000, 443, 0x18, payload);
    eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes(PEER_IP, OUR_IP, 6, &seg))
}

/// Run `handle_frame`, returning the result (owned) and every frame sent.
fn feed(st: &mut Stack, frame: &[u8], now: Instant) -> (Rx<'static>, Vec<Vec<u8>>) {
    let mut sent = Vec::new();
    let rx = st.handle_frame(frame, now, &mut |f| sent.push(f.to_vec()));
    let rx = match rx {
        Rx::Tcp { .. } => Rx::Consumed, // callers needing the segment use handle_frame directly
        Rx::Consumed => Rx::Consumed,
        Rx::Dropped(r) => Rx::Dropped(r),
    };
    (rx, sent)
}

#[test]
fn first_arp_request_for_our_address_gets_exactly_one_reply() {
    // D1 at the stack level.
    let mut st = stack();
    let (rx, sent) = feed(&mut st, &arp_request(PEER_MAC, PEER_IP, OUR_IP), Instant::ZERO);
    assert_eq!(rx, Rx::Consumed);
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(r.len(), 60);
    assert_eq!(&r[0..6], &PEER_MAC.0); // unicast to the asker
    assert_eq!(&r[6..12], &OUR_MAC.0);
    assert_eq!(&r[12..14], &[0x08, 0x06]);
    assert_eq!(&r[14..22], &[0, 1, 8, 0, 6, 4, 0, 2]); // reply
    assert_eq!(&r[22..28], &OUR_MAC.0);
    assert_eq!(&r[28..32], &OUR_IP);
    assert_eq!(&r[32..38], &PEER_MAC.0);
    assert_eq!(&r[38..42], &PEER_IP);
    // and the asker is now known
    assert_eq!(st.arp_cache().lookup(IpAddress::V4(Ipv4Addr::from(PEER_IP))), Some(PEER_MAC));
    assert_eq!(st.stats.arp_replies_sent, 1);
}

#[test]
fn arp_request_for_another_address_gets_no_reply() {
    let mut st = stack();
    let (rx, sent) = feed(&mut st, &arp_request(PEER_MAC, PEER_IP, [198, 18, 0, 99]), Instant::ZERO);
    assert_eq!(rx, Rx::Dropped(DropReason::ArpNotForUs));
    assert!(sent.is_empty());
    assert_eq!(st.arp_cache().lookup(IpAddress::V4(Ipv4Addr::from(PEER_IP))), None);
    assert_eq!(st.drops.get(DropReason::ArpNotForUs), 1);
}

#[test]
fn neighbour_mac_change_is_followed_gratuitous_and_reply() {
    // D2
    let mut st = stack();
    let peer = IpAddress::V4(Ipv4Addr::from(PEER_IP));
    feed(&mut st, &arp_reply(PEER_MAC, PEER_IP, OUR_MAC, OUR_IP), Instant::ZERO);
    assert_eq!(st.arp_cache().lookup(peer), Some(PEER_MAC));
    // Gratuitous ARP request: sender = target = peer, broadcast.
    let new_mac = MacAddr([0x02, 0, 0, 0, 0, 0x99]);
    let (rx, sent) = feed(&mut st, &arp_request(new_mac, PEER_IP, PEER_IP), Instant::ZERO);
    assert_eq!(rx, Rx::Consumed);
    assert!(sent.is_empty());
    assert_eq!(st.arp_cache().lookup(peer), Some(new_mac));
    // A new reply changes it again.
    let third = MacAddr([0x02, 0, 0, 0, 0, 0x77]);
    feed(&mut st, &arp_reply(third, PEER_IP, OUR_MAC, OUR_IP), Instant::ZERO);
    assert_eq!(st.arp_cache().lookup(peer), Some(third));
    // A gratuitous reply (broadcast) from an unknown neighbour is not cached.
    let other = [198, 18, 0, 44];
    let g = eth(MacAddr::BROADCAST, new_mac, 0x0806, &arp_body(2, new_mac, other, MacAddr::BROADCAST, other));
    assert_eq!(feed(&mut st, &g, Instant::ZERO).0, Rx::Dropped(DropReason::ArpNotForUs));
    assert_eq!(st.arp_cache().lookup(IpAddress::V4(Ipv4Addr::from(other))), None);
}

#[test]
fn arp_bad_senders_dropped() {
    let mut st = stack();
    let mcast = MacAddr([0x01, 0, 0x5e, 0, 0, 1]);
    assert_eq!(feed(&mut st, &arp_request(mcast, PEER_IP, OUR_IP), Instant::ZERO).0, Rx::Dropped(DropReason::ArpBadSender));
    assert_eq!(feed(&mut st, &arp_request(PEER_MAC, OUR_IP, OUR_IP), Instant::ZERO).0, Rx::Dropped(DropReason::ArpBadSender));
    assert_eq!(feed(&mut st, &arp_request(MacAddr::ZERO, PEER_IP, OUR_IP), Instant::ZERO).0, Rx::Dropped(DropReason::ArpBadSender));
    // ARP unicast to someone else's MAC
    let f = eth(MacAddr([2, 9, 9, 9, 9, 9]), PEER_MAC, 0x0806, &arp_body(1, PEER_MAC, PEER_IP, MacAddr::ZERO, OUR_IP));
    assert_eq!(feed(&mut st, &f, Instant::ZERO).0, Rx::Dropped(DropReason::NotForUs));
    // truncated ARP body
    let f = eth(MacAddr::BROADCAST, PEER_MAC, 0x0806, &[0, 1, 8, 0, 6, 4, 0]);
    assert_eq!(feed(&mut st, &f, Instant::ZERO).0, Rx::Dropped(DropReason::ArpMalformed));
    assert!(st.arp_cache().is_empty());
}

#[test]
fn arp_probe_answered_not_cached() {
    let mut st = stack();
    let (rx, sent) = feed(&mut st, &arp_request(PEER_MAC, [0, 0, 0, 0], OUR_IP), Instant::ZERO);
    assert_eq!(rx, Rx::Consumed);
    assert_eq!(sent.len(), 1);
    assert_eq!(&sent[0][38..42], &[0, 0, 0, 0]);
    assert!(st.arp_cache().is_empty());
}

fn icmp_echo(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut b = vec![8, 0, 0, 0];
    b.extend_from_slice(&ident.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(data);
    let c = inet_checksum(&[&b]);
    b[2..4].copy_from_slice(&c.to_be_bytes());
    b
}

#[test]
fn icmp_echo_gets_reply_with_same_id_seq_payload() {
    let mut st = stack();
    let data: Vec<u8> = (0..56u8).collect();
    let f = eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes(PEER_IP, OUR_IP, 1, &icmp_echo(0x4242, 17, &data)));
    let (rx, sent) = feed(&mut st, &f, Instant::ZERO);
    assert_eq!(rx, Rx::Consumed);
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(&r[0..6], &PEER_MAC.0);
    assert_eq!(&r[6..12], &OUR_MAC.0);
    let ip = &r[14..34];
    assert_eq!(ip[9], 1);
    assert_eq!(&ip[12..16], &OUR_IP);
    assert_eq!(&ip[16..20], &PEER_IP);
    assert_eq!(inet_checksum(&[ip]), 0);
    let icmp = &r[34..];
    assert_eq!(icmp.len(), 8 + 56);
    assert_eq!(&icmp[0..2], &[0, 0]); // echo reply, code 0
    assert_eq!(&icmp[4..8], &[0x42, 0x42, 0, 17]);
    assert_eq!(&icmp[8..], &data[..]);
    assert_eq!(inet_checksum(&[icmp]), 0);

    let mut bad = icmp_echo(1, 1, b"x");
    bad[8] ^= 1;
    let f = eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes(PEER_IP, OUR_IP, 1, &bad));
    assert_eq!(feed(&mut st, &f, Instant::ZERO), (Rx::Dropped(DropReason::IcmpBadChecksum), vec![]));
}

#[test]
fn tcp_segment_handed_up_with_flow() {
    let mut st = stack();
    let f = tcp_frame(b"GET");
    let mut sent = 0;
    match st.handle_frame(&f, Instant::ZERO, &mut |_| sent += 1) {
        Rx::Tcp { flow, header, payload, src_mac } => {
            assert_eq!(flow.local, Endpoint::new(IpAddress::V4(Ipv4Addr::from(OUR_IP)), 443));
            assert_eq!(flow.remote, Endpoint::new(IpAddress::V4(Ipv4Addr::from(PEER_IP)), 40000));
            assert_eq!((header.seq, header.ack, header.window), (1000, 2000, 0x1000));
            assert_eq!(header.flags, TcpFlags(TcpFlags::PSH | TcpFlags::ACK));
            assert_eq!(payload, b"GET");
            assert_eq!(src_mac, PEER_MAC);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sent, 0);
}

#[test]
fn frames_not_for_us_and_unsupported_dropped_with_reason() {
    let mut st = stack();
    let seg = tcp_bytes(PEER_IP, OUR_IP, 1, 443, 0x02, &[]);
    let ip = ipv4_bytes(PEER_IP, OUR_IP, 6, &seg);
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (vec![0; 13], DropReason::TooShort),
        (eth(MacAddr([2, 1, 1, 1, 1, 1]), PEER_MAC, 0x0800, &ip), DropReason::NotForUs),
        (eth(MacAddr::BROADCAST, PEER_MAC, 0x0800, &ip), DropReason::NotForUs),
        (eth(OUR_MAC, PEER_MAC, 0x86dd, &ip), DropReason::EtherTypeUnknown),
        (eth(OUR_MAC, PEER_MAC, 0x8100, &ip), DropReason::EtherTypeUnknown),
        (eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes(PEER_IP, [198, 18, 0, 11], 6, &seg)), DropReason::Ipv4NotForUs),
        (eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes([255, 255, 255, 255], OUR_IP, 6, &seg)), DropReason::Ipv4BadSource),
        (eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes([224, 0, 0, 1], OUR_IP, 6, &seg)), DropReason::Ipv4BadSource),
        (eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes(OUR_IP, OUR_IP, 6, &seg)), DropReason::Ipv4BadSource),
        (eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes(PEER_IP, OUR_IP, 17, &[0; 8])), DropReason::UdpUnsupported),
        (eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes(PEER_IP, OUR_IP, 47, &[0; 8])), DropReason::ProtoUnsupported),
        (eth(OUR_MAC, PEER_MAC, 0x0800, &ip[..19]), DropReason::Ipv4Truncated),
        (eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes(PEER_IP, OUR_IP, 6, &seg[..19])), DropReason::TcpTruncated),
        (eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes(PEER_IP, OUR_IP, 1, &[8, 0, 0])), DropReason::IcmpMalformed),
    ];
    for (i, (f, want)) in cases.iter().enumerate() {
        let (rx, sent) = feed(&mut st, f, Instant::ZERO);
        assert_eq!(rx, Rx::Dropped(*want), "case {i}");
        assert!(sent.is_empty());
    }
    // Bad TCP checksum through the whole stack
    let mut seg2 = seg.clone();
    seg2[4] ^= 0x80;
    let f = eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes(PEER_IP, OUR_IP, 6, &seg2));
    assert_eq!(feed(&mut st, &f, Instant::ZERO).0, Rx::Dropped(DropReason::TcpBadChecksum));
    assert_eq!(st.drops.get(DropReason::NotForUs), 2);
    assert_eq!(st.drops.get(DropReason::Ipv4BadSource), 3);
    assert_eq!(st.drops.total(), cases.len() as u64 + 1);
}

fn syn_ack() -> TcpHeader {
    TcpHeader {
        src_port: 443,
        dst_port: 40000,
        seq: 77,
        ack: 1001,
        flags: TcpFlags(TcpFlags::SYN | TcpFlags::ACK),
        window: 65535,
        mss: Some(1460),
        wscale: Some(7),
        sack_permitted: true,
        timestamp: Some((5, 6)),
        ..Default::default()
    }
}

fn check_tcp_frame(f: &[u8], dst_mac: MacAddr, h: &TcpHeader, payload: &[u8]) {
    assert_eq!(&f[0..6], &dst_mac.0);
    assert_eq!(&f[6..12], &OUR_MAC.0);
    let ip = &f[14..34];
    assert_eq!(inet_checksum(&[ip]), 0);
    assert_eq!(&ip[12..16], &OUR_IP);
    assert_eq!(&ip[16..20], &PEER_IP);
    assert_eq!(ip[8], 64);
    assert_eq!(ip[6] & 0x40, 0x40);
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let seg = &f[34..14 + total];
    let len = (seg.len() as u16).to_be_bytes();
    let pseudo = [OUR_IP[0], OUR_IP[1], OUR_IP[2], OUR_IP[3], PEER_IP[0], PEER_IP[1], PEER_IP[2], PEER_IP[3], 0, 6, len[0], len[1]];
    assert_eq!(inet_checksum(&[&pseudo, seg]), 0);
    let (back, p) = wire::parse_tcp(IpAddress::V4(Ipv4Addr::from(OUR_IP)), IpAddress::V4(Ipv4Addr::from(PEER_IP)), seg).unwrap();
    assert_eq!(&back, h);
    assert_eq!(p, payload);
}

#[test]
fn emit_with_known_mac_sends_at_once() {
    let mut st = stack();
    let peer = IpAddress::V4(Ipv4Addr::from(PEER_IP));
    st.arp_cache().update(peer, PEER_MAC);
    let mut sent = Vec::new();
    let h = syn_ack();
    assert_eq!(st.emit_tcp(peer, &h, b"", Instant::ZERO, &mut |f| sent.push(f.to_vec())), Tx::Sent);
    assert_eq!(st.emit_tcp(peer, &h, b"data", Instant::ZERO, &mut |f| sent.push(f.to_vec())), Tx::Sent);
    assert_eq!(sent.len(), 2);
    check_tcp_frame(&sent[0], PEER_MAC, &h, b"");
    check_tcp_frame(&sent[1], PEER_MAC, &h, b"data");
    let id0 = u16::from_be_bytes([sent[0][18], sent[0][19]]);
    let id1 = u16::from_be_bytes([sent[1][18], sent[1][19]]);
    assert_ne!(id0, id1);
}

#[test]
fn emit_with_unknown_mac_queues_requests_arp_then_reply_releases() {
    let mut st = stack();
    let peer = IpAddress::V4(Ipv4Addr::from(PEER_IP));
    let h = syn_ack();
    let mut sent = Vec::new();
    assert_eq!(st.emit_tcp(peer, &h, b"one", Instant::from_millis(0), &mut |f| sent.push(f.to_vec())), Tx::Queued);
    assert_eq!(sent.len(), 1, "one ARP request");
    let req = &sent[0];
    assert_eq!(&req[0..6], &[0xff; 6]);
    assert_eq!(&req[12..14], &[8, 6]);
    assert_eq!(&req[20..22], &[0, 1]);
    assert_eq!(&req[22..28], &OUR_MAC.0);
    assert_eq!(&req[28..32], &OUR_IP);
    assert_eq!(&req[38..42], &PEER_IP);
    // A second segment within the retry interval: queued, no new request.
    assert_eq!(st.emit_tcp(peer, &h, b"two", Instant::from_millis(10), &mut |f| sent.push(f.to_vec())), Tx::Queued);
    assert_eq!(sent.len(), 1);
    assert_eq!(st.pending().len_for(Ipv4Addr::from(PEER_IP)), 2);
    // The reply releases both, in order, with the right MAC.
    sent.clear();
    let (rx, out) = feed(&mut st, &arp_reply(PEER_MAC, PEER_IP, OUR_MAC, OUR_IP), Instant::from_millis(20));
    assert_eq!(rx, Rx::Consumed);
    assert_eq!(out.len(), 2);
    check_tcp_frame(&out[0], PEER_MAC, &h, b"one");
    check_tcp_frame(&out[1], PEER_MAC, &h, b"two");
    assert!(st.pending().is_empty());
    assert_eq!(st.emit_tcp(peer, &h, b"", Instant::from_millis(30), &mut |f| sent.push(f.to_vec())), Tx::Sent);
}

#[test]
fn arp_retry_is_rate_limited_and_frames_expire() {
    let mut st = stack_with(|c| {
        c.arp_retry = Duration::from_millis(200);
        c.arp_queue_ttl = Duration::from_millis(1000);
    });
    let peer = IpAddress::V4(Ipv4Addr::from(PEER_IP));
    let mut n = 0;
    st.emit_tcp(peer, &syn_ack(), b"", Instant::from_millis(0), &mut |_| n += 1);
    assert_eq!(n, 1);
    assert_eq!(st.poll_at(), Some(Instant::from_millis(200)));
    st.poll(Instant::from_millis(199), &mut |_| n += 1);
    assert_eq!(n, 1);
    st.poll(Instant::from_millis(200), &mut |_| n += 1);
    assert_eq!(n, 2, "retried");
    st.poll(Instant::from_millis(300), &mut |_| n += 1);
    assert_eq!(n, 2);
    st.poll(Instant::from_millis(1000), &mut |_| n += 1);
    assert!(st.pending().is_empty());
    assert_eq!(st.drops.get(DropReason::ArpQueueExpired), 1);
    assert_eq!(n, 2, "no request once nothing waits");
    assert_eq!(st.poll_at(), None);
}

#[test]
fn poll_releases_frames_resolved_by_another_worker() {
    let cache = Arc::new(ArpCache::new(16));
    let cfg = StackConfig::new(OUR_MAC, Ipv4Addr::from(OUR_IP), 1500);
    let mut a = Stack::new(cfg.clone(), Arc::clone(&cache));
    let mut b = Stack::new(cfg, Arc::clone(&cache));
    let peer = IpAddress::V4(Ipv4Addr::from(PEER_IP));
    let mut a_out = Vec::new();
    assert_eq!(a.emit_tcp(peer, &syn_ack(), b"x", Instant::ZERO, &mut |f| a_out.push(f.to_vec())), Tx::Queued);
    // The reply reaches worker B.
    let (_, b_out) = feed(&mut b, &arp_reply(PEER_MAC, PEER_IP, OUR_MAC, OUR_IP), Instant::from_millis(1));
    assert!(b_out.is_empty());
    a_out.clear();
    a.poll(Instant::from_millis(2), &mut |f| a_out.push(f.to_vec()));
    assert_eq!(a_out.len(), 1);
    check_tcp_frame(&a_out[0], PEER_MAC, &syn_ack(), b"x");
}

#[test]
fn arp_queue_caps_refuse_and_count() {
    let mut st = stack_with(|c| {
        c.arp_queue_per_dest = 2;
        c.arp_queue_total = 3;
    });
    let mut sink = |_: &[u8]| {};
    let a = IpAddress::v4(198, 18, 0, 50);
    let b = IpAddress::v4(198, 18, 0, 51);
    let c = IpAddress::v4(198, 18, 0, 52);
    let h = syn_ack();
    assert_eq!(st.emit_tcp(a, &h, b"", Instant::ZERO, &mut sink), Tx::Queued);
    assert_eq!(st.emit_tcp(a, &h, b"", Instant::ZERO, &mut sink), Tx::Queued);
    assert_eq!(st.emit_tcp(a, &h, b"", Instant::ZERO, &mut sink), Tx::Dropped(DropReason::ArpQueueFull));
    assert_eq!(st.emit_tcp(b, &h, b"", Instant::ZERO, &mut sink), Tx::Queued);
    assert_eq!(st.emit_tcp(c, &h, b"", Instant::ZERO, &mut sink), Tx::Dropped(DropReason::ArpQueueFull));
    assert_eq!(st.drops.get(DropReason::ArpQueueFull), 2);
    assert_eq!(st.pending().len(), 3);
}

#[test]
fn next_hop_gateway_no_route_and_too_large() {
    let gw = Ipv4Addr::new(198, 18, 0, 1);
    let mut st = stack_with(|c| {
        c.prefix_len = 24;
        c.gateway = Some(gw);
    });
    assert_eq!(st.next_hop(Ipv4Addr::new(198, 18, 0, 77)), Some(Ipv4Addr::new(198, 18, 0, 77)));
    assert_eq!(st.next_hop(Ipv4Addr::new(198, 19, 0, 77)), Some(gw));
    let gw_mac = MacAddr([2, 0, 0, 0, 0, 1]);
    st.arp_cache().update(IpAddress::V4(gw), gw_mac);
    let mut sent = Vec::new();
    let far = IpAddress::v4(198, 19, 0, 77);
    assert_eq!(st.emit_tcp(far, &syn_ack(), b"", Instant::ZERO, &mut |f| sent.push(f.to_vec())), Tx::Sent);
    assert_eq!(&sent[0][0..6], &gw_mac.0);
    assert_eq!(&sent[0][30..34], &[198, 19, 0, 77]);

    let mut st = stack_with(|c| c.prefix_len = 24);
    assert_eq!(st.emit_tcp(far, &syn_ack(), b"", Instant::ZERO, &mut |_| {}), Tx::Dropped(DropReason::TxNoRoute));
    let peer = IpAddress::V4(Ipv4Addr::from(PEER_IP));
    let big = vec![0u8; 1500 - 40 - 20 + 1]; // syn_ack options are 20 bytes
    assert_eq!(st.emit_tcp(peer, &syn_ack(), &big, Instant::ZERO, &mut |_| {}), Tx::Dropped(DropReason::TxTooLarge));
    assert_eq!(st.max_tcp_payload(20), 1440);
    assert_eq!(st.drops.get(DropReason::TxTooLarge), 1);
}

/// xorshift64*: a seeded generator for the property test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Recompute IPv4 and TCP/ICMP checksums of a mutated frame where its
/// lengths allow, so mutations reach the deeper parsers.
fn refix(f: &mut [u8]) {
    if f.len() < 34 || f[12..14] != [8, 0] {
        return;
    }
    let ihl = usize::from(f[14] & 0xf) * 4;
    if ihl < 20 || f.len() < 14 + ihl {
        return;
    }
    f[24] = 0;
    f[25] = 0;
    let c = inet_checksum(&[&f[14..14 + ihl]]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    if total < ihl || f.len() < 14 + total {
        return;
    }
    let (src, dst) = ([f[26], f[27], f[28], f[29]], [f[30], f[31], f[32], f[33]]);
    let is_tcp = f[23] == 6;
    let l4 = &mut f[14 + ihl..14 + total];
    if is_tcp && l4.len() >= 20 {
        let len = (l4.len() as u16).to_be_bytes();
        l4[16] = 0;
        l4[17] = 0;
        let pseudo = [src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3], 0, 6, len[0], len[1]];
        let c = inet_checksum(&[&pseudo, l4]);
        l4[16..18].copy_from_slice(&c.to_be_bytes());
    }
}

#[test]
fn random_and_mutated_frames_never_panic() {
    let cache = Arc::new(ArpCache::new(64));
    let mut st = Stack::new(StackConfig::new(OUR_MAC, Ipv4Addr::from(OUR_IP), 1500), cache);
    let mut syn = tcp_bytes(PEER_IP, OUR_IP, 40000, 443, 0x02, &[]);
    // give the SYN Linux-style options so option parsing is exercised
    syn[12] = 0xa0;
    syn.splice(20..20, [2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
    let seeds: Vec<Vec<u8>> = vec![
        arp_request(PEER_MAC, PEER_IP, OUR_IP),
        arp_reply(PEER_MAC, PEER_IP, OUR_MAC, OUR_IP),
        eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes(PEER_IP, OUR_IP, 1, &icmp_echo(1, 2, b"abcdefgh"))),
        eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4_bytes(PEER_IP, OUR_IP, 6, &syn)),
        tcp_frame(b"hello world"),
    ];
    let mut rng = Rng(0x5eed_ba70_0000_0001);
    let mut tcp_seen = 0u64;
    for iter in 0..100_000u32 {
        let mut f = match rng.below(8) {
            0 => (0..rng.below(128)).map(|_| rng.next() as u8).collect(),
            _ => seeds[rng.below(seeds.len())].clone(),
        };
        for _ in 0..1 + rng.below(4) {
            if f.is_empty() {
                break;
            }
            match rng.below(6) {
                0 => {
                    let i = rng.below(f.len());
                    f[i] = rng.next() as u8;
                }
                1 => {
                    let i = rng.below(f.len());
                    f[i] ^= 1 << rng.below(8);
                }
                2 => f.truncate(rng.below(f.len() + 1)),
                3 => f.extend((0..rng.below(16)).map(|_| rng.next() as u8)),
                4 => {
                    // header fields: IHL/len, TCP data offset, option bytes
                    let hot = [14usize, 16, 17, 20, 21, 46, 54, 55, 56, 57, 58];
                    let i = hot[rng.below(hot.len())];
                    if let Some(b) = f.get_mut(i) {
                        *b = rng.next() as u8;
                    }
                }
                _ => {}
            }
        }
        if rng.below(2) == 0 {
            refix(&mut f);
        }
        let now = Instant::from_micros(u64::from(iter) * 100);
        let mut out_bytes = 0usize;
        if let Rx::Tcp { payload, header, .. } = st.handle_frame(&f, now, &mut |o| out_bytes += o.len()) {
            assert!(payload.len() <= f.len());
            assert!(header.sack_len as usize <= crate::net::segment::MAX_SACK_BLOCKS);
            tcp_seen += 1;
        }
        if iter % 1000 == 0 {
            st.poll(now, &mut |_| {});
        }
    }
    assert!(tcp_seen > 100, "mutations should still reach TCP: {tcp_seen}");
    assert!(st.drops.total() > 50_000);
}
