//! "A scan of the giver's memory finds none of the moved key bytes"
//! (issue 3, DESIGN.md "The invariant"). This test binary installs a
//! global allocator that, while a scan is armed, looks through every block
//! freed for the TLS traffic secrets of the connection (taken from the
//! rustls client's key log). A connection is handed from worker 0 to
//! worker 1 at several points of its life; every block the giver frees in
//! the move must have been wiped first, and the giver must hold nothing
//! afterwards. (Regression: the state encoder's buffer grew like a plain
//! Vec, freeing copies of the secrets unwiped on every reallocation.)
//!
//! The allocator is the one `unsafe` outside src/dpdk: it is test-only and
//! only forwards to the system allocator after reading the block.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use baton::time::Duration;
use common::multi::MultiSim;
use common::tlsclient::{pattern, BackendApp, ClientApp};

struct ScanAlloc;

static ARMED: AtomicBool = AtomicBool::new(false);
static HITS: AtomicUsize = AtomicUsize::new(0);
/// Up to 4 secrets of up to 48 bytes, as (len, bytes), set before arming.
static mut NEEDLES: [(usize, [u8; 48]); 4] = [(0, [0; 48]); 4];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() >= 16 && hay.len() >= needle.len() && hay.windows(needle.len()).any(|w| w == needle)
}

unsafe impl GlobalAlloc for ScanAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if ARMED.load(Ordering::Acquire) {
            // SAFETY: the block is still ours until System.dealloc; NEEDLES
            // is written only while the scan is disarmed.
            let block = unsafe { std::slice::from_raw_parts(p, l.size()) };
            let needles = unsafe { &*std::ptr::addr_of!(NEEDLES) };
            for (n, bytes) in needles.iter() {
                if *n > 0 && contains(block, &bytes[..*n]) {
                    HITS.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: ScanAlloc = ScanAlloc;

#[derive(Debug, Default)]
struct Keys(Mutex<Vec<(String, Vec<u8>)>>);

impl rustls::KeyLog for Keys {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        self.0.lock().unwrap().push((label.to_string(), secret.to_vec()));
    }
}

#[test]
fn a_giver_frees_no_unwiped_copy_of_the_moved_secrets_and_holds_none() {
    let dir = std::env::temp_dir().join(format!("baton-keyscan-{}", std::process::id()));
    let g = baton::demo::certs::generate(&dir, &["baton.test"], &[]).unwrap();
    let chain = baton::tls::load_cert_chain_pem(&std::fs::read(&g.cert).unwrap()).unwrap();
    let key = baton::tls::SigningKey::from_pem(&std::fs::read(&g.key).unwrap()).unwrap();
    let tls = Arc::new(baton::tls::ServerConfig::new(chain, key, vec![]).unwrap());
    let mut roots = rustls::RootCertStore::empty();
    for der in pem::parse_many(std::fs::read(&g.ca).unwrap()).unwrap() {
        roots.add(rustls::pki_types::CertificateDer::from(der.contents().to_vec())).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let keys = Arc::new(Keys::default());
    let mut cc = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cc.key_log = keys.clone();

    let mut sim = MultiSim::new(tls, 2, 41);
    for w in sim.workers.iter_mut() {
        w.set_move_settle(Duration::ZERO);
    }
    let mut client = ClientApp::new(&mut sim.client, Arc::new(cc), "baton.test", vec![3u8; 200_000], 40000);
    let mut backend = BackendApp::new(&mut sim.backend, 400_000);
    let mut moves = 0;
    let mut owner = 0usize;
    let mut armed_once = false;
    for step in 0..20_000u64 {
        client.step(&mut sim.client);
        backend.step(&mut sim.backend);
        sim.step(&mut |_, _| owner);
        sim.now_ms += 1;
        let secrets: Vec<Vec<u8>> = keys
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| l.contains("TRAFFIC_SECRET"))
            .map(|(_, s)| s.clone())
            .collect();
        // Every 50 ms once the application secrets exist: move it, scanning.
        if step % 50 == 0 && secrets.len() >= 2 && sim.workers[owner].conn_count() == 1 {
            let cf = sim.workers[owner].client_flows()[0];
            // SAFETY: the scan is disarmed; no allocator call reads NEEDLES now.
            unsafe {
                let n = &mut *std::ptr::addr_of_mut!(NEEDLES);
                for (i, s) in secrets.iter().take(4).enumerate() {
                    n[i].0 = s.len().min(48);
                    n[i].1[..n[i].0].copy_from_slice(&s[..n[i].0]);
                }
            }
            let to = 1 - owner;
            let now = baton::time::Instant::from_millis(sim.now_ms);
            ARMED.store(true, Ordering::Release);
            let moved = sim.workers[owner].hand_over(&cf, to, now);
            ARMED.store(false, Ordering::Release);
            if moved {
                armed_once = true;
                moves += 1;
                assert_eq!(sim.workers[owner].conn_count(), 0, "the giver still holds the connection");
                owner = to;
            }
        }
        if client.done() && backend.closed && sim.conns() == 0 {
            break;
        }
    }
    assert!(armed_once && moves >= 5, "only {moves} scanned moves");
    assert_eq!(HITS.load(Ordering::Relaxed), 0, "a freed block still held a traffic secret");
    assert!(client.got_close);
    assert_eq!(common::sha256_hex(&client.downloaded), common::sha256_hex(&pattern(400_000)));
}
