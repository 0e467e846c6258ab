//! Any bytes as a received frame: the stack must never panic. The first
//! two bytes pick the time step and whether a segment is emitted back, so
//! the ARP queue, poll and cache paths are reached too.
#![no_main]

use baton::net::arp::ArpCache;
use baton::net::stack::{Rx, Stack, StackConfig};
use baton::net::MacAddr;
use baton::time::Instant;
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let cfg = StackConfig::new(MacAddr([2, 0xba, 0x70, 0, 0, 1]), Ipv4Addr::new(198, 18, 0, 10), 1500);
    let mut st = Stack::new(cfg, Arc::new(ArpCache::new(16)));
    let mut now = Instant::ZERO;
    // The input is a sequence of [len_hi, len_lo, frame bytes...] records.
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 1600;
        rest = &rest[2..];
        let (frame, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        let mut sink = |_: &[u8]| {};
        let rx = st.handle_frame(frame, now, &mut sink);
        if let Rx::Tcp { flow, header, payload, .. } = rx {
            let payload = payload.to_vec();
            let _ = st.emit_tcp(flow.remote.addr, &header, &payload, now, &mut sink);
        }
        now = now + baton::time::Duration::from_millis(u64::from(len as u8));
        st.poll(now, &mut sink);
    }
});
