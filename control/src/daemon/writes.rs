//! A reload's kernel writes, a few per loop turn: removing and writing
//! services is the one piece of the loop's work whose size is the
//! configuration's (a Maglev table is 65,537 entries, about 5 ms to build
//! and write; loading the design maximum is tens of them). The plan and
//! the daemon's view change at once ([`Daemon::apply_config`]); the
//! writes that carry them into the kernel wait here and are made
//! between the loop's other duties, at most [`TURN_BUDGET`] of them per
//! turn, so that heartbeats, sync and clients are never held behind a
//! reload.
//!
//! A service is written as it is *when its turn comes* (its effective
//! configuration: health applied), not as it was when the reload was
//! planned: an IVR that dies meanwhile is not written back up. The
//! answers of the reloads whose writes these are wait until the queue is
//! empty; until then the heartbeats carry the fingerprint of what the
//! kernel held before, so that the peer is not told of a change that is
//! not yet in the maps.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use anyhow::Result;
use tandem_dataplane::common::ServiceKey;

use super::{Daemon, Event, reload::Origin, token::Token};
use crate::{admin::ReloadReply, config::fingerprint_hex};

/// Longest run of writes in one turn before the loop is given back (a
/// service can take longer alone: one Maglev table).
pub(super) const TURN_BUDGET: Duration = Duration::from_millis(4);

/// A reload applied to the daemon's view whose kernel writes are queued.
#[derive(Debug)]
pub(super) struct Applying {
    pub ticket: u64,
    pub origin: Origin,
    pub source: String,
    pub changes: u32,
    pub started: Instant,
    pub reply: ReloadReply,
}

/// The queued writes and the reloads waiting for them.
#[derive(Debug, Default)]
pub(super) struct Writes {
    removed: VecDeque<ServiceKey>,
    written: VecDeque<ServiceKey>,
    errors: Vec<String>,
    waiting: Vec<Applying>,
    /// The fingerprint the kernel's maps held before the first queued
    /// write (None: nothing queued).
    before: Option<u64>,
}

impl Writes {
    /// Queues removals then writes (each key once; a removal cancels a
    /// queued write of the same key, a write cancels a queued removal).
    pub(super) fn queue(&mut self, held: u64, removed: Vec<ServiceKey>, written: Vec<ServiceKey>) {
        if removed.is_empty() && written.is_empty() {
            return;
        }
        self.before.get_or_insert(held);
        for k in removed {
            self.written.retain(|w| *w != k);
            if !self.removed.contains(&k) {
                self.removed.push_back(k);
            }
        }
        for k in written {
            self.removed.retain(|r| *r != k);
            if !self.written.contains(&k) {
                self.written.push_back(k);
            }
        }
    }

    /// Whether a reload of an origin `of` accepts waits for these writes.
    pub(super) fn waits_for(&self, of: impl Fn(Origin) -> bool) -> bool {
        self.waiting.iter().any(|a| of(a.origin))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.written.is_empty()
    }

    /// The fingerprint to advertise: what the kernel holds, which is the
    /// running one unless writes are queued.
    pub(super) fn advertised(&self, running: u64) -> u64 {
        self.before.unwrap_or(running)
    }

    pub(super) fn wait(&mut self, a: Applying) {
        self.waiting.push(a);
    }
}

impl Daemon {
    /// Makes queued writes for up to [`TURN_BUDGET`], keeping the loop's
    /// duties alive between services; if some are left, the loop comes
    /// back for them after its other completions (`Token::ApplyMore`);
    /// once none is left, the reloads that waited are finished.
    pub(super) fn write_some(&mut self) -> Result<()> {
        if self.writes.is_empty() {
            return self.writes_done();
        }
        let start = Instant::now();
        let eff = crate::pool::effective(&self.services, &self.ivr_slots, &self.pool, &self.sip_down, &self.neigh.table);
        self.translator.invalidate();
        while start.elapsed() < TURN_BUDGET {
            if let Some(k) = self.writes.removed.pop_front() {
                // Gone from the kernel already (never written): nothing to do.
                if self.dp.service(&k).is_some()
                    && let Err(e) = self.dp.remove_service(&k)
                {
                    self.writes.errors.push(format!("service {k:?}: removing it: {e}"));
                }
            } else if let Some(k) = self.writes.written.pop_front() {
                // Written as it is now; a service since removed again is skipped.
                if let Some(s) = eff.iter().find(|s| s.key() == k)
                    && let Err(e) = self.dp.set_service(s)
                {
                    self.writes.errors.push(format!("service {}: {e}", s.name()));
                }
            } else {
                break;
            }
            self.keep_alive();
        }
        if self.writes.is_empty() {
            self.writes_done()
        } else {
            self.ring.arm_timeout(Token::ApplyMore, Instant::now())?;
            Ok(())
        }
    }

    /// Every queued write is made: the waiting reloads are finished
    /// (their outcome recorded, their clients answered or told to wait
    /// for the standby).
    fn writes_done(&mut self) -> Result<()> {
        self.writes.before = None;
        let errors = std::mem::take(&mut self.writes.errors);
        for e in &errors {
            tracing::error!("reload: {e}");
        }
        for mut a in std::mem::take(&mut self.writes.waiting) {
            a.reply.apply_us = a.started.elapsed().as_micros() as u64;
            a.reply.fingerprint = fingerprint_hex(self.fingerprint);
            if !errors.is_empty() {
                let mut all: Vec<String> = a.reply.error.take().into_iter().collect();
                all.extend(errors.iter().cloned());
                a.reply.error = Some(all.join("; "));
            }
            self.mark(Event::Reloaded {
                source: a.source.clone(),
                changes: a.changes,
                fingerprint: a.reply.fingerprint.clone(),
                micros: a.reply.apply_us,
            });
            if a.origin == Origin::Admin && !self.wait_for_standby(a.ticket, &mut a.reply)? {
                self.answer_deferred(a.ticket, &crate::admin::Response::Reload(a.reply))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_dataplane::common::PROTO_UDP;

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            proto: PROTO_UDP,
            port,
            ..Default::default()
        }
    }

    #[test]
    fn a_key_is_queued_once_and_the_last_word_wins() {
        let mut w = Writes::default();
        assert!(w.is_empty());
        assert_eq!(w.advertised(7), 7);
        w.queue(5, vec![key(1)], vec![key(2), key(3)]);
        assert_eq!(w.advertised(7), 5, "the kernel holds the old services until the queue is written");
        w.queue(6, vec![key(2)], vec![key(3), key(1)]);
        assert_eq!(w.removed, [key(2)]);
        assert_eq!(w.written, [key(3), key(1)]);
        assert_eq!(w.advertised(7), 5, "still what the kernel held before the first queued write");
    }

    #[test]
    fn nothing_queued_changes_nothing() {
        let mut w = Writes::default();
        w.queue(5, vec![], vec![]);
        assert!(w.is_empty());
        assert_eq!(w.advertised(9), 9);
    }
}
