//! Connection state and segment arrival (RFC 9293 §3.10.7), hardened per
//! RFC 5961, with RFC 7323 options, RFC 2018 SACK and RFC 5681/6582
//! loss recovery.

use super::cc::{CcAction, NewReno};
use super::recv::RecvBuf;
use super::rtt::RttEstimator;
use super::send::{Scoreboard, SendBuf};
use super::{seq, SegmentOutcome, TcpConfig, TcpDrop, TcpState};
use crate::net::{FlowId, TcpHeader};
use crate::time::Instant;

/// MSS assumed when the peer sends none (RFC 9293 §3.7.1).
pub const DEFAULT_PEER_MSS: u16 = 536;
/// RFC 7323 §2.3: shift counts above 14 are treated as 14.
pub const MAX_WSCALE: u8 = 14;

/// A reply RST built from an offending segment (RFC 9293 §3.10.7.3,
/// §3.10.7.4 for SYN-RECEIVED): `seq`, and `ack` when the ACK bit is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RstReply {
    pub seq: u32,
    pub ack: Option<u32>,
}

/// One TCP connection. Plain data: `Clone`, and [`TcpConn::encode`] /
/// [`TcpConn::decode`] move it between workers and hosts.
#[derive(Clone, Debug)]
pub struct TcpConn {
    pub(crate) cfg: TcpConfig,
    pub(crate) flow: FlowId,
    pub(crate) state: TcpState,

    // Send sequence space (RFC 9293 §3.3.1).
    pub(crate) iss: u32,
    pub(crate) snd_una: u32,
    pub(crate) snd_nxt: u32,
    /// Highest sequence number sent + 1 (snd_nxt drops back on RTO).
    pub(crate) snd_max: u32,
    /// Peer window in bytes (scaled).
    pub(crate) snd_wnd: u32,
    pub(crate) snd_wl1: u32,
    pub(crate) snd_wl2: u32,
    pub(crate) max_snd_wnd: u32,
    /// Sequence number of `send.buf[0]`.
    pub(crate) buf_seq: u32,

    // Receive sequence space.
    pub(crate) irs: u32,
    pub(crate) rcv_nxt: u32,
    /// Right edge of the window we last advertised.
    pub(crate) rcv_adv: u32,

    // Negotiated options.
    pub(crate) snd_mss: u16,
    pub(crate) snd_wscale: u8,
    pub(crate) rcv_wscale: u8,
    pub(crate) ts_ok: bool,
    pub(crate) sack_ok: bool,
    /// TSval = ts_offset + now in ms (RFC 7323 §5.4: per-connection offset).
    pub(crate) ts_offset: u32,
    pub(crate) ts_recent: u32,
    pub(crate) last_ack_sent: u32,

    pub(crate) send: SendBuf,
    pub(crate) recv: RecvBuf,
    pub(crate) sb: Scoreboard,

    /// close() was called: FIN follows the queued data.
    pub(crate) fin_queued: bool,
    /// The peer's FIN has been seen at this sequence number.
    pub(crate) peer_fin_seq: Option<u32>,
    /// The peer's FIN has been consumed in order.
    pub(crate) peer_fin: bool,

    pub(crate) rtt: RttEstimator,
    /// A segment being timed (Karn): its sequence number and send time.
    pub(crate) rtt_timing: Option<(u32, Instant)>,
    pub(crate) cc: NewReno,
    pub(crate) retries: u32,

    pub(crate) rto_at: Option<Instant>,
    pub(crate) delack_at: Option<Instant>,
    pub(crate) persist_at: Option<Instant>,
    pub(crate) timewait_at: Option<Instant>,

    pub(crate) ack_now: bool,
    pub(crate) segs_unacked: u32,
    /// The SYN (or SYN-ACK) must be (re)sent.
    pub(crate) syn_pending: bool,
    /// Retransmit one segment at snd_una (fast retransmit, partial ACK).
    pub(crate) fast_rtx: bool,
    /// Send a zero-window probe now.
    pub(crate) probe_now: bool,
    /// abort() was called: send RST on the next poll.
    pub(crate) rst_pending: bool,
    pub(crate) reply_rst: Option<RstReply>,
    pub(crate) reset_received: bool,
    pub(crate) timed_out: bool,

    /// Scratch for segments that straddle the send ring's wrap; not state.
    pub(crate) scratch: Vec<u8>,
}

impl TcpConn {
    fn blank(cfg: &TcpConfig, flow: FlowId, isn: u32, now: Instant, state: TcpState) -> TcpConn {
        let mss = cfg.mss.max(64);
        TcpConn {
            cfg: cfg.clone(),
            flow,
            state,
            iss: isn,
            snd_una: isn,
            snd_nxt: isn,
            snd_max: isn,
            snd_wnd: 0,
            snd_wl1: 0,
            snd_wl2: isn,
            max_snd_wnd: 0,
            buf_seq: isn.wrapping_add(1),
            irs: 0,
            rcv_nxt: 0,
            rcv_adv: 0,
            snd_mss: mss,
            snd_wscale: 0,
            rcv_wscale: 0,
            ts_ok: false,
            sack_ok: false,
            // RFC 7323 §5.4 suggests a random per-connection offset; the ISN
            // is one (RFC 6528) and comes with the connection.
            ts_offset: isn.rotate_left(16).wrapping_sub((now.micros() / 1000) as u32),
            ts_recent: 0,
            last_ack_sent: 0,
            send: SendBuf::new(cfg.send_buf_cap),
            recv: RecvBuf::new(cfg.recv_buf_cap),
            sb: Scoreboard::default(),
            fin_queued: false,
            peer_fin_seq: None,
            peer_fin: false,
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max),
            rtt_timing: None,
            cc: NewReno::new(mss as u32, isn),
            retries: 0,
            rto_at: None,
            delack_at: None,
            persist_at: None,
            timewait_at: None,
            ack_now: false,
            segs_unacked: 0,
            syn_pending: true,
            fast_rtx: false,
            probe_now: false,
            rst_pending: false,
            reply_rst: None,
            reset_received: false,
            timed_out: false,
            scratch: Vec::new(),
        }
    }

    /// Passive open on a received SYN: SYN-RECEIVED, the SYN-ACK is ready
    /// for `poll_transmit`. Options are negotiated from the SYN.
    pub fn accept(cfg: &TcpConfig, flow: FlowId, syn: &TcpHeader, isn: u32, now: Instant) -> TcpConn {
        let mut c = TcpConn::blank(cfg, flow, isn, now, TcpState::SynReceived);
        c.irs = syn.seq;
        c.rcv_nxt = syn.seq.wrapping_add(1);
        c.rcv_adv = c.rcv_nxt;
        c.negotiate(syn);
        // RFC 7323 §2.2: the window of a SYN is never scaled.
        c.snd_wnd = syn.window as u32;
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = syn.seq;
        c.snd_wl2 = isn;
        c
    }

    /// Active open: SYN-SENT, the SYN is ready for `poll_transmit`.
    pub fn connect(cfg: &TcpConfig, flow: FlowId, isn: u32, now: Instant) -> TcpConn {
        TcpConn::blank(cfg, flow, isn, now, TcpState::SynSent)
    }

    /// Option negotiation from the peer's SYN or SYN-ACK.
    fn negotiate(&mut self, h: &TcpHeader) {
        let peer_mss = h.mss.unwrap_or(DEFAULT_PEER_MSS).max(64);
        self.snd_mss = peer_mss.min(self.cfg.mss.max(64));
        // RFC 7323 §2.2: scaling only if both sides sent the option.
        match h.wscale {
            Some(s) => {
                self.snd_wscale = s.min(MAX_WSCALE);
                self.rcv_wscale = self.cfg.wscale.min(MAX_WSCALE);
            }
            None => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack_ok = self.cfg.sack && h.sack_permitted;
        // RFC 7323 §3.2: timestamps only if the SYN (and SYN-ACK) carry them.
        self.ts_ok = false;
        if let Some((tsval, _)) = h.timestamp {
            if self.cfg.timestamps {
                self.ts_ok = true;
                self.ts_recent = tsval;
            }
        }
        self.cc = NewReno::new(self.smss() as u32, self.iss);
    }

    // ---- accessors -------------------------------------------------------

    pub fn flow(&self) -> FlowId {
        self.flow
    }
    pub fn state(&self) -> TcpState {
        self.state
    }
    pub fn config(&self) -> &TcpConfig {
        &self.cfg
    }
    pub fn is_established(&self) -> bool {
        self.state == TcpState::Established
    }
    pub fn is_closed(&self) -> bool {
        self.state == TcpState::Closed
    }
    /// The peer closed its direction and every byte before its FIN is in
    /// the receive buffer (readable).
    pub fn peer_fin(&self) -> bool {
        self.peer_fin
    }
    pub fn reset_received(&self) -> bool {
        self.reset_received
    }
    /// The connection was aborted after `max_retries` retransmissions.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }
    pub fn iss(&self) -> u32 {
        self.iss
    }
    pub fn irs(&self) -> u32 {
        self.irs
    }
    /// Effective send MSS: payload bytes per segment before options.
    pub fn mss(&self) -> u16 {
        self.snd_mss
    }
    /// Peer's window in bytes (scaled).
    pub fn peer_window(&self) -> u32 {
        self.snd_wnd
    }
    pub fn cwnd(&self) -> u32 {
        self.cc.cwnd
    }
    /// Current retransmission timeout.
    pub fn rto(&self) -> crate::time::Duration {
        self.rtt.rto()
    }
    /// Whether timestamps / SACK / window scaling were negotiated.
    pub fn timestamps_enabled(&self) -> bool {
        self.ts_ok
    }
    pub fn sack_enabled(&self) -> bool {
        self.sack_ok
    }
    /// `(send shift, receive shift)`.
    pub fn window_scales(&self) -> (u8, u8) {
        (self.snd_wscale, self.rcv_wscale)
    }

    /// Payload per segment after the always-present options (RFC 9293
    /// §3.7.1: the sender reduces by its option length).
    pub(crate) fn smss(&self) -> u16 {
        let ts = if self.ts_ok { 12 } else { 0 };
        self.snd_mss.saturating_sub(ts).max(32)
    }

    pub(crate) fn data_end(&self) -> u32 {
        self.buf_seq.wrapping_add(self.send.len() as u32)
    }

    // ---- application side ------------------------------------------------

    /// In-order bytes ready to read.
    pub fn recv_len(&self) -> usize {
        self.recv.ready
    }
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        self.recv.read(out)
    }
    pub fn recv_slices(&self) -> (&[u8], &[u8]) {
        self.recv.slices()
    }
    pub fn consume(&mut self, n: usize) {
        self.recv.consume(n)
    }
    /// Queues bytes to send; returns how many fit (0 after close/abort).
    pub fn write(&mut self, data: &[u8]) -> usize {
        if self.fin_queued || self.rst_pending || matches!(self.state, TcpState::Closed | TcpState::TimeWait) {
            return 0;
        }
        self.send.write(data)
    }
    pub fn send_space(&self) -> usize {
        if self.fin_queued || self.is_closed() {
            return 0;
        }
        self.send.space()
    }
    /// Bytes sent and not yet acknowledged.
    pub fn unacked_len(&self) -> usize {
        let hi = if seq::lt(self.data_end(), self.snd_max) { self.data_end() } else { self.snd_max };
        if seq::lt(self.buf_seq, hi) {
            seq::dist(self.buf_seq, hi)
        } else {
            0
        }
    }
    /// Bytes in the send buffer (unacknowledged plus unsent).
    pub fn send_queue_len(&self) -> usize {
        self.send.len()
    }

    /// Half-close: a FIN follows the queued data; receiving continues.
    pub fn close(&mut self) {
        match self.state {
            TcpState::SynSent => self.state = TcpState::Closed,
            TcpState::SynReceived => self.fin_queued = true,
            TcpState::Established => {
                self.fin_queued = true;
                self.state = TcpState::FinWait1;
            }
            TcpState::CloseWait => {
                self.fin_queued = true;
                self.state = TcpState::LastAck;
            }
            _ => {}
        }
    }

    /// Reset the connection: an RST goes out on the next poll, then Closed.
    pub fn abort(&mut self) {
        match self.state {
            TcpState::Closed => {}
            TcpState::SynSent | TcpState::TimeWait => self.enter_closed(),
            _ => self.rst_pending = true,
        }
    }

    pub(crate) fn enter_closed(&mut self) {
        self.state = TcpState::Closed;
        self.rto_at = None;
        self.delack_at = None;
        self.persist_at = None;
        self.timewait_at = None;
        self.ack_now = false;
        self.syn_pending = false;
        self.fast_rtx = false;
        self.probe_now = false;
    }

    pub(crate) fn enter_time_wait(&mut self, now: Instant) {
        self.state = TcpState::TimeWait;
        self.rto_at = None;
        self.persist_at = None;
        self.timewait_at = Some(now + self.cfg.time_wait);
    }

    // ---- segment arrival -------------------------------------------------

    /// Processes one received segment. Never panics on any input.
    pub fn on_segment(&mut self, h: &TcpHeader, payload: &[u8], now: Instant) -> SegmentOutcome {
        match self.state {
            TcpState::Closed => SegmentOutcome::Dropped(TcpDrop::Closed),
            TcpState::SynSent => self.on_segment_syn_sent(h, payload, now),
            _ => self.on_segment_sync(h, payload, now),
        }
    }

    /// RFC 9293 §3.10.7.3.
    fn on_segment_syn_sent(&mut self, h: &TcpHeader, _payload: &[u8], now: Instant) -> SegmentOutcome {
        let f = h.flags;
        if f.ack() && !(seq::lt(self.iss, h.ack) && seq::le(h.ack, self.snd_max)) {
            if !f.rst() {
                self.reply_rst = Some(RstReply { seq: h.ack, ack: None });
            }
            return SegmentOutcome::Dropped(TcpDrop::BadSynAck);
        }
        if f.rst() {
            if f.ack() {
                self.reset_received = true;
                self.enter_closed();
                return SegmentOutcome::Reset;
            }
            return SegmentOutcome::Dropped(TcpDrop::RstOutOfWindow);
        }
        if !f.syn() {
            return SegmentOutcome::Dropped(TcpDrop::UnexpectedInSynSent);
        }
        self.irs = h.seq;
        self.rcv_nxt = h.seq.wrapping_add(1);
        self.rcv_adv = self.rcv_nxt;
        self.negotiate(h);
        // N7: the window of a SYN-ACK is never scaled.
        self.snd_wnd = h.window as u32;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = h.seq;
        self.snd_wl2 = h.ack;
        if f.ack() {
            self.snd_una = h.ack;
            if let Some((s, t)) = self.rtt_timing.take() {
                if seq::gt(h.ack, s) {
                    self.rtt.sample(now.saturating_since(t));
                }
            }
            self.retries = 0;
            self.rto_at = None;
            self.syn_pending = false;
            self.state = TcpState::Established;
            if self.fin_queued {
                self.state = TcpState::FinWait1;
            }
            self.ack_now = true;
            self.last_ack_sent = self.rcv_nxt;
        } else {
            // Simultaneous open: SYN-RECEIVED, answer with SYN-ACK.
            self.state = TcpState::SynReceived;
            self.snd_nxt = self.iss;
            self.syn_pending = true;
        }
        SegmentOutcome::Accepted
    }

    fn acceptable(&self, s: u32, len: usize) -> bool {
        let wnd = self.recv.window() as u32;
        // RFC 9293 §3.10.7.4, the four cases.
        match (len, wnd) {
            (0, 0) => s == self.rcv_nxt,
            (0, _) => seq::in_range(s, self.rcv_nxt, self.rcv_nxt.wrapping_add(wnd)),
            (_, 0) => false,
            _ => {
                let end = s.wrapping_add(len as u32 - 1);
                seq::in_range(s, self.rcv_nxt, self.rcv_nxt.wrapping_add(wnd)) || seq::in_range(end, self.rcv_nxt, self.rcv_nxt.wrapping_add(wnd))
            }
        }
    }

    /// RFC 9293 §3.10.7.4 for SYN-RECEIVED and every synchronized state.
    fn on_segment_sync(&mut self, h: &TcpHeader, payload: &[u8], now: Instant) -> SegmentOutcome {
        let f = h.flags;
        // N4: a duplicate of the SYN that opened us gets the SYN-ACK again.
        if self.state == TcpState::SynReceived && f.syn() && !f.ack() && !f.rst() && h.seq == self.irs {
            self.syn_pending = true;
            return SegmentOutcome::Accepted;
        }
        // PAWS (RFC 7323 §5.3), light: no idle-time exception. A segment
        // without the option is still accepted (N6).
        if self.ts_ok && !f.rst() {
            if let Some((tsval, _)) = h.timestamp {
                if seq::lt(tsval, self.ts_recent) {
                    self.ack_now = true;
                    return SegmentOutcome::Dropped(TcpDrop::Paws);
                }
            }
        }
        let seg_len = payload.len() + f.syn() as usize + f.fin() as usize;
        if !self.acceptable(h.seq, seg_len) {
            if f.rst() {
                // RFC 5961 §3.2: out-of-window RST, silently dropped.
                return SegmentOutcome::Dropped(TcpDrop::RstOutOfWindow);
            }
            self.ack_now = true;
            if self.state == TcpState::TimeWait && f.fin() {
                // A retransmitted FIN: re-ACK it and restart TIME-WAIT.
                self.timewait_at = Some(now + self.cfg.time_wait);
            }
            return SegmentOutcome::Dropped(TcpDrop::OutOfWindow);
        }
        if f.rst() {
            // RFC 5961 §3.2: exact match resets, otherwise challenge.
            if h.seq == self.rcv_nxt {
                self.reset_received = true;
                self.enter_closed();
                return SegmentOutcome::Reset;
            }
            self.ack_now = true;
            return SegmentOutcome::ChallengeAck;
        }
        if f.syn() {
            // RFC 5961 §4.2: any SYN in a synchronized state is challenged.
            self.ack_now = true;
            return SegmentOutcome::ChallengeAck;
        }
        if !f.ack() {
            return SegmentOutcome::Dropped(TcpDrop::NoAck);
        }
        // TS.Recent update (RFC 7323 §4.3).
        if self.ts_ok {
            if let Some((tsval, _)) = h.timestamp {
                if seq::le(h.seq, self.last_ack_sent) && seq::ge(tsval, self.ts_recent) {
                    self.ts_recent = tsval;
                }
            }
        }
        if self.state == TcpState::SynReceived {
            if seq::lt(self.snd_una, h.ack) && seq::le(h.ack, self.snd_max) {
                self.state = if self.fin_queued { TcpState::FinWait1 } else { TcpState::Established };
                self.snd_wnd = (h.window as u32) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = h.seq;
                self.snd_wl2 = h.ack;
                self.syn_pending = false;
            } else {
                self.reply_rst = Some(RstReply { seq: h.ack, ack: None });
                return SegmentOutcome::Dropped(TcpDrop::BadAckInSynReceived);
            }
        }
        if let Some(out) = self.process_ack(h, payload, now) {
            return out;
        }
        if self.state == TcpState::Closed {
            return SegmentOutcome::Accepted;
        }
        self.process_data(h, payload, now);
        SegmentOutcome::Accepted
    }

    /// ACK processing (RFC 9293 §3.10.7.4 "fifth", RFC 5961 §5.2).
    /// Returns an outcome when the segment must not be processed further.
    fn process_ack(&mut self, h: &TcpHeader, payload: &[u8], now: Instant) -> Option<SegmentOutcome> {
        let ack = h.ack;
        if seq::gt(ack, self.snd_max) {
            self.ack_now = true;
            return Some(SegmentOutcome::Dropped(TcpDrop::AckUnsent));
        }
        let oldest = self.snd_una.wrapping_sub(self.max_snd_wnd.max(1));
        if seq::lt(ack, oldest) {
            self.ack_now = true;
            return Some(SegmentOutcome::Dropped(TcpDrop::AckTooOld));
        }
        let smss = self.smss() as u32;
        let new_wnd = (h.window as u32) << self.snd_wscale;
        let old_wnd = self.snd_wnd;
        if self.sack_ok {
            for &(l, r) in h.sack.iter().take(h.sack_len as usize) {
                self.sb.add(l, r, ack, self.snd_max);
            }
        }
        if seq::gt(ack, self.snd_una) {
            let acked = seq::dist(self.snd_una, ack) as u32;
            // Data bytes acknowledged: from buf_seq up to ack, within data.
            let data_hi = if seq::lt(self.data_end(), ack) { self.data_end() } else { ack };
            if seq::lt(self.buf_seq, data_hi) {
                let n = seq::dist(self.buf_seq, data_hi);
                self.send.ack(n);
                self.buf_seq = data_hi;
            }
            self.snd_una = ack;
            if seq::lt(self.snd_nxt, ack) {
                self.snd_nxt = ack;
            }
            self.sb.prune(ack);
            // RTT measurement: RTTM with timestamps (RFC 7323 §4.1), or the
            // one timed segment (RFC 6298 §3, Karn).
            let mut sampled = false;
            if self.ts_ok {
                if let Some((_, ecr)) = h.timestamp {
                    let d = self.ts_now(now).wrapping_sub(ecr);
                    if ecr != 0 && d < 0x8000_0000 {
                        self.rtt.sample(crate::time::Duration::from_millis(d as u64));
                        sampled = true;
                    }
                }
            }
            if let Some((s, t)) = self.rtt_timing {
                if seq::gt(ack, s) {
                    if !sampled {
                        self.rtt.sample(now.saturating_since(t));
                    }
                    self.rtt_timing = None;
                }
            }
            self.retries = 0;
            let flight = seq::dist(ack, self.snd_max) as u32;
            if self.cc.on_ack(ack, acked, flight, smss) == CcAction::Retransmit {
                self.fast_rtx = true;
            }
            // RFC 6298 §5.2/5.3.
            self.rto_at = if self.snd_una == self.snd_max { None } else { Some(now + self.rtt.rto()) };
        } else if ack == self.snd_una
            && self.snd_una != self.snd_max
            && payload.is_empty()
            && !h.flags.fin()
            && new_wnd == old_wnd
        {
            // Duplicate ACK (RFC 5681 §2).
            let flight = seq::dist(self.snd_una, self.snd_max) as u32;
            if self.cc.on_dupack(ack, self.snd_max, flight, smss) == CcAction::Retransmit {
                self.fast_rtx = true;
                self.rtt_timing = None;
            }
        }
        // Window update (RFC 9293 §3.10.7.4, SND.WL1/WL2 rule).
        if seq::lt(self.snd_wl1, h.seq) || (self.snd_wl1 == h.seq && seq::le(self.snd_wl2, ack)) {
            self.snd_wnd = new_wnd;
            self.max_snd_wnd = self.max_snd_wnd.max(new_wnd);
            self.snd_wl1 = h.seq;
            self.snd_wl2 = ack;
        }
        if self.snd_wnd == 0 {
            // The peer answers our probes: it is alive (RFC 9293 §3.8.6.1).
            self.retries = 0;
        } else {
            self.persist_at = None;
        }
        // Our FIN acknowledged?
        let fin_acked = self.fin_queued && self.snd_max == self.data_end().wrapping_add(1) && self.snd_una == self.snd_max;
        match self.state {
            TcpState::FinWait1 if fin_acked => self.state = TcpState::FinWait2,
            TcpState::Closing if fin_acked => self.enter_time_wait(now),
            TcpState::LastAck if fin_acked => {
                self.enter_closed();
            }
            _ => {}
        }
        None
    }

    /// Segment text and FIN (RFC 9293 §3.10.7.4 "seventh" and "eighth").
    fn process_data(&mut self, h: &TcpHeader, payload: &[u8], now: Instant) {
        let takes_data = matches!(self.state, TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2);
        let fin_seq = h.seq.wrapping_add(payload.len() as u32);
        let mut fin = h.flags.fin();
        if takes_data && !payload.is_empty() {
            let mut s = h.seq;
            let mut data = payload;
            // Trim what we already have (N2).
            if seq::lt(s, self.rcv_nxt) {
                let skip = seq::dist(s, self.rcv_nxt);
                data = data.get(skip..).unwrap_or(&[]);
                s = self.rcv_nxt;
            }
            // Trim to the window.
            let wnd = self.recv.window();
            let off = seq::dist(self.rcv_nxt, s);
            if off + data.len() > wnd {
                data = data.get(..wnd.saturating_sub(off)).unwrap_or(&[]);
                fin = false;
            }
            if data.is_empty() {
                // Entirely old: a duplicate, ACK at once (RFC 5681 §4.2).
                self.ack_now = true;
            } else {
                let had_ooo = !self.recv.ooo.is_empty();
                let adv = self.recv.insert(self.rcv_nxt, s, data);
                self.rcv_nxt = self.rcv_nxt.wrapping_add(adv as u32);
                if off > 0 || had_ooo {
                    // Out of order, or filling a hole: ACK at once (RFC 5681
                    // §4.2), with SACK blocks.
                    self.ack_now = true;
                } else {
                    self.segs_unacked += 1;
                    if self.segs_unacked >= 2 {
                        self.ack_now = true;
                    } else if self.delack_at.is_none() {
                        self.delack_at = Some(now + self.cfg.delayed_ack);
                    }
                }
            }
        }
        if fin && !self.peer_fin {
            if seq::lt(fin_seq, self.rcv_nxt) {
                self.ack_now = true;
            } else if takes_data || fin_seq == self.rcv_nxt {
                self.peer_fin_seq = Some(fin_seq);
            }
        }
        if let Some(fs) = self.peer_fin_seq {
            if !self.peer_fin && fs == self.rcv_nxt {
                self.peer_fin = true;
                self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
                self.ack_now = true;
                match self.state {
                    TcpState::SynReceived | TcpState::Established => self.state = TcpState::CloseWait,
                    TcpState::FinWait1 => {
                        let fin_acked = self.snd_max == self.data_end().wrapping_add(1) && self.snd_una == self.snd_max;
                        if fin_acked {
                            self.enter_time_wait(now);
                        } else {
                            self.state = TcpState::Closing;
                        }
                    }
                    TcpState::FinWait2 => self.enter_time_wait(now),
                    _ => {}
                }
            }
        }
    }

    /// Our timestamp clock (RFC 7323 §5.4), 1 ms ticks.
    pub(crate) fn ts_now(&self, now: Instant) -> u32 {
        self.ts_offset.wrapping_add((now.micros() / 1000) as u32)
    }
}
