//! Several `Worker`s on one simulated segment, with an RSS model the test
//! controls: every frame for baton goes to the worker `steer` picks —
//! chosen by the test, or by the NIC's Toeplitz hash and a RETA
//! ([`MultiSim::rss_steer`]).

use std::collections::VecDeque;
use std::sync::Arc;

use baton::entropy::SeededEntropy;
use baton::net::rss::Reta;
use baton::net::{Endpoint, FlowId, IpAddress};
use baton::net::arp::ArpCache;
use baton::session::seal::KeyRing;
use baton::session::table::{HeapArena, SessionTable, TableConfig};
use baton::time::Instant;
use baton::tls::ServerConfig;
use baton::worker::handoff::{DynArena, Fabric};
use baton::worker::Worker;

use super::{worker_params, Host, BACKEND_MAC, BACKEND_IP, BATON_MAC, CLIENT_IP, CLIENT_MAC};

pub fn fabric(workers: usize) -> Arc<Fabric> {
    let cfg = TableConfig { slots: 1024, max_record: 1 << 20, probe: 16, hash_key: [9; 32] };
    let words = SessionTable::<HeapArena>::words_needed(cfg.slots, cfg.max_record).unwrap();
    let table = SessionTable::from_words(DynArena(Box::new(HeapArena::new(words))), &cfg).unwrap();
    let keys = KeyRing::new(1, &[0x42; 32], Instant::ZERO);
    let tickets = baton::worker::handoff::heap_table(1024, 1024, [8; 32]).unwrap();
    // Small slots as `baton run` has them by default: records up to 16 KiB
    // (parked handshakes, quiet connections) go there, the rest to `table`.
    let small = baton::worker::handoff::heap_table(256, 16 * 1024, [7; 32]).unwrap();
    Arc::new(Fabric::new(workers, 1024, table, tickets, keys, 1, 1).with_small_table(small))
}

pub struct MultiSim {
    pub now_ms: u64,
    pub client: Host,
    pub backend: Host,
    pub workers: Vec<Worker>,
    pub to_baton: VecDeque<Vec<u8>>,
    pub fabric: Arc<Fabric>,
    /// Frames delivered to baton so far.
    pub delivered: u64,
    /// Most workers that held the connection at once, seen at any step.
    pub max_holders: usize,
    /// The last TCP frames on the segment, summarised (for diagnostics).
    pub trace: VecDeque<String>,
}

/// One line about a TCP frame: ports, seq, ack, flags, window, payload.
pub fn summarize(who: &str, f: &[u8], t: u64) -> Option<String> {
    let (sp, dp) = tcp_ports(f)?;
    let ihl = ((f[14] & 0x0f) as usize) * 4;
    let tcp = &f[14 + ihl..];
    let total = u16::from_be_bytes([f[16], f[17]]) as usize;
    let off = ((tcp[12] >> 4) as usize) * 4;
    let seq = u32::from_be_bytes(tcp[4..8].try_into().unwrap());
    let ack = u32::from_be_bytes(tcp[8..12].try_into().unwrap());
    Some(format!(
        "t={t} {who} {sp}->{dp} seq={seq} ack={ack} flags={:02x} win={} len={}",
        tcp[13],
        u16::from_be_bytes([tcp[14], tcp[15]]),
        total - ihl - off
    ))
}

impl MultiSim {
    pub fn new(tls_cfg: Arc<ServerConfig>, n: usize, seed: u64) -> MultiSim {
        let arp = Arc::new(ArpCache::new(256));
        let fabric = fabric(n);
        let workers = (0..n)
            .map(|i| {
                let mut w = Worker::new(worker_params(n, i), tls_cfg.clone(), arp.clone(), Box::new(SeededEntropy::new(seed + i as u64)));
                w.attach_fabric(fabric.clone());
                w
            })
            .collect();
        MultiSim {
            now_ms: 0,
            client: Host::new(CLIENT_MAC, CLIENT_IP, seed ^ 1),
            backend: Host::new(BACKEND_MAC, BACKEND_IP, seed ^ 2),
            workers,
            to_baton: VecDeque::new(),
            fabric,
            delivered: 0,
            max_holders: 0,
            trace: VecDeque::new(),
        }
    }

    fn deliver(&mut self, from: [u8; 6], frame: Vec<u8>) {
        let who = if from == BATON_MAC { "baton" } else if from == CLIENT_MAC { "client" } else { "backend" };
        if let Some(line) = summarize(who, &frame, self.now_ms) {
            if self.trace.len() >= 60 {
                self.trace.pop_front();
            }
            self.trace.push_back(line);
        }
        super::route(from, frame, &mut self.to_baton, &mut self.client, &mut self.backend);
    }

    /// One step: hosts run, frames for baton go to `steer(frame_no, frame)`,
    /// every worker polls (its ring included).
    pub fn step(&mut self, steer: &mut dyn FnMut(u64, &[u8]) -> usize) {
        let now_ms = self.now_ms;
        self.client.poll(now_ms);
        while let Some(f) = self.client.dev.tx.pop_front() {
            self.deliver(CLIENT_MAC, f);
        }
        self.backend.poll(now_ms);
        while let Some(f) = self.backend.dev.tx.pop_front() {
            self.deliver(BACKEND_MAC, f);
        }
        let now = Instant::from_millis(now_ms);
        let mut out: Vec<Vec<u8>> = Vec::new();
        while let Some(f) = self.to_baton.pop_front() {
            // ARP goes to worker 0, as on net_tap (DESIGN.md).
            let w = if f.get(12..14) == Some(&[0x08, 0x06]) { 0 } else { steer(self.delivered, &f) % self.workers.len() };
            self.delivered += 1;
            self.workers[w].handle_frame(&f, now, &mut |x| out.push(x.to_vec()));
        }
        for w in self.workers.iter_mut() {
            w.poll(now, &mut |x| out.push(x.to_vec()));
        }
        // Messages sent during the polls are handled within the same step.
        for w in self.workers.iter_mut() {
            w.poll(now, &mut |x| out.push(x.to_vec()));
        }
        let holders = self.workers.iter().filter(|w| w.conn_count() > 0).count();
        self.max_holders = self.max_holders.max(holders);
        for f in out {
            self.deliver(BATON_MAC, f);
        }
    }

    pub fn conns(&self) -> usize {
        self.workers.iter().map(|w| w.conn_count()).sum()
    }

    /// A steer that models a NIC hashing with Toeplitz: a TCP/IPv4 frame
    /// goes to the worker of queue `reta[hash mod len]` (worker k serves
    /// queue k), anything else to worker 0.
    pub fn rss_steer(reta: &Reta) -> impl FnMut(u64, &[u8]) -> usize {
        let reta = reta.clone();
        move |_, f| rx_flow(f).map(|flow| reta.queue_for(&flow) as usize).unwrap_or(0)
    }
}

/// The flow of a TCP/IPv4 frame as baton sees it on receipt (local = the
/// destination).
pub fn rx_flow(f: &[u8]) -> Option<FlowId> {
    let (sp, dp) = tcp_ports(f)?;
    let src = f.get(26..30)?;
    let dst = f.get(30..34)?;
    Some(FlowId {
        local: Endpoint::new(IpAddress::v4(dst[0], dst[1], dst[2], dst[3]), dp),
        remote: Endpoint::new(IpAddress::v4(src[0], src[1], src[2], src[3]), sp),
    })
}

/// The (src port, dst port) of a TCP frame, if it is one.
pub fn tcp_ports(f: &[u8]) -> Option<(u16, u16)> {
    if f.get(12..14)? != [0x08, 0x00] || *f.get(23)? != 6 {
        return None;
    }
    let ihl = ((f[14] & 0x0f) as usize) * 4;
    let t = f.get(14 + ihl..14 + ihl + 4)?;
    Some((u16::from_be_bytes([t[0], t[1]]), u16::from_be_bytes([t[2], t[3]])))
}

pub const _BACKEND_IP: [u8; 4] = BACKEND_IP;
