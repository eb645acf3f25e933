//! Everything the XDP program (`tandem-ebpf`) and the host side
//! (`tandem-dataplane`) must agree on, byte for byte: map key/value layouts,
//! counter indices, flags, and the scheduling, hashing and checksum code.
//!
//! The crate is `no_std` and allocation-free so that the same source is
//! compiled into the kernel program and into the host's reference model. It
//! must not grow anything that only one side can use: no packet parsing
//! (each side parses its own way, which is what the differential test checks)
//! and no I/O. The one parser here, the SIP Call-ID scanner (`sip`), is
//! shared on purpose (the host hashes Call-IDs the same way) and the
//! model re-implements its rules independently.
#![no_std]

pub mod abi;
pub mod csum;
pub mod hash;
pub mod heartbeat;
pub mod node;
pub mod sched;
pub mod sip;

pub use abi::*;
