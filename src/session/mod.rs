//! Session table, sealing, repository (issue 3 and 4).
//!
//! - [`table`]: the shared, lock-free session table (take-and-purge).
//! - [`seal`]: sealing of records before they enter the table.
//! - [`sync`]: std or loom atomics (loom under `cfg(loom)`).

pub mod repository;
pub mod seal;
pub mod sync;
pub mod table;
