//! [`FrameIo`] over a DPDK queue pair.

use crate::dpdk::{Mbuf, Mempool, PortQueue};
use crate::worker::io::FrameIo;

/// Largest frame `tx_frame` accepts (a 64 KiB frame would need more
/// segments than any PMD sends; 9216 covers jumbo frames).
pub const MAX_TX_FRAME: usize = 16 * 1024;

/// Times `flush` retries `tx_burst` when the NIC takes only part of a burst.
const FLUSH_RETRIES: usize = 4;

/// Counters of one DPDK queue pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpdkQueueCounters {
    /// Frames delivered by `rx_burst`.
    pub rx_frames: u64,
    /// Of those, frames that arrived as multi-segment chains.
    pub rx_chained: u64,
    /// Frames handed to the NIC.
    pub tx_frames: u64,
    /// Frames queued for TX as multi-segment chains.
    pub tx_chained: u64,
    /// Frames the NIC refused at flush time (freed).
    pub tx_dropped: u64,
    /// Frames not queued because the mempool was empty.
    pub tx_nombuf: u64,
    /// Frames not queued because they exceed [`MAX_TX_FRAME`] or are empty.
    pub tx_too_big: u64,
}

/// One worker's queue pair on a DPDK port, with its TX buffer and RX scratch.
pub struct DpdkQueue {
    queue: PortQueue,
    pool: Mempool,
    burst: usize,
    rx: Vec<Mbuf>,
    tx: Vec<Mbuf>,
    scratch: Vec<u8>,
    counters: DpdkQueueCounters,
}

impl std::fmt::Debug for DpdkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkQueue")
            .field("queue", &self.queue)
            .field("counters", &self.counters)
            .finish()
    }
}

impl DpdkQueue {
    /// Wraps a queue handle; TX mbufs come from `pool`; bursts are up to
    /// `burst` frames (at least 1).
    pub fn new(queue: PortQueue, pool: Mempool, burst: usize) -> DpdkQueue {
        let burst = burst.max(1);
        DpdkQueue {
            queue,
            pool,
            burst,
            rx: Vec::with_capacity(burst),
            tx: Vec::with_capacity(burst),
            scratch: Vec::with_capacity(MAX_TX_FRAME),
            counters: DpdkQueueCounters::default(),
        }
    }

    /// The queue handle (MAC, MTU, ids, port stats).
    pub fn port_queue(&self) -> &PortQueue {
        &self.queue
    }

    /// All counters.
    pub fn counters(&self) -> DpdkQueueCounters {
        self.counters
    }

    /// Frames the NIC refused.
    pub fn tx_dropped(&self) -> u64 {
        self.counters.tx_dropped
    }

    /// Frames not queued for lack of mbufs.
    pub fn tx_nombuf(&self) -> u64 {
        self.counters.tx_nombuf
    }

    /// Frames buffered and not yet flushed.
    pub fn tx_pending(&self) -> usize {
        self.tx.len()
    }

    /// Copies `frame` into a fresh chain from the pool.
    fn build_chain(&self, frame: &[u8]) -> Option<Mbuf> {
        let mut head = Mbuf::alloc(&self.pool)?;
        let first = frame.len().min(head.tailroom() as usize);
        let (now, mut rest) = frame.split_at(first);
        if !head.append_from(now) {
            return None;
        }
        while !rest.is_empty() {
            let mut seg = Mbuf::alloc(&self.pool)?;
            let take = rest.len().min(seg.tailroom() as usize);
            if take == 0 {
                return None;
            }
            let (now, later) = rest.split_at(take);
            if !seg.append_from(now) {
                return None;
            }
            head.chain(seg).ok()?;
            rest = later;
        }
        Some(head)
    }
}

impl FrameIo for DpdkQueue {
    fn rx_burst(&mut self, f: &mut dyn FnMut(&[u8])) -> usize {
        let n = self.queue.rx_burst(&mut self.rx, self.burst);
        for m in self.rx.drain(..) {
            if m.nb_segs() <= 1 {
                f(m.data());
            } else {
                self.counters.rx_chained += 1;
                self.scratch.clear();
                m.copy_to(&mut self.scratch);
                f(&self.scratch);
            }
            self.counters.rx_frames += 1;
            // m dropped here: the buffer goes back to the pool every burst.
        }
        n
    }

    fn tx_frame(&mut self, frame: &[u8]) -> bool {
        if frame.is_empty() || frame.len() > MAX_TX_FRAME {
            self.counters.tx_too_big += 1;
            return false;
        }
        let Some(m) = self.build_chain(frame) else {
            self.counters.tx_nombuf += 1;
            return false;
        };
        if m.nb_segs() > 1 {
            self.counters.tx_chained += 1;
        }
        self.tx.push(m);
        if self.tx.len() >= self.burst {
            self.flush();
        }
        true
    }

    fn flush(&mut self) {
        for _ in 0..FLUSH_RETRIES {
            if self.tx.is_empty() {
                break;
            }
            let sent = self.queue.tx_burst(&mut self.tx);
            self.counters.tx_frames += sent as u64;
            if sent == 0 {
                break;
            }
        }
        self.counters.tx_dropped += self.tx.len() as u64;
        // Dropping the refused mbufs frees them (they are still ours).
        self.tx.clear();
    }
}

impl Drop for DpdkQueue {
    fn drop(&mut self) {
        self.flush();
    }
}
