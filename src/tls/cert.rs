//! Certificate chains and signing keys (PEM), and the CertificateVerify
//! signature schemes we can produce (RFC 8446 §4.2.3, §4.4.3).

use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

use super::TlsError;
use crate::entropy::Entropy;

/// Why a certificate chain or key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("PEM could not be parsed")]
    Pem,
    #[error("no certificate found in PEM")]
    NoCertificate,
    #[error("no private key found in PEM")]
    NoKey,
    #[error("private key rejected: {0}")]
    KeyRejected(String),
    #[error("unsupported key type")]
    UnsupportedKey,
    #[error("RSA key size {0} bits outside 2048..=4096")]
    RsaKeySize(usize),
}

/// TLS 1.3 SignatureScheme code points we sign with (RFC 8446 §4.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum SignatureScheme {
    EcdsaSecp256r1Sha256 = 0x0403,
    RsaPssRsaeSha256 = 0x0804,
    RsaPssRsaeSha384 = 0x0805,
    RsaPssRsaeSha512 = 0x0806,
    Ed25519 = 0x0807,
}

impl SignatureScheme {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            0x0403 => Self::EcdsaSecp256r1Sha256,
            0x0804 => Self::RsaPssRsaeSha256,
            0x0805 => Self::RsaPssRsaeSha384,
            0x0806 => Self::RsaPssRsaeSha512,
            0x0807 => Self::Ed25519,
            _ => return None,
        })
    }
    fn salt_len(self) -> usize {
        match self {
            Self::RsaPssRsaeSha256 | Self::EcdsaSecp256r1Sha256 => 32,
            Self::RsaPssRsaeSha384 => 48,
            Self::RsaPssRsaeSha512 => 64,
            Self::Ed25519 => 0,
        }
    }
}

/// The server's private key. The ring key pairs wipe themselves.
pub enum SigningKey {
    EcdsaP256(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        let kind = match self {
            SigningKey::EcdsaP256(_) => "EcdsaP256",
            SigningKey::Rsa(_) => "Rsa",
            SigningKey::Ed25519(_) => "Ed25519",
        };
        write!(f, "SigningKey::{kind}")
    }
}

/// prime256v1, 1.2.840.10045.3.1.7, DER-encoded.
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

impl SigningKey {
    /// Loads the first private key found in `pem`: PKCS#8 "PRIVATE KEY"
    /// (ECDSA P-256, Ed25519 or RSA), PKCS#1 "RSA PRIVATE KEY" or SEC1
    /// "EC PRIVATE KEY" (P-256). Runs at configuration time; ring's ECDSA key
    /// setup draws its nonce key from the OS generator here.
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, CertError> {
        let blocks = pem::parse_many(pem).map_err(|_| CertError::Pem)?;
        for b in blocks {
            let der = b.contents();
            match b.tag() {
                "PRIVATE KEY" => return Self::from_pkcs8(der),
                "RSA PRIVATE KEY" => return Self::rsa(RsaKeyPair::from_der(der)),
                "EC PRIVATE KEY" => return Self::from_sec1(der),
                _ => continue,
            }
        }
        Err(CertError::NoKey)
    }

    /// A PKCS#8 DER key of any of the three kinds.
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, CertError> {
        let rng = ring::rand::SystemRandom::new();
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng) {
            return Ok(SigningKey::EcdsaP256(k));
        }
        if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(SigningKey::Ed25519(k));
        }
        match RsaKeyPair::from_pkcs8(der) {
            Ok(k) => Self::rsa(Ok(k)),
            Err(e) => Err(CertError::KeyRejected(e.to_string())),
        }
    }

    fn rsa(k: Result<RsaKeyPair, ring::error::KeyRejected>) -> Result<SigningKey, CertError> {
        let k = k.map_err(|e| CertError::KeyRejected(e.to_string()))?;
        let bits = k.public().modulus_len() * 8;
        if !(2048..=4096).contains(&bits) {
            return Err(CertError::RsaKeySize(bits));
        }
        Ok(SigningKey::Rsa(k))
    }

    /// SEC1 `ECPrivateKey` (RFC 5915): ring's PKCS#8 loader rejects it, so
    /// take the private scalar and the embedded public key apart and hand
    /// both to `from_private_key_and_public_key`.
    fn from_sec1(der: &[u8]) -> Result<SigningKey, CertError> {
        let bad = || CertError::KeyRejected("malformed SEC1 ECPrivateKey".into());
        let (tag, body, rest) = der_tlv(der).ok_or_else(bad)?;
        if tag != 0x30 || !rest.is_empty() {
            return Err(bad());
        }
        let (tag, ver, body) = der_tlv(body).ok_or_else(bad)?;
        if tag != 0x02 || ver != [1] {
            return Err(bad());
        }
        let (tag, private, mut body) = der_tlv(body).ok_or_else(bad)?;
        if tag != 0x04 {
            return Err(bad());
        }
        let mut public = None;
        while !body.is_empty() {
            let (tag, v, rest) = der_tlv(body).ok_or_else(bad)?;
            body = rest;
            match tag {
                0xa0 => {
                    if v != OID_P256 {
                        return Err(CertError::UnsupportedKey);
                    }
                }
                0xa1 => {
                    let (t, bits, _) = der_tlv(v).ok_or_else(bad)?;
                    // BIT STRING with zero unused bits.
                    if t != 0x03 || bits.first() != Some(&0) {
                        return Err(bad());
                    }
                    public = bits.get(1..);
                }
                _ => return Err(bad()),
            }
        }
        let public = public.ok_or_else(|| CertError::KeyRejected("SEC1 key without public key".into()))?;
        let rng = ring::rand::SystemRandom::new();
        EcdsaKeyPair::from_private_key_and_public_key(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, private, public, &rng)
            .map(SigningKey::EcdsaP256)
            .map_err(|e| CertError::KeyRejected(e.to_string()))
    }

    /// The schemes this key can sign with, in our preference order.
    pub fn schemes(&self) -> &'static [SignatureScheme] {
        match self {
            SigningKey::EcdsaP256(_) => &[SignatureScheme::EcdsaSecp256r1Sha256],
            SigningKey::Ed25519(_) => &[SignatureScheme::Ed25519],
            SigningKey::Rsa(_) => &[
                SignatureScheme::RsaPssRsaeSha256,
                SignatureScheme::RsaPssRsaeSha384,
                SignatureScheme::RsaPssRsaeSha512,
            ],
        }
    }

    /// Picks the first scheme in the client's signature_algorithms list
    /// that this key supports (RFC 8446 §4.4.3).
    pub fn choose_scheme(&self, client: &[u16]) -> Option<SignatureScheme> {
        let ours = self.schemes();
        client.iter().filter_map(|c| SignatureScheme::from_u16(*c)).find(|s| ours.contains(s))
    }

    /// The public key, for tests and diagnostics.
    pub fn public_key(&self) -> &[u8] {
        match self {
            SigningKey::EcdsaP256(k) => k.public_key().as_ref(),
            SigningKey::Ed25519(k) => k.public_key().as_ref(),
            SigningKey::Rsa(k) => k.public_key().as_ref(),
        }
    }

    /// Signs `msg` with `scheme`, drawing the randomness ring asks for from
    /// `rng` (ECDSA: the hedging input; RSA-PSS: the salt).
    pub fn sign(&self, scheme: SignatureScheme, msg: &[u8], rng: &mut dyn Entropy) -> Result<Vec<u8>, TlsError> {
        let failed = |_| TlsError::Internal("signing failed");
        match (self, scheme) {
            (SigningKey::EcdsaP256(k), SignatureScheme::EcdsaSecp256r1Sha256) => {
                let r = DrawnRandom::new(rng, scheme.salt_len());
                k.sign(&r.ring(), msg).map(|s| s.as_ref().to_vec()).map_err(failed)
            }
            (SigningKey::Ed25519(k), SignatureScheme::Ed25519) => Ok(k.sign(msg).as_ref().to_vec()),
            (SigningKey::Rsa(k), s) => {
                let pad: &'static dyn signature::RsaEncoding = match s {
                    SignatureScheme::RsaPssRsaeSha256 => &signature::RSA_PSS_SHA256,
                    SignatureScheme::RsaPssRsaeSha384 => &signature::RSA_PSS_SHA384,
                    SignatureScheme::RsaPssRsaeSha512 => &signature::RSA_PSS_SHA512,
                    _ => return Err(TlsError::Internal("scheme does not fit the key")),
                };
                let r = DrawnRandom::new(rng, s.salt_len());
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(pad, &r.ring(), msg, &mut sig).map_err(failed)?;
                Ok(sig)
            }
            _ => Err(TlsError::Internal("scheme does not fit the key")),
        }
    }
}

/// Bytes drawn from our `Entropy` ahead of time and presented to ring as a
/// `SecureRandom` (ring seals that trait; its fixed-slice generator is the
/// only way to feed it injected randomness). Each use asks for exactly one
/// fill of `len` bytes.
pub(crate) struct DrawnRandom {
    bytes: zeroize::Zeroizing<Vec<u8>>,
}

impl DrawnRandom {
    pub(crate) fn new(rng: &mut dyn Entropy, len: usize) -> Self {
        let mut bytes = zeroize::Zeroizing::new(vec![0u8; len]);
        rng.fill(&mut bytes);
        DrawnRandom { bytes }
    }
    #[allow(deprecated)]
    pub(crate) fn ring(&self) -> ring::test::rand::FixedSliceRandom<'_> {
        ring::test::rand::FixedSliceRandom { bytes: &self.bytes }
    }
}

/// One DER tag-length-value (short or long definite lengths up to 4 bytes).
fn der_tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let l0 = *b.get(1)? as usize;
    let (len, hdr) = if l0 < 0x80 {
        (l0, 2)
    } else {
        let n = l0 & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    Some((tag, b.get(hdr..end)?, b.get(end..)?))
}

/// Every CERTIFICATE block in `pem`, leaf first, as DER.
pub fn load_cert_chain_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    let blocks = pem::parse_many(pem).map_err(|_| CertError::Pem)?;
    let chain: Vec<Vec<u8>> =
        blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE").map(|b| b.into_contents()).collect();
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    const RSA_PKCS8: &[u8] = include_bytes!("tests/rsa2048.pkcs8.pem");
    const RSA_PKCS1: &[u8] = include_bytes!("tests/rsa2048.pkcs1.pem");
    const P256_SEC1: &[u8] = include_bytes!("tests/p256.sec1.pem");

    fn verify(key: &SigningKey, scheme: SignatureScheme, msg: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match scheme {
            SignatureScheme::EcdsaSecp256r1Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
            SignatureScheme::Ed25519 => &signature::ED25519,
            SignatureScheme::RsaPssRsaeSha256 => &signature::RSA_PSS_2048_8192_SHA256,
            SignatureScheme::RsaPssRsaeSha384 => &signature::RSA_PSS_2048_8192_SHA384,
            SignatureScheme::RsaPssRsaeSha512 => &signature::RSA_PSS_2048_8192_SHA512,
        };
        signature::UnparsedPublicKey::new(alg, key.public_key()).verify(msg, sig).is_ok()
    }

    #[test]
    fn loads_every_key_format_and_signs_verifiably() {
        let mut rng = SeededEntropy::new(1);
        let ec_pk8 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap().serialize_pem();
        let ed_pk8 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap().serialize_pem();
        let cases: [(&[u8], SignatureScheme); 6] = [
            (ec_pk8.as_bytes(), SignatureScheme::EcdsaSecp256r1Sha256),
            (P256_SEC1, SignatureScheme::EcdsaSecp256r1Sha256),
            (ed_pk8.as_bytes(), SignatureScheme::Ed25519),
            (RSA_PKCS8, SignatureScheme::RsaPssRsaeSha256),
            (RSA_PKCS1, SignatureScheme::RsaPssRsaeSha384),
            (RSA_PKCS1, SignatureScheme::RsaPssRsaeSha512),
        ];
        for (pem, scheme) in cases {
            let k = SigningKey::from_pem(pem).unwrap();
            let sig = k.sign(scheme, b"message", &mut rng).unwrap();
            assert!(verify(&k, scheme, b"message", &sig), "{scheme:?}");
            assert!(!verify(&k, scheme, b"messagf", &sig), "{scheme:?}");
        }
    }

    #[test]
    fn scheme_choice_follows_client_list_and_key_type() {
        let k = SigningKey::from_pem(RSA_PKCS1).unwrap();
        assert_eq!(k.choose_scheme(&[0x0401, 0x0806, 0x0804]), Some(SignatureScheme::RsaPssRsaeSha512));
        assert_eq!(k.choose_scheme(&[0x0401, 0x0403]), None);
        let k = SigningKey::from_pem(P256_SEC1).unwrap();
        assert_eq!(k.choose_scheme(&[0x0807, 0x0403]), Some(SignatureScheme::EcdsaSecp256r1Sha256));
        assert_eq!(format!("{k:?}"), "SigningKey::EcdsaP256");
    }

    #[test]
    fn bad_pem_is_an_error() {
        assert_eq!(SigningKey::from_pem(b"nothing").unwrap_err(), CertError::NoKey);
        assert_eq!(load_cert_chain_pem(b"").unwrap_err(), CertError::NoCertificate);
        let junk = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(matches!(SigningKey::from_pem(junk.as_bytes()), Err(CertError::KeyRejected(_))));
        let cert = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
        let pem = format!("{}{}", cert.cert.pem(), cert.cert.pem());
        let chain = load_cert_chain_pem(pem.as_bytes()).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0], cert.cert.der().to_vec());
    }
}
