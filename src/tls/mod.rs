//! Sans-IO TLS 1.3 server (RFC 8446) on `ring`. Owned by baton so that a
//! connection's whole state — mid-handshake included — is a value that can be
//! exported and imported (DESIGN.md, "Why our own TCP and TLS state machines").

pub mod aead;
pub mod cert;
pub mod config;
pub mod error;
pub mod job;
pub mod key_schedule;
pub mod messages;
pub mod resume;
pub mod server;
pub mod suites;
pub mod wire;

#[cfg(test)]
mod tests;

pub use cert::{load_cert_chain_pem, CertError, SignatureScheme, SigningKey};
pub use config::{NamedGroup, ServerConfig};
pub use error::{AlertDescription, TlsError};
pub use job::{CryptoJob, JobResult};
pub use resume::{NoTickets, TicketAge, TicketStore};
pub use server::TlsServer;
pub use suites::CipherSuite;
