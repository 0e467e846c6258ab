//! Per-frame dispatch: frame bytes in, what to do with it out.

mod drop;

pub use drop::{DropCounters, DropReason};
