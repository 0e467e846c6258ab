//! Backend source ports. Each worker owns a disjoint slice of the
//! ephemeral range (DESIGN.md, "Ports, sequence numbers, admission"), so
//! workers never collide and a backend flow's port names its worker.

use hashbrown::HashSet;

use crate::net::Endpoint;

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
}

impl SourcePorts {
    /// The slice of worker `worker` out of `workers`.
    pub fn for_worker(worker: usize, workers: usize) -> Self {
        let workers = workers.max(1) as u32;
        let span = (RANGE_END - RANGE_START) as u32 / workers;
        let start = RANGE_START as u32 + span * worker as u32;
        let end = start + span;
        SourcePorts { start: start as u16, end: end as u16, cursor: start as u16, used: HashSet::new() }
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

    /// A free port towards `backend`, or None if the slice is exhausted.
    pub fn allocate(&mut self, backend: Endpoint) -> Option<u16> {
        let n = self.end - self.start;
        for _ in 0..n {
            let p = self.cursor;
            self.cursor = if self.cursor + 1 >= self.end { self.start } else { self.cursor + 1 };
            if self.used.insert((backend, p)) {
                return Some(p);
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
}
