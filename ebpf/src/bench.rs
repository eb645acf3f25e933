//! Benchmark support: `BPF_PROG_TEST_RUN` with `repeat` does not restore
//! the frame between iterations, so a rewriting program would meet its own
//! output. This wrapper copies the original frame back from `BENCH_FRAME`
//! and tail-calls the program under test (`BENCH_TARGET[0]`); the floor is
//! measured through the same wrapper.

use aya_ebpf::{EbpfContext, helpers::generated::bpf_xdp_store_bytes, programs::XdpContext};
use tandem_common::{BENCH_FRAME_MAX, XDP_ABORTED};

use crate::maps;

#[inline(always)]
pub fn restore_and_call(ctx: &XdpContext) -> u32 {
    let Some(f) = maps::BENCH_FRAME.get_ptr_mut(0) else {
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
    // SAFETY: tail_call only returns if the call failed.
    let _ = ctx.as_ptr();
    unsafe {
        let _ = maps::BENCH_TARGET.tail_call(ctx, 0);
    }
    XDP_ABORTED
}

/// Counts a frame in `BENCH_COUNT` and drops it.
#[inline(always)]
pub fn sink() -> u32 {
    if let Some(p) = maps::BENCH_COUNT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot.
        unsafe { *p += 1 };
    }
    tandem_common::XDP_DROP
}

/// Redirects every frame to `BENCH_FWD[0]` through the devmap.
#[inline(always)]
pub fn forward_all() -> u32 {
    let ifindex = match maps::BENCH_FWD.get(0) {
        Some(i) => *i,
        None => return tandem_common::XDP_PASS,
    };
    match maps::TX_PORTS.redirect(ifindex, 0) {
        Ok(v) => v,
        Err(_) => tandem_common::XDP_DROP,
    }
}
