//! Backend pools and balancing decisions (sans-IO).

pub mod pool;
pub mod ports;

pub use pool::{Backend, BackendPool};
pub use ports::SourcePorts;
