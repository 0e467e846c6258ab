//! The parsed form of a TCP header, shared by the wire layer (which parses
//! and emits it with checksums) and the TCP state machine (which consumes
//! and produces it). Payload travels beside it as a byte slice.

/// TCP control bits.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn psh(self) -> bool {
        self.0 & Self::PSH != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    pub fn has(self, bits: u8) -> bool {
        self.0 & bits == bits
    }
}

/// Up to four SACK blocks (RFC 2018), as `(left, right)` sequence numbers;
/// with timestamps only three fit in the option space.
pub const MAX_SACK_BLOCKS: usize = 4;

/// A TCP header with its options decoded. Options absent from the segment
/// are `None`/`false`/empty.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct TcpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// The raw 16-bit window field (unscaled).
    pub window: u16,
    /// MSS option (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift count option (SYN only, RFC 7323 §2).
    pub wscale: Option<u8>,
    /// SACK-permitted option (SYN only, RFC 2018).
    pub sack_permitted: bool,
    /// SACK blocks, `sack_len` of them valid.
    pub sack: [(u32, u32); MAX_SACK_BLOCKS],
    pub sack_len: u8,
    /// Timestamps option `(TSval, TSecr)` (RFC 7323 §3).
    pub timestamp: Option<(u32, u32)>,
}

impl TcpHeader {
    pub fn sack_blocks(&self) -> &[(u32, u32)] {
        &self.sack[..self.sack_len as usize]
    }
}
