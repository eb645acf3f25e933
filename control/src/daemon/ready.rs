//! The end of start-up: the daemon's side of [`crate::startup`]. The
//! recorder is fed each loop turn's role; on the turn the role is first
//! decided (the turn systemd is told `READY=1`) the report goes into the
//! timeline ([`Event::Ready`]) and the log, and `status` serves it after.

use std::time::Instant;

use anyhow::Result;

use super::{Daemon, Event};
use crate::{config::Config, startup::Startup};

impl Daemon {
    /// [`Daemon::new_timed`] with start-up counted from now (the caller
    /// did not time reading the configuration).
    pub fn new(cfg: Config) -> Result<Daemon> {
        let now = Instant::now();
        let mut startup = Startup::begin(now);
        startup.handle_phase_end(crate::startup::Phase::Config, now);
        Daemon::new_timed(cfg, startup)
    }

    /// The start-up report, once the role is decided.
    pub fn startup_report(&self) -> Option<&crate::startup::StartupReport> {
        self.startup.report()
    }

    /// One loop turn for the start-up recorder.
    pub(super) fn startup_turn(&mut self) {
        if self.startup.report().is_some() {
            return;
        }
        let init_hold = self.cfg.pair_config(self.witness.is_some()).init_hold;
        let entries = self.dp.options();
        self.startup
            .set_context(init_hold, entries.flow_entries, entries.nat_entries);
        if !self.startup.handle_turn(Instant::now(), self.pair.state()) {
            return;
        }
        let Some(r) = self.startup.report().cloned() else {
            return;
        };
        tracing::info!(
            total_us = r.total_us,
            work_us = r.work_us(),
            init_us = r.phase_us(crate::startup::Phase::Init),
            verify_us = r.phase_us(crate::startup::Phase::Verify),
            role = %r.role,
            "start-up done"
        );
        self.mark(Event::Ready { startup: r });
    }
}
