//! Resumption on any worker, end to end through `Worker` instances (issue 3
//! §3): a rustls client's first connection is served by worker 0, its
//! second (same client config, so it offers the ticket) by worker 1, which
//! takes the session from the shared table and resumes; a third resumes on
//! worker 0 with the ticket worker 1 issued. Single use is checked at the
//! table (one take per resumption, one fresh ticket left behind); replays
//! of a used ticket are in tests/resume_workers.rs.

mod common;

use std::sync::Arc;

use common::multi::MultiSim;
use common::tlsclient::{client_config, pattern, BackendApp, ClientApp};
use common::sha256_hex;
use rustls::HandshakeKind;

fn tls() -> (Vec<u8>, Arc<baton::tls::ServerConfig>) {
    common::tlsclient::test_server_tls("resume-e2e")
}

/// One whole proxied connection, every frame to worker `w`.
fn connection(sim: &mut MultiSim, ccfg: &Arc<rustls::ClientConfig>, w: usize, port: u16) -> Option<HandshakeKind> {
    let upload = pattern(10_000);
    let mut client = ClientApp::new(&mut sim.client, ccfg.clone(), "baton.test", upload.clone(), port);
    let mut backend = BackendApp::new(&mut sim.backend, 20_000);
    for _ in 0..20_000 {
        client.step(&mut sim.client);
        backend.step(&mut sim.backend);
        sim.step(&mut |_, _| w);
        assert!(client.error.is_none(), "client error: {:?}", client.error);
        if client.done() && backend.closed && sim.conns() == 0 {
            break;
        }
        sim.now_ms += 1;
    }
    assert!(client.got_close, "connection on worker {w} did not finish");
    assert_eq!(sha256_hex(&backend.received), sha256_hex(&upload));
    assert_eq!(sha256_hex(&client.downloaded), sha256_hex(&pattern(20_000)));
    client.conn.handshake_kind()
}

#[test]

fn second_connection_resumes_on_the_other_worker() {
    let (ca, cfg) = tls();
    let mut sim = MultiSim::new(cfg, 2, 91);
    let ccfg = client_config(&ca, None, None, &[]);
    assert_eq!(connection(&mut sim, &ccfg, 0, 41000), Some(HandshakeKind::Full));
    assert_eq!(sim.fabric.tickets.occupied(), 1, "one ticket in the table");
    assert_eq!(connection(&mut sim, &ccfg, 1, 41001), Some(HandshakeKind::Resumed));
    // The used ticket is gone; the resumed connection left a fresh one.
    assert_eq!(sim.fabric.tickets.occupied(), 1);
    let st = sim.fabric.tickets.stats();
    assert_eq!((st.puts, st.takes), (2, 1));
    assert_eq!(connection(&mut sim, &ccfg, 0, 41002), Some(HandshakeKind::Resumed));
}
