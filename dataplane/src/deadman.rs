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
}

impl Dataplane {
    fn write_dead_man(&mut self, d: DeadMan) -> Result<(), Error> {
        self.maps.heartbeat.dead_man.set(0, d, 0).map_err(map_err(maps::DEAD_MAN))
    }

    /// Arms the switch: the stamp is `now_ns` and the program fences the
    /// node when it grows older than `budget` (zero turns the switch off).
    pub fn arm_dead_man(&mut self, budget: Duration, now_ns: u64) -> Result<(), Error> {
        self.write_dead_man(DeadMan { stamp_ns: now_ns, budget_ns: budget.as_nanos() as u64, tripped_ns: 0 })
    }

    /// Stamps the switch with one map update: the daemon is alive now.
    /// The entry is written whole — `budget` again, and the latch cleared —
    /// so the caller reads the latch ([`Dataplane::dead_man`]) first and
    /// treats its own gap since the last stamp above the budget as a trip
    /// too (a trip the program latched between the two calls is then not
    /// lost: the gap that caused it is the caller's own).
    pub fn stamp(&mut self, budget: Duration, now_ns: u64) -> Result<(), Error> {
        self.write_dead_man(DeadMan { stamp_ns: now_ns, budget_ns: budget.as_nanos() as u64, tripped_ns: 0 })
    }

    fn dead_man_raw(&self) -> Result<DeadMan, Error> {
        self.maps.heartbeat.dead_man.get(&0, 0).map_err(map_err(maps::DEAD_MAN))
    }

    /// The switch as the program sees it.
    pub fn dead_man(&self) -> Result<DeadManState, Error> {
        let d = self.dead_man_raw()?;
        Ok(DeadManState { stamp_ns: d.stamp_ns, budget_ns: d.budget_ns, tripped_ns: (d.tripped_ns != 0).then_some(d.tripped_ns) })
    }

    /// Turns the switch off (clean shutdown, or before the XDP program is
    /// detached).
    pub fn disarm_dead_man(&mut self) -> Result<(), Error> {
        self.write_dead_man(DeadMan::default())
    }
}
