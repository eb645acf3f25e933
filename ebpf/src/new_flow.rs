//! The new-flow stage (`tandem_new_flow`, `tandem_new_flow_load`, entered
//! by tail call from `conn` or the SIP stage): runs the service's scheduler
//! (`tandem_common::sched`, over [`KernelView`] of the maps), records the
//! flow in the connection table or, for a SIP call, the call in `CALLS`,
//! and forwards the packet. It decides nothing about an existing flow or
//! call (`conn`, `calls` do).

use core::ffi::c_void;

use aya_ebpf::{helpers::generated::bpf_loop, programs::XdpContext};
use tandem_common::{
    sched::{self, FlowAddrs, SchedView},
    *,
};

use crate::{
    calls, forward,
    maps::{self, count},
    stage::{LEAST_SCRATCH, MODE_NEW_CALL, Next, Pkt, SCRATCH},
};

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
    fn repeat<F: FnMut(u32) -> bool>(&self, count: u32, mut body: F) {
        let count = if count > MAX_REALS { MAX_REALS } else { count };
        // SAFETY: `step::<F>` has the signature bpf_loop wants and its
        // context is `body`, which lives on this stack frame until the
        // helper returns.
        unsafe {
            bpf_loop(
                count,
                step::<F> as *mut c_void,
                &mut body as *mut F as *mut c_void,
                0,
            );
        }
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

/// `bpf_loop` callback of [`KernelView::repeat`]: one run of the body, 1
/// (stop) when it says so.
extern "C" fn step<F: FnMut(u32) -> bool>(k: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is the `&mut F` that `repeat` passed, alive while the
    // helper runs, and not used by anything else meanwhile.
    let body = unsafe { &mut *(ctx as *mut F) };
    if body(k as u32) { 1 } else { 0 }
}

/// The new-flow stage (`tandem_new_flow`, `tandem_new_flow_load`):
/// schedules the flow that `conn` found no entry for (or the call the SIP
/// stage found none for), records it, and forwards the packet.
#[inline(always)]
pub fn run<const LOAD_AWARE: bool>(ctx: &XdpContext) -> Next {
    let Some(scratch) = SCRATCH.get_ptr(0) else {
        return Next::Pass;
    };
    // SAFETY: written by the previous stage on this CPU just before the
    // tail call.
    let pkt: &Pkt = unsafe { &*scratch };
    let id = pkt.service_id;
    if id >= MAX_SERVICES {
        count(Reason::BadServiceConfig);
        return Next::Pass;
    }
    let svc: &Service = match maps::SERVICE_CONF.get(id) {
        Some(s) if s.id == id && s.n_reals <= MAX_REALS => s,
        _ => {
            count(Reason::BadServiceConfig);
            return Next::Pass;
        }
    };
    let idx = schedule::<LOAD_AWARE>(svc, pkt);
    if idx >= MAX_REALS {
        count(Reason::NoReal);
        return Next::Drop;
    }
    if pkt.sip_mode == MODE_NEW_CALL {
        calls::new_call(svc, pkt.call_hash, idx, pkt.now);
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
        maps::active_add(id * MAX_REALS + idx, 1);
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
    let Some(least) = LEAST_SCRATCH.get_ptr_mut(0) else {
        return u32::MAX;
    };
    let view = KernelView {
        id: svc.id,
        mh_slot: svc.mh_slot,
        least,
    };
    let call = if pkt.sip_mode == MODE_NEW_CALL {
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
