//! Hostile and malformed input: every failure is a fatal alert queued in
//! the output and a failed connection, never a panic.

use super::*;
use crate::entropy::Entropy;
use crate::tls::messages::ext;
use crate::tls::wire::{put_u16, with_len};

fn cfg() -> Arc<ServerConfig> {
    thread_local! {
        static P: Pki = pki(KeyKind::Ecdsa);
    }
    P.with(|p| Arc::new(server_config(p, &[])))
}

/// Feeds `wire` to a fresh server and runs jobs inline.
fn run(cfg: &Arc<ServerConfig>, wire: &[u8], rng: &mut SeededEntropy) -> (TlsServer, Result<(), TlsError>) {
    let mut srv = TlsServer::new(cfg.clone());
    let mut off = 0;
    let mut res = Ok(());
    while off < wire.len() && res.is_ok() {
        let n = srv.read_tls(&wire[off..]);
        off += n;
        res = srv.process(rng);
        while res.is_ok() {
            let Some(job) = srv.take_job() else { break };
            res = srv.complete_job(job.run(rng)).and_then(|_| srv.process(rng));
        }
        if n == 0 {
            break;
        }
    }
    (srv, res)
}

/// The plaintext fatal alert record we must have queued.
fn plain_alert(desc: u8) -> [u8; 7] {
    [21, 3, 3, 0, 2, 2, desc]
}

fn record(typ: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![typ, 3, 1];
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn x25519_share(rng: &mut SeededEntropy) -> Vec<u8> {
    let mut k = [0u8; 32];
    rng.fill(&mut k);
    #[allow(deprecated)]
    let r = ring::test::rand::FixedSliceRandom { bytes: &k };
    let sk = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::X25519, &r).unwrap();
    sk.compute_public_key().unwrap().as_ref().to_vec()
}

/// A hand-built ClientHello handshake message.
fn client_hello(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
    crate::tls::messages::handshake(1, |b| {
        b.extend_from_slice(&[3, 3]);
        b.extend_from_slice(&[7; 32]);
        b.push(0);
        b.extend_from_slice(&[0, 4, 0x13, 0x01, 0x0a, 0x0a]);
        b.extend_from_slice(&[1, 0]);
        with_len(b, 2, |b| {
            for (t, d) in exts {
                put_u16(b, *t);
                with_len(b, 2, |b| b.extend_from_slice(d));
            }
        });
    })
}

fn standard_exts(share_ext: Vec<u8>, groups_ext: Vec<u8>) -> Vec<(u16, Vec<u8>)> {
    vec![
        (ext::SUPPORTED_VERSIONS, vec![4, 0x3a, 0x3a, 3, 4]),
        (ext::SIGNATURE_ALGORITHMS, vec![0, 4, 0x04, 0x03, 0x08, 0x04]),
        (ext::SUPPORTED_GROUPS, groups_ext),
        (ext::KEY_SHARE, share_ext),
    ]
}

/// (group, share) list as a key_share extension body.
fn shares(list: &[(u16, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    with_len(&mut v, 2, |b| {
        for (g, k) in list {
            put_u16(b, *g);
            with_len(b, 2, |b| b.extend_from_slice(k));
        }
    });
    v
}

fn groups(list: &[u16]) -> Vec<u8> {
    let mut v = Vec::new();
    with_len(&mut v, 2, |b| list.iter().for_each(|g| put_u16(b, *g)));
    v
}

/// The key_share group of the ServerHello at the start of `out`.
fn server_hello_group(out: &[u8]) -> u16 {
    assert_eq!(out[0], 22);
    assert_eq!(out[5], 2);
    let n = out.len();
    let at = out.windows(4).position(|w| w == [0, 51, 0, 36]).expect("key_share in ServerHello");
    assert!(at + 6 <= n);
    u16::from_be_bytes([out[at + 4], out[at + 5]])
}

#[test]
fn unknown_and_grease_groups_are_skipped() {
    // Case T6.
    let mut rng = SeededEntropy::new(1);
    let share = x25519_share(&mut rng);
    let ch = client_hello(&standard_exts(
        shares(&[(0x2a2a, &[0]), (0x0200, &[1, 2, 3]), (0x001d, &share)]),
        groups(&[0x2a2a, 0x0200, 0x001d]),
    ));
    let (srv, res) = run(&cfg(), &record(22, &ch), &mut rng);
    res.unwrap();
    assert_eq!(server_hello_group(srv.tls_output()), 0x001d);
    assert_eq!(srv.group(), Some(NamedGroup::X25519));
}

#[test]
fn only_unknown_shares_but_known_group_gets_hello_retry() {
    let mut rng = SeededEntropy::new(1);
    let ch = client_hello(&standard_exts(shares(&[(0x2a2a, &[0])]), groups(&[0x2a2a, 0x0017])));
    let (srv, res) = run(&cfg(), &record(22, &ch), &mut rng);
    res.unwrap();
    let out = srv.tls_output();
    assert_eq!(&out[11..43], &crate::tls::messages::HRR_RANDOM);
    assert_eq!(&out[out.len() - 6..], &[0, 51, 0, 2, 0, 0x17]);
    // Empty session id: no dummy CCS.
    assert!(srv.is_handshaking());
}

#[test]
fn second_client_hello_without_requested_share_is_illegal_parameter() {
    let mut rng = SeededEntropy::new(1);
    let ch = client_hello(&standard_exts(shares(&[(0x2a2a, &[0])]), groups(&[0x2a2a, 0x0017])));
    let mut wire = record(22, &ch);
    wire.extend(record(22, &ch));
    let (srv, res) = run(&cfg(), &wire, &mut rng);
    assert!(matches!(res, Err(TlsError::IllegalParameter(_))));
    assert!(srv.tls_output().ends_with(&plain_alert(47)));
}

#[test]
fn client_hello_without_supported_versions_is_protocol_version() {
    let mut rng = SeededEntropy::new(1);
    let share = x25519_share(&mut rng);
    let mut exts = standard_exts(shares(&[(0x001d, &share)]), groups(&[0x001d]));
    exts.remove(0);
    let (srv, res) = run(&cfg(), &record(22, &client_hello(&exts)), &mut rng);
    assert_eq!(res, Err(TlsError::ProtocolVersion));
    assert!(srv.is_failed());
    assert_eq!(srv.tls_output(), &plain_alert(70));
    // Only TLS 1.2 offered: same.
    let mut exts = standard_exts(shares(&[(0x001d, &share)]), groups(&[0x001d]));
    exts[0].1 = vec![2, 3, 3];
    let (_, res) = run(&cfg(), &record(22, &client_hello(&exts)), &mut rng);
    assert_eq!(res, Err(TlsError::ProtocolVersion));
}

#[test]
fn missing_signature_algorithms_or_key_share_is_missing_extension() {
    let mut rng = SeededEntropy::new(1);
    let share = x25519_share(&mut rng);
    for drop in [1usize, 3] {
        let mut exts = standard_exts(shares(&[(0x001d, &share)]), groups(&[0x001d]));
        exts.remove(drop);
        let (srv, res) = run(&cfg(), &record(22, &client_hello(&exts)), &mut rng);
        assert!(matches!(res, Err(TlsError::MissingExtension(_))), "{res:?}");
        assert_eq!(srv.tls_output(), &plain_alert(109));
    }
}

#[test]
fn wrong_length_key_share_is_illegal_parameter() {
    let mut rng = SeededEntropy::new(1);
    let exts = standard_exts(shares(&[(0x001d, &[1; 31])]), groups(&[0x001d]));
    let (srv, res) = run(&cfg(), &record(22, &client_hello(&exts)), &mut rng);
    assert!(matches!(res, Err(TlsError::IllegalParameter(_))));
    assert_eq!(srv.tls_output(), &plain_alert(47));
    // All-zero x25519 share: rejected in the job.
    let exts = standard_exts(shares(&[(0x001d, &[0; 32])]), groups(&[0x001d]));
    let (srv, res) = run(&cfg(), &record(22, &client_hello(&exts)), &mut rng);
    assert!(matches!(res, Err(TlsError::IllegalParameter(_))), "{res:?}");
    assert_eq!(srv.tls_output(), &plain_alert(47));
}

#[test]
fn zero_length_handshake_or_alert_record_is_unexpected_message() {
    // Case T3, before encryption.
    let mut rng = SeededEntropy::new(1);
    for typ in [22u8, 21] {
        let (srv, res) = run(&cfg(), &record(typ, &[]), &mut rng);
        assert!(matches!(res, Err(TlsError::UnexpectedMessage(_))));
        assert!(srv.is_failed());
        assert_eq!(srv.tls_output(), &plain_alert(10));
    }
}

fn connected() -> Pair {
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 2);
    pair.handshake();
    pair
}

/// Seals records as the client would, feeds them, and returns the server's
/// result plus the alert it sent (decrypted with a copy of its write key).
fn inject(pair: &mut Pair, recs: &[(u8, &[u8])]) -> (Result<(), TlsError>, Option<(u8, u8)>) {
    let mut cw = pair.server.test_client_writer().unwrap();
    let mut cr = pair.server.test_client_reader().unwrap();
    let mut wire = Vec::new();
    for (t, b) in recs {
        cw.seal_record(*t, b, &mut wire).unwrap();
    }
    pair.server.read_tls(&wire);
    let res = pair.server.process(&mut pair.rng);
    let mut out = pair.server.tls_output().to_vec();
    let mut alert = None;
    let mut at = 0;
    while at + 5 <= out.len() {
        let len = u16::from_be_bytes([out[at + 3], out[at + 4]]) as usize;
        let (t, c) = cr.open_record(&mut out[at..at + 5 + len]).unwrap();
        if t == 21 {
            alert = Some((c[0], c[1]));
        }
        at += 5 + len;
    }
    (res, alert)
}

#[test]
fn zero_length_application_data_is_ignored_after_handshake() {
    // Case T3.
    let mut pair = connected();
    let (res, alert) = inject(&mut pair, &[(23, b""), (23, b"abc"), (23, b""), (23, b"def")]);
    res.unwrap();
    assert_eq!(alert, None);
    assert_eq!(pair.server_read_all(), b"abcdef");
}

#[test]
fn zero_length_protected_handshake_or_alert_is_unexpected_message() {
    // Case T3, after encryption.
    for typ in [22u8, 21] {
        let mut pair = connected();
        let (res, alert) = inject(&mut pair, &[(typ, b"")]);
        assert!(matches!(res, Err(TlsError::UnexpectedMessage(_))));
        assert_eq!(alert, Some((2, 10)));
        assert!(pair.server.is_failed());
        assert_eq!(pair.server.write_plaintext(b"no"), 0);
    }
}

#[test]
fn client_new_session_ticket_is_unexpected_message() {
    let mut pair = connected();
    let nst = crate::tls::messages::handshake(4, |b| b.extend_from_slice(&[0; 13]));
    let (res, alert) = inject(&mut pair, &[(22, &nst)]);
    assert!(matches!(res, Err(TlsError::UnexpectedMessage(_))));
    assert_eq!(alert, Some((2, 10)));
}

#[test]
fn key_update_with_bad_value_or_trailing_bytes_fails() {
    let mut pair = connected();
    let (res, alert) = inject(&mut pair, &[(22, &[24, 0, 0, 1, 2])]);
    assert!(matches!(res, Err(TlsError::IllegalParameter(_))));
    assert_eq!(alert, Some((2, 47)));
    let mut pair = connected();
    let (res, alert) = inject(&mut pair, &[(22, &[24, 0, 0, 1, 0, 24, 0])]);
    assert!(matches!(res, Err(TlsError::UnexpectedMessage(_))));
    assert_eq!(alert, Some((2, 10)));
}

#[test]
fn protected_change_cipher_spec_and_ccs_after_handshake_fail() {
    let mut pair = connected();
    let (res, alert) = inject(&mut pair, &[(20, &[1])]);
    assert!(matches!(res, Err(TlsError::UnexpectedMessage(_))));
    assert_eq!(alert, Some((2, 10)));
    let mut pair = connected();
    pair.server.read_tls(&[20, 3, 3, 0, 1, 1]);
    assert!(matches!(pair.server.process(&mut pair.rng), Err(TlsError::UnexpectedMessage(_))));
}

#[test]
fn peer_alert_fails_without_answer() {
    let mut pair = connected();
    let (res, alert) = inject(&mut pair, &[(21, &[2, 40])]);
    assert_eq!(res, Err(TlsError::PeerAlert(crate::tls::AlertDescription::HandshakeFailure)));
    assert_eq!(alert, None);
    assert!(pair.server.is_failed());
}

#[test]
fn records_after_close_notify_are_ignored() {
    let mut pair = connected();
    let (res, _) = inject(&mut pair, &[(23, b"a"), (21, &[1, 0]), (23, b"b")]);
    res.unwrap();
    assert!(pair.server.received_close_notify());
    assert_eq!(pair.server_read_all(), b"a");
}

#[test]
fn bad_client_finished_is_decrypt_error() {
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 2);
    pair.client_to_server(1 << 20);
    assert!(pair.server.is_handshaking());
    let mut cw = pair.server.test_client_writer().unwrap();
    let mut wire = vec![20, 3, 3, 0, 1, 1];
    cw.seal_record(22, &crate::tls::messages::finished(&[0u8; 32]), &mut wire).unwrap();
    pair.server.read_tls(&wire);
    assert_eq!(pair.server.process(&mut pair.rng), Err(TlsError::DecryptError("client Finished")));
    assert!(pair.server.is_failed());
    assert!(!pair.server.test_has_resumption_secret());
}

#[test]
fn non_handshake_first_record_is_unexpected_message() {
    let mut rng = SeededEntropy::new(1);
    for first in [record(23, b"hello"), record(20, &[1]), record(21, &[1, 0, 0])] {
        let (srv, res) = run(&cfg(), &first, &mut rng);
        assert!(res.is_err(), "{first:?}");
        assert!(srv.is_failed());
        assert!(srv.tls_output().starts_with(&[21, 3, 3, 0, 2, 2]));
    }
    let (srv, res) = run(&cfg(), &record(22, &[2, 0, 0, 0]), &mut rng);
    assert!(matches!(res, Err(TlsError::UnexpectedMessage(_))));
    assert_eq!(srv.tls_output(), &plain_alert(10));
}

#[test]
fn http_request_instead_of_client_hello_is_an_alert() {
    let mut rng = SeededEntropy::new(1);
    let (srv, res) = run(&cfg(), b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", &mut rng);
    assert!(res.is_err());
    assert!(srv.is_failed());
    assert_eq!(srv.tls_output(), &plain_alert(10));
}

#[test]
fn oversized_records_and_messages_are_refused() {
    let mut rng = SeededEntropy::new(1);
    let (srv, res) = run(&cfg(), &[22, 3, 1, 0x40, 0x01], &mut rng);
    assert_eq!(res, Err(TlsError::RecordOverflow));
    assert_eq!(srv.tls_output(), &plain_alert(22));
    // A handshake header announcing 16 MiB.
    let (srv, res) = run(&cfg(), &record(22, &[1, 0xff, 0xff, 0xff]), &mut rng);
    assert!(matches!(res, Err(TlsError::Decode(_))));
    assert_eq!(srv.tls_output(), &plain_alert(50));
}

#[test]
fn input_buffer_is_bounded() {
    let c = cfg();
    let mut srv = TlsServer::new(c);
    // A large ClientHello announced but never finished: read_tls stops at
    // the cap.
    let big = vec![0u8; 1 << 20];
    let n = srv.read_tls(&big);
    assert!(n < big.len());
    assert!(n <= 2 * (5 + (1 << 14) + 256));
}

/// Seeded mutation of a real rustls ClientHello: no panic, and every
/// failure leaves a failed connection with exactly one alert at the end.
#[test]
fn mutated_client_hellos_never_panic_and_always_alert() {
    let p = pki(KeyKind::Ecdsa);
    let c = Arc::new(server_config(&p, &[b"h2"]));
    let opts = ClientOpts {
        alpn: vec![b"h2".to_vec()],
        groups: vec![rustls::crypto::ring::kx_group::X25519, rustls::crypto::ring::kx_group::SECP256R1],
        ..Default::default()
    };
    let mut seed_wire = Vec::new();
    client(&p, &opts).write_tls(&mut seed_wire).unwrap();
    let mut rng = SeededEntropy::new(42);
    let mut failures = 0;
    for _ in 0..20_000 {
        let mut m = seed_wire.clone();
        let edits = 1 + rng.u32() % 4;
        for _ in 0..edits {
            let at = rng.u32() as usize % m.len();
            match rng.u32() % 6 {
                0 => m[at] ^= 1 << (rng.u32() % 8),
                1 => m[at] = rng.u32() as u8,
                2 => m[at] = 0xff,
                3 => m[at] = 0,
                4 => m.truncate(at.max(1)),
                _ => {
                    let b = rng.u32() as u8;
                    m.insert(at, b)
                }
            }
        }
        let (srv, res) = run(&c, &m, &mut rng);
        if let Err(e) = res {
            failures += 1;
            assert!(srv.is_failed());
            let out = srv.tls_output();
            if !matches!(e, TlsError::PeerAlert(_)) {
                assert!(out.ends_with(&plain_alert(e.alert() as u8)), "{e:?} {out:?}");
            }
        } else {
            assert!(!srv.is_failed());
        }
    }
    assert!(failures > 1000, "mutations should mostly fail: {failures}");
}

#[test]
fn rejected_early_data_is_skipped_up_to_a_bound() {
    // §4.2.10: a client that offered early_data gets a 1-RTT handshake and
    // its 0-RTT records (under a key we do not have) are skipped.
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 2);
    let mut rec = Vec::new();
    pair.client.write_tls(&mut rec).unwrap();
    // Append an empty early_data extension (before any pre_shared_key: rustls
    // sends none here) and fix the lengths.
    let mut msg = rec[5..].to_vec();
    msg.extend_from_slice(&[0, 42, 0, 0]);
    let body_len = msg.len() - 4;
    msg[1..4].copy_from_slice(&(body_len as u32).to_be_bytes()[1..]);
    let sid_len = msg[4 + 34] as usize;
    let cs_at = 4 + 35 + sid_len;
    let cs_len = u16::from_be_bytes([msg[cs_at], msg[cs_at + 1]]) as usize;
    let comp_at = cs_at + 2 + cs_len;
    let ext_at = comp_at + 1 + msg[comp_at] as usize;
    let ext_len = msg.len() - ext_at - 2;
    msg[ext_at..ext_at + 2].copy_from_slice(&(ext_len as u16).to_be_bytes());
    let mut wire = record(22, &msg);
    // Two "0-RTT" records the server cannot open.
    for _ in 0..2 {
        wire.extend(record(23, &[0x55; 100]).iter().enumerate().map(|(i, b)| if i == 0 { 23 } else { *b }));
    }
    pair.feed_server(&wire, 1 << 20);
    assert!(pair.server_error.is_none(), "{:?}", pair.server_error);
    // The client's real Finished would follow (rustls rejects our transcript
    // here since we edited its hello); a record failing beyond the bound
    // is fatal.
    let big = vec![0x55u8; 16_000];
    for i in 0..5 {
        assert!(!pair.server.is_failed(), "failed after {i} records");
        let mut r = record(23, &big);
        r[0] = 23;
        pair.server.read_tls(&r);
        let _ = pair.server.process(&mut pair.rng);
    }
    assert_eq!(pair.server.error(), Some(&TlsError::BadRecordMac));
}

#[test]
fn write_key_is_updated_before_the_aead_limit() {
    // §5.5: past the soft limit we send KeyUpdate(update_not_requested)
    // and continue under the next key.
    let mut pair = connected();
    pair.server.test_set_write_seq(crate::tls::aead::AES_GCM_SOFT_LIMIT);
    let mut cr = pair.server.test_client_reader().unwrap();
    assert_eq!(pair.server.write_plaintext(b"data"), 4);
    let mut out = pair.server.tls_output().to_vec();
    let len = u16::from_be_bytes([out[3], out[4]]) as usize;
    let (first, rest) = out.split_at_mut(5 + len);
    let (t, c) = cr.open_record(first).unwrap();
    assert_eq!((t, c), (22, &[24u8, 0, 0, 1, 0][..]));
    cr.update_traffic_secret();
    let (t, c) = cr.open_record(rest).unwrap();
    assert_eq!((t, c), (23, &b"data"[..]));
}

#[test]
fn truncated_client_hello_at_every_length_is_an_alert() {
    // Consistent framing (record and handshake lengths agree) around a
    // ClientHello body cut at every byte: each one is a fatal alert.
    let p = pki(KeyKind::Ecdsa);
    let c = Arc::new(server_config(&p, &[]));
    let mut wire = Vec::new();
    client(&p, &ClientOpts::default()).write_tls(&mut wire).unwrap();
    let body = &wire[9..];
    let mut rng = SeededEntropy::new(3);
    for n in 0..body.len() {
        let msg = crate::tls::messages::handshake(1, |b| b.extend_from_slice(&body[..n]));
        let (srv, res) = run(&c, &record(22, &msg), &mut rng);
        let e = res.expect_err("truncated hello accepted");
        assert!(srv.is_failed());
        assert_eq!(srv.tls_output(), &plain_alert(e.alert() as u8), "cut at {n}: {e:?}");
    }
}

#[test]
fn every_length_field_set_too_large_is_an_alert() {
    // Each 1- and 2-byte position of a real ClientHello bumped by one:
    // lengths then overrun their parent; never a panic, always an alert or
    // a still-valid hello.
    let p = pki(KeyKind::Ecdsa);
    let c = Arc::new(server_config(&p, &[]));
    let mut wire = Vec::new();
    client(&p, &ClientOpts::default()).write_tls(&mut wire).unwrap();
    let mut rng = SeededEntropy::new(4);
    for at in 5..wire.len() {
        for delta in [1u8, 0x80] {
            let mut m = wire.clone();
            m[at] = m[at].wrapping_add(delta);
            let (srv, res) = run(&c, &m, &mut rng);
            if let Err(e) = res {
                assert!(srv.is_failed());
                assert_eq!(srv.tls_output(), &plain_alert(e.alert() as u8));
            }
        }
    }
}

#[test]
fn plaintext_can_be_read_in_place() {
    let mut pair = connected();
    let (res, _) = inject(&mut pair, &[(23, b"abc"), (23, b"def")]);
    res.unwrap();
    assert_eq!(pair.server.peek_plaintext(), b"abcdef");
    pair.server.consume_plaintext(2);
    assert_eq!(pair.server.peek_plaintext(), b"cdef");
    pair.server.consume_plaintext(100);
    assert_eq!(pair.server.plaintext_len(), 0);
}

#[test]
fn large_certificate_chain_spans_records_within_limits() {
    // Our own flight: a 40 KB chain makes Certificate span records; every
    // record stays within the limits and rustls reassembles the messages.
    let p = pki(KeyKind::Ecdsa);
    let mut cfg = server_config(&p, &[]);
    // An extra "intermediate" rustls does not need for the path.
    cfg.cert_chain.push(vec![0x30; 40_000]);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), cfg, 6);
    pair.client_to_server(1 << 20);
    assert!(pair.server_error.is_none());
    let out = pair.server.tls_output().to_vec();
    let mut at = 0;
    let mut protected = 0;
    while at + 5 <= out.len() {
        let len = u16::from_be_bytes([out[at + 3], out[at + 4]]) as usize;
        assert!(len <= (1 << 14) + 17, "record of {len}");
        protected += (out[at] == 23) as usize;
        at += 5 + len;
    }
    assert_eq!(at, out.len(), "output is whole records");
    assert!(protected >= 4, "{protected}");
    pair.handshake();
    assert_eq!(pair.client_sends(b"big chain"), b"big chain");
}
