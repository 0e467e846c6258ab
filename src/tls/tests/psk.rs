//! Offered PSKs byte for byte (RFC 8446 §4.2.11, §4.2.11.1, §4.2.10,
//! §8.3): hand-built ClientHellos with several identities, binders made
//! here from the §7.1 / §4.2.11.2 definitions, explicit ticket ages and an
//! explicit store clock; early data sealed here under the client early
//! traffic key.

use super::handoff::round_trip;
use super::*;
use crate::tls::aead::RecordProtector;
use crate::tls::key_schedule::{derive_secret, finished_verify_data, hkdf_extract, Secret};
use crate::tls::messages::ext;
use crate::tls::resume::{Session, MAX_PSK_IDENTITIES};
use crate::tls::suites::HashAlg;
use crate::tls::wire::{put_u16, with_len};
use crate::tls::{JobResult, TicketAge, TicketStore};
use crate::time::Instant;

const H: HashAlg = HashAlg::Sha256;
const AGE_ADD: u32 = 0x9abc_def0;
/// Tickets here are issued at 1000 s on the store's clock.
const ISSUED_MS: u64 = 1_000_000;

fn cfg(max_early_data: u32) -> ServerConfig {
    thread_local! {
        static P: Pki = pki(KeyKind::Ecdsa);
    }
    let mut c = P.with(|p| server_config(p, &[]));
    c.max_early_data = max_early_data;
    c
}

fn psk(n: u8) -> Vec<u8> {
    vec![n; 32]
}

fn id(n: u8) -> Vec<u8> {
    vec![n; 32]
}

fn session(psk_byte: u8, max_early_data: u32) -> Session {
    Session {
        suite: CipherSuite::Aes128GcmSha256,
        psk: Secret::new(psk(psk_byte)),
        age_add: AGE_ADD,
        lifetime_s: 7200,
        sni: None,
        alpn: None,
        max_early_data,
        issued_at: Some(Instant::from_millis(ISSUED_MS)),
    }
}

fn put(store: &mut MemStore, id: &[u8], s: &Session) {
    assert!(store.put(id, &s.encode(), s.lifetime_s));
}

/// The obfuscated_ticket_age of a client that sees the ticket `ms` old.
fn obf(ms: u32) -> u32 {
    ms.wrapping_add(AGE_ADD)
}

/// What to put in one binder slot.
#[derive(Clone, Copy)]
enum Binder<'a> {
    /// The right binder for this PSK (§4.2.11.2).
    Good(&'a [u8]),
    /// 32 bytes that are no binder.
    Bad,
    /// A binder of this length (the parser's bounds: 32..=255).
    Len(usize),
}

/// A ClientHello (the handshake message) offering `ids` with `binders`
/// (their counts may differ), early_data when `early`.
fn hello(ids: &[(Vec<u8>, u32)], binders: &[Binder], early: bool) -> Vec<u8> {
    let share = sha256(b"client key share");
    let mut exts: Vec<(u16, Vec<u8>)> = vec![
        (ext::SUPPORTED_VERSIONS, vec![2, 3, 4]),
        (ext::SIGNATURE_ALGORITHMS, vec![0, 2, 0x04, 0x03]),
        (ext::SUPPORTED_GROUPS, vec![0, 2, 0, 0x1d]),
        (ext::KEY_SHARE, [&[0, 36, 0, 0x1d, 0, 32][..], &share].concat()),
        (ext::PSK_KEY_EXCHANGE_MODES, vec![1, 1]),
    ];
    if early {
        exts.push((ext::EARLY_DATA, vec![]));
    }
    let lens: Vec<usize> = binders.iter().map(|b| if let Binder::Len(n) = b { *n } else { 32 }).collect();
    let mut pre = Vec::new();
    with_len(&mut pre, 2, |b| {
        for (i, age) in ids {
            with_len(b, 2, |b| b.extend_from_slice(i));
            b.extend_from_slice(&age.to_be_bytes());
        }
    });
    with_len(&mut pre, 2, |b| {
        for n in &lens {
            b.push(*n as u8);
            b.extend_from_slice(&vec![0xee; *n]);
        }
    });
    exts.push((ext::PRE_SHARED_KEY, pre));
    let mut msg = crate::tls::messages::handshake(1, |b| {
        b.extend_from_slice(&[3, 3]);
        b.extend_from_slice(&[7; 32]);
        b.push(0);
        b.extend_from_slice(&[0, 2, 0x13, 0x01]);
        b.extend_from_slice(&[1, 0]);
        with_len(b, 2, |b| {
            for (t, d) in &exts {
                put_u16(b, *t);
                with_len(b, 2, |b| b.extend_from_slice(d));
            }
        });
    });
    // pre_shared_key is last (§4.2.11) and its binders list ends the
    // message: Truncate(ClientHello) is everything before that list.
    let list_len = 2 + lens.iter().map(|n| 1 + n).sum::<usize>();
    let cut = msg.len() - list_len;
    let th = H.digest(&msg[..cut]);
    let mut at = cut + 2;
    for (b, n) in binders.iter().zip(&lens) {
        at += 1;
        if let Binder::Good(k) = b {
            // §7.1: binder_key = Derive-Secret(Early Secret, "res binder",
            // ""), the binder its Finished MAC over the truncated hello.
            let early = hkdf_extract(H, &[0; 32], k);
            let bk = derive_secret(H, early.as_bytes(), b"res binder", &H.digest(b""));
            msg[at..at + n].copy_from_slice(&finished_verify_data(H, bk.as_bytes(), &th));
        }
        at += n;
    }
    msg
}

fn record(typ: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![typ, 3, 1];
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// An early data record under client_early_traffic_secret (§7.1) of the
/// PSK `k` for ClientHello `ch`.
fn early_record(k: &[u8], ch: &[u8], data: &[u8]) -> Vec<u8> {
    let early = hkdf_extract(H, &[0; 32], k);
    let cets = derive_secret(H, early.as_bytes(), b"c e traffic", &H.digest(ch));
    let mut w = RecordProtector::new(CipherSuite::Aes128GcmSha256, cets.as_bytes());
    let mut out = Vec::new();
    w.seal_record(23, data, &mut out).unwrap();
    out
}

/// Feeds `wire` to a fresh server and runs its jobs inline (no fetches).
fn serve(cfg: ServerConfig, store: &mut MemStore, wire: &[u8]) -> (TlsServer, Result<(), TlsError>) {
    let mut s = TlsServer::new(Arc::new(cfg));
    let mut rng = SeededEntropy::new(7);
    assert_eq!(s.read_tls(wire), wire.len());
    let mut r = s.process_with(&mut rng, store);
    while r.is_ok() {
        let Some(job) = s.take_job() else { break };
        assert!(job.session_fetch().is_none());
        r = s.complete_job(job.run(&mut rng)).and_then(|_| s.process_with(&mut rng, store));
    }
    (s, r)
}

/// The pre_shared_key selected_identity of the ServerHello that starts
/// `out` (§4.2.11), None when it has none.
fn selected_identity(out: &[u8]) -> Option<u16> {
    assert_eq!(out[0], 22, "a plaintext handshake record first");
    let len = u16::from_be_bytes([out[3], out[4]]) as usize;
    let sh = &out[5..5 + len];
    assert_eq!(sh[0], 2, "ServerHello");
    let mut at = 4 + 2 + 32;
    at += 1 + sh[at] as usize + 3;
    let end = at + 2 + u16::from_be_bytes([sh[at], sh[at + 1]]) as usize;
    at += 2;
    while at < end {
        let typ = u16::from_be_bytes([sh[at], sh[at + 1]]);
        let l = u16::from_be_bytes([sh[at + 2], sh[at + 3]]) as usize;
        if typ == ext::PRE_SHARED_KEY {
            assert_eq!(l, 2);
            return Some(u16::from_be_bytes([sh[at + 4], sh[at + 5]]));
        }
        at += 4 + l;
    }
    None
}

fn store_at(ms_after_issue: u64) -> MemStore {
    let s = MemStore::default();
    s.set_clock(Instant::from_millis(ISSUED_MS + ms_after_issue));
    s
}

#[test]
fn ticket_older_than_its_lifetime_gets_a_full_handshake() {
    // Lifetime 7200 s; the client's age agrees with ours, so only the
    // lifetime decides.
    for (after, resumes) in [(7_199_999u64, true), (7_200_000, false), (9_000_000, false)] {
        let mut store = store_at(after);
        put(&mut store, &id(1), &session(1, 0));
        let ch = hello(&[(id(1), obf(after as u32))], &[Binder::Good(&psk(1))], false);
        let (s, r) = serve(cfg(0), &mut store, &record(22, &ch));
        r.unwrap();
        assert_eq!(s.is_resumed(), resumes, "{after} ms after issue");
        assert_eq!(selected_identity(s.tls_output()), resumes.then_some(0));
        // The full handshake signs (certificate authentication).
        assert_eq!(s.signature_scheme().is_some(), !resumes);
        assert_eq!(s.ticket_age(), Some(if resumes { TicketAge::Fresh } else { TicketAge::Expired }));
        // Taken either way; a ticket too old is not put back.
        assert!(!store.contains_id(&id(1)));
        assert_eq!(store.put_backs(), 0);
    }
    // §4.6.1: 7 days at most, whatever lifetime the record holds.
    let mut store = store_at(604_800_000);
    let mut long = session(1, 0);
    long.lifetime_s = u32::MAX;
    put(&mut store, &id(1), &long);
    let ch = hello(&[(id(1), obf(604_800_000))], &[Binder::Good(&psk(1))], false);
    let (s, r) = serve(cfg(0), &mut store, &record(22, &ch));
    r.unwrap();
    assert!(!s.is_resumed());
}

#[test]
fn early_data_with_a_skewed_ticket_age_resumes_but_is_never_delivered() {
    // We see the ticket 20 s old; the client says 0 s, then 9.999 s
    // (10.001 s apart from ours: outside the 10 s window).
    for client_ms in [0u32, 9_999, 40_000] {
        let mut store = store_at(20_000);
        put(&mut store, &id(1), &session(1, 16384));
        let ch = hello(&[(id(1), obf(client_ms))], &[Binder::Good(&psk(1))], true);
        let mut wire = record(22, &ch);
        wire.extend(early_record(&psk(1), &ch, b"GET /replayable HTTP/1.1\r\n\r\n"));
        let (s, r) = serve(cfg(16384), &mut store, &wire);
        r.unwrap();
        assert!(s.is_resumed());
        assert_eq!(selected_identity(s.tls_output()), Some(0));
        assert!(!s.is_early_data_accepted(), "client age {client_ms} ms");
        assert_eq!(s.ticket_age(), Some(TicketAge::Skewed));
        // §4.2.10: skipped, not delivered, not fatal.
        assert_eq!(s.plaintext_len(), 0);
        assert_eq!(s.early_data_len(), 0);
        assert!(!s.is_failed());
    }
}

#[test]
fn early_data_within_the_age_window_is_accepted() {
    // 20 s on our clock; the client says 10 s, 20 s or 30 s: within 10 s.
    for client_ms in [10_000u32, 20_000, 30_000] {
        let mut store = store_at(20_000);
        put(&mut store, &id(1), &session(1, 16384));
        let ch = hello(&[(id(1), obf(client_ms))], &[Binder::Good(&psk(1))], true);
        let mut wire = record(22, &ch);
        wire.extend(early_record(&psk(1), &ch, b"early bytes"));
        let (mut s, r) = serve(cfg(16384), &mut store, &wire);
        r.unwrap();
        assert!(s.is_resumed() && s.is_early_data_accepted(), "client age {client_ms} ms");
        assert_eq!(s.ticket_age(), Some(TicketAge::Fresh));
        let mut got = [0u8; 64];
        let n = s.read_plaintext(&mut got);
        assert_eq!(&got[..n], b"early bytes");
        assert_eq!(s.early_data_len(), 11);
    }
    // A narrower configured window: 20 s vs 17 s is out of a 2 s window.
    let mut store = store_at(20_000);
    put(&mut store, &id(1), &session(1, 16384));
    let ch = hello(&[(id(1), obf(17_000))], &[Binder::Good(&psk(1))], true);
    let mut c = cfg(16384);
    c.early_data_age_window_ms = 2_000;
    let (s, r) = serve(c, &mut store, &record(22, &ch));
    r.unwrap();
    assert!(s.is_resumed() && !s.is_early_data_accepted());
}

#[test]
fn record_without_issue_time_resumes_without_early_data() {
    // A version-1 record (no issue time) or a store without a clock.
    let mut store = store_at(1_000);
    let mut old = session(1, 16384);
    old.issued_at = None;
    put(&mut store, &id(1), &old);
    let ch = hello(&[(id(1), obf(1_000))], &[Binder::Good(&psk(1))], true);
    let mut wire = record(22, &ch);
    wire.extend(early_record(&psk(1), &ch, b"early"));
    let (s, r) = serve(cfg(16384), &mut store, &wire);
    r.unwrap();
    assert!(s.is_resumed() && !s.is_early_data_accepted());
    assert_eq!(s.ticket_age(), Some(TicketAge::Unknown));
    assert_eq!(s.plaintext_len(), 0);
}

#[test]
fn first_identity_unknown_second_good_resumes_with_selected_identity_1() {
    let mut store = store_at(5_000);
    put(&mut store, &id(2), &session(2, 16384));
    let ch = hello(&[(id(1), obf(5_000)), (id(2), obf(5_000))], &[Binder::Bad, Binder::Good(&psk(2))], true);
    let mut wire = record(22, &ch);
    // Early data is under the first PSK (§4.2.10): with the second
    // selected it is rejected and skipped.
    wire.extend(early_record(&psk(1), &ch, b"early"));
    let (s, r) = serve(cfg(16384), &mut store, &wire);
    r.unwrap();
    assert!(s.is_resumed());
    assert_eq!(selected_identity(s.tls_output()), Some(1));
    assert_eq!(s.selected_identity(), Some(1));
    assert!(!s.is_early_data_accepted());
    assert_eq!(s.plaintext_len(), 0);
    assert_eq!(store.takes(), 2);
    assert!(!store.contains_id(&id(2)));
}

#[test]
fn first_good_identity_is_used_and_later_ones_are_not_taken() {
    let mut store = store_at(5_000);
    put(&mut store, &id(1), &session(1, 0));
    put(&mut store, &id(2), &session(2, 0));
    let ch = hello(&[(id(1), obf(5_000)), (id(2), obf(5_000))], &[Binder::Good(&psk(1)), Binder::Good(&psk(2))], false);
    let (s, r) = serve(cfg(0), &mut store, &record(22, &ch));
    r.unwrap();
    assert_eq!(selected_identity(s.tls_output()), Some(0));
    assert_eq!(store.takes(), 1);
    assert!(store.contains_id(&id(2)), "a second ticket was burnt");
}

#[test]
fn bad_binder_of_the_first_found_identity_puts_it_back_and_takes_no_other() {
    let mut store = store_at(5_000);
    put(&mut store, &id(1), &session(1, 0));
    put(&mut store, &id(2), &session(2, 0));
    // The first identity's binder is wrong; the second's is right.
    let ch = hello(&[(id(1), obf(5_000)), (id(2), obf(5_000))], &[Binder::Bad, Binder::Good(&psk(2))], false);
    let (s, r) = serve(cfg(0), &mut store, &record(22, &ch));
    assert_eq!(r, Err(TlsError::DecryptError("psk binder")));
    assert_eq!(s.tls_output(), &[21, 3, 3, 0, 2, 2, 51], "decrypt_error alert");
    assert_eq!(store.takes(), 1, "taken again, or a second identity taken");
    assert_eq!(store.put_backs(), 1);
    assert!(store.contains_id(&id(1)) && store.contains_id(&id(2)));
    // Both still resume (once each).
    for n in [1u8, 2] {
        let ch = hello(&[(id(n), obf(5_000))], &[Binder::Good(&psk(n))], false);
        let (s, r) = serve(cfg(0), &mut store, &record(22, &ch));
        r.unwrap();
        assert!(s.is_resumed());
    }
}

#[test]
fn identity_whose_session_does_not_fit_is_put_back_and_the_next_is_tried() {
    let mut store = store_at(5_000);
    let mut other_name = session(1, 0);
    other_name.sni = Some("other.example".into());
    put(&mut store, &id(1), &other_name);
    put(&mut store, &id(2), &session(2, 0));
    let ch = hello(&[(id(1), obf(5_000)), (id(2), obf(5_000))], &[Binder::Good(&psk(1)), Binder::Good(&psk(2))], false);
    let (s, r) = serve(cfg(0), &mut store, &record(22, &ch));
    r.unwrap();
    assert_eq!(selected_identity(s.tls_output()), Some(1));
    assert!(store.contains_id(&id(1)), "a ticket that did not fit was burnt");
    assert!(!store.contains_id(&id(2)));
}

#[test]
fn only_the_first_identities_up_to_the_limit_are_looked_at() {
    let n = MAX_PSK_IDENTITIES as u8;
    let mut store = store_at(5_000);
    put(&mut store, &id(n + 1), &session(9, 0));
    let ids: Vec<(Vec<u8>, u32)> = (1..=n + 1).map(|i| (id(i), obf(5_000))).collect();
    let mut binders = vec![Binder::Bad; n as usize];
    binders.push(Binder::Good(&[9; 32]));
    let (s, r) = serve(cfg(0), &mut store, &record(22, &hello(&ids, &binders, false)));
    r.unwrap();
    assert!(!s.is_resumed());
    assert_eq!(store.takes(), MAX_PSK_IDENTITIES);
    assert!(store.contains_id(&id(n + 1)));
    // One fewer unknown in front: the good one is within the limit.
    let ids: Vec<(Vec<u8>, u32)> = (2..=n + 1).map(|i| (id(i), obf(5_000))).collect();
    let (s, r) = serve(cfg(0), &mut store, &record(22, &hello(&ids, &binders[1..], false)));
    r.unwrap();
    assert_eq!(s.selected_identity(), Some(u16::from(n) - 1));
}

#[test]
fn binders_and_identities_count_mismatch_or_malformed_binders_alert() {
    let good = Binder::Good(&[1; 32]);
    // §4.2.11: one binder per identity, in order; a mismatch is
    // illegal_parameter (47), a malformed list decode_error (50).
    let cases: [(Vec<(Vec<u8>, u32)>, Vec<Binder>, u8); 5] = [
        (vec![(id(1), 0), (id(2), 0)], vec![good], 47),
        (vec![(id(1), 0)], vec![good, good], 47),
        (vec![(id(1), 0)], vec![], 50),
        (vec![(id(1), 0)], vec![Binder::Len(31)], 50),
        (vec![], vec![good], 50),
    ];
    for (i, (ids, binders, alert)) in cases.into_iter().enumerate() {
        let mut store = store_at(0);
        put(&mut store, &id(1), &session(1, 0));
        let (s, r) = serve(cfg(0), &mut store, &record(22, &hello(&ids, &binders, false)));
        assert!(r.is_err(), "case {i}");
        assert_eq!(s.tls_output(), &[21, 3, 3, 0, 2, 2, alert], "case {i}: {r:?}");
        assert_eq!(store.takes(), 0, "case {i}: looked up before the hello was checked");
    }
}

#[test]
fn fleet_fetches_identities_one_at_a_time_across_a_handoff() {
    // This host has nothing; the repository has the second identity only.
    let mut repo = store_at(5_000);
    put(&mut repo, &id(2), &session(2, 0));
    let mut local = MemStore::remote_store();
    local.set_clock(Instant::from_millis(ISSUED_MS + 5_000));
    let cfg = Arc::new(cfg(0));
    let ch = hello(&[(id(1), obf(5_000)), (id(2), obf(5_000)), (id(3), obf(5_000))], &[Binder::Bad, Binder::Good(&psk(2)), Binder::Bad], false);
    let mut s = TlsServer::new(cfg.clone());
    let mut rng = SeededEntropy::new(3);
    s.read_tls(&record(22, &ch));
    let mut fetched = Vec::new();
    let mut step = 0;
    loop {
        s.process_with(&mut rng, &mut local).unwrap();
        s = round_trip(s, &cfg, step);
        step += 1;
        let Some(job) = s.take_job() else { break };
        let r = match job.session_fetch() {
            Some(i) => {
                fetched.push(i.to_vec());
                JobResult::Session(repo.take(i))
            }
            None => job.run(&mut rng),
        };
        s = round_trip(s, &cfg, step);
        s.complete_job(r).unwrap();
    }
    // Identity 0 asked and missed, identity 1 found; identity 2 never asked.
    assert_eq!(fetched, vec![id(1), id(2)]);
    assert!(s.is_resumed());
    assert_eq!(selected_identity(s.tls_output()), Some(1));
    assert!(!repo.contains_id(&id(2)));
}
