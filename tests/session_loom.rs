//! Model checks of the production session table source under loom (issue 3
//! §1). Run with `ci/loom` (RUSTFLAGS="--cfg loom", LOOM_MAX_PREEMPTIONS=2).
//! Tables are tiny (1–2 slots, 1-word records, 2 threads) so every
//! interleaving is explored in minutes.
//!
//! Known limit of loom 0.7 (issues tokio-rs/loom#166, #392, open): its DPOR
//! forgets a pure load by thread A once thread B loads the same word before
//! storing to it, so it never runs B's store before A's load. Here that
//! means a taker that *misses* (loads FREE) is not re-run after a racing
//! put's claim; the CAS races between takers, puts and sweeps are explored
//! (a take done as load+store, or a put without its SeqCst fence, fails
//! these tests). Making those loads RMWs under loom was tried and rejected:
//! loom's partial modification order then lets a later plain store slip
//! before the RMW, a false alarm. The stress test covers the rest.
#![cfg(loom)]

use baton::session::table::{PutError, SessionTable, TableConfig};
use baton::time::Instant;
use loom::sync::Arc;
use loom::thread;

const T0: Instant = Instant(10);
const LATER: Instant = Instant(1_000);

fn table(slots: usize) -> Arc<SessionTable> {
    let cfg = TableConfig {
        slots,
        max_record: 8,
        probe: slots,
        hash_key: [3; 32],
    };
    Arc::new(SessionTable::new(&cfg).unwrap())
}

fn take(t: &SessionTable, id: &[u8], now: Instant) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    t.take(1, id, now, &mut out).unwrap().then_some(out)
}

/// Two takers race for one record: exactly one gets it, intact.
#[test]
fn racing_takers_exactly_one_wins() {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    loom::model(|| {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = table(1);
        t.put(1, b"a", b"recordA!", LATER, T0).unwrap();
        let t2 = t.clone();
        let h = thread::spawn(move || take(&t2, b"a", T0));
        let mine = take(&t, b"a", T0);
        let theirs = h.join().unwrap();
        assert!(mine.is_some() != theirs.is_some(), "exactly one winner");
        assert_eq!(mine.or(theirs).unwrap(), b"recordA!");
        assert_eq!(take(&t, b"a", T0), None);
    });
    eprintln!(
        "racing_takers: {} interleavings",
        RUNS.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// A take racing the put of the same record either misses it or gets it
/// whole; if it missed, the record is still there (not lost).
#[test]
fn put_take_race_no_torn_or_lost_record() {
    loom::model(|| {
        let t = table(1);
        let t2 = t.clone();
        let h = thread::spawn(move || t2.put(1, b"a", b"12345678", LATER, T0));
        let got = take(&t, b"a", T0);
        h.join().unwrap().unwrap();
        match got {
            Some(r) => assert_eq!(r, b"12345678"),
            None => assert_eq!(take(&t, b"a", T0).unwrap(), b"12345678"),
        }
        assert_eq!(take(&t, b"a", T0), None);
    });
}

/// A stale taker of identity A races a thread that takes A and reuses the
/// slot for B: the stale taker never returns B's bytes, and A is taken
/// exactly once.
#[test]
fn take_vs_put_of_reused_slot_no_stale_read() {
    loom::model(|| {
        let t = table(1);
        t.put(1, b"a", b"AAAAAAAA", LATER, T0).unwrap();
        let t2 = t.clone();
        let h = thread::spawn(move || {
            let got = take(&t2, b"a", T0);
            let put = t2.put(1, b"b", b"BBBBBBBB", LATER, T0);
            (got, put)
        });
        let stale = take(&t, b"a", T0);
        let (got, put) = h.join().unwrap();
        if let Some(r) = &stale {
            assert_eq!(r, b"AAAAAAAA");
        }
        if let Some(r) = &got {
            assert_eq!(r, b"AAAAAAAA");
        }
        assert!(stale.is_some() != got.is_some(), "A taken exactly once");
        // With one slot the put of B can only fail if A was still there.
        match put {
            Ok(()) => assert_eq!(take(&t, b"b", T0).unwrap(), b"BBBBBBBB"),
            Err(e) => assert_eq!(e, PutError::Full),
        }
    });
}

/// Expiry racing a take: a sweep at the expiry instant and a take just
/// before it — exactly one of them removes the record; a take at or after
/// expiry never returns it.
#[test]
fn expire_vs_take() {
    loom::model(|| {
        let t = table(1);
        t.put(1, b"a", b"EEEEEEEE", Instant(100), T0).unwrap();
        let t2 = t.clone();
        let h = thread::spawn(move || t2.sweep(Instant(100)));
        let t3 = t.clone();
        let late = thread::spawn(move || take(&t3, b"a", Instant(100)));
        let got = take(&t, b"a", Instant(99));
        let swept = h.join().unwrap();
        assert_eq!(late.join().unwrap(), None, "expired record returned");
        if let Some(r) = &got {
            assert_eq!(r, b"EEEEEEEE");
        }
        // Whoever did not get it, the record is gone: the sweep or the late
        // take reclaimed it.
        assert!(swept <= 1);
        if got.is_some() {
            assert_eq!(swept, 0);
        }
        assert_eq!(t.occupied(), 0);
    });
}

/// Two puts of one identity race: at most one succeeds, and take returns
/// at most one record for it.
#[test]
fn racing_puts_of_one_identity_never_duplicate() {
    loom::model(|| {
        let t = table(2);
        let t2 = t.clone();
        let h = thread::spawn(move || t2.put(1, b"a", b"first...", LATER, T0));
        let mine = t.put(1, b"a", b"second..", LATER, T0);
        let theirs = h.join().unwrap();
        let ok = mine.is_ok() as usize + theirs.is_ok() as usize;
        assert!(ok <= 1, "duplicate identity");
        let first = take(&t, b"a", T0);
        assert_eq!(first.is_some() as usize, ok);
        assert_eq!(take(&t, b"a", T0), None);
    });
}

/// Reuse after take: two threads each put and take their own identity in a
/// one-slot table; each take returns its own record or nothing (if its put
/// found the slot busy), never the other's.
#[test]
fn reuse_after_take() {
    loom::model(|| {
        let t = table(1);
        let t2 = t.clone();
        let h = thread::spawn(move || {
            let put = t2.put(1, b"b", b"BBBBBBBB", LATER, T0);
            (put, take(&t2, b"b", T0))
        });
        let put = t.put(1, b"a", b"AAAAAAAA", LATER, T0);
        let got = take(&t, b"a", T0);
        let (bput, bgot) = h.join().unwrap();
        assert_eq!(got.is_some(), put.is_ok());
        if let Some(r) = got {
            assert_eq!(r, b"AAAAAAAA");
        }
        assert_eq!(bgot.is_some(), bput.is_ok());
        if let Some(r) = bgot {
            assert_eq!(r, b"BBBBBBBB");
        }
        assert_eq!(t.occupied(), 0);
    });
}
