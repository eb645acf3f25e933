//! The daemon's side of the dead-man switch (`DEAD_MAN`, see the program's
//! `deadman` stage): arm it with a budget, stamp it every loop turn, read
//! whether the program found the stamp stale (tripped, latched), and
//! re-arm it once the control plane has acted on the trip. What a trip
//! means for the pair is the control plane's decision.

use std::time::Duration;

use tandem_common::{DeadMan, maps};

use crate::{Dataplane, Error, error::map_err};

/// What the program's dead-man entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeadManState {
    /// The daemon's last stamp (CLOCK_MONOTONIC ns).
    pub stamp_ns: u64,
    /// 0: the switch is off.
    pub budget_ns: u64,
    /// When the program first found the stamp stale (latched).
    pub tripped_ns: Option<u64>,
    /// The process the switch is armed for (0: none).
    pub tgid: u32,
    /// The kernel saw that process exit (the exit fence): the next packet
    /// fences the node, whatever the stamp.
    pub exited: bool,
}

impl Dataplane {
    fn write_dead_man(&mut self, d: DeadMan) -> Result<(), Error> {
        self.maps.heartbeat.dead_man.set(0, d, 0).map_err(map_err(maps::DEAD_MAN))
    }

    /// Arms the switch for process `tgid` (the daemon passes
    /// `std::process::id()`; 0: no process): the stamp is `now_ns` and the
    /// program fences the node when it grows older than `budget` (zero
    /// turns the switch off), or at once once the kernel has seen `tgid`'s
    /// thread-group leader exit (if the exit fence is attached, see
    /// [`Dataplane::exit_fence_attached`]). Clears an earlier exit.
    pub fn arm_dead_man(&mut self, budget: Duration, tgid: u32, now_ns: u64) -> Result<(), Error> {
        self.dead_man_tgid = tgid;
        self.stamp(budget, now_ns)
    }

    /// The exit fence (`sched_process_exit` → `DEAD_MAN.exited`) is
    /// attached; if not, only the stale stamp trips the switch.
    pub fn exit_fence_attached(&self) -> bool {
        self.exit_fence
    }

    /// Stamps the switch with one map update: the daemon is alive now.
    /// The entry is written whole — `budget` again, and the latch cleared —
    /// so the caller reads the latch ([`Dataplane::dead_man`]) first and
    /// treats its own gap since the last stamp above the budget as a trip
    /// too (a trip the program latched between the two calls is then not
    /// lost: the gap that caused it is the caller's own). The armed tgid
    /// is written again; `exited` is cleared (a process that stamps is
    /// alive).
    pub fn stamp(&mut self, budget: Duration, now_ns: u64) -> Result<(), Error> {
        self.write_dead_man(DeadMan {
            stamp_ns: now_ns,
            budget_ns: budget.as_nanos() as u64,
            tripped_ns: 0,
            tgid: self.dead_man_tgid,
            exited: 0,
        })
    }

    fn dead_man_raw(&self) -> Result<DeadMan, Error> {
        self.maps.heartbeat.dead_man.get(&0, 0).map_err(map_err(maps::DEAD_MAN))
    }

    /// The switch as the program sees it.
    pub fn dead_man(&self) -> Result<DeadManState, Error> {
        let d = self.dead_man_raw()?;
        Ok(DeadManState {
            stamp_ns: d.stamp_ns,
            budget_ns: d.budget_ns,
            tripped_ns: (d.tripped_ns != 0).then_some(d.tripped_ns),
            tgid: d.tgid,
            exited: d.exited != 0,
        })
    }

    /// Turns the switch off (clean shutdown, or before the XDP program is
    /// detached) and forgets the tgid, so the exit that follows is not a
    /// death.
    pub fn disarm_dead_man(&mut self) -> Result<(), Error> {
        self.dead_man_tgid = 0;
        self.write_dead_man(DeadMan::default())
    }

    /// Hands the switch over to a successor process (a planned restart):
    /// armed for no process (this one's exit fences nothing) with a fresh
    /// stamp and `budget`, so the program keeps serving for that long
    /// without a daemon and fences the node once it runs out unstamped.
    pub fn hand_over_dead_man(&mut self, budget: Duration, now_ns: u64) -> Result<(), Error> {
        self.dead_man_tgid = 0;
        self.stamp(budget, now_ns)
    }

    /// Marks the armed process as exited, as the exit fence does (tests,
    /// and a caller that knows the daemon is gone).
    pub fn mark_dead_man_exited(&mut self) -> Result<(), Error> {
        let mut d = self.dead_man_raw()?;
        d.exited = 1;
        self.write_dead_man(d)
    }
}
