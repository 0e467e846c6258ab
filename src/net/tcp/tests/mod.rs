//! Scripted exchanges with explicit time and byte-level expectations.
mod util;

mod cases;
mod close;
mod codec;
mod data;
mod handshake;
mod loss;
mod sim;
