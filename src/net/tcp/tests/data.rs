//! Data transfer, delayed ACK, out-of-order (N1, N2), flow control.

use super::util::*;
use crate::net::tcp::{SegmentOutcome, TcpConn};

#[test]
fn sends_mss_sized_segments_within_initial_cwnd_and_peer_window() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    let data = payload(10_000, 1);
    assert_eq!(c.write(&data), 10_000);
    let o = out(&mut c, ms(10));
    // IW for SMSS 1000 is 4 segments (RFC 5681 §3.1).
    assert_eq!(o.len(), 4);
    for (i, (h, p)) in o.iter().enumerate() {
        assert_eq!(h.seq, OUR_ISN + 1 + 1000 * i as u32);
        assert_eq!(p[..], data[1000 * i..1000 * (i + 1)]);
        assert_eq!(h.ack, PEER_ISN + 1);
    }
    assert_eq!(c.unacked_len(), 4000);
    assert_eq!(c.send_queue_len(), 10_000);
    // ACK of two segments: slow start grows cwnd by one SMSS per ACK.
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 2001, A, 60000), &[], ms(20));
    let o = out(&mut c, ms(20));
    assert_eq!(o.len(), 3);
    assert_eq!(o[0].0.seq, OUR_ISN + 4001);
}

#[test]
fn peer_window_limits_sending() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 2500);
    c.write(&payload(10_000, 1));
    let o = out(&mut c, ms(10));
    let lens: Vec<usize> = o.iter().map(|(_, p)| p.len()).collect();
    // 2500 bytes of window: two full segments; the 500-byte rest is less
    // than half the peer's max window, so sender SWS avoidance (RFC 9293
    // §3.8.6.2.1) holds it back until the window opens.
    assert_eq!(lens, vec![1000, 1000]);
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 1001, A, 2500), &[], ms(20));
    let o = out(&mut c, ms(20));
    // 1500 usable: one full segment, the 500 rest again held back.
    assert_eq!(o.iter().map(|(_, p)| p.len()).collect::<Vec<_>>(), vec![1000]);
    assert_eq!(o[0].0.seq, OUR_ISN + 2001);
}

#[test]
fn delayed_ack_every_second_segment_or_after_timeout() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    let base = PEER_ISN + 1;
    c.on_segment(&seg(base, OUR_ISN + 1, A, 60000), &payload(1000, 0), ms(20));
    assert!(out(&mut c, ms(20)).is_empty(), "first segment: ACK delayed");
    assert_eq!(c.poll_at(), Some(ms(60)));
    c.on_segment(&seg(base + 1000, OUR_ISN + 1, A, 60000), &payload(1000, 0), ms(21));
    let o = out(&mut c, ms(21));
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0.ack, base + 2000);
    c.on_segment(&seg(base + 2000, OUR_ISN + 1, A, 60000), &payload(100, 0), ms(30));
    assert!(out(&mut c, ms(69)).is_empty());
    let o = out(&mut c, ms(70));
    assert_eq!(o[0].0.ack, base + 2100);
    assert_eq!(o[0].0.window, (64 * 1024 - 2100) as u16);
}

/// A proxy reads every segment at once, so each one moves the window's
/// right edge by an MSS; that alone must not cost an ACK per segment
/// (regression: 3 ACKs per 4 segments in the replay's bulk phase). Every
/// second segment is ACKed (RFC 5681 §4.2) and those ACKs carry the edge.
#[test]
fn a_receiver_that_reads_at_once_acks_every_second_segment() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    let base = PEER_ISN + 1;
    let mut acks = 0;
    let mut last_edge = 0u32;
    for i in 0..100u32 {
        let t = ms(20 + u64::from(i));
        c.on_segment(&seg(base + i * 1000, OUR_ISN + 1, A, 60000), &payload(1000, i as u8), t);
        assert_eq!(read_all(&mut c).len(), 1000);
        for (h, _) in out(&mut c, t) {
            acks += 1;
            let edge = h.ack.wrapping_add(u32::from(h.window));
            assert!(edge.wrapping_sub(last_edge) as i32 >= 0 || last_edge == 0, "the right edge moved back");
            last_edge = edge;
            // The peer is never left with less than half the buffer.
            assert!(edge.wrapping_sub(base + (i + 1) * 1000) >= 32 * 1024, "window {}", h.window);
        }
    }
    assert_eq!(acks, 50, "one ACK per two segments");
}

#[test]
fn out_of_order_segments_are_merged_and_ack_reaches_80() {
    // N1.
    let mut cfg = plain_cfg();
    cfg.sack = true;
    let mut syn = seg(PEER_ISN, 0, S, 60000);
    syn.sack_permitted = true;
    let mut c = TcpConn::accept(&cfg, flow(), &syn, OUR_ISN, ms(0));
    out(&mut c, ms(0));
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 1, A, 60000), &[], ms(1));
    let b = PEER_ISN + 1;
    let bytes = payload(80, 7);
    let send = |c: &mut TcpConn, lo: usize, hi: usize| {
        assert_eq!(c.on_segment(&seg(b + lo as u32, OUR_ISN + 1, A, 60000), &bytes[lo..hi], ms(2)), SegmentOutcome::Accepted);
        out(c, ms(2))
    };
    let o = send(&mut c, 30, 40);
    assert_eq!(o[0].0.ack, b);
    assert_eq!(o[0].0.sack_blocks(), &[(b + 30, b + 40)]);
    send(&mut c, 20, 30);
    let o = send(&mut c, 10, 20);
    assert_eq!(o[0].0.sack_blocks(), &[(b + 10, b + 40)]);
    assert_eq!(c.recv_len(), 0);
    let o = send(&mut c, 0, 10);
    assert_eq!(o[0].0.ack, b + 40, "hole filled: immediate ACK");
    assert_eq!(o[0].0.sack_len, 0);
    send(&mut c, 60, 70);
    let o = send(&mut c, 70, 80);
    assert_eq!(o[0].0.ack, b + 40);
    assert_eq!(o[0].0.sack_blocks(), &[(b + 60, b + 80)]);
    let o = send(&mut c, 40, 65);
    assert_eq!(o[0].0.ack, b + 80);
    assert_eq!(read_all(&mut c), bytes);
}

#[test]
fn retransmit_with_old_and_new_bytes_delivers_new_part_once() {
    // N2.
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    let b = PEER_ISN + 1;
    c.on_segment(&seg(b, OUR_ISN + 1, A, 60000), b"hello ", ms(20));
    c.on_segment(&seg(b, OUR_ISN + 1, A, 60000), b"hello world", ms(21));
    assert_eq!(read_all(&mut c), b"hello world");
    // Entirely old: ACKed at once, nothing delivered.
    c.on_segment(&seg(b + 6, OUR_ISN + 1, A, 60000), b"world", ms(22));
    assert_eq!(c.recv_len(), 0);
    let o = out(&mut c, ms(22));
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0.ack, b + 11);
}

#[test]
fn zero_window_then_persist_probe_then_window_opens() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 2000);
    c.write(&payload(5000, 3));
    let o = out(&mut c, ms(10));
    assert_eq!(o.len(), 2);
    // The peer takes both segments but its window closes.
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 2001, A, 0), &[], ms(20));
    assert!(out(&mut c, ms(20)).is_empty());
    // Persist timer armed at the RTO (srtt 10 ms → 200 ms min).
    let t = c.poll_at().expect("persist timer");
    assert_eq!(t, ms(220));
    let o = out(&mut c, t);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0.seq, OUR_ISN + 2001);
    assert_eq!(o[0].1.len(), 1, "one-byte probe");
    // Still zero: the probe is not accepted, ACK repeats snd_una.
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 2001, A, 0), &[], ms(230));
    let t2 = c.poll_at().unwrap();
    assert!(t2 > t);
    let o = out(&mut c, t2);
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].0.seq, o[0].1.len()), (OUR_ISN + 2001, 1), "probe retransmitted");
    assert!(!c.is_closed());
    // The window opens: the rest flows.
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 2001, A, 10000), &[], ms(1000));
    let o = out(&mut c, ms(1000));
    let total: usize = o.iter().map(|(_, p)| p.len()).sum();
    assert!(total >= 1000);
    // The probe byte (2001) is still in flight; new data follows it.
    assert_eq!(o[0].0.seq, OUR_ISN + 2002);
}

#[test]
fn our_zero_window_is_advertised_then_reopened_with_an_update() {
    let mut cfg = plain_cfg();
    cfg.recv_buf_cap = 2000;
    let mut c = established_passive(&cfg, 60000);
    let b = PEER_ISN + 1;
    c.on_segment(&seg(b, OUR_ISN + 1, A, 60000), &payload(1000, 0), ms(20));
    c.on_segment(&seg(b + 1000, OUR_ISN + 1, A, 60000), &payload(1000, 0), ms(20));
    let o = out(&mut c, ms(20));
    assert_eq!((o[0].0.ack, o[0].0.window), (b + 2000, 0));
    // Beyond the window: not acceptable, ACK, nothing stored.
    assert!(matches!(c.on_segment(&seg(b + 2000, OUR_ISN + 1, A, 60000), b"x", ms(21)), SegmentOutcome::Dropped(_)));
    assert_eq!(c.recv_len(), 2000);
    out(&mut c, ms(21));
    let mut buf = [0u8; 1500];
    c.read(&mut buf);
    let o = out(&mut c, ms(22));
    assert_eq!(o.len(), 1, "window update");
    assert_eq!(o[0].0.window, 1500);
}

#[test]
fn sequence_numbers_wrap_around_2_pow_32() {
    let cfg = plain_cfg();
    let mut syn = seg(u32::MAX - 500, 0, S, 60000);
    syn.mss = Some(1000);
    let mut c = TcpConn::accept(&cfg, flow(), &syn, u32::MAX - 1500, ms(0));
    out(&mut c, ms(0));
    c.on_segment(&seg(u32::MAX - 499, u32::MAX - 1499, A, 60000), &[], ms(1));
    assert!(c.is_established());
    let d = payload(3000, 9);
    c.write(&d);
    let o = out(&mut c, ms(2));
    assert_eq!(o.len(), 3);
    assert_eq!(o[1].0.seq, u32::MAX - 499);
    assert_eq!(o[2].0.seq, 500);
    c.on_segment(&seg(u32::MAX - 499, 1500, A, 60000), &[], ms(3));
    assert_eq!(c.unacked_len(), 0);
    // Receive across the wrap, out of order first.
    let r = payload(1500, 4);
    c.on_segment(&seg((u32::MAX - 499).wrapping_add(1000), 1500, A, 60000), &r[1000..], ms(4));
    c.on_segment(&seg(u32::MAX - 499, 1500, A, 60000), &r[..1000], ms(5));
    assert_eq!(read_all(&mut c), r);
    let o = out(&mut c, ms(5));
    assert_eq!(o[0].0.ack, (u32::MAX - 499).wrapping_add(1500));
}

/// Regression: the right edge we last advertised started at 0 instead of
/// at the peer's ISN + 1, so with a peer ISN more than 2^31 away from 0 a
/// reopened window was never announced and the peer stalled for good.
fn zero_window_reopens(mut c: TcpConn, b: u32, t0: u64) {
    c.on_segment(&seg(b, OUR_ISN + 1, A, 60000), &payload(1000, 0), ms(t0));
    c.on_segment(&seg(b.wrapping_add(1000), OUR_ISN + 1, A, 60000), &payload(1000, 0), ms(t0));
    let o = out(&mut c, ms(t0));
    assert_eq!((o[0].0.ack, o[0].0.window), (b.wrapping_add(2000), 0));
    let mut buf = [0u8; 1500];
    c.read(&mut buf);
    let o = out(&mut c, ms(t0 + 1));
    assert_eq!(o.len(), 1, "window update after the zero window");
    assert_eq!(o[0].0.window, 1500);
}

#[test]
fn window_update_after_zero_window_with_peer_isn_far_from_zero_passive() {
    let mut cfg = plain_cfg();
    cfg.recv_buf_cap = 2000;
    let isn = 0x9000_0000u32;
    let mut syn = seg(isn, 0, S, 60000);
    syn.mss = Some(1000);
    let mut c = TcpConn::accept(&cfg, flow(), &syn, OUR_ISN, ms(0));
    out(&mut c, ms(0));
    c.on_segment(&seg(isn + 1, OUR_ISN + 1, A, 60000), &[], ms(10));
    assert!(c.is_established());
    zero_window_reopens(c, isn + 1, 20);
}

#[test]
fn window_update_after_zero_window_with_peer_isn_far_from_zero_active() {
    let mut cfg = plain_cfg();
    cfg.recv_buf_cap = 2000;
    let isn = 0xC000_0000u32;
    let mut c = TcpConn::connect(&cfg, flow(), OUR_ISN, ms(0));
    out(&mut c, ms(0));
    let mut synack = seg(isn, OUR_ISN + 1, S | A, 60000);
    synack.mss = Some(1000);
    c.on_segment(&synack, &[], ms(5));
    out(&mut c, ms(5));
    assert!(c.is_established());
    zero_window_reopens(c, isn + 1, 20);
}
