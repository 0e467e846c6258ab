//! bench-replay: re-enacts a recorded workload (bench/replay/data/
//! workload.json, made by record.sh + workload.py from real curl and
//! openssl sessions) against baton's `Worker` and checks every byte.
//!
//! In-process mode (the only one so far): baton's `Worker` runs its real
//! poll loop (`worker::runtime::poll_loop`, the one `baton run` uses) on its
//! own thread, pinned to `--worker-core`, behind a frame pipe (two channels
//! of whole Ethernet frames, a `FrameIo`). The client engine runs on the main
//! thread, pinned to `--engine-core`: a smoltcp host for the clients (one TCP
//! socket per replayed connection, a rustls 0.23 TLS 1.3 client each, so it
//! answers baton's actual responses) and a smoltcp host for the backend
//! (answers baton's backend connections with the recorded response bytes).
//! baton's backend connections carry a PROXY v2 header (`proxy_v2`), from
//! which the backend learns which replayed connection it serves. The loop is
//! closed: the backend checks every request byte against the recording, the
//! client every response byte; any mismatch or unfinished connection makes
//! the run FAILED.
//!
//! CPU: baton's figures use the worker thread's own utime+stime
//! (/proc/self/task/TID/stat), the engine's is reported apart.
//!
//!     cargo build --release --example bench-replay
//!     target/release/examples/bench-replay --workload bench/replay/data/workload.json --seconds 3

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use baton::net::arp::ArpCache;
use baton::net::{Endpoint, IpAddress, MacAddr};
use baton::time::MonotonicClock;
use baton::worker::io::FrameIo;
use baton::worker::runtime::{poll_loop, LoopConfig, LoopTotals};
use baton::worker::{Worker, WorkerParams};
use crossbeam_channel::{Receiver, Sender};
use smoltcp::iface::{Config as IfConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress as SIp, IpCidr, Ipv4Address};

#[path = "../ceilings.rs"]
mod ceilings;
#[path = "memif.rs"]
mod memif;

const BATON_IP: [u8; 4] = [198, 18, 0, 2];
const CLIENT_IP: [u8; 4] = [198, 18, 0, 10];
const BACKEND_IP: [u8; 4] = [198, 18, 0, 1];
const BACKEND_PORT: u16 = 8080;
const BATON_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const BACKEND_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const MTU: usize = 1500;
/// A replayed connection that has not finished after this long fails.
const CONN_TIMEOUT: StdDuration = StdDuration::from_secs(10);

// ---------------------------------------------------------------- workload

#[derive(serde::Deserialize)]
struct WorkloadFile {
    connections: Vec<ConnJson>,
    peak_concurrency: usize,
}
#[derive(serde::Deserialize)]
struct ConnJson {
    resumed: bool,
    backend_closes: bool,
    close_think_us: u64,
    exchanges: Vec<ExJson>,
}
#[derive(serde::Deserialize)]
struct ExJson {
    think_us: u64,
    request: String,
    response: String,
}

struct Exchange {
    think_us: u64,
    request: Vec<u8>,
    response: Vec<u8>,
}
struct Conn {
    resumed: bool,
    backend_closes: bool,
    close_think_us: u64,
    exchanges: Vec<Exchange>,
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    fn v(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let t: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(t.len() * 3 / 4);
    for ch in t.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in ch.iter().enumerate() {
            acc |= v(c).ok_or("bad base64")? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..ch.len()]);
    }
    Ok(out)
}

fn load_workload(path: &str) -> Result<(Vec<Conn>, usize), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let w: WorkloadFile = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let mut conns = Vec::new();
    for c in w.connections {
        let mut ex = Vec::new();
        for e in c.exchanges {
            ex.push(Exchange { think_us: e.think_us, request: b64(&e.request)?, response: b64(&e.response)? });
        }
        if ex.is_empty() {
            continue;
        }
        conns.push(Conn { resumed: c.resumed, backend_closes: c.backend_closes, close_think_us: c.close_think_us, exchanges: ex });
    }
    if conns.is_empty() {
        return Err(format!("{path}: no connections"));
    }
    Ok((conns, w.peak_concurrency.max(1)))
}

/// The bulk phase's synthetic workload: one connection shape, a small GET
/// and a `body`-byte response (HTTP/1.1 200 with Content-Length), the body
/// a pattern of little-endian u64 offsets, so a byte out of place differs.
/// The client closes after the response (close_notify, then FIN).
fn bulk_workload(body: usize) -> Vec<Conn> {
    let request = b"GET /bulk HTTP/1.1\r\nHost: baton.test\r\n\r\n".to_vec();
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {body}\r\n\r\n");
    let mut response = Vec::with_capacity(head.len() + body + 8);
    response.extend_from_slice(head.as_bytes());
    let mut off = 0u64;
    while response.len() < head.len() + body {
        response.extend_from_slice(&off.to_le_bytes());
        off += 8;
    }
    response.truncate(head.len() + body);
    vec![Conn { resumed: true, backend_closes: false, close_think_us: 0, exchanges: vec![Exchange { think_us: 0, request, response }] }]
}

// ---------------------------------------------------------------- frame pipe

/// baton's side of the frame pipe.
struct ChanIo {
    rx: Receiver<Vec<u8>>,
    tx: Sender<Vec<u8>>,
}
impl FrameIo for ChanIo {
    fn rx_burst(&mut self, f: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < 32 {
            match self.rx.try_recv() {
                Ok(fr) => {
                    f(&fr);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        n
    }
    fn tx_frame(&mut self, frame: &[u8]) -> bool {
        self.tx.send(frame.to_vec()).is_ok()
    }
    fn flush(&mut self) {}
}

// ---------------------------------------------------------------- smoltcp hosts

#[derive(Default)]
struct QueueDevice {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}
struct RxTok(Vec<u8>);
struct TxTok<'a>(&'a mut VecDeque<Vec<u8>>);
impl phy::RxToken for RxTok {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}
impl phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        self.0.push_back(b);
        r
    }
}
impl Device for QueueDevice {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok<'a>;
    fn receive(&mut self, _t: smoltcp::time::Instant) -> Option<(RxTok, TxTok<'_>)> {
        let f = self.rx.pop_front()?;
        Some((RxTok(f), TxTok(&mut self.tx)))
    }
    fn transmit(&mut self, _t: smoltcp::time::Instant) -> Option<TxTok<'_>> {
        Some(TxTok(&mut self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = MTU + 14;
        c
    }
}

struct Host {
    dev: QueueDevice,
    iface: Interface,
    sockets: SocketSet<'static>,
}
impl Host {
    fn new(mac: [u8; 6], ip: [u8; 4], seed: u64) -> Host {
        let mut dev = QueueDevice::default();
        let mut cfg = IfConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        cfg.random_seed = seed;
        let mut iface = Interface::new(cfg, &mut dev, smoltcp::time::Instant::from_millis(0));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(SIp::Ipv4(Ipv4Address::new(ip[0], ip[1], ip[2], ip[3])), 24));
        });
        Host { dev, iface, sockets: SocketSet::new(vec![]) }
    }
    fn tcp_socket(&mut self, buf: usize) -> SocketHandle {
        let mut s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; buf]), tcp::SocketBuffer::new(vec![0; buf]));
        // No Nagle, no delayed ACK: the replay runs as fast as baton answers.
        s.set_nagle_enabled(false);
        s.set_ack_delay(None);
        self.sockets.add(s)
    }
    fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }
    fn poll(&mut self, now_us: u64) {
        self.iface.poll(smoltcp::time::Instant::from_micros(now_us as i64), &mut self.dev, &mut self.sockets);
    }
}

// ---------------------------------------------------------------- TLS client

/// One pool of TLS 1.3 tickets for every client. Connections that replay a
/// full handshake use a config whose store only takes tickets in (so it
/// offers none); resumed ones take them out.
#[derive(Debug, Default)]
struct TicketPool {
    tickets: Mutex<VecDeque<rustls::client::Tls13ClientSessionValue>>,
    give: bool,
    shared: Option<Arc<TicketPool>>,
}
impl TicketPool {
    fn q(&self) -> &Mutex<VecDeque<rustls::client::Tls13ClientSessionValue>> {
        self.shared.as_ref().map(|s| &s.tickets).unwrap_or(&self.tickets)
    }
}
impl rustls::client::ClientSessionStore for TicketPool {
    fn set_kx_hint(&self, _: rustls::pki_types::ServerName<'static>, _: rustls::NamedGroup) {}
    fn kx_hint(&self, _: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
        Some(rustls::NamedGroup::X25519)
    }
    fn set_tls12_session(&self, _: rustls::pki_types::ServerName<'static>, _: rustls::client::Tls12ClientSessionValue) {}
    fn tls12_session(&self, _: &rustls::pki_types::ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        None
    }
    fn remove_tls12_session(&self, _: &rustls::pki_types::ServerName<'static>) {}
    fn insert_tls13_ticket(&self, _: rustls::pki_types::ServerName<'static>, v: rustls::client::Tls13ClientSessionValue) {
        if let Ok(mut q) = self.q().lock() {
            if q.len() < 4096 {
                q.push_back(v);
            }
        }
    }
    fn take_tls13_ticket(&self, _: &rustls::pki_types::ServerName<'static>) -> Option<rustls::client::Tls13ClientSessionValue> {
        if !self.give {
            return None;
        }
        self.q().lock().ok()?.pop_back()
    }
}

fn client_configs(ca_pem: &[u8]) -> Result<(Arc<rustls::ClientConfig>, Arc<rustls::ClientConfig>), String> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    provider.kx_groups = vec![rustls::crypto::ring::kx_group::X25519];
    let mut roots = rustls::RootCertStore::empty();
    for der in pem::parse_many(ca_pem).map_err(|e| e.to_string())? {
        roots.add(rustls::pki_types::CertificateDer::from(der.contents().to_vec())).map_err(|e| e.to_string())?;
    }
    let base = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let pool = Arc::new(TicketPool::default());
    let mut full = base.clone();
    full.alpn_protocols = vec![b"http/1.1".to_vec()];
    full.resumption = rustls::client::Resumption::store(Arc::new(TicketPool { give: false, shared: Some(pool.clone()), ..Default::default() }));
    let mut resumed = full.clone();
    resumed.resumption = rustls::client::Resumption::store(Arc::new(TicketPool { give: true, shared: Some(pool), ..Default::default() }));
    Ok((Arc::new(full), Arc::new(resumed)))
}

#[derive(PartialEq, Debug)]
enum CState {
    Handshake,
    Think(u64),
    Request,
    Response,
    WaitServerClose,
    CloseThink(u64),
    Closing,
    Done,
}

struct ClientApp {
    conn_ix: usize,
    want_resumed: bool,
    tls: rustls::ClientConnection,
    sock: SocketHandle,
    state: CState,
    ex: usize,
    sent: usize,
    got: Vec<u8>,
    out: Vec<u8>,
    /// Phase time (µs) the connection was opened.
    started_us: u64,
    error: Option<String>,
    resumed: bool,
    plain_bytes: u64,
    established: bool,
}

/// What the engine counts in a phase.
#[derive(Default, Debug, Clone)]
struct Tally {
    ok: u64,
    failed: u64,
    full: u64,
    resumed: u64,
    resume_misses: u64,
    /// Plaintext bytes both ways on the client leg (what baton sealed/opened).
    plain_bytes: u64,
    errors: Vec<String>,
}
impl Tally {
    fn fail(&mut self, e: String) {
        self.failed += 1;
        if self.errors.len() < 5 {
            self.errors.push(e);
        }
    }
}

impl ClientApp {
    /// One step; true when finished (ok or failed).
    /// With `hold`, the connection stays open after its first exchange.
    /// `sc`: scratch buffers (kept by the caller, so no 16 KiB zeroing per
    /// call: that was a fifth of the engine's time).
    #[allow(clippy::too_many_arguments)]
    fn step(&mut self, host: &mut Host, w: &[Conn], now_us: u64, think_scale: f64, hold: bool, sc: &mut Scratch) -> bool {
        if self.error.is_some() || self.state == CState::Done {
            return true;
        }
        if now_us.saturating_sub(self.started_us) > CONN_TIMEOUT.as_micros() as u64 && !(hold && self.ex > 0) {
            self.error = Some(format!("timed out in state {:?} (exchange {})", self.state, self.ex));
            return true;
        }
        let conn = &w[self.conn_ix];
        let sock = host.sockets.get_mut::<tcp::Socket>(self.sock);
        let buf = &mut sc.rx[..];
        let p = &mut sc.plain[..];
        let mut eof = false;
        while sock.can_recv() {
            let n = sock.recv_slice(buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut rd = &buf[..n];
            while !rd.is_empty() {
                if let Err(e) = self.tls.read_tls(&mut rd) {
                    self.error = Some(format!("read_tls: {e}"));
                    return true;
                }
                if let Err(e) = self.tls.process_new_packets() {
                    self.error = Some(format!("tls: {e}"));
                    return true;
                }
                loop {
                    match self.tls.reader().read(p) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(k) => self.got.extend_from_slice(&p[..k]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            self.error = Some(format!("read: {e}"));
                            return true;
                        }
                    }
                }
            }
        }
        self.established |= sock.state() == tcp::State::Established;
        if self.established && !sock.may_recv() && !eof && self.state != CState::Closing {
            // TCP FIN without close_notify is a truncation (RFC 8446 §6.1).
            if matches!(self.state, CState::Handshake | CState::Response | CState::Request) {
                self.error = Some(format!("connection closed in state {:?} after {} response bytes", self.state, self.got.len()));
                return true;
            }
        }
        loop {
            match self.state {
                CState::Handshake => {
                    if self.tls.is_handshaking() {
                        break;
                    }
                    self.resumed = self.tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                    self.state = CState::Think(now_us);
                }
                CState::Think(_) | CState::CloseThink(_) | CState::WaitServerClose if hold && self.ex > 0 => break,
                CState::Think(since) => {
                    let think = (conn.exchanges[self.ex].think_us as f64 * think_scale) as u64;
                    if now_us.saturating_sub(since) < think {
                        break;
                    }
                    self.sent = 0;
                    self.state = CState::Request;
                }
                CState::Request => {
                    let req = &conn.exchanges[self.ex].request;
                    while self.sent < req.len() && self.out.len() < 64 * 1024 {
                        let k = (req.len() - self.sent).min(16 * 1024);
                        match self.tls.writer().write(&req[self.sent..self.sent + k]) {
                            Ok(n) => self.sent += n,
                            Err(e) => {
                                self.error = Some(format!("write: {e}"));
                                return true;
                            }
                        }
                    }
                    if self.sent < req.len() {
                        break;
                    }
                    self.state = CState::Response;
                }
                CState::Response => {
                    let resp = &conn.exchanges[self.ex].response;
                    if self.got.len() < resp.len() {
                        if eof {
                            self.error = Some(format!("close_notify after {} of {} response bytes", self.got.len(), resp.len()));
                            return true;
                        }
                        break;
                    }
                    if self.got[..] != resp[..] {
                        let at = self.got.iter().zip(resp.iter()).position(|(a, b)| a != b).unwrap_or(resp.len());
                        self.error = Some(format!("response differs from the recording at byte {at} ({} vs {} bytes)", self.got.len(), resp.len()));
                        return true;
                    }
                    self.plain_bytes += (conn.exchanges[self.ex].request.len() + resp.len()) as u64;
                    self.got.clear();
                    self.ex += 1;
                    if self.ex < conn.exchanges.len() {
                        self.state = CState::Think(now_us);
                    } else if conn.backend_closes {
                        self.state = CState::WaitServerClose;
                    } else {
                        self.state = CState::CloseThink(now_us);
                    }
                }
                CState::WaitServerClose => {
                    if !eof && sock.may_recv() {
                        break;
                    }
                    self.tls.send_close_notify();
                    self.state = CState::Closing;
                }
                CState::CloseThink(since) => {
                    if now_us.saturating_sub(since) < (conn.close_think_us as f64 * think_scale) as u64 {
                        break;
                    }
                    self.tls.send_close_notify();
                    self.state = CState::Closing;
                }
                CState::Closing => {
                    if !self.out.is_empty() || self.tls.wants_write() {
                        break;
                    }
                    sock.close();
                    if matches!(sock.state(), tcp::State::Closed | tcp::State::TimeWait) || (eof && !sock.may_recv() && !sock.may_send()) {
                        self.state = CState::Done;
                        return true;
                    }
                    break;
                }
                CState::Done => return true,
            }
        }
        if !self.got.is_empty() && !matches!(self.state, CState::Response) {
            self.error = Some(format!("{} unexpected bytes from the server in state {:?}", self.got.len(), self.state));
            return true;
        }
        while self.tls.wants_write() && self.out.len() < 256 * 1024 {
            if self.tls.write_tls(&mut self.out).is_err() {
                break;
            }
        }
        if sock.can_send() && !self.out.is_empty() {
            let n = sock.send_slice(&self.out).unwrap_or(0);
            self.out.drain(..n);
        }
        false
    }
}

// ---------------------------------------------------------------- backend

static FIN_WITH_DATA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Receive scratch shared by every app's step.
struct Scratch {
    rx: Vec<u8>,
    plain: Vec<u8>,
}

struct BackendApp {
    sock: SocketHandle,
    /// The client port from the PROXY v2 header, once read.
    client_port: Option<u16>,
    conn_ix: usize,
    inbuf: Vec<u8>,
    ex: usize,
    sent: usize,
    closed: bool,
    error: Option<String>,
}

impl BackendApp {
    /// One step; true when finished.
    fn step(&mut self, host: &mut Host, w: &[Conn], port_map: &HashMap<u16, usize>, hold: bool, sc: &mut Scratch) -> bool {
        let sock = host.sockets.get_mut::<tcp::Socket>(self.sock);
        let buf = &mut sc.rx[..];
        while sock.can_recv() {
            let n = sock.recv_slice(buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            self.inbuf.extend_from_slice(&buf[..n]);
        }
        if self.client_port.is_none() {
            // PROXY v2: 12-byte signature, ver/cmd, family, u16 length, then
            // src addr, dst addr, src port, dst port for TCP over IPv4.
            if self.inbuf.len() < 16 {
                return self.fin_check(sock);
            }
            let len = u16::from_be_bytes([self.inbuf[14], self.inbuf[15]]) as usize;
            if self.inbuf.len() < 16 + len {
                return self.fin_check(sock);
            }
            if len < 12 || self.inbuf[13] != 0x11 {
                self.error = Some("backend: no PROXY v2 TCP4 header".into());
                return true;
            }
            let port = u16::from_be_bytes([self.inbuf[24], self.inbuf[25]]);
            let Some(&ix) = port_map.get(&port) else {
                self.error = Some(format!("backend: PROXY header names client port {port}, which no replayed connection uses"));
                return true;
            };
            self.client_port = Some(port);
            self.conn_ix = ix;
            self.inbuf.drain(..16 + len);
        }
        let conn = &w[self.conn_ix];
        while self.ex < conn.exchanges.len() {
            let e = &conn.exchanges[self.ex];
            if self.sent == 0 {
                if self.inbuf.len() < e.request.len() {
                    break;
                }
                if self.inbuf[..e.request.len()] != e.request[..] {
                    self.error = Some(format!("backend: request {} differs from the recording", self.ex));
                    return true;
                }
            }
            while self.sent < e.response.len() && sock.can_send() {
                let n = sock.send_slice(&e.response[self.sent..]).unwrap_or(0);
                if n == 0 {
                    break;
                }
                self.sent += n;
            }
            if self.sent < e.response.len() {
                return false;
            }
            if self.sent == e.response.len() {
                self.inbuf.drain(..e.request.len());
                self.sent = 0;
                self.ex += 1;
            }
        }
        if self.ex == conn.exchanges.len() {
            if !self.inbuf.is_empty() {
                self.error = Some(format!("backend: {} bytes more than the recording", self.inbuf.len()));
                return true;
            }
            // BATON_REPLAY_FIN_WITH_DATA=1: FIN may ride on the last data
            // segment (see the report: baton then loses the data).
            let drained = sock.send_queue() == 0 || *FIN_WITH_DATA.get_or_init(|| std::env::var_os("BATON_REPLAY_FIN_WITH_DATA").is_some());
            if (conn.backend_closes || !sock.may_recv()) && !self.closed && !hold && drained {
                sock.close();
                self.closed = true;
            }
        }
        self.fin_check(host.tcp(self.sock))
    }
    /// True once the socket is gone; an error if that happened before
    /// every exchange was served.
    fn fin_check(&mut self, sock: &mut tcp::Socket) -> bool {
        if matches!(sock.state(), tcp::State::Closed | tcp::State::TimeWait) {
            if self.error.is_none() && !self.closed {
                self.error = Some(format!("backend: connection ended after {} exchanges", self.ex));
            }
            return true;
        }
        false
    }
}

// ---------------------------------------------------------------- accounting

/// utime+stime of one thread of this process, seconds.
fn thread_cpu(tid: i32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    stat_cpu(&s)
}
fn stat_cpu(s: &str) -> f64 {
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}
/// Run-queue wait (seconds) of one task: /proc/.../schedstat, second field.
fn sched_wait(task_dir: &str) -> f64 {
    std::fs::read_to_string(format!("{task_dir}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1e9
}
fn own_tid() -> i32 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}
/// The nominal clock from the CPU's model name ("@ 2.20GHz"), else cpu MHz.
fn nominal_hz() -> (f64, &'static str) {
    let s = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if let Some(g) = s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split('@').nth(1)) {
        if let Ok(v) = g.trim().trim_end_matches("GHz").trim().parse::<f64>() {
            return (v * 1e9, "nominal, model name");
        }
    }
    if let Some(m) = s.lines().find(|l| l.starts_with("cpu MHz")).and_then(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok()) {
        return (m * 1e6, "cpu MHz");
    }
    (1e9, "unknown, 1 GHz assumed")
}

// ---------------------------------------------------------------- a phase

#[derive(Clone, Copy, PartialEq)]
enum Force {
    Full,
    Resumed,
    AsRecorded,
}

/// What baton counted in one phase (worker stats in-process, admin
/// endpoint deltas over net_memif).
#[derive(Default, Debug, Clone)]
struct Counts {
    rx_frames: u64,
    tx_frames: u64,
    handshakes: u64,
    resumed: u64,
    c2b: u64,
    b2c: u64,
    drops: u64,
    /// The worker loop's busy time, estimated from its iteration histogram
    /// (each bucket [2^(b-1), 2^b) µs counted at 3/4 of its top), seconds.
    busy_est: f64,
}

/// Busy seconds from per-bucket iteration counts (bucket b: < 2^b µs).
fn busy_from_buckets(n: &[u64]) -> f64 {
    n.iter().enumerate().map(|(b, &k)| k as f64 * if b == 0 { 0.5 } else { 0.75 * (1u64 << b) as f64 }).sum::<f64>() / 1e6
}

/// The baton a phase runs against, and the wire to it.
trait Target {
    /// One line for the header.
    fn describe(&self) -> String;
    /// Called before a phase's first frame.
    fn begin(&mut self);
    /// Hands every frame from baton to `f`; how many.
    fn recv(&mut self, f: &mut dyn FnMut(Vec<u8>)) -> usize;
    /// Queues one frame for baton.
    fn send(&mut self, frame: Vec<u8>);
    /// Pushes queued frames out.
    fn flush(&mut self) {}
    /// baton's CPU seconds so far (what its figures divide by).
    fn baton_cpu(&self) -> f64;
    /// baton's CPU seconds per thread name so far.
    fn baton_threads(&self) -> Vec<(String, f64)>;
    /// Seconds baton's worker thread(s) sat runnable on a run queue (the
    /// core was busy with someone else) so far.
    fn worker_wait(&self) -> f64;
    /// The client engine's CPU seconds so far.
    fn engine_cpu(&self) -> f64;
    /// Resident memory (KiB) to charge idle connections to.
    fn rss_kb(&self) -> u64;
    /// Ends the phase: baton's counts for it.
    fn end(&mut self) -> Counts;
    /// baton's process id when it is a process of its own.
    fn pid(&self) -> Option<i32> {
        None
    }
    /// Stops baton after the last phase: its stop log lines, or why it did
    /// not stop cleanly.
    fn stop(&mut self) -> Result<String, String> {
        Ok(String::new())
    }
}

/// In-process: a fresh `Worker` per phase on its own thread behind a frame
/// pipe; the phases share one session/ticket `Fabric`.
struct InProc {
    tls: Arc<baton::tls::ServerConfig>,
    worker_core: Option<usize>,
    fabric: Arc<baton::worker::handoff::Fabric>,
    run: Option<InProcRun>,
}
struct InProcRun {
    to_worker: Sender<Vec<u8>>,
    from_worker: Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
    tid: i32,
    handle: std::thread::JoinHandle<(LoopTotals, baton::worker::stats::WorkerStats, u64)>,
}

impl Target for InProc {
    fn describe(&self) -> String {
        format!("in-process (Worker on core {:?} over a frame pipe)", self.worker_core)
    }
    fn begin(&mut self) {
        let (to_worker, worker_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
        let (worker_tx, from_worker) = crossbeam_channel::unbounded::<Vec<u8>>();
        let stop = Arc::new(AtomicBool::new(false));
        let (tid_tx, tid_rx) = crossbeam_channel::bounded::<i32>(1);
        let tls = self.tls.clone();
        let fab = self.fabric.clone();
        let core = self.worker_core;
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name("baton-worker-0".into())
            .spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(core_affinity::CoreId { id: c });
                }
                let _ = tid_tx.send(own_tid());
                let mut wk = Worker::new(params(), tls, Arc::new(ArpCache::new(1024)), Box::new(baton::entropy::OsEntropy::new()));
                wk.attach_fabric(fab);
                let mut io = ChanIo { rx: worker_rx, tx: worker_tx };
                let clock = MonotonicClock::new();
                let lc = LoopConfig { idle_polls_before_sleep: 256, idle_sleep_us: 20, idle_spin_us: 200, drain_timeout_ms: 2000 };
                let totals = poll_loop(&mut wk, &mut io, &clock, &stop2, lc);
                let drops: u64 = wk.stack().drops.iter().map(|(_, v)| v).sum();
                (totals, wk.stats, drops)
            })
            .expect("worker thread");
        let tid = tid_rx.recv().unwrap_or(0);
        self.run = Some(InProcRun { to_worker, from_worker, stop, tid, handle });
    }
    fn recv(&mut self, f: &mut dyn FnMut(Vec<u8>)) -> usize {
        let Some(r) = &self.run else { return 0 };
        let mut n = 0;
        while let Ok(fr) = r.from_worker.try_recv() {
            f(fr);
            n += 1;
        }
        n
    }
    fn send(&mut self, frame: Vec<u8>) {
        if let Some(r) = &self.run {
            let _ = r.to_worker.send(frame);
        }
    }
    fn baton_cpu(&self) -> f64 {
        self.run.as_ref().map(|r| thread_cpu(r.tid)).unwrap_or(0.0)
    }
    fn baton_threads(&self) -> Vec<(String, f64)> {
        vec![("baton-worker-0".into(), self.baton_cpu())]
    }
    fn worker_wait(&self) -> f64 {
        self.run.as_ref().map(|r| sched_wait(&format!("/proc/self/task/{}", r.tid))).unwrap_or(0.0)
    }
    fn engine_cpu(&self) -> f64 {
        thread_cpu(own_tid())
    }
    fn rss_kb(&self) -> u64 {
        rss_kb()
    }
    fn end(&mut self) -> Counts {
        let Some(r) = self.run.take() else { return Counts::default() };
        r.stop.store(true, Ordering::Relaxed);
        // Let the stop drain run: keep taking frames until the worker is gone.
        let dl = StdInstant::now() + StdDuration::from_secs(3);
        while !r.handle.is_finished() && StdInstant::now() < dl {
            while r.from_worker.try_recv().is_ok() {}
            std::thread::sleep(StdDuration::from_millis(1));
        }
        let (t, st, drops) = r.handle.join().unwrap_or_default();
        Counts {
            rx_frames: t.rx_frames,
            tx_frames: t.tx_frames,
            handshakes: st.handshakes_completed,
            resumed: st.handshakes_resumed,
            c2b: st.bytes_client_to_backend,
            b2c: st.bytes_backend_to_client,
            drops,
            busy_est: busy_from_buckets(&t.iterations),
        }
    }
}

struct PhaseResult {
    name: &'static str,
    tally: Tally,
    wall: f64,
    baton_cpu: f64,
    engine_cpu: f64,
    /// baton's CPU seconds in the phase per thread name (largest first).
    threads: Vec<(String, f64)>,
    counts: Counts,
    idle_rss_per_conn: Option<f64>,
    /// Run-queue wait of baton's worker and of the engine thread, seconds.
    worker_wait: f64,
    engine_wait: f64,
    /// Wall time in engine rounds that moved no frame (waiting), seconds.
    engine_idle: f64,
}

struct Setup {
    full_cfg: Arc<rustls::ClientConfig>,
    res_cfg: Arc<rustls::ClientConfig>,
    think_scale: f64,
    /// The next client port; kept across phases so a baton that lives
    /// through them (net_memif) never sees a 4-tuple twice.
    next_port: std::cell::Cell<u16>,
}

fn params() -> WorkerParams {
    WorkerParams {
        id: 0,
        workers: 1,
        mac: MacAddr(BATON_MAC),
        vip: Ipv4Addr::from(BATON_IP),
        prefix_len: 24,
        gateway: None,
        mtu: MTU as u16,
        listen_port: 443,
        backends: vec![Endpoint::new(IpAddress::V4(Ipv4Addr::from(BACKEND_IP)), BACKEND_PORT)],
        connect_timeout: baton::time::Duration::from_secs(3),
        max_connections: 65536,
        recv_buffer: 256 * 1024,
        send_buffer: 256 * 1024,
        isn_secret: [7u8; 16],
        timeouts: baton::worker::conn::Timeouts::default(),
        proxy_v2: true,
    }
}

fn fabric() -> Arc<baton::worker::handoff::Fabric> {
    use baton::session::seal::KeyRing;
    use baton::worker::handoff::heap_table;
    let table = heap_table(4096, 64 * 1024, [9; 32]).expect("session table");
    let tickets = heap_table(16384, baton::worker::handoff::TICKET_RECORD_MAX, [8; 32]).expect("ticket table");
    let keys = KeyRing::new(1, &[0x42; 32], baton::time::Instant::ZERO);
    Arc::new(baton::worker::handoff::Fabric::new(1, 4096, table, tickets, keys, 1, 1))
}

fn thread_delta(a: &[(String, f64)], b: &[(String, f64)]) -> Vec<(String, f64)> {
    let mut m: HashMap<String, f64> = HashMap::new();
    for (k, v) in b {
        *m.entry(k.clone()).or_default() += v;
    }
    for (k, v) in a {
        *m.entry(k.clone()).or_default() -= v;
    }
    let mut out: Vec<(String, f64)> = m.into_iter().filter(|(_, v)| *v > 0.0).collect();
    out.sort_by(|x, y| y.1.partial_cmp(&x.1).unwrap_or(std::cmp::Ordering::Equal));
    out
}

/// Runs `w` (repeated) for `seconds` with `conc` connections at once, or
/// with `idle` > 0: opens that many connections, holds them, measures RSS.
#[allow(clippy::too_many_arguments)]
fn phase(name: &'static str, s: &Setup, w: &[Conn], force: Force, seconds: f64, conc: usize, idle: usize, t: &mut dyn Target) -> PhaseResult {
    t.begin();
    let mut client = Host::new(CLIENT_MAC, CLIENT_IP, 11);
    let mut backend = Host::new(BACKEND_MAC, BACKEND_IP, 12);
    // bulk: 256 KiB socket buffers (window scaling), as baton's default
    let buf = if idle > 0 {
        8 * 1024
    } else if name == "bulk" {
        256 * 1024
    } else {
        64 * 1024
    };
    let mut listeners: Vec<SocketHandle> = Vec::new();
    let mut apps: Vec<ClientApp> = Vec::new();
    let mut bapps: Vec<BackendApp> = Vec::new();
    let mut port_map: HashMap<u16, usize> = HashMap::new();
    let mut tally = Tally::default();
    let t0 = StdInstant::now();
    let deadline = t0 + StdDuration::from_secs_f64(seconds);
    let mut next_conn = 0usize;
    let cpu0 = t.baton_cpu();
    let th0 = t.baton_threads();
    let ecpu0 = t.engine_cpu();
    let rss0 = t.rss_kb();
    let ww0 = t.worker_wait();
    let me = format!("/proc/self/task/{}", own_tid());
    let ew0 = sched_wait(&me);
    let mut engine_idle = 0.0f64;
    let mut sc = Scratch { rx: vec![0; 16 * 1024], plain: vec![0; 16 * 1024] };
    let debug = std::env::var_os("REPLAY_DEBUG").is_some();
    let mut idle_rss = None;
    let mut held_since: Option<StdInstant> = None;
    let now_us = |t0: StdInstant| t0.elapsed().as_micros() as u64;
    loop {
        let round = StdInstant::now();
        let now = now_us(t0);
        let opening = if idle > 0 { next_conn < idle } else { StdInstant::now() < deadline };
        // new connections
        let cap = if idle > 0 { idle } else { conc.max(1) };
        while opening && apps.len() < cap && (idle == 0 || next_conn < idle) {
            let ix = next_conn % w.len();
            let want_resumed = match force {
                Force::Full => false,
                Force::Resumed => true,
                Force::AsRecorded => w[ix].resumed,
            };
            let cfg = if want_resumed { s.res_cfg.clone() } else { s.full_cfg.clone() };
            let Ok(tls) = rustls::ClientConnection::new(cfg, "baton.test".try_into().expect("name")) else { break };
            let sock = client.tcp_socket(buf);
            let port = s.next_port.get();
            s.next_port.set(if port >= 60000 { 10000 } else { port + 1 });
            let cx = client.iface.context();
            if client.sockets.get_mut::<tcp::Socket>(sock).connect(cx, (SIp::Ipv4(Ipv4Address::new(BATON_IP[0], BATON_IP[1], BATON_IP[2], BATON_IP[3])), 443), port).is_err() {
                tally.fail("connect failed".into());
                client.sockets.remove(sock);
                break;
            }
            port_map.insert(port, ix);
            apps.push(ClientApp {
                conn_ix: ix,
                want_resumed,
                tls,
                sock,
                state: CState::Handshake,
                ex: 0,
                sent: 0,
                got: Vec::new(),
                out: Vec::new(),
                started_us: now,
                error: None,
                resumed: false,
                plain_bytes: 0,
                established: false,
            });
            next_conn += 1;
        }
        // enough listening sockets for every connection baton may open
        let want_listen = if idle > 0 { idle } else { conc } + 8;
        listeners.retain(|&h| {
            let st = backend.tcp(h).state();
            if st == tcp::State::Listen {
                true
            } else {
                bapps.push(BackendApp { sock: h, client_port: None, conn_ix: 0, inbuf: Vec::new(), ex: 0, sent: 0, closed: false, error: None });
                false
            }
        });
        while listeners.len() < want_listen {
            let h = backend.tcp_socket(buf);
            let _ = backend.tcp(h).listen(BACKEND_PORT);
            listeners.push(h);
        }
        // frames from baton
        let mut moved = t.recv(&mut |f: Vec<u8>| {
            let dst: [u8; 6] = f.get(0..6).and_then(|d| d.try_into().ok()).unwrap_or([0; 6]);
            if dst == CLIENT_MAC {
                client.dev.rx.push_back(f);
            } else if dst == BACKEND_MAC {
                backend.dev.rx.push_back(f);
            } else if dst == [0xff; 6] {
                client.dev.rx.push_back(f.clone());
                backend.dev.rx.push_back(f);
            }
        });
        client.poll(now);
        backend.poll(now);
        // applications
        let mut i = 0;
        while i < apps.len() {
            if apps[i].step(&mut client, w, now, s.think_scale, idle > 0, &mut sc) && held_since.is_none() {
                let a = apps.swap_remove(i);
                if let Some(e) = a.error {
                    tally.fail(format!("connection {} ({}): {e}", a.conn_ix, if a.want_resumed { "resumed" } else { "full" }));
                } else {
                    tally.ok += 1;
                    tally.plain_bytes += a.plain_bytes;
                    if a.resumed {
                        tally.resumed += 1;
                    } else {
                        tally.full += 1;
                    }
                    if a.want_resumed && !a.resumed {
                        tally.resume_misses += 1;
                    }
                }
                client.sockets.remove(a.sock);
                continue;
            }
            i += 1;
        }
        let mut i = 0;
        while i < bapps.len() {
            if bapps[i].step(&mut backend, w, &port_map, idle > 0, &mut sc) {
                let b = bapps.swap_remove(i);
                if debug {
                    eprintln!("backend done: port {:?} conn {} ex {} closed {} err {:?} inbuf {}", b.client_port, b.conn_ix, b.ex, b.closed, b.error, b.inbuf.len());
                }
                if let Some(e) = b.error {
                    tally.fail(e);
                }
                if let Some(p) = b.client_port {
                    port_map.remove(&p);
                }
                backend.sockets.remove(b.sock);
                continue;
            }
            i += 1;
        }
        client.poll(now);
        backend.poll(now);
        for f in client.dev.tx.drain(..).chain(backend.dev.tx.drain(..)) {
            moved += 1;
            t.send(f);
        }
        t.flush();
        // idle: all open and past their first exchange → hold and measure
        if idle > 0 && held_since.is_none() && next_conn >= idle {
            let ready = apps.iter().filter(|a| a.state != CState::Handshake && a.ex > 0 || a.error.is_some()).count();
            if ready == apps.len() {
                held_since = Some(StdInstant::now());
            }
        }
        if let Some(h) = held_since {
            if h.elapsed() > StdDuration::from_millis(500) && idle_rss.is_none() {
                let open = apps.iter().filter(|a| a.error.is_none()).count().max(1);
                idle_rss = Some((t.rss_kb().saturating_sub(rss0)) as f64 * 1024.0 / open as f64);
                // count them, reset them (a baton that outlives the phase
                // then holds nothing), and stop
                for a in apps.drain(..) {
                    if let Some(e) = a.error {
                        tally.fail(format!("idle connection {}: {e}", a.conn_ix));
                    } else {
                        tally.ok += 1;
                    }
                    client.tcp(a.sock).abort();
                }
                for b in bapps.drain(..) {
                    backend.tcp(b.sock).abort();
                }
                let now = now_us(t0);
                client.poll(now);
                backend.poll(now);
                for f in client.dev.tx.drain(..).chain(backend.dev.tx.drain(..)) {
                    t.send(f);
                }
                t.flush();
                break;
            }
        }
        if idle == 0 && StdInstant::now() >= deadline && apps.is_empty() && bapps.is_empty() {
            break;
        }
        if t0.elapsed() > StdDuration::from_secs_f64(seconds) + CONN_TIMEOUT * 2 {
            tally.fail(format!("phase did not finish: {} client and {} backend connections left", apps.len(), bapps.len()));
            break;
        }
        if moved == 0 {
            std::thread::yield_now();
            engine_idle += round.elapsed().as_secs_f64();
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let worker_wait = t.worker_wait() - ww0;
    let engine_wait = sched_wait(&me) - ew0;
    let baton_cpu = t.baton_cpu() - cpu0;
    let threads = thread_delta(&th0, &t.baton_threads());
    let engine_cpu = t.engine_cpu() - ecpu0;
    let counts = t.end();
    PhaseResult { name, tally, wall, baton_cpu, engine_cpu, threads, counts, idle_rss_per_conn: idle_rss, worker_wait, engine_wait, engine_idle }
}

// ---------------------------------------------------------------- main

fn arg<T: std::str::FromStr>(args: &[String], k: &str, d: T) -> T {
    args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!("usage: bench-replay [--workload F] [--seconds N] [--concurrency C] [--think-scale X] [--idle K]\n\
                   \x20                   [--bulk-bytes N] [--bulk-concurrency C] [--worker-core N] [--engine-core N]\n\
                   \x20                   [--memif --baton PATH [--baton-cores LIST] [--slow-path-threads N] [--memif-args K=V,..]]");
        std::process::exit(2);
    }
    let wl = arg(&args, "--workload", "bench/replay/data/workload.json".to_string());
    let seconds: f64 = arg(&args, "--seconds", 3.0f64).clamp(0.2, 600.0);
    let think_scale: f64 = arg(&args, "--think-scale", 0.0f64);
    let idle: usize = arg(&args, "--idle", 500usize).min(20000);
    let worker_core: i64 = arg(&args, "--worker-core", 1i64);
    let engine_core: i64 = arg(&args, "--engine-core", 0i64);
    let (w, peak) = match load_workload(&wl) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("bench-replay: {e}");
            std::process::exit(2)
        }
    };
    let conc: usize = arg(&args, "--concurrency", (peak * 8).max(16)).clamp(1, 4096);
    // bulk phase: C connections at once, each one response of N bytes
    let bulk_bytes: usize = arg(&args, "--bulk-bytes", 8usize << 20).clamp(1024, 256 << 20);
    let bulk_conc: usize = arg(&args, "--bulk-concurrency", 4usize).clamp(1, 64);
    let bw = bulk_workload(bulk_bytes);
    let memif_mode = args.iter().any(|a| a == "--memif");
    if engine_core >= 0 {
        core_affinity::set_for_current(core_affinity::CoreId { id: engine_core as usize });
    }
    let dir = std::env::temp_dir().join(format!("baton-replay-{}", std::process::id()));
    let g = baton::demo::certs::generate(&dir, &["baton.test"], &[]).expect("certificates");
    let (full_cfg, res_cfg) = client_configs(&std::fs::read(&g.ca).expect("ca")).expect("client config");
    let s = Setup { full_cfg, res_cfg, think_scale, next_port: std::cell::Cell::new(10000) };
    // Ceilings, measured now, in this run, on the engine's core (so they
    // do not compete with the worker), before baton starts.
    let ceil = ceilings::measure(300, 0.5);
    let mut target: Box<dyn Target> = if memif_mode {
        let o = memif::MemifOpts {
            baton: arg(&args, "--baton", "target/release/baton".to_string()),
            worker_core,
            engine_core,
            extra_vdev: arg(&args, "--memif-args", String::new()),
            slow_path_threads: arg(&args, "--slow-path-threads", 1usize),
            baton_cores: arg(&args, "--baton-cores", if worker_core >= 0 { worker_core.to_string() } else { String::new() }),
        };
        match memif::Memif::start(&o, &dir, &g) {
            Ok(m) => Box::new(m),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                println!("bench-replay --memif: FAILED to start: {e}");
                std::process::exit(1);
            }
        }
    } else {
        let chain = baton::tls::load_cert_chain_pem(&std::fs::read(&g.cert).expect("cert")).expect("chain");
        let key = baton::tls::SigningKey::from_pem(&std::fs::read(&g.key).expect("key")).expect("key");
        let tls = Arc::new(baton::tls::ServerConfig::new(chain, key, vec![b"http/1.1".to_vec()]).expect("server config"));
        Box::new(InProc { tls, worker_core: (worker_core >= 0).then_some(worker_core as usize), fabric: fabric(), run: None })
    };

    let nfull = w.iter().filter(|c| !c.resumed).count();
    let bytes: usize = w.iter().flat_map(|c| c.exchanges.iter()).map(|e| e.request.len() + e.response.len()).sum();
    println!(
        "bench-replay: {}, client engine smoltcp + rustls on core {engine_core}; workload {wl}: {} connections ({nfull} full, {} resumed), {} exchanges, {bytes} bytes, recorded peak concurrency {peak}; replayed with concurrency {conc}, think times x{think_scale}, {seconds} s per phase; bulk: {bulk_conc} connections at once, resumed, {bulk_bytes}-byte responses",
        target.describe(),
        w.len(),
        w.len() - nfull,
        w.iter().map(|c| c.exchanges.len()).sum::<usize>()
    );
    // REPLAY_PERF_PHASE=<phase> REPLAY_PERF_OUT=<file> (net_memif only):
    // `perf record --call-graph dwarf` on baton's process for that phase.
    let perf_phase = std::env::var("REPLAY_PERF_PHASE").ok();
    let perf_out = std::env::var("REPLAY_PERF_OUT").unwrap_or_else(|_| "perf.data".into());
    // frame pointers are not kept in baton's release build: dwarf unwinding
    let perf_cg = std::env::var("REPLAY_PERF_CALLGRAPH").unwrap_or_else(|_| "dwarf".into());
    #[allow(clippy::too_many_arguments)]
    let run = |name: &'static str, w: &[Conn], conc: usize, force: Force, secs: f64, idle: usize, t: &mut dyn Target, pid: Option<i32>| {
        let perf = match (&perf_phase, pid) {
            (Some(p), Some(pid)) if p == name => Command::new("perf")
                .args(["record", "--call-graph", &perf_cg, "-F", "999", "-o", &perf_out, "-p", &pid.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok(),
            _ => None,
        };
        if perf.is_some() {
            std::thread::sleep(StdDuration::from_millis(300));
        }
        let r = phase(name, &s, w, force, secs, conc, idle, t);
        if let Some(mut c) = perf {
            let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
            let _ = c.wait();
        }
        r
    };
    let pid = target.pid();
    let mut results = Vec::new();
    // Idle first: later phases leave freed heap the allocator would reuse,
    // hiding the growth.
    let idle_r = run("idle", &w, conc, Force::Full, seconds, idle, target.as_mut(), pid);
    // A warm-up that also fills the ticket pool.
    let _ = run("warmup", &w, conc, Force::Full, 0.3, 0, target.as_mut(), pid);
    results.push(run("full", &w, conc, Force::Full, seconds, 0, target.as_mut(), pid));
    results.push(run("resumed", &w, conc, Force::Resumed, seconds, 0, target.as_mut(), pid));
    results.push(run("recorded mix", &w, conc, Force::AsRecorded, seconds, 0, target.as_mut(), pid));
    // Bulk download, resumed (the earlier phases filled the ticket pool).
    results.push(run("bulk", &bw, bulk_conc, Force::Resumed, seconds, 0, target.as_mut(), pid));
    results.push(idle_r);
    let stop_result = target.stop();
    drop(target);
    let _ = std::fs::remove_dir_all(&dir);
    let (hz, hz_src) = nominal_hz();
    report(&results, &ceil, hz, hz_src, memif_mode);
    match &stop_result {
        Ok(l) if !l.is_empty() => println!("{}", l.lines().map(|x| format!("  stop log: {}", x.rsplit_once("] ").map(|p| p.1).unwrap_or(x))).collect::<Vec<_>>().join("\n")),
        Ok(_) => {}
        Err(e) => {
            println!("bench-replay: FAILED ({e})");
            std::process::exit(1);
        }
    }
    let failed: u64 = results.iter().map(|r| r.tally.failed).sum();
    let ok: u64 = results.iter().map(|r| r.tally.ok).sum();
    if failed > 0 || ok == 0 {
        println!("bench-replay: FAILED ({failed} connections did not complete or differed from the recording)");
        for r in &results {
            for e in &r.tally.errors {
                println!("  {}: {e}", r.name);
            }
        }
        std::process::exit(1);
    }
    println!("bench-replay: ok ({ok} replayed connections completed, every byte as recorded)");
}

/// Which side limited a phase: the worker loop busy >= 80 % of wall, else
/// the engine idle < 30 % of wall, else neither.
fn bound_by(r: &PhaseResult) -> String {
    let wbusy = (r.counts.busy_est / r.wall).min(1.0);
    let eidle = (r.engine_idle / r.wall).min(1.0);
    let mut bound = if r.name == "idle" {
        "-"
    } else if wbusy >= 0.8 {
        "baton worker"
    } else if eidle < 0.3 {
        "engine"
    } else {
        "neither (latency)"
    }
    .to_string();
    if r.name != "idle" && r.worker_wait / r.wall > 0.15 && r.engine_wait / r.wall > 0.15 {
        bound.push_str("; cores contended");
    }
    bound
}

fn report(rs: &[PhaseResult], c: &ceilings::Ceilings, hz: f64, hz_src: &str, separate: bool) {
    println!();
    println!(
        "{:<13} {:>6} {:>4} {:>6} {:>7} {:>6} {:>7} {:>6} {:>6} {:>5} {:>5} {:>6} {:>6} {:>5} {:>5} {:>5}  {}",
        "phase", "conns", "fail", "full", "resumed", "wall s", "baton s", "baton%", "wrkr%", "busy%", "wait%", "eng s", "eng%", "idle%", "wait%", "drops", "bound by"
    );
    for r in rs {
        let worker = r.threads.iter().filter(|(n, _)| n.starts_with("baton-worker")).map(|(_, v)| v).sum::<f64>();
        let pc = |x: f64| 100.0 * x / r.wall;
        // The worker's loop-busy share of its CPU, and the engine thread's
        // share of rounds that moved nothing: the side that is busy nearly
        // all the time it runs is the bottleneck.
        let eidle = (r.engine_idle / r.wall).min(1.0);
        let bound = bound_by(r);
        println!(
            "{:<13} {:>6} {:>4} {:>6} {:>7} {:>6.2} {:>7.3} {:>6.0} {:>6.0} {:>5.0} {:>5.0} {:>6.3} {:>6.0} {:>5.0} {:>5.0} {:>5}  {}",
            r.name,
            r.tally.ok,
            r.tally.failed,
            r.tally.full,
            r.tally.resumed,
            r.wall,
            r.baton_cpu,
            pc(r.baton_cpu),
            pc(worker),
            pc(r.counts.busy_est),
            pc(r.worker_wait),
            r.engine_cpu,
            pc(r.engine_cpu),
            100.0 * eidle,
            pc(r.engine_wait),
            r.counts.drops,
            bound
        );
    }
    println!(
        "  baton%: all baton threads' CPU / wall; wrkr%: worker thread; busy%: worker loop busy (from its iteration histogram, +-1/3);\n  \
         wait%: run-queue wait (the core was given to another process); eng%: the replayer process; idle%: wall time in engine rounds that moved no frame\n  \
         bound by: the worker loop busy >= 80% of wall, else the engine idle < 30% of wall, else neither"
    );
    if separate {
        println!("baton CPU by thread (s): ");
        for r in rs {
            let t: Vec<String> = r.threads.iter().take(6).map(|(n, v)| format!("{n} {v:.3}")).collect();
            println!("  {:<14} {}", r.name, t.join(", "));
        }
    }
    println!();
    if separate {
        println!("per baton CPU-second (every thread of the baton process: worker, slow path, admin, EAL; 1 worker):");
    } else {
        println!("per worker core (baton's worker thread CPU only; 1 worker):");
    }
    println!("{:<44} {:>14} {:>14} {:>8}", "figure", "baton", "ceiling", "ratio");
    let line = |k: &str, v: f64, ceil: Option<f64>, unit: &str| match ceil {
        Some(cl) => println!("{:<44} {:>14} {:>14} {:>8.3}", k, format!("{v:.1}{unit}"), format!("{cl:.1}{unit}"), v / cl),
        None => println!("{:<44} {:>14} {:>14} {:>8}", k, format!("{v:.1}{unit}"), "-", "-"),
    };
    let per = |r: &PhaseResult, x: f64| if r.baton_cpu > 0.0 { x / r.baton_cpu } else { 0.0 };
    // baton's CPU less the worker's empty-poll spin: the worker loop's busy
    // time (histogram estimate) plus every other baton thread (slow path).
    let busy_cpu = |r: &PhaseResult| {
        let worker = r.threads.iter().filter(|(n, _)| n.starts_with("baton-worker")).map(|(_, v)| v).sum::<f64>();
        r.counts.busy_est + (r.baton_cpu - worker).max(0.0)
    };
    let per_busy = |r: &PhaseResult, x: f64| if busy_cpu(r) > 0.0 { x / busy_cpu(r) } else { 0.0 };
    if let Some(r) = rs.iter().find(|r| r.name == "full") {
        line("full handshakes per CPU-s (+ replayed I/O)", per(r, r.tally.full as f64), Some(1e6 / c.full_us), "");
        line("  per busy CPU-s (spin left out, estimate)", per_busy(r, r.tally.full as f64), Some(1e6 / c.full_us), "");
        line("full handshakes/s wall clock", r.tally.full as f64 / r.wall, None, "");
    }
    if let Some(r) = rs.iter().find(|r| r.name == "resumed") {
        line("resumed handshakes per CPU-s (+ replayed I/O)", per(r, r.tally.resumed as f64), Some(1e6 / c.resumed_us), "");
        line("  per busy CPU-s (spin left out, estimate)", per_busy(r, r.tally.resumed as f64), Some(1e6 / c.resumed_us), "");
        line("resumed handshakes/s wall clock", r.tally.resumed as f64 / r.wall, None, "");
        if r.tally.resume_misses > 0 {
            println!("  ({} connections asked to resume got a full handshake)", r.tally.resume_misses);
        }
    }
    if let Some(r) = rs.iter().find(|r| r.name == "recorded mix") {
        let pk = (r.counts.rx_frames + r.counts.tx_frames) as f64;
        line("packets/s per CPU-s (rx + tx, recorded mix)", per(r, pk), None, "");
        line("packets/s wall clock (recorded mix)", pk / r.wall, None, "");
        line("new connections per CPU-s (recorded mix)", per(r, r.tally.ok as f64), None, "");
        line("  per busy CPU-s (spin left out, estimate)", per_busy(r, r.tally.ok as f64), None, "");
        line("new connections/s wall clock (recorded mix)", r.tally.ok as f64 / r.wall, None, "");
        let gbps = per(r, r.tally.plain_bytes as f64 * 8.0 / 1e9);
        line("record crypto Gbit/s per CPU-s (mix)", gbps, Some(c.aead_gbps), "");
        let gib = r.tally.plain_bytes as f64 / (1u64 << 30) as f64;
        line("CPU-s per GiB proxied (mix, lower=better)", if gib > 0.0 { r.baton_cpu / gib } else { 0.0 }, None, "");
        line("cycles per packet (CPU-s x clock / packets)", if pk > 0.0 { r.baton_cpu * hz / pk } else { 0.0 }, None, "");
        println!("  clock {:.2} GHz ({hz_src}); record crypto counts the plaintext bytes both ways on the client leg", hz / 1e9);
        println!(
            "  busy CPU-s = worker loop busy time (iteration histogram, +-1/3) + baton's other threads: what baton would spend if it never spun idle"
        );
        println!(
            "  baton counted: {} handshakes ({} resumed), {} B client->backend, {} B backend->client, {} rx + {} tx frames",
            r.counts.handshakes, r.counts.resumed, r.counts.c2b, r.counts.b2c, r.counts.rx_frames, r.counts.tx_frames
        );
    }
    if let Some(r) = rs.iter().find(|r| r.name == "bulk") {
        let gbit = r.tally.plain_bytes as f64 * 8.0 / 1e9;
        let gib = r.tally.plain_bytes as f64 / (1u64 << 30) as f64;
        // The crypto floor: baton seals every response byte and opens every
        // request byte once (the backend leg is plaintext); both counted at
        // the measured seal rate.
        let floor = (1u64 << 30) as f64 * 8.0 / 1e9 / c.aead_gbps;
        let per_gib = if gib > 0.0 { r.baton_cpu / gib } else { 0.0 };
        println!(
            "{:<44} {:>14} {:>14} {:>8}",
            "CPU-s per GiB proxied (bulk, lower=better)",
            format!("{per_gib:.3}"),
            format!("{floor:.3}"),
            if per_gib > 0.0 { format!("{:.3}", floor / per_gib) } else { "-".into() }
        );
        let busy_gib = if gib > 0.0 { busy_cpu(r) / gib } else { 0.0 };
        println!(
            "{:<44} {:>14} {:>14} {:>8}",
            "  per busy CPU-s (spin left out, estimate)",
            format!("{busy_gib:.3}"),
            format!("{floor:.3}"),
            if busy_gib > 0.0 { format!("{:.3}", floor / busy_gib) } else { "-".into() }
        );
        line("record crypto Gbit/s per CPU-s (bulk)", per(r, gbit), Some(c.aead_gbps), "");
        line("  per busy CPU-s (spin left out, estimate)", per_busy(r, gbit), Some(c.aead_gbps), "");
        line("bulk Gbit/s wall clock", gbit / r.wall, None, "");
        println!(
            "  bulk: {} downloads of {} B, {:.1} MiB proxied, bound by: {}; ceiling = the crypto floor (AES-128-GCM seal of the same bytes,\n  \
             16 KiB records, ring, this run), ratio = floor / baton (DESIGN.md target: baton <= 2x floor, ratio >= 0.5)",
            r.tally.ok,
            r.tally.plain_bytes / r.tally.ok.max(1),
            r.tally.plain_bytes as f64 / (1u64 << 20) as f64,
            bound_by(r)
        );
        println!(
            "  baton counted: {} handshakes ({} resumed), {} B client->backend, {} B backend->client, {} rx + {} tx frames",
            r.counts.handshakes, r.counts.resumed, r.counts.c2b, r.counts.b2c, r.counts.rx_frames, r.counts.tx_frames
        );
        if r.tally.resume_misses > 0 {
            println!("  ({} bulk connections asked to resume got a full handshake)", r.tally.resume_misses);
        }
    }
    if let Some(r) = rs.iter().find(|r| r.name == "idle") {
        match r.idle_rss_per_conn {
            Some(b) => line(&format!("memory per idle connection, B ({} held)", r.tally.ok), b, None, ""),
            None => println!("memory per idle connection: not measured"),
        }
        if separate {
            println!("  baton process RSS delta / connections held (the client engine is another process)");
        } else {
            println!("  process RSS delta / connections held: an upper bound, it includes the client engine's sockets (2 x 8 KiB each side)");
        }
    }
    println!(
        "ceilings, same run: full handshake crypto-only {:.1} us, resumed crypto-only {:.1} us (bench/handshake.rs), AES-128-GCM seal 16 KiB records {:.2} Gbit/s (ring, as bench/record.rs)",
        c.full_us, c.resumed_us, c.aead_gbps
    );
}
