//! tandem's XDP programs.
//!
//! `tandem_xdp` is attached to the director's interfaces: it parses the
//! frame (`parse`), looks the packet up as a virtual service or a NAT reply
//! (`dispatch`), schedules new flows with the shared IPVS schedulers
//! (`tandem_common::sched`) and rewrites and sends the frame (`forward`).
//! Anything it does not understand is passed to the stack untouched, with a
//! per-reason counter (`maps::REASONS`).
//!
//! The other programs are helpers: `tandem_pass` for the far end of veths
//! that receive XDP_TX/REDIRECT frames, and the two benchmark programs.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

#[cfg(target_arch = "bpf")]
mod bench;
#[cfg(target_arch = "bpf")]
mod dispatch;
#[cfg(target_arch = "bpf")]
mod forward;
#[cfg(target_arch = "bpf")]
mod heartbeat;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod parse;
#[cfg(target_arch = "bpf")]
mod sip;

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

    /// The dispatcher.
    #[xdp]
    pub fn tandem_xdp(ctx: XdpContext) -> u32 {
        crate::dispatch::run(&ctx)
    }

    /// The new-flow stage of the dispatcher (tail-called from `tandem_xdp`).
    #[xdp]
    pub fn tandem_new_flow(ctx: XdpContext) -> u32 {
        crate::dispatch::new_flow::<false>(&ctx)
    }

    /// The new-flow stage for load-aware services (`STAGES[1]`).
    #[xdp]
    pub fn tandem_new_flow_load(ctx: XdpContext) -> u32 {
        crate::dispatch::new_flow::<true>(&ctx)
    }

    /// The SIP stage (`STAGES[2]`): Call-ID persistence.
    #[xdp]
    pub fn tandem_sip(ctx: XdpContext) -> u32 {
        crate::sip::run(&ctx)
    }

    /// Passes everything: attached to the far end of a veth so that the
    /// kernel accepts XDP_TX/REDIRECT frames toward it.
    #[xdp]
    pub fn tandem_pass(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_PASS
    }

    /// The benchmark floor: sends every frame back where it came from.
    #[xdp]
    pub fn tandem_trivial_tx(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_TX
    }

    /// Benchmark wrapper: restores the frame then tail-calls the program
    /// under test.
    #[xdp]
    pub fn tandem_bench_restore(ctx: XdpContext) -> u32 {
        crate::bench::restore_and_call(&ctx)
    }

    /// Benchmark sink: counts and drops (far end of the live-frames path).
    #[xdp]
    pub fn tandem_sink(_ctx: XdpContext) -> u32 {
        crate::bench::sink()
    }

    /// Benchmark baseline: a trivial forwarder that redirects every frame
    /// to the interface in `BENCH_FWD[0]`, without looking at it.
    #[xdp]
    pub fn tandem_bench_fwd(_ctx: XdpContext) -> u32 {
        crate::bench::forward_all()
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
    eprintln!("tandem-ebpf is built for bpfel-unknown-none by tandem-dataplane's build script");
}
