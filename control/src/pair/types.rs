//! The pair machine's vocabulary: its configuration ([`PairConfig`]), its
//! inputs ([`Event`]), its outputs ([`Action`]) and the words it explains
//! them with ([`Reason`], [`Hold`]). Types only: no decision is made here.

use std::fmt;
use std::time::{Duration, Instant};

pub use tandem_common::node::NodeState;

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
    /// Heartbeat interval (and echo interval).
    pub interval: Duration,
    /// The peer is dead after `interval × multiplier` of silence on every
    /// path; an echo path is Lost after `multiplier` lost echoes.
    pub multiplier: u32,
    /// Number of heartbeat paths (e.g. a dedicated link and the service network).
    pub paths: u8,
    /// A witness address is configured.
    pub witness: bool,
    /// How long Init listens for a peer before deciding alone.
    pub init_hold: Duration,
    /// Flap damping: after losing the active role other than by operator
    /// command, this node does not compete for it for `hold_down ×
    /// 2^(recent flaps − 1)` (capped at `hold_down_max`) unless the peer is
    /// positively dead. Zero: no damping.
    pub hold_down: Duration,
    /// The cap of the hold-down; also how long a flap counts as recent.
    pub hold_down_max: Duration,
    /// A preemption waits until the peer has been alive (and, with `sync`,
    /// its state held) continuously for this long.
    pub preempt_delay: Duration,
    /// After an operator switchover this node does not preempt for this
    /// long; None: until [`Event::AdminReleaseHold`].
    pub switchover_hold: Option<Duration>,
    /// State sync is on: preemption needs [`Event::PeerStateHeld`]`(true)`.
    pub sync: bool,
    /// Echo liveness is on (off: every path's echo stays Unknown).
    pub echo: bool,
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

    /// How long one bad-MAC heartbeat keeps the peer misconfigured (alive
    /// with another key): `max(1 s, 10 × deadline)`. Far longer than the
    /// deadline, because a wrong-key peer's echoes are not reflected and
    /// its heartbeats do not authenticate: the bad MACs are the only proof
    /// it lives, and the runtime reads them from the kernel on its own
    /// schedule, which a busy machine delays. A misconfigured peer that
    /// dies is taken over this long after its last bad MAC.
    pub fn misconfigured_hold(&self) -> Duration {
        self.deadline()
            .saturating_mul(10)
            .max(Duration::from_secs(1))
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
    /// This node sent echo request `seq` on `path` now (one per path per
    /// interval; the peer's XDP reflects it while its daemon is alive).
    EchoSent {
        path: u8,
        seq: u64,
    },
    /// The kernel recorded that echo `seq` (the newest so far on `path`)
    /// came back.
    EchoReturned {
        path: u8,
        seq: u64,
    },
    /// A heartbeat from the configured peer's address on `path` failed
    /// authentication: the peer is alive but misconfigured (a wrong key).
    PeerBadMac {
        path: u8,
    },
    /// The kernel's dead-man switch took this node out of the dataplane
    /// (its daemon was stale: a stop, a hang).
    Fenced,
    /// This node holds the peer's state (true: snapshot applied, deltas
    /// caught up; false: the sync session is lost).
    PeerStateHeld(bool),
    /// Operator: end the switchover hold.
    AdminReleaseHold,
    /// The peer's newest heartbeat announced a planned restart of its
    /// process with its kernel state kept: it counts as alive until
    /// `until` (its arrival plus the grace it asked for) though silent.
    /// Fed right after that heartbeat's [`Event::Heartbeat`], which
    /// clears an earlier announcement.
    PeerRestarting { until: Instant },
}

/// Why the machine changed state: every decision explained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Init heard nobody within `init_hold` (→ Takeover).
    InitAlone,
    /// The peer is dead on every path (→ Takeover, → Active without a
    /// witness). `positively`: on every path the echo is Lost or the path
    /// was reported down, not merely silent.
    PeerDead { positively: bool },
    /// The peer is heard Active or Takeover under `epoch` (→ Standby).
    PeerHeardActive { epoch: u64 },
    /// The peer is heard again, not active (Takeover → Standby).
    PeerHeard,
    /// The peer is in Fault or Maintenance and cannot serve (→ Active).
    PeerCannotServe,
    /// The tie-break between two nodes that could serve: won (→ Active)
    /// or lost (→ Standby).
    TieBreak,
    /// Preemption by priority (→ Active).
    Preempt,
    /// Two actives heard each other and this one lost (→ Standby); the
    /// peer's epoch.
    DualActiveLost { peer_epoch: u64 },
    /// Operator switchover (Active → Standby).
    Switchover,
    /// The kernel's dead-man switch fenced this node (Active → Standby).
    Fenced,
    /// A local fault (→ Fault).
    LocalFault,
    /// The local fault cleared (Fault → Standby).
    FaultCleared,
    /// Operator maintenance on (→ Maintenance).
    Maintenance,
    /// Operator maintenance off (Maintenance → Standby).
    MaintenanceOff,
    /// The witness answered: our service network works (Takeover → Active).
    WitnessReachable,
    /// The witness did not answer: this node is the one cut off (→ Fault).
    WitnessUnreachable,
    /// An isolated node probes the witness again (Fault → Takeover).
    IsolationRetry,
    /// The peer is alive but misconfigured: no takeover beside it (→ Standby).
    PeerMisconfigured,
    /// A restarted process took the active role back from the kernel
    /// state its predecessor left, under the same epoch (Init → Active,
    /// [`super::Pair::resume`]): not a takeover.
    Resumed,
}

impl Reason {
    /// The reason's name in snake case, for events and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Reason::InitAlone => "init_alone",
            Reason::PeerDead { positively: true } => "peer_dead_positively",
            Reason::PeerDead { positively: false } => "peer_dead",
            Reason::PeerHeardActive { .. } => "peer_heard_active",
            Reason::PeerHeard => "peer_heard",
            Reason::PeerCannotServe => "peer_cannot_serve",
            Reason::TieBreak => "tie_break",
            Reason::Preempt => "preempt",
            Reason::DualActiveLost { .. } => "dual_active_lost",
            Reason::Switchover => "switchover",
            Reason::Fenced => "fenced",
            Reason::LocalFault => "local_fault",
            Reason::FaultCleared => "fault_cleared",
            Reason::Maintenance => "maintenance",
            Reason::MaintenanceOff => "maintenance_off",
            Reason::WitnessReachable => "witness_reachable",
            Reason::WitnessUnreachable => "witness_unreachable",
            Reason::IsolationRetry => "isolation_retry",
            Reason::PeerMisconfigured => "peer_misconfigured",
            Reason::Resumed => "resumed",
        }
    }

    /// Losing the active role for this reason counts as a flap (it is not
    /// the operator's doing).
    pub fn is_flap(&self) -> bool {
        !matches!(self, Reason::Switchover | Reason::Maintenance)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::PeerHeardActive { epoch } => write!(f, "peer heard active (epoch {epoch})"),
            Reason::DualActiveLost { peer_epoch } => {
                write!(f, "dual active lost (peer epoch {peer_epoch})")
            }
            other => f.write_str(&other.name().replace('_', " ")),
        }
    }
}

/// What held back a transition that would otherwise have happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hold {
    /// Flap damping: this node lost the role recently and the peer is
    /// not positively dead.
    HoldDown,
    /// Preemption waits until this node holds the peer's state (sync).
    PreemptNeedsState,
    /// Preemption waits out `preempt_delay` of holding the peer's state
    /// (or, without sync, of the peer alive) continuously.
    PreemptDelay,
    /// The peer is alive but its heartbeats fail authentication.
    PeerMisconfigured,
    /// An operator switchover holds preemption off.
    Switchover,
    /// The peer is silent but announced a planned restart: it counts as
    /// alive until its grace ends ([`Event::PeerRestarting`]).
    PeerRestarting,
}

impl Hold {
    /// The hold's name in snake case, for events and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Hold::HoldDown => "hold_down",
            Hold::PreemptNeedsState => "preempt_needs_state",
            Hold::PreemptDelay => "preempt_delay",
            Hold::PeerMisconfigured => "peer_misconfigured",
            Hold::Switchover => "switchover",
            Hold::PeerRestarting => "peer_restarting",
        }
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name().replace('_', " "))
    }
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
        reason: Reason,
    },
    /// A transition that would have happened is held back by `hold`,
    /// until `until` at the latest (None: until some event, e.g. the
    /// peer's state held or the operator's release). Emitted once per
    /// episode.
    Held { hold: Hold, until: Option<Instant> },
}

/// Why [`super::Pair::can_switchover`] refuses.
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
