//! A restart of tandemd without a failover: SIGTERM on a node whose
//! tables are pinned (`dataplane.pin_dir`, with the dead-man switch armed,
//! and no cards: a span's channels live in this process) stops the process
//! but not the node. XDP stays attached, running on its pinned tables; the
//! VIPs stay owned; the dead-man switch is handed over for
//! `dataplane.restart_grace` (armed for no process, so this exit fences
//! nothing); the peer is told in an authenticated "restarting" heartbeat to
//! wait as long; and the role and epoch are left in the pinned hand-over
//! record ([`tandem_dataplane::Handoff`]).
//!
//! The next process adopts the tables when their layout is its own
//! ([`tandem_dataplane::Tables::Adopted`]), puts its program into the
//! pinned link in place, and, if its predecessor was active and the grace
//! has not run out, resumes the role under the same epoch
//! ([`crate::pair::Pair::resume`]): no takeover, no GARP storm, no flow
//! lost. Otherwise (another build's layout, other table sizes, the grace
//! over) it starts fresh and yields, and the peer, which holds the synced
//! state, takes the role: an announced switchover, never two actives.
//!
//! SIGINT stops the node: the VIPs are released, XDP detached and the
//! pins removed, as before.

use std::path::PathBuf;

use tandem_dataplane::{Handoff, write_handoff};

use super::{Daemon, Event, mono_ns};
use crate::pair::NodeState;

impl Daemon {
    /// Where SIGTERM leaves the node for a successor: the pin directory,
    /// when restarts are possible (tables pinned, dead-man switch, no
    /// cards).
    pub(super) fn restart_dir(&self) -> Option<PathBuf> {
        let pinned = !matches!(self.tables, tandem_dataplane::Tables::NotPinned { .. });
        match (&self.cfg.dataplane.pin_dir, self.cfg.heartbeat.dead_man) {
            (Some(dir), Some(_)) if pinned && self.cards.is_empty() => Some(dir.clone()),
            _ => None,
        }
    }

    /// Stops this process for a restart (see the module doc). Never fails:
    /// what fails is logged, and the worst outcome is the peer's takeover
    /// when the grace ends.
    pub(super) fn stop_for_restart(&mut self, dir: PathBuf) {
        let grace = self.cfg.dataplane.restart_grace;
        let (state, epoch) = (self.pair.state(), self.pair.epoch());
        self.mark(Event::Restarting {
            state: state.name().into(),
            epoch,
            grace_ms: grace.as_millis() as u64,
        });
        let now_ns = mono_ns();
        let handoff = Handoff {
            active: state == NodeState::Active,
            epoch,
            until_ns: now_ns + grace.as_nanos() as u64,
            layout: self.layout,
            pid: std::process::id(),
        };
        if let Err(e) = write_handoff(&dir, &handoff) {
            tracing::error!("restart: leaving the hand-over record: {e}; the next process starts fresh");
        }
        // The last heartbeats of this process: wait for the next one — a
        // detection deadline longer than the dead-man budget below, so that
        // without a successor this node fences itself before the peer
        // takes over.
        self.sender.set_restarting(grace + self.cfg.heartbeat.deadline());
        self.send_heartbeats();
        if let Err(e) = self.dp.hand_over_dead_man(grace, mono_ns()) {
            tracing::error!("restart: handing the dead-man switch over: {e}");
        }
        // The address changes queued (none are, usually) before the exit.
        self.addr_worker.finish();
        self.dp.keep_pins();
        self.clients.remove_socket(&self.cfg.admin.socket);
    }

    /// A resumed active's publisher starts empty: it records every flow
    /// of the adopted connection table, so that the standby's snapshot of
    /// the new stream keeps them. The SIP Call-ID table holds hashes, not
    /// Call-IDs: its records cannot be rebuilt, so the snapshots ask the
    /// standby to keep the calls it holds (ended ones are removed by the
    /// kernel's call events, which carry the Call-ID).
    pub(super) fn seed_sync_from_tables(&mut self) {
        let Some(sy) = self.sync.as_mut() else {
            return;
        };
        let now = std::time::Instant::now();
        // Its calls, which it cannot rebuild, stay with the standby for as
        // long as an idle call lives.
        let idle = std::time::Duration::from_secs(u64::from(self.cfg.timeouts.sip_call_s));
        sy.keep_peer_calls_until(now + idle);
        for (key, v) in self.dp.flows() {
            let change = tandem_dataplane::FlowChange::New {
                key,
                service_id: v.service_id,
                real_slot: v.real_idx,
                created_ns: v.created_ns,
                flags: tandem_dataplane::FlowFlags::from_bits(v.flags),
            };
            if let Some(r) = self.translator.flow_record(&self.dp, &change) {
                sy.record(r, now);
            }
        }
    }
}
