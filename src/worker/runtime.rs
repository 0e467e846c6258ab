//! Runs workers on DPDK: EAL, port, queues, one pinned thread per worker,
//! idle back-off, clean stop on SIGINT/SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::time::{Instant, MonotonicClock};
use crate::tls::{load_cert_chain_pem, ServerConfig, SigningKey};

use super::io::FrameIo;
use super::Worker;

/// Loads the certificate chain and key named in the config.
pub fn load_tls(cfg: &Config) -> Result<Arc<ServerConfig>, String> {
    let cert_pem = std::fs::read(&cfg.tls.cert).map_err(|e| format!("tls.cert: cannot read {}: {e}", cfg.tls.cert.display()))?;
    let key_pem = std::fs::read(&cfg.tls.key).map_err(|e| format!("tls.key: cannot read {}: {e}", cfg.tls.key.display()))?;
    let chain = load_cert_chain_pem(&cert_pem).map_err(|e| format!("tls.cert: {}: {e}", cfg.tls.cert.display()))?;
    let key = SigningKey::from_pem(&key_pem).map_err(|e| format!("tls.key: {}: {e}", cfg.tls.key.display()))?;
    // The leaf certificate's SubjectPublicKeyInfo carries the public key's
    // bytes verbatim (the EC point, the Ed25519 key, the RSAPublicKey DER),
    // so a key that does not belong to the certificate is caught here
    // rather than as a "bad signature" on every client.
    let pubkey = key.public_key();
    let leaf = chain.first().map(|c| c.as_slice()).unwrap_or(&[]);
    if pubkey.is_empty() || !leaf.windows(pubkey.len()).any(|w| w == pubkey) {
        return Err(format!(
            "tls.key: {} does not match the certificate {} (the leaf's public key differs)",
            cfg.tls.key.display(),
            cfg.tls.cert.display()
        ));
    }
    let alpn = cfg.tls.alpn.iter().map(|s| s.as_bytes().to_vec()).collect();
    let mut sc = ServerConfig::new(chain, key, alpn).map_err(|e| format!("tls: {e}"))?;
    sc.tickets_per_handshake = cfg.tls.tickets_per_handshake;
    sc.ticket_lifetime_s = cfg.tls.ticket_lifetime_s;
    sc.max_early_data = cfg.tls.max_early_data;
    sc.early_data_age_window_ms = cfg.tls.early_data_age_window_ms;
    Ok(Arc::new(sc))
}

/// Loop settings.
#[derive(Clone, Copy, Debug)]
pub struct LoopConfig {
    pub idle_polls_before_sleep: u32,
    pub idle_sleep_us: u64,
    /// After the last busy iteration, keep polling without sleeping this long.
    pub idle_spin_us: u64,
    /// How long a stopping worker waits for its connections to close.
    pub drain_timeout_ms: u64,
}

/// The poll loop: rx burst → stack/TCP/TLS/proxy → tx burst, until `stop`.
/// Then every connection is closed (close_notify + FIN) and the loop keeps
/// running until they are gone or `drain_timeout_ms` passes.
pub fn poll_loop(worker: &mut Worker, io: &mut dyn FrameIo, clock: &MonotonicClock, stop: &AtomicBool, lc: LoopConfig) -> LoopTotals {
    poll_loop_with(worker, io, clock, stop, lc, &mut |_, _| {})
}

/// [`poll_loop`] with a hook called about every 100 ms.
pub fn poll_loop_with(
    worker: &mut Worker,
    io: &mut dyn FrameIo,
    clock: &MonotonicClock,
    stop: &AtomicBool,
    lc: LoopConfig,
    every_100ms: &mut dyn FnMut(&Worker, &LoopTotals),
) -> LoopTotals {
    let mut totals = LoopTotals::default();
    let mut last_hook = Instant::ZERO;
    let mut idle = 0u32;
    let mut last_busy = Instant::ZERO;
    let mut stopping_since: Option<Instant> = None;
    let mut out = FrameArena::default();
    loop {
        let now = clock.now();
        if now.saturating_since(last_hook).millis() >= 100 {
            every_100ms(worker, &totals);
            last_hook = now;
        }
        if stopping_since.is_none() && stop.load(Ordering::Relaxed) {
            log::info!(
                "worker {}: stopping, closing {} connections ({} of them in TIME_WAIT)",
                worker.id,
                worker.conn_count(),
                worker.time_wait_count()
            );
            worker.shutdown();
            stopping_since = Some(now);
        }
        if let Some(t) = stopping_since {
            if worker.conn_count() == 0 {
                return totals;
            }
            if now.saturating_since(t).millis() > lc.drain_timeout_ms {
                log::warn!("worker {}: {} connections did not close in time; resetting them", worker.id, worker.conn_count());
                out.clear();
                worker.abort_all(now, &mut |f| out.push(f));
                for f in out.iter() {
                    io.tx_frame(f);
                }
                io.flush();
                return totals;
            }
        }
        // Frames the worker emits are collected in a reused arena (no
        // allocation per packet once warm), then copied into mbufs.
        out.clear();
        let mut rx_bytes = 0u64;
        let n = io.rx_burst(&mut |frame| {
            rx_bytes += frame.len() as u64;
            worker.handle_frame(frame, now, &mut |f| out.push(f))
        });
        worker.poll(now, &mut |f| out.push(f));
        let sent = out.len();
        // How long receiving and processing held the loop (TX excluded:
        // on net_tap that is one kernel write per frame, not baton's work).
        let busy_us = if n > 0 || sent > 0 { Some(clock.now().saturating_since(now).micros()) } else { None };
        for f in out.iter() {
            if io.tx_frame(f) {
                totals.tx_frames += 1;
                totals.tx_bytes += f.len() as u64;
            }
        }
        totals.rx_frames += n as u64;
        totals.rx_bytes += rx_bytes;
        io.flush();
        if let Some(us) = busy_us {
            totals.record_iteration(us);
        }
        if n == 0 && sent == 0 {
            idle = idle.saturating_add(1);
            // Keep polling for a short while after the last frame: a reply
            // (the backend's answer, the client's next record) usually comes
            // within it, and a sleep there costs a timer slack per hop.
            let spinning = now.saturating_since(last_busy).micros() < lc.idle_spin_us;
            if idle > lc.idle_polls_before_sleep && !spinning {
                // Back off so the clients and backend sharing these cores run
                // (DESIGN.md, "Machines without a NIC"). Wake for timers.
                let mut sleep_us = lc.idle_sleep_us;
                if let Some(t) = worker.next_wakeup() {
                    sleep_us = sleep_us.min(t.saturating_since(now).micros().max(1));
                }
                std::thread::sleep(std::time::Duration::from_micros(sleep_us));
            }
        } else {
            idle = 0;
            last_busy = now;
        }
    }
}

/// Frames and bytes a poll loop moved, and how long its busy iterations
/// took (log2 µs buckets), for the metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopTotals {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// `iterations[i]`: busy iterations that took < 2^i µs (the last
    /// bucket takes the rest).
    pub iterations: [u64; LOOP_BUCKETS],
    pub iteration_max_us: u64,
}

/// Buckets of the loop-iteration histogram: < 1 µs … < 2^19 µs, and more.
pub const LOOP_BUCKETS: usize = 21;

impl LoopTotals {
    pub fn record_iteration(&mut self, us: u64) {
        let b = (64 - us.leading_zeros()) as usize; // 0 for 0 µs, 1 for 1, 2 for 2-3, ...
        self.iterations[b.min(LOOP_BUCKETS - 1)] += 1;
        self.iteration_max_us = self.iteration_max_us.max(us);
    }

    /// The upper bound (µs) under which `q` of the busy iterations fell.
    pub fn iteration_quantile_us(&self, q: f64) -> u64 {
        let total: u64 = self.iterations.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = (total as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.iterations.iter().enumerate() {
            seen += c;
            if seen >= want {
                return 1u64 << i;
            }
        }
        self.iteration_max_us
    }
}

/// Frames queued for transmission in one loop iteration, back to back in
/// one buffer.
#[derive(Default)]
pub struct FrameArena {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl FrameArena {
    pub fn push(&mut self, frame: &[u8]) {
        self.bytes.extend_from_slice(frame);
        self.ends.push(self.bytes.len());
    }
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&e| {
            let f = &self.bytes[start..e];
            start = e;
            f
        })
    }
}

/// What one worker thread hands back when it stops.
struct WorkerReport {
    id: usize,
    stats: super::stats::WorkerStats,
    drops: crate::net::stack::DropCounters,
    io: crate::worker::dpdk_io::DpdkQueueCounters,
    totals: LoopTotals,
}

/// Shared snapshots of every worker's counters, for the admin endpoint.
pub type Snapshots = Arc<Vec<std::sync::Mutex<Snapshot>>>;

/// What a worker publishes about every 100 ms.
#[derive(Clone, Default)]
pub struct Snapshot {
    pub stats: super::stats::WorkerStats,
    pub counters: crate::metrics::Counters,
    pub totals: LoopTotals,
    /// Connections held at the snapshot.
    pub live: usize,
    /// Of `live`, connections in TIME_WAIT.
    pub time_wait: usize,
}

/// `baton run`: sets up DPDK and runs the workers until SIGINT/SIGTERM.
pub fn run(cfg: Config) -> Result<(), String> {
    use crate::dpdk::{self, Eal, EalOptions, Mempool, Port, PortConf, PortId, QueueId};

    let tls = load_tls(&cfg)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| format!("cannot install signal handler: {e}"))?;
    }
    let n = cfg.workers.count;
    let opts = EalOptions {
        vdevs: cfg.dpdk.vdevs.clone(),
        file_prefix: cfg.dpdk.file_prefix.clone(),
        memory_mb: cfg.dpdk.memory_mb,
        // With virtual devices only, never probe PCI: the host's own NICs
        // stay with the kernel.
        no_pci: !cfg.dpdk.vdevs.is_empty(),
        no_huge: match cfg.dpdk.hugepages.as_str() {
            "on" => Some(false),
            "off" => Some(true),
            _ => None,
        },
        ..EalOptions::default()
    };
    let mut args = dpdk::eal_args(&opts);
    args.extend(cfg.dpdk.eal_args.iter().cloned());
    log::info!("EAL arguments: {}", args.join(" "));
    let eal = Eal::init(&args).map_err(|e| format!("dpdk: EAL init failed: {e}"))?;
    let port_id = match dpdk::port_by_name(&eal, &cfg.dpdk.port) {
        Some(p) => p,
        None => match cfg.dpdk.port.parse::<u16>() {
            Ok(id) if dpdk::port_name(&eal, PortId(id)).is_some() => PortId(id),
            _ => {
                let have: Vec<String> =
                    dpdk::available_ports(&eal).into_iter().map(|(id, name)| format!("{} ({name})", id.0)).collect();
                return Err(format!(
                    "dpdk.port: no DPDK port {:?}; available: {}",
                    cfg.dpdk.port,
                    if have.is_empty() { "none (add a --vdev in dpdk.vdevs or bind a NIC)".into() } else { have.join(", ") }
                ));
            }
        },
    };
    let pool = Mempool::new(&eal, "baton_mbufs", cfg.dpdk.mbufs, 256, dpdk::DEFAULT_DATA_ROOM, Some(eal.socket_id()))
        .map_err(|e| format!("dpdk: cannot create the mbuf pool ({} mbufs; try a smaller dpdk.mbufs or more dpdk.memory_mb): {e}", cfg.dpdk.mbufs))?;
    let mut port = Port::configure(port_id, n as u16, n as u16, &pool, PortConf { mtu: cfg.dpdk.mtu, rss: n > 1, ..PortConf::default() })
        .map_err(|e| format!("dpdk.port: cannot configure {}: {e}", cfg.dpdk.port))?;
    port.start().map_err(|e| format!("dpdk.port: cannot start {}: {e}", cfg.dpdk.port))?;
    let mac = crate::net::MacAddr(port.mac());
    let mtu = port.mtu().map_err(|e| format!("dpdk.port: cannot read MTU: {e}"))?;
    log::info!(
        "port {} ({}) mac {mac} mtu {mtu}, {n} queue pair(s), driver {}",
        port_id.0,
        cfg.dpdk.port,
        port.info().driver
    );

    let arp = Arc::new(crate::net::arp::ArpCache::new(4096));
    let mut isn_secret = [0u8; 16];
    crate::entropy::Entropy::fill(&mut crate::entropy::OsEntropy::new(), &mut isn_secret);
    let slow = if cfg.workers.slow_path_threads > 0 {
        Some(crate::slowpath::SlowPath::start(cfg.workers.slow_path_threads, cfg.workers.slow_path_queue).map_err(|e| format!("slow path: {e}"))?)
    } else {
        None
    };
    let fabric = make_fabric(&cfg, &eal)?;
    if n > 1 {
        publish_port_reta(&port, &fabric);
    }
    let clock = Arc::new(MonotonicClock::new());
    let (repository, fleet) = make_fleet(&cfg, &clock)?;
    {
        // Key rotation on a timer (DESIGN.md, "Sealing").
        let (fabric, stop, clock) = (fabric.clone(), stop.clone(), clock.clone());
        let every = std::time::Duration::from_secs(cfg.session.key_rotation_s);
        std::thread::Builder::new()
            .name("baton-keys".into())
            .spawn(move || {
                crate::dpdk::signals::block_async_signals();
                let mut rng = crate::entropy::OsEntropy::new();
                let mut last = std::time::Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                    if last.elapsed() >= every {
                        last = std::time::Instant::now();
                        if fabric.rotate_keys(clock.now(), &mut rng) {
                            log::info!("session: sealing key rotated to id {}", fabric.key_id());
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the key rotation thread: {e}"))?;
    }
    let snapshots: Snapshots = Arc::new((0..n).map(|_| std::sync::Mutex::new(Default::default())).collect());
    let lc = LoopConfig {
        idle_polls_before_sleep: cfg.workers.idle_polls_before_sleep,
        idle_sleep_us: cfg.workers.idle_sleep_us,
        idle_spin_us: cfg.workers.idle_spin_us,
        drain_timeout_ms: 2000,
    };
    let mut threads = Vec::new();
    for id in 0..n {
        let queue = port.take_queue(QueueId(id as u16)).ok_or_else(|| format!("dpdk: queue {id} unavailable"))?;
        let params = super::WorkerParams {
            id,
            workers: n,
            mac,
            vip: cfg.listen.address,
            prefix_len: cfg.listen.prefix_len,
            gateway: cfg.listen.gateway,
            mtu,
            listen_port: cfg.listen.port,
            backends: cfg.backend_addrs().into_iter().map(|a| crate::net::Endpoint::new((*a.ip()).into(), a.port())).collect(),
            connect_timeout: crate::time::Duration::from_millis(cfg.backend.connect_timeout_ms),
            max_connections: cfg.workers.max_connections,
            recv_buffer: cfg.tcp.recv_buffer,
            send_buffer: cfg.tcp.send_buffer,
            isn_secret,
            proxy_v2: cfg.backend.proxy_protocol == "v2",
            timeouts: super::conn::Timeouts {
                handshake: crate::time::Duration::from_millis(cfg.tcp.handshake_timeout_ms),
                idle: crate::time::Duration::from_millis(cfg.tcp.idle_timeout_ms),
            },
        };
        let (tls, arp, pool, stop, clock, eal, snapshots, fabric) =
            (tls.clone(), arp.clone(), pool.clone(), stop.clone(), clock.clone(), eal.clone(), snapshots.clone(), fabric.clone());
        let slow = slow.as_ref().map(|s| s.handle());
        let core = cfg.workers.cores.get(id).copied();
        let checkpoint = cfg.session.checkpoint_handshakes;
        let fleet = fleet.clone();
        let host_slice = cfg.fleet.as_ref().map(|f| (f.host_index, f.hosts));
        let t = std::thread::Builder::new()
            .name(format!("baton-worker-{id}"))
            .spawn(move || {
                // SIGIO (net_tap's RX trigger) goes to the main thread, not
                // into a worker's loop.
                crate::dpdk::signals::block_async_signals();
                if let Some(c) = core {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                        log::warn!("worker {id}: could not pin to core {c}");
                    }
                }
                // Registered so the mempool's per-lcore cache serves this thread.
                let _reg = eal.register_thread().map_err(|e| log::warn!("worker {id}: not registered with DPDK: {e}")).ok();
                let mut io = super::dpdk_io::DpdkQueue::new(queue, pool, 32);
                let mut w = Worker::new(params, tls, arp, Box::new(crate::entropy::OsEntropy::new()));
                if let Some(h) = slow {
                    w.attach_slow_path(h);
                }
                w.attach_fabric(fabric);
                w.set_checkpoint_handshakes(checkpoint);
                if let Some(f) = fleet {
                    w.attach_fleet(f);
                }
                if let Some((index, hosts)) = host_slice {
                    w.set_host_slice(index, hosts);
                }
                // A panic must not cross into C or take the process down
                // with ports half-configured: catch it, log it, stop.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    poll_loop_published(&mut w, &mut io, &clock, &stop, lc, &snapshots[id])
                }));
                let totals = r.unwrap_or_else(|_| {
                    log::error!("worker {id}: panicked; stopping it");
                    stop.store(true, Ordering::Relaxed);
                    LoopTotals::default()
                });
                WorkerReport { id, stats: w.stats, drops: w.stack().drops.clone(), io: io.counters(), totals }
            })
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        threads.push(t);
    }
    // The port is shared with the admin thread (RETA changes) only through
    // a weak reference, so it is closed here at stop, whatever the admin
    // thread is doing.
    let port = Arc::new(std::sync::Mutex::new(port));
    if let Some(addr) = &cfg.admin.listen {
        let hook = reta_hook(Arc::downgrade(&port), fabric.clone(), n);
        crate::admin::start(addr, snapshots.clone(), fabric.clone(), fleet.clone(), Some(hook)).map_err(|e| format!("admin.listen: {addr}: {e}"))?;
    }
    log::info!("baton running: {}:{} → {} backend(s), {n} worker(s)", cfg.listen.address, cfg.listen.port, cfg.backend.servers.len());
    for t in threads {
        match t.join() {
            Ok(r) => {
                let stats: Vec<String> = r.stats.iter().filter(|(_, _, v)| *v > 0).map(|(k, _, v)| format!("{k}={v}")).collect();
                let drops: Vec<String> = r.drops.iter().filter(|(_, v)| *v > 0).map(|(k, v)| format!("{}={v}", k.as_str())).collect();
                log::info!("worker {} stopped: {}", r.id, if stats.is_empty() { "no traffic".into() } else { stats.join(" ") });
                log::info!("worker {} drops: {}", r.id, if drops.is_empty() { "none".into() } else { drops.join(" ") });
                let busy: u64 = r.totals.iterations.iter().sum();
                log::info!(
                    "worker {} loop: busy_iterations={busy} p50_us<{} p99_us<{} p999_us<{} max_us={}",
                    r.id,
                    r.totals.iteration_quantile_us(0.5),
                    r.totals.iteration_quantile_us(0.99),
                    r.totals.iteration_quantile_us(0.999),
                    r.totals.iteration_max_us
                );
                log::info!(
                    "worker {} io: rx_frames={} tx_frames={} tx_dropped={} tx_nombuf={}",
                    r.id, r.io.rx_frames, r.io.tx_frames, r.io.tx_dropped, r.io.tx_nombuf
                );
            }
            Err(_) => log::error!("a worker thread panicked"),
        }
    }
    drop(slow);
    drop(repository);
    let mut port = {
        let mut p = port;
        loop {
            match Arc::try_unwrap(p) {
                Ok(m) => break m.into_inner().unwrap_or_else(|e| e.into_inner()),
                // The admin thread is applying a RETA right now.
                Err(back) => {
                    p = back;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
    };
    if let Err(e) = port.stop() {
        log::warn!("port stop: {e}");
    }
    // Closing the port returns the mbufs its RX rings hold.
    drop(port);
    log::info!("mbufs in use at stop: {}", pool.in_use_count());
    drop(pool);
    eal.remove_runtime_dir_if_empty();
    drop(eal);
    log::info!("baton stopped");
    Ok(())
}

/// Where the PMD reports an RSS redirection table and key, the workers
/// model the NIC's steering with them (RSS-aware backend source ports,
/// issue 3 §2). DPDK 22.11 cannot say which hash function the device uses;
/// this assumes Toeplitz, the default of the NICs that report a RETA. If
/// it is not, nothing breaks: backend replies reach another worker and are
/// forwarded over the ring, as on net_tap. net_tap and net_ring report no
/// RETA: ports then come from the per-worker slices.
fn publish_port_reta(port: &crate::dpdk::Port, fabric: &super::handoff::Fabric) {
    let reta = port.rss_reta_query().and_then(|t| port.rss_hash_key().map(|k| (k, t)));
    match reta {
        Ok((key, table)) => match crate::net::rss::Reta::new(&key, table) {
            Ok(r) => {
                log::info!("rss: {} RETA entries, {}-byte key: backend source ports chosen so replies reach their owner", r.len(), key.len());
                fabric.set_reta(r);
            }
            Err(e) => log::info!("rss: unusable RETA or key ({e}); backend source ports from per-worker slices"),
        },
        Err(e) => log::info!("rss: {e}; backend source ports from per-worker slices, replies forwarded between workers"),
    }
}

/// Changes the port's RETA (the admin trigger of issue 3 §4). Order: the
/// workers are told first and move the connections the new table gives to
/// other queues (waiting up to `wait` for every worker to act), then the
/// NIC steers by it. Frames that reach a queue in between are forwarded to
/// the new owner through the owner directory; moving after the NIC would
/// instead make every new owner ask for its connections one frame at a
/// time. `NotSupported` from the PMD leaves the workers on the new table
/// with the NIC on the old one, so the caller should check support first
/// ([`crate::dpdk::Port::reta_size`]).
pub fn apply_reta(port: &mut crate::dpdk::Port, fabric: &super::handoff::Fabric, reta: crate::net::rss::Reta, wait: std::time::Duration) -> Result<(), String> {
    let size = port.reta_size().map_err(|e| e.to_string())? as usize;
    if size != reta.len() {
        return Err(format!("the port's RETA has {size} entries, the new one {}", reta.len()));
    }
    let table = reta.table().to_vec();
    let gen = fabric.set_reta(reta);
    let start = std::time::Instant::now();
    while !fabric.reta_acked(gen) && start.elapsed() < wait {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    if !fabric.reta_acked(gen) {
        log::warn!("rss: not every worker acted on RETA generation {gen} within {wait:?}; applying it anyway");
    }
    port.rss_reta_update(&table).map_err(|e| e.to_string())
}

/// The fleet (issue 4): the Redis repository's service threads and what
/// the workers share for it. None without `[repository]` / `[fleet]`.
/// A wrong password or a bad key file stops baton here, naming the key.
#[allow(clippy::type_complexity)]
fn make_fleet(
    cfg: &Config,
    clock: &MonotonicClock,
) -> Result<(Option<crate::session::repository::Repository>, Option<Arc<super::fleet::Fleet>>), String> {
    use crate::entropy::Entropy;
    let (Some(rc), Some(fc)) = (&cfg.repository, &cfg.fleet) else { return Ok((None, None)) };
    let keys = fc.load_keys().map_err(|e| e.to_string())?;
    let now = clock.now();
    // The previous key first, then the current one on top of it.
    let mut ring = crate::session::seal::KeyRing::new(keys.last().map(|k| k.0).unwrap_or(1), &keys[keys.len() - 1].1, now);
    if keys.len() == 2 {
        ring.rotate(keys[0].0, &keys[0].1, now).map_err(|e| format!("fleet.key_file: {e}"))?;
    }
    let repo = crate::session::repository::Repository::start(rc).map_err(|e| format!("repository: {e}"))?;
    let sink = super::fleet::RedisSink { handle: repo.handle(), stats: repo.stats() };
    let mut rng = crate::entropy::OsEntropy::new();
    let params = super::fleet::FleetParams {
        conn_ttl: crate::time::Duration::from_secs(fc.conn_ttl_s),
        lookups_per_s: fc.lookups_per_s,
        ..Default::default()
    };
    // Host and boot ids name this process's sealers fleet-wide (with the
    // worker id): random, so a restarted host never reuses a subkey.
    let fleet = Arc::new(super::fleet::Fleet::new(Box::new(sink), ring, rng.u32(), rng.u64(), params));
    let unix_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
    fleet.set_wall_offset(unix_us - now.micros() as i64);
    log::info!(
        "fleet: repository {} as user {:?}, frontend {:?}, host {} of {}, fleet key id {:08x}{}",
        rc.target(),
        rc.username,
        rc.frontend,
        fc.host_index,
        fc.hosts,
        keys[0].0,
        if keys.len() == 2 { format!(" (previous {:08x} still opens)", keys[1].0) } else { String::new() }
    );
    Ok((Some(repo), Some(fleet)))
}

/// The admin's RETA trigger: a table of the port's size spread round robin
/// over `queues`, under the port's hash key, applied by [`apply_reta`].
fn reta_hook(port: std::sync::Weak<std::sync::Mutex<crate::dpdk::Port>>, fabric: Arc<super::handoff::Fabric>, workers: usize) -> crate::admin::RetaHook {
    Box::new(move |queues: &[u16]| {
        if workers < 2 {
            return Err("one worker: there is nothing to steer".into());
        }
        let port = port.upgrade().ok_or("the port is closing")?;
        let mut port = port.lock().map_err(|_| "the port lock is poisoned")?;
        let driver = port.info().driver.clone();
        let size = port.reta_size().map_err(|e| format!("{driver}: {e}"))? as usize;
        let key = port.rss_hash_key().map_err(|e| format!("{driver}: {e}"))?;
        let table: Vec<u16> = (0..size).map(|i| queues[i % queues.len()]).collect();
        let reta = crate::net::rss::Reta::new(&key, table).map_err(|e| format!("{e:?}"))?;
        apply_reta(&mut port, &fabric, reta, std::time::Duration::from_secs(2))?;
        Ok(format!("RETA generation {}: {size} entries over queues {queues:?}", fabric.reta_generation()))
    })
}

/// The host's handoff fabric: session table (heap memory for now),
/// a fresh random sealing key, host and boot ids.
fn make_fabric(cfg: &Config, eal: &crate::dpdk::Eal) -> Result<Arc<super::handoff::Fabric>, String> {
    use crate::entropy::Entropy;
    use crate::session::seal::KeyRing;
    let mut rng = crate::entropy::OsEntropy::new();
    let mut hash_key = [0u8; 32];
    rng.fill(&mut hash_key);
    let max_record = cfg.session.max_record_kib * 1024;
    let table = super::handoff::memzone_table(eal, "baton_conns", cfg.session.table_slots, max_record, hash_key)
        .map_err(|e| format!("session.table_slots / max_record_kib: {e} (raise dpdk.memory_mb or lower them)"))?;
    rng.fill(&mut hash_key);
    let tickets = super::handoff::memzone_table(eal, "baton_tickets", cfg.session.ticket_slots, super::handoff::TICKET_RECORD_MAX, hash_key)
        .map_err(|e| format!("session.ticket_slots: {e} (raise dpdk.memory_mb or lower it)"))?;
    let small = if cfg.session.small_slots > 0 {
        rng.fill(&mut hash_key);
        Some(
            super::handoff::memzone_table(eal, "baton_conns_small", cfg.session.small_slots, cfg.session.small_record_kib * 1024, hash_key)
                .map_err(|e| format!("session.small_slots / small_record_kib: {e} (raise dpdk.memory_mb or lower them)"))?,
        )
    } else {
        None
    };
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    rng.fill(&mut key[..]);
    let keys = KeyRing::new(1, &key, Instant::ZERO);
    log::info!(
        "session tables (DPDK memzones): {} connection slots of up to {} KiB, {} of up to {} KiB, {} ticket slots",
        cfg.session.table_slots,
        cfg.session.max_record_kib,
        cfg.session.small_slots,
        cfg.session.small_record_kib,
        cfg.session.ticket_slots
    );
    let fabric = super::handoff::Fabric::new(cfg.workers.count, 4096, table, tickets, keys, rng.u32(), rng.u64());
    Ok(Arc::new(match small {
        Some(s) => fabric.with_small_table(s),
        None => fabric,
    }))
}

/// [`poll_loop`], publishing counter snapshots for the admin endpoint about
/// every 100 ms.
fn poll_loop_published(
    w: &mut Worker,
    io: &mut dyn FrameIo,
    clock: &MonotonicClock,
    stop: &AtomicBool,
    lc: LoopConfig,
    snap: &std::sync::Mutex<Snapshot>,
) -> LoopTotals {
    poll_loop_with(w, io, clock, stop, lc, &mut |w: &Worker, t: &LoopTotals| {
        if let Ok(mut s) = snap.lock() {
            s.stats = w.stats;
            s.counters.set_from_stack(&w.stack().stats, &w.stack().drops);
            s.counters.rx_frames = t.rx_frames;
            s.counters.rx_bytes = t.rx_bytes;
            s.counters.tx_frames = t.tx_frames;
            s.counters.tx_bytes = t.tx_bytes;
            s.totals = *t;
            s.live = w.conn_count();
            s.time_wait = w.time_wait_count();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(dir: &std::path::Path, cert: &std::path::Path, key: &std::path::Path) -> Config {
        let text = format!(
            "[listen]\naddress = \"198.18.0.2\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[backend]\nservers = [\"198.18.0.1:8080\"]\n",
            cert.display(),
            key.display()
        );
        let p = dir.join("baton.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(&p).unwrap()
    }

    /// Regression: check-config said "ok" for a key that belongs to another
    /// certificate; every handshake then failed with a bad signature.
    #[test]
    fn loop_iteration_histogram_buckets_by_power_of_two() {
        let mut t = LoopTotals::default();
        for us in [0, 1, 3, 3, 100, 5000] {
            t.record_iteration(us);
        }
        assert_eq!(t.iterations[0], 1); // 0 µs
        assert_eq!(t.iterations[1], 1); // 1 µs
        assert_eq!(t.iterations[2], 2); // 2–3 µs
        assert_eq!(t.iterations[7], 1); // 64–127 µs
        assert_eq!(t.iterations[13], 1); // 4096–8191 µs
        assert_eq!(t.iteration_max_us, 5000);
        assert_eq!(t.iteration_quantile_us(0.5), 4);
        assert_eq!(t.iteration_quantile_us(1.0), 1 << 13);
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let dir = std::env::temp_dir().join(format!("baton-keymatch-{}", std::process::id()));
        let a = crate::demo::certs::generate(&dir.join("a"), &["a.test"], &[]).unwrap();
        let b = crate::demo::certs::generate(&dir.join("b"), &["b.test"], &[]).unwrap();
        assert!(load_tls(&config_with(&dir, &a.cert, &a.key)).is_ok());
        let e = load_tls(&config_with(&dir, &a.cert, &b.key)).unwrap_err();
        assert!(e.starts_with("tls.key:") && e.contains("does not match"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
