//! tandem's benchmark object: programs and maps for measuring the
//! dispatcher, built beside it (`tandem-bench`) and loaded only by the
//! benchmarks and tests (`tandem_dataplane`'s bench path), never by
//! `tandemd`. It holds no part of the dispatch decision and shares no map
//! with the dataplane object: the wrapper reaches the dispatcher through
//! its own program array.
//!
//! `BPF_PROG_TEST_RUN` with `repeat` does not restore the frame between
//! iterations, so a rewriting program would meet its own output. The
//! wrapper (`tandem_bench_restore`) copies the original frame back from
//! `BENCH_FRAME` and tail-calls the program under test (`BENCH_TARGET[0]`:
//! the dispatcher, or the floor); the floor (`tandem_trivial_tx`) is
//! measured through the same wrapper. For live frames: a sink that counts
//! and drops (`tandem_sink`) and a baseline forwarder that redirects
//! every frame without looking at it (`tandem_bench_fwd`).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{
        EbpfContext,
        bindings::xdp_action,
        helpers::generated::bpf_xdp_store_bytes,
        macros::{map, xdp},
        maps::{Array, DevMapHash, PerCpuArray, ProgramArray},
        programs::XdpContext,
    };
    use tandem_common::{BENCH_FRAME_MAX, BenchFrame, XDP_ABORTED, XDP_DROP, XDP_PASS};

    /// The frame the wrapper copies back before each iteration.
    #[map]
    static BENCH_FRAME: Array<BenchFrame> = Array::with_max_entries(1, 0);
    /// Frames the sink counted.
    #[map]
    static BENCH_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
    /// Where the baseline forwarder redirects to (an ifindex).
    #[map]
    static BENCH_FWD: Array<u32> = Array::with_max_entries(1, 0);
    /// The program under test, tail-called by the wrapper.
    #[map]
    static BENCH_TARGET: ProgramArray = ProgramArray::with_max_entries(1, 0);
    /// The baseline forwarder's redirect devmap.
    #[map]
    static BENCH_TX_PORTS: DevMapHash = DevMapHash::with_max_entries(64, 0);

    /// The benchmark floor: sends every frame back where it came from.
    #[xdp]
    pub fn tandem_trivial_tx(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_TX
    }

    /// Benchmark wrapper: restores the frame (writing the running counter
    /// at `vary_off`, if set) then tail-calls the program under test.
    #[xdp]
    pub fn tandem_bench_restore(ctx: XdpContext) -> u32 {
        let Some(f) = BENCH_FRAME.get_ptr_mut(0) else {
            return XDP_ABORTED;
        };
        // SAFETY: f points to the single map value.
        let len = unsafe { (*f).len } as usize;
        if len == 0 || len > BENCH_FRAME_MAX {
            return XDP_ABORTED;
        }
        // SAFETY: f points to the single map value; the offset is bounded below.
        unsafe {
            let off = ((*f).vary_off & 0xff) as usize;
            if off != 0 && off + 4 <= len && off + 4 <= BENCH_FRAME_MAX {
                (*f).seq = (*f).seq.wrapping_add(1);
                let b = (*f).seq.to_be_bytes();
                (*f).data[off] = b[0];
                (*f).data[off + 1] = b[1];
                (*f).data[off + 2] = b[2];
                (*f).data[off + 3] = b[3];
            }
        }
        // SAFETY: data holds BENCH_FRAME_MAX bytes and len is at most that.
        let rc = unsafe { bpf_xdp_store_bytes(ctx.ctx, 0, (*f).data.as_ptr() as *mut _, len as u32) };
        if rc != 0 {
            return XDP_ABORTED;
        }
        let _ = ctx.as_ptr();
        // SAFETY: tail_call only returns if the call failed.
        unsafe {
            let _ = BENCH_TARGET.tail_call(&ctx, 0);
        }
        XDP_ABORTED
    }

    /// Benchmark sink: counts a frame in `BENCH_COUNT` and drops it (far
    /// end of the live-frames path).
    #[xdp]
    pub fn tandem_sink(_ctx: XdpContext) -> u32 {
        if let Some(p) = BENCH_COUNT.get_ptr_mut(0) {
            // SAFETY: per-CPU slot.
            unsafe { *p += 1 };
        }
        XDP_DROP
    }

    /// Benchmark baseline: a trivial forwarder that redirects every frame
    /// to the interface in `BENCH_FWD[0]` (through `BENCH_TX_PORTS`),
    /// without looking at it.
    #[xdp]
    pub fn tandem_bench_fwd(_ctx: XdpContext) -> u32 {
        let ifindex = match BENCH_FWD.get(0) {
            Some(i) => *i,
            None => return XDP_PASS,
        };
        match BENCH_TX_PORTS.redirect(ifindex, 0) {
            Ok(v) => v,
            Err(_) => XDP_DROP,
        }
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }

    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 4] = *b"GPL\0";
}

#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!("tandem-bench is built for bpfel-unknown-none by tandem-dataplane's build script");
}
