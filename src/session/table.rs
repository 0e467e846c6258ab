//! The shared session table: fixed slots, fixed maximum record size, one
//! contiguous arena of `AtomicU64`, lock-free on every path (issue 3 §1,
//! DESIGN.md "The invariant": every handoff is a *take*).
//!
//! # Layout
//! The arena is `slots * (INDEX_WORDS + record_words)` words: first an index
//! of `INDEX_WORDS` (8) words per slot — one 64-byte cache line when the
//! arena is 64-byte aligned — then the record words of every slot.
//!
//! | index word | meaning |
//! |---|---|
//! | 0 | state word: `generation << 3 | state` |
//! | 1..=4 | identity digest (HMAC-SHA-256 of kind ‖ identity, 4 × u64) |
//! | 5 | expiry, µs (`time::Instant`) |
//! | 6 | record length in bytes |
//! | 7 | unused |
//!
//! # Slot life
//! `FREE → WRITING → PENDING → READY → TAKEN → FREE`. Every transition is a
//! CAS or a store by the slot's current owner and bumps the generation, so a
//! thread holding a stale state word can never act on a reused slot (no ABA:
//! 61 bits of generation do not wrap). `WRITING` and `TAKEN` are owned by one
//! thread (the one whose CAS made them); nobody else reads the record words
//! then. `PENDING` publishes the identity (so a racing put of the same
//! identity can see it) while the record is still being written; takers
//! ignore it.
//!
//! Bytes another thread may race on (state, identity, expiry) are read through
//! atomics and validated by the state word — never a seqlock over plain
//! memory. Record bytes are only written by the slot's writer and read by the
//! taker that won the `READY → TAKEN` CAS, ordered by Release/Acquire on the
//! state word.
//!
//! # Duplicates
//! A put of an identity that is already present (`PENDING` or unexpired
//! `READY` within its probe window) fails with [`PutError::Exists`]: take
//! must return at most one record per identity. Two puts of one identity
//! that race may *both* fail with `Exists` (each saw the other); they can
//! never both succeed (publish, `fence(SeqCst)`, scan — Dekker's argument).
//!
//! # Probing
//! Open addressing: an identity lives in one of `probe` consecutive slots
//! starting at its home slot. Take and the duplicate check scan the whole
//! window (no tombstones are needed, a freed slot is just free); a put
//! claims the first free or expired slot in it. A full window refuses the
//! put and counts it ([`Stats::full`]).

use super::sync::{fence, AtomicU64, Ordering};
use crate::time::Instant;
use std::sync::atomic::AtomicU64 as StatCounter;
use std::sync::Arc;

/// Words of index per slot.
pub const INDEX_WORDS: usize = 8;
/// Largest record a table may be configured for (bytes).
pub const MAX_RECORD_LIMIT: usize = 1 << 20;

const ST_FREE: u64 = 0;
const ST_WRITING: u64 = 1;
const ST_PENDING: u64 = 2;
const ST_READY: u64 = 3;
const ST_TAKEN: u64 = 4;
const ST_MASK: u64 = 7;

const W_STATE: usize = 0;
const W_IDENT: usize = 1;
const W_EXPIRY: usize = 5;
const W_LEN: usize = 6;

fn state_of(word: u64) -> u64 {
    word & ST_MASK
}

/// The state word that follows `word` when moving to `st`.
fn next(word: u64, st: u64) -> u64 {
    ((word >> 3).wrapping_add(1) << 3) | st
}

/// Memory the table lives in: a slice of `AtomicU64` that outlives the table
/// and that nothing else accesses (but other `SessionTable` views are not
/// supported either: one table per arena).
///
/// Requirements for an arena over foreign memory (e.g. a DPDK memzone, which
/// the `dpdk` module views as `&'static [AtomicU64]`):
/// - 8-byte alignment (required by `AtomicU64`); 64-byte alignment keeps
///   each slot's index entry in one cache line;
/// - at least [`SessionTable::words_needed`] words;
/// - contents need not be zero: [`SessionTable::from_words`] clears it
///   (all-zero words mean "every slot free, generation 0");
/// - the memory is only ever accessed through these atomics.
pub trait Arena: Send + Sync {
    fn words(&self) -> &[AtomicU64];
}

/// A heap arena (tests, `--no-huge`, and every table under `cfg(loom)`).
pub struct HeapArena(Box<[AtomicU64]>);

impl HeapArena {
    /// `words` zeroed words.
    pub fn new(words: usize) -> Self {
        HeapArena((0..words).map(|_| AtomicU64::new(0)).collect())
    }
}

impl Arena for HeapArena {
    fn words(&self) -> &[AtomicU64] {
        &self.0
    }
}

impl Arena for &'static [AtomicU64] {
    fn words(&self) -> &[AtomicU64] {
        self
    }
}

impl Arena for Box<[AtomicU64]> {
    fn words(&self) -> &[AtomicU64] {
        self
    }
}

impl Arena for Arc<[AtomicU64]> {
    fn words(&self) -> &[AtomicU64] {
        self
    }
}

/// Table geometry and the identity hash key.
#[derive(Clone)]
pub struct TableConfig {
    /// Number of slots (≥ 1).
    pub slots: usize,
    /// Largest record in bytes (≤ [`MAX_RECORD_LIMIT`]); records are sealed,
    /// so this includes the seal overhead.
    pub max_record: usize,
    /// Probe window: slots an identity may occupy (1..=slots; clamped).
    pub probe: usize,
    /// Key of the identity hash (HMAC-SHA-256), so a peer cannot choose
    /// identities that crowd one probe window. Random per process.
    pub hash_key: [u8; 32],
}

impl core::fmt::Debug for TableConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TableConfig")
            .field("slots", &self.slots)
            .field("max_record", &self.max_record)
            .field("probe", &self.probe)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("session table needs at least one slot")]
    NoSlots,
    #[error("session table record size {0} exceeds the limit")]
    RecordTooLarge(usize),
    #[error("session table arena has {have} words, needs {need}")]
    ArenaTooSmall { have: usize, need: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PutError {
    /// No free or expired slot in the identity's probe window (counted).
    #[error("session table full")]
    Full,
    /// Record longer than the table's `max_record` (counted).
    #[error("record larger than the table's maximum")]
    TooLarge,
    /// The identity is already in the table (or being put concurrently).
    #[error("identity already present")]
    Exists,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TakeError {
    /// The slot claimed a length above the table's maximum (foreign memory
    /// was corrupted); the slot was freed and nothing returned.
    #[error("corrupt session table slot (length {0})")]
    Corrupt(u64),
}

/// Counters, read with [`SessionTable::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub puts: u64,
    pub takes: u64,
    pub misses: u64,
    pub full: u64,
    pub expired: u64,
    pub exists: u64,
    pub too_large: u64,
    pub evicted: u64,
}

#[derive(Default)]
struct Counters {
    puts: StatCounter,
    takes: StatCounter,
    misses: StatCounter,
    full: StatCounter,
    expired: StatCounter,
    exists: StatCounter,
    too_large: StatCounter,
    evicted: StatCounter,
}

fn bump(c: &StatCounter) {
    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn read(c: &StatCounter) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

type Digest = [u64; 4];

/// The shared session table. `Sync`: share it by reference or `Arc`.
pub struct SessionTable<A: Arena = HeapArena> {
    arena: A,
    slots: usize,
    record_words: usize,
    max_record: usize,
    probe: usize,
    hash: ring::hmac::Key,
    counters: Counters,
}

impl SessionTable<HeapArena> {
    /// A table in a fresh heap arena.
    pub fn new(cfg: &TableConfig) -> Result<Self, ConfigError> {
        let need = Self::words_needed(cfg.slots, cfg.max_record)?;
        Self::from_words(HeapArena::new(need), cfg)
    }
}

impl<A: Arena> SessionTable<A> {
    /// Words an arena must have for `slots` slots of `max_record` bytes.
    pub fn words_needed(slots: usize, max_record: usize) -> Result<usize, ConfigError> {
        if slots == 0 {
            return Err(ConfigError::NoSlots);
        }
        if max_record > MAX_RECORD_LIMIT {
            return Err(ConfigError::RecordTooLarge(max_record));
        }
        let per_slot = INDEX_WORDS + max_record.div_ceil(8);
        slots
            .checked_mul(per_slot)
            .ok_or(ConfigError::ArenaTooSmall {
                have: 0,
                need: usize::MAX,
            })
    }

    /// A table over `arena` (see [`Arena`] for what it must be). Clears the
    /// arena's first `words_needed` words: the table starts empty.
    pub fn from_words(arena: A, cfg: &TableConfig) -> Result<Self, ConfigError> {
        let need = Self::words_needed(cfg.slots, cfg.max_record)?;
        let have = arena.words().len();
        if have < need {
            return Err(ConfigError::ArenaTooSmall { have, need });
        }
        for w in &arena.words()[..need] {
            w.store(0, Ordering::Relaxed);
        }
        // Publish the cleared arena to whoever receives the table.
        fence(Ordering::Release);
        Ok(SessionTable {
            arena,
            slots: cfg.slots,
            record_words: cfg.max_record.div_ceil(8),
            max_record: cfg.max_record,
            probe: cfg.probe.clamp(1, cfg.slots),
            hash: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &cfg.hash_key),
            counters: Counters::default(),
        })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    pub fn max_record(&self) -> usize {
        self.max_record
    }

    fn digest(&self, kind: u8, identity: &[u8]) -> Digest {
        let mut ctx = ring::hmac::Context::with_key(&self.hash);
        ctx.update(&[kind]);
        ctx.update(identity);
        let tag = ctx.sign();
        let b = tag.as_ref();
        let mut d = [0u64; 4];
        for (i, w) in d.iter_mut().enumerate() {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i * 8..i * 8 + 8]);
            *w = u64::from_le_bytes(x);
        }
        d
    }

    fn home(&self, d: &Digest) -> usize {
        ((d[0] as u128 * self.slots as u128) >> 64) as usize
    }

    fn window(&self, d: &Digest) -> impl Iterator<Item = usize> {
        let home = self.home(d);
        let n = self.slots;
        (0..self.probe).map(move |i| (home + i) % n)
    }

    fn index(&self, slot: usize) -> &[AtomicU64] {
        let w = self.arena.words();
        &w[slot * INDEX_WORDS..(slot + 1) * INDEX_WORDS]
    }

    fn record(&self, slot: usize) -> &[AtomicU64] {
        let base = self.slots * INDEX_WORDS + slot * self.record_words;
        &self.arena.words()[base..base + self.record_words]
    }

    fn load_ident(ix: &[AtomicU64]) -> Digest {
        let mut d = [0u64; 4];
        for (i, w) in d.iter_mut().enumerate() {
            *w = ix[W_IDENT + i].load(Ordering::Acquire);
        }
        d
    }

    /// Is the record whose state word was `s` (READY) expired at `now`?
    /// The expiry read is only meaningful if a CAS on `s` succeeds after it.
    fn expired(ix: &[AtomicU64], now: Instant) -> bool {
        ix[W_EXPIRY].load(Ordering::Acquire) <= now.micros()
    }

    /// Put `record` under (`kind`, `identity`) until `expiry`. Fails with
    /// `Exists` if the identity is present, `Full` if its probe window has
    /// no free or expired slot, `TooLarge` past `max_record`. Expired
    /// records met on the way are reclaimed.
    pub fn put(
        &self,
        kind: u8,
        identity: &[u8],
        record: &[u8],
        expiry: Instant,
        now: Instant,
    ) -> Result<(), PutError> {
        self.put_inner(kind, identity, record, expiry, now, false)
    }

    /// Like [`put`](Self::put), but when the probe window is full the
    /// unexpired record that expires soonest is evicted to make room. For
    /// caches such as session tickets, where losing a record only costs a
    /// full handshake; never for live connections. Eviction is the same
    /// READY → WRITING transition as reclaiming an expired record, so a
    /// racing taker either gets the record whole or finds it gone.
    pub fn put_evicting(
        &self,
        kind: u8,
        identity: &[u8],
        record: &[u8],
        expiry: Instant,
        now: Instant,
    ) -> Result<(), PutError> {
        self.put_inner(kind, identity, record, expiry, now, true)
    }

    fn put_inner(
        &self,
        kind: u8,
        identity: &[u8],
        record: &[u8],
        expiry: Instant,
        now: Instant,
        evict: bool,
    ) -> Result<(), PutError> {
        if record.len() > self.max_record {
            bump(&self.counters.too_large);
            return Err(PutError::TooLarge);
        }
        let d = self.digest(kind, identity);

        // 1. Claim a free (or expired) slot: it becomes WRITING, ours alone.
        let mut claimed = None;
        for slot in self.window(&d) {
            let ix = self.index(slot);
            let s = ix[W_STATE].load(Ordering::Acquire);
            let reclaim = match state_of(s) {
                ST_FREE => false,
                ST_READY if Self::expired(ix, now) => true,
                _ => continue,
            };
            let w = next(s, ST_WRITING);
            if ix[W_STATE]
                .compare_exchange(s, w, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                if reclaim {
                    bump(&self.counters.expired);
                }
                claimed = Some((slot, w));
                break;
            }
        }
        if claimed.is_none() && evict {
            // The window is full of live records: evict the one that
            // expires soonest (retrying if a racer moves it first).
            for _ in 0..self.probe {
                let mut best: Option<(usize, u64, u64)> = None;
                for slot in self.window(&d) {
                    let ix = self.index(slot);
                    let s = ix[W_STATE].load(Ordering::Acquire);
                    if state_of(s) != ST_READY {
                        continue;
                    }
                    let e = ix[W_EXPIRY].load(Ordering::Acquire);
                    if best.map(|(_, _, be)| e < be).unwrap_or(true) {
                        best = Some((slot, s, e));
                    }
                }
                let Some((slot, s, _)) = best else { break };
                let w = next(s, ST_WRITING);
                if self.index(slot)[W_STATE].compare_exchange(s, w, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    bump(&self.counters.evicted);
                    claimed = Some((slot, w));
                    break;
                }
            }
        }
        let Some((slot, w)) = claimed else {
            bump(&self.counters.full);
            return Err(PutError::Full);
        };
        let ix = self.index(slot);

        // 2. Publish the identity (PENDING), then look for another slot with
        // the same identity. The SeqCst fence between our publish and our
        // scan makes two racing puts see at least one of each other.
        for (i, v) in d.iter().enumerate() {
            ix[W_IDENT + i].store(*v, Ordering::Release);
        }
        let p = next(w, ST_PENDING);
        ix[W_STATE].store(p, Ordering::Release);
        fence(Ordering::SeqCst);
        for other in self.window(&d) {
            if other != slot && self.holds(other, &d, now) {
                ix[W_STATE].store(next(p, ST_FREE), Ordering::Release);
                bump(&self.counters.exists);
                return Err(PutError::Exists);
            }
        }

        // 3. Write the record and make it READY.
        ix[W_EXPIRY].store(expiry.micros(), Ordering::Release);
        ix[W_LEN].store(record.len() as u64, Ordering::Relaxed);
        let rec = self.record(slot);
        for (i, chunk) in record.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            rec[i].store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        ix[W_STATE].store(next(p, ST_READY), Ordering::Release);
        bump(&self.counters.puts);
        Ok(())
    }

    /// Does `slot` hold identity `d` (PENDING, or READY and unexpired)? An
    /// expired READY holder is reclaimed on the way.
    fn holds(&self, slot: usize, d: &Digest, now: Instant) -> bool {
        let ix = self.index(slot);
        loop {
            let s = ix[W_STATE].load(Ordering::Acquire);
            let st = state_of(s);
            if st != ST_PENDING && st != ST_READY {
                return false;
            }
            let id = Self::load_ident(ix);
            // A changed state word means the identity read may be torn or
            // stale; another thread moved the slot on, so look again.
            if ix[W_STATE].load(Ordering::Acquire) != s {
                continue;
            }
            if id != *d {
                return false;
            }
            if st == ST_READY && Self::expired(ix, now) {
                if ix[W_STATE]
                    .compare_exchange(s, next(s, ST_FREE), Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    bump(&self.counters.expired);
                    return false;
                }
                continue;
            }
            return true;
        }
    }

    /// Take the record under (`kind`, `identity`): on `Ok(true)` it is in
    /// `out` (replacing its contents) and gone from the table, so no other
    /// taker can ever get it. Of racing takers exactly one gets it. An
    /// expired record is never returned; its slot is reclaimed.
    pub fn take(
        &self,
        kind: u8,
        identity: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<bool, TakeError> {
        let d = self.digest(kind, identity);
        for slot in self.window(&d) {
            let ix = self.index(slot);
            loop {
                let s = ix[W_STATE].load(Ordering::Acquire);
                if state_of(s) != ST_READY || Self::load_ident(ix) != d {
                    break;
                }
                let t = next(s, ST_TAKEN);
                if ix[W_STATE]
                    .compare_exchange(s, t, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    continue; // moved on: look again (probably TAKEN by a rival)
                }
                // The slot is ours until we free it.
                let result = self.read_taken(ix, slot, now, out);
                ix[W_STATE].store(next(t, ST_FREE), Ordering::Release);
                return result;
            }
        }
        bump(&self.counters.misses);
        Ok(false)
    }

    fn read_taken(
        &self,
        ix: &[AtomicU64],
        slot: usize,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<bool, TakeError> {
        if Self::expired(ix, now) {
            bump(&self.counters.expired);
            return Ok(false);
        }
        let len = ix[W_LEN].load(Ordering::Relaxed);
        if len > self.max_record as u64 {
            return Err(TakeError::Corrupt(len));
        }
        let len = len as usize;
        out.clear();
        out.reserve(len);
        for w in &self.record(slot)[..len.div_ceil(8)] {
            out.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        out.truncate(len);
        bump(&self.counters.takes);
        Ok(true)
    }

    /// Reclaim every expired slot; returns how many.
    pub fn sweep(&self, now: Instant) -> usize {
        self.sweep_part(now, 0, self.slots)
    }

    /// Reclaim expired slots among `count` slots from `first` (wrapping), so
    /// a caller can spread a sweep over many polls; returns how many.
    pub fn sweep_part(&self, now: Instant, first: usize, count: usize) -> usize {
        let mut n = 0;
        for i in 0..count.min(self.slots) {
            let ix = self.index((first + i) % self.slots);
            let s = ix[W_STATE].load(Ordering::Acquire);
            if state_of(s) == ST_READY
                && Self::expired(ix, now)
                && ix[W_STATE]
                    .compare_exchange(s, next(s, ST_FREE), Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                bump(&self.counters.expired);
                n += 1;
            }
        }
        n
    }

    /// Slots holding a READY record (expired or not); a racy snapshot.
    pub fn occupied(&self) -> usize {
        (0..self.slots)
            .filter(|&s| state_of(self.index(s)[W_STATE].load(Ordering::Acquire)) == ST_READY)
            .count()
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            puts: read(&c.puts),
            takes: read(&c.takes),
            misses: read(&c.misses),
            full: read(&c.full),
            expired: read(&c.expired),
            exists: read(&c.exists),
            too_large: read(&c.too_large),
            evicted: read(&c.evicted),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod evict_tests {
    use super::*;

    #[test]
    fn put_evicting_replaces_the_record_that_expires_soonest_when_full() {
        let cfg = TableConfig { slots: 4, max_record: 16, probe: 4, hash_key: [1; 32] };
        let t = SessionTable::new(&cfg).unwrap();
        let now = Instant::from_millis(1);
        for (i, e) in [50u64, 10, 90, 70].iter().enumerate() {
            t.put(1, &[i as u8], b"r", Instant::from_millis(*e + 100), now).unwrap();
        }
        assert_eq!(t.put(1, b"new", b"n", Instant::from_millis(500), now), Err(PutError::Full));
        t.put_evicting(1, b"new", b"n", Instant::from_millis(500), now).unwrap();
        let mut out = Vec::new();
        assert!(!t.take(1, &[1], now, &mut out).unwrap(), "the soonest-expiring record (1) was evicted");
        for i in [0u8, 2, 3] {
            assert!(t.take(1, &[i], now, &mut out).unwrap(), "record {i} kept");
        }
        assert!(t.take(1, b"new", now, &mut out).unwrap());
        assert_eq!(t.stats().evicted, 1);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn cfg(slots: usize, max_record: usize, probe: usize) -> TableConfig {
        TableConfig {
            slots,
            max_record,
            probe,
            hash_key: [7; 32],
        }
    }

    const T0: Instant = Instant(1_000);
    const LATER: Instant = Instant(1_000_000);

    #[test]
    fn put_then_take_returns_record_once() {
        let t = SessionTable::new(&cfg(16, 64, 4)).unwrap();
        t.put(1, b"ticket-a", b"sealed bytes", LATER, T0).unwrap();
        let mut out = vec![0xAA; 3];
        assert_eq!(t.take(1, b"ticket-a", T0, &mut out), Ok(true));
        assert_eq!(out, b"sealed bytes");
        assert_eq!(t.take(1, b"ticket-a", T0, &mut out), Ok(false));
        let s = t.stats();
        assert_eq!((s.puts, s.takes, s.misses), (1, 1, 1));
        assert_eq!(t.occupied(), 0);
    }

    #[test]
    fn record_lengths_round_trip() {
        let t = SessionTable::new(&cfg(64, 40, 8)).unwrap();
        for len in [0usize, 1, 7, 8, 9, 16, 39, 40] {
            let rec: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let id = [len as u8; 5];
            t.put(2, &id, &rec, LATER, T0).unwrap();
            let mut out = Vec::new();
            assert_eq!(t.take(2, &id, T0, &mut out), Ok(true));
            assert_eq!(out, rec, "len {len}");
        }
    }

    #[test]
    fn kind_is_part_of_identity() {
        let t = SessionTable::new(&cfg(16, 8, 4)).unwrap();
        t.put(1, b"x", b"one", LATER, T0).unwrap();
        t.put(2, b"x", b"two", LATER, T0).unwrap();
        let mut out = Vec::new();
        assert_eq!(t.take(3, b"x", T0, &mut out), Ok(false));
        assert_eq!(t.take(2, b"x", T0, &mut out), Ok(true));
        assert_eq!(out, b"two");
        assert_eq!(t.take(1, b"x", T0, &mut out), Ok(true));
        assert_eq!(out, b"one");
    }

    #[test]
    fn put_of_present_identity_is_refused() {
        let t = SessionTable::new(&cfg(16, 8, 4)).unwrap();
        t.put(1, b"id", b"first", LATER, T0).unwrap();
        assert_eq!(t.put(1, b"id", b"second", LATER, T0), Err(PutError::Exists));
        assert_eq!(t.stats().exists, 1);
        let mut out = Vec::new();
        assert_eq!(t.take(1, b"id", T0, &mut out), Ok(true));
        assert_eq!(out, b"first");
        assert_eq!(t.take(1, b"id", T0, &mut out), Ok(false));
        // Once taken, the identity may be put again.
        t.put(1, b"id", b"third", LATER, T0).unwrap();
        assert_eq!(t.take(1, b"id", T0, &mut out), Ok(true));
        assert_eq!(out, b"third");
    }

    #[test]
    fn too_large_record_is_refused() {
        let t = SessionTable::new(&cfg(4, 16, 4)).unwrap();
        assert_eq!(t.put(1, b"a", &[0; 17], LATER, T0), Err(PutError::TooLarge));
        assert_eq!(t.stats().too_large, 1);
        assert_eq!(t.occupied(), 0);
    }

    #[test]
    fn full_table_refuses_cleanly_and_counts() {
        let t = SessionTable::new(&cfg(4, 8, 4)).unwrap();
        for i in 0..4u8 {
            t.put(1, &[i], &[i], LATER, T0).unwrap();
        }
        assert_eq!(t.put(1, b"five", b"5", LATER, T0), Err(PutError::Full));
        assert_eq!(t.stats().full, 1);
        let mut out = Vec::new();
        for i in 0..4u8 {
            assert_eq!(t.take(1, &[i], T0, &mut out), Ok(true));
            assert_eq!(out, [i]);
        }
        t.put(1, b"five", b"5", LATER, T0).unwrap();
    }

    #[test]
    fn expired_record_is_never_returned_and_slot_reclaimed() {
        let t = SessionTable::new(&cfg(4, 8, 4)).unwrap();
        t.put(1, b"old", b"x", Instant(2_000), T0).unwrap();
        let mut out = b"keep".to_vec();
        // Expiry is exclusive: at the expiry instant it is gone.
        assert_eq!(t.take(1, b"old", Instant(2_000), &mut out), Ok(false));
        assert_eq!(out, b"keep");
        assert_eq!(t.stats().expired, 1);
        assert_eq!(t.occupied(), 0);
        // Not returned later either (it was purged, not just hidden).
        assert_eq!(t.take(1, b"old", T0, &mut out), Ok(false));
    }

    #[test]
    fn unexpired_record_is_returned_just_before_expiry() {
        let t = SessionTable::new(&cfg(4, 8, 4)).unwrap();
        t.put(1, b"k", b"v", Instant(2_000), T0).unwrap();
        let mut out = Vec::new();
        assert_eq!(t.take(1, b"k", Instant(1_999), &mut out), Ok(true));
    }

    #[test]
    fn put_reclaims_expired_slots() {
        let t = SessionTable::new(&cfg(2, 8, 2)).unwrap();
        t.put(1, b"a", b"a", Instant(2_000), T0).unwrap();
        t.put(1, b"b", b"b", Instant(2_000), T0).unwrap();
        let now = Instant(5_000);
        t.put(1, b"c", b"c", LATER, now).unwrap();
        t.put(1, b"d", b"d", LATER, now).unwrap();
        assert_eq!(t.stats().expired, 2);
        let mut out = Vec::new();
        assert_eq!(t.take(1, b"a", now, &mut out), Ok(false));
        assert_eq!(t.take(1, b"c", now, &mut out), Ok(true));
        assert_eq!(out, b"c");
    }

    #[test]
    fn put_over_expired_duplicate_succeeds() {
        let t = SessionTable::new(&cfg(8, 8, 8)).unwrap();
        t.put(1, b"a", b"old", Instant(2_000), T0).unwrap();
        t.put(1, b"a", b"new", LATER, Instant(3_000)).unwrap();
        let mut out = Vec::new();
        assert_eq!(t.take(1, b"a", Instant(3_000), &mut out), Ok(true));
        assert_eq!(out, b"new");
        assert_eq!(t.take(1, b"a", Instant(3_000), &mut out), Ok(false));
    }

    #[test]
    fn sweep_reclaims_expired_only() {
        let t = SessionTable::new(&cfg(8, 8, 8)).unwrap();
        t.put(1, b"a", b"a", Instant(2_000), T0).unwrap();
        t.put(1, b"b", b"b", Instant(3_000), T0).unwrap();
        t.put(1, b"c", b"c", LATER, T0).unwrap();
        assert_eq!(t.sweep(Instant(1_500)), 0);
        assert_eq!(t.sweep(Instant(3_000)), 2);
        assert_eq!(t.occupied(), 1);
        assert_eq!(t.stats().expired, 2);
        let mut out = Vec::new();
        assert_eq!(t.take(1, b"c", Instant(3_000), &mut out), Ok(true));
    }

    #[test]
    fn stale_state_word_cannot_act_on_reused_slot() {
        let t = SessionTable::new(&cfg(1, 8, 1)).unwrap();
        t.put(1, b"a", b"a", LATER, T0).unwrap();
        let stale = t.index(0)[W_STATE].load(Ordering::Acquire);
        assert_eq!(state_of(stale), ST_READY);
        let mut out = Vec::new();
        assert_eq!(t.take(1, b"a", T0, &mut out), Ok(true));
        t.put(1, b"b", b"b", LATER, T0).unwrap();
        let now_word = t.index(0)[W_STATE].load(Ordering::Acquire);
        assert_eq!(state_of(now_word), ST_READY);
        assert_ne!(now_word, stale, "same state, new generation");
        assert!(t.index(0)[W_STATE]
            .compare_exchange(
                stale,
                next(stale, ST_TAKEN),
                Ordering::AcqRel,
                Ordering::Relaxed
            )
            .is_err());
    }

    #[test]
    fn from_words_clears_foreign_memory() {
        let need = SessionTable::<&'static [AtomicU64]>::words_needed(4, 16).unwrap();
        assert_eq!(need, 4 * (INDEX_WORDS + 2));
        let words: &'static [AtomicU64] =
            Box::leak((0..need).map(|_| AtomicU64::new(u64::MAX)).collect());
        let t = SessionTable::from_words(words, &cfg(4, 16, 4)).unwrap();
        assert_eq!(t.occupied(), 0);
        t.put(1, b"z", b"zz", LATER, T0).unwrap();
        let mut out = Vec::new();
        assert_eq!(t.take(1, b"z", T0, &mut out), Ok(true));
        assert_eq!(out, b"zz");
    }

    #[test]
    fn bad_geometry_is_refused() {
        assert_eq!(
            SessionTable::new(&cfg(0, 8, 1)).err(),
            Some(ConfigError::NoSlots)
        );
        assert_eq!(
            SessionTable::new(&cfg(1, MAX_RECORD_LIMIT + 1, 1)).err(),
            Some(ConfigError::RecordTooLarge(MAX_RECORD_LIMIT + 1))
        );
        let small: Box<[AtomicU64]> = (0..3).map(|_| AtomicU64::new(0)).collect();
        assert_eq!(
            SessionTable::from_words(small, &cfg(1, 8, 1)).err(),
            Some(ConfigError::ArenaTooSmall { have: 3, need: 9 })
        );
    }

    #[test]
    fn corrupt_length_is_refused_and_slot_freed() {
        let t = SessionTable::new(&cfg(1, 8, 1)).unwrap();
        t.put(1, b"a", b"a", LATER, T0).unwrap();
        t.index(0)[W_LEN].store(1 << 40, Ordering::Relaxed);
        let mut out = Vec::new();
        assert_eq!(
            t.take(1, b"a", T0, &mut out),
            Err(TakeError::Corrupt(1 << 40))
        );
        assert_eq!(t.occupied(), 0);
    }

    #[test]
    fn probe_window_bounds_where_an_identity_can_go() {
        // probe 1: two identities with the same home slot cannot coexist.
        let t = SessionTable::new(&cfg(2, 8, 1)).unwrap();
        let mut homes = [Vec::new(), Vec::new()];
        for i in 0..32u8 {
            homes[t.home(&t.digest(1, &[i]))].push(i);
        }
        let same = &homes[0];
        assert!(same.len() >= 2);
        t.put(1, &[same[0]], b"1", LATER, T0).unwrap();
        assert_eq!(t.put(1, &[same[1]], b"2", LATER, T0), Err(PutError::Full));
    }

    #[test]
    fn table_is_sync() {
        fn assert_sync<T: Sync + Send>() {}
        assert_sync::<SessionTable>();
        assert_sync::<SessionTable<&'static [AtomicU64]>>();
    }
}
