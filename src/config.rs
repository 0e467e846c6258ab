//! TOML configuration. `baton check-config FILE` runs [`Config::load`] and
//! prints what it would do; every error names the key it is about.

use serde::Deserialize;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("{key}: {msg}")]
    Invalid { key: &'static str, msg: String },
    /// An error from a section that names its own keys (`repository.url: ...`).
    #[error("{0}")]
    Section(String),
}

fn invalid(key: &'static str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, msg: msg.into() }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub dpdk: DpdkSection,
    pub listen: ListenSection,
    pub tls: TlsSection,
    pub backend: BackendSection,
    #[serde(default)]
    pub workers: WorkersSection,
    #[serde(default)]
    pub tcp: TcpSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub session: SessionSection,
    /// The fleet repository (Redis) this host shares with the others.
    #[serde(default)]
    pub repository: Option<crate::session::repository::RepositoryConfig>,
    /// This host's place in the fleet; needs `[repository]`.
    #[serde(default)]
    pub fleet: Option<FleetSection>,
}

/// `[fleet]`: take-and-purge across hosts through the repository.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// The fleet key: a file holding 64 hex digits (32 bytes), the same on
    /// every host (`baton fleet-key > FILE` makes one). Records in the
    /// repository are sealed under per-host subkeys of it.
    pub key_file: PathBuf,
    /// The key before the last rotation: records sealed under it stay
    /// readable. To rotate: give every host the new key as `key_file` and
    /// the old one here, one host after the other.
    #[serde(default)]
    pub previous_key_file: Option<PathBuf>,
    /// This host's index among `hosts` that share backend source
    /// addresses (a shared SNAT address): each takes its own part of the
    /// source-port range, so a connection keeps its port when it moves.
    #[serde(default)]
    pub host_index: usize,
    #[serde(default = "default_hosts")]
    pub hosts: usize,
    /// Seconds an exported connection waits in the repository to be
    /// taken (short: it bounds what a Redis failover can bring back).
    #[serde(default = "default_conn_ttl")]
    pub conn_ttl_s: u64,
    /// Most repository look-ups of unknown flows per second per worker.
    #[serde(default = "default_lookups")]
    pub lookups_per_s: u32,
}

fn default_hosts() -> usize {
    1
}
fn default_conn_ttl() -> u64 {
    10
}
fn default_lookups() -> u32 {
    2000
}

impl FleetSection {
    /// The current and previous fleet keys with their ids.
    pub fn load_keys(&self) -> Result<Vec<(u32, zeroize::Zeroizing<[u8; 32]>)>, ConfigError> {
        let mut out = vec![(read_key("fleet.key_file", &self.key_file)?)];
        if let Some(p) = &self.previous_key_file {
            out.push(read_key("fleet.previous_key_file", p)?);
        }
        if out.len() == 2 && out[0].0 == out[1].0 {
            return Err(invalid("fleet.previous_key_file", "is the same key as fleet.key_file"));
        }
        Ok(out)
    }
}

/// Reads a 32-byte key written as 64 hex digits. Its id (shared by every
/// host without coordination) comes from a hash of the key.
fn read_key(key: &'static str, path: &Path) -> Result<(u32, zeroize::Zeroizing<[u8; 32]>), ConfigError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| invalid(key, format!("{}: {e}", path.display())))?);
    let hex = text.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(key, format!("{}: must hold 64 hex digits (32 bytes); `baton fleet-key` makes one", path.display())));
    }
    let mut k = zeroize::Zeroizing::new([0u8; 32]);
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| invalid(key, "not hex"))?;
    }
    Ok((fleet_key_id(&k), k))
}

/// The id of a fleet key: the first four bytes of a labelled SHA-256 of
/// it, never 0. Not secret (one-way), the same on every host.
pub fn fleet_key_id(k: &[u8; 32]) -> u32 {
    let mut c = ring::digest::Context::new(&ring::digest::SHA256);
    c.update(b"baton fleet key id");
    c.update(k);
    let d = c.finish();
    let id = u32::from_be_bytes([d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]]);
    id.max(1)
}

/// `[session]`: the host's session table, through which workers hand
/// connections (and, later, sessions) to each other.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    /// Records the table holds at once.
    #[serde(default = "default_table_slots")]
    pub table_slots: usize,
    /// Largest record in KiB; a connection whose state is larger (full
    /// buffers) waits until it is smaller before it can move.
    #[serde(default = "default_max_record_kib")]
    pub max_record_kib: usize,
    /// Small connection slots, for the records that fit one (a parked
    /// handshake, a connection with little buffered): most moves, without
    /// each taking one of the `table_slots` large ones. 0: none.
    #[serde(default = "default_small_slots")]
    pub small_slots: usize,
    /// Size of a small slot in KiB (less than `max_record_kib`).
    #[serde(default = "default_small_record_kib")]
    pub small_record_kib: usize,
    /// Session tickets the host holds at once (each resumable once, until
    /// its lifetime ends; when full, new tickets are not issued).
    #[serde(default = "default_ticket_slots")]
    pub ticket_slots: usize,
    /// The sealing key rotates this often (seconds). Records sealed under
    /// the previous key stay readable, so a ticket lives at most this long
    /// past its issue: `tls.ticket_lifetime_s` must not exceed it.
    #[serde(default = "default_key_rotation")]
    pub key_rotation_s: u64,
    /// Park a handshake in the table after each flight of ours once it is
    /// acknowledged, so whichever worker gets the next flight continues it
    /// (a move: no worker keeps the handshake secrets meanwhile).
    #[serde(default = "default_true")]
    pub checkpoint_handshakes: bool,
}

fn default_true() -> bool {
    true
}

fn default_key_rotation() -> u64 {
    7200
}

fn default_ticket_slots() -> usize {
    16384
}

fn default_table_slots() -> usize {
    64
}
fn default_max_record_kib() -> usize {
    1024
}
fn default_small_slots() -> usize {
    2048
}
fn default_small_record_kib() -> usize {
    16
}

impl Default for SessionSection {
    fn default() -> Self {
        SessionSection {
            table_slots: default_table_slots(),
            max_record_kib: default_max_record_kib(),
            small_slots: default_small_slots(),
            small_record_kib: default_small_record_kib(),
            ticket_slots: default_ticket_slots(), key_rotation_s: default_key_rotation(), checkpoint_handshakes: true }
    }
}

/// `[dpdk]`: EAL and port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpdkSection {
    /// `--vdev` arguments, e.g. `"net_tap0,iface=btap0"`. Empty on a host
    /// with a real NIC bound to a DPDK driver.
    #[serde(default)]
    pub vdevs: Vec<String>,
    /// Which port to use: a DPDK device name (`"net_tap0"`) or a port id.
    #[serde(default = "default_port")]
    pub port: String,
    /// Memory for the EAL in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: usize,
    /// `"auto"` (hugepages if any are free, else `--no-huge`), `"on"`, `"off"`.
    #[serde(default = "default_hugepages")]
    pub hugepages: String,
    /// EAL `--file-prefix`; every baton process on a host needs its own.
    #[serde(default = "default_file_prefix")]
    pub file_prefix: String,
    /// MTU to set on the port; by default the device's own MTU is used.
    #[serde(default)]
    pub mtu: Option<u16>,
    /// Mbufs in the pool (per port).
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    /// Extra EAL arguments, passed through as they are.
    #[serde(default)]
    pub eal_args: Vec<String>,
}

fn default_port() -> String {
    "0".into()
}
fn default_memory_mb() -> usize {
    256
}
fn default_hugepages() -> String {
    "auto".into()
}
fn default_file_prefix() -> String {
    format!("baton-{}", std::process::id())
}
fn default_mbufs() -> u32 {
    8191
}

impl Default for DpdkSection {
    fn default() -> Self {
        DpdkSection {
            vdevs: vec![],
            port: default_port(),
            memory_mb: default_memory_mb(),
            hugepages: default_hugepages(),
            file_prefix: default_file_prefix(),
            mtu: None,
            mbufs: default_mbufs(),
            eal_args: vec![],
        }
    }
}

/// `[listen]`: the virtual address clients connect to. baton also uses it
/// as its source address towards backends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSection {
    pub address: Ipv4Addr,
    #[serde(default = "default_listen_port")]
    pub port: u16,
    /// Prefix length of the local subnet (for next-hop decisions).
    #[serde(default = "default_prefix_len")]
    pub prefix_len: u8,
    /// Default gateway for destinations outside the subnet.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
}

fn default_listen_port() -> u16 {
    443
}
fn default_prefix_len() -> u8 {
    24
}

/// `[tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 RSA or SEC1 EC.
    pub key: PathBuf,
    /// ALPN protocols in preference order, e.g. `["h2", "http/1.1"]`.
    #[serde(default)]
    pub alpn: Vec<String>,
    /// NewSessionTickets sent after each handshake (0 = no resumption).
    /// Each ticket is single-use: resuming takes it from the session table.
    #[serde(default = "default_tickets")]
    pub tickets_per_handshake: u32,
    /// Ticket lifetime in seconds (RFC 8446 §4.6.1 caps it at 7 days); the
    /// session record expires from the table with it.
    #[serde(default = "default_ticket_lifetime")]
    pub ticket_lifetime_s: u32,
    /// 0-RTT: most early-data bytes accepted on a resumed connection (0 =
    /// off, the default). Early data is accepted only from a ticket just
    /// taken (single use), and the backend is told how many leading bytes
    /// were early through PROXY v2, so it needs `backend.proxy_protocol = "v2"`.
    #[serde(default)]
    pub max_early_data: u32,
    /// 0-RTT: early data is accepted only when the ticket age the client
    /// reports is within this many milliseconds of the age baton measures
    /// from the ticket's issue time (RFC 8446 §8.3); otherwise the ticket
    /// still resumes but its early data is rejected. Default 10000.
    #[serde(default = "default_early_data_age_window")]
    pub early_data_age_window_ms: u32,
}

fn default_tickets() -> u32 {
    1
}
fn default_ticket_lifetime() -> u32 {
    7200
}
fn default_early_data_age_window() -> u32 {
    crate::tls::resume::DEFAULT_EARLY_DATA_AGE_WINDOW_MS
}

/// `[backend]`: one pool, round robin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSection {
    /// `"address:port"` of each server.
    pub servers: Vec<String>,
    /// Give up on a backend connection that is not established after this.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// `"off"` or `"v2"`: send a PROXY protocol v2 header (client address,
    /// SNI, ALPN, TLS version and cipher, 0-RTT byte count) first.
    #[serde(default = "default_proxy_protocol")]
    pub proxy_protocol: String,
}

fn default_proxy_protocol() -> String {
    "off".into()
}

fn default_connect_timeout_ms() -> u64 {
    3000
}

/// `[workers]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersSection {
    #[serde(default = "default_workers")]
    pub count: usize,
    /// CPU cores to pin workers to, one per worker; empty = do not pin.
    #[serde(default)]
    pub cores: Vec<usize>,
    /// After this many empty polls in a row a worker starts sleeping.
    #[serde(default = "default_idle_polls")]
    pub idle_polls_before_sleep: u32,
    /// How long an idle worker sleeps between polls, in microseconds.
    #[serde(default = "default_idle_sleep_us")]
    pub idle_sleep_us: u64,
    /// After traffic, keep polling this long before the first sleep, in
    /// microseconds (replies usually come within it). 0 = sleep at once.
    #[serde(default = "default_idle_spin_us")]
    pub idle_spin_us: u64,
    /// Most proxied connections one worker holds; past it new SYNs are
    /// dropped and counted.
    #[serde(default = "default_max_conns")]
    pub max_connections: usize,
    /// Threads that run handshake crypto off the worker loops; 0 runs it
    /// inline on the workers.
    #[serde(default = "default_slow_threads")]
    pub slow_path_threads: usize,
    /// Handshake jobs queued for the slow path at most; past it a worker
    /// runs the job itself.
    #[serde(default = "default_slow_queue")]
    pub slow_path_queue: usize,
}

fn default_slow_threads() -> usize {
    1
}
fn default_slow_queue() -> usize {
    1024
}

fn default_workers() -> usize {
    1
}
fn default_idle_polls() -> u32 {
    64
}
fn default_idle_sleep_us() -> u64 {
    200
}
fn default_idle_spin_us() -> u64 {
    500
}
fn default_max_conns() -> usize {
    65536
}

impl Default for WorkersSection {
    fn default() -> Self {
        WorkersSection {
            count: default_workers(),
            cores: vec![],
            idle_polls_before_sleep: default_idle_polls(),
            idle_sleep_us: default_idle_sleep_us(),
            idle_spin_us: default_idle_spin_us(),
            max_connections: default_max_conns(),
            slow_path_threads: default_slow_threads(),
            slow_path_queue: default_slow_queue(),
        }
    }
}

/// `[tcp]`: per-connection buffer caps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSection {
    #[serde(default = "default_buf")]
    pub recv_buffer: usize,
    #[serde(default = "default_buf")]
    pub send_buffer: usize,
    /// A client whose TLS handshake is not done by then is reset.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_ms: u64,
    /// A connection with no segment either way for this long is reset.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
}

fn default_handshake_timeout() -> u64 {
    10_000
}
fn default_idle_timeout() -> u64 {
    300_000
}

fn default_buf() -> usize {
    256 * 1024
}

impl Default for TcpSection {
    fn default() -> Self {
        TcpSection {
            recv_buffer: default_buf(),
            send_buffer: default_buf(),
            handshake_timeout_ms: default_handshake_timeout(),
            idle_timeout_ms: default_idle_timeout(),
        }
    }
}

/// `[admin]`: metrics and commands on a loopback TCP port (kernel socket).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// e.g. `"127.0.0.1:9180"`; unset = no admin listener.
    #[serde(default)]
    pub listen: Option<String>,
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read { path: path.into(), err })?;
        let mut cfg = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { msg, .. } => ConfigError::Parse { path: path.into(), msg },
            other => other,
        })?;
        // Relative certificate paths are relative to the config file.
        if let Some(dir) = path.parent() {
            if cfg.tls.cert.is_relative() {
                cfg.tls.cert = dir.join(&cfg.tls.cert);
            }
            if cfg.tls.key.is_relative() {
                cfg.tls.key = dir.join(&cfg.tls.key);
            }
            // So are the fleet's files.
            let rel = |p: &mut PathBuf| {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            };
            if let Some(r) = cfg.repository.as_mut() {
                for p in [r.password_file.as_mut(), r.tls_ca_file.as_mut()].into_iter().flatten() {
                    rel(p);
                }
            }
            if let Some(f) = cfg.fleet.as_mut() {
                rel(&mut f.key_file);
                if let Some(p) = f.previous_key_file.as_mut() {
                    rel(p);
                }
            }
        }
        Ok(cfg)
    }

    /// Parses and validates config text (paths are not checked here).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::from("config"), msg: e.to_string() })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.backend.servers.is_empty() {
            return Err(invalid("backend.servers", "needs at least one \"address:port\""));
        }
        for s in &self.backend.servers {
            s.parse::<SocketAddrV4>()
                .map_err(|_| invalid("backend.servers", format!("{s:?} is not an IPv4 \"address:port\"")))?;
        }
        if self.workers.count == 0 || self.workers.count > 64 {
            return Err(invalid("workers.count", format!("{} is out of range 1..=64", self.workers.count)));
        }
        if !self.workers.cores.is_empty() && self.workers.cores.len() != self.workers.count {
            return Err(invalid(
                "workers.cores",
                format!("lists {} cores for {} workers; give one per worker or none", self.workers.cores.len(), self.workers.count),
            ));
        }
        if self.listen.prefix_len > 32 {
            return Err(invalid("listen.prefix_len", "must be 0..=32"));
        }
        if self.listen.port == 0 {
            return Err(invalid("listen.port", "must not be 0"));
        }
        if !matches!(self.dpdk.hugepages.as_str(), "auto" | "on" | "off") {
            return Err(invalid("dpdk.hugepages", format!("{:?} must be \"auto\", \"on\" or \"off\"", self.dpdk.hugepages)));
        }
        if self.dpdk.memory_mb < 64 {
            return Err(invalid("dpdk.memory_mb", "must be at least 64"));
        }
        if let Some(m) = self.dpdk.mtu {
            if !(576..=9000).contains(&m) {
                return Err(invalid("dpdk.mtu", format!("{m} is out of range 576..=9000")));
            }
        }
        for (key, v) in [("tcp.recv_buffer", self.tcp.recv_buffer), ("tcp.send_buffer", self.tcp.send_buffer)] {
            if !(4096..=64 * 1024 * 1024).contains(&v) {
                return Err(invalid(key, format!("{v} is out of range 4096..=67108864 bytes")));
            }
        }
        if !matches!(self.backend.proxy_protocol.as_str(), "off" | "v2") {
            return Err(invalid("backend.proxy_protocol", format!("{:?} must be \"off\" or \"v2\"", self.backend.proxy_protocol)));
        }
        if self.tls.max_early_data > 0 && self.backend.proxy_protocol != "v2" {
            return Err(invalid(
                "tls.max_early_data",
                "0-RTT needs backend.proxy_protocol = \"v2\", so the backend learns which bytes were early (replayable)",
            ));
        }
        if self.tls.max_early_data > 1 << 20 {
            return Err(invalid("tls.max_early_data", "at most 1048576"));
        }
        if !(1..=600_000).contains(&self.tls.early_data_age_window_ms) {
            return Err(invalid("tls.early_data_age_window_ms", "must be 1..=600000 (RFC 8446 §8.3; default 10000)"));
        }
        if self.tls.tickets_per_handshake > 16 {
            return Err(invalid("tls.tickets_per_handshake", "at most 16"));
        }
        if !(1..=604_800).contains(&self.tls.ticket_lifetime_s) {
            return Err(invalid("tls.ticket_lifetime_s", "must be 1..=604800 (7 days, RFC 8446 §4.6.1)"));
        }
        for p in &self.tls.alpn {
            if p.is_empty() || p.len() > 255 {
                return Err(invalid("tls.alpn", format!("{p:?} must be 1..=255 bytes")));
            }
        }
        if !(100..=600_000).contains(&self.tcp.handshake_timeout_ms) {
            return Err(invalid("tcp.handshake_timeout_ms", "must be 100..=600000"));
        }
        if !(1000..=86_400_000).contains(&self.tcp.idle_timeout_ms) {
            return Err(invalid("tcp.idle_timeout_ms", "must be 1000..=86400000"));
        }
        if self.workers.max_connections == 0 {
            return Err(invalid("workers.max_connections", "must be at least 1"));
        }
        if self.backend.connect_timeout_ms < 10 {
            return Err(invalid("backend.connect_timeout_ms", "must be at least 10"));
        }
        if self.workers.count > 16 {
            return Err(invalid("workers.count", "at most 16 (one RX/TX queue pair each)"));
        }
        let a = self.listen.address;
        if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() {
            return Err(invalid("listen.address", format!("{a} cannot be a virtual address")));
        }
        for b in self.backend_addrs() {
            if *b.ip() == a {
                return Err(invalid("backend.servers", format!("{b} is baton's own listen address")));
            }
        }
        if !(1..=1 << 20).contains(&self.session.table_slots) {
            return Err(invalid("session.table_slots", "must be 1..=1048576"));
        }
        if let Some(r) = &self.repository {
            r.validate().map_err(|e| ConfigError::Section(e.to_string()))?;
        }
        if let Some(f) = &self.fleet {
            if self.repository.is_none() {
                return Err(invalid("fleet", "needs a [repository] section (the Redis the fleet shares)"));
            }
            if !(1..=64).contains(&f.hosts) {
                return Err(invalid("fleet.hosts", "must be 1..=64"));
            }
            if f.host_index >= f.hosts {
                return Err(invalid("fleet.host_index", format!("{} must be below fleet.hosts ({})", f.host_index, f.hosts)));
            }
            if !(1..=300).contains(&f.conn_ttl_s) {
                return Err(invalid("fleet.conn_ttl_s", "must be 1..=300"));
            }
            if f.lookups_per_s == 0 {
                return Err(invalid("fleet.lookups_per_s", "must be at least 1"));
            }
        } else if self.repository.is_some() {
            return Err(invalid("repository", "needs a [fleet] section (the fleet key and this host's index)"));
        }
        if !(60..=30 * 86_400).contains(&self.session.key_rotation_s) {
            return Err(invalid("session.key_rotation_s", "must be 60..=2592000"));
        }
        if u64::from(self.tls.ticket_lifetime_s) > self.session.key_rotation_s {
            return Err(invalid(
                "tls.ticket_lifetime_s",
                format!(
                    "{} exceeds session.key_rotation_s ({}): a ticket would outlive the key it is sealed under",
                    self.tls.ticket_lifetime_s, self.session.key_rotation_s
                ),
            ));
        }
        if !(1..=1 << 22).contains(&self.session.ticket_slots) {
            return Err(invalid("session.ticket_slots", "must be 1..=4194304"));
        }
        if !(4..=4096).contains(&self.session.max_record_kib) {
            return Err(invalid("session.max_record_kib", "must be 4..=4096"));
        }
        if self.session.small_slots > 1 << 20 {
            return Err(invalid("session.small_slots", "must be 0..=1048576"));
        }
        if self.session.small_slots > 0 && !(1..self.session.max_record_kib).contains(&self.session.small_record_kib) {
            return Err(invalid("session.small_record_kib", format!("must be 1..{} (below session.max_record_kib)", self.session.max_record_kib)));
        }
        if let Some(a) = &self.admin.listen {
            let sa: std::net::SocketAddr =
                a.parse().map_err(|_| invalid("admin.listen", format!("{a:?} is not \"address:port\"")))?;
            if !sa.ip().is_loopback() {
                return Err(invalid("admin.listen", "must be a loopback address: the admin port has no authentication"));
            }
        }
        // Under --no-huge the EAL gets `-m memory_mb` and no more: a plan
        // that does not fit would fail in `run` (a memzone or the mbuf
        // pool); with hugepages the EAL takes what is free.
        let need = self.dpdk_memory_needed_mb();
        if self.dpdk.hugepages == "off" && need > self.dpdk.memory_mb {
            return Err(invalid(
                "dpdk.memory_mb",
                format!(
                    "{} MiB is too little: the session tables and the mbuf pool need about {need} MiB \
                     (raise it, or lower session.table_slots / small_slots / ticket_slots or dpdk.mbufs)",
                    self.dpdk.memory_mb
                ),
            ));
        }
        Ok(())
    }

    /// DPDK memory the session tables and the mbuf pool take, MiB (rounded
    /// up, with 16 MiB for the EAL's own use).
    pub fn dpdk_memory_needed_mb(&self) -> usize {
        use crate::session::table::{HeapArena, SessionTable};
        let words = |slots: usize, rec: usize| if slots == 0 { 0 } else { SessionTable::<HeapArena>::words_needed(slots, rec).unwrap_or(usize::MAX / 16) };
        let tables = words(self.session.table_slots, self.session.max_record_kib * 1024)
            .saturating_add(words(self.session.small_slots, self.session.small_record_kib * 1024))
            .saturating_add(words(self.session.ticket_slots, crate::worker::handoff::TICKET_RECORD_MAX))
            .saturating_mul(8);
        // An mbuf: data room 2048 + headroom 128 + its header and pool
        // overhead, about 2.5 KiB.
        let mbufs = self.dpdk.mbufs as usize * 2560;
        tables.saturating_add(mbufs).div_ceil(1 << 20).saturating_add(16)
    }

    /// Backend addresses, validated in `parse`.
    pub fn backend_addrs(&self) -> Vec<SocketAddrV4> {
        self.backend.servers.iter().filter_map(|s| s.parse().ok()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[dpdk]
vdevs = ["net_tap0,iface=btap0"]
port = "net_tap0"
[listen]
address = "198.18.0.2"
[tls]
cert = "cert.pem"
key = "key.pem"
alpn = ["http/1.1"]
[backend]
servers = ["198.18.0.1:8080"]
"#;

    /// Regression: `check-config` said ok to a repository section that
    /// `run` then refused (after EAL and TAP setup).
    #[test]
    fn fleet_sections_are_checked_at_parse_naming_the_key() {
        let fleet = "[fleet]\nkey_file = \"fleet.key\"\n";
        let err = |extra: &str| Config::parse(&format!("{GOOD}{extra}")).unwrap_err().to_string();
        assert!(err(&format!("[repository]\nurl = \"http://127.0.0.1:6379\"\n{fleet}")).starts_with("repository.url:"));
        assert!(err(&format!("[repository]\nthreads = 0\n{fleet}")).starts_with("repository.threads:"));
        assert!(err(&format!("[repository]\ntimeout_ms = 0\n{fleet}")).starts_with("repository.timeout_ms:"));
        assert!(err(&format!("[repository]\nqueue_timeout_ms = 0\n{fleet}")).starts_with("repository.queue_timeout_ms:"));
        assert!(err(fleet).starts_with("fleet:"), "{}", err(fleet));
        assert!(err("[repository]\n").starts_with("repository:"));
        assert!(err(&format!("[repository]\n{fleet}host_index = 2\nhosts = 2\n")).starts_with("fleet.host_index:"));
        let ok = Config::parse(&format!("{GOOD}[repository]\nusername = \"a\"\n{fleet}")).unwrap();
        assert_eq!(ok.fleet.unwrap().conn_ttl_s, 10);
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.listen.port, 443);
        assert_eq!(c.workers.count, 1);
        assert_eq!(c.backend_addrs(), vec!["198.18.0.1:8080".parse().unwrap()]);
        assert_eq!(c.dpdk.hugepages, "auto");
    }

    fn err_of(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn bad_backend_address_names_the_key() {
        let e = err_of(&GOOD.replace("198.18.0.1:8080", "nonsense"));
        assert!(e.starts_with("backend.servers:"), "{e}");
    }

    #[test]
    fn unknown_key_is_an_error_that_names_it() {
        let e = err_of(&GOOD.replace("[backend]", "[backend]\nweight = 3"));
        assert!(e.contains("weight"), "{e}");
    }

    #[test]
    fn missing_section_is_named() {
        let e = err_of("[listen]\naddress = \"198.18.0.2\"\n");
        assert!(e.contains("tls") || e.contains("backend"), "{e}");
    }

    #[test]
    fn a_ticket_lifetime_longer_than_the_key_rotation_is_refused() {
        let e = err_of(&GOOD.replace("alpn = [\"http/1.1\"]", "alpn = [\"http/1.1\"]\nticket_lifetime_s = 9000"));
        assert!(e.starts_with("tls.ticket_lifetime_s:") && e.contains("key_rotation_s"), "{e}");
    }

    #[test]
    fn small_slots_must_be_smaller_than_large_ones() {
        let with = |extra: &str| GOOD.replace("[listen]", &format!("[session]\n{extra}\n[listen]"));
        let e = err_of(&with("max_record_kib = 64\nsmall_record_kib = 64"));
        assert!(e.starts_with("session.small_record_kib:"), "{e}");
        assert!(err_of(&with("small_record_kib = 0")).starts_with("session.small_record_kib:"));
        // No small slots: their size does not matter.
        let c = Config::parse(&with("small_slots = 0\nsmall_record_kib = 0")).unwrap();
        assert_eq!(c.session.small_slots, 0);
        let c = Config::parse(&GOOD).unwrap();
        assert_eq!((c.session.small_slots, c.session.small_record_kib), (2048, 16));
    }

    /// From a fresh-user pass: check-config said ok to a plan `run` could
    /// not start (64 MiB of --no-huge memory for 112 MiB of tables).
    #[test]
    fn a_plan_that_does_not_fit_no_huge_memory_is_refused() {
        let c = Config::parse(GOOD).unwrap();
        let need = c.dpdk_memory_needed_mb();
        assert!((112 + 16..=112 + 16 + 24).contains(&need), "{need} MiB");
        let off = |mb: usize| GOOD.replace("port = \"net_tap0\"", &format!("port = \"net_tap0\"\nhugepages = \"off\"\nmemory_mb = {mb}"));
        let e = err_of(&off(64));
        assert!(e.starts_with("dpdk.memory_mb:") && e.contains("session"), "{e}");
        assert!(Config::parse(&off(need)).is_ok());
        // With hugepages the EAL takes what is free: not refused here.
        let on = GOOD.replace("port = \"net_tap0\"", "port = \"net_tap0\"\nmemory_mb = 64");
        assert!(Config::parse(&on).is_ok());
    }

    #[test]
    fn early_data_age_window_defaults_to_10_s_and_is_bounded() {
        assert_eq!(Config::parse(GOOD).unwrap().tls.early_data_age_window_ms, 10_000);
        let set = |v: &str| GOOD.replace("alpn = [\"http/1.1\"]", &format!("alpn = [\"http/1.1\"]\nearly_data_age_window_ms = {v}"));
        assert_eq!(Config::parse(&set("2500")).unwrap().tls.early_data_age_window_ms, 2500);
        for bad in ["0", "600001"] {
            let e = err_of(&set(bad));
            assert!(e.starts_with("tls.early_data_age_window_ms:"), "{e}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_their_key() {
        assert!(err_of(&GOOD.replace("[listen]", "[workers]\ncount = 0\n[listen]")).starts_with("workers.count:"));
        assert!(err_of(&GOOD.replace("port = \"net_tap0\"", "port = \"net_tap0\"\nhugepages = \"maybe\"")).starts_with("dpdk.hugepages:"));
        assert!(err_of(&GOOD.replace("[listen]", "[admin]\nlisten = \"0.0.0.0:9180\"\n[listen]")).starts_with("admin.listen:"));
        assert!(err_of(&GOOD.replace("address = \"198.18.0.2\"", "address = \"198.18.0.300\"")).contains("address"));
    }
}
