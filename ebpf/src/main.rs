//! tandem's dataplane object: the XDP programs `tandemd` loads.
//!
//! `tandem_xdp` is attached to the director's interfaces; with the stages
//! it tail-calls (`tandem_new_flow`, `tandem_new_flow_load`, `tandem_sip`)
//! it parses the frame (`parse`), answers ARP (`arp`) and heartbeats
//! (`heartbeat`), reflects the peer's echoes and takes back its own (`echo`), looks the packet up in the connection table (`conn`)
//! and the SIP call table (`calls`), schedules new flows with the shared
//! IPVS schedulers (`new_flow`, `tandem_common::sched`) and rewrites and
//! sends the frame (`forward`). `stage` draws the pipeline and holds what
//! the stages pass each other; `maps` holds the tables, by concern.
//! Anything the dispatcher does not understand is passed to the stack
//! untouched, with a per-reason counter (`maps::REASONS`).
//!
//! `tandem_pass` is a helper for the far end of veths that receive
//! XDP_TX/REDIRECT frames. The benchmark programs are another object
//! (`bin/tandem-bench.rs`), which `tandemd` never loads.
//!
//! Modules import each other as a DAG: `stage` ← `parse` ← `forward`,
//! `heartbeat`, `arp`; `heartbeat` ← `echo`; `maps` → `stage`; `conn` → `forward`; `calls` →
//! `conn`; `new_flow` → `calls`; `entry` → all the stages it starts.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

#[cfg(target_arch = "bpf")]
mod arp;
#[cfg(target_arch = "bpf")]
mod calls;
#[cfg(target_arch = "bpf")]
mod conn;
#[cfg(target_arch = "bpf")]
mod deadman;
#[cfg(target_arch = "bpf")]
mod echo;
#[cfg(target_arch = "bpf")]
mod entry;
#[cfg(target_arch = "bpf")]
mod forward;
#[cfg(target_arch = "bpf")]
mod heartbeat;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod new_flow;
#[cfg(target_arch = "bpf")]
mod parse;
#[cfg(target_arch = "bpf")]
mod stage;

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

    /// The dispatcher.
    #[xdp]
    pub fn tandem_xdp(ctx: XdpContext) -> u32 {
        crate::entry::run(&ctx) as u32
    }

    /// The new-flow stage (`Stage::NewFlow`).
    #[xdp]
    pub fn tandem_new_flow(ctx: XdpContext) -> u32 {
        crate::new_flow::run::<false>(&ctx) as u32
    }

    /// The new-flow stage for load-aware services (`Stage::NewFlowLoad`).
    #[xdp]
    pub fn tandem_new_flow_load(ctx: XdpContext) -> u32 {
        crate::new_flow::run::<true>(&ctx) as u32
    }

    /// The exit fence: `sched_process_exit` marks the dead-man entry when
    /// the armed daemon's process exits (`deadman::on_exit`).
    #[aya_ebpf::macros::raw_tracepoint(tracepoint = "sched_process_exit")]
    pub fn tandem_exit_fence(_ctx: aya_ebpf::programs::RawTracePointContext) -> i32 {
        crate::deadman::on_exit();
        0
    }

    /// The SIP stage (`Stage::Sip`): Call-ID persistence.
    #[xdp]
    pub fn tandem_sip(ctx: XdpContext) -> u32 {
        crate::calls::run(&ctx) as u32
    }

    /// Passes everything: attached to the far end of a veth so that the
    /// kernel accepts XDP_TX/REDIRECT frames toward it.
    #[xdp]
    pub fn tandem_pass(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_PASS
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
