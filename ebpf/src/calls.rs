//! The SIP stage (`tandem_sip`, `Stage::Sip`): Call-ID persistence for
//! services with `FLAG_SIP_PERSIST`, IPVS's `--pe sip` in XDP. It keeps
//! the `CALLS` table; the 5-tuple connection table is `conn`'s.
//!
//! What it does, by the mode the previous stage leaves in `Pkt::sip_mode`
//! (`stage::MODE_*`):
//! - `MODE_DISPATCH` (a UDP datagram to a port with `PORT_SIP`): if the
//!   datagram's service has the flag and its payload holds a Call-ID
//!   (`tandem_common::sip`), the call is looked up in `CALLS` by (service,
//!   Call-ID hash). A live entry whose real server may still take it
//!   (`sched::check_call`: the flow rules with the call timeout) sends the
//!   datagram there, whatever its 5-tuple; otherwise the call is scheduled
//!   like a new flow (the new-flow stage, with `MODE_NEW_CALL`: sh/dh/mh
//!   hash the Call-ID), recorded, counted as an active connection of its
//!   real server and pushed to `CALL_EVENTS`. The 5-tuple connection table
//!   is neither read nor written for such a datagram: SIPp sends every
//!   call from one client port, and each Call-ID is scheduled on its own.
//!   Without a Call-ID (not SIP, a CRLF keepalive, no or an empty or a
//!   cut-off Call-ID) the datagram takes the usual connection-table path
//!   (`conn::connections`), counted `SipNoCallId`.
//! - `MODE_LEARN` (a data segment of an established TCP connection of a
//!   service with the flag): TCP is scheduled at the SYN, before any SIP
//!   is seen, and the connection keeps its real server. A Call-ID in the
//!   segment is recorded in the `CALLS` entries of the UDP service on the
//!   same VIP and port (if it has the flag), pointing at the real server
//!   with the connection's real server's address: a dialog that began
//!   over TCP (RFC 3261 sends requests over 1300 bytes by TCP) and goes on
//!   over UDP stays on one IVR. Without such a UDP service there is
//!   nothing to route by it (a SYN has no Call-ID): `SipLearnNoTarget`.
//!   A Call-ID split over two segments is not seen (`SipNoCallId`); the
//!   connection is forwarded as always.
//!
//! How: the payload window (at most `SIP_SCAN_LEN` bytes) is copied with
//! `bpf_xdp_load_bytes` into per-CPU map memory, and `bpf_loop` runs the
//! shared byte scanner over it, one callback per 32-byte chunk, so the
//! verifier checks the scanner once instead of once per byte. The stage
//! is its own program so that none of this weighs on the dispatcher's
//! verification.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_md,
    helpers::generated::{bpf_loop, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use tandem_common::{
    sched::{self, FlowCheck},
    sip::SIP_SCAN_LEN,
    *,
};

use crate::{
    conn, forward,
    maps::{self, active_add, count, service},
    stage::{MODE_LEARN, MODE_NEW_CALL, MODE_NONE, Next, Pkt, SCRATCH, SIP_SCRATCH, SipScratch},
};

/// Entry point of `tandem_sip`.
#[inline(always)]
pub fn run(ctx: &XdpContext) -> Next {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return Next::Pass;
    };
    // SAFETY: written by the previous stage on this CPU just before the
    // tail call.
    let pkt: &mut Pkt = unsafe { &mut *scratch };
    if pkt.sip_mode != MODE_LEARN {
        let key = ServiceKey::new(pkt.dst, pkt.dport, pkt.proto, pkt.family);
        // SAFETY: the value is a plain u32 copied out at once.
        match unsafe { maps::SERVICES.get(&key) } {
            Some(id) => match service(*id) {
                Some(s) if s.flags & FLAG_SIP_PERSIST != 0 && pkt.proto == PROTO_UDP => {
                    pkt.service_id = s.id;
                }
                _ => {
                    pkt.sip_mode = MODE_NONE;
                    return conn::connections(ctx, pkt);
                }
            },
            None => {
                pkt.sip_mode = MODE_NONE;
                return conn::connections(ctx, pkt);
            }
        }
    }
    // One call of the scan for both modes, with nothing but the packet
    // scratch live across it (the mode and the service are read back
    // from it): the verifier checks the scan once rather than once per
    // mode.
    let found = scan(ctx.ctx, pkt.payload_off, pkt.payload_len);
    let mode = pkt.sip_mode;
    pkt.sip_mode = MODE_NONE;
    if mode == MODE_LEARN {
        return learn_and_forward(ctx.ctx, pkt, found);
    }
    let Some(svc) = service(pkt.service_id) else {
        count(Reason::BadServiceConfig);
        return Next::Pass;
    };
    if !found {
        count(Reason::SipNoCallId);
        return conn::connections(ctx, pkt);
    }
    let hash = match SIP_SCRATCH.get(0) {
        Some(s) => s.scan.hash,
        None => return conn::connections(ctx, pkt),
    };
    let ckey = CallKey::new(svc.id, hash);
    if let Some(cp) = maps::CALLS.get_ptr_mut(&ckey) {
        let Some(settings) = maps::SETTINGS.get(0) else {
            count(Reason::BadServiceConfig);
            return Next::Pass;
        };
        let now = conn::now_ns();
        let base = svc.id * MAX_REALS;
        // SAFETY: cp points to the map value; copied out before use.
        let call = unsafe { *cp };
        let real = if call.real_idx < MAX_REALS {
            maps::REALS.get(base + call.real_idx)
        } else {
            None
        };
        if sched::check_call(&call, real, svc, now, settings) == FlowCheck::Keep {
            // A BYE or CANCEL, or the answer to the IVR's BYE: the call is
            // over for the active count.
            let counted = call.flags & CALL_COUNTED != 0;
            let uncount = counted && ends_call(pkt.payload_len);
            // SAFETY: as above; a racing update at worst loses a timestamp.
            unsafe {
                if call.last_seen_ns != now {
                    (*cp).last_seen_ns = now;
                }
                if uncount {
                    (*cp).flags = call.flags & !CALL_COUNTED;
                }
            }
            if uncount {
                if call.real_idx < MAX_REALS {
                    active_add(base + call.real_idx, u64::MAX);
                }
                // The standby stops counting it too.
                let ended = CallValue {
                    flags: call.flags & !CALL_COUNTED,
                    ..call
                };
                maps::call_event(&ckey, &ended, CALL_EVENT_ENDED);
            }
            count(Reason::SipCallIdHit);
            return forward::forward(ctx.ctx, pkt, svc, call.real_idx, forward::FWD_REVERSE);
        }
        count(Reason::SipCallIdExpired);
        if call.flags & CALL_COUNTED != 0 && call.real_idx < MAX_REALS {
            active_add(base + call.real_idx, u64::MAX);
        }
        let _ = maps::CALLS.remove(&ckey);
        maps::call_event(&ckey, &call, CALL_EVENT_REMOVED);
    }
    pkt.sip_mode = MODE_NEW_CALL;
    pkt.call_hash = hash;
    conn::to_new_flow(ctx, pkt, svc)
}

/// Does the message in the SIP scratch window (`len` payload bytes)
/// end its call: a BYE or CANCEL request, or a response whose CSeq names
/// BYE (the caller's answer to a BYE the IVR sent it directly, in DR)?
#[inline(never)]
fn ends_call(len: usize) -> bool {
    let Some(s) = SIP_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's scratch value, filled by `scan` for this packet.
    unsafe {
        let b = &(*s).buf;
        let head = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
        if tandem_common::sip::ends_dialog(&head) {
            return true;
        }
        if !tandem_common::sip::is_response(&head) {
            return false;
        }
        (*s).cseq = tandem_common::sip::CseqScan::new();
        let n = if len > SIP_SCAN_LEN { SIP_SCAN_LEN } else { len };
        let mut lc = LoopCtx { s, n: n as u64 };
        // SAFETY: scan_chunk is a BPF callback with the signature
        // bpf_loop wants; lc lives until the helper returns.
        bpf_loop(
            n.div_ceil(CHUNK) as u32,
            scan_chunk::<true> as *mut c_void,
            &mut lc as *mut LoopCtx as *mut c_void,
            0,
        );
        (*s).cseq.is_bye()
    }
}

/// Records a call the new-flow stage scheduled on real server `idx`
/// (the caller forwards the packet).
#[inline(never)]
pub fn new_call(svc: &Service, hash: u64, idx: u32, now: u64) {
    count(Reason::SipCallIdNew);
    let ckey = CallKey::new(svc.id, hash);
    let value = CallValue {
        last_seen_ns: now,
        created_ns: now,
        real_idx: idx,
        flags: CALL_COUNTED,
    };
    if maps::CALLS.insert(&ckey, &value, 0).is_ok() {
        active_add(svc.id * MAX_REALS + idx, 1);
        maps::call_event(&ckey, &value, CALL_EVENT_NEW);
    } else {
        count(Reason::FlowInsertFailed);
    }
}

/// Bytes the scanner takes per `bpf_loop` iteration: one callback per
/// byte cost ~10 ns a byte (an indirect call each); a chunk amortises it.
/// The verifier walks the chunk's loop byte by byte, and its work grows
/// faster than the chunk (the states it keeps per instruction grow with
/// it): with the scan called from two places, 64 bytes took 250k
/// instructions processed (1.1 s of CPU alone), 32 bytes 135k, 16 bytes
/// 79k; at run time 16 bytes cost ~6 % more than 64 on a 212-byte BYE
/// (`bench dispatch`, `sip_callid_hit`).
const CHUNK: usize = 32;

/// The scan callback's context: the scratch value (a map value pointer
/// kept on the caller's stack) and the window's length.
#[repr(C)]
struct LoopCtx {
    s: *mut SipScratch,
    n: u64,
}

/// `bpf_loop` callback: feeds chunk `i` of the window to the Call-ID
/// scanner (or, with `CSEQ`, the CSeq scanner); 1 (stop) when the scanner
/// is done or the window ends.
extern "C" fn scan_chunk<const CSEQ: bool>(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is the LoopCtx of `scan`, whose pointer is this CPU's
    // scratch value; indices are masked into the buffer.
    unsafe {
        let c = ctx as *const LoopCtx;
        let s = (*c).s;
        let n = (*c).n;
        let base = i * CHUNK as u64;
        let mut k = 0;
        while k < CHUNK as u64 {
            let at = base + k;
            if at >= n {
                return 1;
            }
            let b = *(*s).buf.as_ptr().add(at as usize & (SIP_SCAN_LEN - 1));
            let done = if CSEQ { (*s).cseq.step(b) } else { (*s).scan.step(b) };
            if done {
                return 1;
            }
            k += 1;
        }
        0
    }
}

/// Runs the scanner over the first `SIP_SCAN_LEN` bytes of the payload
/// at `off` (`len` bytes): true if it holds a Call-ID (then in
/// `SIP_SCRATCH.scan`).
#[inline(never)]
fn scan(raw: *mut xdp_md, off: usize, len: usize) -> bool {
    let Some(s) = SIP_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's scratch value.
    unsafe { (*s).scan.reset() };
    // Clamped in 64 bits: the helper's size must be provably 1..=1024.
    let n = if len > SIP_SCAN_LEN { SIP_SCAN_LEN } else { len };
    if n == 0 {
        return false;
    }
    // SAFETY: the helper checks the range against the packet; the buffer
    // holds SIP_SCAN_LEN >= n bytes.
    let r = unsafe { bpf_xdp_load_bytes(raw, off as u32, (*s).buf.as_mut_ptr() as *mut c_void, n as u32) };
    if r != 0 {
        return false;
    }
    let mut lc = LoopCtx { s, n: n as u64 };
    // SAFETY: scan_byte is a BPF callback with the signature bpf_loop
    // wants; lc lives until the helper returns.
    unsafe {
        bpf_loop(
            n.div_ceil(CHUNK) as u32,
            scan_chunk::<false> as *mut c_void,
            &mut lc as *mut LoopCtx as *mut c_void,
            0,
        );
        (*s).scan.found()
    }
}

/// `MODE_LEARN`: learns the segment's Call-ID, if any, then forwards the
/// segment to its connection's real server (as dispatch would have).
#[inline(always)]
fn learn_and_forward(raw: *mut xdp_md, pkt: &Pkt, found: bool) -> Next {
    let Some(svc) = service(pkt.service_id) else {
        count(Reason::BadServiceConfig);
        return Next::Pass;
    };
    if found {
        learn(pkt);
    } else {
        count(Reason::SipNoCallId);
    }
    forward::forward(raw, pkt, svc, pkt.real_idx, 0)
}

/// Records the Call-ID the scan found in a TCP segment (see the module).
#[inline(never)]
fn learn(pkt: &Pkt) {
    let hash = match SIP_SCRATCH.get(0) {
        Some(s) => s.scan.hash,
        None => return,
    };
    let ukey = ServiceKey::new(pkt.dst, pkt.dport, PROTO_UDP, pkt.family);
    // SAFETY: the value is a plain u32 copied out at once.
    let target = match unsafe { maps::SERVICES.get(&ukey) } {
        Some(id) => match service(*id) {
            Some(s) if s.flags & FLAG_SIP_PERSIST != 0 => s,
            _ => {
                count(Reason::SipLearnNoTarget);
                return;
            }
        },
        None => {
            count(Reason::SipLearnNoTarget);
            return;
        }
    };
    if pkt.service_id >= MAX_SERVICES || pkt.real_idx >= MAX_REALS {
        count(Reason::SipLearnNoTarget);
        return;
    }
    let Some(own) = maps::REALS.get(pkt.service_id * MAX_REALS + pkt.real_idx) else {
        count(Reason::SipLearnNoTarget);
        return;
    };
    let tid = target.id;
    let n = target.n_reals;
    let mut slot = u32::MAX;
    let mut j = 0;
    while j < MAX_REALS {
        if j >= n {
            break;
        }
        if let Some(r) = maps::REALS.get(tid * MAX_REALS + j)
            && addr_eq(&r.addr, &own.addr)
        {
            slot = j;
            break;
        }
        j += 1;
    }
    if slot >= MAX_REALS {
        count(Reason::SipLearnNoTarget);
        return;
    }
    count(Reason::SipCallIdLearned);
    let now = conn::now_ns();
    let ckey = CallKey::new(tid, hash);
    let mut old_counted = u32::MAX;
    if let Some(cp) = maps::CALLS.get_ptr_mut(&ckey) {
        // SAFETY: cp points to the map value; copied out before use.
        let old = unsafe { *cp };
        if old.real_idx == slot {
            // SAFETY: as above.
            unsafe { (*cp).last_seen_ns = now };
            return;
        }
        if old.flags & CALL_COUNTED != 0 {
            old_counted = old.real_idx;
        }
    }
    let value = CallValue {
        last_seen_ns: now,
        created_ns: now,
        real_idx: slot,
        flags: CALL_COUNTED | CALL_LEARNED,
    };
    if maps::CALLS.insert(&ckey, &value, 0).is_ok() {
        if old_counted < MAX_REALS {
            active_add(tid * MAX_REALS + old_counted, u64::MAX);
        }
        active_add(tid * MAX_REALS + slot, 1);
        maps::call_event(&ckey, &value, CALL_EVENT_NEW);
    } else {
        count(Reason::FlowInsertFailed);
    }
}
