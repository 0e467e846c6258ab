//! A small HTTP/1.1 backend for the demo and the tests (kernel sockets,
//! one thread per connection, bounded). Routes:
//! - `GET /` — a short greeting.
//! - `GET /bytes/N` — N bytes of a fixed pattern ([`pattern_byte`]), so a
//!   client can check the SHA-256 of what came through baton.
//! - `POST /sha256` — the hex SHA-256 of the request body (upload checks).
//! - `GET /close` — a response, then the backend closes at once.
//! Anything else gets 404. Not a production server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Most concurrent connections the backend serves; more are closed.
pub const MAX_CONNECTIONS: usize = 512;
/// Largest `/bytes/N` or `/sha256` body.
pub const MAX_BODY: u64 = 4 << 30;

/// Byte `i` of the `/bytes/N` body.
pub fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// Serves forever on `listen` (e.g. `0.0.0.0:8080`).
pub fn serve(listen: &str) -> std::io::Result<()> {
    let l = TcpListener::bind(listen)?;
    log::info!("backend listening on {}", l.local_addr()?);
    serve_listener(l)
}

pub fn serve_listener(l: TcpListener) -> std::io::Result<()> {
    let live = Arc::new(AtomicUsize::new(0));
    for s in l.incoming() {
        let Ok(s) = s else { continue };
        if live.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            drop(s);
            continue;
        }
        live.fetch_add(1, Ordering::Relaxed);
        let live = live.clone();
        std::thread::spawn(move || {
            let _ = handle(s);
            live.fetch_sub(1, Ordering::Relaxed);
        });
    }
    Ok(())
}

fn handle(s: TcpStream) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let mut w = s.try_clone()?;
    let mut r = BufReader::with_capacity(64 * 1024, s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mut content_length: u64 = 0;
        let mut close = false;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim();
                if k == "content-length" {
                    content_length = v.parse().unwrap_or(0).min(MAX_BODY);
                } else if k == "connection" && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        match (method, path) {
            ("GET", "/") => {
                let body = b"hello from the baton demo backend\n";
                write!(w, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n", body.len())?;
                w.write_all(body)?;
            }
            ("GET", p) if p.starts_with("/bytes/") => {
                let n: u64 = p["/bytes/".len()..].parse().unwrap_or(0).min(MAX_BODY);
                write!(w, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\n\r\n")?;
                let mut buf = vec![0u8; 64 * 1024];
                let mut i = 0u64;
                while i < n {
                    let k = (n - i).min(buf.len() as u64) as usize;
                    for (j, b) in buf[..k].iter_mut().enumerate() {
                        *b = pattern_byte(i + j as u64);
                    }
                    w.write_all(&buf[..k])?;
                    i += k as u64;
                }
            }
            ("POST", "/sha256") => {
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                let mut left = content_length;
                let mut buf = vec![0u8; 64 * 1024];
                while left > 0 {
                    let k = left.min(buf.len() as u64) as usize;
                    r.read_exact(&mut buf[..k])?;
                    ctx.update(&buf[..k]);
                    left -= k as u64;
                }
                let hex: String = ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
                write!(w, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{hex}\n", hex.len() + 1)?;
            }
            ("GET", "/close") => {
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbye\n")?;
                return Ok(());
            }
            _ => {
                w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nnot found\n")?;
            }
        }
        w.flush()?;
        if close {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: std::net::SocketAddr, req: &str) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn bytes_route_serves_the_pattern_and_sha_route_hashes_uploads() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || serve_listener(l));
        let out = get(addr, "GET /bytes/1000 HTTP/1.1\r\nConnection: close\r\n\r\n");
        let body_at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let body = &out[body_at..];
        assert_eq!(body.len(), 1000);
        assert!(body.iter().enumerate().all(|(i, b)| *b == pattern_byte(i as u64)));
        let out = get(addr, "POST /sha256 HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
        // SHA-256("abc"), FIPS 180-2 appendix B.1
        assert!(String::from_utf8_lossy(&out).contains("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    }
}
