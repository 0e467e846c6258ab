//! The TLS 1.3 key schedule (RFC 8446 §7.1) and the secrets derived from it:
//! Finished keys (§4.4.4), KeyUpdate (§7.2), resumption PSKs (§4.6.1) and
//! traffic keys (§7.3).
//!
//! HKDF (RFC 5869) is built on `ring::hmac` so that every PRK is plain bytes
//! that can be exported with a connection (ring's `hkdf::Prk` is opaque).

use super::suites::{CipherSuite, HashAlg};
use crate::codec::{DecodeError, Reader, Writer};
use zeroize::Zeroizing;

/// Secret bytes: wiped on drop, never printed.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// HKDF-Extract (RFC 5869 §2.2). An empty salt is HashLen zero bytes, which
/// HMAC's zero-padding of the key makes the same thing.
pub fn hkdf_extract(h: HashAlg, salt: &[u8], ikm: &[u8]) -> Secret {
    let key = ring::hmac::Key::new(h.hmac_alg(), salt);
    Secret::new(ring::hmac::sign(&key, ikm).as_ref().to_vec())
}

/// HKDF-Expand (RFC 5869 §2.3), or `None` when `len > 255 * HashLen`.
pub fn try_hkdf_expand(h: HashAlg, prk: &[u8], info: &[u8], len: usize) -> Option<Secret> {
    let hash_len = h.output_len();
    if len > 255 * hash_len {
        return None;
    }
    let key = ring::hmac::Key::new(h.hmac_alg(), prk);
    let mut okm = Zeroizing::new(Vec::with_capacity(len + hash_len));
    let mut t = Zeroizing::new(Vec::<u8>::new());
    let mut counter: u8 = 1;
    while okm.len() < len {
        let mut ctx = ring::hmac::Context::with_key(&key);
        ctx.update(&t);
        ctx.update(info);
        ctx.update(&[counter]);
        let block = ctx.sign();
        t.clear();
        t.extend_from_slice(block.as_ref());
        okm.extend_from_slice(block.as_ref());
        counter = counter.wrapping_add(1);
    }
    okm.truncate(len);
    Some(Secret(okm))
}

/// HKDF-Expand (RFC 5869 §2.3).
///
/// Panics if `len > 255 * HashLen`: lengths here are protocol constants,
/// never values read from the network.
pub fn hkdf_expand(h: HashAlg, prk: &[u8], info: &[u8], len: usize) -> Secret {
    match try_hkdf_expand(h, prk, info, len) {
        Some(s) => s,
        None => panic!("HKDF-Expand output length {len} exceeds 255 * HashLen"),
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1); `label` without the "tls13 " prefix.
pub fn hkdf_expand_label(h: HashAlg, secret: &[u8], label: &[u8], context: &[u8], len: usize) -> Secret {
    // struct { uint16 length; opaque label<7..255>; opaque context<0..255>; } HkdfLabel;
    let mut info = Vec::with_capacity(4 + 6 + label.len() + context.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push((6 + label.len()) as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(context.len() as u8);
    info.extend_from_slice(context);
    hkdf_expand(h, secret, &info, len)
}

/// Derive-Secret (RFC 8446 §7.1): `transcript_hash` is Transcript-Hash(Messages).
pub fn derive_secret(h: HashAlg, secret: &[u8], label: &[u8], transcript_hash: &[u8]) -> Secret {
    hkdf_expand_label(h, secret, label, transcript_hash, h.output_len())
}

/// Which secret of §7.1 a [`KeySchedule`] currently holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Early,
    Handshake,
    Master,
}

const KS_TAG: u16 = 0x5402;
const KS_VERSION: u16 = 1;

/// The §7.1 chain Early Secret → Handshake Secret → Master Secret, holding
/// only the current one. A plain value: encodable, zeroized on drop.
#[derive(Clone)]
pub struct KeySchedule {
    hash: HashAlg,
    stage: Stage,
    secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for KeySchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySchedule").field("hash", &self.hash).field("stage", &self.stage).finish_non_exhaustive()
    }
}

impl KeySchedule {
    /// Early Secret = HKDF-Extract(0, PSK), with PSK = 0^HashLen without one.
    pub fn new(h: HashAlg, psk: Option<&[u8]>) -> Self {
        let zeros = vec![0u8; h.output_len()];
        let early = hkdf_extract(h, &zeros, psk.unwrap_or(&zeros));
        KeySchedule { hash: h, stage: Stage::Early, secret: early.0 }
    }

    pub fn hash(&self) -> HashAlg {
        self.hash
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The secret of the current stage (for tests and diagnostics that must
    /// not print it).
    pub fn current_secret(&self) -> &[u8] {
        &self.secret
    }

    fn derive(&self, label: &[u8], th: &[u8]) -> Secret {
        derive_secret(self.hash, &self.secret, label, th)
    }

    fn empty_hash(&self) -> Vec<u8> {
        self.hash.digest(b"")
    }

    /// binder_key: "ext binder" for external PSKs, "res binder" for
    /// resumption (§7.1, §4.2.11.2). Early stage only.
    pub fn binder_key(&self, external: bool) -> Secret {
        debug_assert_eq!(self.stage, Stage::Early);
        let label: &[u8] = if external { b"ext binder" } else { b"res binder" };
        self.derive(label, &self.empty_hash())
    }

    /// client_early_traffic_secret over Transcript-Hash(ClientHello).
    pub fn client_early_traffic_secret(&self, th: &[u8]) -> Secret {
        debug_assert_eq!(self.stage, Stage::Early);
        self.derive(b"c e traffic", th)
    }

    /// early_exporter_master_secret over Transcript-Hash(ClientHello).
    pub fn early_exporter_master_secret(&self, th: &[u8]) -> Secret {
        debug_assert_eq!(self.stage, Stage::Early);
        self.derive(b"e exp master", th)
    }

    /// Handshake Secret = HKDF-Extract(Derive-Secret(Early, "derived", ""),
    /// (EC)DHE). For psk_ke without (EC)DHE pass HashLen zero bytes.
    pub fn input_dhe(&mut self, shared: &[u8]) {
        debug_assert_eq!(self.stage, Stage::Early);
        let derived = self.derive(b"derived", &self.empty_hash());
        let hs = hkdf_extract(self.hash, derived.as_bytes(), shared);
        self.secret = hs.0;
        self.stage = Stage::Handshake;
    }

    /// Over Transcript-Hash(ClientHello...ServerHello).
    pub fn client_handshake_traffic_secret(&self, th: &[u8]) -> Secret {
        debug_assert_eq!(self.stage, Stage::Handshake);
        self.derive(b"c hs traffic", th)
    }

    /// Over Transcript-Hash(ClientHello...ServerHello).
    pub fn server_handshake_traffic_secret(&self, th: &[u8]) -> Secret {
        debug_assert_eq!(self.stage, Stage::Handshake);
        self.derive(b"s hs traffic", th)
    }

    /// Master Secret = HKDF-Extract(Derive-Secret(Handshake, "derived", ""), 0).
    pub fn into_master(&mut self) {
        debug_assert_eq!(self.stage, Stage::Handshake);
        let derived = self.derive(b"derived", &self.empty_hash());
        let zeros = vec![0u8; self.hash.output_len()];
        let ms = hkdf_extract(self.hash, derived.as_bytes(), &zeros);
        self.secret = ms.0;
        self.stage = Stage::Master;
    }

    /// Over Transcript-Hash(ClientHello...server Finished).
    pub fn client_application_traffic_secret_0(&self, th: &[u8]) -> Secret {
        debug_assert_eq!(self.stage, Stage::Master);
        self.derive(b"c ap traffic", th)
    }

    /// Over Transcript-Hash(ClientHello...server Finished).
    pub fn server_application_traffic_secret_0(&self, th: &[u8]) -> Secret {
        debug_assert_eq!(self.stage, Stage::Master);
        self.derive(b"s ap traffic", th)
    }

    /// Over Transcript-Hash(ClientHello...server Finished).
    pub fn exporter_master_secret(&self, th: &[u8]) -> Secret {
        debug_assert_eq!(self.stage, Stage::Master);
        self.derive(b"exp master", th)
    }

    /// Over Transcript-Hash(ClientHello...client Finished).
    pub fn resumption_master_secret(&self, th: &[u8]) -> Secret {
        debug_assert_eq!(self.stage, Stage::Master);
        self.derive(b"res master", th)
    }

    pub fn encode(&self, w: &mut Writer) {
        w.version(KS_TAG, KS_VERSION);
        self.hash.encode(w);
        w.u8(match self.stage {
            Stage::Early => 0,
            Stage::Handshake => 1,
            Stage::Master => 2,
        });
        w.bytes(&self.secret);
    }

    pub fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        r.version("KeySchedule", KS_TAG, 1, KS_VERSION)?;
        let hash = HashAlg::decode(r)?;
        let stage = match r.u8()? {
            0 => Stage::Early,
            1 => Stage::Handshake,
            2 => Stage::Master,
            _ => return Err(DecodeError::Invalid("key schedule stage")),
        };
        let secret = r.bytes()?;
        if secret.len() != hash.output_len() {
            return Err(DecodeError::Invalid("key schedule secret length"));
        }
        Ok(KeySchedule { hash, stage, secret: Zeroizing::new(secret.to_vec()) })
    }
}

fn finished_key(h: HashAlg, base_key: &[u8]) -> Secret {
    hkdf_expand_label(h, base_key, b"finished", b"", h.output_len())
}

/// Finished.verify_data = HMAC(finished_key, Transcript-Hash(...)) where
/// finished_key = HKDF-Expand-Label(BaseKey, "finished", "", Hash.length)
/// (§4.4.4). Also the PSK binder (§4.2.11.2) with the binder key as BaseKey.
pub fn finished_verify_data(h: HashAlg, base_key: &[u8], transcript_hash: &[u8]) -> Vec<u8> {
    let fk = finished_key(h, base_key);
    let key = ring::hmac::Key::new(h.hmac_alg(), fk.as_bytes());
    ring::hmac::sign(&key, transcript_hash).as_ref().to_vec()
}

/// Checks a received Finished (or binder) in constant time (§4.4.4).
pub fn verify_finished(h: HashAlg, base_key: &[u8], transcript_hash: &[u8], received: &[u8]) -> bool {
    let fk = finished_key(h, base_key);
    let key = ring::hmac::Key::new(h.hmac_alg(), fk.as_bytes());
    ring::hmac::verify(&key, transcript_hash, received).is_ok()
}

/// application_traffic_secret_N+1 (§7.2).
pub fn next_traffic_secret(h: HashAlg, secret: &[u8]) -> Secret {
    hkdf_expand_label(h, secret, b"traffic upd", b"", h.output_len())
}

/// The PSK of one ticket (§4.6.1).
pub fn resumption_psk(h: HashAlg, rms: &[u8], ticket_nonce: &[u8]) -> Secret {
    hkdf_expand_label(h, rms, b"resumption", ticket_nonce, h.output_len())
}

/// Traffic key and IV from a traffic secret (§7.3).
pub fn traffic_key_iv(suite: CipherSuite, traffic_secret: &[u8]) -> (Secret, [u8; 12]) {
    let h = suite.hash();
    let key = hkdf_expand_label(h, traffic_secret, b"key", b"", suite.key_len());
    let iv_s = hkdf_expand_label(h, traffic_secret, b"iv", b"", 12);
    let mut iv = [0u8; 12];
    iv.copy_from_slice(iv_s.as_bytes());
    (key, iv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 5869 Appendix A.1 (SHA-256, basic).
    #[test]
    fn hkdf_matches_rfc5869_case_1() {
        let ikm = unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
        let salt = unhex("000102030405060708090a0b0c");
        let info = unhex("f0f1f2f3f4f5f6f7f8f9");
        let prk = hkdf_extract(HashAlg::Sha256, &salt, &ikm);
        assert_eq!(prk.as_bytes(), unhex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"));
        let okm = hkdf_expand(HashAlg::Sha256, prk.as_bytes(), &info, 42);
        assert_eq!(
            okm.as_bytes(),
            unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        );
    }

    /// RFC 5869 Appendix A.3 (SHA-256, zero-length salt and info).
    #[test]
    fn hkdf_with_empty_salt_matches_rfc5869_case_3() {
        let ikm = unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
        let prk = hkdf_extract(HashAlg::Sha256, &[], &ikm);
        assert_eq!(prk.as_bytes(), unhex("19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04"));
        let okm = hkdf_expand(HashAlg::Sha256, prk.as_bytes(), &[], 42);
        assert_eq!(
            okm.as_bytes(),
            unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
        );
    }

    #[test]
    fn hkdf_expand_refuses_more_than_255_blocks() {
        assert!(try_hkdf_expand(HashAlg::Sha256, &[1; 32], b"", 255 * 32).is_some());
        assert!(try_hkdf_expand(HashAlg::Sha256, &[1; 32], b"", 255 * 32 + 1).is_none());
    }

    #[test]
    fn secret_debug_does_not_show_bytes() {
        let s = Secret::new(vec![0xab; 4]);
        let d = format!("{s:?}");
        assert!(!d.to_lowercase().contains("ab"), "{d}");
        let ks = KeySchedule::new(HashAlg::Sha256, Some(&[0xcd; 32]));
        let d = format!("{ks:?}");
        assert!(!d.contains("205") && !d.to_lowercase().contains("cd,"), "{d}");
    }

    #[test]
    fn key_schedule_round_trips_at_every_stage() {
        let check = |ks: &KeySchedule| {
            let mut w = Writer::new();
            ks.encode(&mut w);
            let buf = w.finish();
            let mut r = Reader::new(&buf);
            let d = KeySchedule::decode(&mut r).unwrap();
            r.finish().unwrap();
            assert_eq!(d.stage(), ks.stage());
            assert_eq!(d.hash(), ks.hash());
            assert_eq!(d.current_secret(), ks.current_secret());
            assert!(KeySchedule::decode(&mut Reader::new(&buf[..buf.len() - 1])).is_err());
            d
        };
        for h in [HashAlg::Sha256, HashAlg::Sha384] {
            let mut ks = KeySchedule::new(h, None);
            let mut d = check(&ks);
            let th = h.digest(b"transcript");
            assert_eq!(
                d.client_early_traffic_secret(&th).as_bytes(),
                ks.client_early_traffic_secret(&th).as_bytes()
            );
            ks.input_dhe(&[7; 32]);
            d.input_dhe(&[7; 32]);
            let mut d2 = check(&ks);
            assert_eq!(d.current_secret(), ks.current_secret());
            ks.into_master();
            d2.into_master();
            let d3 = check(&ks);
            assert_eq!(d2.current_secret(), d3.current_secret());
            assert_ne!(d3.current_secret(), &vec![0u8; h.output_len()][..]);
        }
    }

    #[test]
    fn key_schedule_decode_rejects_bad_stage_and_length() {
        let ks = KeySchedule::new(HashAlg::Sha256, None);
        let mut w = Writer::new();
        ks.encode(&mut w);
        let mut buf = w.finish().to_vec();
        buf[5] = 3;
        assert!(KeySchedule::decode(&mut Reader::new(&buf)).is_err());
        buf[5] = 0;
        buf[4] = 2; // claims SHA-384 with a 32-byte secret
        assert!(KeySchedule::decode(&mut Reader::new(&buf)).is_err());
    }

    #[test]
    fn verify_finished_accepts_only_the_right_mac() {
        let base = [3u8; 32];
        let th = HashAlg::Sha256.digest(b"x");
        let vd = finished_verify_data(HashAlg::Sha256, &base, &th);
        assert!(verify_finished(HashAlg::Sha256, &base, &th, &vd));
        let mut bad = vd.clone();
        bad[31] ^= 1;
        assert!(!verify_finished(HashAlg::Sha256, &base, &th, &bad));
        assert!(!verify_finished(HashAlg::Sha256, &base, &th, &vd[..31]));
    }
}
