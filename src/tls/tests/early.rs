//! 0-RTT (RFC 8446 §4.2.10, §4.5, §8) against a real rustls client: off by
//! default, accepted only from a ticket just taken from the shared store,
//! bounded by the ticket's max_early_data_size, and a replayed ClientHello
//! (byte-identical, to another server sharing the store) gets a full
//! handshake with its early data dropped.

use std::io::Write;

use rustls::HandshakeKind;

use super::handoff::round_trip;
use super::*;

fn early_client_config(p: &Pki) -> Arc<ClientConfig> {
    let mut c = (*client_config(p, &ClientOpts { alpn: vec![b"h2".to_vec()], ..Default::default() })).clone();
    c.enable_early_data = true;
    Arc::new(c)
}

fn conn(ccfg: &Arc<ClientConfig>) -> ClientConnection {
    ClientConnection::new(ccfg.clone(), ServerName::try_from("localhost").unwrap()).unwrap()
}

fn scfg(p: &Pki, max_early_data: u32) -> ServerConfig {
    let mut c = server_config(p, &[b"h2"]);
    c.max_early_data = max_early_data;
    c
}

/// A full handshake that leaves a ticket in `store` and in the client.
fn ticket(p: &Pki, ccfg: &Arc<ClientConfig>, max_early_data: u32, store: &MemStore, seed: u64) {
    let mut a = Pair::new(conn(ccfg), scfg(p, max_early_data), seed);
    a.store = Some(store.clone());
    a.handshake();
    assert_eq!(a.client.handshake_kind(), Some(HandshakeKind::Full));
    assert_eq!(a.server.tickets_sent(), 1);
}

/// A client that writes `early` as 0-RTT data before anything else.
fn early_client(ccfg: &Arc<ClientConfig>, early: &[u8]) -> ClientConnection {
    let mut c = conn(ccfg);
    let mut w = c.early_data().expect("the ticket allows early data");
    assert!(w.bytes_left() >= early.len());
    w.write_all(early).unwrap();
    c
}

#[test]
fn early_data_is_off_by_default_and_tickets_do_not_offer_it() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = early_client_config(&p);
    let store = MemStore::default();
    ticket(&p, &ccfg, 0, &store, 1);
    assert_eq!(server_config(&p, &[]).max_early_data, 0, "0-RTT is off by default");
    let id = store.ids().remove(0);
    assert_eq!(store.session(&id).max_early_data, 0);
    // No early_data extension in the ticket: rustls cannot send 0-RTT.
    let mut c = conn(&ccfg);
    assert!(c.early_data().is_none());
}

#[test]
fn tickets_carry_max_early_data_when_on() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = early_client_config(&p);
    let store = MemStore::default();
    ticket(&p, &ccfg, 5000, &store, 2);
    let id = store.ids().remove(0);
    assert_eq!(store.session(&id).max_early_data, 5000);
    // rustls read max_early_data_size 5000 from our NewSessionTicket.
    let mut c = conn(&ccfg);
    assert_eq!(c.early_data().expect("early data offered").bytes_left(), 5000);
}

#[test]
fn accepted_early_data_reaches_read_plaintext_exactly_once_and_is_counted() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = early_client_config(&p);
    let store = MemStore::default();
    ticket(&p, &ccfg, 16384, &store, 3);
    let early = data(3000, 30);
    let mut b = Pair::new(early_client(&ccfg, &early), scfg(&p, 16384), 4);
    b.store = Some(store.clone());
    b.handshake();
    assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Resumed));
    assert!(b.client.is_early_data_accepted());
    assert!(b.server.is_early_data_accepted());
    assert_eq!(b.server.early_data_len(), 3000);
    let later = data(5000, 31);
    let got = b.client_sends(&later);
    // The first read holds the early bytes, then the rest; each once.
    let mut want = early.clone();
    want.extend_from_slice(&later);
    assert_eq!(got, want);
    assert_eq!(b.server.early_data_len(), 3000);
    assert_eq!(b.server_read_all(), Vec::<u8>::new());
    assert_eq!(b.server_sends(b"reply"), b"reply");
    assert!(b.server_error.is_none(), "{:?}", b.server_error);
}

#[test]
fn early_data_rejected_when_off_is_dropped_and_resent_bytes_arrive_once() {
    // The ticket allowed early data, but this server has 0-RTT off.
    let p = pki(KeyKind::Ecdsa);
    let ccfg = early_client_config(&p);
    let store = MemStore::default();
    ticket(&p, &ccfg, 16384, &store, 5);
    let early = data(4000, 50);
    let mut b = Pair::new(early_client(&ccfg, &early), scfg(&p, 0), 6);
    b.store = Some(store.clone());
    b.handshake();
    assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Resumed));
    assert!(!b.client.is_early_data_accepted());
    assert!(!b.server.is_early_data_accepted());
    assert_eq!(b.server.early_data_len(), 0);
    assert_eq!(b.server_read_all(), Vec::<u8>::new(), "rejected early data was delivered");
    // rustls drops rejected early data ("the data is lost but the
    // connection continues"); the application sends it again.
    assert_eq!(b.client_sends(&early), early);
    assert_eq!(b.server.early_data_len(), 0);
    assert!(b.server_error.is_none(), "{:?}", b.server_error);
}

/// Runs a server alone on `bytes` until it waits for the client.
fn serve_alone(cfg: ServerConfig, store: &mut MemStore, bytes: &[u8], seed: u64) -> TlsServer {
    let mut s = TlsServer::new(Arc::new(cfg));
    let mut rng = SeededEntropy::new(seed);
    assert_eq!(s.read_tls(bytes), bytes.len());
    loop {
        s.process_with(&mut rng, store).unwrap();
        match s.take_job() {
            Some(j) => {
                let r = j.run(&mut rng);
                s.complete_job(r).unwrap();
            }
            None => break,
        }
    }
    s
}

#[test]
fn replayed_client_hello_with_early_data_gets_a_full_handshake_and_no_early_data() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = early_client_config(&p);
    let mut store = MemStore::default();
    ticket(&p, &ccfg, 16384, &store, 7);
    let early = b"GET /transfer?to=mallory HTTP/1.1\r\n\r\n".to_vec();
    let mut c = early_client(&ccfg, &early);
    let mut flight = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut flight).unwrap();
    }
    // Worker 1 gets the original: the ticket is taken, early data accepted.
    let mut s1 = serve_alone(scfg(&p, 16384), &mut store, &flight, 8);
    assert!(s1.is_resumed() && s1.is_early_data_accepted());
    assert_eq!(s1.early_data_len(), early.len());
    let mut got = vec![0u8; 100];
    let n = s1.read_plaintext(&mut got);
    assert_eq!(&got[..n], &early[..]);
    assert_eq!(store.len(), 0, "the ticket is gone");
    // Worker 2 gets a byte-identical replay: no ticket, so a full handshake
    // (Certificate and a signature), and the early records are skipped.
    let s2 = serve_alone(scfg(&p, 16384), &mut store, &flight, 9);
    assert!(!s2.is_resumed());
    assert!(!s2.is_early_data_accepted());
    assert!(s2.signature_scheme().is_some());
    assert!(!s2.is_failed(), "{:?}", s2.error());
    assert_eq!(s2.plaintext_len(), 0);
    assert_eq!(s2.early_data_len(), 0);
    // And the genuine client finishes with worker 1.
    let out = s1.tls_output().to_vec();
    s1.consume_output(out.len());
    let mut rd = &out[..];
    while !rd.is_empty() {
        c.read_tls(&mut rd).unwrap();
        c.process_new_packets().unwrap();
    }
    assert!(c.is_early_data_accepted());
    let mut fin = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut fin).unwrap();
    }
    let mut rng = SeededEntropy::new(10);
    assert_eq!(s1.read_tls(&fin), fin.len());
    s1.process_with(&mut rng, &mut store).unwrap();
    assert!(!s1.is_handshaking());
    assert_eq!(s1.plaintext_len(), 0);
}

#[test]
fn more_early_data_than_the_ticket_allows_is_unexpected_message() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = early_client_config(&p);
    let store = MemStore::default();
    ticket(&p, &ccfg, 16384, &store, 11);
    // The client was told 16384; the stored session says 1000 (the bound
    // the server enforces is the record's).
    let id = store.ids().remove(0);
    store.edit(&id, |s| s.max_early_data = 1000);
    let mut b = Pair::new(early_client(&ccfg, &data(1001, 12)), scfg(&p, 16384), 13);
    b.store = Some(store.clone());
    assert!(b.pump(1 << 20).is_err());
    assert!(matches!(b.server_error, Some(TlsError::UnexpectedMessage(_))), "{:?}", b.server_error);
    assert!(b.server.is_failed());
    assert_eq!(b.server.early_data_len(), 0);
    // Exactly at the bound is fine.
    let store = MemStore::default();
    ticket(&p, &ccfg, 16384, &store, 14);
    let id = store.ids().remove(0);
    store.edit(&id, |s| s.max_early_data = 1000);
    let mut b = Pair::new(early_client(&ccfg, &data(1000, 12)), scfg(&p, 16384), 15);
    b.store = Some(store.clone());
    b.handshake();
    assert!(b.server.is_early_data_accepted());
    assert_eq!(b.server_read_all(), data(1000, 12));
}

#[test]
fn early_data_is_not_accepted_when_the_alpn_differs() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = early_client_config(&p);
    let mut store = MemStore::default();
    ticket(&p, &ccfg, 16384, &store, 16);
    let id = store.ids().remove(0);
    store.edit(&id, |s| s.alpn = Some(b"http/1.1".to_vec()));
    let mut c = early_client(&ccfg, b"early");
    let mut flight = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut flight).unwrap();
    }
    let s = serve_alone(scfg(&p, 16384), &mut store, &flight, 17);
    assert!(s.is_resumed() && !s.is_early_data_accepted());
    assert_eq!(s.plaintext_len(), 0);
    assert!(!s.is_failed(), "{:?}", s.error());
}

#[test]
fn handoff_at_every_step_of_a_connection_with_early_data() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = early_client_config(&p);
    let store = MemStore::default();
    ticket(&p, &ccfg, 16384, &store, 18);
    let early = data(2000, 19);
    let mut b = Pair::new(early_client(&ccfg, &early), scfg(&p, 16384), 20);
    b.store = Some(store.clone());
    b.hook = Some(Box::new(round_trip));
    b.record_split = true;
    b.handshake();
    assert!(b.client.is_early_data_accepted() && b.server.is_early_data_accepted());
    assert_eq!(b.server.early_data_len(), 2000);
    let mut want = early.clone();
    want.extend_from_slice(b"later");
    assert_eq!(b.client_sends(b"later"), want);
    assert!(b.server_error.is_none(), "{:?}", b.server_error);
}

#[test]
fn version_2_state_without_early_fields_still_decodes() {
    use crate::codec::{Reader, Writer};
    let p = pki(KeyKind::Ecdsa);
    let mut a = Pair::new(client(&p, &ClientOpts::default()), server_config(&p, &[]), 21);
    a.handshake();
    let mut w = Writer::new();
    a.server.encode(&mut w);
    let mut b = w.finish().to_vec();
    // v5 (4 bytes), then v4 (2 bytes): not in a version-2 state.
    assert_eq!(&b[b.len() - 6..], &[0; 6]);
    b.truncate(b.len() - 6);
    assert_eq!(&b[b.len() - 10..], &[0; 10]);
    b.truncate(b.len() - 10);
    b[2..4].copy_from_slice(&2u16.to_le_bytes());
    let back = TlsServer::decode(&mut Reader::new(&b), a.cfg.clone()).unwrap();
    assert!(!back.is_handshaking() && !back.is_early_data_accepted() && back.early_data_len() == 0);
}

/// A server that accepted early data from a ClientHello, and a copy of
/// the client's early write key (at the next record).
fn accepted_alone(seed: u64) -> (TlsServer, crate::tls::aead::RecordProtector, MemStore) {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = early_client_config(&p);
    let mut store = MemStore::default();
    ticket(&p, &ccfg, 16384, &store, seed);
    let mut c = early_client(&ccfg, b"early");
    let mut flight = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut flight).unwrap();
    }
    let s = serve_alone(scfg(&p, 16384), &mut store, &flight, seed + 1);
    assert!(s.is_early_data_accepted());
    let w = s.test_client_early_writer().expect("early key");
    (s, w, store)
}

#[test]
fn only_end_of_early_data_may_come_under_the_early_key() {
    type Check = fn(&TlsError) -> bool;
    let cases: [(&[u8], Check); 3] = [
        // A Finished under the early key (§4.5).
        (&[20, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], |e| {
            matches!(e, TlsError::UnexpectedMessage(_))
        }),
        // EndOfEarlyData with a body.
        (&[5, 0, 0, 1, 0], |e| matches!(e, TlsError::Decode(_))),
        // EndOfEarlyData not ending its record (§5.1 key change).
        (&[5, 0, 0, 0, 24, 0], |e| matches!(e, TlsError::UnexpectedMessage(_))),
    ];
    for (i, (msg, ok)) in cases.iter().enumerate() {
        let (mut s, mut w, mut store) = accepted_alone(40 + 2 * i as u64);
        let mut rec = Vec::new();
        w.seal_record(22, msg, &mut rec).unwrap();
        assert_eq!(s.read_tls(&rec), rec.len());
        let e = s.process_with(&mut SeededEntropy::new(1), &mut store).unwrap_err();
        assert!(ok(&e), "case {i}: {e:?}");
        assert!(s.is_failed());
    }
}

#[test]
fn a_record_that_does_not_open_under_the_early_key_is_fatal() {
    let (mut s, _, mut store) = accepted_alone(50);
    // Sealed under some other key: bad_record_mac, not skipped.
    let mut other = crate::tls::aead::RecordProtector::new(CipherSuite::Aes128GcmSha256, &[9u8; 32]);
    let mut rec = Vec::new();
    other.seal_record(23, b"forged", &mut rec).unwrap();
    assert_eq!(s.read_tls(&rec), rec.len());
    let e = s.process_with(&mut SeededEntropy::new(1), &mut store).unwrap_err();
    assert!(matches!(e, TlsError::BadRecordMac), "{e:?}");
    assert_eq!(s.plaintext_len(), "early".len());
}

#[test]
fn early_data_before_a_hello_retry_request_is_skipped() {
    use rustls::crypto::ring::kx_group;
    let p = pki(KeyKind::Ecdsa);
    let opts = ClientOpts { alpn: vec![b"h2".to_vec()], groups: vec![kx_group::X25519, kx_group::SECP256R1], ..Default::default() };
    let mut ccfg = (*client_config(&p, &opts)).clone();
    ccfg.enable_early_data = true;
    let ccfg = Arc::new(ccfg);
    let store = MemStore::default();
    let hrr_cfg = |g| {
        let mut c = scfg(&p, 16384);
        c.groups = vec![g];
        c
    };
    // rustls remembers that this server wanted P-256 and sends only that
    // share next time; the next server wants X25519: a retry.
    let mut a = Pair::new(conn(&ccfg), hrr_cfg(NamedGroup::Secp256r1), 60);
    a.store = Some(store.clone());
    a.handshake();
    assert_eq!(a.client.handshake_kind(), Some(HandshakeKind::FullWithHelloRetryRequest));
    let early = data(3000, 61);
    let mut b = Pair::new(early_client(&ccfg, &early), hrr_cfg(NamedGroup::X25519), 62);
    b.store = Some(store.clone());
    b.handshake();
    assert_eq!(b.server.group(), Some(NamedGroup::X25519));
    assert!(b.server.is_resumed());
    assert!(!b.client.is_early_data_accepted() && !b.server.is_early_data_accepted());
    assert_eq!(b.server_read_all(), Vec::<u8>::new());
    assert_eq!(b.client_sends(b"again"), b"again");
    assert!(b.server_error.is_none(), "{:?}", b.server_error);
}

/// rustls measures the ticket age on its own (real) clock: about 0 ms
/// here. Our store's clock says 60 s: outside the 10 s window (§8.3), so
/// the ticket resumes, the early data is rejected and skipped (§4.2.10),
/// and the bytes the client sends again arrive once.
#[test]
fn early_data_with_a_ticket_age_far_from_ours_is_rejected_but_the_ticket_resumes() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = early_client_config(&p);
    let store = MemStore::default();
    ticket(&p, &ccfg, 16384, &store, 41);
    store.set_clock(crate::time::Instant::from_millis(60_000));
    let early = data(2000, 42);
    let mut b = Pair::new(early_client(&ccfg, &early), scfg(&p, 16384), 43);
    b.store = Some(store.clone());
    b.handshake();
    assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Resumed));
    assert_eq!(b.server.ticket_age(), Some(crate::tls::TicketAge::Skewed));
    assert!(!b.client.is_early_data_accepted() && !b.server.is_early_data_accepted());
    assert_eq!(b.server_read_all(), Vec::<u8>::new(), "rejected early data was delivered");
    assert_eq!(b.client_sends(&early), early);
    assert_eq!(b.server.early_data_len(), 0);
    assert!(b.server_error.is_none(), "{:?}", b.server_error);
}

/// The same ticket 5 s later on our clock: within the window, accepted.
#[test]
fn early_data_with_a_ticket_age_within_the_window_is_accepted() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = early_client_config(&p);
    let store = MemStore::default();
    ticket(&p, &ccfg, 16384, &store, 44);
    store.set_clock(crate::time::Instant::from_millis(5_000));
    let early = data(2000, 45);
    let mut b = Pair::new(early_client(&ccfg, &early), scfg(&p, 16384), 46);
    b.store = Some(store.clone());
    b.handshake();
    assert!(b.server.is_early_data_accepted() && b.client.is_early_data_accepted());
    assert_eq!(b.server.ticket_age(), Some(crate::tls::TicketAge::Fresh));
    assert_eq!(b.server_read_all(), early);
}

/// A ticket the client still holds, but as old as its lifetime on our
/// clock (rustls believes it is fresh): a full handshake (§4.6.1).
#[test]
fn ticket_past_its_lifetime_on_the_store_clock_gets_a_full_handshake() {
    let p = pki(KeyKind::Ecdsa);
    let ccfg = early_client_config(&p);
    let store = MemStore::default();
    ticket(&p, &ccfg, 0, &store, 47);
    store.set_clock(crate::time::Instant::from_millis(7_200_000));
    let mut b = Pair::new(conn(&ccfg), scfg(&p, 0), 48);
    b.store = Some(store.clone());
    b.handshake();
    assert_eq!(b.client.handshake_kind(), Some(HandshakeKind::Full));
    assert_eq!(b.server.ticket_age(), Some(crate::tls::TicketAge::Expired));
    assert_eq!(b.server_sends(b"after"), b"after");
}
