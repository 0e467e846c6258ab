//! Three-way handshake on both sides, option negotiation.

use super::util::*;
use crate::net::tcp::{SegmentOutcome, TcpConfig, TcpConn, TcpState};

#[test]
fn active_open_offers_all_options_and_completes_on_syn_ack() {
    let cfg = TcpConfig::default();
    let mut c = TcpConn::connect(&cfg, flow(), 0xdead_0000, ms(0));
    assert_eq!(c.state(), TcpState::SynSent);
    let o = out(&mut c, ms(0));
    assert_eq!(o.len(), 1);
    let (h, p) = &o[0];
    assert!(p.is_empty());
    assert_eq!(h.flags.0, S);
    assert_eq!((h.seq, h.src_port, h.dst_port), (0xdead_0000, LOCAL_PORT, REMOTE_PORT));
    assert_eq!(h.mss, Some(1460));
    assert_eq!(h.wscale, Some(7));
    assert!(h.sack_permitted);
    let (tsval, tsecr) = h.timestamp.expect("timestamps offered");
    assert_eq!(tsecr, 0);
    // N7: 256 KiB free, but the SYN's window field is not scaled.
    assert_eq!(h.window, 65535);

    let mut sa = seg(7000, 0xdead_0001, S | A, 30000);
    sa.mss = Some(1400);
    sa.wscale = Some(3);
    sa.sack_permitted = true;
    sa.timestamp = Some((555, tsval));
    assert_eq!(c.on_segment(&sa, &[], ms(20)), SegmentOutcome::Accepted);
    assert!(c.is_established());
    assert_eq!(c.mss(), 1400);
    assert_eq!(c.window_scales(), (3, 7));
    assert!(c.timestamps_enabled() && c.sack_enabled());
    // The SYN-ACK's window is taken unscaled (N7).
    assert_eq!(c.peer_window(), 30000);
    // RTT measured from the SYN: 20 ms → RTO = max(200 ms, 20 + 4·10).
    assert_eq!(c.rto(), dur_ms(200));
    let o = out(&mut c, ms(20));
    assert_eq!(o.len(), 1);
    let (h, p) = &o[0];
    assert!(p.is_empty());
    assert_eq!((h.flags.0, h.seq, h.ack), (A, 0xdead_0001, 7001));
    assert_eq!(h.window, ((256 * 1024) >> 7) as u16);
    assert_eq!(h.wscale, None);
    assert_eq!(h.mss, None);
    assert!(!h.sack_permitted);
    assert_eq!(h.timestamp, Some((tsval.wrapping_add(20), 555)));
}

#[test]
fn passive_open_answers_only_with_options_the_peer_offered() {
    let cfg = TcpConfig::default();
    let mut syn = seg(PEER_ISN, 0, S, 8192);
    syn.mss = Some(536);
    let mut c = TcpConn::accept(&cfg, flow(), &syn, OUR_ISN, ms(0));
    assert_eq!(c.state(), TcpState::SynReceived);
    let o = out(&mut c, ms(0));
    assert_eq!(o.len(), 1);
    let (h, p) = &o[0];
    assert!(p.is_empty());
    assert_eq!((h.flags.0, h.seq, h.ack), (S | A, OUR_ISN, PEER_ISN + 1));
    assert_eq!(h.mss, Some(1460));
    assert_eq!(h.wscale, None, "no wscale in the SYN, none in the SYN-ACK");
    assert!(!h.sack_permitted);
    assert_eq!(h.timestamp, None);
    assert_eq!(h.window, 65535);
    assert_eq!(c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 1, A, 8192), &[], ms(5)), SegmentOutcome::Accepted);
    assert!(c.is_established());
    assert_eq!(c.mss(), 536);
    assert_eq!(c.window_scales(), (0, 0));
    assert!(!c.timestamps_enabled() && !c.sack_enabled());
    assert_eq!(c.peer_window(), 8192);
}

#[test]
fn handshake_between_two_conns_with_all_options_then_data_both_ways() {
    let cfg = TcpConfig::default();
    let mut cl = TcpConn::connect(&cfg, flow_rev(), 1, ms(0));
    let syn = out(&mut cl, ms(0)).remove(0).0;
    let mut sv = TcpConn::accept(&cfg, flow(), &syn, 0x8000_0000, ms(1));
    let sa = out(&mut sv, ms(1)).remove(0).0;
    assert_eq!(sa.wscale, Some(7));
    assert!(sa.sack_permitted);
    assert!(sa.timestamp.is_some());
    assert_eq!(cl.on_segment(&sa, &[], ms(2)), SegmentOutcome::Accepted);
    let ack = out(&mut cl, ms(2)).remove(0).0;
    assert_eq!(sv.on_segment(&ack, &[], ms(3)), SegmentOutcome::Accepted);
    assert!(cl.is_established() && sv.is_established());
    assert_eq!(sv.window_scales(), (7, 7));
    assert_eq!(sv.peer_window(), 256 * 1024);

    assert_eq!(cl.write(b"GET / HTTP/1.1\r\n\r\n"), 18);
    for (h, p) in out(&mut cl, ms(4)) {
        assert_eq!(p, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(h.seq, 2);
        sv.on_segment(&h, &p, ms(5));
    }
    assert_eq!(read_all(&mut sv), b"GET / HTTP/1.1\r\n\r\n");
    sv.write(b"HTTP/1.1 200 OK\r\n\r\n");
    for (h, p) in out(&mut sv, ms(6)) {
        assert_eq!(h.ack, 2 + 18, "response piggybacks the ACK of the request");
        cl.on_segment(&h, &p, ms(7));
    }
    assert_eq!(read_all(&mut cl), b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(sv.unacked_len(), 19);
    // The client ACKs (delayed ACK, 40 ms) and the server's data is acked.
    assert!(out(&mut cl, ms(8)).is_empty());
    let o = out(&mut cl, ms(47));
    assert_eq!(o.len(), 1);
    sv.on_segment(&o[0].0, &o[0].1, ms(48));
    assert_eq!(sv.unacked_len(), 0);
    assert_eq!(sv.poll_at(), None, "nothing outstanding, no timer");
}

#[test]
fn simultaneous_open_goes_through_syn_received() {
    let cfg = plain_cfg();
    let mut c = TcpConn::connect(&cfg, flow(), OUR_ISN, ms(0));
    out(&mut c, ms(0));
    let mut syn = seg(PEER_ISN, 0, S, 4000);
    syn.mss = Some(1000);
    c.on_segment(&syn, &[], ms(1));
    assert_eq!(c.state(), TcpState::SynReceived);
    let o = out(&mut c, ms(1));
    assert_eq!((o[0].0.flags.0, o[0].0.seq, o[0].0.ack), (S | A, OUR_ISN, PEER_ISN + 1));
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 1, A, 4000), &[], ms(2));
    assert!(c.is_established());
}
