//! The frame I/O boundary between a worker loop and a NIC queue pair.

/// One RX/TX queue pair as the worker sees it: whole Ethernet frames in,
/// whole frames out. Implemented by a DPDK queue pair
/// ([`crate::worker::dpdk_io::DpdkQueue`]) and by in-memory pipes in tests.
pub trait FrameIo {
    /// Receives one burst and calls `f` once per frame with its bytes.
    /// Returns the number of frames delivered. Multi-segment RX chains are
    /// linearised into a scratch buffer first (case D3), so `f` always sees
    /// a whole frame; the receive buffers are released before this returns.
    fn rx_burst(&mut self, f: &mut dyn FnMut(&[u8])) -> usize;

    /// Queues a copy of `frame` for transmission (in a chain of buffers if
    /// it is larger than one buffer's data room). Sends a burst once enough
    /// frames are buffered. Returns false if the frame could not be queued
    /// (no buffers, or too large); that drop is counted.
    fn tx_frame(&mut self, frame: &[u8]) -> bool;

    /// Sends every buffered frame now. Frames the NIC refuses (after a
    /// bounded number of retries) are freed and counted as dropped.
    fn flush(&mut self);
}
