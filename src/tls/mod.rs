//! Sans-IO TLS 1.3 server (RFC 8446) on `ring`. Owned by baton so that a
//! connection's whole state — mid-handshake included — is a value that can be
//! exported and imported (DESIGN.md, "Why our own TCP and TLS state machines").

pub mod aead;
pub mod error;
pub mod key_schedule;
pub mod suites;

pub use error::{AlertDescription, TlsError};
