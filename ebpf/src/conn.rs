//! The connection-table stage of a packet to a port with services (part
//! of `tandem_xdp`, entered from `entry` or, for a datagram without a
//! Call-ID, from the SIP stage): an established flow keeps its real server
//! or expires; everything else has its service looked up and goes to the
//! new-flow stage. It schedules nothing itself (`new_flow` does). The
//! reference model in `tandem_dataplane::model` follows this file step for
//! step; a change here needs the same change there (the differential test
//! says so).

use aya_ebpf::{helpers::generated::bpf_ktime_get_coarse_ns, programs::XdpContext};
use tandem_common::{
    sched::{self, FlowCheck},
    *,
};

use crate::{
    forward,
    maps::{self, count},
    stage::{self, MODE_LEARN, MODE_NONE, Next, Pkt, Stage},
};

/// The connection-table path of a packet to a port with services.
///
/// Established flows are found first, by their 5-tuple alone: the flow
/// names its service, which is checked against the packet, so the common
/// case costs one hash lookup. Everything else looks the service up by
/// (VIP, port, protocol).
#[inline(always)]
pub fn connections(ctx: &XdpContext, pkt: &mut Pkt) -> Next {
    let port_flags = pkt.port_flags;
    let fkey = FlowKey::new(pkt.src, pkt.dst, pkt.sport, pkt.dport, pkt.proto);
    let flow = if port_flags & PORT_CONN != 0 {
        maps::FLOWS.get_ptr_mut(&fkey)
    } else {
        None
    };
    if let Some(fp) = flow {
        // SAFETY: fp points to the map value.
        let sid = unsafe { (*fp).service_id };
        if let Some(svc) = flow_service(sid, pkt) {
            return established(ctx, pkt, svc, fp, &fkey);
        }
    }
    let key = ServiceKey::new(pkt.dst, pkt.dport, pkt.proto, pkt.family);
    // SAFETY: the value is a plain u32 copied out at once.
    let id = match unsafe { maps::SERVICES.get(&key) } {
        Some(id) => *id,
        None => return forward::reverse_nat(ctx.ctx, pkt),
    };
    let svc = match maps::service(id) {
        Some(s) => s,
        None => {
            count(Reason::BadServiceConfig);
            return Next::Pass;
        }
    };
    if let Some(fp) = flow
        && svc.flags & FLAG_ONE_PACKET == 0
    {
        // A flow of another (removed or replaced) service: its real server
        // is gone for this service.
        // SAFETY: fp points to the map value; copied out before use.
        let old = unsafe { *fp };
        count(Reason::NodestExpired);
        if old.flags & FLOW_COUNTED != 0
            && old.service_id < MAX_SERVICES
            && old.real_idx < MAX_REALS
        {
            maps::active_add(old.service_id * MAX_REALS + old.real_idx, u64::MAX);
        }
        let _ = maps::FLOWS.remove(&fkey);
        maps::flow_event(&fkey, &old, FLOW_EVENT_REMOVED);
    }
    to_new_flow(ctx, pkt, svc)
}

/// The service a flow entry names, if it is still configured for this
/// packet's (VIP, port, protocol) and keeps connections.
#[inline(always)]
fn flow_service(sid: u32, pkt: &Pkt) -> Option<&'static Service> {
    let svc = maps::service(sid)?;
    if addr_eq(&svc.key.addr, &pkt.dst)
        && svc.key.port == pkt.dport
        && svc.key.proto == pkt.proto
        && svc.key.family == pkt.family
        && svc.flags & FLAG_ONE_PACKET == 0
    {
        Some(svc)
    } else {
        None
    }
}

/// Hands a packet that needs scheduling to the new-flow stage.
#[inline(always)]
pub fn to_new_flow(ctx: &XdpContext, pkt: &mut Pkt, svc: &Service) -> Next {
    let id = svc.id;
    let load_aware = svc.flags & FLAG_REPORTED_LOAD != 0;
    if pkt.proto == PROTO_TCP && !sched::tcp_opens_flow(pkt.tcp_flags) {
        count(Reason::TcpNoFlow);
        return Next::Pass;
    }
    pkt.service_id = id;
    pkt.now = now_ns();
    stage::tail_call(ctx, if load_aware { Stage::NewFlowLoad } else { Stage::NewFlow });
    // Only reached if the stage is not installed.
    count(Reason::BadServiceConfig);
    Next::Pass
}

/// Flow timestamps: the coarse clock (tick resolution) is enough for idle
/// timeouts of seconds and much cheaper than `bpf_ktime_get_ns`.
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: a helper without arguments.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// A packet of an existing flow of `svc`: keep it on its real server, or
/// expire the flow and schedule the packet anew.
#[inline(always)]
fn established(
    ctx: &XdpContext,
    pkt: &mut Pkt,
    svc: &Service,
    fp: *mut FlowValue,
    fkey: &FlowKey,
) -> Next {
    let id = svc.id;
    let Some(settings) = maps::SETTINGS.get(0) else {
        count(Reason::BadServiceConfig);
        return Next::Pass;
    };
    let now = now_ns();
    let base = id * MAX_REALS;
    // SAFETY: fp points to the map value; copied out before use.
    let flow = unsafe { *fp };
    let real = if flow.real_idx < MAX_REALS {
        maps::REALS.get(base + flow.real_idx)
    } else {
        None
    };
    match sched::check_flow(&flow, real, svc, pkt.proto, now, settings) {
        FlowCheck::Keep => {
            let mut flags = flow.flags;
            if pkt.proto == PROTO_TCP && sched::tcp_closes_flow(pkt.tcp_flags) {
                if flags & FLOW_COUNTED != 0 {
                    maps::active_add(base + flow.real_idx, u64::MAX);
                }
                flags = (flags | FLOW_CLOSING) & !FLOW_COUNTED;
            }
            // SAFETY: as above; another CPU may update the entry at the same
            // time, which at worst loses a timestamp update.
            unsafe {
                if flow.last_seen_ns != now {
                    (*fp).last_seen_ns = now;
                }
                if flags != flow.flags {
                    (*fp).flags = flags;
                }
            }
            if pkt.proto == PROTO_TCP && svc.flags & FLAG_SIP_PERSIST != 0 && pkt.payload_len > 0 {
                // A data segment: learn its Call-ID, if any, in the SIP
                // stage, which then forwards the segment.
                pkt.sip_mode = MODE_LEARN;
                pkt.service_id = id;
                pkt.real_idx = flow.real_idx;
                stage::tail_call(ctx, Stage::Sip);
                // Only reached if the stage is not installed.
                pkt.sip_mode = MODE_NONE;
            }
            forward::forward(ctx.ctx, pkt, svc, flow.real_idx, 0)
        }
        check => {
            count(if check == FlowCheck::Expired {
                Reason::FlowExpired
            } else {
                Reason::NodestExpired
            });
            if flow.flags & FLOW_COUNTED != 0 && flow.real_idx < MAX_REALS {
                maps::active_add(base + flow.real_idx, u64::MAX);
            }
            let _ = maps::FLOWS.remove(fkey);
            maps::flow_event(fkey, &flow, FLOW_EVENT_REMOVED);
            to_new_flow(ctx, pkt, svc)
        }
    }
}
