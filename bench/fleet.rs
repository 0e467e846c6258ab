//! The fleet repository's benchmarks (issue 4), against a redis-server on
//! loopback that the bench starts itself (tests/redis_support):
//!
//! 1. Resumed handshakes (psk_dhe_ke, a rustls client) served with the
//!    ticket in the host's session table (`WorkerTickets` over a `Fabric`)
//!    against served through the repository (the TLS server hands out a
//!    `session_fetch` job; the bench answers it with a real
//!    `RepositoryClient::take`, opens the record as the worker does with
//!    `open_fetched`; tickets are put with `FleetTickets`). Interleaved
//!    rounds (one of each and a PING per round), medians. Server side
//!    only: wall time and this thread's CPU time.
//! 2. Cross-host handoff: two simulated hosts (each a `Worker` with its
//!    own fabric, its own `Repository` service and `RedisSink`), one live
//!    TLS connection mid-download moved A → B → A … by host drains. Each
//!    handoff is timed from the drain's export on the giver to the first
//!    byte the taker forwards, in parts: export (encode + seal + submit +
//!    purge), SET round trip (until the giver's worker has the
//!    confirmation), GETDEL round trip (from the next frame reaching the
//!    taker until its worker has the record), open + import + first byte
//!    forwarded. The bytes of both directions are checked at the end.
//!
//!     cargo bench --bench fleet [-- ROUNDS [HANDOFFS]]
//!
//! ROUNDS (default 500, 10..=100000) handshake rounds, HANDOFFS (default
//! 300, 4..=100000) handoffs. The bench thread waits for the repository
//! by polling with `yield_now` (a worker busy-polls on its own core; this
//! machine may have fewer cores than bench thread + service thread +
//! redis-server).

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../tests/redis_support/mod.rs"]
mod redis_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as Clock, SystemTime, UNIX_EPOCH};

use baton::entropy::{OsEntropy, SeededEntropy};
use baton::net::arp::ArpCache;
use baton::session::repository::{record_key, Op, RecordKind, Repository, RepositoryClient, RepositoryConfig, Request};
use baton::session::seal::{KeyRing, Sealer, SealerId};
use baton::time::Instant;
use baton::tls::{JobResult, ServerConfig, TicketStore, TlsServer};
use baton::worker::fleet::{flow_identity, open_fetched, FetchedExpiry, Fleet, FleetParams, FleetTickets, RedisSink, RepositorySink};
use baton::worker::tickets::WorkerTickets;
use baton::worker::Worker;
use baton::session::table::{HeapArena, SessionTable, TableConfig};
use baton::worker::handoff::{DynArena, Fabric};
use common::tlsclient::{client_config, BackendApp, ClientApp};
use common::{worker_params, Host, BACKEND_IP, BACKEND_MAC, BATON_MAC, CLIENT_IP, CLIENT_MAC};
use cpu_time::ThreadTime;
use zeroize::Zeroizing;

const FLEET_KEY: [u8; 32] = [0x5a; 32];

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[(((v.len() as f64 - 1.0) * q).round() as usize).min(v.len() - 1)]
}

fn unix_now() -> Instant {
    Instant::from_micros(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64)
}

fn tls() -> (Vec<u8>, Arc<ServerConfig>) {
    let dir = std::env::temp_dir().join(format!("baton-bench-fleet-{}", std::process::id()));
    let g = baton::demo::certs::generate(&dir, &["baton.test"], &[]).unwrap();
    let chain = baton::tls::load_cert_chain_pem(&std::fs::read(&g.cert).unwrap()).unwrap();
    let key = baton::tls::SigningKey::from_pem(&std::fs::read(&g.key).unwrap()).unwrap();
    let cfg = Arc::new(ServerConfig::new(chain, key, vec![]).unwrap());
    let ca = std::fs::read(&g.ca).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (ca, cfg)
}

/// A resumption-capable client config with a session cache of its own
/// (a clone would share the original's).
fn resuming_client(ca: &[u8]) -> Arc<rustls::ClientConfig> {
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    let mut c = (*client_config(ca, Some(suite), Some(vec![rustls::crypto::ring::kx_group::X25519]), &[])).clone();
    c.resumption = rustls::client::Resumption::in_memory_sessions(64);
    Arc::new(c)
}

fn repo_config(r: &redis_support::RedisServer) -> RepositoryConfig {
    // Generous budgets: this shared machine can stall a thread for
    // milliseconds, and a lost export would end the bench.
    RepositoryConfig { url: r.url(), timeout_ms: 1000, connect_timeout_ms: 1000, threads: 1, ..Default::default() }
}

/// A host's fabric for one worker, small (tests/common's is sized for
/// many records of up to 1 MiB: gigabytes this bench would touch).
fn small_fabric() -> Arc<Fabric> {
    let cfg = TableConfig { slots: 16, max_record: 1 << 20, probe: 16, hash_key: [9; 32] };
    let words = SessionTable::<HeapArena>::words_needed(cfg.slots, cfg.max_record).unwrap();
    let table = SessionTable::from_words(DynArena(Box::new(HeapArena::new(words))), &cfg).unwrap();
    let tickets = baton::worker::handoff::heap_table(1024, 1024, [8; 32]).unwrap();
    Arc::new(Fabric::new(1, 64, table, tickets, KeyRing::new(1, &[0x42; 32], Instant::ZERO), 1, 1))
}

// ---------------------------------------------------------------------------
// 1. Resumed handshakes: local table vs repository

/// What the server side of one handshake cost.
#[derive(Default, Clone, Copy)]
struct Cost {
    wall: Duration,
    cpu: Duration,
}

/// One handshake of `cc` against baton's server with `store`; session
/// fetch jobs are answered by `fetch`. Only the server's part is timed.
fn handshake(
    sc: &Arc<ServerConfig>,
    cc: &Arc<rustls::ClientConfig>,
    rng: &mut OsEntropy,
    store: &mut dyn TicketStore,
    fetch: &mut dyn FnMut(&[u8]) -> Option<Zeroizing<Vec<u8>>>,
) -> (Cost, bool) {
    let mut client = rustls::ClientConnection::new(cc.clone(), "baton.test".try_into().unwrap()).unwrap();
    let mut cost = Cost::default();
    let mut server: Option<TlsServer> = None;
    let mut buf = Vec::new();
    for _ in 0..20 {
        buf.clear();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        let (w0, c0) = (Clock::now(), ThreadTime::now());
        let s = server.get_or_insert_with(|| TlsServer::new(sc.clone()));
        let mut off = 0;
        while off < buf.len() {
            let n = s.read_tls(&buf[off..]);
            s.process_with(rng, store).unwrap();
            while let Some(job) = s.take_job() {
                let r = match job.session_fetch() {
                    Some(id) => JobResult::Session(fetch(id)),
                    None => job.run(rng),
                };
                s.complete_job(r).unwrap();
                s.process_with(rng, store).unwrap();
            }
            if n == 0 {
                break;
            }
            off += n;
        }
        let out = s.tls_output().to_vec();
        s.consume_output(out.len());
        cost.cpu += c0.elapsed();
        cost.wall += w0.elapsed();
        let mut rd = &out[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets().unwrap();
        }
        if !client.is_handshaking() && !s.is_handshaking() && !client.wants_write() && s.tls_output().is_empty() {
            return (cost, s.is_resumed());
        }
    }
    panic!("handshake did not complete");
}

/// A repository sink that keeps what `FleetTickets` submits, for the
/// bench to run on its own connection (as the service thread would).
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Request>>>);

impl RepositorySink for Collect {
    fn submit(&self, req: Request) -> Result<(), Request> {
        self.0.lock().unwrap().push(req);
        Ok(())
    }
}

fn handshakes(rounds: usize, ca: &[u8], sc: &Arc<ServerConfig>, redis: &redis_support::RedisServer) {
    let mut rng = OsEntropy::new();
    // (a) The host's session table.
    let fab = small_fabric();
    let mut table_sealer = Sealer::new(&fab.keys(), SealerId { host: 1, boot: 1, worker: 0 });
    let cc_a = resuming_client(ca);
    // (b) The repository: tickets through FleetTickets, takes by GETDEL.
    let collect = Collect::default();
    let fleet = Fleet::new(Box::new(collect.clone()), KeyRing::new(7, &FLEET_KEY, Instant::ZERO), 100, 1, FleetParams::default());
    let mut fleet_sealer = Sealer::new(&fleet.keys(), SealerId { host: 100, boot: 1, worker: 0 });
    let mut fetched = FetchedExpiry::new();
    let mut noted = FetchedExpiry::new();
    let mut client = RepositoryClient::connect(&repo_config(redis)).expect("connect to the bench's redis-server");
    let cc_b = resuming_client(ca);

    let mut no_fetch = |_: &[u8]| -> Option<Zeroizing<Vec<u8>>> { panic!("the table path fetched") };
    // One round of each; `measure` false for the warm-up.
    struct Acc {
        a_wall: Vec<f64>,
        a_cpu: Vec<f64>,
        b_wall: Vec<f64>,
        b_cpu: Vec<f64>,
        take: Vec<f64>,
        put_wall: Vec<f64>,
        put_cpu: Vec<f64>,
        ping: Vec<f64>,
        not_resumed: (usize, usize),
    }
    let mut acc = Acc {
        a_wall: vec![],
        a_cpu: vec![],
        b_wall: vec![],
        b_cpu: vec![],
        take: vec![],
        put_wall: vec![],
        put_cpu: vec![],
        ping: vec![],
        not_resumed: (0, 0),
    };
    for round in 0..rounds + 20 {
        let measure = round >= 20;
        // (a)
        let now = Instant::from_millis(1_000_000);
        let mut t = WorkerTickets::new(&fab, &mut table_sealer, now);
        let (c, resumed) = handshake(sc, &cc_a, &mut rng, &mut t, &mut no_fetch);
        if measure {
            if resumed {
                acc.a_wall.push(us(c.wall));
                acc.a_cpu.push(us(c.cpu));
            } else {
                acc.not_resumed.0 += 1;
            }
        }
        // (b)
        let wall = unix_now();
        let mut take_time = Duration::ZERO;
        let (c, resumed, put_n) = {
            let mut ft = FleetTickets { fleet: &fleet, sealer: &mut fleet_sealer, wall, fetched: &mut fetched, put: 0, not_put: 0 };
            let mut fetch = |id: &[u8]| {
                let t0 = Clock::now();
                let sealed = client.take(RecordKind::Session, id).expect("GETDEL");
                take_time = t0.elapsed();
                let sealed = sealed?;
                // As the worker does (it notes the expiry for a put-back
                // in its own map, lent to the ticket store later).
                open_fetched(&fleet, id, &sealed, wall, &mut noted)
            };
            let (c, r) = handshake(sc, &cc_b, &mut rng, &mut ft, &mut fetch);
            (c, r, ft.put)
        };
        fetched.clear();
        noted.clear();
        // The tickets it issued, put as the service thread would.
        let reqs = std::mem::take(&mut *collect.0.lock().unwrap());
        assert_eq!(reqs.len() as u64, put_n, "FleetTickets submitted what it counted");
        let (w0, c0) = (Clock::now(), ThreadTime::now());
        for r in reqs {
            match r.op {
                Op::Put { kind, id, value, ttl } => client.put(kind, &id, &value, ttl).expect("SET"),
                other => panic!("unexpected repository request {other:?}"),
            }
        }
        let (pc, pw) = (c0.elapsed(), w0.elapsed());
        let t0 = Clock::now();
        client.ping().expect("PING");
        let ping = t0.elapsed();
        if measure {
            if resumed {
                acc.b_wall.push(us(c.wall));
                acc.b_cpu.push(us(c.cpu));
                acc.take.push(us(take_time));
                acc.put_wall.push(us(pw));
                acc.put_cpu.push(us(pc));
            } else {
                acc.not_resumed.1 += 1;
            }
            acc.ping.push(us(ping));
        }
    }
    if acc.a_wall.is_empty() || acc.b_wall.is_empty() {
        println!("resumed handshakes: none resumed (table {}, repository {})", acc.a_wall.len(), acc.b_wall.len());
        std::process::exit(1);
    }
    let (aw, ac) = (pct(&mut acc.a_wall, 0.5), pct(&mut acc.a_cpu, 0.5));
    let (bw, bc) = (pct(&mut acc.b_wall, 0.5), pct(&mut acc.b_cpu, 0.5));
    let (tk, ping) = (pct(&mut acc.take, 0.5), pct(&mut acc.ping, 0.5));
    let (pw, pc) = (pct(&mut acc.put_wall, 0.5), pct(&mut acc.put_cpu, 0.5));
    println!(
        "resumed TLS 1.3 handshakes (psk_dhe_ke, x25519, AES-128-GCM), {rounds} interleaved rounds, medians, server side, one thread; resumed {}+{} of {rounds}+{rounds}",
        acc.a_wall.len(),
        acc.b_wall.len()
    );
    println!("  (a) ticket in the local table:  wall {aw:6.1} µs  {:6.0} hs/s   CPU {ac:6.1} µs  {:6.0} hs/CPU-s   (reference)", 1e6 / aw, 1e6 / ac);
    println!(
        "  (b) ticket through Redis:       wall {bw:6.1} µs  {:6.0} hs/s   CPU {bc:6.1} µs  {:6.0} hs/CPU-s   (GETDEL waited for in line)",
        1e6 / bw,
        1e6 / bc
    );
    println!(
        "      + the new ticket's SET (the service thread's, off the handshake's path): wall {pw:5.1} µs  CPU {pc:5.1} µs; (b) with it {:6.0} hs/CPU-s",
        1e6 / (bc + pc)
    );
    println!(
        "  ratio b/a: wall {:.2}   CPU {:.2} (with the SET {:.2})   (reference 1.00)",
        aw / bw,
        ac / bc,
        ac / (bc + pc)
    );
    println!(
        "  Redis round trip in (b): PING p50 {ping:5.1} µs = {:.0}% of (b)'s wall; GETDEL in (b) p50 {tk:5.1} µs = {:.0}%; (b) - (a) wall {:5.1} µs",
        100.0 * ping / bw,
        100.0 * tk / bw,
        bw - aw
    );
}

// ---------------------------------------------------------------------------
// 2. Cross-host handoff through Redis

/// The segment: the client and backend hosts (smoltcp), baton's two
/// hosts, frames on their way to baton, virtual time.
struct Net {
    now_ms: u64,
    client: Host,
    backend: Host,
    to_baton: std::collections::VecDeque<Vec<u8>>,
    workers: Vec<Worker>,
}

impl Net {
    fn conns(&self) -> usize {
        self.workers.iter().map(|w| w.conn_count()).sum()
    }
}

struct Hosts {
    sim: Net,
    fleets: Vec<Arc<Fleet>>,
    _repos: Vec<Repository>,
}

/// Two hosts, one worker each, with their own fabric, repository service
/// and sink, sharing the one redis-server (as tests/fleet_hosts.rs, with
/// Redis for the in-memory repository).
fn two_hosts(cfg: Arc<ServerConfig>, redis: &redis_support::RedisServer, seed: u64) -> Hosts {
    let mut sim = Net {
        now_ms: 0,
        client: Host::new(CLIENT_MAC, CLIENT_IP, seed ^ 1),
        backend: Host::new(BACKEND_MAC, BACKEND_IP, seed ^ 2),
        to_baton: Default::default(),
        workers: Vec::new(),
    };
    // One neighbour table for both (ARP goes to host A in this model).
    let arp = Arc::new(ArpCache::new(256));
    let (mut fleets, mut repos) = (Vec::new(), Vec::new());
    for i in 0..2 {
        let repo = Repository::start(&repo_config(redis)).expect("repository service");
        let sink = RedisSink { handle: repo.handle(), stats: repo.stats() };
        let mut w = Worker::new(worker_params(1, 0), cfg.clone(), arp.clone(), Box::new(SeededEntropy::new(seed + 10 + i as u64)));
        w.attach_fabric(small_fabric());
        let f = Arc::new(Fleet::new(Box::new(sink), KeyRing::new(7, &FLEET_KEY, Instant::ZERO), 100 + i as u32, seed + i as u64, FleetParams::default()));
        f.set_wall_offset(unix_now().micros() as i64);
        w.attach_fleet(f.clone());
        w.set_host_slice(i, 2);
        sim.workers.push(w);
        fleets.push(f);
        repos.push(repo);
    }
    Hosts { sim, fleets, _repos: repos }
}

/// The hosts run and put their frames on the segment.
fn hosts_step(sim: &mut Net, client: &mut ClientApp, backend: &mut BackendApp) {
    client.step(&mut sim.client);
    backend.step(&mut sim.backend);
    sim.client.poll(sim.now_ms);
    while let Some(f) = sim.client.dev.tx.pop_front() {
        common::route(CLIENT_MAC, f, &mut sim.to_baton, &mut sim.client, &mut sim.backend);
    }
    sim.backend.poll(sim.now_ms);
    while let Some(f) = sim.backend.dev.tx.pop_front() {
        common::route(BACKEND_MAC, f, &mut sim.to_baton, &mut sim.client, &mut sim.backend);
    }
}

fn is_arp(f: &[u8]) -> bool {
    f.get(12..14) == Some(&[0x08, 0x06])
}

fn from_client(f: &[u8]) -> bool {
    f.get(6..12) == Some(&CLIENT_MAC[..]) && !is_arp(f)
}

/// TCP payload length of a TCP/IPv4 frame (0 for anything else).
fn payload_len(f: &[u8]) -> usize {
    let lens = || -> Option<usize> {
        common::multi::tcp_ports(f)?;
        let ihl = ((*f.get(14)? & 0x0f) as usize) * 4;
        let ip_total = u16::from_be_bytes([*f.get(16)?, *f.get(17)?]) as usize;
        let tcp_off = ((*f.get(14 + ihl + 12)? >> 4) as usize) * 4;
        Some(ip_total.saturating_sub(ihl + tcp_off))
    };
    lens().unwrap_or(0)
}

/// Frames for baton go to host `cur` (ARP to host A), both hosts poll
/// twice, their frames go on the segment; the clock moves 1 ms.
fn baton_step(sim: &mut Net, cur: usize) {
    let now = Instant::from_millis(sim.now_ms);
    let mut out: Vec<Vec<u8>> = Vec::new();
    while let Some(f) = sim.to_baton.pop_front() {
        let w = if is_arp(&f) { 0 } else { cur };
        sim.workers[w].handle_frame(&f, now, &mut |x| out.push(x.to_vec()));
    }
    for _ in 0..2 {
        for w in sim.workers.iter_mut() {
            w.poll(now, &mut |x| out.push(x.to_vec()));
        }
    }
    for f in out {
        common::route(BATON_MAC, f, &mut sim.to_baton, &mut sim.client, &mut sim.backend);
    }
    sim.now_ms += 1;
}

/// Polls `w` (yielding between polls) until `done(w)`; panics after 5 s.
fn spin(w: &mut Worker, now: Instant, out: &mut Vec<Vec<u8>>, what: &str, done: &dyn Fn(&Worker) -> bool) {
    let deadline = Clock::now() + Duration::from_secs(5);
    loop {
        w.poll(now, &mut |x| out.push(x.to_vec()));
        if done(w) {
            return;
        }
        assert!(Clock::now() < deadline, "no {what} within 5 s");
        std::thread::yield_now();
    }
}

#[derive(Default)]
struct Parts {
    whole: Vec<f64>,
    export: Vec<f64>,
    set: Vec<f64>,
    getdel: Vec<f64>,
    import: Vec<f64>,
}

/// One handoff's figures.
struct Sample {
    /// Export start, export end, SET confirmed, GETDEL answered (start of
    /// the importing poll), first byte forwarded.
    t: [Clock; 5],
    /// The taker forwarded a byte before the segment's next step.
    forwarded: bool,
    /// The taker forwarded its first byte in the importing poll (else on
    /// a backend frame that waited meanwhile).
    in_import: bool,
    /// Where the first byte went.
    to_client: bool,
    /// The sealed connection record's size in Redis, when peeked.
    record: Option<usize>,
}

impl Parts {
    fn push(&mut self, s: &Sample) {
        let d = |a: usize, b: usize| us(s.t[b] - s.t[a]);
        self.whole.push(d(0, 4));
        self.export.push(d(0, 1));
        self.set.push(d(1, 2));
        self.getdel.push(d(2, 3));
        self.import.push(d(3, 4));
    }
}

/// Moves the connection from host `s` to host `t`; the next client frame
/// is in `sim.to_baton`. With `peek`, reads the record's size in Redis
/// (between the SET and the GETDEL: that sample's times are off).
fn handoff(h: &mut Hosts, s: usize, t: usize, peek: Option<&redis_support::RedisServer>) -> Sample {
    let now = Instant::from_millis(h.sim.now_ms);
    let sim = &mut h.sim;
    let exported0 = sim.workers[s].stats.fleet_conns_exported;
    let imported0 = sim.workers[t].stats.fleet_conns_imported;
    let cf = sim.workers[s].client_flows()[0];
    let mut out: Vec<Vec<u8>> = Vec::new();
    h.fleets[s].set_draining(true);
    // Export (the drain): encode, seal, submit the SET, purge.
    let t0 = Clock::now();
    sim.workers[s].poll(now, &mut |x| out.push(x.to_vec()));
    let t1 = Clock::now();
    assert_eq!(sim.workers[s].conn_count(), 0, "the drain exported the connection");
    // Until the giver's worker has Redis's confirmation.
    spin(&mut sim.workers[s], now, &mut out, "SET confirmation", &|w| {
        assert_eq!((w.stats.fleet_exports_failed, w.stats.fleet_exports_lost), (0, 0), "export failed");
        w.stats.fleet_conns_exported > exported0
    });
    let t2 = Clock::now();
    let record = peek.map(|r| {
        let key = record_key("web", RecordKind::Conn, &flow_identity(&cf));
        redis::cmd("STRLEN").arg(key).query::<usize>(&mut r.admin().expect("admin")).expect("STRLEN")
    });
    // The next frame reaches the taker: its GETDEL.
    let frames: Vec<Vec<u8>> = sim.to_baton.drain(..).collect();
    let (client_frames, rest): (Vec<_>, Vec<_>) = frames.into_iter().partition(|f| from_client(f));
    let mut first_out: Option<(Clock, bool)> = None;
    {
        let mut tx = |x: &[u8]| {
            if first_out.is_none() && payload_len(x) > 0 {
                first_out = Some((Clock::now(), x.get(0..6) == Some(&CLIENT_MAC[..])));
            }
            out.push(x.to_vec());
        };
        for f in &client_frames {
            sim.workers[t].handle_frame(f, now, &mut tx);
        }
    }
    assert!(first_out.is_none() && sim.workers[t].conn_count() == 0, "the taker had the connection before its GETDEL");
    // Until the taker's worker has the record, then open + import + the
    // held frames: the first byte it forwards.
    let deadline = Clock::now() + Duration::from_secs(5);
    let mut t3;
    loop {
        t3 = Clock::now();
        let mut tx = |x: &[u8]| {
            if first_out.is_none() && payload_len(x) > 0 {
                first_out = Some((Clock::now(), x.get(0..6) == Some(&CLIENT_MAC[..])));
            }
            out.push(x.to_vec());
        };
        sim.workers[t].poll(now, &mut tx);
        if sim.workers[t].stats.fleet_conns_imported > imported0 {
            break;
        }
        assert!(Clock::now() < deadline, "no GETDEL answer within 5 s (records unreadable: {})", sim.workers[t].stats.fleet_records_unreadable);
        std::thread::yield_now();
    }
    let in_import = first_out.is_some();
    // The rest of the frames (backend's) go to the new owner.
    for f in &rest {
        let mut tx = |x: &[u8]| {
            if first_out.is_none() && payload_len(x) > 0 {
                first_out = Some((Clock::now(), x.get(0..6) == Some(&CLIENT_MAC[..])));
            }
            out.push(x.to_vec());
        };
        sim.workers[if is_arp(f) { 0 } else { t }].handle_frame(f, now, &mut tx);
    }
    if first_out.is_none() {
        // What those frames made due goes out on the taker's next poll.
        let mut tx = |x: &[u8]| {
            if first_out.is_none() && payload_len(x) > 0 {
                first_out = Some((Clock::now(), x.get(0..6) == Some(&CLIENT_MAC[..])));
            }
            out.push(x.to_vec());
        };
        sim.workers[t].poll(now, &mut tx);
    }
    let forwarded = first_out.is_some();
    let (t4, to_client) = first_out.unwrap_or((Clock::now(), false));
    h.fleets[s].set_draining(false);
    for f in out {
        common::route(BATON_MAC, f, &mut sim.to_baton, &mut sim.client, &mut sim.backend);
    }
    Sample { t: [t0, t1, t2, t3, t4], forwarded, in_import, to_client, record }
}

fn handoffs(n: usize, ca: &[u8], cfg: &Arc<ServerConfig>, redis: &redis_support::RedisServer) {
    let mut h = two_hosts(cfg.clone(), redis, 41);
    let mut pinger = RepositoryClient::connect(&repo_config(redis)).expect("connect to the bench's redis-server");
    let upload = common::tlsclient::pattern(64 * 1024);
    let mut client = ClientApp::new(&mut h.sim.client, client_config(ca, None, None, &[]), "baton.test", upload.clone(), 40000);
    // A download without end until the handoffs are done.
    let mut backend = BackendApp::new(&mut h.sim.backend, usize::MAX / 2);
    let mut cur = 0;
    let mut steps = 0;
    while client.downloaded.len() < 256 * 1024 {
        hosts_step(&mut h.sim, &mut client, &mut backend);
        baton_step(&mut h.sim, cur);
        assert!(client.error.is_none(), "client error: {:?}", client.error);
        steps += 1;
        assert!(steps < 20_000, "the transfer did not start");
    }
    let mut parts = Parts::default();
    let (mut ping, mut in_import, mut to_client, mut least, mut record, mut unforwarded) = (Vec::new(), 0usize, 0usize, usize::MAX, None, 0usize);
    for k in 0..n + 1 {
        // Live data through the current owner: at least 3 steps and
        // 16 KiB more downloaded, then a client frame and a backend data
        // segment on their way (the taker has something to forward).
        let d0 = client.downloaded.len();
        let mut steps = 0;
        loop {
            hosts_step(&mut h.sim, &mut client, &mut backend);
            assert!(client.error.is_none(), "client error: {:?}", client.error);
            if steps >= 3 && client.downloaded.len() >= d0 + 16 * 1024 && h.sim.to_baton.iter().any(|f| from_client(f))
                && h.sim.to_baton.iter().any(|f| !from_client(f) && payload_len(f) > 0)
            {
                break;
            }
            baton_step(&mut h.sim, cur);
            steps += 1;
            assert!(steps < 20_000, "no data moved on host {cur}: {} bytes downloaded", client.downloaded.len());
        }
        least = least.min(client.downloaded.len() - d0);
        let t0 = Clock::now();
        pinger.ping().expect("PING");
        ping.push(us(t0.elapsed()));
        let t = 1 - cur;
        // The first handoff warms up and peeks at the record's size.
        let sample = handoff(&mut h, cur, t, if k == 0 { Some(redis) } else { None });
        if k == 0 {
            record = sample.record;
        } else if !sample.forwarded {
            // Nothing forwarded before the next step (the client's window
            // was full?): no end to time.
            unforwarded += 1;
        } else {
            parts.push(&sample);
            in_import += usize::from(sample.in_import);
            to_client += usize::from(sample.to_client);
        }
        assert_eq!((h.sim.workers[t].conn_count(), h.sim.workers[cur].conn_count()), (1, 0), "the connection is on host {t} only");
        cur = t;
        h.sim.now_ms += 1;
    }
    // The end: the backend stops, closes after the client's close_notify
    // reached it; every byte is checked.
    backend.to_send = backend.sent;
    let mut steps = 0;
    while !(client.done() && backend.closed && h.sim.conns() == 0) {
        hosts_step(&mut h.sim, &mut client, &mut backend);
        baton_step(&mut h.sim, cur);
        assert!(client.error.is_none(), "client error: {:?}", client.error);
        steps += 1;
        assert!(steps < 200_000, "the transfer did not finish: {} of {} bytes", client.downloaded.len(), backend.to_send);
    }
    assert!(client.got_close, "no close_notify");
    assert_eq!(backend.received, upload, "upload bytes differ");
    assert_eq!(client.downloaded.len(), backend.to_send, "download length");
    assert!(
        client.downloaded.iter().enumerate().all(|(i, b)| *b == baton::demo::backend::pattern_byte(i as u64)),
        "download bytes differ"
    );
    let (a, b) = (&h.sim.workers[0].stats, &h.sim.workers[1].stats);
    assert_eq!(a.fleet_conns_exported + b.fleet_conns_exported, n as u64 + 1);
    assert_eq!(a.fleet_conns_imported + b.fleet_conns_imported, n as u64 + 1);
    let timed = n - unforwarded;
    assert!(timed > 0, "no handoff forwarded a byte at once");
    let p = |v: &mut Vec<f64>| (pct(v, 0.5), pct(v, 0.99));
    let (w, e, s, g, i, r) = (p(&mut parts.whole), p(&mut parts.export), p(&mut parts.set), p(&mut parts.getdel), p(&mut parts.import), p(&mut ping));
    println!(
        "cross-host handoff through Redis on loopback: one live TLS connection mid-download, {n} handoffs A<->B by host drains (+1 warm-up; {unforwarded} not timed: nothing to forward at once), sealed record {} B (each host: a Worker, its fabric, its Repository service with 1 thread)",
        record.unwrap_or(0)
    );
    println!("  whole: drain export -> SET ok -> next frame on the taker -> GETDEL -> import -> first byte forwarded   p50 {:7.1} µs  p99 {:7.1} µs   (reference: 2 x PING p50 {:.1} µs)", w.0, w.1, 2.0 * r.0);
    println!("    export on the giver (encode + seal + SET submitted + purge)     p50 {:7.1} µs  p99 {:7.1} µs", e.0, e.1);
    println!("    SET round trip (submitted -> the giver's worker has the OK)     p50 {:7.1} µs  p99 {:7.1} µs   (reference: PING p50 {:.1} µs)", s.0, s.1, r.0);
    println!("    GETDEL round trip (frame on the taker -> its worker has it)     p50 {:7.1} µs  p99 {:7.1} µs   (reference: PING p50 {:.1} µs)", g.0, g.1, r.0);
    println!(
        "    open + import + first byte forwarded by the taker                p50 {:7.1} µs  p99 {:7.1} µs   (first byte: to the client {to_client} of {timed}; {in_import} already in the importing poll, else on the next poll, from a backend segment waiting meanwhile)",
        i.0, i.1
    );
    println!("  reference: PING p50 {:.1} µs  p99 {:.1} µs (same run, between handoffs); same-host handoff: cargo bench --bench handoff", r.0, r.1);
    println!(
        "  bytes checked: {} B down, {} B up; every owner forwarded >= {} B between handoffs",
        client.downloaded.len(),
        backend.received.len(),
        least
    );
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).filter_map(|a| a.parse().ok()).collect();
    let rounds = args.first().copied().unwrap_or(500).clamp(10, 100_000);
    let n = args.get(1).copied().unwrap_or(300).clamp(4, 100_000);
    let redis = redis_support::RedisServer::start();
    let (ca, cfg) = tls();
    handshakes(rounds, &ca, &cfg, &redis);
    handoffs(n, &ca, &cfg, &redis);
}
