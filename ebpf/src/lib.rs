//! The XDP programs live in two objects, both built for
//! `bpfel-unknown-none` by `tandem-dataplane`'s build script: `main.rs`
//! (`tandem`, the dataplane `tandemd` loads) and `bin/tandem-bench.rs`
//! (`tandem-bench`, the benchmark programs, loaded only by benchmarks and
//! tests). This library target only exists so that the host workspace can
//! name the crate as a build dependency.
#![no_std]
