//! Ethernet ports: configure, start/stop, bursts, per-queue handles.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::error::{check, DpdkError};
use super::{ffi, Eal, Mbuf, Mempool, PortId, QueueId};

/// Ports currently owned by a [`Port`] value: one owner per port id.
static OWNED_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Ethernet header (14) + one VLAN tag (4) + FCS (4): what a frame adds to
/// the MTU when deciding whether RX needs scatter.
const L2_OVERHEAD: u32 = 22;

/// How to configure a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConf {
    /// MTU to set on the device; `None` keeps the device's.
    pub mtu: Option<u16>,
    /// Spread flows over the RX queues with RSS when the device can.
    pub rss: bool,
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
}

impl Default for PortConf {
    fn default() -> Self {
        PortConf {
            mtu: None,
            rss: true,
            rx_desc: 1024,
            tx_desc: 1024,
        }
    }
}

/// Port counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames the device dropped because RX queues were full.
    pub rx_missed: u64,
    /// Erroneous received frames.
    pub rx_errors: u64,
    /// Failed transmissions.
    pub tx_errors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// What `configure` found out about the device and chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Driver name, e.g. `net_tap`.
    pub driver: String,
    /// Device name, e.g. `net_tap0`.
    pub name: String,
    /// Whether RSS is enabled on the RX queues.
    pub rss: bool,
    /// RSS hash functions enabled (DPDK `rss_hf` bits).
    pub rss_hf: u64,
    /// Whether RX scatter (multi-segment RX) is enabled.
    pub rx_scatter: bool,
    /// Whether multi-segment TX is enabled.
    pub tx_multi_seg: bool,
    /// Device limits.
    pub max_rx_queues: u16,
    /// Device limits.
    pub max_tx_queues: u16,
    /// Largest MTU the device accepts.
    pub max_mtu: u16,
}

struct PortInner {
    id: PortId,
    nb_rx: u16,
    nb_tx: u16,
    mac: [u8; 6],
    info: PortInfo,
    started: AtomicBool,
    claimed: Vec<AtomicBool>,
    n_claimed: AtomicUsize,
    // Declared last: dropped after the port is closed, so the device never
    // refers to a freed pool.
    _pool: Mempool,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        let p = self.id.0;
        if self.started.load(Ordering::SeqCst) {
            // SAFETY: no queue handle exists any more (they hold this Arc), so
            // no burst can run concurrently.
            let rc = unsafe { ffi::rte_eth_dev_stop(p) };
            if rc != 0 {
                log::warn!("dpdk: stopping port {p}: {}", super::error::strerror(-rc));
            }
        }
        // SAFETY: stopped and unshared; closing frees the queues (and the
        // mbufs in their rings, back to _pool which is still alive).
        let rc = unsafe { ffi::rte_eth_dev_close(p) };
        if rc != 0 {
            log::warn!("dpdk: closing port {p}: {}", super::error::strerror(-rc));
        }
        if let Ok(mut g) = OWNED_PORTS.lock() {
            if let Some(s) = g.as_mut() {
                s.remove(&p);
            }
        }
    }
}

/// A configured Ethernet port. Dropping the port (and every [`PortQueue`])
/// stops and closes it.
pub struct Port {
    inner: Arc<PortInner>,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.inner.id)
            .field("info", &self.inner.info)
            .finish()
    }
}

/// Looks a port up by its device name (e.g. `net_tap0`).
pub fn port_by_name(_eal: &Eal, name: &str) -> Option<PortId> {
    let c = CString::new(name).ok()?;
    let mut id: u16 = 0;
    // SAFETY: c is a valid C string; id is a valid out pointer.
    let rc = unsafe { ffi::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    (rc == 0).then_some(PortId(id))
}

/// Name of a port, if it exists.
pub fn port_name(_eal: &Eal, port: PortId) -> Option<String> {
    let mut buf = [0 as c_char; ffi::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes, the size DPDK writes at most.
    let rc = unsafe { ffi::rte_eth_dev_get_name_by_port(port.0, buf.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success DPDK wrote a NUL-terminated name into buf.
    Some(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

/// Every available port with its name.
pub fn available_ports(eal: &Eal) -> Vec<(PortId, String)> {
    let mut out = Vec::new();
    // SAFETY: iteration over port ids is read-only.
    let mut p = unsafe { ffi::rte_eth_find_next(0) };
    while (p as u32) < ffi::RTE_MAX_ETHPORTS {
        if let Some(n) = port_name(eal, PortId(p)) {
            out.push((PortId(p), n));
        }
        // SAFETY: as above.
        p = unsafe { ffi::rte_eth_find_next(p + 1) };
    }
    out
}

fn dev_info(port: PortId) -> Result<ffi::rte_eth_dev_info, DpdkError> {
    let mut info = ffi::rte_eth_dev_info::default();
    // SAFETY: info is a valid, writable rte_eth_dev_info.
    check("rte_eth_dev_info_get", unsafe {
        ffi::rte_eth_dev_info_get(port.0, &mut info)
    })?;
    Ok(info)
}

fn cstr_or_empty(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null driver names in dev_info are static C strings.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The value of one of the shim's exported macro constants.
fn shim_const(v: &'static u64) -> u64 {
    *v
}

impl Port {
    /// Configures `port` with `nb_rx` RX and `nb_tx` TX queues whose RX
    /// buffers come from `pool`, and sets it up per `conf` (not started).
    ///
    /// RSS is enabled when asked, `nb_rx > 1` and the device reports RSS
    /// hash types (`flow_type_rss_offloads`); RX scatter when a frame of the
    /// MTU does not fit one buffer and the device can scatter; multi-segment
    /// TX whenever the device offers it.
    pub fn configure(
        port: PortId,
        nb_rx: u16,
        nb_tx: u16,
        pool: &Mempool,
        conf: PortConf,
    ) -> Result<Port, DpdkError> {
        if nb_rx == 0 || nb_tx == 0 {
            return Err(DpdkError::Invalid("a port needs at least one RX and one TX queue".into()));
        }
        {
            let mut g = OWNED_PORTS.lock().map_err(|_| DpdkError::Busy("port registry".into()))?;
            let set = g.get_or_insert_with(HashSet::new);
            if !set.insert(port.0) {
                return Err(DpdkError::Busy(format!("port {} is already configured", port.0)));
            }
        }
        let release = |e: DpdkError| {
            if let Ok(mut g) = OWNED_PORTS.lock() {
                if let Some(s) = g.as_mut() {
                    s.remove(&port.0);
                }
            }
            e
        };
        Self::configure_owned(port, nb_rx, nb_tx, pool, conf).map_err(release)
    }

    fn configure_owned(
        port: PortId,
        nb_rx: u16,
        nb_tx: u16,
        pool: &Mempool,
        conf: PortConf,
    ) -> Result<Port, DpdkError> {
        let p = port.0;
        // SAFETY: read-only validity check.
        if unsafe { ffi::rte_eth_dev_is_valid_port(p) } == 0 {
            return Err(DpdkError::Invalid(format!("no port {p}")));
        }
        let di = dev_info(port)?;
        if nb_rx > di.max_rx_queues || nb_tx > di.max_tx_queues {
            return Err(DpdkError::Invalid(format!(
                "port {p} supports {} rx / {} tx queues, asked {nb_rx}/{nb_tx}",
                di.max_rx_queues, di.max_tx_queues
            )));
        }
        if let Some(m) = conf.mtu {
            let frame = u32::from(m) + L2_OVERHEAD - 4;
            if m > di.max_mtu || m < di.min_mtu || frame > di.max_rx_pktlen {
                return Err(DpdkError::Invalid(format!(
                    "port {p}: MTU {m} outside the device's range {}..={} (max frame {})",
                    di.min_mtu, di.max_mtu, di.max_rx_pktlen
                )));
            }
        }
        // SAFETY: reading immutable exported constants of the shim.
        let (rss_want, scatter, multi_seg) = unsafe {
            (
                shim_const(&ffi::shim_RTE_ETH_RSS_IP)
                    | shim_const(&ffi::shim_RTE_ETH_RSS_TCP)
                    | shim_const(&ffi::shim_RTE_ETH_RSS_UDP),
                shim_const(&ffi::shim_RTE_ETH_RX_OFFLOAD_SCATTER),
                shim_const(&ffi::shim_RTE_ETH_TX_OFFLOAD_MULTI_SEGS),
            )
        };

        let mut ec = ffi::rte_eth_conf::default();
        let mut rss_hf = 0;
        if conf.rss && nb_rx > 1 && di.flow_type_rss_offloads != 0 {
            rss_hf = di.flow_type_rss_offloads & rss_want;
            if rss_hf == 0 {
                rss_hf = di.flow_type_rss_offloads;
            }
            ec.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
            ec.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        if let Some(m) = conf.mtu {
            ec.rxmode.mtu = m as u32;
        }
        let mtu_goal = conf.mtu.map(u32::from).unwrap_or(1500);
        let rx_scatter = mtu_goal + L2_OVERHEAD > pool.seg_capacity() as u32
            && di.rx_offload_capa & scatter != 0;
        if rx_scatter {
            ec.rxmode.offloads |= scatter;
        }
        let tx_multi_seg = di.tx_offload_capa & multi_seg != 0;
        if tx_multi_seg {
            ec.txmode.offloads |= multi_seg;
        }
        // SAFETY: ec is a fully initialised rte_eth_conf that outlives the call.
        check("rte_eth_dev_configure", unsafe {
            ffi::rte_eth_dev_configure(p, nb_rx, nb_tx, &ec)
        })?;

        // From here on the device is configured: closing it on error is
        // done by PortInner's Drop, so build that first.
        let mut mac = ffi::rte_ether_addr::default();
        // SAFETY: mac is a valid out pointer.
        check("rte_eth_macaddr_get", unsafe { ffi::rte_eth_macaddr_get(p, &mut mac) })?;
        let info = PortInfo {
            driver: cstr_or_empty(di.driver_name),
            name: port_name_raw(port).unwrap_or_default(),
            rss: rss_hf != 0,
            rss_hf,
            rx_scatter,
            tx_multi_seg,
            max_rx_queues: di.max_rx_queues,
            max_tx_queues: di.max_tx_queues,
            max_mtu: di.max_mtu,
        };
        let n_claim = nb_rx.max(nb_tx) as usize;
        let port_obj = Port {
            inner: Arc::new(PortInner {
                id: port,
                nb_rx,
                nb_tx,
                mac: mac.addr_bytes,
                info,
                started: AtomicBool::new(false),
                claimed: (0..n_claim).map(|_| AtomicBool::new(false)).collect(),
                n_claimed: AtomicUsize::new(0),
                _pool: pool.clone(),
            }),
        };

        if let Some(m) = conf.mtu {
            // SAFETY: configured, not started; plain setter.
            check("rte_eth_dev_set_mtu", unsafe { ffi::rte_eth_dev_set_mtu(p, m) })?;
        }
        let (mut rxd, mut txd) = (conf.rx_desc, conf.tx_desc);
        // SAFETY: valid out pointers to u16.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            ffi::rte_eth_dev_adjust_nb_rx_tx_desc(p, &mut rxd, &mut txd)
        })?;
        // SAFETY: plain query.
        let sock = unsafe { ffi::rte_eth_dev_socket_id(p) };
        let sock = if sock < 0 { ffi::SOCKET_ID_ANY as u32 } else { sock as u32 };
        for q in 0..nb_rx {
            // SAFETY: configured port, q < nb_rx; NULL rxconf = device
            // defaults; the pool outlives the port (PortInner holds it).
            check("rte_eth_rx_queue_setup", unsafe {
                ffi::rte_eth_rx_queue_setup(p, q, rxd, sock, std::ptr::null(), pool.as_ptr())
            })?;
        }
        for q in 0..nb_tx {
            // SAFETY: configured port, q < nb_tx; NULL txconf = defaults
            // (the port-level offloads set above apply).
            check("rte_eth_tx_queue_setup", unsafe {
                ffi::rte_eth_tx_queue_setup(p, q, txd, sock, std::ptr::null())
            })?;
        }
        Ok(port_obj)
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        self.inner.id
    }

    /// What configure found and chose.
    pub fn info(&self) -> &PortInfo {
        &self.inner.info
    }

    /// Number of RX queues.
    pub fn nb_rx_queues(&self) -> u16 {
        self.inner.nb_rx
    }

    /// Number of TX queues.
    pub fn nb_tx_queues(&self) -> u16 {
        self.inner.nb_tx
    }

    /// Starts the port. Fails with `Busy` while queue handles are out.
    pub fn start(&mut self) -> Result<(), DpdkError> {
        self.no_queues_out("start")?;
        // SAFETY: configured port with every queue set up; no burst or other
        // control call can run concurrently (no queue handles are out, and
        // Port's bursts and control calls need &mut self).
        check("rte_eth_dev_start", unsafe { ffi::rte_eth_dev_start(self.inner.id.0) })?;
        self.inner.started.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Stops the port. Fails with `Busy` while queue handles are out.
    pub fn stop(&mut self) -> Result<(), DpdkError> {
        self.no_queues_out("stop")?;
        // SAFETY: as in start.
        check("rte_eth_dev_stop", unsafe { ffi::rte_eth_dev_stop(self.inner.id.0) })?;
        self.inner.started.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn no_queues_out(&self, what: &str) -> Result<(), DpdkError> {
        if self.inner.n_claimed.load(Ordering::SeqCst) != 0 {
            return Err(DpdkError::Busy(format!(
                "cannot {what} port {} while queue handles are held",
                self.inner.id.0
            )));
        }
        Ok(())
    }

    /// The port's MAC address (read at configure time).
    pub fn mac(&self) -> [u8; 6] {
        self.inner.mac
    }

    /// The MTU as the device reports it now (case D4: never assume 1500).
    pub fn mtu(&self) -> Result<u16, DpdkError> {
        read_mtu(self.inner.id)
    }

    /// Enables or disables promiscuous mode.
    pub fn set_promiscuous(&mut self, on: bool) -> Result<(), DpdkError> {
        let p = self.inner.id.0;
        // SAFETY: configured port; plain setters.
        let rc = unsafe {
            if on {
                ffi::rte_eth_promiscuous_enable(p)
            } else {
                ffi::rte_eth_promiscuous_disable(p)
            }
        };
        check("rte_eth_promiscuous_enable/disable", rc).map(|_| ())
    }

    /// Whether promiscuous mode is on.
    pub fn promiscuous(&self) -> bool {
        // SAFETY: plain query.
        unsafe { ffi::rte_eth_promiscuous_get(self.inner.id.0) == 1 }
    }

    /// The port's counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        read_stats(self.inner.id)
    }

    /// Receives up to `max` frames from RX queue `queue`, appended to
    /// `out`. Returns how many arrived; 0 if the queue is out of range,
    /// held by a [`PortQueue`], or the port is stopped.
    pub fn rx_burst(&mut self, queue: QueueId, out: &mut Vec<Mbuf>, max: usize) -> usize {
        if !self.queue_free(queue, self.inner.nb_rx) {
            return 0;
        }
        rx_burst_raw(&self.inner, queue, out, max)
    }

    /// Sends `pkts` on TX queue `queue`. The first `n` (the return value)
    /// now belong to the device; the unsent rest stays in `pkts`, owned.
    pub fn tx_burst(&mut self, queue: QueueId, pkts: &mut Vec<Mbuf>) -> usize {
        if !self.queue_free(queue, self.inner.nb_tx) {
            return 0;
        }
        tx_burst_raw(&self.inner, queue, pkts)
    }

    fn queue_free(&self, q: QueueId, n: u16) -> bool {
        q.0 < n
            && self
                .inner
                .claimed
                .get(q.0 as usize)
                .map(|c| !c.load(Ordering::Acquire))
                .unwrap_or(false)
    }

    /// Takes the exclusive handle for RX queue `queue` and TX queue `queue`
    /// (a queue pair, one per worker). `None` if out of range or taken.
    /// While any handle is out, `start`/`stop` fail with `Busy`.
    pub fn take_queue(&self, queue: QueueId) -> Option<PortQueue> {
        if queue.0 >= self.inner.nb_rx || queue.0 >= self.inner.nb_tx {
            return None;
        }
        let slot = self.inner.claimed.get(queue.0 as usize)?;
        if slot
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        self.inner.n_claimed.fetch_add(1, Ordering::SeqCst);
        Some(PortQueue {
            inner: self.inner.clone(),
            queue,
        })
    }
}

/// Entries per `rte_eth_rss_reta_entry64` group (`RTE_ETH_RETA_GROUP_SIZE`).
const RETA_GROUP: usize = 64;

/// Maps an RSS control call's return code, turning `-ENOTSUP` (and
/// `-EOPNOTSUPP`) into [`DpdkError::NotSupported`].
fn check_rss(op: &'static str, driver: &str, rc: i32) -> Result<(), DpdkError> {
    if rc == -libc::ENOTSUP || rc == -libc::EOPNOTSUPP {
        return Err(DpdkError::NotSupported { op, driver: driver.to_string() });
    }
    check(op, rc).map(|_| ())
}

impl Port {
    /// RETA entries the device has (`dev_info.reta_size`); 0 when it has none.
    pub fn reta_size(&self) -> Result<u16, DpdkError> {
        Ok(dev_info(self.inner.id)?.reta_size)
    }

    /// The RSS redirection table: one RX queue id per entry, `reta_size`
    /// entries. `NotSupported` when the PMD has no RETA to report.
    pub fn rss_reta_query(&self) -> Result<Vec<u16>, DpdkError> {
        let size = self.reta_size()? as usize;
        if size == 0 {
            return Err(DpdkError::NotSupported { op: "rte_eth_dev_rss_reta_query", driver: self.inner.info.driver.clone() });
        }
        let groups = size.div_ceil(RETA_GROUP);
        let mut conf = vec![ffi::rte_eth_rss_reta_entry64::default(); groups];
        for (i, g) in conf.iter_mut().enumerate() {
            let n = (size - i * RETA_GROUP).min(RETA_GROUP);
            g.mask = if n == RETA_GROUP { u64::MAX } else { (1u64 << n) - 1 };
        }
        // SAFETY: conf holds ceil(size / 64) groups, which is what DPDK
        // reads and writes for reta_size = size; the masks select only
        // entries below size.
        let rc = unsafe { ffi::rte_eth_dev_rss_reta_query(self.inner.id.0, conf.as_mut_ptr(), size as u16) };
        check_rss("rte_eth_dev_rss_reta_query", &self.inner.info.driver, rc)?;
        Ok((0..size).map(|i| conf[i / RETA_GROUP].reta[i % RETA_GROUP]).collect())
    }

    /// Replaces the RSS redirection table. `reta` must have exactly
    /// `reta_size` entries, each a configured RX queue. `NotSupported` when
    /// the PMD cannot update its RETA (net_tap, net_ring, net_null here).
    ///
    /// Order with the workers (issue 3 §4): tell the workers first
    /// ([`crate::worker::handoff::Fabric::set_reta`]) so each moves the
    /// connections the new table gives to another queue, then apply it
    /// here. Frames that still arrive at the old queue in between are
    /// forwarded by the owner directory (DESIGN.md, "Data flow").
    pub fn rss_reta_update(&mut self, reta: &[u16]) -> Result<(), DpdkError> {
        let size = self.reta_size()? as usize;
        if size == 0 {
            return Err(DpdkError::NotSupported { op: "rte_eth_dev_rss_reta_update", driver: self.inner.info.driver.clone() });
        }
        if reta.len() != size {
            return Err(DpdkError::Invalid(format!("the RETA of port {} has {size} entries, got {}", self.inner.id.0, reta.len())));
        }
        if let Some(q) = reta.iter().find(|&&q| q >= self.inner.nb_rx) {
            return Err(DpdkError::Invalid(format!("RETA names RX queue {q}, port {} has {}", self.inner.id.0, self.inner.nb_rx)));
        }
        let groups = size.div_ceil(RETA_GROUP);
        let mut conf = vec![ffi::rte_eth_rss_reta_entry64::default(); groups];
        for (i, &q) in reta.iter().enumerate() {
            let g = &mut conf[i / RETA_GROUP];
            g.mask |= 1u64 << (i % RETA_GROUP);
            g.reta[i % RETA_GROUP] = q;
        }
        // SAFETY: as in rss_reta_query; &mut self keeps other control
        // calls on this port out (bursts on queues may run concurrently,
        // which DPDK allows for RETA updates).
        let rc = unsafe { ffi::rte_eth_dev_rss_reta_update(self.inner.id.0, conf.as_mut_ptr(), size as u16) };
        check_rss("rte_eth_dev_rss_reta_update", &self.inner.info.driver, rc)
    }

    /// The RSS hash key in use (`rte_eth_dev_rss_hash_conf_get`).
    /// `NotSupported` when the PMD does not report one.
    pub fn rss_hash_key(&self) -> Result<Vec<u8>, DpdkError> {
        let di = dev_info(self.inner.id)?;
        // 40 bytes when the device does not say (the common key size).
        let len = if di.hash_key_size == 0 { 40 } else { di.hash_key_size as usize };
        let mut key = vec![0u8; len];
        let mut rc = ffi::rte_eth_rss_conf { rss_key: key.as_mut_ptr(), rss_key_len: len as u8, rss_hf: 0 };
        // SAFETY: rss_key points to len writable bytes and rss_key_len says
        // so; DPDK writes at most that many.
        let r = unsafe { ffi::rte_eth_dev_rss_hash_conf_get(self.inner.id.0, &mut rc) };
        check_rss("rte_eth_dev_rss_hash_conf_get", &self.inner.info.driver, r)?;
        if rc.rss_key.is_null() {
            return Err(DpdkError::NotSupported { op: "rte_eth_dev_rss_hash_conf_get", driver: self.inner.info.driver.clone() });
        }
        let got = rc.rss_key_len as usize;
        if got > 0 && got < len {
            key.truncate(got);
        }
        Ok(key)
    }
}

fn port_name_raw(port: PortId) -> Option<String> {
    let mut buf = [0 as c_char; ffi::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes, the most DPDK writes.
    let rc = unsafe { ffi::rte_eth_dev_get_name_by_port(port.0, buf.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    Some(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

fn read_mtu(port: PortId) -> Result<u16, DpdkError> {
    let mut mtu: u16 = 0;
    // SAFETY: valid out pointer.
    check("rte_eth_dev_get_mtu", unsafe { ffi::rte_eth_dev_get_mtu(port.0, &mut mtu) })?;
    Ok(mtu)
}

fn read_stats(port: PortId) -> Result<PortStats, DpdkError> {
    let mut s = ffi::rte_eth_stats::default();
    // SAFETY: valid out pointer to a zeroed rte_eth_stats.
    check("rte_eth_stats_get", unsafe { ffi::rte_eth_stats_get(port.0, &mut s) })?;
    Ok(PortStats {
        rx_packets: s.ipackets,
        tx_packets: s.opackets,
        rx_bytes: s.ibytes,
        tx_bytes: s.obytes,
        rx_missed: s.imissed,
        rx_errors: s.ierrors,
        tx_errors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    })
}

fn rx_burst_raw(inner: &PortInner, q: QueueId, out: &mut Vec<Mbuf>, max: usize) -> usize {
    let max = max.min(u16::MAX as usize);
    if max == 0 || !inner.started.load(Ordering::Relaxed) {
        return 0;
    }
    out.reserve(max);
    let len = out.len();
    // SAFETY: the caller holds exclusive use of queue q (a PortQueue or
    // &mut Port with the queue unclaimed); `out` has room for `max` more
    // pointers and Mbuf is repr(transparent) over a non-null mbuf pointer.
    let n = unsafe {
        let dst = out.as_mut_ptr().add(len) as *mut *mut ffi::rte_mbuf;
        ffi::shim_rte_eth_rx_burst(inner.id.0, q.0, dst, max as u16)
    } as usize;
    // SAFETY: the driver wrote n (<= max) valid, non-null mbufs that we now own.
    unsafe { out.set_len(len + n.min(max)) };
    n
}

fn tx_burst_raw(inner: &PortInner, q: QueueId, pkts: &mut Vec<Mbuf>) -> usize {
    let len = pkts.len();
    if len == 0 || !inner.started.load(Ordering::Relaxed) {
        return 0;
    }
    let n = len.min(u16::MAX as usize);
    // SAFETY: exclusive use of queue q (as in rx); the first n elements are
    // valid mbuf pointers laid out as `struct rte_mbuf *[n]`.
    let sent = unsafe {
        ffi::shim_rte_eth_tx_burst(inner.id.0, q.0, pkts.as_mut_ptr() as *mut *mut ffi::rte_mbuf, n as u16)
    } as usize;
    let sent = sent.min(n);
    if sent > 0 {
        // SAFETY: the first `sent` mbufs now belong to the driver: shift the
        // unsent tail down over them without dropping them, then shrink.
        unsafe {
            let base = pkts.as_mut_ptr();
            std::ptr::copy(base.add(sent), base, len - sent);
            pkts.set_len(len - sent);
        }
    }
    sent
}

/// Exclusive handle to one RX/TX queue pair of a port, for one worker
/// thread. Holds the port open; dropping it releases the queue.
pub struct PortQueue {
    inner: Arc<PortInner>,
    queue: QueueId,
}

impl std::fmt::Debug for PortQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortQueue")
            .field("port", &self.inner.id)
            .field("queue", &self.queue)
            .finish()
    }
}

impl Drop for PortQueue {
    fn drop(&mut self) {
        if let Some(c) = self.inner.claimed.get(self.queue.0 as usize) {
            c.store(false, Ordering::Release);
        }
        self.inner.n_claimed.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PortQueue {
    /// The port id.
    pub fn port_id(&self) -> PortId {
        self.inner.id
    }

    /// The queue index (same for RX and TX).
    pub fn queue(&self) -> QueueId {
        self.queue
    }

    /// The port's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.inner.mac
    }

    /// The device's MTU now.
    pub fn mtu(&self) -> Result<u16, DpdkError> {
        read_mtu(self.inner.id)
    }

    /// The port's counters (all queues).
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        read_stats(self.inner.id)
    }

    /// As [`Port::rx_burst`] on this queue.
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        rx_burst_raw(&self.inner, self.queue, out, max)
    }

    /// As [`Port::tx_burst`] on this queue.
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        tx_burst_raw(&self.inner, self.queue, pkts)
    }
}
