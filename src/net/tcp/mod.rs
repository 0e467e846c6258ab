//! baton's own TCP state machine (RFC 9293), sans-IO.
//!
//! A [`TcpConn`] is fed parsed segments ([`crate::net::TcpHeader`] plus the
//! payload) and a time, and hands back the segments it wants to send through
//! [`TcpConn::poll_transmit`]. It never reads a clock and never sees IP or
//! Ethernet: the wire layer parses and emits headers with checksums.
//!
//! Files, by concern:
//! - [`conn`]: connection state and `on_segment` (RFC 9293 §3.10.7), with
//!   RFC 5961 RST/SYN/ACK hardening;
//! - [`output`]: `poll_transmit`, segment building, timers firing;
//! - [`send`] / [`recv`]: byte buffers, out-of-order reassembly, the SACK
//!   scoreboard (RFC 2018);
//! - [`rtt`]: the retransmission timer estimator (RFC 6298);
//! - [`cc`]: NewReno congestion control (RFC 5681, RFC 6582);
//! - [`isn`]: initial sequence numbers (RFC 6528);
//! - [`codec`]: the versioned handoff encoding of a whole connection;
//! - [`seq`]: wrapping sequence-number arithmetic.

pub mod cc;
pub mod codec;
pub mod conn;
pub mod cookie;
pub mod isn;
pub mod output;
pub mod recv;
pub mod rtt;
pub mod send;
pub mod seq;

#[cfg(test)]
mod tests;

pub use conn::TcpConn;
pub use isn::isn_rfc6528;

use crate::time::Duration;

/// Per-connection settings. Copied into each connection (and into its
/// handoff record), so a change of config never alters a live connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// The MSS we advertise (port MTU − 40 for IPv4 without options).
    pub mss: u16,
    /// Receive buffer cap in bytes: bounds in-order unread plus out-of-order
    /// data, and so the window we advertise.
    pub recv_buf_cap: usize,
    /// Send buffer cap in bytes (unacknowledged plus unsent).
    pub send_buf_cap: usize,
    /// Our window scale shift (RFC 7323 §2.3), at most 14.
    pub wscale: u8,
    /// Offer/accept the timestamps option (RFC 7323 §3).
    pub timestamps: bool,
    /// Offer/accept SACK (RFC 2018).
    pub sack: bool,
    /// RFC 6298 §2.1 initial RTO (1 s).
    pub rto_initial: Duration,
    /// RFC 6298 §2.4 lower bound. The RFC says 1 s; 200 ms is the common
    /// practice for data-centre paths and what we default to.
    pub rto_min: Duration,
    /// Upper bound of the backed-off RTO (RFC 6298 §2.5 allows ≥ 60 s).
    pub rto_max: Duration,
    /// Retransmissions of one segment (or SYN) before the connection is
    /// aborted (RFC 9293 §3.8.3, R2).
    pub max_retries: u32,
    /// How long TIME-WAIT lasts. RFC 9293 says 2×MSL (minutes); baton is a
    /// proxy whose backend source ports are partitioned per worker and
    /// reused round-robin, and ISNs follow RFC 6528 (monotonic per 4-tuple)
    /// with timestamps on, so a short TIME-WAIT (2 s) is safe enough there.
    pub time_wait: Duration,
    /// Delayed-ACK timeout (RFC 9293 §3.8.6.3: < 0.5 s); an ACK is also
    /// sent at once for every second full segment.
    pub delayed_ack: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            recv_buf_cap: 256 * 1024,
            send_buf_cap: 256 * 1024,
            wscale: 7,
            timestamps: true,
            sack: true,
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(60),
            max_retries: 8,
            time_wait: Duration::from_secs(2),
            delayed_ack: Duration::from_millis(40),
        }
    }
}

/// Connection states (RFC 9293 §3.3.2). There is no LISTEN: a listener is
/// the worker's flow table, which calls [`TcpConn::accept`] on a SYN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    Closed,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl TcpState {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            TcpState::Closed => 0,
            TcpState::SynSent => 1,
            TcpState::SynReceived => 2,
            TcpState::Established => 3,
            TcpState::FinWait1 => 4,
            TcpState::FinWait2 => 5,
            TcpState::CloseWait => 6,
            TcpState::Closing => 7,
            TcpState::LastAck => 8,
            TcpState::TimeWait => 9,
        }
    }
    pub(crate) fn from_u8(v: u8) -> Option<TcpState> {
        Some(match v {
            0 => TcpState::Closed,
            1 => TcpState::SynSent,
            2 => TcpState::SynReceived,
            3 => TcpState::Established,
            4 => TcpState::FinWait1,
            5 => TcpState::FinWait2,
            6 => TcpState::CloseWait,
            7 => TcpState::Closing,
            8 => TcpState::LastAck,
            9 => TcpState::TimeWait,
            _ => return None,
        })
    }
}

/// What `on_segment` did with a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentOutcome {
    /// Processed (its data, ACK, FIN or window taken into account; an
    /// acceptable duplicate counts too).
    Accepted,
    /// A challenge ACK was queued instead of acting on the segment
    /// (RFC 5961 §3.2 RST, §4.2 SYN, §5.2 ACK).
    ChallengeAck,
    /// Dropped; an ACK may have been queued when RFC 9293 asks for one.
    Dropped(TcpDrop),
    /// The peer reset the connection; it is now closed.
    Reset,
}

/// Why a segment was dropped. One counter per reason in the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpDrop {
    /// The connection is closed.
    Closed,
    /// Sequence number outside the receive window (an ACK was queued).
    OutOfWindow,
    /// An RST outside the window: dropped silently (RFC 5961 §3.2).
    RstOutOfWindow,
    /// PAWS: timestamp older than TS.Recent (RFC 7323 §5).
    Paws,
    /// A segment without ACK in a synchronized state.
    NoAck,
    /// An ACK for data never sent (an ACK was queued).
    AckUnsent,
    /// An ACK older than the peer could legitimately send (RFC 5961 §5.2).
    AckTooOld,
    /// SYN-SENT: the ACK does not acknowledge our SYN (an RST was queued
    /// unless the segment was itself an RST).
    BadSynAck,
    /// SYN-SENT: neither SYN nor RST.
    UnexpectedInSynSent,
    /// SYN-RECEIVED: the ACK does not acknowledge our SYN-ACK (RST queued).
    BadAckInSynReceived,
}

impl TcpDrop {
    pub fn as_str(self) -> &'static str {
        match self {
            TcpDrop::Closed => "tcp_closed",
            TcpDrop::OutOfWindow => "tcp_out_of_window",
            TcpDrop::RstOutOfWindow => "tcp_rst_out_of_window",
            TcpDrop::Paws => "tcp_paws",
            TcpDrop::NoAck => "tcp_no_ack",
            TcpDrop::AckUnsent => "tcp_ack_unsent",
            TcpDrop::AckTooOld => "tcp_ack_too_old",
            TcpDrop::BadSynAck => "tcp_bad_syn_ack",
            TcpDrop::UnexpectedInSynSent => "tcp_unexpected_in_syn_sent",
            TcpDrop::BadAckInSynReceived => "tcp_bad_ack_in_syn_received",
        }
    }
}
