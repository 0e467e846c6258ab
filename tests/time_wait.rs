//! What a connection holds while its client flow waits out TIME_WAIT
//! (RFC 9293 §3.6.1): baton closed first (the backend closed, baton sent
//! close_notify and FIN), so the flow lingers for `TcpConfig::time_wait`.
//! Only the TCP flow has a reason to stay; the TLS keys, the backend leg
//! and the buffers must be gone. This test binary counts live heap bytes.
mod common;
mod count_alloc;

use common::multi::MultiSim;
use common::tlsclient::{client_config, pattern, test_server_tls, BackendApp, ClientApp};

#[global_allocator]
static GLOBAL: count_alloc::CountAlloc = count_alloc::CountAlloc;

/// The backend ends the download: baton closes the client flow first, so
/// the client flow waits out TIME_WAIT on baton.
#[test]
fn a_connection_in_time_wait_holds_only_its_tcp_flow() {
    lingering_connections_hold_only_tcp_state(true);
}

/// The client closes first: baton passes the EOF on and closes the backend
/// flow first, so that one waits out TIME_WAIT (regression: only the
/// client-side TIME_WAIT retired the TLS state; found in review).
#[test]
fn a_connection_whose_backend_flow_is_in_time_wait_holds_only_tcp_state() {
    lingering_connections_hold_only_tcp_state(false);
}

fn lingering_connections_hold_only_tcp_state(backend_closes_first: bool) {
    let _only_me = count_alloc::exclusive();
    const N: usize = 6;
    let (ca, tls) = test_server_tls("timewait");
    let ccfg = client_config(&ca, None, None, &[]);
    let mut sim = MultiSim::new(tls, 1, 77);
    let mut clients = Vec::new();
    let mut backends = Vec::new();
    // N connections one after the other, each a 300 KB download that the
    // backend ends (close_first), so baton closes the client flow first.
    for i in 0..N {
        let mut client = ClientApp::new(&mut sim.client, ccfg.clone(), "baton.test", pattern(2000), 41000 + i as u16);
        client.close_after_server = backend_closes_first;
        let mut backend = BackendApp::new(&mut sim.backend, 300_000);
        backend.close_first = backend_closes_first;
        let mut steps = 0;
        while !(client.done() && backend.closed) {
            client.step(&mut sim.client);
            backend.step(&mut sim.backend);
            sim.step(&mut |_, _| 0);
            sim.now_ms += 1;
            steps += 1;
            assert!(steps < 5000, "connection {i} did not finish");
        }
        assert!(client.error.is_none(), "{:?}", client.error);
        assert_eq!(common::sha256_hex(&client.downloaded), common::sha256_hex(&(0..300_000u64).map(baton::demo::backend::pattern_byte).collect::<Vec<u8>>()));
        // Let the last ACKs settle.
        for _ in 0..50 {
            client.step(&mut sim.client);
            backend.step(&mut sim.backend);
            sim.step(&mut |_, _| 0);
            sim.now_ms += 1;
        }
        clients.push(client);
        backends.push(backend);
    }
    let lingering = sim.conns();
    let held = count_alloc::live();
    assert_eq!(sim.workers[0].time_wait_count(), lingering, "the TIME_WAIT gauge");
    // Past TIME_WAIT: baton removes them.
    for _ in 0..3000 {
        sim.step(&mut |_, _| 0);
        sim.now_ms += 1;
    }
    assert_eq!(sim.conns(), 0, "still held after TIME_WAIT");
    assert_eq!(sim.workers[0].time_wait_count(), 0);
    let after = count_alloc::live();
    let per_conn = (held - after) / lingering.max(1) as isize;
    eprintln!("{lingering} connections in TIME_WAIT held {per_conn} B each");
    assert_eq!(lingering, N, "baton closed one flow first, so every connection waits out TIME_WAIT on baton");
    assert!(per_conn < 2048, "a TIME_WAIT connection holds {per_conn} B");
}
