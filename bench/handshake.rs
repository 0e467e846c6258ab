//! Full TLS 1.3 handshake cost on baton's server against the pure crypto
//! cost of the same handshake (X25519 keygen + agree, ECDSA P-256 signature,
//! the key schedule's HKDF steps and the Finished HMACs), measured alone in
//! the same run. Prints both and the ratio crypto/full (DESIGN.md target:
//! ≥ 85%). Only the server's time is counted; the rustls client's is not.
//!
//!     cargo bench --bench handshake [-- ITERATIONS]

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::entropy::OsEntropy;
use baton::tls::{ServerConfig, SigningKey, TicketStore, TlsServer};

/// An in-memory ticket store (take removes), standing in for the session
/// table so only the TLS server is measured.
#[derive(Default)]
struct MapStore(std::collections::HashMap<Vec<u8>, Vec<u8>>);

impl TicketStore for MapStore {
    fn put(&mut self, id: &[u8], session: &[u8], _lifetime_s: u32) -> bool {
        self.0.insert(id.to_vec(), session.to_vec());
        true
    }
    fn take(&mut self, id: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        self.0.remove(id).map(zeroize::Zeroizing::new)
    }
    fn put_back(&mut self, id: &[u8], session: &[u8]) -> bool {
        self.put(id, session, 0)
    }
}
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

fn server_config() -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
    let dir = std::env::temp_dir().join(format!("baton-bench-hs-{}", std::process::id()));
    let g = baton::demo::certs::generate(&dir, &["baton.test"], &[]).unwrap();
    let chain = baton::tls::load_cert_chain_pem(&std::fs::read(&g.cert).unwrap()).unwrap();
    let key = SigningKey::from_pem(&std::fs::read(&g.key).unwrap()).unwrap();
    let sc = Arc::new(ServerConfig::new(chain, key, vec![]).unwrap());
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    provider.kx_groups = vec![rustls::crypto::ring::kx_group::X25519];
    let mut roots = rustls::RootCertStore::empty();
    for der in pem::parse_many(std::fs::read(&g.ca).unwrap()).unwrap() {
        roots.add(rustls::pki_types::CertificateDer::from(der.contents().to_vec())).unwrap();
    }
    let cc = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let _ = std::fs::remove_dir_all(&dir);
    (sc, Arc::new(cc))
}

/// One handshake; returns the time spent inside baton's server and whether
/// it resumed.
fn one_handshake(sc: &Arc<ServerConfig>, cc: &Arc<rustls::ClientConfig>, rng: &mut OsEntropy, store: &mut MapStore) -> (Duration, bool) {
    let mut client = rustls::ClientConnection::new(cc.clone(), "baton.test".try_into().unwrap()).unwrap();
    let mut server_time = Duration::ZERO;
    let t = Instant::now();
    let mut server = TlsServer::new(sc.clone());
    server_time += t.elapsed();
    let mut buf = Vec::new();
    for _ in 0..20 {
        buf.clear();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        let t = Instant::now();
        let mut off = 0;
        while off < buf.len() {
            let n = server.read_tls(&buf[off..]);
            server.process_with(rng, store).unwrap();
            while let Some(job) = server.take_job() {
                let r = job.run(rng);
                server.complete_job(r).unwrap();
                server.process_with(rng, store).unwrap();
            }
            if n == 0 {
                break;
            }
            off += n;
        }
        let out = server.tls_output().to_vec();
        server.consume_output(out.len());
        server_time += t.elapsed();
        let mut rd = &out[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets().unwrap();
        }
        if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() && server.tls_output().is_empty() {
            return (server_time, server.is_resumed());
        }
    }
    panic!("handshake did not complete");
}

// The crypto-only ceilings live in bench/ceilings.rs, shared with
// bench/replay.
#[path = "ceilings.rs"]
mod ceilings;
use ceilings::{crypto_only, crypto_only_resumed};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(500);
    let (sc, cc) = server_config();
    // A second client config without resumption, for the full handshakes.
    let mut c2 = (*cc).clone();
    c2.resumption = rustls::client::Resumption::disabled();
    let cc_full = Arc::new(c2);
    let mut rng = OsEntropy::new();
    let sysrng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &sysrng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &sysrng).unwrap();
    let _ = key.public_key();
    let peer = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::X25519, &sysrng).unwrap();
    let peer_pub = peer.compute_public_key().unwrap().as_ref().to_vec();
    // Warm up both.
    let mut none = MapStore::default();
    let mut tickets = MapStore::default();
    for _ in 0..20 {
        one_handshake(&sc, &cc_full, &mut rng, &mut none);
        crypto_only(&key, &peer_pub, &sysrng);
    }
    // Interleaved, one of each per round, medians of the per-round times:
    // noise from other processes on this shared machine then hits both
    // sides alike instead of skewing one phase.
    let (mut full, mut crypto, mut resumed, mut crypto_r) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut not_resumed = 0;
    for _ in 0..n {
        full.push(one_handshake(&sc, &cc_full, &mut rng, &mut none).0.as_secs_f64() * 1e6);
        let t = Instant::now();
        crypto_only(&key, &peer_pub, &sysrng);
        crypto.push(t.elapsed().as_secs_f64() * 1e6);
        let (d, r) = one_handshake(&sc, &cc, &mut rng, &mut tickets);
        if r {
            resumed.push(d.as_secs_f64() * 1e6);
        } else {
            not_resumed += 1;
        }
        let t = Instant::now();
        crypto_only_resumed(&peer_pub, &sysrng);
        crypto_r.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let full_us = median(&mut full);
    let crypto_us = median(&mut crypto);
    println!("TLS 1.3 handshakes (x25519, ECDSA P-256, AES-128-GCM), {n} interleaved rounds, medians, server side only");
    println!("  full:    baton {full_us:7.1} µs ({:.0}/CPU-s)   crypto-only {crypto_us:7.1} µs   ratio {:.3} (target >= 0.85)", 1e6 / full_us, crypto_us / full_us);
    if resumed.is_empty() {
        println!("  resumed: none of {n} handshakes resumed");
        std::process::exit(1);
    }
    let res_us = median(&mut resumed);
    let cr_us = median(&mut crypto_r);
    println!(
        "  resumed: baton {res_us:7.1} µs ({:.0}/CPU-s)   crypto-only {cr_us:7.1} µs   ratio {:.3} (target >= 0.85); {} of {n} resumed; resumed/full speed {:.2}x",
        1e6 / res_us,
        cr_us / res_us,
        resumed.len(),
        full_us / res_us
    );
    let _ = not_resumed;
}
