//! [`Fingerprint`]: a [`Pair`]'s state with its instants made relative,
//! for the model check's deduplication (`control/tests/pair_model.rs`).
//! It reads the machine; it changes nothing.

use std::time::{Duration, Instant};

use super::{Action, FaultKind, Hold, NodeState, Pair};

/// Everything a [`Pair`]'s future behaviour depends on, with instants taken
/// relative to the `now` it was made at: two machines with equal
/// fingerprints act alike from then on. The model check deduplicates
/// states with it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    state: NodeState,
    epoch: u64,
    local_fault: Option<FaultKind>,
    maintenance: bool,
    /// Peer id, state, epoch, priority, and per path the age of the last
    /// heartbeat while it still keeps the peer alive.
    peer: Option<PeerPrint>,
    init_left: Option<Duration>,
    witness_left: Option<Duration>,
    witness_fresh: bool,
    retry_left: Option<Duration>,
    yield_left: Option<Duration>,
    garp_sent: bool,
    /// Per path: echo returned once, latched Lost, pending (seq, capped age).
    echo: Vec<EchoPrint>,
    bad_mac_left: Vec<Option<Duration>>,
    /// Flap ages and hold-down left.
    damping: (Vec<Duration>, Option<Duration>),
    switchover_left: Option<Option<Duration>>,
    /// Time left of the preempt delay from each clock (zero once passed).
    state_held: Option<Duration>,
    alive_since: Option<Duration>,
    takeover_reason: super::Reason,
    held: Option<Hold>,
    actions: Vec<Action>,
}

/// The peer as a [`Fingerprint`] holds it: id, state, epoch, priority, and
/// per path the age of the last heartbeat while it keeps the peer alive
/// (and whether it was reported down).
type PeerPrint = (u32, NodeState, u64, u8, Vec<(Option<Duration>, bool)>);

/// One path's echo as a [`Fingerprint`] holds it.
type EchoPrint = (bool, bool, Vec<(u64, Duration)>);

impl Pair {
    /// See [`Fingerprint`].
    pub fn fingerprint(&self, now: Instant) -> Fingerprint {
        let deadline = self.cfg.deadline();
        let left = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(now));
        let live = self.live_peer(now).is_some();
        // Past the preempt delay, how long ago a clock started no longer matters.
        let delay_left = |t: Option<Instant>| left(t.map(|t| t + self.cfg.preempt_delay));
        Fingerprint {
            state: self.state,
            epoch: self.epoch,
            local_fault: self.local_fault,
            maintenance: self.maintenance,
            peer: self.peer.as_ref().map(|p| {
                let ages = (0..p.paths.len())
                    .map(|i| {
                        let seen = p.paths[i]
                            .last_seen
                            .filter(|_| p.heard_on(i as u8, now, deadline));
                        (
                            seen.map(|t| now.saturating_duration_since(t)),
                            p.paths[i].reported_down,
                        )
                    })
                    .collect();
                (p.node_id, p.state, p.epoch, p.priority, ages)
            }),
            init_left: if self.state == NodeState::Init {
                left(Some(self.init_until))
            } else {
                None
            },
            witness_left: if self.state == NodeState::Takeover {
                left(self.witness_due)
            } else {
                None
            },
            witness_fresh: self.witness_fresh(),
            retry_left: if self.state == NodeState::Fault {
                left(self.retry_at)
            } else {
                None
            },
            yield_left: left(self.yield_until),
            garp_sent: self.garp_sent && live && self.state == NodeState::Active,
            echo: self
                .echo
                .iter()
                .map(|e| e.print(now, self.cfg.interval))
                .collect(),
            bad_mac_left: self
                .bad_mac
                .iter()
                .map(|t| {
                    left(t.map(|t| t + self.cfg.misconfigured_hold())).filter(|d| !d.is_zero())
                })
                .collect(),
            damping: self.damping.print(now),
            switchover_left: self.switchover_hold.map(left),
            state_held: delay_left(self.state_held_since),
            alive_since: delay_left(self.peer_alive_since),
            takeover_reason: self.takeover_reason,
            held: self.held,
            actions: self.actions.iter().cloned().collect(),
        }
    }
}
