//! FIN in both directions, half-close, every closing path, TIME-WAIT, abort.

use super::util::*;
use crate::net::tcp::{TcpConfig, TcpState};

#[test]
fn active_close_fin_wait_1_2_time_wait_closed() {
    let cfg = TcpConfig { time_wait: dur_ms(2000), ..plain_cfg() };
    let mut c = established_passive(&cfg, 60000);
    c.close();
    assert_eq!(c.state(), TcpState::FinWait1);
    assert_eq!(c.write(b"late"), 0, "no writes after close");
    let o = out(&mut c, ms(20));
    assert_eq!((o[0].0.flags.0, o[0].0.seq), (A | F, OUR_ISN + 1));
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 2, A, 60000), &[], ms(30));
    assert_eq!(c.state(), TcpState::FinWait2);
    // Half-close: we still receive.
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 2, A, 60000), b"more", ms(40));
    assert_eq!(read_all(&mut c), b"more");
    c.on_segment(&seg(PEER_ISN + 5, OUR_ISN + 2, A | F, 60000), &[], ms(50));
    assert_eq!(c.state(), TcpState::TimeWait);
    assert!(c.peer_fin());
    let o = out(&mut c, ms(50));
    assert_eq!((o[0].0.flags.0, o[0].0.ack), (A, PEER_ISN + 6));
    // A retransmitted FIN is ACKed again and restarts the timer.
    c.on_segment(&seg(PEER_ISN + 5, OUR_ISN + 2, A | F, 60000), &[], ms(1000));
    assert_eq!(out(&mut c, ms(1000))[0].0.ack, PEER_ISN + 6);
    assert_eq!(c.poll_at(), Some(ms(3000)));
    out(&mut c, ms(3000));
    assert!(c.is_closed());
}

#[test]
fn passive_close_close_wait_last_ack_closed() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 1, A | F, 60000), b"req", ms(20));
    assert_eq!(c.state(), TcpState::CloseWait);
    assert!(c.peer_fin());
    assert_eq!(read_all(&mut c), b"req");
    let o = out(&mut c, ms(20));
    assert_eq!(o[0].0.ack, PEER_ISN + 5, "FIN ACKed at once");
    // We can still send (half-close), then close.
    c.write(b"resp");
    c.close();
    assert_eq!(c.state(), TcpState::LastAck);
    let o = out(&mut c, ms(30));
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].0.flags.0, &o[0].1[..]), (A | F | P, &b"resp"[..]));
    c.on_segment(&seg(PEER_ISN + 5, OUR_ISN + 5, A, 60000), &[], ms(40));
    assert_eq!(c.state(), TcpState::LastAck, "FIN not yet acked");
    c.on_segment(&seg(PEER_ISN + 5, OUR_ISN + 6, A, 60000), &[], ms(41));
    assert!(c.is_closed());
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    c.close();
    out(&mut c, ms(20));
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 1, A | F, 60000), &[], ms(21));
    assert_eq!(c.state(), TcpState::Closing);
    c.on_segment(&seg(PEER_ISN + 2, OUR_ISN + 2, A, 60000), &[], ms(22));
    assert_eq!(c.state(), TcpState::TimeWait);
}

#[test]
fn fin_with_ack_of_our_fin_goes_straight_to_time_wait() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    c.close();
    out(&mut c, ms(20));
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 2, A | F, 60000), &[], ms(21));
    assert_eq!(c.state(), TcpState::TimeWait);
}

#[test]
fn out_of_order_fin_waits_for_the_hole() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    c.on_segment(&seg(PEER_ISN + 4, OUR_ISN + 1, A | F, 60000), b"def", ms(20));
    assert!(!c.peer_fin());
    assert_eq!(c.state(), TcpState::Established);
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 1, A, 60000), b"abc", ms(21));
    assert!(c.peer_fin());
    assert_eq!(c.state(), TcpState::CloseWait);
    assert_eq!(read_all(&mut c), b"abcdef");
    assert_eq!(out(&mut c, ms(21))[0].0.ack, PEER_ISN + 8);
}

#[test]
fn abort_sends_rst_then_closed() {
    let cfg = plain_cfg();
    let mut c = established_passive(&cfg, 60000);
    c.write(b"unsent");
    c.abort();
    let o = out(&mut c, ms(20));
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].0.flags.0, o[0].0.seq, o[0].0.ack), (R | A, OUR_ISN + 1, PEER_ISN + 1));
    assert!(o[0].1.is_empty());
    assert!(c.is_closed());
    assert!(out(&mut c, ms(21)).is_empty());
}

#[test]
fn peer_reset_during_syn_received_closes() {
    let cfg = plain_cfg();
    let syn = seg(PEER_ISN, 0, S, 4000);
    let mut c = crate::net::tcp::TcpConn::accept(&cfg, flow(), &syn, OUR_ISN, ms(0));
    out(&mut c, ms(0));
    assert_eq!(c.on_segment(&seg(PEER_ISN + 1, 0, R, 0), &[], ms(1)), crate::net::tcp::SegmentOutcome::Reset);
    assert!(c.is_closed());
}
