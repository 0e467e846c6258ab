//! Cipher suites (RFC 8446 §B.4), their hash functions, and the handshake
//! transcript hash (RFC 8446 §4.4.1).
//!
//! The transcript keeps the handshake bytes themselves next to a running
//! `ring` digest: `ring::digest::Context` is opaque and cannot be exported,
//! and a handshake in progress must be (DESIGN.md, "What a handoff carries").

use crate::codec::{DecodeError, Reader, Writer};
use zeroize::Zeroizing;

/// The hash function of a TLS 1.3 cipher suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
}

impl HashAlg {
    /// Hash.length (RFC 8446 §7.1).
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        ring::digest::digest(self.ring_alg(), data).as_ref().to_vec()
    }

    pub fn ring_alg(self) -> &'static ring::digest::Algorithm {
        match self {
            HashAlg::Sha256 => &ring::digest::SHA256,
            HashAlg::Sha384 => &ring::digest::SHA384,
        }
    }

    pub(crate) fn hmac_alg(self) -> ring::hmac::Algorithm {
        match self {
            HashAlg::Sha256 => ring::hmac::HMAC_SHA256,
            HashAlg::Sha384 => ring::hmac::HMAC_SHA384,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            HashAlg::Sha256 => 1,
            HashAlg::Sha384 => 2,
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(HashAlg::Sha256),
            2 => Some(HashAlg::Sha384),
            _ => None,
        }
    }

    pub(crate) fn encode(self, w: &mut Writer) {
        w.u8(self.to_u8());
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        HashAlg::from_u8(r.u8()?).ok_or(DecodeError::Invalid("hash algorithm"))
    }
}

/// Handshake message type `message_hash` (RFC 8446 §4.4.1).
const MESSAGE_HASH: u8 = 254;

const TRANSCRIPT_TAG: u16 = 0x5401;
const TRANSCRIPT_VERSION: u16 = 1;

/// Running transcript hash over the handshake messages (headers included),
/// RFC 8446 §4.4.1. Keeps the bytes so it can be exported and re-hashed
/// under another hash once the suite is chosen.
#[derive(Clone)]
pub struct Transcript {
    hash: HashAlg,
    ctx: ring::digest::Context,
    bytes: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcript").field("hash", &self.hash).field("len", &self.bytes.len()).finish()
    }
}

impl Transcript {
    pub fn new(h: HashAlg) -> Self {
        Transcript { hash: h, ctx: ring::digest::Context::new(h.ring_alg()), bytes: Zeroizing::new(Vec::new()) }
    }

    pub fn hash_alg(&self) -> HashAlg {
        self.hash
    }

    /// Adds one whole handshake message (4-byte header + body).
    pub fn update(&mut self, handshake_msg: &[u8]) {
        self.ctx.update(handshake_msg);
        self.bytes.extend_from_slice(handshake_msg);
    }

    /// Transcript-Hash of everything so far.
    pub fn current_hash(&self) -> Vec<u8> {
        self.ctx.clone().finish().as_ref().to_vec()
    }

    /// Transcript-Hash of everything so far followed by `extra`, without
    /// adding `extra` (for the PSK binder over a truncated ClientHello,
    /// §4.2.11.2, and Finished over messages not yet recorded).
    pub fn hash_with(&self, extra: &[u8]) -> Vec<u8> {
        let mut c = self.ctx.clone();
        c.update(extra);
        c.finish().as_ref().to_vec()
    }

    /// After a HelloRetryRequest (§4.4.1): the transcript so far (ClientHello1)
    /// is replaced by the synthetic message
    /// `message_hash || 00 00 Hash.length || Hash(ClientHello1)`.
    pub fn replace_with_message_hash(&mut self) {
        let h = self.current_hash();
        let mut msg = Zeroizing::new(Vec::with_capacity(4 + h.len()));
        msg.extend_from_slice(&[MESSAGE_HASH, 0, 0, h.len() as u8]);
        msg.extend_from_slice(&h);
        self.ctx = ring::digest::Context::new(self.hash.ring_alg());
        self.bytes.clear();
        self.update(&msg);
    }

    /// Switches the hash function, re-hashing what was buffered (the suite,
    /// and so the hash, is chosen after the ClientHello was recorded).
    pub fn set_hash(&mut self, h: HashAlg) {
        if h == self.hash {
            return;
        }
        self.hash = h;
        self.ctx = ring::digest::Context::new(h.ring_alg());
        self.ctx.update(&self.bytes);
    }

    /// The recorded handshake bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn encode(&self, w: &mut Writer) {
        w.version(TRANSCRIPT_TAG, TRANSCRIPT_VERSION);
        self.hash.encode(w);
        w.bytes(&self.bytes);
    }

    pub fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        r.version("Transcript", TRANSCRIPT_TAG, 1, TRANSCRIPT_VERSION)?;
        let h = HashAlg::decode(r)?;
        let mut t = Transcript::new(h);
        t.update(r.bytes()?);
        Ok(t)
    }
}

/// TLS 1.3 cipher suites baton offers (RFC 8446 §B.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CipherSuite {
    Aes128GcmSha256,
    Aes256GcmSha384,
    Chacha20Poly1305Sha256,
}

impl CipherSuite {
    /// Server preference order.
    pub const ALL: [CipherSuite; 3] =
        [CipherSuite::Aes128GcmSha256, CipherSuite::Aes256GcmSha384, CipherSuite::Chacha20Poly1305Sha256];

    pub fn from_u16(v: u16) -> Option<Self> {
        match v {
            0x1301 => Some(CipherSuite::Aes128GcmSha256),
            0x1302 => Some(CipherSuite::Aes256GcmSha384),
            0x1303 => Some(CipherSuite::Chacha20Poly1305Sha256),
            _ => None,
        }
    }

    pub fn id(self) -> u16 {
        match self {
            CipherSuite::Aes128GcmSha256 => 0x1301,
            CipherSuite::Aes256GcmSha384 => 0x1302,
            CipherSuite::Chacha20Poly1305Sha256 => 0x1303,
        }
    }

    pub fn hash(self) -> HashAlg {
        match self {
            CipherSuite::Aes256GcmSha384 => HashAlg::Sha384,
            _ => HashAlg::Sha256,
        }
    }

    /// AEAD key length in bytes (§7.3 `key_length`).
    pub fn key_len(self) -> usize {
        match self {
            CipherSuite::Aes128GcmSha256 => 16,
            CipherSuite::Aes256GcmSha384 | CipherSuite::Chacha20Poly1305Sha256 => 32,
        }
    }

    pub(crate) fn ring_aead(self) -> &'static ring::aead::Algorithm {
        match self {
            CipherSuite::Aes128GcmSha256 => &ring::aead::AES_128_GCM,
            CipherSuite::Aes256GcmSha384 => &ring::aead::AES_256_GCM,
            CipherSuite::Chacha20Poly1305Sha256 => &ring::aead::CHACHA20_POLY1305,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn sha256_and_sha384_of_abc_match_fips_180_examples() {
        assert_eq!(
            HashAlg::Sha256.digest(b"abc"),
            unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            HashAlg::Sha384.digest(b"abc"),
            unhex(
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                 8086072ba1e7cc2358baeca134c825a7"
            )
        );
        assert_eq!(HashAlg::Sha384.output_len(), 48);
    }

    #[test]
    fn suite_ids_follow_rfc8446_b4() {
        assert_eq!(CipherSuite::from_u16(0x1301), Some(CipherSuite::Aes128GcmSha256));
        assert_eq!(CipherSuite::from_u16(0x1302), Some(CipherSuite::Aes256GcmSha384));
        assert_eq!(CipherSuite::from_u16(0x1303), Some(CipherSuite::Chacha20Poly1305Sha256));
        assert_eq!(CipherSuite::from_u16(0x1304), None);
        assert_eq!(CipherSuite::from_u16(0x0a0a), None);
        for s in CipherSuite::ALL {
            assert_eq!(CipherSuite::from_u16(s.id()), Some(s));
        }
        assert_eq!(CipherSuite::Aes256GcmSha384.hash(), HashAlg::Sha384);
        assert_eq!(CipherSuite::Aes128GcmSha256.key_len(), 16);
    }

    #[test]
    fn transcript_hashes_concatenation_of_messages() {
        let mut t = Transcript::new(HashAlg::Sha256);
        t.update(b"ab");
        assert_eq!(t.hash_with(b"c"), HashAlg::Sha256.digest(b"abc"));
        assert_eq!(t.current_hash(), HashAlg::Sha256.digest(b"ab"));
        t.update(b"c");
        assert_eq!(t.current_hash(), HashAlg::Sha256.digest(b"abc"));
    }

    #[test]
    fn transcript_set_hash_rehashes_buffered_client_hello() {
        let mut t = Transcript::new(HashAlg::Sha256);
        t.update(b"client hello");
        t.set_hash(HashAlg::Sha384);
        t.update(b" server hello");
        assert_eq!(t.current_hash(), HashAlg::Sha384.digest(b"client hello server hello"));
    }

    #[test]
    fn transcript_after_hello_retry_starts_with_message_hash() {
        let mut t = Transcript::new(HashAlg::Sha256);
        t.update(b"CH1");
        t.replace_with_message_hash();
        t.update(b"HRR");
        let mut expect = vec![254, 0, 0, 32];
        expect.extend_from_slice(&HashAlg::Sha256.digest(b"CH1"));
        expect.extend_from_slice(b"HRR");
        assert_eq!(t.current_hash(), HashAlg::Sha256.digest(&expect));
    }

    #[test]
    fn transcript_round_trips_at_every_point() {
        let mut t = Transcript::new(HashAlg::Sha256);
        for (i, msg) in [&b""[..], b"one", b"two", b"three"].iter().enumerate() {
            t.update(msg);
            if i == 2 {
                t.set_hash(HashAlg::Sha384);
            }
            let mut w = Writer::new();
            t.encode(&mut w);
            let buf = w.finish();
            let mut r = Reader::new(&buf);
            let mut d = Transcript::decode(&mut r).unwrap();
            r.finish().unwrap();
            assert_eq!(d.current_hash(), t.current_hash());
            assert_eq!(d.hash_alg(), t.hash_alg());
            d.update(b"next");
            assert_eq!(d.current_hash(), t.hash_with(b"next"));
        }
        let mut w = Writer::new();
        t.encode(&mut w);
        let buf = w.finish();
        assert!(Transcript::decode(&mut Reader::new(&buf[..buf.len() - 1])).is_err());
        let mut bad = buf.to_vec();
        bad[4] = 9; // hash algorithm byte
        assert!(Transcript::decode(&mut Reader::new(&bad)).is_err());
    }
}
