//! The fleet repository (issue 4): Redis shared by the baton hosts of one
//! frontend, holding sealed sessions and live connections between hosts.
//!
//! DESIGN.md "The invariant": every handoff is a *take*. Here a take is
//! `GETDEL`, which reads and removes a key in one step on the server, so of
//! two hosts racing for a record exactly one gets the value and the other
//! `nil`. Values are opaque bytes, already sealed by the caller
//! ([`super::seal`]); this layer never looks inside them and never logs them.
//!
//! Two layers:
//! - [`RepositoryClient`]: one connection (AUTH as the host's ACL user),
//!   blocking calls with the per-operation budget as socket timeouts.
//! - [`Repository`]: `threads` service threads, each owning a client, fed by
//!   one bounded queue; workers [`RepositoryHandle::submit`] a [`Request`]
//!   (never blocks) and read the [`Reply`] from their own channel.
//!
//! Failure rules, in order of importance:
//! - A timeout or I/O error drops that connection: a late reply left unread
//!   on the socket would be taken for the answer to the next command. The
//!   thread then answers [`Outcome::Unavailable`] at once (circuit open) for
//!   `retry_ms` and only then tries one reconnect (`connect_timeout_ms`), so
//!   while Redis is down each operation costs ~0, not a connect timeout.
//! - A take whose `GETDEL` timed out (or whose connection broke after the
//!   command was written) may still have deleted the key on the server. Its
//!   outcome is `Unavailable`, never a retry: the record may be lost, the
//!   caller falls back to a full handshake (safety over liveness: a record
//!   is never used twice, but may be used zero times).
//! - `NOPERM` (the ACL refused this host's user for that key or command) is
//!   [`Outcome::Refused`]: counted, logged at most once per second; the
//!   connection stays good (the error reply was read in full).
//! - Redis replicates asynchronously: after a failover a record already
//!   taken can reappear on the new primary. Short expiries bound this.
//!
//! ACL of a host (one user per host, keys of its frontend only), e.g.
//! `ACL SETUSER hosta on >PASSWORD ~baton:web:* +getdel +set +del +ping
//! +auth` (add `+cluster|slots` on a cluster). A user limited to
//! `~baton:web:c:*` can move connections but gets `Refused` for sessions.
//!
//! On a cluster, `MOVED`/`ASK`/`TRYAGAIN`/`CLUSTERDOWN` also drop the
//! connection (the crate's retries are off, so it would not follow the
//! redirect): the next connection, after `retry_ms`, reads a fresh slot map.
//!
//! Time in the queue is not bounded here: a request waits behind at most
//! `queue` others; a caller that cares stamps its own deadline in `tag`.
//!
//! The socket timeout is per read/write call; a reply of one small bulk
//! string arrives in one read, so in practice it is the budget of the
//! operation. Latency in a [`Reply`] is the time the service thread spent on
//! the operation (not the time in queue).
//!
//! The service threads read the clock (`std::time::Instant`) for timeouts
//! and the circuit breaker: they are I/O threads beside the workers, like
//! the slow path, not code below `worker`.
//!
//! Limits: the password is read into a `Zeroizing` buffer, but the `redis`
//! crate keeps its own copy of it (in its connection info) which is not
//! scrubbed. TLS to Redis (`rediss://`, rustls, certificate and host name
//! always checked, CA from `tls_ca_file` or the system) is built only with
//! the `repository-tls` cargo feature; without it a `rediss://` url is
//! refused with the key named. Redis Cluster (`cluster_urls`) uses the
//! crate's sync cluster client with retries off; its ACL user needs
//! `+cluster|slots` besides the record commands; no TLS to a cluster.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};
use serde::Deserialize;
use zeroize::Zeroizing;

// ---------------------------------------------------------------------------
// Configuration

/// `[repository]` section of the TOML config.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RepositoryConfig {
    /// `redis://host:port` (no credentials in it: see `username`, `password_file`).
    pub url: String,
    /// Non-empty => Redis Cluster: the seed nodes (`redis://host:port`);
    /// `url` is then not used. The ACL user also needs `+cluster|slots`.
    pub cluster_urls: Vec<String>,
    /// For `rediss://`: PEM file of the CA(s) to trust for Redis's
    /// certificate; unset = the system's roots. Needs the `repository-tls`
    /// build feature.
    pub tls_ca_file: Option<PathBuf>,
    /// ACL user of this host; empty = the `default` user.
    pub username: String,
    /// File holding the password (trailing newline trimmed). Unset = no AUTH.
    pub password_file: Option<PathBuf>,
    /// Key namespace: keys are `baton:{frontend}:{t|c|a}:<hex id>`.
    pub frontend: String,
    /// Per-operation budget (socket read/write timeout), ms.
    pub timeout_ms: u64,
    /// Connect budget, ms.
    pub connect_timeout_ms: u64,
    /// Service threads, each with its own connection.
    pub threads: usize,
    /// Bounded request queue.
    pub queue: usize,
    /// A request that waited in the queue longer than this, ms, is answered
    /// without being sent (a take: Unavailable; a put: NotStored, value
    /// handed back): a slow Redis must not leave handshakes and held
    /// frames waiting behind a long line. Requests nobody waits for (no
    /// reply channel) are sent however late.
    pub queue_timeout_ms: u64,
    /// After a failure, operations answer Unavailable at once for this long
    /// before one reconnect try, ms.
    pub retry_ms: u64,
}

impl Default for RepositoryConfig {
    fn default() -> Self {
        RepositoryConfig {
            url: "redis://127.0.0.1:6379".into(),
            cluster_urls: Vec::new(),
            tls_ca_file: None,
            username: String::new(),
            password_file: None,
            frontend: "web".into(),
            timeout_ms: 5,
            connect_timeout_ms: 20,
            threads: 2,
            queue: 4096,
            queue_timeout_ms: 50,
            retry_ms: 200,
        }
    }
}

impl RepositoryConfig {
    /// Where it connects, for logs: `url`, or the cluster seed nodes.
    pub fn target(&self) -> String {
        if self.cluster_urls.is_empty() {
            self.url.trim().to_string()
        } else {
            format!("cluster {}", self.cluster_urls.join(","))
        }
    }

    /// Parses a `[repository]` table's body (without the header) and validates it.
    pub fn from_toml(text: &str) -> Result<RepositoryConfig, RepositoryError> {
        let cfg: RepositoryConfig = toml::from_str(text).map_err(|e| {
            // Name the key: the text before `=` on the line the error points at.
            let key = e.span().and_then(|sp| {
                let start = text[..sp.start.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
                let line = text[start..].lines().next().unwrap_or("");
                line.split_once('=').map(|(k, _)| k.trim().trim_matches('"').to_string())
            });
            match key {
                Some(k) if !k.is_empty() => RepositoryError::Config(format!("repository.{k}: {}", e.message())),
                _ => RepositoryError::Config(format!("repository: {}", e.message())),
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the values; every error names its key (`repository.<key>: ...`).
    pub fn validate(&self) -> Result<(), RepositoryError> {
        let bad = |key: &str, msg: String| Err(RepositoryError::Config(format!("repository.{key}: {msg}")));
        let url = self.url.trim();
        let tls = url.starts_with("rediss://");
        if tls && !cfg!(feature = "repository-tls") {
            return bad(
                "url",
                "rediss:// (TLS to Redis) needs baton built with the repository-tls feature; or use redis:// on a trusted network".into(),
            );
        }
        let Some(rest) = url.strip_prefix("redis://").or_else(|| url.strip_prefix("rediss://")) else {
            return bad("url", format!("{:?} must start with redis:// or rediss://", self.url));
        };
        if rest.contains('#') {
            return bad("url", "must not carry a #fragment (certificate checks cannot be turned off)".into());
        }
        if self.tls_ca_file.is_some() && !tls {
            return bad("tls_ca_file", "only used with a rediss:// url".into());
        }
        let authority = rest.split('/').next().unwrap_or("");
        if authority.contains('@') {
            return bad("url", "must not carry credentials; set username and password_file".into());
        }
        if authority.is_empty() {
            return bad("url", format!("{:?} has no host", self.url));
        }
        if redis::IntoConnectionInfo::into_connection_info(url).is_err() {
            return bad("url", format!("{:?} is not a valid Redis URL", self.url));
        }
        for u in &self.cluster_urls {
            let Some(rest) = u.trim().strip_prefix("redis://") else {
                return bad("cluster_urls", format!("{u:?} must start with redis:// (TLS to a cluster is not supported)"));
            };
            let authority = rest.split('/').next().unwrap_or("");
            if authority.contains('@') || rest.contains('#') {
                return bad("cluster_urls", "must not carry credentials or a #fragment; set username and password_file".into());
            }
            if authority.is_empty() || redis::IntoConnectionInfo::into_connection_info(u.trim()).is_err() {
                return bad("cluster_urls", format!("{u:?} is not a valid Redis URL"));
            }
        }
        if self.frontend.is_empty()
            || !self.frontend.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad("frontend", format!("{:?} must be non-empty [A-Za-z0-9_-]", self.frontend));
        }
        if self.username.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("username", "must not contain spaces or control characters".into());
        }
        if self.timeout_ms == 0 || self.timeout_ms > 10_000 {
            return bad("timeout_ms", format!("{} is out of range 1..=10000", self.timeout_ms));
        }
        if self.connect_timeout_ms == 0 || self.connect_timeout_ms > 60_000 {
            return bad("connect_timeout_ms", format!("{} is out of range 1..=60000", self.connect_timeout_ms));
        }
        if self.threads == 0 || self.threads > 64 {
            return bad("threads", format!("{} is out of range 1..=64", self.threads));
        }
        if self.queue == 0 || self.queue > 1 << 20 {
            return bad("queue", format!("{} is out of range 1..=1048576", self.queue));
        }
        if self.queue_timeout_ms == 0 || self.queue_timeout_ms > 60_000 {
            return bad("queue_timeout_ms", format!("{} is out of range 1..=60000", self.queue_timeout_ms));
        }
        if self.retry_ms > 600_000 {
            return bad("retry_ms", format!("{} is out of range 0..=600000", self.retry_ms));
        }
        Ok(())
    }

    /// The password from `password_file` (one trailing `\n` or `\r\n`
    /// trimmed), or empty when no file is set. Never logged.
    pub fn password(&self) -> Result<Zeroizing<String>, RepositoryError> {
        let Some(path) = &self.password_file else {
            return Ok(Zeroizing::new(String::new()));
        };
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
            RepositoryError::Config(format!("repository.password_file: cannot read {}: {e}", path.display()))
        })?);
        let mut end = bytes.len();
        if end > 0 && bytes[end - 1] == b'\n' {
            end -= 1;
            if end > 0 && bytes[end - 1] == b'\r' {
                end -= 1;
            }
        }
        let text = std::str::from_utf8(&bytes[..end]).map_err(|_| {
            RepositoryError::Config(format!("repository.password_file: {} is not UTF-8", path.display()))
        })?;
        if text.is_empty() {
            return Err(RepositoryError::Config(format!("repository.password_file: {} is empty", path.display())));
        }
        let mut out = Zeroizing::new(String::with_capacity(text.len()));
        out.push_str(text);
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// Keys

/// What a record is; the key letter follows the frontend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A resumable TLS session (`t`).
    Session,
    /// A live connection (`c`).
    Conn,
    /// An alias pointing at a live connection (`a`).
    ConnAlias,
}

impl RecordKind {
    pub fn letter(self) -> char {
        match self {
            RecordKind::Session => 't',
            RecordKind::Conn => 'c',
            RecordKind::ConnAlias => 'a',
        }
    }
}

/// The only way keys are built: `baton:{frontend}:{letter}:{lower hex id}`.
pub fn record_key(frontend: &str, kind: RecordKind, id: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut k = String::with_capacity(6 + frontend.len() + 3 + 2 * id.len() + 1);
    k.push_str("baton:");
    k.push_str(frontend);
    k.push(':');
    k.push(kind.letter());
    k.push(':');
    for b in id {
        k.push(HEX[(b >> 4) as usize] as char);
        k.push(HEX[(b & 15) as usize] as char);
    }
    k
}

// ---------------------------------------------------------------------------
// Errors

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    #[error("{0}")]
    Config(String),
    #[error("repository authentication failed: {0}")]
    Auth(String),
    #[error("repository refused the operation (ACL): {0}")]
    Refused(String),
    #[error("repository unavailable: {0}")]
    Unavailable(String),
    #[error("repository protocol error: {0}")]
    Protocol(String),
}

// ---------------------------------------------------------------------------
// One connection

/// One connection to Redis (or, for a cluster, one connection per node
/// reached), used by the service threads, tests and benches.
pub struct RepositoryClient {
    conn: Link,
    frontend: String,
    /// Set after a timeout or I/O error: the connection must not be used again.
    broken: bool,
}

enum Link {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl std::fmt::Debug for RepositoryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryClient").field("frontend", &self.frontend).field("broken", &self.broken).finish()
    }
}

impl RepositoryClient {
    /// Connects and authenticates (`AUTH username password`) within
    /// `connect_timeout_ms`; then operations use `timeout_ms`.
    pub fn connect(cfg: &RepositoryConfig) -> Result<RepositoryClient, RepositoryError> {
        cfg.validate()?;
        let password = cfg.password()?;
        Self::connect_with(cfg, &password)
    }

    fn connect_with(cfg: &RepositoryConfig, password: &str) -> Result<RepositoryClient, RepositoryError> {
        if !cfg.cluster_urls.is_empty() {
            return Self::connect_cluster(cfg, password);
        }
        let url = cfg.url.trim();
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| RepositoryError::Config(format!("repository.url: {e}")))?;
        let mut rs = info.redis_settings().clone().set_skip_set_lib_name();
        if !cfg.username.is_empty() {
            rs = rs.set_username(&cfg.username);
        }
        if !password.is_empty() {
            rs = rs.set_password(password);
        }
        let tcp = info.tcp_settings().clone().set_nodelay(true);
        let info = info.set_redis_settings(rs).set_tcp_settings(tcp);
        let client = Self::client(cfg, info)?;
        let conn = client
            .get_connection_with_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .map_err(|e| connect_error(cfg, url, &e))?;
        let budget = Some(Duration::from_millis(cfg.timeout_ms));
        conn.set_read_timeout(budget).map_err(|e| RepositoryError::Unavailable(describe(&e)))?;
        conn.set_write_timeout(budget).map_err(|e| RepositoryError::Unavailable(describe(&e)))?;
        Ok(RepositoryClient { conn: Link::Single(conn), frontend: cfg.frontend.clone(), broken: false })
    }

    /// Redis Cluster: no client-side retries (a retried GETDEL after a
    /// timeout would turn "unknown" into a misleading nil), budgets as for
    /// one node.
    fn connect_cluster(cfg: &RepositoryConfig, password: &str) -> Result<RepositoryClient, RepositoryError> {
        let shown = cfg.cluster_urls.iter().map(|u| u.trim()).collect::<Vec<_>>().join(",");
        // Credentials ride on each seed node's connection info (the crate
        // takes them from there for every node it connects to).
        let mut nodes = Vec::with_capacity(cfg.cluster_urls.len());
        for u in &cfg.cluster_urls {
            let info = redis::IntoConnectionInfo::into_connection_info(u.trim())
                .map_err(|e| RepositoryError::Config(format!("repository.cluster_urls: {e}")))?;
            let mut rs = info.redis_settings().clone().set_skip_set_lib_name();
            if !cfg.username.is_empty() {
                rs = rs.set_username(&cfg.username);
            }
            if !password.is_empty() {
                rs = rs.set_password(password);
            }
            nodes.push(info.set_redis_settings(rs));
        }
        let b = redis::cluster::ClusterClientBuilder::new(nodes)
            .retries(0)
            .connection_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .response_timeout(Duration::from_millis(cfg.timeout_ms))
            .tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = b.build().map_err(|e| RepositoryError::Config(format!("repository.cluster_urls: {e}")))?;
        let conn = client.get_connection().map_err(|e| connect_error(cfg, &shown, &e))?;
        let budget = Some(Duration::from_millis(cfg.timeout_ms));
        conn.set_read_timeout(budget).map_err(|e| RepositoryError::Unavailable(describe(&e)))?;
        conn.set_write_timeout(budget).map_err(|e| RepositoryError::Unavailable(describe(&e)))?;
        Ok(RepositoryClient { conn: Link::Cluster(Box::new(conn)), frontend: cfg.frontend.clone(), broken: false })
    }

    #[cfg(feature = "repository-tls")]
    fn client(cfg: &RepositoryConfig, info: redis::ConnectionInfo) -> Result<redis::Client, RepositoryError> {
        if !cfg.url.trim().starts_with("rediss://") {
            return redis::Client::open(info).map_err(|e| RepositoryError::Config(format!("repository.url: {e}")));
        }
        let root_cert = match &cfg.tls_ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| {
                RepositoryError::Config(format!("repository.tls_ca_file: cannot read {}: {e}", p.display()))
            })?),
            None => None,
        };
        redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls: None, root_cert })
            .map_err(|e| RepositoryError::Config(format!("repository.tls_ca_file: {e}")))
    }

    #[cfg(not(feature = "repository-tls"))]
    fn client(_cfg: &RepositoryConfig, info: redis::ConnectionInfo) -> Result<redis::Client, RepositoryError> {
        redis::Client::open(info).map_err(|e| RepositoryError::Config(format!("repository.url: {e}")))
    }

    /// True after a timeout or I/O error: drop it and connect again.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The key this client uses for a record.
    pub fn key(&self, kind: RecordKind, id: &[u8]) -> String {
        record_key(&self.frontend, kind, id)
    }

    fn run<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, RepositoryError> {
        if self.broken {
            return Err(RepositoryError::Unavailable("connection dropped after an earlier failure".into()));
        }
        let r = match &mut self.conn {
            Link::Single(c) => cmd.query::<T>(c),
            Link::Cluster(c) => cmd.query::<T>(c),
        };
        r.map_err(|e| self.classify(e))
    }

    fn classify(&mut self, e: redis::RedisError) -> RepositoryError {
        if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) || e.code() == Some("NOPERM") {
            return RepositoryError::Refused(describe(&e));
        }
        if matches!(self.conn, Link::Cluster(_)) {
            use redis::ServerErrorKind as K;
            if let redis::ErrorKind::Server(K::Moved | K::Ask | K::TryAgain | K::ClusterDown | K::MasterDown | K::ReadOnly) =
                e.kind()
            {
                // Retries are off, so the crate does not follow redirects:
                // drop the connection; the next one starts from a fresh slot map.
                self.broken = true;
                return RepositoryError::Unavailable(format!("cluster topology changed: {}", describe(&e)));
            }
        }
        match e.kind() {
            // A complete error reply or a reply of an unexpected type: the
            // stream is still aligned.
            redis::ErrorKind::Server(_) | redis::ErrorKind::UnexpectedReturnType => {
                RepositoryError::Protocol(describe(&e))
            }
            _ => {
                // Timeout, I/O error, parse error: replies may misalign.
                self.broken = true;
                if e.is_timeout() {
                    RepositoryError::Unavailable("timed out".into())
                } else {
                    RepositoryError::Unavailable(describe(&e))
                }
            }
        }
    }

    /// `GETDEL`: the value if this call removed it, `None` if there was none.
    pub fn take(&mut self, kind: RecordKind, id: &[u8]) -> Result<Option<Vec<u8>>, RepositoryError> {
        let mut c = redis::cmd("GETDEL");
        c.arg(self.key(kind, id));
        self.run::<Option<Vec<u8>>>(&c)
    }

    /// `SET key value PX ttl` (ttl rounded up to whole ms, at least 1).
    pub fn put(&mut self, kind: RecordKind, id: &[u8], value: &[u8], ttl: Duration) -> Result<(), RepositoryError> {
        let ms = ttl.as_micros().div_ceil(1000).clamp(1, u64::MAX as u128) as u64;
        let mut c = redis::cmd("SET");
        c.arg(self.key(kind, id)).arg(value).arg("PX").arg(ms);
        match self.run::<redis::Value>(&c)? {
            redis::Value::Okay => Ok(()),
            redis::Value::SimpleString(s) if s == "OK" => Ok(()),
            _ => Err(RepositoryError::Protocol("SET did not answer OK".into())),
        }
    }

    /// `DEL`: true if a record was removed.
    pub fn del(&mut self, kind: RecordKind, id: &[u8]) -> Result<bool, RepositoryError> {
        let mut c = redis::cmd("DEL");
        c.arg(self.key(kind, id));
        Ok(self.run::<i64>(&c)? > 0)
    }

    /// `PING` round trip (health checks and the benchmark's reference).
    pub fn ping(&mut self) -> Result<(), RepositoryError> {
        self.run::<redis::Value>(&redis::cmd("PING")).map(|_| ())
    }
}

fn connect_error(cfg: &RepositoryConfig, url: &str, e: &redis::RedisError) -> RepositoryError {
    let user = if cfg.username.is_empty() { "default" } else { cfg.username.as_str() };
    let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
        || e.code().is_some_and(|c| c == "WRONGPASS" || c == "NOAUTH")
        || e.to_string().contains("WRONGPASS")
        || e.to_string().contains("AuthenticationFailed");
    if auth {
        RepositoryError::Auth(format!(
            "Redis at {url} refused user {user:?} (wrong password or no such user; check repository.username, repository.password_file and the ACL)"
        ))
    } else if e.code() == Some("NOPERM") {
        RepositoryError::Auth(format!("Redis at {url}: the ACL of user {user:?} lacks a command the client needs at connect: {}", describe(e)))
    } else {
        RepositoryError::Unavailable(format!("cannot connect to {url}: {}", describe(e)))
    }
}

/// An error's description without values (redis errors carry the server's
/// message and the command's name, never its arguments).
fn describe(e: &redis::RedisError) -> String {
    e.to_string()
}

// ---------------------------------------------------------------------------
// Requests and replies

pub enum Op {
    /// `GETDEL`.
    Take { kind: RecordKind, id: Vec<u8> },
    /// `SET key value PX ttl`.
    Put { kind: RecordKind, id: Vec<u8>, value: Vec<u8>, ttl: Duration },
    /// `DEL`.
    Del { kind: RecordKind, id: Vec<u8> },
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Take { kind, .. } => write!(f, "Take({kind:?})"),
            Op::Put { kind, value, ttl, .. } => write!(f, "Put({kind:?}, {} bytes, {ttl:?})", value.len()),
            Op::Del { kind, .. } => write!(f, "Del({kind:?})"),
        }
    }
}

/// A request to the service. `reply: None` = nobody waits for the outcome.
#[derive(Debug)]
pub struct Request {
    pub tag: u64,
    pub op: Op,
    pub reply: Option<Sender<Reply>>,
}

#[derive(Debug)]
pub struct Reply {
    pub tag: u64,
    pub outcome: Outcome,
    pub latency: Duration,
}

#[derive(PartialEq, Eq)]
pub enum Outcome {
    /// The only final take: `GETDEL` returned the value.
    Taken(Vec<u8>),
    /// `GETDEL` returned nil.
    Missing,
    /// The ACL said no (`NOPERM`): logged (rate-limited) and counted.
    Refused,
    /// Down, timed out, or circuit open: the caller falls back. For a take,
    /// the record may have been deleted all the same.
    Unavailable,
    /// Put/Del done.
    Stored,
    /// A put that certainly did not happen (never sent, or refused by the
    /// ACL): its value handed back. A put that timed out or broke after
    /// the write may have happened: that is `Unavailable`.
    NotStored(Vec<u8>),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Taken(v) => write!(f, "Taken({} bytes)", v.len()),
            Outcome::Missing => f.write_str("Missing"),
            Outcome::Refused => f.write_str("Refused"),
            Outcome::Unavailable => f.write_str("Unavailable"),
            Outcome::Stored => f.write_str("Stored"),
            Outcome::NotStored(v) => write!(f, "NotStored({} bytes)", v.len()),
        }
    }
}

// ---------------------------------------------------------------------------
// Stats

/// Buckets of the take latency histogram: bucket 0 = 0 µs, bucket i ≥ 1 =
/// [2^(i-1), 2^i) µs, the last bucket also holds everything longer.
pub const LATENCY_BUCKETS: usize = 24;

#[derive(Debug, Default)]
pub struct RepositoryStats {
    pub takes: AtomicU64,
    pub taken: AtomicU64,
    pub missing: AtomicU64,
    pub refused: AtomicU64,
    pub unavailable: AtomicU64,
    pub timeouts: AtomicU64,
    pub puts: AtomicU64,
    pub put_failures: AtomicU64,
    pub dels: AtomicU64,
    pub reconnects: AtomicU64,
    pub queue_full: AtomicU64,
    pub queue_expired: AtomicU64,
    pub up: AtomicBool,
    pub take_latency_us: [AtomicU64; LATENCY_BUCKETS],
    /// Sum of the timed takes' latencies, µs (the histogram's `_sum`).
    pub take_latency_sum_us: AtomicU64,
}

/// A plain copy of [`RepositoryStats`] for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryStatsSnapshot {
    pub takes: u64,
    pub taken: u64,
    pub missing: u64,
    pub refused: u64,
    pub unavailable: u64,
    pub timeouts: u64,
    pub puts: u64,
    pub put_failures: u64,
    pub dels: u64,
    pub reconnects: u64,
    pub queue_full: u64,
    pub queue_expired: u64,
    pub up: bool,
    pub take_latency_us: [u64; LATENCY_BUCKETS],
    pub take_latency_sum_us: u64,
}

/// The histogram bucket of a latency.
pub fn latency_bucket(d: Duration) -> usize {
    let us = d.as_micros().min(u64::MAX as u128) as u64;
    ((64 - us.leading_zeros()) as usize).min(LATENCY_BUCKETS - 1)
}

impl RepositoryStats {
    pub fn snapshot(&self) -> RepositoryStatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut hist = [0u64; LATENCY_BUCKETS];
        for (h, a) in hist.iter_mut().zip(self.take_latency_us.iter()) {
            *h = l(a);
        }
        RepositoryStatsSnapshot {
            takes: l(&self.takes),
            taken: l(&self.taken),
            missing: l(&self.missing),
            refused: l(&self.refused),
            unavailable: l(&self.unavailable),
            timeouts: l(&self.timeouts),
            puts: l(&self.puts),
            put_failures: l(&self.put_failures),
            dels: l(&self.dels),
            reconnects: l(&self.reconnects),
            queue_full: l(&self.queue_full),
            queue_expired: l(&self.queue_expired),
            up: self.up.load(Ordering::Relaxed),
            take_latency_us: hist,
            take_latency_sum_us: l(&self.take_latency_sum_us),
        }
    }

    fn count(a: &AtomicU64) {
        a.fetch_add(1, Ordering::Relaxed);
    }
}

impl RepositoryStatsSnapshot {
    /// `(metric name, help, value)` of every counter.
    pub fn fields(&self) -> [(&'static str, &'static str, u64); 12] {
        [
            ("baton_repository_takes_total", "Takes (GETDEL) asked of the repository.", self.takes),
            ("baton_repository_taken_total", "Takes that returned the record.", self.taken),
            ("baton_repository_missing_total", "Takes that found no record.", self.missing),
            ("baton_repository_refused_total", "Operations the Redis ACL refused (NOPERM).", self.refused),
            ("baton_repository_unavailable_total", "Operations answered Unavailable (down, timeout, circuit open).", self.unavailable),
            ("baton_repository_timeouts_total", "Operations that timed out (their connection was dropped).", self.timeouts),
            ("baton_repository_puts_total", "Puts (SET PX) asked of the repository.", self.puts),
            ("baton_repository_put_failures_total", "Puts that failed (value handed back).", self.put_failures),
            ("baton_repository_dels_total", "Deletes asked of the repository.", self.dels),
            ("baton_repository_reconnects_total", "Connections made again after a failure.", self.reconnects),
            ("baton_repository_queue_full_total", "Requests handed back because the queue was full.", self.queue_full),
            ("baton_repository_queue_expired_total", "Requests answered unsent: they waited in the queue longer than queue_timeout_ms.", self.queue_expired),
        ]
    }

    /// Appends Prometheus text exposition (0.0.4): the counters, `up` as a
    /// gauge, and the take latency as a histogram in seconds.
    pub fn write_prometheus(&self, out: &mut String) {
        use std::fmt::Write as _;
        for (name, help, v) in self.fields() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP baton_repository_up Whether the last connection attempt or operation succeeded.\n# TYPE baton_repository_up gauge\nbaton_repository_up {}",
            u8::from(self.up)
        );
        let name = "baton_repository_take_seconds";
        let _ = writeln!(out, "# HELP {name} Time a service thread spent on a take.\n# TYPE {name} histogram");
        let mut cum = 0u64;
        for (i, n) in self.take_latency_us.iter().enumerate().take(LATENCY_BUCKETS - 1) {
            cum += n;
            // Bucket i holds latencies below 2^i µs.
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cum}", (1u64 << i) as f64 / 1e6);
        }
        cum += self.take_latency_us[LATENCY_BUCKETS - 1];
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cum}");
        let _ = writeln!(out, "{name}_sum {}", self.take_latency_sum_us as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {cum}");
    }

    /// Upper bound (µs, exclusive) of the bucket holding quantile `q` of the
    /// takes; `None` when no take was timed.
    pub fn take_latency_quantile_us(&self, q: f64) -> Option<u64> {
        let total: u64 = self.take_latency_us.iter().sum();
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.take_latency_us.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Some(1u64 << i);
            }
        }
        Some(1u64 << (LATENCY_BUCKETS - 1))
    }
}

// ---------------------------------------------------------------------------
// The service

struct Shared {
    cfg: RepositoryConfig,
    password: Zeroizing<String>,
    stats: Arc<RepositoryStats>,
    /// Last time a refusal (or a failed re-auth) was logged: at most one a second.
    last_refusal_log: Mutex<Option<Instant>>,
    last_down_log: Mutex<Option<Instant>>,
}

impl Shared {
    fn log_limited(slot: &Mutex<Option<Instant>>, f: impl FnOnce()) {
        let Ok(mut last) = slot.try_lock() else { return };
        let now = Instant::now();
        if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            *last = Some(now);
            f();
        }
    }
}

/// The service: `threads` threads, each owning a [`RepositoryClient`], fed by
/// one bounded channel.
pub struct Repository {
    tx: Sender<Queued>,
    stop: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    stats: Arc<RepositoryStats>,
}

/// A worker's end of the service.
#[derive(Clone)]
pub struct RepositoryHandle {
    tx: Sender<Queued>,
    stats: Arc<RepositoryStats>,
}

impl RepositoryHandle {
    /// Queues a request without blocking; gives it back if the queue is full
    /// (counted) or the service stopped.
    pub fn submit(&self, req: Request) -> Result<(), Request> {
        self.tx.try_send(Queued { req, at: Instant::now() }).map_err(|e| match e {
            TrySendError::Full(q) => {
                RepositoryStats::count(&self.stats.queue_full);
                q.req
            }
            TrySendError::Disconnected(q) => q.req,
        })
    }
}

impl Repository {
    /// Validates the config, reads the password and connects once to check
    /// the credentials: a config or auth error is returned (baton refuses to
    /// start); an unreachable Redis is logged once and the threads keep
    /// retrying.
    pub fn start(cfg: &RepositoryConfig) -> Result<Repository, RepositoryError> {
        cfg.validate()?;
        let password = cfg.password()?;
        let stats = Arc::new(RepositoryStats::default());
        let mut warned = None;
        match RepositoryClient::connect_with(cfg, &password) {
            Ok(_) => stats.up.store(true, Ordering::Relaxed),
            Err(e @ (RepositoryError::Auth(_) | RepositoryError::Config(_))) => return Err(e),
            Err(e) => {
                log::warn!("repository: {e}; starting anyway, takes fall back until it is reachable");
                // The threads' own first failures stay quiet for a second.
                warned = Some(Instant::now());
            }
        }
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            password,
            stats: stats.clone(),
            last_refusal_log: Mutex::new(None),
            last_down_log: Mutex::new(warned),
        });
        let (tx, rx) = bounded::<Queued>(cfg.queue);
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let mut threads = Vec::with_capacity(cfg.threads);
        for i in 0..cfg.threads {
            let rx = rx.clone();
            let stop_rx = stop_rx.clone();
            let shared = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("baton-repo-{i}"))
                .spawn(move || {
                    // SIGIO (net_tap) must not interrupt Redis reads.
                    crate::dpdk::signals::block_async_signals();
                    ServiceThread::new(shared).run(rx, stop_rx)
                })
                .map_err(|e| RepositoryError::Config(format!("repository.threads: cannot spawn a thread: {e}")))?;
            threads.push(h);
        }
        Ok(Repository { tx, stop: Some(stop_tx), threads, stats })
    }

    pub fn handle(&self) -> RepositoryHandle {
        RepositoryHandle { tx: self.tx.clone(), stats: self.stats.clone() }
    }

    pub fn stats(&self) -> Arc<RepositoryStats> {
        self.stats.clone()
    }
}

impl Drop for Repository {
    fn drop(&mut self) {
        // Dropping the stop sender wakes every thread (handles may still hold
        // request senders, so the request channel alone would not end them).
        self.stop.take();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

/// A request in the queue, with when it was submitted.
struct Queued {
    req: Request,
    at: Instant,
}

/// Answers a request that is never sent to Redis: a put certainly did not
/// run (its value goes back), a take or delete is Unavailable.
fn unsent(req: Request) {
    let outcome = match req.op {
        Op::Put { value, .. } => Outcome::NotStored(value),
        _ => Outcome::Unavailable,
    };
    if let Some(r) = req.reply {
        let _ = r.send(Reply { tag: req.tag, outcome, latency: Duration::ZERO });
    }
}

struct ServiceThread {
    shared: Arc<Shared>,
    client: Option<RepositoryClient>,
    /// Circuit open until then (no reconnect before).
    retry_at: Option<Instant>,
    /// Whether this thread has been connected before (reconnects are counted).
    was_connected: bool,
    /// When the connection last answered.
    last_used: Instant,
}

/// A connection unused this long is checked with a PING before a command
/// goes on it: Redis may have restarted meanwhile (the socket is dead but
/// nothing has told us), and a command written into a dead socket has an
/// ambiguous outcome; the PING's failure costs nothing but a reconnect.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// An idle service thread checks the link this often.
const HEARTBEAT: Duration = Duration::from_millis(500);

impl ServiceThread {
    fn new(shared: Arc<Shared>) -> ServiceThread {
        let mut t = ServiceThread { shared, client: None, retry_at: None, was_connected: false, last_used: Instant::now() };
        t.ensure_client();
        t
    }

    fn run(mut self, rx: Receiver<Queued>, stop: Receiver<()>) {
        let budget = Duration::from_millis(self.shared.cfg.queue_timeout_ms);
        loop {
            select! {
                recv(rx) -> msg => match msg {
                    // Only a request someone waits for: one without a
                    // reply (a ticket's or an alias's put) costs nobody
                    // latency, and dropping it would lose it silently.
                    Ok(q) if q.req.reply.is_some() && q.at.elapsed() > budget => {
                        RepositoryStats::count(&self.shared.stats.queue_expired);
                        unsent(q.req);
                    }
                    Ok(q) => self.serve(q.req),
                    Err(_) => return,
                },
                recv(stop) -> _ => break,
                // Idle: keep `up` true to what Redis does now, both ways (a
                // drain is refused while it is down; a Redis that comes
                // back is noticed without waiting for traffic).
                default(HEARTBEAT) => self.heartbeat(),
            }
        }
        // Stopping: whatever is still queued is answered Unavailable.
        while let Ok(q) = rx.try_recv() {
            unsent(q.req);
        }
    }

    /// A usable client, connecting if the circuit allows; `None` = fail fast.
    fn ensure_client(&mut self) -> Option<&mut RepositoryClient> {
        if self.client.as_ref().is_some_and(|c| c.is_broken()) {
            self.client = None;
        }
        let now = Instant::now();
        if self.client.is_some() && now.duration_since(self.last_used) >= IDLE_CHECK {
            if let Some(c) = self.client.as_mut() {
                if c.ping().is_err() {
                    // Stale (Redis restarted, or the link died while idle):
                    // a fresh connection right away, not a tripped circuit.
                    self.client = None;
                }
            }
        }
        self.last_used = now;
        if self.client.is_none() {
            let now = Instant::now();
            if self.retry_at.is_some_and(|t| now < t) {
                return None;
            }
            match RepositoryClient::connect_with(&self.shared.cfg, &self.shared.password) {
                Ok(c) => {
                    if self.was_connected || self.retry_at.is_some() {
                        RepositoryStats::count(&self.shared.stats.reconnects);
                        log::info!("repository: connected again to {}", self.shared.cfg.target());
                    }
                    self.was_connected = true;
                    self.retry_at = None;
                    self.client = Some(c);
                    self.shared.stats.up.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    self.trip();
                    Shared::log_limited(&self.shared.last_down_log, || log::warn!("repository: {e}"));
                    return None;
                }
            }
        }
        self.client.as_mut()
    }

    /// With no request for a while: reconnect if the circuit allows, else
    /// PING a connection that has been idle (`ensure_client` does both).
    fn heartbeat(&mut self) {
        if self.ensure_client().is_none() {
            return;
        }
        let ok = self.client.as_mut().map(|c| c.ping().is_ok()).unwrap_or(false);
        if ok {
            self.shared.stats.up.store(true, Ordering::Relaxed);
        } else {
            self.trip();
        }
    }

    /// Opens the circuit: drop the connection, no reconnect for `retry_ms`.
    fn trip(&mut self) {
        self.client = None;
        self.retry_at = Some(Instant::now() + Duration::from_millis(self.shared.cfg.retry_ms));
        self.shared.stats.up.store(false, Ordering::Relaxed);
    }

    fn serve(&mut self, req: Request) {
        let t0 = Instant::now();
        let stats = self.shared.stats.clone();
        let outcome = match req.op {
            Op::Take { kind, id } => {
                RepositoryStats::count(&stats.takes);
                let r = match self.ensure_client() {
                    Some(c) => c.take(kind, &id),
                    None => Err(RepositoryError::Unavailable("circuit open".into())),
                };
                let o = match r {
                    Ok(Some(v)) => {
                        RepositoryStats::count(&stats.taken);
                        Outcome::Taken(v)
                    }
                    Ok(None) => {
                        RepositoryStats::count(&stats.missing);
                        Outcome::Missing
                    }
                    Err(e) => self.failed(kind, e),
                };
                let took = t0.elapsed();
                stats.take_latency_us[latency_bucket(took)].fetch_add(1, Ordering::Relaxed);
                stats.take_latency_sum_us.fetch_add(took.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
                o
            }
            Op::Put { kind, id, value, ttl } => {
                RepositoryStats::count(&stats.puts);
                let r = match self.ensure_client() {
                    Some(c) => c.put(kind, &id, &value, ttl),
                    None => Err(RepositoryError::Unavailable("circuit open".into())),
                };
                match r {
                    Ok(()) => Outcome::Stored,
                    Err(e) => {
                        RepositoryStats::count(&stats.put_failures);
                        // Never sent (circuit open) or refused by the ACL:
                        // certainly not stored, the caller keeps the value.
                        // Timed out or broken after the write: Redis may
                        // hold it, so the caller must not keep a copy
                        // (two owners); it gets Unavailable.
                        // An error reply (ACL, a cluster redirect, ...)
                        // also means Redis did not run the command.
                        let certain = match &e {
                            RepositoryError::Unavailable(m) => m == "circuit open" || m.starts_with("cluster topology changed"),
                            _ => true,
                        };
                        let _ = self.failed(kind, e);
                        if certain {
                            Outcome::NotStored(value)
                        } else {
                            Outcome::Unavailable
                        }
                    }
                }
            }
            Op::Del { kind, id } => {
                RepositoryStats::count(&stats.dels);
                let r = match self.ensure_client() {
                    Some(c) => c.del(kind, &id),
                    None => Err(RepositoryError::Unavailable("circuit open".into())),
                };
                match r {
                    Ok(_) => Outcome::Stored,
                    Err(e) => self.failed(kind, e),
                }
            }
        };
        if matches!(outcome, Outcome::Taken(_) | Outcome::Missing | Outcome::Stored | Outcome::Refused) {
            // Redis answered: up, whichever thread tripped last.
            stats.up.store(true, Ordering::Relaxed);
        }
        if let Some(r) = req.reply {
            // A worker that went away no longer wants the answer.
            let _ = r.send(Reply { tag: req.tag, outcome, latency: t0.elapsed() });
        }
    }

    /// Counts and logs a failure; trips the circuit when the connection broke.
    fn failed(&mut self, kind: RecordKind, e: RepositoryError) -> Outcome {
        let stats = &self.shared.stats;
        match e {
            RepositoryError::Refused(msg) => {
                RepositoryStats::count(&stats.refused);
                let user = &self.shared.cfg.username;
                Shared::log_limited(&self.shared.last_refusal_log, || {
                    log::warn!("repository: ACL refused user {user:?} a {kind:?} record: {msg}")
                });
                Outcome::Refused
            }
            RepositoryError::Protocol(msg) => {
                RepositoryStats::count(&stats.unavailable);
                Shared::log_limited(&self.shared.last_down_log, || log::warn!("repository: {msg}"));
                Outcome::Unavailable
            }
            other => {
                RepositoryStats::count(&stats.unavailable);
                if matches!(&other, RepositoryError::Unavailable(m) if m == "timed out") {
                    RepositoryStats::count(&stats.timeouts);
                }
                if self.client.as_ref().is_some_and(|c| c.is_broken()) {
                    self.trip();
                    Shared::log_limited(&self.shared.last_down_log, || {
                        log::warn!("repository: {other}; circuit open for {} ms", self.shared.cfg.retry_ms)
                    });
                }
                Outcome::Unavailable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_handles_and_requests_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<RepositoryClient>();
        send::<RepositoryHandle>();
        send::<Request>();
        send::<Reply>();
        fn sync<T: Sync>() {}
        sync::<RepositoryStats>();
        sync::<RepositoryHandle>();
    }

    #[test]
    fn record_key_is_namespaced_lower_hex() {
        assert_eq!(record_key("web", RecordKind::Session, &[0x0a, 0x1b, 0xff, 0x00]), "baton:web:t:0a1bff00");
        assert_eq!(record_key("api", RecordKind::Conn, &[0xAB]), "baton:api:c:ab");
        assert_eq!(record_key("web", RecordKind::ConnAlias, &[1, 2]), "baton:web:a:0102");
        assert_eq!(record_key("web", RecordKind::Session, &[]), "baton:web:t:");
    }

    #[test]
    fn config_defaults() {
        let c = RepositoryConfig::from_toml("").unwrap();
        assert_eq!(c.url, "redis://127.0.0.1:6379");
        assert_eq!(c.timeout_ms, 5);
        assert_eq!(c.connect_timeout_ms, 20);
        assert_eq!(c.threads, 2);
        assert_eq!(c.queue, 4096);
        assert_eq!(c.retry_ms, 200);
        assert_eq!(c.frontend, "web");
        assert!(c.cluster_urls.is_empty() && c.password_file.is_none() && c.username.is_empty());
        let c = RepositoryConfig::from_toml("url = \"redis://198.18.0.5:7000\"\nusername = \"hosta\"\nthreads = 4\n").unwrap();
        assert_eq!((c.url.as_str(), c.username.as_str(), c.threads), ("redis://198.18.0.5:7000", "hosta", 4));
    }

    fn err(text: &str) -> String {
        RepositoryConfig::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn config_errors_name_the_key() {
        assert!(err("colour = 3").starts_with("repository.colour:"), "{}", err("colour = 3"));
        let e = err("threads = 1\ntimeout_ms = \"fast\"");
        assert!(e.starts_with("repository.timeout_ms:"), "{e}");
        assert!(err("timeout_ms = 0").starts_with("repository.timeout_ms:"));
        assert!(err("connect_timeout_ms = 0").starts_with("repository.connect_timeout_ms:"));
        assert!(err("threads = 0").starts_with("repository.threads:"));
        assert!(err("queue = 0").starts_with("repository.queue:"));
        assert!(err("retry_ms = 999999999").starts_with("repository.retry_ms:"));
        assert!(err("frontend = \"a:b\"").starts_with("repository.frontend:"));
        assert!(err("frontend = \"\"").starts_with("repository.frontend:"));
        assert!(err("url = \"http://x\"").starts_with("repository.url:"));
        if cfg!(feature = "repository-tls") {
            assert!(RepositoryConfig::from_toml("url = \"rediss://x:6380\"").is_ok());
        } else {
            assert!(err("url = \"rediss://x:6380\"").starts_with("repository.url:"));
        }
        assert!(err("url = \"rediss://x:6380/#insecure\"").starts_with("repository.url:"));
        assert!(err("tls_ca_file = \"/etc/ca.pem\"").starts_with("repository.tls_ca_file:"));
        assert!(RepositoryConfig::from_toml("cluster_urls = [\"redis://a:1\", \"redis://b:2\"]").is_ok());
        assert!(err("cluster_urls = [\"http://a:1\"]").starts_with("repository.cluster_urls:"));
        assert!(err("cluster_urls = [\"redis://u:pw@a:1\"]").starts_with("repository.cluster_urls:"));
        assert!(err("username = \"a b\"").starts_with("repository.username:"));
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_echoing_them() {
        let e = err("url = \"redis://hosta:s3cret@127.0.0.1:6379\"");
        assert!(e.starts_with("repository.url:"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!("baton-repo-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn password_file_trims_one_trailing_newline() {
        for (name, bytes, want) in [
            ("lf", &b"pw one\n"[..], "pw one"),
            ("crlf", b"pw\r\n", "pw"),
            ("none", b"pw", "pw"),
            ("two", b"pw\n\n", "pw\n"),
            ("space", b" pw \n", " pw "),
        ] {
            let p = temp_file(name, bytes);
            let c = RepositoryConfig { password_file: Some(p.clone()), ..Default::default() };
            assert_eq!(c.password().unwrap().as_str(), want, "{name}");
            let _ = std::fs::remove_file(p);
        }
        assert_eq!(RepositoryConfig::default().password().unwrap().as_str(), "");
    }

    #[test]
    fn password_file_errors_name_the_key_not_the_content() {
        let p = temp_file("empty", b"\n");
        let c = RepositoryConfig { password_file: Some(p.clone()), ..Default::default() };
        assert!(c.password().unwrap_err().to_string().starts_with("repository.password_file:"));
        let _ = std::fs::remove_file(p);
        let c = RepositoryConfig { password_file: Some("/nonexistent/baton/pw".into()), ..Default::default() };
        assert!(c.password().unwrap_err().to_string().starts_with("repository.password_file:"));
    }

    #[test]
    fn latency_buckets_are_log2_microseconds() {
        assert_eq!(latency_bucket(Duration::ZERO), 0);
        assert_eq!(latency_bucket(Duration::from_micros(1)), 1);
        assert_eq!(latency_bucket(Duration::from_micros(2)), 2);
        assert_eq!(latency_bucket(Duration::from_micros(3)), 2);
        assert_eq!(latency_bucket(Duration::from_micros(100)), 7); // [64, 128)
        assert_eq!(latency_bucket(Duration::from_secs(3600)), LATENCY_BUCKETS - 1);
        let mut s = RepositoryStatsSnapshot::default();
        assert_eq!(s.take_latency_quantile_us(0.5), None);
        s.take_latency_us[7] = 99;
        s.take_latency_us[10] = 1;
        assert_eq!(s.take_latency_quantile_us(0.5), Some(128));
        assert_eq!(s.take_latency_quantile_us(0.99), Some(128));
        assert_eq!(s.take_latency_quantile_us(1.0), Some(1024));
    }

    #[test]
    fn prometheus_text_has_counters_up_and_a_cumulative_histogram() {
        let mut s = RepositoryStatsSnapshot { takes: 3, taken: 2, missing: 1, up: true, ..Default::default() };
        s.take_latency_us[0] = 1; // 0 µs
        s.take_latency_us[7] = 2; // [64, 128) µs
        s.take_latency_sum_us = 200;
        let mut out = String::new();
        s.write_prometheus(&mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.contains(&"baton_repository_takes_total 3"), "{out}");
        assert!(lines.contains(&"baton_repository_taken_total 2"));
        assert!(lines.contains(&"baton_repository_missing_total 1"));
        assert!(lines.contains(&"baton_repository_queue_full_total 0"));
        assert!(lines.contains(&"baton_repository_up 1"));
        assert!(lines.contains(&"# TYPE baton_repository_take_seconds histogram"));
        assert!(lines.contains(&"baton_repository_take_seconds_bucket{le=\"0.000001\"} 1"), "{out}");
        assert!(lines.contains(&"baton_repository_take_seconds_bucket{le=\"0.000064\"} 1"), "{out}");
        assert!(lines.contains(&"baton_repository_take_seconds_bucket{le=\"0.000128\"} 3"), "{out}");
        assert!(lines.contains(&"baton_repository_take_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(lines.contains(&"baton_repository_take_seconds_sum 0.0002"), "{out}");
        assert!(lines.contains(&"baton_repository_take_seconds_count 3"));
        assert!(lines.contains(&"baton_repository_queue_expired_total 0"));
        assert_eq!(out.matches("# TYPE").count(), 14);
    }

    #[test]
    fn an_unreachable_redis_is_unavailable_not_auth() {
        // Port 1 on loopback: nothing listens (connection refused).
        let c = RepositoryConfig { url: "redis://127.0.0.1:1".into(), ..Default::default() };
        match RepositoryClient::connect(&c) {
            Err(RepositoryError::Unavailable(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}
