//! Every reason a frame is dropped, declared once (like VPP's
//! `tcp_error.def`): the enum, its metric names and help texts come from
//! the one list below, and `DropCounters` has one `u64` per entry.

macro_rules! drop_reasons {
    ($( $name:ident => $metric:literal, $help:literal; )*) => {
        /// Why a frame (received, or about to be sent) was dropped.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum DropReason {
            $( #[doc = $help] $name, )*
        }

        impl DropReason {
            /// Every reason, in declaration order (= counter index order).
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// snake_case name, used as the metric label.
            pub const fn as_str(self) -> &'static str {
                match self { $(DropReason::$name => $metric,)* }
            }

            /// One-line description (Prometheus HELP text, docs).
            pub const fn help(self) -> &'static str {
                match self { $(DropReason::$name => $help,)* }
            }
        }
    };
}

drop_reasons! {
    // Ethernet
    TooShort => "too_short", "frame shorter than an Ethernet header";
    EtherTypeUnknown => "ethertype_unknown", "EtherType neither IPv4 nor ARP (VLAN tags included)";
    NotForUs => "not_for_us", "destination MAC neither ours nor (for ARP) broadcast";
    // ARP
    ArpMalformed => "arp_malformed", "ARP truncated, not Ethernet/IPv4, or unknown operation";
    ArpNotForUs => "arp_not_for_us", "ARP neither for our address nor updating a known neighbour";
    ArpBadSender => "arp_bad_sender", "ARP sender MAC not unicast, or sender claims our address";
    ArpCacheFull => "arp_cache_full", "neighbour cache full, new entry refused";
    // IPv4
    Ipv4Truncated => "ipv4_truncated", "IPv4 packet shorter than 20 bytes";
    Ipv4BadVersion => "ipv4_bad_version", "IP version field not 4 on an IPv4 EtherType";
    Ipv4BadHeaderLen => "ipv4_bad_header_len", "IHL below 5 or past the end of the frame";
    Ipv4BadLength => "ipv4_bad_length", "total length below the header length or past the frame";
    Ipv4BadChecksum => "ipv4_bad_checksum", "IPv4 header checksum wrong";
    Ipv4Fragment => "ipv4_fragment", "IPv4 fragment (MF or offset set); no reassembly";
    Ipv4BadSource => "ipv4_bad_source", "source address unspecified, broadcast, multicast, loopback or ours";
    Ipv4NotForUs => "ipv4_not_for_us", "destination IPv4 address not ours";
    // ICMP
    IcmpMalformed => "icmp_malformed", "ICMP message shorter than 8 bytes";
    IcmpBadChecksum => "icmp_bad_checksum", "ICMP checksum wrong";
    IcmpUnsupported => "icmp_unsupported", "ICMP type other than echo request";
    // TCP
    TcpTruncated => "tcp_truncated", "TCP segment shorter than 20 bytes";
    TcpBadDataOffset => "tcp_bad_data_offset", "TCP data offset below 5 or past the segment";
    TcpBadChecksum => "tcp_bad_checksum", "TCP checksum wrong";
    TcpBadOption => "tcp_bad_option", "TCP option with a bad length or running past the header";
    TcpNoFlow => "tcp_no_flow", "TCP segment for no known flow (counted by the worker)";
    // Other protocols
    UdpUnsupported => "udp_unsupported", "UDP is not served";
    ProtoUnsupported => "proto_unsupported", "IP protocol other than ICMP, TCP, UDP";
    // Transmit side
    TxNoRoute => "tx_no_route", "destination off-link and no gateway configured";
    TxTooLarge => "tx_too_large", "frame to send larger than the MTU";
    ArpQueueFull => "arp_queue_full", "frame waiting for ARP refused: queue full";
    ArpQueueExpired => "arp_queue_expired", "frame waiting for ARP expired unanswered";
}

/// One counter per [`DropReason`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::COUNT],
}

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters { counts: [0; DropReason::COUNT] }
    }
}

impl DropCounters {
    pub fn new() -> Self {
        Self::default()
    }
    #[inline]
    pub fn inc(&mut self, reason: DropReason) {
        self.add(reason, 1);
    }
    #[inline]
    pub fn add(&mut self, reason: DropReason, n: u64) {
        if let Some(c) = self.counts.get_mut(reason as usize) {
            *c = c.wrapping_add(n);
        }
    }
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts.get(reason as usize).copied().unwrap_or(0)
    }
    /// Every reason with its count, in declaration order (zeros included).
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(move |&r| (r, self.get(r)))
    }
    pub fn merge(&mut self, other: &DropCounters) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.wrapping_add(*b);
        }
    }
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |s, c| s.wrapping_add(*c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_names_unique_snake_case() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            let s = r.as_str();
            assert!(!s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{s}");
            assert!(!r.help().is_empty());
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        assert_eq!(DropReason::TcpBadChecksum.as_str(), "tcp_bad_checksum");
    }

    #[test]
    fn counters_inc_get_merge_iter() {
        let mut a = DropCounters::new();
        a.inc(DropReason::TooShort);
        a.inc(DropReason::TooShort);
        a.add(DropReason::TcpNoFlow, 5);
        let mut b = DropCounters::new();
        b.inc(DropReason::TooShort);
        b.inc(DropReason::ArpQueueExpired);
        a.merge(&b);
        assert_eq!(a.get(DropReason::TooShort), 3);
        assert_eq!(a.get(DropReason::TcpNoFlow), 5);
        assert_eq!(a.get(DropReason::ArpQueueExpired), 1);
        assert_eq!(a.get(DropReason::Ipv4Fragment), 0);
        assert_eq!(a.total(), 9);
        assert_eq!(a.iter().count(), DropReason::COUNT);
        assert_eq!(a.iter().filter(|(_, n)| *n > 0).count(), 3);
    }
}
