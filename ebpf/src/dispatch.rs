//! The dispatch decision: virtual service lookup, the connection table
//! (keep, expire or schedule), and the hand-off to `forward`. The reference
//! model in `tandem_dataplane::model` follows this file step for step; a
//! change here needs the same change there (the differential test says so).
//!
//! UDP datagrams to a port where some service has `FLAG_SIP_PERSIST` go to
//! the SIP stage (`crate::sip`) first; it comes back here
//! ([`connections`]) for datagrams without a Call-ID.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{helpers::generated::bpf_ktime_get_coarse_ns, programs::XdpContext};
use tandem_common::{
    sched::{self, FlowAddrs, FlowCheck, SchedView},
    *,
};

use crate::{
    forward,
    maps::{self, count},
    parse::{self, Pkt},
};

/// Entry point of `tandem_xdp`.
#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let Some(scratch) = maps::SCRATCH.get_ptr_mut(0) else {
        return XDP_PASS;
    };
    // SAFETY: the per-CPU scratch value is ours for the duration of the run.
    let pkt: &mut Pkt = unsafe { &mut *scratch };
    if let Err(reason) = parse::parse(ctx, pkt) {
        if reason == Reason::Arp {
            return crate::heartbeat::arp(ctx.ctx);
        }
        count(reason);
        return XDP_PASS;
    }
    if let Some(cfg) = crate::heartbeat::is_heartbeat(pkt) {
        return crate::heartbeat::process(ctx.ctx, pkt, cfg);
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
        pkt.sip_mode = crate::sip::MODE_DISPATCH;
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        // SAFETY: tail_call only returns if the stage is missing.
        unsafe {
            let _ = maps::STAGES.tail_call(ctx, maps::STAGE_SIP);
        }
        pkt.sip_mode = crate::sip::MODE_NONE;
    }
    connections(ctx, pkt)
}

/// The connection-table path of a packet to a port with services.
///
/// Established flows are found first, by their 5-tuple alone: the flow
/// names its service, which is checked against the packet, so the common
/// case costs one hash lookup. Everything else looks the service up by
/// (VIP, port, protocol).
#[inline(always)]
pub fn connections(ctx: &XdpContext, pkt: &mut Pkt) -> u32 {
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
    let svc = match service(id) {
        Some(s) => s,
        None => {
            count(Reason::BadServiceConfig);
            return XDP_PASS;
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
            active_add(old.service_id * MAX_REALS + old.real_idx, u64::MAX);
        }
        let _ = maps::FLOWS.remove(&fkey);
        maps::flow_event(&fkey, &old, FLOW_EVENT_REMOVED);
    }
    new_flow_stage(ctx, pkt, svc)
}

/// Service `id`, if it is configured.
#[inline(always)]
pub fn service(id: u32) -> Option<&'static Service> {
    if id >= MAX_SERVICES {
        return None;
    }
    match maps::SERVICE_CONF.get(id) {
        Some(s) if s.id == id && s.n_reals <= MAX_REALS => Some(s),
        _ => None,
    }
}

/// The service a flow entry names, if it is still configured for this
/// packet's (VIP, port, protocol) and keeps connections.
#[inline(always)]
fn flow_service(sid: u32, pkt: &Pkt) -> Option<&'static Service> {
    let svc = service(sid)?;
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
pub fn new_flow_stage(ctx: &XdpContext, pkt: &mut Pkt, svc: &Service) -> u32 {
    let id = svc.id;
    let load_aware = svc.flags & FLAG_REPORTED_LOAD != 0;
    if pkt.proto == PROTO_TCP && !sched::tcp_opens_flow(pkt.tcp_flags) {
        count(Reason::TcpNoFlow);
        return XDP_PASS;
    }
    pkt.service_id = id;
    pkt.now = now_ns();
    // Make sure the stores reach the map before the tail call.
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    // SAFETY: tail_call only returns if the stage is missing.
    unsafe {
        let stage = if load_aware { maps::STAGE_NEW_FLOW_LOAD } else { maps::STAGE_NEW_FLOW };
        let _ = maps::STAGES.tail_call(ctx, stage);
    }
    // Only reached if the stage is not installed.
    count(Reason::BadServiceConfig);
    XDP_PASS
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
) -> u32 {
    let id = svc.id;
    let Some(settings) = maps::SETTINGS.get(0) else {
        count(Reason::BadServiceConfig);
        return XDP_PASS;
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
                    active_add(base + flow.real_idx, u64::MAX);
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
                pkt.sip_mode = crate::sip::MODE_LEARN;
                pkt.service_id = id;
                pkt.real_idx = flow.real_idx;
                core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
                // SAFETY: tail_call only returns if the stage is missing.
                unsafe {
                    let _ = maps::STAGES.tail_call(ctx, maps::STAGE_SIP);
                }
                pkt.sip_mode = crate::sip::MODE_NONE;
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
                active_add(base + flow.real_idx, u64::MAX);
            }
            let _ = maps::FLOWS.remove(fkey);
            maps::flow_event(fkey, &flow, FLOW_EVENT_REMOVED);
            new_flow_stage(ctx, pkt, svc)
        }
    }
}

/// The scheduler's view of one service's maps.
struct KernelView {
    id: u32,
    mh_slot: u32,
    least: *mut sched::LeastScratch,
}

impl SchedView for KernelView {
    #[inline(always)]
    fn real(&self, idx: u32) -> Option<&RealServer> {
        if idx >= MAX_REALS {
            return None;
        }
        maps::REALS.get(self.id * MAX_REALS + idx)
    }
    #[inline(always)]
    fn active(&self, idx: u32) -> u32 {
        if idx >= MAX_REALS {
            return 0;
        }
        // The program's count and the host's adjustment: two lookups,
        // only when an lc-family scheduler picks a real server.
        let slot = self.id * MAX_REALS + idx;
        let kernel = match maps::REAL_ACTIVE.get(slot) {
            Some(a) => *a,
            None => 0,
        };
        let adj = match maps::REAL_ACTIVE_ADJ.get(slot) {
            Some(a) => *a,
            None => 0,
        };
        let a = active_count(kernel, adj);
        if a > u32::MAX as u64 {
            u32::MAX
        } else {
            a as u32
        }
    }
    #[inline(always)]
    fn reported(&self, idx: u32) -> RealLoad {
        if idx >= MAX_REALS {
            return RealLoad::default();
        }
        match maps::REAL_LOAD.get(self.id * MAX_REALS + idx) {
            Some(l) => *l,
            None => RealLoad::default(),
        }
    }
    #[inline(always)]
    fn wrr_entry(&self, pos: u32) -> Option<u32> {
        if pos >= WRR_SEQ_MAX {
            return None;
        }
        maps::WRR_SEQ.get(self.id * WRR_SEQ_MAX + pos).copied()
    }
    #[inline(always)]
    fn shdh_entry(&self, pos: u32) -> Option<u32> {
        if pos >= SHDH_BUCKETS {
            return None;
        }
        maps::SHDH_TABLE.get(self.id * SHDH_BUCKETS + pos).copied()
    }
    #[inline(always)]
    fn mh_entry(&self, pos: u32) -> Option<u32> {
        if pos >= MH_MAX_SIZE || self.mh_slot >= MH_SLOTS {
            return None;
        }
        maps::MH_TABLE
            .get(self.mh_slot * MH_MAX_SIZE + pos)
            .copied()
    }
    #[inline(always)]
    fn cursor(&self) -> u32 {
        match maps::SCHED_STATE.get(self.id) {
            Some(s) => s.cursor,
            None => 0,
        }
    }
    #[inline(always)]
    fn least_scratch(&self) -> *mut sched::LeastScratch {
        self.least
    }
    #[inline(always)]
    fn set_cursor(&self, v: u32) {
        if let Some(p) = maps::SCHED_STATE.get_ptr_mut(self.id) {
            // SAFETY: a plain store; concurrent schedulers on other CPUs may
            // race on it, which only perturbs the rotation (IPVS takes a lock).
            unsafe { (*p).cursor = v };
        }
    }
}

/// Adds `delta` to a real server's active-connection count (the
/// program's half, `REAL_ACTIVE`; the host never writes it).
#[inline(always)]
pub fn active_add(slot: u32, delta: u64) {
    if let Some(p) = maps::REAL_ACTIVE.get_ptr_mut(slot) {
        // SAFETY: p points into the map value, valid and 8-byte aligned.
        // The BPF target has no `AtomicU64::fetch_add`; this is BPF_XADD.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, delta) };
    }
}

/// The new-flow stage (`tandem_new_flow`): schedules the flow that
/// `dispatch` found no entry for, records it, and forwards the packet.
#[inline(always)]
pub fn new_flow<const LOAD_AWARE: bool>(ctx: &XdpContext) -> u32 {
    let Some(scratch) = maps::SCRATCH.get_ptr(0) else {
        return XDP_PASS;
    };
    // SAFETY: written by dispatch on this CPU just before the tail call.
    let pkt: &Pkt = unsafe { &*scratch };
    let id = pkt.service_id;
    if id >= MAX_SERVICES {
        count(Reason::BadServiceConfig);
        return XDP_PASS;
    }
    let svc: &Service = match maps::SERVICE_CONF.get(id) {
        Some(s) if s.id == id && s.n_reals <= MAX_REALS => s,
        _ => {
            count(Reason::BadServiceConfig);
            return XDP_PASS;
        }
    };
    let idx = schedule::<LOAD_AWARE>(svc, pkt);
    if idx >= MAX_REALS {
        count(Reason::NoReal);
        return XDP_DROP;
    }
    if pkt.sip_mode == crate::sip::MODE_NEW_CALL {
        crate::sip::new_call(svc, pkt.call_hash, idx, pkt.now);
        return forward::forward(ctx.ctx, pkt, svc, idx, forward::FWD_NEW);
    }
    if svc.flags & FLAG_ONE_PACKET != 0 {
        // One-packet scheduling: no connection entry, nothing counted.
        return forward::forward(ctx.ctx, pkt, svc, idx, forward::FWD_NEW);
    }
    let fkey = FlowKey::new(pkt.src, pkt.dst, pkt.sport, pkt.dport, pkt.proto);
    let value = FlowValue {
        last_seen_ns: pkt.now,
        created_ns: pkt.now,
        service_id: id,
        real_idx: idx,
        flags: FLOW_COUNTED,
        _pad: 0,
    };
    if maps::FLOWS.insert(&fkey, &value, 0).is_ok() {
        active_add(id * MAX_REALS + idx, 1);
        maps::flow_event(&fkey, &value, FLOW_EVENT_NEW);
    } else {
        count(Reason::FlowInsertFailed);
    }
    forward::forward(ctx.ctx, pkt, svc, idx, forward::FWD_NEW)
}

/// Runs the service's scheduler for a new flow; `u32::MAX` when no real
/// server is available. A separate BPF function to keep the stack small.
#[inline(never)]
fn schedule<const LOAD_AWARE: bool>(svc: &Service, pkt: &Pkt) -> u32 {
    let Some(least) = maps::LEAST_SCRATCH.get_ptr_mut(0) else {
        return u32::MAX;
    };
    let view = KernelView {
        id: svc.id,
        mh_slot: svc.mh_slot,
        least,
    };
    let call = if pkt.sip_mode == crate::sip::MODE_NEW_CALL {
        Some(tandem_common::sip::callid_sched_hash(pkt.call_hash))
    } else {
        None
    };
    let addrs = FlowAddrs {
        src: &pkt.src,
        dst: &pkt.dst,
        sport: pkt.sport,
        call,
    };
    match sched::schedule_with::<KernelView, LOAD_AWARE>(&view, svc, addrs) {
        Some(i) => i,
        None => u32::MAX,
    }
}
