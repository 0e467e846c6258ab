//! Full handshakes and data transfer with rustls.

use super::*;

fn full(kind: KeyKind, suite: CipherSuite, group: NamedGroup) {
    let p = pki(kind);
    let opts = ClientOpts { suites: vec![suite], groups: vec![rustls_group(group)], ..Default::default() };
    let mut pair = Pair::new(client(&p, &opts), server_config(&p, &[]), 7);
    pair.handshake();
    assert_eq!(pair.server.suite(), Some(suite));
    assert_eq!(pair.server.group(), Some(group));
    assert_eq!(pair.client.negotiated_cipher_suite().unwrap().suite(), rustls_suite(suite).suite());
    assert_eq!(pair.server.sni(), Some("localhost"));
    assert_eq!(pair.client_sends(b"hello server"), b"hello server");
    assert_eq!(pair.server_sends(b"hello client"), b"hello client");
}

#[test]
fn handshake_aes128_x25519_ecdsa_and_data() {
    full(KeyKind::Ecdsa, CipherSuite::Aes128GcmSha256, NamedGroup::X25519);
}

#[test]
fn handshake_every_suite_and_group() {
    for suite in CipherSuite::ALL {
        for group in [NamedGroup::X25519, NamedGroup::Secp256r1] {
            full(KeyKind::Ecdsa, suite, group);
        }
    }
}

#[test]
fn handshake_rsa_pss_certificate() {
    full(KeyKind::Rsa, CipherSuite::Aes256GcmSha384, NamedGroup::X25519);
}

#[test]
fn handshake_ed25519_certificate() {
    full(KeyKind::Ed25519, CipherSuite::Chacha20Poly1305Sha256, NamedGroup::Secp256r1);
}

#[test]
fn hello_retry_request_when_no_usable_key_share() {
    use rustls::crypto::ring::kx_group;
    let p = pki(KeyKind::Ecdsa);
    // rustls sends a share only for its first group, secp256r1; the server
    // only does x25519, which the client lists second.
    let opts = ClientOpts { groups: vec![kx_group::SECP256R1, kx_group::X25519], ..Default::default() };
    let mut cfg = server_config(&p, &[]);
    cfg.groups = vec![NamedGroup::X25519];
    let mut pair = Pair::new(client(&p, &opts), cfg, 3);
    pair.client_to_server(1 << 20);
    assert!(pair.server.is_handshaking());
    let out = pair.server.tls_output().to_vec();
    // A plaintext handshake record with the HRR random, then one dummy CCS
    // (rustls uses a non-empty legacy_session_id, §D.4).
    assert_eq!(out[0], 22);
    assert_eq!(&out[5 + 6..5 + 38], &crate::tls::messages::HRR_RANDOM);
    assert_eq!(&out[out.len() - 6..], &[20, 3, 3, 0, 1, 1]);
    pair.handshake();
    assert_eq!(pair.server.group(), Some(NamedGroup::X25519));
    assert_eq!(pair.client.negotiated_key_exchange_group().unwrap().name(), rustls::NamedGroup::X25519);
    assert_eq!(pair.client_sends(b"after retry"), b"after retry");
    assert_eq!(pair.server_sends(b"ok"), b"ok");
}

#[test]
fn hello_retry_request_with_sha384_suite() {
    use rustls::crypto::ring::kx_group;
    let p = pki(KeyKind::Ecdsa);
    let opts = ClientOpts {
        suites: vec![CipherSuite::Aes256GcmSha384],
        groups: vec![kx_group::X25519, kx_group::SECP256R1],
        ..Default::default()
    };
    let mut cfg = server_config(&p, &[]);
    cfg.groups = vec![NamedGroup::Secp256r1];
    let mut pair = Pair::new(client(&p, &opts), cfg, 4);
    pair.handshake();
    assert_eq!(pair.server.group(), Some(NamedGroup::Secp256r1));
    assert_eq!(pair.server_sends(b"ok"), b"ok");
}

#[test]
fn alpn_selects_first_server_protocol_the_client_offers() {
    let p = pki(KeyKind::Ecdsa);
    let opts = ClientOpts { alpn: vec![b"http/1.1".to_vec(), b"h2".to_vec()], ..Default::default() };
    let mut pair = Pair::new(client(&p, &opts), server_config(&p, &[b"h2", b"http/1.1"]), 1);
    pair.handshake();
    assert_eq!(pair.server.alpn(), Some(&b"h2"[..]));
    assert_eq!(pair.client.alpn_protocol(), Some(&b"h2"[..]));

    let opts = ClientOpts { alpn: vec![b"http/1.1".to_vec()], ..Default::default() };
    let mut pair = Pair::new(client(&p, &opts), server_config(&p, &[b"h2", b"http/1.1"]), 1);
    pair.handshake();
    assert_eq!(pair.client.alpn_protocol(), Some(&b"http/1.1"[..]));

    // Client without ALPN: none selected, handshake fine.
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[b"h2"]), 1);
    pair.handshake();
    assert_eq!(pair.server.alpn(), None);
}

#[test]
fn alpn_without_overlap_is_no_application_protocol() {
    let p = pki(KeyKind::Ecdsa);
    let opts = ClientOpts { alpn: vec![b"spdy/3".to_vec()], ..Default::default() };
    let mut pair = Pair::new(client(&p, &opts), server_config(&p, &[b"h2"]), 1);
    let err = pair.pump(1 << 20).unwrap_err();
    assert_eq!(pair.server_error, Some(TlsError::NoApplicationProtocol));
    assert!(pair.server.is_failed());
    assert_eq!(err, rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol));
}

#[test]
fn sni_is_read() {
    let p = pki(KeyKind::Ecdsa);
    let opts = ClientOpts { name: "example.com", ..Default::default() };
    let mut pair = Pair::new(client(&p, &opts), server_config(&p, &[]), 1);
    pair.handshake();
    assert_eq!(pair.server.sni(), Some("example.com"));
}

#[test]
fn one_mebibyte_each_way_arrives_intact() {
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 9);
    pair.handshake();
    let up = data(1 << 20, 1);
    let down = data(1 << 20, 2);
    let got = pair.client_sends(&up);
    assert_eq!(got.len(), up.len());
    assert_eq!(sha256(&got), sha256(&up));
    let got = pair.server_sends(&down);
    assert_eq!(sha256(&got), sha256(&down));
}

#[test]
fn client_key_update_is_answered_before_more_data() {
    // Case T4 and T5: many KeyUpdates (update_requested) with data between.
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 5);
    pair.handshake();
    for i in 0..100u32 {
        pair.client.refresh_traffic_keys().unwrap();
        let msg = format!("message {i}");
        assert_eq!(pair.client_sends(msg.as_bytes()), msg.as_bytes());
        // rustls would fail to read this if we had not switched our write
        // keys in step with its read keys.
        assert_eq!(pair.server_sends(msg.as_bytes()), msg.as_bytes());
    }
}

#[test]
fn key_updates_in_a_row_without_data_are_limited() {
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 5);
    pair.handshake();
    let limit = pair.cfg.max_key_updates_in_row;
    for _ in 0..limit {
        pair.client.refresh_traffic_keys().unwrap();
        pair.client_to_server(1 << 20);
        pair.server_to_client().unwrap();
    }
    assert!(!pair.server.is_failed());
    pair.client.refresh_traffic_keys().unwrap();
    pair.client_to_server(1 << 20);
    assert!(pair.server.is_failed());
    assert!(matches!(pair.server_error, Some(TlsError::UnexpectedMessage(_))));
}

#[test]
fn close_notify_both_ways() {
    // Case T7: our close_notify reaches the client as a clean EOF.
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 5);
    pair.handshake();
    pair.server.write_plaintext(b"bye");
    pair.server.send_close_notify();
    assert!(pair.server.wants_write());
    assert_eq!(pair.server.write_plaintext(b"more"), 0);
    pair.server_to_client().unwrap();
    assert_eq!(pair.client_read_all(), b"bye");
    assert!(pair.client_eof, "clean EOF after close_notify");

    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 5);
    pair.handshake();
    pair.client.writer().write_all(b"last").unwrap();
    pair.client.send_close_notify();
    pair.client_to_server(1 << 20);
    assert!(pair.server.received_close_notify());
    assert!(!pair.server.is_failed());
    assert_eq!(pair.server_read_all(), b"last");
}

#[test]
fn client_hello_in_tiny_records_is_reassembled() {
    // Case T1: the ClientHello re-framed into 1- and 2-byte records, so
    // even the handshake header is cut; fed to the server 3 bytes at a time.
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 5);
    let mut ch = Vec::new();
    pair.client.write_tls(&mut ch).unwrap();
    let body = &ch[5..];
    let mut reframed = Vec::new();
    let mut i = 0;
    let mut size = 1;
    while i < body.len() {
        let n = size.min(body.len() - i);
        reframed.extend_from_slice(&[22, 3, 1, 0, n as u8]);
        reframed.extend_from_slice(&body[i..i + n]);
        i += n;
        size = 3 - size;
    }
    pair.feed_server(&reframed, 3);
    assert!(pair.server_error.is_none(), "{:?}", pair.server_error);
    pair.handshake();
    assert_eq!(pair.client_sends(b"x"), b"x");
}

#[test]
fn large_client_hello_across_records_is_buffered() {
    // Case T2: a ClientHello of ~40 KiB (a big unknown extension), split
    // into 16 KiB records and fed in 1460-byte segments.
    let p = pki(KeyKind::Ecdsa);
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 5);
    let mut rec = Vec::new();
    pair.client.write_tls(&mut rec).unwrap();
    let mut msg = rec[5..].to_vec();
    // Append an extension 0xfafa of 40000 bytes; fix up the lengths.
    let big = 40_000usize;
    msg.extend_from_slice(&[0xfa, 0xfa]);
    msg.extend_from_slice(&(big as u16).to_be_bytes());
    msg.extend(std::iter::repeat_n(0x41, big));
    let body_len = msg.len() - 4;
    msg[1..4].copy_from_slice(&(body_len as u32).to_be_bytes()[1..]);
    // extensions length is right after compression methods
    let sid_len = msg[4 + 34] as usize;
    let cs_at = 4 + 35 + sid_len;
    let cs_len = u16::from_be_bytes([msg[cs_at], msg[cs_at + 1]]) as usize;
    let comp_at = cs_at + 2 + cs_len;
    let ext_at = comp_at + 1 + msg[comp_at] as usize;
    let ext_len = msg.len() - ext_at - 2;
    msg[ext_at..ext_at + 2].copy_from_slice(&(ext_len as u16).to_be_bytes());
    let mut wire = Vec::new();
    for c in msg.chunks(16384) {
        wire.extend_from_slice(&[22, 3, 1]);
        wire.extend_from_slice(&(c.len() as u16).to_be_bytes());
        wire.extend_from_slice(c);
    }
    assert!(wire.len() > 3 * 1460);
    pair.feed_server(&wire, 1460);
    assert!(pair.server_error.is_none(), "{:?}", pair.server_error);
    // The transcript includes our modified ClientHello, so rustls' Finished
    // check fails on its side; what matters is that we answered normally.
    let out = pair.server.tls_output();
    assert_eq!(out[0], 22);
    assert_eq!(out[5], 2, "ServerHello");
}

#[test]
fn small_plaintext_buffer_applies_backpressure_without_loss() {
    let p = pki(KeyKind::Ecdsa);
    let mut cfg = server_config(&p, &[]);
    cfg.max_plaintext_buffer = 4096;
    let mut pair = Pair::new(client(&p, &ClientOpts::default()), cfg, 9);
    pair.handshake();
    let up = data(200_000, 3);
    let got = pair.client_sends(&up);
    assert_eq!(got.len(), up.len());
    let first_diff = got.iter().zip(&up).position(|(a, b)| a != b);
    assert_eq!(first_diff, None);
    // Directly: 60 KB at once fills the plaintext buffer, processing stops,
    // the input buffer fills and read_tls takes less than offered.
    let burst = data(60_000, 4);
    pair.client.writer().write_all(&burst).unwrap();
    let mut wire = Vec::new();
    while pair.client.wants_write() {
        pair.client.write_tls(&mut wire).unwrap();
    }
    let mut off = pair.server.read_tls(&wire);
    pair.server.process(&mut pair.rng).unwrap();
    off += pair.server.read_tls(&wire[off..]);
    assert!(off < wire.len(), "input buffer is bounded");
    assert!(pair.server.plaintext_len() >= 4096 && pair.server.plaintext_len() <= 4096 + 16384);
    let mut got = Vec::new();
    while got.len() < burst.len() {
        let mut buf = vec![0u8; 1000];
        let n = pair.server.read_plaintext(&mut buf);
        got.extend_from_slice(&buf[..n]);
        off += pair.server.read_tls(&wire[off..]);
        pair.server.process(&mut pair.rng).unwrap();
    }
    assert_eq!(got, burst);
    // Output is bounded too: write_plaintext takes at most about the cap.
    let n = pair.server.write_plaintext(&up);
    assert!(n > 0 && n <= 4096, "{n}");
    assert!(pair.server.tls_output().len() <= 4096 + 22);
    let down = pair.server_sends(&up[n..]);
    assert_eq!(down.len(), up.len());
}
