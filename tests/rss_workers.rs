//! RSS in the in-memory backend (issue 3 §2, §4): frames reach the worker
//! the Toeplitz hash and the RETA name; backend source ports are chosen so
//! that the backend's replies land on the owner; a RETA change mid-transfer
//! moves exactly the connections the new table gives to another worker,
//! and every byte still arrives, in order, at both ends.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use baton::entropy::{Entropy, SeededEntropy};
use baton::net::rss::{Reta, DEFAULT_KEY};
use baton::net::FlowId;
use common::multi::MultiSim;
use common::sha256_hex;
use common::tlsclient::{client_config, pattern, BackendApp, ClientApp};

fn tls() -> (Vec<u8>, Arc<baton::tls::ServerConfig>) {
    common::tlsclient::test_server_tls("rss")
}

struct Run {
    sim: MultiSim,
    ccfg: Arc<rustls::ClientConfig>,
    clients: Vec<ClientApp>,
    backends: Vec<BackendApp>,
    uploads: Vec<Vec<u8>>,
    down: usize,
    steps: u64,
}

impl Run {
    fn new(workers: usize, listeners: usize, down: usize, seed: u64) -> Run {
        let (ca, cfg) = tls();
        let mut sim = MultiSim::new(cfg, workers, seed);
        let ccfg = client_config(&ca, None, None, &[]);
        // One listening socket per connection to come (smoltcp accepts one
        // connection per socket); all send the same pattern.
        let backends = (0..listeners).map(|_| BackendApp::new(&mut sim.backend, down)).collect();
        Run { sim, ccfg, clients: Vec::new(), backends, uploads: Vec::new(), down, steps: 0 }
    }

    fn connect(&mut self, up: usize, port: u16) {
        let mut upload = vec![0u8; up];
        SeededEntropy::new(port as u64).fill(&mut upload);
        self.clients.push(ClientApp::new(&mut self.sim.client, self.ccfg.clone(), "baton.test", upload.clone(), port));
        self.uploads.push(upload);
    }

    fn run_until(&mut self, limit: u64, steer: &mut dyn FnMut(u64, &[u8]) -> usize, done: &mut dyn FnMut(&Run) -> bool) {
        while self.steps < limit {
            self.steps += 1;
            for c in self.clients.iter_mut() {
                c.step(&mut self.sim.client);
            }
            for b in self.backends.iter_mut() {
                b.step(&mut self.sim.backend);
            }
            self.sim.step(steer);
            for c in &self.clients {
                assert!(c.error.is_none(), "client error: {:?}", c.error);
            }
            self.assert_single_holders();
            if done(self) {
                return;
            }
            self.sim.now_ms += 1;
        }
        panic!("not done after {limit} steps; conns {:?}", self.holders());
    }

    /// Client flow -> the workers holding it.
    fn holders(&self) -> HashMap<FlowId, Vec<usize>> {
        let mut m: HashMap<FlowId, Vec<usize>> = HashMap::new();
        for (i, w) in self.sim.workers.iter().enumerate() {
            for cf in w.client_flows() {
                m.entry(cf).or_default().push(i);
            }
        }
        m
    }

    fn assert_single_holders(&self) {
        for (cf, ws) in self.holders() {
            assert_eq!(ws.len(), 1, "{cf:?} held by workers {ws:?} at step {}", self.steps);
        }
    }

    /// Every connection is held by the worker `reta` names for its client
    /// flow, and (when `ports_too`) its backend flow's replies land there.
    fn assert_placed_by(&self, reta: &Reta, ports_too: bool) {
        for (i, w) in self.sim.workers.iter().enumerate() {
            for cf in w.client_flows() {
                assert_eq!(reta.queue_for(&cf) as usize, i, "{cf:?} held by worker {i}");
            }
            if ports_too {
                for (cf, bf) in w.backend_flows() {
                    assert_eq!(reta.queue_for(&bf) as usize, i, "backend flow {bf:?} of {cf:?} (worker {i})");
                }
            }
        }
    }

    fn finished(&self) -> bool {
        self.clients.iter().all(|c| c.done()) && self.backends.iter().filter(|b| b.accepted).all(|b| b.closed) && self.sim.conns() == 0
    }

    fn check_bytes(&self) {
        for (i, c) in self.clients.iter().enumerate() {
            assert!(c.got_close, "client {i}: no close_notify; downloaded {} of {}", c.downloaded.len(), self.down);
            assert_eq!(sha256_hex(&c.downloaded), sha256_hex(&pattern(self.down)), "client {i}: download bytes differ");
        }
        // Which listener took which connection is smoltcp's choice: compare
        // the uploads as sets.
        let mut want: Vec<String> = self.uploads.iter().map(|u| sha256_hex(u)).collect();
        let mut got: Vec<String> = self.backends.iter().filter(|b| b.accepted).map(|b| sha256_hex(&b.received)).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "upload bytes differ");
    }

    fn exported(&self) -> u64 {
        self.sim.workers.iter().map(|w| w.stats.conns_exported).sum()
    }
}

/// A table that sends the client flows of `movers` to the next worker and
/// keeps the entries of `stayers` where they are.
fn moved_table(a: &Reta, workers: usize, movers: &[FlowId], stayers: &[FlowId]) -> Reta {
    let mut t = a.table().to_vec();
    let keep: Vec<usize> = stayers.iter().map(|f| a.entry_for_hash(baton::net::rss::rx_hash(a.key(), f))).collect();
    for f in movers {
        let e = a.entry_for_hash(baton::net::rss::rx_hash(a.key(), f));
        if !keep.contains(&e) {
            t[e] = ((t[e] as usize + 1) % workers) as u16;
        }
    }
    a.with_table(t).unwrap()
}

#[test]
fn a_reta_change_mid_transfer_moves_the_connections_it_names_and_loses_no_byte() {
    let n = 3;
    let mut r = Run::new(n, 8, 384 * 1024, 31);
    let a = Reta::round_robin(&DEFAULT_KEY, 128, n as u16).unwrap();
    r.sim.fabric.set_reta(a.clone());
    for i in 0..6 {
        r.connect(48 * 1024, 40000 + i * 7);
    }
    let mut steer_a = MultiSim::rss_steer(&a);
    r.run_until(50_000, &mut steer_a, &mut |r| r.clients.iter().all(|c| c.downloaded.len() > 64 * 1024));
    // Under table A: every connection sits on A's worker, and the backend's
    // replies come back to it (RSS-aware source ports).
    assert_eq!(r.sim.conns(), 6);
    r.assert_placed_by(&a, true);
    let per_worker: Vec<usize> = r.sim.workers.iter().map(|w| w.conn_count()).collect();
    assert!(per_worker.iter().filter(|&&c| c > 0).count() >= 2, "all on one worker: {per_worker:?}");
    assert_eq!(r.sim.workers.iter().map(|w| w.rss_port_fallbacks()).sum::<u64>(), 0);
    let forwarded_before: u64 = r.sim.workers.iter().map(|w| w.stats.frames_forwarded).sum();
    assert_eq!(forwarded_before, 0, "no frame needed forwarding under one table");

    // Table B moves half the connections to the next worker.
    let mut flows: Vec<FlowId> = r.holders().into_keys().collect();
    flows.sort_by_key(|f| f.remote.port);
    let movers: Vec<FlowId> = flows.iter().step_by(2).copied().collect();
    let stayers: Vec<FlowId> = flows.iter().skip(1).step_by(2).copied().collect();
    let b = moved_table(&a, n, &movers, &stayers);
    let moving = flows.iter().filter(|f| a.queue_for(f) != b.queue_for(f)).count();
    assert!(moving >= 1 && moving < flows.len(), "{moving} of {} move", flows.len());

    // The runtime's order: the workers are told first and move; the NIC
    // still steers by A for one step (those frames are forwarded); then it
    // steers by B.
    let exported_before = r.exported();
    let gen = r.sim.fabric.set_reta(b.clone());
    let until = r.steps + 1;
    r.run_until(until, &mut steer_a, &mut |r| r.steps >= until);
    assert!(r.sim.fabric.reta_acked(gen), "every worker acted on the new table");
    assert_eq!(r.exported() - exported_before, moving as u64, "exactly the connections B gives elsewhere moved");
    r.assert_placed_by(&b, false);
    let mut steer_b = MultiSim::rss_steer(&b);
    let mid = r.steps + 200;
    r.run_until(mid, &mut steer_b, &mut |r| r.steps >= mid);
    r.assert_placed_by(&b, false);
    assert_eq!(r.sim.conns(), 6);
    assert!(r.clients.iter().any(|c| c.downloaded.len() < r.down), "the change came too late to be mid-transfer");
    // The moved connections' backend ports were chosen under A, so their
    // replies reach the old worker and are forwarded over the ring.
    let forwarded: u64 = r.sim.workers.iter().map(|w| w.stats.frames_forwarded).sum();
    assert!(forwarded > 0, "no frame was forwarded");
    assert_eq!(r.exported() - exported_before, moving as u64, "forwarded frames pulled no connection back");

    // New connections under B get ports whose replies land on their owner.
    r.connect(16 * 1024, 41000);
    r.connect(16 * 1024, 41003);
    r.run_until(50_000, &mut steer_b, &mut |r| r.sim.conns() == 8 && r.sim.workers.iter().map(|w| w.backend_flows().len()).sum::<usize>() == 8);
    for (i, w) in r.sim.workers.iter().enumerate() {
        for (cf, bf) in w.backend_flows() {
            if cf.remote.port >= 41000 {
                assert_eq!(b.queue_for(&bf) as usize, i, "new backend flow {bf:?} on worker {i}");
            }
        }
    }

    r.run_until(400_000, &mut steer_b, &mut |r| r.finished());
    r.check_bytes();
    let dropped: u64 = r.sim.workers.iter().map(|w| w.stats.handoff_frames_dropped).sum();
    assert_eq!(dropped, 0);
    assert!(r.sim.fabric.directory.is_empty(), "directory entries left behind");
    assert_eq!(r.sim.fabric.conn_records(), 0, "connection records left in the table");
}

/// Four workers, two RETA changes during the transfer, and the second one
/// reaches the NIC in the same step as the workers (frames already follow
/// the new table while the moves are under way).
#[test]
fn two_reta_changes_with_four_workers() {
    let n = 4;
    let mut r = Run::new(n, 8, 1024 * 1024, 32);
    let a = Reta::round_robin(&DEFAULT_KEY, 128, n as u16).unwrap();
    r.sim.fabric.set_reta(a.clone());
    for i in 0..8 {
        r.connect(32 * 1024, 42000 + i * 13);
    }
    let mut steer = MultiSim::rss_steer(&a);
    r.run_until(50_000, &mut steer, &mut |r| r.clients.iter().all(|c| c.downloaded.len() > 32 * 1024));
    r.assert_placed_by(&a, true);
    // B: every entry to the next queue, so every connection moves.
    let b = a.with_table(a.table().iter().map(|q| (q + 1) % n as u16).collect()).unwrap();
    let e0 = r.exported();
    r.sim.fabric.set_reta(b.clone());
    let until = r.steps + 1;
    r.run_until(until, &mut steer, &mut |r| r.steps >= until);
    assert_eq!(r.exported() - e0, 8, "every connection moved");
    let mut steer = MultiSim::rss_steer(&b);
    let until = r.steps + 40;
    r.run_until(until, &mut steer, &mut |r| r.steps >= until);
    r.assert_placed_by(&b, false);
    // C: the first half of the table to queue 0, the rest as in A; the NIC
    // and the workers switch in the same step.
    let c = a.with_table(a.table().iter().enumerate().map(|(i, q)| if i < 64 { 0 } else { *q }).collect()).unwrap();
    let moving = r.holders().keys().filter(|f| b.queue_for(f) != c.queue_for(f)).count();
    assert!(moving > 0);
    let e1 = r.exported();
    r.sim.fabric.set_reta(c.clone());
    let mut steer = MultiSim::rss_steer(&c);
    let until = r.steps + 40;
    r.run_until(until, &mut steer, &mut |r| r.steps >= until);
    r.assert_placed_by(&c, false);
    assert_eq!(r.exported() - e1, moving as u64, "each named connection moved once");
    assert!(r.clients.iter().any(|cl| cl.downloaded.len() < r.down), "transfers ended before the second change");
    r.run_until(400_000, &mut steer, &mut |r| r.finished());
    r.check_bytes();
    assert!(r.sim.fabric.directory.is_empty());
    assert_eq!(r.sim.fabric.conn_records(), 0);
}

/// Without a RETA (net_tap: the kernel picks the queue) ports come from the
/// worker's slice and nothing is rehomed; the slice mode is unchanged.
#[test]
fn without_a_reta_ports_come_from_the_slice_and_nothing_moves() {
    let mut r = Run::new(2, 2, 64 * 1024, 33);
    r.connect(8 * 1024, 43000);
    r.run_until(50_000, &mut |_, _| 0, &mut |r| r.finished());
    r.check_bytes();
    assert_eq!(r.exported(), 0);
    assert!(r.sim.workers.iter().all(|w| w.reta().is_none()));
}
