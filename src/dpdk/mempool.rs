//! Packet-buffer mempools (`rte_pktmbuf_pool_create`).

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use super::error::{check_ptr, DpdkError};
use super::{ffi, Eal};

/// `RTE_MBUF_DEFAULT_BUF_SIZE`: 2048 bytes of data room plus the headroom.
pub const DEFAULT_DATA_ROOM: u16 = ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
/// `RTE_PKTMBUF_HEADROOM`, reserved at the front of every segment.
pub const HEADROOM: u16 = ffi::RTE_PKTMBUF_HEADROOM as u16;

struct PoolInner {
    ptr: NonNull<ffi::rte_mempool>,
    size: u32,
    name: String,
    eal: Option<Eal>,
}

// SAFETY: an rte_mempool is built to be shared between threads: pools made by
// rte_pktmbuf_pool_create use the default "ring_mp_mc" ops (multi-producer,
// multi-consumer), and threads without an lcore id bypass the per-lcore
// caches. We only call thread-safe functions (get/put/counts) through it.
unsafe impl Send for PoolInner {}
// SAFETY: as above; &PoolInner only reaches thread-safe DPDK calls.
unsafe impl Sync for PoolInner {}

impl Drop for PoolInner {
    fn drop(&mut self) {
        let in_use = self.in_use();
        if in_use != 0 {
            // An mbuf from this pool still exists somewhere (in Rust or in a
            // device ring): freeing the pool would let that mbuf free into
            // released memory. Leak the pool, and with it the EAL handle, so
            // that rte_eal_cleanup never unmaps memory still in use.
            log::warn!(
                "dpdk: mempool {} dropped with {in_use} mbufs in use; leaking it",
                self.name
            );
            std::mem::forget(self.eal.take());
            return;
        }
        // SAFETY: the pool was created by rte_pktmbuf_pool_create, nobody
        // holds an mbuf from it (in-use count is 0) and this is the last
        // handle, so nothing can allocate from it any more.
        unsafe { ffi::rte_mempool_free(self.ptr.as_ptr()) };
    }
}

impl PoolInner {
    fn in_use(&self) -> u32 {
        // SAFETY: ptr is a live mempool (we own it until Drop).
        unsafe { ffi::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }
}

/// A pool of packet buffers. Cloning shares the pool; it is freed when the
/// last clone (ports hold one) is dropped and no mbuf is outstanding.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("size", &self.inner.size)
            .finish()
    }
}

impl Mempool {
    /// Creates a packet-buffer pool of `n_mbufs` buffers with a per-lcore
    /// cache of `cache` entries and `data_room` bytes per buffer
    /// (headroom included, as DPDK counts it; [`DEFAULT_DATA_ROOM`] for
    /// 2048 usable bytes). `socket: None` means any NUMA socket.
    /// Names must be unique in the process (DPDK refuses duplicates).
    pub fn new(
        eal: &Eal,
        name: &str,
        n_mbufs: u32,
        cache: u32,
        data_room: u16,
        socket: Option<u32>,
    ) -> Result<Mempool, DpdkError> {
        if data_room <= HEADROOM {
            return Err(DpdkError::Invalid(format!(
                "data room {data_room} does not exceed the headroom {HEADROOM}"
            )));
        }
        let cname = CString::new(name)
            .map_err(|_| DpdkError::Invalid(format!("mempool name with NUL: {name:?}")))?;
        let socket = socket.map(|s| s as i32).unwrap_or(ffi::SOCKET_ID_ANY);
        // SAFETY: cname is a valid C string for the duration of the call; the
        // EAL is initialised (we hold a handle); DPDK copies the name.
        let p = unsafe {
            ffi::rte_pktmbuf_pool_create(cname.as_ptr(), n_mbufs, cache, 0, data_room, socket)
        };
        let ptr = check_ptr("rte_pktmbuf_pool_create", p)?;
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                ptr,
                size: n_mbufs,
                name: name.to_string(),
                eal: Some(eal.handle()),
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of buffers the pool was created with.
    pub fn capacity(&self) -> u32 {
        self.inner.size
    }

    /// Buffers currently free (in the ring and the per-lcore caches).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: the pool is live while we hold the Arc.
        unsafe { ffi::rte_mempool_avail_count(self.inner.ptr.as_ptr()) }
    }

    /// Buffers currently allocated (held by Rust, or in device rings).
    /// Returns to 0 once everything is freed: the leak check.
    pub fn in_use_count(&self) -> u32 {
        self.inner.in_use()
    }

    /// Data room per buffer, headroom included.
    pub fn data_room(&self) -> u16 {
        // SAFETY: the pool is live and is a pktmbuf pool (its private area
        // holds the data room size, set by rte_pktmbuf_pool_create).
        unsafe { ffi::shim_rte_pktmbuf_data_room_size(self.inner.ptr.as_ptr()) }
    }

    /// Bytes of frame one fresh buffer can hold (data room minus headroom).
    pub fn seg_capacity(&self) -> u16 {
        self.data_room().saturating_sub(HEADROOM)
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.inner.ptr.as_ptr()
    }
}
