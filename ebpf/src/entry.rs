//! The XDP entry (`tandem_xdp`): parses the frame into the per-CPU
//! scratch, answers ARP, consumes heartbeats, drops what the VIP guard
//! refuses (`deadman`: fenced, or a VIP this node does not own), passes ports without
//! services to the reverse NAT path, and starts the pipeline: UDP to a
//! SIP port goes to the SIP stage, everything else to the connection
//! table (`conn`). See `stage` for the whole pipeline. It looks up no
//! service and no flow itself.

use aya_ebpf::programs::XdpContext;
use tandem_common::*;

use crate::{
    arp, conn, deadman, forward, heartbeat,
    maps::{self, count},
    parse,
    stage::{self, MODE_DISPATCH, MODE_NONE, Next, Pkt, SCRATCH, Stage},
};

/// Entry point of `tandem_xdp`.
#[inline(always)]
pub fn run(ctx: &XdpContext) -> Next {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return Next::Pass;
    };
    // SAFETY: the per-CPU scratch value is ours for the duration of the run.
    let pkt: &mut Pkt = unsafe { &mut *scratch };
    if let Err(reason) = parse::parse(ctx, pkt) {
        if reason == Reason::Arp {
            return arp::arp(ctx.ctx);
        }
        if matches!(reason, Reason::NotUdpTcp | Reason::Ipv4Fragment | Reason::Ipv6Fragment | Reason::Ipv6ExtHeader)
            && let Some(drop) = deadman::other_ip_guard(ctx.ctx)
        {
            count(drop);
            return Next::Drop;
        }
        count(reason);
        return Next::Pass;
    }
    if let Some(cfg) = heartbeat::is_heartbeat(pkt) {
        return heartbeat::process(ctx.ctx, pkt, cfg);
    }
    if let Some(drop) = deadman::vip_guard(&pkt.dst) {
        count(drop);
        return Next::Drop;
    }
    let port_flags = match maps::PORT_FLAGS.get(port_index(pkt.proto, pkt.dport)) {
        Some(f) => *f,
        None => 0,
    };
    if port_flags == 0 {
        return forward::reverse_nat(ctx.ctx, pkt);
    }
    pkt.port_flags = port_flags;
    if port_flags & PORT_SIP != 0 && pkt.proto == PROTO_UDP {
        pkt.sip_mode = MODE_DISPATCH;
        stage::tail_call(ctx, Stage::Sip);
        // Only reached if the stage is not installed.
        pkt.sip_mode = MODE_NONE;
    }
    conn::connections(ctx, pkt)
}
