//! Cases N3–N7 from shared/cases/README.md, named after the behaviour.

use super::util::*;
use crate::net::tcp::{SegmentOutcome, TcpConfig, TcpConn, TcpDrop, TcpState};

#[test]
fn rst_in_window_but_not_rcv_nxt_gets_challenge_ack_and_no_reset() {
    // N3.
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    assert_eq!(c.on_segment(&seg(PEER_ISN + 100, 0, R, 0), &[], ms(20)), SegmentOutcome::ChallengeAck);
    assert!(c.is_established());
    let o = out(&mut c, ms(20));
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].0.flags.0, o[0].0.seq, o[0].0.ack), (A, OUR_ISN + 1, PEER_ISN + 1));
}

#[test]
fn rst_out_of_window_is_dropped_silently() {
    // N3.
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    let far = PEER_ISN + 1 + 64 * 1024 + 10;
    assert_eq!(c.on_segment(&seg(far, 0, R, 0), &[], ms(20)), SegmentOutcome::Dropped(TcpDrop::RstOutOfWindow));
    assert_eq!(c.on_segment(&seg(PEER_ISN - 10, 0, R | A, 0), &[], ms(20)), SegmentOutcome::Dropped(TcpDrop::RstOutOfWindow));
    assert!(out(&mut c, ms(20)).is_empty(), "never ACKed");
    assert!(c.is_established());
}

#[test]
fn rst_exactly_at_rcv_nxt_resets() {
    // N3.
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    assert_eq!(c.on_segment(&seg(PEER_ISN + 1, 0, R, 0), &[], ms(20)), SegmentOutcome::Reset);
    assert!(c.is_closed() && c.reset_received());
    assert!(out(&mut c, ms(20)).is_empty());
    assert_eq!(c.poll_at(), None);
}

#[test]
fn syn_in_established_gets_challenge_ack() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    assert_eq!(c.on_segment(&seg(PEER_ISN + 1, 0, S, 0), &[], ms(20)), SegmentOutcome::ChallengeAck);
    assert!(c.is_established());
    assert_eq!(out(&mut c, ms(20))[0].0.flags.0, A);
}

#[test]
fn duplicate_syn_in_syn_received_resends_syn_ack_without_rst() {
    // N4.
    let cfg = plain_cfg();
    let mut syn = seg(PEER_ISN, 0, S, 4000);
    syn.mss = Some(1000);
    let mut c = TcpConn::accept(&cfg, flow(), &syn, OUR_ISN, ms(0));
    let first = out(&mut c, ms(0));
    assert_eq!(c.on_segment(&syn, &[], ms(100)), SegmentOutcome::Accepted);
    let o = out(&mut c, ms(100));
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0, first[0].0, "the same SYN-ACK again");
    assert!(o[0].0.flags.0 & R == 0);
    assert_eq!(c.state(), TcpState::SynReceived);
}

#[test]
fn retransmitted_syn_ack_never_carries_data() {
    // N5.
    let cfg = plain_cfg();
    let mut syn = seg(PEER_ISN, 0, S, 4000);
    syn.mss = Some(1000);
    let mut c = TcpConn::accept(&cfg, flow(), &syn, OUR_ISN, ms(0));
    // Data queued before the handshake completes.
    assert_eq!(c.write(b"early bytes"), 11);
    let o = out(&mut c, ms(0));
    assert_eq!((o.len(), o[0].1.len()), (1, 0));
    let o = out(&mut c, ms(1000));
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].0.flags.0, o[0].0.seq), (S | A, OUR_ISN));
    assert!(o[0].1.is_empty());
    // Once established the data goes out.
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 1, A, 4000), &[], ms(1100));
    let o = out(&mut c, ms(1100));
    assert_eq!((o[0].0.seq, &o[0].1[..]), (OUR_ISN + 1, &b"early bytes"[..]));
}

#[test]
fn peer_that_stops_sending_timestamps_is_still_accepted() {
    // N6.
    let cfg = TcpConfig { timestamps: true, ..plain_cfg() };
    let mut syn = seg(PEER_ISN, 0, S, 4000);
    syn.mss = Some(1000);
    syn.timestamp = Some((100, 0));
    let mut c = TcpConn::accept(&cfg, flow(), &syn, OUR_ISN, ms(0));
    let sa = out(&mut c, ms(0)).remove(0).0;
    let (our_ts, ecr) = sa.timestamp.unwrap();
    assert_eq!(ecr, 100);
    let mut a = seg(PEER_ISN + 1, OUR_ISN + 1, A, 4000);
    a.timestamp = Some((101, our_ts));
    c.on_segment(&a, &[], ms(1));
    assert!(c.timestamps_enabled());
    let b = PEER_ISN + 1;
    assert_eq!(c.on_segment(&seg(b, OUR_ISN + 1, A, 4000), b"no ts", ms(2)), SegmentOutcome::Accepted);
    assert_eq!(read_all(&mut c), b"no ts");
    // We keep sending ours.
    let o = out(&mut c, ms(100));
    assert!(o[0].0.timestamp.is_some());
    // PAWS still applies to segments that do carry an old timestamp.
    let mut old = seg(b + 5, OUR_ISN + 1, A, 4000);
    old.timestamp = Some((50, 0));
    assert_eq!(c.on_segment(&old, b"x", ms(101)), SegmentOutcome::Dropped(TcpDrop::Paws));
}

#[test]
fn window_scale_option_only_on_syn_and_syn_ack_and_their_window_unscaled() {
    // N7.
    let cfg = TcpConfig { wscale: 7, recv_buf_cap: 256 * 1024, ..plain_cfg() };
    let mut syn = seg(PEER_ISN, 0, S, 1000);
    syn.mss = Some(1000);
    syn.wscale = Some(5);
    let mut c = TcpConn::accept(&cfg, flow(), &syn, OUR_ISN, ms(0));
    assert_eq!(c.peer_window(), 1000, "SYN window not scaled");
    let o = out(&mut c, ms(0));
    assert_eq!(o[0].0.wscale, Some(7));
    assert_eq!(o[0].0.window, 65535, "SYN-ACK window not scaled");
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 1, A, 1000), &[], ms(1));
    assert_eq!(c.peer_window(), 32000, "later windows scaled by 2^5");
    c.write(b"x");
    let o = out(&mut c, ms(2));
    assert_eq!(o[0].0.wscale, None);
    assert_eq!(o[0].0.window, 2048);
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 2, A, 1000), b"y", ms(3));
    for (h, _) in out(&mut c, ms(100)) {
        assert_eq!(h.wscale, None);
    }
}

#[test]
fn ack_for_unsent_data_is_dropped_and_acked() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    assert_eq!(c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 500, A, 60000), b"zz", ms(20)), SegmentOutcome::Dropped(TcpDrop::AckUnsent));
    assert_eq!(c.recv_len(), 0);
    assert_eq!(out(&mut c, ms(20))[0].0.ack, PEER_ISN + 1);
}

#[test]
fn bad_ack_in_syn_sent_answers_rst() {
    let cfg = plain_cfg();
    let mut c = TcpConn::connect(&cfg, flow(), OUR_ISN, ms(0));
    out(&mut c, ms(0));
    assert_eq!(c.on_segment(&seg(PEER_ISN, 77, S | A, 4000), &[], ms(1)), SegmentOutcome::Dropped(TcpDrop::BadSynAck));
    let o = out(&mut c, ms(1));
    assert_eq!((o[0].0.flags.0, o[0].0.seq), (R, 77));
    assert_eq!(c.state(), TcpState::SynSent);
    // RST with an acceptable ACK resets (connection refused).
    assert_eq!(c.on_segment(&seg(0, OUR_ISN + 1, R | A, 0), &[], ms(2)), SegmentOutcome::Reset);
    assert!(c.is_closed());
}

#[test]
fn garbage_segments_never_panic() {
    let cfg = TcpConfig::default();
    let mut c = established_passive(&cfg, 60000);
    let mut x: u32 = 12345;
    for i in 0..5000u32 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let mut h = seg(x.rotate_left(7), x.rotate_left(13), (x >> 24) as u8, (x >> 8) as u16);
        h.sack_len = (x % 5) as u8;
        h.sack = [(x, x.wrapping_add(9)), (x.wrapping_mul(3), x), (1, 2), (x, x)];
        if x & 1 == 0 {
            h.timestamp = Some((x, x >> 3));
        }
        let p = payload((x % 1500) as usize, i as u8);
        c.on_segment(&h, &p, ms(20 + i as u64));
        out(&mut c, ms(20 + i as u64));
    }
}
