//! Backend pools and balancing decisions (sans-IO).

pub mod pool;
pub mod ports;
pub mod proxy_v2;

pub use pool::{Backend, BackendPool};
pub use ports::SourcePorts;
