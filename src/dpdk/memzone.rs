//! Named, zeroed regions of DPDK memory (hugepages when the EAL has them),
//! for structures shared by all workers of a process (the session table).

use std::ffi::CString;
use std::ptr::NonNull;

use super::error::{check, DpdkError};
use super::{ffi, Eal};

/// A reserved memzone; freed (`rte_memzone_free`) on drop.
pub struct Memzone {
    mz: NonNull<ffi::rte_memzone>,
    addr: NonNull<u8>,
    len: usize,
    name: String,
    _eal: Eal,
}

// SAFETY: a memzone is plain memory owned by this value until drop; the
// value hands out only its address and length, never references, so
// moving or sharing it between threads cannot create aliasing on its own.
unsafe impl Send for Memzone {}
// SAFETY: as above: &Memzone exposes only immutable metadata.
unsafe impl Sync for Memzone {}

impl std::fmt::Debug for Memzone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memzone")
            .field("name", &self.name)
            .field("len", &self.len)
            .finish()
    }
}

impl Memzone {
    /// Reserves `len` bytes named `name` (unique in the process), on NUMA
    /// `socket` (`None`: any), cache-line aligned, zero-filled.
    pub fn reserve(
        eal: &Eal,
        name: &str,
        len: usize,
        socket: Option<u32>,
    ) -> Result<Memzone, DpdkError> {
        if len == 0 {
            return Err(DpdkError::Invalid("empty memzone".into()));
        }
        let cname = CString::new(name)
            .map_err(|_| DpdkError::Invalid(format!("memzone name with NUL: {name:?}")))?;
        let socket = socket.map(|s| s as i32).unwrap_or(ffi::SOCKET_ID_ANY);
        // SAFETY: cname is valid for the call (DPDK copies it); EAL is up.
        let p = unsafe { ffi::rte_memzone_reserve(cname.as_ptr(), len, socket, 0) };
        let mz = NonNull::new(p as *mut ffi::rte_memzone)
            .ok_or_else(|| DpdkError::last("rte_memzone_reserve"))?;
        // SAFETY: mz points at a live memzone descriptor; `addr` is the
        // active member of its address union for every memzone.
        let (addr, got) = unsafe {
            let m = mz.as_ptr();
            ((*m).__bindgen_anon_1.addr as *mut u8, (*m).len)
        };
        let Some(addr) = NonNull::new(addr) else {
            // SAFETY: freeing the zone we just reserved.
            unsafe { ffi::rte_memzone_free(mz.as_ptr()) };
            return Err(DpdkError::Invalid("memzone without an address".into()));
        };
        // SAFETY: [addr, addr+got) is the zone's memory, owned by us alone.
        unsafe { std::ptr::write_bytes(addr.as_ptr(), 0, got) };
        Ok(Memzone {
            mz,
            addr,
            len: got,
            name: name.to_string(),
            _eal: eal.clone(),
        })
    }

    /// Size in bytes (at least what was asked).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false (an empty zone cannot be reserved).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The zone's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Start of the zone: `len()` bytes, valid until this value drops.
    /// Whoever writes through it is responsible for synchronisation.
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr.as_ptr()
    }

    /// The zone as 64-bit atomics (for the session table's arena, which is
    /// shared by all workers and touched only through atomics).
    pub fn as_atomic_words(&self) -> &[std::sync::atomic::AtomicU64] {
        // SAFETY: memzones are cache-line aligned (rte_memzone_reserve with
        // align 0 gives RTE_CACHE_LINE_SIZE), so 8-byte alignment holds;
        // the zone was zero-filled in `reserve`, and zero is a valid
        // AtomicU64; the memory lives until `self` drops, which the
        // returned borrow cannot outlive; every access through the slice is
        // atomic, so sharing it between threads is sound.
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr() as *const std::sync::atomic::AtomicU64, self.len / 8) }
    }
}

impl Drop for Memzone {
    fn drop(&mut self) {
        // SAFETY: we reserved this zone and free it once; pointers derived
        // from as_ptr() must not outlive self (documented there).
        let rc = unsafe { ffi::rte_memzone_free(self.mz.as_ptr()) };
        if let Err(e) = check("rte_memzone_free", rc) {
            log::warn!("dpdk: {e}");
        }
    }
}
