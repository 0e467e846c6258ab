//! `--memif`: the replay against the real `baton run` in its own process.
//!
//! baton runs as `baton run --config X` (its own DPDK EAL and file prefix,
//! vdev `net_memif0,role=server`, one worker pinned by `workers.cores`,
//! the slow path and the admin endpoint on). The replayer is a second DPDK
//! process (own EAL, own file prefix, vdev `net_memif0,role=client` on the
//! same socket, main lcore = the engine's core) whose port carries the
//! client engine's and the recorded backend's Ethernet frames.
//!
//! DPDK 22.11's net_memif takes `id`, `role`, `bsize` (2048), `rsize` (log2
//! ring size, 10), `socket`, `socket-abstract` (yes), `mac`, `secret`,
//! `zero-copy` (no); both sides here use a filesystem socket
//! (`socket-abstract=no`) and copy mode: zero-copy wants the client's
//! memory in single-file segments, and the copy is what a NIC's DMA would
//! cost baton anyway (none: the copy happens in the memif driver).
//!
//! CPU: baton's figure is utime+stime summed over /proc/PID/task/*/stat of
//! the baton process (worker, slow path, admin, key rotation, EAL threads);
//! the replayer's over its own tasks, reported apart.

use super::*;
use baton::dpdk::{self, Eal, EalOptions, Mbuf, Mempool, Port, PortConf, QueueId};
use std::process::{Child, Command, Stdio};

pub struct MemifOpts {
    pub baton: String,
    pub worker_core: i64,
    pub engine_core: i64,
    pub extra_vdev: String,
    /// baton's `workers.slow_path_threads` (0: handshake crypto inline).
    pub slow_path_threads: usize,
    /// CPU list every baton thread is moved to after start ("" = leave).
    pub baton_cores: String,
}

pub struct Memif {
    // Field order is drop order: the port before its pool before the EAL.
    port: Port,
    pool: Mempool,
    _eal: Eal,
    rxv: Vec<Mbuf>,
    txv: Vec<Mbuf>,
    pending: VecDeque<Vec<u8>>,
    child: Option<Child>,
    pid: i32,
    admin: String,
    dir: std::path::PathBuf,
    worker_core: i64,
    engine_core: i64,
    baton_cores: String,
    slow: usize,
    m0: HashMap<String, f64>,
    /// Frames the ring did not take and were dropped (queue over 8192).
    pub tx_dropped: u64,
}

/// `(name, utime+stime seconds)` of every task of `pid`.
pub fn tasks_cpu(pid: i32) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default().trim().to_string();
        out.push((comm, stat_cpu(&stat)));
    }
    out
}

fn rss_of(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// GET /metrics from the admin endpoint: metric name (labels dropped) →
/// sum over its series.
fn metrics(addr: &str) -> Result<HashMap<String, f64>, String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("admin {addr}: {e}"))?;
    s.set_read_timeout(Some(StdDuration::from_secs(3))).ok();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    let body = body.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let mut m = HashMap::new();
    for l in body.lines() {
        if l.starts_with('#') || l.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = l.rsplit_once(' ') else { continue };
        let name = if k.starts_with("baton_loop_iteration_microseconds_bucket") { k.to_string() } else { k.split('{').next().unwrap_or(k).to_string() };
        if let Ok(v) = v.parse::<f64>() {
            *m.entry(name).or_default() += v;
        }
    }
    if m.is_empty() {
        return Err(format!("admin {addr}: no metrics"));
    }
    Ok(m)
}

fn arp_probe() -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&CLIENT_IP);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&BATON_IP);
    f
}

impl Memif {
    /// Generates certificates, writes baton's config, starts `baton run`,
    /// waits for its admin endpoint, starts this process's EAL and port,
    /// and waits until baton answers ARP over the memif link.
    pub fn start(o: &MemifOpts, dir: &std::path::Path, g: &baton::demo::certs::GeneratedCerts) -> Result<Memif, String> {
        let me = std::process::id();
        let sock = format!("/tmp/baton-replay-memif-{me}.sock");
        let _ = std::fs::remove_file(&sock);
        let admin = format!("127.0.0.1:{}", 20000 + me % 20000);
        let cores = if o.worker_core >= 0 { format!("[{}]", o.worker_core) } else { "[]".into() };
        let extra = if o.extra_vdev.is_empty() { String::new() } else { format!(",{}", o.extra_vdev) };
        let cfg = format!(
            "[dpdk]\nvdevs = [\"net_memif0,role=server,id=0,socket={sock},socket-abstract=no,mac=02:00:00:00:00:02{extra}\"]\n\
             port = \"net_memif0\"\nfile_prefix = \"baton-replay-memif-b{me}\"\n\
             [listen]\naddress = \"198.18.0.2\"\nprefix_len = 24\n\
             [tls]\ncert = \"{}\"\nkey = \"{}\"\nalpn = [\"http/1.1\"]\n\
             [backend]\nservers = [\"198.18.0.1:{BACKEND_PORT}\"]\nproxy_protocol = \"v2\"\n\
             [workers]\ncount = 1\ncores = {cores}\nmax_connections = 65536\nslow_path_threads = {}\n\
             [admin]\nlisten = \"{admin}\"\n",
            g.cert.display(),
            g.key.display(),
            o.slow_path_threads
        );
        let cfg_path = dir.join("baton.toml");
        std::fs::write(&cfg_path, cfg).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("baton.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&o.baton)
            .args(["run", "--config"])
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("{}: {e}", o.baton))?;
        let pid = child.id() as i32;
        if let Err(e) = Memif::wait_admin(&admin, pid) {
            let mut c = child;
            let _ = c.kill();
            let _ = c.wait();
            return Err(format!("{e}\n{}", tail(dir)));
        }
        // `baton run` pins its worker (workers.cores) but its EAL main lcore
        // is core 0, and threads it starts there (slow path, admin, key
        // rotation) inherit that: move every baton thread onto baton's own
        // core(s), so the engine has core 0 to itself.
        if !o.baton_cores.is_empty() {
            if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
                for e in rd.flatten() {
                    let _ = Command::new("taskset")
                        .args(["-pc", &o.baton_cores, &e.file_name().to_string_lossy()])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
        let eopts = EalOptions {
            cores: vec![o.engine_core.max(0) as usize],
            vdevs: vec![format!("net_memif0,role=client,id=0,socket={sock},socket-abstract=no{extra}")],
            file_prefix: format!("baton-replay-memif-r{me}"),
            no_pci: true,
            log_level: Some("notice".into()),
            ..EalOptions::default()
        };
        let args = dpdk::eal_args(&eopts);
        let eal = Eal::init(&args).map_err(|e| format!("replayer EAL: {e}"))?;
        let pid_port = dpdk::port_by_name(&eal, "net_memif0").ok_or("replayer: no net_memif0 port")?;
        let pool = Mempool::new(&eal, "replay_mbufs", 16383, 256, dpdk::DEFAULT_DATA_ROOM, None).map_err(|e| e.to_string())?;
        let mut port = Port::configure(pid_port, 1, 1, &pool, PortConf { rss: false, ..PortConf::default() }).map_err(|e| e.to_string())?;
        port.start().map_err(|e| format!("replayer port start: {e}"))?;
        let mut me = Memif {
            port,
            pool,
            _eal: eal,
            rxv: Vec::with_capacity(64),
            txv: Vec::with_capacity(64),
            pending: VecDeque::new(),
            child: Some(child),
            pid,
            admin,
            dir: dir.to_path_buf(),
            worker_core: o.worker_core,
            engine_core: o.engine_core,
            baton_cores: o.baton_cores.clone(),
            slow: o.slow_path_threads,
            m0: HashMap::new(),
            tx_dropped: 0,
        };
        // The memif link comes up asynchronously: ask baton for its MAC
        // until it answers.
        let t0 = StdInstant::now();
        let mut last = t0 - StdDuration::from_secs(1);
        loop {
            if last.elapsed() > StdDuration::from_millis(50) {
                me.pending.clear();
                me.send(arp_probe());
                me.flush();
                last = StdInstant::now();
            }
            let mut got = false;
            me.recv(&mut |f| got |= f.get(12..14) == Some(&[0x08, 0x06][..]) && f.get(20..22) == Some(&[0, 2][..]));
            if got {
                break;
            }
            if t0.elapsed() > StdDuration::from_secs(10) {
                return Err(format!("no ARP reply from baton over net_memif in 10 s\n{}", tail(dir)));
            }
            std::thread::sleep(StdDuration::from_millis(1));
        }
        me.pending.clear();
        Ok(me)
    }

    fn wait_admin(admin: &str, pid: i32) -> Result<(), String> {
        let t0 = StdInstant::now();
        while t0.elapsed() < StdDuration::from_secs(20) {
            if metrics(admin).is_ok() {
                return Ok(());
            }
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err("baton exited during start".into());
            }
            std::thread::sleep(StdDuration::from_millis(100));
        }
        Err("baton's admin endpoint did not come up in 20 s".into())
    }

    /// Stops baton with SIGTERM; Ok when it exited 0 and logged its stop.
    pub fn shutdown(&mut self) -> Result<String, String> {
        let Some(mut c) = self.child.take() else { return Err("not running".into()) };
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        let t0 = StdInstant::now();
        // Keep draining the ring while baton drains its connections.
        let status = loop {
            let mut sink = |_f: Vec<u8>| {};
            self.recv(&mut sink);
            if let Ok(Some(st)) = c.try_wait() {
                break Some(st);
            }
            if t0.elapsed() > StdDuration::from_secs(15) {
                let _ = c.kill();
                let _ = c.wait();
                break None;
            }
            std::thread::sleep(StdDuration::from_millis(2));
        };
        let log = std::fs::read_to_string(self.dir.join("baton.log")).unwrap_or_default();
        let lines: Vec<String> = log.lines().filter(|l| l.contains("worker 0 stopped") || l.contains("mbufs in use") || l.contains("worker 0 drops")).map(|l| l.to_string()).collect();
        match status {
            Some(st) if st.success() && log.contains("baton stopped") => Ok(lines.join("\n")),
            _ => Err(format!("baton did not stop cleanly ({status:?})\n{}", tail(&self.dir))),
        }
    }
}

fn tail(dir: &std::path::Path) -> String {
    let log = std::fs::read_to_string(dir.join("baton.log")).unwrap_or_default();
    let l: Vec<&str> = log.lines().collect();
    l[l.len().saturating_sub(15)..].join("\n")
}

impl Drop for Memif {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Target for Memif {
    fn describe(&self) -> String {
        format!(
            "net_memif: `baton run` pid {} (1 worker pinned to core {}, {} slow-path thread(s), admin {}; all baton threads on cpus {}), replayer DPDK process on core {}",
            self.pid, self.worker_core, self.slow, self.admin, if self.baton_cores.is_empty() { "as started" } else { &self.baton_cores }, self.engine_core
        )
    }
    fn begin(&mut self) {
        self.m0 = metrics(&self.admin).unwrap_or_default();
    }
    fn recv(&mut self, f: &mut dyn FnMut(Vec<u8>)) -> usize {
        let mut n = 0;
        loop {
            let k = self.port.rx_burst(QueueId(0), &mut self.rxv, 32);
            for m in self.rxv.drain(..) {
                let mut v = Vec::with_capacity(m.pkt_len() as usize);
                m.copy_to(&mut v);
                f(v);
            }
            n += k;
            if k < 32 {
                return n;
            }
        }
    }
    fn send(&mut self, frame: Vec<u8>) {
        if self.pending.len() >= 8192 {
            self.pending.pop_front();
            self.tx_dropped += 1;
        }
        self.pending.push_back(frame);
    }
    fn flush(&mut self) {
        while !self.pending.is_empty() || !self.txv.is_empty() {
            while self.txv.len() < 32 {
                let Some(f) = self.pending.pop_front() else { break };
                let Some(mut m) = Mbuf::alloc(&self.pool) else {
                    self.pending.push_front(f);
                    break;
                };
                if m.append_from(&f) {
                    self.txv.push(m);
                } else {
                    self.tx_dropped += 1;
                }
            }
            if self.txv.is_empty() {
                return;
            }
            if self.port.tx_burst(QueueId(0), &mut self.txv) == 0 {
                // Ring full: baton is behind; try again next round.
                return;
            }
        }
    }
    fn baton_cpu(&self) -> f64 {
        tasks_cpu(self.pid).iter().map(|(_, v)| v).sum()
    }
    fn baton_threads(&self) -> Vec<(String, f64)> {
        tasks_cpu(self.pid)
    }
    fn worker_wait(&self) -> f64 {
        let Ok(rd) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else { return 0.0 };
        rd.flatten()
            .filter(|e| std::fs::read_to_string(e.path().join("comm")).map(|c| c.starts_with("baton-worker")).unwrap_or(false))
            .map(|e| sched_wait(&e.path().to_string_lossy()))
            .sum()
    }
    fn engine_cpu(&self) -> f64 {
        tasks_cpu(std::process::id() as i32).iter().map(|(_, v)| v).sum()
    }
    fn rss_kb(&self) -> u64 {
        rss_of(self.pid)
    }
    fn pid(&self) -> Option<i32> {
        Some(self.pid)
    }
    fn stop(&mut self) -> Result<String, String> {
        self.shutdown()
    }
    fn end(&mut self) -> Counts {
        // Take what baton still sends (closes, ACKs) for a moment.
        let t0 = StdInstant::now();
        while t0.elapsed() < StdDuration::from_millis(100) {
            self.recv(&mut |_f| {});
            std::thread::sleep(StdDuration::from_millis(1));
        }
        let m1 = metrics(&self.admin).unwrap_or_default();
        let d = |k: &str| (m1.get(k).copied().unwrap_or(0.0) - self.m0.get(k).copied().unwrap_or(0.0)).max(0.0) as u64;
        Counts {
            rx_frames: d("baton_rx_frames_total"),
            tx_frames: d("baton_tx_frames_total"),
            handshakes: d("baton_handshakes_completed_total"),
            resumed: d("baton_handshakes_resumed_total"),
            c2b: d("baton_bytes_client_to_backend_total"),
            b2c: d("baton_bytes_backend_to_client_total"),
            drops: d("baton_drops_total"),
            busy_est: {
                // cumulative `le` buckets of worker 0 → per-bucket counts
                let mut cum = Vec::new();
                for b in 0..40u32 {
                    let k = format!("baton_loop_iteration_microseconds_bucket{{worker=\"0\",le=\"{}\"}}", (1u64 << b) - 1);
                    if !m1.contains_key(&k) {
                        break;
                    }
                    cum.push(d(&k));
                }
                cum.push(d("baton_loop_iteration_microseconds_count"));
                let per: Vec<u64> = cum.iter().enumerate().map(|(i, &c)| c.saturating_sub(if i == 0 { 0 } else { cum[i - 1] })).collect();
                busy_from_buckets(&per)
            },
        }
    }
}
