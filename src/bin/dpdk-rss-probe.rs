//! Which virtual PMDs support RSS redirection-table query/update and the
//! hash-key query (issue 3 §2, §4). One process, several vdevs:
//!   dpdk-rss-probe net_null0 net_ring0 net_tap0,iface=x   (tap in a netns)
//! Prints one line per port and operation; exit 0 unless a call fails in
//! a way other than "not supported".

use std::process::ExitCode;

use baton::dpdk::{eal_args, port_by_name, DpdkError, Eal, EalOptions, Mempool, Port, PortConf, DEFAULT_DATA_ROOM};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let vdevs: Vec<String> = std::env::args().skip(1).collect();
    if vdevs.is_empty() {
        eprintln!("usage: dpdk-rss-probe <vdev>...");
        return ExitCode::FAILURE;
    }
    let opts = EalOptions {
        cores: vec![0],
        vdevs: vdevs.clone(),
        file_prefix: format!("baton-rss-{}", std::process::id()),
        memory_mb: 256,
        no_pci: true,
        log_level: Some("notice".into()),
        ..EalOptions::default()
    };
    let eal = match Eal::init(&eal_args(&opts)) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("EAL init: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pool = match Mempool::new(&eal, "rss_probe", 4095, 32, DEFAULT_DATA_ROOM, None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mempool: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    for v in &vdevs {
        let name = v.split(',').next().unwrap_or(v);
        let Some(id) = port_by_name(&eal, name) else {
            println!("{name}: did not probe");
            ok = false;
            continue;
        };
        let conf = PortConf { rss: true, rx_desc: 256, tx_desc: 256, ..PortConf::default() };
        let mut port = match Port::configure(id, 2, 2, &pool, conf) {
            Ok(p) => p,
            Err(e) => {
                println!("{name}: configure 2 queues: {e}");
                ok = false;
                continue;
            }
        };
        if let Err(e) = port.start() {
            println!("{name}: start: {e}");
            ok = false;
            continue;
        }
        let info = port.info().clone();
        println!("{name}: driver {} rss {} rss_hf {:#x} reta_size {:?}", info.driver, info.rss, info.rss_hf, port.reta_size());
        let show = |what: &str, r: Result<String, DpdkError>| -> bool {
            match r {
                Ok(s) => {
                    println!("{name}: {what}: ok {s}");
                    true
                }
                Err(e @ DpdkError::NotSupported { .. }) => {
                    println!("{name}: {what}: NOT SUPPORTED ({e})");
                    true
                }
                Err(e) => {
                    println!("{name}: {what}: FAILED {e}");
                    false
                }
            }
        };
        let q = port.rss_reta_query();
        ok &= show("reta query", q.clone().map(|t| format!("{} entries, first {:?}", t.len(), &t[..t.len().min(8)])));
        let size = port.reta_size().unwrap_or(0) as usize;
        let want: Vec<u16> = (0..size.max(1)).map(|i| ((i + 1) % 2) as u16).collect();
        ok &= show("reta update", port.rss_reta_update(&want).map(|()| "applied".into()));
        if q.is_ok() {
            let again = port.rss_reta_query();
            ok &= show("reta query after update", again.map(|t| format!("matches: {}", t == want)));
        }
        ok &= show("hash key", port.rss_hash_key().map(|k| format!("{} bytes {:02x?}", k.len(), &k[..k.len().min(8)])));
        let _ = port.stop();
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
