//! Scripted exchanges with explicit time and byte-level expectations.
mod util;
