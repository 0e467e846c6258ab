//! Backend source ports. Each worker owns a disjoint slice of the
//! ephemeral range (DESIGN.md, "Ports, sequence numbers, admission"), so
//! workers never collide and a backend flow's port names its worker.
//!
//! Two modes (issue 3 §2):
//! - slice: any free port of the worker's slice. For PMDs that do not hash
//!   with Toeplitz (net_tap: the kernel picks the queue), a backend's
//!   return packets reach whichever worker and are forwarded over the ring.
//! - RSS ([`SourcePorts::set_rss`]): only ports whose *return* flow
//!   (backend → baton's address and that port) the NIC's Toeplitz hash and
//!   RETA send to this worker's queue, so the return packets land on the
//!   owner. Ports stay inside the worker's slice: that keeps them unique
//!   across workers whatever the RETA did since they were handed out, and
//!   keeps [`SourcePorts::owner_of`] right. The price is density: about
//!   `40000 / workers²` ports per backend and worker (10,000 with 2
//!   workers, 2,500 with 4); several source addresses widen it. When no
//!   port of the slice maps to the queue (a RETA that gives this worker
//!   nothing), it falls back to any free slice port and counts it.

use hashbrown::HashSet;

use crate::net::rss::Reta;
use crate::net::{Endpoint, FlowId, IpAddress};

/// What RSS-aware choice needs: the port's RETA (with its key), the
/// address backends send to, and the queue that should get the replies.
#[derive(Debug, Clone)]
struct RssChoice {
    reta: Reta,
    local: IpAddress,
    queue: u16,
}

/// First port of the range baton uses towards backends.
pub const RANGE_START: u16 = 20000;
/// One past the last port.
pub const RANGE_END: u16 = 60000;

#[derive(Debug, Clone)]
pub struct SourcePorts {
    start: u16,
    end: u16,
    cursor: u16,
    /// (backend, port) pairs in use: the same port may serve different
    /// backends at once, since the 4-tuples differ.
    used: HashSet<(Endpoint, u16)>,
    rss: Option<RssChoice>,
    /// Ports handed out in RSS mode that do not map to the queue (none
    /// that did was free).
    rss_fallbacks: u64,
}

impl SourcePorts {
    /// The slice of worker `worker` out of `workers`.
    pub fn for_worker(worker: usize, workers: usize) -> Self {
        let workers = workers.max(1) as u32;
        let span = (RANGE_END - RANGE_START) as u32 / workers;
        let start = RANGE_START as u32 + span * worker as u32;
        let end = start + span;
        SourcePorts { start: start as u16, end: end as u16, cursor: start as u16, used: HashSet::new(), rss: None, rss_fallbacks: 0 }
    }

    /// Starts handing out ports at `offset` into the slice (modulo its
    /// size), so a restarted baton does not walk the same ports in the
    /// same order into a backend's leftover TIME-WAIT sockets.
    pub fn start_at(mut self, offset: u32) -> Self {
        let n = (self.end - self.start) as u32;
        if n > 0 {
            self.cursor = self.start + (offset % n) as u16;
        }
        self
    }

    /// Which worker's slice a port is in.
    pub fn owner_of(port: u16, workers: usize) -> Option<usize> {
        if !(RANGE_START..RANGE_END).contains(&port) {
            return None;
        }
        let span = (RANGE_END - RANGE_START) as usize / workers.max(1);
        let w = (port - RANGE_START) as usize / span;
        (w < workers).then_some(w)
    }

    /// Switches to RSS-aware choice: from now on ports are picked so that
    /// packets from a backend to `local` and the port land on `queue`
    /// under `reta`. Ports in use stay reserved. Called again when the
    /// RETA changes.
    pub fn set_rss(&mut self, reta: Reta, local: IpAddress, queue: u16) {
        self.rss = Some(RssChoice { reta, local, queue });
    }

    /// Back to plain slice mode.
    pub fn clear_rss(&mut self) {
        self.rss = None;
    }

    /// Whether ports are chosen RSS-aware.
    pub fn is_rss(&self) -> bool {
        self.rss.is_some()
    }

    /// Ports handed out in RSS mode that do not map to this queue.
    pub fn rss_fallbacks(&self) -> u64 {
        self.rss_fallbacks
    }

    /// The queue the NIC puts `backend`'s packets to `port` on, in RSS mode.
    pub fn return_queue(&self, backend: Endpoint, port: u16) -> Option<u16> {
        let r = self.rss.as_ref()?;
        Some(r.reta.queue_for(&FlowId { local: Endpoint::new(r.local, port), remote: backend }))
    }

    /// A free port towards `backend`, or None if the slice is exhausted.
    /// In RSS mode, a port whose return flow maps to this worker's queue
    /// if the slice has a free one.
    pub fn allocate(&mut self, backend: Endpoint) -> Option<u16> {
        if let Some(r) = self.rss.take() {
            let got = self.next_free(backend, |p| r.reta.queue_for(&FlowId { local: Endpoint::new(r.local, p), remote: backend }) == r.queue);
            self.rss = Some(r);
            if got.is_some() {
                return got;
            }
            let any = self.next_free(backend, |_| true);
            if any.is_some() {
                self.rss_fallbacks += 1;
            }
            return any;
        }
        self.next_free(backend, |_| true)
    }

    /// The next free port from the cursor on that `fits`, taken.
    fn next_free(&mut self, backend: Endpoint, fits: impl Fn(u16) -> bool) -> Option<u16> {
        let n = self.end - self.start;
        let mut p = self.cursor;
        for _ in 0..n {
            let here = p;
            p = if p + 1 >= self.end { self.start } else { p + 1 };
            if !self.used.contains(&(backend, here)) && fits(here) {
                self.used.insert((backend, here));
                self.cursor = p;
                return Some(here);
            }
        }
        None
    }

    /// Marks a port as used (a connection imported from another worker).
    pub fn reserve(&mut self, backend: Endpoint, port: u16) {
        self.used.insert((backend, port));
    }

    pub fn release(&mut self, backend: Endpoint, port: u16) {
        self.used.remove(&(backend, port));
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::IpAddress;

    #[test]
    fn worker_slices_are_disjoint_and_owner_is_recoverable() {
        let a = SourcePorts::for_worker(0, 2);
        let b = SourcePorts::for_worker(1, 2);
        assert!(a.end <= b.start);
        assert_eq!(SourcePorts::owner_of(a.start, 2), Some(0));
        assert_eq!(SourcePorts::owner_of(b.end - 1, 2), Some(1));
        assert_eq!(SourcePorts::owner_of(80, 2), None);
    }

    #[test]
    fn start_offset_stays_inside_the_slice() {
        let be = Endpoint::new(IpAddress::v4(198, 18, 0, 1), 80);
        let mut p = SourcePorts::for_worker(1, 2).start_at(u32::MAX);
        let got = p.allocate(be).unwrap();
        assert_eq!(SourcePorts::owner_of(got, 2), Some(1));
    }

    #[test]
    fn ports_are_not_reused_until_released() {
        let be = Endpoint::new(IpAddress::v4(198, 18, 0, 1), 80);
        let mut p = SourcePorts::for_worker(0, 1000); // a slice of 40 ports
        let got: Vec<_> = (0..40).map(|_| p.allocate(be).unwrap()).collect();
        assert_eq!(p.allocate(be), None, "slice exhausted");
        p.release(be, got[7]);
        assert_eq!(p.allocate(be), Some(got[7]));
        // another backend can use the same ports
        let be2 = Endpoint::new(IpAddress::v4(198, 18, 0, 3), 80);
        assert!(p.allocate(be2).is_some());
    }

    fn vip() -> IpAddress {
        IpAddress::v4(198, 18, 0, 10)
    }

    /// The queue a backend's packet to `vip:port` lands on, computed from
    /// the hash and the table directly (the hash itself is checked against
    /// Microsoft's vectors in net::rss).
    fn queue_of(reta: &Reta, be: Endpoint, port: u16) -> u16 {
        let h = crate::net::rss::hash_v4_tcp(reta.key(), be.addr.octets_v4(), vip().octets_v4(), be.port, port);
        reta.table()[(h % reta.len() as u32) as usize]
    }

    #[test]
    fn rss_ports_return_to_the_workers_queue_and_are_never_handed_out_twice() {
        use crate::net::rss::DEFAULT_KEY;
        let be = Endpoint::new(IpAddress::v4(198, 18, 0, 1), 8080);
        let reta = Reta::round_robin(&DEFAULT_KEY, 128, 4).unwrap();
        for w in 0..4usize {
            let mut p = SourcePorts::for_worker(w, 4).start_at(12345);
            p.set_rss(reta.clone(), vip(), w as u16);
            let mut seen = std::collections::HashSet::new();
            for _ in 0..500 {
                let port = p.allocate(be).unwrap();
                assert_eq!(queue_of(&reta, be, port), w as u16, "worker {w} port {port}");
                assert_eq!(p.return_queue(be, port), Some(w as u16));
                assert_eq!(SourcePorts::owner_of(port, 4), Some(w), "stays in the slice");
                assert!(seen.insert(port), "port {port} handed out twice");
            }
            assert_eq!(p.rss_fallbacks(), 0);
        }
    }

    #[test]
    fn rss_mode_exhausts_matching_ports_then_falls_back_then_returns_none() {
        use crate::net::rss::DEFAULT_KEY;
        let be = Endpoint::new(IpAddress::v4(198, 18, 0, 1), 443);
        let reta = Reta::round_robin(&DEFAULT_KEY, 128, 2).unwrap();
        // A slice of 40 ports: worker 3 of 1000.
        let mut p = SourcePorts::for_worker(3, 1000);
        p.set_rss(reta.clone(), vip(), 1);
        let slice: Vec<u16> = (p.start..p.end).collect();
        let matching = slice.iter().filter(|&&x| queue_of(&reta, be, x) == 1).count();
        assert!(matching > 5 && matching < 35, "{matching} of 40 map to queue 1");
        let mut got = Vec::new();
        for _ in 0..matching {
            let port = p.allocate(be).unwrap();
            assert_eq!(queue_of(&reta, be, port), 1);
            got.push(port);
        }
        // The rest of the slice still goes out, counted as fallbacks.
        for _ in matching..40 {
            let port = p.allocate(be).unwrap();
            assert_ne!(queue_of(&reta, be, port), 1);
            got.push(port);
        }
        assert_eq!(p.rss_fallbacks(), (40 - matching) as u64);
        assert_eq!(p.allocate(be), None, "slice exhausted");
        got.sort_unstable();
        got.dedup();
        assert_eq!(got.len(), 40, "no port twice");
        // A released matching port is the next one handed out.
        let m = *got.iter().find(|&&x| queue_of(&reta, be, x) == 1).unwrap();
        p.release(be, m);
        assert_eq!(p.allocate(be), Some(m));
        // Reserved (imported) ports are skipped.
        let mut q = SourcePorts::for_worker(3, 1000);
        q.set_rss(reta.clone(), vip(), 1);
        for &x in slice.iter().filter(|&&x| queue_of(&reta, be, x) == 1) {
            q.reserve(be, x);
        }
        let port = q.allocate(be).unwrap();
        assert_ne!(queue_of(&reta, be, port), 1, "only a fallback was left");
    }

    #[test]
    fn a_new_reta_changes_which_ports_are_chosen() {
        use crate::net::rss::DEFAULT_KEY;
        let be = Endpoint::new(IpAddress::v4(198, 18, 0, 1), 8080);
        let a = Reta::round_robin(&DEFAULT_KEY, 128, 2).unwrap();
        // Every entry swapped: queue 0's ports are queue 1's now.
        let b = a.with_table(a.table().iter().map(|q| 1 - q).collect()).unwrap();
        let mut p = SourcePorts::for_worker(0, 2);
        p.set_rss(a.clone(), vip(), 0);
        let first = p.allocate(be).unwrap();
        assert_eq!(queue_of(&a, be, first), 0);
        p.set_rss(b.clone(), vip(), 0);
        for _ in 0..100 {
            let port = p.allocate(be).unwrap();
            assert_eq!(queue_of(&b, be, port), 0);
            assert_ne!(port, first, "a port in use stays reserved across RETA changes");
        }
        p.clear_rss();
        assert!(!p.is_rss());
        assert_eq!(p.return_queue(be, first), None);
    }
}
