//! `baton demo`: the main job on an embedded default. A network namespace,
//! baton on a `net_tap` port inside it, a throwaway CA and certificate, and
//! a small HTTP backend on the kernel side of the TAP.
//!
//! Also home of the pieces the demo and the tests share: the built-in HTTP
//! backend ([`backend`]) and certificate generation ([`certs`]).

pub mod backend;
pub mod certs;
pub mod netns;
pub mod run;

pub use run::{demo, DemoOptions};
