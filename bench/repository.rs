//! Take latency of the fleet repository on loopback: GETDEL of a 600-byte
//! value put beforehand, through `RepositoryClient`, against a PING round
//! trip measured in the same run as the reference.
//!
//! `cargo bench --bench repository [-- N]` (N takes, default 20000, at most
//! 1000000). Starts its own redis-server on a free loopback port.

#[path = "../tests/redis_support/mod.rs"]
mod redis_support;

use std::time::{Duration, Instant};

use baton::session::repository::{RecordKind, RepositoryClient, RepositoryConfig};

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000)
        .clamp(100, 1_000_000);
    let r = redis_support::RedisServer::start();
    r.add_hosts();
    let pw = std::env::temp_dir().join(format!("baton-repo-bench-{}", std::process::id()));
    std::fs::write(&pw, "pw-a\n").expect("password file");
    let cfg = RepositoryConfig {
        url: r.url(),
        username: "hosta".into(),
        password_file: Some(pw.clone()),
        timeout_ms: 1000,
        connect_timeout_ms: 1000,
        ..Default::default()
    };
    let mut c = RepositoryClient::connect(&cfg).expect("connect");
    let value = vec![0x5au8; 600];
    let ttl = Duration::from_secs(300);
    // Put all first (a separate pass) so the takes run back to back.
    for i in 0..n as u64 {
        c.put(RecordKind::Session, &i.to_be_bytes(), &value, ttl).expect("put");
    }
    // Warm up the path.
    for _ in 0..1000 {
        c.ping().expect("ping");
    }
    let mut takes = Vec::with_capacity(n);
    let mut pings = Vec::with_capacity(n);
    // Interleave takes and pings so both see the same machine state.
    for i in 0..n as u64 {
        let t0 = Instant::now();
        let v = c.take(RecordKind::Session, &i.to_be_bytes()).expect("take");
        takes.push(t0.elapsed());
        assert_eq!(v.as_deref().map(|v| v.len()), Some(600), "take {i} found its value");
        let t0 = Instant::now();
        c.ping().expect("ping");
        pings.push(t0.elapsed());
    }
    assert_eq!(c.take(RecordKind::Session, &0u64.to_be_bytes()).expect("take"), None);
    takes.sort();
    pings.sort();
    let (t50, t99, t999) = (quantile(&takes, 0.5), quantile(&takes, 0.99), quantile(&takes, 0.999));
    let (p50, p99) = (quantile(&pings, 0.5), quantile(&pings, 0.99));
    println!("repository take n={n} value=600B loopback");
    println!("take p50 {:.1} us", us(t50));
    println!("take p99 {:.1} us", us(t99));
    println!("take p999 {:.1} us", us(t999));
    println!("ping p50 {:.1} us", us(p50));
    println!("ping p99 {:.1} us", us(p99));
    println!("take/ping p50 ratio {:.2}", us(t50) / us(p50).max(0.001));
    println!("take/ping p99 ratio {:.2}", us(t99) / us(p99).max(0.001));
    println!("take p99 <= 150 us goal: {}", if t99 <= Duration::from_micros(150) { "met" } else { "NOT met" });
    let _ = std::fs::remove_file(pw);
}
