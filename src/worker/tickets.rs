//! TLS resumption tickets through the shared session table (issue 3 §3):
//! the [`TicketStore`] the TLS state machine calls, made of the worker's
//! fabric (table and key ring), its sealer and the poll's `now`.
//!
//! A session is one sealed record of kind [`KIND_SESSION`] whose identity
//! is the ticket id (what the client presents), expiring with the ticket's
//! lifetime. Any worker takes it (atomic get-and-remove: one winner), so a
//! ticket resumes on any worker and exactly once. A put-back returns the
//! very sealed bytes that were taken, with their original expiry: nothing
//! is sealed twice and the record's life is never extended.
//!
//! Made per call, cheaply, around `TlsServer::process_with`:
//! `let mut t = Tickets::new(fabric.as_deref(), sealer.as_mut(), now);`
//! (no fabric: no tickets). The worker passes it wherever it called
//! `TlsServer::process` (`Conn::service`, `Conn::job_done`, and
//! `drive_jobs` between them): docs/resume-integration.patch.
//!
//! Records share the table with connection records (`KIND_CONN`): a table
//! sized for connections must also hold `tickets_per_handshake` tickets
//! per handshake for `ticket_lifetime_s`; a full table refuses the put
//! and the ticket is simply not sent. Records are sealed under the key
//! ring and survive one key rotation (seal.rs): keep ticket lifetimes
//! within the rotation interval once keys rotate.

use zeroize::Zeroizing;

use super::handoff::{Fabric, KIND_SESSION};
use crate::session::seal::{sealed_expiry, Opener, Sealer};
use crate::time::{Duration, Instant};
use crate::tls::{NoTickets, TicketStore};

pub struct WorkerTickets<'a> {
    pub fabric: &'a Fabric,
    pub sealer: &'a mut Sealer,
    pub now: Instant,
    /// The ticket id and sealed record of the last take, for `put_back`.
    last: Option<(Vec<u8>, Vec<u8>)>,
}

impl<'a> WorkerTickets<'a> {
    pub fn new(fabric: &'a Fabric, sealer: &'a mut Sealer, now: Instant) -> Self {
        WorkerTickets { fabric, sealer, now, last: None }
    }
}

impl TicketStore for WorkerTickets<'_> {
    fn put(&mut self, ticket_id: &[u8], session: &[u8], lifetime_s: u32) -> bool {
        let expiry = self.now + Duration::from_secs(u64::from(lifetime_s));
        let sealed = match self.sealer.seal(KIND_SESSION, ticket_id, expiry, session) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("cannot seal a session: {e}");
                return false;
            }
        };
        match self.fabric.tickets.put_evicting(KIND_SESSION, ticket_id, &sealed, expiry, self.now) {
            Ok(()) => true,
            Err(e) => {
                log::debug!("session table refused a ticket: {e:?}");
                false
            }
        }
    }

    fn take(&mut self, ticket_id: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let mut buf = Vec::new();
        if !matches!(self.fabric.tickets.take(KIND_SESSION, ticket_id, self.now, &mut buf), Ok(true)) {
            return None;
        }
        let opened = Opener::new(&self.fabric.keys()).open(KIND_SESSION, ticket_id, self.now, &buf);
        match opened {
            Ok(plain) => {
                self.last = Some((ticket_id.to_vec(), buf));
                Some(plain)
            }
            Err(e) => {
                // Forged, expired or under a retired key: gone for good.
                log::debug!("cannot open a session record: {e}");
                None
            }
        }
    }

    fn put_back(&mut self, ticket_id: &[u8], _session: &[u8]) -> bool {
        let Some((id, sealed)) = self.last.take() else { return false };
        if id != ticket_id {
            return false;
        }
        let Some(expiry) = sealed_expiry(&sealed) else { return false };
        self.fabric.tickets.put_evicting(KIND_SESSION, ticket_id, &sealed, expiry, self.now).is_ok()
    }

    /// The host's monotonic clock, the one this table's expiries are in:
    /// the table is shared only by the workers of this process (one clock)
    /// and its records do not outlive it (sealed under a per-process key).
    fn clock(&self) -> Option<Instant> {
        Some(self.now)
    }
}

/// The ticket store of one worker call: the shared table when the worker
/// has joined a fabric, none otherwise (then no tickets, no resumption).
pub enum Tickets<'a> {
    Table(WorkerTickets<'a>),
    /// Fleet mode: tickets live in the repository only.
    Fleet(super::fleet::FleetTickets<'a>),
    Off(NoTickets),
}

/// What a worker in fleet mode lends its ticket store for one call.
pub struct FleetLend<'a> {
    pub fleet: &'a super::fleet::Fleet,
    pub sealer: &'a mut Sealer,
    pub fetched: &'a mut super::fleet::FetchedExpiry,
}

impl<'a> Tickets<'a> {
    /// The fleet's store when the host is in a fleet, else the shared
    /// table when the worker joined a fabric, else none.
    pub fn new(fabric: Option<&'a Fabric>, sealer: Option<&'a mut Sealer>, now: Instant, fleet: Option<FleetLend<'a>>) -> Self {
        if let Some(l) = fleet {
            let wall = l.fleet.wall(now);
            return Tickets::Fleet(super::fleet::FleetTickets { fleet: l.fleet, sealer: l.sealer, wall, fetched: l.fetched, put: 0, not_put: 0 });
        }
        match (fabric, sealer) {
            (Some(f), Some(s)) => Tickets::Table(WorkerTickets::new(f, s, now)),
            _ => Tickets::Off(NoTickets),
        }
    }

    /// Tickets sent to the repository and refused by its queue.
    pub fn fleet_counts(&self) -> (u64, u64) {
        match self {
            Tickets::Fleet(f) => (f.put, f.not_put),
            _ => (0, 0),
        }
    }

    fn store(&mut self) -> &mut dyn TicketStore {
        match self {
            Tickets::Table(t) => t,
            Tickets::Fleet(f) => f,
            Tickets::Off(n) => n,
        }
    }
}

impl TicketStore for Tickets<'_> {
    fn put(&mut self, ticket_id: &[u8], session: &[u8], lifetime_s: u32) -> bool {
        self.store().put(ticket_id, session, lifetime_s)
    }
    fn take(&mut self, ticket_id: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.store().take(ticket_id)
    }
    fn put_back(&mut self, ticket_id: &[u8], session: &[u8]) -> bool {
        self.store().put_back(ticket_id, session)
    }
    fn remote(&self) -> bool {
        matches!(self, Tickets::Fleet(_))
    }
    fn clock(&self) -> Option<Instant> {
        match self {
            Tickets::Table(t) => t.clock(),
            Tickets::Fleet(f) => f.clock(),
            Tickets::Off(n) => n.clock(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::seal::{KeyRing, SealerId};
    use crate::session::table::{HeapArena, SessionTable, TableConfig};
    use crate::worker::handoff::DynArena;

    fn fabric() -> Fabric {
        let cfg = TableConfig { slots: 64, max_record: 1024, probe: 8, hash_key: [9; 32] };
        let need = SessionTable::<HeapArena>::words_needed(cfg.slots, cfg.max_record).unwrap();
        let table = SessionTable::from_words(DynArena(Box::new(HeapArena::new(need))), &cfg).unwrap();
        let conns = crate::worker::handoff::heap_table(4, 1024, [6; 32]).unwrap();
        Fabric::new(2, 16, conns, table, KeyRing::new(1, &[7; 32], Instant::ZERO), 1, 2)
    }

    #[test]
    fn put_take_once_put_back_keeps_expiry() {
        let f = fabric();
        let mut s0 = Sealer::new(&f.keys(), SealerId { host: 1, boot: 2, worker: 0 });
        let mut s1 = Sealer::new(&f.keys(), SealerId { host: 1, boot: 2, worker: 1 });
        let t0 = Instant::from_millis(1000);
        let mut a = WorkerTickets::new(&f, &mut s0, t0);
        assert!(a.put(b"ticket-1", b"session bytes", 10));
        // In the table sealed, never in clear.
        let mut b = WorkerTickets::new(&f, &mut s1, t0 + Duration::from_secs(1));
        let got = b.take(b"ticket-1").unwrap();
        assert_eq!(&got[..], b"session bytes");
        assert!(b.take(b"ticket-1").is_none(), "taken twice");
        assert!(!b.put_back(b"other", b"x"));
        // put_back of a wrong id consumed the memo: take again to test it.
        assert!(b.take(b"ticket-1").is_none());
        let mut c = WorkerTickets::new(&f, &mut s1, t0 + Duration::from_secs(2));
        assert!(c.put(b"ticket-2", b"two", 10));
        let got = c.take(b"ticket-2").unwrap();
        assert!(c.put_back(b"ticket-2", &got));
        // Original expiry (t0 + 2 s + 10 s): alive at +11 s, gone at +12 s.
        let mut d = WorkerTickets::new(&f, &mut s1, t0 + Duration::from_secs(11));
        let got = d.take(b"ticket-2").unwrap();
        assert!(d.put_back(b"ticket-2", &got));
        let mut e = WorkerTickets::new(&f, &mut s1, t0 + Duration::from_secs(12));
        assert!(e.take(b"ticket-2").is_none());
    }

    #[test]
    fn ticket_expires_with_its_lifetime() {
        let f = fabric();
        let mut s0 = Sealer::new(&f.keys(), SealerId { host: 1, boot: 2, worker: 0 });
        let t0 = Instant::from_millis(5);
        assert!(WorkerTickets::new(&f, &mut s0, t0).put(b"t", b"s", 7200));
        let late = t0 + Duration::from_secs(7200);
        assert!(WorkerTickets::new(&f, &mut s0, late).take(b"t").is_none());
    }
}
