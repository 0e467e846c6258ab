//! Session table, sealing, repository (issue 3 and 4).
//!
//! - [`table`]: the shared, lock-free session table (take-and-purge).
//! - [`seal`]: sealing of records before they enter the table.
//! - [`sync`]: std or loom atomics (loom under `cfg(loom)`).
//! - [`repository`]: the fleet repository client (Redis, take = GETDEL).

pub mod seal;
pub mod sync;
pub mod table;
pub mod repository;
