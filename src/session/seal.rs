//! Sealing of records before they enter the session table (DESIGN.md
//! "Sealing"): what sits in shared memory is never a key in clear.
//!
//! A sealed record is AES-256-GCM (ring) under a subkey derived per sealer
//! — HKDF-SHA-256 (RFC 5869) of the master key with the key id and the
//! sealer id (host, boot, worker) as info — with a 96-bit nonce made of the
//! sealer's worker id and its counter (never random: one key, one counter).
//!
//! Format (version 1), all integers big-endian:
//! `version u8 | key id u32 | host u32 | boot u64 | worker u32 | counter u64
//! | expiry µs u64 | ciphertext | tag (16)`.
//! The AAD is that whole header followed by `kind u8 | identity length u32 |
//! identity`, so kind, identity, key id, sealer, counter, expiry and version
//! are all authenticated.
//!
//! Nonce uniqueness rests on: one [`Sealer`] per (key id, sealer id) ever.
//! The boot id must be new at every process start (64 random bits from the
//! entropy source); each worker makes its own sealer after each rotation.
//!
//! Keys rotate ([`KeyRing::rotate`], [`KeyRing::rotate_if_due`]); records
//! under the previous key stay readable, older ones fail with
//! [`SealError::KeyRetired`]. A record must therefore not outlive one
//! rotation interval: keep record lifetimes ≤ the interval.
//!
//! Master keys are held in `Zeroizing` buffers; subkeys exist only inside
//! ring's AEAD key, which never exposes them (ring does not scrub its own
//! key schedules on drop — a limit of the library, noted here).

use crate::entropy::Entropy;
use crate::time::{Duration, Instant};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf;
use zeroize::Zeroizing;

pub const FORMAT_VERSION: u8 = 1;
/// Header bytes before the ciphertext.
pub const HEADER_LEN: usize = 1 + 4 + 4 + 8 + 4 + 8 + 8;
/// AEAD tag bytes after the ciphertext.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed record adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Seals one sealer may make under one subkey (far below GCM's limits for
/// counter nonces; a rotation resets it with a new subkey).
pub const COUNTER_LIMIT: u64 = 1 << 40;

const SALT: &[u8] = b"baton session seal salt v1";
const INFO_LABEL: &[u8] = b"baton session seal v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed record truncated")]
    Truncated,
    #[error("sealed record format version {0} not supported")]
    UnsupportedVersion(u8),
    #[error("sealed record under unknown key id {0}")]
    UnknownKey(u32),
    #[error("sealed record under retired key id {0} (rotated out twice)")]
    KeyRetired(u32),
    #[error("sealed record expired")]
    Expired,
    #[error("sealed record failed authentication")]
    Forged,
    #[error("sealer counter exhausted; rotate the key")]
    CounterExhausted,
    #[error("identity too long")]
    IdentityTooLong,
    #[error("key id {0} already used")]
    KeyIdReused(u32),
}

/// Who seals: host, process start (boot) and worker. The subkey and the
/// nonce both depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SealerId {
    pub host: u32,
    pub boot: u64,
    pub worker: u32,
}

/// A master (host or fleet) key with its id. Zeroized on drop; Debug shows
/// only the id.
struct MasterKey {
    id: u32,
    bytes: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MasterKey {{ id: {} }}", self.id)
    }
}

impl MasterKey {
    fn new(id: u32, key: &[u8; 32]) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(key);
        MasterKey { id, bytes }
    }

    fn duplicate(&self) -> Self {
        MasterKey::new(self.id, &self.bytes)
    }

    /// The AEAD key of `sealer` under this master key (RFC 5869 extract and
    /// expand; the output goes straight into ring's AEAD key).
    fn subkey(&self, sealer: &SealerId) -> LessSafeKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&self.bytes[..]);
        let id = self.id.to_be_bytes();
        let host = sealer.host.to_be_bytes();
        let boot = sealer.boot.to_be_bytes();
        let worker = sealer.worker.to_be_bytes();
        let info: [&[u8]; 5] = [INFO_LABEL, &id, &host, &boot, &worker];
        // expand fails only for an output longer than 255 hash lengths.
        let okm = match prk.expand(&info, &AES_256_GCM) {
            Ok(okm) => okm,
            Err(_) => unreachable!("32-byte HKDF output"),
        };
        LessSafeKey::new(UnboundKey::from(okm))
    }
}

/// The current and the previous master key.
#[derive(Debug)]
pub struct KeyRing {
    current: MasterKey,
    previous: Option<MasterKey>,
    rotated_at: Instant,
}

impl KeyRing {
    /// A ring with one key (copied; the caller should zeroize its own copy).
    pub fn new(key_id: u32, key: &[u8; 32], now: Instant) -> Self {
        KeyRing {
            current: MasterKey::new(key_id, key),
            previous: None,
            rotated_at: now,
        }
    }

    /// A copy for another worker (explicit, since it duplicates secrets).
    pub fn duplicate(&self) -> Self {
        KeyRing {
            current: self.current.duplicate(),
            previous: self.previous.as_ref().map(MasterKey::duplicate),
            rotated_at: self.rotated_at,
        }
    }

    pub fn current_id(&self) -> u32 {
        self.current.id
    }

    pub fn previous_id(&self) -> Option<u32> {
        self.previous.as_ref().map(|k| k.id)
    }

    /// Has `interval` passed since the last rotation?
    pub fn rotation_due(&self, now: Instant, interval: Duration) -> bool {
        now.saturating_since(self.rotated_at) >= interval
    }

    /// Make `key` current; the current key becomes the previous one and the
    /// previous one is dropped (zeroized). Key ids must increase.
    pub fn rotate(&mut self, key_id: u32, key: &[u8; 32], now: Instant) -> Result<(), SealError> {
        if key_id <= self.current.id {
            return Err(SealError::KeyIdReused(key_id));
        }
        let old = core::mem::replace(&mut self.current, MasterKey::new(key_id, key));
        self.previous = Some(old);
        self.rotated_at = now;
        Ok(())
    }

    /// Host-key mode: if due, rotate to a fresh key from `entropy` with the
    /// next id. Returns whether it rotated; sealers must then be remade.
    pub fn rotate_if_due(
        &mut self,
        now: Instant,
        interval: Duration,
        entropy: &mut dyn Entropy,
    ) -> bool {
        if !self.rotation_due(now, interval) || self.current.id == u32::MAX {
            return false;
        }
        let mut key = Zeroizing::new([0u8; 32]);
        entropy.fill(&mut key[..]);
        self.rotate(self.current.id + 1, &key, now).is_ok()
    }

    fn key(&self, id: u32) -> Result<&MasterKey, SealError> {
        if id == self.current.id {
            return Ok(&self.current);
        }
        match &self.previous {
            Some(p) if p.id == id => Ok(p),
            Some(p) if id < p.id => Err(SealError::KeyRetired(id)),
            None if id < self.current.id => Err(SealError::KeyRetired(id)),
            _ => Err(SealError::UnknownKey(id)),
        }
    }
}

fn nonce(worker: u32, counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&worker.to_be_bytes());
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn aad(header: &[u8], kind: u8, identity: &[u8]) -> Result<Vec<u8>, SealError> {
    let len = u32::try_from(identity.len()).map_err(|_| SealError::IdentityTooLong)?;
    let mut a = Vec::with_capacity(header.len() + 5 + identity.len());
    a.extend_from_slice(header);
    a.push(kind);
    a.extend_from_slice(&len.to_be_bytes());
    a.extend_from_slice(identity);
    Ok(a)
}

/// One worker's sealer under one key. Not `Clone`: two sealers with the
/// same id under the same key would repeat nonces.
pub struct Sealer {
    id: SealerId,
    key_id: u32,
    key: LessSafeKey,
    counter: u64,
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealer")
            .field("id", &self.id)
            .field("key_id", &self.key_id)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// The sealer `id` under the ring's current key, counter at 0.
    pub fn new(ring: &KeyRing, id: SealerId) -> Self {
        Sealer {
            id,
            key_id: ring.current.id,
            key: ring.current.subkey(&id),
            counter: 0,
        }
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn id(&self) -> SealerId {
        self.id
    }

    /// Seal `plaintext` for (`kind`, `identity`) until `expiry`.
    pub fn seal(
        &mut self,
        kind: u8,
        identity: &[u8],
        expiry: Instant,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        if self.counter >= COUNTER_LIMIT {
            return Err(SealError::CounterExhausted);
        }
        let counter = self.counter;
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.key_id.to_be_bytes());
        out.extend_from_slice(&self.id.host.to_be_bytes());
        out.extend_from_slice(&self.id.boot.to_be_bytes());
        out.extend_from_slice(&self.id.worker.to_be_bytes());
        out.extend_from_slice(&counter.to_be_bytes());
        out.extend_from_slice(&expiry.micros().to_be_bytes());
        let aad = aad(&out, kind, identity)?;
        out.extend_from_slice(plaintext);
        let (_, body) = out.split_at_mut(HEADER_LEN);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(self.id.worker, counter), Aad::from(&aad[..]), body)
            .map_err(|_| SealError::Forged)?;
        out.extend_from_slice(tag.as_ref());
        self.counter = counter + 1;
        Ok(out)
    }

    #[cfg(test)]
    fn set_counter(&mut self, c: u64) {
        self.counter = c;
    }
}

/// Opens records sealed by any sealer under the ring's current or previous
/// key. Borrow one from the worker's [`KeyRing`].
#[derive(Debug, Clone, Copy)]
pub struct Opener<'a> {
    ring: &'a KeyRing,
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(x)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

impl<'a> Opener<'a> {
    pub fn new(ring: &'a KeyRing) -> Self {
        Opener { ring }
    }

    /// Open `sealed` for (`kind`, `identity`) at `now`. The expiry is read
    /// from the (authenticated) header and must be later than `now`, so a
    /// table whose memory was altered cannot extend a record's life.
    pub fn open(
        &self,
        kind: u8,
        identity: &[u8],
        now: Instant,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < OVERHEAD {
            return Err(SealError::Truncated);
        }
        let header = &sealed[..HEADER_LEN];
        if header[0] != FORMAT_VERSION {
            return Err(SealError::UnsupportedVersion(header[0]));
        }
        let key_id = be_u32(header, 1);
        let sealer = SealerId {
            host: be_u32(header, 5),
            boot: be_u64(header, 9),
            worker: be_u32(header, 17),
        };
        let counter = be_u64(header, 21);
        let expiry = be_u64(header, 29);
        if expiry <= now.micros() {
            return Err(SealError::Expired);
        }
        let master = self.ring.key(key_id)?;
        let aad = aad(header, kind, identity)?;
        let mut body = Zeroizing::new(sealed[HEADER_LEN..].to_vec());
        let key = master.subkey(&sealer);
        let len = key
            .open_in_place(
                nonce(sealer.worker, counter),
                Aad::from(&aad[..]),
                &mut body[..],
            )
            .map_err(|_| SealError::Forged)?
            .len();
        body.truncate(len);
        Ok(body)
    }
}

/// The expiry written in a sealed record's header (unauthenticated until
/// opened): what the caller passes to the table's `put`.
pub fn sealed_expiry(sealed: &[u8]) -> Option<Instant> {
    (sealed.len() >= HEADER_LEN).then(|| Instant(be_u64(sealed, 29)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    const K1: [u8; 32] = [0x11; 32];
    const K2: [u8; 32] = [0x22; 32];
    const K3: [u8; 32] = [0x33; 32];
    const W0: SealerId = SealerId {
        host: 7,
        boot: 0x0102_0304_0506_0708,
        worker: 0,
    };
    const W1: SealerId = SealerId {
        host: 7,
        boot: 0x0102_0304_0506_0708,
        worker: 1,
    };
    const NOW: Instant = Instant(5_000);
    const EXP: Instant = Instant(60_000_000);

    fn sealed() -> (KeyRing, Vec<u8>) {
        let ring = KeyRing::new(1, &K1, Instant::ZERO);
        let mut s = Sealer::new(&ring, W0);
        let rec = s.seal(2, b"ticket-7", EXP, b"psk bytes here").unwrap();
        (ring, rec)
    }

    #[test]
    fn round_trip() {
        let (ring, rec) = sealed();
        assert_eq!(rec.len(), OVERHEAD + 14);
        assert_eq!(rec[0], FORMAT_VERSION);
        assert_eq!(sealed_expiry(&rec), Some(EXP));
        let pt = Opener::new(&ring).open(2, b"ticket-7", NOW, &rec).unwrap();
        assert_eq!(&pt[..], b"psk bytes here");
        // Another worker with its own copy of the ring opens it too.
        let other = ring.duplicate();
        assert_eq!(
            &Opener::new(&other).open(2, b"ticket-7", NOW, &rec).unwrap()[..],
            b"psk bytes here"
        );
    }

    #[test]
    fn plaintext_is_not_in_the_sealed_record() {
        let (_, rec) = sealed();
        assert!(!rec.windows(9).any(|w| w == b"psk bytes"));
    }

    #[test]
    fn wrong_kind_identity_or_expiry_fails() {
        let (ring, rec) = sealed();
        let o = Opener::new(&ring);
        assert_eq!(
            o.open(3, b"ticket-7", NOW, &rec).err(),
            Some(SealError::Forged)
        );
        assert_eq!(
            o.open(2, b"ticket-8", NOW, &rec).err(),
            Some(SealError::Forged)
        );
        assert_eq!(
            o.open(2, b"ticket-", NOW, &rec).err(),
            Some(SealError::Forged)
        );
        let mut later = rec.clone();
        later[29..37].copy_from_slice(&(EXP.micros() + 1).to_be_bytes());
        assert_eq!(
            o.open(2, b"ticket-7", NOW, &later).err(),
            Some(SealError::Forged)
        );
    }

    #[test]
    fn wrong_version_or_key_id_fails() {
        let (ring, rec) = sealed();
        let o = Opener::new(&ring);
        let mut v = rec.clone();
        v[0] = 2;
        assert_eq!(
            o.open(2, b"ticket-7", NOW, &v).err(),
            Some(SealError::UnsupportedVersion(2))
        );
        let mut k = rec.clone();
        k[1..5].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(
            o.open(2, b"ticket-7", NOW, &k).err(),
            Some(SealError::UnknownKey(9))
        );
        let mut k0 = rec.clone();
        k0[1..5].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            o.open(2, b"ticket-7", NOW, &k0).err(),
            Some(SealError::KeyRetired(0))
        );
    }

    #[test]
    fn every_tampered_byte_fails() {
        let (ring, rec) = sealed();
        let o = Opener::new(&ring);
        for i in 0..rec.len() {
            let mut t = rec.clone();
            t[i] ^= 0x01;
            assert!(o.open(2, b"ticket-7", NOW, &t).is_err(), "byte {i}");
        }
        for n in 0..rec.len() {
            assert!(
                o.open(2, b"ticket-7", NOW, &rec[..n]).is_err(),
                "truncated to {n}"
            );
        }
    }

    #[test]
    fn expired_record_fails() {
        let (ring, rec) = sealed();
        assert_eq!(
            Opener::new(&ring).open(2, b"ticket-7", EXP, &rec).err(),
            Some(SealError::Expired)
        );
    }

    #[test]
    fn rotated_key_still_opens_old_records_twice_rotated_does_not() {
        let (mut ring, rec) = sealed();
        ring.rotate(2, &K2, Instant(1_000)).unwrap();
        assert_eq!(ring.previous_id(), Some(1));
        assert_eq!(
            &Opener::new(&ring).open(2, b"ticket-7", NOW, &rec).unwrap()[..],
            b"psk bytes here"
        );
        // New seals use the new key.
        let mut s2 = Sealer::new(&ring, W0);
        assert_eq!(s2.key_id(), 2);
        let rec2 = s2.seal(2, b"ticket-7", EXP, b"psk bytes here").unwrap();
        assert_eq!(&rec2[1..5], &2u32.to_be_bytes());
        ring.rotate(3, &K3, Instant(2_000)).unwrap();
        assert_eq!(
            Opener::new(&ring).open(2, b"ticket-7", NOW, &rec).err(),
            Some(SealError::KeyRetired(1))
        );
        assert!(Opener::new(&ring).open(2, b"ticket-7", NOW, &rec2).is_ok());
    }

    #[test]
    fn rotation_ids_must_increase() {
        let mut ring = KeyRing::new(5, &K1, Instant::ZERO);
        assert_eq!(ring.rotate(5, &K2, NOW), Err(SealError::KeyIdReused(5)));
        assert_eq!(ring.rotate(4, &K2, NOW), Err(SealError::KeyIdReused(4)));
    }

    #[test]
    fn rotate_if_due_follows_the_interval() {
        let mut ring = KeyRing::new(1, &K1, Instant::ZERO);
        let mut e = SeededEntropy::new(9);
        let iv = Duration::from_secs(60);
        assert!(!ring.rotate_if_due(Instant(59_999_999), iv, &mut e));
        assert!(ring.rotate_if_due(Instant(60_000_000), iv, &mut e));
        assert_eq!((ring.current_id(), ring.previous_id()), (2, Some(1)));
        assert!(!ring.rotate_if_due(Instant(60_000_001), iv, &mut e));
        assert!(ring.rotate_if_due(Instant(120_000_000), iv, &mut e));
        assert_eq!((ring.current_id(), ring.previous_id()), (3, Some(2)));
    }

    #[test]
    fn two_sealers_never_share_a_nonce_and_counters_increase() {
        let ring = KeyRing::new(1, &K1, Instant::ZERO);
        let mut a = Sealer::new(&ring, W0);
        let mut b = Sealer::new(&ring, W1);
        let mut seen = std::collections::HashSet::new();
        let mut last = [None, None];
        for i in 0..100u64 {
            for (j, s) in [&mut a, &mut b].into_iter().enumerate() {
                let r = s.seal(1, b"same", EXP, b"same plaintext").unwrap();
                let worker = be_u32(&r, 17);
                let counter = be_u64(&r, 21);
                assert_eq!(counter, i);
                if let Some(prev) = last[j] {
                    assert!(counter > prev);
                }
                last[j] = Some(counter);
                assert!(seen.insert((worker, counter)), "nonce reused");
            }
        }
        // Distinct subkeys too: the same plaintext seals differently.
        let ra = Sealer::new(&ring, W0).seal(1, b"x", EXP, b"p").unwrap();
        let rb = Sealer::new(
            &ring,
            SealerId {
                worker: 0,
                host: 8,
                ..W0
            },
        )
        .seal(1, b"x", EXP, b"p")
        .unwrap();
        assert_ne!(ra[HEADER_LEN..], rb[HEADER_LEN..]);
        assert!(Opener::new(&ring).open(1, b"x", NOW, &rb).is_ok());
    }

    #[test]
    fn counter_exhaustion_refuses() {
        let ring = KeyRing::new(1, &K1, Instant::ZERO);
        let mut s = Sealer::new(&ring, W0);
        s.set_counter(COUNTER_LIMIT - 1);
        assert!(s.seal(1, b"a", EXP, b"p").is_ok());
        assert_eq!(
            s.seal(1, b"a", EXP, b"p").err(),
            Some(SealError::CounterExhausted)
        );
        assert_eq!(
            s.seal(1, b"a", EXP, b"p").err(),
            Some(SealError::CounterExhausted)
        );
    }

    #[test]
    fn keys_never_in_debug_output() {
        let mut ring = KeyRing::new(1, &[0xAB; 32], Instant::ZERO);
        ring.rotate(2, &[0xCD; 32], NOW).unwrap();
        let s = Sealer::new(&ring, W0);
        let text = format!("{ring:?} {s:?}");
        for needle in ["171", "205", "ab", "AB", "cd", "CD"] {
            assert!(!text.contains(needle), "{needle} in {text}");
        }
        assert!(text.contains("id: 1") && text.contains("id: 2"));
    }
}
