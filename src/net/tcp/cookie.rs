//! SYN cookies (RFC 4987 §3.6): under pressure the listener answers a SYN
//! without keeping state; the initial sequence number it picks encodes what
//! it needs to rebuild the connection from the client's ACK, authenticated
//! by a MAC under a secret shared by all workers (DESIGN.md, "Ports,
//! sequence numbers, admission").
//!
//! Cookie (our ISN), 32 bits: `t` (4 bits, 64-second ticks) | MSS index
//! (2) | peer window scale + 1, 0 = none (4 bits, so every scale 0–14
//! fits exactly) | SACK (1) | timestamps (1) | MAC (20). A cookie is valid
//! for the tick it was made in and the next. (Regression: a 3-bit field
//! capped the scale, and a client with scale 10 was read as having a 32×
//! smaller window: 33 KB/s instead of 100 MB/s.) The SYN-ACK is built by a real
//! `TcpConn::accept` that is then dropped, so it is byte-for-byte what a
//! stateful SYN-ACK would be; its TSval is a function of the cookie alone,
//! so the rebuilt connection's timestamp clock continues it.

use ring::hmac;

use super::{TcpConfig, TcpConn};
use crate::net::{FlowId, TcpFlags, TcpHeader};
use crate::time::Instant;

/// MSS values a cookie can carry (RFC 4987 keeps a small table too).
const MSS_TABLE: [u16; 4] = [536, 1220, 1440, 1460];
const TICK_US: u64 = 64_000_000;
const MAC_BITS: u32 = 20;

/// The shared cookie secret.
pub struct SynCookies {
    key: hmac::Key,
}

impl SynCookies {
    pub fn new(secret: &[u8]) -> Self {
        SynCookies { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    fn mac(&self, flow: &FlowId, client_isn: u32, tick: u32, fields: u32) -> u32 {
        let mut m = [0u8; 24];
        m[0..4].copy_from_slice(&flow.local.addr.octets_v4());
        m[4..6].copy_from_slice(&flow.local.port.to_be_bytes());
        m[6..10].copy_from_slice(&flow.remote.addr.octets_v4());
        m[10..12].copy_from_slice(&flow.remote.port.to_be_bytes());
        m[12..16].copy_from_slice(&client_isn.to_be_bytes());
        m[16..20].copy_from_slice(&tick.to_be_bytes());
        m[20..24].copy_from_slice(&fields.to_be_bytes());
        let t = hmac::sign(&self.key, &m);
        let b = t.as_ref();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]) >> (32 - MAC_BITS)
    }

    /// The cookie for a SYN, and the SYN-ACK to send (header and no
    /// payload), with no state kept.
    pub fn answer(&self, cfg: &TcpConfig, flow: FlowId, syn: &TcpHeader, now: Instant, emit: &mut dyn FnMut(&TcpHeader, &[u8])) -> u32 {
        let tick = ((now.micros() / TICK_US) & 0xf) as u32;
        let peer_mss = syn.mss.unwrap_or(536);
        let mss_idx = MSS_TABLE.iter().rposition(|&m| m <= peer_mss).unwrap_or(0) as u32;
        let ws = syn.wscale.map(|s| s.min(14) as u32 + 1).unwrap_or(0);
        let sack = (syn.sack_permitted && cfg.sack) as u32;
        let ts = (syn.timestamp.is_some() && cfg.timestamps) as u32;
        let fields = (mss_idx << 6) | (ws << 2) | (sack << 1) | ts;
        let mac = self.mac(&flow, syn.seq, tick, fields);
        let cookie = (tick << 28) | (fields << MAC_BITS) | mac;
        let mut s = Self::synthetic_syn(syn.seq, fields, syn.timestamp.map(|t| t.0), syn.window);
        s.src_port = syn.src_port;
        s.dst_port = syn.dst_port;
        let mut c = TcpConn::accept(cfg, flow, &s, cookie, now);
        c.poll_transmit(now, emit);
        cookie
    }

    fn synthetic_syn(client_isn: u32, fields: u32, tsval: Option<u32>, window: u16) -> TcpHeader {
        let ws = (fields >> 2) & 0xf;
        TcpHeader {
            seq: client_isn,
            flags: TcpFlags(TcpFlags::SYN),
            window,
            mss: Some(MSS_TABLE[((fields >> 6) & 0x3) as usize]),
            wscale: if ws == 0 { None } else { Some((ws - 1) as u8) },
            sack_permitted: (fields >> 1) & 1 == 1,
            timestamp: if fields & 1 == 1 { tsval.map(|t| (t, 0)) } else { None },
            ..TcpHeader::default()
        }
    }

    /// Checks the ACK that completes a cookie handshake; on success returns
    /// the connection, ESTABLISHED, with the ACK (and any data on it)
    /// already processed.
    pub fn accept_ack(&self, cfg: &TcpConfig, flow: FlowId, ack: &TcpHeader, payload: &[u8], now: Instant) -> Option<TcpConn> {
        let f = ack.flags;
        if !f.ack() || f.syn() || f.rst() {
            return None;
        }
        let cookie = ack.ack.wrapping_sub(1);
        let client_isn = ack.seq.wrapping_sub(1);
        let tick = cookie >> 28;
        let fields = (cookie >> MAC_BITS) & 0xff;
        let mac = cookie & ((1 << MAC_BITS) - 1);
        let now_tick = ((now.micros() / TICK_US) & 0xf) as u32;
        if tick != now_tick && tick != (now_tick + 15) & 0xf {
            return None;
        }
        if self.mac(&flow, client_isn, tick, fields) != mac {
            return None;
        }
        if fields & 1 == 1 && ack.timestamp.is_none() {
            return None;
        }
        let mut s = Self::synthetic_syn(client_isn, fields, ack.timestamp.map(|t| t.0), ack.window);
        s.src_port = ack.src_port;
        s.dst_port = ack.dst_port;
        let mut c = TcpConn::accept(cfg, flow, &s, cookie, now);
        // "Send" the SYN-ACK again into nowhere so the connection's state
        // is the one that sent it; then the ACK completes the handshake.
        c.poll_transmit(now, &mut |_, _| {});
        match c.on_segment(ack, payload, now) {
            super::SegmentOutcome::Accepted if c.is_established() => Some(c),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{Endpoint, IpAddress};
    use crate::time::Duration;

    fn flow() -> FlowId {
        FlowId { local: Endpoint::new(IpAddress::v4(198, 18, 0, 2), 443), remote: Endpoint::new(IpAddress::v4(198, 18, 0, 1), 40000) }
    }

    fn syn() -> TcpHeader {
        TcpHeader {
            src_port: 40000,
            dst_port: 443,
            seq: 0x9000_0000,
            flags: TcpFlags(TcpFlags::SYN),
            window: 64240,
            mss: Some(1460),
            wscale: Some(7),
            sack_permitted: true,
            timestamp: Some((12345, 0)),
            ..TcpHeader::default()
        }
    }

    fn answer(sc: &SynCookies, now: Instant) -> (u32, TcpHeader) {
        let mut out = Vec::new();
        let c = sc.answer(&TcpConfig::default(), flow(), &syn(), now, &mut |h, p| out.push((*h, p.len())));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1, 0, "a SYN-ACK carries no data");
        (c, out[0].0)
    }

    fn ack_for(synack: &TcpHeader) -> TcpHeader {
        TcpHeader {
            src_port: 40000,
            dst_port: 443,
            seq: 0x9000_0001,
            ack: synack.seq.wrapping_add(1),
            flags: TcpFlags(TcpFlags::ACK),
            window: 502,
            timestamp: Some((12346, synack.timestamp.unwrap().0)),
            ..TcpHeader::default()
        }
    }

    #[test]
    fn cookie_syn_ack_carries_the_negotiated_options() {
        let sc = SynCookies::new(b"secret");
        let (cookie, sa) = answer(&sc, Instant::from_millis(5));
        assert!(sa.flags.syn() && sa.flags.ack());
        assert_eq!((sa.seq, sa.ack), (cookie, 0x9000_0001));
        assert_eq!(sa.mss, Some(TcpConfig::default().mss));
        assert!(sa.wscale.is_some() && sa.sack_permitted);
        assert_eq!(sa.timestamp.map(|t| t.1), Some(12345));
    }

    #[test]
    fn a_valid_ack_rebuilds_an_established_connection() {
        let sc = SynCookies::new(b"secret");
        let t0 = Instant::from_millis(5);
        let (_, sa) = answer(&sc, t0);
        let t1 = t0 + Duration::from_millis(30);
        let mut c = sc.accept_ack(&TcpConfig::default(), flow(), &ack_for(&sa), b"hello", t1).expect("valid cookie");
        assert!(c.is_established());
        assert_eq!(c.recv_len(), 5, "data on the ACK is kept");
        assert!(c.timestamps_enabled() && c.sack_enabled());
        // Our clock continues the SYN-ACK's: the next TSval is not older.
        let mut out = Vec::new();
        c.poll_transmit(t1 + Duration::from_millis(50), &mut |h, _| out.push(*h));
        let ts = out.last().and_then(|h| h.timestamp).unwrap().0;
        assert!(ts.wrapping_sub(sa.timestamp.unwrap().0) < 1 << 31);
    }

    #[test]
    fn a_large_peer_window_scale_is_carried_exactly() {
        // Regression: scale 10 was capped to 5.
        let sc = SynCookies::new(b"secret");
        let mut s = syn();
        s.wscale = Some(10);
        let mut out = Vec::new();
        sc.answer(&TcpConfig::default(), flow(), &s, Instant::from_millis(5), &mut |h, _| out.push(*h));
        let c = sc.accept_ack(&TcpConfig::default(), flow(), &ack_for(&out[0]), &[], Instant::from_millis(6)).unwrap();
        assert_eq!(c.window_scales().0, 10);
    }

    #[test]
    fn forged_or_stale_or_foreign_cookies_are_refused() {
        let sc = SynCookies::new(b"secret");
        let t0 = Instant::from_millis(5);
        let (_, sa) = answer(&sc, t0);
        let cfg = TcpConfig::default();
        let mut bad = ack_for(&sa);
        bad.ack ^= 1 << 3;
        assert!(sc.accept_ack(&cfg, flow(), &bad, &[], t0).is_none(), "flipped MAC bit");
        let mut other = flow();
        other.remote.port = 40001;
        assert!(sc.accept_ack(&cfg, other, &ack_for(&sa), &[], t0).is_none(), "another 4-tuple");
        assert!(SynCookies::new(b"other").accept_ack(&cfg, flow(), &ack_for(&sa), &[], t0).is_none(), "another secret");
        let late = t0 + Duration::from_secs(200);
        assert!(sc.accept_ack(&cfg, flow(), &ack_for(&sa), &[], late).is_none(), "older than two ticks");
        let ok = t0 + Duration::from_secs(70);
        assert!(sc.accept_ack(&cfg, flow(), &ack_for(&sa), &[], ok).is_some(), "the next tick is still valid");
    }
}
