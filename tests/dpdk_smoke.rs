//! Runs `tests/dpdk_smoke.sh` (net_null, net_tap in a namespace, net_pcap)
//! against the `dpdk-smoke` binary. Needs root; skipped (with a message)
//! otherwise.

use std::process::Command;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn dpdk_smoke_null_tap_pcap() {
    if !is_root() {
        eprintln!("SKIPPED dpdk_smoke_null_tap_pcap: needs root (TAP, namespaces, EAL)");
        return;
    }
    let status = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dpdk_smoke.sh"))
        .env("DPDK_SMOKE_BIN", env!("CARGO_BIN_EXE_dpdk-smoke"))
        .status()
        .expect("run tests/dpdk_smoke.sh");
    assert!(status.success(), "tests/dpdk_smoke.sh failed: {status}");
}
