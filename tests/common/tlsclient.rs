//! Applications on the simulated hosts: a rustls TLS 1.3 client on the
//! client host, a byte source/sink on the backend host.

use std::io::{Read, Write};
use std::sync::Arc;

use smoltcp::iface::SocketHandle;
use smoltcp::wire::{IpAddress as SIp, Ipv4Address};

use super::{Host, BACKEND_PORT, BATON_IP};

/// A rustls client config trusting `ca_pem`, TLS 1.3 only, restricted to
/// the given suite and groups when given.
pub fn client_config(
    ca_pem: &[u8],
    suite: Option<rustls::SupportedCipherSuite>,
    groups: Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(s) = suite {
        provider.cipher_suites = vec![s];
    }
    if let Some(g) = groups {
        provider.kx_groups = g;
    }
    let mut roots = rustls::RootCertStore::empty();
    for der in pem::parse_many(ca_pem).unwrap() {
        roots.add(rustls::pki_types::CertificateDer::from(der.contents().to_vec())).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

pub struct ClientApp {
    pub conn: rustls::ClientConnection,
    pub sock: SocketHandle,
    pub upload: Vec<u8>,
    pub uploaded: usize,
    pub downloaded: Vec<u8>,
    out_pending: Vec<u8>,
    pub sent_close: bool,
    pub got_close: bool,
    pub error: Option<String>,
    connected: bool,
    local_port: u16,
    /// Send close_notify only after the server's (the backend closes first).
    pub close_after_server: bool,
    /// Bytes to send as 0-RTT early data (if rustls may); what rustls could
    /// not send early goes first in the normal upload.
    pub early: Vec<u8>,
    early_done: bool,
}

impl ClientApp {
    pub fn new(host: &mut Host, cfg: Arc<rustls::ClientConfig>, server_name: &str, upload: Vec<u8>, local_port: u16) -> ClientApp {
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(cfg, name).unwrap();
        let sock = host.tcp_socket(128 * 1024);
        ClientApp {
            conn,
            sock,
            upload,
            uploaded: 0,
            downloaded: Vec::new(),
            out_pending: Vec::new(),
            sent_close: false,
            got_close: false,
            error: None,
            connected: false,
            local_port,
            close_after_server: false,
            early: Vec::new(),
            early_done: false,
        }
    }

    /// True when the download ended with close_notify and nothing is left.
    pub fn done(&self) -> bool {
        self.got_close && self.out_pending.is_empty() || self.error.is_some()
    }

    pub fn step(&mut self, host: &mut Host) {
        if !self.connected {
            let remote = (SIp::Ipv4(Ipv4Address::new(BATON_IP[0], BATON_IP[1], BATON_IP[2], BATON_IP[3])), 443);
            let cx = host.iface.context();
            host.sockets.get_mut::<smoltcp::socket::tcp::Socket>(self.sock).connect(cx, remote, self.local_port).unwrap();
            self.connected = true;
        }
        if self.error.is_some() {
            return;
        }
        if !self.early_done {
            self.early_done = true;
            let mut sent = 0;
            if let Some(mut ed) = self.conn.early_data() {
                sent = ed.write(&self.early).unwrap_or(0);
            }
            // Whatever did not go early goes first in the normal stream.
            let rest = self.early[sent..].to_vec();
            self.early.truncate(sent);
            let mut up = rest;
            up.extend_from_slice(&self.upload);
            self.upload = up;
        }
        let sock = host.tcp(self.sock);
        let mut buf = [0u8; 16 * 1024];
        let mut pbuf = [0u8; 16 * 1024];
        // ciphertext in
        while sock.can_recv() {
            let n = sock.recv_slice(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut rd = &buf[..n];
            while !rd.is_empty() {
                if let Err(e) = self.conn.read_tls(&mut rd) {
                    self.error = Some(format!("read_tls: {e}"));
                    return;
                }
                if let Err(e) = self.conn.process_new_packets() {
                    self.error = Some(format!("tls: {e}"));
                    return;
                }
                if !self.drain_plaintext(&mut pbuf) {
                    return;
                }
            }
        }
        if !self.drain_plaintext(&mut pbuf) {
            return;
        }
        self.write_side(host);
    }

    /// Reads every plaintext byte rustls holds; false on error.
    fn drain_plaintext(&mut self, buf: &mut [u8]) -> bool {
        loop {
            match self.conn.reader().read(buf) {
                Ok(0) => {
                    self.got_close = true;
                    return true;
                }
                Ok(n) => self.downloaded.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) => {
                    self.error = Some(format!("read: {e}"));
                    return false;
                }
            }
        }
    }

    fn write_side(&mut self, host: &mut Host) {
        let sock = host.tcp(self.sock);
        // plaintext out, a little at a time
        if !self.conn.is_handshaking() {
            while self.uploaded < self.upload.len() && self.out_pending.len() < 64 * 1024 && !self.conn.wants_write() {
                let k = (self.upload.len() - self.uploaded).min(16 * 1024);
                let n = self.conn.writer().write(&self.upload[self.uploaded..self.uploaded + k]).unwrap();
                self.uploaded += n;
                while self.conn.wants_write() {
                    self.conn.write_tls(&mut self.out_pending).unwrap();
                }
            }
            if self.uploaded == self.upload.len() && !self.sent_close && (!self.close_after_server || self.got_close) {
                self.conn.send_close_notify();
                self.sent_close = true;
            }
        }
        while self.conn.wants_write() && self.out_pending.len() < 256 * 1024 {
            self.conn.write_tls(&mut self.out_pending).unwrap();
        }
        if sock.can_send() && !self.out_pending.is_empty() {
            let n = sock.send_slice(&self.out_pending).unwrap_or(0);
            self.out_pending.drain(..n);
        }
        if self.got_close && self.out_pending.is_empty() {
            sock.close();
        }
    }
}

/// The backend: sends `to_send` bytes of the backend pattern, hashes what
/// it receives, closes after the client's FIN once everything is sent.
pub struct BackendApp {
    /// Close as soon as everything is sent, without waiting for the client.
    pub close_first: bool,
    pub sock: SocketHandle,
    pub received: Vec<u8>,
    pub to_send: usize,
    pub sent: usize,
    pub closed: bool,
    pub accepted: bool,
}

impl BackendApp {
    pub fn new(host: &mut Host, to_send: usize) -> BackendApp {
        let sock = host.tcp_socket(128 * 1024);
        host.tcp(sock).listen(BACKEND_PORT).unwrap();
        BackendApp { close_first: false, sock, received: Vec::new(), to_send, sent: 0, closed: false, accepted: false }
    }

    pub fn step(&mut self, host: &mut Host) {
        let sock = host.tcp(self.sock);
        if sock.is_active() {
            self.accepted = true;
        }
        let mut buf = [0u8; 16 * 1024];
        while sock.can_recv() {
            let n = sock.recv_slice(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            self.received.extend_from_slice(&buf[..n]);
        }
        while sock.can_send() && self.sent < self.to_send {
            let k = (self.to_send - self.sent).min(buf.len());
            for (j, b) in buf[..k].iter_mut().enumerate() {
                *b = baton::demo::backend::pattern_byte((self.sent + j) as u64);
            }
            let n = sock.send_slice(&buf[..k]).unwrap_or(0);
            if n == 0 {
                break;
            }
            self.sent += n;
        }
        if self.accepted && (self.close_first || !sock.may_recv()) && self.sent == self.to_send && !self.closed {
            sock.close();
            self.closed = true;
        }
    }
}

pub fn pattern(n: usize) -> Vec<u8> {
    (0..n as u64).map(baton::demo::backend::pattern_byte).collect()
}

/// A throwaway CA and a server certificate for "baton.test": the CA's PEM
/// (for clients) and baton's TLS config. `tag` names the temporary
/// directory, unique per process and thread.
pub fn test_server_tls(tag: &str) -> (Vec<u8>, Arc<baton::tls::ServerConfig>) {
    let dir = std::env::temp_dir().join(format!("baton-{tag}-{}-{:?}", std::process::id(), std::thread::current().id()));
    let g = baton::demo::certs::generate(&dir, &["baton.test"], &[]).unwrap();
    let chain = baton::tls::load_cert_chain_pem(&std::fs::read(&g.cert).unwrap()).unwrap();
    let key = baton::tls::SigningKey::from_pem(&std::fs::read(&g.key).unwrap()).unwrap();
    let cfg = Arc::new(baton::tls::ServerConfig::new(chain, key, vec![]).unwrap());
    let ca = std::fs::read(&g.ca).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (ca, cfg)
}
