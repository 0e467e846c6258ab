//! Take-and-purge across hosts (issue 4), DPDK-free and deterministic:
//! two hosts — each a `Worker` with its own fabric, sealer and fleet
//! state — share one repository (an in-memory stand-in for Redis that
//! answers at once; the Redis client is tested against a real
//! redis-server in tests/repository_redis.rs). The RSS model of the
//! simulation plays ECMP: it decides which host each frame reaches.

mod common;

use std::sync::Arc;

use baton::entropy::SeededEntropy;
use baton::net::arp::ArpCache;
use baton::session::repository::RecordKind;
use baton::session::seal::KeyRing;
use baton::time::Instant;
use baton::worker::fleet::{Fleet, FleetParams, MemRepository};
use baton::worker::Worker;
use common::multi::{fabric, tcp_ports, MultiSim};
use common::tlsclient::{client_config, pattern, BackendApp, ClientApp};
use common::{sha256_hex, worker_params};
use rustls::HandshakeKind;

const FLEET_KEY: [u8; 32] = [0x5a; 32];

fn tls() -> (Vec<u8>, Arc<baton::tls::ServerConfig>) {
    common::tlsclient::test_server_tls("fleet")
}

struct Fleet2 {
    sim: MultiSim,
    repo: MemRepository,
    fleets: Vec<Arc<Fleet>>,
}

/// Two hosts, one worker each, sharing `repo`. Host i is sim worker i.
fn two_hosts(cfg: Arc<baton::tls::ServerConfig>, seed: u64) -> Fleet2 {
    let mut sim = MultiSim::new(cfg.clone(), 2, seed);
    let repo = MemRepository::default();
    // The neighbour table is per host in production; one shared here so
    // that host B knows the client's and the backend's MACs (ARP goes to
    // host A in this model).
    let arp = Arc::new(ArpCache::new(256));
    let mut fleets = Vec::new();
    for i in 0..2 {
        let mut w = Worker::new(worker_params(1, 0), cfg.clone(), arp.clone(), Box::new(SeededEntropy::new(seed + 10 + i as u64)));
        w.attach_fabric(fabric(1));
        let f = Arc::new(Fleet::new(
            Box::new(repo.clone()),
            KeyRing::new(7, &FLEET_KEY, Instant::ZERO),
            100 + i as u32,
            seed + i as u64,
            FleetParams::default(),
        ));
        // Both hosts' clocks read Unix time 1.7e9 s at the sim's zero.
        f.set_wall_offset(1_700_000_000_000_000);
        w.attach_fleet(f.clone());
        w.set_host_slice(i, 2);
        sim.workers[i] = w;
        fleets.push(f);
    }
    Fleet2 { sim, repo, fleets }
}

/// One whole proxied connection, every frame to host `h`.
fn connection(sim: &mut MultiSim, ccfg: &Arc<rustls::ClientConfig>, h: usize, port: u16) -> Option<HandshakeKind> {
    let upload = pattern(10_000);
    let mut client = ClientApp::new(&mut sim.client, ccfg.clone(), "baton.test", upload.clone(), port);
    let mut backend = BackendApp::new(&mut sim.backend, 20_000);
    for _ in 0..20_000 {
        client.step(&mut sim.client);
        backend.step(&mut sim.backend);
        sim.step(&mut |_, _| h);
        assert!(client.error.is_none(), "client error: {:?}", client.error);
        if client.done() && backend.closed && sim.conns() == 0 {
            break;
        }
        sim.now_ms += 1;
    }
    assert!(client.got_close, "connection on host {h} did not finish");
    assert_eq!(sha256_hex(&backend.received), sha256_hex(&upload));
    assert_eq!(sha256_hex(&client.downloaded), sha256_hex(&pattern(20_000)));
    client.conn.handshake_kind()
}

#[test]
fn ticket_issued_on_host_a_resumes_on_host_b_through_the_repository() {
    let (ca, cfg) = tls();
    let mut f = two_hosts(cfg, 301);
    let ccfg = client_config(&ca, None, None, &[]);
    assert_eq!(connection(&mut f.sim, &ccfg, 0, 42000), Some(HandshakeKind::Full));
    // The ticket is in the repository only: no host keeps a copy.
    assert_eq!(f.repo.count(RecordKind::Session), 1);
    assert_eq!(f.sim.workers[0].fabric().unwrap().tickets.occupied(), 0);
    assert_eq!(connection(&mut f.sim, &ccfg, 1, 42001), Some(HandshakeKind::Resumed));
    let b = &f.sim.workers[1].stats;
    assert_eq!((b.fleet_session_fetches, b.fleet_sessions_found, b.handshakes_resumed), (1, 1, 1));
    // Taken there (the fresh ticket from host B replaced it).
    assert_eq!(f.repo.count(RecordKind::Session), 1);
    // And B's ticket resumes on A.
    assert_eq!(connection(&mut f.sim, &ccfg, 0, 42002), Some(HandshakeKind::Resumed));
    assert_eq!(f.sim.workers[0].stats.fleet_sessions_found, 1);
}

#[test]
fn repository_down_gives_full_handshakes_and_resumption_returns_after() {
    let (ca, cfg) = tls();
    let mut f = two_hosts(cfg, 302);
    let ccfg = client_config(&ca, None, None, &[]);
    assert_eq!(connection(&mut f.sim, &ccfg, 0, 42100), Some(HandshakeKind::Full));
    f.repo.set_down(true);
    // The ticket cannot be fetched: a full handshake, which completes.
    assert_eq!(connection(&mut f.sim, &ccfg, 1, 42101), Some(HandshakeKind::Full));
    assert_eq!(f.sim.workers[1].stats.fleet_sessions_found, 0);
    f.repo.set_down(false);
    // That connection's ticket could not be stored while down: the client
    // has the first one still only if rustls kept it; either way a full
    // handshake now stores a ticket again and the next one resumes.
    let _ = connection(&mut f.sim, &ccfg, 0, 42102);
    assert_eq!(connection(&mut f.sim, &ccfg, 1, 42103), Some(HandshakeKind::Resumed));
}

#[test]
fn acl_that_refuses_sessions_gives_a_full_handshake() {
    let (ca, cfg) = tls();
    let mut f = two_hosts(cfg, 303);
    let ccfg = client_config(&ca, None, None, &[]);
    assert_eq!(connection(&mut f.sim, &ccfg, 0, 42200), Some(HandshakeKind::Full));
    f.repo.refuse(RecordKind::Session);
    assert_eq!(connection(&mut f.sim, &ccfg, 1, 42201), Some(HandshakeKind::Full));
    assert_eq!(f.sim.workers[1].stats.fleet_session_fetches, 1);
    assert_eq!(f.sim.workers[1].stats.fleet_sessions_found, 0);
}

/// A download from host A; A is drained half way (every connection into
/// the repository) and the route switches to host B: `backend_first`
/// sends the backend's frames to B before the client's, so B finds the
/// connection through the backend flow's alias.
fn drain_mid_transfer(seed: u64, backend_first: bool) {
    let (ca, cfg) = tls();
    let mut f = two_hosts(cfg, seed);
    let keys = Arc::new(Keys::default());
    let mut c = (*client_config(&ca, None, None, &[])).clone();
    c.key_log = keys.clone();
    let ccfg = Arc::new(c);
    let mut scanned = 0;
    let down = 1 << 20;
    let upload = pattern(64 * 1024);
    let mut client = ClientApp::new(&mut f.sim.client, ccfg.clone(), "baton.test", upload.clone(), 42300);
    let mut backend = BackendApp::new(&mut f.sim.backend, down);
    let mut drained_at: Option<u64> = None;
    let mut route_b_client = false;
    for _ in 0..200_000u64 {
        client.step(&mut f.sim.client);
        backend.step(&mut f.sim.backend);
        let (to_b_client, to_b_backend) = (route_b_client, drained_at.is_some() && f.sim.workers[0].conn_count() == 0);
        f.sim.step(&mut |_, fr| {
            let from_backend = tcp_ports(fr).map(|(sp, _)| sp == common::BACKEND_PORT).unwrap_or(false);
            let b = if from_backend { (backend_first && to_b_backend) || to_b_client } else { to_b_client };
            usize::from(b)
        });
        assert!(client.error.is_none(), "client error: {:?}", client.error);
        if drained_at.is_none() && client.downloaded.len() > 300 * 1024 {
            f.fleets[0].set_draining(true);
            drained_at = Some(f.sim.now_ms);
        }
        if let Some(t) = drained_at {
            // The route change reaches the client side later when the
            // backend side goes first.
            if f.sim.workers[0].conn_count() == 0 && (!backend_first || f.sim.now_ms > t + 30) {
                route_b_client = true;
            }
        }
        if f.repo.count(RecordKind::Conn) == 1 {
            // The connection is in the repository only: nothing there may
            // hold its secrets, nor the keys and IVs derived from them.
            let secrets = keys.all();
            assert!(secrets.len() >= 4, "key log: {} secrets", secrets.len());
            for v in f.repo.values() {
                for sec in &secrets {
                    for needle in derived(sec) {
                        assert!(!contains(&v, &needle), "a secret or derived key is in the repository in clear");
                    }
                }
            }
            scanned += 1;
        }
        if client.done() && backend.closed && f.sim.conns() == 0 {
            break;
        }
        f.sim.now_ms += 1;
    }
    assert!(scanned > 0, "the record was never seen in the repository");
    assert!(client.got_close, "download did not finish: {} of {down}", client.downloaded.len());
    assert_eq!(sha256_hex(&backend.received), sha256_hex(&upload), "upload bytes differ");
    assert_eq!(sha256_hex(&client.downloaded), sha256_hex(&pattern(down)), "download bytes differ");
    let (a, b) = (&f.sim.workers[0].stats, &f.sim.workers[1].stats);
    assert_eq!(a.fleet_conns_exported, 1);
    assert_eq!(b.fleet_conns_imported, 1);
    assert_eq!((a.fleet_exports_failed, a.fleet_exports_lost), (0, 0));
    assert_eq!(f.sim.max_holders, 1, "two hosts held the connection at once");
    // Nothing left behind: no connection record, no alias, nothing on A.
    assert_eq!(f.repo.count(RecordKind::Conn), 0);
    assert_eq!(f.repo.count(RecordKind::ConnAlias), 0);
    assert_eq!(f.sim.workers[0].conn_count(), 0);
    assert_eq!(f.sim.workers[0].flow_count(), 0);
    assert_eq!(f.sim.workers[0].fleet_pending(), (0, 0));
    if backend_first {
        assert_eq!(f.sim.workers[1].stats.fleet_alias_hits, 1, "found through the backend flow's alias");
    }
}

#[test]
fn draining_host_a_mid_transfer_moves_the_connection_to_host_b() {
    drain_mid_transfer(304, false);
}

#[test]
fn backend_frames_reaching_host_b_first_find_the_connection_by_its_alias() {
    drain_mid_transfer(305, true);
}

/// The client's TLS secrets (SSLKEYLOGFILE lines), as rustls logs them.
#[derive(Default, Debug)]
struct Keys(std::sync::Mutex<Vec<Vec<u8>>>);

impl rustls::KeyLog for Keys {
    fn log(&self, _label: &str, _client_random: &[u8], secret: &[u8]) {
        self.0.lock().unwrap().push(secret.to_vec());
    }
}

impl Keys {
    fn all(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().clone()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() >= 12 && hay.windows(needle.len()).any(|w| w == needle)
}

/// A secret and what RFC 8446 §7.3 derives from it: the AES-128-GCM
/// key, the IV, and the next traffic secret (§7.2), by HKDF-Expand-Label
/// with SHA-256 (the suite the simulations negotiate).
fn derived(secret: &[u8]) -> Vec<Vec<u8>> {
    struct Len(usize);
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = ring::hkdf::Prk::new_less_safe(ring::hkdf::HKDF_SHA256, secret);
    let mut out = vec![secret.to_vec()];
    for (label, n) in [(&b"key"[..], 16usize), (b"iv", 12), (b"traffic upd", 32)] {
        let mut full = b"tls13 ".to_vec();
        full.extend_from_slice(label);
        let info_len = (n as u16).to_be_bytes();
        let lab_len = [full.len() as u8];
        let ctx_len = [0u8];
        let info: [&[u8]; 4] = [&info_len, &lab_len, &full, &ctx_len];
        let okm = prk.expand(&info, Len(n)).unwrap();
        let mut b = vec![0u8; n];
        okm.fill(&mut b).unwrap();
        out.push(b);
    }
    out
}

/// Regression: with the repository down, a host drain exported every
/// connection, got it back (not stored) and exported it again on every
/// poll, logging each time. Now the connection stays and exports pause.
#[test]
fn draining_while_the_repository_is_down_keeps_the_connection_and_pauses_exports() {
    let (ca, cfg) = tls();
    let mut f = two_hosts(cfg, 306);
    let ccfg = client_config(&ca, None, None, &[]);
    let down = 512 * 1024;
    let upload = pattern(16 * 1024);
    let mut client = ClientApp::new(&mut f.sim.client, ccfg.clone(), "baton.test", upload.clone(), 42400);
    let mut backend = BackendApp::new(&mut f.sim.backend, down);
    let mut drained_at = None;
    for _ in 0..100_000u64 {
        client.step(&mut f.sim.client);
        backend.step(&mut f.sim.backend);
        f.sim.step(&mut |_, _| 0);
        assert!(client.error.is_none(), "client error: {:?}", client.error);
        if drained_at.is_none() && client.downloaded.len() > 64 * 1024 {
            f.repo.set_down(true);
            f.fleets[0].set_draining(true);
            drained_at = Some(f.sim.now_ms);
        }
        if client.done() && backend.closed && f.sim.conns() == 0 {
            break;
        }
        f.sim.now_ms += 1;
    }
    assert!(client.got_close, "download did not finish: {} of {down}", client.downloaded.len());
    assert_eq!(sha256_hex(&client.downloaded), sha256_hex(&pattern(down)), "download bytes differ");
    let a = &f.sim.workers[0].stats;
    let ms = f.sim.now_ms - drained_at.unwrap();
    // One try per pause (500 ms), not one per poll.
    assert!(a.fleet_exports_failed >= 1 && a.fleet_exports_failed <= ms / 500 + 2, "{} failed exports in {ms} ms", a.fleet_exports_failed);
    assert_eq!(a.fleet_exports_lost, 0);
    assert_eq!(f.sim.workers[1].stats.fleet_conns_imported, 0);
}

/// Someone with write access to Redis cannot make a host import a
/// connection: a forged record under the connection's key does not open
/// (AES-GCM over the record, AAD over kind, identity, key id, expiry); the
/// taker counts it, imports nothing and does not panic. (The connection is
/// lost: the forgery's take consumed its key, safety over liveness.) A
/// genuine record under another flow's key fails the same way: the AAD
/// binds the identity (`session::seal` tests).
#[test]
fn a_forged_record_in_the_repository_does_not_open() {
    let (ca, cfg) = tls();
    let mut f = two_hosts(cfg, 307);
    let ccfg = client_config(&ca, None, None, &[]);
    let mut client = ClientApp::new(&mut f.sim.client, ccfg.clone(), "baton.test", pattern(8 * 1024), 42500);
    let mut backend = BackendApp::new(&mut f.sim.backend, 256 * 1024);
    let mut phase = 0;
    let mut to_b = false;
    for _ in 0..20_000u64 {
        client.step(&mut f.sim.client);
        backend.step(&mut f.sim.backend);
        let b = to_b;
        f.sim.step(&mut |_, _| usize::from(b));
        assert!(client.error.is_none(), "client error: {:?}", client.error);
        if phase == 0 && client.downloaded.len() > 64 * 1024 {
            f.fleets[0].set_draining(true);
            phase = 1;
        }
        if phase == 1 && f.sim.workers[0].conn_count() == 0 && f.repo.count(RecordKind::Conn) == 1 {
            let (_, id, v) = f.repo.entries().into_iter().find(|e| e.0 == RecordKind::Conn).unwrap();
            let mut forged = v.clone();
            let n = forged.len();
            forged[n / 2] ^= 0x40;
            f.repo.put_raw(RecordKind::Conn, &id, &forged);
            to_b = true;
            phase = 2;
        }
        if phase == 2 && f.sim.workers[1].stats.fleet_records_unreadable >= 1 {
            break;
        }
        f.sim.now_ms += 1;
    }
    assert_eq!(phase, 2, "never reached the forged record");
    let b = &f.sim.workers[1].stats;
    assert_eq!(b.fleet_records_unreadable, 1, "the forged record");
    assert_eq!((b.fleet_conns_imported, f.sim.workers[1].conn_count()), (0, 0), "nothing imported");
    assert_eq!(f.sim.max_holders, 1);
}

/// Regression: host B took a forged record under the connection's key
/// (through the backend flow's alias: a download, so only the backend's
/// frames arrive); the genuine record was put back 60 ms later, and the
/// transfer stalled for good. The alias take had consumed the backend
/// flow's only link to the record, every later backend retransmission
/// missed, and the client, with nothing unacknowledged, sent nothing to
/// look its own key up with. The alias now goes back when the take it led
/// to imports nothing; the backend's next retransmission finds the record.
#[test]
fn backend_alias_survives_a_connection_take_that_imports_nothing() {
    let (ca, cfg) = tls();
    let mut f = two_hosts(cfg, 308);
    let ccfg = client_config(&ca, None, None, &[]);
    let down = 256 * 1024;
    let upload = pattern(8 * 1024);
    let mut client = ClientApp::new(&mut f.sim.client, ccfg.clone(), "baton.test", upload.clone(), 42600);
    let mut backend = BackendApp::new(&mut f.sim.backend, down);
    let mut phase = 0;
    let mut to_b = false;
    let mut genuine = None;
    let mut t_forged = 0;
    let mut client_frames_late = 0u64;
    for _ in 0..60_000u64 {
        client.step(&mut f.sim.client);
        backend.step(&mut f.sim.backend);
        // Between the put-back and B's import.
        let (b, late) = (to_b, phase == 4 && f.sim.workers[1].stats.fleet_conns_imported == 0);
        f.sim.step(&mut |_, fr| {
            if late && tcp_ports(fr).map(|(sp, _)| sp != common::BACKEND_PORT).unwrap_or(false) {
                client_frames_late += 1;
            }
            usize::from(b)
        });
        assert!(client.error.is_none(), "client error: {:?}", client.error);
        if phase == 0 && client.downloaded.len() > 64 * 1024 {
            f.fleets[0].set_draining(true);
            phase = 1;
        }
        if phase == 1 && f.sim.workers[0].conn_count() == 0 && f.repo.count(RecordKind::Conn) == 1 {
            let (_, id, v) = f.repo.entries().into_iter().find(|e| e.0 == RecordKind::Conn).unwrap();
            let mut forged = v.clone();
            let n = forged.len();
            forged[n / 2] ^= 0x40;
            f.repo.put_raw(RecordKind::Conn, &id, &forged);
            genuine = Some((id, v));
            to_b = true;
            phase = 2;
        }
        if phase == 2 && f.sim.workers[1].stats.fleet_records_unreadable >= 1 {
            t_forged = f.sim.now_ms;
            phase = 3;
        }
        // Past the negative cache's 50 ms: B asks again on the next frame.
        if phase == 3 && f.sim.now_ms > t_forged + 60 {
            let (id, v) = genuine.take().unwrap();
            f.repo.put_raw(RecordKind::Conn, &id, &v);
            phase = 4;
        }
        if client.done() && backend.closed && f.sim.conns() == 0 {
            break;
        }
        f.sim.now_ms += 1;
    }
    assert_eq!(phase, 4, "never put the genuine record back");
    let b = &f.sim.workers[1].stats;
    assert!(
        client.got_close,
        "download stalled: {} of {down}; B: {} look-ups, {} alias hits, {} aliases restored, {} imported",
        client.downloaded.len(),
        b.fleet_lookups,
        b.fleet_alias_hits,
        b.fleet_aliases_restored,
        b.fleet_conns_imported
    );
    assert_eq!(sha256_hex(&client.downloaded), sha256_hex(&pattern(down)), "download bytes differ");
    assert_eq!(sha256_hex(&backend.received), sha256_hex(&upload), "upload bytes differ");
    assert_eq!((b.fleet_records_unreadable, b.fleet_conns_imported), (1, 1), "the forgery, then the genuine record");
    assert!(b.fleet_alias_hits >= 2 && b.fleet_aliases_restored >= 1, "found again through the alias");
    assert_eq!(f.sim.max_holders, 1, "two hosts held the connection at once");
    assert_eq!(f.repo.count(RecordKind::Conn), 0);
    assert_eq!(f.repo.count(RecordKind::ConnAlias), 0, "no alias left behind");
    // What made the stall possible: the client sent nothing meanwhile, so
    // only the backend flow, through its alias, could find the record.
    assert_eq!(client_frames_late, 0, "a client frame reached baton before the import");
}
