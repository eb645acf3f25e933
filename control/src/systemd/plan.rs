//! What to tell systemd and when, decided without I/O: the daemon feeds
//! each loop turn's role and whether an operator's reload is under way
//! ([`Plan::handle_turn`]) and the start of a shutdown
//! ([`Plan::handle_stopping`]), then takes the notes to send
//! ([`Plan::poll_note`]). The shell ([`super::Notifier`]) sends them.
//!
//! Surface, in quinn-proto's kinds: getters ([`Plan::is_ready`]),
//! `handle_*(…, now)`, and `poll_note()` for what it wants sent.
//!
//! - `READY=1` once, when the pair has first decided a role (not
//!   `init`, not a `takeover` still checking the witness): XDP is
//!   attached before the loop starts, so the role is the last step.
//! - `RELOADING=1` when an operator's reload (SIGHUP, `tandemctl
//!   reload`) starts, `READY=1` when the last one finishes (applied,
//!   refused or failed).
//! - `STATUS=` with the role on every change after ready.
//! - `WATCHDOG=1` at most every quarter of `WATCHDOG_USEC`
//!   ([`WatchdogPacer`]), from the loop's turns: a loop that stops
//!   turning stops pinging, and systemd restarts it.
//! - `STOPPING=1` once.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use tandem_dataplane::common::node::NodeState;

/// One notification (one datagram).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// `READY=1`.
    Ready,
    /// `RELOADING=1` (the shell adds `MONOTONIC_USEC`, as systemd ≥ 253 wants).
    Reloading,
    /// `STOPPING=1`.
    Stopping,
    /// `WATCHDOG=1`.
    Watchdog,
    /// `STATUS=…`: free text shown by `systemctl status`.
    Status(String),
}

/// When the next watchdog ping is due: every `WATCHDOG_USEC / 4`, so
/// that two late turns in a row still keep systemd's timer from running out.
#[derive(Clone, Debug)]
pub struct WatchdogPacer {
    period: Duration,
    next: Option<Instant>,
}

impl WatchdogPacer {
    /// For systemd's watchdog timeout (`WatchdogSec=`, passed as `WATCHDOG_USEC`).
    pub fn new(timeout: Duration) -> WatchdogPacer {
        WatchdogPacer {
            period: (timeout / 4).max(Duration::from_millis(1)),
            next: None,
        }
    }

    /// The time between pings.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Whether a ping is due at `now`; if so, the next is due a period later.
    pub fn handle_turn(&mut self, now: Instant) -> bool {
        if self.next.is_some_and(|next| now < next) {
            return false;
        }
        self.next = Some(now + self.period);
        true
    }

    /// When the next ping is due (None: at the first turn).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }
}

/// The notifications a daemon owes systemd.
#[derive(Debug)]
pub struct Plan {
    watchdog: Option<WatchdogPacer>,
    /// The role last told (None: not ready yet).
    told: Option<NodeState>,
    /// An operator's reload was announced with `RELOADING=1`.
    reloading: bool,
    stopping: bool,
    out: VecDeque<Note>,
}

impl Plan {
    /// `watchdog`: systemd's watchdog timeout, when it set one.
    pub fn new(watchdog: Option<Duration>) -> Plan {
        Plan {
            watchdog: watchdog.map(WatchdogPacer::new),
            told: None,
            reloading: false,
            stopping: false,
            out: VecDeque::new(),
        }
    }

    /// `READY=1` has been decided.
    pub fn is_ready(&self) -> bool {
        self.told.is_some()
    }

    /// The watchdog's pacer, when systemd asked for pings.
    pub fn watchdog(&self) -> Option<&WatchdogPacer> {
        self.watchdog.as_ref()
    }

    /// One loop turn: the pair's state and whether an operator's reload
    /// is being read or applied.
    pub fn handle_turn(&mut self, now: Instant, state: NodeState, reloading: bool) {
        if self.stopping {
            return;
        }
        if self.watchdog.as_mut().is_some_and(|w| w.handle_turn(now)) {
            self.out.push_back(Note::Watchdog);
        }
        let decided = !matches!(state, NodeState::Init | NodeState::Takeover);
        match self.told {
            None if decided => {
                self.out.push_back(Note::Status(status(state)));
                self.out.push_back(Note::Ready);
                self.told = Some(state);
            }
            None => return,
            Some(told) if told != state => {
                self.out.push_back(Note::Status(status(state)));
                self.told = Some(state);
            }
            Some(_) => {}
        }
        if reloading != self.reloading {
            self.reloading = reloading;
            self.out.push_back(if reloading { Note::Reloading } else { Note::Ready });
        }
    }

    /// The daemon begins to shut down: `STOPPING=1`, and nothing after it.
    pub fn handle_stopping(&mut self) {
        if !self.stopping {
            self.stopping = true;
            self.out.clear();
            self.out.push_back(Note::Stopping);
        }
    }

    /// The next notification to send.
    pub fn poll_note(&mut self) -> Option<Note> {
        self.out.pop_front()
    }
}

fn status(state: NodeState) -> String {
    format!("role: {}", state.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(p: &mut Plan) -> Vec<Note> {
        std::iter::from_fn(|| p.poll_note()).collect()
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn watchdog_pings_at_most_every_quarter_of_the_timeout() {
        let t0 = Instant::now();
        let mut w = WatchdogPacer::new(Duration::from_secs(2));
        assert_eq!(w.period(), 500 * MS);
        // Turns every 10 ms for 2 s: a ping at 0, 500, 1000, 1500 ms.
        let pinged: Vec<u32> = (0..200u32)
            .filter(|i| w.handle_turn(t0 + *i * 10 * MS))
            .map(|i| i * 10)
            .collect();
        assert_eq!(pinged, vec![0, 500, 1000, 1500]);
        assert_eq!(w.poll_timeout(), Some(t0 + 2000 * MS));
        // A loop that turns late pings at its next turn, and paces from there.
        assert!(w.handle_turn(t0 + 2700 * MS));
        assert!(!w.handle_turn(t0 + 3100 * MS));
        assert!(w.handle_turn(t0 + 3200 * MS));
    }

    #[test]
    fn ready_once_the_role_is_decided_then_status_on_changes() {
        let t0 = Instant::now();
        let mut p = Plan::new(None);
        p.handle_turn(t0, NodeState::Init, false);
        p.handle_turn(t0 + MS, NodeState::Takeover, false);
        assert!(drain(&mut p).is_empty(), "no READY while the role is open");
        assert!(!p.is_ready());
        p.handle_turn(t0 + 2 * MS, NodeState::Active, false);
        assert_eq!(drain(&mut p), vec![Note::Status("role: active".into()), Note::Ready]);
        p.handle_turn(t0 + 3 * MS, NodeState::Active, false);
        assert!(drain(&mut p).is_empty());
        p.handle_turn(t0 + 4 * MS, NodeState::Standby, false);
        assert_eq!(drain(&mut p), vec![Note::Status("role: standby".into())]);
        assert!(p.watchdog().is_none());
    }

    #[test]
    fn a_reload_is_bracketed_by_reloading_and_ready() {
        let t0 = Instant::now();
        let mut p = Plan::new(None);
        // A reload asked before ready is not announced on its own.
        p.handle_turn(t0, NodeState::Init, true);
        assert!(drain(&mut p).is_empty());
        p.handle_turn(t0 + MS, NodeState::Standby, true);
        assert_eq!(
            drain(&mut p),
            vec![Note::Status("role: standby".into()), Note::Ready, Note::Reloading]
        );
        p.handle_turn(t0 + 2 * MS, NodeState::Standby, true);
        assert!(drain(&mut p).is_empty(), "one RELOADING per reload");
        p.handle_turn(t0 + 3 * MS, NodeState::Standby, false);
        assert_eq!(drain(&mut p), vec![Note::Ready]);
    }

    #[test]
    fn stopping_is_the_last_note() {
        let t0 = Instant::now();
        let mut p = Plan::new(Some(Duration::from_secs(2)));
        p.handle_turn(t0, NodeState::Init, false);
        assert_eq!(drain(&mut p), vec![Note::Watchdog], "pings before ready too");
        p.handle_turn(t0 + 600 * MS, NodeState::Active, true);
        p.handle_stopping();
        p.handle_stopping();
        assert_eq!(drain(&mut p), vec![Note::Stopping]);
        p.handle_turn(t0 + 1200 * MS, NodeState::Active, false);
        assert!(drain(&mut p).is_empty(), "nothing after STOPPING");
    }
}
