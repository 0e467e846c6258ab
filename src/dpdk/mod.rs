//! DPDK bindings and safe wrappers: the only place with `unsafe` FFI.
pub mod ffi;
