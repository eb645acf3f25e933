//! The kernel's guard against its own daemon and against answering for
//! VIPs it does not hold: the dead-man switch (`DEAD_MAN`, [`DeadMan`]),
//! the set of addresses the program treats as VIPs (`VIPS`, [`VIP_SERVICE`]
//! and friends), and the one rule both sides apply ([`fenced`],
//! [`vip_verdict`]). The daemon stamps `DEAD_MAN` every loop turn; the
//! program reads it only on the paths that answer for a VIP (ARP, VIP
//! traffic, echo). Nothing here reads a clock: `now` is the caller's
//! (`bpf_ktime_get_ns`, CLOCK_MONOTONIC, in the kernel).

use super::Reason;

/// The dead-man switch (value 0 of `DEAD_MAN`). All times are
/// CLOCK_MONOTONIC ns (`bpf_ktime_get_ns`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeadMan {
    /// The daemon's last stamp (written every loop turn).
    pub stamp_ns: u64,
    /// How old the stamp may be; 0 turns the switch off.
    pub budget_ns: u64,
    /// When the program first saw the switch fenced (0: not tripped).
    /// Latched by the program until the daemon clears it.
    pub tripped_ns: u64,
    /// The daemon's thread-group id (init pid namespace), watched by the
    /// exit tracepoint.
    pub tgid: u32,
    /// Set by the exit tracepoint when the daemon's main thread exits.
    pub exited: u32,
}

/// Is the node fenced out of the dataplane at `now`? Off (budget 0):
/// never. Else: the daemon exited, the switch is latched, or the stamp is
/// older than the budget (a stamp from the future counts as fresh).
#[inline(always)]
pub fn fenced(d: &DeadMan, now: u64) -> bool {
    d.budget_ns != 0 && (d.exited != 0 || d.tripped_ns != 0 || now.saturating_sub(d.stamp_ns) > d.budget_ns)
}

/// `VIPS` value bit: some virtual service has this address (host-derived
/// from the services).
pub const VIP_SERVICE: u32 = 1;
/// `VIPS` value bit: the control plane tracks this VIP's ownership
/// (`Dataplane::set_vip_owned` was called for it, owned or not).
pub const VIP_DECLARED: u32 = 2;
/// `VIPS` value bit: this node owns the VIP (with `VIP_DECLARED`).
pub const VIP_OWNED: u32 = 4;

/// What happens to a packet addressed to a VIP (an address in `VIPS`
/// with `flags`): `Some(reason)` to drop it and count `reason`, `None` to
/// handle it as before. Fenced: every VIP is dropped (passing it would
/// draw ICMP port unreachable from the VIP on `lo`). Not fenced: a
/// declared VIP this node does not own is dropped; an undeclared service
/// VIP is dispatched as ever (ownership is not tracked for it).
#[inline(always)]
pub fn vip_verdict(flags: u32, fenced: bool) -> Option<Reason> {
    if fenced {
        Some(Reason::DeadManDrop)
    } else if flags & VIP_DECLARED != 0 && flags & VIP_OWNED == 0 {
        Some(Reason::VipNotOwned)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn fenced_follows_budget_stamp_latch_and_exit() {
        let mut d = DeadMan { stamp_ns: 100 * MS, budget_ns: 20 * MS, ..Default::default() };
        assert!(!fenced(&d, 120 * MS), "exactly the budget is fresh");
        assert!(fenced(&d, 120 * MS + 1));
        assert!(!fenced(&d, 50 * MS), "a stamp from the future is fresh");
        d.tripped_ns = 5;
        assert!(fenced(&d, 100 * MS), "latched even with a fresh stamp");
        d.tripped_ns = 0;
        d.exited = 1;
        assert!(fenced(&d, 100 * MS), "exited: at once");
        d.budget_ns = 0;
        assert!(!fenced(&d, u64::MAX), "budget 0: never");
    }

    #[test]
    fn vip_verdict_drops_fenced_and_unowned_declared_vips() {
        assert_eq!(vip_verdict(VIP_SERVICE, false), None);
        assert_eq!(vip_verdict(VIP_SERVICE | VIP_DECLARED | VIP_OWNED, false), None);
        assert_eq!(vip_verdict(VIP_SERVICE | VIP_DECLARED, false), Some(Reason::VipNotOwned));
        assert_eq!(vip_verdict(VIP_DECLARED, false), Some(Reason::VipNotOwned));
        assert_eq!(vip_verdict(VIP_SERVICE | VIP_DECLARED | VIP_OWNED, true), Some(Reason::DeadManDrop));
        assert_eq!(vip_verdict(VIP_SERVICE, true), Some(Reason::DeadManDrop));
    }
}
