//! The pair state machine: which director of a hot-standby pair serves.
//!
//! This module owns the failover decision of one node: its state
//! ([`NodeState`]: Init, Standby, Takeover, Active, Fault, Maintenance), its
//! epoch (the term of the current active role), and what it knows of its
//! peer from verified heartbeats. It is sans-IO in the style of quinn-proto:
//! the runtime feeds it [`Event`]s and the current time through
//! [`Pair::handle`] and [`Pair::handle_timeout`], calls `handle_timeout` at
//! [`Pair::poll_timeout`], and drains [`Action`]s with [`Pair::poll_action`]
//! after every call. It must not do I/O, read a clock, sleep, spawn, or know
//! how heartbeats travel: it does not send heartbeats either (the runtime
//! sends `state()`, `epoch()` and `priority()` every `interval` on every
//! path), and it never takes or releases a VIP itself.
//!
//! # Words
//! - **deadline**: `interval × multiplier`. The peer is *alive* while some
//!   path carried a heartbeat within the deadline and was not reported down
//!   ([`Event::PathDown`]); it is *dead* when it is silent on every path.
//! - **epoch**: the term of the active role. A node that becomes active takes
//!   `max(own, peer's) + 1`; every node adopts the highest epoch it hears;
//!   the epoch never decreases (it restarts at 0 only with the process).
//! - **witness**: an address on the service network the runtime can probe.
//!   A node that would serve without hearing its peer needs the witness to
//!   have answered a probe sent after the peer fell silent (its newest
//!   heartbeat plus `interval × (multiplier − 1)`): then its own service
//!   network worked while the peer was silent on it. The runtime reports
//!   every answer with the probe's send time ([`Event::WitnessAnswered`]);
//!   a standby that probes all along usually holds a fresh one when the
//!   peer dies, and takes over without a further round trip. Otherwise it
//!   asks for a probe ([`Action::ProbeWitness`]); no fresh answer (or
//!   [`Event::Witness`] unreachable) within [`PairConfig::witness_timeout`]
//!   counts as unreachable.
//! - **yield**: after an operator switchover the old active advertises
//!   priority 0 for [`PairConfig::yield_hold`] (VRRP's "priority 0: I am
//!   leaving") and neither preempts nor claims a role nobody holds.
//! - **tie-break**: between two nodes that both could serve, the higher
//!   advertised priority wins, then the lower node id. Between two actives,
//!   the higher epoch wins first.
//!
//! # Transitions
//! Decisions are level-triggered: after every input the machine re-applies
//! the rules below to its state and its view of the peer until nothing
//! changes, so "then the normal rules apply" holds everywhere.
//!
//! - **Init** listens for up to `init_hold`. Peer heard Active or Takeover →
//!   Standby. Peer Standby or Init → tie-break: the winner becomes Active
//!   (epoch = max seen + 1), the loser Standby. Peer Fault or Maintenance →
//!   Active at once. Nobody heard by `init_hold` → Takeover (alone).
//! - **Standby**: peer dead → Takeover. Peer Fault or Maintenance → Active
//!   at once. Peer Standby or Init (nobody active) → the tie-break winner
//!   becomes Active at once unless it is yielding; the loser waits. Peer
//!   Takeover → wait. Peer Active → stay, unless preempt is on, we are not
//!   yielding and our priority is strictly higher than the peer's: then
//!   Active with epoch + 1 (the old active steps down on hearing it).
//! - **Takeover** (serving without hearing the peer): without a witness →
//!   Active at once. With one: [`Action::ProbeWitness`]; reachable → Active
//!   with epoch = max(own, peer's) + 1; unreachable or unanswered → Fault
//!   (isolated: we are the node cut off and must not serve), probing again
//!   every [`PairConfig::isolation_retry`] through Takeover. The peer heard
//!   again during Takeover → Standby (and the rules above).
//! - **Active**: peer heard Active too (a partition healed, or a preempt) →
//!   compare (epoch, priority, lower node id): the loser becomes Standby
//!   ([`Action::BecomeStandby`]), the winner stays and emits
//!   [`Action::SendGarp`] once per heal. A loser that would preempt the
//!   winner anyway (preempt on, strictly higher priority, not yielding, no
//!   local fault) keeps the role under epoch = max + 1 and re-announces
//!   (SendGarp) instead of releasing and retaking the VIPs and spans; the
//!   other side then sees the higher epoch and steps down.
//! - **Local fault** (interface down, card alarm): Active → Fault
//!   (BecomeStandby) only when the peer is alive and Standby; otherwise the
//!   node stays Active, degraded (the peer cannot do better), and hands over
//!   as soon as the peer is a healthy Standby. In Init, Standby or Takeover
//!   → Fault; a faulted node never takes over. Fault cleared → Standby (a
//!   degraded active just stops being degraded).
//! - **Admin switchover**: on Active, with the peer alive and Standby →
//!   Standby and yield; the peer sees a standby advertising priority 0 and
//!   takes over at once. Refused (ignored) otherwise, see
//!   [`Pair::can_switchover`]. With preempt on, a higher-priority node takes
//!   the role back when its yield hold ends: maintenance is the way to keep
//!   a node out.
//! - **Maintenance** (operator): any state → Maintenance (an active releases
//!   its VIPs); never takes over; off → Standby.
//!
//! Heartbeats on a path index ≥ `paths` or claiming our own node id are
//! ignored. The logic is pair-only: a heartbeat from another node id than
//! the known peer replaces the peer (the wire and the types carry node ids
//! and do not assume two nodes).
//!
//! # Method kinds
//! Getters ([`Pair::state`], [`Pair::epoch`], [`Pair::priority`],
//! [`Pair::peer`], [`Pair::local_fault`], [`Pair::can_switchover`]);
//! events with their time ([`Pair::handle`], [`Pair::handle_timeout`]);
//! what it wants done ([`Pair::poll_action`], [`Pair::poll_timeout`]).
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
use std::fmt;
use std::time::{Duration, Instant};

pub use tandem_common::node::NodeState;

/// Enough steps for the longest chain of transitions one input can cause
/// (e.g. Fault → Standby → Takeover → Active).
const MAX_STEPS: usize = 8;

/// Configuration of one node of the pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairConfig {
    /// Unique per node.
    pub node_id: u32,
    /// Higher wins. 0 is reserved for a yielding node (as in VRRP) and is
    /// treated as 1.
    pub priority: u8,
    /// A higher-priority standby takes the active role back.
    pub preempt: bool,
    /// Heartbeat interval.
    pub interval: Duration,
    /// The peer is dead after `interval × multiplier` of silence on every path.
    pub multiplier: u32,
    /// Number of heartbeat paths (e.g. a dedicated link and the service network).
    pub paths: u8,
    /// A witness address is configured.
    pub witness: bool,
    /// How long Init listens for a peer before deciding alone.
    pub init_hold: Duration,
}

impl PairConfig {
    /// `interval × multiplier`: silence on every path for this long means
    /// the peer is dead.
    pub fn deadline(&self) -> Duration {
        self.interval.saturating_mul(self.multiplier.max(1))
    }

    /// How long a node that handed the active role over by command yields.
    pub fn yield_hold(&self) -> Duration {
        self.init_hold.max(self.deadline())
    }

    /// How long the runtime has to answer [`Action::ProbeWitness`].
    pub fn witness_timeout(&self) -> Duration {
        self.init_hold.max(self.deadline())
    }

    /// How long an isolated node (Fault, witness unreachable) waits before
    /// it probes the witness again.
    pub fn isolation_retry(&self) -> Duration {
        self.deadline()
    }
}

/// A local fault the runtime detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// A service or heartbeat interface lost its link.
    InterfaceDown,
    /// A telephony card reports an alarm on a span.
    CardAlarm,
    Other,
}

/// The local fault to report for what the runtime sees: a link down
/// outranks a card alarm (the node cannot serve at all), none is `None`.
pub fn local_fault(link_down: bool, card_alarm: bool) -> Option<FaultKind> {
    if link_down {
        Some(FaultKind::InterfaceDown)
    } else if card_alarm {
        Some(FaultKind::CardAlarm)
    } else {
        None
    }
}

/// An input to the state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A verified heartbeat from the peer, received on `path`.
    Heartbeat {
        path: u8,
        from: u32,
        state: NodeState,
        epoch: u64,
        priority: u8,
    },
    /// The kernel or runtime saw `path`'s deadline pass (an accelerator: the
    /// machine also detects silence from its own timestamps).
    PathDown {
        path: u8,
    },
    LocalFault(FaultKind),
    LocalFaultCleared,
    /// Operator: hand the active role to the peer.
    AdminSwitchover,
    /// Operator: enter (true) or leave (false) maintenance.
    AdminMaintenance(bool),
    /// The answer to [`Action::ProbeWitness`], decided by the runtime.
    Witness {
        reachable: bool,
    },
    /// The witness answered a probe sent at `sent_at`; whether that answer
    /// is fresh enough for a takeover is the machine's decision.
    WitnessAnswered {
        sent_at: Instant,
    },
}

/// An output for the runtime to carry out.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Take the VIPs (map flag, address, GARP burst), start the spans.
    BecomeActive { epoch: u64 },
    /// Release the VIPs, shut the spans down.
    BecomeStandby,
    /// Re-announce the VIPs (a split brain healed in our favour).
    SendGarp,
    /// Check the witness and answer with [`Event::Witness`].
    ProbeWitness,
    StateChanged {
        from: NodeState,
        to: NodeState,
        epoch: u64,
    },
}

/// What one path last told us about the peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PeerPath {
    /// When the last heartbeat on this path was handled.
    pub last_seen: Option<Instant>,
    /// The runtime reported this path's deadline passed
    /// ([`Event::PathDown`]) and no heartbeat came on it since.
    pub reported_down: bool,
}

/// The last known state of the peer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerView {
    pub node_id: u32,
    pub state: NodeState,
    pub epoch: u64,
    /// As advertised (0 while the peer yields).
    pub priority: u8,
    /// Indexed by path.
    pub paths: Vec<PeerPath>,
}

impl PeerView {
    /// The peer was heard on `path` within `deadline` and the path was not
    /// reported down since.
    pub fn heard_on(&self, path: u8, now: Instant, deadline: Duration) -> bool {
        self.paths
            .get(usize::from(path))
            .is_some_and(|p| !p.reported_down && p.last_seen.is_some_and(|t| now < t + deadline))
    }

    /// Heard on at least one path.
    pub fn alive(&self, now: Instant, deadline: Duration) -> bool {
        (0..self.paths.len()).any(|p| self.heard_on(p as u8, now, deadline))
    }

    /// When the peer is dead unless heard again: the latest path deadline
    /// (None if no path can keep it alive).
    pub fn dead_at(&self, deadline: Duration) -> Option<Instant> {
        self.paths
            .iter()
            .filter(|p| !p.reported_down)
            .filter_map(|p| p.last_seen)
            .max()
            .map(|t| t + deadline)
    }
}

/// Why [`Pair::can_switchover`] refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchoverRefused {
    /// Only the active node can hand the role over.
    NotActive(NodeState),
    /// The peer is not alive and Standby: nobody would take the role.
    NoHealthyPeer,
}

impl fmt::Display for SwitchoverRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwitchoverRefused::NotActive(s) => {
                write!(
                    f,
                    "switchover refused: this node is {}, not active",
                    s.name()
                )
            }
            SwitchoverRefused::NoHealthyPeer => {
                write!(f, "switchover refused: the peer is not a healthy standby")
            }
        }
    }
}

impl std::error::Error for SwitchoverRefused {}

/// The peer's fields a decision needs (copied out of the view).
#[derive(Clone, Copy, Debug)]
struct Peer {
    node_id: u32,
    state: NodeState,
    epoch: u64,
    priority: u8,
}

/// The failover state machine of one node. See the module documentation.
#[derive(Clone, Debug)]
pub struct Pair {
    cfg: PairConfig,
    state: NodeState,
    epoch: u64,
    peer: Option<PeerView>,
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
    actions: VecDeque<Action>,
}

impl Pair {
    pub fn new(mut cfg: PairConfig, now: Instant) -> Pair {
        cfg.priority = cfg.priority.max(1);
        Pair {
            init_until: now + cfg.init_hold,
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
            actions: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &PairConfig {
        &self.cfg
    }

    pub fn state(&self) -> NodeState {
        self.state
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The priority to advertise: the configured one, or 0 while yielding.
    pub fn priority(&self) -> u8 {
        if self.yield_until.is_some() {
            0
        } else {
            self.cfg.priority
        }
    }

    pub fn peer(&self) -> Option<PeerView> {
        self.peer.clone()
    }

    /// The peer as of `now`, if it is alive.
    pub fn peer_alive(&self, now: Instant) -> bool {
        self.live_peer(now).is_some()
    }

    /// The local fault in force, if any (an active may be serving degraded).
    pub fn local_fault(&self) -> Option<FaultKind> {
        self.local_fault
    }

    /// Whether [`Event::AdminSwitchover`] would hand the role over now.
    pub fn can_switchover(&self, now: Instant) -> Result<(), SwitchoverRefused> {
        if self.state != NodeState::Active {
            return Err(SwitchoverRefused::NotActive(self.state));
        }
        match self.live_peer(now) {
            Some(p) if p.state == NodeState::Standby => Ok(()),
            _ => Err(SwitchoverRefused::NoHealthyPeer),
        }
    }

    pub fn handle(&mut self, ev: Event, now: Instant) {
        self.expire_yield(now);
        match ev {
            Event::Heartbeat {
                path,
                from,
                state,
                epoch,
                priority,
            } => {
                if from == self.cfg.node_id || path >= self.cfg.paths {
                    return;
                }
                let deadline = self.cfg.deadline();
                let paths = usize::from(self.cfg.paths);
                let peer = match &mut self.peer {
                    Some(p) if p.node_id == from => p,
                    slot => slot.insert(PeerView {
                        node_id: from,
                        state,
                        epoch,
                        priority,
                        paths: vec![PeerPath::default(); paths],
                    }),
                };
                if !peer.alive(now, deadline) || state != NodeState::Active {
                    // A new dual-active episode starts only after the peer
                    // was lost or stopped being active.
                    self.garp_sent = false;
                }
                peer.state = state;
                peer.epoch = epoch;
                peer.priority = priority;
                peer.paths[usize::from(path)] = PeerPath {
                    last_seen: Some(now),
                    reported_down: false,
                };
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
            Event::LocalFault(kind) => {
                self.local_fault = Some(kind);
                self.retry_at = None;
            }
            Event::LocalFaultCleared => self.local_fault = None,
            Event::AdminSwitchover => {
                if self.can_switchover(now).is_ok() {
                    self.yield_until = Some(now + self.cfg.yield_hold());
                    self.enter(NodeState::Standby, now);
                }
            }
            Event::AdminMaintenance(on) => self.maintenance = on,
            Event::WitnessAnswered { sent_at } => {
                self.witness_answered = Some(self.witness_answered.map_or(sent_at, |a| a.max(sent_at)));
            }
            Event::Witness { reachable } => {
                if self.state == NodeState::Takeover && self.witness_due.is_some() {
                    self.witness_due = None;
                    if reachable {
                        self.take_active(now);
                    } else {
                        self.isolated(now);
                    }
                }
            }
        }
        self.settle(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_yield(now);
        self.settle(now);
    }

    /// The next instant [`Pair::handle_timeout`] must be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.yield_until;
        let mut at = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        match self.state {
            NodeState::Init => at(Some(self.init_until)),
            NodeState::Standby => at(self
                .peer
                .as_ref()
                .and_then(|p| p.dead_at(self.cfg.deadline()))),
            NodeState::Takeover => at(self.witness_due),
            NodeState::Fault if self.local_fault.is_none() => at(self.retry_at),
            NodeState::Fault | NodeState::Active | NodeState::Maintenance => {}
        }
        next
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn live_peer(&self, now: Instant) -> Option<Peer> {
        let p = self.peer.as_ref()?;
        p.alive(now, self.cfg.deadline()).then_some(Peer {
            node_id: p.node_id,
            state: p.state,
            epoch: p.epoch,
            priority: p.priority,
        })
    }

    fn expire_yield(&mut self, now: Instant) {
        if self.yield_until.is_some_and(|t| now >= t) {
            self.yield_until = None;
        }
    }

    fn yielding(&self) -> bool {
        self.yield_until.is_some()
    }

    /// Re-apply the rules until nothing changes.
    fn settle(&mut self, now: Instant) {
        for _ in 0..MAX_STEPS {
            if !self.step(now) {
                return;
            }
        }
        debug_assert!(false, "pair state machine did not settle: {self:?}");
    }

    /// Apply the rules once; true if the state (or epoch) changed.
    fn step(&mut self, now: Instant) -> bool {
        use NodeState::*;
        if self.maintenance {
            if self.state == Maintenance {
                return false;
            }
            self.enter(Maintenance, now);
            return true;
        }
        let peer = self.live_peer(now);
        match self.state {
            Init | Standby | Takeover if self.local_fault.is_some() => {
                self.enter(Fault, now);
                true
            }
            Init => match peer {
                Some(p) => match p.state {
                    Active | Takeover => self.enter(Standby, now),
                    Standby | Init if !self.wins_tie_break(p) => self.enter(Standby, now),
                    Standby | Init | Fault | Maintenance => self.take_active(now),
                },
                None if now >= self.init_until => self.enter(Takeover, now),
                None => false,
            },
            Standby => match peer {
                None => self.enter(Takeover, now),
                Some(p) => match p.state {
                    Active if self.may_preempt(p) => self.take_active(now),
                    Standby | Init if !self.yielding() && self.wins_tie_break(p) => {
                        self.take_active(now)
                    }
                    Fault | Maintenance => self.take_active(now),
                    Active | Standby | Init | Takeover => false,
                },
            },
            Takeover => {
                if peer.is_some() {
                    self.enter(Standby, now)
                } else if !self.cfg.witness || self.witness_fresh() {
                    self.take_active(now)
                } else if self.witness_due.is_none_or(|t| now >= t) {
                    self.isolated(now)
                } else {
                    false
                }
            }
            Active => match peer {
                Some(p) if p.state == Active => self.settle_dual_active(p, now),
                Some(p) if p.state == Standby && self.local_fault.is_some() => {
                    self.enter(Fault, now)
                }
                _ => false,
            },
            Fault => {
                if self.local_fault.is_some() {
                    false
                } else if peer.is_some() || self.retry_at.is_none() {
                    self.enter(Standby, now)
                } else if self.retry_at.is_some_and(|t| now >= t) {
                    self.enter(Takeover, now)
                } else {
                    false
                }
            }
            Maintenance => self.enter(Standby, now),
        }
    }

    /// Between two nodes that could both take a role nobody holds.
    fn wins_tie_break(&self, p: Peer) -> bool {
        (self.priority(), Reverse(self.cfg.node_id)) > (p.priority, Reverse(p.node_id))
    }

    fn may_preempt(&self, p: Peer) -> bool {
        self.cfg.preempt
            && !self.yielding()
            && self.local_fault.is_none()
            && self.cfg.priority > p.priority
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
            false
        } else if self.may_preempt(p) {
            // We would take the role right back: keep it under a new epoch
            // instead of releasing and retaking the VIPs and spans.
            self.epoch = self.epoch.max(p.epoch) + 1;
            self.garp_sent = true;
            self.actions.push_back(Action::SendGarp);
            true
        } else {
            self.enter(NodeState::Standby, now)
        }
    }

    fn take_active(&mut self, now: Instant) -> bool {
        let peer_epoch = self.peer.as_ref().map_or(0, |p| p.epoch);
        self.epoch = self.epoch.max(peer_epoch) + 1;
        let changed = self.enter(NodeState::Active, now);
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
    /// intervals after its newest heartbeat (now if it was never heard).
    fn witness_need_at(&self, now: Instant) -> Instant {
        let silent = self.cfg.interval.saturating_mul(self.cfg.multiplier.saturating_sub(1));
        self.peer.as_ref().and_then(|p| p.paths.iter().filter_map(|pp| pp.last_seen).max()).map_or(now, |t| t + silent)
    }

    /// The witness is unreachable: we are the node cut off.
    fn isolated(&mut self, now: Instant) -> bool {
        self.retry_at = Some(now + self.cfg.isolation_retry());
        self.enter(NodeState::Fault, now)
    }

    /// Move to `to`, emitting StateChanged and the transition's effect.
    fn enter(&mut self, to: NodeState, now: Instant) -> bool {
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
        }
        self.actions.push_back(Action::StateChanged {
            from,
            to,
            epoch: self.epoch,
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

mod fingerprint;
pub use fingerprint::Fingerprint;

#[cfg(test)]
mod tests;
