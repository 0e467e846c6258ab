//! The sans-IO worker: frames in, frames out, time passed in. One per core;
//! it owns its flow table and every connection whose packets reach it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use hashbrown::HashMap;
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader, Writer};
use crate::entropy::Entropy;
use crate::net::arp::ArpCache;
use crate::net::stack::{DropReason, Rx, Stack, StackConfig};
use crate::net::tcp::{isn_rfc6528, TcpConfig, TcpConn};
use crate::net::{Endpoint, FlowId, IpAddress, MacAddr, TcpHeader};
use crate::proxy::{BackendPool, SourcePorts};
use crate::time::{Duration, Instant};
use crate::tls::ServerConfig;

use super::conn::{JobSink, ProxiedConn, Status};
use crate::slowpath::{Done, SlowPathHandle, Task};
use crate::tls::{CryptoJob, JobResult};
use super::stats::WorkerStats;

/// Everything a worker needs to start.
#[derive(Clone)]
pub struct WorkerParams {
    pub id: usize,
    pub workers: usize,
    pub mac: MacAddr,
    pub vip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mtu: u16,
    pub listen_port: u16,
    pub backends: Vec<Endpoint>,
    pub connect_timeout: Duration,
    pub max_connections: usize,
    pub recv_buffer: usize,
    pub send_buffer: usize,
    /// RFC 6528 secret, shared by all workers of a host.
    pub isn_secret: [u8; 16],
}

/// Which flow of a proxied connection a segment belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Backend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ConnKey {
    idx: u32,
    gen: u32,
}

struct Slot {
    gen: u32,
    conn: Option<ProxiedConn>,
}

pub struct Worker {
    pub id: usize,
    params: WorkerParams,
    stack: Stack,
    tls_cfg: Arc<ServerConfig>,
    tcp_cfg: TcpConfig,
    pool: BackendPool,
    ports: SourcePorts,
    flows: HashMap<FlowId, (ConnKey, Side)>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    dirty: Vec<ConnKey>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    pub stats: WorkerStats,
    rng: Box<dyn Entropy + Send>,
    scratch: Box<[u8]>,
    jobs: Jobs,
}

/// The worker's job sink: the slow path if attached, else inline.
struct Jobs {
    slow: Option<(SlowPathHandle, crossbeam_channel::Sender<Done>, crossbeam_channel::Receiver<Done>)>,
    /// Tag of the connection being serviced.
    tag: u64,
    inline_fallbacks: u64,
}

impl JobSink for Jobs {
    fn dispatch(&mut self, job: CryptoJob, rng: &mut dyn Entropy) -> Option<JobResult> {
        let Some((h, reply, _)) = &self.slow else { return Some(job.run(rng)) };
        match h.submit(Task { tag: self.tag, job, reply: reply.clone() }) {
            Ok(()) => None,
            Err(t) => {
                // Queue full: run it here rather than grow without bound.
                self.inline_fallbacks += 1;
                Some(t.job.run(rng))
            }
        }
    }
}

fn tag_of(k: ConnKey) -> u64 {
    ((k.gen as u64) << 32) | k.idx as u64
}

fn key_of(tag: u64) -> ConnKey {
    ConnKey { idx: tag as u32, gen: (tag >> 32) as u32 }
}

impl Worker {
    pub fn new(params: WorkerParams, tls_cfg: Arc<ServerConfig>, arp: Arc<ArpCache>, rng: Box<dyn Entropy + Send>) -> Self {
        let stack = Stack::new(
            StackConfig {
                prefix_len: params.prefix_len,
                gateway: params.gateway,
                ..StackConfig::new(params.mac, params.vip, params.mtu)
            },
            arp,
        );
        // MSS from the port's MTU (case D4): IPv4 and TCP headers without options.
        let mss = params.mtu.saturating_sub(40).max(536);
        let tcp_cfg = super::conn::tcp_config(mss, params.recv_buffer, params.send_buffer);
        Worker {
            id: params.id,
            pool: BackendPool::new(params.backends.iter().copied()),
            ports: SourcePorts::for_worker(params.id, params.workers),
            stack,
            tls_cfg,
            tcp_cfg,
            params,
            flows: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            dirty: Vec::new(),
            timers: BinaryHeap::new(),
            stats: WorkerStats::default(),
            rng,
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            jobs: Jobs { slow: None, tag: 0, inline_fallbacks: 0 },
        }
    }

    /// Sends this worker's handshake crypto to the slow path.
    pub fn attach_slow_path(&mut self, h: SlowPathHandle) {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.jobs.slow = Some((h, tx, rx));
    }

    /// Jobs run inline because the slow-path queue was full.
    pub fn slow_path_fallbacks(&self) -> u64 {
        self.jobs.inline_fallbacks
    }

    /// Collects finished slow-path jobs.
    fn collect_jobs(&mut self) {
        loop {
            let done = match &self.jobs.slow {
                Some((_, _, rx)) => match rx.try_recv() {
                    Ok(d) => d,
                    Err(_) => break,
                },
                None => break,
            };
            let k = key_of(done.tag);
            let Worker { slots, rng, stats, jobs, .. } = self;
            if let Some(c) = slots.get_mut(k.idx as usize).filter(|s| s.gen == k.gen).and_then(|s| s.conn.as_mut()) {
                jobs.tag = done.tag;
                c.job_done(done.result, jobs, rng.as_mut(), stats);
            }
            self.mark_dirty(k);
        }
    }

    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// Proxied connections held.
    pub fn conn_count(&self) -> usize {
        self.live
    }

    /// Flows (client and backend) in the flow table.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    pub fn source_ports_in_use(&self) -> usize {
        self.ports.in_use()
    }

    fn vip(&self) -> IpAddress {
        IpAddress::V4(self.params.vip)
    }

    fn get(&mut self, k: ConnKey) -> Option<&mut ProxiedConn> {
        let s = self.slots.get_mut(k.idx as usize)?;
        if s.gen != k.gen {
            return None;
        }
        s.conn.as_mut()
    }

    fn insert(&mut self, conn: ProxiedConn) -> ConnKey {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { gen: 0, conn: None });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[idx as usize];
        s.conn = Some(conn);
        self.live += 1;
        ConnKey { idx, gen: s.gen }
    }

    fn mark_dirty(&mut self, k: ConnKey) {
        if let Some(c) = self.get(k) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(k);
            }
        }
    }

    /// Handles one received frame. Replies (ARP, ICMP) go out through `tx`
    /// at once; TCP work is done in [`Worker::poll`].
    pub fn handle_frame(&mut self, frame: &[u8], now: Instant, tx: &mut dyn FnMut(&[u8])) {
        let rx = self.stack.handle_frame(frame, now, tx);
        let Rx::Tcp { flow, header, payload, .. } = rx else { return };
        if let Some(&(k, side)) = self.flows.get(&flow) {
            if let Some(c) = self.get(k) {
                match side {
                    Side::Client => {
                        c.client.on_segment(&header, payload, now);
                    }
                    Side::Backend => {
                        if let Some(b) = c.backend.as_mut() {
                            b.tcp.on_segment(&header, payload, now);
                        }
                    }
                }
                self.mark_dirty(k);
                return;
            }
        }
        if flow.local.port == self.params.listen_port && header.flags.syn() && !header.flags.ack() && !header.flags.rst() {
            self.accept(flow, &header, now);
        } else {
            // DESIGN.md: unknown flows are dropped and counted, never reset
            // (a flow may be on its way from another worker or host).
            self.stack.count_drop(DropReason::TcpNoFlow);
        }
    }

    fn accept(&mut self, flow: FlowId, syn: &TcpHeader, now: Instant) {
        if self.live >= self.params.max_connections {
            self.stats.conns_refused_full += 1;
            return;
        }
        let isn = isn_rfc6528(&self.params.isn_secret, &flow, now);
        let tcp = TcpConn::accept(&self.tcp_cfg, flow, syn, isn, now);
        let k = self.insert(ProxiedConn::new(tcp, self.tls_cfg.clone()));
        self.flows.insert(flow, (k, Side::Client));
        self.stats.conns_accepted += 1;
        self.mark_dirty(k);
    }

    fn connect_backend(&mut self, k: ConnKey, now: Instant) {
        let Some(idx) = self.pool.pick(now) else {
            if let Some(c) = self.get(k) {
                c.fail_backend();
            }
            return;
        };
        let remote = self.pool.addr(idx);
        let Some(port) = self.ports.allocate(remote) else {
            self.stats.source_ports_exhausted += 1;
            if let Some(c) = self.get(k) {
                c.fail_backend();
            }
            return;
        };
        let flow = FlowId { local: Endpoint::new(self.vip(), port), remote };
        let isn = isn_rfc6528(&self.params.isn_secret, &flow, now);
        let tcp = TcpConn::connect(&self.tcp_cfg, flow, isn, now);
        let deadline = now + self.params.connect_timeout;
        self.stats.backend_connects += 1;
        self.pool.connected(idx);
        if let Some(c) = self.get(k) {
            c.attach_backend(tcp, idx, deadline);
        }
        self.flows.insert(flow, (k, Side::Backend));
    }

    /// Services every connection that got input or whose timer expired,
    /// and transmits what is due.
    pub fn poll(&mut self, now: Instant, tx: &mut dyn FnMut(&[u8])) {
        self.collect_jobs();
        while let Some(Reverse((t, idx, gen))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            self.mark_dirty(ConnKey { idx, gen });
        }
        let mut rounds = 0;
        while !self.dirty.is_empty() && rounds < 4 {
            rounds += 1;
            let batch = std::mem::take(&mut self.dirty);
            for k in batch {
                self.service(k, now, tx);
            }
        }
        self.stack.poll(now, tx);
    }

    fn service(&mut self, k: ConnKey, now: Instant, tx: &mut dyn FnMut(&[u8])) {
        let Worker { slots, rng, scratch, stats, jobs, .. } = self;
        let Some(c) = slots.get_mut(k.idx as usize).filter(|s| s.gen == k.gen).and_then(|s| s.conn.as_mut()) else {
            return;
        };
        c.dirty = false;
        jobs.tag = tag_of(k);
        let (mut status, wants) = c.service(now, rng.as_mut(), jobs, scratch, stats);
        if wants.backend {
            self.connect_backend(k, now);
            // A second pass so the SYN and any buffered plaintext move now.
            let Worker { slots, rng, scratch, stats, jobs, .. } = self;
            if let Some(c) = slots.get_mut(k.idx as usize).and_then(|s| s.conn.as_mut()) {
                status = c.service(now, rng.as_mut(), jobs, scratch, stats).0;
            }
        }
        // Transmit both flows.
        let Worker { slots, stack, .. } = self;
        let Some(c) = slots.get_mut(k.idx as usize).and_then(|s| s.conn.as_mut()) else { return };
        c.transmit(now, &mut |flow, h, p| {
            // A frame the stack could not send (no route, queue full) is
            // counted there; TCP retransmits it.
            let _ = stack.emit_tcp(flow.remote.addr, h, p, now, tx);
        });
        if c.backend_failed {
            if let Some(b) = c.backend.as_ref() {
                if !b.established_once {
                    let idx = b.pool_idx;
                    self.pool.mark_failed(idx, now);
                }
            }
        }
        let Some(c) = self.get(k) else { return };
        let next = c.poll_at();
        // Timers run inside transmit (TIME-WAIT ending, a retransmission
        // limit), so look again after it.
        if status == Status::Done || c.is_done() {
            self.remove(k);
        } else if let Some(t) = next {
            self.timers.push(Reverse((t.max(now), k.idx, k.gen)));
        }
    }

    fn remove(&mut self, k: ConnKey) -> Option<ProxiedConn> {
        let s = self.slots.get_mut(k.idx as usize)?;
        if s.gen != k.gen {
            return None;
        }
        let c = s.conn.take()?;
        s.gen = s.gen.wrapping_add(1);
        self.free.push(k.idx);
        self.live -= 1;
        self.flows.remove(&c.client_flow());
        if let Some(b) = c.backend.as_ref() {
            let bf = b.tcp.flow();
            self.flows.remove(&bf);
            self.ports.release(bf.remote, bf.local.port);
            self.pool.released(b.pool_idx);
        }
        self.stats.conns_closed += 1;
        Some(c)
    }

    /// The earliest time a connection needs attention without new input.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Starts a graceful stop: close_notify + FIN on every connection.
    pub fn shutdown(&mut self) {
        let keys: Vec<ConnKey> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.conn.is_some())
            .map(|(i, s)| ConnKey { idx: i as u32, gen: s.gen })
            .collect();
        for k in keys {
            if let Some(c) = self.get(k) {
                c.shutdown();
            }
            self.mark_dirty(k);
        }
    }

    /// One line per connection: both flows' TCP states and the TLS phase
    /// (diagnostics for tests and the admin endpoint; no secrets).
    pub fn describe_conns(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref())
            .map(|c| {
                format!(
                    "client {:?} {:?} / backend {:?} / tls handshaking={} failed={} close_notify_in={}",
                    c.client_flow(),
                    c.client.state(),
                    c.backend.as_ref().map(|b| b.tcp.state()),
                    c.tls.is_handshaking(),
                    c.tls.is_failed(),
                    c.tls.received_close_notify()
                )
            })
            .collect()
    }

    /// Client flows of the connections held (for handoff tests and admin).
    pub fn client_flows(&self) -> Vec<FlowId> {
        self.slots.iter().filter_map(|s| s.conn.as_ref().map(|c| c.client_flow())).collect()
    }

    /// Exports the proxied connection whose client flow is `flow`: encodes
    /// it, then purges it from this worker (a move, never a copy).
    pub fn export_conn(&mut self, flow: &FlowId, now: Instant) -> Option<Zeroizing<Vec<u8>>> {
        let &(k, _) = self.flows.get(flow)?;
        let c = self.get(k)?;
        if c.job_pending() {
            // The job's result will come back here; export after it has.
            return None;
        }
        let mut w = Writer::with_capacity(4096);
        c.encode(now, &mut w);
        // Purge: the flows leave the table; the connection (and its keys,
        // zeroized on drop) is dropped here.
        let c = self.remove(k);
        self.stats.conns_closed -= 1;
        self.stats.conns_exported += 1;
        drop(c);
        Some(w.finish())
    }

    /// Imports a connection exported by [`Worker::export_conn`].
    pub fn import_conn(&mut self, bytes: &[u8], now: Instant) -> Result<FlowId, DecodeError> {
        let mut r = Reader::new(bytes);
        let c = ProxiedConn::decode(&mut r, now, self.tls_cfg.clone())?;
        r.finish()?;
        let cf = c.client_flow();
        let bf = c.backend_flow();
        let k = self.insert(c);
        self.flows.insert(cf, (k, Side::Client));
        if let Some(bf) = bf {
            self.flows.insert(bf, (k, Side::Backend));
            // Keep the port reserved here so this worker does not reuse it.
            self.ports.reserve(bf.remote, bf.local.port);
        }
        self.stats.conns_imported += 1;
        self.mark_dirty(k);
        Ok(cf)
    }
}
