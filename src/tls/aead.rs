//! Record protection (RFC 8446 §5.2–§5.5): one direction's traffic secret,
//! key, IV and sequence number, sealing and opening whole TLSCiphertext
//! records on `ring::aead`.

use super::error::TlsError;
use super::key_schedule::{next_traffic_secret, traffic_key_iv};
use super::suites::CipherSuite;
use crate::codec::{DecodeError, Reader, Writer};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::{Zeroize, Zeroizing};

/// TLSCiphertext header: opaque_type, legacy_record_version, length (§5.2).
pub const RECORD_HEADER_LEN: usize = 5;
/// AEAD tag length of every TLS 1.3 suite.
pub const TAG_LEN: usize = 16;
/// Largest TLSInnerPlaintext.content (§5.1).
pub const MAX_PLAINTEXT: usize = 1 << 14;
/// Largest TLSCiphertext.length (§5.2).
pub const MAX_CIPHERTEXT: usize = (1 << 14) + 256;
/// Outer content type of every protected record (§5.2).
pub const APPLICATION_DATA: u8 = 23;

/// Records we seal under one AES-GCM key before refusing: 2^24, below the
/// 2^24.5 full-size records of §5.5.
pub const AES_GCM_RECORD_LIMIT: u64 = 1 << 24;
/// Past this many records under one key, [`RecordProtector::needs_key_update`]
/// asks the caller to send a KeyUpdate (§4.6.3) well before the hard limit.
pub const AES_GCM_SOFT_LIMIT: u64 = 1 << 23;

/// Bytes one sealed record of `plaintext_len` content occupies on the wire.
pub fn sealed_len(plaintext_len: usize) -> usize {
    RECORD_HEADER_LEN + plaintext_len + 1 + TAG_LEN
}

const RP_TAG: u16 = 0x5403;
const RP_VERSION: u16 = 1;

/// One direction of record protection.
pub struct RecordProtector {
    suite: CipherSuite,
    /// Current traffic secret, kept for KeyUpdate (§7.2).
    secret: Zeroizing<Vec<u8>>,
    key: Zeroizing<Vec<u8>>,
    iv: [u8; 12],
    aead: LessSafeKey,
    seq: u64,
}

impl Drop for RecordProtector {
    fn drop(&mut self) {
        self.iv.zeroize();
    }
}

impl std::fmt::Debug for RecordProtector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordProtector").field("suite", &self.suite).field("seq", &self.seq).finish_non_exhaustive()
    }
}

fn build_key(suite: CipherSuite, key: &[u8]) -> Result<LessSafeKey, TlsError> {
    UnboundKey::new(suite.ring_aead(), key).map(LessSafeKey::new).map_err(|_| TlsError::Internal("AEAD key length"))
}

impl RecordProtector {
    pub fn new(suite: CipherSuite, traffic_secret: &[u8]) -> Self {
        let (key, iv) = traffic_key_iv(suite, traffic_secret);
        let key = Zeroizing::new(key.as_bytes().to_vec());
        // traffic_key_iv always yields suite.key_len() bytes, which ring accepts.
        let aead = match build_key(suite, &key) {
            Ok(k) => k,
            Err(_) => unreachable!("traffic_key_iv returned a key of the suite's length"),
        };
        RecordProtector { suite, secret: Zeroizing::new(traffic_secret.to_vec()), key, iv, aead, seq: 0 }
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The current traffic secret (for exporters and handoff, never logs).
    pub fn traffic_secret(&self) -> &[u8] {
        &self.secret
    }

    /// Records that may still be sealed under this key.
    fn seal_limit(&self) -> u64 {
        match self.suite {
            CipherSuite::Aes128GcmSha256 | CipherSuite::Aes256GcmSha384 => AES_GCM_RECORD_LIMIT,
            // §5.3: the sequence number must not wrap; keep 2^64-1 unused.
            CipherSuite::Chacha20Poly1305Sha256 => u64::MAX,
        }
    }

    /// True once the caller should send a KeyUpdate before sealing much more
    /// (§5.5); [`seal_record`](Self::seal_record) fails at the hard limit.
    pub fn needs_key_update(&self) -> bool {
        match self.suite {
            CipherSuite::Chacha20Poly1305Sha256 => self.seq >= u64::MAX - (1 << 32),
            _ => self.seq >= AES_GCM_SOFT_LIMIT,
        }
    }

    /// Per-record nonce: the IV XOR the 64-bit sequence number left-padded
    /// to 12 bytes (§5.3).
    fn nonce(&self) -> Nonce {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        Nonce::assume_unique_for_key(n)
    }

    /// Appends one whole TLSCiphertext record carrying `plaintext` of type
    /// `content_type` to `out` (§5.2), without padding.
    pub fn seal_record(&mut self, content_type: u8, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(TlsError::RecordOverflow);
        }
        if self.seq >= self.seal_limit() {
            return Err(TlsError::SequenceExhausted);
        }
        let len = (plaintext.len() + 1 + TAG_LEN) as u16;
        let header = [APPLICATION_DATA, 0x03, 0x03, (len >> 8) as u8, len as u8];
        let start = out.len();
        out.reserve(sealed_len(plaintext.len()));
        out.extend_from_slice(&header);
        out.extend_from_slice(plaintext);
        out.push(content_type);
        let nonce = self.nonce();
        let body = match out.get_mut(start + RECORD_HEADER_LEN..) {
            Some(b) => b,
            None => return Err(TlsError::Internal("record buffer")),
        };
        match self.aead.seal_in_place_separate_tag(nonce, Aad::from(header), body) {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                self.seq += 1;
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(TlsError::Internal("AEAD seal"))
            }
        }
    }

    /// Seals in place, for callers that read plaintext straight into their
    /// send buffer: `buf[start..start + 5]` is room for the header (any
    /// bytes), `buf[start + 5..]` the plaintext. Fills in the header and
    /// appends the content type and tag, so `buf[start..]` becomes one whole
    /// record (§5.2). On error `buf` is left as it was.
    pub fn seal_in_place(&mut self, content_type: u8, buf: &mut Vec<u8>, start: usize) -> Result<(), TlsError> {
        let pt_len = match buf.len().checked_sub(start + RECORD_HEADER_LEN) {
            Some(n) => n,
            None => return Err(TlsError::Internal("no room for the record header")),
        };
        if pt_len > MAX_PLAINTEXT {
            return Err(TlsError::RecordOverflow);
        }
        if self.seq >= self.seal_limit() {
            return Err(TlsError::SequenceExhausted);
        }
        let len = (pt_len + 1 + TAG_LEN) as u16;
        let header = [APPLICATION_DATA, 0x03, 0x03, (len >> 8) as u8, len as u8];
        buf.reserve(1 + TAG_LEN);
        buf.push(content_type);
        let nonce = self.nonce();
        let sealed = match buf.get_mut(start + RECORD_HEADER_LEN..) {
            Some(body) => self.aead.seal_in_place_separate_tag(nonce, Aad::from(header), body),
            None => return Err(TlsError::Internal("record buffer")),
        };
        match sealed {
            Ok(tag) => {
                buf[start..start + RECORD_HEADER_LEN].copy_from_slice(&header);
                buf.extend_from_slice(tag.as_ref());
                self.seq += 1;
                Ok(())
            }
            Err(_) => {
                buf.pop();
                Err(TlsError::Internal("AEAD seal"))
            }
        }
    }

    /// Opens one whole record in place (`record` = 5-byte header +
    /// encrypted_record) and returns the inner content type and content,
    /// with the zero padding stripped (§5.2, §5.4).
    pub fn open_record<'a>(&mut self, record: &'a mut [u8]) -> Result<(u8, &'a [u8]), TlsError> {
        if record.len() < RECORD_HEADER_LEN {
            return Err(TlsError::Decode("record header truncated"));
        }
        let (hdr, body) = record.split_at_mut(RECORD_HEADER_LEN);
        let header = [hdr[0], hdr[1], hdr[2], hdr[3], hdr[4]];
        if header[0] != APPLICATION_DATA {
            return Err(TlsError::UnexpectedMessage("protected record with outer type other than application_data"));
        }
        let len = u16::from_be_bytes([header[3], header[4]]) as usize;
        if len > MAX_CIPHERTEXT {
            return Err(TlsError::RecordOverflow);
        }
        if len != body.len() {
            return Err(TlsError::Decode("record length does not match buffer"));
        }
        if len < TAG_LEN + 1 {
            return Err(TlsError::BadRecordMac);
        }
        if self.seq == u64::MAX {
            return Err(TlsError::SequenceExhausted);
        }
        let nonce = self.nonce();
        let inner = self.aead.open_in_place(nonce, Aad::from(header), body).map_err(|_| TlsError::BadRecordMac)?;
        self.seq += 1;
        // §5.4: the whole TLSInnerPlaintext, padding included, is at most 2^14 + 1.
        if inner.len() > MAX_PLAINTEXT + 1 {
            return Err(TlsError::RecordOverflow);
        }
        let inner: &'a [u8] = inner;
        match inner.iter().rposition(|&b| b != 0) {
            Some(i) => Ok((inner[i], &inner[..i])),
            None => Err(TlsError::UnexpectedMessage("record without a content type")),
        }
    }

    /// KeyUpdate (§7.2): the next traffic secret, its key and IV, and the
    /// sequence number back to 0.
    pub fn update_traffic_secret(&mut self) {
        let next = next_traffic_secret(self.suite.hash(), &self.secret);
        *self = RecordProtector::new(self.suite, next.as_bytes());
    }

    pub fn encode(&self, w: &mut Writer) {
        w.version(RP_TAG, RP_VERSION);
        w.u16(self.suite.id());
        w.bytes(&self.secret);
        w.bytes(&self.key);
        w.raw(&self.iv);
        w.u64(self.seq);
    }

    pub fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        r.version("RecordProtector", RP_TAG, 1, RP_VERSION)?;
        let suite = CipherSuite::from_u16(r.u16()?).ok_or(DecodeError::Invalid("cipher suite"))?;
        let secret = r.bytes()?;
        if secret.len() != suite.hash().output_len() {
            return Err(DecodeError::Invalid("traffic secret length"));
        }
        let key = r.bytes()?;
        if key.len() != suite.key_len() {
            return Err(DecodeError::Invalid("traffic key length"));
        }
        let iv = r.array::<12>()?;
        let seq = r.u64()?;
        let aead = build_key(suite, key).map_err(|_| DecodeError::Invalid("traffic key"))?;
        Ok(RecordProtector {
            suite,
            secret: Zeroizing::new(secret.to_vec()),
            key: Zeroizing::new(key.to_vec()),
            iv,
            aead,
            seq,
        })
    }

    #[cfg(test)]
    pub(crate) fn set_seq_for_test(&mut self, seq: u64) {
        self.seq = seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(suite: CipherSuite) -> (RecordProtector, RecordProtector) {
        let secret = vec![0x42; suite.hash().output_len()];
        (RecordProtector::new(suite, &secret), RecordProtector::new(suite, &secret))
    }

    #[test]
    fn seal_then_open_returns_content_and_type_for_every_suite() {
        for suite in CipherSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            for (i, len) in [0usize, 1, 100, MAX_PLAINTEXT].into_iter().enumerate() {
                let pt: Vec<u8> = (0..len).map(|j| (j * 7 + i) as u8).collect();
                let mut out = vec![0xee; 3]; // appends after what is there
                tx.seal_record(22, &pt, &mut out).unwrap();
                assert_eq!(&out[..3], &[0xee; 3]);
                let rec = &mut out[3..];
                assert_eq!(rec.len(), sealed_len(len));
                assert_eq!(&rec[..3], &[23, 3, 3]);
                assert_eq!(u16::from_be_bytes([rec[3], rec[4]]) as usize, len + 17);
                let (ct, got) = rx.open_record(rec).unwrap();
                assert_eq!(ct, 22);
                assert_eq!(got, &pt[..]);
            }
            assert_eq!(tx.seq(), 4);
            assert_eq!(rx.seq(), 4);
        }
    }

    #[test]
    fn seal_in_place_produces_the_same_record_as_seal_record() {
        for suite in CipherSuite::ALL {
            let (mut a, mut b) = pair(suite);
            let (_, mut rx) = pair(suite);
            for len in [0usize, 5, 1400, MAX_PLAINTEXT] {
                let pt: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5c).collect();
                let mut expect = b"prefix".to_vec();
                a.seal_record(23, &pt, &mut expect).unwrap();
                let mut buf = b"prefix".to_vec();
                buf.extend_from_slice(&[0xff; 5]);
                buf.extend_from_slice(&pt);
                b.seal_in_place(23, &mut buf, 6).unwrap();
                assert_eq!(buf, expect);
                assert_eq!(rx.open_record(&mut buf[6..]).unwrap().1, &pt[..]);
            }
            let mut too_big = vec![0u8; 5 + MAX_PLAINTEXT + 1];
            assert_eq!(b.seal_in_place(23, &mut too_big, 0), Err(TlsError::RecordOverflow));
            assert_eq!(too_big.len(), 5 + MAX_PLAINTEXT + 1);
            assert!(b.seal_in_place(23, &mut vec![0u8; 4], 0).is_err());
        }
    }

    #[test]
    fn zero_length_application_data_record_opens_to_empty_content() {
        // case T3: the record layer yields it; the handshake layer ignores it.
        let (mut tx, mut rx) = pair(CipherSuite::Aes128GcmSha256);
        let mut out = Vec::new();
        tx.seal_record(23, &[], &mut out).unwrap();
        assert_eq!(rx.open_record(&mut out).unwrap(), (23, &[][..]));
    }

    #[test]
    fn tampered_header_body_or_tag_is_bad_record_mac() {
        let (mut tx, _) = pair(CipherSuite::Aes256GcmSha384);
        let mut rec = Vec::new();
        tx.seal_record(23, b"hello world", &mut rec).unwrap();
        for i in [2usize, 5, 10, rec.len() - 1] {
            let (_, mut rx) = pair(CipherSuite::Aes256GcmSha384);
            let mut bad = rec.clone();
            bad[i] ^= 0x01;
            assert_eq!(rx.open_record(&mut bad), Err(TlsError::BadRecordMac), "byte {i}");
            assert_eq!(rx.seq(), 0);
        }
    }

    #[test]
    fn replayed_or_reordered_record_fails() {
        let (mut tx, mut rx) = pair(CipherSuite::Chacha20Poly1305Sha256);
        let mut a = Vec::new();
        let mut b = Vec::new();
        tx.seal_record(23, b"a", &mut a).unwrap();
        tx.seal_record(23, b"b", &mut b).unwrap();
        assert_eq!(rx.open_record(&mut b.clone()), Err(TlsError::BadRecordMac));
        assert!(rx.open_record(&mut a.clone()).is_ok());
        assert_eq!(rx.open_record(&mut a), Err(TlsError::BadRecordMac));
    }

    #[test]
    fn padding_is_stripped_and_all_zero_inner_is_unexpected_message() {
        // Build padded records with ring directly: content || type || zeros.
        let suite = CipherSuite::Aes128GcmSha256;
        let secret = [9u8; 32];
        let (key, iv) = traffic_key_iv(suite, &secret);
        let k = LessSafeKey::new(UnboundKey::new(&ring::aead::AES_128_GCM, key.as_bytes()).unwrap());
        let mk = |seq: u64, inner: &[u8]| {
            let mut n = iv;
            for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
                *b ^= s;
            }
            let len = (inner.len() + 16) as u16;
            let hdr = [23, 3, 3, (len >> 8) as u8, len as u8];
            let mut body = inner.to_vec();
            k.seal_in_place_append_tag(Nonce::assume_unique_for_key(n), Aad::from(hdr), &mut body).unwrap();
            let mut rec = hdr.to_vec();
            rec.extend_from_slice(&body);
            rec
        };
        let mut rx = RecordProtector::new(suite, &secret);
        let mut r0 = mk(0, b"hi\x16\0\0\0\0");
        assert_eq!(rx.open_record(&mut r0).unwrap(), (22, &b"hi"[..]));
        let mut r1 = mk(1, &[0u8; 8]);
        assert!(matches!(rx.open_record(&mut r1), Err(TlsError::UnexpectedMessage(_))));
        // Inner plaintext of 2^14 + 2 bytes (content + type + padding) is too long.
        let mut rx = RecordProtector::new(suite, &secret);
        let mut inner = vec![1u8; MAX_PLAINTEXT];
        inner.extend_from_slice(&[23, 0]);
        let mut r = mk(0, &inner);
        assert_eq!(rx.open_record(&mut r), Err(TlsError::RecordOverflow));
        // 2^14 + 1 is fine.
        let mut rx = RecordProtector::new(suite, &secret);
        inner.pop();
        let mut r = mk(0, &inner);
        assert_eq!(rx.open_record(&mut r).unwrap().1.len(), MAX_PLAINTEXT);
    }

    #[test]
    fn oversized_and_malformed_records_are_refused() {
        let (mut tx, mut rx) = pair(CipherSuite::Aes128GcmSha256);
        let mut out = Vec::new();
        assert_eq!(tx.seal_record(23, &vec![0; MAX_PLAINTEXT + 1], &mut out), Err(TlsError::RecordOverflow));
        assert!(out.is_empty());
        assert_eq!(tx.seq(), 0);
        let mut big = vec![23, 3, 3, 0x41, 0x01];
        big.resize(5 + MAX_CIPHERTEXT + 1, 0);
        assert_eq!(rx.open_record(&mut big), Err(TlsError::RecordOverflow));
        assert!(matches!(rx.open_record(&mut [23, 3, 3]), Err(TlsError::Decode(_))));
        assert!(matches!(rx.open_record(&mut [23, 3, 3, 0, 5, 1, 2]), Err(TlsError::Decode(_))));
        let mut short = [23, 3, 3, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        short[5..].fill(1);
        assert_eq!(rx.open_record(&mut short[..21]), Err(TlsError::BadRecordMac));
        let mut wrong_type = Vec::new();
        tx.seal_record(23, b"x", &mut wrong_type).unwrap();
        wrong_type[0] = 22;
        assert!(matches!(rx.open_record(&mut wrong_type), Err(TlsError::UnexpectedMessage(_))));
        // Input from the network never panics: every short prefix is an error.
        let mut rec = Vec::new();
        tx.seal_record(23, b"abc", &mut rec).unwrap();
        for n in 0..rec.len() {
            let mut p = rec[..n].to_vec();
            assert!(rx.open_record(&mut p).is_err());
        }
    }

    #[test]
    fn aes_gcm_refuses_at_usage_limit_and_asks_for_key_update_before() {
        let (mut tx, mut rx) = pair(CipherSuite::Aes128GcmSha256);
        assert!(!tx.needs_key_update());
        tx.set_seq_for_test(AES_GCM_SOFT_LIMIT);
        assert!(tx.needs_key_update());
        tx.set_seq_for_test(AES_GCM_RECORD_LIMIT - 1);
        rx.set_seq_for_test(AES_GCM_RECORD_LIMIT - 1);
        let mut out = Vec::new();
        tx.seal_record(23, b"last", &mut out).unwrap();
        assert_eq!(rx.open_record(&mut out).unwrap().1, b"last");
        let mut more = Vec::new();
        assert_eq!(tx.seal_record(23, b"over", &mut more), Err(TlsError::SequenceExhausted));
        assert!(more.is_empty());
        tx.update_traffic_secret();
        rx.update_traffic_secret();
        assert_eq!(tx.seq(), 0);
        assert!(!tx.needs_key_update());
        tx.seal_record(23, b"fresh", &mut more).unwrap();
        assert_eq!(rx.open_record(&mut more).unwrap().1, b"fresh");
    }

    #[test]
    fn chacha_refuses_to_wrap_sequence_number() {
        let (mut tx, mut rx) = pair(CipherSuite::Chacha20Poly1305Sha256);
        tx.set_seq_for_test(u64::MAX - 1);
        rx.set_seq_for_test(u64::MAX - 1);
        let mut out = Vec::new();
        tx.seal_record(23, b"x", &mut out).unwrap();
        assert_eq!(rx.open_record(&mut out).unwrap().1, b"x");
        assert!(tx.needs_key_update());
        assert_eq!(tx.seal_record(23, b"y", &mut Vec::new()), Err(TlsError::SequenceExhausted));
        let mut any = vec![23, 3, 3, 0, 17];
        any.resize(22, 0);
        assert_eq!(rx.open_record(&mut any), Err(TlsError::SequenceExhausted));
    }

    #[test]
    fn key_update_changes_key_on_both_sides_and_old_key_fails() {
        let (mut tx, mut rx) = pair(CipherSuite::Aes128GcmSha256);
        let old_secret = tx.traffic_secret().to_vec();
        tx.update_traffic_secret();
        assert_ne!(tx.traffic_secret(), &old_secret[..]);
        let mut out = Vec::new();
        tx.seal_record(23, b"after update", &mut out).unwrap();
        assert_eq!(rx.open_record(&mut out.clone()), Err(TlsError::BadRecordMac));
        rx.update_traffic_secret();
        assert_eq!(rx.open_record(&mut out).unwrap().1, b"after update");
    }

    fn round_trip(p: &RecordProtector) -> RecordProtector {
        let mut w = Writer::new();
        p.encode(&mut w);
        let buf = w.finish();
        let mut r = Reader::new(&buf);
        let d = RecordProtector::decode(&mut r).unwrap();
        r.finish().unwrap();
        for n in 0..buf.len() {
            assert!(RecordProtector::decode(&mut Reader::new(&buf[..n])).is_err());
        }
        d
    }

    #[test]
    fn record_protector_round_trips_mid_stream_and_after_key_update() {
        for suite in CipherSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let (mut tx_ref, mut rx_ref) = pair(suite);
            for step in 0..6u8 {
                tx = round_trip(&tx);
                rx = round_trip(&rx);
                assert_eq!(tx.seq(), tx_ref.seq());
                assert_eq!(tx.suite(), suite);
                let pt = vec![step; 50 * step as usize];
                let mut a = Vec::new();
                let mut b = Vec::new();
                tx.seal_record(23, &pt, &mut a).unwrap();
                tx_ref.seal_record(23, &pt, &mut b).unwrap();
                assert_eq!(a, b, "decoded sealer diverged at step {step}");
                assert_eq!(rx.open_record(&mut a).unwrap().1, &pt[..]);
                assert_eq!(rx_ref.open_record(&mut b).unwrap().1, &pt[..]);
                if step == 3 {
                    tx.update_traffic_secret();
                    rx.update_traffic_secret();
                    tx_ref.update_traffic_secret();
                    rx_ref.update_traffic_secret();
                }
            }
        }
    }

    #[test]
    fn record_protector_decode_rejects_inconsistent_lengths() {
        let (p, _) = pair(CipherSuite::Aes128GcmSha256);
        let mut w = Writer::new();
        p.encode(&mut w);
        let mut buf = w.finish().to_vec();
        buf[4..6].copy_from_slice(&0x1302u16.to_le_bytes()); // SHA-384 suite, 32-byte secret
        assert!(RecordProtector::decode(&mut Reader::new(&buf)).is_err());
        buf[4..6].copy_from_slice(&0x1304u16.to_le_bytes());
        assert!(RecordProtector::decode(&mut Reader::new(&buf)).is_err());
    }

    #[test]
    fn debug_output_hides_keys() {
        let (p, _) = pair(CipherSuite::Aes128GcmSha256);
        let d = format!("{p:?}");
        assert!(d.contains("Aes128GcmSha256") && !d.contains("66"), "{d}");
    }
}
