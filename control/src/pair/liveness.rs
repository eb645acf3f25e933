//! What the pair machine knows of its peer's liveness, per path: the
//! newest heartbeat ([`PeerPath`], in the [`PeerView`]), the echoes this
//! node sent and got back ([`EchoTrack`], [`EchoState`]) and evidence of a
//! misconfigured peer (bad-MAC heartbeats). It answers "is the path alive,
//! dead, positively dead, and until when", and decides nothing else: it
//! never changes the node's state.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::NodeState;

/// At most this many echoes are remembered as pending on a path (the
/// oldest are forgotten once the path is long Lost).
const ECHO_PENDING_MAX: usize = 64;

/// What one path last told us about the peer's heartbeats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PeerPath {
    /// When the last heartbeat on this path was handled.
    pub last_seen: Option<Instant>,
    /// The runtime reported this path's deadline passed
    /// ([`super::Event::PathDown`]) and no heartbeat came on it since.
    pub reported_down: bool,
}

/// The last known state of the peer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerView {
    pub node_id: u32,
    pub state: NodeState,
    pub epoch: u64,
    /// As advertised (0 while the peer yields or is held down).
    pub priority: u8,
    /// Indexed by path.
    pub paths: Vec<PeerPath>,
}

impl PeerView {
    /// The peer's heartbeat on `path` is fresh: heard within `deadline`
    /// and the path was not reported down since.
    pub fn heard_on(&self, path: u8, now: Instant, deadline: Duration) -> bool {
        self.paths
            .get(usize::from(path))
            .is_some_and(|p| !p.reported_down && p.last_seen.is_some_and(|t| now < t + deadline))
    }

    /// Heartbeats fresh on at least one path (echoes aside).
    pub fn alive(&self, now: Instant, deadline: Duration) -> bool {
        (0..self.paths.len()).any(|p| self.heard_on(p as u8, now, deadline))
    }

    /// When the heartbeat on `path` stops being fresh (None: it is not).
    pub fn fresh_until(&self, path: u8, deadline: Duration) -> Option<Instant> {
        let p = self.paths.get(usize::from(path))?;
        if p.reported_down {
            return None;
        }
        p.last_seen.map(|t| t + deadline)
    }

    /// When the peer's heartbeats go stale on every path unless heard
    /// again: the latest path deadline (None if no path can keep it alive).
    pub fn dead_at(&self, deadline: Duration) -> Option<Instant> {
        (0..self.paths.len())
            .filter_map(|p| self.fresh_until(p as u8, deadline))
            .max()
    }
}

/// The echo liveness of one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EchoState {
    /// No echo ever came back (or echo is off).
    Unknown,
    /// An echo came back and fewer than `multiplier` sent after it are lost.
    Alive,
    /// `multiplier` echoes in a row, sent after the newest returned one,
    /// did not come back within one interval each.
    Lost,
}

impl EchoState {
    pub fn name(&self) -> &'static str {
        match self {
            EchoState::Unknown => "unknown",
            EchoState::Alive => "alive",
            EchoState::Lost => "lost",
        }
    }
}

/// Echo bookkeeping of one path: the newest returned sequence and the
/// echoes sent after it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EchoTrack {
    /// An echo came back since the track was reset (or since it was Lost:
    /// a Lost track keeps it and is Lost by its pending echoes).
    returned: Option<u64>,
    /// When the newest return was handled.
    returned_at: Option<Instant>,
    /// Echoes sent after the newest returned one, oldest first.
    pending: VecDeque<(u64, Instant)>,
    /// The track was Lost when the oldest pending echoes were forgotten.
    lost_latched: bool,
}

impl EchoTrack {
    pub fn sent(&mut self, seq: u64, now: Instant, interval: Duration, multiplier: u32) {
        if self.returned.is_some_and(|r| seq <= r)
            || self.pending.back().is_some_and(|&(s, _)| seq <= s)
        {
            return;
        }
        self.pending.push_back((seq, now));
        if self.pending.len() > ECHO_PENDING_MAX {
            if self.state(now, interval, multiplier) == EchoState::Lost {
                self.lost_latched = true;
            }
            self.pending.pop_front();
        }
    }

    pub fn returned(&mut self, seq: u64, now: Instant) {
        if self.returned.is_some_and(|r| seq <= r) {
            return;
        }
        self.returned = Some(seq);
        self.returned_at = Some(now);
        self.lost_latched = false;
        while self.pending.front().is_some_and(|&(s, _)| s <= seq) {
            self.pending.pop_front();
        }
    }

    /// When the path becomes Lost unless an echo comes back: the
    /// `multiplier`-th pending echo's send time + interval. None if it has
    /// not sent that many yet (or never had one back).
    pub fn lost_at(&self, interval: Duration, multiplier: u32) -> Option<Instant> {
        self.returned?;
        let m = usize::try_from(multiplier.max(1)).unwrap_or(usize::MAX);
        self.pending.get(m - 1).map(|&(_, t)| t + interval)
    }

    pub fn state(&self, now: Instant, interval: Duration, multiplier: u32) -> EchoState {
        if self.returned.is_none() {
            EchoState::Unknown
        } else if self.lost_latched || self.lost_at(interval, multiplier).is_some_and(|t| now >= t)
        {
            EchoState::Lost
        } else {
            EchoState::Alive
        }
    }

    /// When the newest echo came back.
    pub fn returned_at(&self) -> Option<Instant> {
        self.returned_at
    }

    /// For the fingerprint: pending echoes as (sequence after the first
    /// pending one, age capped at `interval`: any older echo is lost alike).
    pub fn print(&self, now: Instant, interval: Duration) -> (bool, bool, Vec<(u64, Duration)>) {
        let first = self.pending.front().map_or(0, |&(s, _)| s);
        let pending = self
            .pending
            .iter()
            .map(|&(s, t)| (s - first, now.saturating_duration_since(t).min(interval)))
            .collect();
        (self.returned.is_some(), self.lost_latched, pending)
    }
}

/// One path's liveness as [`super::Pair::path_liveness`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PathLiveness {
    pub path: u8,
    /// A heartbeat was heard within the deadline and the path was not
    /// reported down since.
    pub heartbeat_fresh: bool,
    /// The runtime reported the path down ([`super::Event::PathDown`]).
    pub reported_down: bool,
    pub echo: EchoState,
    /// A bad-MAC heartbeat from the peer's address within the deadline.
    pub bad_mac: bool,
    /// The path keeps the peer alive (heartbeat fresh or echo Alive).
    pub alive: bool,
}
