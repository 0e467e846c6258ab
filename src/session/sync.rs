//! The atomics the session table is built from: `std`'s normally, loom's
//! under `cfg(loom)`, so the model checker runs the production table source
//! (DESIGN.md, "Why our own TCP and TLS state machines", concurrency).

#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
pub use std::sync::atomic::{fence, AtomicU64, Ordering};
