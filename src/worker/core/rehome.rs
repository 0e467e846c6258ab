//! RSS redirection-table changes (issue 3 §4, "Triggers"): when the NIC's
//! RETA changes, every worker hands over the connections whose client
//! flow the new table sends to another worker's queue, and picks backend
//! source ports whose return flow the table sends to its own queue
//! (issue 3 §2). Worker `k` serves RX queue `k`.
//!
//! With a RETA in force the table is the authority on who should hold a
//! connection: a frame that reaches a worker for a connection held by the
//! worker the table names for its client flow is forwarded there (a
//! backend flow whose port was chosen under the previous table, or a
//! frame the NIC steered before it got the new table), never pulled over.
//! Only when the holder is not the one the table names (a move that could
//! not happen yet: a crypto job was out) does the usual yield run.

use std::sync::Arc;

use super::Worker;
use crate::net::rss::Reta;
use crate::time::Instant;
use crate::worker::handoff::{Fabric, Owner};

impl Worker {
    /// Acts on `reta`: backend source ports are chosen RSS-aware from now
    /// on, and every connection whose client flow `reta` gives to another
    /// worker's queue is handed to that worker. Returns how many moved.
    /// A connection that cannot move now (a crypto job is out) stays; its
    /// next frame at the new worker asks for it (the yield path).
    pub fn rehome(&mut self, reta: &Reta, now: Instant) -> usize {
        let vip = self.vip();
        self.ports.set_rss(reta.clone(), vip, self.id as u16);
        if self.reta.as_deref() != Some(reta) {
            self.reta = Some(Arc::new(reta.clone()));
        }
        let Some(f) = self.fabric.clone() else { return 0 };
        let mut moved = 0;
        for cf in self.client_flows() {
            let to = reta.queue_for(&cf) as usize;
            // A queue no worker serves, or a worker being drained: leave
            // the connection where it is.
            if to == self.id || to >= self.params.workers || f.is_draining(to) {
                continue;
            }
            if self.hand_over(&cf, to, now) {
                moved += 1;
            }
        }
        if moved > 0 {
            log::debug!("worker {}: RETA change moved {moved} connections", self.id);
        }
        moved
    }

    /// On each poll: a RETA generation this worker has not acted on yet
    /// is acted on, then acknowledged (lock-free unless it changed).
    pub(super) fn poll_reta(&mut self, f: &Fabric, now: Instant) {
        let gen = f.reta_generation();
        if gen == f.reta_seen(self.id) {
            return;
        }
        if let Some(r) = f.reta() {
            self.reta = Some(r.clone());
            self.rehome(&r, now);
        }
        f.ack_reta(self.id, gen);
    }

    /// With a RETA in force: whether `owner` is the worker the table names
    /// for the connection's client flow, so a frame for it that reached
    /// this worker is forwarded rather than the connection pulled here.
    pub(super) fn reta_keeps(&self, owner: &Owner) -> bool {
        match &self.reta {
            Some(r) => r.queue_for(&owner.client_flow) as usize == owner.worker as usize,
            None => false,
        }
    }

    /// The RSS redirection table this worker acts on, if any.
    pub fn reta(&self) -> Option<&Reta> {
        self.reta.as_deref()
    }

    /// (client flow, backend flow) of every connection held that has a
    /// backend flow (tests and diagnostics).
    pub fn backend_flows(&self) -> Vec<(crate::net::FlowId, crate::net::FlowId)> {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref())
            .filter_map(|c| c.backend_flow().map(|b| (c.client_flow(), b)))
            .collect()
    }

    /// Backend source ports chosen RSS-aware that did not map to this
    /// worker's queue (none that did was free).
    pub fn rss_port_fallbacks(&self) -> u64 {
        self.ports.rss_fallbacks()
    }
}
