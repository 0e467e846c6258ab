//! Runs workers on DPDK: EAL, port, queues, one pinned thread per worker,
//! idle back-off, clean stop on SIGINT/SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::time::{Instant, MonotonicClock};
use crate::tls::{load_cert_chain_pem, ServerConfig, SigningKey};

use super::io::FrameIo;
use super::Worker;

/// Loads the certificate chain and key named in the config.
pub fn load_tls(cfg: &Config) -> Result<Arc<ServerConfig>, String> {
    let cert_pem = std::fs::read(&cfg.tls.cert).map_err(|e| format!("tls.cert: cannot read {}: {e}", cfg.tls.cert.display()))?;
    let key_pem = std::fs::read(&cfg.tls.key).map_err(|e| format!("tls.key: cannot read {}: {e}", cfg.tls.key.display()))?;
    let chain = load_cert_chain_pem(&cert_pem).map_err(|e| format!("tls.cert: {}: {e}", cfg.tls.cert.display()))?;
    let key = SigningKey::from_pem(&key_pem).map_err(|e| format!("tls.key: {}: {e}", cfg.tls.key.display()))?;
    let alpn = cfg.tls.alpn.iter().map(|s| s.as_bytes().to_vec()).collect();
    let sc = ServerConfig::new(chain, key, alpn).map_err(|e| format!("tls: {e}"))?;
    Ok(Arc::new(sc))
}

/// Loop settings.
#[derive(Clone, Copy, Debug)]
pub struct LoopConfig {
    pub idle_polls_before_sleep: u32,
    pub idle_sleep_us: u64,
    /// How long a stopping worker waits for its connections to close.
    pub drain_timeout_ms: u64,
}

/// The poll loop: rx burst → stack/TCP/TLS/proxy → tx burst, until `stop`.
/// Then every connection is closed (close_notify + FIN) and the loop keeps
/// running until they are gone or `drain_timeout_ms` passes.
pub fn poll_loop(worker: &mut Worker, io: &mut dyn FrameIo, clock: &MonotonicClock, stop: &AtomicBool, lc: LoopConfig) {
    let mut idle = 0u32;
    let mut stopping_since: Option<Instant> = None;
    let mut out = FrameArena::default();
    loop {
        let now = clock.now();
        if stopping_since.is_none() && stop.load(Ordering::Relaxed) {
            log::info!("worker {}: stopping, closing {} connections", worker.id, worker.conn_count());
            worker.shutdown();
            stopping_since = Some(now);
        }
        if let Some(t) = stopping_since {
            if worker.conn_count() == 0 || now.saturating_since(t).millis() > lc.drain_timeout_ms {
                break;
            }
        }
        // Frames the worker emits are collected in a reused arena (no
        // allocation per packet once warm), then copied into mbufs.
        out.clear();
        let n = io.rx_burst(&mut |frame| worker.handle_frame(frame, now, &mut |f| out.push(f)));
        worker.poll(now, &mut |f| out.push(f));
        let sent = out.len();
        for f in out.iter() {
            io.tx_frame(f);
        }
        io.flush();
        if n == 0 && sent == 0 {
            idle = idle.saturating_add(1);
            if idle > lc.idle_polls_before_sleep {
                // Back off so the clients and backend sharing these cores run
                // (DESIGN.md, "Machines without a NIC"). Wake for timers.
                let mut sleep_us = lc.idle_sleep_us;
                if let Some(t) = worker.next_wakeup() {
                    sleep_us = sleep_us.min(t.saturating_since(now).micros().max(1));
                }
                std::thread::sleep(std::time::Duration::from_micros(sleep_us));
            }
        } else {
            idle = 0;
        }
    }
}

/// Frames queued for transmission in one loop iteration, back to back in
/// one buffer.
#[derive(Default)]
pub struct FrameArena {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl FrameArena {
    pub fn push(&mut self, frame: &[u8]) {
        self.bytes.extend_from_slice(frame);
        self.ends.push(self.bytes.len());
    }
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&e| {
            let f = &self.bytes[start..e];
            start = e;
            f
        })
    }
}

/// `baton run`: sets up DPDK and runs the workers until SIGINT/SIGTERM.
pub fn run(cfg: Config) -> Result<(), String> {
    let _tls = load_tls(&cfg)?;
    Err("the DPDK runtime is not wired yet".into())
}
