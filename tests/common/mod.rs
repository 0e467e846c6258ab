//! A simulated Ethernet segment for DPDK-free end-to-end tests: a client
//! host and a backend host, each running smoltcp (an independent TCP/IP
//! stack), and baton's `Worker` in between, all in virtual time.
#![allow(dead_code)]

pub mod multi;
pub mod tlsclient;

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Arc;

use baton::entropy::SeededEntropy;
use baton::net::arp::ArpCache;
use baton::net::{Endpoint, IpAddress, MacAddr};
use baton::time::{Duration, Instant};
use baton::tls::ServerConfig;
use baton::worker::{Worker, WorkerParams};

use smoltcp::iface::{Config as IfConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress as SIp, IpCidr, Ipv4Address};

pub const BATON_IP: [u8; 4] = [198, 18, 0, 2];
pub const CLIENT_IP: [u8; 4] = [198, 18, 0, 10];
pub const BACKEND_IP: [u8; 4] = [198, 18, 0, 1];
pub const BACKEND_PORT: u16 = 8080;
pub const BATON_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
pub const BACKEND_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const MTU: usize = 1500;

/// A smoltcp device over two queues.
#[derive(Default)]
pub struct QueueDevice {
    pub rx: VecDeque<Vec<u8>>,
    pub tx: VecDeque<Vec<u8>>,
}

pub struct RxTok(Vec<u8>);
pub struct TxTok<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for RxTok {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        self.0.push_back(b);
        r
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok<'a>;
    fn receive(&mut self, _t: smoltcp::time::Instant) -> Option<(RxTok, TxTok<'_>)> {
        let f = self.rx.pop_front()?;
        Some((RxTok(f), TxTok(&mut self.tx)))
    }
    fn transmit(&mut self, _t: smoltcp::time::Instant) -> Option<TxTok<'_>> {
        Some(TxTok(&mut self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = MTU + 14;
        c
    }
}

/// One smoltcp host on the segment.
pub struct Host {
    pub dev: QueueDevice,
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    pub mac: [u8; 6],
}

impl Host {
    pub fn new(mac: [u8; 6], ip: [u8; 4], seed: u64) -> Host {
        let mut dev = QueueDevice::default();
        let mut cfg = IfConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        cfg.random_seed = seed;
        let mut iface = Interface::new(cfg, &mut dev, smoltcp::time::Instant::from_millis(0));
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(SIp::Ipv4(Ipv4Address::new(ip[0], ip[1], ip[2], ip[3])), 24)).unwrap();
        });
        Host { dev, iface, sockets: SocketSet::new(vec![]), mac }
    }

    pub fn tcp_socket(&mut self, buf: usize) -> SocketHandle {
        let s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; buf]), tcp::SocketBuffer::new(vec![0; buf]));
        self.sockets.add(s)
    }

    pub fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    pub fn poll(&mut self, now_ms: u64) {
        self.iface.poll(smoltcp::time::Instant::from_millis(now_ms as i64), &mut self.dev, &mut self.sockets);
    }
}

/// Delivers a frame on the segment by destination MAC (broadcast to all
/// but the sender): to baton's queue, the client host or the backend host.
pub fn route(from: [u8; 6], frame: Vec<u8>, baton: &mut VecDeque<Vec<u8>>, client: &mut Host, backend: &mut Host) {
    let dst: Option<[u8; 6]> = frame.get(0..6).map(|d| d.try_into().unwrap());
    let bcast = dst == Some([0xff; 6]);
    if (bcast || dst == Some(BATON_MAC)) && from != BATON_MAC {
        baton.push_back(frame.clone());
    }
    if (bcast || dst == Some(CLIENT_MAC)) && from != CLIENT_MAC {
        client.dev.rx.push_back(frame.clone());
    }
    if (bcast || dst == Some(BACKEND_MAC)) && from != BACKEND_MAC {
        backend.dev.rx.push_back(frame);
    }
}

pub fn worker_params(workers: usize, id: usize) -> WorkerParams {
    WorkerParams {
        id,
        workers,
        mac: MacAddr(BATON_MAC),
        vip: Ipv4Addr::from(BATON_IP),
        prefix_len: 24,
        gateway: None,
        mtu: MTU as u16,
        listen_port: 443,
        backends: vec![Endpoint::new(IpAddress::V4(Ipv4Addr::from(BACKEND_IP)), BACKEND_PORT)],
        connect_timeout: Duration::from_secs(3),
        max_connections: 1024,
        recv_buffer: 256 * 1024,
        send_buffer: 256 * 1024,
        isn_secret: [7u8; 16],
        timeouts: baton::worker::conn::Timeouts::default(),
        proxy_v2: false,
    }
}

/// The client host, the backend host and baton's worker on one segment.
pub struct SimNet {
    pub now_ms: u64,
    pub client: Host,
    pub backend: Host,
    pub worker: Worker,
    pub to_worker: VecDeque<Vec<u8>>,
    pub arp: Arc<ArpCache>,
    pub tls_cfg: Arc<ServerConfig>,
    /// Frames the worker sent, counted.
    pub frames_from_worker: u64,
    pub seed: u64,
}

impl SimNet {
    pub fn new(tls_cfg: Arc<ServerConfig>, seed: u64) -> SimNet {
        Self::new_with(tls_cfg, seed, |_| {})
    }

    /// With the worker's parameters adjusted by `f`.
    pub fn new_with(tls_cfg: Arc<ServerConfig>, seed: u64, f: impl FnOnce(&mut WorkerParams)) -> SimNet {
        let arp = Arc::new(ArpCache::new(256));
        let mut params = worker_params(1, 0);
        f(&mut params);
        let worker = Worker::new(params, tls_cfg.clone(), arp.clone(), Box::new(SeededEntropy::new(seed)));
        SimNet {
            now_ms: 0,
            client: Host::new(CLIENT_MAC, CLIENT_IP, seed ^ 1),
            backend: Host::new(BACKEND_MAC, BACKEND_IP, seed ^ 2),
            worker,
            to_worker: VecDeque::new(),
            arp,
            tls_cfg,
            frames_from_worker: 0,
            seed,
        }
    }

    pub fn now(&self) -> Instant {
        Instant::from_millis(self.now_ms)
    }

    fn deliver(&mut self, from: [u8; 6], frame: Vec<u8>) {
        route(from, frame, &mut self.to_worker, &mut self.client, &mut self.backend);
    }

    /// Runs the three hosts once at the current time. Returns how many
    /// frames the worker received.
    pub fn step(&mut self) -> usize {
        let now_ms = self.now_ms;
        self.client.poll(now_ms);
        while let Some(f) = self.client.dev.tx.pop_front() {
            self.deliver(CLIENT_MAC, f);
        }
        self.backend.poll(now_ms);
        while let Some(f) = self.backend.dev.tx.pop_front() {
            self.deliver(BACKEND_MAC, f);
        }
        let now = self.now();
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut got = 0;
        while let Some(f) = self.to_worker.pop_front() {
            got += 1;
            self.worker.handle_frame(&f, now, &mut |x| out.push(x.to_vec()));
        }
        self.worker.poll(now, &mut |x| out.push(x.to_vec()));
        self.frames_from_worker += out.len() as u64;
        for f in out {
            self.deliver(BATON_MAC, f);
        }
        got
    }

    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    /// Moves every connection of the worker into a fresh `Worker` (export,
    /// purge, import), as a handoff to another worker would.
    pub fn hand_off_all(&mut self) -> usize {
        let now = self.now();
        let flows = self.worker.client_flows();
        let mut records = Vec::new();
        for f in &flows {
            if let Some(r) = self.worker.export_conn(f, now) {
                records.push(r);
            }
        }
        assert_eq!(self.worker.conn_count(), 0, "the giver holds nothing after export");
        self.seed = self.seed.wrapping_add(1);
        let mut fresh = Worker::new(worker_params(1, 0), self.tls_cfg.clone(), self.arp.clone(), Box::new(SeededEntropy::new(self.seed)));
        for r in &records {
            fresh.import_conn(r, now).expect("import");
        }
        self.worker = fresh;
        records.len()
    }
}

/// SHA-256 of a byte string, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
