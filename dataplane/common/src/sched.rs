//! The IPVS schedulers and the flow-keeping rules, written once for both
//! sides: the XDP program runs them over its maps, the host's reference
//! model over plain memory, through the [`SchedView`] trait.
//!
//! The loops over a service's real servers go through
//! [`SchedView::repeat`]: in the kernel a `bpf_loop`, whose body the
//! verifier checks once whatever the count, where a bounded loop is
//! unrolled by the verifier, one pass per real server and scheduler (most
//! of the stages' verification time, and so of the daemon's start-up, when
//! they were loops). The fallback probes of the hashing schedulers
//! (`FALLBACK_PROBES`) stay a bounded loop. The tables of wrr, sh, dh and
//! mh are built on the host (`tandem_dataplane::tables`) and only read
//! here.

use crate::abi::*;
use crate::hash::{SCHED_SEED, hash_addr_port};

/// What the schedulers may read (and, for rr/wrr, write) of one service.
pub trait SchedView {
    /// Real server slot `idx` of the service (`idx < MAX_REALS`).
    fn real(&self, idx: u32) -> Option<&RealServer>;
    /// Active connections counted for slot `idx`.
    fn active(&self, idx: u32) -> u32;
    /// Load slot `idx` reports (IVR heartbeats).
    fn reported(&self, idx: u32) -> RealLoad;
    /// Entry `pos` of the service's wrr sequence.
    fn wrr_entry(&self, pos: u32) -> Option<u32>;
    /// Bucket `pos` of the service's sh/dh table.
    fn shdh_entry(&self, pos: u32) -> Option<u32>;
    /// Entry `pos` of the service's Maglev table.
    fn mh_entry(&self, pos: u32) -> Option<u32>;
    /// rr: last slot picked; wrr: position in the sequence.
    fn cursor(&self) -> u32;
    fn set_cursor(&self, v: u32);
    /// Scratch memory for the least-connection family's running best. In
    /// the kernel it is a per-CPU map value: the verifier does not track
    /// values stored there, so each loop iteration is one state rather
    /// than one per candidate seen so far.
    fn least_scratch(&self) -> *mut LeastScratch;
    /// Runs `body(k)` for k = 0, 1, … (at most `count` times, `count` at
    /// most `MAX_REALS`) until it returns true. The kernel's is a
    /// `bpf_loop`; the model's a plain loop.
    fn repeat<F: FnMut(u32) -> bool>(&self, count: u32, body: F);
}

/// Running best of lc/wlc/sed/nq (see [`SchedView::least_scratch`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LeastScratch {
    pub best: u32,
    pub _pad: u32,
    pub best_oh: u64,
    pub best_w: u64,
}

/// The addresses a new flow is scheduled on.
#[derive(Clone, Copy, Debug)]
pub struct FlowAddrs<'a> {
    pub src: &'a [u8; 16],
    pub dst: &'a [u8; 16],
    pub sport: u16,
    /// A SIP call's `sip::callid_sched_hash`: sh, dh and mh hash it
    /// instead of the addresses, so that one Call-ID always picks the same
    /// table entry (on every director with the same tables).
    pub call: Option<u32>,
}

/// Picks a real server slot for a new flow of `svc`, or `None` when no real
/// server is available.
#[inline(always)]
pub fn schedule<V: SchedView>(view: &V, svc: &Service, addrs: FlowAddrs<'_>) -> Option<u32> {
    if svc.flags & FLAG_REPORTED_LOAD != 0 {
        schedule_with::<V, true>(view, svc, addrs)
    } else {
        schedule_with::<V, false>(view, svc, addrs)
    }
}

/// [`schedule`] with load-awareness fixed at compile time: the kernel
/// runs the two variants as separate programs (tail-call stages), so the
/// verifier never has to follow both inside one scheduler loop.
#[inline(always)]
pub fn schedule_with<V: SchedView, const LOAD_AWARE: bool>(view: &V, svc: &Service, addrs: FlowAddrs<'_>) -> Option<u32> {
    let n = if svc.n_reals > MAX_REALS {
        MAX_REALS
    } else {
        svc.n_reals
    };
    if n == 0 {
        return None;
    }
    let fallback = svc.flags & FLAG_SCHED_FALLBACK != 0;
    let load_aware = LOAD_AWARE;
    let port = if svc.flags & FLAG_SCHED_PORT != 0 {
        addrs.sport
    } else {
        0
    };
    match Scheduler::from_u8(svc.scheduler)? {
        Scheduler::Rr => rr::<V, LOAD_AWARE>(view, n),
        Scheduler::Wrr => wrr::<V, LOAD_AWARE>(view, svc.table_len),
        Scheduler::Lc => least::<V, { LEAST_LC }, LOAD_AWARE>(view, n),
        Scheduler::Wlc => least::<V, { LEAST_WLC }, LOAD_AWARE>(view, n),
        Scheduler::Sed => least::<V, { LEAST_SED }, LOAD_AWARE>(view, n),
        Scheduler::Nq => least::<V, { LEAST_NQ }, LOAD_AWARE>(view, n),
        Scheduler::Sh => {
            let h = match addrs.call {
                Some(c) => c,
                None => hash_addr_port(addrs.src, port, SCHED_SEED),
            };
            hashed(view, Table::Shdh, SHDH_BUCKETS, h, fallback, load_aware)
        }
        Scheduler::Dh => {
            let h = match addrs.call {
                Some(c) => c,
                None => hash_addr_port(addrs.dst, 0, SCHED_SEED),
            };
            hashed(view, Table::Shdh, SHDH_BUCKETS, h, fallback, load_aware)
        }
        Scheduler::Mh => {
            if svc.table_len == 0 || svc.table_len > MH_MAX_SIZE {
                return None;
            }
            let h = match addrs.call {
                Some(c) => c,
                None => hash_addr_port(addrs.src, port, SCHED_SEED),
            };
            hashed(view, Table::Mh, svc.table_len, h, fallback, load_aware)
        }
    }
}

#[inline(always)]
fn available<V: SchedView>(view: &V, idx: u32, load_aware: bool) -> bool {
    match view.real(idx) {
        Some(r) => r.available() && !(load_aware && view.reported(idx).full()),
        None => false,
    }
}

/// IPVS rr: the first available slot after the last one picked.
#[inline(always)]
fn rr<V: SchedView, const LOAD_AWARE: bool>(view: &V, n: u32) -> Option<u32> {
    let mut start = view.cursor().wrapping_add(1);
    if start >= n {
        start = 0;
    }
    let mut found = None;
    view.repeat(n, |k| {
        let mut i = start + k;
        if i >= n {
            i -= n;
        }
        if available(view, i, LOAD_AWARE) {
            found = Some(i);
            return true;
        }
        false
    });
    if let Some(i) = found {
        view.set_cursor(i);
    }
    found
}

/// IPVS wrr: the next entry of the interleaved weighted sequence (built on
/// the host from the weights); entries whose real server became unavailable
/// since the build are skipped (at most `MAX_REALS` entries are tried).
#[inline(always)]
fn wrr<V: SchedView, const LOAD_AWARE: bool>(view: &V, len: u32) -> Option<u32> {
    if len == 0 || len > WRR_SEQ_MAX {
        return None;
    }
    let nz = core::num::NonZeroU32::new(len)?;
    let mut pos = view.cursor() % nz;
    let mut found = None;
    view.repeat(MAX_REALS, |_| {
        let Some(idx) = view.wrr_entry(pos) else {
            return true;
        };
        let next = if pos + 1 >= len { 0 } else { pos + 1 };
        if available(view, idx, LOAD_AWARE) {
            view.set_cursor(next);
            found = Some(idx);
            return true;
        }
        pos = next;
        false
    });
    found
}

/// The least-connection family, as `least`'s const parameter: each is
/// its own copy of the loop body (the kernel's is a `bpf_loop` callback,
/// which sees no constant its caller knows).
const LEAST_LC: u8 = 0;
const LEAST_WLC: u8 = 1;
const LEAST_SED: u8 = 2;
const LEAST_NQ: u8 = 3;

/// IPVS lc, wlc, sed and nq over the kernel's active-connection counts.
/// Ties go to the lowest slot, as IPVS's list walk does.
#[inline(always)]
fn least<V: SchedView, const KIND: u8, const LOAD_AWARE: bool>(view: &V, n: u32) -> Option<u32> {
    let st = view.least_scratch();
    // SAFETY: the view hands out memory valid for the whole call and used
    // by nothing else meanwhile (per-CPU in the kernel).
    unsafe {
        (*st).best = u32::MAX;
        (*st).best_oh = 0;
        (*st).best_w = 0;
    }
    let mut idle = None;
    view.repeat(n, |i| {
        let Some(r) = view.real(i) else {
            return false;
        };
        if !r.available() {
            return false;
        }
        let load = if LOAD_AWARE { view.reported(i) } else { RealLoad::default() };
        if LOAD_AWARE && load.full() {
            return false;
        }
        let a = if LOAD_AWARE { load.active as u64 } else { view.active(i) as u64 };
        // Load-aware: an IVR's reported capacity is its weight, so wlc,
        // sed and nq pick the least load relative to capacity (like
        // Kamailio's call-load distribution); without a report, the
        // configured weight.
        let w = if LOAD_AWARE && load.capacity > 0 { load.capacity as u64 } else { r.weight as u64 };
        if KIND == LEAST_NQ && a == 0 {
            idle = Some(i);
            return true;
        }
        let oh = if KIND == LEAST_SED || KIND == LEAST_NQ { a + 1 } else { a };
        // SAFETY: as above.
        unsafe {
            let better = if (*st).best == u32::MAX {
                true
            } else if KIND == LEAST_LC {
                oh < (*st).best_oh
            } else {
                oh * (*st).best_w < (*st).best_oh * w
            };
            if better {
                (*st).best = i;
                (*st).best_oh = oh;
                (*st).best_w = w;
            }
        }
        false
    });
    if idle.is_some() {
        return idle;
    }
    // SAFETY: as above.
    let best = unsafe { (*st).best };
    if best == u32::MAX { None } else { Some(best) }
}

#[derive(Clone, Copy)]
enum Table {
    Shdh,
    Mh,
}

/// sh, dh, mh: the table entry the hash selects, or with fallback the next
/// available one within `FALLBACK_PROBES` entries.
#[inline(always)]
fn hashed<V: SchedView>(view: &V, table: Table, len: u32, h: u32, fallback: bool, load_aware: bool) -> Option<u32> {
    // Division by a NonZeroU32 cannot panic: no panic path in the kernel program.
    let nz = core::num::NonZeroU32::new(len)?;
    let mut pos = h % nz;
    let mut k = 0;
    while k <= FALLBACK_PROBES {
        let idx = match table {
            Table::Shdh => view.shdh_entry(pos)?,
            Table::Mh => view.mh_entry(pos)?,
        };
        if available(view, idx, load_aware) {
            return Some(idx);
        }
        if !fallback {
            return None;
        }
        pos += 1;
        if pos >= len {
            pos = 0;
        }
        k += 1;
    }
    None
}

/// What to do with a packet of an existing flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowCheck {
    /// Keep sending it to its real server.
    Keep,
    /// Idle past its timeout: forget it and schedule the packet anew.
    Expired,
    /// Its real server is down (or gone) and the service expires such
    /// flows: forget it and schedule the packet anew.
    Nodest,
}

/// The idle timeout of a flow.
#[inline(always)]
pub fn flow_timeout(settings: &Settings, proto: u8, flow_flags: u32) -> u64 {
    if proto == PROTO_TCP {
        if flow_flags & FLOW_CLOSING != 0 {
            settings.tcp_fin_timeout_ns
        } else {
            settings.tcp_timeout_ns
        }
    } else {
        settings.udp_timeout_ns
    }
}

/// Decides whether an existing flow is kept.
#[inline(always)]
pub fn check_flow(
    flow: &FlowValue,
    real: Option<&RealServer>,
    svc: &Service,
    proto: u8,
    now_ns: u64,
    settings: &Settings,
) -> FlowCheck {
    let idle = now_ns.saturating_sub(flow.last_seen_ns);
    if idle > flow_timeout(settings, proto, flow.flags) {
        return FlowCheck::Expired;
    }
    match real {
        None => FlowCheck::Nodest,
        Some(r) => {
            if flow.real_idx >= svc.n_reals {
                FlowCheck::Nodest
            } else if r.state == REAL_DOWN && svc.flags & FLAG_EXPIRE_NODEST != 0 {
                FlowCheck::Nodest
            } else {
                FlowCheck::Keep
            }
        }
    }
}

/// Decides whether a SIP call entry is kept: the same rules as
/// [`check_flow`] with the call timeout.
#[inline(always)]
pub fn check_call(
    call: &CallValue,
    real: Option<&RealServer>,
    svc: &Service,
    now_ns: u64,
    settings: &Settings,
) -> FlowCheck {
    let idle = now_ns.saturating_sub(call.last_seen_ns);
    if idle > settings.call_timeout_ns {
        return FlowCheck::Expired;
    }
    match real {
        None => FlowCheck::Nodest,
        Some(r) => {
            if call.real_idx >= svc.n_reals
                || (r.state == REAL_DOWN && svc.flags & FLAG_EXPIRE_NODEST != 0)
            {
                FlowCheck::Nodest
            } else {
                FlowCheck::Keep
            }
        }
    }
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// May this TCP segment open a new flow? (A SYN without ACK, as IPVS
/// without `sloppy_tcp`.)
#[inline(always)]
pub fn tcp_opens_flow(flags: u8) -> bool {
    flags & TCP_SYN != 0 && flags & (TCP_ACK | TCP_RST | TCP_FIN) == 0
}

/// Does this TCP segment close its flow (FIN or RST)?
#[inline(always)]
pub fn tcp_closes_flow(flags: u8) -> bool {
    flags & (TCP_FIN | TCP_RST) != 0
}
