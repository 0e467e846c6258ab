//! TLS errors. Every error knows the alert it is reported with
//! (RFC 8446 §6.2), in the style of rustls' single error enum.

use std::fmt;

/// Alert descriptions, RFC 8446 §6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AlertDescription {
    CloseNotify = 0,
    UnexpectedMessage = 10,
    BadRecordMac = 20,
    RecordOverflow = 22,
    HandshakeFailure = 40,
    BadCertificate = 42,
    UnsupportedCertificate = 43,
    CertificateRevoked = 44,
    CertificateExpired = 45,
    CertificateUnknown = 46,
    IllegalParameter = 47,
    UnknownCa = 48,
    AccessDenied = 49,
    DecodeError = 50,
    DecryptError = 51,
    ProtocolVersion = 70,
    InsufficientSecurity = 71,
    InternalError = 80,
    InappropriateFallback = 86,
    UserCanceled = 90,
    MissingExtension = 109,
    UnsupportedExtension = 110,
    UnrecognizedName = 112,
    BadCertificateStatusResponse = 113,
    UnknownPskIdentity = 115,
    CertificateRequired = 116,
    NoApplicationProtocol = 120,
}

impl AlertDescription {
    pub fn from_u8(v: u8) -> Option<Self> {
        use AlertDescription::*;
        Some(match v {
            0 => CloseNotify,
            10 => UnexpectedMessage,
            20 => BadRecordMac,
            22 => RecordOverflow,
            40 => HandshakeFailure,
            42 => BadCertificate,
            43 => UnsupportedCertificate,
            44 => CertificateRevoked,
            45 => CertificateExpired,
            46 => CertificateUnknown,
            47 => IllegalParameter,
            48 => UnknownCa,
            49 => AccessDenied,
            50 => DecodeError,
            51 => DecryptError,
            70 => ProtocolVersion,
            71 => InsufficientSecurity,
            80 => InternalError,
            86 => InappropriateFallback,
            90 => UserCanceled,
            109 => MissingExtension,
            110 => UnsupportedExtension,
            112 => UnrecognizedName,
            113 => BadCertificateStatusResponse,
            115 => UnknownPskIdentity,
            116 => CertificateRequired,
            120 => NoApplicationProtocol,
            _ => return None,
        })
    }
}

/// Everything that can go wrong in the TLS layer. Non-exhaustive: new
/// variants will come with TLS 1.2 and resumption.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsError {
    /// A message arrived that is not allowed in the current state or record
    /// type (RFC 8446 §5.1, §6.2).
    UnexpectedMessage(&'static str),
    /// A message or record could not be parsed (RFC 8446 §6.2 decode_error).
    Decode(&'static str),
    /// A field had a value the RFC forbids (illegal_parameter).
    IllegalParameter(&'static str),
    /// A record failed to authenticate (bad_record_mac, RFC 8446 §5.2).
    BadRecordMac,
    /// A record exceeded 2^14 + 256 bytes of ciphertext or 2^14 of plaintext.
    RecordOverflow,
    /// No common suite, group, signature scheme or version.
    HandshakeFailure(&'static str),
    /// The client does not offer TLS 1.3.
    ProtocolVersion,
    /// A required extension is missing (missing_extension).
    MissingExtension(&'static str),
    /// A Finished or binder did not verify (decrypt_error).
    DecryptError(&'static str),
    /// No ALPN protocol in common while the server requires one.
    NoApplicationProtocol,
    /// The peer sent a fatal alert.
    PeerAlert(AlertDescription),
    /// The peer closed the connection with close_notify; not an error in
    /// itself but no more data may be read.
    PeerClosed,
    /// Sequence number space exhausted (RFC 8446 §5.3) or AEAD limit hit.
    SequenceExhausted,
    /// Something went wrong on our side (internal_error).
    Internal(&'static str),
}

impl TlsError {
    /// The alert sent to the peer for this error.
    pub fn alert(&self) -> AlertDescription {
        use AlertDescription as A;
        match self {
            TlsError::UnexpectedMessage(_) => A::UnexpectedMessage,
            TlsError::Decode(_) => A::DecodeError,
            TlsError::IllegalParameter(_) => A::IllegalParameter,
            TlsError::BadRecordMac => A::BadRecordMac,
            TlsError::RecordOverflow => A::RecordOverflow,
            TlsError::HandshakeFailure(_) => A::HandshakeFailure,
            TlsError::ProtocolVersion => A::ProtocolVersion,
            TlsError::MissingExtension(_) => A::MissingExtension,
            TlsError::DecryptError(_) => A::DecryptError,
            TlsError::NoApplicationProtocol => A::NoApplicationProtocol,
            TlsError::PeerAlert(_) => A::CloseNotify,
            TlsError::PeerClosed => A::CloseNotify,
            TlsError::SequenceExhausted => A::InternalError,
            TlsError::Internal(_) => A::InternalError,
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::UnexpectedMessage(m) => write!(f, "unexpected message: {m}"),
            TlsError::Decode(m) => write!(f, "decode error: {m}"),
            TlsError::IllegalParameter(m) => write!(f, "illegal parameter: {m}"),
            TlsError::BadRecordMac => write!(f, "record failed to authenticate"),
            TlsError::RecordOverflow => write!(f, "record too large"),
            TlsError::HandshakeFailure(m) => write!(f, "handshake failure: {m}"),
            TlsError::ProtocolVersion => write!(f, "client does not offer TLS 1.3"),
            TlsError::MissingExtension(m) => write!(f, "missing extension: {m}"),
            TlsError::DecryptError(m) => write!(f, "decrypt error: {m}"),
            TlsError::NoApplicationProtocol => write!(f, "no ALPN protocol in common"),
            TlsError::PeerAlert(a) => write!(f, "peer sent alert {a:?}"),
            TlsError::PeerClosed => write!(f, "peer sent close_notify"),
            TlsError::SequenceExhausted => write!(f, "record sequence number exhausted"),
            TlsError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for TlsError {}
