//! Any bytes as a TCP segment (and as a bare option list): parsing must
//! never panic, and a header that parses must re-emit and parse back equal.
#![no_main]

use baton::net::wire;
use baton::net::{IpAddress, TcpHeader};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let (src, dst) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 10));
    let mut h = TcpHeader::default();
    let _ = wire::parse_tcp_options(data.get(..40.min(data.len())).unwrap_or(&[]), &mut h);
    if let Ok((hdr, payload)) = wire::parse_tcp(IpAddress::V4(src), IpAddress::V4(dst), data) {
        let mut buf = vec![0u8; 60 + payload.len()];
        let n = wire::emit_tcp_segment(&mut buf, src, dst, &hdr, payload);
        assert!(n > 0);
        let (back, p2) = wire::parse_tcp(IpAddress::V4(src), IpAddress::V4(dst), &buf[..n]).expect("re-parse");
        // Emission may drop SACK blocks that do not fit beside other options.
        assert_eq!(back.mss, hdr.mss);
        assert_eq!(back.wscale, hdr.wscale);
        assert_eq!(back.sack_permitted, hdr.sack_permitted);
        assert_eq!(back.timestamp, hdr.timestamp);
        assert!(back.sack_len <= hdr.sack_len);
        assert_eq!(p2, payload);
    }
});
