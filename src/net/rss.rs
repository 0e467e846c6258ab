//! Receive Side Scaling in software: the Toeplitz hash a NIC computes over
//! a received packet's addresses and ports, and the redirection table
//! (RETA) that turns the hash into an RX queue (issue 3 §2).
//!
//! The hash is the one Microsoft's RSS specification defines (and DPDK's
//! `rte_softrss` computes): for every set bit of the input, taken most
//! significant bit first, XOR into the result the 32 bits of the key that
//! start at that bit's position. The input for IPv4 with TCP is, in network
//! byte order: source address, destination address, source port,
//! destination port — of the packet *as received*, so for a [`FlowId`]
//! (which is seen from baton's side) the source is `remote` and the
//! destination is `local`.
//!
//! A NIC then picks RX queue `reta[hash mod reta_size]` (the low bits of
//! the hash: RETA sizes are powers of two). Worker `k` serves queue `k`.

use super::FlowId;

/// The 40-byte key of Microsoft's RSS verification suite, which is also
/// the default key of most Intel PMDs in DPDK. Source: "Verifying the RSS
/// Hash Calculation", Microsoft Windows driver documentation
/// (MicrosoftDocs/windows-driver-docs,
/// windows-driver-docs-pr/network/verifying-the-rss-hash-calculation.md).
pub const DEFAULT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb,
    0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// Bytes of hash input for IPv4 with TCP ports.
const V4_TCP_INPUT: usize = 12;

/// The Toeplitz hash of `input` under `key`. A key must be at least
/// `input.len() + 4` bytes to give every input bit a full 32-bit window
/// ([`Reta::new`] checks for IPv4 with TCP); past its end the key is read
/// as zeros, and input bytes with no key left at all are ignored.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let mut result = 0u32;
    // The 32-bit key window at the current input bit.
    let mut window = match key.get(0..4) {
        Some(w) => u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
        None => return 0,
    };
    for (i, &byte) in input.iter().enumerate() {
        // Key byte i + 4 slides in while the bits of input byte i go by.
        let incoming = key.get(i + 4).copied();
        if incoming.is_none() && i + 4 > key.len() {
            break;
        }
        let incoming = incoming.unwrap_or(0);
        for b in 0..8 {
            if byte & (0x80 >> b) != 0 {
                result ^= window;
            }
            window = (window << 1) | u32::from((incoming >> (7 - b)) & 1);
        }
    }
    result
}

/// The hash of an IPv4 TCP packet from `src:sport` to `dst:dport`.
pub fn hash_v4_tcp(key: &[u8], src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> u32 {
    let mut input = [0u8; V4_TCP_INPUT];
    input[0..4].copy_from_slice(&src);
    input[4..8].copy_from_slice(&dst);
    input[8..10].copy_from_slice(&sport.to_be_bytes());
    input[10..12].copy_from_slice(&dport.to_be_bytes());
    toeplitz(key, &input)
}

/// The hash the NIC computes for a packet of `flow` arriving at baton
/// (source `flow.remote`, destination `flow.local`).
pub fn rx_hash(key: &[u8], flow: &FlowId) -> u32 {
    hash_v4_tcp(key, flow.remote.addr.octets_v4(), flow.local.addr.octets_v4(), flow.remote.port, flow.local.port)
}

/// Why a key or table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetaError {
    #[error("the redirection table is empty")]
    Empty,
    #[error("an RSS key of {0} bytes is too short for IPv4 with TCP ports (16 needed)")]
    KeyTooShort(usize),
}

/// A redirection table with the key the hash runs under: what a NIC uses
/// to pick the RX queue of a packet.
#[derive(Clone, PartialEq, Eq)]
pub struct Reta {
    key: Vec<u8>,
    table: Vec<u16>,
}

impl std::fmt::Debug for Reta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The RSS key is not a secret, but it is noise in logs.
        f.debug_struct("Reta").field("key_len", &self.key.len()).field("table", &self.table).finish()
    }
}

impl Reta {
    /// A table of queue ids under `key`.
    pub fn new(key: &[u8], table: Vec<u16>) -> Result<Reta, RetaError> {
        if table.is_empty() {
            return Err(RetaError::Empty);
        }
        if key.len() < V4_TCP_INPUT + 4 {
            return Err(RetaError::KeyTooShort(key.len()));
        }
        Ok(Reta { key: key.to_vec(), table })
    }

    /// `size` entries spreading `queues` queues round robin (entry `i`
    /// names queue `i mod queues`), as DPDK PMDs set it up by default.
    pub fn round_robin(key: &[u8], size: usize, queues: u16) -> Result<Reta, RetaError> {
        let q = queues.max(1);
        Reta::new(key, (0..size).map(|i| (i % q as usize) as u16).collect())
    }

    /// The same key with another table.
    pub fn with_table(&self, table: Vec<u16>) -> Result<Reta, RetaError> {
        Reta::new(&self.key, table)
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn table(&self) -> &[u16] {
        &self.table
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The table entry a hash selects (its low bits for a power-of-two
    /// table, `hash mod len` in general).
    pub fn entry_for_hash(&self, hash: u32) -> usize {
        hash as usize % self.table.len().max(1)
    }

    /// The queue a hash selects.
    pub fn queue_for_hash(&self, hash: u32) -> u16 {
        self.table.get(self.entry_for_hash(hash)).copied().unwrap_or(0)
    }

    /// The RX queue a packet of `flow` arriving at baton lands on.
    pub fn queue_for(&self, flow: &FlowId) -> u16 {
        self.queue_for_hash(rx_hash(&self.key, flow))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{Endpoint, IpAddress};

    /// Microsoft's RSS verification suite, IPv4 rows: (destination,
    /// destination port, source, source port, IPv4-only hash, IPv4-with-TCP
    /// hash). Source: "Verifying the RSS Hash Calculation",
    /// MicrosoftDocs/windows-driver-docs,
    /// windows-driver-docs-pr/network/verifying-the-rss-hash-calculation.md.
    type Row = ([u8; 4], u16, [u8; 4], u16, u32, u32);
    const MS_V4: [Row; 5] = [
        ([161, 142, 100, 80], 1766, [66, 9, 149, 187], 2794, 0x323e8fc2, 0x51ccc178),
        ([65, 69, 140, 83], 4739, [199, 92, 111, 2], 14230, 0xd718262a, 0xc626b0ea),
        ([12, 22, 207, 184], 38024, [24, 19, 198, 95], 12898, 0xd2d0a5de, 0x5c2b394a),
        ([209, 142, 163, 6], 2217, [38, 27, 205, 30], 48228, 0x82989176, 0xafc7327f),
        ([202, 188, 127, 2], 1303, [153, 39, 163, 191], 44251, 0x5d1809c5, 0x10e828a2),
    ];

    #[test]
    fn toeplitz_matches_the_microsoft_ipv4_tcp_vectors() {
        for (dst, dport, src, sport, _, want) in MS_V4 {
            assert_eq!(hash_v4_tcp(&DEFAULT_KEY, src, dst, sport, dport), want, "{src:?}:{sport} -> {dst:?}:{dport}");
        }
    }

    #[test]
    fn toeplitz_matches_the_microsoft_ipv4_only_vectors() {
        for (dst, _, src, _, want, _) in MS_V4 {
            let mut input = [0u8; 8];
            input[..4].copy_from_slice(&src);
            input[4..].copy_from_slice(&dst);
            assert_eq!(toeplitz(&DEFAULT_KEY, &input), want, "{src:?} -> {dst:?}");
        }
    }

    /// The first IPv6-with-TCP row of the same suite: 36 bytes of input use
    /// the whole 40-byte key.
    #[test]
    fn toeplitz_matches_a_microsoft_ipv6_tcp_vector() {
        let src: std::net::Ipv6Addr = "3ffe:2501:200:1fff::7".parse().unwrap();
        let dst: std::net::Ipv6Addr = "3ffe:2501:200:3::1".parse().unwrap();
        let mut input = Vec::new();
        input.extend_from_slice(&src.octets());
        input.extend_from_slice(&dst.octets());
        input.extend_from_slice(&2794u16.to_be_bytes());
        input.extend_from_slice(&1766u16.to_be_bytes());
        assert_eq!(toeplitz(&DEFAULT_KEY, &input), 0x40207d3d);
    }

    #[test]
    fn a_flow_is_hashed_as_the_packet_baton_receives() {
        // Row 1: the packet goes 66.9.149.187:2794 -> 161.142.100.80:1766,
        // so baton is 161.142.100.80.
        let flow = FlowId {
            local: Endpoint::new(IpAddress::v4(161, 142, 100, 80), 1766),
            remote: Endpoint::new(IpAddress::v4(66, 9, 149, 187), 2794),
        };
        assert_eq!(rx_hash(&DEFAULT_KEY, &flow), 0x51ccc178);
        // 0x51ccc178 mod 128 = 0x78 = 120; mod 4 = 0.
        let reta = Reta::new(&DEFAULT_KEY, (0..128u16).collect()).unwrap();
        assert_eq!(reta.queue_for(&flow), 120);
        let rr = Reta::round_robin(&DEFAULT_KEY, 128, 3).unwrap();
        assert_eq!(rr.queue_for(&flow), 0, "entry 120, 120 mod 3");
        assert_eq!(rr.queue_for_hash(0xc626b0ea), (0x6a % 3) as u16);
    }

    #[test]
    fn bad_tables_and_keys_are_refused() {
        assert_eq!(Reta::new(&DEFAULT_KEY, vec![]), Err(RetaError::Empty));
        assert_eq!(Reta::new(&DEFAULT_KEY[..15], vec![0]), Err(RetaError::KeyTooShort(15)));
        // A key just long enough for IPv4 + TCP hashes as the full key does.
        let (dst, dport, src, sport, _, want) = MS_V4[1];
        assert_eq!(hash_v4_tcp(&DEFAULT_KEY[..16], src, dst, sport, dport), want);
        assert_eq!(toeplitz(&[1, 2], &[0xff]), 0, "no full window");
    }
}
