//! The connection state encoded and decoded at every step of its life —
//! mid-handshake, with a job pending, with partial records buffered — and
//! continued by a fresh `TlsServer` without the rustls client noticing.

use super::*;
use crate::codec::{Reader, Writer};

pub(super) fn round_trip(srv: TlsServer, cfg: &Arc<ServerConfig>, _step: usize) -> TlsServer {
    let mut w = Writer::new();
    srv.encode(&mut w);
    let bytes = w.finish();
    let mut r = Reader::new(&bytes);
    let back = TlsServer::decode(&mut r, cfg.clone()).expect("decode");
    r.finish().expect("no trailing bytes");
    // Lossless: encoding the decoded state gives the same bytes.
    let mut w2 = Writer::new();
    back.encode(&mut w2);
    assert_eq!(&bytes[..], &w2.finish()[..], "re-encoding differs");
    // The old value is dropped here: only the decoded one continues.
    drop(srv);
    back
}

pub(super) fn life(pair: &mut Pair) {
    pair.handshake();
    let up = data(100_000, 11);
    let down = data(100_000, 12);
    assert_eq!(sha256(&pair.client_sends(&up)), sha256(&up));
    assert_eq!(sha256(&pair.server_sends(&down)), sha256(&down));
    pair.client.refresh_traffic_keys().unwrap();
    assert_eq!(pair.client_sends(b"after key update"), b"after key update");
    assert_eq!(pair.server_sends(b"answer"), b"answer");
    pair.server.send_close_notify();
    pair.server_to_client().unwrap();
    assert!(pair.client_eof);
    pair.client.send_close_notify();
    pair.client_to_server(1 << 20);
    assert!(pair.server.received_close_notify());
    assert!(pair.server_error.is_none(), "{:?}", pair.server_error);
}

#[test]
fn handoff_at_every_message_boundary() {
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[b"h2"]), 21);
    pair.hook = Some(Box::new(round_trip));
    life(&mut pair);
    assert!(pair.steps > 20, "only {} steps", pair.steps);
}

#[test]
fn handoff_at_every_message_boundary_through_hello_retry() {
    use rustls::crypto::ring::kx_group;
    let p = pki(KeyKind::Rsa);
    let opts = ClientOpts {
        suites: vec![CipherSuite::Aes256GcmSha384],
        groups: vec![kx_group::SECP256R1, kx_group::X25519],
        ..Default::default()
    };
    let mut cfg = server_config(&p, &[]);
    cfg.groups = vec![NamedGroup::X25519];
    let mut pair = Pair::new(client(&p, &opts), cfg, 22);
    pair.hook = Some(Box::new(round_trip));
    life(&mut pair);
}

#[test]
fn handoff_at_every_record_boundary() {
    // Client bytes delivered one whole record at a time (split exactly at
    // record boundaries), with a handoff after each.
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 31);
    pair.hook = Some(Box::new(round_trip));
    pair.record_split = true;
    life(&mut pair);
}

#[test]
fn handoff_at_random_byte_split_points() {
    for seed in 0..6u64 {
        let p = pki(if seed % 2 == 0 { KeyKind::Ecdsa } else { KeyKind::Ed25519 });
        let suite = CipherSuite::ALL[seed as usize % 3];
        let opts = ClientOpts { suites: vec![suite], ..Default::default() };
        let mut pair = Pair::new(client(&p, &opts), server_config(&p, &[]), 100 + seed);
        pair.split = Some((SeededEntropy::new(seed), 1 + (seed as usize * 97) % 700));
        pair.hook = Some(Box::new(round_trip));
        life(&mut pair);
    }
}

#[test]
fn handoff_with_job_taken_but_not_completed() {
    // The giver took the job and is gone; the taker hands it out again.
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 23);
    let mut ch = Vec::new();
    pair.client.write_tls(&mut ch).unwrap();
    let mut rng = SeededEntropy::new(5);
    pair.server.read_tls(&ch);
    pair.server.process(&mut rng).unwrap();
    let lost = pair.server.take_job().expect("key exchange job");
    assert!(pair.server.take_job().is_none(), "handed out once");
    let mut w = Writer::new();
    pair.server.encode(&mut w);
    let bytes = w.finish();
    drop(lost);
    let mut srv = TlsServer::decode(&mut Reader::new(&bytes), pair.cfg.clone()).unwrap();
    let job = srv.take_job().expect("job offered again after decode");
    srv.complete_job(job.run(&mut rng)).unwrap();
    pair.server = srv;
    pair.handshake();
    assert_eq!(pair.client_sends(b"x"), b"x");
}

#[test]
fn decode_rejects_garbage_and_future_versions() {
    let p = pki(KeyKind::Ecdsa);
    let cfg = Arc::new(server_config(&p, &[]));
    let srv = TlsServer::new(cfg.clone());
    let mut w = Writer::new();
    srv.encode(&mut w);
    let bytes = w.finish().to_vec();
    for n in 0..bytes.len() {
        assert!(TlsServer::decode(&mut Reader::new(&bytes[..n]), cfg.clone()).is_err());
    }
    let mut future = bytes.clone();
    future[2] = 9;
    assert!(TlsServer::decode(&mut Reader::new(&future), cfg.clone()).is_err());
    let mut bad_phase = bytes.clone();
    bad_phase[4] = 77;
    assert!(TlsServer::decode(&mut Reader::new(&bad_phase), cfg).is_err());
}

#[test]
fn jobs_are_send_and_debug_shows_no_secrets() {
    fn send<T: Send>() {}
    send::<crate::tls::CryptoJob>();
    send::<crate::tls::JobResult>();
    send::<TlsServer>();
    let shared = zeroize::Zeroizing::new(vec![0xabu8; 32]);
    let r = crate::tls::JobResult::KeyExchange { group: NamedGroup::X25519, public: vec![1; 32], shared };
    let s = format!("{r:?}");
    assert!(!s.contains("171") && !s.to_lowercase().contains("ab, ab"), "{s}");
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 1);
    pair.handshake();
    let d = format!("{:?}", pair.server);
    assert!(d.contains("Connected") || d.contains("phase"));
    assert!(!d.contains("secret"), "{d}");
}

/// TIME_WAIT (tests/time_wait.rs): once retired, a connection keeps no key
/// and no buffer, reads nothing, writes nothing, and still encodes (a drain
/// may move it) without its record protectors and secrets.
#[test]
fn a_retired_connection_holds_no_keys_reads_and_writes_nothing() {
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 23);
    life(&mut pair);
    let mut w = Writer::new();
    pair.server.encode(&mut w);
    let before = w.finish().len();
    pair.server.retire();
    assert!(pair.server.is_retired());
    assert!(pair.server.tls_output().is_empty());
    assert_eq!(pair.server.write_plaintext(b"late"), 0);
    assert_eq!(pair.server.read_tls(&[23, 3, 3, 0, 5, 1, 2, 3, 4, 5]), 10, "swallowed");
    let mut rng = crate::entropy::SeededEntropy::new(1);
    assert!(pair.server.process(&mut rng).is_ok());
    assert_eq!(pair.server.plaintext_len(), 0);
    assert!(pair.server.tls_output().is_empty());
    let mut w = Writer::new();
    pair.server.encode(&mut w);
    let after = w.finish().len();
    // The key material (record protectors, secrets) is what goes.
    assert!(after + 200 < before, "retired state {after} B, live state {before} B");
    pair.server.retire(); // again: nothing changes
    assert!(pair.server.is_retired());
}
