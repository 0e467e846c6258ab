//! Frames waiting for a neighbour's MAC (per stack, so per worker).
//!
//! Bounded twice: at most `per_dest` frames per next hop and `total`
//! frames overall. A frame past either cap is refused and counted
//! (`ArpQueueFull`); TCP retransmits it. Frames older than `ttl` are
//! dropped and counted (`ArpQueueExpired`). Buffers of released frames are
//! kept for reuse, so a steady trickle of misses does not allocate.

use crate::net::stack::DropReason;
use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use std::net::Ipv4Addr;

pub(crate) struct PendingFrame {
    pub queued_at: Instant,
    pub bytes: Vec<u8>,
}

pub(crate) struct PendingDest {
    pub ip: Ipv4Addr,
    /// When the last ARP request for `ip` went out (None: not yet).
    pub last_request: Option<Instant>,
    pub frames: VecDeque<PendingFrame>,
}

/// Per-stack queue of frames waiting for ARP resolution.
pub struct PendingArp {
    pub(crate) dests: Vec<PendingDest>,
    total: usize,
    per_dest: usize,
    cap: usize,
    ttl: Duration,
    spare: Vec<Vec<u8>>,
}

impl PendingArp {
    pub fn new(per_dest: usize, total: usize, ttl: Duration) -> Self {
        PendingArp { dests: Vec::new(), total: 0, per_dest, cap: total, ttl, spare: Vec::new() }
    }

    /// Frames queued, all destinations together.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Frames queued for `ip`.
    pub fn len_for(&self, ip: Ipv4Addr) -> usize {
        self.dests.iter().find(|d| d.ip == ip).map_or(0, |d| d.frames.len())
    }

    /// Queue a copy of `frame` for `ip`. Returns the destination index.
    pub(crate) fn push(&mut self, ip: Ipv4Addr, frame: &[u8], now: Instant) -> Result<usize, DropReason> {
        if self.total >= self.cap {
            return Err(DropReason::ArpQueueFull);
        }
        let idx = match self.dests.iter().position(|d| d.ip == ip) {
            Some(i) => i,
            None => {
                self.dests.push(PendingDest { ip, last_request: None, frames: VecDeque::new() });
                self.dests.len() - 1
            }
        };
        let mut bytes = self.spare.pop().unwrap_or_default();
        let Some(dest) = self.dests.get_mut(idx) else { return Err(DropReason::ArpQueueFull) };
        if dest.frames.len() >= self.per_dest {
            self.spare.push(bytes);
            return Err(DropReason::ArpQueueFull);
        }
        bytes.clear();
        bytes.extend_from_slice(frame);
        dest.frames.push_back(PendingFrame { queued_at: now, bytes });
        self.total += 1;
        Ok(idx)
    }

    /// Remove every frame for `ip` and hand each to `f`.
    pub(crate) fn release(&mut self, ip: Ipv4Addr, f: &mut dyn FnMut(&mut [u8])) -> usize {
        let Some(i) = self.dests.iter().position(|d| d.ip == ip) else { return 0 };
        let dest = self.dests.swap_remove(i);
        let n = dest.frames.len();
        self.total -= n;
        for mut fr in dest.frames {
            f(&mut fr.bytes);
            self.recycle(fr.bytes);
        }
        n
    }

    /// Drop frames queued at or before `now - ttl`; returns how many.
    /// Destinations left empty are forgotten.
    pub(crate) fn expire(&mut self, now: Instant) -> u64 {
        let mut dropped = 0u64;
        let ttl = self.ttl;
        let mut freed = Vec::new();
        for d in self.dests.iter_mut() {
            while d.frames.front().is_some_and(|f| now.saturating_since(f.queued_at) >= ttl) {
                if let Some(f) = d.frames.pop_front() {
                    freed.push(f.bytes);
                    dropped += 1;
                }
            }
        }
        self.dests.retain(|d| !d.frames.is_empty());
        self.total -= dropped as usize;
        for b in freed {
            self.recycle(b);
        }
        dropped
    }

    /// The earliest time a queued frame expires.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.dests.iter().filter_map(|d| d.frames.front()).map(|f| f.queued_at + self.ttl).min()
    }

    fn recycle(&mut self, b: Vec<u8>) {
        if self.spare.len() < self.cap {
            self.spare.push(b);
        }
    }
}
