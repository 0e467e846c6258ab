//! The send buffer (unacknowledged then unsent bytes, in order) and the
//! SACK scoreboard of what the peer reported holding (RFC 2018 §5).

use super::seq;
use std::collections::VecDeque;

/// Bytes from snd_una's first data byte on. The caller keeps the sequence
/// number of `buf[0]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendBuf {
    pub cap: usize,
    pub buf: VecDeque<u8>,
}

impl SendBuf {
    pub fn new(cap: usize) -> Self {
        SendBuf { cap, buf: VecDeque::new() }
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn space(&self) -> usize {
        self.cap.saturating_sub(self.buf.len())
    }
    /// Appends as much of `data` as fits.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.space());
        self.buf.extend(&data[..n]);
        n
    }
    /// Drops `n` acknowledged bytes from the front.
    pub fn ack(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.drain(..n);
        if self.buf.is_empty() {
            // An idle connection gives its memory back (DESIGN.md, Buffers).
            self.buf = VecDeque::new();
        }
    }
    /// `len` bytes at offset `off` as one slice when they are contiguous in
    /// the ring; otherwise they are copied into `scratch`.
    pub fn segment<'a>(&'a self, off: usize, len: usize, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let (a, b) = self.buf.as_slices();
        // Never past the buffer, whatever the caller's arithmetic says.
        let off = off.min(self.buf.len());
        let len = len.min(self.buf.len() - off);
        let end = off + len;
        if end <= a.len() {
            &a[off..end]
        } else if off >= a.len() {
            &b[off - a.len()..end - a.len()]
        } else {
            scratch.clear();
            scratch.extend_from_slice(&a[off..]);
            scratch.extend_from_slice(&b[..end - a.len()]);
            &scratch[..]
        }
    }
}

/// Most SACKed ranges remembered; more are simply forgotten (the data is
/// then retransmitted, which is safe).
pub const MAX_SCOREBOARD: usize = 8;

/// Sorted, disjoint `[left, right)` ranges above snd_una that the peer
/// reported through SACK.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scoreboard {
    pub blocks: Vec<(u32, u32)>,
}

impl Scoreboard {
    /// Records a block reported by the peer, ignoring any outside
    /// `(snd_una, snd_max]` (RFC 2018 §5 leaves invalid blocks to us).
    pub fn add(&mut self, left: u32, right: u32, snd_una: u32, snd_max: u32) {
        if !seq::lt(left, right) || !seq::le(right, snd_max) || !seq::lt(snd_una, right) {
            return;
        }
        let left = seq::max(left, snd_una);
        let mut l = left;
        let mut r = right;
        // Merge with every overlapping or adjacent block.
        self.blocks.retain(|&(bl, br)| {
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
        let pos = self.blocks.iter().position(|&(bl, _)| seq::gt(bl, l)).unwrap_or(self.blocks.len());
        if self.blocks.len() >= MAX_SCOREBOARD {
            if pos >= self.blocks.len() {
                return;
            }
            self.blocks.pop();
        }
        self.blocks.insert(pos, (l, r));
    }
    /// Forgets everything at or below the cumulative ACK.
    pub fn prune(&mut self, snd_una: u32) {
        self.blocks.retain(|&(_, r)| seq::gt(r, snd_una));
        if let Some(first) = self.blocks.first_mut() {
            if seq::lt(first.0, snd_una) {
                first.0 = snd_una;
            }
        }
    }
    pub fn clear(&mut self) {
        self.blocks.clear();
    }
    /// If `s` is inside a SACKed block, the end of that block; else `s`.
    pub fn skip(&self, s: u32) -> u32 {
        for &(l, r) in &self.blocks {
            if seq::in_range(s, l, r) {
                return r;
            }
        }
        s
    }
    /// The start of the first SACKed block after `s`, if any.
    pub fn next_start(&self, s: u32) -> Option<u32> {
        self.blocks.iter().map(|&(l, _)| l).find(|&l| seq::gt(l, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_across_ring_wrap_uses_scratch() {
        let mut b = SendBuf::new(8);
        b.write(b"abcdefgh");
        b.ack(6);
        b.write(b"ijkl");
        let mut s = Vec::new();
        assert_eq!(b.segment(0, 6, &mut s), b"ghijkl");
        assert_eq!(b.segment(1, 2, &mut s), b"hi");
        assert_eq!(b.write(b"mnopqrst"), 2, "bounded by cap");
    }

    #[test]
    fn scoreboard_merges_prunes_and_skips() {
        let mut sb = Scoreboard::default();
        let una = 0xffff_fff0u32;
        sb.add(una.wrapping_add(20), una.wrapping_add(30), una, una.wrapping_add(100));
        sb.add(una.wrapping_add(40), una.wrapping_add(50), una, una.wrapping_add(100));
        sb.add(una.wrapping_add(30), una.wrapping_add(40), una, una.wrapping_add(100));
        assert_eq!(sb.blocks, vec![(una.wrapping_add(20), una.wrapping_add(50))]);
        sb.add(una.wrapping_add(90), una.wrapping_add(200), una, una.wrapping_add(100));
        assert_eq!(sb.blocks.len(), 1, "block beyond snd_max ignored");
        assert_eq!(sb.skip(una.wrapping_add(25)), una.wrapping_add(50));
        assert_eq!(sb.skip(una.wrapping_add(10)), una.wrapping_add(10));
        assert_eq!(sb.next_start(una), Some(una.wrapping_add(20)));
        sb.prune(una.wrapping_add(30));
        assert_eq!(sb.blocks, vec![(una.wrapping_add(30), una.wrapping_add(50))]);
        sb.prune(una.wrapping_add(50));
        assert!(sb.blocks.is_empty());
    }
}
