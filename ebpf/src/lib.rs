//! The XDP programs live in `main.rs` (built for `bpfel-unknown-none` by
//! `tandem-dataplane`'s build script). This library target only exists so
//! that the host workspace can name the crate as a build dependency.
#![no_std]
