//! baton: a kernel-bypass TLS-terminating load balancer.
//!
//! Layers (arrows point down only), see DESIGN.md:
//! 1. [`dpdk`] — the only module with `unsafe` FFI.
//! 2. [`net`] — sans-IO Ethernet, ARP, IPv4, ICMP, TCP.
//! 3. [`tls`] — sans-IO TLS 1.3 server.
//! 4. [`session`] — session table, sealing, repository.
//! 5. [`proxy`] — backend pools, balancing.
//! 6. [`worker`], [`slowpath`] — poll loops and the handshake pool.
//! 7. [`config`], [`metrics`], [`demo`] and the binary.
#![deny(unsafe_code)]

pub mod admin;
pub mod codec;
pub mod config;
pub mod demo;
#[allow(unsafe_code)]
pub mod dpdk;
pub mod entropy;
pub mod metrics;
pub mod net;
pub mod proxy;
pub mod session;
pub mod slowpath;
pub mod time;
pub mod tls;
pub mod worker;
