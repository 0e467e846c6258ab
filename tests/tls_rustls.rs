//! baton's TLS 1.3 server against a real rustls 0.23 client, in-process and
//! byte for byte, through the public API only (what the worker uses).

use std::io::{Read, Write};
use std::sync::Arc;

use baton::codec::{Reader, Writer};
use baton::entropy::{Entropy, SeededEntropy};
use baton::tls::{CipherSuite, NamedGroup, ServerConfig, SigningKey, TlsServer};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

const RSA_PKCS1: &str = include_str!("../src/tls/tests/rsa2048.pkcs1.pem");
const RSA_PKCS8: &str = include_str!("../src/tls/tests/rsa2048.pkcs8.pem");

fn pki(kind: u8) -> (CertificateDer<'static>, Vec<Vec<u8>>, SigningKey) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let (leaf_key, pem) = match kind {
        0 => {
            let k = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let pem = k.serialize_pem();
            (k, pem)
        }
        1 => {
            let k = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
            let pem = k.serialize_pem();
            (k, pem)
        }
        // rcgen reads the PKCS#8 form; the server loads the PKCS#1 one.
        _ => (KeyPair::from_pem(RSA_PKCS8).unwrap(), RSA_PKCS1.to_string()),
    };
    let leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let chain_pem = format!("{}{}", leaf.pem(), ca.pem());
    let chain = baton::tls::load_cert_chain_pem(chain_pem.as_bytes()).unwrap();
    (ca.der().clone(), chain, SigningKey::from_pem(pem.as_bytes()).unwrap())
}

fn client(ca: &CertificateDer<'static>, suite: CipherSuite, groups: &[NamedGroup], alpn: &[&[u8]]) -> ClientConnection {
    use rustls::crypto::ring::{cipher_suite as cs, kx_group};
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![match suite {
        CipherSuite::Aes128GcmSha256 => cs::TLS13_AES_128_GCM_SHA256,
        CipherSuite::Aes256GcmSha384 => cs::TLS13_AES_256_GCM_SHA384,
        CipherSuite::Chacha20Poly1305Sha256 => cs::TLS13_CHACHA20_POLY1305_SHA256,
    }];
    provider.kx_groups = groups
        .iter()
        .map(|g| match g {
            NamedGroup::X25519 => kx_group::X25519,
            NamedGroup::Secp256r1 => kx_group::SECP256R1,
        })
        .collect();
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap()).unwrap()
}

/// The worker's loop in miniature: bytes in, process, jobs inline, bytes
/// out. With `split`, client bytes arrive in random pieces and the server
/// is encoded and decoded into a fresh value after every piece.
struct Link {
    c: ClientConnection,
    s: TlsServer,
    cfg: Arc<ServerConfig>,
    rng: SeededEntropy,
    split: Option<SeededEntropy>,
    got_client: Vec<u8>,
    got_server: Vec<u8>,
}

impl Link {
    fn handoff(&mut self) {
        let mut w = Writer::new();
        self.s.encode(&mut w);
        let b = w.finish();
        self.s = TlsServer::decode(&mut Reader::new(&b), self.cfg.clone()).unwrap();
    }

    fn pump(&mut self) {
        loop {
            let mut buf = Vec::new();
            while self.c.wants_write() {
                self.c.write_tls(&mut buf).unwrap();
            }
            let mut off = 0;
            while off < buf.len() {
                let lim = match self.split.as_mut() {
                    Some(r) => 1 + r.u32() as usize % 600,
                    None => buf.len(),
                };
                let end = (off + lim).min(buf.len());
                off += self.s.read_tls(&buf[off..end]);
                if self.split.is_some() {
                    self.handoff();
                }
                loop {
                    self.s.process(&mut self.rng).unwrap();
                    let Some(job) = self.s.take_job() else { break };
                    if self.split.is_some() {
                        self.handoff();
                    }
                    self.s.complete_job(job.run(&mut self.rng)).unwrap();
                }
                let mut tmp = vec![0u8; self.s.plaintext_len()];
                let n = self.s.read_plaintext(&mut tmp);
                self.got_server.extend_from_slice(&tmp[..n]);
            }
            let out = self.s.tls_output().to_vec();
            self.s.consume_output(out.len());
            let mut rd = &out[..];
            while !rd.is_empty() {
                self.c.read_tls(&mut rd).unwrap();
                self.c.process_new_packets().unwrap();
                let mut tmp = [0u8; 16384];
                while let Ok(n) = self.c.reader().read(&mut tmp) {
                    if n == 0 {
                        break;
                    }
                    self.got_client.extend_from_slice(&tmp[..n]);
                }
            }
            if buf.is_empty() && out.is_empty() {
                return;
            }
        }
    }
}

fn link(kind: u8, suite: CipherSuite, client_groups: &[NamedGroup], server_groups: &[NamedGroup], seed: u64) -> Link {
    let (ca, chain, key) = pki(kind);
    let mut cfg = ServerConfig::new(chain, key, vec![b"h2".to_vec(), b"http/1.1".to_vec()]).unwrap();
    cfg.groups = server_groups.to_vec();
    let cfg = Arc::new(cfg);
    Link {
        c: client(&ca, suite, client_groups, &[b"http/1.1", b"h2"]),
        s: TlsServer::new(cfg.clone()),
        cfg,
        rng: SeededEntropy::new(seed),
        split: None,
        got_client: Vec::new(),
        got_server: Vec::new(),
    }
}

fn sha(b: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, b).as_ref().to_vec()
}

fn exercise(l: &mut Link, size: usize) {
    l.pump();
    assert!(!l.c.is_handshaking() && !l.s.is_handshaking());
    assert_eq!(l.s.alpn(), Some(&b"h2"[..]));
    assert_eq!(l.c.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(l.s.sni(), Some("localhost"));
    let mut up = vec![0u8; size];
    SeededEntropy::new(1).fill(&mut up);
    let mut down = vec![0u8; size];
    SeededEntropy::new(2).fill(&mut down);
    for c in up.chunks(16 * 1024) {
        l.c.writer().write_all(c).unwrap();
        l.pump();
    }
    assert_eq!(sha(&l.got_server), sha(&up));
    l.c.refresh_traffic_keys().unwrap();
    let mut off = 0;
    while off < down.len() {
        off += l.s.write_plaintext(&down[off..]);
        l.pump();
    }
    assert_eq!(sha(&l.got_client), sha(&down));
    l.s.send_close_notify();
    l.pump();
    l.c.send_close_notify();
    l.pump();
    assert!(l.s.received_close_notify());
    assert!(!l.s.is_failed());
}

#[test]
fn every_suite_and_group_with_ecdsa() {
    for suite in CipherSuite::ALL {
        for g in [NamedGroup::X25519, NamedGroup::Secp256r1] {
            let mut l = link(0, suite, &[g], &[NamedGroup::X25519, NamedGroup::Secp256r1], 1);
            exercise(&mut l, 50_000);
            assert_eq!(l.s.suite(), Some(suite));
        }
    }
}

#[test]
fn one_mebibyte_each_way_rsa_and_ed25519() {
    let mut l = link(2, CipherSuite::Aes256GcmSha384, &[NamedGroup::X25519], &[NamedGroup::X25519], 2);
    exercise(&mut l, 1 << 20);
    let mut l = link(1, CipherSuite::Chacha20Poly1305Sha256, &[NamedGroup::X25519], &[NamedGroup::X25519], 3);
    exercise(&mut l, 1 << 20);
}

#[test]
fn hello_retry_then_handoff_at_random_split_points() {
    for seed in 0..4 {
        let mut l = link(0, CipherSuite::Aes128GcmSha256, &[NamedGroup::Secp256r1, NamedGroup::X25519], &[NamedGroup::X25519], seed);
        l.split = Some(SeededEntropy::new(seed));
        exercise(&mut l, 70_000);
    }
}
