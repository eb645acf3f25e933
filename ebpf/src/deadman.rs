//! The dead-man switch over the daemon and the VIP guard: is this node
//! fenced, and may a packet to this address be handled? The daemon stamps
//! `DEAD_MAN` every loop turn; with a budget set, a stamp older than the
//! budget (or the daemon's exit, seen by the exit tracepoint) fences the
//! node: no ARP answers for the VIPs, no dispatch, no traffic to a VIP
//! passed to the stack, no echo reflected. The first packet that finds it
//! fenced latches `tripped_ns` (counted once); the latch holds until the
//! daemon clears it. Not fenced, traffic to a declared VIP this node does
//! not own is dropped too (`tandem_common::vip_verdict`). It is consulted
//! only on those paths, and the VIP lookup only while `GLOBALS.vip_guard`
//! is set. It owns no other decision.

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::XdpContext};
use tandem_common::*;

use crate::{
    maps::{self, count},
    parse::ptr_at,
};

/// The node is fenced (the switch is armed and the daemon exited or its
/// stamp is stale, now or earlier without a reset). Latches the trip.
#[inline(always)]
pub fn fenced() -> bool {
    let Some(d) = maps::DEAD_MAN.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: d points to the map's only value; fields are read and the
    // latch written with plain aligned accesses (the daemon writes
    // `stamp_ns` and clears `tripped_ns` through its mapping).
    unsafe {
        let budget = core::ptr::read_volatile(&(*d).budget_ns);
        if budget == 0 {
            return false;
        }
        if core::ptr::read_volatile(&(*d).tripped_ns) != 0 {
            return true;
        }
        let now = bpf_ktime_get_ns();
        let stamp = core::ptr::read_volatile(&(*d).stamp_ns);
        if core::ptr::read_volatile(&(*d).exited) != 0 || (now > stamp && now - stamp > budget) {
            core::ptr::write_volatile(&mut (*d).tripped_ns, now);
            count(Reason::DeadManTrip);
            return true;
        }
    }
    false
}

/// Is the VIP guard on (dead man armed or a VIP declared)?
#[inline(always)]
fn guard_on() -> bool {
    matches!(maps::GLOBALS.get(0), Some(g) if g.vip_guard != 0)
}

/// What to do with a packet addressed to `dst` (16 bytes, IPv4-mapped):
/// `Some(reason)` to drop it and count `reason`. One hash lookup while
/// the guard is on, none otherwise.
#[inline(always)]
pub fn vip_guard(dst: &[u8; 16]) -> Option<Reason> {
    if !guard_on() {
        return None;
    }
    // SAFETY: the value is a plain u32 copied out at once.
    let flags = *unsafe { maps::VIPS.get(dst) }?;
    vip_verdict(flags, fenced())
}

/// The destination of an IP packet the parser did not take (not UDP/TCP,
/// a fragment, an IPv6 extension header): read again here, so that an
/// ICMP echo or a fragment to a VIP meets the same guard. (Ethernet with
/// at most one VLAN tag, as the parser.)
#[inline(never)]
pub fn other_ip_guard(raw: *mut aya_ebpf::bindings::xdp_md) -> Option<Reason> {
    if !guard_on() {
        return None;
    }
    let ctx = &XdpContext::new(raw);
    let et = ptr_at::<u16>(ctx, 12)?;
    // SAFETY: bounds checked by ptr_at.
    let mut proto = u16::from_be(unsafe { *et });
    let mut l3 = 14;
    if proto == 0x8100 || proto == 0x88a8 {
        let et = ptr_at::<u16>(ctx, 16)?;
        // SAFETY: bounds checked by ptr_at.
        proto = u16::from_be(unsafe { *et });
        l3 = 18;
    }
    let dst: [u8; 16] = if proto == 0x0800 {
        let a = ptr_at::<[u16; 2]>(ctx, l3 + 16)?;
        // SAFETY: bounds checked by ptr_at; same size, any bits valid.
        unsafe { core::mem::transmute::<[u16; 8], [u8; 16]>([0, 0, 0, 0, 0, 0xffff, (*a)[0], (*a)[1]]) }
    } else if proto == 0x86dd {
        let a = ptr_at::<[u16; 8]>(ctx, l3 + 24)?;
        // SAFETY: bounds checked by ptr_at; same size, any bits valid.
        unsafe { core::mem::transmute::<[u16; 8], [u8; 16]>(*a) }
    } else {
        return None;
    };
    vip_guard(&dst)
}

/// The exit tracepoint's work (`tandem_exit`, on `sched_process_exit`,
/// which runs in the exiting task before its files are closed): when the
/// daemon's main thread exits (pid == tgid == `DEAD_MAN.tgid`), set
/// `exited`, which fences the node at once.
#[inline(always)]
pub fn on_exit() {
    let pid_tgid = aya_ebpf::helpers::bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid != pid_tgid as u32 || tgid == 0 {
        return;
    }
    let Some(d) = maps::DEAD_MAN.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: d points to the map's only value; aligned 32-bit accesses.
    unsafe {
        if core::ptr::read_volatile(&(*d).tgid) == tgid {
            core::ptr::write_volatile(&mut (*d).exited, 1);
        }
    }
}
