//! An in-memory packet pipe: the DPDK-free backend the tests drive the
//! worker through. Frames are queued as byte vectors, in order.

use std::collections::VecDeque;

use super::io::FrameIo;

/// One side of an in-memory link as the worker sees it: `rx` holds frames
/// for the worker, `tx` what the worker sent.
#[derive(Default)]
pub struct FramePipe {
    pub rx: VecDeque<Vec<u8>>,
    pub tx: VecDeque<Vec<u8>>,
    /// Most frames one `rx_burst` hands over (like a NIC burst size).
    pub burst: usize,
}

impl FramePipe {
    pub fn new() -> Self {
        FramePipe { rx: VecDeque::new(), tx: VecDeque::new(), burst: 32 }
    }
}

impl FrameIo for FramePipe {
    fn rx_burst(&mut self, f: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < self.burst.max(1) {
            let Some(frame) = self.rx.pop_front() else { break };
            f(&frame);
            n += 1;
        }
        n
    }

    fn tx_frame(&mut self, frame: &[u8]) -> bool {
        self.tx.push_back(frame.to_vec());
        true
    }

    fn flush(&mut self) {}
}
