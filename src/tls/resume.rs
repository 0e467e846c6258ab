//! Stateful TLS 1.3 resumption (RFC 8446 §2.2, §4.2.11, §4.6.1).
//!
//! The ticket a client receives in NewSessionTicket is only an identity:
//! random bytes that name a session record kept by the server in a
//! [`TicketStore`] (in baton, the shared session table, so any worker can
//! resume it; DESIGN.md "Tickets and early data"). The record holds the
//! per-ticket PSK — `HKDF-Expand-Label(resumption_master_secret,
//! "resumption", ticket_nonce, Hash.length)` (§4.6.1) — never the
//! resumption master secret itself.
//!
//! A resuming ClientHello *takes* the record (so a ticket is single use:
//! a second offer of it finds nothing and gets a full handshake). If the
//! binder does not verify the record is put back before the handshake is
//! aborted: a ClientHello that could not use the ticket must not burn it.
//!
//! Limits, on purpose:
//! - Only the first offered identity is looked at (§4.2.11 lets the server
//!   pick any; the first is the client's preference).
//! - psk_dhe_ke only (§4.2.9); a psk_ke-only offer gets a full handshake.
//! - The obfuscated ticket age is not checked: the anti-replay of early
//!   data is the single-use ticket (§8.1, "single-use tickets": the
//!   session is taken from the table shared by all workers, so a replayed
//!   ClientHello finds nothing); the lifetime is enforced by the store
//!   (the table's expiry).
//! - 0-RTT is off unless `ServerConfig::max_early_data` > 0; then tickets
//!   carry early_data (§4.6.1) and [`Session::max_early_data`] holds the
//!   size announced, which bounds the early data accepted with it.

use zeroize::Zeroizing;

use super::key_schedule::{verify_finished, KeySchedule, Secret};
use super::suites::{CipherSuite, HashAlg};
use crate::codec::{DecodeError, Reader, Writer};

/// Where sessions live between the connection that issued a ticket and the
/// one that resumes it. Called synchronously by the state machine (the
/// session table is lock-free and fast; no job is needed).
pub trait TicketStore {
    /// Stores `session` under `ticket_id` for at most `lifetime_s` seconds.
    /// False if it could not be stored (the ticket is then not sent).
    fn put(&mut self, ticket_id: &[u8], session: &[u8], lifetime_s: u32) -> bool;
    /// Atomically gets and removes the session of `ticket_id`: of racing
    /// takers exactly one gets it.
    fn take(&mut self, ticket_id: &[u8]) -> Option<Zeroizing<Vec<u8>>>;
    /// Returns a session just taken and not used (its binder failed, or it
    /// did not fit the ClientHello), with its original expiry.
    fn put_back(&mut self, ticket_id: &[u8], session: &[u8]) -> bool;
    /// True when a session `take` did not find may still be elsewhere (the
    /// fleet repository): the server then hands out a
    /// [`CryptoJob::session_fetch`](super::CryptoJob::session_fetch) job
    /// and continues the ClientHello with its answer.
    fn remote(&self) -> bool {
        false
    }
}

/// psk_dhe_ke (§4.2.9).
pub const PSK_DHE_KE: u8 = 1;
/// Length of a ticket identity (random; the stateful ticket).
pub const TICKET_ID_LEN: usize = 32;
/// §4.6.1: servers MUST NOT use any value greater than 604800 seconds.
pub const MAX_TICKET_LIFETIME: u32 = 604_800;
/// Bound on tickets sent after one handshake.
pub const MAX_TICKETS_PER_HANDSHAKE: u32 = 16;

const SESSION_TAG: u16 = 0x5452;
const SESSION_VERSION: u16 = 1;

/// What a ticket resumes: the stored value behind a ticket identity.
/// Zeroized on drop (the PSK is a [`Secret`]); Debug shows no key.
#[derive(Clone)]
pub struct Session {
    pub suite: CipherSuite,
    /// The per-ticket PSK (§4.6.1).
    pub psk: Secret,
    pub age_add: u32,
    pub lifetime_s: u32,
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
    /// The max_early_data_size sent in the ticket (0: no 0-RTT with it).
    pub max_early_data: u32,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("suite", &self.suite)
            .field("lifetime_s", &self.lifetime_s)
            .field("sni", &self.sni)
            .finish_non_exhaustive()
    }
}

fn put_opt(w: &mut Writer, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            w.u8(1);
            w.bytes(b);
        }
        None => w.u8(0),
    }
}

fn get_opt(r: &mut Reader) -> Result<Option<Vec<u8>>, DecodeError> {
    Ok(match r.u8()? {
        0 => None,
        1 => Some(r.bytes()?.to_vec()),
        _ => return Err(DecodeError::Invalid("session option")),
    })
}

impl Session {
    /// The versioned encoding stored behind the ticket, in a buffer that
    /// wipes itself.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(128);
        w.version(SESSION_TAG, SESSION_VERSION);
        w.u16(self.suite.id());
        w.bytes(self.psk.as_bytes());
        w.u32(self.age_add);
        w.u32(self.lifetime_s);
        put_opt(&mut w, self.sni.as_deref().map(str::as_bytes));
        put_opt(&mut w, self.alpn.as_deref());
        w.u32(self.max_early_data);
        w.finish()
    }

    pub fn decode(b: &[u8]) -> Result<Session, DecodeError> {
        let mut r = Reader::new(b);
        r.version("Session", SESSION_TAG, 1, SESSION_VERSION)?;
        let suite = CipherSuite::from_u16(r.u16()?).ok_or(DecodeError::Invalid("session suite"))?;
        let psk = r.bytes()?;
        if psk.len() != suite.hash().output_len() {
            return Err(DecodeError::Invalid("session psk length"));
        }
        let psk = Secret::new(psk.to_vec());
        let age_add = r.u32()?;
        let lifetime_s = r.u32()?;
        let sni = match get_opt(&mut r)? {
            Some(b) => Some(String::from_utf8(b).map_err(|_| DecodeError::Invalid("session sni"))?),
            None => None,
        };
        let alpn = get_opt(&mut r)?;
        let max_early_data = r.u32()?;
        r.finish()?;
        Ok(Session { suite, psk, age_add, lifetime_s, sni, alpn, max_early_data })
    }
}

/// §4.2.11.2: the binder is a Finished MAC keyed from binder_key
/// ("res binder" of the Early Secret with this PSK) over the transcript
/// hash of the ClientHello truncated before the binders list (preceded by
/// ClientHello1 and HelloRetryRequest after a retry). Constant time.
pub fn verify_binder(h: HashAlg, psk: &[u8], truncated_hash: &[u8], binder: &[u8]) -> bool {
    let early = KeySchedule::new(h, Some(psk));
    let bk = early.binder_key(false);
    verify_finished(h, bk.as_bytes(), truncated_hash, binder)
}

/// A `TicketStore` that stores nothing (resumption off).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTickets;

impl TicketStore for NoTickets {
    fn put(&mut self, _: &[u8], _: &[u8], _: u32) -> bool {
        false
    }
    fn take(&mut self, _: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        None
    }
    fn put_back(&mut self, _: &[u8], _: &[u8]) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::key_schedule::finished_verify_data;

    fn session() -> Session {
        Session {
            suite: CipherSuite::Aes256GcmSha384,
            psk: Secret::new(vec![0x5a; 48]),
            age_add: 0x01020304,
            lifetime_s: 7200,
            sni: Some("example.com".into()),
            alpn: Some(b"h2".to_vec()),
            max_early_data: 0,
        }
    }

    #[test]
    fn session_round_trips_and_rejects_damage() {
        let s = session();
        let b = s.encode();
        let d = Session::decode(&b).unwrap();
        assert_eq!(d.suite, CipherSuite::Aes256GcmSha384);
        assert_eq!(d.psk.as_bytes(), &[0x5a; 48][..]);
        assert_eq!((d.age_add, d.lifetime_s, d.max_early_data), (0x01020304, 7200, 0));
        assert_eq!(d.sni.as_deref(), Some("example.com"));
        assert_eq!(d.alpn.as_deref(), Some(&b"h2"[..]));
        for n in 0..b.len() {
            assert!(Session::decode(&b[..n]).is_err(), "truncated at {n}");
        }
        let mut long = b.to_vec();
        long.push(0);
        assert!(Session::decode(&long).is_err());
        // A 32-byte PSK for a SHA-384 suite is refused.
        let mut short = session();
        short.psk = Secret::new(vec![1; 32]);
        assert!(Session::decode(&short.encode()).is_err());
    }

    #[test]
    fn session_debug_hides_the_psk() {
        let d = format!("{:?}", session());
        assert!(!d.contains("90") && !d.contains("5a"), "{d}");
    }

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 8448 §4: the PSK of the §3 ticket, the hash of the truncated
    /// ClientHello and the binder the client sent.
    #[test]
    fn binder_matches_rfc8448_section_4() {
        let psk = unhex("4e cd 0e b6 ec 3b 4d 87 f5 d6 02 8f 92 2c a4 c5 85 1a 27 7f d4 13 11 c9 e6 2d 2c 94 92 e1 c4 f3");
        let th = unhex("63 22 4b 2e 45 73 f2 d3 45 4c a8 4b 9d 00 9a 04 f6 be 9e 05 71 1a 83 96 47 3a ef a0 1e 92 4a 14");
        let binder = unhex("3a dd 4f b2 d8 fd f8 22 a0 ca 3c f7 67 8e f5 e8 8d ae 99 01 41 c5 92 4d 57 bb 6f a3 1b 9e 5f 9d");
        assert!(verify_binder(HashAlg::Sha256, &psk, &th, &binder));
        assert!(!verify_binder(HashAlg::Sha256, &psk, &th, &binder[..31]));
    }

    #[test]
    fn binder_verifies_only_with_the_right_psk_and_transcript() {
        let h = HashAlg::Sha256;
        let psk = [7u8; 32];
        let th = h.digest(b"truncated client hello");
        // Built by hand from the §7.1 definitions, not by verify_binder.
        let zeros = [0u8; 32];
        let early = crate::tls::key_schedule::hkdf_extract(h, &zeros, &psk);
        let bk = crate::tls::key_schedule::derive_secret(h, early.as_bytes(), b"res binder", &h.digest(b""));
        let binder = finished_verify_data(h, bk.as_bytes(), &th);
        assert!(verify_binder(h, &psk, &th, &binder));
        assert!(!verify_binder(h, &[8u8; 32], &th, &binder));
        assert!(!verify_binder(h, &psk, &h.digest(b"other"), &binder));
        let mut bad = binder.clone();
        bad[0] ^= 0x80;
        assert!(!verify_binder(h, &psk, &th, &bad));
    }
}
