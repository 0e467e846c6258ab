//! The TLS 1.3 server connection (RFC 8446): record layer buffering in both
//! directions, the server handshake state machine and post-handshake
//! messages. Sans-IO: bytes in through [`TlsServer::read_tls`], bytes out
//! through [`TlsServer::tls_output`], randomness as an argument, and the two
//! expensive steps handed out as [`CryptoJob`]s.
//!
//! The whole connection is one plain struct so it can be encoded at any
//! point — mid-handshake, with a job pending or half a record buffered —
//! and continued elsewhere (DESIGN.md, "What a handoff carries").

use std::sync::Arc;

use super::aead::{sealed_len, RecordProtector, MAX_CIPHERTEXT, MAX_PLAINTEXT, RECORD_HEADER_LEN};
use super::cert::SignatureScheme;
use super::config::{NamedGroup, ServerConfig};
use super::job::{CryptoJob, JobResult, JobSpec};
use super::key_schedule::{finished_verify_data, resumption_psk, verify_finished, KeySchedule, Secret};
use super::messages::{self, hs_type, ClientHello};
use super::resume::{self, Session, TicketAge, TicketStore};
use super::suites::{CipherSuite, Transcript};
use zeroize::Zeroizing;
use super::{AlertDescription, TlsError};
use crate::codec::{DecodeError, Reader, Writer};
use crate::entropy::Entropy;

/// ContentType (§5.1).
pub(crate) mod content {
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const HANDSHAKE: u8 = 22;
    pub const APPLICATION_DATA: u8 = 23;
}

/// Raw client bytes held at most: two whole maximum-size records.
const IN_CAP: usize = 2 * (RECORD_HEADER_LEN + MAX_CIPHERTEXT);

/// Rejected 0-RTT bytes we skip before treating failures as fatal.
const MAX_SKIPPED_EARLY_DATA: u32 = 64 * 1024;

const STATE_TAG: u16 = 0x5453;
/// 2: resumption (PSK, resumed flag, ticket counters).
/// 3: 0-RTT (early read key, accepted flag, early byte count and limit).
/// 4: a ClientHello waiting for a session from the fleet repository.
/// 5: several PSK identities (the one being fetched, the one selected) and
/// the ticket age verdict.
const STATE_VERSION: u16 = 5;

/// Where the handshake is. One state per message the server waits for
/// (§4, Figure 1 and §4.1.4 for the retry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    ExpectClientHello = 0,
    /// After a HelloRetryRequest (§4.1.4).
    ExpectSecondClientHello = 1,
    /// Waiting for the key exchange job.
    KeyExchange = 2,
    /// Waiting for the CertificateVerify signature job.
    Sign = 3,
    ExpectFinished = 4,
    /// Handshake done. NewSessionTickets are sent on entering this state
    /// when a [`TicketStore`] is given (`process_with`).
    Connected = 5,
}

impl Phase {
    fn from_u8(v: u8) -> Option<Phase> {
        use Phase::*;
        Some(match v {
            0 => ExpectClientHello,
            1 => ExpectSecondClientHello,
            2 => KeyExchange,
            3 => Sign,
            4 => ExpectFinished,
            5 => Connected,
            _ => return None,
        })
    }
}

/// What the first ClientHello promised, checked against the second one
/// after a HelloRetryRequest (§4.1.2: the same ClientHello except for
/// key_share, early_data, cookie, pre_shared_key and padding).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct FirstHello {
    suites: Vec<u16>,
    sni: Option<String>,
    alpn: Option<Vec<Vec<u8>>>,
    versions: Option<Vec<u16>>,
}

/// A server-side TLS 1.3 connection.
pub struct TlsServer {
    cfg: Arc<ServerConfig>,
    phase: Phase,

    /// Client bytes not yet made into records; `in_off` bytes already used.
    inbuf: Vec<u8>,
    in_off: usize,
    /// Handshake bytes reassembled across records (§5.1).
    hs_buf: Vec<u8>,
    /// Opened application data not yet read; `plain_off` bytes already read.
    plain_in: Vec<u8>,
    plain_off: usize,
    /// TLS bytes for the client; `out_off` bytes already consumed.
    out: Vec<u8>,
    out_off: usize,

    transcript: Option<Transcript>,
    ks: Option<KeySchedule>,
    reader: Option<RecordProtector>,
    writer: Option<RecordProtector>,
    client_hs_secret: Option<Secret>,
    server_hs_secret: Option<Secret>,
    client_app_secret: Option<Secret>,
    /// Kept until the tickets are sent: each ticket's PSK is derived from
    /// it (§4.6.1). Never leaves this connection (the store gets the
    /// per-ticket PSKs only).
    resumption_secret: Option<Secret>,
    /// The PSK of the session being resumed, from the ClientHello until
    /// the key schedule is seeded with it (§7.1).
    psk: Option<Secret>,
    /// This handshake resumed a session (no Certificate, §2.2).
    resumed: bool,
    /// NewSessionTickets still to send, and the count sent so far (the
    /// ticket_nonce, unique per connection, §4.6.1).
    tickets_due: u32,
    tickets_sent: u32,

    job: Option<JobSpec>,
    job_out: bool,
    /// A ClientHello whose ticket is being fetched from the fleet
    /// repository (a [`JobSpec::FetchSession`] job): handled again, from
    /// the start, once the answer is in `fetched`.
    pending_hello: Option<Vec<u8>>,
    /// The repository's answer for `pending_hello`'s ticket: Some(None)
    /// means not found (that identity is a miss).
    fetched: Option<Option<Zeroizing<Vec<u8>>>>,
    /// Which offered identity of `pending_hello` is being (or was) fetched;
    /// the ones before it were misses or unusable (§4.2.11).
    fetch_index: u8,
    /// The selected_identity of our ServerHello when resuming (§4.2.11).
    psk_index: u16,
    /// What the age of the resumed (or too old) ticket allowed (§4.2.11.1,
    /// §8.3); None when no ticket was judged.
    ticket_age: Option<TicketAge>,

    suite: Option<CipherSuite>,
    group: Option<NamedGroup>,
    scheme: Option<SignatureScheme>,
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
    session_id: Vec<u8>,
    server_random: [u8; 32],
    first_hello: Option<FirstHello>,
    ccs_sent: bool,

    /// Bytes of rejected 0-RTT data still to be skipped (§4.2.10): the
    /// client offered early_data and we did not accept it.
    early_skip: u32,
    /// Accepted 0-RTT (§4.2.10): the client_early_traffic_secret's read
    /// key, from the ClientHello until EndOfEarlyData (§4.5).
    early_reader: Option<RecordProtector>,
    early_accepted: bool,
    /// Early plaintext bytes delivered (the first ones of the stream), and
    /// the max_early_data_size of the ticket that allowed them.
    early_received: u32,
    early_limit: u32,
    key_updates_in_row: u32,
    close_sent: bool,
    close_received: bool,
    failed: bool,
    error: Option<TlsError>,
    /// Keys and buffers dropped for good ([`TlsServer::retire`]); not part
    /// of the exported state (a taker retires again).
    retired: bool,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No secrets, no buffers' contents.
        f.debug_struct("TlsServer")
            .field("phase", &self.phase)
            .field("suite", &self.suite)
            .field("group", &self.group)
            .field("sni", &self.sni)
            .field("resumed", &self.resumed)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// A session a ClientHello resumes.
struct Resumed {
    suite: CipherSuite,
    sess: Session,
    /// The offered identity it was found under (selected_identity).
    index: u16,
    age: TicketAge,
}

/// What resumption decided for a ClientHello.
enum Resume {
    /// Resume this session, or (None) a full handshake. The age verdict
    /// of a ticket found too old is kept for the counters.
    Decided(Option<Resumed>, Option<TicketAge>),
    /// Ask the fleet repository for the session of the identity with this
    /// index first.
    Fetch(u8, Vec<u8>),
}

/// What one record turned out to carry, once opened.
enum Inner {
    Handshake(usize, usize),
    Alert(usize, usize),
    AppData(usize, usize),
    /// Nothing to deliver (a change_cipher_spec, or skipped early data).
    Ccs,
    /// Application data opened under the client early traffic key.
    EarlyData(usize, usize),
}

impl TlsServer {
    pub fn new(cfg: Arc<ServerConfig>) -> TlsServer {
        TlsServer {
            cfg,
            phase: Phase::ExpectClientHello,
            inbuf: Vec::new(),
            in_off: 0,
            hs_buf: Vec::new(),
            plain_in: Vec::new(),
            plain_off: 0,
            out: Vec::new(),
            out_off: 0,
            transcript: None,
            ks: None,
            reader: None,
            writer: None,
            client_hs_secret: None,
            server_hs_secret: None,
            client_app_secret: None,
            resumption_secret: None,
            psk: None,
            resumed: false,
            tickets_due: 0,
            tickets_sent: 0,
            job: None,
            job_out: false,
            pending_hello: None,
            fetched: None,
            fetch_index: 0,
            psk_index: 0,
            ticket_age: None,
            suite: None,
            group: None,
            scheme: None,
            sni: None,
            alpn: None,
            session_id: Vec::new(),
            server_random: [0; 32],
            first_hello: None,
            ccs_sent: false,
            early_skip: 0,
            early_reader: None,
            early_accepted: false,
            early_received: 0,
            early_limit: 0,
            key_updates_in_row: 0,
            close_sent: false,
            close_received: false,
            failed: false,
            error: None,
            retired: false,
        }
    }

    // ---- byte streams -------------------------------------------------

    /// Takes ciphertext from the client's TCP stream into a bounded buffer;
    /// returns how many bytes were taken (call [`process`](Self::process)
    /// and offer the rest again).
    pub fn read_tls(&mut self, data: &[u8]) -> usize {
        if self.failed || self.close_received {
            // Nothing more is read after a fatal error or close_notify
            // (§6.1); the bytes are consumed and dropped.
            return data.len();
        }
        if self.in_off > 0 && self.in_off == self.inbuf.len() {
            self.inbuf.clear();
            self.in_off = 0;
        }
        let held = self.inbuf.len() - self.in_off;
        let n = data.len().min(IN_CAP.saturating_sub(held));
        if n > 0 && self.inbuf.len() + n > IN_CAP {
            self.inbuf.drain(..self.in_off);
            self.in_off = 0;
        }
        self.inbuf.extend_from_slice(&data[..n]);
        n
    }

    /// TLS bytes waiting to be sent to the client.
    pub fn tls_output(&self) -> &[u8] {
        self.out.get(self.out_off..).unwrap_or(&[])
    }

    /// Marks `n` bytes of [`tls_output`](Self::tls_output) as sent.
    pub fn consume_output(&mut self, n: usize) {
        self.out_off = (self.out_off + n).min(self.out.len());
        if self.out_off == self.out.len() {
            self.out.clear();
            self.out_off = 0;
        } else if self.out_off >= 32 * 1024 {
            self.out.drain(..self.out_off);
            self.out_off = 0;
        }
    }

    /// Gives the memory of empty buffers back (call when the connection
    /// goes idle; DESIGN.md "Buffers and copies").
    pub fn release_buffers(&mut self) {
        if self.in_off == self.inbuf.len() {
            self.inbuf = Vec::new();
            self.in_off = 0;
        }
        if self.hs_buf.is_empty() {
            self.hs_buf = Vec::new();
        }
        if self.plaintext_len() == 0 {
            self.plain_in = Vec::new();
            self.plain_off = 0;
        }
        if !self.wants_write() {
            self.out = Vec::new();
            self.out_off = 0;
        }
    }

    pub fn wants_write(&self) -> bool {
        self.out_off < self.out.len()
    }

    /// Client application data available to read.
    pub fn plaintext_len(&self) -> usize {
        self.plain_in.len() - self.plain_off
    }

    /// Client application data in place (no copy); pair with
    /// [`consume_plaintext`](Self::consume_plaintext).
    pub fn peek_plaintext(&self) -> &[u8] {
        self.plain_in.get(self.plain_off..).unwrap_or(&[])
    }

    /// Marks `n` bytes of [`peek_plaintext`](Self::peek_plaintext) as read.
    pub fn consume_plaintext(&mut self, n: usize) {
        self.plain_off = (self.plain_off + n).min(self.plain_in.len());
        if self.plain_off == self.plain_in.len() {
            self.plain_in.clear();
            self.plain_off = 0;
        }
    }

    /// Copies client application data out; returns the byte count. When
    /// the buffer was full, records were held back: call
    /// [`process`](Self::process) again afterwards.
    pub fn read_plaintext(&mut self, out: &mut [u8]) -> usize {
        let avail = self.plain_in.get(self.plain_off..).unwrap_or(&[]);
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.plain_off += n;
        if self.plain_off == self.plain_in.len() {
            self.plain_in.clear();
            self.plain_off = 0;
        }
        n
    }

    /// Seals application data into records of at most 2^14 bytes (§5.1),
    /// bounded by `max_plaintext_buffer` of pending output. Returns how many
    /// bytes were taken: 0 while handshaking, after close_notify was sent or
    /// once the connection failed.
    pub fn write_plaintext(&mut self, data: &[u8]) -> usize {
        if self.phase != Phase::Connected || self.close_sent || self.failed {
            return 0;
        }
        let mut taken = 0;
        while taken < data.len() {
            let pending = self.out.len() - self.out_off;
            let room = self.cfg.max_plaintext_buffer.saturating_sub(pending);
            let chunk = (data.len() - taken).min(MAX_PLAINTEXT);
            let chunk = if sealed_len(chunk) <= room {
                chunk
            } else {
                // A partial record only if it is worth it.
                let fit = room.saturating_sub(sealed_len(0));
                if fit < 1024.min(data.len() - taken) {
                    break;
                }
                fit
            };
            if let Err(e) = self.maybe_rekey_writer() {
                self.fail(e);
                break;
            }
            let Some(w) = self.writer.as_mut() else { break };
            if let Err(e) = w.seal_record(content::APPLICATION_DATA, &data[taken..taken + chunk], &mut self.out) {
                self.fail(e);
                break;
            }
            taken += chunk;
        }
        taken
    }

    /// §5.5: before the write key wears out, update it ourselves.
    fn maybe_rekey_writer(&mut self) -> Result<(), TlsError> {
        if self.writer.as_ref().is_some_and(|w| w.needs_key_update()) {
            self.send_key_update(false)?;
        }
        Ok(())
    }

    /// Sends KeyUpdate under the current write key, then switches it (§4.6.3).
    fn send_key_update(&mut self, request: bool) -> Result<(), TlsError> {
        let msg = messages::key_update(request);
        let w = self.writer.as_mut().ok_or(TlsError::Internal("no write key"))?;
        w.seal_record(content::HANDSHAKE, &msg, &mut self.out)?;
        w.update_traffic_secret();
        Ok(())
    }

    /// Queues close_notify (§6.1). Nothing more is written afterwards; the
    /// caller sends the TCP FIN once [`tls_output`](Self::tls_output) is
    /// drained (case T7).
    pub fn send_close_notify(&mut self) {
        if self.close_sent || self.failed {
            return;
        }
        self.close_sent = true;
        self.queue_alert(1, AlertDescription::CloseNotify as u8);
    }

    fn queue_alert(&mut self, level: u8, desc: u8) {
        let body = [level, desc];
        match self.writer.as_mut() {
            Some(w) => {
                // If even this fails the connection is dead anyway.
                let _ = w.seal_record(content::ALERT, &body, &mut self.out);
            }
            None => push_plain_records(&mut self.out, content::ALERT, &body),
        }
    }

    /// Marks the connection failed and queues the fatal alert for `e`
    /// (none when the peer's alert caused it).
    fn fail(&mut self, e: TlsError) {
        if self.failed {
            return;
        }
        self.failed = true;
        if !matches!(e, TlsError::PeerAlert(_)) && !self.close_sent {
            self.queue_alert(2, e.alert() as u8);
        }
        self.error = Some(e);
        // Secrets are no longer needed.
        self.client_hs_secret = None;
        self.server_hs_secret = None;
        self.client_app_secret = None;
        self.resumption_secret = None;
        self.psk = None;
        self.ks = None;
        self.job = None;
        self.early_reader = None;
    }

    /// The TCP flow under this connection can carry nothing more (both
    /// FINs are through and the flow waits out TIME_WAIT, RFC 9293 §3.6):
    /// drops every key, secret and buffer now instead of when the flow is
    /// finally removed. Afterwards nothing is read (as after close_notify,
    /// §6.1) or written. Call only with [`tls_output`](Self::tls_output)
    /// drained; calling it again does nothing.
    pub fn retire(&mut self) {
        self.close_sent = true;
        self.close_received = true;
        self.reader = None;
        self.writer = None;
        self.early_reader = None;
        self.transcript = None;
        self.ks = None;
        self.client_hs_secret = None;
        self.server_hs_secret = None;
        self.client_app_secret = None;
        self.resumption_secret = None;
        self.psk = None;
        self.pending_hello = None;
        self.fetched = None;
        self.first_hello = None;
        self.inbuf = Vec::new();
        self.in_off = 0;
        self.hs_buf = Vec::new();
        self.plain_in = Vec::new();
        self.plain_off = 0;
        self.out = Vec::new();
        self.out_off = 0;
        self.session_id = Vec::new();
        self.retired = true;
    }

    /// [`retire`](Self::retire) ran on this instance.
    pub fn is_retired(&self) -> bool {
        self.retired
    }

    // ---- state queries -------------------------------------------------

    pub fn is_handshaking(&self) -> bool {
        self.phase != Phase::Connected
    }
    pub fn received_close_notify(&self) -> bool {
        self.close_received
    }
    pub fn is_failed(&self) -> bool {
        self.failed
    }
    pub fn sni(&self) -> Option<&str> {
        self.sni.as_deref()
    }
    pub fn alpn(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }
    pub fn suite(&self) -> Option<CipherSuite> {
        self.suite
    }
    pub fn group(&self) -> Option<NamedGroup> {
        self.group
    }
    pub fn signature_scheme(&self) -> Option<SignatureScheme> {
        self.scheme
    }
    /// The handshake resumed a session from a ticket (§2.2).
    pub fn is_resumed(&self) -> bool {
        self.resumed
    }
    /// The server accepted the client's 0-RTT data (§4.2.10).
    pub fn is_early_data_accepted(&self) -> bool {
        self.early_accepted
    }
    /// How many bytes at the start of the plaintext stream arrived as
    /// 0-RTT early data: the first `early_data_len()` bytes ever read
    /// through [`read_plaintext`](Self::read_plaintext) /
    /// [`peek_plaintext`](Self::peek_plaintext) are early (replayable by
    /// nature, RFC 8446 §8; the backend must be told). Grows only until
    /// EndOfEarlyData.
    pub fn early_data_len(&self) -> usize {
        self.early_received as usize
    }
    /// What the age of the ticket offered (and taken) allowed: `Fresh`,
    /// `Skewed` or `Unknown` when it resumed (0-RTT only with `Fresh`),
    /// `Expired` when it was too old to resume (RFC 8446 §4.2.11.1, §8.3).
    /// None when no ticket was taken.
    pub fn ticket_age(&self) -> Option<TicketAge> {
        self.ticket_age
    }
    /// The selected_identity sent in our ServerHello (§4.2.11), when
    /// resumed.
    pub fn selected_identity(&self) -> Option<u16> {
        self.resumed.then_some(self.psk_index)
    }
    /// NewSessionTickets sent on this connection.
    pub fn tickets_sent(&self) -> u32 {
        self.tickets_sent
    }
    /// The error that failed the connection, if any.
    pub fn error(&self) -> Option<&TlsError> {
        self.error.as_ref()
    }

    // ---- jobs ------------------------------------------------------------

    /// The pending expensive step, handed out once. After
    /// [`complete_job`](Self::complete_job), call [`process`](Self::process)
    /// again to continue with buffered records.
    pub fn take_job(&mut self) -> Option<CryptoJob> {
        if self.failed || self.job_out {
            return None;
        }
        let spec = self.job.clone()?;
        self.job_out = true;
        Some(CryptoJob { spec, cfg: self.cfg.clone() })
    }

    pub fn complete_job(&mut self, result: JobResult) -> Result<(), TlsError> {
        if self.failed {
            return Err(self.error.clone().unwrap_or(TlsError::Internal("connection failed")));
        }
        let Some(spec) = self.job.take() else {
            return Err(TlsError::Internal("no job pending"));
        };
        self.job_out = false;
        let r = match (spec, result) {
            (_, JobResult::Failed(e)) => Err(e),
            (JobSpec::KeyExchange { group, .. }, JobResult::KeyExchange { group: g, public, shared }) if g == group => {
                self.on_key_exchange(&public, &shared)
            }
            (JobSpec::Sign { scheme, .. }, JobResult::Signature { scheme: s, sig }) if s == scheme => {
                self.on_signature(&sig)
            }
            (JobSpec::FetchSession { .. }, JobResult::Session(found)) => {
                // The ClientHello is handled again on the next `process`.
                self.fetched = Some(found);
                Ok(())
            }
            _ => Err(TlsError::Internal("job result does not match the pending job")),
        };
        if let Err(e) = &r {
            self.fail(e.clone());
        }
        r
    }

    // ---- the record layer (§5) ---------------------------------------

    /// Turns buffered client bytes into records and messages and advances
    /// the handshake. Stops while a job is pending and while the plaintext
    /// buffer is full. On a fatal error the alert is already queued in the
    /// output and the connection is failed.
    ///
    /// Without a ticket store: no resumption, no tickets (see
    /// [`process_with`](Self::process_with)).
    pub fn process(&mut self, rng: &mut dyn Entropy) -> Result<(), TlsError> {
        self.process_inner(rng, None)
    }

    /// [`process`](Self::process) with resumption: a ClientHello offering
    /// a ticket takes its session from `store` (§4.2.11), and once the
    /// handshake is done `tickets_per_handshake` NewSessionTickets are put
    /// into `store` and sent (§4.6.1).
    pub fn process_with(&mut self, rng: &mut dyn Entropy, store: &mut dyn TicketStore) -> Result<(), TlsError> {
        self.process_inner(rng, Some(store))
    }

    fn process_inner(&mut self, rng: &mut dyn Entropy, mut store: Option<&mut (dyn TicketStore + '_)>) -> Result<(), TlsError> {
        if self.failed {
            return Err(self.error.clone().unwrap_or(TlsError::Internal("connection failed")));
        }
        let mut r = self.process_records(rng, store.as_deref_mut());
        if r.is_ok() {
            if let Some(st) = store {
                r = self.issue_tickets(rng, st);
            }
        }
        if self.in_off == self.inbuf.len() {
            self.inbuf.clear();
            self.in_off = 0;
        }
        if let Err(e) = &r {
            self.fail(e.clone());
        }
        r
    }

    fn process_records(&mut self, rng: &mut dyn Entropy, mut store: Option<&mut (dyn TicketStore + '_)>) -> Result<(), TlsError> {
        if self.job.is_none() {
            if let Some(hello) = self.pending_hello.take() {
                // The repository answered (in `fetched`): the ClientHello
                // again, from the start; nothing of it was applied before.
                self.on_message(&hello, rng, store.as_deref_mut())?;
            }
        }
        loop {
            if self.close_received || self.job.is_some() || self.plaintext_len() >= self.cfg.max_plaintext_buffer {
                return Ok(());
            }
            let avail = self.inbuf.get(self.in_off..).unwrap_or(&[]);
            if avail.len() < RECORD_HEADER_LEN {
                return Ok(());
            }
            let typ = avail[0];
            let len = u16::from_be_bytes([avail[3], avail[4]]) as usize;
            let protected =
                (self.reader.is_some() || self.early_reader.is_some()) && typ == content::APPLICATION_DATA;
            // §5.1 / §5.2 length limits, checked before buffering the body.
            if len > MAX_CIPHERTEXT || (!protected && len > MAX_PLAINTEXT) {
                return Err(TlsError::RecordOverflow);
            }
            if avail.len() < RECORD_HEADER_LEN + len {
                if !matches!(typ, 20..=23) {
                    // Not TLS at all (e.g. an HTTP request): fail early.
                    return Err(TlsError::UnexpectedMessage("unknown record content type"));
                }
                return Ok(());
            }
            let start = self.in_off;
            let end = start + RECORD_HEADER_LEN + len;
            self.in_off = end;
            let inner = self.open(typ, start, end)?;
            match inner {
                Inner::Ccs => {}
                Inner::Handshake(a, b) => {
                    if a == b {
                        // Case T3: zero-length handshake fragments are forbidden (§5.1).
                        return Err(TlsError::UnexpectedMessage("empty handshake record"));
                    }
                    let frag = self.inbuf.get(a..b).unwrap_or(&[]);
                    self.hs_buf.extend_from_slice(frag);
                    self.handle_handshake_buffer(rng, store.as_deref_mut())?;
                }
                Inner::Alert(a, b) => {
                    if !self.hs_buf.is_empty() {
                        return Err(TlsError::UnexpectedMessage("alert inside a handshake message"));
                    }
                    let body = [self.inbuf.get(a).copied(), self.inbuf.get(a + 1).copied()];
                    self.on_alert(b - a, body)?;
                }
                Inner::EarlyData(a, b) => {
                    if !self.hs_buf.is_empty() {
                        return Err(TlsError::UnexpectedMessage("early data inside a handshake message"));
                    }
                    // §4.2.10: more than max_early_data_size is
                    // unexpected_message.
                    let n = u32::try_from(b - a).unwrap_or(u32::MAX);
                    match self.early_received.checked_add(n) {
                        Some(total) if total <= self.early_limit => self.early_received = total,
                        _ => return Err(TlsError::UnexpectedMessage("more early data than max_early_data_size")),
                    }
                    if a < b {
                        let data = self.inbuf.get(a..b).unwrap_or(&[]);
                        self.plain_in.extend_from_slice(data);
                    }
                }
                Inner::AppData(a, b) => {
                    if self.phase != Phase::Connected {
                        // Application data (not early) only after Finished.
                        return Err(TlsError::UnexpectedMessage("application data during handshake"));
                    }
                    if !self.hs_buf.is_empty() {
                        return Err(TlsError::UnexpectedMessage("application data inside a handshake message"));
                    }
                    // Case T3: zero-length application data is allowed and ignored.
                    if a < b {
                        let data = self.inbuf.get(a..b).unwrap_or(&[]);
                        self.plain_in.extend_from_slice(data);
                        self.key_updates_in_row = 0;
                    }
                }
            }
        }
    }

    /// Deprotects the record at `inbuf[start..end]` if it is protected and
    /// classifies its content, returned as a range of `inbuf`.
    fn open(&mut self, typ: u8, start: usize, end: usize) -> Result<Inner, TlsError> {
        let body = start + RECORD_HEADER_LEN;
        if typ == content::APPLICATION_DATA {
            if let Some(rd) = self.early_reader.as_mut() {
                // Accepted 0-RTT: everything until EndOfEarlyData is under
                // the early key; a record that does not open is fatal
                // (§5.2).
                let rec = self.inbuf.get_mut(start..end).ok_or(TlsError::Internal("record bounds"))?;
                let (inner_type, data) = rd.open_record(rec)?;
                let (a, b) = (body, body + data.len());
                return match inner_type {
                    content::HANDSHAKE => Ok(Inner::Handshake(a, b)),
                    content::ALERT => Ok(Inner::Alert(a, b)),
                    content::APPLICATION_DATA => Ok(Inner::EarlyData(a, b)),
                    _ => Err(TlsError::UnexpectedMessage("bad inner content type")),
                };
            }
        }
        match (typ, self.reader.as_mut()) {
            (content::APPLICATION_DATA, Some(rd)) => {
                let rec = self.inbuf.get_mut(start..end).ok_or(TlsError::Internal("record bounds"))?;
                let skipping = self.phase == Phase::ExpectFinished && self.early_skip > 0;
                let (inner_type, data) = match rd.open_record(rec) {
                    Ok(x) => x,
                    Err(TlsError::BadRecordMac) if skipping => {
                        let n = (end - body) as u32;
                        if n > self.early_skip {
                            return Err(TlsError::BadRecordMac);
                        }
                        self.early_skip -= n;
                        return Ok(Inner::Ccs);
                    }
                    Err(e) => return Err(e),
                };
                if skipping {
                    // The first record that opens under the handshake key
                    // ends the early data.
                    self.early_skip = 0;
                }
                let n = data.len();
                let (a, b) = (body, body + n);
                match inner_type {
                    content::HANDSHAKE => Ok(Inner::Handshake(a, b)),
                    content::ALERT => Ok(Inner::Alert(a, b)),
                    content::APPLICATION_DATA => Ok(Inner::AppData(a, b)),
                    // §5: a protected change_cipher_spec is unexpected_message.
                    _ => Err(TlsError::UnexpectedMessage("bad inner content type")),
                }
            }
            (content::APPLICATION_DATA, None) => {
                // §4.2.10: after a HelloRetryRequest the early data of the
                // first flight is skipped (it cannot be opened at all).
                if self.phase == Phase::ExpectSecondClientHello && self.early_skip > 0 && self.hs_buf.is_empty() {
                    let n = (end - body) as u32;
                    if n > self.early_skip {
                        return Err(TlsError::UnexpectedMessage("too much rejected early data"));
                    }
                    self.early_skip -= n;
                    return Ok(Inner::Ccs);
                }
                Err(TlsError::UnexpectedMessage("application data before handshake keys"))
            }
            (content::CHANGE_CIPHER_SPEC, _) => {
                // §5 and §D.4: one byte 0x01, plaintext, after the first
                // ClientHello and before the client's Finished.
                let ok_phase = matches!(self.phase, Phase::ExpectSecondClientHello | Phase::ExpectFinished);
                if !ok_phase || !self.hs_buf.is_empty() {
                    return Err(TlsError::UnexpectedMessage("change_cipher_spec"));
                }
                if self.inbuf.get(body..end) != Some(&[1u8][..]) {
                    return Err(TlsError::UnexpectedMessage("change_cipher_spec value"));
                }
                Ok(Inner::Ccs)
            }
            (content::HANDSHAKE, None) => Ok(Inner::Handshake(body, end)),
            (content::HANDSHAKE, Some(_)) => Err(TlsError::UnexpectedMessage("plaintext handshake after keys")),
            (content::ALERT, rd) => {
                // A client that could not process our ServerHello alerts in
                // plaintext; afterwards alerts must be protected.
                if rd.is_some() && self.phase == Phase::Connected {
                    return Err(TlsError::UnexpectedMessage("plaintext alert after handshake"));
                }
                Ok(Inner::Alert(body, end))
            }
            _ => Err(TlsError::UnexpectedMessage("unknown record content type")),
        }
    }

    /// §6: close_notify ends reading; user_canceled is a warning; every
    /// other alert is fatal.
    fn on_alert(&mut self, len: usize, body: [Option<u8>; 2]) -> Result<(), TlsError> {
        if len == 0 {
            // Case T3.
            return Err(TlsError::UnexpectedMessage("empty alert record"));
        }
        if len != 2 {
            return Err(TlsError::Decode("alert length"));
        }
        let desc = body[1].unwrap_or(0xff);
        match AlertDescription::from_u8(desc) {
            Some(AlertDescription::CloseNotify) => {
                self.close_received = true;
                Ok(())
            }
            Some(AlertDescription::UserCanceled) => Ok(()),
            Some(a) => Err(TlsError::PeerAlert(a)),
            None => Err(TlsError::PeerAlert(AlertDescription::DecodeError)),
        }
    }

    /// Takes every complete handshake message out of the reassembly buffer.
    fn handle_handshake_buffer(&mut self, rng: &mut dyn Entropy, mut store: Option<&mut (dyn TicketStore + '_)>) -> Result<(), TlsError> {
        while self.hs_buf.len() >= 4 {
            let len = u32::from_be_bytes([0, self.hs_buf[1], self.hs_buf[2], self.hs_buf[3]]) as usize;
            if len > self.cfg.max_handshake_message {
                return Err(TlsError::Decode("handshake message too large"));
            }
            if self.hs_buf.len() < 4 + len {
                return Ok(());
            }
            let msg: Vec<u8> = self.hs_buf.drain(..4 + len).collect();
            self.on_message(&msg, rng, store.as_deref_mut())?;
            if self.job.is_some() && !self.hs_buf.is_empty() {
                // The next client message comes under new keys; nothing may
                // be left of this flight (§5.1).
                return Err(TlsError::UnexpectedMessage("data after ClientHello"));
            }
        }
        Ok(())
    }

    fn on_message(&mut self, msg: &[u8], rng: &mut dyn Entropy, store: Option<&mut (dyn TicketStore + '_)>) -> Result<(), TlsError> {
        let typ = msg[0];
        match (self.phase, typ) {
            (Phase::ExpectClientHello | Phase::ExpectSecondClientHello, hs_type::CLIENT_HELLO) => {
                self.on_client_hello(msg, rng, store)
            }
            // §4.5: under the early key only EndOfEarlyData may come.
            (Phase::ExpectFinished, hs_type::END_OF_EARLY_DATA) if self.early_reader.is_some() => {
                self.on_end_of_early_data(msg)
            }
            (Phase::ExpectFinished, _) if self.early_reader.is_some() => {
                Err(TlsError::UnexpectedMessage("handshake message under the early data key"))
            }
            (Phase::ExpectFinished, hs_type::FINISHED) => self.on_finished(msg),
            (Phase::Connected, hs_type::KEY_UPDATE) => self.on_key_update(msg),
            // A client never sends NewSessionTicket; nor anything else we
            // did not ask for (§4.6).
            _ => Err(TlsError::UnexpectedMessage("handshake message not allowed here")),
        }
    }

    // ---- the handshake (§4) --------------------------------------------

    fn on_client_hello(
        &mut self,
        msg: &[u8],
        rng: &mut dyn Entropy,
        store: Option<&mut (dyn TicketStore + '_)>,
    ) -> Result<(), TlsError> {
        let ch = ClientHello::parse(msg.get(4..).unwrap_or(&[]))?;
        let retry = self.phase == Phase::ExpectSecondClientHello;
        // §4.2.1: without supported_versions listing 0x0304 this is not a
        // TLS 1.3 client.
        match &ch.versions {
            Some(v) if v.contains(&messages::TLS13) => {}
            _ => return Err(TlsError::ProtocolVersion),
        }
        let suite = self
            .cfg
            .suites
            .iter()
            .copied()
            .find(|s| ch.suites.contains(&s.id()))
            .ok_or(TlsError::HandshakeFailure("no cipher suite in common"))?;
        // §9.2: (EC)DHE needs supported_groups and key_share (psk_dhe_ke
        // too); certificate authentication needs signature_algorithms,
        // checked below once we know whether a PSK is used instead.
        let groups = ch.groups.as_ref().ok_or(TlsError::MissingExtension("supported_groups"))?;
        let shares = ch.key_shares.as_ref().ok_or(TlsError::MissingExtension("key_share"))?;
        // §4.2.8: every share must be for an offered group.
        if shares.iter().any(|(g, _)| !groups.contains(g)) {
            return Err(TlsError::IllegalParameter("key_share for a group not in supported_groups"));
        }
        // Our preference order, but a group the client already sent a share
        // for wins (saves a round trip); unknown/GREASE ids are skipped (T6).
        let with_share = self.cfg.groups.iter().copied().find(|g| shares.iter().any(|(sg, _)| *sg == g.id()));
        let alpn = self.select_alpn(&ch)?;

        if retry {
            let first = self.first_hello.as_ref().ok_or(TlsError::Internal("retry without first hello"))?;
            if Some(suite) != self.suite
                || ch.session_id != self.session_id
                || ch.suites != first.suites
                || ch.sni != first.sni
                || ch.alpn != first.alpn
                || ch.versions != first.versions
                || ch.early_data
            {
                return Err(TlsError::IllegalParameter("second ClientHello differs from the first"));
            }
            // §4.2.8: exactly one share, for the group we asked for.
            let g = self.group.ok_or(TlsError::Internal("retry without group"))?;
            if shares.len() != 1 || with_share != Some(g) {
                return Err(TlsError::IllegalParameter("second ClientHello without the requested key share"));
            }
        }

        let Some(group) = with_share else {
            // No usable share: HelloRetryRequest for a group both support
            // (§4.1.4), but only once. A PSK offered in this first
            // ClientHello is not touched: the client offers it again, with
            // a binder over the new transcript, in the second one.
            if retry {
                return Err(TlsError::IllegalParameter("second ClientHello without the requested key share"));
            }
            let group = self
                .cfg
                .groups
                .iter()
                .copied()
                .find(|g| groups.contains(&g.id()))
                .ok_or(TlsError::HandshakeFailure("no key exchange group in common"))?;
            return self.send_hello_retry(ch, msg, suite, group);
        };
        let peer = shares.iter().find(|(g, _)| *g == group.id()).map(|(_, k)| k.clone()).unwrap_or_default();
        if peer.len() != group.share_len() {
            return Err(TlsError::IllegalParameter("key share length"));
        }

        // Resumption (§4.2.11) after every other check that could still
        // fail, so a ticket is only taken from a ClientHello we answer.
        let fetched = self.fetched.take().map(|f| (usize::from(self.fetch_index), f));
        let (resumed, age) = match store {
            Some(st) => match self.try_resume(&ch, msg, suite, retry, st, fetched)? {
                Resume::Decided(r, age) => (r, age),
                Resume::Fetch(index, id) => {
                    // Not on this host: ask the fleet repository (a job,
                    // so the worker never waits for it) and handle this
                    // ClientHello again with the answer. Nothing of it has
                    // been applied yet.
                    self.pending_hello = Some(msg.to_vec());
                    self.fetch_index = index;
                    self.job = Some(JobSpec::FetchSession { id });
                    self.job_out = false;
                    return Ok(());
                }
            },
            None => (None, None),
        };
        self.fetch_index = 0;
        // §4.2.10: accept 0-RTT only when it is on, this ClientHello just
        // took its ticket (single use across all workers sharing the store:
        // the replay protection, §8.1), the ticket allowed early data, it
        // is the first identity offered (§4.2.10: the early data is under
        // the first PSK), its age agrees with the client's (§8.3), and the
        // suite and ALPN are the session's; never after a retry.
        let early_limit = match &resumed {
            Some(r)
                if ch.early_data
                    && !retry
                    && self.cfg.max_early_data > 0
                    && r.sess.max_early_data > 0
                    && r.index == 0
                    && r.age == TicketAge::Fresh
                    && r.suite == r.sess.suite
                    && alpn == r.sess.alpn =>
            {
                Some(r.sess.max_early_data)
            }
            _ => None,
        };
        self.ticket_age = resumed.as_ref().map(|r| r.age).or(age);
        self.psk_index = resumed.as_ref().map_or(0, |r| r.index);
        let (suite, scheme, psk) = match resumed {
            Some(r) => (r.suite, None, Some(r.sess.psk.clone())),
            None => {
                let sig_algs = ch.sig_algs.as_ref().ok_or(TlsError::MissingExtension("signature_algorithms"))?;
                let scheme = self
                    .cfg
                    .key
                    .choose_scheme(sig_algs)
                    .ok_or(TlsError::HandshakeFailure("no signature scheme in common"))?;
                (suite, Some(scheme), None)
            }
        };

        if !retry {
            self.transcript = Some(Transcript::new(suite.hash()));
        }
        let t = self.transcript.as_mut().ok_or(TlsError::Internal("no transcript"))?;
        t.update(msg);
        let ch_hash = t.current_hash();
        self.suite = Some(suite);
        self.group = Some(group);
        self.scheme = scheme;
        self.resumed = psk.is_some();
        self.psk = psk;
        self.sni = ch.sni.clone();
        self.alpn = alpn;
        self.session_id = ch.session_id.clone();
        self.first_hello = None;
        rng.fill(&mut self.server_random);
        self.early_skip = 0;
        if let (Some(limit), Some(p)) = (early_limit, self.psk.as_ref()) {
            // §7.1: client_early_traffic_secret over the ClientHello.
            let early = KeySchedule::new(suite.hash(), Some(p.as_bytes()));
            let cets = early.client_early_traffic_secret(&ch_hash);
            self.early_reader = Some(RecordProtector::new(suite, cets.as_bytes()));
            self.early_accepted = true;
            self.early_limit = limit;
        } else if ch.early_data && !retry {
            // §4.2.10: rejected (no early_data in our EncryptedExtensions);
            // what the client sends under its early key is skipped by
            // trial decryption, up to a bound, and never delivered.
            self.early_skip = MAX_SKIPPED_EARLY_DATA;
        }
        self.job = Some(JobSpec::KeyExchange { group, peer });
        self.job_out = false;
        self.phase = Phase::KeyExchange;
        Ok(())
    }

    /// The offered PSK identities (§4.2.11), in the client's order and at
    /// most [`resume::MAX_PSK_IDENTITIES`] of them, each taken from `store`
    /// in turn until one names a session that fits this ClientHello: the
    /// suite to use, the session, its index (selected_identity) and its age
    /// verdict. Only that identity's binder is verified; if it fails the
    /// session is put back and the handshake aborts with decrypt_error
    /// (§4.2.11), so an unusable ClientHello never burns a ticket, and no
    /// further identity is taken. A session that does not fit is put back
    /// before the next identity is taken; one too old (§4.6.1) or
    /// unreadable is dropped. `Decided(None, _)` means a full handshake.
    ///
    /// `fetched`: the fleet repository's answer for the identity with that
    /// index; the identities before it were already looked at.
    fn try_resume(
        &self,
        ch: &ClientHello,
        msg: &[u8],
        suite: CipherSuite,
        retry: bool,
        store: &mut dyn TicketStore,
        fetched: Option<(usize, Option<Zeroizing<Vec<u8>>>)>,
    ) -> Result<Resume, TlsError> {
        let Some(offer) = ch.psk.as_ref() else { return Ok(Resume::Decided(None, None)) };
        // §4.2.9: we only do psk_dhe_ke; psk_ke alone gets a full handshake.
        if !ch.psk_modes.as_ref().is_some_and(|m| m.contains(&resume::PSK_DHE_KE)) {
            return Ok(Resume::Decided(None, None));
        }
        // §4.2.11.2: every binder is over Transcript-Hash(Truncate(
        // ClientHello)) — the same truncation (the whole binders list) for
        // every identity — preceded by message_hash(ClientHello1) and the
        // HelloRetryRequest after a retry.
        let truncated = msg.get(..offer.binders_offset).ok_or(TlsError::Internal("binders offset"))?;
        if retry && self.transcript.is_none() {
            return Err(TlsError::Internal("retry without transcript"));
        }
        let (first, mut fetched) = match fetched {
            Some((i, f)) => (i, Some(f)),
            None => (0, None),
        };
        let now = store.clock();
        let mut too_old = None;
        // The parser checked there is one binder per identity (§4.2.11).
        let offered = offer.identities.iter().zip(&offer.binders).enumerate();
        for (i, ((id, obfuscated_age), binder)) in offered.take(resume::MAX_PSK_IDENTITIES).skip(first) {
            let raw = match fetched.take() {
                // The repository's answer for this very identity.
                Some(Some(raw)) => raw,
                Some(None) => continue,
                None => match store.take(id) {
                    Some(raw) => raw,
                    // `i` < MAX_PSK_IDENTITIES fits a u8.
                    None if store.remote() => return Ok(Resume::Fetch(i as u8, id.clone())),
                    None => continue,
                },
            };
            // A record we cannot read is dropped: it could never be used.
            let Ok(sess) = Session::decode(&raw) else { continue };
            let h = sess.suite.hash();
            // §4.2.11 / §4.6.1: only a suite with the ticket's hash. After a
            // HelloRetryRequest the suite is already fixed (§4.1.4).
            let chosen = if retry {
                Some(suite).filter(|s| s.hash() == h)
            } else {
                self.cfg.suites.iter().copied().find(|s| s.hash() == h && ch.suites.contains(&s.id()))
            };
            // §4.6.1 (and RFC 6066 §3): the session is for the name it was
            // made for.
            let Some(chosen) = chosen.filter(|_| sess.sni == ch.sni) else {
                store.put_back(id, &raw);
                continue;
            };
            // §4.6.1: no ticket is used past its lifetime (at most 7 days);
            // it is dropped, as the store would drop it.
            let age = sess.judge_age(*obfuscated_age, now, self.cfg.early_data_age_window_ms);
            if age == TicketAge::Expired {
                too_old = Some(age);
                continue;
            }
            let th = match self.transcript.as_ref() {
                Some(t) if retry => t.hash_with(truncated),
                _ => h.digest(truncated),
            };
            if !resume::verify_binder(h, sess.psk.as_bytes(), &th, binder) {
                store.put_back(id, &raw);
                return Err(TlsError::DecryptError("psk binder"));
            }
            // `i` < MAX_PSK_IDENTITIES fits a u16.
            return Ok(Resume::Decided(Some(Resumed { suite: chosen, sess, index: i as u16, age }), None));
        }
        Ok(Resume::Decided(None, too_old))
    }

    /// Sends the due NewSessionTickets (§4.6.1): for each, a random ticket
    /// identity, a fresh ticket_nonce (our count), the per-ticket PSK
    /// derived from the resumption master secret, stored in `store`; a
    /// ticket the store refused is not sent. The resumption master secret
    /// is dropped once all are sent.
    fn issue_tickets(&mut self, rng: &mut dyn Entropy, store: &mut dyn TicketStore) -> Result<(), TlsError> {
        if self.tickets_due == 0 || self.phase != Phase::Connected || self.close_sent || self.failed {
            return Ok(());
        }
        let suite = self.suite.ok_or(TlsError::Internal("no suite"))?;
        let h = suite.hash();
        let lifetime = self.cfg.ticket_lifetime_s.min(resume::MAX_TICKET_LIFETIME);
        while self.tickets_due > 0 {
            self.tickets_due -= 1;
            if lifetime == 0 {
                continue;
            }
            let rms = self.resumption_secret.as_ref().ok_or(TlsError::Internal("no resumption secret"))?;
            let nonce = self.tickets_sent.to_be_bytes();
            let psk = resumption_psk(h, rms.as_bytes(), &nonce);
            let mut id = [0u8; resume::TICKET_ID_LEN];
            rng.fill(&mut id);
            let age_add = rng.u32();
            let sess = Session {
                suite,
                psk,
                age_add,
                lifetime_s: lifetime,
                sni: self.sni.clone(),
                alpn: self.alpn.clone(),
                max_early_data: self.cfg.max_early_data,
                // §4.2.11.1: what the ticket's age is measured from.
                issued_at: store.clock(),
            };
            // A refused ticket is dropped unsent, so its nonce (and PSK) was
            // never given out and the next ticket may use it.
            if !store.put(&id, &sess.encode(), lifetime) {
                continue;
            }
            let nst = messages::new_session_ticket(lifetime, age_add, &nonce, &id, sess.max_early_data);
            self.seal_handshake(&nst)?;
            self.tickets_sent += 1;
        }
        self.resumption_secret = None;
        Ok(())
    }

    /// RFC 7301 §3.2: our first protocol the client offers; none in common
    /// while both sides use ALPN is no_application_protocol.
    fn select_alpn(&self, ch: &ClientHello) -> Result<Option<Vec<u8>>, TlsError> {
        match &ch.alpn {
            Some(offered) if !self.cfg.alpn.is_empty() => {
                self.cfg.alpn.iter().find(|p| offered.contains(p)).cloned().map(Some).ok_or(TlsError::NoApplicationProtocol)
            }
            _ => Ok(None),
        }
    }

    fn send_hello_retry(
        &mut self,
        ch: ClientHello,
        msg: &[u8],
        suite: CipherSuite,
        group: NamedGroup,
    ) -> Result<(), TlsError> {
        // §4.4.1: the transcript restarts with message_hash(ClientHello1).
        let mut t = Transcript::new(suite.hash());
        t.update(msg);
        t.replace_with_message_hash();
        let hrr = messages::hello_retry_request(&ch.session_id, suite.id(), group.id());
        t.update(&hrr);
        self.transcript = Some(t);
        push_plain_records(&mut self.out, content::HANDSHAKE, &hrr);
        self.send_dummy_ccs(&ch.session_id);
        self.suite = Some(suite);
        self.group = Some(group);
        self.session_id = ch.session_id;
        // §4.2.10: early data sent with the first ClientHello is skipped.
        self.early_skip = if ch.early_data { MAX_SKIPPED_EARLY_DATA } else { 0 };
        self.first_hello = Some(FirstHello { suites: ch.suites, sni: ch.sni, alpn: ch.alpn, versions: ch.versions });
        self.phase = Phase::ExpectSecondClientHello;
        Ok(())
    }

    /// §D.4: a dummy change_cipher_spec right after our first handshake
    /// message, when the client is in middlebox compatibility mode.
    fn send_dummy_ccs(&mut self, session_id: &[u8]) {
        if !session_id.is_empty() && !self.ccs_sent {
            self.out.extend_from_slice(&[content::CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1]);
            self.ccs_sent = true;
        }
    }

    /// ServerHello, handshake keys, EncryptedExtensions and Certificate;
    /// then the signature job (§4.1.3, §7.1, §4.3.1, §4.4.2).
    fn on_key_exchange(&mut self, public: &[u8], shared: &[u8]) -> Result<(), TlsError> {
        let suite = self.suite.ok_or(TlsError::Internal("no suite"))?;
        let group = self.group.ok_or(TlsError::Internal("no group"))?;
        let h = suite.hash();
        let t = self.transcript.as_mut().ok_or(TlsError::Internal("no transcript"))?;
        // §4.2.11: selected_identity, the index of the identity resumed.
        let psk_identity = self.resumed.then_some(self.psk_index);
        let sh =
            messages::server_hello(&self.server_random, &self.session_id, suite.id(), group.id(), public, psk_identity);
        t.update(&sh);
        push_plain_records(&mut self.out, content::HANDSHAKE, &sh);
        let sid = self.session_id.clone();
        self.send_dummy_ccs(&sid);

        let t = self.transcript.as_mut().ok_or(TlsError::Internal("no transcript"))?;
        // §7.1: the Early Secret from the resumption PSK, or from zeros.
        let psk = self.psk.take();
        if self.resumed && psk.is_none() {
            return Err(TlsError::Internal("resumed without a psk"));
        }
        let mut ks = KeySchedule::new(h, psk.as_ref().map(|p| p.as_bytes()));
        drop(psk);
        ks.input_dhe(shared);
        let th = t.current_hash();
        let chs = ks.client_handshake_traffic_secret(&th);
        let shs = ks.server_handshake_traffic_secret(&th);
        self.reader = Some(RecordProtector::new(suite, chs.as_bytes()));
        self.writer = Some(RecordProtector::new(suite, shs.as_bytes()));
        self.client_hs_secret = Some(chs);
        self.server_hs_secret = Some(shs);
        self.ks = Some(ks);

        // RFC 6066 §3: no server_name acknowledgement when resuming.
        let ee = messages::encrypted_extensions(
            self.alpn.as_deref(),
            self.sni.is_some() && !self.resumed,
            self.early_accepted,
        );
        if self.resumed {
            // §2.2: PSK authentication, no Certificate or CertificateVerify.
            let t = self.transcript.as_mut().ok_or(TlsError::Internal("no transcript"))?;
            t.update(&ee);
            return self.send_server_finished(ee);
        }
        let scheme = self.scheme.ok_or(TlsError::Internal("no scheme"))?;
        let cert = messages::certificate(&self.cfg.cert_chain);
        t.update(&ee);
        t.update(&cert);
        let cv_input = messages::certificate_verify_input(&t.current_hash());
        let mut flight = ee;
        flight.extend_from_slice(&cert);
        self.seal_handshake(&flight)?;
        self.job = Some(JobSpec::Sign { scheme, msg: cv_input });
        self.job_out = false;
        self.phase = Phase::Sign;
        Ok(())
    }

    /// CertificateVerify and Finished, then the application traffic keys
    /// for writing (§4.4.3, §4.4.4, §7.1).
    fn on_signature(&mut self, sig: &[u8]) -> Result<(), TlsError> {
        let scheme = self.scheme.ok_or(TlsError::Internal("no scheme"))?;
        let t = self.transcript.as_mut().ok_or(TlsError::Internal("no transcript"))?;
        let cv = messages::certificate_verify(scheme as u16, sig);
        t.update(&cv);
        self.send_server_finished(cv)
    }

    /// Our Finished after `flight` (already in the transcript), both sealed
    /// under the handshake key; then the application write key (§4.4.4,
    /// §7.1).
    fn send_server_finished(&mut self, flight: Vec<u8>) -> Result<(), TlsError> {
        let suite = self.suite.ok_or(TlsError::Internal("no suite"))?;
        let h = suite.hash();
        let t = self.transcript.as_mut().ok_or(TlsError::Internal("no transcript"))?;
        let shs = self.server_hs_secret.take().ok_or(TlsError::Internal("no server handshake secret"))?;
        let fin = messages::finished(&finished_verify_data(h, shs.as_bytes(), &t.current_hash()));
        t.update(&fin);
        let th = t.current_hash();
        let mut flight = flight;
        flight.extend_from_slice(&fin);
        self.seal_handshake(&flight)?;
        let ks = self.ks.as_mut().ok_or(TlsError::Internal("no key schedule"))?;
        ks.into_master();
        let cats = ks.client_application_traffic_secret_0(&th);
        let sats = ks.server_application_traffic_secret_0(&th);
        self.writer = Some(RecordProtector::new(suite, sats.as_bytes()));
        self.client_app_secret = Some(cats);
        self.phase = Phase::ExpectFinished;
        Ok(())
    }

    /// §4.5: the end of accepted 0-RTT; it goes into the transcript and
    /// the client handshake key takes over (already our `reader`).
    fn on_end_of_early_data(&mut self, msg: &[u8]) -> Result<(), TlsError> {
        if msg.len() != 4 {
            return Err(TlsError::Decode("end_of_early_data length"));
        }
        if !self.hs_buf.is_empty() {
            // §5.1: a key change must be at a record boundary.
            return Err(TlsError::UnexpectedMessage("data after EndOfEarlyData in the same record"));
        }
        let t = self.transcript.as_mut().ok_or(TlsError::Internal("no transcript"))?;
        t.update(msg);
        self.early_reader = None;
        Ok(())
    }

    /// Verifies the client's Finished (§4.4.4) and switches the read key.
    fn on_finished(&mut self, msg: &[u8]) -> Result<(), TlsError> {
        let suite = self.suite.ok_or(TlsError::Internal("no suite"))?;
        let h = suite.hash();
        let body = msg.get(4..).unwrap_or(&[]);
        if body.len() != h.output_len() {
            return Err(TlsError::Decode("finished length"));
        }
        if !self.hs_buf.is_empty() {
            // §5.1: Finished precedes a key change and must end its record.
            return Err(TlsError::UnexpectedMessage("data after Finished in the same record"));
        }
        let t = self.transcript.as_mut().ok_or(TlsError::Internal("no transcript"))?;
        let chs = self.client_hs_secret.as_ref().ok_or(TlsError::Internal("no client handshake secret"))?;
        if !verify_finished(h, chs.as_bytes(), &t.current_hash(), body) {
            return Err(TlsError::DecryptError("client Finished"));
        }
        t.update(msg);
        let ks = self.ks.take().ok_or(TlsError::Internal("no key schedule"))?;
        self.resumption_secret = Some(ks.resumption_master_secret(&t.current_hash()));
        let cats = self.client_app_secret.take().ok_or(TlsError::Internal("no client application secret"))?;
        self.reader = Some(RecordProtector::new(suite, cats.as_bytes()));
        self.client_hs_secret = None;
        self.transcript = None;
        self.phase = Phase::Connected;
        self.tickets_due = self.cfg.tickets_per_handshake.min(resume::MAX_TICKETS_PER_HANDSHAKE);
        Ok(())
    }

    /// §4.6.3: switch the read key; answer update_requested with our own
    /// KeyUpdate before any further application data.
    fn on_key_update(&mut self, msg: &[u8]) -> Result<(), TlsError> {
        let body = msg.get(4..).unwrap_or(&[]);
        let request = match body {
            [0] => false,
            [1] => true,
            [_] => return Err(TlsError::IllegalParameter("key_update request value")),
            _ => return Err(TlsError::Decode("key_update length")),
        };
        if !self.hs_buf.is_empty() {
            return Err(TlsError::UnexpectedMessage("data after KeyUpdate in the same record"));
        }
        self.key_updates_in_row += 1;
        if self.key_updates_in_row > self.cfg.max_key_updates_in_row {
            return Err(TlsError::UnexpectedMessage("too many KeyUpdates without data"));
        }
        self.reader.as_mut().ok_or(TlsError::Internal("no read key"))?.update_traffic_secret();
        if request && !self.close_sent {
            self.send_key_update(false)?;
        }
        Ok(())
    }

    /// Seals handshake messages under the current write key, coalesced into
    /// as few records as the 2^14 limit allows.
    fn seal_handshake(&mut self, msgs: &[u8]) -> Result<(), TlsError> {
        let w = self.writer.as_mut().ok_or(TlsError::Internal("no write key"))?;
        for chunk in msgs.chunks(MAX_PLAINTEXT) {
            w.seal_record(content::HANDSHAKE, chunk, &mut self.out)?;
        }
        Ok(())
    }
}

/// TLSPlaintext records (§5.1), split at 2^14.
fn push_plain_records(out: &mut Vec<u8>, typ: u8, data: &[u8]) {
    for chunk in data.chunks(MAX_PLAINTEXT) {
        out.push(typ);
        out.extend_from_slice(&[3, 3]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
}

// ---- handoff encoding ------------------------------------------------------

fn opt_secret(w: &mut Writer, s: &Option<Secret>) {
    match s {
        Some(s) => {
            w.u8(1);
            w.bytes(s.as_bytes());
        }
        None => w.u8(0),
    }
}

fn read_opt_secret(r: &mut Reader) -> Result<Option<Secret>, DecodeError> {
    Ok(match r.u8()? {
        0 => None,
        1 => Some(Secret::new(r.bytes()?.to_vec())),
        _ => return Err(DecodeError::Invalid("secret option")),
    })
}

fn opt_bytes(w: &mut Writer, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            w.u8(1);
            w.bytes(b);
        }
        None => w.u8(0),
    }
}

fn read_opt_bytes(r: &mut Reader) -> Result<Option<Vec<u8>>, DecodeError> {
    Ok(match r.u8()? {
        0 => None,
        1 => Some(r.bytes()?.to_vec()),
        _ => return Err(DecodeError::Invalid("bytes option")),
    })
}

fn u16s(w: &mut Writer, v: &[u16]) {
    w.u32(v.len() as u32);
    for x in v {
        w.u16(*x);
    }
}

fn read_u16s(r: &mut Reader) -> Result<Vec<u16>, DecodeError> {
    let n = r.u32()? as usize;
    if n > r.remaining() / 2 {
        return Err(DecodeError::Invalid("u16 list length"));
    }
    (0..n).map(|_| r.u16()).collect()
}

fn byte_list(w: &mut Writer, v: &[Vec<u8>]) {
    w.u32(v.len() as u32);
    for x in v {
        w.bytes(x);
    }
}

fn read_byte_list(r: &mut Reader) -> Result<Vec<Vec<u8>>, DecodeError> {
    let n = r.u32()? as usize;
    if n > r.remaining() / 4 {
        return Err(DecodeError::Invalid("list length"));
    }
    (0..n).map(|_| r.bytes().map(|b| b.to_vec())).collect()
}

fn opt_protector(w: &mut Writer, p: &Option<RecordProtector>) {
    match p {
        Some(p) => {
            w.u8(1);
            p.encode(w);
        }
        None => w.u8(0),
    }
}

fn read_opt_protector(r: &mut Reader) -> Result<Option<RecordProtector>, DecodeError> {
    Ok(match r.u8()? {
        0 => None,
        1 => Some(RecordProtector::decode(r)?),
        _ => return Err(DecodeError::Invalid("protector option")),
    })
}

fn age_code(a: Option<TicketAge>) -> u8 {
    match a {
        None => 0,
        Some(TicketAge::Fresh) => 1,
        Some(TicketAge::Skewed) => 2,
        Some(TicketAge::Unknown) => 3,
        Some(TicketAge::Expired) => 4,
    }
}

fn age_from_code(v: u8) -> Result<Option<TicketAge>, DecodeError> {
    Ok(match v {
        0 => None,
        1 => Some(TicketAge::Fresh),
        2 => Some(TicketAge::Skewed),
        3 => Some(TicketAge::Unknown),
        4 => Some(TicketAge::Expired),
        _ => return Err(DecodeError::Invalid("ticket age")),
    })
}

impl TlsServer {
    /// The whole connection, losslessly, at any point of its life: buffered
    /// partial records in both directions, the transcript, the handshake
    /// secrets, a pending job (handed out again after decode), traffic
    /// secrets and sequence numbers. Secrets go into the writer's wiped
    /// buffer.
    pub fn encode(&self, w: &mut Writer) {
        w.version(STATE_TAG, STATE_VERSION);
        w.u8(self.phase as u8);
        w.bytes(self.inbuf.get(self.in_off..).unwrap_or(&[]));
        w.bytes(&self.hs_buf);
        w.bytes(self.plain_in.get(self.plain_off..).unwrap_or(&[]));
        w.bytes(self.tls_output());
        match &self.transcript {
            Some(t) => {
                w.u8(1);
                t.encode(w);
            }
            None => w.u8(0),
        }
        match &self.ks {
            Some(k) => {
                w.u8(1);
                k.encode(w);
            }
            None => w.u8(0),
        }
        opt_protector(w, &self.reader);
        opt_protector(w, &self.writer);
        opt_secret(w, &self.client_hs_secret);
        opt_secret(w, &self.server_hs_secret);
        opt_secret(w, &self.client_app_secret);
        opt_secret(w, &self.resumption_secret);
        match &self.job {
            Some(j) => {
                w.u8(1);
                j.encode(w);
            }
            None => w.u8(0),
        }
        w.u16(self.suite.map_or(0, |s| s.id()));
        w.u16(self.group.map_or(0, |g| g.id()));
        w.u16(self.scheme.map_or(0, |s| s as u16));
        opt_bytes(w, self.sni.as_deref().map(str::as_bytes));
        opt_bytes(w, self.alpn.as_deref());
        w.bytes(&self.session_id);
        w.raw(&self.server_random);
        match &self.first_hello {
            Some(f) => {
                w.u8(1);
                u16s(w, &f.suites);
                opt_bytes(w, f.sni.as_deref().map(str::as_bytes));
                match &f.alpn {
                    Some(a) => {
                        w.u8(1);
                        byte_list(w, a);
                    }
                    None => w.u8(0),
                }
                match &f.versions {
                    Some(v) => {
                        w.u8(1);
                        u16s(w, v);
                    }
                    None => w.u8(0),
                }
            }
            None => w.u8(0),
        }
        w.bool(self.ccs_sent);
        w.u32(self.early_skip);
        w.u32(self.key_updates_in_row);
        w.bool(self.close_sent);
        w.bool(self.close_received);
        w.bool(self.failed);
        // Version 2.
        opt_secret(w, &self.psk);
        w.bool(self.resumed);
        w.u32(self.tickets_due);
        w.u32(self.tickets_sent);
        // Version 3.
        opt_protector(w, &self.early_reader);
        w.bool(self.early_accepted);
        w.u32(self.early_received);
        w.u32(self.early_limit);
        // Version 4.
        opt_bytes(w, self.pending_hello.as_deref());
        match &self.fetched {
            None => w.u8(0),
            Some(None) => w.u8(1),
            Some(Some(b)) => {
                w.u8(2);
                w.bytes(b);
            }
        }
        // Version 5.
        w.u8(self.fetch_index);
        w.u16(self.psk_index);
        w.u8(age_code(self.ticket_age));
    }

    pub fn decode(r: &mut Reader, cfg: Arc<ServerConfig>) -> Result<TlsServer, DecodeError> {
        let version = r.version("TlsServer", STATE_TAG, 1, STATE_VERSION)?;
        let mut s = TlsServer::new(cfg);
        s.phase = Phase::from_u8(r.u8()?).ok_or(DecodeError::Invalid("tls phase"))?;
        s.inbuf = r.bytes()?.to_vec();
        s.hs_buf = r.bytes()?.to_vec();
        s.plain_in = r.bytes()?.to_vec();
        s.out = r.bytes()?.to_vec();
        s.transcript = match r.u8()? {
            0 => None,
            1 => Some(Transcript::decode(r)?),
            _ => return Err(DecodeError::Invalid("transcript option")),
        };
        s.ks = match r.u8()? {
            0 => None,
            1 => Some(KeySchedule::decode(r)?),
            _ => return Err(DecodeError::Invalid("key schedule option")),
        };
        s.reader = read_opt_protector(r)?;
        s.writer = read_opt_protector(r)?;
        s.client_hs_secret = read_opt_secret(r)?;
        s.server_hs_secret = read_opt_secret(r)?;
        s.client_app_secret = read_opt_secret(r)?;
        s.resumption_secret = read_opt_secret(r)?;
        s.job = match r.u8()? {
            0 => None,
            1 => Some(JobSpec::decode(r)?),
            _ => return Err(DecodeError::Invalid("job option")),
        };
        s.suite = match r.u16()? {
            0 => None,
            v => Some(CipherSuite::from_u16(v).ok_or(DecodeError::Invalid("suite"))?),
        };
        s.group = match r.u16()? {
            0 => None,
            v => Some(NamedGroup::from_u16(v).ok_or(DecodeError::Invalid("group"))?),
        };
        s.scheme = match r.u16()? {
            0 => None,
            v => Some(SignatureScheme::from_u16(v).ok_or(DecodeError::Invalid("scheme"))?),
        };
        s.sni = match read_opt_bytes(r)? {
            Some(b) => Some(String::from_utf8(b).map_err(|_| DecodeError::Invalid("sni"))?),
            None => None,
        };
        s.alpn = read_opt_bytes(r)?;
        s.session_id = r.bytes()?.to_vec();
        s.server_random = r.array::<32>()?;
        s.first_hello = match r.u8()? {
            0 => None,
            1 => {
                let suites = read_u16s(r)?;
                let sni = match read_opt_bytes(r)? {
                    Some(b) => Some(String::from_utf8(b).map_err(|_| DecodeError::Invalid("sni"))?),
                    None => None,
                };
                let alpn = match r.u8()? {
                    0 => None,
                    1 => Some(read_byte_list(r)?),
                    _ => return Err(DecodeError::Invalid("alpn option")),
                };
                let versions = match r.u8()? {
                    0 => None,
                    1 => Some(read_u16s(r)?),
                    _ => return Err(DecodeError::Invalid("versions option")),
                };
                Some(FirstHello { suites, sni, alpn, versions })
            }
            _ => return Err(DecodeError::Invalid("first hello option")),
        };
        s.ccs_sent = r.bool()?;
        s.early_skip = r.u32()?;
        s.key_updates_in_row = r.u32()?;
        s.close_sent = r.bool()?;
        s.close_received = r.bool()?;
        s.failed = r.bool()?;
        if version >= 2 {
            s.psk = read_opt_secret(r)?;
            s.resumed = r.bool()?;
            s.tickets_due = r.u32()?.min(resume::MAX_TICKETS_PER_HANDSHAKE);
            s.tickets_sent = r.u32()?;
        }
        if version >= 3 {
            s.early_reader = read_opt_protector(r)?;
            s.early_accepted = r.bool()?;
            s.early_received = r.u32()?;
            s.early_limit = r.u32()?;
        }
        if version >= 4 {
            s.pending_hello = read_opt_bytes(r)?;
            s.fetched = match r.u8()? {
                0 => None,
                1 => Some(None),
                2 => Some(Some(Zeroizing::new(r.bytes()?.to_vec()))),
                _ => return Err(DecodeError::Invalid("fetched session option")),
            };
        }
        if version >= 5 {
            s.fetch_index = r.u8()?;
            s.psk_index = r.u16()?;
            s.ticket_age = age_from_code(r.u8()?)?;
        }
        if s.failed {
            s.error = Some(TlsError::Internal("connection failed before handoff"));
        }
        Ok(s)
    }
}

#[cfg(test)]
impl TlsServer {
    fn copy_protector(p: &Option<RecordProtector>) -> Option<RecordProtector> {
        let p = p.as_ref()?;
        let mut w = Writer::new();
        p.encode(&mut w);
        let b = w.finish();
        RecordProtector::decode(&mut Reader::new(&b)).ok()
    }
    /// A copy of our read protector: what the client seals with.
    pub(crate) fn test_client_writer(&self) -> Option<RecordProtector> {
        Self::copy_protector(&self.reader)
    }
    /// A copy of our write protector: what the client opens with.
    pub(crate) fn test_client_reader(&self) -> Option<RecordProtector> {
        Self::copy_protector(&self.writer)
    }
    /// A copy of our early read protector: what the client seals 0-RTT
    /// records with, at the next sequence number.
    pub(crate) fn test_client_early_writer(&self) -> Option<RecordProtector> {
        Self::copy_protector(&self.early_reader)
    }
    pub(crate) fn test_has_resumption_secret(&self) -> bool {
        self.resumption_secret.is_some()
    }
}

#[cfg(test)]
impl TlsServer {
    /// Moves our write sequence number (tests of the §5.5 limits).
    pub(crate) fn test_set_write_seq(&mut self, seq: u64) {
        if let Some(p) = self.writer.as_ref() {
            let mut w = Writer::new();
            p.encode(&mut w);
            let mut b = w.finish().to_vec();
            let n = b.len();
            b[n - 8..].copy_from_slice(&seq.to_le_bytes());
            self.writer = RecordProtector::decode(&mut Reader::new(&b)).ok();
        }
    }
}
