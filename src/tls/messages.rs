//! Handshake messages (RFC 8446 §4): the ClientHello parser and the emitters
//! for what a server sends. The parser takes untrusted bytes through the
//! checked reader in `wire`; every failure is a `TlsError` with its alert.

use super::wire::{put_u16, put_u24, with_len, Rd};
use super::TlsError;

/// HandshakeType (§4).
pub mod hs_type {
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const NEW_SESSION_TICKET: u8 = 4;
    pub const END_OF_EARLY_DATA: u8 = 5;
    pub const ENCRYPTED_EXTENSIONS: u8 = 8;
    pub const CERTIFICATE: u8 = 11;
    pub const CERTIFICATE_VERIFY: u8 = 15;
    pub const FINISHED: u8 = 20;
    pub const KEY_UPDATE: u8 = 24;
}

/// ExtensionType (§4.2).
pub mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const SUPPORTED_GROUPS: u16 = 10;
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    pub const ALPN: u16 = 16;
    pub const PRE_SHARED_KEY: u16 = 41;
    pub const EARLY_DATA: u16 = 42;
    pub const SUPPORTED_VERSIONS: u16 = 43;
    pub const COOKIE: u16 = 44;
    pub const PSK_KEY_EXCHANGE_MODES: u16 = 45;
    pub const KEY_SHARE: u16 = 51;
}

pub const TLS13: u16 = 0x0304;

/// The special ServerHello.random of a HelloRetryRequest (§4.1.3):
/// SHA-256("HelloRetryRequest").
pub const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11,
    0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A parsed offered PSK (§4.2.11); the first identity is resumed from
/// (`super::resume`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OfferedPsk {
    pub identities: Vec<(Vec<u8>, u32)>,
    pub binders: Vec<Vec<u8>>,
    /// Length of the ClientHello message prefix (handshake header
    /// included) the binders are computed over: up to and including the
    /// identities, excluding the binders list (§4.2.11.2).
    pub binders_offset: usize,
}

/// The fields of a ClientHello (§4.1.2) the server acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub suites: Vec<u16>,
    pub versions: Option<Vec<u16>>,
    pub groups: Option<Vec<u16>>,
    pub key_shares: Option<Vec<(u16, Vec<u8>)>>,
    pub sig_algs: Option<Vec<u16>>,
    pub sni: Option<String>,
    pub alpn: Option<Vec<Vec<u8>>>,
    pub psk_modes: Option<Vec<u8>>,
    pub psk: Option<OfferedPsk>,
    pub early_data: bool,
    pub cookie: Option<Vec<u8>>,
}

fn u16_list(b: &[u8], what: &'static str) -> Result<Vec<u16>, TlsError> {
    if !b.len().is_multiple_of(2) {
        return Err(TlsError::Decode(what));
    }
    Ok(b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect())
}

impl ClientHello {
    /// Parses a ClientHello body (the handshake header already removed).
    /// The PSK binders offset refers to the whole message, header included.
    pub fn parse(body: &[u8]) -> Result<ClientHello, TlsError> {
        let mut r = Rd::new(body);
        let _legacy_version = r.u16("client_hello.legacy_version")?;
        let mut ch = ClientHello::default();
        ch.random.copy_from_slice(r.take(32, "client_hello.random")?);
        ch.session_id = r.vec8(0, 32, "client_hello.legacy_session_id")?.to_vec();
        ch.suites = u16_list(r.vec16(2, 0xfffe, "client_hello.cipher_suites")?, "client_hello.cipher_suites")?;
        let comp = r.vec8(1, 255, "client_hello.legacy_compression_methods")?;
        // §4.1.2: exactly one byte, null compression.
        if comp != [0] {
            return Err(TlsError::IllegalParameter("legacy_compression_methods"));
        }
        if r.is_empty() {
            // A ClientHello without extensions cannot be TLS 1.3 (§4.1.2).
            return Err(TlsError::ProtocolVersion);
        }
        let exts_start = body.len() - r.remaining() + 2;
        let exts = r.vec16(0, 0xffff, "client_hello.extensions")?;
        r.expect_end("client_hello trailing bytes")?;
        let mut er = Rd::new(exts);
        let mut seen: Vec<u16> = Vec::new();
        while !er.is_empty() {
            if ch.psk.is_some() {
                // §4.2.11: pre_shared_key MUST be the last extension.
                return Err(TlsError::IllegalParameter("pre_shared_key not last"));
            }
            let typ = er.u16("extension type")?;
            let ext_at = exts_start + (exts.len() - er.remaining());
            let data = er.vec16(0, 0xffff, "extension data")?;
            // §4.2: at most one extension of each type.
            if seen.contains(&typ) {
                return Err(TlsError::IllegalParameter("duplicate extension"));
            }
            seen.push(typ);
            let mut d = Rd::new(data);
            match typ {
                ext::SERVER_NAME => {
                    // RFC 6066 §3.
                    let list = d.vec16(1, 0xffff, "server_name list")?;
                    let mut l = Rd::new(list);
                    while !l.is_empty() {
                        let name_type = l.u8("server_name type")?;
                        let name = l.vec16(1, 0xffff, "server_name host_name")?;
                        if name_type == 0 && ch.sni.is_none() {
                            ch.sni = Some(parse_host_name(name)?);
                        }
                    }
                }
                ext::SUPPORTED_GROUPS => {
                    ch.groups = Some(u16_list(d.vec16(2, 0xffff, "supported_groups")?, "supported_groups")?);
                }
                ext::SIGNATURE_ALGORITHMS => {
                    ch.sig_algs =
                        Some(u16_list(d.vec16(2, 0xfffe, "signature_algorithms")?, "signature_algorithms")?);
                }
                ext::ALPN => {
                    // RFC 7301 §3.1.
                    let list = d.vec16(2, 0xffff, "alpn list")?;
                    let mut l = Rd::new(list);
                    let mut names = Vec::new();
                    while !l.is_empty() {
                        names.push(l.vec8(1, 255, "alpn protocol name")?.to_vec());
                    }
                    ch.alpn = Some(names);
                }
                ext::SUPPORTED_VERSIONS => {
                    ch.versions = Some(u16_list(d.vec8(2, 254, "supported_versions")?, "supported_versions")?);
                }
                ext::PSK_KEY_EXCHANGE_MODES => {
                    ch.psk_modes = Some(d.vec8(1, 255, "psk_key_exchange_modes")?.to_vec());
                }
                ext::KEY_SHARE => {
                    let list = d.vec16(0, 0xffff, "key_share client_shares")?;
                    let mut l = Rd::new(list);
                    let mut shares: Vec<(u16, Vec<u8>)> = Vec::new();
                    while !l.is_empty() {
                        let g = l.u16("key_share group")?;
                        let k = l.vec16(1, 0xffff, "key_share key_exchange")?;
                        // §4.2.8: one share per group.
                        if shares.iter().any(|(sg, _)| *sg == g) {
                            return Err(TlsError::IllegalParameter("duplicate key_share group"));
                        }
                        shares.push((g, k.to_vec()));
                    }
                    ch.key_shares = Some(shares);
                }
                ext::COOKIE => {
                    ch.cookie = Some(d.vec16(1, 0xffff, "cookie")?.to_vec());
                }
                ext::EARLY_DATA => {
                    ch.early_data = true;
                }
                ext::PRE_SHARED_KEY => {
                    let mut psk = OfferedPsk::default();
                    let ids = d.vec16(7, 0xffff, "psk identities")?;
                    let mut l = Rd::new(ids);
                    while !l.is_empty() {
                        let id = l.vec16(1, 0xffff, "psk identity")?.to_vec();
                        let age = l.take(4, "psk obfuscated_ticket_age")?;
                        psk.identities.push((id, u32::from_be_bytes([age[0], age[1], age[2], age[3]])));
                    }
                    // Handshake header (4) + extension length field (2).
                    psk.binders_offset = 4 + ext_at + 2 + (data.len() - d.remaining());
                    let binders = d.vec16(33, 0xffff, "psk binders")?;
                    let mut l = Rd::new(binders);
                    while !l.is_empty() {
                        psk.binders.push(l.vec8(32, 255, "psk binder")?.to_vec());
                    }
                    if psk.binders.len() != psk.identities.len() {
                        return Err(TlsError::IllegalParameter("psk binders/identities mismatch"));
                    }
                    ch.psk = Some(psk);
                }
                // Unknown and GREASE extensions are skipped (§4.2, case T6).
                _ => continue,
            }
            d.expect_end("extension trailing bytes")?;
        }
        if ch.psk.is_some() && ch.psk_modes.is_none() {
            // §4.2.9: a client offering a PSK must send psk_key_exchange_modes.
            return Err(TlsError::MissingExtension("psk_key_exchange_modes"));
        }
        Ok(ch)
    }
}

/// A DNS host name (RFC 6066 §3): ASCII letters, digits, '-', '.', '_' ; no
/// trailing dot, not an IP literal check (the proxy layer matches names).
fn parse_host_name(b: &[u8]) -> Result<String, TlsError> {
    if b.len() > 253 || b.last() == Some(&b'.') {
        return Err(TlsError::IllegalParameter("server_name"));
    }
    if !b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_')) {
        return Err(TlsError::IllegalParameter("server_name"));
    }
    Ok(b.iter().map(|c| c.to_ascii_lowercase() as char).collect())
}

/// Wraps `body` in a handshake header (§4).
pub fn handshake(typ: u8, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut m = vec![typ];
    with_len(&mut m, 3, f);
    m
}

fn extension(out: &mut Vec<u8>, typ: u16, f: impl FnOnce(&mut Vec<u8>)) {
    put_u16(out, typ);
    with_len(out, 2, f);
}

/// ServerHello (§4.1.3) with supported_versions, key_share and, when a PSK
/// was accepted, pre_shared_key with the selected identity (§4.2.11).
pub fn server_hello(
    random: &[u8; 32],
    session_id: &[u8],
    suite: u16,
    group: u16,
    share: &[u8],
    psk_identity: Option<u16>,
) -> Vec<u8> {
    handshake(hs_type::SERVER_HELLO, |b| {
        put_u16(b, 0x0303);
        b.extend_from_slice(random);
        with_len(b, 1, |b| b.extend_from_slice(session_id));
        put_u16(b, suite);
        b.push(0);
        with_len(b, 2, |b| {
            extension(b, ext::SUPPORTED_VERSIONS, |b| put_u16(b, TLS13));
            extension(b, ext::KEY_SHARE, |b| {
                put_u16(b, group);
                with_len(b, 2, |b| b.extend_from_slice(share));
            });
            if let Some(i) = psk_identity {
                extension(b, ext::PRE_SHARED_KEY, |b| put_u16(b, i));
            }
        });
    })
}

/// HelloRetryRequest (§4.1.4): a ServerHello with the special random and
/// key_share carrying only the selected group.
pub fn hello_retry_request(session_id: &[u8], suite: u16, group: u16) -> Vec<u8> {
    handshake(hs_type::SERVER_HELLO, |b| {
        put_u16(b, 0x0303);
        b.extend_from_slice(&HRR_RANDOM);
        with_len(b, 1, |b| b.extend_from_slice(session_id));
        put_u16(b, suite);
        b.push(0);
        with_len(b, 2, |b| {
            extension(b, ext::SUPPORTED_VERSIONS, |b| put_u16(b, TLS13));
            extension(b, ext::KEY_SHARE, |b| put_u16(b, group));
        });
    })
}

/// EncryptedExtensions (§4.3.1): the selected ALPN protocol (RFC 7301),
/// an empty server_name when SNI was used (RFC 6066 §3) and an empty
/// early_data when 0-RTT is accepted (§4.2.10).
pub fn encrypted_extensions(alpn: Option<&[u8]>, sni_used: bool, early_data: bool) -> Vec<u8> {
    handshake(hs_type::ENCRYPTED_EXTENSIONS, |b| {
        with_len(b, 2, |b| {
            if sni_used {
                extension(b, ext::SERVER_NAME, |_| {});
            }
            if early_data {
                extension(b, ext::EARLY_DATA, |_| {});
            }
            if let Some(p) = alpn {
                extension(b, ext::ALPN, |b| {
                    with_len(b, 2, |b| with_len(b, 1, |b| b.extend_from_slice(p)));
                });
            }
        });
    })
}

/// Certificate (§4.4.2) with an empty request context and no extensions.
pub fn certificate(chain: &[Vec<u8>]) -> Vec<u8> {
    handshake(hs_type::CERTIFICATE, |b| {
        b.push(0);
        with_len(b, 3, |b| {
            for c in chain {
                put_u24(b, c.len());
                b.extend_from_slice(c);
                put_u16(b, 0);
            }
        });
    })
}

/// The content covered by the server's CertificateVerify signature (§4.4.3).
pub fn certificate_verify_input(transcript_hash: &[u8]) -> Vec<u8> {
    let mut m = vec![0x20u8; 64];
    m.extend_from_slice(b"TLS 1.3, server CertificateVerify");
    m.push(0);
    m.extend_from_slice(transcript_hash);
    m
}

pub fn certificate_verify(scheme: u16, sig: &[u8]) -> Vec<u8> {
    handshake(hs_type::CERTIFICATE_VERIFY, |b| {
        put_u16(b, scheme);
        with_len(b, 2, |b| b.extend_from_slice(sig));
    })
}

pub fn finished(verify_data: &[u8]) -> Vec<u8> {
    handshake(hs_type::FINISHED, |b| b.extend_from_slice(verify_data))
}

/// NewSessionTicket (§4.6.1); with `max_early_data` > 0 it carries the
/// early_data extension with max_early_data_size, otherwise no extension.
pub fn new_session_ticket(lifetime_s: u32, age_add: u32, nonce: &[u8], ticket: &[u8], max_early_data: u32) -> Vec<u8> {
    handshake(hs_type::NEW_SESSION_TICKET, |b| {
        b.extend_from_slice(&lifetime_s.to_be_bytes());
        b.extend_from_slice(&age_add.to_be_bytes());
        with_len(b, 1, |b| b.extend_from_slice(nonce));
        with_len(b, 2, |b| b.extend_from_slice(ticket));
        with_len(b, 2, |b| {
            if max_early_data > 0 {
                extension(b, ext::EARLY_DATA, |b| b.extend_from_slice(&max_early_data.to_be_bytes()));
            }
        });
    })
}

/// KeyUpdate (§4.6.3); `request` is update_requested.
pub fn key_update(request: bool) -> Vec<u8> {
    handshake(hs_type::KEY_UPDATE, |b| b.push(request as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal hand-built ClientHello body with the given extensions.
    pub(crate) fn ch_body(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(0);
        b.extend_from_slice(&[0, 2, 0x13, 0x01]);
        b.extend_from_slice(&[1, 0]);
        with_len(&mut b, 2, |b| {
            for (t, d) in exts {
                put_u16(b, *t);
                with_len(b, 2, |b| b.extend_from_slice(d));
            }
        });
        b
    }

    #[test]
    fn pre_shared_key_is_parsed_with_binders_offset() {
        let mut psk = vec![0, 9, 0, 3, b'a', b'b', b'c', 0, 0, 0, 5];
        psk.extend_from_slice(&[0, 33, 32]);
        psk.extend_from_slice(&[0xbb; 32]);
        let body = ch_body(&[(ext::PSK_KEY_EXCHANGE_MODES, vec![1, 1]), (ext::PRE_SHARED_KEY, psk)]);
        let ch = ClientHello::parse(&body).unwrap();
        let p = ch.psk.unwrap();
        assert_eq!(p.identities, vec![(b"abc".to_vec(), 5)]);
        assert_eq!(p.binders, vec![vec![0xbb; 32]]);
        let mut msg = vec![1, 0, 0, 0];
        msg.extend_from_slice(&body);
        // What follows the prefix is the binders list: length 33, then 32.
        assert_eq!(&msg[p.binders_offset..p.binders_offset + 3], &[0, 33, 32]);
        assert_eq!(msg.len(), p.binders_offset + 35);
        // Not last: illegal.
        let mut psk2 = vec![0, 9, 0, 3, b'a', b'b', b'c', 0, 0, 0, 5, 0, 33, 32];
        psk2.extend_from_slice(&[0xbb; 32]);
        let body =
            ch_body(&[(ext::PSK_KEY_EXCHANGE_MODES, vec![1, 1]), (ext::PRE_SHARED_KEY, psk2), (ext::ALPN, vec![0, 3, 2, b'h', b'2'])]);
        assert_eq!(ClientHello::parse(&body), Err(TlsError::IllegalParameter("pre_shared_key not last")));
    }

    #[test]
    fn hrr_random_is_sha256_of_label() {
        let d = ring::digest::digest(&ring::digest::SHA256, b"HelloRetryRequest");
        assert_eq!(d.as_ref(), &HRR_RANDOM);
    }

    #[test]
    fn parses_extensions_and_skips_grease() {
        let body = ch_body(&[
            (0x0a0a, vec![]),
            (ext::SUPPORTED_VERSIONS, vec![4, 0x7a, 0x7a, 0x03, 0x04]),
            (ext::SUPPORTED_GROUPS, vec![0, 4, 0x2a, 0x2a, 0x00, 0x1d]),
            (ext::SERVER_NAME, vec![0, 8, 0, 0, 5, b'A', b'.', b'b', b'c', b'd']),
            (ext::ALPN, vec![0, 3, 2, b'h', b'2']),
        ]);
        let ch = ClientHello::parse(&body).unwrap();
        assert_eq!(ch.versions, Some(vec![0x7a7a, 0x0304]));
        assert_eq!(ch.groups, Some(vec![0x2a2a, 0x001d]));
        assert_eq!(ch.sni.as_deref(), Some("a.bcd"));
        assert_eq!(ch.alpn, Some(vec![b"h2".to_vec()]));
        assert_eq!(ch.suites, vec![0x1301]);
    }

    #[test]
    fn rejects_duplicates_bad_lengths_and_compression() {
        let dup = ch_body(&[(ext::SUPPORTED_GROUPS, vec![0, 2, 0, 0x1d]), (ext::SUPPORTED_GROUPS, vec![0, 2, 0, 0x1d])]);
        assert_eq!(ClientHello::parse(&dup), Err(TlsError::IllegalParameter("duplicate extension")));
        let odd = ch_body(&[(ext::SUPPORTED_GROUPS, vec![0, 3, 0, 0x1d, 0])]);
        assert!(matches!(ClientHello::parse(&odd), Err(TlsError::Decode(_))));
        let trailing = ch_body(&[(ext::SUPPORTED_VERSIONS, vec![2, 3, 4, 9])]);
        assert!(matches!(ClientHello::parse(&trailing), Err(TlsError::Decode(_))));
        let mut comp = ch_body(&[]);
        comp[32 + 2 + 1 + 4 + 1] = 1; // compression method 1
        assert_eq!(ClientHello::parse(&comp), Err(TlsError::IllegalParameter("legacy_compression_methods")));
        let shares = ch_body(&[(ext::KEY_SHARE, vec![0, 10, 0, 0x1d, 0, 1, 9, 0, 0x1d, 0, 1, 9])]);
        assert_eq!(ClientHello::parse(&shares), Err(TlsError::IllegalParameter("duplicate key_share group")));
        // Every truncation is an error, never a panic.
        for n in 0..dup.len() {
            assert!(ClientHello::parse(&dup[..n]).is_err());
        }
    }

    #[test]
    fn emitted_server_hello_layout() {
        let sh = server_hello(&[1; 32], &[9, 9], 0x1301, 0x001d, &[5; 32], None);
        assert_eq!(&sh[..4], &[2, 0, 0, (sh.len() - 4) as u8]);
        assert_eq!(&sh[4..6], &[3, 3]);
        assert_eq!(&sh[38..41], &[2, 9, 9]);
        assert_eq!(&sh[41..44], &[0x13, 0x01, 0]);
        // extensions: 2 + (4+2) + (4+2+2+32)
        assert_eq!(&sh[44..46], &[0, 46]);
        assert_eq!(&sh[46..52], &[0, 43, 0, 2, 3, 4]);
        assert_eq!(&sh[52..58], &[0, 51, 0, 36, 0, 0x1d]);
        // With a PSK: the same, then pre_shared_key(41) selecting identity 0.
        let shp = server_hello(&[1; 32], &[9, 9], 0x1301, 0x001d, &[5; 32], Some(0));
        assert_eq!(&shp[44..46], &[0, 52]);
        assert_eq!(&shp[shp.len() - 6..], &[0, 41, 0, 2, 0, 0]);
        assert_eq!(&shp[..sh.len()][46..], &sh[46..]);
        let nst = new_session_ticket(7200, 0x0a0b0c0d, &[0, 1], &[0xee; 3], 0);
        assert_eq!(
            nst,
            vec![4, 0, 0, 18, 0, 0, 0x1c, 0x20, 0x0a, 0x0b, 0x0c, 0x0d, 2, 0, 1, 0, 3, 0xee, 0xee, 0xee, 0, 0]
        );
        // §4.6.1: early_data(42) with max_early_data_size 16384.
        let nst = new_session_ticket(7200, 0x0a0b0c0d, &[0, 1], &[0xee; 3], 16384);
        assert_eq!(
            nst,
            vec![
                4, 0, 0, 26, 0, 0, 0x1c, 0x20, 0x0a, 0x0b, 0x0c, 0x0d, 2, 0, 1, 0, 3, 0xee, 0xee, 0xee, 0, 8, 0, 42, 0,
                4, 0, 0, 0x40, 0
            ]
        );
        let hrr = hello_retry_request(&[], 0x1302, 0x0017);
        assert_eq!(&hrr[6..38], &HRR_RANDOM);
        assert_eq!(&hrr[hrr.len() - 6..], &[0, 51, 0, 2, 0, 0x17]);
        assert_eq!(key_update(true), vec![24, 0, 0, 1, 1]);
        let ee = encrypted_extensions(Some(b"h2"), true, false);
        assert_eq!(ee, vec![8, 0, 0, 15, 0, 13, 0, 0, 0, 0, 0, 16, 0, 5, 0, 3, 2, b'h', b'2']);
        // §4.2.10: an empty early_data(42) when 0-RTT is accepted.
        let ee = encrypted_extensions(None, false, true);
        assert_eq!(ee, vec![8, 0, 0, 6, 0, 4, 0, 42, 0, 0]);
    }
}
