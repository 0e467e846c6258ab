//! Loss recovery: RTO with backoff and Karn, fast retransmit and NewReno
//! partial ACKs, SACK-aware retransmission, retry limit.

use super::util::*;
use crate::net::tcp::{TcpConfig, TcpConn, TcpState};

#[test]
fn rto_retransmits_with_exponential_backoff_and_karn() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    // SYN-ACK RTT 10 ms → RTO 200 ms (rto_min).
    assert_eq!(c.rto(), dur_ms(200));
    c.write(b"abc");
    let o = out(&mut c, ms(100));
    assert_eq!(o[0].1, b"abc");
    assert_eq!(c.poll_at(), Some(ms(300)));
    assert!(out(&mut c, ms(299)).is_empty());
    let o = out(&mut c, ms(300));
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].0.seq, &o[0].1[..]), (OUR_ISN + 1, &b"abc"[..]));
    assert_eq!(c.poll_at(), Some(ms(700)), "backed off to 400 ms");
    let o = out(&mut c, ms(700));
    assert_eq!(o[0].1, b"abc");
    assert_eq!(c.poll_at(), Some(ms(1500)), "then 800 ms");
    // The ACK of a retransmitted segment gives no RTT sample (Karn): the
    // backed-off RTO stays until a fresh measurement.
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 4, A, 60000), &[], ms(1400));
    assert_eq!(c.rto(), dur_ms(800));
    assert_eq!(c.poll_at(), None);
    c.write(b"d");
    out(&mut c, ms(1500));
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 5, A, 60000), &[], ms(1550));
    // Fresh sample 50 ms on srtt 10/rttvar 5 → srtt 15, rttvar 13.75.
    assert_eq!(c.rto(), dur_ms(200));
}

#[test]
fn syn_retransmitted_then_connection_aborts_after_max_retries() {
    let mut cfg = plain_cfg();
    cfg.max_retries = 2;
    let mut c = TcpConn::connect(&cfg, flow(), OUR_ISN, ms(0));
    assert_eq!(out(&mut c, ms(0))[0].0.flags.0, S);
    assert_eq!(c.poll_at(), Some(ms(1000)), "initial RTO 1 s");
    let o = out(&mut c, ms(1000));
    assert_eq!((o[0].0.flags.0, o[0].0.seq), (S, OUR_ISN));
    assert_eq!(c.poll_at(), Some(ms(3000)));
    out(&mut c, ms(3000));
    assert_eq!(c.poll_at(), Some(ms(7000)));
    assert!(out(&mut c, ms(7000)).is_empty());
    assert!(c.is_closed() && c.timed_out());
}

#[test]
fn three_dup_acks_trigger_fast_retransmit_and_partial_ack_retransmits_next() {
    let cfg = TcpConfig { send_buf_cap: 200_000, ..plain_cfg() };
    let mut c = established_passive(&cfg, 60000);
    c.write(&payload(20_000, 5));
    let base = OUR_ISN + 1;
    // Grow cwnd: ACK the initial window.
    let o = out(&mut c, ms(10));
    assert_eq!(o.len(), 4);
    c.on_segment(&seg(PEER_ISN + 1, base + 4000, A, 60000), &[], ms(20));
    let o = out(&mut c, ms(20));
    assert_eq!(o.len(), 5, "cwnd 5000 after one ACK in slow start");
    // Segments 4000..9000 are out; 4000 and 6000 are lost.
    for _ in 0..3 {
        c.on_segment(&seg(PEER_ISN + 1, base + 4000, A, 60000), &[], ms(30));
    }
    let o = out(&mut c, ms(30));
    assert_eq!(o[0].0.seq, base + 4000, "fast retransmit of the first hole");
    assert_eq!(o[0].1.len(), 1000);
    assert_eq!(c.cwnd(), 2500 + 3000, "ssthresh = flight/2 = 2500, + 3 SMSS");
    // Partial ACK up to the second hole: retransmit it at once.
    c.on_segment(&seg(PEER_ISN + 1, base + 6000, A, 60000), &[], ms(40));
    let o = out(&mut c, ms(40));
    assert_eq!(o[0].0.seq, base + 6000);
    // Full ACK of everything sent before recovery ends it.
    c.on_segment(&seg(PEER_ISN + 1, base + 9000, A, 60000), &[], ms(50));
    assert!(c.cwnd() <= 2500);
}

#[test]
fn sacked_data_is_not_retransmitted_in_recovery() {
    let mut cfg = plain_cfg();
    cfg.sack = true;
    let mut syn = seg(PEER_ISN, 0, S, 60000);
    syn.mss = Some(1000);
    syn.sack_permitted = true;
    let mut c = TcpConn::accept(&cfg, flow(), &syn, OUR_ISN, ms(0));
    out(&mut c, ms(0));
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 1, A, 60000), &[], ms(10));
    let base = OUR_ISN + 1;
    c.write(&payload(4000, 1));
    let o = out(&mut c, ms(10));
    assert_eq!(o.len(), 4);
    // Segment 0 and 2 lost; 1 and 3 SACKed.
    let mut d = seg(PEER_ISN + 1, base, A, 60000);
    d.sack = [(base + 1000, base + 2000), (0, 0), (0, 0), (0, 0)];
    d.sack_len = 1;
    c.on_segment(&d, &[], ms(20));
    d.sack = [(base + 3000, base + 4000), (base + 1000, base + 2000), (0, 0), (0, 0)];
    d.sack_len = 2;
    c.on_segment(&d, &[], ms(21));
    c.on_segment(&d, &[], ms(22));
    let o = out(&mut c, ms(22));
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].0.seq, o[0].1.len()), (base, 1000));
    // An RTO now would go back to snd_una; after a partial ACK to 2000 the
    // retransmission is the hole at 2000 only, never the SACKed 3000.
    c.on_segment(&seg(PEER_ISN + 1, base + 2000, A, 60000), &[], ms(30));
    let o = out(&mut c, ms(30));
    assert_eq!((o[0].0.seq, o[0].1.len()), (base + 2000, 1000));
    assert!(o.iter().all(|(h, _)| h.seq != base + 3000));
}

#[test]
fn rto_after_fin_retransmits_fin() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    c.write(b"bye");
    c.close();
    assert_eq!(c.state(), TcpState::FinWait1);
    let o = out(&mut c, ms(10));
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].0.flags.0, &o[0].1[..]), (A | F | P, &b"bye"[..]));
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 4, A, 60000), &[], ms(20));
    let t = c.poll_at().unwrap();
    let o = out(&mut c, t);
    assert_eq!((o[0].0.flags.0, o[0].0.seq, o[0].1.len()), (A | F, OUR_ISN + 4, 0));
}
