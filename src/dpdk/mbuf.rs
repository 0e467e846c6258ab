//! Owned packet buffers (`rte_mbuf` chains).

use std::ptr::NonNull;

use super::{ffi, Mempool};

/// One owned mbuf chain. Dropping it frees the whole chain
/// (`rte_pktmbuf_free`). Layout is one pointer, so a `Vec<Mbuf>` is the
/// `struct rte_mbuf **` array the burst functions take.
#[repr(transparent)]
pub struct Mbuf {
    ptr: NonNull<ffi::rte_mbuf>,
}

// SAFETY: an mbuf is owned by exactly one Mbuf value (no aliasing handles
// exist), and freeing it from another thread is allowed: it returns to its
// pool through the multi-producer ring ops (see Mempool).
unsafe impl Send for Mbuf {}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("pkt_len", &self.pkt_len())
            .field("nb_segs", &self.nb_segs())
            .finish()
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the chain (never handed to DPDK, or handed back), so
        // this is its only free.
        unsafe { ffi::shim_rte_pktmbuf_free(self.ptr.as_ptr()) };
    }
}

impl Mbuf {
    /// Allocates one empty mbuf from `pool`; `None` when the pool is empty.
    pub fn alloc(pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: the pool is live (we hold a handle) and is a pktmbuf pool.
        let p = unsafe { ffi::shim_rte_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(p).map(|ptr| Mbuf { ptr })
    }

    /// Allocates `n` mbufs at once (all or nothing) and appends them to `out`.
    pub fn alloc_bulk(pool: &Mempool, out: &mut Vec<Mbuf>, n: usize) -> bool {
        let Ok(count) = u32::try_from(n) else {
            return false;
        };
        out.reserve(n);
        let len = out.len();
        // SAFETY: `out` has room for n more pointers after len; Mbuf is
        // repr(transparent) over a non-null pointer, so the spare capacity
        // is an array of `struct rte_mbuf *` that DPDK fills on success.
        let rc = unsafe {
            let dst = out.as_mut_ptr().add(len) as *mut *mut ffi::rte_mbuf;
            ffi::shim_rte_pktmbuf_alloc_bulk(pool.as_ptr(), dst, count)
        };
        if rc != 0 {
            return false;
        }
        // SAFETY: on success DPDK wrote n valid, non-null, freshly allocated
        // mbuf pointers into those slots.
        unsafe { out.set_len(len + n) };
        true
    }

    /// Total bytes over the chain.
    pub fn pkt_len(&self) -> u32 {
        // SAFETY: ptr is a live mbuf we own.
        unsafe { ffi::shim_mbuf_pkt_len(self.ptr.as_ptr()) }
    }

    /// Bytes in the first segment.
    pub fn data_len(&self) -> u16 {
        // SAFETY: ptr is a live mbuf we own.
        unsafe { ffi::shim_mbuf_data_len(self.ptr.as_ptr()) }
    }

    /// Segments in the chain.
    pub fn nb_segs(&self) -> u16 {
        // SAFETY: ptr is a live mbuf we own.
        unsafe { ffi::shim_mbuf_nb_segs(self.ptr.as_ptr()) }
    }

    /// The first segment's bytes. Frames may span several segments: use
    /// [`Mbuf::segments`] or [`Mbuf::copy_to`] for the whole frame.
    pub fn data(&self) -> &[u8] {
        seg_slice(self.ptr)
    }

    /// The first segment's bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let len = self.data_len() as usize;
        // SAFETY: mtod points at data_len initialised bytes inside the
        // segment's buffer; &mut self gives exclusive access to the chain.
        unsafe {
            let p = ffi::shim_rte_pktmbuf_mtod(self.ptr.as_ptr()) as *mut u8;
            std::slice::from_raw_parts_mut(p, len)
        }
    }

    /// Iterates the segments of the chain, first to last.
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            next: Some(self.ptr),
            _chain: std::marker::PhantomData,
        }
    }

    /// Appends the whole chain's bytes to `out` (linearises it).
    pub fn copy_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.pkt_len() as usize);
        for s in self.segments() {
            out.extend_from_slice(s);
        }
    }

    /// Free space after the data of the last segment.
    pub fn tailroom(&self) -> u16 {
        // SAFETY: last_seg returns a live segment of our chain.
        unsafe { ffi::shim_rte_pktmbuf_tailroom(self.last_seg().as_ptr()) }
    }

    /// Grows the last segment by `len` bytes and returns them (zeroed);
    /// `None` when the tailroom is too small.
    pub fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: ptr is our live chain head; rte_pktmbuf_append updates
        // data_len/pkt_len and returns NULL when there is no room.
        let p = unsafe { ffi::shim_rte_pktmbuf_append(self.ptr.as_ptr(), len) } as *mut u8;
        if p.is_null() {
            return None;
        }
        // SAFETY: p points at `len` bytes inside the last segment's buffer,
        // owned by us through &mut self; we zero them before handing out a
        // slice so no uninitialised memory is ever read.
        unsafe {
            std::ptr::write_bytes(p, 0, len as usize);
            Some(std::slice::from_raw_parts_mut(p, len as usize))
        }
    }

    /// Appends `src` to the last segment when it fits in the tailroom.
    pub fn append_from(&mut self, src: &[u8]) -> bool {
        let Ok(len) = u16::try_from(src.len()) else {
            return false;
        };
        // SAFETY: as in append.
        let p = unsafe { ffi::shim_rte_pktmbuf_append(self.ptr.as_ptr(), len) } as *mut u8;
        if p.is_null() {
            return false;
        }
        // SAFETY: p points at src.len() writable bytes of our segment, which
        // cannot overlap `src` (a shared borrow while we hold &mut self).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), p, src.len()) };
        true
    }

    /// Appends `tail` (a chain) to this chain. On failure (too many
    /// segments) `tail` is handed back untouched.
    pub fn chain(&mut self, tail: Mbuf) -> Result<(), Mbuf> {
        // SAFETY: both are live chains we own; on success DPDK links tail
        // into our chain, so ownership of tail passes to self (forgotten
        // below, freed with self).
        let rc = unsafe { ffi::shim_rte_pktmbuf_chain(self.ptr.as_ptr(), tail.ptr.as_ptr()) };
        if rc == 0 {
            std::mem::forget(tail);
            Ok(())
        } else {
            Err(tail)
        }
    }

    /// Gives up ownership; the caller must pass the pointer to DPDK (which
    /// frees it) or back to [`Mbuf::from_raw`].
    pub fn into_raw(self) -> *mut ffi::rte_mbuf {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p
    }

    /// Takes ownership of a raw mbuf chain.
    ///
    /// # Safety
    /// `p` must be a live mbuf chain that nothing else owns or frees.
    pub unsafe fn from_raw(p: NonNull<ffi::rte_mbuf>) -> Mbuf {
        Mbuf { ptr: p }
    }

    fn last_seg(&self) -> NonNull<ffi::rte_mbuf> {
        let mut cur = self.ptr;
        // SAFETY: walking `next` of a well-formed chain we own; the last
        // segment's next is NULL.
        while let Some(n) = NonNull::new(unsafe { ffi::shim_mbuf_next(cur.as_ptr()) }) {
            cur = n;
        }
        cur
    }
}

fn seg_slice<'a>(seg: NonNull<ffi::rte_mbuf>) -> &'a [u8] {
    // SAFETY: seg is a live segment of a chain the caller borrows for 'a;
    // mtod points at data_len initialised bytes of its buffer.
    unsafe {
        let len = ffi::shim_mbuf_data_len(seg.as_ptr()) as usize;
        let p = ffi::shim_rte_pktmbuf_mtod(seg.as_ptr()) as *const u8;
        if len == 0 || p.is_null() {
            return &[];
        }
        std::slice::from_raw_parts(p, len)
    }
}

/// Iterator over the segments of an [`Mbuf`] chain.
pub struct Segments<'a> {
    next: Option<NonNull<ffi::rte_mbuf>>,
    _chain: std::marker::PhantomData<&'a Mbuf>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let cur = self.next?;
        // SAFETY: cur is a live segment of the chain borrowed for 'a.
        self.next = NonNull::new(unsafe { ffi::shim_mbuf_next(cur.as_ptr()) });
        Some(seg_slice(cur))
    }
}
