//! The benchmark wrapper's frame (`BENCH_FRAME`, in the benchmark
//! object `tandem-bench`, which `tandemd` does not load).

/// Largest frame the benchmark wrapper restores.
pub const BENCH_FRAME_MAX: usize = 256;

/// Value of `BENCH_FRAME`: the frame the wrapper copies back each iteration.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BenchFrame {
    pub len: u32,
    /// If non-zero: before each iteration, a running counter is written
    /// (big-endian u32) at this offset of the frame, so that every
    /// iteration is a new flow (e.g. the source address).
    pub vary_off: u32,
    /// The running counter.
    pub seq: u32,
    pub _pad: u32,
    pub data: [u8; BENCH_FRAME_MAX],
}
