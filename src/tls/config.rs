//! Server configuration: certificate chain, key, ALPN list, suites, groups
//! and the byte caps of one connection.

use super::cert::{CertError, SigningKey};
use super::suites::CipherSuite;

/// Key exchange groups we implement (RFC 8446 §4.2.7), through
/// `ring::agreement`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum NamedGroup {
    Secp256r1 = 0x0017,
    X25519 = 0x001d,
}

impl NamedGroup {
    pub fn from_u16(v: u16) -> Option<Self> {
        match v {
            0x0017 => Some(NamedGroup::Secp256r1),
            0x001d => Some(NamedGroup::X25519),
            _ => None,
        }
    }
    pub fn id(self) -> u16 {
        self as u16
    }
    /// The only valid key_exchange length for this group (§4.2.8.2).
    pub fn share_len(self) -> usize {
        match self {
            NamedGroup::X25519 => 32,
            NamedGroup::Secp256r1 => 65,
        }
    }
    pub(crate) fn ring_alg(self) -> &'static ring::agreement::Algorithm {
        match self {
            NamedGroup::X25519 => &ring::agreement::X25519,
            NamedGroup::Secp256r1 => &ring::agreement::ECDH_P256,
        }
    }
}

/// Everything a [`super::TlsServer`] needs that is not per connection.
/// Shared by every connection through an `Arc`.
#[derive(Debug)]
pub struct ServerConfig {
    /// DER certificates, leaf first.
    pub cert_chain: Vec<Vec<u8>>,
    pub key: SigningKey,
    /// ALPN protocols in our preference order; empty: no ALPN.
    pub alpn: Vec<Vec<u8>>,
    /// Suites in our preference order.
    pub suites: Vec<CipherSuite>,
    /// Groups in our preference order.
    pub groups: Vec<NamedGroup>,
    /// Cap on buffered client plaintext and on unsent TLS output of sealed
    /// application data.
    pub max_plaintext_buffer: usize,
    /// Largest handshake message accepted (reassembled across records).
    pub max_handshake_message: usize,
    /// KeyUpdates accepted in a row without application data in between
    /// (case T5).
    pub max_key_updates_in_row: u32,
    /// NewSessionTickets sent after each handshake, full or resumed
    /// (§4.6.1); 0 turns resumption tickets off. Capped at
    /// [`super::resume::MAX_TICKETS_PER_HANDSHAKE`].
    pub tickets_per_handshake: u32,
    /// Ticket lifetime in seconds, told to the client and given to the
    /// ticket store as the record's expiry. Capped at 604800 (§4.6.1).
    pub ticket_lifetime_s: u32,
    /// 0-RTT (§4.2.10): 0 (the default) turns it off. Otherwise tickets
    /// carry early_data with this max_early_data_size (§4.6.1), and early
    /// data is accepted from a ClientHello whose ticket was just taken from
    /// the store (single use: the replay protection of §8.1), up to the
    /// size its ticket announced.
    pub max_early_data: u32,
    /// 0-RTT is accepted only when the ticket age the client reports
    /// differs from the age we measure by at most this many milliseconds
    /// (RFC 8446 §8.3); otherwise the ticket resumes and its early data is
    /// rejected (§4.2.10). Default
    /// [`super::resume::DEFAULT_EARLY_DATA_AGE_WINDOW_MS`] (10 s).
    pub early_data_age_window_ms: u32,
}

impl ServerConfig {
    pub fn new(cert_chain: Vec<Vec<u8>>, key: SigningKey, alpn: Vec<Vec<u8>>) -> Result<Self, CertError> {
        if cert_chain.is_empty() || cert_chain.iter().any(|c| c.is_empty() || c.len() > 0xff_ffff) {
            return Err(CertError::NoCertificate);
        }
        Ok(ServerConfig {
            cert_chain,
            key,
            alpn,
            suites: vec![CipherSuite::Aes128GcmSha256, CipherSuite::Aes256GcmSha384, CipherSuite::Chacha20Poly1305Sha256],
            groups: vec![NamedGroup::X25519, NamedGroup::Secp256r1],
            max_plaintext_buffer: 64 * 1024,
            max_handshake_message: 64 * 1024,
            max_key_updates_in_row: 32,
            tickets_per_handshake: 1,
            ticket_lifetime_s: 7200,
            max_early_data: 0,
            early_data_age_window_ms: super::resume::DEFAULT_EARLY_DATA_AGE_WINDOW_MS,
        })
    }
}
