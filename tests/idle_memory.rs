//! DESIGN.md "Targets": at most 8 KiB per idle proxied connection, both
//! flows included. An idle connection is one that has done its handshake
//! and some traffic and now waits (a kept-alive client). This test binary
//! counts live heap bytes; what a connection holds is what its removal
//! frees, plus its slot in the worker's table (`Worker::slot_bytes`).
mod common;
mod count_alloc;

use common::multi::MultiSim;
use common::tlsclient::{client_config, test_server_tls, BackendApp, ClientApp};

#[global_allocator]
static GLOBAL: count_alloc::CountAlloc = count_alloc::CountAlloc;

/// Per connection: (heap bytes its removal frees, slot bytes).
fn idle_footprint(up: usize, down: usize) -> (isize, usize) {
    let _only_me = count_alloc::exclusive();
    const N: usize = 6;
    let (ca, tls) = test_server_tls("idle");
    let ccfg = client_config(&ca, None, None, &[]);
    let mut sim = MultiSim::new(tls, 1, 91);
    let mut apps = Vec::new();
    for i in 0..N {
        let client = ClientApp::new(&mut sim.client, ccfg.clone(), "baton.test", vec![7u8; up], 42000 + i as u16);
        let backend = BackendApp::new(&mut sim.backend, down);
        apps.push((client, backend));
        // One at a time: the sim's backend listens on one socket.
        let (client, backend) = apps.last_mut().unwrap();
        let mut steps = 0;
        while !(client.uploaded == up && client.downloaded.len() == down && backend.received.len() == up) {
            client.step(&mut sim.client);
            backend.step(&mut sim.backend);
            sim.step(&mut |_, _| 0);
            sim.now_ms += 1;
            steps += 1;
            assert!(steps < 10_000, "connection {i}: {} of {down} down, {} of {up} up", client.downloaded.len(), backend.received.len());
        }
    }
    // Idle: ACKs settle, delayed ACK timers fire.
    for _ in 0..500 {
        sim.step(&mut |_, _| 0);
        sim.now_ms += 1;
    }
    assert_eq!(sim.conns(), N);
    let flows = sim.workers[0].client_flows();
    let now = baton::time::Instant::from_millis(sim.now_ms);
    let before = count_alloc::live();
    for f in &flows {
        // The export's own buffer is freed when it is dropped here.
        drop(sim.workers[0].export_conn(f, now).expect("export"));
    }
    let freed = before - count_alloc::live();
    assert_eq!(sim.conns(), 0);
    (freed / N as isize, sim.workers[0].slot_bytes())
}

/// Asserts the DESIGN.md bound for a connection idle after `up`/`down` bytes.
fn assert_idle_within_8_kib(up: usize, down: usize) {
    let (heap, slot) = idle_footprint(up, down);
    let total = heap + slot as isize;
    eprintln!("idle after {up} B up / {down} B down: heap {heap} B + slot {slot} B = {total} B");
    assert!(total <= 8192, "an idle connection holds {total} B (heap {heap} + slot {slot})");
}

#[test]
fn an_idle_connection_after_a_download_holds_at_most_8_kib() {
    assert_idle_within_8_kib(300, 200_000);
}

#[test]
fn an_idle_connection_after_its_handshake_holds_at_most_8_kib() {
    assert_idle_within_8_kib(100, 100);
}
