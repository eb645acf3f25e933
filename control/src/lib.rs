//! `tandem-control`: the control plane, `tandemd` and `tandemctl`.
//!
//! Building blocks, each usable and tested on its own: [`config`] (the
//! `tandem.toml` file), [`vip`] (adding/removing a virtual address and
//! sending gratuitous ARPs), [`uring`] (the io_uring reactor) and
//! [`admin`] (the admin socket protocol, server helpers and client).

pub mod addrworker;
pub mod admin;
pub mod cards;
pub mod config;
pub mod daemon;
pub mod hbsend;
pub mod link;
pub mod metrics;
pub mod pair;
pub mod pool;
pub mod sipprobe;
pub mod sync;
// The daemon still names `crate::syncrt::…`; the alias goes once it names `sync::runtime`.
pub use sync::runtime as syncrt;
pub mod uring;
pub mod vip;
pub mod witness;
