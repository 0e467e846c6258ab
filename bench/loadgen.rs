//! baton-loadgen: a bounded TLS 1.3 load generator on kernel sockets and
//! rustls, for `bench/compare` and `bench/smoke.sh`.
//!
//! Built as a cargo example (`cargo build --release --example loadgen`) so
//! it may use the dev-dependency `rustls` without the release `baton`
//! binary linking it. Every mode is bounded in time (`--seconds`, plus
//! socket timeouts) and in count (`--max`), verifies every response (status
//! line, Content-Length, body bytes) and counts failures; a run with any
//! failure exits 1 and prints `status=failed`.
//!
//! Modes (all talk HTTP/1.1 to the built-in backend through the server):
//! - `handshakes`: C threads, each in a loop: connect, full TLS 1.3
//!   handshake, `GET /`, close. Counts completed; p50/p99 of the whole.
//! - `resumed`: the same with a shared session store; counts how many
//!   handshakes the server resumed (`resumed=`); if it resumed fewer than
//!   half, `resumption=no`.
//! - `latency`: C kept-alive connections, each sends `GET /` one after the
//!   other; p50/p99 per request.
//! - `bulk`: C threads, each in a loop: connect, `GET /bytes/N`, check
//!   every byte against the backend's pattern, close. Throughput.
//! - `idle`: open K connections (handshake + `GET /` on each), print
//!   `idle ready K` and hold them `--hold` seconds, then `GET /` on each
//!   again (they must all still work) and close.
//!
//! Output: human lines on stderr, one `result ...` line of key=value on
//! stdout that scripts parse.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

const GREETING: &[u8] = b"hello from the baton demo backend\n";
/// The backend's `/bytes/N` pattern byte i is bits 13..21 of i*2654435761
/// (mod 2^64), so it repeats every 2^21 bytes.
const PATTERN_PERIOD: usize = 1 << 21;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

#[derive(Clone, Debug)]
struct Opts {
    mode: String,
    addr: SocketAddr,
    ca: String,
    sni: String,
    threads: usize,
    seconds: f64,
    max: u64,
    bytes: u64,
    conns: usize,
    hold: f64,
    suite: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen MODE --addr IP:PORT --ca CA.pem [--sni NAME] [--threads C] [--seconds T] [--max N]\n\
         \x20      [--bytes N] [--conns K] [--hold S] [--suite aes128|aes256|chacha]\n\
         MODE: handshakes | resumed | latency | bulk | idle"
    );
    std::process::exit(2)
}

fn parse_opts() -> Opts {
    let mut a = std::env::args().skip(1);
    let mode = a.next().unwrap_or_else(|| usage());
    if !["handshakes", "resumed", "latency", "bulk", "idle"].contains(&mode.as_str()) {
        usage()
    }
    let mut o = Opts {
        mode,
        addr: "198.18.0.2:443".parse().unwrap(),
        ca: String::new(),
        sni: "baton.test".into(),
        threads: 4,
        seconds: 10.0,
        max: 1_000_000,
        bytes: 64 << 20,
        conns: 2000,
        hold: 3.0,
        suite: "aes128".into(),
    };
    while let Some(k) = a.next() {
        let v = a.next().unwrap_or_else(|| usage());
        let bad = |_: String| -> ! {
            eprintln!("loadgen: bad value for {k}: {v}");
            std::process::exit(2)
        };
        match k.as_str() {
            "--addr" => o.addr = v.parse().unwrap_or_else(|e: std::net::AddrParseError| bad(e.to_string())),
            "--ca" => o.ca = v.clone(),
            "--sni" => o.sni = v.clone(),
            "--threads" => o.threads = v.parse().unwrap_or_else(|e: std::num::ParseIntError| bad(e.to_string())),
            "--seconds" => o.seconds = v.parse().unwrap_or_else(|e: std::num::ParseFloatError| bad(e.to_string())),
            "--max" => o.max = v.parse().unwrap_or_else(|e: std::num::ParseIntError| bad(e.to_string())),
            "--bytes" => o.bytes = v.parse().unwrap_or_else(|e: std::num::ParseIntError| bad(e.to_string())),
            "--conns" => o.conns = v.parse().unwrap_or_else(|e: std::num::ParseIntError| bad(e.to_string())),
            "--hold" => o.hold = v.parse().unwrap_or_else(|e: std::num::ParseFloatError| bad(e.to_string())),
            "--suite" => o.suite = v.clone(),
            _ => usage(),
        }
    }
    if o.ca.is_empty() || o.threads == 0 || o.threads > 256 || o.seconds <= 0.0 || o.seconds > 3600.0 || o.conns > 100_000 {
        usage()
    }
    o
}

fn client_config(o: &Opts, resumption: bool) -> Result<Arc<ClientConfig>, String> {
    let pem_text = std::fs::read(&o.ca).map_err(|e| format!("cannot read {}: {e}", o.ca))?;
    let mut roots = rustls::RootCertStore::empty();
    for p in pem::parse_many(&pem_text).map_err(|e| format!("{}: {e}", o.ca))? {
        if p.tag() == "CERTIFICATE" {
            roots.add(CertificateDer::from(p.contents().to_vec())).map_err(|e| format!("{}: {e}", o.ca))?;
        }
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate", o.ca));
    }
    let mut provider = rustls::crypto::ring::default_provider();
    let want = match o.suite.as_str() {
        "aes128" => rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
        "aes256" => rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        "chacha" => rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        s => return Err(format!("unknown --suite {s}")),
    };
    provider.cipher_suites.retain(|s| s.suite() == want);
    provider.kx_groups.retain(|g| g.name() == rustls::NamedGroup::X25519);
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resumption {
        cfg.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(cfg))
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake. Returns the stream and whether
/// the server resumed a session.
fn connect(o: &Opts, cfg: &Arc<ClientConfig>) -> Result<(Tls, bool), String> {
    let sock = TcpStream::connect_timeout(&o.addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    sock.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    sock.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    sock.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(o.sni.clone()).map_err(|e| format!("sni: {e}"))?;
    let conn = ClientConnection::new(cfg.clone(), name).map_err(|e| format!("tls: {e}"))?;
    let mut s = StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).map_err(|e| format!("handshake: {e}"))?;
    }
    let resumed = s.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    Ok((s, resumed))
}

/// Reads one HTTP/1.1 response head; returns (status, content-length,
/// bytes of body already read past the head).
fn read_head(s: &mut Tls, buf: &mut Vec<u8>) -> Result<(u16, u64, Vec<u8>), String> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8".to_string())?;
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or("");
            let mut parts = status_line.split(' ');
            if parts.next() != Some("HTTP/1.1") {
                return Err(format!("bad status line {status_line:?}"));
            }
            let status: u16 = parts.next().and_then(|c| c.parse().ok()).ok_or_else(|| format!("bad status line {status_line:?}"))?;
            let mut len = None;
            for l in lines {
                if let Some((k, v)) = l.split_once(':') {
                    if k.trim().eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse::<u64>().ok();
                    }
                }
            }
            let len = len.ok_or_else(|| "response without Content-Length".to_string())?;
            return Ok((status, len, buf[end + 4..].to_vec()));
        }
        if buf.len() > 16 * 1024 {
            return Err("response head over 16 KiB".into());
        }
        let n = s.read(&mut chunk).map_err(|e| format!("read head: {e}"))?;
        if n == 0 {
            return Err(format!("connection closed before the response head ({} bytes read)", buf.len()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `GET /` and checks the greeting.
fn get_greeting(s: &mut Tls, buf: &mut Vec<u8>, close: bool) -> Result<(), String> {
    let req: &[u8] = if close {
        b"GET / HTTP/1.1\r\nHost: baton.test\r\nConnection: close\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nHost: baton.test\r\n\r\n"
    };
    s.write_all(req).map_err(|e| format!("write: {e}"))?;
    let (status, len, mut body) = read_head(s, buf)?;
    if status != 200 || len != GREETING.len() as u64 {
        return Err(format!("GET /: status {status}, length {len}"));
    }
    while body.len() < GREETING.len() {
        let mut c = [0u8; 256];
        let n = s.read(&mut c).map_err(|e| format!("read body: {e}"))?;
        if n == 0 {
            return Err("connection closed inside the body".into());
        }
        body.extend_from_slice(&c[..n]);
    }
    if body != GREETING {
        return Err(format!("GET /: wrong body ({} bytes)", body.len()));
    }
    Ok(())
}

fn close(mut s: Tls) {
    s.conn.send_close_notify();
    let _ = s.conn.complete_io(&mut s.sock);
    let _ = s.sock.shutdown(std::net::Shutdown::Both);
}

/// `GET /bytes/N`, checks every byte; returns the body length.
fn get_bytes(s: &mut Tls, n: u64, buf: &mut Vec<u8>, table: &[u8]) -> Result<u64, String> {
    write!(s, "GET /bytes/{n} HTTP/1.1\r\nHost: baton.test\r\nConnection: close\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let (status, len, first) = read_head(s, buf)?;
    if status != 200 || len != n {
        return Err(format!("GET /bytes/{n}: status {status}, length {len}"));
    }
    let mut at = 0u64;
    let check = |data: &[u8], at: &mut u64| -> Result<(), String> {
        if *at + data.len() as u64 > n {
            return Err("more body than Content-Length".into());
        }
        let mut off = 0;
        while off < data.len() {
            let p = (*at as usize + off) % PATTERN_PERIOD;
            let k = (data.len() - off).min(PATTERN_PERIOD - p);
            if data[off..off + k] != table[p..p + k] {
                return Err(format!("body differs from the pattern near byte {}", *at + off as u64));
            }
            off += k;
        }
        *at += data.len() as u64;
        Ok(())
    };
    check(&first, &mut at)?;
    let mut chunk = vec![0u8; 256 * 1024];
    while at < n {
        let r = s.read(&mut chunk).map_err(|e| format!("read body at {at}: {e}"))?;
        if r == 0 {
            return Err(format!("connection closed after {at} of {n} body bytes"));
        }
        check(&chunk[..r], &mut at)?;
    }
    Ok(at)
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    resumed: u64,
    bytes: u64,
    lat_us: Vec<u32>,
    errors: Vec<String>,
}

impl Tally {
    fn fail(&mut self, e: String) {
        self.failed += 1;
        if self.errors.len() < 5 {
            self.errors.push(e);
        }
    }
    fn merge(&mut self, o: Tally) {
        self.ok += o.ok;
        self.failed += o.failed;
        self.resumed += o.resumed;
        self.bytes += o.bytes;
        self.lat_us.extend(o.lat_us);
        for e in o.errors {
            if self.errors.len() < 10 {
                self.errors.push(e);
            }
        }
    }
}

/// Own CPU seconds (all threads), from /proc/self/stat (utime+stime in
/// clock ticks; USER_HZ is 100 on Linux).
fn own_cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the comm: state is index 0, utime is field 14 → index 11.
    (t(11) + t(12)) / 100.0
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let o = parse_opts();
    let cfg = match client_config(&o, o.mode == "resumed") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e}");
            println!("result mode={} status=failed error=config", o.mode);
            std::process::exit(1)
        }
    };
    let table: Arc<Vec<u8>> = Arc::new((0..PATTERN_PERIOD as u64).map(pattern_byte).collect());
    let cpu0 = own_cpu_seconds();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(o.seconds);
    let issued = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(o.threads + 1));
    let mut handles = Vec::new();
    for t in 0..o.threads {
        let (o, cfg, table, issued, ready, barrier) = (o.clone(), cfg.clone(), table.clone(), issued.clone(), ready.clone(), barrier.clone());
        handles.push(std::thread::spawn(move || {
            let mut tally = Tally::default();
            let mut buf = Vec::with_capacity(8192);
            let take = |issued: &AtomicU64| Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < o.max;
            match o.mode.as_str() {
                "handshakes" | "resumed" => {
                    while take(&issued) {
                        let s = Instant::now();
                        match connect(&o, &cfg).and_then(|(mut c, r)| get_greeting(&mut c, &mut buf, true).map(|_| (c, r))) {
                            Ok((c, r)) => {
                                close(c);
                                tally.ok += 1;
                                tally.resumed += r as u64;
                                tally.lat_us.push(s.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            }
                            Err(e) => tally.fail(e),
                        }
                    }
                }
                "latency" => match connect(&o, &cfg) {
                    Ok((mut c, _)) => {
                        let mut alive = true;
                        while alive && take(&issued) {
                            let s = Instant::now();
                            match get_greeting(&mut c, &mut buf, false) {
                                Ok(()) => {
                                    tally.ok += 1;
                                    tally.lat_us.push(s.elapsed().as_micros().min(u32::MAX as u128) as u32);
                                }
                                Err(e) => {
                                    tally.fail(e);
                                    alive = false;
                                }
                            }
                        }
                        close(c);
                    }
                    Err(e) => tally.fail(e),
                },
                "bulk" => {
                    while take(&issued) {
                        let s = Instant::now();
                        match connect(&o, &cfg).and_then(|(mut c, _)| get_bytes(&mut c, o.bytes, &mut buf, &table).map(|n| (c, n))) {
                            Ok((c, n)) => {
                                close(c);
                                tally.ok += 1;
                                tally.bytes += n;
                                tally.lat_us.push(s.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            }
                            Err(e) => tally.fail(e),
                        }
                    }
                }
                "idle" => {
                    let mine = o.conns / o.threads + usize::from(t < o.conns % o.threads);
                    let mut held = Vec::with_capacity(mine);
                    for _ in 0..mine {
                        if Instant::now() >= deadline {
                            tally.fail("deadline passed while opening idle connections".into());
                            break;
                        }
                        match connect(&o, &cfg).and_then(|(mut c, _)| get_greeting(&mut c, &mut buf, false).map(|_| c)) {
                            Ok(c) => held.push(c),
                            Err(e) => tally.fail(e),
                        }
                    }
                    ready.fetch_add(held.len() as u64, Ordering::Relaxed);
                    barrier.wait(); // all opened
                    barrier.wait(); // hold over
                    for mut c in held {
                        match get_greeting(&mut c, &mut buf, false) {
                            Ok(()) => tally.ok += 1,
                            Err(e) => tally.fail(format!("after idle hold: {e}")),
                        }
                        close(c);
                    }
                }
                _ => unreachable!(),
            }
            tally
        }));
    }
    if o.mode == "idle" {
        barrier.wait();
        let n = ready.load(Ordering::Relaxed);
        println!("idle ready {n}");
        let _ = std::io::stdout().flush();
        eprintln!("loadgen: {n} idle connections open after {:.2} s; holding {:.1} s", t0.elapsed().as_secs_f64(), o.hold);
        std::thread::sleep(Duration::from_secs_f64(o.hold.clamp(0.0, 600.0)));
        barrier.wait();
    }
    let mut all = Tally::default();
    for h in handles {
        match h.join() {
            Ok(t) => all.merge(t),
            Err(_) => all.fail("a client thread panicked".into()),
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = own_cpu_seconds() - cpu0;
    all.lat_us.sort_unstable();
    let (p50, p99) = (percentile(&all.lat_us, 0.50), percentile(&all.lat_us, 0.99));
    for e in &all.errors {
        eprintln!("loadgen: failure: {e}");
    }
    let status = if all.failed == 0 && all.ok > 0 { "ok" } else { "failed" };
    let mut line = format!(
        "result mode={} status={status} ok={} failed={} seconds={elapsed:.3} client_cpu={cpu:.2} rate={:.1} p50_us={p50} p99_us={p99}",
        o.mode,
        all.ok,
        all.failed,
        all.ok as f64 / elapsed
    );
    match o.mode.as_str() {
        "resumed" => {
            let yes = all.resumed * 2 >= all.ok && all.ok > 0;
            line += &format!(" resumed={} resumption={}", all.resumed, if yes { "yes" } else { "no" });
        }
        "bulk" => line += &format!(" bytes={} gbps={:.3}", all.bytes, all.bytes as f64 * 8.0 / elapsed / 1e9),
        "idle" => line += &format!(" conns={}", o.conns),
        _ => {}
    }
    println!("{line}");
    eprintln!("loadgen: {line}");
    std::process::exit(if status == "ok" { 0 } else { 1 })
}
