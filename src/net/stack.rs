//! Per-frame dispatch: frame bytes in, what to do with it out.
//!
//! One [`Stack`] per worker, sans-IO: `handle_frame` takes a received
//! frame and the time, answers ARP and ICMP echo itself through `out`, and
//! hands TCP segments up as [`Rx::Tcp`]. `emit_tcp` builds whole frames
//! for the TCP layer, holding them in [`PendingArp`] while the next hop's
//! MAC is unknown. Every drop is one [`DropReason`], counted in
//! [`Stack::drops`].
//!
//! Address filtering: a frame must be addressed to our MAC (ARP may also be
//! broadcast) and an IPv4 packet to our address; the source must be a
//! plausible unicast address (not 0.0.0.0, broadcast, multicast, loopback,
//! nor our own).
//!
//! ARP (RFC 826): a sender is cached when the frame targets our address
//! (inserted or updated) and otherwise only updated if already known
//! (gratuitous ARP, case D2). A request for our address is answered at once
//! with one reply (case D1; ARP frames reach one worker, so one reply per
//! request). RFC 5227 probes (sender 0.0.0.0) are answered, not cached.
//! Frames waiting for a neighbour are flushed when its ARP arrives here, or
//! by [`Stack::poll`] once another worker has put it in the shared cache.

mod drop;
mod pending;

pub use drop::{DropCounters, DropReason};
pub use pending::PendingArp;

use crate::net::arp::{ArpCache, ArpUpdate};
use crate::net::wire::{self, ArpOp, ArpRepr, IcmpMessage, Ipv4TxParams};
use crate::net::{Endpoint, FlowId, IpAddress, MacAddr, TcpHeader};
use crate::time::{Duration, Instant};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// A worker stack's addresses and limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackConfig {
    pub mac: MacAddr,
    /// The VIP, also baton's source address toward backends.
    pub ipv4: Ipv4Addr,
    /// IP MTU (the largest IPv4 packet, without the Ethernet header).
    pub mtu: u16,
    /// On-link prefix length; 0 means every address is on-link.
    pub prefix_len: u8,
    /// Next hop for off-link destinations; `None`: they are unreachable.
    pub gateway: Option<Ipv4Addr>,
    /// Minimum gap between ARP requests for one address.
    pub arp_retry: Duration,
    /// How long a frame may wait for ARP before it is dropped.
    pub arp_queue_ttl: Duration,
    /// Frames held per unresolved next hop.
    pub arp_queue_per_dest: usize,
    /// Frames held for all unresolved next hops together.
    pub arp_queue_total: usize,
}

impl StackConfig {
    /// Defaults: everything on-link, no gateway, ARP retried every 500 ms,
    /// frames held 3 s, 16 per next hop and 256 in all.
    pub fn new(mac: MacAddr, ipv4: Ipv4Addr, mtu: u16) -> Self {
        StackConfig {
            mac,
            ipv4,
            mtu,
            prefix_len: 0,
            gateway: None,
            arp_retry: Duration::from_millis(500),
            arp_queue_ttl: Duration::from_secs(3),
            arp_queue_per_dest: 16,
            arp_queue_total: 256,
        }
    }
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig::new(MacAddr::ZERO, Ipv4Addr::UNSPECIFIED, 1500)
    }
}

/// What a received frame turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rx<'a> {
    /// A TCP segment for us, checksum verified. `flow.local` is our address
    /// and the destination port, `flow.remote` the sender.
    Tcp { flow: FlowId, header: TcpHeader, payload: &'a [u8], src_mac: MacAddr },
    /// Handled here (ARP, ICMP echo); any answer already went to `out`.
    Consumed,
    /// Dropped, and already counted in `Stack::drops`.
    Dropped(DropReason),
}

/// What `emit_tcp` did with a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tx {
    Sent,
    /// Waiting for the next hop's MAC (an ARP request may have gone out).
    Queued,
    /// Dropped, and already counted in `Stack::drops`.
    Dropped(DropReason),
}

/// Things the stack did that are not drops (for metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackStats {
    pub rx_frames: u64,
    pub rx_tcp: u64,
    pub tx_tcp: u64,
    pub arp_requests_sent: u64,
    pub arp_replies_sent: u64,
    pub icmp_echo_replies: u64,
    pub arp_queued: u64,
    pub arp_released: u64,
}

/// A worker's Ethernet/ARP/IPv4/ICMP layer (see the module docs).
pub struct Stack {
    cfg: StackConfig,
    arp: Arc<ArpCache>,
    pub drops: DropCounters,
    pub stats: StackStats,
    scratch: Vec<u8>,
    ip_ident: u16,
    pending: PendingArp,
}

fn is_bad_source(src: Ipv4Addr, ours: Ipv4Addr) -> bool {
    src.is_unspecified() || src.is_broadcast() || src.is_multicast() || src.is_loopback() || src == ours
}

impl Stack {
    pub fn new(cfg: StackConfig, arp: Arc<ArpCache>) -> Self {
        let scratch = vec![0u8; wire::ETH_HEADER_LEN + usize::from(cfg.mtu).max(wire::ETH_MIN_FRAME)];
        let pending = PendingArp::new(cfg.arp_queue_per_dest, cfg.arp_queue_total, cfg.arp_queue_ttl);
        Stack { cfg, arp, drops: DropCounters::new(), stats: StackStats::default(), scratch, ip_ident: 0, pending }
    }

    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    pub fn arp_cache(&self) -> &Arc<ArpCache> {
        &self.arp
    }

    /// Frames waiting for ARP.
    pub fn pending(&self) -> &PendingArp {
        &self.pending
    }

    /// Count a drop decided above the stack (e.g. `TcpNoFlow` by the worker).
    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops.inc(reason);
    }

    /// Largest TCP payload that fits the MTU with `options_len` option bytes.
    pub fn max_tcp_payload(&self, options_len: usize) -> usize {
        usize::from(self.cfg.mtu).saturating_sub(wire::IPV4_HEADER_LEN + wire::TCP_HEADER_LEN + options_len)
    }

    /// Handle one received frame. Replies (ARP, ICMP echo, frames released
    /// by an ARP reply) go to `out` before this returns.
    pub fn handle_frame<'a>(&mut self, frame: &'a [u8], now: Instant, out: &mut dyn FnMut(&[u8])) -> Rx<'a> {
        self.stats.rx_frames += 1;
        match self.dispatch(frame, now, out) {
            Ok(rx) => rx,
            Err(reason) => {
                self.drops.inc(reason);
                Rx::Dropped(reason)
            }
        }
    }

    fn dispatch<'a>(&mut self, frame: &'a [u8], now: Instant, out: &mut dyn FnMut(&[u8])) -> Result<Rx<'a>, DropReason> {
        let (eth, payload) = wire::parse_ethernet(frame)?;
        let for_us = eth.dst == self.cfg.mac;
        match eth.ethertype {
            wire::ETHERTYPE_ARP => {
                if !for_us && eth.dst != MacAddr::BROADCAST {
                    return Err(DropReason::NotForUs);
                }
                let arp = wire::parse_arp(payload)?;
                self.on_arp(&arp, now, out)
            }
            wire::ETHERTYPE_IPV4 => {
                if !for_us {
                    return Err(DropReason::NotForUs);
                }
                let (ip, l4) = wire::parse_ipv4(payload)?;
                if ip.dst != self.cfg.ipv4 {
                    return Err(DropReason::Ipv4NotForUs);
                }
                if is_bad_source(ip.src, self.cfg.ipv4) {
                    return Err(DropReason::Ipv4BadSource);
                }
                match ip.proto {
                    wire::PROTO_TCP => {
                        let (src, dst) = (IpAddress::V4(ip.src), IpAddress::V4(ip.dst));
                        let (header, payload) = wire::parse_tcp(src, dst, l4)?;
                        self.stats.rx_tcp += 1;
                        let flow = FlowId {
                            local: Endpoint::new(dst, header.dst_port),
                            remote: Endpoint::new(src, header.src_port),
                        };
                        Ok(Rx::Tcp { flow, header, payload, src_mac: eth.src })
                    }
                    wire::PROTO_ICMP => {
                        let IcmpMessage::EchoRequest { ident, seq, data } = wire::parse_icmp(l4)?;
                        let params = self.next_ip_params();
                        let n = wire::emit_icmp_echo_reply(
                            &mut self.scratch, self.cfg.mac, eth.src, self.cfg.ipv4, ip.src, ident, seq, data, &params,
                        );
                        let frame = self.scratch.get(..n).filter(|_| n > 0).ok_or(DropReason::TxTooLarge)?;
                        out(frame);
                        self.stats.icmp_echo_replies += 1;
                        Ok(Rx::Consumed)
                    }
                    wire::PROTO_UDP => Err(DropReason::UdpUnsupported),
                    _ => Err(DropReason::ProtoUnsupported),
                }
            }
            _ => Err(DropReason::EtherTypeUnknown),
        }
    }

    fn on_arp<'a>(&mut self, a: &ArpRepr, _now: Instant, out: &mut dyn FnMut(&[u8])) -> Result<Rx<'a>, DropReason> {
        let m = a.sender_mac.0;
        if m[0] & 1 != 0 || a.sender_mac == MacAddr::ZERO || a.sender_ip == self.cfg.ipv4 {
            return Err(DropReason::ArpBadSender);
        }
        let targets_us = a.target_ip == self.cfg.ipv4;
        let sender = IpAddress::V4(a.sender_ip);
        let cacheable = !is_bad_source(a.sender_ip, self.cfg.ipv4);
        let mut known = false;
        if cacheable {
            let r = if targets_us { self.arp.update(sender, a.sender_mac) } else { self.arp.update_existing(sender, a.sender_mac) };
            known = r != ArpUpdate::Refused;
            if r == ArpUpdate::Refused && targets_us {
                self.drops.inc(DropReason::ArpCacheFull);
            }
            // Flush even when refused: we know where to send them now.
            if known || targets_us {
                self.release(a.sender_ip, a.sender_mac, out);
            }
        }
        if !targets_us {
            return if known { Ok(Rx::Consumed) } else { Err(DropReason::ArpNotForUs) };
        }
        if a.op == ArpOp::Request {
            let n = wire::emit_arp_reply(&mut self.scratch, self.cfg.mac, self.cfg.ipv4, a.sender_mac, a.sender_ip);
            if let Some(frame) = self.scratch.get(..n).filter(|_| n > 0) {
                out(frame);
                self.stats.arp_replies_sent += 1;
            }
        }
        Ok(Rx::Consumed)
    }

    fn release(&mut self, ip: Ipv4Addr, mac: MacAddr, out: &mut dyn FnMut(&[u8])) {
        let n = self.pending.release(ip, &mut |frame: &mut [u8]| {
            if let Some(dst) = frame.get_mut(..6) {
                dst.copy_from_slice(&mac.0);
            }
            out(frame);
        });
        self.stats.arp_released += n as u64;
        self.stats.tx_tcp += n as u64;
    }

    fn next_ip_params(&mut self) -> Ipv4TxParams {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        Ipv4TxParams { ttl: 64, ident: self.ip_ident, dont_frag: true }
    }

    /// The next hop toward `dst`: itself when on-link, else the gateway.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        let p = u32::from(self.cfg.prefix_len.min(32));
        let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
        if u32::from(dst) & mask == u32::from(self.cfg.ipv4) & mask {
            Some(dst)
        } else {
            self.cfg.gateway
        }
    }

    /// Build an Ethernet + IPv4 + TCP frame from baton's address to
    /// `remote` and send it through `out`, or queue it until the next hop's
    /// MAC is known (sending a rate-limited ARP request).
    pub fn emit_tcp(
        &mut self,
        remote: IpAddress,
        header: &TcpHeader,
        payload: &[u8],
        now: Instant,
        out: &mut dyn FnMut(&[u8]),
    ) -> Tx {
        match self.try_emit_tcp(remote, header, payload, now, out) {
            Ok(tx) => tx,
            Err(reason) => {
                self.drops.inc(reason);
                Tx::Dropped(reason)
            }
        }
    }

    fn try_emit_tcp(
        &mut self,
        remote: IpAddress,
        header: &TcpHeader,
        payload: &[u8],
        now: Instant,
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<Tx, DropReason> {
        let IpAddress::V4(dst) = remote;
        let ip_len = wire::IPV4_HEADER_LEN + wire::TCP_HEADER_LEN + wire::tcp_options_len(header) + payload.len();
        if ip_len > usize::from(self.cfg.mtu) {
            return Err(DropReason::TxTooLarge);
        }
        let hop = self.next_hop(dst).ok_or(DropReason::TxNoRoute)?;
        let mac = self.arp.lookup(IpAddress::V4(hop));
        let params = self.next_ip_params();
        let n = wire::emit_tcp_frame_with(
            &mut self.scratch,
            self.cfg.mac,
            mac.unwrap_or(MacAddr::ZERO),
            self.cfg.ipv4,
            dst,
            &params,
            header,
            payload,
        );
        let frame = self.scratch.get(..n).filter(|_| n > 0).ok_or(DropReason::TxTooLarge)?;
        if mac.is_some() {
            out(frame);
            self.stats.tx_tcp += 1;
            return Ok(Tx::Sent);
        }
        let idx = self.pending.push(hop, frame, now)?;
        self.stats.arp_queued += 1;
        self.maybe_request(idx, now, out);
        Ok(Tx::Queued)
    }

    /// Send an ARP request for pending destination `idx` unless one went
    /// out less than `arp_retry` ago.
    fn maybe_request(&mut self, idx: usize, now: Instant, out: &mut dyn FnMut(&[u8])) {
        let retry = self.cfg.arp_retry;
        let Some(d) = self.pending.dests.get_mut(idx) else { return };
        if d.last_request.is_some_and(|t| now.saturating_since(t) < retry) {
            return;
        }
        d.last_request = Some(now);
        let target = d.ip;
        let n = wire::emit_arp_request(&mut self.scratch, self.cfg.mac, self.cfg.ipv4, target);
        if let Some(frame) = self.scratch.get(..n).filter(|_| n > 0) {
            out(frame);
            self.stats.arp_requests_sent += 1;
        }
    }

    /// Timers: release frames whose next hop another worker has resolved,
    /// expire frames that waited too long, and retry ARP requests. Call it
    /// every loop iteration while `pending()` is not empty, or at `poll_at`.
    pub fn poll(&mut self, now: Instant, out: &mut dyn FnMut(&[u8])) {
        if self.pending.is_empty() {
            return;
        }
        let mut i = 0;
        while let Some(d) = self.pending.dests.get(i) {
            let ip = d.ip;
            if let Some(mac) = self.arp.lookup(IpAddress::V4(ip)) {
                self.release(ip, mac, out); // removes dest i (swap_remove)
            } else {
                i += 1;
            }
        }
        let expired = self.pending.expire(now);
        self.drops.add(DropReason::ArpQueueExpired, expired);
        for idx in 0..self.pending.dests.len() {
            self.maybe_request(idx, now, out);
        }
    }

    /// When `poll` next has work (an ARP retry or an expiry), if anything
    /// is pending. Note that a neighbour resolved by another worker is only
    /// noticed at a poll.
    pub fn poll_at(&self) -> Option<Instant> {
        let retry = self.pending.dests.iter().map(|d| d.last_request.map_or(Instant::ZERO, |t| t + self.cfg.arp_retry)).min();
        match (retry, self.pending.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests;
