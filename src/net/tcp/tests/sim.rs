//! Seeded loss/reorder/duplicate simulator: two connections through a
//! lossy link, 1 MiB each way, exact bytes, bounded virtual time.

use super::util::*;
use crate::entropy::{Entropy, SeededEntropy};
use crate::net::tcp::{TcpConfig, TcpConn};
use crate::net::TcpHeader;
use crate::time::{Duration, Instant};

struct Link {
    rng: SeededEntropy,
    /// (deliver at, tie-break, to server?, header, payload)
    q: Vec<(Instant, u64, bool, TcpHeader, Vec<u8>)>,
    n: u64,
    drop_pct: u32,
    dup_pct: u32,
    delay: Duration,
    jitter_us: u32,
    dropped: u64,
}

impl Link {
    fn send(&mut self, now: Instant, to_server: bool, h: &TcpHeader, p: &[u8]) {
        let r = self.rng.u32() % 100;
        if r < self.drop_pct {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.u32() % 100 < self.dup_pct { 2 } else { 1 };
        for _ in 0..copies {
            let j = if self.jitter_us > 0 { self.rng.u32() % self.jitter_us } else { 0 };
            let at = now + self.delay + Duration::from_micros(j as u64);
            self.n += 1;
            self.q.push((at, self.n, to_server, *h, p.to_vec()));
        }
    }
    fn next_at(&self) -> Option<Instant> {
        self.q.iter().map(|e| e.0).min()
    }
    fn pop_due(&mut self, now: Instant) -> Option<(bool, TcpHeader, Vec<u8>)> {
        let i = self.q.iter().enumerate().filter(|(_, e)| e.0 <= now).min_by_key(|(_, e)| (e.0, e.1)).map(|(i, _)| i)?;
        let e = self.q.swap_remove(i);
        Some((e.2, e.3, e.4))
    }
}

fn run(seed: u64, drop_pct: u32, dup_pct: u32, jitter_us: u32, cfg: TcpConfig) -> (Instant, u64) {
    const N: usize = 1 << 20;
    let up = payload(N, 11);
    let down = payload(N, 77);
    let mut link = Link { rng: SeededEntropy::new(seed), q: Vec::new(), n: 0, drop_pct, dup_pct, delay: Duration::from_millis(5), jitter_us, dropped: 0 };
    let mut now = Instant::ZERO;
    let mut cl = TcpConn::connect(&cfg, flow_rev(), (seed as u32).wrapping_mul(0x9e37_79b9), now);
    let mut sv: Option<TcpConn> = None;
    let (mut up_off, mut down_off) = (0usize, 0usize);
    let (mut got_up, mut got_down) = (Vec::with_capacity(N), Vec::with_capacity(N));
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::from_millis(300_000);
    let (mut cl_closed, mut sv_closed) = (false, false);
    loop {
        // Deliver everything due.
        while let Some((to_server, h, p)) = link.pop_due(now) {
            if to_server {
                match sv.as_mut() {
                    Some(s) => {
                        s.on_segment(&h, &p, now);
                    }
                    None if h.flags.syn() && !h.flags.ack() => {
                        sv = Some(TcpConn::accept(&cfg, flow(), &h, 0xffff_0000u32.wrapping_add(seed as u32), now));
                    }
                    None => {}
                }
            } else {
                cl.on_segment(&h, &p, now);
            }
        }
        // Applications.
        up_off += cl.write(&up[up_off..]);
        if up_off == N && !cl_closed {
            cl.close();
            cl_closed = true;
        }
        let k = cl.read(&mut buf);
        got_down.extend_from_slice(&buf[..k]);
        if let Some(s) = sv.as_mut() {
            down_off += s.write(&down[down_off..]);
            if down_off == N && !sv_closed {
                s.close();
                sv_closed = true;
            }
            let k = s.read(&mut buf);
            got_up.extend_from_slice(&buf[..k]);
        }
        cl.poll_transmit(now, &mut |h, p| link.send(now, true, h, p));
        if let Some(s) = sv.as_mut() {
            s.poll_transmit(now, &mut |h, p| link.send(now, false, h, p));
        }
        let done = cl.is_closed() && sv.as_ref().is_some_and(|s| s.is_closed());
        if done {
            break;
        }
        assert!(now < deadline, "seed {seed}: transfer did not finish in time: up {} down {} cl {:?} sv {:?}", got_up.len(), got_down.len(), cl.state(), sv.as_ref().map(|s| s.state()));
        assert!(!cl.timed_out() && !sv.as_ref().is_some_and(|s| s.timed_out()), "seed {seed}: gave up");
        let mut next = [link.next_at(), cl.poll_at(), sv.as_ref().and_then(|s| s.poll_at())].into_iter().flatten().min().unwrap_or(now + Duration::from_millis(1));
        if next <= now {
            // Something is due right now: poll again at the same instant,
            // but make progress on the clock eventually.
            next = now + Duration::from_micros(1);
        }
        now = next;
    }
    assert_eq!(got_up.len(), N, "seed {seed}");
    assert!(got_up == up, "seed {seed}: client→server bytes differ");
    assert!(got_down == down, "seed {seed}: server→client bytes differ");
    assert!(cl.peer_fin());
    (now, link.dropped)
}

#[test]
fn seeded_lossy_reordering_duplicating_link_transfers_1mib_each_way() {
    for seed in 1..=3u64 {
        let (t, dropped) = run(seed, 2, 2, 4000, TcpConfig::default());
        assert!(dropped > 10, "seed {seed}: the link did drop ({dropped})");
        assert!(t < Instant::from_millis(60_000), "seed {seed}: took {t:?}");
    }
}

#[test]
fn seeded_link_without_options_still_transfers_exactly() {
    let cfg = TcpConfig { timestamps: false, sack: false, wscale: 0, recv_buf_cap: 60000, ..TcpConfig::default() };
    let (t, _) = run(9, 3, 1, 3000, cfg);
    assert!(t < Instant::from_millis(120_000), "took {t:?}");
}

#[test]
fn clean_link_is_fast() {
    let (t, _) = run(5, 0, 0, 0, TcpConfig::default());
    // 1 MiB at 256 KiB windows per 10 ms RTT is a few RTTs of slow start.
    assert!(t < Instant::from_millis(3_000), "took {t:?}");
}
