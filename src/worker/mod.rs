//! Poll-mode worker loop.
pub mod dpdk_io;
pub mod io;
