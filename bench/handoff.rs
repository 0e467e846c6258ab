//! Cross-worker handoff latency (issue 3): one live proxied connection,
//! mid-transfer, moved between two workers 2,000 times. Times the giver's
//! step (export, seal, put into the session table, purge) and the taker's
//! (take, open, import, first service pass with its transmissions), and
//! prints p50/p99 of each beside the session-table step alone (put + take
//! of a record of the same size) measured in the same run; the DESIGN goal
//! is p99 ≤ 2 µs for the table step.
//!
//!     cargo bench --bench handoff

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Instant as Clock;

use baton::time::Duration;
use common::multi::MultiSim;
use common::tlsclient::{client_config, BackendApp, ClientApp};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("baton-bench-handoff-{}", std::process::id()));
    let g = baton::demo::certs::generate(&dir, &["baton.test"], &[]).unwrap();
    let chain = baton::tls::load_cert_chain_pem(&std::fs::read(&g.cert).unwrap()).unwrap();
    let key = baton::tls::SigningKey::from_pem(&std::fs::read(&g.key).unwrap()).unwrap();
    let tls = Arc::new(baton::tls::ServerConfig::new(chain, key, vec![]).unwrap());
    let ca = std::fs::read(&g.ca).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let mut sim = MultiSim::new(tls, 2, 7);
    for w in sim.workers.iter_mut() {
        w.set_move_settle(Duration::ZERO);
    }
    let mut client = ClientApp::new(&mut sim.client, client_config(&ca, None, None, &[]), "baton.test", vec![1u8; 64 * 1024], 40000);
    let mut backend = BackendApp::new(&mut sim.backend, 64 << 20);
    // Get the connection into the middle of a transfer on worker 0.
    let mut steps = 0;
    while client.downloaded.len() < 256 * 1024 && steps < 20_000 {
        client.step(&mut sim.client);
        backend.step(&mut sim.backend);
        sim.step(&mut |_, _| 0);
        sim.now_ms += 1;
        steps += 1;
    }
    assert!(client.downloaded.len() >= 256 * 1024, "transfer did not start");
    let cf = sim.workers[0].client_flows()[0];
    let state = sim.workers[0].describe_conns().join("");
    let t0 = baton::time::Instant::from_millis(sim.now_ms);
    let exported = sim.workers[0].export_conn(&cf, t0).expect("export");
    let rec_len = exported.len();
    // export_conn purged it; import puts it back whole on the same worker.
    sim.workers[0].import_conn(&exported, t0).expect("import");
    drop(exported);
    let now = baton::time::Instant::from_millis(sim.now_ms);
    let n = 2000;
    let (mut give, mut take, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    let mut from = 0usize;
    for _ in 0..n {
        let to = 1 - from;
        let occupied_before = sim.fabric.conn_records();
        let t = Clock::now();
        assert!(sim.workers[from].hand_over(&cf, to, now), "hand_over refused");
        give.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(sim.fabric.conn_records(), occupied_before + 1);
        let t = Clock::now();
        sim.workers[to].poll(now, &mut |_| {});
        take.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(sim.workers[to].conn_count(), 1, "taker did not import");
        assert_eq!(sim.workers[from].conn_count(), 0, "giver still holds it");
        from = to;
    }
    // The table step alone, on a record of the typical size.
    let size = rec_len + baton::session::seal::OVERHEAD;
    sizes.push(size);
    let rec = vec![0x5au8; size];
    let mut out = Vec::new();
    let mut table = Vec::new();
    for i in 0..n as u64 {
        let id = i.to_be_bytes();
        let t = Clock::now();
        // As the workers do it: the small-slot table when the record fits.
        let small = sim.fabric.put_conn(&id, &rec, now + Duration::from_secs(5), now).unwrap();
        assert!(sim.fabric.take_conn(&id, small, now, &mut out));
        table.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!("cross-worker handoff of one live connection mid-transfer, {n} moves, record {rec_len} bytes");
    println!("  state: {}", state.chars().take(300).collect::<String>());
    println!("  giver: export + seal + put + purge   p50 {:7.1} µs  p99 {:7.1} µs", pct(&mut give, 0.5), pct(&mut give, 0.99));
    println!("  taker: take + open + import + serve  p50 {:7.1} µs  p99 {:7.1} µs", pct(&mut take, 0.5), pct(&mut take, 0.99));
    let t99 = pct(&mut table, 0.99);
    println!("  table step alone (put + take, {} B)    p50 {:7.2} µs  p99 {:7.2} µs  goal/p99 {:.2} (goal 2 µs)", size, pct(&mut table, 0.5), t99, 2.0 / t99);
}
