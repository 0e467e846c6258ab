//! PROXY protocol version 2 header (haproxy.org/download/…/proxy-protocol.txt,
//! section 2.2), sent first on a backend connection so the backend learns
//! the client's address, the TLS facts and — baton's own TLV — how many
//! leading bytes of the stream arrived as TLS 1.3 early data (0-RTT, which
//! a backend must treat as replayable, RFC 8446 §8).

use crate::net::Endpoint;

/// The 12-byte signature that starts every v2 header.
pub const SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
pub const PP2_TYPE_ALPN: u8 = 0x01;
pub const PP2_TYPE_AUTHORITY: u8 = 0x02;
pub const PP2_TYPE_SSL: u8 = 0x20;
pub const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
pub const PP2_SUBTYPE_SSL_CIPHER: u8 = 0x23;
/// Custom TLV (range 0xE0–0xEF is for applications): u32 big-endian count
/// of the stream's leading bytes that were 0-RTT early data.
pub const PP2_TYPE_BATON_EARLY_DATA: u8 = 0xE0;
const PP2_CLIENT_SSL: u8 = 0x01;

/// What the header says about one proxied connection.
pub struct HeaderInfo<'a> {
    pub client: Endpoint,
    pub server: Endpoint,
    pub alpn: Option<&'a [u8]>,
    pub sni: Option<&'a str>,
    pub cipher: Option<&'a str>,
    pub early_data: Option<u32>,
}

fn tlv(out: &mut Vec<u8>, t: u8, v: &[u8]) {
    out.push(t);
    out.extend_from_slice(&(v.len() as u16).to_be_bytes());
    out.extend_from_slice(v);
}

/// The header for a proxied TCP-over-IPv4 connection (command PROXY).
pub fn header(h: &HeaderInfo<'_>) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&h.client.addr.octets_v4());
    body.extend_from_slice(&h.server.addr.octets_v4());
    body.extend_from_slice(&h.client.port.to_be_bytes());
    body.extend_from_slice(&h.server.port.to_be_bytes());
    if let Some(a) = h.alpn {
        tlv(&mut body, PP2_TYPE_ALPN, a);
    }
    if let Some(s) = h.sni {
        tlv(&mut body, PP2_TYPE_AUTHORITY, s.as_bytes());
    }
    // PP2_TYPE_SSL: client flags (u8), verify (u32, 0 = client cert ok or
    // none asked), then sub-TLVs.
    let mut ssl = vec![PP2_CLIENT_SSL, 0, 0, 0, 0];
    tlv(&mut ssl, PP2_SUBTYPE_SSL_VERSION, b"TLSv1.3");
    if let Some(c) = h.cipher {
        tlv(&mut ssl, PP2_SUBTYPE_SSL_CIPHER, c.as_bytes());
    }
    tlv(&mut body, PP2_TYPE_SSL, &ssl);
    if let Some(n) = h.early_data {
        tlv(&mut body, PP2_TYPE_BATON_EARLY_DATA, &n.to_be_bytes());
    }
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&SIGNATURE);
    out.push(0x21); // version 2, command PROXY
    out.push(0x11); // AF_INET, STREAM
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::IpAddress;

    #[test]
    fn header_bytes_follow_the_spec_layout() {
        let h = header(&HeaderInfo {
            client: Endpoint::new(IpAddress::v4(198, 18, 0, 10), 40000),
            server: Endpoint::new(IpAddress::v4(198, 18, 0, 2), 443),
            alpn: None,
            sni: None,
            cipher: None,
            early_data: Some(300),
        });
        // Written out by hand from the spec: signature, 0x21, 0x11, length,
        // src addr, dst addr, src port, dst port, then the TLVs.
        let mut want: Vec<u8> = vec![0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11];
        let ssl: &[u8] = &[0x20, 0x00, 0x0F, 0x01, 0, 0, 0, 0, 0x21, 0x00, 0x07, b'T', b'L', b'S', b'v', b'1', b'.', b'3'];
        let early: &[u8] = &[0xE0, 0x00, 0x04, 0x00, 0x00, 0x01, 0x2C];
        let len = 12 + ssl.len() + early.len();
        want.extend_from_slice(&(len as u16).to_be_bytes());
        want.extend_from_slice(&[198, 18, 0, 10, 198, 18, 0, 2, 0x9C, 0x40, 0x01, 0xBB]);
        want.extend_from_slice(ssl);
        want.extend_from_slice(early);
        assert_eq!(h, want);
    }
}
