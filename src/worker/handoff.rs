//! How the workers of one host hand connections to each other
//! (DESIGN.md, "The invariant"; issue 3 §4).
//!
//! A connection moves by *take*, never by copy: the owner exports it,
//! seals the record, puts it into the shared [`SessionTable`], points the
//! owner directory at the new owner and drops its own copy (whose secrets
//! are zeroized on drop). The new owner takes the record — the table lets
//! exactly one taker win — opens it and imports it. Frames that reach a
//! worker for a flow it does not hold are, in this order: continued from
//! the table if the record is there; held while the owner is asked over its
//! ring to yield; forwarded to the owner when this worker is draining.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use hashbrown::HashMap;

use crate::net::rss::Reta;
use crate::net::FlowId;
use crate::session::seal::KeyRing;
use crate::session::table::{Arena, PutError, SessionTable};
use crate::time::Instant;

/// Record kinds in the session table.
pub const KIND_SESSION: u8 = 1;
pub const KIND_CONN: u8 = 2;

/// Messages over a worker's ring.
pub enum Msg {
    /// A frame that arrived at another worker for a flow this one owns.
    Frame { bytes: Vec<u8>, hops: u8 },
    /// Export the connection of `client_flow` and hand it to worker `to`.
    Yield { client_flow: FlowId, to: usize, hops: u8 },
    /// The connection of `client_flow` is in the table for you: take it.
    Adopt { client_flow: FlowId },
    /// A backend source port of yours is free again (its connection moved
    /// to another worker and has ended there).
    ReleasePort { backend: crate::net::Endpoint, port: u16 },
}

/// Who owns a flow, and the client flow that names its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub worker: u16,
    pub client_flow: FlowId,
    /// Both initial sequence numbers of the client flow (ours, the
    /// client's): with the 4-tuple they name the connection, since ports
    /// get reused (DESIGN.md, "Vocabulary").
    pub isns: (u32, u32),
    /// When this owner got the connection (accept or import).
    pub since: Instant,
    /// The connection is parked in the table between two handshake flights
    /// (a checkpoint): whichever worker gets the next flight takes it.
    pub parked: bool,
    /// Its record went into the small-slot table ([`Fabric::put_conn`]):
    /// where a taker looks first.
    pub small: bool,
}

/// The per-flow owner directory: written when a connection is created,
/// moved or removed (never per packet), read on a flow-table miss.
pub struct OwnerDirectory {
    shards: Vec<Mutex<HashMap<FlowId, Owner>>>,
}

impl OwnerDirectory {
    pub fn new(shards: usize) -> Self {
        OwnerDirectory { shards: (0..shards.max(1)).map(|_| Mutex::new(HashMap::new())).collect() }
    }

    fn shard(&self, f: &FlowId) -> &Mutex<HashMap<FlowId, Owner>> {
        let h = (f.remote.port as usize) ^ ((f.local.port as usize) << 3) ^ f.remote.addr.octets_v4()[3] as usize;
        &self.shards[h % self.shards.len()]
    }

    pub fn set(&self, flow: FlowId, owner: Owner) {
        if let Ok(mut m) = self.shard(&flow).lock() {
            m.insert(flow, owner);
        }
    }

    pub fn get(&self, flow: &FlowId) -> Option<Owner> {
        self.shard(flow).lock().ok().and_then(|m| m.get(flow).copied())
    }

    /// Removes `flow` if `worker` still owns it.
    pub fn remove_if_owner(&self, flow: &FlowId, worker: usize) {
        if let Ok(mut m) = self.shard(flow).lock() {
            if m.get(flow).map(|o| o.worker as usize) == Some(worker) {
                m.remove(flow);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map(|m| m.len()).unwrap_or(0)).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A session-table arena chosen at run time (heap, or a DPDK memzone).
pub struct DynArena(pub Box<dyn Arena>);

impl Arena for DynArena {
    fn words(&self) -> &[crate::session::sync::AtomicU64] {
        self.0.words()
    }
}

/// A session-table arena in a DPDK memzone (hugepage memory, or the EAL's
/// ordinary memory under `--no-huge`). Not under `cfg(loom)`, whose model
/// uses loom's atomics over a heap arena.
#[cfg(not(loom))]
pub struct MemzoneArena(pub crate::dpdk::Memzone);

#[cfg(not(loom))]
impl Arena for MemzoneArena {
    fn words(&self) -> &[crate::session::sync::AtomicU64] {
        self.0.as_atomic_words()
    }
}

/// A session table in a memzone named `name`.
#[cfg(not(loom))]
pub fn memzone_table(
    eal: &crate::dpdk::Eal,
    name: &str,
    slots: usize,
    max_record: usize,
    hash_key: [u8; 32],
) -> Result<SessionTable<DynArena>, String> {
    use crate::session::table::TableConfig;
    let cfg = TableConfig { slots, max_record, probe: 16, hash_key };
    let words = SessionTable::<DynArena>::words_needed(slots, max_record).map_err(|e| e.to_string())?;
    let mz = crate::dpdk::Memzone::reserve(eal, name, words * 8, None).map_err(|e| format!("memzone {name} ({} MiB): {e}", (words * 8) >> 20))?;
    SessionTable::from_words(DynArena(Box::new(MemzoneArena(mz))), &cfg).map_err(|e| e.to_string())
}

/// Under loom the tables live on the heap.
#[cfg(loom)]
pub fn memzone_table(
    _eal: &crate::dpdk::Eal,
    _name: &str,
    slots: usize,
    max_record: usize,
    hash_key: [u8; 32],
) -> Result<SessionTable<DynArena>, String> {
    heap_table(slots, max_record, hash_key).map_err(|e| e.to_string())
}

/// A session table in heap memory.
pub fn heap_table(slots: usize, max_record: usize, hash_key: [u8; 32]) -> Result<SessionTable<DynArena>, crate::session::table::ConfigError> {
    use crate::session::table::{HeapArena, TableConfig};
    let cfg = TableConfig { slots, max_record, probe: 16, hash_key };
    let words = SessionTable::<HeapArena>::words_needed(slots, max_record)?;
    SessionTable::from_words(DynArena(Box::new(HeapArena::new(words))), &cfg)
}

/// Largest sealed ticket record (a session with the longest SNI and ALPN
/// is about 600 bytes).
pub const TICKET_RECORD_MAX: usize = 1024;

/// Everything the workers of one process share.
pub struct Fabric {
    pub workers: usize,
    inbox_tx: Vec<Sender<Msg>>,
    inbox_rx: Vec<Receiver<Msg>>,
    pub directory: OwnerDirectory,
    /// Connection records (few, large slots).
    pub table: SessionTable<DynArena>,
    /// Connection records that fit a small slot (many: a parked handshake
    /// or a connection with little buffered is a few KiB), so that they do
    /// not each take a large slot. `None`: everything goes to `table`.
    pub small: Option<SessionTable<DynArena>>,
    /// Session tickets (many, small slots).
    pub tickets: SessionTable<DynArena>,
    /// The sealing keys (current and previous). Read on every seal and open
    /// (handoffs and resumptions only, never per packet); written on
    /// rotation.
    keys: std::sync::RwLock<KeyRing>,
    /// The current key id, so workers notice a rotation without locking.
    key_id: std::sync::atomic::AtomicU32,
    drain: Vec<AtomicBool>,
    /// Host id and boot id for sealer ids (unique per process start).
    pub host: u32,
    pub boot: u64,
    /// The RSS redirection table (with its key) the NIC steers by, where
    /// the PMD hashes with Toeplitz; `None` otherwise (net_tap). Read only
    /// when `reta_gen` moves (issue 3 §4: a RETA change is a trigger).
    reta: RwLock<Option<Arc<Reta>>>,
    /// Bumped by every [`Fabric::set_reta`]; read lock-free on each poll.
    reta_gen: AtomicU64,
    /// The generation each worker has acted on (moved its connections).
    reta_seen: Vec<AtomicU64>,
}

impl Fabric {
    pub fn new(
        workers: usize,
        ring_size: usize,
        table: SessionTable<DynArena>,
        tickets: SessionTable<DynArena>,
        keys: KeyRing,
        host: u32,
        boot: u64,
    ) -> Fabric {
        let (tx, rx): (Vec<_>, Vec<_>) = (0..workers).map(|_| bounded(ring_size.max(16))).unzip();
        Fabric {
            workers,
            inbox_tx: tx,
            inbox_rx: rx,
            directory: OwnerDirectory::new(64),
            table,
            small: None,
            tickets,
            key_id: std::sync::atomic::AtomicU32::new(keys.current_id()),
            keys: std::sync::RwLock::new(keys),
            drain: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            host,
            boot,
            reta: RwLock::new(None),
            reta_gen: AtomicU64::new(0),
            reta_seen: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Adds the small-slot connection table (before the fabric is shared).
    pub fn with_small_table(mut self, small: SessionTable<DynArena>) -> Fabric {
        self.small = Some(small);
        self
    }

    /// Puts a sealed connection record into the small-slot table when it
    /// fits there and that table has room, else into the large one.
    /// Returns whether it went to the small table. Either way it is the
    /// only copy: a record is in one table or none.
    pub fn put_conn(&self, id: &[u8], sealed: &[u8], expiry: Instant, now: Instant) -> Result<bool, PutError> {
        if let Some(s) = self.small.as_ref().filter(|s| sealed.len() <= s.max_record()) {
            match s.put(KIND_CONN, id, sealed, expiry, now) {
                Ok(()) => return Ok(true),
                Err(PutError::Full) => {} // a large slot then
                Err(e) => return Err(e),
            }
        }
        self.table.put(KIND_CONN, id, sealed, expiry, now).map(|()| false)
    }

    /// Connection records in both tables now.
    pub fn conn_records(&self) -> usize {
        self.table.occupied() + self.small.as_ref().map_or(0, |t| t.occupied())
    }

    /// Takes the connection record `id` (atomic get-and-remove), looking
    /// first in the table `small_first` names, then in the other. True if
    /// it was there; then `out` holds it.
    pub fn take_conn(&self, id: &[u8], small_first: bool, now: Instant, out: &mut Vec<u8>) -> bool {
        let small = self.small.as_ref();
        let (first, second) = if small_first { (small, Some(&self.table)) } else { (Some(&self.table), small) };
        [first, second].into_iter().flatten().any(|t| matches!(t.take(KIND_CONN, id, now, out), Ok(true)))
    }

    /// Publishes a new RSS redirection table: on their next poll the
    /// workers hand over every connection whose client flow the table now
    /// gives to another worker's queue, and choose backend source ports
    /// for it. Returns the new generation (see [`Fabric::reta_acked`]).
    /// The runtime applies the table to the NIC only after that (move
    /// first, then the NIC steers; frames that reach the old queue in
    /// between are forwarded to the new owner through the directory).
    pub fn set_reta(&self, reta: Reta) -> u64 {
        let mut g = self.reta.write().unwrap_or_else(|e| e.into_inner());
        *g = Some(Arc::new(reta));
        // Under the write lock: a reader that sees the new generation
        // then reads this table (or a newer one).
        self.reta_gen.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The current RETA generation (0: none was ever set).
    pub fn reta_generation(&self) -> u64 {
        self.reta_gen.load(Ordering::Acquire)
    }

    /// The current RSS redirection table, if the NIC steers by one.
    pub fn reta(&self) -> Option<Arc<Reta>> {
        self.reta.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The RETA generation `worker` has acted on.
    pub fn reta_seen(&self, worker: usize) -> u64 {
        self.reta_seen.get(worker).map(|s| s.load(Ordering::Acquire)).unwrap_or(0)
    }

    /// Records that `worker` has acted on generation `gen`.
    pub fn ack_reta(&self, worker: usize, gen: u64) {
        if let Some(s) = self.reta_seen.get(worker) {
            s.fetch_max(gen, Ordering::AcqRel);
        }
    }

    /// Whether every worker has acted on generation `gen` (the moment to
    /// apply the table to the NIC).
    pub fn reta_acked(&self, gen: u64) -> bool {
        self.reta_seen.iter().all(|s| s.load(Ordering::Acquire) >= gen)
    }

    /// The key ring, for sealing and opening.
    pub fn keys(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        // A poisoned lock means a panic while rotating; the ring itself is
        // still consistent (rotate replaces fields wholesale).
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Id of the current sealing key.
    pub fn key_id(&self) -> u32 {
        self.key_id.load(Ordering::Acquire)
    }

    /// Rotates to a fresh key from `entropy`: records sealed under the
    /// previous key stay readable, older ones no longer. Workers remake
    /// their sealers on their next poll.
    pub fn rotate_keys(&self, now: crate::time::Instant, entropy: &mut dyn crate::entropy::Entropy) -> bool {
        let mut ring = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let next = ring.current_id().wrapping_add(1);
        if next == 0 {
            return false;
        }
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        entropy.fill(&mut key[..]);
        let ok = ring.rotate(next, &key, now).is_ok();
        if ok {
            self.key_id.store(next, Ordering::Release);
        }
        ok
    }

    /// Sends `msg` to `worker`'s ring; false if the ring is full.
    pub fn send(&self, worker: usize, msg: Msg) -> bool {
        match self.inbox_tx.get(worker) {
            Some(tx) => match tx.try_send(msg) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            },
            None => false,
        }
    }

    /// Nothing waits in `worker`'s ring.
    pub fn inbox_is_empty(&self, worker: usize) -> bool {
        self.inbox_rx.get(worker).is_none_or(|r| r.is_empty())
    }

    pub fn recv(&self, worker: usize) -> Option<Msg> {
        self.inbox_rx.get(worker)?.try_recv().ok()
    }

    /// Asks `worker` to move all its connections to the others.
    pub fn request_drain(&self, worker: usize) -> bool {
        if worker >= self.workers || self.workers < 2 {
            return false;
        }
        // Someone must be left to take the connections.
        if !(0..self.workers).any(|w| w != worker && !self.is_draining(w)) {
            return false;
        }
        self.drain[worker].store(true, Ordering::Release);
        true
    }

    pub fn undrain(&self, worker: usize) {
        if let Some(d) = self.drain.get(worker) {
            d.store(false, Ordering::Release);
        }
    }

    pub fn is_draining(&self, worker: usize) -> bool {
        self.drain.get(worker).map(|d| d.load(Ordering::Acquire)).unwrap_or(false)
    }
}

/// The identity of a connection record: the client flow's 4-tuple and
/// both its initial sequence numbers.
pub fn conn_identity(o: &Owner) -> [u8; 20] {
    let f = &o.client_flow;
    let mut id = [0u8; 20];
    id[0..4].copy_from_slice(&f.local.addr.octets_v4());
    id[4..6].copy_from_slice(&f.local.port.to_be_bytes());
    id[6..10].copy_from_slice(&f.remote.addr.octets_v4());
    id[10..12].copy_from_slice(&f.remote.port.to_be_bytes());
    id[12..16].copy_from_slice(&o.isns.0.to_be_bytes());
    id[16..20].copy_from_slice(&o.isns.1.to_be_bytes());
    id
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::time::Instant;

    fn fabric(workers: usize) -> Fabric {
        let t = heap_table(4, 256, [1; 32]).unwrap();
        let k = heap_table(4, 256, [2; 32]).unwrap();
        Fabric::new(workers, 16, t, k, KeyRing::new(1, &[3; 32], Instant::ZERO), 1, 1)
    }

    /// Session-table slots are fixed-size: a parked handshake took one of
    /// the few large slots (README "Limits"). Records that fit go to the
    /// small table, bigger ones and overflow to the large one, and a take
    /// finds each exactly once wherever it went.
    #[test]
    fn small_records_go_to_small_slots_and_every_record_is_taken_once() {
        let large = heap_table(2, 4096, [1; 32]).unwrap();
        let k = heap_table(4, 256, [2; 32]).unwrap();
        let small = heap_table(4, 512, [4; 32]).unwrap();
        let f = Fabric::new(2, 16, large, k, KeyRing::new(1, &[3; 32], Instant::ZERO), 1, 1).with_small_table(small);
        let (now, exp) = (Instant::from_millis(1), Instant::from_millis(10_000));
        let mut placed = Vec::new();
        // 4 small records fill the small table; the 5th small one and a
        // big one take the two large slots; then both tables are full.
        for i in 0..6u8 {
            let len = if i == 4 { 3000 } else { 100 };
            let rec = vec![i; len];
            let id = [i; 20];
            placed.push((id, rec.clone(), f.put_conn(&id, &rec, exp, now).unwrap()));
        }
        let smalls = placed.iter().filter(|p| p.2).count();
        assert_eq!(smalls, 4, "the small table holds four");
        assert!(!placed[4].2, "a 3000 B record cannot go to a 512 B slot");
        assert!(matches!(f.put_conn(&[9; 20], &[9; 100], exp, now), Err(PutError::Full)));
        assert!(matches!(f.put_conn(&[8; 20], &[8; 5000], exp, now), Err(PutError::TooLarge)));
        let mut out = Vec::new();
        for (id, rec, small) in &placed {
            // A wrong hint still finds it (in the other table).
            assert!(f.take_conn(id, !small, now, &mut out), "record {} lost", id[0]);
            assert_eq!(&out, rec);
            assert!(!f.take_conn(id, *small, now, &mut out), "record {} taken twice", id[0]);
        }
    }

    /// Regression: draining the last worker that was not draining returned
    /// "ok" and moved nothing.
    #[test]
    fn the_last_worker_not_draining_cannot_be_drained() {
        let f = fabric(2);
        assert!(f.request_drain(0));
        assert!(!f.request_drain(1), "nobody would be left to take the connections");
        f.undrain(0);
        assert!(f.request_drain(1));
        assert!(!fabric(1).request_drain(0));
        assert!(!f.request_drain(7));
    }

    #[test]
    fn a_new_reta_bumps_the_generation_and_is_acked_per_worker() {
        use crate::net::rss::DEFAULT_KEY;
        let f = fabric(2);
        assert_eq!(f.reta_generation(), 0);
        assert!(f.reta().is_none());
        assert!(f.reta_acked(0));
        let r = Reta::round_robin(&DEFAULT_KEY, 8, 2).unwrap();
        let g = f.set_reta(r.clone());
        assert_eq!(g, 1);
        assert_eq!(f.reta_generation(), 1);
        assert_eq!(f.reta().as_deref(), Some(&r));
        assert!(!f.reta_acked(1));
        f.ack_reta(0, 1);
        assert!(!f.reta_acked(1), "worker 1 has not moved its connections yet");
        f.ack_reta(1, 1);
        assert!(f.reta_acked(1));
        let g2 = f.set_reta(r.with_table(vec![1; 8]).unwrap());
        assert_eq!(g2, 2);
        f.ack_reta(1, 1); // a late ack never goes backwards
        assert_eq!(f.reta_seen(1), 1);
        assert!(!f.reta_acked(2));
        assert_eq!(f.reta().unwrap().table(), &[1; 8]);
    }
}
