//! Stress test of the session table with real threads (issue 3 §1): four
//! threads, over 10^6 operations, unique records whose payload encodes
//! their id, expiry and a checksum. Checks: every record is taken at most
//! once, a taken record is intact (never torn) and belongs to the identity
//! asked for, an expired record is never returned, and every record that was
//! put and does not expire is taken exactly once by the end (drained).
#![cfg(not(loom))]

use baton::session::table::{PutError, SessionTable, TableConfig};
use baton::time::Instant;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

const THREADS: u64 = 4;
const ITERS: u64 = 120_000; // per thread: 1 put + 2 takes each
/// The deterministic take: the record put this many ids ago.
const LAG: u64 = 32;
const KIND: u8 = 9;
const WINDOW: u64 = 64;
const SHORT_LIFE: u64 = 36;
const NEVER: u64 = u64::MAX / 2;

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn record(id: u64, expiry: u64) -> Vec<u8> {
    let mut r = Vec::with_capacity(64);
    r.extend_from_slice(&id.to_le_bytes());
    r.extend_from_slice(&expiry.to_le_bytes());
    r.extend((0..id % 41).map(|i| (id as u8).wrapping_mul(31).wrapping_add(i as u8)));
    let c = checksum(&r);
    r.extend_from_slice(&c.to_le_bytes());
    r
}

/// Check a taken record: intact and for `id`; returns its expiry.
fn check(id: u64, r: &[u8]) -> u64 {
    assert!(r.len() >= 24, "short record for {id}: {}", r.len());
    let (body, c) = r.split_at(r.len() - 8);
    assert_eq!(checksum(body).to_le_bytes(), c, "torn record for {id}");
    assert_eq!(
        u64::from_le_bytes(body[..8].try_into().unwrap()),
        id,
        "wrong record"
    );
    assert_eq!(body.len(), 16 + (id % 41) as usize);
    u64::from_le_bytes(body[8..16].try_into().unwrap())
}

struct Bits(Vec<AtomicU64>);
impl Bits {
    fn new(n: u64) -> Self {
        Bits((0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }
    /// Set bit `i`; returns whether it was already set.
    fn set(&self, i: u64) -> bool {
        let m = 1u64 << (i % 64);
        self.0[(i / 64) as usize].fetch_or(m, Relaxed) & m != 0
    }
    fn get(&self, i: u64) -> bool {
        self.0[(i / 64) as usize].load(Relaxed) & (1 << (i % 64)) != 0
    }
}

#[test]
fn four_threads_million_ops_take_at_most_once_none_lost() {
    let cfg = TableConfig {
        slots: 8192,
        max_record: 64,
        probe: 32,
        hash_key: [0x5a; 32],
    };
    let table = Arc::new(SessionTable::new(&cfg).unwrap());
    let total = THREADS * ITERS;
    let put_ok = Arc::new(Bits::new(total));
    let short = Arc::new(Bits::new(total));
    let taken = Arc::new(Bits::new(total));
    let attempted = Arc::new(Bits::new(total));
    let next_id = Arc::new(AtomicU64::new(0));
    let clock = Arc::new(AtomicU64::new(1));
    let takes = Arc::new(AtomicU64::new(0));
    let t0 = std::time::Instant::now();

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (table, put_ok, short, taken, clock, takes) = (
                table.clone(),
                put_ok.clone(),
                short.clone(),
                taken.clone(),
                clock.clone(),
                takes.clone(),
            );
            let (attempted, next_id) = (attempted.clone(), next_id.clone());
            std::thread::spawn(move || {
                let mut rng =
                    0x9e37_79b9_7f4a_7c15u64 ^ (t + 1).wrapping_mul(0x1234_5678_9abc_def1);
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                let mut out = Vec::new();
                for _ in 0..ITERS {
                    let now = clock.fetch_add(1, Relaxed);
                    let id = next_id.fetch_add(1, Relaxed);
                    attempted.set(id);
                    let is_short = next() % 16 == 0;
                    let expiry = if is_short { now + SHORT_LIFE } else { NEVER };
                    if is_short {
                        short.set(id);
                    }
                    match table.put(
                        KIND,
                        &id.to_le_bytes(),
                        &record(id, expiry),
                        Instant(expiry),
                        Instant(now),
                    ) {
                        Ok(()) => {
                            put_ok.set(id);
                        }
                        Err(PutError::Full) => {}
                        Err(e) => panic!("put {id}: {e:?}"),
                    }
                    // One take of the record LAG ids back (usually put by
                    // another thread), one of a random recent one: takers race.
                    for back in [LAG, 1 + next() % WINDOW] {
                        let Some(cand) = id.checked_sub(back) else {
                            continue;
                        };
                        let now = clock.load(Relaxed);
                        if table
                            .take(KIND, &cand.to_le_bytes(), Instant(now), &mut out)
                            .unwrap()
                        {
                            let exp = check(cand, &out);
                            assert!(exp > now, "expired record {cand} returned");
                            assert!(attempted.get(cand), "record {cand} taken but never put");
                            assert!(!taken.set(cand), "record {cand} taken twice");
                            takes.fetch_add(1, Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let threaded = t0.elapsed();

    // Drain: every record that was put, not taken and never expires must
    // still be there, exactly once.
    let now = Instant(clock.load(Relaxed));
    let mut out = Vec::new();
    let (mut drained, mut lost_short) = (0u64, 0u64);
    for id in 0..total {
        if !put_ok.get(id) || taken.get(id) {
            continue;
        }
        let got = table.take(KIND, &id.to_le_bytes(), now, &mut out).unwrap();
        if short.get(id) {
            if got {
                assert!(check(id, &out) > now.micros());
            } else {
                lost_short += 1;
            }
        } else {
            assert!(got, "record {id} lost before its expiry");
            assert_eq!(check(id, &out), NEVER);
        }
        if got {
            assert!(!taken.set(id));
            drained += 1;
            takes.fetch_add(1, Relaxed);
        }
        assert!(
            !table.take(KIND, &id.to_le_bytes(), now, &mut out).unwrap(),
            "second copy of {id}"
        );
    }
    table.sweep(Instant(NEVER));
    assert_eq!(table.occupied(), 0);
    let s = table.stats();
    assert_eq!(s.takes, takes.load(Relaxed));
    let ops = s.puts + s.full + s.takes + s.misses + s.expired;
    assert!(ops >= 1_000_000, "only {ops} operations");
    eprintln!(
        "stress: {ops} ops in {threaded:?} ({} threads); puts {} full {} takes {} (drained {drained}) \
         misses {} expired {} (short-lived not found at drain {lost_short})",
        THREADS, s.puts, s.full, s.takes, s.misses, s.expired
    );
}
