//! Timers and transmission: `poll_transmit` emits every segment due now,
//! within cwnd (RFC 5681) and the peer's window (RFC 9293 §3.8.6), and
//! `poll_at` tells the worker when to call again.

use super::conn::TcpConn;
use super::{seq, TcpState};
use crate::net::segment::MAX_SACK_BLOCKS;
use crate::net::{TcpFlags, TcpHeader};
use crate::time::Instant;

impl TcpConn {
    /// The earliest timer: retransmission, delayed ACK, persist, TIME-WAIT.
    /// `Some(t <= now)` also when something is waiting to be sent.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.state == TcpState::Closed {
            return None;
        }
        let mut t: Option<Instant> = None;
        for d in [self.rto_at, self.delack_at, self.persist_at, self.timewait_at].into_iter().flatten() {
            t = Some(t.map_or(d, |x| x.min(d)));
        }
        if self.ack_now || self.syn_pending || self.rst_pending || self.reply_rst.is_some() || self.fast_rtx || self.probe_now {
            return Some(Instant::ZERO);
        }
        t
    }

    fn fire_timers(&mut self, now: Instant) {
        if let Some(t) = self.timewait_at {
            if t <= now {
                self.enter_closed();
                return;
            }
        }
        if let Some(t) = self.delack_at {
            if t <= now {
                self.delack_at = None;
                self.ack_now = true;
            }
        }
        if let Some(t) = self.persist_at {
            if t <= now {
                self.persist_at = None;
                self.probe_now = true;
                self.rtt.backoff();
            }
        }
        if let Some(t) = self.rto_at {
            if t <= now {
                self.on_rto(now);
            }
        }
    }

    /// RFC 6298 §5.4–5.6 and RFC 9293 §3.8.3 (R2: give up).
    fn on_rto(&mut self, now: Instant) {
        self.rto_at = None;
        self.retries += 1;
        if self.retries > self.cfg.max_retries {
            self.timed_out = true;
            self.enter_closed();
            return;
        }
        self.rtt.backoff();
        self.rtt_timing = None;
        match self.state {
            TcpState::SynSent | TcpState::SynReceived => {
                self.syn_pending = true;
                self.snd_nxt = self.iss;
            }
            _ => {
                let flight = seq::dist(self.snd_una, self.snd_max) as u32;
                // An unanswered zero-window probe is not congestion
                // (RFC 9293 §3.8.6.1): cwnd is left alone.
                if self.snd_wnd != 0 {
                    self.cc.on_rto(flight, self.snd_max, self.smss() as u32);
                }
                // Go back to snd_una; RFC 2018 §8: the receiver may renege,
                // so the scoreboard is forgotten.
                self.snd_nxt = self.snd_una;
                self.sb.clear();
                self.fast_rtx = false;
                // A lost zero-window probe is resent at once.
                self.probe_now = self.snd_wnd == 0;
            }
        }
        let _ = now;
    }

    fn window_field(&self, syn: bool) -> u16 {
        let w = self.recv.window();
        if syn {
            // N7: never scaled on SYN / SYN-ACK.
            w.min(65535) as u16
        } else {
            (w >> self.rcv_wscale).min(65535) as u16
        }
    }

    fn header(&self, s: u32, flags: u8, now: Instant) -> TcpHeader {
        let mut h = TcpHeader {
            src_port: self.flow.local.port,
            dst_port: self.flow.remote.port,
            seq: s,
            ack: 0,
            flags: TcpFlags(flags),
            window: 0,
            ..TcpHeader::default()
        };
        if flags & TcpFlags::ACK != 0 {
            h.ack = self.rcv_nxt;
        }
        let syn = flags & TcpFlags::SYN != 0;
        h.window = self.window_field(syn);
        if syn {
            h.mss = Some(self.cfg.mss);
            let active = self.state == TcpState::SynSent;
            // Offer on SYN; on SYN-ACK only what the peer offered.
            if active || self.rcv_wscale > 0 || self.snd_wscale > 0 {
                h.wscale = Some(self.cfg.wscale.min(super::conn::MAX_WSCALE));
            }
            h.sack_permitted = if active { self.cfg.sack } else { self.sack_ok };
            if (active && self.cfg.timestamps) || self.ts_ok {
                h.timestamp = Some((self.ts_now(now), if active { 0 } else { self.ts_recent }));
            }
        } else if self.ts_ok {
            h.timestamp = Some((self.ts_now(now), self.ts_recent));
        }
        if self.sack_ok && !syn && flags & TcpFlags::ACK != 0 && flags & TcpFlags::RST == 0 {
            let max = if self.ts_ok { 3 } else { MAX_SACK_BLOCKS };
            h.sack_len = self.recv.sack_blocks(max, &mut h.sack) as u8;
        }
        h
    }

    /// Option bytes of a non-SYN segment (RFC 9293 §3.7.1: payload is
    /// reduced by them); timestamps are already out of `smss()`.
    fn sack_option_len(h: &TcpHeader) -> usize {
        if h.sack_len == 0 {
            0
        } else {
            2 + 8 * h.sack_len as usize + 2
        }
    }

    fn sent_ack(&mut self, h: &TcpHeader) {
        if h.flags.ack() {
            self.ack_now = false;
            self.segs_unacked = 0;
            self.delack_at = None;
            self.last_ack_sent = self.rcv_nxt;
            let w = (h.window as u32) << if h.flags.syn() { 0 } else { self.rcv_wscale };
            self.rcv_adv = seq::max(self.rcv_adv, self.rcv_nxt.wrapping_add(w));
        }
    }

    /// Emits every segment due at `now`.
    pub fn poll_transmit(&mut self, now: Instant, emit: &mut dyn FnMut(&TcpHeader, &[u8])) {
        self.fire_timers(now);
        if let Some(r) = self.reply_rst.take() {
            let mut h = self.header(r.seq, TcpFlags::RST, now);
            h.timestamp = None;
            h.window = 0;
            if let Some(a) = r.ack {
                h.flags = TcpFlags(TcpFlags::RST | TcpFlags::ACK);
                h.ack = a;
            }
            emit(&h, &[]);
        }
        if self.state == TcpState::Closed {
            return;
        }
        if self.rst_pending {
            self.rst_pending = false;
            let h = self.header(self.snd_nxt, TcpFlags::RST | TcpFlags::ACK, now);
            emit(&h, &[]);
            self.enter_closed();
            return;
        }
        match self.state {
            TcpState::SynSent | TcpState::SynReceived => {
                if self.syn_pending {
                    self.syn_pending = false;
                    let flags = if self.state == TcpState::SynSent { TcpFlags::SYN } else { TcpFlags::SYN | TcpFlags::ACK };
                    let h = self.header(self.iss, flags, now);
                    // N5: SYN and SYN-ACK (first or retransmitted) carry no data.
                    emit(&h, &[]);
                    self.sent_ack(&h);
                    if self.snd_max == self.iss {
                        self.rtt_timing = Some((self.iss, now));
                    }
                    self.snd_nxt = self.iss.wrapping_add(1);
                    self.snd_max = self.snd_nxt;
                    if self.rto_at.is_none() {
                        self.rto_at = Some(now + self.rtt.rto());
                    }
                }
                if self.state == TcpState::SynReceived && self.ack_now {
                    let h = self.header(self.snd_nxt, TcpFlags::ACK, now);
                    emit(&h, &[]);
                    self.sent_ack(&h);
                }
                return;
            }
            _ => {}
        }
        if self.state != TcpState::TimeWait {
            self.send_data(now, emit);
        }
        // Window update (receiver SWS avoidance, RFC 9293 §3.8.6.2.2): when
        // the right edge can move by min(cap/2, MSS), and only while the
        // window the peer has left is under half the buffer. Above that the
        // peer keeps sending and the next regular ACK (every second
        // segment, RFC 5681 §4.2) carries the new edge (regression: a
        // proxy reads at once, so every segment moved the edge by an MSS
        // and was answered by its own ACK: 3 ACKs per 4 segments in the
        // replay's bulk phase).
        let right = self.rcv_nxt.wrapping_add((self.window_field(false) as u32) << self.rcv_wscale);
        if seq::gt(right, self.rcv_adv) && !self.peer_fin {
            let grow = seq::dist(self.rcv_adv, right);
            let left = if seq::gt(self.rcv_adv, self.rcv_nxt) { seq::dist(self.rcv_nxt, self.rcv_adv) } else { 0 };
            if grow >= (self.recv.cap / 2).min(self.cfg.mss as usize) && left < self.recv.cap / 2 {
                self.ack_now = true;
            }
        }
        if self.ack_now {
            let h = self.header(self.snd_nxt, TcpFlags::ACK, now);
            emit(&h, &[]);
            self.sent_ack(&h);
        }
    }

    fn send_data(&mut self, now: Instant, emit: &mut dyn FnMut(&TcpHeader, &[u8])) {
        let smss = self.smss() as usize;
        let fin_allowed = matches!(self.state, TcpState::FinWait1 | TcpState::LastAck | TcpState::Closing);
        if self.fast_rtx {
            self.fast_rtx = false;
            let s = self.snd_una;
            let end = self.data_end();
            let mut len = if seq::lt(s, end) { seq::dist(s, end) } else { 0 };
            if let Some(n) = self.sb.next_start(s) {
                len = len.min(seq::dist(s, n));
            }
            self.transmit(s, len, smss, fin_allowed, now, emit);
        }
        if self.probe_now {
            self.probe_now = false;
            // Zero-window probe (RFC 9293 §3.8.6.1): one new byte beyond
            // the window, answered with an ACK that tells the window.
            let end = self.data_end();
            if seq::lt(self.snd_nxt, end) && self.snd_wnd == 0 {
                let s = self.snd_nxt;
                let sent = self.transmit(s, 1, smss, false, now, emit);
                self.snd_nxt = s.wrapping_add(sent);
                self.snd_max = seq::max(self.snd_max, self.snd_nxt);
                if self.rto_at.is_none() {
                    self.rto_at = Some(now + self.rtt.rto());
                }
            }
        }
        loop {
            if self.sack_ok && seq::lt(self.snd_nxt, self.snd_max) {
                let skipped = self.sb.skip(self.snd_nxt);
                self.snd_nxt = if seq::lt(self.snd_max, skipped) { self.snd_max } else { skipped };
            }
            let end = self.data_end();
            let avail = if seq::lt(self.snd_nxt, end) { seq::dist(self.snd_nxt, end) } else { 0 };
            let fin_due = fin_allowed && self.snd_nxt == end;
            if avail == 0 && !fin_due {
                break;
            }
            let pipe = seq::dist(self.snd_una, self.snd_nxt);
            let wnd = (self.cc.cwnd as usize).min(self.snd_wnd as usize);
            let usable = wnd.saturating_sub(pipe);
            let mut len = avail.min(usable).min(smss);
            if let Some(n) = self.sb.next_start(self.snd_nxt) {
                if seq::lt(self.snd_nxt, self.snd_max) {
                    len = len.min(seq::dist(self.snd_nxt, n));
                }
            }
            if avail > 0 && len == 0 {
                break;
            }
            // Sender SWS avoidance (RFC 9293 §3.8.6.2.1), Nagle off: send a
            // full segment, everything queued, or half the max window. With
            // nothing in flight no ACK would open the window, so instead of
            // the override timer the small segment goes out at once.
            let retransmit = seq::lt(self.snd_nxt, self.snd_max);
            let idle = self.snd_una == self.snd_max;
            if avail > 0 && !retransmit && !idle && len < smss && len < avail && len < (self.max_snd_wnd as usize) / 2 {
                break;
            }
            let s = self.snd_nxt;
            let sent = self.transmit(s, len, smss, fin_allowed, now, emit);
            if sent == 0 {
                break;
            }
            self.snd_nxt = s.wrapping_add(sent);
            if seq::gt(self.snd_nxt, self.snd_max) {
                if self.rtt_timing.is_none() && !self.ts_ok && !retransmit {
                    self.rtt_timing = Some((s, now));
                }
                self.snd_max = self.snd_nxt;
            }
            if self.rto_at.is_none() {
                self.rto_at = Some(now + self.rtt.rto());
            }
        }
        // Persist timer (RFC 9293 §3.8.6.1): data waits on a zero window
        // with nothing in flight.
        let end = self.data_end();
        if self.snd_wnd == 0 && self.snd_una == self.snd_max && seq::lt(self.snd_nxt, end) && self.rto_at.is_none() && self.persist_at.is_none() {
            self.persist_at = Some(now + self.rtt.rto());
        }
    }

    /// Builds and emits one segment of up to `len` data bytes at `s` (FIN
    /// added when it reaches the end of the queue and `fin_allowed`).
    /// Returns the sequence space used (0 if nothing was sent).
    fn transmit(&mut self, s: u32, len: usize, smss: usize, fin_allowed: bool, now: Instant, emit: &mut dyn FnMut(&TcpHeader, &[u8])) -> u32 {
        let end = self.data_end();
        let mut h = self.header(s, TcpFlags::ACK, now);
        let room = smss.saturating_sub(Self::sack_option_len(&h)).max(1);
        let len = len.min(room);
        let fin = fin_allowed && s.wrapping_add(len as u32) == end;
        if len == 0 && !fin {
            return 0;
        }
        if fin {
            h.flags = TcpFlags(h.flags.0 | TcpFlags::FIN);
        }
        if len > 0 && s.wrapping_add(len as u32) == end {
            h.flags = TcpFlags(h.flags.0 | TcpFlags::PSH);
        }
        let off = seq::dist(self.buf_seq, s);
        let mut scratch = std::mem::take(&mut self.scratch);
        {
            let data = self.send.segment(off, len, &mut scratch);
            emit(&h, data);
        }
        self.scratch = scratch;
        self.sent_ack(&h);
        len as u32 + fin as u32
    }
}
