//! Initial sequence numbers, RFC 6528 §3: ISN = M + F(localip, localport,
//! remoteip, remoteport, secretkey), where M is a timer ticking every 4 µs
//! and F is a keyed hash (here SHA-256 from ring over the secret and the
//! 4-tuple, first four bytes), so ISNs of one 4-tuple grow with time and
//! those of different 4-tuples are unrelated.

use crate::net::FlowId;
use crate::time::Instant;

pub fn isn_rfc6528(secret: &[u8; 16], flow: &FlowId, now: Instant) -> u32 {
    let mut input = [0u8; 16 + 4 + 2 + 4 + 2];
    input[..16].copy_from_slice(secret);
    input[16..20].copy_from_slice(&flow.local.addr.octets_v4());
    input[20..22].copy_from_slice(&flow.local.port.to_be_bytes());
    input[22..26].copy_from_slice(&flow.remote.addr.octets_v4());
    input[26..28].copy_from_slice(&flow.remote.port.to_be_bytes());
    let d = ring::digest::digest(&ring::digest::SHA256, &input);
    let h = d.as_ref();
    let f = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    // M: RFC 6528 §3, a 4-microsecond timer.
    let m = (now.micros() / 4) as u32;
    m.wrapping_add(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{Endpoint, IpAddress};

    fn flow(port: u16) -> FlowId {
        FlowId {
            local: Endpoint::new(IpAddress::v4(198, 18, 0, 1), 443),
            remote: Endpoint::new(IpAddress::v4(198, 18, 0, 2), port),
        }
    }

    #[test]
    fn isn_advances_one_per_4us_and_depends_on_tuple_and_secret() {
        let s = [7u8; 16];
        let a = isn_rfc6528(&s, &flow(1000), Instant(0));
        assert_eq!(isn_rfc6528(&s, &flow(1000), Instant(400)), a.wrapping_add(100));
        assert_ne!(isn_rfc6528(&s, &flow(1001), Instant(0)), a);
        assert_ne!(isn_rfc6528(&[8u8; 16], &flow(1000), Instant(0)), a);
        // F is the first four bytes of SHA-256(secret ‖ 4-tuple), checked
        // against a digest computed here independently of the function.
        let mut input = Vec::new();
        input.extend_from_slice(&s);
        input.extend_from_slice(&[198, 18, 0, 1, 0x01, 0xbb, 198, 18, 0, 2, 0x03, 0xe8]);
        let d = ring::digest::digest(&ring::digest::SHA256, &input);
        let f = u32::from_be_bytes(d.as_ref()[..4].try_into().unwrap());
        assert_eq!(a, f);
    }
}
