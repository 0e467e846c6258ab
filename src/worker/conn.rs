//! A proxied connection: the client flow (TCP + TLS) and its backend flow
//! (TCP), and the pump that moves bytes between them with backpressure.
//!
//! Bytes move only as far as the next stage has room: client TCP receive
//! buffer → TLS input (bounded) → TLS plaintext (bounded) → backend TCP send
//! buffer (bounded), and back the other way. A full stage stops the one
//! before it, which in the end closes the TCP window; nothing grows without
//! bound.

use std::sync::Arc;

use crate::codec::{DecodeError, Reader, Writer};
use crate::entropy::Entropy;
use crate::net::tcp::{TcpConfig, TcpConn};
use crate::net::FlowId;
use crate::time::{Duration, Instant};
use crate::tls::{CryptoJob, JobResult, ServerConfig, TicketStore, TlsError, TlsServer};

use super::stats::WorkerStats;

/// Format of an exported [`ProxiedConn`].
const CONN_TAG: u16 = 0xC0;
const CONN_VERSION: u16 = 1;

/// The backend side of a proxied connection.
pub struct BackendLeg {
    pub tcp: TcpConn,
    /// Index of the backend in the worker's pool.
    pub pool_idx: usize,
    /// Give up if not established by then.
    pub connect_deadline: Instant,
    pub established_once: bool,
    /// We reset it (the client went away).
    pub aborted: bool,
}

/// How long a connection may take to finish its handshake, and stay idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub handshake: Duration,
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { handshake: Duration::from_secs(10), idle: Duration::from_secs(300) }
    }
}

/// What became of a connection after a service pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    /// Both flows are closed; remove it.
    Done,
}

/// Requests from a service pass that need the worker (which owns the pool,
/// the ports and the flow table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wants {
    /// The handshake is done and there is no backend yet.
    pub backend: bool,
}

pub struct ProxiedConn {
    pub client: TcpConn,
    pub tls: TlsServer,
    pub backend: Option<BackendLeg>,
    /// We called `backend.tcp.close()` (client's EOF passed on).
    backend_fin_sent: bool,
    /// We queued close_notify towards the client.
    close_notify_sent: bool,
    /// We called `client.close()` (FIN after close_notify).
    client_fin_sent: bool,
    /// The connection is being torn down (TLS failure, backend failure).
    closing: bool,
    handshake_counted: bool,
    /// Backend connect failed or the backend reset us.
    pub backend_failed: bool,
    /// True while queued for a service pass (set by the worker).
    pub dirty: bool,
    /// A crypto job is out on the slow path.
    job_pending: bool,
    created: Instant,
    /// Last time a segment arrived on either flow.
    pub last_activity: Instant,
    pub timeouts: Timeouts,
    /// A handshake flight of ours has gone out (checkpoints come after one).
    flight_sent: bool,
    /// Send a PROXY protocol v2 header first on the backend connection.
    pub proxy_v2: bool,
    proxy_header_sent: bool,
}

/// Where a connection's crypto jobs go.
pub trait JobSink {
    /// Runs `job` now and returns its result, or submits it and returns
    /// None (the result arrives later through [`ProxiedConn::job_done`]).
    fn dispatch(&mut self, job: CryptoJob, rng: &mut dyn Entropy) -> Option<JobResult>;
}

/// Runs every job inline.
pub struct InlineJobs;

impl JobSink for InlineJobs {
    fn dispatch(&mut self, job: CryptoJob, rng: &mut dyn Entropy) -> Option<JobResult> {
        Some(job.run(rng))
    }
}

impl ProxiedConn {
    pub fn new(client: TcpConn, tls_cfg: Arc<ServerConfig>, now: Instant, timeouts: Timeouts) -> Self {
        ProxiedConn {
            client,
            tls: TlsServer::new(tls_cfg),
            backend: None,
            backend_fin_sent: false,
            close_notify_sent: false,
            client_fin_sent: false,
            closing: false,
            handshake_counted: false,
            backend_failed: false,
            dirty: false,
            job_pending: false,
            created: now,
            last_activity: now,
            timeouts,
            flight_sent: false,
            proxy_v2: false,
            proxy_header_sent: false,
        }
    }

    pub fn client_flow(&self) -> FlowId {
        self.client.flow()
    }

    pub fn backend_flow(&self) -> Option<FlowId> {
        self.backend.as_ref().map(|b| b.tcp.flow())
    }

    /// Attaches a backend connection in SYN-SENT.
    pub fn attach_backend(&mut self, tcp: TcpConn, pool_idx: usize, deadline: Instant) {
        self.backend = Some(BackendLeg { tcp, pool_idx, connect_deadline: deadline, established_once: false, aborted: false });
    }

    /// No backend could be chosen or connected: close towards the client.
    pub fn fail_backend(&mut self) {
        self.backend_failed = true;
        self.begin_close();
    }

    /// Starts a clean close towards the client: close_notify, then FIN once
    /// it is written (RFC 8446 §6.1; case T7).
    fn begin_close(&mut self) {
        self.closing = true;
        if !self.close_notify_sent && !self.tls.is_failed() && !self.tls.is_handshaking() {
            self.tls.send_close_notify();
        }
        self.close_notify_sent = true;
    }

    /// Graceful stop of the worker: close_notify + FIN to the client, FIN to
    /// the backend.
    pub fn shutdown(&mut self) {
        self.begin_close();
        if let Some(b) = self.backend.as_mut() {
            if !self.backend_fin_sent {
                b.tcp.close();
                self.backend_fin_sent = true;
            }
        }
    }

    /// Runs or submits the TLS state machine's crypto jobs until it needs
    /// input, waits for a job, or fails.
    fn drive_jobs(&mut self, mut r: Result<(), TlsError>, jobs: &mut dyn JobSink, rng: &mut dyn Entropy, stats: &mut WorkerStats, tickets: &mut dyn TicketStore) {
        while r.is_ok() {
            let Some(job) = self.tls.take_job() else { break };
            stats.crypto_jobs += 1;
            match jobs.dispatch(job, rng) {
                Some(res) => r = self.tls.complete_job(res).and_then(|_| self.tls.process_with(rng, tickets)),
                None => {
                    self.job_pending = true;
                    break;
                }
            }
        }
        if let Err(e) = r {
            if !matches!(e, TlsError::PeerClosed) {
                log::debug!("tls error on {:?}: {e}", self.client.flow());
                stats.tls_failures += 1;
                self.closing = true;
                self.close_notify_sent = true; // an alert is queued instead
            }
        }
    }

    /// A slow-path job finished.
    pub fn job_done(&mut self, result: JobResult, jobs: &mut dyn JobSink, rng: &mut dyn Entropy, stats: &mut WorkerStats, tickets: &mut dyn TicketStore) {
        self.job_pending = false;
        let r = self.tls.complete_job(result).and_then(|_| self.tls.process_with(rng, tickets));
        self.drive_jobs(r, jobs, rng, stats, tickets);
    }

    /// True while a crypto job is out on the slow path (the connection
    /// cannot be exported then).
    pub fn job_pending(&self) -> bool {
        self.job_pending
    }

    /// One pass of the pump. `scratch` is the worker's bounce buffer.
    pub fn service(
        &mut self,
        now: Instant,
        rng: &mut dyn Entropy,
        jobs: &mut dyn JobSink,
        scratch: &mut [u8],
        stats: &mut WorkerStats,
        tickets: &mut dyn TicketStore,
    ) -> (Status, Wants) {
        let mut wants = Wants::default();

        // 1. Client ciphertext → TLS.
        loop {
            let (a, _) = self.client.recv_slices();
            if a.is_empty() {
                break;
            }
            let n = self.tls.read_tls(a);
            if n == 0 {
                break;
            }
            self.client.consume(n);
        }

        // 2. TLS processing. Handshake crypto jobs go to the slow path when
        //    there is one (the result comes back through `job_done`), or
        //    run inline.
        if !self.tls.is_failed() && !self.job_pending {
            let r = self.tls.process_with(rng, tickets);
            self.drive_jobs(r, jobs, rng, stats, tickets);
        }
        if !self.tls.is_handshaking() && !self.tls.is_failed() && !self.handshake_counted {
            self.handshake_counted = true;
            stats.handshakes_completed += 1;
            if self.tls.is_resumed() {
                stats.handshakes_resumed += 1;
            }
            match self.tls.ticket_age() {
                Some(crate::tls::TicketAge::Expired) => stats.tickets_too_old += 1,
                Some(crate::tls::TicketAge::Skewed) => stats.tickets_age_skewed += 1,
                _ => {}
            }
        }
        if !self.tls.is_handshaking() && !self.tls.is_failed() && self.backend.is_none() && !self.closing {
            wants.backend = true;
        }

        // 3. Backend connection progress and failure.
        if let Some(b) = self.backend.as_mut() {
            if b.tcp.is_established() {
                b.established_once = true;
            }
            if !self.backend_failed && (b.tcp.reset_received() || (!b.established_once && (b.tcp.is_closed() || now >= b.connect_deadline))) {
                if b.established_once {
                    stats.backend_resets += 1;
                } else {
                    stats.backend_connect_failures += 1;
                    log::warn!("backend {} refused or timed out for client {}", b.tcp.flow().remote, self.client.flow().remote);
                }
                if !b.tcp.is_closed() {
                    b.tcp.abort();
                }
                if !self.backend_failed {
                    self.backend_failed = true;
                    self.begin_close();
                }
            }
        }

        // 4. Client plaintext → backend, as far as the backend takes it;
        //    first the PROXY v2 header when configured.
        if self.proxy_v2 && !self.proxy_header_sent {
            if let Some(b) = self.backend.as_mut() {
                if b.tcp.is_established() {
                    let cf = self.client.flow();
                    let cipher = self.tls.suite().map(|s| match s {
                        crate::tls::CipherSuite::Aes128GcmSha256 => "TLS_AES_128_GCM_SHA256",
                        crate::tls::CipherSuite::Aes256GcmSha384 => "TLS_AES_256_GCM_SHA384",
                        crate::tls::CipherSuite::Chacha20Poly1305Sha256 => "TLS_CHACHA20_POLY1305_SHA256",
                    });
                    let early = self.tls.is_early_data_accepted().then(|| self.tls.early_data_len() as u32);
                    let h = crate::proxy::proxy_v2::header(&crate::proxy::proxy_v2::HeaderInfo {
                        client: cf.remote,
                        server: cf.local,
                        alpn: self.tls.alpn(),
                        sni: self.tls.sni(),
                        cipher,
                        early_data: early,
                    });
                    if b.tcp.send_space() >= h.len() {
                        b.tcp.write(&h);
                        self.proxy_header_sent = true;
                    }
                }
            }
        }
        if let Some(b) = self.backend.as_mut() {
            if b.tcp.is_established() && !self.backend_fin_sent && (self.proxy_header_sent || !self.proxy_v2) {
                loop {
                    let room = b.tcp.send_space().min(scratch.len());
                    if room == 0 {
                        break;
                    }
                    let n = self.tls.read_plaintext(&mut scratch[..room]);
                    if n == 0 {
                        break;
                    }
                    let w = b.tcp.write(&scratch[..n]);
                    debug_assert_eq!(w, n, "send_space promised room");
                    stats.bytes_client_to_backend += n as u64;
                }
            }
        }

        // 5. Backend plaintext → TLS records, as far as TLS output takes it.
        if let Some(b) = self.backend.as_mut() {
            if !self.close_notify_sent {
                loop {
                    let (a, _) = b.tcp.recv_slices();
                    if a.is_empty() {
                        break;
                    }
                    let n = self.tls.write_plaintext(a);
                    if n == 0 {
                        break;
                    }
                    b.tcp.consume(n);
                    stats.bytes_backend_to_client += n as u64;
                }
            }
        }

        // 6. Half-close, client → backend: close_notify or a bare FIN from
        //    the client, once every plaintext byte has been forwarded.
        let client_eof = self.tls.received_close_notify() || self.client.peer_fin();
        if client_eof && self.tls.plaintext_len() == 0 && self.client.recv_len() == 0 {
            match self.backend.as_mut() {
                // Established, or CLOSE-WAIT when the backend closed first.
                Some(b) if b.established_once && !b.tcp.is_closed() && !self.backend_fin_sent => {
                    b.tcp.close();
                    self.backend_fin_sent = true;
                }
                None if !self.closing && (self.tls.is_handshaking() || self.tls.is_failed()) => {
                    // Client gave up during the handshake. (After it, a
                    // client that sends its request and half-closes at once
                    // still gets a backend: its bytes are forwarded, then
                    // the FIN.)
                    self.begin_close();
                }
                _ => {}
            }
        }

        // 7. Half-close, backend → client: the backend's FIN becomes
        //    close_notify, once all its bytes are sealed.
        if let Some(b) = self.backend.as_ref() {
            if b.tcp.peer_fin() && b.tcp.recv_len() == 0 && !self.close_notify_sent {
                self.begin_close();
            }
        }

        // 8. TLS output → client TCP.
        loop {
            let out = self.tls.tls_output();
            if out.is_empty() {
                break;
            }
            if self.tls.is_handshaking() {
                self.flight_sent = true;
            }
            let n = self.client.write(out);
            if n == 0 {
                break;
            }
            self.tls.consume_output(n);
        }
        if (self.closing || self.close_notify_sent) && self.tls.tls_output().is_empty() && !self.client_fin_sent {
            self.client.close();
            self.client_fin_sent = true;
        }
        // A client that reset us: nothing more can be said to it.
        if self.client.reset_received() || self.client.is_closed() {
            if !self.closing {
                stats.client_resets += self.client.reset_received() as u64;
                self.closing = true;
            }
            // Nobody will read what the backend still sends: reset it
            // rather than leave it writing into a closed window forever.
            if let Some(b) = self.backend.as_mut() {
                if !b.tcp.is_closed() && !b.aborted {
                    b.tcp.abort();
                    b.aborted = true;
                }
                self.backend_fin_sent = true;
            }
        }

        // 9. Timeouts: a handshake that does not finish, or a connection
        //    with no traffic either way, is reset (an idle or half-open
        //    client must not hold a slot for ever).
        if !self.client.is_closed() {
            let handshake_late = self.tls.is_handshaking() && now >= self.created + self.timeouts.handshake;
            let idle = now >= self.last_activity + self.timeouts.idle;
            if handshake_late || idle {
                if handshake_late {
                    stats.handshake_timeouts += 1;
                } else {
                    stats.idle_timeouts += 1;
                }
                self.client.abort();
                if let Some(b) = self.backend.as_mut() {
                    if !b.tcp.is_closed() {
                        b.tcp.abort();
                        b.aborted = true;
                    }
                }
                self.closing = true;
            }
        }

        let backend_done = self.backend.as_ref().map(|b| b.tcp.is_closed()).unwrap_or(true);

        // 10. Neither flow can carry data any more: each is closed or waits
        //     out TIME_WAIT (RFC 9293 §3.6), which may take `tcp.time_wait`
        //     (the client's when baton closed first, the backend's when
        //     the client did). TLS can send and receive nothing more, so
        //     its keys and buffers go now, not when the flows are removed
        //     (regression: a connection in TIME_WAIT held its traffic keys
        //     and 6.9 KB, tests/time_wait.rs).
        if !self.tls.is_retired()
            && self.is_lingering()
            && self.tls.tls_output().is_empty()
            && !self.job_pending
        {
            self.tls.retire();
        }
        let status = if self.client.is_closed() && backend_done { Status::Done } else { Status::Open };
        (status, wants)
    }

    /// Between two handshake flights with nothing in flight: our flight is
    /// sent and acknowledged, nothing of the client's is buffered, no job
    /// is out. Parking the connection in the table now loses nothing.
    pub fn can_checkpoint(&self) -> bool {
        self.flight_sent
            && self.tls.is_handshaking()
            && !self.tls.is_failed()
            && !self.job_pending
            && !self.closing
            && self.backend.is_none()
            && self.tls.tls_output().is_empty()
            && self.client.is_established()
            && self.client.unacked_len() == 0
            && self.client.send_queue_len() == 0
            && self.client.recv_len() == 0
    }

    /// When the handshake must be done by.
    pub fn handshake_deadline(&self) -> Instant {
        self.created + self.timeouts.handshake
    }

    /// Neither flow can carry data: each is closed or in TIME_WAIT, and at
    /// least one waits (both closed is [`is_done`](Self::is_done)).
    pub fn is_lingering(&self) -> bool {
        use crate::net::tcp::TcpState::{Closed, TimeWait};
        let c = self.client.state();
        let b = self.backend.as_ref().map_or(Closed, |b| b.tcp.state());
        matches!(c, Closed | TimeWait) && matches!(b, Closed | TimeWait) && (c == TimeWait || b == TimeWait)
    }

    /// Both flows are closed: the connection can be removed.
    pub fn is_done(&self) -> bool {
        self.client.is_closed() && self.backend.as_ref().map(|b| b.tcp.is_closed()).unwrap_or(true)
    }

    /// Sends every segment that is due on both flows.
    pub fn transmit(&mut self, now: Instant, emit: &mut dyn FnMut(FlowId, &crate::net::TcpHeader, &[u8])) {
        let cf = self.client.flow();
        self.client.poll_transmit(now, &mut |h, p| emit(cf, h, p));
        if let Some(b) = self.backend.as_mut() {
            let bf = b.tcp.flow();
            b.tcp.poll_transmit(now, &mut |h, p| emit(bf, h, p));
        }
    }

    /// When this connection next needs a service pass without new input.
    pub fn poll_at(&self) -> Option<Instant> {
        let mut t = self.client.poll_at();
        if !self.client.is_closed() {
            let limit = if self.tls.is_handshaking() { self.created + self.timeouts.handshake } else { self.last_activity + self.timeouts.idle };
            t = min_opt(t, Some(limit));
        }
        if let Some(b) = &self.backend {
            t = min_opt(t, b.tcp.poll_at());
            if !b.established_once && !b.tcp.is_closed() {
                t = min_opt(t, Some(b.connect_deadline));
            }
        }
        t
    }

    /// Encodes the whole proxied connection (both flows, TLS, pump state).
    pub fn encode(&self, now: Instant, w: &mut Writer) {
        w.version(CONN_TAG, CONN_VERSION);
        self.client.encode(now, w);
        self.tls.encode(w);
        match &self.backend {
            Some(b) => {
                w.u8(1);
                b.tcp.encode(now, w);
                w.u64(b.pool_idx as u64);
                w.u64(b.connect_deadline.saturating_since(now).micros());
                w.bool(b.established_once);
                w.bool(b.aborted);
            }
            None => w.u8(0),
        }
        let flags = [
            self.backend_fin_sent,
            self.close_notify_sent,
            self.client_fin_sent,
            self.closing,
            self.handshake_counted,
            self.backend_failed,
        ];
        for f in flags {
            w.bool(f);
        }
        // Times as ages, never clock readings (DESIGN.md).
        w.u64(now.saturating_since(self.created).micros());
        w.u64(now.saturating_since(self.last_activity).micros());
        w.u64(self.timeouts.handshake.micros());
        w.u64(self.timeouts.idle.micros());
        w.bool(self.flight_sent);
        w.bool(self.proxy_v2);
        w.bool(self.proxy_header_sent);
    }

    pub fn decode(r: &mut Reader, now: Instant, tls_cfg: Arc<ServerConfig>) -> Result<Self, DecodeError> {
        r.version("proxied connection", CONN_TAG, CONN_VERSION, CONN_VERSION)?;
        let client = TcpConn::decode(r, now)?;
        let tls = TlsServer::decode(r, tls_cfg)?;
        let backend = match r.u8()? {
            0 => None,
            1 => {
                let tcp = TcpConn::decode(r, now)?;
                let pool_idx = r.u64()? as usize;
                let connect_deadline = now + Duration::from_micros(r.u64()?);
                let established_once = r.bool()?;
                let aborted = r.bool()?;
                Some(BackendLeg { tcp, pool_idx, connect_deadline, established_once, aborted })
            }
            _ => return Err(DecodeError::Invalid("backend presence")),
        };
        Ok(ProxiedConn {
            client,
            tls,
            backend,
            backend_fin_sent: r.bool()?,
            close_notify_sent: r.bool()?,
            client_fin_sent: r.bool()?,
            closing: r.bool()?,
            handshake_counted: r.bool()?,
            backend_failed: r.bool()?,
            dirty: false,
            job_pending: false,
            created: now - Duration::from_micros(r.u64()?),
            last_activity: now - Duration::from_micros(r.u64()?),
            timeouts: Timeouts { handshake: Duration::from_micros(r.u64()?), idle: Duration::from_micros(r.u64()?) },
            flight_sent: r.bool()?,
            proxy_v2: r.bool()?,
            proxy_header_sent: r.bool()?,
        })
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The TCP settings a worker uses for client flows and backend flows.
pub fn tcp_config(mss: u16, recv_buf: usize, send_buf: usize) -> TcpConfig {
    TcpConfig { mss, recv_buf_cap: recv_buf, send_buf_cap: send_buf, ..TcpConfig::default() }
}
