//! The admin endpoint: a kernel-socket HTTP listener on loopback serving
//! `GET /metrics` (Prometheus text). Workers publish snapshots of their
//! counters about every 100 ms; this thread only reads those snapshots, so
//! it never touches a worker's fast path.
//!
//! `POST /rotate-keys` rotates the sealing key now (the previous key stays
//! readable). `POST /drain?worker=N` asks worker N to move every connection to the
//! other workers (issue 3); `POST /undrain?worker=N` lets it take new ones.
//! In a fleet, `POST /drain` (no worker) drains the whole host: every
//! connection is exported into the repository for the host that gets its
//! next frame, and none is taken from there (issue 4); `POST /undrain`
//! ends it. `baton drain` sends these. `POST /reta?queues=0,1` spreads
//! the port's RSS redirection table over those queues (workers), where the
//! PMD supports RETA updates: connections the new table sends elsewhere
//! move first, then the NIC steers by it (issue 3 §4).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use crate::worker::runtime::Snapshots;

/// Starts the admin thread on `addr` (validated as loopback by config).
pub fn start(
    addr: &str,
    snaps: Snapshots,
    fabric: std::sync::Arc<crate::worker::handoff::Fabric>,
    fleet: Option<std::sync::Arc<crate::worker::fleet::Fleet>>,
    reta: Option<RetaHook>,
) -> std::io::Result<()> {
    let l = TcpListener::bind(addr)?;
    log::info!("admin endpoint on http://{}/metrics", l.local_addr()?);
    let started = std::time::Instant::now();
    std::thread::Builder::new().name("baton-admin".into()).spawn(move || {
        crate::dpdk::signals::block_async_signals();
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            // One request at a time: a client that sends nothing must not
            // hold the endpoint for long.
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(200)));
            let mut line = String::new();
            let mut rd = BufReader::new(&s);
            let ok = rd.read_line(&mut line).is_ok();
            // Read the headers too (bounded): closing with unread request
            // bytes makes the kernel reset the connection, and the client
            // may lose the answer (regression: `baton drain` got "broken
            // pipe" / "connection reset").
            let mut hdr = String::new();
            for _ in 0..64 {
                hdr.clear();
                match rd.read_line(&mut hdr) {
                    Ok(n) if n > 0 && hdr != "\r\n" && hdr != "\n" => continue,
                    _ => break,
                }
            }
            let worker_arg = line.split_whitespace().nth(1).and_then(|p| p.split_once("worker=")).and_then(|(_, w)| w.parse::<usize>().ok());
            let target = line.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if ok && line.starts_with("GET /metrics") {
                ("200 OK", render(&snaps) + &render_tables(&fabric) + &render_fleet(fleet.as_deref()))
            } else if ok && (target == "/drain" || target == "/undrain") && line.starts_with("POST ") {
                host_drain(fleet.as_deref(), target == "/drain")
            } else if ok && line.starts_with("POST /reta") {
                let queues: Option<Vec<u16>> = target
                    .split_once("queues=")
                    .map(|(_, q)| q.split(',').map(|x| x.trim().parse::<u16>()).collect::<Result<Vec<_>, _>>().ok())
                    .unwrap_or(None)
                    .filter(|q| !q.is_empty() && q.iter().all(|&x| (x as usize) < fabric.workers));
                match (queues, reta.as_ref()) {
                    (None, _) => ("400 Bad Request", format!("need ?queues=A,B,.. with each below {}\n", fabric.workers)),
                    (Some(_), None) => ("400 Bad Request", "no port to change the RETA of\n".to_string()),
                    (Some(q), Some(hook)) => match hook(&q) {
                        Ok(msg) => {
                            log::info!("admin: {msg}");
                            ("200 OK", format!("{msg}\n"))
                        }
                        Err(e) => {
                            log::warn!("admin: RETA change refused: {e}");
                            ("409 Conflict", format!("{e}\n"))
                        }
                    },
                }
            } else if ok && line.starts_with("POST /drain") {
                match worker_arg {
                    Some(w) if fabric.request_drain(w) => {
                        log::info!("admin: draining worker {w}");
                        ("200 OK", format!("draining worker {w}\n"))
                    }
                    _ => (
                        "400 Bad Request",
                        format!("need ?worker=N with N < {}, and another worker that is not draining to take its connections\n", fabric.workers),
                    ),
                }
            } else if ok && line.starts_with("POST /rotate-keys") {
                let now = crate::time::Instant::from_micros(started.elapsed().as_micros() as u64);
                if fabric.rotate_keys(now, &mut crate::entropy::OsEntropy::new()) {
                    log::info!("admin: sealing key rotated to id {}", fabric.key_id());
                    ("200 OK", format!("sealing key is now id {}\n", fabric.key_id()))
                } else {
                    ("500 Internal Server Error", "key ids exhausted\n".to_string())
                }
            } else if ok && line.starts_with("POST /undrain") {
                match worker_arg {
                    Some(w) if w < fabric.workers => {
                        fabric.undrain(w);
                        log::info!("admin: worker {w} takes connections again");
                        ("200 OK", format!("worker {w} takes connections again\n"))
                    }
                    _ => ("400 Bad Request", "need ?worker=N\n".to_string()),
                }
            } else {
                ("404 Not Found", "try GET /metrics, POST /drain?worker=N, POST /undrain?worker=N, POST /drain, POST /undrain, POST /reta?queues=A,B, POST /rotate-keys\n".to_string())
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })?;
    Ok(())
}

/// Applies a new RSS redirection table spread over the given queues;
/// answers what it did, or why not.
pub type RetaHook = Box<dyn Fn(&[u16]) -> Result<String, String> + Send>;

/// Drains the whole host into the fleet repository, or ends that.
fn host_drain(fleet: Option<&crate::worker::fleet::Fleet>, on: bool) -> (&'static str, String) {
    let Some(f) = fleet else {
        return ("400 Bad Request", "no fleet: this host has no [repository]/[fleet] config; drain a worker with ?worker=N (baton drain --worker N)\n".into());
    };
    if on && !f.is_up() {
        // Exports would time out and be dropped: refuse rather than lose
        // every connection.
        return ("503 Service Unavailable", "the repository is down: connections cannot be exported now\n".into());
    }
    f.set_draining(on);
    if on {
        log::info!("admin: draining this host into the fleet repository");
        ("200 OK", "draining this host: every connection goes to the repository for the next host\n".into())
    } else {
        log::info!("admin: host drain ended");
        ("200 OK", "host drain ended\n".into())
    }
}

/// The host's fleet state.
pub fn render_fleet(f: Option<&crate::worker::fleet::Fleet>) -> String {
    let Some(f) = f else { return String::new() };
    format!(
        "# HELP baton_host_draining 1 while this host is drained into the fleet repository.\n# TYPE baton_host_draining gauge\nbaton_host_draining {}\n{}",
        f.is_draining() as u8,
        f.metrics()
    )
}

/// Counters of the host's session tables, and the drain state.
pub fn render_tables(f: &crate::worker::handoff::Fabric) -> String {
    let mut out = String::new();
    out.push_str("# HELP baton_worker_draining 1 while the worker is drained (its connections move to the others).\n# TYPE baton_worker_draining gauge\n");
    for w in 0..f.workers {
        out.push_str(&format!("baton_worker_draining{{worker=\"{w}\"}} {}\n", f.is_draining(w) as u8));
    }
    let mut tables = vec![("conns", &f.table), ("tickets", &f.tickets)];
    if let Some(s) = f.small.as_ref() {
        tables.push(("conns_small", s));
    }
    let stats: Vec<_> = tables.iter().map(|(n, t)| (*n, t.stats())).collect();
    let fields: [(&str, &str, fn(&crate::session::table::Stats) -> u64); 7] = [
        ("puts", "records put", |s| s.puts),
        ("takes", "records taken", |s| s.takes),
        ("misses", "takes that found nothing", |s| s.misses),
        ("full", "puts refused: probe window full", |s| s.full),
        ("expired", "expired records reclaimed", |s| s.expired),
        ("evicted", "records evicted to make room (tickets only)", |s| s.evicted),
        ("too_large", "puts refused: record too large", |s| s.too_large),
    ];
    for (name, help, get) in fields {
        out.push_str(&format!("# HELP baton_session_table_{name}_total Session table: {help}.\n# TYPE baton_session_table_{name}_total counter\n"));
        for (t, s) in &stats {
            out.push_str(&format!("baton_session_table_{name}_total{{table=\"{t}\"}} {}\n", get(s)));
        }
    }
    out
}

/// Prometheus text for every worker's latest snapshot.
pub fn render(snaps: &Snapshots) -> String {
    let copies: Vec<_> = snaps.iter().map(|m| m.lock().map(|g| g.clone()).unwrap_or_default()).collect();
    let labels: Vec<String> = (0..copies.len()).map(|i| i.to_string()).collect();
    let counters: Vec<(&str, &crate::metrics::Counters)> = labels.iter().map(|l| l.as_str()).zip(copies.iter().map(|c| &c.counters)).collect();
    let mut out = crate::metrics::render_prometheus(&counters);
    if let Some(first) = copies.first() {
        for (name, help, _) in first.stats.iter() {
            out.push_str(&format!("# HELP baton_{name}_total {help}\n# TYPE baton_{name}_total counter\n"));
            for (i, c) in copies.iter().enumerate() {
                let v = c.stats.iter().find(|(n, _, _)| *n == name).map(|x| x.2).unwrap_or(0);
                out.push_str(&format!("baton_{name}_total{{worker=\"{i}\"}} {v}\n"));
            }
        }
    }
    out.push_str("# HELP baton_connections Proxied connections a worker holds now.\n# TYPE baton_connections gauge\n");
    for (i, c) in copies.iter().enumerate() {
        out.push_str(&format!("baton_connections{{worker=\"{i}\"}} {}\n", c.live));
    }
    out.push_str(
        "# HELP baton_connections_time_wait Of baton_connections, those whose client flow waits out TIME_WAIT (TLS state already dropped).\n# TYPE baton_connections_time_wait gauge\n",
    );
    for (i, c) in copies.iter().enumerate() {
        out.push_str(&format!("baton_connections_time_wait{{worker=\"{i}\"}} {}\n", c.time_wait));
    }
    // Busy loop iterations as a Prometheus histogram (cumulative buckets).
    out.push_str("# HELP baton_loop_iteration_microseconds Time one busy poll-loop iteration held the worker.\n");
    out.push_str("# TYPE baton_loop_iteration_microseconds histogram\n");
    for (i, c) in copies.iter().enumerate() {
        let mut cum = 0u64;
        for (b, n) in c.totals.iterations.iter().enumerate() {
            cum += n;
            if b + 1 < c.totals.iterations.len() {
                out.push_str(&format!("baton_loop_iteration_microseconds_bucket{{worker=\"{i}\",le=\"{}\"}} {cum}\n", (1u64 << b) - 1));
            }
        }
        out.push_str(&format!("baton_loop_iteration_microseconds_bucket{{worker=\"{i}\",le=\"+Inf\"}} {cum}\n"));
        out.push_str(&format!("baton_loop_iteration_microseconds_count{{worker=\"{i}\"}} {cum}\n"));
        out.push_str(&format!("baton_loop_iteration_max_microseconds{{worker=\"{i}\"}} {}\n", c.totals.iteration_max_us));
    }
    out
}
