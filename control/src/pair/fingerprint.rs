//! [`Fingerprint`]: a [`Pair`]'s state with its instants made relative,
//! for the model check's deduplication (`control/tests/pair_model.rs`).
//! It reads the machine; it changes nothing.

use std::time::{Duration, Instant};

use super::{Action, FaultKind, NodeState, Pair};

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
    actions: Vec<Action>,
}

/// The peer as a [`Fingerprint`] holds it: id, state, epoch, priority, and
/// per path the age of the last heartbeat while it keeps the peer alive.
type PeerPrint = (u32, NodeState, u64, u8, Vec<Option<Duration>>);

impl Pair {
    /// See [`Fingerprint`].
    pub fn fingerprint(&self, now: Instant) -> Fingerprint {
        let deadline = self.cfg.deadline();
        let left = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(now));
        let live = self.live_peer(now).is_some();
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
                        seen.map(|t| now.saturating_duration_since(t))
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
            actions: self.actions.iter().cloned().collect(),
        }
    }
}
