//! Versioned handoff encoding of a whole connection (DESIGN.md, "What a
//! handoff carries"): sequence space, windows and scales, options, the
//! timestamp clock as its current value, both buffers with out-of-order
//! data and the SACK scoreboard, the RTT estimator and congestion state,
//! FIN state, and every timer as a remaining duration, never a clock
//! reading. Decoding at another `now` continues the same connection.

use super::cc::NewReno;
use super::conn::{RstReply, TcpConn, MAX_WSCALE};
use super::recv::{RecvBuf, MAX_OOO};
use super::rtt::RttEstimator;
use super::send::{Scoreboard, SendBuf, MAX_SCOREBOARD};
use super::{TcpConfig, TcpState};
use crate::codec::{DecodeError, Reader, Writer};
use crate::net::{Endpoint, FlowId, IpAddress};
use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use std::net::Ipv4Addr;

/// Record tag of a TCP connection ("TC").
pub const TCP_CONN_TAG: u16 = 0x5443;
pub const TCP_CONN_VERSION: u16 = 1;
/// Oldest version this build reads.
pub const TCP_CONN_OLDEST: u16 = 1;

fn put_endpoint(w: &mut Writer, e: &Endpoint) {
    match e.addr {
        IpAddress::V4(a) => {
            w.u8(4);
            w.raw(&a.octets());
        }
    }
    w.u16(e.port);
}

fn get_endpoint(r: &mut Reader<'_>) -> Result<Endpoint, DecodeError> {
    match r.u8()? {
        4 => {
            let o = r.array::<4>()?;
            let port = r.u16()?;
            Ok(Endpoint::new(IpAddress::V4(Ipv4Addr::from(o)), port))
        }
        _ => Err(DecodeError::Invalid("tcp endpoint address family")),
    }
}

fn put_timer(w: &mut Writer, t: Option<Instant>, now: Instant) {
    w.opt_u64(t.map(|t| t.saturating_since(now).micros()));
}

fn get_timer(r: &mut Reader<'_>, now: Instant) -> Result<Option<Instant>, DecodeError> {
    Ok(r.opt_u64()?.map(|d| now + Duration::from_micros(d)))
}

fn put_ranges(w: &mut Writer, v: &[(u32, u32)]) {
    w.u16(v.len() as u16);
    for &(l, r) in v {
        w.u32(l);
        w.u32(r);
    }
}

fn get_ranges(r: &mut Reader<'_>, max: usize, what: &'static str) -> Result<Vec<(u32, u32)>, DecodeError> {
    let n = r.u16()? as usize;
    if n > max {
        return Err(DecodeError::Invalid(what));
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push((r.u32()?, r.u32()?));
    }
    Ok(v)
}

fn put_config(w: &mut Writer, c: &TcpConfig) {
    w.u16(c.mss);
    w.u64(c.recv_buf_cap as u64);
    w.u64(c.send_buf_cap as u64);
    w.u8(c.wscale);
    w.bool(c.timestamps);
    w.bool(c.sack);
    w.u64(c.rto_initial.micros());
    w.u64(c.rto_min.micros());
    w.u64(c.rto_max.micros());
    w.u32(c.max_retries);
    w.u64(c.time_wait.micros());
    w.u64(c.delayed_ack.micros());
}

/// Buffer caps accepted from a record (a corrupt record must not make us
/// reserve gigabytes).
const MAX_BUF_CAP: u64 = 64 << 20;

fn get_config(r: &mut Reader<'_>) -> Result<TcpConfig, DecodeError> {
    let mss = r.u16()?;
    let recv_buf_cap = r.u64()?;
    let send_buf_cap = r.u64()?;
    if recv_buf_cap > MAX_BUF_CAP || send_buf_cap > MAX_BUF_CAP {
        return Err(DecodeError::Invalid("tcp buffer cap"));
    }
    let wscale = r.u8()?;
    if wscale > MAX_WSCALE {
        return Err(DecodeError::Invalid("tcp window scale"));
    }
    Ok(TcpConfig {
        mss,
        recv_buf_cap: recv_buf_cap as usize,
        send_buf_cap: send_buf_cap as usize,
        wscale,
        timestamps: r.bool()?,
        sack: r.bool()?,
        rto_initial: Duration::from_micros(r.u64()?),
        rto_min: Duration::from_micros(r.u64()?),
        rto_max: Duration::from_micros(r.u64()?),
        max_retries: r.u32()?,
        time_wait: Duration::from_micros(r.u64()?),
        delayed_ack: Duration::from_micros(r.u64()?),
    })
}

impl TcpConn {
    /// Appends this connection's record to `w`.
    pub fn encode(&self, now: Instant, w: &mut Writer) {
        w.version(TCP_CONN_TAG, TCP_CONN_VERSION);
        put_config(w, &self.cfg);
        put_endpoint(w, &self.flow.local);
        put_endpoint(w, &self.flow.remote);
        w.u8(self.state.to_u8());
        for v in [self.iss, self.snd_una, self.snd_nxt, self.snd_max, self.snd_wnd, self.snd_wl1, self.snd_wl2, self.max_snd_wnd, self.buf_seq] {
            w.u32(v);
        }
        for v in [self.irs, self.rcv_nxt, self.rcv_adv] {
            w.u32(v);
        }
        w.u16(self.snd_mss);
        w.u8(self.snd_wscale);
        w.u8(self.rcv_wscale);
        w.bool(self.ts_ok);
        w.bool(self.sack_ok);
        // The timestamp clock as its current value (offset-free).
        w.u32(self.ts_now(now));
        w.u32(self.ts_recent);
        w.u32(self.last_ack_sent);
        // Send buffer and scoreboard.
        let (a, b) = self.send.buf.as_slices();
        w.u32((a.len() + b.len()) as u32);
        w.raw(a);
        w.raw(b);
        put_ranges(w, &self.sb.blocks);
        // Receive buffer: readable bytes, staging with out-of-order data.
        let (a, b) = self.recv.buf.as_slices();
        w.u32((a.len() + b.len()) as u32);
        w.raw(a);
        w.raw(b);
        w.u32(self.recv.ready as u32);
        put_ranges(w, &self.recv.ooo);
        w.opt_u64(self.recv.last_ooo.map(u64::from));
        // FIN state.
        w.bool(self.fin_queued);
        w.opt_u64(self.peer_fin_seq.map(u64::from));
        w.bool(self.peer_fin);
        // RTT estimator and congestion control.
        w.opt_u64(self.rtt.srtt);
        w.u64(self.rtt.rttvar);
        w.u64(self.rtt.rto);
        match self.rtt_timing {
            Some((s, t)) => {
                w.u8(1);
                w.u32(s);
                w.u64(now.saturating_since(t).micros());
            }
            None => w.u8(0),
        }
        w.u32(self.cc.cwnd);
        w.u32(self.cc.ssthresh);
        w.u32(self.cc.dupacks);
        w.bool(self.cc.in_recovery);
        w.u32(self.cc.recover);
        w.u32(self.cc.ca_acked);
        w.u32(self.retries);
        // Timers, as remaining durations.
        put_timer(w, self.rto_at, now);
        put_timer(w, self.delack_at, now);
        put_timer(w, self.persist_at, now);
        put_timer(w, self.timewait_at, now);
        // Pending output.
        w.bool(self.ack_now);
        w.u32(self.segs_unacked);
        w.bool(self.syn_pending);
        w.bool(self.fast_rtx);
        w.bool(self.probe_now);
        w.bool(self.rst_pending);
        match self.reply_rst {
            Some(r) => {
                w.u8(1);
                w.u32(r.seq);
                w.opt_u64(r.ack.map(u64::from));
            }
            None => w.u8(0),
        }
        w.bool(self.reset_received);
        w.bool(self.timed_out);
    }

    /// Reads a record written by `encode` (this version or an older one).
    pub fn decode(r: &mut Reader<'_>, now: Instant) -> Result<TcpConn, DecodeError> {
        r.version("tcp connection", TCP_CONN_TAG, TCP_CONN_OLDEST, TCP_CONN_VERSION)?;
        let cfg = get_config(r)?;
        let local = get_endpoint(r)?;
        let remote = get_endpoint(r)?;
        let state = TcpState::from_u8(r.u8()?).ok_or(DecodeError::Invalid("tcp state"))?;
        let mut c = TcpConn::connect(&cfg, FlowId { local, remote }, 0, now);
        c.state = state;
        c.iss = r.u32()?;
        c.snd_una = r.u32()?;
        c.snd_nxt = r.u32()?;
        c.snd_max = r.u32()?;
        c.snd_wnd = r.u32()?;
        c.snd_wl1 = r.u32()?;
        c.snd_wl2 = r.u32()?;
        c.max_snd_wnd = r.u32()?;
        c.buf_seq = r.u32()?;
        c.irs = r.u32()?;
        c.rcv_nxt = r.u32()?;
        c.rcv_adv = r.u32()?;
        // Send-space invariants the state machine relies on.
        if !(super::seq::le(c.snd_una, c.snd_nxt) && super::seq::le(c.snd_nxt, c.snd_max) && (super::seq::dist(c.snd_una, c.buf_seq) <= 1 || super::seq::dist(c.buf_seq, c.snd_una) <= 1)) {
            return Err(DecodeError::Invalid("tcp send sequence space"));
        }
        c.snd_mss = r.u16()?;
        c.snd_wscale = r.u8()?;
        c.rcv_wscale = r.u8()?;
        if c.snd_wscale > MAX_WSCALE || c.rcv_wscale > MAX_WSCALE {
            return Err(DecodeError::Invalid("tcp window scale"));
        }
        c.ts_ok = r.bool()?;
        c.sack_ok = r.bool()?;
        let tsval = r.u32()?;
        c.ts_offset = tsval.wrapping_sub((now.micros() / 1000) as u32);
        c.ts_recent = r.u32()?;
        c.last_ack_sent = r.u32()?;
        let n = r.u32()? as usize;
        if n > cfg.send_buf_cap {
            return Err(DecodeError::Invalid("tcp send buffer length"));
        }
        c.send = SendBuf { cap: cfg.send_buf_cap, buf: VecDeque::from(r.raw(n)?.to_vec()) };
        let end = c.buf_seq.wrapping_add(n as u32);
        if !super::seq::le(c.snd_max, end.wrapping_add(1)) {
            return Err(DecodeError::Invalid("tcp send sequence space"));
        }
        c.sb = Scoreboard { blocks: get_ranges(r, MAX_SCOREBOARD, "tcp scoreboard")? };
        let n = r.u32()? as usize;
        if n > cfg.recv_buf_cap {
            return Err(DecodeError::Invalid("tcp receive buffer length"));
        }
        let buf = VecDeque::from(r.raw(n)?.to_vec());
        let ready = r.u32()? as usize;
        if ready > n {
            return Err(DecodeError::Invalid("tcp receive buffer ready"));
        }
        let ooo = get_ranges(r, MAX_OOO, "tcp out-of-order list")?;
        let last_ooo = r.opt_u64()?.map(|v| v as u32);
        // Islands must sit inside the staging area, sorted, above rcv_nxt.
        let mut prev = 0usize;
        for &(l, rr) in &ooo {
            let (ol, or) = (super::seq::dist(c.rcv_nxt, l), super::seq::dist(c.rcv_nxt, rr));
            if ol <= prev || or <= ol || ready + or > n {
                return Err(DecodeError::Invalid("tcp out-of-order range"));
            }
            prev = or;
        }
        c.recv = RecvBuf { cap: cfg.recv_buf_cap, buf, ready, ooo, last_ooo };
        c.fin_queued = r.bool()?;
        c.peer_fin_seq = r.opt_u64()?.map(|v| v as u32);
        c.peer_fin = r.bool()?;
        let srtt = r.opt_u64()?;
        let rttvar = r.u64()?;
        let rto = r.u64()?;
        c.rtt = RttEstimator { srtt, rttvar, rto, min: cfg.rto_min.micros(), max: cfg.rto_max.micros() };
        c.rtt_timing = match r.u8()? {
            0 => None,
            1 => {
                let s = r.u32()?;
                let ago = r.u64()?;
                Some((s, now - Duration::from_micros(ago)))
            }
            _ => return Err(DecodeError::Invalid("tcp rtt timing")),
        };
        c.cc = NewReno { cwnd: r.u32()?, ssthresh: r.u32()?, dupacks: r.u32()?, in_recovery: r.bool()?, recover: r.u32()?, ca_acked: r.u32()? };
        c.retries = r.u32()?;
        c.rto_at = get_timer(r, now)?;
        c.delack_at = get_timer(r, now)?;
        c.persist_at = get_timer(r, now)?;
        c.timewait_at = get_timer(r, now)?;
        c.ack_now = r.bool()?;
        c.segs_unacked = r.u32()?;
        c.syn_pending = r.bool()?;
        c.fast_rtx = r.bool()?;
        c.probe_now = r.bool()?;
        c.rst_pending = r.bool()?;
        c.reply_rst = match r.u8()? {
            0 => None,
            1 => {
                let s = r.u32()?;
                let ack = r.opt_u64()?.map(|v| v as u32);
                Some(RstReply { seq: s, ack })
            }
            _ => return Err(DecodeError::Invalid("tcp reply rst")),
        };
        c.reset_received = r.bool()?;
        c.timed_out = r.bool()?;
        Ok(c)
    }
}
