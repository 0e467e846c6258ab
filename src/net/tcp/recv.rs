//! The receive buffer: in-order bytes not yet read, followed by a staging
//! area where out-of-order segments are placed at their offset from
//! rcv_nxt (RFC 9293 §3.10.7.4 "seventh", RFC 2018 for reporting them).
//! Everything lives inside one `VecDeque` bounded by the cap, so
//! out-of-order data can never exceed the window we advertised.

use super::seq;
use std::collections::VecDeque;

/// Most out-of-order islands kept; a segment that would open one more is
/// dropped (the peer retransmits it).
pub const MAX_OOO: usize = 16;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecvBuf {
    pub cap: usize,
    /// `[0, ready)`: in-order readable bytes; `[ready, len)`: staging.
    pub buf: VecDeque<u8>,
    pub ready: usize,
    /// Out-of-order islands as absolute `[left, right)` sequence ranges,
    /// sorted, disjoint and not adjacent, all above rcv_nxt.
    pub ooo: Vec<(u32, u32)>,
    /// Left edge of the island touched last (reported first, RFC 2018 §4).
    pub last_ooo: Option<u32>,
}

impl RecvBuf {
    pub fn new(cap: usize) -> Self {
        RecvBuf { cap, buf: VecDeque::new(), ready: 0, ooo: Vec::new(), last_ooo: None }
    }

    /// Free space from rcv_nxt on: the receive window.
    pub fn window(&self) -> usize {
        self.cap.saturating_sub(self.ready)
    }

    fn write_at(&mut self, at: usize, data: &[u8]) {
        if at == self.buf.len() {
            // In-order data at the end (the common case): one copy, no
            // zero fill first.
            self.buf.extend(data);
            return;
        }
        if self.buf.len() < at + data.len() {
            self.buf.resize(at + data.len(), 0);
        }
        let (a, b) = self.buf.as_mut_slices();
        let mut i = 0;
        while i < data.len() {
            let pos = at + i;
            if pos < a.len() {
                let n = (a.len() - pos).min(data.len() - i);
                a[pos..pos + n].copy_from_slice(&data[i..i + n]);
                i += n;
            } else {
                let p = pos - a.len();
                let n = data.len() - i;
                b[p..p + n].copy_from_slice(&data[i..]);
                i += n;
            }
        }
    }

    /// Stores `data` whose first byte has sequence number `s`, already
    /// trimmed by the caller to `rcv_nxt <= s` and `s + len <= rcv_nxt +
    /// window()`. Returns by how much rcv_nxt advances.
    pub fn insert(&mut self, rcv_nxt: u32, s: u32, data: &[u8]) -> usize {
        if data.is_empty() {
            return 0;
        }
        let off = seq::dist(rcv_nxt, s);
        let end = off + data.len();
        if end > self.window() {
            return 0;
        }
        if off == 0 {
            self.write_at(self.ready, data);
            let mut adv = data.len();
            // Swallow every island now reached.
            while let Some(&(l, r)) = self.ooo.first() {
                if seq::dist(rcv_nxt, l) <= adv {
                    adv = adv.max(seq::dist(rcv_nxt, r));
                    self.ooo.remove(0);
                } else {
                    break;
                }
            }
            if self.ooo.is_empty() {
                self.last_ooo = None;
            }
            self.ready += adv;
            return adv;
        }
        // Out of order: merge into the island list.
        let (mut l, mut r) = (s, s.wrapping_add(data.len() as u32));
        let mut merged = 0;
        let mut keep = Vec::new();
        std::mem::swap(&mut keep, &mut self.ooo);
        for &(bl, br) in &keep {
            if seq::le(bl, r) && seq::le(l, br) {
                merged += 1;
            }
        }
        if merged == 0 && keep.len() >= MAX_OOO {
            self.ooo = keep;
            return 0;
        }
        keep.retain(|&(bl, br)| {
            if seq::le(bl, r) && seq::le(l, br) {
                if seq::lt(bl, l) {
                    l = bl;
                }
                if seq::gt(br, r) {
                    r = br;
                }
                false
            } else {
                true
            }
        });
        let pos = keep.iter().position(|&(bl, _)| seq::gt(bl, l)).unwrap_or(keep.len());
        keep.insert(pos, (l, r));
        self.ooo = keep;
        self.last_ooo = Some(l);
        let at = self.ready + off;
        self.write_at(at, data);
        0
    }

    /// Copies out and consumes up to `out.len()` in-order bytes.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.ready);
        let (a, b) = self.buf.as_slices();
        let na = n.min(a.len());
        out[..na].copy_from_slice(&a[..na]);
        if n > na {
            out[na..n].copy_from_slice(&b[..n - na]);
        }
        self.consume(n);
        n
    }

    /// In-order readable bytes as (up to) two slices.
    pub fn slices(&self) -> (&[u8], &[u8]) {
        let (a, b) = self.buf.as_slices();
        if self.ready <= a.len() {
            (&a[..self.ready], &[])
        } else {
            (a, &b[..self.ready - a.len()])
        }
    }

    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.ready);
        self.buf.drain(..n);
        self.ready -= n;
        if self.buf.is_empty() {
            self.buf = VecDeque::new();
        }
    }

    /// SACK blocks to report, most recent island first (RFC 2018 §4).
    pub fn sack_blocks(&self, max: usize, out: &mut [(u32, u32)]) -> usize {
        let mut n = 0;
        if let Some(last) = self.last_ooo {
            if let Some(&b) = self.ooo.iter().find(|&&(l, r)| seq::in_range(last, l, r) || l == last) {
                if n < max && n < out.len() {
                    out[n] = b;
                    n += 1;
                }
            }
        }
        for &b in &self.ooo {
            if n >= max || n >= out.len() {
                break;
            }
            if n > 0 && out[0] == b {
                continue;
            }
            out[n] = b;
            n += 1;
        }
        n
    }
}
