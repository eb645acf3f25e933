//! What is left to do to announce one VIP after a takeover, sans-IO: its
//! ownership in the dataplane, then a burst of gratuitous ARPs, each step
//! retried on a bounded schedule when it fails for a reason that passes
//! (`ENOBUFS` from a full interface queue, `EAGAIN`, `ENOMEM`, `EINTR`).
//! Nothing here is ever fatal: a failure is counted, reported once per run
//! of failures ([`Notice`]), and retried or given up; the takeover goes on.
//!
//! It owns no socket, map or clock. The surface, in the sans-IO style:
//! - Getters: [`Announcement::stats`], [`Announcement::is_idle`].
//! - Mutators: [`Announcement::take`] (ownership + burst, a takeover),
//!   [`Announcement::announce`] (a burst only, a split-brain heal),
//!   [`Announcement::stop`] (demotion).
//! - `poll_*`: [`Announcement::poll_own`] and [`Announcement::poll_send`]
//!   (whether the dataplane update or a GARP is due now; the caller does
//!   it and hands the result to `handle_owned` / `handle_sent`),
//!   [`Announcement::poll_timeout`] (when to call again),
//!   [`Announcement::poll_notice`] (what to report).
//!
//! The schedule: the burst's GARPs go out `interval` apart. A GARP that
//! failed with a passing errno stays owed and is re-sent after `interval`,
//! the gap doubling with each failure in a row up to [`MAX_BACKOFF`], at
//! most [`MAX_RETRIES`] re-sends per burst; any other failure loses that
//! one GARP and the rest of the burst keeps going. The dataplane update
//! is retried the same way.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// Re-sends (and ownership retries) one burst may spend.
pub const MAX_RETRIES: u32 = 16;
/// The longest gap between two retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The shortest gap between two retries (a burst may be configured with
/// GARPs back to back; a retry must still wait for the queue to drain).
pub const MIN_BACKOFF: Duration = Duration::from_millis(5);

/// Whether a failure with this errno may pass if tried again: the queue
/// or memory was short, or a signal came.
pub fn is_transient(errno: i32) -> bool {
    matches!(
        errno,
        libc::ENOBUFS | libc::EAGAIN | libc::ENOMEM | libc::EINTR
    )
}

/// What became of one attempt (a GARP, or the dataplane update): the
/// errno of a failure (0 if it had none).
pub type Outcome = Result<(), i32>;

/// What to report, once per run of failures of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A GARP failed, the first of a run (or with another errno than the
    /// previous one): `retrying` if it will be re-sent.
    GarpFailing { errno: i32, retrying: bool },
    /// A GARP went out after `failed` failures in a row.
    GarpRecovered { failed: u32 },
    /// The burst ended with its last GARPs failed (`failed` in a row):
    /// the VIP is owned, but the segment may not have heard of it.
    GarpGaveUp { failed: u32 },
    /// The dataplane refused to own the VIP (`retrying`: it will be
    /// asked again).
    OwnFailing { errno: i32, retrying: bool },
    /// The dataplane owns the VIP after `failed` refusals.
    OwnRecovered { failed: u32 },
}

/// Counters over the life of the daemon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnnounceStats {
    /// GARPs that went out.
    pub garp_sent: u64,
    /// GARP sends that failed.
    pub garp_failed: u64,
    /// Failed GARPs scheduled to be sent again.
    pub garp_retried: u64,
    /// Failed GARPs given up (not transient, or the retry budget spent).
    pub garp_dropped: u64,
    /// The errno of the last failed GARP.
    pub garp_last_errno: Option<i32>,
    /// Dataplane ownership updates that failed.
    pub own_failed: u64,
}

/// A step retried with backoff: failures in a row and the errno reported.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    failed: u32,
    reported: Option<i32>,
}

/// One VIP's announcement; see the module documentation.
#[derive(Debug, Default)]
pub struct Announcement {
    interval: Duration,
    /// The dataplane update is due at this time.
    own_at: Option<Instant>,
    own_run: Run,
    /// GARPs of this burst still to go out, owed re-sends included.
    left: u32,
    /// When the next one is due (with `left > 0`).
    garp_at: Option<Instant>,
    garp_run: Run,
    /// Retries spent in this burst (GARPs and ownership together).
    retries: u32,
    notices: VecDeque<Notice>,
    stats: AnnounceStats,
}

impl Announcement {
    pub fn new() -> Announcement {
        Announcement::default()
    }

    pub fn stats(&self) -> AnnounceStats {
        self.stats
    }

    /// Nothing left to do.
    pub fn is_idle(&self) -> bool {
        self.own_at.is_none() && self.left == 0
    }

    /// A takeover: the dataplane must own the VIP, and `count` GARPs
    /// (at least one) go out `interval` apart, the first now.
    pub fn take(&mut self, now: Instant, count: u32, interval: Duration) {
        self.own_at = Some(now);
        self.announce(now, count, interval);
    }

    /// A burst of `count` GARPs (at least one), the first now, replacing
    /// what was left of the previous one.
    pub fn announce(&mut self, now: Instant, count: u32, interval: Duration) {
        self.interval = interval;
        self.left = count.max(1);
        self.garp_at = Some(now);
        self.retries = 0;
    }

    /// Demotion: nothing more is sent or asked of the dataplane. A run of
    /// failures being reported stays open: the next success reports the
    /// recovery.
    pub fn stop(&mut self) {
        self.own_at = None;
        self.left = 0;
        self.garp_at = None;
    }

    /// Whether the dataplane update is due: the caller makes it and
    /// hands the result to [`Announcement::handle_owned`].
    pub fn poll_own(&self, now: Instant) -> bool {
        self.own_at.is_some_and(|at| at <= now)
    }

    /// Whether a GARP is due (the dataplane update, if due, comes first):
    /// the caller sends it and hands the result to
    /// [`Announcement::handle_sent`].
    pub fn poll_send(&self, now: Instant) -> bool {
        !self.poll_own(now) && self.left > 0 && self.garp_at.is_some_and(|at| at <= now)
    }

    /// When something is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let garp = if self.left > 0 { self.garp_at } else { None };
        match (self.own_at, garp) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    /// The gap before retry number `failed` of a run (1 for the first):
    /// the burst's interval, doubling, within [`MIN_BACKOFF`]..[`MAX_BACKOFF`].
    fn backoff(&self, failed: u32) -> Duration {
        let base = self.interval.max(MIN_BACKOFF);
        let doubled = base.saturating_mul(1u32 << failed.saturating_sub(1).min(16));
        doubled.min(MAX_BACKOFF).max(MIN_BACKOFF)
    }

    /// Whether a failure with `errno` is retried (and the budget spent).
    fn spend_retry(&mut self, errno: i32) -> bool {
        if is_transient(errno) && self.retries < MAX_RETRIES {
            self.retries += 1;
            true
        } else {
            false
        }
    }

    /// The result of the dataplane update [`Announcement::poll_own`] asked for.
    pub fn handle_owned(&mut self, outcome: Outcome, now: Instant) {
        match outcome {
            Ok(()) => {
                if self.own_run.reported.take().is_some() {
                    self.notices.push_back(Notice::OwnRecovered {
                        failed: self.own_run.failed,
                    });
                }
                self.own_run.failed = 0;
                self.own_at = None;
            }
            Err(errno) => {
                self.stats.own_failed += 1;
                self.own_run.failed += 1;
                let retrying = self.spend_retry(errno);
                if self.own_run.reported != Some(errno) {
                    self.own_run.reported = Some(errno);
                    self.notices
                        .push_back(Notice::OwnFailing { errno, retrying });
                }
                self.own_at = retrying.then(|| now + self.backoff(self.own_run.failed));
            }
        }
    }

    /// The result of the GARP [`Announcement::poll_send`] asked for.
    pub fn handle_sent(&mut self, outcome: Outcome, now: Instant) {
        match outcome {
            Ok(()) => {
                self.stats.garp_sent += 1;
                if self.garp_run.reported.take().is_some() {
                    self.notices.push_back(Notice::GarpRecovered {
                        failed: self.garp_run.failed,
                    });
                }
                self.garp_run.failed = 0;
                self.left = self.left.saturating_sub(1);
                self.garp_at = Some(now + self.interval);
            }
            Err(errno) => {
                self.stats.garp_failed += 1;
                self.stats.garp_last_errno = Some(errno);
                self.garp_run.failed += 1;
                let retrying = self.spend_retry(errno);
                if self.garp_run.reported != Some(errno) {
                    self.garp_run.reported = Some(errno);
                    self.notices
                        .push_back(Notice::GarpFailing { errno, retrying });
                }
                if retrying {
                    // The GARP stays owed.
                    self.stats.garp_retried += 1;
                    self.garp_at = Some(now + self.backoff(self.garp_run.failed));
                } else {
                    self.stats.garp_dropped += 1;
                    self.left = self.left.saturating_sub(1);
                    self.garp_at = Some(now + self.interval);
                    if self.left == 0 {
                        self.notices.push_back(Notice::GarpGaveUp {
                            failed: self.garp_run.failed,
                        });
                    }
                }
            }
        }
        if self.left == 0 {
            self.garp_at = None;
        }
    }
}

#[cfg(test)]
mod tests;
