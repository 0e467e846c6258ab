//! The expensive handshake steps as plain, `Send` jobs (DESIGN.md, slow
//! path): the state machine stops, hands a job out and resumes with its
//! result, so the job can run inline or on another thread.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::cert::{DrawnRandom, SignatureScheme};
use super::config::{NamedGroup, ServerConfig};
use super::TlsError;
use crate::codec::{DecodeError, Reader, Writer};
use crate::entropy::Entropy;

/// What the state machine waits for; kept in the connection state (and in
/// its encoding) so a decoded connection can hand the job out again.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum JobSpec {
    /// Generate our key share for `group` and agree with the client's
    /// `peer` share (§4.2.8), in one step: ring's ephemeral key cannot be
    /// stored, only the result.
    KeyExchange { group: NamedGroup, peer: Vec<u8> },
    /// Sign the CertificateVerify input (§4.4.3).
    Sign { scheme: SignatureScheme, msg: Vec<u8> },
    /// The ClientHello offers a ticket this host does not hold: ask the
    /// fleet repository for it (§4.2.11; DESIGN.md, "Data flow": the
    /// repository is reached from the slow path, never from a worker).
    FetchSession { id: Vec<u8> },
}

impl JobSpec {
    pub(crate) fn encode(&self, w: &mut Writer) {
        match self {
            JobSpec::KeyExchange { group, peer } => {
                w.u8(1);
                w.u16(group.id());
                w.bytes(peer);
            }
            JobSpec::Sign { scheme, msg } => {
                w.u8(2);
                w.u16(*scheme as u16);
                w.bytes(msg);
            }
            JobSpec::FetchSession { id } => {
                w.u8(3);
                w.bytes(id);
            }
        }
    }
    pub(crate) fn decode(r: &mut Reader) -> Result<JobSpec, DecodeError> {
        match r.u8()? {
            1 => {
                let group = NamedGroup::from_u16(r.u16()?).ok_or(DecodeError::Invalid("job group"))?;
                Ok(JobSpec::KeyExchange { group, peer: r.bytes()?.to_vec() })
            }
            2 => {
                let scheme = SignatureScheme::from_u16(r.u16()?).ok_or(DecodeError::Invalid("job scheme"))?;
                Ok(JobSpec::Sign { scheme, msg: r.bytes()?.to_vec() })
            }
            3 => Ok(JobSpec::FetchSession { id: r.bytes()?.to_vec() }),
            _ => Err(DecodeError::Invalid("job kind")),
        }
    }
}

/// A job handed out by [`super::TlsServer::take_job`].
pub struct CryptoJob {
    pub(crate) spec: JobSpec,
    /// The key lives in the shared config; the job holds a reference to it,
    /// not a copy.
    pub(crate) cfg: Arc<ServerConfig>,
}

impl std::fmt::Debug for CryptoJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.spec {
            JobSpec::KeyExchange { group, .. } => write!(f, "CryptoJob::KeyExchange({group:?})"),
            JobSpec::Sign { scheme, .. } => write!(f, "CryptoJob::Sign({scheme:?})"),
            JobSpec::FetchSession { .. } => write!(f, "CryptoJob::FetchSession"),
        }
    }
}

/// The outcome of a [`CryptoJob`]. Secrets wipe themselves on drop.
pub enum JobResult {
    KeyExchange { group: NamedGroup, public: Vec<u8>, shared: Zeroizing<Vec<u8>> },
    Signature { scheme: SignatureScheme, sig: Vec<u8> },
    /// The answer to a [`CryptoJob::session_fetch`]: the session's bytes
    /// (as a [`super::TicketStore`] returns them), or None for a full
    /// handshake (not there, taken by another host, refused, or the
    /// repository did not answer in time).
    Session(Option<Zeroizing<Vec<u8>>>),
    Failed(TlsError),
}

impl std::fmt::Debug for JobResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobResult::KeyExchange { group, .. } => write!(f, "JobResult::KeyExchange({group:?})"),
            JobResult::Signature { scheme, .. } => write!(f, "JobResult::Signature({scheme:?})"),
            JobResult::Session(s) => write!(f, "JobResult::Session({})", if s.is_some() { "found" } else { "none" }),
            JobResult::Failed(e) => write!(f, "JobResult::Failed({e})"),
        }
    }
}

impl CryptoJob {
    /// The ticket identity of a session fetch: this job is not crypto but
    /// a look-up the caller sends to the fleet repository, answering with
    /// [`JobResult::Session`].
    pub fn session_fetch(&self) -> Option<&[u8]> {
        match &self.spec {
            JobSpec::FetchSession { id } => Some(id),
            _ => None,
        }
    }

    pub fn run(self, rng: &mut dyn Entropy) -> JobResult {
        match self.spec {
            // Without a repository there is nothing to fetch from.
            JobSpec::FetchSession { .. } => JobResult::Session(None),
            JobSpec::KeyExchange { group, peer } => key_exchange(group, &peer, rng),
            JobSpec::Sign { scheme, msg } => match self.cfg.key.sign(scheme, &msg, rng) {
                Ok(sig) => JobResult::Signature { scheme, sig },
                Err(e) => JobResult::Failed(e),
            },
        }
    }
}

fn key_exchange(group: NamedGroup, peer: &[u8], rng: &mut dyn Entropy) -> JobResult {
    use ring::agreement;
    let alg = group.ring_alg();
    // X25519 and P-256 private keys are 32 bytes drawn in one fill.
    let drawn = DrawnRandom::new(rng, 32);
    let Ok(private) = agreement::EphemeralPrivateKey::generate(alg, &drawn.ring()) else {
        return JobResult::Failed(TlsError::Internal("key generation failed"));
    };
    let Ok(public) = private.compute_public_key() else {
        return JobResult::Failed(TlsError::Internal("public key failed"));
    };
    let public = public.as_ref().to_vec();
    let peer_key = agreement::UnparsedPublicKey::new(alg, peer);
    // §7.4.2: an all-zero X25519 result and invalid points are rejected by
    // ring; both are illegal_parameter.
    match agreement::agree_ephemeral(private, &peer_key, |s| Zeroizing::new(s.to_vec())) {
        Ok(shared) => JobResult::KeyExchange { group, public, shared },
        Err(_) => JobResult::Failed(TlsError::IllegalParameter("invalid key share")),
    }
}
