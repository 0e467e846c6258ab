//! Build script: finds DPDK through pkg-config, generates Rust bindings for
//! `native/shim.h` with bindgen, and compiles the passthrough shim
//! `native/shim.c` with cc.
//!
//! Compiler flags and libraries come only from `pkg-config libdpdk` (no
//! hard-coded library lists or `-march`). DPDK is linked dynamically: the
//! shared EAL then loads its poll-mode drivers (net_tap, net_null, net_pcap,
//! net_ring, mempool_ring, ...) as plugins from its built-in driver directory
//! at `rte_eal_init` time, see `src/dpdk/mod.rs`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SETUP_HINT: &str = "DPDK development files were not found through pkg-config \
(package `libdpdk-dev`, plus `libclang-dev` for bindgen). Run `sudo ci/setup` \
on Debian 12 to install them, or set PKG_CONFIG_PATH to a DPDK installation.";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=native/shim.h");
    println!("cargo:rerun-if-changed=native/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Libraries: let the pkg-config crate emit the link lines (dynamic).
    let lib = match pkg_config::Config::new()
        .cargo_metadata(true)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => panic!("{SETUP_HINT}\npkg-config said: {e}"),
    };

    // Compiler flags: the raw `--cflags` output, because DPDK's .pc carries
    // `-include rte_config.h` and a `-march` that must match the build of the
    // library, which the pkg-config crate's parsed fields would drop.
    let cflags = raw_cflags();

    let mut build = cc::Build::new();
    build.file("native/shim.c").include("native").warnings(false);
    for f in &cflags {
        build.flag(f);
    }
    for p in &lib.include_paths {
        build.include(p);
    }
    build.compile("baton_dpdk_shim");

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let bindings = bindgen::Builder::default()
        .header("native/shim.h")
        .clang_args(cflags.iter())
        .clang_args(lib.include_paths.iter().map(|p| format!("-I{}", p.display())))
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_pktmbuf_.*")
        .allowlist_function("rte_mempool_.*")
        .allowlist_function("rte_memzone_.*")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_thread_register")
        .allowlist_function("rte_thread_unregister")
        .allowlist_function("shim_.*")
        .allowlist_type("rte_eth_conf")
        .allowlist_type("rte_eth_dev_info")
        .allowlist_type("rte_eth_stats")
        .allowlist_type("rte_ether_addr")
        .allowlist_var("RTE_ETH_RSS_.*")
        .allowlist_var("RTE_ETH_MQ_.*")
        .allowlist_var("RTE_ETH_NAME_MAX_LEN")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_MAX_LCORE")
        .allowlist_var("RTE_MBUF_DEFAULT_.*")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MEMZONE_.*")
        .allowlist_var("shim_.*")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("LCORE_ID_ANY")
        // Opaque: Rust only ever holds pointers to these; fields are read
        // through shim accessors or DPDK functions.
        .opaque_type("rte_mbuf")
        .opaque_type("rte_mempool")
        .opaque_type("rte_eth_dev")
        .opaque_type("rte_eth_dev_data")
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| panic!("bindgen over native/shim.h failed: {e}\n{SETUP_HINT}"));
    bindings
        .write_to_file(out.join("dpdk_bindings.rs"))
        .expect("write bindings");
}

fn raw_cflags() -> Vec<String> {
    let pc = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let output = Command::new(&pc)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("running `{pc} --cflags libdpdk`: {e}\n{SETUP_HINT}"));
    if !output.status.success() {
        panic!(
            "`{pc} --cflags libdpdk` failed: {}\n{SETUP_HINT}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Split on whitespace, keeping `-include X` as two arguments in order.
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        // Include paths are passed separately (from the parsed library).
        .filter(|f| !f.starts_with("-I"))
        .map(str::to_string)
        .collect()
}
