//! Sans-IO network stack: Ethernet, ARP, IPv4, ICMP and baton's own TCP.
//! Nothing here reads a clock, touches a socket or knows about DPDK.

pub mod arp;
pub mod rss;
pub mod segment;
pub mod stack;
pub mod tcp;
pub mod wire;

pub use segment::{TcpFlags, TcpHeader};

use std::fmt;
use std::net::Ipv4Addr;

/// An IP address. IPv4 only for now; an enum so IPv6 can be added without
/// changing every signature that carries an address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpAddress {
    V4(Ipv4Addr),
}

impl IpAddress {
    pub fn v4(a: u8, b: u8, c: u8, d: u8) -> Self {
        IpAddress::V4(Ipv4Addr::new(a, b, c, d))
    }
    pub fn octets_v4(&self) -> [u8; 4] {
        match self {
            IpAddress::V4(a) => a.octets(),
        }
    }
}

impl fmt::Debug for IpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for IpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpAddress::V4(a) => write!(f, "{a}"),
        }
    }
}

impl From<Ipv4Addr> for IpAddress {
    fn from(a: Ipv4Addr) -> Self {
        IpAddress::V4(a)
    }
}

/// An address and a port.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: IpAddress,
    pub port: u16,
}

impl Endpoint {
    pub fn new(addr: IpAddress, port: u16) -> Self {
        Endpoint { addr, port }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

/// A TCP 4-tuple as seen from baton: `local` is baton's side.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FlowId {
    pub local: Endpoint,
    pub remote: Endpoint,
}

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}
