//! The dead-man switch over the daemon: is this node fenced? The daemon
//! stamps `DEAD_MAN` every loop turn; with a budget set, a stamp older
//! than the budget means the daemon is hung or stopped, and the node must
//! take itself out of the dataplane — no ARP answers for the VIPs, no
//! dispatch, no traffic to a VIP passed to the stack. The first packet that
//! finds the stamp stale latches `tripped_ns` (counted once); the latch
//! holds until the daemon clears it, so a daemon that wakes up cannot
//! serve again before it has stepped down. It owns no other decision.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns};
use tandem_common::*;

use crate::maps::{self, count};

/// The node is fenced (the switch is armed and the daemon's stamp is
/// stale or its process exited, now or earlier without a reset). Latches
/// the trip.
#[inline(always)]
pub fn fenced() -> bool {
    let Some(d) = maps::DEAD_MAN.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: d points to the map's only value; fields are read and the
    // latch written with plain 64-bit accesses.
    unsafe {
        let budget = (*d).budget_ns;
        if budget == 0 {
            return false;
        }
        if (*d).tripped_ns != 0 {
            return true;
        }
        let now = bpf_ktime_get_ns();
        // The daemon's process exited (`exit_fence`): fenced at once.
        if (*d).exited != 0 {
            (*d).tripped_ns = now;
            count(Reason::DeadManTrip);
            count(Reason::DeadManExit);
            return true;
        }
        if now > (*d).stamp_ns && now - (*d).stamp_ns > budget {
            (*d).tripped_ns = now;
            count(Reason::DeadManTrip);
            return true;
        }
    }
    false
}

/// `sched_process_exit` (raw tracepoint, `tandem_exit_fence`): when the
/// exiting task is the armed daemon's thread-group leader, mark the entry
/// `exited`, so the next packet fences the node without waiting for the
/// stamp to go stale (kill -9 leaves the XDP program attached until the
/// kernel releases the daemon's links, or for good when pinned). Tasks are
/// told by their pid/tgid in the initial pid namespace
/// (`bpf_get_current_pid_tgid`): the daemon arms it with its own.
#[inline(always)]
pub fn on_exit() {
    let Some(d) = maps::DEAD_MAN.get_ptr_mut(0) else {
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let pid = pid_tgid as u32;
    if pid != tgid {
        return;
    }
    // SAFETY: d points to the map's only value; one 32-bit read and write.
    unsafe {
        let armed = (*d).tgid;
        if armed != 0 && armed == tgid && (*d).budget_ns != 0 {
            (*d).exited = 1;
        }
    }
}
