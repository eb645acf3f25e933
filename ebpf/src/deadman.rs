//! The dead-man switch over the daemon: is this node fenced? The daemon
//! stamps `DEAD_MAN` every loop turn; with a budget set, a stamp older
//! than the budget means the daemon is hung or stopped, and the node must
//! take itself out of the dataplane — no ARP answers for the VIPs, no
//! dispatch, no traffic to a VIP passed to the stack. The first packet that
//! finds the stamp stale latches `tripped_ns` (counted once); the latch
//! holds until the daemon clears it, so a daemon that wakes up cannot
//! serve again before it has stepped down. It owns no other decision.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use tandem_common::*;

use crate::maps::{self, count};

/// The node is fenced (the switch is armed and the daemon's stamp is
/// stale, now or earlier without a reset). Latches the trip.
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
        if now > (*d).stamp_ns && now - (*d).stamp_ns > budget {
            (*d).tripped_ns = now;
            count(Reason::DeadManTrip);
            return true;
        }
    }
    false
}
