//! Flap damping, as BGP damps route flaps: the record of this node's
//! recent losses of the active role and the hold-down they earn.
//!
//! A flap is a loss of the active role that was not the operator's doing
//! (see [`super::Reason::is_flap`]). The hold after the n-th recent flap is
//! `hold_down × 2^(n − 1)`, capped at `hold_down_max`; a flap stays recent
//! for `hold_down_max` (then it is forgotten: a node that flapped once a
//! minute ago starts again from `hold_down`). It only keeps the record:
//! what a hold-down forbids is the machine's business.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most this many flaps are remembered (2^31 × hold_down is past any cap).
const FLAPS_MAX: usize = 32;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Damping {
    /// When the recent flaps happened, oldest first.
    flaps: VecDeque<Instant>,
    /// In hold-down until then.
    until: Option<Instant>,
}

impl Damping {
    /// Forget flaps older than `max` and a hold-down that ended.
    pub fn expire(&mut self, now: Instant, max: Duration) {
        while self.flaps.front().is_some_and(|&t| now >= t + max) {
            self.flaps.pop_front();
        }
        if self.until.is_some_and(|t| now >= t) {
            self.until = None;
        }
    }

    /// Record a flap at `now` and start its hold-down; returns its end.
    pub fn flap(&mut self, now: Instant, hold_down: Duration, max: Duration) -> Option<Instant> {
        self.expire(now, max);
        self.flaps.push_back(now);
        if self.flaps.len() > FLAPS_MAX {
            self.flaps.pop_front();
        }
        let doublings = u32::try_from(self.flaps.len() - 1)
            .unwrap_or(u32::MAX)
            .min(31);
        let hold = hold_down
            .saturating_mul(1 << doublings)
            .min(max.max(hold_down));
        if hold.is_zero() {
            return self.until;
        }
        let until = now + hold;
        self.until = Some(self.until.map_or(until, |u| u.max(until)));
        self.until
    }

    pub fn flaps(&self) -> u32 {
        u32::try_from(self.flaps.len()).unwrap_or(u32::MAX)
    }

    pub fn until(&self) -> Option<Instant> {
        self.until
    }

    /// In hold-down at `now`.
    pub fn holding(&self, now: Instant) -> bool {
        self.until.is_some_and(|t| now < t)
    }

    /// When the oldest flap is forgotten (for poll_timeout).
    pub fn next_change(&self, max: Duration) -> Option<Instant> {
        let forget = self.flaps.front().map(|&t| t + max);
        match (self.until, forget) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// For the fingerprint: flap ages and the hold-down left.
    pub fn print(&self, now: Instant) -> (Vec<Duration>, Option<Duration>) {
        (
            self.flaps
                .iter()
                .map(|&t| now.saturating_duration_since(t))
                .collect(),
            self.until.map(|t| t.saturating_duration_since(now)),
        )
    }
}
