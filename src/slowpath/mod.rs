//! The slow path: threads that run the expensive steps of full handshakes
//! (key share generation and agreement, CertificateVerify signatures) so a
//! worker loop never stalls on them (DESIGN.md, "Layers").
//!
//! Jobs come from the TLS state machine as plain data ([`CryptoJob`]); a
//! worker submits one with a tag naming its connection and later collects
//! the [`JobResult`] from its own reply channel. The queue is bounded: when
//! it is full, `submit` hands the job back and the worker runs it inline
//! (counted), so a burst slows the worker down rather than growing memory.

use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::entropy::OsEntropy;
use crate::tls::{CryptoJob, JobResult};

/// A job on its way to the slow path.
pub struct Task {
    pub tag: u64,
    pub job: CryptoJob,
    pub reply: Sender<Done>,
}

/// A finished job on its way back to its worker.
pub struct Done {
    pub tag: u64,
    pub result: JobResult,
}

/// The thread pool.
pub struct SlowPath {
    tx: Option<Sender<Task>>,
    threads: Vec<JoinHandle<()>>,
}

impl SlowPath {
    /// Starts `threads` slow-path threads behind a queue of `queue_cap` jobs.
    pub fn start(threads: usize, queue_cap: usize) -> std::io::Result<SlowPath> {
        let (tx, rx) = bounded::<Task>(queue_cap.max(1));
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let rx: Receiver<Task> = rx.clone();
            handles.push(std::thread::Builder::new().name(format!("baton-slow-{i}")).spawn(move || {
                crate::dpdk::signals::block_async_signals();
                let mut rng = OsEntropy::new();
                for t in rx.iter() {
                    let result = t.job.run(&mut rng);
                    // A worker that went away no longer wants the result.
                    let _ = t.reply.send(Done { tag: t.tag, result });
                }
            })?);
        }
        Ok(SlowPath { tx: Some(tx), threads: handles })
    }

    /// A handle workers submit through.
    pub fn handle(&self) -> SlowPathHandle {
        SlowPathHandle { tx: self.tx.clone().expect("slow path running") }
    }
}

impl Drop for SlowPath {
    fn drop(&mut self) {
        self.tx.take();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

/// A worker's end: submit jobs, collect results.
#[derive(Clone)]
pub struct SlowPathHandle {
    tx: Sender<Task>,
}

impl SlowPathHandle {
    /// Queues a job; gives it back if the queue is full or the pool stopped.
    pub fn submit(&self, task: Task) -> Result<(), Task> {
        self.tx.try_send(task).map_err(|e| match e {
            TrySendError::Full(t) | TrySendError::Disconnected(t) => t,
        })
    }
}
