//! Neighbour (ARP) cache shared by all workers: lock-free readers, one
//! writer at a time.
//!
//! A fixed-capacity open-addressed table (linear probing, no deletion) of
//! slots made of two `AtomicU64`s:
//! - `key` = `ipv4 << 32 | 1` once the slot is taken; 0 means empty;
//! - `mac` = the 48-bit MAC in the low bits with bit 48 set (present).
//!
//! A slot's address is set once and never changes (entries are not
//! evicted), and the MAC is one atomic word, so a reader cannot see a torn
//! entry: it loads `key` (Acquire) and, if the address matches, `mac`
//! (Acquire). An insert stores `mac` before publishing `key` (Release); a
//! MAC change (case D2) is a single store. If aging that reuses slots for
//! other addresses is ever added, a generation must go into `key` and
//! readers must re-check it after loading `mac` (seqlock over atomics).
//!
//! Writers (whichever worker receives an ARP frame) serialise on a mutex
//! that readers never touch. Entries do not age out: a neighbour's MAC is
//! replaced when it announces a new one (gratuitous ARP or a new reply),
//! never removed.

use crate::net::{IpAddress, MacAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

struct Slot {
    key: AtomicU64,
    mac: AtomicU64,
}

/// What [`ArpCache::update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpUpdate {
    Inserted,
    /// The address was known with another MAC, which was replaced.
    Changed,
    Unchanged,
    /// The address was unknown and the cache is full (or the address is
    /// 0.0.0.0, which is never cached).
    Refused,
}

/// See the module documentation.
pub struct ArpCache {
    slots: Box<[Slot]>,
    mask: usize,
    capacity: usize,
    len: AtomicUsize,
    writer: Mutex<()>,
}

fn mac_to_u64(m: MacAddr) -> u64 {
    let b = m.0;
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

fn mac_from_u64(v: u64) -> MacAddr {
    let b = v.to_be_bytes();
    MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn ip_u32(ip: IpAddress) -> u32 {
    u32::from_be_bytes(ip.octets_v4())
}

const PRESENT: u64 = 1 << 48;

fn key_of(ip: u32) -> u64 {
    u64::from(ip) << 32 | 1
}

fn hash(ip: u32) -> usize {
    // Fibonacci hashing; the high bits are the best mixed.
    (u64::from(ip).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize
}

impl ArpCache {
    /// A cache holding up to `capacity` neighbours (at least 1); the table
    /// has twice that many slots, rounded up to a power of two.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let size = (capacity * 2).next_power_of_two().max(16);
        let slots = (0..size).map(|_| Slot { key: AtomicU64::new(0), mac: AtomicU64::new(0) }).collect();
        ArpCache { slots, mask: size - 1, capacity, len: AtomicUsize::new(0), writer: Mutex::new(()) }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The MAC for `ip`, if known. Never blocks, never spins.
    pub fn lookup(&self, ip: IpAddress) -> Option<MacAddr> {
        let ip = ip_u32(ip);
        if ip == 0 {
            return None;
        }
        let want = key_of(ip);
        let mut i = hash(ip) & self.mask;
        for _ in 0..self.slots.len() {
            let slot = self.slots.get(i)?;
            let k = slot.key.load(Ordering::Acquire);
            if k == 0 {
                return None;
            }
            if k == want {
                let m = slot.mac.load(Ordering::Acquire);
                return (m & PRESENT != 0).then(|| mac_from_u64(m));
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Insert `ip → mac`, or replace the MAC of a known `ip` (case D2).
    pub fn update(&self, ip: IpAddress, mac: MacAddr) -> ArpUpdate {
        self.write(ip, mac, true)
    }

    /// Replace the MAC of `ip` only if `ip` is already known (how a
    /// gratuitous ARP or an ARP not addressed to us is used, RFC 826
    /// "merge"). Never inserts.
    pub fn update_existing(&self, ip: IpAddress, mac: MacAddr) -> ArpUpdate {
        self.write(ip, mac, false)
    }

    fn write(&self, ip: IpAddress, mac: MacAddr, insert: bool) -> ArpUpdate {
        let ip = ip_u32(ip);
        if ip == 0 {
            return ArpUpdate::Refused;
        }
        let want = key_of(ip);
        let word = mac_to_u64(mac) | PRESENT;
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut i = hash(ip) & self.mask;
        for _ in 0..self.slots.len() {
            let Some(slot) = self.slots.get(i) else { return ArpUpdate::Refused };
            // Only writers change slots, and we hold the writer lock.
            let k = slot.key.load(Ordering::Relaxed);
            if k == 0 {
                if !insert || self.len.load(Ordering::Relaxed) >= self.capacity {
                    return ArpUpdate::Refused;
                }
                slot.mac.store(word, Ordering::Release);
                slot.key.store(want, Ordering::Release);
                self.len.fetch_add(1, Ordering::Relaxed);
                return ArpUpdate::Inserted;
            }
            if k == want {
                if slot.mac.load(Ordering::Relaxed) == word {
                    return ArpUpdate::Unchanged;
                }
                slot.mac.store(word, Ordering::Release);
                return ArpUpdate::Changed;
            }
            i = (i + 1) & self.mask;
        }
        ArpUpdate::Refused
    }
}

impl std::fmt::Debug for ArpCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArpCache").field("len", &self.len()).field("capacity", &self.capacity).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    fn ip(n: u32) -> IpAddress {
        let b = n.to_be_bytes();
        IpAddress::v4(b[0], b[1], b[2], b[3])
    }

    #[test]
    fn insert_lookup_miss() {
        let c = ArpCache::new(8);
        assert_eq!(c.lookup(IpAddress::v4(198, 18, 0, 1)), None);
        assert_eq!(c.update(IpAddress::v4(198, 18, 0, 1), MacAddr([2, 0, 0, 0, 0, 1])), ArpUpdate::Inserted);
        assert_eq!(c.lookup(IpAddress::v4(198, 18, 0, 1)), Some(MacAddr([2, 0, 0, 0, 0, 1])));
        assert_eq!(c.lookup(IpAddress::v4(198, 18, 0, 2)), None);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn neighbour_mac_change_is_followed() {
        // D2: a new reply or a gratuitous ARP replaces the MAC.
        let c = ArpCache::new(8);
        let a = IpAddress::v4(198, 18, 0, 1);
        c.update(a, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(c.update(a, MacAddr([2, 0, 0, 0, 0, 1])), ArpUpdate::Unchanged);
        assert_eq!(c.update_existing(a, MacAddr([2, 0, 0, 0, 0, 9])), ArpUpdate::Changed);
        assert_eq!(c.lookup(a), Some(MacAddr([2, 0, 0, 0, 0, 9])));
        assert_eq!(c.update(a, MacAddr([2, 0, 0, 0, 0, 7])), ArpUpdate::Changed);
        assert_eq!(c.lookup(a), Some(MacAddr([2, 0, 0, 0, 0, 7])));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn update_existing_never_inserts_and_zero_ip_refused() {
        let c = ArpCache::new(8);
        assert_eq!(c.update_existing(IpAddress::v4(10, 0, 0, 1), MacAddr([2; 6])), ArpUpdate::Refused);
        assert_eq!(c.lookup(IpAddress::v4(10, 0, 0, 1)), None);
        assert_eq!(c.update(IpAddress::v4(0, 0, 0, 0), MacAddr([2; 6])), ArpUpdate::Refused);
        assert!(c.is_empty());
    }

    #[test]
    fn capacity_is_enforced_and_collisions_resolve() {
        let c = ArpCache::new(100);
        for n in 1..=100u32 {
            assert_eq!(c.update(ip(n * 4096), MacAddr([2, 0, 0, 0, (n >> 8) as u8, n as u8])), ArpUpdate::Inserted);
        }
        assert_eq!(c.update(ip(999_999), MacAddr([2; 6])), ArpUpdate::Refused);
        for n in 1..=100u32 {
            assert_eq!(c.lookup(ip(n * 4096)), Some(MacAddr([2, 0, 0, 0, (n >> 8) as u8, n as u8])));
        }
        // known entries still update when full
        assert_eq!(c.update(ip(4096), MacAddr([4; 6])), ArpUpdate::Changed);
    }

    /// MACs the writer uses for address `n`: they encode `n`, so a reader
    /// can tell a MAC that was never written for the address it asked for.
    fn mac_for(n: u32, version: u8) -> MacAddr {
        let b = n.to_be_bytes();
        MacAddr([2, version, b[0], b[1], b[2], b[3]])
    }

    #[test]
    fn concurrent_readers_never_see_torn_entries() {
        const N: u32 = 64;
        let c = Arc::new(ArpCache::new(N as usize));
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for t in 0..3 {
            let c = Arc::clone(&c);
            let stop = Arc::clone(&stop);
            readers.push(std::thread::spawn(move || {
                let mut hits = 0u64;
                let mut seen = [0u8; N as usize + 1];
                let mut k = t as u32;
                // Until the writer is done, then 1000 lookups more: on a
                // loaded machine a reader may not run at all before the
                // writer finishes (regression: `hits > 0` failed in CI).
                let mut after = 0;
                while after < 1000 {
                    if stop.load(Ordering::Relaxed) {
                        after += 1;
                    }
                    k = k.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let n = 1 + (k >> 8) % N;
                    if let Some(m) = c.lookup(ip(0xC612_0000 + n)) {
                        let b = (0xC612_0000 + n).to_be_bytes();
                        assert_eq!(m.0[0], 2);
                        assert_eq!(&m.0[2..], &b[..], "MAC of another address");
                        // one writer, increasing versions: never backwards
                        assert!(m.0[1] >= seen[n as usize], "stale MAC after a newer one");
                        seen[n as usize] = m.0[1];
                        hits += 1;
                    }
                }
                hits
            }));
        }
        let writer = {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                for round in 0..16_000u32 {
                    let n = 1 + round % N;
                    let v = (round / N) as u8;
                    let r = c.update(ip(0xC612_0000 + n), mac_for(0xC612_0000 + n, v));
                    assert_ne!(r, ArpUpdate::Refused);
                }
            })
        };
        writer.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        let hits: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert!(hits > 0);
        let last_v = ((16_000 - 1) / N) as u8;
        // the last write of each address is what a lookup now returns
        for n in 1..=N {
            let round_last = (0..16_000u32).rev().find(|r| 1 + r % N == n).unwrap();
            let v = (round_last / N) as u8;
            assert!(v == last_v || v + 1 == last_v);
            assert_eq!(c.lookup(ip(0xC612_0000 + n)), Some(mac_for(0xC612_0000 + n, v)));
        }
    }
}
