//! Crypto-only ceilings shared by bench/handshake.rs and bench/replay:
//! the crypto a server does in one full and one resumed TLS 1.3 handshake,
//! alone (baton's own key schedule functions, ring for X25519 and ECDSA),
//! and bare ring AES-128-GCM sealing of 16 KiB records (as bench/record.rs's
//! `ring_bare`). Included with `#[path]`, not a library.
#![allow(dead_code)]

use std::time::Instant;

use baton::tls::key_schedule::{finished_verify_data, hkdf_expand_label, traffic_key_iv, KeySchedule};
use baton::tls::suites::{CipherSuite, HashAlg};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

/// The crypto a server does in one full handshake, alone.
pub fn crypto_only(sign_key: &EcdsaKeyPair, peer_pub: &[u8], rng: &SystemRandom) {
    let eph = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::X25519, rng).unwrap();
    let _pub = eph.compute_public_key().unwrap();
    let peer = ring::agreement::UnparsedPublicKey::new(&ring::agreement::X25519, peer_pub);
    let shared = ring::agreement::agree_ephemeral(eph, &peer, |s| s.to_vec()).unwrap();
    let h = HashAlg::Sha256;
    let th = [0x55u8; 32];
    let mut ks = KeySchedule::new(h, None);
    ks.input_dhe(&shared);
    let chs = ks.client_handshake_traffic_secret(&th);
    let shs = ks.server_handshake_traffic_secret(&th);
    let _ = traffic_key_iv(CipherSuite::Aes128GcmSha256, chs.as_bytes());
    let _ = traffic_key_iv(CipherSuite::Aes128GcmSha256, shs.as_bytes());
    let msg = [0x20u8; 130];
    let _sig = sign_key.sign(rng, &msg).unwrap();
    for s in [&shs, &chs] {
        let fk = hkdf_expand_label(h, s.as_bytes(), b"finished", &[], 32);
        let _ = finished_verify_data(h, fk.as_bytes(), &th);
    }
    ks.into_master();
    let cap = ks.client_application_traffic_secret_0(&th);
    let sap = ks.server_application_traffic_secret_0(&th);
    let _ = traffic_key_iv(CipherSuite::Aes128GcmSha256, cap.as_bytes());
    let _ = traffic_key_iv(CipherSuite::Aes128GcmSha256, sap.as_bytes());
}

/// The crypto a server does in one psk_dhe_ke resumption, alone: X25519,
/// the PSK key schedule, the binder and both Finished MACs, the new ticket's
/// PSK. No signature.
pub fn crypto_only_resumed(peer_pub: &[u8], rng: &SystemRandom) {
    let eph = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::X25519, rng).unwrap();
    let _pub = eph.compute_public_key().unwrap();
    let peer = ring::agreement::UnparsedPublicKey::new(&ring::agreement::X25519, peer_pub);
    let shared = ring::agreement::agree_ephemeral(eph, &peer, |s| s.to_vec()).unwrap();
    let h = HashAlg::Sha256;
    let th = [0x55u8; 32];
    let psk = [0x33u8; 32];
    let mut ks = KeySchedule::new(h, Some(&psk));
    let bk = ks.binder_key(false);
    let fk = hkdf_expand_label(h, bk.as_bytes(), b"finished", &[], 32);
    let _ = finished_verify_data(h, fk.as_bytes(), &th);
    ks.input_dhe(&shared);
    let chs = ks.client_handshake_traffic_secret(&th);
    let shs = ks.server_handshake_traffic_secret(&th);
    let _ = traffic_key_iv(CipherSuite::Aes128GcmSha256, chs.as_bytes());
    let _ = traffic_key_iv(CipherSuite::Aes128GcmSha256, shs.as_bytes());
    for s in [&shs, &chs] {
        let fk = hkdf_expand_label(h, s.as_bytes(), b"finished", &[], 32);
        let _ = finished_verify_data(h, fk.as_bytes(), &th);
    }
    ks.into_master();
    let cap = ks.client_application_traffic_secret_0(&th);
    let sap = ks.server_application_traffic_secret_0(&th);
    let _ = traffic_key_iv(CipherSuite::Aes128GcmSha256, cap.as_bytes());
    let _ = traffic_key_iv(CipherSuite::Aes128GcmSha256, sap.as_bytes());
    let rms = ks.resumption_master_secret(&th);
    let _ = baton::tls::key_schedule::resumption_psk(h, rms.as_bytes(), &[0, 0]);
}

/// Ceilings measured in the calling run.
pub struct Ceilings {
    /// Median µs of the crypto of one full handshake.
    pub full_us: f64,
    /// Median µs of the crypto of one resumed handshake.
    pub resumed_us: f64,
    /// Bare ring AES-128-GCM seal of 16 KiB records, Gbit/s of plaintext.
    pub aead_gbps: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// `n` interleaved rounds of each handshake's crypto (medians) and
/// `aead_seconds` of sealing.
pub fn measure(n: usize, aead_seconds: f64) -> Ceilings {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let peer = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::X25519, &rng).unwrap();
    let peer_pub = peer.compute_public_key().unwrap().as_ref().to_vec();
    let (mut f, mut r) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n.max(1) {
        let t = Instant::now();
        crypto_only(&key, &peer_pub, &rng);
        f.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        crypto_only_resumed(&peer_pub, &rng);
        r.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ceilings { full_us: median(&mut f), resumed_us: median(&mut r), aead_gbps: aead_seal_gbps(16 * 1024, aead_seconds) }
}

/// Bare ring AES-128-GCM seal of `size`-byte records for about `seconds`.
pub fn aead_seal_gbps(size: usize, seconds: f64) -> f64 {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
    let (key, iv) = traffic_key_iv(CipherSuite::Aes128GcmSha256, &[0x5a; 32]);
    let k = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key.as_bytes()).unwrap());
    let mut buf = vec![0x61u8; size + 1];
    let aad = [23u8, 3, 3, 0, 0];
    let (mut seq, mut bytes) = (0u64, 0u64);
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < seconds {
        for _ in 0..16 {
            let mut x = iv;
            for (b, s) in x[4..].iter_mut().zip(seq.to_be_bytes()) {
                *b ^= s;
            }
            let tag = k.seal_in_place_separate_tag(Nonce::assume_unique_for_key(x), Aad::from(aad), &mut buf).unwrap();
            std::hint::black_box(tag.as_ref());
            seq += 1;
            bytes += size as u64;
        }
    }
    bytes as f64 * 8.0 / t.elapsed().as_secs_f64() / 1e9
}
