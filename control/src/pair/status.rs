//! The [`Pair`]'s getters and [`Pair::poll_timeout`]: what it tells the
//! runtime and the operator about itself and its peer, computed from its
//! fields. Nothing here changes the machine.

use std::time::Instant;

use super::{
    EchoState, FaultKind, NodeState, Pair, PairConfig, PathLiveness, PeerView, SwitchoverRefused,
};

impl Pair {
    pub fn config(&self) -> &PairConfig {
        &self.cfg
    }

    pub fn state(&self) -> NodeState {
        self.state
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The priority to advertise: the configured one, or 0 while yielding
    /// or held down (and not active): such a node lets the peer claim.
    pub fn priority(&self) -> u8 {
        let held = self.damping.until().is_some() && self.state != NodeState::Active;
        if self.yielding() || held {
            0
        } else {
            self.cfg.priority
        }
    }

    pub fn peer(&self) -> Option<PeerView> {
        self.peer.clone()
    }

    /// The peer is alive at `now`: some path has a fresh heartbeat or an
    /// Alive echo, or its restart grace runs ([`super::Event::PeerRestarting`]).
    pub fn peer_alive(&self, now: Instant) -> bool {
        self.peer.is_some()
            && (self.peer_restart_until.is_some_and(|t| now < t)
                || (0..self.cfg.paths).any(|p| self.path_alive(p, now)))
    }

    /// The end of the peer's announced restart grace, while it runs.
    pub fn peer_restarting_until(&self, now: Instant) -> Option<Instant> {
        self.peer_restart_until.filter(|&t| now < t)
    }

    /// The local fault in force, if any (an active may be serving degraded).
    pub fn local_fault(&self) -> Option<FaultKind> {
        self.local_fault
    }

    /// Whether [`super::Event::AdminSwitchover`] would hand the role over now.
    pub fn can_switchover(&self, now: Instant) -> Result<(), SwitchoverRefused> {
        if self.state != NodeState::Active {
            return Err(SwitchoverRefused::NotActive(self.state));
        }
        // A standby advertising priority 0 (yielding, held down) would not
        // take the role.
        match self.live_peer(now) {
            Some(p) if p.fresh && p.state == NodeState::Standby && p.priority > 0 => Ok(()),
            _ => Err(SwitchoverRefused::NoHealthyPeer),
        }
    }

    /// The end of the hold-down, while one is in force.
    pub fn hold_down_until(&self) -> Option<Instant> {
        self.damping.until()
    }

    /// Recent losses of the active role (they set the hold-down's length).
    pub fn flaps(&self) -> u32 {
        self.damping.flaps()
    }

    /// The switchover hold: None, Some(None) until released, Some(Some(t)).
    pub fn switchover_hold(&self) -> Option<Option<Instant>> {
        self.switchover_hold
    }

    /// This node holds the peer's state ([`super::Event::PeerStateHeld`]).
    pub fn peer_state_held(&self) -> bool {
        self.state_held_since.is_some()
    }

    /// A bad-MAC heartbeat from the peer's address within
    /// [`PairConfig::misconfigured_hold`] on some path: the peer is alive
    /// and misconfigured.
    pub fn peer_misconfigured(&self, now: Instant) -> bool {
        self.misconfigured_until().is_some_and(|t| now < t)
    }

    /// Every path's liveness at `now`.
    pub fn path_liveness(&self, now: Instant) -> Vec<PathLiveness> {
        (0..self.cfg.paths)
            .map(|path| {
                let i = usize::from(path);
                let deadline = self.cfg.deadline();
                PathLiveness {
                    path,
                    heartbeat_fresh: self
                        .peer
                        .as_ref()
                        .is_some_and(|p| p.heard_on(path, now, deadline)),
                    reported_down: self.peer.as_ref().is_some_and(|p| p.paths[i].reported_down),
                    echo: self.echo_state(path, now),
                    bad_mac: self.bad_mac[i]
                        .is_some_and(|t| now < t + self.cfg.misconfigured_hold()),
                    alive: self.path_alive(path, now),
                }
            })
            .collect()
    }

    /// The next instant [`Pair::handle_timeout`] must be called at: the
    /// earliest future instant at which a deadline, an echo loss, a hold or
    /// a timer of the current state ends.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (interval, m) = (self.cfg.interval, self.cfg.multiplier);
        let mut all = vec![
            self.yield_until,
            self.switchover_hold.flatten(),
            self.damping.next_change(self.cfg.hold_down_max),
            self.peer_alive_since.map(|t| t + self.cfg.preempt_delay),
            self.state_held_since.map(|t| t + self.cfg.preempt_delay),
            self.peer_restart_until,
        ];
        if self.peer_alive(self.now) {
            all.push(self.peer_dead_at());
        } else {
            // Dead: an echo turning Lost may make it positively dead.
            all.extend(self.echo.iter().map(|e| e.lost_at(interval, m)));
        }
        all.push(self.misconfigured_until());
        match self.state {
            NodeState::Init => all.push(Some(self.init_until)),
            NodeState::Takeover => all.push(self.witness_due),
            NodeState::Fault if self.local_fault.is_none() => all.push(self.retry_at),
            _ => {}
        }
        all.into_iter().flatten().filter(|&t| t > self.now).min()
    }

    /// When the peer, alive now, dies unless heard again: the latest
    /// path's end (its heartbeat deadline, or its echo's loss while the
    /// echo is Alive). None if some path cannot end without further input
    /// (an Alive echo with fewer than `multiplier` echoes pending).
    fn peer_dead_at(&self) -> Option<Instant> {
        let deadline = self.cfg.deadline();
        let (interval, m) = (self.cfg.interval, self.cfg.multiplier);
        let mut latest = None;
        for path in 0..self.cfg.paths {
            let fresh = self
                .peer
                .as_ref()
                .and_then(|p| p.fresh_until(path, deadline));
            let echo = if self.echo_state(path, self.now) == EchoState::Alive {
                match self.echo[usize::from(path)].lost_at(interval, m) {
                    None => return None,
                    t => t,
                }
            } else {
                None
            };
            latest = latest.max(fresh.max(echo));
        }
        latest
    }

    pub(super) fn echo_state(&self, path: u8, now: Instant) -> EchoState {
        self.echo[usize::from(path)].state(now, self.cfg.interval, self.cfg.multiplier)
    }

    /// Path `path` keeps the peer alive: fresh heartbeat or Alive echo.
    pub(super) fn path_alive(&self, path: u8, now: Instant) -> bool {
        self.peer
            .as_ref()
            .is_some_and(|p| p.heard_on(path, now, self.cfg.deadline()))
            || self.echo_state(path, now) == EchoState::Alive
    }

    /// Every path dead, and on each the echo Lost or the path reported
    /// down; a peer never heard counts when no echo is Alive.
    pub(super) fn peer_positively_dead(&self, now: Instant) -> bool {
        if (0..self.cfg.paths).any(|p| self.path_alive(p, now)) {
            return false;
        }
        let Some(view) = &self.peer else {
            return true;
        };
        (0..self.cfg.paths).all(|p| {
            view.paths[usize::from(p)].reported_down || self.echo_state(p, now) == EchoState::Lost
        })
    }

    /// When the newest bad-MAC evidence expires.
    pub(super) fn misconfigured_until(&self) -> Option<Instant> {
        let hold = self.cfg.misconfigured_hold();
        self.bad_mac.iter().flatten().map(|&t| t + hold).max()
    }

    /// The newest heartbeat or echo return of the peer.
    pub(super) fn last_sign_of_life(&self) -> Option<Instant> {
        let heard = self
            .peer
            .as_ref()
            .and_then(|p| p.paths.iter().filter_map(|pp| pp.last_seen).max());
        let echoed = self.echo.iter().filter_map(|e| e.returned_at()).max();
        heard.max(echoed)
    }
}
