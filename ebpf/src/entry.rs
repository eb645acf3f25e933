//! The XDP entry (`tandem_xdp`): parses the frame into the per-CPU
//! scratch, answers ARP, reflects and takes back echoes, consumes heartbeats, passes ports without
//! services to the reverse NAT path, and starts the pipeline: UDP to a
//! SIP port goes to the SIP stage, everything else to the connection
//! table (`conn`). Before any of that, the VIP guard drops traffic to a
//! configured VIP this node does not own, or owns while fenced; a
//! destination the VIP filter rules out skips both (`VIP_FILTER`). See
//! `stage` for the whole pipeline. It looks up no service and no flow
//! itself.

use aya_ebpf::programs::XdpContext;
use tandem_common::*;

use crate::{
    arp, conn, echo, forward, heartbeat,
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
        count(reason);
        return Next::Pass;
    }
    if let Some(cfg) = heartbeat::heartbeat_port(pkt) {
        if let Some(next) = echo::process(ctx.ctx, pkt, cfg.port) {
            return next;
        }
        if cfg.port == pkt.dport {
            return heartbeat::process(ctx.ctx, pkt, cfg);
        }
    }
    // Most packets a director sees that are not calls go to none of its
    // addresses of service: one array lookup tells (no hash), and they go
    // where a miss of every lookup below would take them.
    let Some(all_owned) = maps::vip_filter(&pkt.dst) else {
        return forward::reverse_nat(ctx.ctx, pkt);
    };
    if let Some(reason) = vip_guard(pkt, all_owned) {
        count(reason);
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

/// The VIP guard: IPv4 traffic that must neither reach the stack nor be
/// dispatched, and why. A configured VIP (`VIPS`) this node does not own
/// is a standby's (or a stepped-down node's): dropped, never passed (the
/// stack would answer with ICMP port unreachable) and never dispatched.
/// An owned VIP while the dead-man switch is tripped: dropped as well.
///
/// `all_owned` (this node owns every guarded VIP): unless the switch is
/// tripped, nothing is to be dropped, and no hash lookup is made.
#[inline(always)]
fn vip_guard(pkt: &Pkt, all_owned: bool) -> Option<Reason> {
    if pkt.family != FAMILY_V4 {
        return None;
    }
    if all_owned && !crate::deadman::fenced() {
        return None;
    }
    let d = &pkt.dst;
    let v4 = u32::from_ne_bytes([d[12], d[13], d[14], d[15]]);
    // SAFETY: only the presence of the keys is used.
    let owned = unsafe { maps::OWNED_VIPS.get(&v4) }.is_some();
    if owned {
        return if crate::deadman::fenced() { Some(Reason::DeadManDrop) } else { None };
    }
    // SAFETY: as above.
    if unsafe { maps::VIPS.get(&v4) }.is_some() { Some(Reason::VipNotOwned) } else { None }
}
