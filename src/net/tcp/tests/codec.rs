//! Encode/decode round trip at every point of a connection's life: the
//! decoded copy must behave exactly like the original, segment for segment.

use super::util::*;
use crate::codec::{Reader, Writer};
use crate::net::tcp::{TcpConfig, TcpConn};
use crate::net::TcpHeader;
use crate::time::Instant;

fn enc(c: &TcpConn, now: Instant) -> Vec<u8> {
    let mut w = Writer::new();
    c.encode(now, &mut w);
    w.finish().to_vec()
}

fn dec(b: &[u8], now: Instant) -> TcpConn {
    let mut r = Reader::new(b);
    let c = TcpConn::decode(&mut r, now).expect("decodes");
    r.finish().expect("no trailing bytes");
    c
}

type Trace = Vec<(char, TcpHeader, Vec<u8>)>;

/// One scripted life: client and server, handshake, data both ways with
/// loss and reordering, half-close, close, TIME-WAIT. `hook(step, a, b,
/// now)` runs before every step and may replace the server.
fn life(mut hook: impl FnMut(usize, &mut TcpConn, &mut TcpConn, Instant)) -> (Trace, Vec<u8>, Vec<u8>) {
    let cfg = TcpConfig { mss: 500, recv_buf_cap: 8000, send_buf_cap: 8000, ..TcpConfig::default() };
    let mut cl = TcpConn::connect(&cfg, flow_rev(), 0xffff_ff00, ms(0));
    let mut trace = Trace::new();
    let mut syn = None;
    cl.poll_transmit(ms(0), &mut |h, _| syn = Some(*h));
    let syn = syn.unwrap();
    let mut sv = TcpConn::accept(&cfg, flow(), &syn, 0x7fff_ffff, ms(1));
    let (mut got_cl, mut got_sv) = (Vec::new(), Vec::new());
    let up = payload(20_000, 1);
    let down = payload(15_000, 2);
    let (mut up_off, mut down_off) = (0, 0);
    let mut now = ms(1);
    let mut closed = false;
    for step in 0..400usize {
        hook(step, &mut cl, &mut sv, now);
        up_off += cl.write(&up[up_off..]);
        if step > 3 {
            down_off += sv.write(&down[down_off..]);
        }
        if up_off == up.len() && step >= 120 && !closed {
            closed = true;
            cl.close();
        }
        if step == 200 {
            sv.close();
        }
        let mut to_sv = Vec::new();
        let mut to_cl = Vec::new();
        cl.poll_transmit(now, &mut |h, p| to_sv.push((*h, p.to_vec())));
        sv.poll_transmit(now, &mut |h, p| to_cl.push((*h, p.to_vec())));
        for (i, (h, p)) in to_sv.into_iter().enumerate() {
            trace.push(('c', h, p.clone()));
            // Drop every 7th step's first client segment.
            if step % 7 == 3 && i == 0 {
                continue;
            }
            sv.on_segment(&h, &p, now);
        }
        if step % 2 == 1 {
            // Reorder: the server's segments arrive in reverse on odd steps.
            to_cl.reverse();
        }
        for (h, p) in to_cl {
            trace.push(('s', h, p.clone()));
            cl.on_segment(&h, &p, now);
        }
        let mut b = vec![0u8; 4096];
        let k = sv.read(&mut b);
        got_sv.extend_from_slice(&b[..k]);
        let k = cl.read(&mut b);
        got_cl.extend_from_slice(&b[..k]);
        let next = [cl.poll_at(), sv.poll_at()].into_iter().flatten().min();
        now = match next {
            Some(t) if t > now => t.min(now + dur_ms(30)),
            _ => now + dur_ms(5),
        };
    }
    assert!(cl.is_closed() || cl.state() == crate::net::tcp::TcpState::TimeWait);
    assert!(sv.is_closed());
    (trace, got_sv, got_cl)
}

#[test]
fn encode_decode_round_trip_at_every_step_behaves_identically() {
    let (reference, up, down) = life(|_, _, _, _| {});
    assert_eq!(up, payload(20_000, 1), "the exchange itself is correct");
    assert_eq!(down, payload(15_000, 2));
    let mut states = std::collections::HashSet::new();
    for k in 0..400usize {
        let (trace, up2, down2) = life(|step, cl, sv, now| {
            if step == k {
                for c in [cl, sv] {
                    states.insert(c.state());
                    let b = enc(c, now);
                    let d = dec(&b, now);
                    assert_eq!(enc(&d, now), b, "re-encoding is byte-identical at step {k}");
                    *c = d;
                }
            }
        });
        assert_eq!(trace, reference, "decoded at step {k}: same segments");
        assert_eq!((up2, down2), (up.clone(), down.clone()));
    }
    use crate::net::tcp::TcpState::*;
    for s in [SynSent, SynReceived, Established, FinWait1, FinWait2, CloseWait, LastAck, TimeWait, Closed] {
        assert!(states.contains(&s), "a round trip happened in {s:?}");
    }
}

#[test]
fn decode_at_a_later_time_keeps_remaining_timers_and_timestamp_clock() {
    let cfg = TcpConfig::default();
    let mut c = TcpConn::connect(&cfg, flow(), 42, ms(0));
    let syn = out(&mut c, ms(0)).remove(0).0;
    assert_eq!(c.poll_at(), Some(ms(1000)));
    let b = enc(&c, ms(400));
    let mut d = dec(&b, ms(10_400));
    assert_eq!(d.poll_at(), Some(ms(11_000)), "600 ms remaining");
    let o = out(&mut d, ms(11_000));
    let (ts0, _) = syn.timestamp.unwrap();
    assert_eq!(o[0].0.timestamp.unwrap().0, ts0.wrapping_add(1000), "clock continues from the handoff");
}

#[test]
fn decode_rejects_bad_records_without_panicking() {
    let cfg = TcpConfig::default();
    let c = established_passive(&cfg, 60000);
    let b = enc(&c, ms(20));
    for n in 0..b.len() {
        assert!(TcpConn::decode(&mut Reader::new(&b[..n]), ms(20)).is_err());
    }
    let mut bad = b.clone();
    bad[2] = 9; // future version
    assert!(TcpConn::decode(&mut Reader::new(&bad), ms(20)).is_err());
    for i in 0..b.len() {
        let mut m = b.clone();
        m[i] ^= 0xff;
        let _ = TcpConn::decode(&mut Reader::new(&m), ms(20)).map(|mut d| {
            out(&mut d, ms(30));
            d.on_segment(&seg(PEER_ISN + 1, OUR_ISN + 1, A, 100), b"abc", ms(31));
        });
    }
}
