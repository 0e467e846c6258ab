//! Stateful resumption (RFC 8446 §2.2, §4.2.11, §4.6.1) against a real
//! rustls client: tickets from a full handshake, resumption on another
//! server sharing the store, single use, a bad binder that must not burn
//! the ticket, psk_ke-only offers, a retry, a hash mismatch, and a handoff
//! at every step of a resumed connection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use rustls::HandshakeKind;
use zeroize::Zeroizing;

use super::handoff::{life, round_trip};
use super::*;
use crate::entropy::Entropy;
use crate::tls::resume::{Session, MAX_TICKET_LIFETIME};
use crate::tls::TicketStore;

#[derive(Default)]
struct Inner {
    map: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    taken: HashMap<Vec<u8>, u32>,
    puts: usize,
    takes: usize,
    hits: usize,
    put_backs: usize,
    refuse: bool,
    /// A miss may be found in the fleet repository (`TicketStore::remote`).
    remote: bool,
    /// The store's clock (`TicketStore::clock`): tests move it by hand.
    clock: crate::time::Instant,
    no_clock: bool,
}

/// A HashMap ticket store shared by clones (several servers = several
/// workers sharing one table).
#[derive(Clone, Default)]
pub(crate) struct MemStore(Rc<RefCell<Inner>>);

impl MemStore {
    /// Rewrites a stored session (tests of limits taken from the record).
    pub(crate) fn edit(&self, id: &[u8], f: impl FnOnce(&mut Session)) {
        let mut i = self.0.borrow_mut();
        let e = i.map.get_mut(id).unwrap();
        let mut s = Session::decode(&e.0).unwrap();
        f(&mut s);
        e.0 = s.encode().to_vec();
    }
    pub(crate) fn len(&self) -> usize {
        self.0.borrow().map.len()
    }
    pub(crate) fn ids(&self) -> Vec<Vec<u8>> {
        self.0.borrow().map.keys().cloned().collect()
    }
    fn contains(&self, id: &[u8]) -> bool {
        self.0.borrow().map.contains_key(id)
    }
    fn lifetimes(&self) -> Vec<u32> {
        self.0.borrow().map.values().map(|v| v.1).collect()
    }
    /// Sets the store's clock (what tickets are stamped with and their
    /// age measured on).
    pub(crate) fn set_clock(&self, t: crate::time::Instant) {
        self.0.borrow_mut().clock = t;
    }
    pub(crate) fn takes(&self) -> usize {
        self.0.borrow().takes
    }
    pub(crate) fn put_backs(&self) -> usize {
        self.0.borrow().put_backs
    }
    pub(crate) fn contains_id(&self, id: &[u8]) -> bool {
        self.contains(id)
    }
    /// A store whose misses may be in the fleet repository.
    pub(crate) fn remote_store() -> MemStore {
        let s = MemStore::default();
        s.0.borrow_mut().remote = true;
        s
    }
    pub(crate) fn session(&self, id: &[u8]) -> Session {
        Session::decode(&self.0.borrow().map[id].0).unwrap()
    }
}

impl TicketStore for MemStore {
    fn put(&mut self, id: &[u8], session: &[u8], lifetime_s: u32) -> bool {
        let mut i = self.0.borrow_mut();
        if i.refuse || i.map.contains_key(id) {
            return false;
        }
        i.puts += 1;
        i.map.insert(id.to_vec(), (session.to_vec(), lifetime_s));
        true
    }
    fn take(&mut self, id: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let mut i = self.0.borrow_mut();
        i.takes += 1;
        let (s, l) = i.map.remove(id)?;
        i.hits += 1;
        i.taken.insert(id.to_vec(), l);
        Some(Zeroizing::new(s))
    }
    fn put_back(&mut self, id: &[u8], session: &[u8]) -> bool {
        let mut i = self.0.borrow_mut();
        // A fleet store puts back what came from the repository (where the
        // worker's store returns it) as well as its own takes.
        let taken = i.taken.remove(id);
        let Some(l) = taken.or(if i.remote { Some(0) } else { None }) else { return false };
        i.put_backs += 1;
        i.map.insert(id.to_vec(), (session.to_vec(), l));
        true
    }
    fn remote(&self) -> bool {
        self.0.borrow().remote
    }
    fn clock(&self) -> Option<crate::time::Instant> {
        let i = self.0.borrow();
        (!i.no_clock).then_some(i.clock)
    }
}

fn conn(ccfg: &Arc<ClientConfig>) -> ClientConnection {
    ClientConnection::new(ccfg.clone(), ServerName::try_from("localhost").unwrap()).unwrap()
}

/// Everything the client sends first (its ClientHello).
fn first_flight(c: &mut ClientConnection) -> Vec<u8> {
    let mut b = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut b).unwrap();
    }
    b
}

/// A full handshake through `store`: afterwards the client holds a ticket.
fn full(p: &Pki, ccfg: &Arc<ClientConfig>, scfg: ServerConfig, store: &MemStore, seed: u64) -> Pair {
    let mut a = Pair::new(conn(ccfg), scfg, seed);
    a.store = Some(store.clone());
    a.handshake();
    assert_eq!(a.client.handshake_kind(), Some(HandshakeKind::Full));
    assert!(!a.server.is_resumed());
    let _ = p;
    a
}

/// A server (another worker) that gets `bytes` and nothing else.
fn server_eats(scfg: ServerConfig, store: &mut MemStore, bytes: &[u8], seed: u64) -> (TlsServer, Result<(), TlsError>) {
    let mut s = TlsServer::new(Arc::new(scfg));
    let mut rng = SeededEntropy::new(seed);
    assert_eq!(s.read_tls(bytes), bytes.len());
    let r = s.process_with(&mut rng, store);
    (s, r)
}

fn exchange(pair: &mut Pair) {
    let up = data(20_000, 1);
    let down = data(30_000, 2);
    assert_eq!(pair.client_sends(&up), up);
    assert_eq!(pair.server_sends(&down), down);
}

#[test]
fn ticket_from_a_full_handshake_resumes_on_another_server() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = client_config(&p, &ClientOpts { alpn: vec![b"h2".to_vec()], ..Default::default() });
    let store = MemStore::default();
    let a = full(&p, &ccfg, server_config(&p, &[b"h2"]), &store, 1);
    assert_eq!(a.server.tickets_sent(), 1);
    assert_eq!(store.len(), 1);
    let id1 = store.ids().remove(0);
    assert_eq!(id1.len(), crate::tls::resume::TICKET_ID_LEN);
    let s1 = store.session(&id1);
    assert_eq!(s1.suite, CipherSuite::Aes128GcmSha256);
    assert_eq!(s1.sni.as_deref(), Some("localhost"));
    assert_eq!(s1.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!((s1.lifetime_s, s1.max_early_data), (7200, 0));

    // Server B: a different TlsServer with its own config (another worker)
    // sharing the store.
    let mut b = Pair::new(conn(&ccfg), server_config(&p, &[b"h2"]), 2);
    b.store = Some(store.clone());
    b.handshake();
    assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Resumed));
    assert!(b.server.is_resumed());
    // No Certificate / CertificateVerify: no signature was made.
    assert_eq!(b.server.signature_scheme(), None);
    assert_eq!(b.server.alpn(), Some(&b"h2"[..]));
    assert_eq!(b.client.alpn_protocol(), Some(&b"h2"[..]));
    // The used ticket is gone; the resumed connection issued a fresh one.
    assert!(!store.contains(&id1));
    assert_eq!(b.server.tickets_sent(), 1);
    assert_eq!(store.len(), 1);
    exchange(&mut b);

    // And the fresh ticket resumes a third connection.
    let mut c = Pair::new(conn(&ccfg), server_config(&p, &[b"h2"]), 3);
    c.store = Some(store.clone());
    c.handshake();
    assert_eq!(c.client.handshake_kind(), Some(HandshakeKind::Resumed));
    exchange(&mut c);
}

#[test]
fn ticket_psk_is_derived_per_ticket_and_differs_between_tickets() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = client_config(&p, &ClientOpts::default());
    let store = MemStore::default();
    let mut scfg = server_config(&p, &[]);
    scfg.tickets_per_handshake = 3;
    scfg.ticket_lifetime_s = 10_000_000;
    let a = full(&p, &ccfg, scfg, &store, 4);
    assert_eq!(a.server.tickets_sent(), 3);
    assert_eq!(store.len(), 3);
    // §4.6.1: capped at 7 days.
    assert_eq!(store.lifetimes(), vec![MAX_TICKET_LIFETIME; 3]);
    let psks: Vec<Vec<u8>> = store.ids().iter().map(|i| store.session(i).psk.as_bytes().to_vec()).collect();
    assert!(psks[0] != psks[1] && psks[1] != psks[2] && psks[0] != psks[2]);
    // Each of the three resumes once.
    for seed in 0..3 {
        let mut b = Pair::new(conn(&ccfg), server_config(&p, &[]), 10 + seed);
        b.store = Some(store.clone());
        b.handshake();
        assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Resumed), "ticket {seed}");
    }
}

#[test]
fn no_tickets_without_a_store_or_when_turned_off() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = client_config(&p, &ClientOpts::default());
    // `process` (no store): no ticket.
    let mut a = Pair::new(conn(&ccfg), server_config(&p, &[]), 5);
    a.handshake();
    assert_eq!(a.server.tickets_sent(), 0);
    let store = MemStore::default();
    for (n, lifetime) in [(0, 7200), (1, 0)] {
        let mut scfg = server_config(&p, &[]);
        scfg.tickets_per_handshake = n;
        scfg.ticket_lifetime_s = lifetime;
        let mut b = Pair::new(conn(&ccfg), scfg, 6);
        b.store = Some(store.clone());
        b.handshake();
        // The client had no ticket: full again.
        assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Full));
        assert_eq!(b.server.tickets_sent(), 0);
        assert_eq!(store.len(), 0);
    }
    // A store that refuses: the ticket is not sent, the connection works.
    store.0.borrow_mut().refuse = true;
    let mut c = Pair::new(conn(&ccfg), server_config(&p, &[]), 7);
    c.store = Some(store.clone());
    c.handshake();
    assert_eq!(c.server.tickets_sent(), 0);
    exchange(&mut c);
    store.0.borrow_mut().refuse = false;
    let mut d = Pair::new(conn(&ccfg), server_config(&p, &[]), 8);
    d.store = Some(store.clone());
    d.handshake();
    assert_eq!(d.client.handshake_kind(), Some(HandshakeKind::Full));
}

#[test]
fn second_use_of_a_ticket_gets_a_full_handshake() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = client_config(&p, &ClientOpts::default());
    let mut store = MemStore::default();
    full(&p, &ccfg, server_config(&p, &[]), &store, 11);
    let id1 = store.ids().remove(0);
    let mut c2 = conn(&ccfg);
    let ch = first_flight(&mut c2);
    // The ClientHello is used once (here by a replay on another worker): it
    // takes the ticket and resumes.
    let (x, r) = server_eats(server_config(&p, &[]), &mut store, &ch, 12);
    r.unwrap();
    assert!(x.is_resumed());
    assert!(!store.contains(&id1));
    // No PSK in Debug output.
    let dbg = format!("{x:?}");
    assert!(!dbg.contains("psk") && !dbg.contains("secret"), "{dbg}");
    drop(x);
    // The same ticket again: not there any more, so a full handshake, which
    // the client completes.
    let mut b = Pair::new(c2, server_config(&p, &[]), 13);
    b.store = Some(store.clone());
    b.to_server = ch;
    b.handshake();
    assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Full));
    assert!(!b.server.is_resumed());
    assert!(b.server.signature_scheme().is_some());
    exchange(&mut b);
}

#[test]
fn bad_binder_does_not_burn_the_ticket() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = client_config(&p, &ClientOpts::default());
    let mut store = MemStore::default();
    full(&p, &ccfg, server_config(&p, &[]), &store, 21);
    let id1 = store.ids().remove(0);
    let mut c2 = conn(&ccfg);
    let ch = first_flight(&mut c2);
    let rec_len = u16::from_be_bytes([ch[3], ch[4]]) as usize;
    assert_eq!(ch.len(), 5 + rec_len, "one ClientHello record");
    // pre_shared_key is the last extension and the binder its last bytes.
    for at in [ch.len() - 1, ch.len() - 32] {
        let mut bad = ch.clone();
        bad[at] ^= 0x01;
        let (x, r) = server_eats(server_config(&p, &[]), &mut store, &bad, 22);
        assert_eq!(r, Err(TlsError::DecryptError("psk binder")));
        assert!(x.is_failed());
        // §6.2: fatal decrypt_error alert, in plaintext.
        assert_eq!(x.tls_output(), &[21, 3, 3, 0, 2, 2, 51]);
        assert!(store.contains(&id1), "a bad binder burnt the ticket");
    }
    assert_eq!(store.0.borrow().put_backs, 2);
    // The genuine ClientHello then resumes.
    let mut b = Pair::new(c2, server_config(&p, &[]), 23);
    b.store = Some(store.clone());
    b.to_server = ch;
    b.handshake();
    assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Resumed));
    assert!(!store.contains(&id1));
    exchange(&mut b);
}

#[test]
fn psk_ke_only_offer_gets_a_full_handshake() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = client_config(&p, &ClientOpts::default());
    let mut store = MemStore::default();
    full(&p, &ccfg, server_config(&p, &[]), &store, 31);
    let id1 = store.ids().remove(0);
    let mut ch = first_flight(&mut conn(&ccfg));
    // psk_key_exchange_modes (45) = [psk_dhe_ke] becomes [psk_ke].
    let pat = [0, 45, 0, 2, 1, 1];
    let at = ch.windows(6).position(|w| w == pat).expect("psk_key_exchange_modes");
    ch[at + 5] = 0;
    let takes_before = store.0.borrow().takes;
    let (mut x, r) = server_eats(server_config(&p, &[]), &mut store, &ch, 32);
    r.unwrap();
    assert!(!x.is_resumed());
    assert_eq!(store.0.borrow().takes, takes_before, "psk_ke offer looked the ticket up");
    assert!(store.contains(&id1));
    // The full path: key exchange, then a signature.
    let mut rng = SeededEntropy::new(33);
    let job = x.take_job().unwrap();
    assert_eq!(format!("{job:?}"), "CryptoJob::KeyExchange(X25519)");
    x.complete_job(job.run(&mut rng)).unwrap();
    assert!(format!("{:?}", x.take_job().unwrap()).starts_with("CryptoJob::Sign"));
}

#[test]
fn resumption_after_hello_retry_request() {
    use rustls::crypto::ring::kx_group;
    let p = pki(KeyKind::Ecdsa);
    let opts = ClientOpts { groups: vec![kx_group::X25519, kx_group::SECP256R1], ..Default::default() };
    let ccfg = client_config(&p, &opts);
    let store = MemStore::default();
    // First server only does P-256: rustls remembers that group.
    let mut s1 = server_config(&p, &[]);
    s1.groups = vec![NamedGroup::Secp256r1];
    let mut a = Pair::new(conn(&ccfg), s1, 41);
    a.store = Some(store.clone());
    a.handshake();
    assert_eq!(a.client.handshake_kind(), Some(HandshakeKind::FullWithHelloRetryRequest));
    // Second only X25519: the client's P-256 share gets a HelloRetryRequest;
    // the second ClientHello carries the PSK with a binder over the retry
    // transcript.
    let mut s2 = server_config(&p, &[]);
    s2.groups = vec![NamedGroup::X25519];
    let mut b = Pair::new(conn(&ccfg), s2, 42);
    b.store = Some(store.clone());
    b.hook = Some(Box::new(round_trip));
    b.handshake();
    assert!(b.server.is_resumed());
    assert_eq!(b.server.group(), Some(NamedGroup::X25519));
    assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Resumed));
    exchange(&mut b);
}

#[test]
fn ticket_of_another_hash_is_put_back_and_the_handshake_is_full() {
    let p = pki(KeyKind::Ecdsa);
    let opts = ClientOpts { suites: vec![CipherSuite::Aes256GcmSha384, CipherSuite::Aes128GcmSha256], ..Default::default() };
    let ccfg = client_config(&p, &opts);
    let store = MemStore::default();
    let mut s1 = server_config(&p, &[]);
    s1.suites = vec![CipherSuite::Aes256GcmSha384];
    full(&p, &ccfg, s1, &store, 51);
    let id1 = store.ids().remove(0);
    assert_eq!(store.session(&id1).suite, CipherSuite::Aes256GcmSha384);
    assert_eq!(store.session(&id1).psk.len(), 48);
    // A server that only does SHA-256 suites cannot use a SHA-384 PSK
    // (§4.2.11): full handshake, and the ticket stays usable elsewhere.
    let mut s2 = server_config(&p, &[]);
    s2.suites = vec![CipherSuite::Aes128GcmSha256];
    let mut b = Pair::new(conn(&ccfg), s2, 52);
    b.store = Some(store.clone());
    b.handshake();
    assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Full));
    assert_eq!(b.server.suite(), Some(CipherSuite::Aes128GcmSha256));
    assert!(store.contains(&id1));
    assert_eq!(store.0.borrow().put_backs, 1);
    assert_eq!(store.len(), 2);
}

#[test]
fn handoff_at_every_step_of_a_resumed_connection() {
    let p = pki(KeyKind::Rsa);
    let ccfg = client_config(&p, &ClientOpts { suites: vec![CipherSuite::Chacha20Poly1305Sha256], ..Default::default() });
    let store = MemStore::default();
    full(&p, &ccfg, server_config(&p, &[]), &store, 61);
    let mut b = Pair::new(conn(&ccfg), server_config(&p, &[]), 62);
    b.store = Some(store.clone());
    b.hook = Some(Box::new(round_trip));
    life(&mut b);
    assert!(b.server.is_resumed());
    assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Resumed));
    assert!(b.steps > 10, "only {} steps", b.steps);
    // The ticket issued after the handoffs works.
    let mut c = Pair::new(conn(&ccfg), server_config(&p, &[]), 63);
    c.store = Some(store.clone());
    c.handshake();
    assert_eq!(c.client.handshake_kind(), Some(HandshakeKind::Resumed));
}

#[test]
fn garbage_session_record_is_dropped_and_the_handshake_is_full() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = client_config(&p, &ClientOpts::default());
    let store = MemStore::default();
    full(&p, &ccfg, server_config(&p, &[]), &store, 71);
    let id1 = store.ids().remove(0);
    {
        let mut i = store.0.borrow_mut();
        let e = i.map.get_mut(&id1).unwrap();
        let mut junk = vec![0u8; 40];
        SeededEntropy::new(1).fill(&mut junk);
        e.0 = junk;
    }
    let mut b = Pair::new(conn(&ccfg), server_config(&p, &[]), 72);
    b.store = Some(store.clone());
    b.handshake();
    assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Full));
    assert!(!store.contains(&id1));
}

#[test]
fn version_1_state_without_resumption_fields_still_decodes() {
    use crate::codec::{Reader, Writer};
    let p = pki(KeyKind::Ecdsa);
    let mut a = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 81);
    a.handshake();
    let mut w = Writer::new();
    a.server.encode(&mut w);
    let mut b = w.finish().to_vec();
    // v5 appended: fetch index (u8), selected identity (u16), age verdict (u8).
    assert_eq!(&b[b.len() - 4..], &[0; 4]);
    b.truncate(b.len() - 4);
    // v4 appended: pending ClientHello option (0), fetched session option (0).
    assert_eq!(&b[b.len() - 2..], &[0; 2]);
    b.truncate(b.len() - 2);
    // v3 appended: early reader option (0), accepted, early bytes (u32),
    // early limit (u32).
    assert_eq!(&b[b.len() - 10..], &[0; 10]);
    b.truncate(b.len() - 10);
    // v2 appended: psk option (0), resumed, tickets_due (u32), tickets_sent (u32).
    assert_eq!(&b[b.len() - 10..], &[0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    b.truncate(b.len() - 10);
    b[2..4].copy_from_slice(&1u16.to_le_bytes());
    let back = TlsServer::decode(&mut Reader::new(&b), a.cfg.clone()).unwrap();
    assert!(!back.is_handshaking() && !back.is_resumed() && back.tickets_sent() == 0);
}

/// A store whose misses may be in the fleet repository.
fn fleet_store() -> MemStore {
    let s = MemStore::default();
    s.0.borrow_mut().remote = true;
    s
}

#[test]
fn ticket_from_another_host_is_fetched_from_the_repository_and_resumes() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = client_config(&p, &ClientOpts { alpn: vec![b"h2".to_vec()], ..Default::default() });
    // Host A issued the ticket into the repository.
    let repo = MemStore::default();
    full(&p, &ccfg, server_config(&p, &[b"h2"]), &repo, 21);
    let id = repo.ids().remove(0);
    // Host B: its own table is empty, its misses go to the repository; the
    // state is encoded and decoded at every step, the fetch in flight too.
    let mut b = Pair::new(conn(&ccfg), server_config(&p, &[b"h2"]), 22);
    b.store = Some(fleet_store());
    b.fleet = Some(repo.clone());
    b.hook = Some(Box::new(round_trip));
    b.handshake();
    assert_eq!(b.fetches, 1);
    assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Resumed));
    assert!(b.server.is_resumed());
    assert_eq!(b.server.signature_scheme(), None);
    // Taken from the repository: gone there.
    assert!(!repo.contains(&id));
    exchange(&mut b);
}

#[test]
fn ticket_the_repository_does_not_have_gets_a_full_handshake() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = client_config(&p, &ClientOpts::default());
    let repo = MemStore::default();
    full(&p, &ccfg, server_config(&p, &[]), &repo, 23);
    // Another host took it first (or Redis did not answer in time).
    let id = repo.ids().remove(0);
    repo.clone().take(&id).unwrap();
    let mut b = Pair::new(conn(&ccfg), server_config(&p, &[]), 24);
    b.store = Some(fleet_store());
    b.fleet = Some(repo.clone());
    b.hook = Some(Box::new(round_trip));
    b.handshake();
    assert_eq!(b.fetches, 1);
    assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Full));
    assert!(!b.server.is_resumed());
    exchange(&mut b);
}

#[test]
fn fetched_ticket_with_a_bad_binder_goes_back_unburnt() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = client_config(&p, &ClientOpts::default());
    let repo = MemStore::default();
    full(&p, &ccfg, server_config(&p, &[]), &repo, 25);
    let id = repo.ids().remove(0);
    let mut c = conn(&ccfg);
    let mut ch = first_flight(&mut c);
    // Flip the last byte: inside the binder (pre_shared_key is last, §4.2.11).
    let n = ch.len();
    ch[n - 1] ^= 1;
    let mut local = fleet_store();
    let mut s = TlsServer::new(Arc::new(server_config(&p, &[])));
    let mut rng = SeededEntropy::new(26);
    s.read_tls(&ch);
    s.process_with(&mut rng, &mut local).unwrap();
    let job = s.take_job().expect("a fetch job");
    assert_eq!(job.session_fetch(), Some(&id[..]));
    let found = repo.clone().take(&id);
    assert!(found.is_some());
    s.complete_job(crate::tls::JobResult::Session(found)).unwrap();
    let r = s.process_with(&mut rng, &mut local);
    assert!(matches!(r, Err(TlsError::DecryptError(_))), "{r:?}");
    // The worker's store got it back (it puts it back into the repository).
    assert!(local.contains(&id));
}
