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
use crate::net::tcp::cookie::SynCookies;
use crate::net::tcp::{isn_rfc6528, SegmentOutcome, TcpConfig, TcpConn};
use crate::net::{Endpoint, FlowId, IpAddress, MacAddr, TcpHeader};
use crate::proxy::{BackendPool, SourcePorts};
use crate::time::{Duration, Instant};
use crate::tls::ServerConfig;

use super::conn::{JobSink, ProxiedConn, Status};
use super::handoff::{conn_identity, Fabric, Msg, Owner, KIND_CONN};
use super::fleet::{flow_identity, open_fetched, FetchedExpiry, Fleet, Pending};
use super::tickets::{FleetLend, Tickets};
use crate::session::repository::{Op, Outcome, RecordKind, Reply, Request};
use crate::session::seal::{Opener, Sealer, SealerId};
use crate::slowpath::{Done, SlowPathHandle, Task};
use crate::tls::{CryptoJob, JobResult};
use super::stats::WorkerStats;

#[path = "core/rehome.rs"]
mod rehome;

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
    pub timeouts: super::conn::Timeouts,
    /// Send a PROXY protocol v2 header on every backend connection.
    pub proxy_v2: bool,
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
    /// The time of this slot's live entry in the timer heap, if any: a
    /// service pass pushes a new entry only when it is due earlier, and a
    /// popped entry that is not this one is stale and skipped.
    armed: Option<Instant>,
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
    /// Of `live`, connections whose client flow waits out TIME_WAIT (TLS
    /// retired: keys and buffers gone).
    time_wait: usize,
    dirty: Vec<ConnKey>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    pub stats: WorkerStats,
    rng: Box<dyn Entropy + Send>,
    scratch: Box<[u8]>,
    jobs: Jobs,
    fabric: Option<Arc<Fabric>>,
    sealer: Option<Sealer>,
    /// Frames held for flows whose owner was asked to yield, by client flow.
    held: HashMap<FlowId, Vec<(Instant, Vec<u8>)>>,
    held_total: usize,
    /// Client flows we asked another worker to yield, and when.
    yield_asked: HashMap<FlowId, Instant>,
    /// Round-robin cursor for drain targets.
    drain_next: usize,
    record_buf: Vec<u8>,
    move_settle: Duration,
    last_full_warning: Instant,
    cookies: SynCookies,
    /// From this many connections on, SYNs are answered with cookies.
    cookie_threshold: usize,
    /// Handshakes this worker parked in the table, and until when.
    parked: Vec<(Instant, FlowId)>,
    /// Park mid-handshake connections between flights.
    checkpoint_handshakes: bool,
    /// The RSS redirection table in force, if the NIC steers by one (rehome.rs).
    reta: Option<Arc<crate::net::rss::Reta>>,
    /// This host's place in the fleet's partition of backend source
    /// ports (index, hosts).
    host_slice: (usize, usize),
    /// Fleet mode: the repository and what this worker waits for from it.
    fleet: Option<FleetLocal>,
}

/// A worker's fleet state.
struct FleetLocal {
    fleet: Arc<Fleet>,
    /// Seals under the fleet key (its own subkey and counter).
    sealer: Sealer,
    reply_rx: crossbeam_channel::Receiver<Reply>,
    reply_tx: crossbeam_channel::Sender<Reply>,
    /// Outstanding requests by tag.
    pending: HashMap<u64, Pending>,
    /// Frames of unknown flows held while their record is looked up.
    held: HashMap<FlowId, Vec<Vec<u8>>>,
    held_total: usize,
    /// Flows whose look-up found nothing, and when.
    negative: HashMap<FlowId, Instant>,
    /// Look-up tokens left in the current second, and when it started.
    tokens: u32,
    tokens_at: Instant,
    fetched: FetchedExpiry,
    /// After an export the repository refused: no exports before then
    /// (regression: with Redis down a drain exported and re-imported every
    /// connection on every poll, ~3,500 times a second, each logged).
    export_pause_until: Instant,
    last_export_warning: Instant,
}

/// Most frames held while waiting for a yield, per flow and in all.
/// Life of a backend-flow alias put back after a take through it found no
/// record (see `on_reply`, `Pending::ConnTake`).
const MISSING_ALIAS_TTL: std::time::Duration = std::time::Duration::from_secs(1);
const HELD_PER_FLOW: usize = 64;
const HELD_TOTAL: usize = 4096;
/// A yield not answered by then is given up (its frames are dropped).
const YIELD_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a connection record may wait in the table to be taken.
const CONN_RECORD_TTL: Duration = Duration::from_secs(5);
/// A connection that moved less than this ago is not asked to move again;
/// frames that reach another worker meanwhile are forwarded to it.
const MOVE_SETTLE: Duration = Duration::from_millis(100);
/// Most times a frame is forwarded between workers.
const MAX_HOPS: u8 = 3;

/// The worker's job sink: the slow path if attached, else inline.
struct Jobs {
    slow: Option<(SlowPathHandle, crossbeam_channel::Sender<Done>, crossbeam_channel::Receiver<Done>)>,
    /// Tag of the connection being serviced.
    tag: u64,
    inline_fallbacks: u64,
    /// Fleet mode: session fetches go to the repository (its service
    /// threads), replies to this worker's channel.
    fleet: Option<(Arc<Fleet>, crossbeam_channel::Sender<Reply>)>,
    /// Request tags, unique per worker.
    next_tag: u64,
    /// Session fetches submitted: (request tag, connection tag, ticket id);
    /// the worker files them as pending.
    fetches: Vec<(u64, u64, Vec<u8>)>,
    fetches_not_sent: u64,
    /// Jobs on the slow path whose result has not come back.
    out: usize,
}

impl Jobs {
    fn tag(&mut self) -> u64 {
        self.next_tag = self.next_tag.wrapping_add(1);
        self.next_tag
    }
}

impl JobSink for Jobs {
    fn dispatch(&mut self, job: CryptoJob, rng: &mut dyn Entropy) -> Option<JobResult> {
        if let Some(id) = job.session_fetch() {
            // Not crypto: a take from the fleet repository, answered on a
            // later poll. Never waited for here.
            let id = id.to_vec();
            let tag = self.tag();
            let Some((fleet, reply)) = &self.fleet else { return Some(JobResult::Session(None)) };
            let req = Request { tag, op: Op::Take { kind: RecordKind::Session, id: id.clone() }, reply: Some(reply.clone()) };
            return match fleet.submit(req) {
                Ok(()) => {
                    self.fetches.push((tag, self.tag, id));
                    None
                }
                Err(_) => {
                    // Queue full: a full handshake rather than a wait.
                    self.fetches_not_sent += 1;
                    Some(JobResult::Session(None))
                }
            };
        }
        let Some((h, reply, _)) = &self.slow else { return Some(job.run(rng)) };
        match h.submit(Task { tag: self.tag, job, reply: reply.clone() }) {
            Ok(()) => {
                self.out += 1;
                None
            }
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
    pub fn new(params: WorkerParams, tls_cfg: Arc<ServerConfig>, arp: Arc<ArpCache>, mut rng: Box<dyn Entropy + Send>) -> Self {
        let port_offset = rng.u32();
        // The SYN-cookie key, shared by all workers: derived from the
        // host's RFC 6528 secret, labelled so the two uses never collide.
        let cookie_secret = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &params.isn_secret), b"baton syn cookie");
        let max_conns = params.max_connections;
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
            ports: SourcePorts::for_worker(params.id, params.workers).start_at(port_offset),
            stack,
            tls_cfg,
            tcp_cfg,
            params,
            flows: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            time_wait: 0,
            dirty: Vec::new(),
            timers: BinaryHeap::new(),
            stats: WorkerStats::default(),
            rng,
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            jobs: Jobs { slow: None, tag: 0, inline_fallbacks: 0, fleet: None, next_tag: 0, fetches: Vec::new(), fetches_not_sent: 0, out: 0 },
            fabric: None,
            sealer: None,
            held: HashMap::new(),
            held_total: 0,
            yield_asked: HashMap::new(),
            drain_next: 0,
            record_buf: Vec::new(),
            move_settle: MOVE_SETTLE,
            last_full_warning: Instant::ZERO,
            cookies: SynCookies::new(cookie_secret.as_ref()),
            cookie_threshold: (max_conns / 4 * 3).max(1),
            parked: Vec::new(),
            checkpoint_handshakes: false,
            reta: None,
            host_slice: (0, 1),
            fleet: None,
        }
    }

    /// Joins this worker to the fleet: tickets through the repository,
    /// connections exported there on a host drain and taken from there
    /// when their flow reaches this host.
    pub fn attach_fleet(&mut self, fleet: Arc<Fleet>) {
        let id = SealerId { host: fleet.host, boot: fleet.boot, worker: self.id as u32 };
        let sealer = Sealer::new(&fleet.keys(), id);
        let (reply_tx, reply_rx) = crossbeam_channel::unbounded();
        self.jobs.fleet = Some((fleet.clone(), reply_tx.clone()));
        self.fleet = Some(FleetLocal {
            tokens: fleet.params.lookups_per_s,
            fleet,
            sealer,
            reply_rx,
            reply_tx,
            pending: HashMap::new(),
            held: HashMap::new(),
            held_total: 0,
            negative: HashMap::new(),
            tokens_at: Instant::ZERO,
            fetched: FetchedExpiry::new(),
            export_pause_until: Instant::ZERO,
            last_export_warning: Instant::ZERO,
        });
    }

    /// This host is `index` of `hosts` sharing backend source addresses
    /// (behind one SNAT address): each host takes its own part of every
    /// worker slice, so a connection that moves between hosts keeps a
    /// port nobody else uses.
    pub fn set_host_slice(&mut self, index: usize, hosts: usize) {
        let hosts = hosts.max(1);
        let index = index.min(hosts - 1);
        self.host_slice = (index, hosts);
        let w = self.params.workers.max(1);
        let off = self.rng.u32();
        self.ports = SourcePorts::for_worker(index * w + self.id, hosts * w).start_at(off);
    }

    /// The local worker whose slice holds `port`, if it is this host's.
    fn port_owner(&self, port: u16) -> Option<usize> {
        let w = self.params.workers.max(1);
        let (index, hosts) = self.host_slice;
        SourcePorts::owner_of(port, hosts * w).and_then(|g| g.checked_sub(index * w)).filter(|x| *x < w)
    }

    /// Outstanding repository requests and frames held for them.
    pub fn fleet_pending(&self) -> (usize, usize) {
        self.fleet.as_ref().map_or((0, 0), |f| (f.pending.len(), f.held_total))
    }

    /// Joins this worker to the host's handoff fabric (session table,
    /// owner directory, rings).
    pub fn attach_fabric(&mut self, fabric: Arc<Fabric>) {
        let id = SealerId { host: fabric.host, boot: fabric.boot, worker: self.id as u32 };
        self.sealer = Some(Sealer::new(&fabric.keys(), id));
        self.fabric = Some(fabric);
    }

    /// Park handshakes in the session table between flights (default off).
    pub fn set_checkpoint_handshakes(&mut self, on: bool) {
        self.checkpoint_handshakes = on;
    }

    /// How long a connection that just moved is left where it is (frames
    /// for it are forwarded meanwhile). Tests set 0 to move on every frame.
    pub fn set_move_settle(&mut self, d: Duration) {
        self.move_settle = d;
    }

    /// Frames held while waiting for owners to yield, and open yield asks.
    pub fn held_frames(&self) -> (usize, usize) {
        (self.held_total, self.yield_asked.len())
    }

    pub fn fabric(&self) -> Option<&Arc<Fabric>> {
        self.fabric.as_ref()
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
    fn collect_jobs(&mut self, now: Instant) {
        if self.jobs.out == 0 {
            // Nothing on the slow path: no channel to look at.
            return;
        }
        loop {
            let done = match &self.jobs.slow {
                Some((_, _, rx)) => match rx.try_recv() {
                    Ok(d) => d,
                    Err(_) => break,
                },
                None => break,
            };
            self.jobs.out = self.jobs.out.saturating_sub(1);
            self.job_done_for(done.tag, done.result, now);
        }
    }

    /// Hands a finished job's result to the connection `tag` names.
    fn job_done_for(&mut self, tag: u64, result: JobResult, now: Instant) {
        let k = key_of(tag);
        let Worker { slots, rng, stats, jobs, fabric, sealer, fleet, .. } = self;
        if let Some(c) = slots.get_mut(k.idx as usize).filter(|s| s.gen == k.gen).and_then(|s| s.conn.as_mut()) {
            jobs.tag = tag;
            let lend = fleet.as_mut().map(|f| FleetLend { fleet: &f.fleet, sealer: &mut f.sealer, fetched: &mut f.fetched });
            let mut t = Tickets::new(fabric.as_deref(), sealer.as_mut(), now, lend);
            c.job_done(result, jobs, rng.as_mut(), stats, &mut t);
            let (p, n) = t.fleet_counts();
            stats.fleet_tickets_put += p;
            stats.fleet_tickets_not_put += n;
        }
        self.file_fetches();
        self.mark_dirty(k);
    }

    /// Files the session fetches the job sink submitted as pending.
    fn file_fetches(&mut self) {
        if self.jobs.fetches.is_empty() && self.jobs.fetches_not_sent == 0 {
            return;
        }
        self.stats.fleet_fetches_not_sent += std::mem::take(&mut self.jobs.fetches_not_sent);
        let fetches = std::mem::take(&mut self.jobs.fetches);
        if let Some(f) = self.fleet.as_mut() {
            for (tag, conn_tag, id) in fetches {
                self.stats.fleet_session_fetches += 1;
                f.pending.insert(tag, Pending::Session { conn_tag, id });
            }
        }
    }

    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// Proxied connections held.
    pub fn conn_count(&self) -> usize {
        self.live
    }

    /// Of [`conn_count`](Self::conn_count), connections in TIME_WAIT: both
    /// FINs are through, TLS is retired, only the TCP flow stays until
    /// `tcp.time_wait` is up (RFC 9293 §3.6).
    pub fn time_wait_count(&self) -> usize {
        self.time_wait
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
                self.slots.push(Slot { gen: 0, conn: None, armed: None });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[idx as usize];
        s.conn = Some(conn);
        s.armed = None;
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
        self.handle_frame_hops(frame, 0, now, tx)
    }

    fn handle_frame_hops(&mut self, frame: &[u8], hops: u8, now: Instant, tx: &mut dyn FnMut(&[u8])) {
        let rx = self.stack.handle_frame(frame, now, tx);
        let Rx::Tcp { flow, header, payload, .. } = rx else { return };
        if self.deliver(&flow, &header, payload, now) {
            return;
        }
        // A flow this worker does not hold. With other workers around it
        // may be theirs, or on its way here (DESIGN.md, "Data flow").
        if let Some(f) = self.fabric.clone() {
            if let Some(owner) = f.directory.get(&flow) {
                if owner.worker as usize != self.id {
                    self.miss_owned_elsewhere(&f, owner, frame, hops, now);
                    return;
                }
                // The directory names us but we do not hold it: the record
                // is in the table, waiting for us.
                if self.adopt(owner, now) && self.deliver(&flow, &header, payload, now) {
                    return;
                }
            }
        }
        if flow.local.port == self.params.listen_port && header.flags.syn() && !header.flags.ack() && !header.flags.rst() {
            if let Some(f) = self.fabric.clone() {
                if f.is_draining(self.id) {
                    // A draining worker takes no new connections: pass the
                    // SYN on; its owner's SYN-ACK steers the flow there.
                    let to = self.drain_target(&f);
                    if to != self.id && f.send(to, Msg::Frame { bytes: frame.to_vec(), hops: hops + 1 }) {
                        self.stats.frames_forwarded += 1;
                        return;
                    }
                }
            }
            self.accept(flow, &header, now, tx);
        } else if flow.local.port == self.params.listen_port && self.cookie_ack(flow, &header, payload, now) {
            // An ACK that completes a SYN-cookie handshake.
        } else if self.fleet_lookup(flow, &header, frame, now) {
            // Maybe another host's: held while the repository is asked.
        } else {
            // DESIGN.md: unknown flows are dropped and counted, never reset
            // (a flow may be on its way from another worker or host).
            self.stack.count_drop(DropReason::TcpNoFlow);
        }
    }

    /// The ACK of a SYN answered with a cookie: rebuild the connection.
    fn cookie_ack(&mut self, flow: FlowId, header: &TcpHeader, payload: &[u8], now: Instant) -> bool {
        if self.live >= self.params.max_connections {
            return false;
        }
        let Some(tcp) = self.cookies.accept_ack(&self.tcp_cfg, flow, header, payload, now) else { return false };
        self.stats.syn_cookies_accepted += 1;
        self.adopt_new(flow, tcp, now);
        true
    }

    /// Feeds a segment to the connection holding `flow`; false if none.
    fn deliver(&mut self, flow: &FlowId, header: &TcpHeader, payload: &[u8], now: Instant) -> bool {
        let Some(&(k, side)) = self.flows.get(flow) else { return false };
        let Some(c) = self.get(k) else { return false };
        c.last_activity = now;
        let outcome = match side {
            Side::Client => Some(c.client.on_segment(header, payload, now)),
            Side::Backend => c.backend.as_mut().map(|b| b.tcp.on_segment(header, payload, now)),
        };
        if let Some(SegmentOutcome::Dropped(r)) = outcome {
            self.stats.tcp_segments_rejected += 1;
            log::trace!("worker {} {side:?} {flow:?}: segment seq {} len {} rejected: {r:?}", self.id, header.seq, payload.len());
        }
        self.mark_dirty(k);
        true
    }

    /// A frame for a flow another worker owns: take the connection over
    /// (ask the owner to yield, hold the frame meanwhile), or, when this
    /// worker is draining or the frame has travelled already, forward it.
    fn miss_owned_elsewhere(&mut self, f: &Arc<Fabric>, owner: Owner, frame: &[u8], hops: u8, now: Instant) {
        // A record in the table is for the worker the directory names; we
        // never take one meant for another (it would race that worker's
        // adopt and strand the frames it holds).
        // A handshake parked between flights: whoever gets the next flight
        // takes it (DESIGN.md: a checkpoint is a move too).
        if owner.parked && self.adopt(owner, now) {
            self.handle_frame_hops(frame, hops, now, &mut |_| {});
            return;
        }
        let to = owner.worker as usize;
        // Hysteresis: a connection that just moved is not pulled back at
        // once (on net_tap the NIC follows the new owner's transmissions a
        // moment later; a frame or two still arrive at the old queue).
        let settling = now.saturating_since(owner.since) < self.move_settle;
        if f.is_draining(self.id) || hops > 0 || f.is_draining(to) || settling || self.reta_keeps(&owner) {
            if hops >= MAX_HOPS || !f.send(to, Msg::Frame { bytes: frame.to_vec(), hops: hops + 1 }) {
                self.stats.handoff_frames_dropped += 1;
            } else {
                self.stats.frames_forwarded += 1;
            }
            return;
        }
        let cf = owner.client_flow;
        if !self.yield_asked.contains_key(&cf) {
            if f.send(to, Msg::Yield { client_flow: cf, to: self.id, hops: 0 }) {
                self.yield_asked.insert(cf, now);
                self.stats.yields_requested += 1;
            } else {
                // The owner's ring is full: let it keep the flow for now.
                let _ = f.send(to, Msg::Frame { bytes: frame.to_vec(), hops: hops + 1 });
                return;
            }
        }
        let q = self.held.entry(cf).or_default();
        if q.len() >= HELD_PER_FLOW || self.held_total >= HELD_TOTAL {
            self.stats.handoff_frames_dropped += 1;
            return;
        }
        q.push((now, frame.to_vec()));
        self.held_total += 1;
    }

    fn drain_target(&mut self, f: &Fabric) -> usize {
        for _ in 0..f.workers {
            self.drain_next = (self.drain_next + 1) % f.workers;
            let w = self.drain_next;
            if w != self.id && !f.is_draining(w) {
                return w;
            }
        }
        self.id
    }

    /// Takes the connection named by `owner` from the table and imports it;
    /// then replays the frames held for it. False if the record is not
    /// there (not yet, or taken by another worker).
    fn adopt(&mut self, owner: Owner, now: Instant) -> bool {
        let Some(f) = self.fabric.clone() else { return false };
        let id = conn_identity(&owner);
        let mut buf = std::mem::take(&mut self.record_buf);
        let taken = f.take_conn(&id, owner.small, now, &mut buf);
        let mut ok = false;
        if taken {
            let opened = Opener::new(&f.keys()).open(KIND_CONN, &id, now, &buf);
            match opened {
                Ok(plain) => match self.import_conn(&plain, now) {
                    Ok(_) => ok = true,
                    Err(e) => {
                        log::warn!("worker {}: cannot import connection {:?}: {e}", self.id, owner.client_flow);
                        self.stats.adopt_failures += 1;
                    }
                },
                Err(e) => {
                    log::warn!("worker {}: cannot open connection record {:?}: {e}", self.id, owner.client_flow);
                    self.stats.adopt_failures += 1;
                }
            }
        }
        buf.clear();
        self.record_buf = buf;
        if ok {
            let cf = owner.client_flow;
            self.yield_asked.remove(&cf);
            let isns = owner.isns;
            // We own both flows now.
            // import_conn just inserted it; never panic a worker if not.
            let Some(&(k, _)) = self.flows.get(&cf) else { return false };
            let bf = self.get(k).and_then(|c| c.backend_flow());
            let me = Owner { worker: self.id as u16, client_flow: cf, isns, since: now, parked: false, small: false };
            f.directory.set(cf, me);
            if let Some(bf) = bf {
                f.directory.set(bf, me);
            }
            if let Some(frames) = self.held.remove(&cf) {
                self.held_total -= frames.len();
                for (_, fr) in frames {
                    self.handle_frame_hops(&fr, 0, now, &mut |_| {});
                }
            }
        }
        ok
    }

    /// Moves the connection of `client_flow` to worker `to`: export, seal,
    /// put into the table, point the directory at `to`, purge here, and
    /// tell `to` over its ring. False if it cannot move now (a crypto job
    /// is out, or the table refused), in which case it stays here.
    pub fn hand_over(&mut self, client_flow: &FlowId, to: usize, now: Instant) -> bool {
        self.move_out(client_flow, to, false, now + CONN_RECORD_TTL, now)
    }

    /// The one way a connection leaves this worker: export, seal, put,
    /// point the directory at its next owner (`to`, or anyone who gets its
    /// next frame when `parked`), purge the local copy.
    fn move_out(&mut self, client_flow: &FlowId, to: usize, parked: bool, expiry: Instant, now: Instant) -> bool {
        let Some(f) = self.fabric.clone() else { return false };
        let Some(&(k, _)) = self.flows.get(client_flow) else { return false };
        let Some(c) = self.get(k) else { return false };
        if c.job_pending() {
            return false;
        }
        let mut owner = Owner { worker: to as u16, client_flow: *client_flow, isns: (c.client.iss(), c.client.irs()), since: now, parked, small: false };
        let bf = c.backend_flow();
        let mut w = Writer::with_capacity(4096);
        c.encode(now, &mut w);
        let plain = w.finish();
        let id = conn_identity(&owner);
        let Some(sealer) = self.sealer.as_mut() else { return false };
        let sealed = match sealer.seal(KIND_CONN, &id, expiry, &plain) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("worker {}: cannot seal connection: {e}", self.id);
                return false;
            }
        };
        drop(plain);
        match f.put_conn(&id, &sealed, expiry, now) {
            Ok(small) => owner.small = small,
            Err(e) => {
                // A full table is backpressure, not an error: the connection
                // stays here (counted). Said once per 10 s at most.
                if parked {
                    log::debug!("worker {}: session table refused a handshake checkpoint: {e:?}", self.id);
                } else if self.last_full_warning == Instant::ZERO || now.saturating_since(self.last_full_warning) >= Duration::from_secs(10) {
                    self.last_full_warning = now;
                    log::warn!("worker {}: session table refused a connection record: {e:?} (session.table_slots, small_slots)", self.id);
                }
                self.stats.handoff_put_failures += 1;
                return false;
            }
        }
        // From here the table holds the only copy.
        f.directory.set(*client_flow, owner);
        if let Some(bf) = bf {
            f.directory.set(bf, owner);
        }
        self.purge(k);
        if parked {
            self.parked.push((expiry, *client_flow));
            self.stats.handshakes_checkpointed += 1;
        } else {
            if !f.send(to, Msg::Adopt { client_flow: *client_flow }) {
                // `to` will find the record on the flow's next frame.
                self.stats.handoff_notify_failures += 1;
            }
            self.stats.conns_exported += 1;
        }
        true
    }

    /// Drops a connection that moved away: out of the flow table, its
    /// backend port kept reserved (the new owner uses it and tells us when
    /// it is free), its state — keys included — dropped and zeroized.
    fn purge(&mut self, k: ConnKey) {
        let Some(s) = self.slots.get_mut(k.idx as usize) else { return };
        if s.gen != k.gen {
            return;
        }
        let Some(c) = s.conn.take() else { return };
        s.gen = s.gen.wrapping_add(1);
        self.free.push(k.idx);
        self.live -= 1;
        self.time_wait -= usize::from(c.tls.is_retired());
        self.flows.remove(&c.client_flow());
        if let Some(b) = c.backend.as_ref() {
            self.flows.remove(&b.tcp.flow());
            self.pool.released(b.pool_idx);
        }
        drop(c);
    }

    /// Handles messages from other workers and handoff housekeeping.
    fn poll_fabric(&mut self, now: Instant, tx: &mut dyn FnMut(&[u8])) {
        // The common case, checked without touching the shared Arc's
        // reference count (the profile of bench/replay showed its clone and
        // drop on every loop iteration, bouncing one cache line between
        // the workers): nothing arrived and nothing is pending.
        if let Some(f) = self.fabric.as_deref() {
            let quiet = f.inbox_is_empty(self.id)
                && self.yield_asked.is_empty()
                && self.parked.is_empty()
                && !(self.live > 0 && f.is_draining(self.id))
                && self.sealer.as_ref().map(|s| s.key_id()) == Some(f.key_id())
                && f.reta_generation() == f.reta_seen(self.id);
            if quiet {
                return;
            }
        }
        let Some(f) = self.fabric.clone() else { return };
        // After a key rotation, seal under the new key (a new sealer: its
        // subkey is new, so its counter may start again).
        if self.sealer.as_ref().map(|s| s.key_id()) != Some(f.key_id()) {
            let id = SealerId { host: f.host, boot: f.boot, worker: self.id as u32 };
            self.sealer = Some(Sealer::new(&f.keys(), id));
        }
        self.poll_reta(&f, now);
        for _ in 0..256 {
            let Some(m) = f.recv(self.id) else { break };
            match m {
                Msg::Frame { bytes, hops } => self.handle_frame_hops(&bytes, hops, now, tx),
                Msg::Yield { client_flow, to, hops } => {
                    // The connection may be ours but still in the table
                    // (our Adopt message not yet read): take it first.
                    if !self.flows.contains_key(&client_flow) {
                        if let Some(o) = f.directory.get(&client_flow) {
                            if o.worker as usize == self.id {
                                self.adopt(o, now);
                            }
                        }
                    }
                    if !self.flows.contains_key(&client_flow) {
                        // It moved on: pass the request to its owner now, so
                        // the asker is not left holding frames.
                        self.stats.yields_moved_on += 1;
                        if let Some(o) = f.directory.get(&client_flow) {
                            let ow = o.worker as usize;
                            if ow != self.id && ow != to && hops < MAX_HOPS {
                                f.send(ow, Msg::Yield { client_flow, to, hops: hops + 1 });
                            }
                        }
                    } else if self.hand_over(&client_flow, to, now) {
                        self.stats.conns_yielded += 1;
                    } else {
                        // Busy (a crypto job is out): the asker's held frames
                        // come here after its timeout, and it asks again.
                        self.stats.yields_refused += 1;
                    }
                }
                Msg::Adopt { client_flow } => {
                    if let Some(o) = f.directory.get(&client_flow) {
                        if o.worker as usize == self.id && !self.flows.contains_key(&client_flow) {
                            self.adopt(o, now);
                        }
                    }
                }
                Msg::ReleasePort { backend, port } => self.ports.release(backend, port),
            }
        }
        // Yields that were not answered: retry once the timeout passes,
        // and drop frames held too long.
        if !self.yield_asked.is_empty() {
            let expired: Vec<FlowId> =
                self.yield_asked.iter().filter(|(_, t)| now.saturating_since(**t) > YIELD_TIMEOUT).map(|(k, _)| *k).collect();
            for cf in expired {
                self.yield_asked.remove(&cf);
                if let Some(frames) = self.held.remove(&cf) {
                    self.held_total -= frames.len();
                    // Forward them to whoever owns the flow now.
                    match f.directory.get(&cf) {
                        Some(o) if o.worker as usize != self.id => {
                            for (_, fr) in frames {
                                if f.send(o.worker as usize, Msg::Frame { bytes: fr, hops: 1 }) {
                                    self.stats.frames_forwarded += 1;
                                } else {
                                    self.stats.handoff_frames_dropped += 1;
                                }
                            }
                        }
                        _ => self.stats.handoff_frames_dropped += frames.len() as u64,
                    }
                }
            }
        }
        // Parked handshakes nobody continued: the record expired with the
        // handshake deadline; forget its directory entries.
        while let Some(&(t, cf)) = self.parked.first() {
            if t > now {
                break;
            }
            self.parked.remove(0);
            if let Some(o) = f.directory.get(&cf) {
                if o.parked && o.worker as usize == self.id {
                    f.directory.remove_if_owner(&cf, self.id);
                    self.stats.handshakes_abandoned += 1;
                }
            }
        }
        if f.is_draining(self.id) && self.live > 0 {
            for cf in self.client_flows() {
                let to = self.drain_target(&f);
                if to == self.id {
                    break;
                }
                self.hand_over(&cf, to, now);
            }
        }
    }

    fn accept(&mut self, flow: FlowId, syn: &TcpHeader, now: Instant, tx: &mut dyn FnMut(&[u8])) {
        if self.live >= self.cookie_threshold {
            // Under pressure: answer with a SYN cookie and keep nothing
            // (RFC 4987 §3.6); the client's ACK rebuilds the connection.
            let Worker { cookies, stack, tcp_cfg, .. } = self;
            cookies.answer(tcp_cfg, flow, syn, now, &mut |h, p| {
                let _ = stack.emit_tcp(flow.remote.addr, h, p, now, tx);
            });
            self.stats.syn_cookies_sent += 1;
            if self.live >= self.params.max_connections {
                self.stats.conns_refused_full += 1;
            }
            // Say so in the log, at most once every 10 s per worker.
            if self.last_full_warning == Instant::ZERO || now.saturating_since(self.last_full_warning) >= Duration::from_secs(10) {
                self.last_full_warning = now;
                log::warn!(
                    "worker {}: {} of max_connections {} held; answering SYNs with cookies ({} so far{})",
                    self.id,
                    self.live,
                    self.params.max_connections,
                    self.stats.syn_cookies_sent,
                    if self.live >= self.params.max_connections { "; full: their ACKs are dropped" } else { "" }
                );
            }
            return;
        }
        let isn = isn_rfc6528(&self.params.isn_secret, &flow, now);
        let tcp = TcpConn::accept(&self.tcp_cfg, flow, syn, isn, now);
        self.adopt_new(flow, tcp, now);
    }

    /// Takes a new client connection into the flow table.
    fn adopt_new(&mut self, flow: FlowId, tcp: TcpConn, now: Instant) {
        let owner = Owner { worker: self.id as u16, client_flow: flow, isns: (tcp.iss(), tcp.irs()), since: now, parked: false, small: false };
        let mut pc = ProxiedConn::new(tcp, self.tls_cfg.clone(), now, self.params.timeouts);
        pc.proxy_v2 = self.params.proxy_v2;
        let k = self.insert(pc);
        self.flows.insert(flow, (k, Side::Client));
        if let Some(f) = &self.fabric {
            f.directory.set(flow, owner);
        }
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
        let mut owner = None;
        if let Some(c) = self.get(k) {
            owner = Some(Owner { worker: 0, client_flow: c.client_flow(), isns: (c.client.iss(), c.client.irs()), since: now, parked: false, small: false });
            c.attach_backend(tcp, idx, deadline);
        }
        self.flows.insert(flow, (k, Side::Backend));
        if let (Some(f), Some(mut o)) = (&self.fabric, owner) {
            o.worker = self.id as u16;
            f.directory.set(flow, o);
        }
    }

    /// Services every connection that got input or whose timer expired,
    /// and transmits what is due.
    pub fn poll(&mut self, now: Instant, tx: &mut dyn FnMut(&[u8])) {
        self.poll_fabric(now, tx);
        self.poll_fleet(now, tx);
        self.collect_jobs(now);
        while let Some(Reverse((t, idx, gen))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            // Stale: superseded by an earlier entry, or the slot was reused.
            let Some(s) = self.slots.get_mut(idx as usize).filter(|s| s.gen == gen && s.armed == Some(t)) else { continue };
            s.armed = None;
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
        let Worker { slots, rng, scratch, stats, jobs, fabric, sealer, fleet, .. } = self;
        let Some(c) = slots.get_mut(k.idx as usize).filter(|s| s.gen == k.gen).and_then(|s| s.conn.as_mut()) else {
            return;
        };
        c.dirty = false;
        let was_retired = c.tls.is_retired();
        jobs.tag = tag_of(k);
        let lend = fleet.as_mut().map(|f| FleetLend { fleet: &f.fleet, sealer: &mut f.sealer, fetched: &mut f.fetched });
        let mut t = Tickets::new(fabric.as_deref(), sealer.as_mut(), now, lend);
        let (mut status, wants) = c.service(now, rng.as_mut(), jobs, scratch, stats, &mut t);
        let (p, n) = t.fleet_counts();
        stats.fleet_tickets_put += p;
        stats.fleet_tickets_not_put += n;
        if wants.backend {
            self.connect_backend(k, now);
            // A second pass so the SYN and any buffered plaintext move now.
            let Worker { slots, rng, scratch, stats, jobs, fabric, sealer, fleet, .. } = self;
            if let Some(c) = slots.get_mut(k.idx as usize).and_then(|s| s.conn.as_mut()) {
                let lend = fleet.as_mut().map(|f| FleetLend { fleet: &f.fleet, sealer: &mut f.sealer, fetched: &mut f.fetched });
                let mut t = Tickets::new(fabric.as_deref(), sealer.as_mut(), now, lend);
                status = c.service(now, rng.as_mut(), jobs, scratch, stats, &mut t).0;
                let (p, n) = t.fleet_counts();
                stats.fleet_tickets_put += p;
                stats.fleet_tickets_not_put += n;
            }
        }
        self.file_fetches();
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
        // Alone on the host nobody else could take a parked handshake:
        // parking would only cost a seal, a put and a take per flight.
        let may_park = self.checkpoint_handshakes && self.fabric.as_ref().is_some_and(|f| f.workers > 1);
        let Some(c) = self.get(k) else { return };
        let (retired_now, park) = (!was_retired && c.tls.is_retired(), may_park && c.can_checkpoint());
        self.time_wait += usize::from(retired_now);
        let Some(c) = self.get(k) else { return };
        if park {
            let (cf, deadline) = (c.client_flow(), c.handshake_deadline());
            if self.move_out(&cf, self.id, true, deadline, now) {
                return;
            }
        }
        let Some(c) = self.get(k) else { return };
        let next = c.poll_at();
        // Timers run inside transmit (TIME-WAIT ending, a retransmission
        // limit), so look again after it.
        if status == Status::Done || c.is_done() {
            self.remove(k);
        } else if let Some(t) = next {
            // One live entry per slot: a later deadline waits for the
            // entry already armed (its pass arms the next one), an earlier
            // one supersedes it (regression: every pass pushed an entry,
            // 204 for one connection; tests/handoff_workers.rs).
            let t = t.max(now);
            if let Some(s) = self.slots.get_mut(k.idx as usize).filter(|s| s.gen == k.gen) {
                if s.armed.is_none_or(|a| t < a) {
                    s.armed = Some(t);
                    self.timers.push(Reverse((t, k.idx, k.gen)));
                }
            }
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
        self.time_wait -= usize::from(c.tls.is_retired());
        let cf = c.client_flow();
        self.flows.remove(&cf);
        if let Some(f) = &self.fabric {
            f.directory.remove_if_owner(&cf, self.id);
        }
        if let Some(b) = c.backend.as_ref() {
            let bf = b.tcp.flow();
            self.flows.remove(&bf);
            self.ports.release(bf.remote, bf.local.port);
            self.pool.released(b.pool_idx);
            if let Some(f) = &self.fabric {
                f.directory.remove_if_owner(&bf, self.id);
                // A port from another worker's slice (the connection moved
                // here): tell that worker it is free again.
                if let Some(w) = self.port_owner(bf.local.port) {
                    if w != self.id {
                        f.send(w, Msg::ReleasePort { backend: bf.remote, port: bf.local.port });
                    }
                }
            }
        }
        self.stats.conns_closed += 1;
        Some(c)
    }

    /// Entries in the timer heap (at most about one per connection).
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
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
                let t = |t: &TcpConn| {
                    format!(
                        "{:?} rcv_nxt={} rcv_adv={} snd_una={} snd_nxt={} recv={} sendq={} unacked={} peer_win={} cwnd={} poll_at={:?}",
                        t.state(),
                        t.rcv_nxt,
                        t.rcv_adv,
                        t.snd_una,
                        t.snd_nxt,
                        t.recv_len(),
                        t.send_queue_len(),
                        t.unacked_len(),
                        t.peer_window(),
                        t.cwnd(),
                        t.poll_at()
                    )
                };
                format!(
                    "client {:?} {} / backend {:?} / tls out={} plain={} handshaking={} failed={} close_notify_in={}",
                    c.client_flow(),
                    t(&c.client),
                    c.backend.as_ref().map(|b| t(&b.tcp)),
                    c.tls.tls_output().len(),
                    c.tls.plaintext_len(),
                    c.tls.is_handshaking(),
                    c.tls.is_failed(),
                    c.tls.received_close_notify()
                )
            })
            .collect()
    }

    /// Resets both flows of every connection still held (the stop's drain
    /// timeout ran out): clients and backends learn at once instead of
    /// waiting out their own timeouts.
    pub fn abort_all(&mut self, now: Instant, tx: &mut dyn FnMut(&[u8])) {
        let Worker { slots, stack, .. } = self;
        for s in slots.iter_mut() {
            let Some(c) = s.conn.as_mut() else { continue };
            if !c.client.is_closed() {
                c.client.abort();
            }
            if let Some(b) = c.backend.as_mut() {
                if !b.tcp.is_closed() {
                    b.tcp.abort();
                }
            }
            c.transmit(now, &mut |flow, h, p| {
                let _ = stack.emit_tcp(flow.remote.addr, h, p, now, tx);
            });
        }
    }

    /// Client flows of the connections held (for handoff tests and admin).
    /// Bytes one connection's slot takes in the worker's table, inline
    /// (what its heap allocations come on top of).
    pub fn slot_bytes(&self) -> usize {
        std::mem::size_of::<Slot>()
    }

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

/// Most frames held per flow, and in all, while the repository is asked.
const FLEET_HELD_PER_FLOW: usize = 32;
const FLEET_HELD_TOTAL: usize = 2048;
/// Exports wait this long after the repository refused one.
const EXPORT_PAUSE: Duration = Duration::from_millis(500);

/// Fleet mode (issue 4): connections leave a draining host through the
/// repository and are taken from it by the host their next frame reaches.
impl Worker {
    /// Answers from the repository, and the host drain's exports.
    fn poll_fleet(&mut self, now: Instant, tx: &mut dyn FnMut(&[u8])) {
        let Some(fl) = self.fleet.as_mut() else { return };
        // A new fleet key: seal under it from now on.
        if fl.sealer.key_id() != fl.fleet.key_id() {
            let id = SealerId { host: fl.fleet.host, boot: fl.fleet.boot, worker: self.id as u32 };
            fl.sealer = Sealer::new(&fl.fleet.keys(), id);
        }
        for _ in 0..256 {
            let Some(fl) = self.fleet.as_mut() else { return };
            if fl.pending.is_empty() {
                // Nothing asked: no channel to look at (once per loop).
                break;
            }
            let Ok(reply) = fl.reply_rx.try_recv() else { break };
            let Some(p) = fl.pending.remove(&reply.tag) else { continue };
            self.on_reply(p, reply.outcome, now, tx);
        }
        let Some(fl) = self.fleet.as_mut() else { return };
        if fl.negative.len() > 4096 {
            let ttl = fl.fleet.params.negative_ttl;
            fl.negative.retain(|_, t| now.saturating_since(*t) < ttl);
        }
        if fl.fleet.is_draining() && self.live > 0 && now >= fl.export_pause_until {
            for cf in self.client_flows() {
                self.fleet_export(&cf, now);
            }
        }
    }

    fn on_reply(&mut self, p: Pending, outcome: Outcome, now: Instant, tx: &mut dyn FnMut(&[u8])) {
        match p {
            Pending::Session { conn_tag, id } => {
                let found = match outcome {
                    Outcome::Taken(sealed) => {
                        // Replies only come in fleet mode; if not, no session.
                        let plain = self.fleet.as_mut().and_then(|fl| {
                            let wall = fl.fleet.wall(now);
                            open_fetched(&fl.fleet, &id, &sealed, wall, &mut fl.fetched)
                        });
                        if plain.is_some() {
                            self.stats.fleet_sessions_found += 1;
                        } else {
                            self.stats.fleet_records_unreadable += 1;
                        }
                        plain
                    }
                    // Missing, refused by ACL, or no answer in time: a full
                    // handshake (the repository counted and logged why).
                    _ => None,
                };
                self.job_done_for(conn_tag, JobResult::Session(found), now);
                if let Some(fl) = self.fleet.as_mut() {
                    fl.fetched.remove(&id);
                }
            }
            Pending::Export { id } => match outcome {
                Outcome::Stored => self.stats.fleet_conns_exported += 1,
                // The repository hands back a put that certainly did not run.
                Outcome::NotStored(sealed) => {
                    // Definitely not stored: ours again, and no export
                    // for a moment (the repository is likely down).
                    self.stats.fleet_exports_failed += 1;
                    if let Some(fl) = self.fleet.as_mut() {
                        fl.export_pause_until = now + EXPORT_PAUSE;
                        if fl.last_export_warning == Instant::ZERO || now.saturating_since(fl.last_export_warning) >= Duration::from_secs(10) {
                            fl.last_export_warning = now;
                            log::warn!(
                                "worker {}: the repository did not store an exported connection; connections stay here, exports paused {} ms ({} so far)",
                                self.id,
                                EXPORT_PAUSE.millis(),
                                self.stats.fleet_exports_failed
                            );
                        }
                    }
                    if self.fleet_import(&id, &sealed, now).is_none() {
                        self.stats.fleet_records_unreadable += 1;
                    }
                }
                _ => {
                    // Timed out: Redis may or may not hold it. Keeping a
                    // copy could make two owners; the connection is lost
                    // instead (DESIGN.md: safety over liveness).
                    self.stats.fleet_exports_lost += 1;
                    log::warn!("worker {}: no answer from the repository for an exported connection; it is dropped", self.id);
                }
            },
            Pending::ConnTake { id, held, via_alias } => {
                let missing = matches!(outcome, Outcome::Missing);
                if let Outcome::Taken(sealed) = outcome {
                    match self.fleet_import(&id, &sealed, now) {
                        Some(cf) => {
                            self.stats.fleet_conns_imported += 1;
                            let bf = self.flows.get(&cf).and_then(|&(k, _)| self.slots.get(k.idx as usize)).and_then(|s| s.conn.as_ref()).and_then(|c| c.backend_flow());
                            if let (Some(bf), Some(fl)) = (bf, self.fleet.as_ref()) {
                                // The alias is no longer needed.
                                let _ = fl.fleet.submit(Request { tag: 0, op: Op::Del { kind: RecordKind::ConnAlias, id: flow_identity(&bf).to_vec() }, reply: None });
                            }
                            for f in [Some(cf), bf, Some(held)].into_iter().flatten() {
                                self.replay_fleet_held(&f, now, tx);
                            }
                            return;
                        }
                        None => self.stats.fleet_records_unreadable += 1,
                    }
                }
                if via_alias && !self.flows.contains_key(&held) {
                    // Regression (tests/fleet_hosts.rs,
                    // backend_alias_survives_a_connection_take_that_imports_nothing):
                    // the alias take consumed the backend flow's only link
                    // to the record, so when this take imported nothing
                    // (a forgery, not there yet, repository unavailable)
                    // the backend's retransmissions could never find the
                    // connection again, and a download's client, with
                    // nothing unacknowledged, sends nothing: the record
                    // sat in the repository and the transfer stalled. The
                    // alias names a record and confers no ownership (only
                    // the record's take does), so it goes back.
                    // Not there at all (Missing): either its SET has not
                    // landed yet (the alias's went first on the other
                    // service thread) or another host took it; a short
                    // life covers the first and lets a stale alias die.
                    if let Some(fl) = self.fleet.as_ref() {
                        let full = std::time::Duration::from_micros(fl.fleet.params.conn_ttl.micros());
                        let ttl = if missing { full.min(MISSING_ALIAS_TTL) } else { full };
                        let op = Op::Put { kind: RecordKind::ConnAlias, id: flow_identity(&held).to_vec(), value: id.to_vec(), ttl };
                        let _ = fl.fleet.submit(Request { tag: 0, op, reply: None });
                    }
                    self.stats.fleet_aliases_restored += 1;
                }
                self.lookup_failed(held, now, tx);
            }
            Pending::AliasTake { held } => {
                if let Outcome::Taken(client_id) = outcome {
                    if let Ok(id) = <[u8; 12]>::try_from(&client_id[..]) {
                        self.stats.fleet_alias_hits += 1;
                        let Some(fl) = self.fleet.as_mut() else { return };
                        let tag = self.jobs.tag();
                        let req = Request { tag, op: Op::Take { kind: RecordKind::Conn, id: id.to_vec() }, reply: Some(fl.reply_tx.clone()) };
                        if fl.fleet.submit(req).is_ok() {
                            fl.pending.insert(tag, Pending::ConnTake { id, held, via_alias: true });
                            return;
                        }
                    }
                }
                self.lookup_failed(held, now, tx);
            }
        }
    }

    /// A look-up found nothing: frames held for it go to the connection if
    /// it arrived meanwhile by another path, else are dropped (the client
    /// retransmits); the flow is not looked up again for a moment.
    fn lookup_failed(&mut self, held: FlowId, now: Instant, tx: &mut dyn FnMut(&[u8])) {
        if self.flows.contains_key(&held) {
            self.replay_fleet_held(&held, now, tx);
            return;
        }
        let Some(fl) = self.fleet.as_mut() else { return };
        fl.negative.insert(held, now);
        if let Some(frames) = fl.held.remove(&held) {
            fl.held_total -= frames.len();
            self.stats.handoff_frames_dropped += frames.len() as u64;
        }
    }

    fn replay_fleet_held(&mut self, flow: &FlowId, now: Instant, tx: &mut dyn FnMut(&[u8])) {
        let Some(fl) = self.fleet.as_mut() else { return };
        let Some(frames) = fl.held.remove(flow) else { return };
        fl.held_total -= frames.len();
        for fr in frames {
            self.handle_frame_hops(&fr, 0, now, tx);
        }
    }

    /// Opens and imports a connection record from the repository; takes
    /// both its flows into the owner directory. The client flow, or None.
    fn fleet_import(&mut self, id: &[u8; 12], sealed: &[u8], now: Instant) -> Option<FlowId> {
        let fl = self.fleet.as_ref()?;
        let wall = fl.fleet.wall(now);
        let plain = match Opener::new(&fl.fleet.keys()).open(KIND_CONN, id, wall, sealed) {
            Ok(p) => p,
            Err(e) => {
                log::warn!("worker {}: cannot open a connection record from the repository: {e}", self.id);
                return None;
            }
        };
        let cf = match self.import_conn(&plain, now) {
            Ok(cf) => cf,
            Err(e) => {
                log::warn!("worker {}: cannot import a connection from the repository: {e}", self.id);
                return None;
            }
        };
        drop(plain);
        if flow_identity(&cf) != *id {
            // A record whose contents name another flow than its key: the
            // AAD bound the key, so this is our own bug, not an attack;
            // keep it (it is ours now) but say so.
            log::warn!("worker {}: repository record for {:?} held another flow", self.id, cf);
        }
        let me_id = self.id as u16;
        if let Some(f) = self.fabric.clone() {
            if let Some(&(k, _)) = self.flows.get(&cf) {
                if let Some(c) = self.get(k) {
                    let me = Owner { worker: me_id, client_flow: cf, isns: (c.client.iss(), c.client.irs()), since: now, parked: false, small: false };
                    let bf = c.backend_flow();
                    f.directory.set(cf, me);
                    if let Some(bf) = bf {
                        f.directory.set(bf, me);
                    }
                }
            }
        }
        Some(cf)
    }

    /// Host drain: exports the connection of `client_flow` into the
    /// repository (sealed under the fleet key, with an alias for its
    /// backend flow) and purges it here. Until Redis confirms, the only
    /// copy is the sealed record on its way; a refusal brings it back.
    fn fleet_export(&mut self, client_flow: &FlowId, now: Instant) -> bool {
        let Some(&(k, _)) = self.flows.get(client_flow) else { return false };
        let Some(c) = self.get(k) else { return false };
        if c.job_pending() {
            // A crypto job or a fetch is out: after its answer.
            return false;
        }
        let bf = c.backend_flow();
        let mut w = Writer::with_capacity(4096);
        c.encode(now, &mut w);
        let plain = w.finish();
        let id = flow_identity(client_flow);
        let Some(fl) = self.fleet.as_mut() else { return false };
        let ttl = fl.fleet.params.conn_ttl;
        let expiry = fl.fleet.wall(now) + ttl;
        let sealed = match fl.sealer.seal(KIND_CONN, &id, expiry, &plain) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("worker {}: cannot seal a connection for the repository: {e}", self.id);
                return false;
            }
        };
        drop(plain);
        let tag = self.jobs.tag();
        let std_ttl = std::time::Duration::from_micros(ttl.micros());
        let req = Request { tag, op: Op::Put { kind: RecordKind::Conn, id: id.to_vec(), value: sealed, ttl: std_ttl }, reply: Some(fl.reply_tx.clone()) };
        if fl.fleet.submit(req).is_err() {
            // Queue full: try again on the next poll.
            return false;
        }
        fl.pending.insert(tag, Pending::Export { id });
        if let Some(bf) = bf {
            let alias = Request { tag: 0, op: Op::Put { kind: RecordKind::ConnAlias, id: flow_identity(&bf).to_vec(), value: id.to_vec(), ttl: std_ttl }, reply: None };
            let _ = fl.fleet.submit(alias);
        }
        // Purge: out of the flow table and the directory, the backend
        // port freed (the next owner is on another host), the state and
        // its keys dropped and zeroized.
        let c = self.remove(k);
        self.stats.conns_closed -= 1;
        drop(c);
        true
    }

    /// A frame of a flow nobody on this host holds: ask the repository
    /// (client flows by their own identity, backend flows through their
    /// alias) and hold the frame meanwhile. False if not asked.
    fn fleet_lookup(&mut self, flow: FlowId, header: &TcpHeader, frame: &[u8], now: Instant) -> bool {
        let listen = self.params.listen_port;
        let is_backend = flow.local.port != listen && self.params.backends.contains(&flow.remote);
        let Some(fl) = self.fleet.as_mut() else { return false };
        if fl.fleet.is_draining() || header.flags.rst() || header.flags.syn() || (flow.local.port != listen && !is_backend) {
            return false;
        }
        let total = fl.held_total;
        if let Some(q) = fl.held.get_mut(&flow) {
            // Asked already: hold this one too.
            if q.len() >= FLEET_HELD_PER_FLOW || total >= FLEET_HELD_TOTAL {
                self.stats.handoff_frames_dropped += 1;
            } else {
                q.push(frame.to_vec());
                fl.held_total += 1;
            }
            return true;
        }
        if let Some(t) = fl.negative.get(&flow) {
            if now.saturating_since(*t) < fl.fleet.params.negative_ttl {
                return false;
            }
            fl.negative.remove(&flow);
        }
        if now.saturating_since(fl.tokens_at) >= Duration::from_secs(1) {
            fl.tokens_at = now;
            fl.tokens = fl.fleet.params.lookups_per_s;
        }
        if fl.tokens == 0 || fl.held_total >= FLEET_HELD_TOTAL {
            self.stats.fleet_lookups_limited += 1;
            return false;
        }
        fl.tokens -= 1;
        let id = flow_identity(&flow);
        self.jobs.next_tag = self.jobs.next_tag.wrapping_add(1);
        let tag = self.jobs.next_tag;
        let (op, p) = if is_backend {
            (Op::Take { kind: RecordKind::ConnAlias, id: id.to_vec() }, Pending::AliasTake { held: flow })
        } else {
            (Op::Take { kind: RecordKind::Conn, id: id.to_vec() }, Pending::ConnTake { id, held: flow, via_alias: false })
        };
        if fl.fleet.submit(Request { tag, op, reply: Some(fl.reply_tx.clone()) }).is_err() {
            self.stats.fleet_lookups_limited += 1;
            return false;
        }
        fl.pending.insert(tag, p);
        fl.held.insert(flow, vec![frame.to_vec()]);
        fl.held_total += 1;
        self.stats.fleet_lookups += 1;
        true
    }
}
