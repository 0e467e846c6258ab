//! Take-and-purge across hosts through the fleet repository (issue 4;
//! DESIGN.md, "The invariant", "Data flow").
//!
//! What the workers of one host share for the fleet: the repository's
//! request queue, the fleet key ring (sealing: per-sealer subkeys and
//! counter nonces under the fleet key), the host's identity and the host
//! drain flag. A worker never waits for the repository: it submits a
//! [`Request`] (a bounded queue; full means "not now") and collects the
//! [`Reply`] on a later poll. The repository is served by its own threads
//! (the slow path), never by a worker.
//!
//! One authoritative copy: in fleet mode tickets live only in the
//! repository (no local copy that could be taken twice); a take is final
//! only when Redis's GETDEL returned the value. Connection records are
//! keyed by the flow's 4-tuple (a host that sees a mid-stream segment
//! knows no ISNs); the record's AAD covers that identity, its expiry is
//! short (seconds), and a take removes it, so a reused 4-tuple cannot
//! pick up a stale record after the record's expiry.
//!
//! Time: repository records carry wall-clock expiries (hosts do not share
//! a monotonic clock). Each host's `now` is its own monotonic clock; the
//! runtime gives [`Fleet`] the offset from it to Unix time.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::RwLock;

use zeroize::Zeroizing;

use crate::net::FlowId;
use crate::session::repository::{Op, RecordKind, Reply, Request};
use crate::session::seal::{sealed_expiry, KeyRing, Opener, Sealer};
use crate::time::{Duration, Instant};
use crate::tls::TicketStore;

use super::handoff::KIND_SESSION;

/// Where requests go: the repository's service queue (or, in tests, an
/// in-memory repository that answers at once).
pub trait RepositorySink: Send + Sync {
    /// Queues `req`; gives it back when the queue is full or stopped.
    fn submit(&self, req: Request) -> Result<(), Request>;
    /// Whether the repository answered its last operation (false while
    /// Redis is down or refused our credentials).
    fn is_up(&self) -> bool {
        true
    }
    /// Prometheus text about the repository (its client's counters).
    fn metrics(&self) -> String {
        String::new()
    }
}

/// The Redis repository service as the workers' sink.
pub struct RedisSink {
    pub handle: crate::session::repository::RepositoryHandle,
    pub stats: std::sync::Arc<crate::session::repository::RepositoryStats>,
}

impl RepositorySink for RedisSink {
    fn submit(&self, req: Request) -> Result<(), Request> {
        self.handle.submit(req)
    }
    fn is_up(&self) -> bool {
        self.stats.up.load(Ordering::Relaxed)
    }
    fn metrics(&self) -> String {
        let mut s = String::new();
        self.stats.snapshot().write_prometheus(&mut s);
        s
    }
}

/// Fleet settings the workers use.
#[derive(Clone, Copy, Debug)]
pub struct FleetParams {
    /// How long an exported connection waits in the repository.
    pub conn_ttl: Duration,
    /// Most repository look-ups of unknown flows per second per worker
    /// (random segments must not become a flood of Redis requests).
    pub lookups_per_s: u32,
    /// After a look-up found nothing, the same flow is not looked up
    /// again for this long.
    pub negative_ttl: Duration,
}

impl Default for FleetParams {
    fn default() -> Self {
        FleetParams { conn_ttl: Duration::from_secs(10), lookups_per_s: 2000, negative_ttl: Duration::from_millis(50) }
    }
}

/// What the workers of one host share for the fleet.
pub struct Fleet {
    repo: Box<dyn RepositorySink>,
    keys: RwLock<KeyRing>,
    key_id: AtomicU32,
    /// Host id and boot id: with the worker id they name a sealer
    /// fleet-wide (its subkey; its counter is the nonce).
    pub host: u32,
    pub boot: u64,
    pub params: FleetParams,
    /// Unix time minus this host's monotonic clock, in µs.
    wall_offset_us: AtomicI64,
    draining: AtomicBool,
}

impl Fleet {
    pub fn new(repo: Box<dyn RepositorySink>, keys: KeyRing, host: u32, boot: u64, params: FleetParams) -> Fleet {
        Fleet {
            repo,
            key_id: AtomicU32::new(keys.current_id()),
            keys: RwLock::new(keys),
            host,
            boot,
            params,
            wall_offset_us: AtomicI64::new(0),
            draining: AtomicBool::new(false),
        }
    }

    pub fn submit(&self, req: Request) -> Result<(), Request> {
        self.repo.submit(req)
    }

    pub fn is_up(&self) -> bool {
        self.repo.is_up()
    }

    pub fn metrics(&self) -> String {
        self.repo.metrics()
    }

    pub fn keys(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn key_id(&self) -> u32 {
        self.key_id.load(Ordering::Acquire)
    }

    /// Installs a new current fleet key (the previous one stays readable).
    pub fn rotate(&self, key_id: u32, key: &[u8; 32], now: Instant) -> Result<(), crate::session::seal::SealError> {
        let mut ring = self.keys.write().unwrap_or_else(|e| e.into_inner());
        ring.rotate(key_id, key, now)?;
        self.key_id.store(key_id, Ordering::Release);
        Ok(())
    }

    /// Sets the offset from this host's monotonic clock to Unix time.
    pub fn set_wall_offset(&self, unix_us_minus_mono_us: i64) {
        self.wall_offset_us.store(unix_us_minus_mono_us, Ordering::Relaxed);
    }

    /// `now` (monotonic) as wall-clock µs, for repository expiries.
    pub fn wall(&self, now: Instant) -> Instant {
        let off = self.wall_offset_us.load(Ordering::Relaxed);
        Instant::from_micros((now.micros() as i64).saturating_add(off).max(0) as u64)
    }

    /// Host drain: every worker exports all its connections into the
    /// repository, and takes none from it, until undrained.
    pub fn set_draining(&self, on: bool) {
        self.draining.store(on, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// The repository identity of a flow: local address and port, remote
/// address and port, as this host sees the flow (12 bytes).
pub fn flow_identity(f: &FlowId) -> [u8; 12] {
    let mut id = [0u8; 12];
    id[0..4].copy_from_slice(&f.local.addr.octets_v4());
    id[4..6].copy_from_slice(&f.local.port.to_be_bytes());
    id[6..10].copy_from_slice(&f.remote.addr.octets_v4());
    id[10..12].copy_from_slice(&f.remote.port.to_be_bytes());
    id
}

/// Sessions fetched from the repository whose ClientHello is being
/// handled: ticket id → the record's wall-clock expiry (a put-back keeps
/// it; a session's life is never extended).
pub type FetchedExpiry = hashbrown::HashMap<Vec<u8>, Instant>;

/// The [`TicketStore`] of a worker in fleet mode: tickets go to the
/// repository only (its copy is the one authoritative copy); a ticket is
/// never in a local table, so every take is the repository's GETDEL,
/// through a [`crate::tls::CryptoJob::session_fetch`] job.
pub struct FleetTickets<'a> {
    pub fleet: &'a Fleet,
    pub sealer: &'a mut Sealer,
    /// Wall-clock now.
    pub wall: Instant,
    pub fetched: &'a mut FetchedExpiry,
    /// Tickets queued for the repository, and refused by a full queue
    /// (the worker adds them to its stats).
    pub put: u64,
    pub not_put: u64,
}

impl FleetTickets<'_> {
    fn put_sealed(&mut self, ticket_id: &[u8], session: &[u8], expiry: Instant) -> bool {
        let ttl = expiry.saturating_since(self.wall);
        if ttl == Duration::ZERO {
            return false;
        }
        let sealed = match self.sealer.seal(KIND_SESSION, ticket_id, expiry, session) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("cannot seal a session for the repository: {e}");
                return false;
            }
        };
        let req = Request {
            tag: 0,
            op: Op::Put { kind: RecordKind::Session, id: ticket_id.to_vec(), value: sealed, ttl: std::time::Duration::from_micros(ttl.micros()) },
            reply: None,
        };
        match self.fleet.submit(req) {
            Ok(()) => {
                self.put += 1;
                true
            }
            Err(_) => {
                self.not_put += 1;
                false
            }
        }
    }
}

impl TicketStore for FleetTickets<'_> {
    fn put(&mut self, ticket_id: &[u8], session: &[u8], lifetime_s: u32) -> bool {
        let expiry = self.wall + Duration::from_secs(u64::from(lifetime_s));
        self.put_sealed(ticket_id, session, expiry)
    }

    fn take(&mut self, _ticket_id: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        // Never a local copy: the repository is asked (`remote`).
        None
    }

    fn put_back(&mut self, ticket_id: &[u8], session: &[u8]) -> bool {
        // A session fetched for a ClientHello that could not use it goes
        // back with its original expiry, sealed afresh.
        let Some(expiry) = self.fetched.remove(ticket_id) else { return false };
        self.put_sealed(ticket_id, session, expiry)
    }

    fn remote(&self) -> bool {
        true
    }

    /// Wall-clock Unix µs, like the repository's expiries: a ticket
    /// issued on another host (another monotonic epoch) is judged by the
    /// same clock, up to the hosts' NTP offset (RFC 8446 §8.3).
    fn clock(&self) -> Option<Instant> {
        Some(self.wall)
    }
}

/// Opens a sealed session record from the repository and notes its
/// expiry for a put-back. None if it does not open (forged, expired,
/// sealed under a retired key).
pub fn open_fetched(fleet: &Fleet, ticket_id: &[u8], sealed: &[u8], wall: Instant, fetched: &mut FetchedExpiry) -> Option<Zeroizing<Vec<u8>>> {
    match Opener::new(&fleet.keys()).open(KIND_SESSION, ticket_id, wall, sealed) {
        Ok(plain) => {
            if let Some(e) = sealed_expiry(sealed) {
                fetched.insert(ticket_id.to_vec(), e);
            }
            Some(plain)
        }
        Err(e) => {
            log::debug!("cannot open a session record from the repository: {e}");
            None
        }
    }
}

/// What a worker waits for from the repository, by request tag.
pub enum Pending {
    /// A ticket for the connection with this tag (its ClientHello waits).
    Session { conn_tag: u64, id: Vec<u8> },
    /// An exported connection, until Redis confirms it stored the record
    /// (a put that certainly did not run comes back as `NotStored` with
    /// the sealed record, so no copy is kept here).
    Export { id: [u8; 12] },
    /// An unknown flow's connection record; frames are held under `held`.
    /// `via_alias`: `held` is a backend flow whose alias (taken) named `id`.
    ConnTake { id: [u8; 12], held: FlowId, via_alias: bool },
    /// An unknown backend flow: its alias names the connection record.
    AliasTake { held: FlowId },
}

/// Replies come back on a worker's own channel.
pub type ReplyRx = crossbeam_channel::Receiver<Reply>;

/// An in-memory repository that answers every request at once, for the
/// deterministic multi-host simulations (the real one is Redis, through
/// `session::repository`). Clones share one store. Expiry is not
/// modelled (the simulations run for simulated seconds).
#[derive(Clone, Default)]
pub struct MemRepository {
    inner: std::sync::Arc<std::sync::Mutex<MemRepoInner>>,
}

#[derive(Default)]
struct MemRepoInner {
    map: hashbrown::HashMap<(u8, Vec<u8>), Vec<u8>>,
    down: bool,
    refused: Vec<RecordKind>,
    ops: u64,
}

fn kind_byte(k: RecordKind) -> u8 {
    match k {
        RecordKind::Session => b't',
        RecordKind::Conn => b'c',
        RecordKind::ConnAlias => b'a',
    }
}

impl MemRepository {
    /// Answers every request Unavailable while `down`.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }
    /// Answers Refused for records of `kind` (an ACL that forbids them).
    pub fn refuse(&self, kind: RecordKind) {
        self.lock().refused.push(kind);
    }
    /// Records of `kind` held.
    pub fn count(&self, kind: RecordKind) -> usize {
        let k = kind_byte(kind);
        self.lock().map.keys().filter(|(x, _)| *x == k).count()
    }
    /// Writes a value directly (what someone with write access to Redis
    /// could do), for tests of forged and moved records.
    pub fn put_raw(&self, kind: RecordKind, id: &[u8], value: &[u8]) {
        self.lock().map.insert((kind_byte(kind), id.to_vec()), value.to_vec());
    }
    /// Every (kind, id, value) held.
    pub fn entries(&self) -> Vec<(RecordKind, Vec<u8>, Vec<u8>)> {
        let kind = |b: u8| match b {
            b't' => RecordKind::Session,
            b'c' => RecordKind::Conn,
            _ => RecordKind::ConnAlias,
        };
        self.lock().map.iter().map(|((k, id), v)| (kind(*k), id.clone(), v.clone())).collect()
    }
    /// Every value held (for scans of what the repository could leak).
    pub fn values(&self) -> Vec<Vec<u8>> {
        self.lock().map.values().cloned().collect()
    }
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, MemRepoInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RepositorySink for MemRepository {
    fn submit(&self, req: Request) -> Result<(), Request> {
        use crate::session::repository::Outcome;
        let outcome = {
            let mut m = self.lock();
            m.ops += 1;
            let kind = match &req.op {
                Op::Take { kind, .. } | Op::Put { kind, .. } | Op::Del { kind, .. } => *kind,
            };
            if m.down {
                // As the real service with its circuit open: a put that was
                // never sent comes back; anything else is Unavailable.
                match &req.op {
                    Op::Put { value, .. } => Outcome::NotStored(value.clone()),
                    _ => Outcome::Unavailable,
                }
            } else if m.refused.contains(&kind) {
                // As the real service: a refused put comes back.
                match &req.op {
                    Op::Put { value, .. } => Outcome::NotStored(value.clone()),
                    _ => Outcome::Refused,
                }
            } else {
                match &req.op {
                    Op::Take { kind, id } => match m.map.remove(&(kind_byte(*kind), id.clone())) {
                        Some(v) => Outcome::Taken(v),
                        None => Outcome::Missing,
                    },
                    Op::Put { kind, id, value, .. } => {
                        m.map.insert((kind_byte(*kind), id.clone()), value.clone());
                        Outcome::Stored
                    }
                    Op::Del { kind, id } => {
                        m.map.remove(&(kind_byte(*kind), id.clone()));
                        Outcome::Stored
                    }
                }
            }
        };
        if let Some(tx) = &req.reply {
            let _ = tx.send(Reply { tag: req.tag, outcome, latency: std::time::Duration::ZERO });
        }
        Ok(())
    }

    fn is_up(&self) -> bool {
        !self.lock().down
    }
}
