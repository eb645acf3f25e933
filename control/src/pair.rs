//! The pair state machine: which director of a hot-standby pair serves.
//!
//! This module owns the failover decision of one node: its state
//! ([`NodeState`]: Init, Standby, Takeover, Active, Fault, Maintenance), its
//! epoch (the term of the current active role), what it knows of its peer
//! from verified heartbeats and reflected echoes, and the holds that damp
//! role changes. It is sans-IO in the style of quinn-proto: the runtime
//! feeds it [`Event`]s and the current time through [`Pair::handle`] and
//! [`Pair::handle_timeout`], calls `handle_timeout` at
//! [`Pair::poll_timeout`], and drains [`Action`]s with [`Pair::poll_action`]
//! after every call. It must not do I/O, read a clock, sleep, spawn, or know
//! how heartbeats and echoes travel: it sends neither (the runtime sends
//! `state()`, `epoch()` and `priority()` every `interval` on every path, and
//! one echo per path per interval, reporting each with [`Event::EchoSent`]),
//! and it never takes or releases a VIP itself.
//!
//! # Words
//! - **deadline**: `interval × multiplier`.
//! - **heartbeat fresh** on a path: heard within the deadline and the path
//!   not reported down ([`Event::PathDown`]) since.
//! - **echo** of a path ([`EchoState`]): *Unknown* before any echo came
//!   back (always, with `echo` off); *Lost* when `multiplier` echoes in a
//!   row sent after the newest returned one were not back within one
//!   interval each; *Alive* otherwise. Loss is counted in echoes this node
//!   sent, so its own stalls (it sent nothing) never look like the peer's
//!   silence.
//! - **alive**: the peer is alive while some path has a fresh heartbeat or
//!   an Alive echo; it is *dead* when every path is dead, and *positively
//!   dead* when moreover every path's echo is Lost or the path was reported
//!   down (not merely silent with the echo Unknown). A peer never heard is
//!   positively dead unless some echo is Alive.
//! - **misconfigured**: a bad-MAC heartbeat from the peer's address
//!   ([`Event::PeerBadMac`]) within [`PairConfig::misconfigured_hold`]
//!   (`max(1 s, 10 × deadline)`): the peer is alive with another key. A
//!   valid heartbeat on that path clears it.
//! - **epoch**: the term of the active role. A node that becomes active takes
//!   `max(own, peer's) + 1`; every node adopts the highest epoch it hears;
//!   the epoch never decreases (it restarts at 0 only with the process).
//! - **witness**: an address on the service network the runtime can probe.
//!   A node that would serve without hearing its peer needs the witness to
//!   have answered a probe sent after the peer fell silent (its newest
//!   heartbeat or echo return plus `interval × (multiplier − 1)`). The
//!   runtime reports every answer with the probe's send time
//!   ([`Event::WitnessAnswered`]); otherwise the machine asks
//!   ([`Action::ProbeWitness`]); no fresh answer (or [`Event::Witness`]
//!   unreachable) within [`PairConfig::witness_timeout`] is unreachable.
//! - **yield**: after an operator switchover the old active advertises
//!   priority 0 for [`PairConfig::yield_hold`] (VRRP's "priority 0: I am
//!   leaving").
//! - **hold-down** (flap damping, see `damping`): losing the active role
//!   other than by operator command (dual-active loss, a higher epoch,
//!   [`Event::Fenced`], a local fault) is a *flap*; it holds the node down
//!   for `hold_down × 2^(recent flaps − 1)`, capped at `hold_down_max`; a
//!   flap is recent for `hold_down_max`. A held-down node does not compete
//!   for the role: it advertises priority 0 while not active (so the peer
//!   wins any tie-break and claims the role), does not take over a dead
//!   peer, does not preempt and does not keep the role in a dual-active
//!   heal by preemption — unless the peer is positively dead.
//! - **switchover hold**: after an operator switchover the old active does
//!   not preempt until [`Event::AdminReleaseHold`] or `switchover_hold`
//!   elapses. It blocks preemption only, and ends when the node becomes
//!   active again.
//! - **preemption gate**: a preemption (standby → active over an active
//!   peer, or keeping the role in a dual-active heal) needs, beyond preempt
//!   on and a strictly higher priority, no hold-down, no switchover hold,
//!   and the peer alive continuously for `preempt_delay` — with `sync`, the
//!   peer's state held ([`Event::PeerStateHeld`]) too, the delay counted
//!   from the later of the two (conntrackd's commit before master). A
//!   takeover of a dead peer is never gated on sync. The taker is protected
//!   this way: the node it replaced meets it again with a lower epoch, must
//!   wait out the preempt delay from that moment and, having lost the
//!   role, its hold-down.
//! - **tie-break**: between two nodes that both could serve, the higher
//!   advertised priority wins, then the lower node id. Between two actives,
//!   the higher epoch wins first.
//!
//! # Transitions
//! Decisions are level-triggered: after every input the machine re-applies
//! the rules below to its state and its view of the peer until nothing
//! changes. Every [`Action::StateChanged`] carries its [`Reason`]; a move a
//! rule would make but a hold suppresses is reported once per episode as
//! [`Action::Held`].
//!
//! - **Init** listens for up to `init_hold`. Peer misconfigured → Standby.
//!   Peer heard Active or Takeover → Standby. Peer Standby or Init →
//!   tie-break: the winner becomes Active, the loser Standby. Peer Fault or
//!   Maintenance → Active at once. Nobody heard by `init_hold` → Takeover.
//! - **Standby**: peer misconfigured → stay (held). Peer dead → Takeover,
//!   unless held down and the peer not positively dead (held). Peer Fault
//!   or Maintenance → Active at once. Peer Standby or Init (nobody active)
//!   → the tie-break winner (by advertised priority) becomes Active; the
//!   loser waits. Peer Takeover → wait. Peer Active → stay, unless the
//!   preemption gate opens: then Active with epoch + 1.
//! - **Takeover** (serving without hearing the peer): peer misconfigured
//!   → Standby. Peer heard again → Standby. Without a witness → Active at
//!   once. With one: [`Action::ProbeWitness`]; reachable → Active;
//!   unreachable or unanswered → Fault (isolated), probing again every
//!   [`PairConfig::isolation_retry`] through Takeover (held while held
//!   down, as from Standby).
//! - **Active**: peer heard Active too → compare (epoch, priority, lower
//!   node id): the winner stays and emits [`Action::SendGarp`] once per
//!   heal; the loser keeps the role under epoch = max + 1 (SendGarp) if the
//!   preemption gate opens for it, else becomes Standby (a flap).
//!   [`Event::Fenced`] → Standby (a flap) when the peer is heard Active or
//!   Takeover; with the peer Standby or silent the stall cost nothing but
//!   the fence and the node stays Active. A peer misconfigured changes
//!   nothing.
//! - **Local fault** (interface down, card alarm): Active → Fault
//!   (BecomeStandby, a flap) only when the peer is alive and Standby;
//!   otherwise the node stays Active, degraded. In Init, Standby or
//!   Takeover → Fault; a faulted node never takes over. Fault cleared →
//!   Standby.
//! - **Admin switchover**: on Active, with the peer alive, Standby and not
//!   advertising priority 0 → Standby, yield, switchover hold. Refused
//!   (ignored) otherwise, see [`Pair::can_switchover`].
//! - **Maintenance** (operator): any state → Maintenance (an active releases
//!   its VIPs, not a flap); never takes over; off → Standby.
//!
//! Inputs on a path index ≥ `paths`, and heartbeats claiming our own node
//! id, are ignored. A heartbeat from another node id than the known peer
//! replaces the peer and forgets the echoes (the wire and the types carry
//! node ids and do not assume two nodes).
//!
//! # Method kinds
//! Getters ([`Pair::state`], [`Pair::epoch`], [`Pair::priority`],
//! [`Pair::peer`], [`Pair::peer_alive`], [`Pair::local_fault`],
//! [`Pair::can_switchover`], [`Pair::hold_down_until`], [`Pair::flaps`],
//! [`Pair::switchover_hold`], [`Pair::peer_state_held`],
//! [`Pair::peer_misconfigured`], [`Pair::path_liveness`]); events with
//! their time ([`Pair::handle`], [`Pair::handle_timeout`]); what it wants
//! done ([`Pair::poll_action`], [`Pair::poll_timeout`]).
//!
//! Actions come in this order for one transition: [`Action::StateChanged`]
//! first, then its effect ([`Action::BecomeActive`], [`Action::BecomeStandby`],
//! [`Action::ProbeWitness`]).
//!
//! # Why the model check is home-made
//! `control/tests/pair_model.rs` explores every interleaving of two nodes
//! with a breadth-first search of its own rather than the `stateright`
//! crate: the model needs discrete time (ticks of `interval`) with
//! heartbeats that must arrive before the next tick, and states deduplicated
//! by instants taken relative to now ([`Pair::fingerprint`]); written
//! directly that is a few hundred lines with no dependency, and its
//! counterexamples print as plain event traces.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::time::Instant;

mod damping;
mod fingerprint;
mod liveness;
mod status;
mod types;

use damping::Damping;
pub use fingerprint::Fingerprint;
use liveness::EchoTrack;
pub use liveness::{EchoState, PathLiveness, PeerPath, PeerView};
pub use types::{
    Action, Event, FaultKind, Hold, NodeState, PairConfig, Reason, SwitchoverRefused, local_fault,
};

/// Enough steps for the longest chain of transitions one input can cause
/// (e.g. Fault → Standby → Takeover → Active).
const MAX_STEPS: usize = 8;

/// The peer's fields a decision needs (copied out of the view).
#[derive(Clone, Copy, Debug)]
struct Peer {
    node_id: u32,
    state: NodeState,
    epoch: u64,
    priority: u8,
    /// A heartbeat came on some path within the deadline: `state`, `epoch`
    /// and `priority` are the peer's now. A peer alive only by its echoes
    /// (its dataplane reflects them) may advertise what it was long ago (a
    /// node back from a partition, its links down for seconds, last heard
    /// its peer as a standby): no decision rests on that until it is heard.
    fresh: bool,
}

/// What the preemption gate says.
enum Gate {
    /// Preemption does not apply (off, not higher priority, yielding, faulty).
    No,
    Held(Hold, Option<Instant>),
    Open,
}

/// The failover state machine of one node. See the module documentation.
#[derive(Clone, Debug)]
pub struct Pair {
    cfg: PairConfig,
    state: NodeState,
    epoch: u64,
    peer: Option<PeerView>,
    /// The latest time handled: instants at or before it are past.
    now: Instant,
    /// Init decides alone at this instant.
    init_until: Instant,
    local_fault: Option<FaultKind>,
    maintenance: bool,
    /// A witness probe is outstanding (Takeover) and is due by then.
    witness_due: Option<Instant>,
    /// A takeover needs a witness answer to a probe sent at or after this.
    witness_need: Option<Instant>,
    /// Send time of the newest probe the witness answered.
    witness_answered: Option<Instant>,
    /// Isolated (Fault without a local fault): probe the witness again then.
    retry_at: Option<Instant>,
    /// Yielding after a switchover until then.
    yield_until: Option<Instant>,
    /// SendGarp was emitted for the current dual-active episode.
    garp_sent: bool,
    /// Echo bookkeeping, by path.
    echo: Vec<EchoTrack>,
    /// The newest bad-MAC heartbeat from the peer's address, by path.
    bad_mac: Vec<Option<Instant>>,
    damping: Damping,
    /// Some(None): preemption held until released; Some(Some(t)): until t.
    switchover_hold: Option<Option<Instant>>,
    /// This node holds the peer's state since then.
    state_held_since: Option<Instant>,
    /// The peer has been alive continuously since then.
    peer_alive_since: Option<Instant>,
    /// Why the current Takeover started (its reason when it completes).
    takeover_reason: Reason,
    /// The peer announced a planned restart: alive until then though
    /// silent ([`Event::PeerRestarting`]).
    peer_restart_until: Option<Instant>,
    /// The hold last reported with [`Action::Held`] (None: nothing held).
    held: Option<Hold>,
    /// The hold the current settle step found.
    step_hold: Option<(Hold, Option<Instant>)>,
    actions: VecDeque<Action>,
}

impl Pair {
    pub fn new(mut cfg: PairConfig, now: Instant) -> Pair {
        cfg.priority = cfg.priority.max(1);
        let paths = usize::from(cfg.paths);
        Pair {
            init_until: now + cfg.init_hold,
            now,
            cfg,
            state: NodeState::Init,
            epoch: 0,
            peer: None,
            local_fault: None,
            maintenance: false,
            witness_due: None,
            witness_need: None,
            witness_answered: None,
            retry_at: None,
            yield_until: None,
            garp_sent: false,
            echo: vec![EchoTrack::default(); paths],
            bad_mac: vec![None; paths],
            damping: Damping::default(),
            switchover_hold: None,
            state_held_since: None,
            peer_alive_since: None,
            takeover_reason: Reason::InitAlone,
            peer_restart_until: None,
            held: None,
            step_hold: None,
            actions: VecDeque::new(),
        }
    }

    /// A node whose process restarted while active, resuming the role from
    /// the kernel state its predecessor left (VIPs owned, XDP attached,
    /// tables kept) under the same `epoch`: Active at once, with
    /// [`Reason::Resumed`] and [`Action::BecomeActive`] (whose effects the
    /// runtime finds already in place). The runtime calls it only when the
    /// predecessor handed the role over within its restart grace; the
    /// rules apply from the first input on (a peer heard active under a
    /// higher epoch wins as ever).
    pub fn resume(cfg: PairConfig, now: Instant, epoch: u64) -> Pair {
        let mut p = Pair::new(cfg, now);
        p.epoch = epoch;
        p.enter(NodeState::Active, now, Reason::Resumed);
        p.garp_sent = true;
        p
    }

    /// A restarted node that could not resume (its predecessor's tables
    /// were of another layout): it yields for [`PairConfig::yield_hold`],
    /// advertising priority 0, so that the peer, which holds the synced
    /// state, wins the tie-break and takes the role.
    pub fn yield_at_start(&mut self, now: Instant) {
        self.yield_until = Some(now + self.cfg.yield_hold());
    }

    pub fn handle(&mut self, ev: Event, now: Instant) {
        self.observe(now);
        let paths = self.cfg.paths;
        match ev {
            Event::Heartbeat {
                path,
                from,
                state,
                epoch,
                priority,
            } => {
                if from == self.cfg.node_id || path >= paths {
                    return;
                }
                let was_alive = self.peer_alive(now);
                let replaced = !self.peer.as_ref().is_some_and(|p| p.node_id == from);
                // Heard: an earlier restart announcement is over (the
                // heartbeat's own is fed next, as PeerRestarting).
                self.peer_restart_until = None;
                if replaced {
                    self.peer = Some(PeerView {
                        node_id: from,
                        state,
                        epoch,
                        priority,
                        paths: vec![PeerPath::default(); usize::from(paths)],
                    });
                    self.echo = vec![EchoTrack::default(); usize::from(paths)];
                }
                if !was_alive || state != NodeState::Active {
                    // A new dual-active episode starts only after the peer
                    // was lost or stopped being active.
                    self.garp_sent = false;
                }
                if let Some(peer) = self.peer.as_mut() {
                    peer.state = state;
                    peer.epoch = epoch;
                    peer.priority = priority;
                    peer.paths[usize::from(path)] = PeerPath {
                        last_seen: Some(now),
                        reported_down: false,
                    };
                }
                self.bad_mac[usize::from(path)] = None;
                self.note_alive(now);
                // Decide with the epochs as they stand (the dual-active
                // comparison needs ours before adoption), then adopt.
                self.settle(now);
                self.epoch = self.epoch.max(epoch);
                return;
            }
            Event::PathDown { path } => {
                if let Some(p) = self
                    .peer
                    .as_mut()
                    .and_then(|p| p.paths.get_mut(usize::from(path)))
                {
                    p.reported_down = true;
                }
            }
            Event::EchoSent { path, seq } => {
                if self.cfg.echo && path < paths {
                    let (interval, m) = (self.cfg.interval, self.cfg.multiplier);
                    self.echo[usize::from(path)].sent(seq, now, interval, m);
                }
            }
            Event::EchoReturned { path, seq } => {
                if self.cfg.echo && path < paths {
                    self.echo[usize::from(path)].returned(seq, now);
                }
            }
            Event::PeerBadMac { path } => {
                if path < paths {
                    self.bad_mac[usize::from(path)] = Some(now);
                }
            }
            Event::Fenced => {
                // The fence already kept this node out of the dataplane for
                // the stall. Only a peer that serves (or is taking over)
                // makes it step down; a peer that is alive and Standby, or
                // silent, did not act on the stall: the node resumes, and a
                // busy machine costs no role change.
                let peer_serves = self
                    .live_peer(now)
                    .is_some_and(|p| matches!(p.state, NodeState::Active | NodeState::Takeover));
                if self.state == NodeState::Active && peer_serves {
                    self.enter(NodeState::Standby, now, Reason::Fenced);
                }
            }
            Event::PeerStateHeld(held) => {
                self.state_held_since = if held {
                    Some(self.state_held_since.unwrap_or(now))
                } else {
                    None
                };
            }
            Event::AdminReleaseHold => self.switchover_hold = None,
            Event::PeerRestarting { until } => {
                if self.peer.is_some() && until > now {
                    self.peer_restart_until = Some(until);
                }
            }
            Event::LocalFault(kind) => {
                self.local_fault = Some(kind);
                self.retry_at = None;
            }
            Event::LocalFaultCleared => self.local_fault = None,
            Event::AdminSwitchover => {
                if self.can_switchover(now).is_ok() {
                    self.yield_until = Some(now + self.cfg.yield_hold());
                    self.switchover_hold = Some(self.cfg.switchover_hold.map(|d| now + d));
                    self.enter(NodeState::Standby, now, Reason::Switchover);
                }
            }
            Event::AdminMaintenance(on) => self.maintenance = on,
            Event::WitnessAnswered { sent_at } => {
                self.witness_answered =
                    Some(self.witness_answered.map_or(sent_at, |a| a.max(sent_at)));
            }
            Event::Witness { reachable } => {
                if self.state == NodeState::Takeover && self.witness_due.is_some() {
                    self.witness_due = None;
                    if reachable {
                        self.take_active(now, Reason::WitnessReachable);
                    } else {
                        self.isolated(now);
                    }
                }
            }
        }
        self.note_alive(now);
        self.settle(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.observe(now);
        self.settle(now);
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Expire what ended by `now`.
    fn observe(&mut self, now: Instant) {
        self.now = now;
        if self.yield_until.is_some_and(|t| now >= t) {
            self.yield_until = None;
        }
        if self
            .switchover_hold
            .is_some_and(|h| h.is_some_and(|t| now >= t))
        {
            self.switchover_hold = None;
        }
        self.damping.expire(now, self.cfg.hold_down_max);
        if !self.peer_alive(now) {
            self.peer_alive_since = None;
        }
    }

    /// Start the peer's continuous-liveness clock if it just came alive.
    fn note_alive(&mut self, now: Instant) {
        if self.peer_alive_since.is_none() && self.peer_alive(now) {
            self.peer_alive_since = Some(now);
        }
    }

    fn live_peer(&self, now: Instant) -> Option<Peer> {
        let p = self.peer.as_ref()?;
        self.peer_alive(now).then_some(Peer {
            node_id: p.node_id,
            state: p.state,
            epoch: p.epoch,
            priority: p.priority,
            fresh: p.alive(now, self.cfg.deadline()),
        })
    }

    fn yielding(&self) -> bool {
        self.yield_until.is_some()
    }

    /// Report that `hold` suppresses a move in this step.
    fn hold(&mut self, hold: Hold, until: Option<Instant>) -> bool {
        self.step_hold = Some((hold, until));
        false
    }

    /// Re-apply the rules until nothing changes; report a new hold once.
    fn settle(&mut self, now: Instant) {
        let mut settled = false;
        for _ in 0..MAX_STEPS {
            self.step_hold = None;
            if !self.step(now) {
                settled = true;
                break;
            }
        }
        debug_assert!(settled, "pair state machine did not settle: {self:?}");
        let hold = self.step_hold.take();
        if hold.map(|h| h.0) != self.held {
            if let Some((hold, until)) = hold {
                self.actions.push_back(Action::Held { hold, until });
            }
            self.held = hold.map(|h| h.0);
        }
    }

    /// Apply the rules once; true if the state (or epoch) changed.
    fn step(&mut self, now: Instant) -> bool {
        use NodeState::*;
        if self.maintenance {
            if self.state == Maintenance {
                return false;
            }
            return self.enter(Maintenance, now, Reason::Maintenance);
        }
        let peer = self.live_peer(now);
        let misconfigured = self.peer_misconfigured(now);
        match self.state {
            Init | Standby | Takeover if self.local_fault.is_some() => {
                self.enter(Fault, now, Reason::LocalFault)
            }
            Init | Takeover if misconfigured => self.enter(Standby, now, Reason::PeerMisconfigured),
            Standby if misconfigured => {
                let until = self.misconfigured_until();
                self.hold(Hold::PeerMisconfigured, until)
            }
            // Alive, its role unknown: wait for its next heartbeat.
            Init if peer.is_some_and(|p| !p.fresh) => false,
            Init => match peer {
                Some(p) => match p.state {
                    Active | Takeover => {
                        self.enter(Standby, now, Reason::PeerHeardActive { epoch: p.epoch })
                    }
                    Standby | Init if !self.wins_tie_break(p) => {
                        self.enter(Standby, now, Reason::TieBreak)
                    }
                    Standby | Init => self.take_active(now, Reason::TieBreak),
                    Fault | Maintenance => self.take_active(now, Reason::PeerCannotServe),
                },
                None if now >= self.init_until => {
                    self.takeover_reason = Reason::InitAlone;
                    self.enter(Takeover, now, Reason::InitAlone)
                }
                None => false,
            },
            Standby if self.alive_by_restart_only(now) => {
                self.hold(Hold::PeerRestarting, self.peer_restart_until)
            }
            Standby if peer.is_some_and(|p| !p.fresh) => false,
            Standby => match peer {
                None => self.take_over_dead_peer(now),
                Some(p) => match p.state {
                    Active => match self.preempt_gate(p, now) {
                        Gate::Open => self.take_active(now, Reason::Preempt),
                        Gate::Held(hold, until) => self.hold(hold, until),
                        Gate::No => false,
                    },
                    Standby | Init if self.wins_tie_break(p) => {
                        self.take_active(now, Reason::TieBreak)
                    }
                    Standby | Init if self.damping.holding(now) && self.would_win_unheld(p) => {
                        self.hold(Hold::HoldDown, self.damping.until())
                    }
                    Fault | Maintenance => self.take_active(now, Reason::PeerCannotServe),
                    Standby | Init | Takeover => false,
                },
            },
            Takeover => {
                if let Some(p) = peer {
                    let reason = match p.state {
                        Active | Takeover => Reason::PeerHeardActive { epoch: p.epoch },
                        _ => Reason::PeerHeard,
                    };
                    self.enter(Standby, now, reason)
                } else if !self.cfg.witness {
                    self.take_active(now, self.takeover_reason)
                } else if self.witness_fresh() {
                    self.take_active(now, Reason::WitnessReachable)
                } else if self.witness_due.is_none_or(|t| now >= t) {
                    self.isolated(now)
                } else {
                    false
                }
            }
            Active => match peer {
                Some(p) if !p.fresh => false,
                Some(p) if p.state == Active => self.settle_dual_active(p, now),
                Some(p) if p.state == Standby && self.local_fault.is_some() => {
                    self.enter(Fault, now, Reason::LocalFault)
                }
                _ => false,
            },
            Fault => {
                if self.local_fault.is_some() {
                    false
                } else if peer.is_some() || self.retry_at.is_none() {
                    self.enter(Standby, now, Reason::FaultCleared)
                } else if self.retry_at.is_some_and(|t| now >= t) {
                    if self.held_down_beside(now) {
                        self.hold(Hold::HoldDown, self.damping.until())
                    } else {
                        self.takeover_reason = Reason::PeerDead {
                            positively: self.peer_positively_dead(now),
                        };
                        self.enter(Takeover, now, Reason::IsolationRetry)
                    }
                } else {
                    false
                }
            }
            Maintenance => self.enter(Standby, now, Reason::MaintenanceOff),
        }
    }

    /// The peer counts as alive only by its restart announcement.
    fn alive_by_restart_only(&self, now: Instant) -> bool {
        self.peer_restart_until.is_some_and(|t| now < t)
            && self.peer.is_some()
            && !(0..self.cfg.paths).any(|p| self.path_alive(p, now))
    }

    /// Held down and the peer is not positively dead.
    fn held_down_beside(&self, now: Instant) -> bool {
        self.damping.holding(now) && !self.peer_positively_dead(now)
    }

    /// Standby, the peer dead: Takeover unless held down.
    fn take_over_dead_peer(&mut self, now: Instant) -> bool {
        if self.held_down_beside(now) {
            return self.hold(Hold::HoldDown, self.damping.until());
        }
        let reason = Reason::PeerDead {
            positively: self.peer_positively_dead(now),
        };
        self.takeover_reason = reason;
        self.enter(NodeState::Takeover, now, reason)
    }

    /// Between two nodes that could both take a role nobody holds, by
    /// advertised priorities.
    fn wins_tie_break(&self, p: Peer) -> bool {
        (self.priority(), Reverse(self.cfg.node_id)) > (p.priority, Reverse(p.node_id))
    }

    /// The tie-break this node would win were it not held down.
    fn would_win_unheld(&self, p: Peer) -> bool {
        !self.yielding()
            && (self.cfg.priority, Reverse(self.cfg.node_id)) > (p.priority, Reverse(p.node_id))
    }

    /// Whether a preemption of the active peer `p` may happen now.
    fn preempt_gate(&self, p: Peer, now: Instant) -> Gate {
        if !self.cfg.preempt
            || self.yielding()
            || self.local_fault.is_some()
            || self.cfg.priority <= p.priority
        {
            return Gate::No;
        }
        if self.damping.holding(now) {
            return Gate::Held(Hold::HoldDown, self.damping.until());
        }
        if let Some(until) = self.switchover_hold {
            return Gate::Held(Hold::Switchover, until);
        }
        let since = if self.cfg.sync {
            match self.state_held_since {
                None => return Gate::Held(Hold::PreemptNeedsState, None),
                Some(held) => self.peer_alive_since.map(|a| a.max(held)),
            }
        } else {
            self.peer_alive_since
        };
        let ready = since.map_or(now, |s| s + self.cfg.preempt_delay);
        if now < ready {
            return Gate::Held(Hold::PreemptDelay, Some(ready));
        }
        Gate::Open
    }

    /// Both active and hearing each other.
    fn settle_dual_active(&mut self, p: Peer, now: Instant) -> bool {
        let ours = (self.epoch, self.priority(), Reverse(self.cfg.node_id));
        let theirs = (p.epoch, p.priority, Reverse(p.node_id));
        if ours > theirs {
            if !self.garp_sent {
                self.garp_sent = true;
                self.actions.push_back(Action::SendGarp);
            }
            return false;
        }
        match self.preempt_gate(p, now) {
            Gate::Open => {
                // We would take the role right back: keep it under a new
                // epoch instead of releasing and retaking the VIPs and spans.
                self.epoch = self.epoch.max(p.epoch) + 1;
                self.garp_sent = true;
                self.actions.push_back(Action::SendGarp);
                true
            }
            gate => {
                let stepped = self.enter(
                    NodeState::Standby,
                    now,
                    Reason::DualActiveLost {
                        peer_epoch: p.epoch,
                    },
                );
                if let Gate::Held(hold, until) = gate {
                    self.hold(hold, until);
                }
                stepped
            }
        }
    }

    fn take_active(&mut self, now: Instant, reason: Reason) -> bool {
        let peer_epoch = self.peer.as_ref().map_or(0, |p| p.epoch);
        self.epoch = self.epoch.max(peer_epoch) + 1;
        let changed = self.enter(NodeState::Active, now, reason);
        // BecomeActive announces the VIPs: a peer still heard active (it has
        // yet to see our epoch) is no split brain to re-announce after.
        self.garp_sent = true;
        changed
    }

    /// The witness answered a probe sent after the peer fell silent.
    fn witness_fresh(&self) -> bool {
        matches!((self.witness_need, self.witness_answered), (Some(need), Some(a)) if a >= need)
    }

    /// When a witness probe must have been sent to prove our service
    /// network worked while the peer was silent: `multiplier − 1`
    /// intervals after its newest sign of life (now if there was none).
    fn witness_need_at(&self, now: Instant) -> Instant {
        let silent = self
            .cfg
            .interval
            .saturating_mul(self.cfg.multiplier.saturating_sub(1));
        self.last_sign_of_life().map_or(now, |t| t + silent)
    }

    /// The witness is unreachable: we are the node cut off.
    fn isolated(&mut self, now: Instant) -> bool {
        self.retry_at = Some(now + self.cfg.isolation_retry());
        self.enter(NodeState::Fault, now, Reason::WitnessUnreachable)
    }

    /// Move to `to`, emitting StateChanged and the transition's effect.
    fn enter(&mut self, to: NodeState, now: Instant, reason: Reason) -> bool {
        let from = self.state;
        if from == to {
            return false;
        }
        self.state = to;
        self.witness_due = None;
        self.witness_need = None;
        if to != NodeState::Fault {
            self.retry_at = None;
        }
        self.garp_sent = false;
        if to == NodeState::Active {
            self.yield_until = None;
            self.switchover_hold = None;
        }
        if from == NodeState::Active && reason.is_flap() {
            self.damping
                .flap(now, self.cfg.hold_down, self.cfg.hold_down_max);
        }
        self.actions.push_back(Action::StateChanged {
            from,
            to,
            epoch: self.epoch,
            reason,
        });
        if from == NodeState::Active {
            self.actions.push_back(Action::BecomeStandby);
        }
        match to {
            NodeState::Active => self
                .actions
                .push_back(Action::BecomeActive { epoch: self.epoch }),
            NodeState::Takeover if self.cfg.witness => {
                self.witness_due = Some(now + self.cfg.witness_timeout());
                self.witness_need = Some(self.witness_need_at(now));
                // A fresh answer in hand needs no probe: the next step
                // takes the role.
                if !self.witness_fresh() {
                    self.actions.push_back(Action::ProbeWitness);
                }
            }
            _ => {}
        }
        true
    }
}

#[cfg(test)]
mod tests;
