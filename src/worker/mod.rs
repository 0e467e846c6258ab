//! The worker: one poll-mode loop per core. [`core::Worker`] is the
//! sans-IO part (frames in, frames out, `now` passed in) that the tests
//! drive over an in-memory pipe; [`runtime`] runs it on DPDK queues.

pub mod conn;
pub mod core;
pub mod dpdk_io;
pub mod fleet;
pub mod handoff;
pub mod io;
pub mod pipe;
pub mod runtime;
pub mod stats;
pub mod tickets;

pub use self::core::{Worker, WorkerParams};
