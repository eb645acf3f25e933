//! The dispatch decision: virtual service lookup, the connection table
//! (keep, expire or schedule), and the hand-off to `forward`. The reference
//! model in `tandem_dataplane::model` follows this file step for step; a
//! change here needs the same change there (the differential test says so).

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::XdpContext};
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
        count(reason);
        return XDP_PASS;
    }
    let key = ServiceKey { addr: pkt.dst, port: pkt.dport, proto: pkt.proto, family: pkt.family };
    // SAFETY: the value is a plain u32 copied out at once.
    match unsafe { maps::SERVICES.get(&key) } {
        Some(id) => {
            let id = *id;
            dispatch(ctx, pkt, id)
        }
        None => forward::reverse_nat(ctx.ctx, pkt),
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
        match maps::REAL_ACTIVE.get(self.id * MAX_REALS + idx) {
            Some(a) => {
                let a = *a;
                if a > u32::MAX as u64 { u32::MAX } else { a as u32 }
            }
            None => 0,
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
        maps::MH_TABLE.get(self.mh_slot * MH_MAX_SIZE + pos).copied()
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

/// Adds `delta` to a real server's active-connection count.
#[inline(always)]
fn active_add(slot: u32, delta: u64) {
    if let Some(p) = maps::REAL_ACTIVE.get_ptr_mut(slot) {
        // SAFETY: p points into the map value, valid and 8-byte aligned.
        // The BPF target has no `AtomicU64::fetch_add`; this is BPF_XADD.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, delta) };
    }
}

#[inline(always)]
fn dispatch(ctx: &XdpContext, pkt: &mut Pkt, id: u32) -> u32 {
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
    let Some(settings) = maps::SETTINGS.get(0) else {
        count(Reason::BadServiceConfig);
        return XDP_PASS;
    };
    let now = unsafe { bpf_ktime_get_ns() };
    let fkey = FlowKey {
        src: pkt.src,
        dst: pkt.dst,
        sport: pkt.sport,
        dport: pkt.dport,
        proto: pkt.proto,
        _pad: [0; 3],
    };
    let base = id * MAX_REALS;

    let mut existing: Option<u32> = None;
    if let Some(fp) = maps::FLOWS.get_ptr_mut(&fkey) {
        // SAFETY: fp points to the map value; copied out before use.
        let flow = unsafe { *fp };
        let real = if flow.real_idx < MAX_REALS { maps::REALS.get(base + flow.real_idx) } else { None };
        match sched::check_flow(&flow, real, svc, pkt.proto, now, settings) {
            FlowCheck::Keep => {
                let mut flags = flow.flags;
                if pkt.proto == PROTO_TCP && sched::tcp_closes_flow(pkt.tcp_flags) {
                    if flags & FLOW_COUNTED != 0 {
                        active_add(base + flow.real_idx, u64::MAX);
                    }
                    flags = (flags | FLOW_CLOSING) & !FLOW_COUNTED;
                }
                // SAFETY: as above; the entry may be updated concurrently by
                // another CPU, which at worst loses a timestamp update.
                unsafe {
                    (*fp).last_seen_ns = now;
                    (*fp).flags = flags;
                }
                existing = Some(flow.real_idx);
            }
            check => {
                count(if check == FlowCheck::Expired { Reason::FlowExpired } else { Reason::NodestExpired });
                if flow.flags & FLOW_COUNTED != 0 && flow.real_idx < MAX_REALS {
                    active_add(base + flow.real_idx, u64::MAX);
                }
                let _ = maps::FLOWS.remove(&fkey);
            }
        }
    }

    match existing {
        Some(idx) => forward::forward(ctx.ctx, pkt, svc, idx, false),
        None => {
            if pkt.proto == PROTO_TCP && !sched::tcp_opens_flow(pkt.tcp_flags) {
                count(Reason::TcpNoFlow);
                return XDP_PASS;
            }
            pkt.service_id = id;
            pkt.now = now;
            // Make sure the stores reach the map before the tail call.
            core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
            // SAFETY: tail_call only returns if the stage is missing.
            unsafe {
                let _ = maps::STAGES.tail_call(ctx, maps::STAGE_NEW_FLOW);
            }
            // Only reached if the stage is not installed.
            count(Reason::BadServiceConfig);
            XDP_PASS
        }
    }
}

/// The new-flow stage (`tandem_new_flow`): schedules the flow that
/// `dispatch` found no entry for, records it, and forwards the packet.
#[inline(always)]
pub fn new_flow(ctx: &XdpContext) -> u32 {
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
    let idx = schedule(svc, pkt);
    if idx >= MAX_REALS {
        count(Reason::NoReal);
        return XDP_DROP;
    }
    let fkey = FlowKey {
        src: pkt.src,
        dst: pkt.dst,
        sport: pkt.sport,
        dport: pkt.dport,
        proto: pkt.proto,
        _pad: [0; 3],
    };
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
    } else {
        count(Reason::FlowInsertFailed);
    }
    forward::forward(ctx.ctx, pkt, svc, idx, true)
}

/// Runs the service's scheduler for a new flow; `u32::MAX` when no real
/// server is available. A separate BPF function to keep the stack small.
#[inline(never)]
fn schedule(svc: &Service, pkt: &Pkt) -> u32 {
    let Some(least) = maps::LEAST_SCRATCH.get_ptr_mut(0) else {
        return u32::MAX;
    };
    let view = KernelView { id: svc.id, mh_slot: svc.mh_slot, least };
    let addrs = FlowAddrs { src: &pkt.src, dst: &pkt.dst, sport: pkt.sport };
    match sched::schedule(&view, svc, addrs) {
        Some(i) => i,
        None => u32::MAX,
    }
}
