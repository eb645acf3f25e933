//! The failover switch's watchdog: one per card, armed and kicked by the
//! card's host through tandem's extension ioctls (`TANDEM_WATCHDOG_ARM`,
//! `KICK`, `DISARM`, `STATUS` in [`crate::abi`]), and the relay that lets go
//! of a card whose watchdog expired.
//!
//! This module owns each card's watchdog state and the decision that it
//! expired. It takes the time as an argument and keeps no clock or thread of
//! its own: the simulator's timer thread calls [`World::watchdog_expire`]
//! (at the instant [`World::next_watchdog_deadline`] names), and tests call
//! it with made-up instants. It must not move a trunk except through the
//! failover switch's own rules (`hand_over` and `may_carry` in `trunk.rs`),
//! and it settles alarms after every move.

use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::World;
use crate::abi;

/// One card's watchdog.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Watchdog {
    armed: bool,
    timeout: Duration,
    /// The last kick (arming counts as one); None if never armed.
    last_kick: Option<Instant>,
    expired: u32,
    /// When it last expired.
    last_expiry: Option<Instant>,
    /// It expired and the relay let go of this card (until armed or disarmed again).
    pub(super) released: bool,
}

/// A card's watchdog as the simulator reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchdogReport {
    pub card: usize,
    pub armed: bool,
    /// The armed (or last armed) timeout.
    pub timeout: Duration,
    /// Time since the last kick or arm, at the report's instant.
    pub since_kick: Option<Duration>,
    /// How many times it expired.
    pub expired: u32,
    /// When it last expired (the instant the relay moved the trunk away).
    pub last_expiry: Option<Instant>,
    /// The relay let go of this card.
    pub released: bool,
    /// The card that carries the trunk behind this card's first span.
    pub relay_holder: Option<usize>,
}

impl World {
    /// `TANDEM_WATCHDOG_ARM`: arm `card`'s watchdog for `timeout_ms`
    /// (`EINVAL` outside [`abi::TANDEM_WATCHDOG_MIN_MS`] ..=
    /// [`abi::TANDEM_WATCHDOG_MAX_MS`]). Counts as a kick; a released card
    /// is taken back, and trunks of its that no span carries come to it.
    pub fn watchdog_arm(
        &mut self,
        card: usize,
        timeout_ms: u32,
        now: Instant,
    ) -> Result<(), Errno> {
        self.card(card)?;
        if !(abi::TANDEM_WATCHDOG_MIN_MS..=abi::TANDEM_WATCHDOG_MAX_MS).contains(&timeout_ms) {
            return Err(Errno::EINVAL);
        }
        let w = &mut self.cards[card].watchdog;
        w.armed = true;
        w.timeout = Duration::from_millis(u64::from(timeout_ms));
        w.last_kick = Some(now);
        self.take_back(card);
        Ok(())
    }

    /// `TANDEM_WATCHDOG_KICK`: `EINVAL` if not armed, `ETIMEDOUT` if it
    /// expired (the trunk has gone; only arming again takes the card back).
    pub fn watchdog_kick(&mut self, card: usize, now: Instant) -> Result<(), Errno> {
        self.card(card)?;
        let w = &mut self.cards[card].watchdog;
        if w.released {
            return Err(Errno::ETIMEDOUT);
        }
        if !w.armed {
            return Err(Errno::EINVAL);
        }
        w.last_kick = Some(now);
        Ok(())
    }

    /// `TANDEM_WATCHDOG_DISARM`: no watchdog any more (a no-op if none is
    /// armed). The trunk stays where it is; a released card is taken back.
    pub fn watchdog_disarm(&mut self, card: usize) -> Result<(), Errno> {
        self.card(card)?;
        self.cards[card].watchdog.armed = false;
        self.take_back(card);
        Ok(())
    }

    /// `TANDEM_WATCHDOG_STATUS` at `now`.
    pub fn watchdog_status(
        &self,
        card: usize,
        now: Instant,
    ) -> Result<abi::tandem_watchdog_status, Errno> {
        self.card(card)?;
        let r = self.watchdog_report(card, now)?;
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        Ok(abi::tandem_watchdog_status {
            armed: u32::from(r.armed),
            timeout_ms: ms(r.timeout),
            last_kick_age_ms: r.since_kick.map_or(u32::MAX, ms),
            expired_count: r.expired,
            relay_holder: r
                .relay_holder
                .and_then(|c| i32::try_from(c).ok())
                .unwrap_or(-1),
            released: u32::from(r.released),
        })
    }

    /// `card`'s watchdog and the relay, at `now` (also for an unplugged card).
    pub fn watchdog_report(&self, card: usize, now: Instant) -> Result<WatchdogReport, Errno> {
        let c = self.cards.get(card).ok_or(Errno::ENODEV)?;
        let w = c.watchdog;
        let trunk = c.spans.first().map(|s| s.trunk);
        Ok(WatchdogReport {
            card,
            armed: w.armed,
            timeout: w.timeout,
            since_kick: w.last_kick.map(|k| now.saturating_duration_since(k)),
            expired: w.expired,
            last_expiry: w.last_expiry,
            released: w.released,
            relay_holder: trunk.and_then(|t| self.trunks[t].carrier.map(|(card, _)| card)),
        })
    }

    /// The earliest instant an armed watchdog expires, if one is armed.
    pub fn next_watchdog_deadline(&self) -> Option<Instant> {
        self.cards
            .iter()
            .filter(|c| !c.removed && c.watchdog.armed)
            .filter_map(|c| Some(c.watchdog.last_kick? + c.watchdog.timeout))
            .min()
    }

    /// Expire every armed watchdog not kicked for longer than its timeout
    /// at `now`: the relay releases its card, whose trunks move to the
    /// next started span of a card not released (or to nothing). Returns
    /// the cards that expired.
    pub fn watchdog_expire(&mut self, now: Instant) -> Vec<usize> {
        let mut expired = Vec::new();
        for card in 0..self.cards.len() {
            let c = &mut self.cards[card];
            let w = &mut c.watchdog;
            let Some(kick) = w.last_kick else {
                continue;
            };
            if c.removed || !w.armed || now.saturating_duration_since(kick) <= w.timeout {
                continue;
            }
            w.armed = false;
            w.released = true;
            w.expired += 1;
            w.last_expiry = Some(now);
            expired.push(card);
            for span in 0..self.config.spans {
                self.hand_over(card, span);
            }
        }
        if !expired.is_empty() {
            self.settle_alarms();
        }
        expired
    }

    /// Ends a release of `card`: trunks of its spans that nothing carries
    /// come to the first span that may carry them.
    fn take_back(&mut self, card: usize) {
        if !std::mem::take(&mut self.cards[card].watchdog.released) {
            return;
        }
        for span in 0..self.config.spans {
            let trunk = self.cards[card].spans[span].trunk;
            if self.trunks[trunk].carrier.is_some() {
                continue;
            }
            let next = self.trunks[trunk]
                .members
                .iter()
                .copied()
                .find(|&(c, s)| self.may_carry(c, s));
            if next.is_some() {
                self.connect(trunk, next);
            }
        }
        self.settle_alarms();
    }
}
