//! Helpers for scripted exchanges: a hand-driven peer and a recorder.

use crate::net::tcp::{TcpConfig, TcpConn};
use crate::net::{Endpoint, FlowId, IpAddress, TcpFlags, TcpHeader};
use crate::time::{Duration, Instant};

pub const LOCAL_PORT: u16 = 443;
pub const REMOTE_PORT: u16 = 40000;

/// baton's view: local 198.18.0.1:443, remote 198.18.0.2:40000.
pub fn flow() -> FlowId {
    FlowId { local: Endpoint::new(IpAddress::v4(198, 18, 0, 1), LOCAL_PORT), remote: Endpoint::new(IpAddress::v4(198, 18, 0, 2), REMOTE_PORT) }
}

/// The same flow seen from the other end.
pub fn flow_rev() -> FlowId {
    let f = flow();
    FlowId { local: f.remote, remote: f.local }
}

/// A plain configuration without timestamps or SACK, so byte-level
/// expectations stay short; tests that need the options turn them on.
pub fn plain_cfg() -> TcpConfig {
    TcpConfig { mss: 1000, timestamps: false, sack: false, wscale: 0, recv_buf_cap: 64 * 1024, send_buf_cap: 64 * 1024, ..TcpConfig::default() }
}

pub fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

pub fn dur_ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A segment from the peer (remote → local).
pub fn seg(seq: u32, ack: u32, flags: u8, window: u16) -> TcpHeader {
    TcpHeader { src_port: REMOTE_PORT, dst_port: LOCAL_PORT, seq, ack, flags: TcpFlags(flags), window, ..TcpHeader::default() }
}

pub const A: u8 = TcpFlags::ACK;
pub const S: u8 = TcpFlags::SYN;
pub const F: u8 = TcpFlags::FIN;
pub const R: u8 = TcpFlags::RST;
pub const P: u8 = TcpFlags::PSH;

/// Everything the connection emits at `now`.
pub fn out(c: &mut TcpConn, now: Instant) -> Vec<(TcpHeader, Vec<u8>)> {
    let mut v = Vec::new();
    c.poll_transmit(now, &mut |h, p| v.push((*h, p.to_vec())));
    v
}

pub fn read_all(c: &mut TcpConn) -> Vec<u8> {
    let mut v = vec![0u8; c.recv_len()];
    let n = c.read(&mut v);
    v.truncate(n);
    v
}

/// Peer ISN used by scripted tests.
pub const PEER_ISN: u32 = 5000;
/// Our ISN used by scripted tests.
pub const OUR_ISN: u32 = 1000;

/// A passive connection taken to ESTABLISHED by a scripted peer: SYN at
/// t=0 with `window`, our SYN-ACK, the peer's ACK at t=10 ms.
pub fn established_passive(cfg: &TcpConfig, window: u16) -> TcpConn {
    let mut syn = seg(PEER_ISN, 0, S, window);
    syn.mss = Some(1000);
    let mut c = TcpConn::accept(cfg, flow(), &syn, OUR_ISN, ms(0));
    let o = out(&mut c, ms(0));
    assert_eq!(o.len(), 1);
    c.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 1, A, window), &[], ms(10));
    assert!(c.is_established());
    c
}

pub fn payload(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt)).collect()
}
