//! TLS tests against a real rustls 0.23 client (ring provider), driven
//! in-process byte for byte: no sockets, seeded entropy on our side.

mod early;
mod handoff;
mod handshake;
mod hostile;
mod psk;
mod resume;

pub(crate) use resume::MemStore;

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use crate::entropy::SeededEntropy;
use crate::tls::{CipherSuite, NamedGroup, ServerConfig, SigningKey, TlsError, TlsServer};

pub(crate) const RSA_PKCS8: &str = include_str!("rsa2048.pkcs8.pem");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Ecdsa,
    Rsa,
    Ed25519,
}

/// A CA and a leaf for "localhost" signed by it.
pub(crate) struct Pki {
    pub ca: CertificateDer<'static>,
    pub chain: Vec<Vec<u8>>,
    pub key_pem: String,
}

pub(crate) fn pki(kind: KeyKind) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = match kind {
        KeyKind::Ecdsa => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        KeyKind::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
        KeyKind::Rsa => KeyPair::from_pem(RSA_PKCS8).unwrap(),
    };
    let params = CertificateParams::new(vec!["localhost".to_string(), "example.com".to_string()]).unwrap();
    let leaf = params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    Pki {
        ca: ca.der().clone(),
        chain: vec![leaf.der().to_vec(), ca.der().to_vec()],
        key_pem: leaf_key.serialize_pem(),
    }
}

pub(crate) fn server_config(pki: &Pki, alpn: &[&[u8]]) -> ServerConfig {
    let key = SigningKey::from_pem(pki.key_pem.as_bytes()).unwrap();
    ServerConfig::new(pki.chain.clone(), key, alpn.iter().map(|p| p.to_vec()).collect()).unwrap()
}

pub(crate) fn rustls_suite(s: CipherSuite) -> rustls::SupportedCipherSuite {
    use rustls::crypto::ring::cipher_suite as cs;
    match s {
        CipherSuite::Aes128GcmSha256 => cs::TLS13_AES_128_GCM_SHA256,
        CipherSuite::Aes256GcmSha384 => cs::TLS13_AES_256_GCM_SHA384,
        CipherSuite::Chacha20Poly1305Sha256 => cs::TLS13_CHACHA20_POLY1305_SHA256,
    }
}

pub(crate) fn rustls_group(g: NamedGroup) -> &'static dyn rustls::crypto::SupportedKxGroup {
    use rustls::crypto::ring::kx_group;
    match g {
        NamedGroup::X25519 => kx_group::X25519,
        NamedGroup::Secp256r1 => kx_group::SECP256R1,
    }
}

/// What the rustls client offers.
pub(crate) struct ClientOpts {
    pub suites: Vec<CipherSuite>,
    pub groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
    pub alpn: Vec<Vec<u8>>,
    pub name: &'static str,
}

impl Default for ClientOpts {
    fn default() -> Self {
        ClientOpts {
            suites: vec![CipherSuite::Aes128GcmSha256],
            groups: vec![rustls::crypto::ring::kx_group::X25519],
            alpn: vec![],
            name: "localhost",
        }
    }
}

pub(crate) fn client(pki: &Pki, o: &ClientOpts) -> ClientConnection {
    ClientConnection::new(client_config(pki, o), ServerName::try_from(o.name).unwrap()).unwrap()
}

/// A client configuration to make several connections from: they share
/// rustls' in-memory session store (`Resumption::in_memory_sessions`, on
/// by default), so a later one resumes with a ticket of an earlier one.
pub(crate) fn client_config(pki: &Pki, o: &ClientOpts) -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = o.suites.iter().map(|s| rustls_suite(*s)).collect();
    provider.kx_groups = o.groups.clone();
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = o.alpn.clone();
    Arc::new(cfg)
}

pub(crate) type Hook = Box<dyn FnMut(TlsServer, &Arc<ServerConfig>, usize) -> TlsServer>;

/// A client and our server connected by two in-memory byte pipes.
pub(crate) struct Pair {
    pub client: ClientConnection,
    pub server: TlsServer,
    pub cfg: Arc<ServerConfig>,
    pub rng: SeededEntropy,
    /// Client bytes not yet taken by the server.
    pub to_server: Vec<u8>,
    /// Called after every step that changed the server; may replace it
    /// (handoff tests encode and decode here).
    pub hook: Option<Hook>,
    pub steps: usize,
    pub server_error: Option<TlsError>,
    /// Plaintext the client has received and not yet been asked for.
    pub client_plain: Vec<u8>,
    pub client_eof: bool,
    /// When set, client bytes reach the server in chunks of random size
    /// 1..=split_max drawn from this generator.
    pub split: Option<(SeededEntropy, usize)>,
    /// When set, client bytes reach the server one whole record at a time.
    pub record_split: bool,
    /// Server plaintext read by the harness while applying backpressure.
    pub server_plain: Vec<u8>,
    /// When set the server runs `process_with` this store: resumption and
    /// tickets.
    pub store: Option<MemStore>,
    /// Answers the server's session fetches (the fleet repository of
    /// another host); fetches counted in `fetches`.
    pub fleet: Option<MemStore>,
    pub fetches: usize,
}

impl Pair {
    pub fn new(client: ClientConnection, cfg: ServerConfig, seed: u64) -> Pair {
        let cfg = Arc::new(cfg);
        Pair {
            client,
            server: TlsServer::new(cfg.clone()),
            cfg,
            rng: SeededEntropy::new(seed),
            to_server: Vec::new(),
            hook: None,
            steps: 0,
            server_error: None,
            client_plain: Vec::new(),
            client_eof: false,
            split: None,
            record_split: false,
            server_plain: Vec::new(),
            store: None,
            fleet: None,
            fetches: 0,
        }
    }

    fn step_hook(&mut self) {
        self.steps += 1;
        if let Some(h) = self.hook.as_mut() {
            let srv = std::mem::replace(&mut self.server, TlsServer::new(self.cfg.clone()));
            self.server = h(srv, &self.cfg, self.steps);
        }
    }

    /// Feeds `data` to the server `chunk` bytes at a time, processing and
    /// running jobs inline after each chunk.
    pub fn feed_server(&mut self, data: &[u8], chunk: usize) {
        let mut off = 0;
        while off < data.len() {
            let chunk = if self.record_split && data.len() - off >= 5 {
                5 + u16::from_be_bytes([data[off + 3], data[off + 4]]) as usize
            } else {
                chunk
            };
            let chunk = match self.split.as_mut() {
                Some((r, max)) => {
                    use crate::entropy::Entropy;
                    1 + (r.u32() as usize % *max).min(chunk.max(1) - 1)
                }
                None => chunk,
            };
            let end = (off + chunk).min(data.len());
            let n = self.server.read_tls(&data[off..end]);
            off += n;
            self.step_hook();
            self.run_server();
            if n == 0 {
                if self.server.is_failed() || self.server.received_close_notify() {
                    return;
                }
                // Input full because the plaintext buffer is full (the
                // server stopped processing): the application reads.
                assert!(self.server.plaintext_len() > 0, "stalled with nothing to read");
                let got = self.take_server_plaintext();
                self.server_plain.extend(got);
            }
        }
    }

    pub fn run_server(&mut self) {
        loop {
            let r = match self.store.as_mut() {
                Some(st) => self.server.process_with(&mut self.rng, st),
                None => self.server.process(&mut self.rng),
            };
            if let Err(e) = r {
                self.server_error.get_or_insert(e);
                return;
            }
            self.step_hook();
            match self.server.take_job() {
                Some(job) => {
                    self.step_hook();
                    let r = match (job.session_fetch(), self.fleet.as_mut()) {
                        (Some(id), Some(fleet)) => {
                            self.fetches += 1;
                            crate::tls::JobResult::Session(crate::tls::TicketStore::take(fleet, id))
                        }
                        _ => job.run(&mut self.rng),
                    };
                    if let Err(e) = self.server.complete_job(r) {
                        self.server_error.get_or_insert(e);
                        return;
                    }
                    self.step_hook();
                }
                None => return,
            }
        }
    }

    /// Moves client output to the server. Returns bytes moved.
    pub fn client_to_server(&mut self, chunk: usize) -> usize {
        let mut buf = std::mem::take(&mut self.to_server);
        while self.client.wants_write() {
            self.client.write_tls(&mut buf).unwrap();
        }
        let n = buf.len();
        self.feed_server(&buf, chunk);
        n
    }

    /// Moves server output to the client. Returns bytes moved, or the
    /// client's error.
    pub fn server_to_client(&mut self) -> Result<usize, rustls::Error> {
        let out = self.server.tls_output().to_vec();
        self.server.consume_output(out.len());
        self.step_hook();
        let mut rd = &out[..];
        while !rd.is_empty() {
            self.client.read_tls(&mut rd).unwrap();
            self.client.process_new_packets()?;
            self.drain_client();
        }
        Ok(out.len())
    }

    /// Runs both sides until neither has anything to send.
    pub fn pump(&mut self, chunk: usize) -> Result<(), rustls::Error> {
        loop {
            let a = self.client_to_server(chunk);
            let b = self.server_to_client()?;
            if a == 0 && b == 0 && self.to_server.is_empty() {
                return Ok(());
            }
        }
    }

    pub fn handshake(&mut self) {
        self.pump(1 << 20).unwrap();
        assert!(!self.client.is_handshaking(), "client still handshaking; server error {:?}", self.server_error);
        assert!(!self.server.is_handshaking(), "server still handshaking: {:?}", self.server_error);
    }

    fn drain_client(&mut self) {
        let mut buf = [0u8; 16384];
        loop {
            match self.client.reader().read(&mut buf) {
                Ok(0) => {
                    self.client_eof = true;
                    break;
                }
                Ok(n) => self.client_plain.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("client read: {e}"),
            }
        }
    }

    /// Everything the client has received so far.
    pub fn client_read_all(&mut self) -> Vec<u8> {
        self.drain_client();
        std::mem::take(&mut self.client_plain)
    }

    fn take_server_plaintext(&mut self) -> Vec<u8> {
        let mut v = vec![0u8; self.server.plaintext_len()];
        let n = self.server.read_plaintext(&mut v);
        v.truncate(n);
        v
    }

    /// Reads server plaintext until none is left, processing records that
    /// were held back while the plaintext buffer was full.
    pub fn server_read_all(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.server_plain);
        loop {
            let got = self.take_server_plaintext();
            if got.is_empty() {
                return v;
            }
            v.extend(got);
            self.run_server();
        }
    }

    /// Sends `data` client → server and returns what the server read.
    pub fn client_sends(&mut self, data: &[u8]) -> Vec<u8> {
        let mut got = Vec::new();
        for c in data.chunks(32 * 1024) {
            self.client.writer().write_all(c).unwrap();
            self.pump(1 << 20).unwrap();
            got.extend(self.server_read_all());
        }
        got
    }

    /// Sends `data` server → client and returns what the client read.
    pub fn server_sends(&mut self, data: &[u8]) -> Vec<u8> {
        let mut got = Vec::new();
        let mut off = 0;
        while off < data.len() {
            let n = self.server.write_plaintext(&data[off..]);
            assert!(n > 0 || self.server.wants_write(), "server took nothing");
            off += n;
            self.step_hook();
            self.pump(1 << 20).unwrap();
            got.extend(self.client_read_all());
        }
        got
    }
}

pub(crate) fn sha256(b: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, b).as_ref().to_vec()
}

/// Pseudo-random test data.
pub(crate) fn data(len: usize, seed: u64) -> Vec<u8> {
    use crate::entropy::Entropy;
    let mut v = vec![0u8; len];
    SeededEntropy::new(seed).fill(&mut v);
    v
}
