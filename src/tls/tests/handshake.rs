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
