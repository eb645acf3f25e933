//! What each operation on `tandemd`'s ring waits for: a typed [`Token`]
//! per wait, kept in a slab ([`Ring`]) so that a completion names its
//! owner by value, not by arithmetic on magic numbers.
//!
//! [`Ring`] wraps the [`Reactor`] with the slab: the daemon submits and
//! reaps [`Token`]s, the reactor sees only the slab index. This module
//! decides nothing; it owns no descriptor.

use std::{collections::HashMap, os::fd::RawFd, time::Duration, time::Instant};

use crate::uring::{Completion, Reactor, ReactorError};

/// One thing the daemon's loop waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Token {
    /// The heartbeat send timer.
    HeartbeatSend,
    /// The pair state machine's next deadline.
    PairDeadline,
    /// The kernel's heartbeat ring buffer is readable.
    HeartbeatRing,
    /// The signalfd is readable.
    Signal,
    /// The witness socket is readable (an echo reply).
    WitnessReply,
    /// The standby's periodic witness probe.
    WitnessTick,
    /// The next gratuitous ARP of a takeover burst.
    Garp,
    /// A connection on the admin socket.
    AdminAccept,
    /// An admin connection (slot in the admin client table) is ready.
    AdminConn(usize),
    /// A connection on the metrics listener.
    MetricsAccept,
    /// A metrics connection (slot in the metrics client table) is ready.
    MetricsConn(usize),
    /// The earliest deadline of the admin and metrics clients.
    ClientDeadline,
    /// The rtnetlink link monitor is readable.
    Link,
    /// The neighbour monitor is readable.
    Neigh,
    /// The neighbour monitor's nudge timer.
    NeighNudge,
    /// The IVR pool's scan.
    PoolScan,
    /// Spans being started on takeover: check their progress.
    CardsStart,
    /// The periodic card alarm check.
    CardAlarms,
    /// The VIP address worker finished something.
    AddrDone,
    /// A connection on sync listener `n`.
    SyncAccept(usize),
    /// The sync connection is ready.
    SyncConn,
    /// Unauthenticated sync connection `n` (a slot of the sync runtime's
    /// pending set) is ready.
    SyncPending(usize),
    /// The sync session's timer.
    SyncTimer,
    /// The kernel's connection-table change ring is readable.
    FlowRing,
    /// The kernel's Call-ID table change ring is readable.
    CallRing,
    /// A SIP OPTIONS answer is readable.
    SipRead,
    /// The SIP OPTIONS probes' timer.
    SipTimer,
    /// The configuration worker finished reading a file.
    ConfigDone,
    /// The earliest end of a reload answer's wait for the standby.
    StandbyHold,
    /// A reload's kernel writes go on (an immediate timeout: the loop's
    /// other completions first).
    ApplyMore,
    /// `POLLPRI` on channel `index` of card `card` (a DAHDI event).
    Channel { card: usize, index: usize },
}

/// The reactor with its token slab. Methods mirror [`Reactor`]'s with
/// typed tokens.
pub struct Ring {
    reactor: Reactor,
    slab: Vec<Token>,
    ids: HashMap<Token, u64>,
}

impl Ring {
    pub fn new(entries: u32) -> Result<Ring, ReactorError> {
        Ok(Ring {
            reactor: Reactor::new(entries)?,
            slab: Vec::new(),
            ids: HashMap::new(),
        })
    }

    /// The slab index of `t`, added on first use (a token's index never
    /// changes, so the set of tokens bounds the slab).
    fn id(&mut self, t: Token) -> u64 {
        if let Some(&id) = self.ids.get(&t) {
            return id;
        }
        let id = self.slab.len() as u64;
        self.slab.push(t);
        self.ids.insert(t, id);
        id
    }

    pub fn is_armed(&self, t: Token) -> bool {
        self.ids
            .get(&t)
            .is_some_and(|id| self.reactor.is_armed(*id))
    }

    pub fn arm_timeout(&mut self, t: Token, at: Instant) -> Result<(), ReactorError> {
        let id = self.id(t);
        self.reactor.arm_timeout(id, at)
    }

    pub fn poll(&mut self, t: Token, fd: RawFd, events: u32) -> Result<(), ReactorError> {
        let id = self.id(t);
        self.reactor.poll(id, fd, events)
    }

    pub fn accept(&mut self, t: Token, fd: RawFd) -> Result<(), ReactorError> {
        let id = self.id(t);
        self.reactor.accept(id, fd)
    }

    /// Cancels `t`'s operation if one is in flight.
    pub fn cancel(&mut self, t: Token) -> Result<bool, ReactorError> {
        match self.ids.get(&t) {
            Some(&id) => self.reactor.cancel(id),
            None => Ok(false),
        }
    }

    /// Arms `t` for `at`, replacing what it waited for.
    pub fn rearm(&mut self, t: Token, at: Instant) -> Result<(), ReactorError> {
        if self.is_armed(t) {
            self.cancel(t)?;
        }
        self.arm_timeout(t, at)
    }

    /// Arms `t` for `at` (cancels it for `None`) unless it is already
    /// armed for that time, which `armed` remembers. Re-arming cancels the
    /// armed timeout, and the cancel's completion wakes the loop at once:
    /// done on every turn, it would keep the loop spinning.
    pub fn rearm_if_moved(
        &mut self,
        t: Token,
        at: Option<Instant>,
        armed: &mut Option<Instant>,
    ) -> Result<(), ReactorError> {
        if at == *armed && (at.is_none() || self.is_armed(t)) {
            return Ok(());
        }
        if self.is_armed(t) {
            self.cancel(t)?;
        }
        if let Some(at) = at {
            self.arm_timeout(t, at.max(Instant::now()))?;
        }
        *armed = at;
        Ok(())
    }

    /// Submits and waits (see [`Reactor::submit_and_wait`]); each
    /// completion comes with its token.
    pub fn submit_and_wait(
        &mut self,
        min: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<(Token, Completion)>, ReactorError> {
        let done = self.reactor.submit_and_wait(min, timeout)?;
        Ok(done
            .into_iter()
            .filter_map(|c| self.slab.get(c.token as usize).map(|t| (*t, c)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_through_the_ring() {
        let mut ring = Ring::new(8).expect("ring");
        let now = Instant::now();
        ring.arm_timeout(Token::Channel { card: 1, index: 3 }, now)
            .expect("arm");
        ring.arm_timeout(Token::HeartbeatSend, now).expect("arm");
        assert!(ring.is_armed(Token::HeartbeatSend));
        assert!(!ring.is_armed(Token::Channel { card: 1, index: 4 }));
        let mut got = Vec::new();
        for _ in 0..10 {
            got.extend(
                ring.submit_and_wait(1, Some(Duration::from_secs(1)))
                    .expect("wait")
                    .into_iter()
                    .map(|(t, _)| t),
            );
            if got.len() == 2 {
                break;
            }
        }
        got.sort_by_key(|t| format!("{t:?}"));
        assert_eq!(
            got,
            vec![Token::Channel { card: 1, index: 3 }, Token::HeartbeatSend]
        );
    }

    #[test]
    fn rearm_if_moved_keeps_a_timer_that_did_not_move() {
        let mut ring = Ring::new(8).expect("ring");
        let mut armed = None;
        let at = Instant::now() + Duration::from_secs(5);
        ring.rearm_if_moved(Token::PairDeadline, Some(at), &mut armed)
            .expect("arm");
        assert_eq!(armed, Some(at));
        ring.rearm_if_moved(Token::PairDeadline, Some(at), &mut armed)
            .expect("again");
        // Nothing completes: neither the timer (5 s away) nor a cancel.
        assert!(
            ring.submit_and_wait(1, Some(Duration::from_millis(50)))
                .expect("wait")
                .is_empty()
        );
        ring.rearm_if_moved(Token::PairDeadline, None, &mut armed)
            .expect("cancel");
        assert!(!ring.is_armed(Token::PairDeadline));
    }
}
