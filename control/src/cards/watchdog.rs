//! The failover switch's watchdog from the host's side: the active node
//! arms it and kicks it, so that the switch holds the trunk on this node's
//! card; a standby, or a node that steps down or shuts down cleanly,
//! disarms it. A node that dies or hangs stops kicking, and the switch
//! moves the trunk to the peer's card by itself.
//!
//! [`WatchdogKicker`] is sans-IO and owns the decision: given the time and
//! whether this node is active, what to do with the watchdog now
//! ([`WatchdogKicker::poll_action`]) — arm when active and not armed, kick
//! every [`WatchdogKicker::interval`] (a quarter of the timeout) while
//! active, disarm when no longer active — and, told how the ioctl went
//! ([`WatchdogKicker::handle_result`]), whether that is news for the log
//! (the first failure, or the recovery; never one line per kick).
//! [`CardManager::watchdog_turn`] carries the action out with one ioctl on
//! the card's control node and logs the news with the device path. It never
//! sleeps: the daemon calls it once per loop turn.
//!
//! | kind | methods |
//! |---|---|
//! | getters | [`timeout`](WatchdogKicker::timeout), [`interval`](WatchdogKicker::interval), [`is_armed`](WatchdogKicker::is_armed), [`is_failing`](WatchdogKicker::is_failing) |
//! | `poll_*` | [`poll_action`](WatchdogKicker::poll_action) (what to do now), [`poll_timeout`](WatchdogKicker::poll_timeout) (when next) |
//! | `handle_*` | [`handle_result`](WatchdogKicker::handle_result) (how the ioctl went) |
//!
//! A failed arm is retried every interval while active. A kick refused
//! (`ETIMEDOUT`: the switch already released this card, the node was too
//! late — a stall longer than the timeout) makes a node that is still
//! active arm again one interval later. Arming takes the card back but
//! moves no trunk another card carries: the trunk returns only if nobody
//! took it (the peer did not take over, so the active must not stay
//! without its trunk); if the peer's card carries it, this node's spans
//! show `RED|LOS` and the card alarms hand the role over. A node that woke
//! from a stop as standby never arms.

use std::time::{Duration, Instant};

use super::{CardError, CardManager};

/// What the watchdog needs now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchdogAction {
    /// `TANDEM_WATCHDOG_ARM` with this timeout.
    Arm(Duration),
    /// `TANDEM_WATCHDOG_KICK`.
    Kick,
    /// `TANDEM_WATCHDOG_DISARM`.
    Disarm,
}

impl WatchdogAction {
    /// The ioctl that carries the action out.
    pub fn ioctl(self) -> &'static str {
        match self {
            WatchdogAction::Arm(_) => "TANDEM_WATCHDOG_ARM",
            WatchdogAction::Kick => "TANDEM_WATCHDOG_KICK",
            WatchdogAction::Disarm => "TANDEM_WATCHDOG_DISARM",
        }
    }
}

/// What [`WatchdogKicker::handle_result`] says is worth a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchdogNews {
    /// The first failure after a success (or after the start).
    Failing,
    /// The first success after failures.
    Recovered,
}

/// When to arm, kick and disarm one card's watchdog (sans-IO).
#[derive(Clone, Debug)]
pub struct WatchdogKicker {
    timeout: Duration,
    interval: Duration,
    /// Armed on the card, as far as this node knows.
    armed: bool,
    /// Not before this instant: the next kick, or the next try of a failed arm.
    next: Option<Instant>,
    failing: bool,
}

impl WatchdogKicker {
    /// A kicker for a watchdog of `timeout` (kicked every `timeout / 4`).
    pub fn new(timeout: Duration) -> WatchdogKicker {
        WatchdogKicker {
            timeout,
            interval: timeout / 4,
            armed: false,
            next: None,
            failing: false,
        }
    }

    /// The configured watchdog timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How often an active node kicks.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether the watchdog is armed on the card (as far as this node knows).
    pub fn is_armed(&self) -> bool {
        self.armed
    }

    /// Whether the last ioctl failed.
    pub fn is_failing(&self) -> bool {
        self.failing
    }

    /// What to do at `now`, with this node `active` or not; None: nothing.
    /// Carry it out, then call [`handle_result`](Self::handle_result).
    pub fn poll_action(&self, now: Instant, active: bool) -> Option<WatchdogAction> {
        let due = self.next.is_none_or(|at| now >= at);
        match (active, self.armed) {
            (true, false) if due => Some(WatchdogAction::Arm(self.timeout)),
            (true, true) if due => Some(WatchdogAction::Kick),
            (false, true) => Some(WatchdogAction::Disarm),
            _ => None,
        }
    }

    /// When [`poll_action`](Self::poll_action) next has something to do
    /// for an active node (None: at once, or nothing while not active).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// How `action`, carried out at `now`, went (`ok`); returns news for the log.
    pub fn handle_result(
        &mut self,
        action: WatchdogAction,
        ok: bool,
        now: Instant,
    ) -> Option<WatchdogNews> {
        match action {
            WatchdogAction::Arm(_) => {
                self.armed = ok;
                self.next = Some(now + self.interval);
            }
            // A refused kick: the card may have been released; arm again
            // (after one interval) if this node is still active then.
            WatchdogAction::Kick => {
                self.armed = ok;
                self.next = Some(now + self.interval);
            }
            // Not retried: a card that refuses to disarm has nothing armed
            // that this node could still kick, and the next arm resets it.
            WatchdogAction::Disarm => {
                self.armed = false;
                self.next = None;
            }
        }
        let news = match (self.failing, ok) {
            (false, false) => Some(WatchdogNews::Failing),
            (true, true) => Some(WatchdogNews::Recovered),
            _ => None,
        };
        self.failing = !ok;
        news
    }
}

/// What one [`CardManager::watchdog_turn`] did.
#[derive(Debug)]
pub struct WatchdogDone {
    pub action: WatchdogAction,
    /// The ioctl's error, if it failed.
    pub error: Option<CardError>,
    pub news: Option<WatchdogNews>,
}

impl CardManager {
    /// The card's watchdog kicker (None: no `watchdog_ms` configured).
    pub fn watchdog(&self) -> Option<&WatchdogKicker> {
        self.watchdog.as_ref()
    }

    /// Once per loop turn: arms, kicks or disarms the card's failover-switch
    /// watchdog as [`WatchdogKicker`] decides for `now` and `active` (at most
    /// one ioctl, never a wait). The first failure and the recovery are
    /// logged with the device path and the ioctl; the result is returned for
    /// the caller's records. None: nothing to do (or no watchdog configured).
    pub fn watchdog_turn(&mut self, now: Instant, active: bool) -> Option<WatchdogDone> {
        let kicker = self.watchdog.as_mut()?;
        let action = kicker.poll_action(now, active)?;
        let result = match action {
            WatchdogAction::Arm(timeout) => self.control.watchdog_arm(timeout),
            WatchdogAction::Kick => self.control.watchdog_kick(),
            WatchdogAction::Disarm => self.control.watchdog_disarm(),
        };
        let news = kicker.handle_result(action, result.is_ok(), now);
        let error = result.err().map(|source| CardError::Device {
            root: self.config.root.clone(),
            source,
        });
        match (news, &error) {
            (Some(WatchdogNews::Failing), Some(e)) => {
                tracing::error!(
                    "card {}: failover switch watchdog: {e}",
                    self.config.root.display()
                );
            }
            (Some(WatchdogNews::Recovered), None) => tracing::info!(
                "card {}: failover switch watchdog: {} works again",
                self.config.root.display(),
                action.ioctl()
            ),
            _ => {}
        }
        Some(WatchdogDone {
            action,
            error,
            news,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Drives `k` like the loop: one `poll_action` per turn every `step`
    /// from `from` for `turns` turns, every ioctl answering `ok(t)`;
    /// returns the actions with their times.
    fn drive(
        k: &mut WatchdogKicker,
        from: Instant,
        step: Duration,
        turns: u32,
        active: impl Fn(Instant) -> bool,
        ok: impl Fn(Instant) -> bool,
    ) -> Vec<(Duration, WatchdogAction)> {
        let mut done = Vec::new();
        for i in 0..turns {
            let now = from + step * i;
            if let Some(a) = k.poll_action(now, active(now)) {
                k.handle_result(a, ok(now), now);
                done.push((now - from, a));
            }
        }
        done
    }

    #[test]
    fn standby_does_nothing() {
        let mut k = WatchdogKicker::new(100 * MS);
        let t0 = Instant::now();
        assert!(drive(&mut k, t0, MS, 1000, |_| false, |_| true).is_empty());
        assert!(!k.is_armed());
    }

    #[test]
    fn active_arms_at_once_then_kicks_every_quarter_timeout() {
        let mut k = WatchdogKicker::new(100 * MS);
        assert_eq!(k.interval(), 25 * MS);
        let t0 = Instant::now();
        let done = drive(&mut k, t0, MS, 1000, |_| true, |_| true);
        assert_eq!(done[0], (Duration::ZERO, WatchdogAction::Arm(100 * MS)));
        assert!(k.is_armed());
        let kicks: Vec<Duration> = done[1..].iter().map(|(t, _)| *t).collect();
        assert!(done[1..].iter().all(|(_, a)| *a == WatchdogAction::Kick));
        assert_eq!(kicks.len(), 39, "1 s / 25 ms, less the arm");
        assert!(
            kicks.windows(2).all(|w| w[1] - w[0] == 25 * MS),
            "{kicks:?}"
        );
        assert_eq!(k.poll_timeout(), Some(t0 + 1000 * MS));
    }

    #[test]
    fn slow_turns_still_kick_well_within_the_timeout() {
        // The loop turns every 7 ms: a kick is at most one turn late.
        let mut k = WatchdogKicker::new(100 * MS);
        let t0 = Instant::now();
        let done = drive(&mut k, t0, 7 * MS, 300, |_| true, |_| true);
        let gaps: Vec<Duration> = done.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(gaps.iter().all(|g| *g <= 25 * MS + 7 * MS), "{gaps:?}");
        assert!(gaps.iter().all(|g| *g >= 25 * MS), "{gaps:?}");
    }

    #[test]
    fn stepping_down_disarms_once_and_becoming_active_again_re_arms() {
        let mut k = WatchdogKicker::new(40 * MS);
        let t0 = Instant::now();
        let active = |t: Instant| t < t0 + 100 * MS || t >= t0 + 200 * MS;
        let done = drive(&mut k, t0, MS, 300, active, |_| true);
        let disarms: Vec<_> = done
            .iter()
            .filter(|(_, a)| *a == WatchdogAction::Disarm)
            .collect();
        assert_eq!(disarms, vec![&(100 * MS, WatchdogAction::Disarm)]);
        let arms: Vec<Duration> = done
            .iter()
            .filter(|(_, a)| matches!(a, WatchdogAction::Arm(_)))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(arms, vec![Duration::ZERO, 200 * MS]);
        assert!(
            !done
                .iter()
                .any(|(t, a)| *a == WatchdogAction::Kick && (100 * MS..200 * MS).contains(t)),
            "no kicks while standby"
        );
    }

    #[test]
    fn a_refused_kick_of_a_still_active_node_arms_again_one_interval_later() {
        let mut k = WatchdogKicker::new(100 * MS);
        let t0 = Instant::now();
        // The loop stalled past the timeout: the switch refuses the kick at
        // 150 ms (released), then takes the arm.
        let refused = |t: Instant| t != t0 + 150 * MS;
        let done = drive(&mut k, t0, 25 * MS, 12, |_| true, refused);
        let after: Vec<_> = done.iter().filter(|(t, _)| *t >= 150 * MS).collect();
        assert_eq!(
            after[..3],
            [
                &(150 * MS, WatchdogAction::Kick),
                &(175 * MS, WatchdogAction::Arm(100 * MS)),
                &(200 * MS, WatchdogAction::Kick)
            ]
        );
        assert!(k.is_armed());
    }

    #[test]
    fn a_failing_arm_is_retried_every_interval_and_news_is_told_once() {
        let mut k = WatchdogKicker::new(100 * MS);
        let t0 = Instant::now();
        let mut news = Vec::new();
        for i in 0..200u32 {
            let now = t0 + MS * i;
            if let Some(a) = k.poll_action(now, true) {
                // The card refuses everything for the first 60 ms.
                let ok = now >= t0 + 60 * MS;
                if let Some(n) = k.handle_result(a, ok, now) {
                    news.push((now - t0, a, n));
                }
            }
        }
        assert_eq!(
            news,
            vec![
                (
                    Duration::ZERO,
                    WatchdogAction::Arm(100 * MS),
                    WatchdogNews::Failing
                ),
                (
                    75 * MS,
                    WatchdogAction::Arm(100 * MS),
                    WatchdogNews::Recovered
                ),
            ],
            "tries at 0, 25, 50 fail; 75 arms; one line each way"
        );
        assert!(k.is_armed() && !k.is_failing());
    }

    #[test]
    fn refused_kicks_are_followed_by_arms_every_interval_and_logged_once() {
        let mut k = WatchdogKicker::new(100 * MS);
        let t0 = Instant::now();
        // Armed at 0; from 30 ms on the switch refuses everything.
        let mut news = Vec::new();
        let mut actions = Vec::new();
        for i in 0..500u32 {
            let now = t0 + MS * i;
            if let Some(a) = k.poll_action(now, true) {
                let ok = now < t0 + 30 * MS;
                actions.push((now - t0, a));
                if let Some(n) = k.handle_result(a, ok, now) {
                    news.push(n);
                }
            }
        }
        assert_eq!(news, vec![WatchdogNews::Failing], "one line for the whole episode");
        let arms: Vec<Duration> = actions.iter().filter(|(_, a)| matches!(a, WatchdogAction::Arm(_))).map(|(t, _)| *t).collect();
        assert_eq!(arms[0], Duration::ZERO);
        assert_eq!(arms[1], 75 * MS, "the kick at 50 ms was refused: arm one interval later");
        assert!(arms.windows(2).skip(1).all(|w| w[1] - w[0] == 25 * MS), "{arms:?}");
        assert!(!k.is_armed());
        assert_eq!(k.poll_action(t0 + 500 * MS, false), None, "nothing armed to disarm");
    }
}
