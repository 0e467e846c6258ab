//! Resumption on any worker (issue 3 §3) through the real session table and
//! sealing: tickets are `KIND_SESSION` records put and taken by
//! `worker::tickets::WorkerTickets`, each worker with its own `TlsServer`s
//! and its own sealer, all sharing one `Fabric`. The client is rustls 0.23
//! with its default in-memory ticket cache.

use std::sync::Arc;

use baton::entropy::SeededEntropy;
use baton::session::seal::{KeyRing, Sealer, SealerId};
use baton::session::table::{HeapArena, SessionTable, TableConfig};
use baton::time::{Duration, Instant};
use baton::tls::{ServerConfig, TlsError, TlsServer};
use baton::worker::handoff::{DynArena, Fabric};
use baton::worker::tickets::WorkerTickets;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind};

fn tls() -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let dir = std::env::temp_dir().join(format!("baton-resume-{}-{:?}", std::process::id(), std::thread::current().id()));
    let g = baton::demo::certs::generate(&dir, &["baton.test"], &[]).unwrap();
    let chain = baton::tls::load_cert_chain_pem(&std::fs::read(&g.cert).unwrap()).unwrap();
    let key = baton::tls::SigningKey::from_pem(&std::fs::read(&g.key).unwrap()).unwrap();
    let scfg = Arc::new(ServerConfig::new(chain, key, vec![b"http/1.1".to_vec()]).unwrap());
    let ca = std::fs::read(&g.ca).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let mut roots = rustls::RootCertStore::empty();
    for der in pem::parse_many(&ca).unwrap() {
        roots.add(rustls::pki_types::CertificateDer::from(der.contents().to_vec())).unwrap();
    }
    let mut ccfg = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    ccfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    (Arc::new(ccfg), scfg)
}

fn fabric() -> Arc<Fabric> {
    let cfg = TableConfig { slots: 1024, max_record: 4096, probe: 16, hash_key: [3; 32] };
    let need = SessionTable::<HeapArena>::words_needed(cfg.slots, cfg.max_record).unwrap();
    let table = SessionTable::from_words(DynArena(Box::new(HeapArena::new(need))), &cfg).unwrap();
    let conns = baton::worker::handoff::heap_table(4, 4096, [4; 32]).unwrap();
    Arc::new(Fabric::new(2, 64, conns, table, KeyRing::new(1, &[0x42; 32], Instant::ZERO), 9, 77))
}

/// One worker's TLS side: its sealer and randomness.
struct Worker {
    fabric: Arc<Fabric>,
    sealer: Sealer,
    rng: SeededEntropy,
}

impl Worker {
    fn new(fabric: &Arc<Fabric>, id: u32) -> Worker {
        let sid = SealerId { host: fabric.host, boot: fabric.boot, worker: id };
        Worker { fabric: fabric.clone(), sealer: Sealer::new(&fabric.keys(), sid), rng: SeededEntropy::new(100 + id as u64) }
    }

    /// What `Conn::service` does: process with the worker's tickets, run
    /// jobs inline.
    fn run(&mut self, srv: &mut TlsServer, now: Instant) -> Result<(), TlsError> {
        loop {
            let mut t = WorkerTickets::new(&self.fabric, &mut self.sealer, now);
            srv.process_with(&mut self.rng, &mut t)?;
            match srv.take_job() {
                Some(job) => srv.complete_job(job.run(&mut self.rng))?,
                None => return Ok(()),
            }
        }
    }
}

fn client(ccfg: &Arc<ClientConfig>) -> ClientConnection {
    ClientConnection::new(ccfg.clone(), ServerName::try_from("baton.test").unwrap()).unwrap()
}

fn first_flight(c: &mut ClientConnection) -> Vec<u8> {
    let mut b = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut b).unwrap();
    }
    b
}

/// Runs client and server until neither has anything to send; `pending`
/// are client bytes already taken out of the client.
fn pump(c: &mut ClientConnection, srv: &mut TlsServer, w: &mut Worker, now: Instant, mut pending: Vec<u8>) {
    loop {
        let mut to_srv = std::mem::take(&mut pending);
        while c.wants_write() {
            c.write_tls(&mut to_srv).unwrap();
        }
        let mut off = 0;
        while off < to_srv.len() {
            off += srv.read_tls(&to_srv[off..]);
            w.run(srv, now).unwrap();
        }
        let out = srv.tls_output().to_vec();
        srv.consume_output(out.len());
        let mut rd = &out[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets().unwrap();
        }
        if to_srv.is_empty() && out.is_empty() {
            break;
        }
    }
    assert!(!c.is_handshaking() && !srv.is_handshaking());
}

fn echo(c: &mut ClientConnection, srv: &mut TlsServer, w: &mut Worker, now: Instant) {
    use std::io::{Read, Write};
    c.writer().write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    pump(c, srv, w, now, Vec::new());
    let mut got = vec![0u8; srv.plaintext_len()];
    srv.read_plaintext(&mut got);
    assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
    srv.write_plaintext(b"HTTP/1.1 200 OK\r\n\r\n");
    pump(c, srv, w, now, Vec::new());
    let mut buf = [0u8; 64];
    let n = c.reader().read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"HTTP/1.1 200 OK\r\n\r\n");
}

fn handshake(ccfg: &Arc<ClientConfig>, scfg: &Arc<ServerConfig>, w: &mut Worker, now: Instant) -> (ClientConnection, TlsServer) {
    let mut c = client(ccfg);
    let mut s = TlsServer::new(scfg.clone());
    pump(&mut c, &mut s, w, now, Vec::new());
    (c, s)
}

const T0: Instant = Instant(1_000_000);

#[test]
fn ticket_issued_on_one_worker_resumes_on_the_other() {
    let (ccfg, scfg) = tls();
    let f = fabric();
    let (mut w0, mut w1) = (Worker::new(&f, 0), Worker::new(&f, 1));
    let (mut c, mut s) = handshake(&ccfg, &scfg, &mut w0, T0);
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
    assert_eq!(s.tickets_sent(), 1);
    assert_eq!(f.tickets.occupied(), 1);
    echo(&mut c, &mut s, &mut w0, T0);

    let later = T0 + Duration::from_secs(60);
    let (mut c2, mut s2) = handshake(&ccfg, &scfg, &mut w1, later);
    assert_eq!(c2.handshake_kind(), Some(HandshakeKind::Resumed));
    assert!(s2.is_resumed() && s2.signature_scheme().is_none());
    assert_eq!(s2.alpn(), Some(&b"http/1.1"[..]));
    echo(&mut c2, &mut s2, &mut w1, later);
    // The used ticket was taken; the fresh one from worker 1 is in.
    let st = f.tickets.stats();
    assert_eq!((st.puts, st.takes, f.tickets.occupied()), (2, 1, 1));

    // And back to worker 0 with worker 1's ticket.
    let (c3, s3) = handshake(&ccfg, &scfg, &mut w0, later + Duration::from_secs(1));
    assert_eq!(c3.handshake_kind(), Some(HandshakeKind::Resumed));
    assert!(s3.is_resumed());
}

#[test]
fn second_use_of_a_ticket_on_another_worker_gets_a_full_handshake() {
    let (ccfg, scfg) = tls();
    let f = fabric();
    let (mut w0, mut w1) = (Worker::new(&f, 0), Worker::new(&f, 1));
    handshake(&ccfg, &scfg, &mut w0, T0);
    let mut c2 = client(&ccfg);
    let ch = first_flight(&mut c2);
    // First use (a replay on worker 1) takes the ticket.
    let mut x = TlsServer::new(scfg.clone());
    x.read_tls(&ch);
    w1.run(&mut x, T0).unwrap();
    assert!(x.is_resumed());
    drop(x);
    // Second use, on worker 0: full handshake, and the client completes it.
    let mut s = TlsServer::new(scfg.clone());
    pump(&mut c2, &mut s, &mut w0, T0, ch);
    assert_eq!(c2.handshake_kind(), Some(HandshakeKind::Full));
    assert!(!s.is_resumed());
    echo(&mut c2, &mut s, &mut w0, T0);
}

#[test]
fn bad_binder_on_one_worker_leaves_the_ticket_for_the_other() {
    let (ccfg, scfg) = tls();
    let f = fabric();
    let (mut w0, mut w1) = (Worker::new(&f, 0), Worker::new(&f, 1));
    handshake(&ccfg, &scfg, &mut w0, T0);
    let mut c2 = client(&ccfg);
    let ch = first_flight(&mut c2);
    let mut bad = ch.clone();
    let n = bad.len();
    bad[n - 1] ^= 0x40;
    let mut x = TlsServer::new(scfg.clone());
    x.read_tls(&bad);
    assert_eq!(w0.run(&mut x, T0), Err(TlsError::DecryptError("psk binder")));
    assert_eq!(x.tls_output(), &[21, 3, 3, 0, 2, 2, 51]);
    assert_eq!(f.tickets.occupied(), 1, "the bad binder burnt the ticket");
    let mut s = TlsServer::new(scfg.clone());
    pump(&mut c2, &mut s, &mut w1, T0, ch);
    assert_eq!(c2.handshake_kind(), Some(HandshakeKind::Resumed));
    echo(&mut c2, &mut s, &mut w1, T0);
}

#[test]
fn expired_ticket_gets_a_full_handshake() {
    let (ccfg, scfg) = tls();
    let f = fabric();
    let mut w0 = Worker::new(&f, 0);
    handshake(&ccfg, &scfg, &mut w0, T0);
    // 7200 s default lifetime: the table's expiry enforces it.
    let (c, s) = handshake(&ccfg, &scfg, &mut w0, T0 + Duration::from_secs(7200));
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
    assert!(!s.is_resumed());
}

#[test]
fn racing_workers_resume_one_client_hello_exactly_once() {
    let (ccfg, scfg) = tls();
    let f = fabric();
    let mut w0 = Worker::new(&f, 0);
    for round in 0..16u32 {
        // A fresh ticket in the client's cache each round.
        let (mut c, _) = handshake(&ccfg, &scfg, &mut w0, T0);
        let _ = &mut c;
        let ch = first_flight(&mut client(&ccfg));
        let resumed: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (1..=2u32)
                .map(|id| {
                    let (f, scfg, ch) = (f.clone(), scfg.clone(), ch.clone());
                    sc.spawn(move || {
                        let mut w = Worker::new(&f, id + 10 * round);
                        let mut x = TlsServer::new(scfg);
                        x.read_tls(&ch);
                        w.run(&mut x, T0).unwrap();
                        x.is_resumed() as usize
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(resumed, 1, "round {round}");
    }
}
