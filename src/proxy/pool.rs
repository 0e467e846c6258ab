//! One backend pool with round-robin selection. Health state is fed in by
//! the worker (a refused or timed-out connect marks a backend down for a
//! while), so the choice itself stays deterministic and testable.

use crate::net::Endpoint;
use crate::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Backend {
    pub addr: Endpoint,
    /// Not chosen before this time (set after a failed connect).
    down_until: Instant,
    /// Connections currently proxied to it by this worker.
    pub active: u32,
}

#[derive(Clone, Debug)]
pub struct BackendPool {
    backends: Vec<Backend>,
    next: usize,
    /// How long a backend that refused or timed out is skipped.
    pub down_for: Duration,
}

impl BackendPool {
    pub fn new(addrs: impl IntoIterator<Item = Endpoint>) -> Self {
        BackendPool {
            backends: addrs.into_iter().map(|addr| Backend { addr, down_until: Instant::ZERO, active: 0 }).collect(),
            next: 0,
            down_for: Duration::from_secs(2),
        }
    }

    pub fn len(&self) -> usize {
        self.backends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// Round robin over the backends that are up at `now`. If all are down,
    /// round robin over all of them: trying a backend that may have come
    /// back beats refusing every client.
    pub fn pick(&mut self, now: Instant) -> Option<usize> {
        let n = self.backends.len();
        if n == 0 {
            return None;
        }
        for i in 0..n {
            let idx = (self.next + i) % n;
            if self.backends[idx].down_until <= now {
                self.next = (idx + 1) % n;
                return Some(idx);
            }
        }
        let idx = self.next % n;
        self.next = (idx + 1) % n;
        Some(idx)
    }

    pub fn addr(&self, idx: usize) -> Endpoint {
        self.backends[idx].addr
    }

    pub fn connected(&mut self, idx: usize) {
        if let Some(b) = self.backends.get_mut(idx) {
            b.active += 1;
        }
    }

    pub fn released(&mut self, idx: usize) {
        if let Some(b) = self.backends.get_mut(idx) {
            b.active = b.active.saturating_sub(1);
        }
    }

    /// A connect to this backend was refused or timed out.
    pub fn mark_failed(&mut self, idx: usize, now: Instant) {
        let down_for = self.down_for;
        if let Some(b) = self.backends.get_mut(idx) {
            b.down_until = now + down_for;
        }
    }

    pub fn is_up(&self, idx: usize, now: Instant) -> bool {
        self.backends.get(idx).map(|b| b.down_until <= now).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::IpAddress;

    fn pool3() -> BackendPool {
        BackendPool::new((1..=3).map(|i| Endpoint::new(IpAddress::v4(198, 18, 0, i), 8080)))
    }

    #[test]
    fn round_robin_visits_each_backend_in_turn() {
        let mut p = pool3();
        let picks: Vec<_> = (0..6).map(|_| p.pick(Instant::ZERO).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn failed_backend_is_skipped_until_its_down_time_ends() {
        let mut p = pool3();
        p.mark_failed(1, Instant::ZERO);
        let now = Instant::from_millis(10);
        let picks: Vec<_> = (0..4).map(|_| p.pick(now).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
        let later = Instant::ZERO + p.down_for;
        assert!(p.is_up(1, later));
    }

    #[test]
    fn all_down_still_picks_one() {
        let mut p = pool3();
        for i in 0..3 {
            p.mark_failed(i, Instant::ZERO);
        }
        assert!(p.pick(Instant::from_millis(1)).is_some());
        assert_eq!(BackendPool::new([]).pick(Instant::ZERO), None);
    }
}
