//! The daemon's side of the dead-man switch, its own lateness, and the
//! sync state the pair's preemption waits for.
//!
//! - **The dead-man stamp**: the loop writes `CLOCK_MONOTONIC` into the
//!   kernel's `DEAD_MAN` entry at the top of every turn. When the stamp is
//!   older than `heartbeat.dead_man_ms` (a SIGSTOP, a hang, a livelock),
//!   the XDP program stops answering ARP for the VIPs and drops traffic to
//!   them, and latches "tripped". The loop reads the latch *before* it
//!   stamps: a trip (the kernel's latch) is told to the pair machine
//!   ([`PairEvent::Fenced`]) after the peer's heartbeats of the stall —
//!   an active node steps down if its peer took over, and resumes if the
//!   peer did not act — and only then is the switch stamped (re-armed).
//! - **This loop's own lateness**: the gap between two turns, counted and
//!   reported in status.
//! - **Bad-MAC heartbeats from the peer's address**: the kernel records,
//!   per configured sender, heartbeats that fail authentication; the peer
//!   is then alive but misconfigured (another key), told to the pair
//!   ([`PairEvent::PeerBadMac`]) so that its silence is no takeover, and
//!   raised as an alarm once per episode.
//! - **The peer's state held**: the sync subscriber is in sync
//!   ([`PairEvent::PeerStateHeld`]), which gates preemption.
//!
//! Decisions are the pair machine's; this module feeds it and keeps the
//! counters that status and metrics show.

use std::time::{Duration, Instant};

use super::{Daemon, Event, mono_ns};
use crate::pair::Event as PairEvent;

/// The daemon's liveness bookkeeping (no decisions).
#[derive(Debug)]
pub(super) struct Liveness {
    /// When this loop last stamped the kernel.
    last_stamp: Instant,
    /// When the previous turn started.
    last_turn: Instant,
    /// Dead-man trips since start.
    pub(super) trips: u64,
    /// Turns that started later than two heartbeat intervals after the
    /// previous one, and the worst gap.
    pub(super) late_turns: u64,
    pub(super) worst_gap: Duration,
    /// The last value told with PeerStateHeld.
    state_held: Option<bool>,
    /// Per path: bad-MAC heartbeats from the peer already fed, and whether
    /// the alarm is raised.
    bad_mac_fed: std::collections::HashMap<u8, u64>,
    pub(super) bad_mac_alarm: std::collections::HashSet<u8>,
}

impl Liveness {
    pub(super) fn new(now: Instant) -> Liveness {
        Liveness {
            last_stamp: now,
            last_turn: now,
            trips: 0,
            late_turns: 0,
            worst_gap: Duration::ZERO,
            state_held: None,
            bad_mac_fed: Default::default(),
            bad_mac_alarm: Default::default(),
        }
    }
}

impl Daemon {
    /// Arms the kernel's dead-man switch over this process. Called once,
    /// after XDP is attached and before the loop's first turn.
    pub(super) fn arm_liveness(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        if let Some(budget) = self.cfg.heartbeat.dead_man {
            // Armed for this process: the kernel's exit fence fences the
            // node as soon as it exits (kill -9), before the stamp is stale.
            self.dp.arm_dead_man(budget, std::process::id(), mono_ns())?;
        }
        self.live.last_stamp = now;
        self.live.last_turn = now;
        if self.cfg.heartbeat.echo {
            self.seed_echoes()?;
        }
        Ok(())
    }

    /// The top of every loop turn: measure this loop's lateness, handle a
    /// dead-man trip, stamp the kernel.
    pub(super) fn turn_started(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        let gap = now.saturating_duration_since(self.live.last_turn);
        self.live.last_turn = now;
        if gap > self.cfg.heartbeat.interval * 2 {
            self.live.late_turns += 1;
            self.live.worst_gap = self.live.worst_gap.max(gap);
            // Only lateness that approaches the dead-man budget is worth a
            // line of the log; the rest is counted.
            let worth = self
                .cfg
                .heartbeat
                .dead_man
                .map_or(self.cfg.heartbeat.deadline(), |b| b / 2);
            if gap > worth {
                self.mark(Event::LoopLate {
                    micros: gap.as_micros() as u64,
                });
            }
        }
        let Some(budget) = self.cfg.heartbeat.dead_man else {
            return Ok(());
        };
        let stale = now.saturating_duration_since(self.live.last_stamp);
        let latched = match self.dp.dead_man() {
            Ok(st) => st.tripped_ns.is_some(),
            Err(e) => {
                tracing::error!("dead-man switch: reading its state: {e}");
                false
            }
        };
        // Only the kernel's latch fences: it proves the dataplane saw the
        // stamp stale while a packet needed it. A long gap of this loop alone
        // is lateness (counted above), not a trip.
        if latched {
            self.live.trips += 1;
            // What the peer said during the stall decides: its heartbeats
            // are in the kernel's records, not yet in the pair machine.
            self.refresh();
            self.mark(Event::Fenced {
                stale_us: stale.as_micros() as u64,
                state: self.pair.state().name().into(),
            });
            self.pair.handle(PairEvent::Fenced, now);
            self.apply_actions()?;
        }
        if let Err(e) = self.dp.stamp(budget, mono_ns()) {
            tracing::error!("dead-man switch: stamping: {e}");
        }
        self.live.last_stamp = now;
        Ok(())
    }

    /// Within a long piece of work on the loop (a reload writing many
    /// services): the heartbeats that are due, and a fresh dead-man stamp
    /// — the loop is working, not hung.
    pub(super) fn keep_alive(&mut self) {
        self.heartbeat_if_due();
        if let Some(budget) = self.cfg.heartbeat.dead_man {
            if let Err(e) = self.dp.stamp(budget, mono_ns()) {
                tracing::error!("dead-man switch: stamping: {e}");
            }
            self.live.last_stamp = Instant::now();
        }
    }

    /// Feeds the kernel's bad-MAC records of the peer that are newer than
    /// what the pair machine has seen, and raises or clears the alarm.
    pub(super) fn refresh_bad_mac(&mut self) {
        let now = Instant::now();
        let now_ns = mono_ns();
        // The alarm stands as long as the pair holds the peer misconfigured.
        let hold_ns = self.pair.config().misconfigured_hold().as_nanos() as u64;
        let mut fresh = std::collections::HashSet::new();
        for (node_id, count, last_ns, ifindex) in self.dp.bad_mac_senders() {
            if node_id != self.peer_id {
                continue;
            }
            let Some(path) = self.paths.get(&ifindex).copied() else {
                continue;
            };
            if now_ns.saturating_sub(last_ns) < hold_ns {
                fresh.insert(path);
            }
            let fed = self.live.bad_mac_fed.entry(path).or_insert(0);
            if count > *fed {
                *fed = count;
                self.pair.handle(
                    PairEvent::PeerBadMac { path },
                    crate::clock::instant_of(last_ns).min(now),
                );
            }
        }
        let raised: Vec<u8> = fresh
            .difference(&self.live.bad_mac_alarm)
            .copied()
            .collect();
        let cleared: Vec<u8> = self
            .live
            .bad_mac_alarm
            .difference(&fresh)
            .copied()
            .collect();
        for (path, on) in raised
            .into_iter()
            .map(|p| (p, true))
            .chain(cleared.into_iter().map(|p| (p, false)))
        {
            if on {
                self.live.bad_mac_alarm.insert(path);
            } else {
                self.live.bad_mac_alarm.remove(&path);
            }
            let bad_macs = self.live.bad_mac_fed.get(&path).copied().unwrap_or(0);
            let name = self.path_name(path);
            self.mark(Event::PeerMisconfigured {
                path: name,
                on,
                bad_macs,
            });
        }
    }

    pub(super) fn path_name(&self, path: u8) -> String {
        self.cfg
            .heartbeat
            .paths
            .get(usize::from(path))
            .map_or_else(|| format!("#{path}"), |p| p.name.clone())
    }

    /// Tells the pair whether this node holds the peer's state (on changes).
    pub(super) fn update_state_held(&mut self) {
        let held = self.sync.as_ref().is_some_and(|s| s.in_sync());
        if self.live.state_held != Some(held) {
            self.live.state_held = Some(held);
            self.pair
                .handle(PairEvent::PeerStateHeld(held), Instant::now());
        }
    }

    /// Turns the switch off before XDP is detached at a clean stop.
    pub(super) fn disarm_liveness(&mut self) {
        if self.cfg.heartbeat.dead_man.is_some()
            && let Err(e) = self.dp.disarm_dead_man()
        {
            tracing::error!("dead-man switch: disarming: {e}");
        }
    }
}
