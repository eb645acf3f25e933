//! Reloads on the running daemon: SIGHUP and `tandemctl reload` re-read
//! the configuration file, off the loop ([`crate::cfgworker`]); when it
//! comes back, the plan ([`crate::config::diff`]) decides, and what
//! changed is applied here: services and real servers written to the
//! kernel maps, IVR heartbeat senders declared or forgotten, the IVR
//! pool, the SIP verdicts and the probes carried over by identity
//! ([`crate::reload`]) so that the health of what did not change is kept.
//!
//! A reload is all or nothing before it starts: a file that cannot be
//! read or is invalid, or any difference that cannot be taken live,
//! refuses it whole and nothing changes. Applying writes only the
//! services that differ; a service left alone keeps its scheduler state,
//! its flows and its counters.

use std::time::Instant;

use anyhow::Result;

use super::{Daemon, Event, token::Token};
use crate::{
    admin::ReloadReply,
    cfgworker::{Job, Loaded, Source},
    config::{diff, fingerprint_hex},
};

/// Who asked for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// `tandemctl reload`: its connection waits for the answer.
    Admin,
    /// SIGHUP.
    Signal,
    /// The active's services, replicated over sync to this standby.
    Peer,
}

/// How long a reload's answer waits for the standby to run the change
/// (its heartbeats carry the new fingerprint): with heartbeats every
/// 10 ms and the standby's apply a few ms, a live standby in sync shows
/// it within tens of ms.
pub(super) const STANDBY_HOLD_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A reload's answer waiting for the standby to run its change.
#[derive(Debug)]
pub(super) struct HoldWait {
    pub ticket: u64,
    pub fingerprint: u64,
    pub applied_at: Instant,
    pub reply: ReloadReply,
}

/// A reload being read by the worker.
#[derive(Clone, Debug)]
pub(super) struct Pending {
    pub origin: Origin,
    pub dry_run: bool,
    pub source: String,
}

impl Daemon {
    /// Asks the worker to read the configuration file again; the ticket
    /// its answer comes back with, or why it cannot.
    pub(super) fn start_reload(&mut self, origin: Origin, dry_run: bool) -> Result<u64, String> {
        let Some(path) = self.config_path.clone() else {
            return Err("tandemd was started without a configuration file to read again".into());
        };
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        self.reloads.insert(
            ticket,
            Pending {
                origin,
                dry_run,
                source: path.display().to_string(),
            },
        );
        self.cfg_worker.request(Job {
            ticket,
            source: Source::File(path),
        });
        Ok(ticket)
    }

    /// Whether a reload an operator asked for (SIGHUP, `tandemctl
    /// reload`; not a dry run, not the peer's services) is being read or
    /// applied: systemd is told RELOADING=1 while it is, READY=1 after.
    pub(super) fn operator_reload_running(&self) -> bool {
        self.reloads
            .values()
            .any(|p| p.origin != Origin::Peer && !p.dry_run)
            || self.writes.waits_for(|o| o != Origin::Peer)
    }

    /// The worker finished something: decide, apply, answer the waiting
    /// clients.
    pub(super) fn on_config_done(&mut self) -> Result<()> {
        for d in self.cfg_worker.take_done() {
            let Some(p) = self.reloads.remove(&d.ticket) else {
                continue;
            };
            if p.origin == Origin::Peer {
                self.peer_services_loading = None;
            }
            // An applied reload is answered when its kernel writes are
            // made (`writes`); the others now.
            if let Some(reply) = self.finish_reload(d.ticket, &p, d.result, d.took.as_micros() as u64)
                && p.origin == Origin::Admin
            {
                self.answer_deferred(d.ticket, &crate::admin::Response::Reload(reply))?;
            }
        }
        self.write_some()?;
        self.ring
            .poll(Token::ConfigDone, self.cfg_worker.fd(), libc::POLLIN as u32)?;
        Ok(())
    }

    /// Decides on a configuration read for reload `p`, applies it unless
    /// refused or a dry run, and records a refusal in the timeline; the
    /// answer, or None when it comes once the kernel writes are made.
    fn finish_reload(
        &mut self,
        ticket: u64,
        p: &Pending,
        read: Result<Box<Loaded>, String>,
        read_us: u64,
    ) -> Option<ReloadReply> {
        let before = fingerprint_hex(self.fingerprint);
        let mut reply = ReloadReply {
            source: p.source.clone(),
            dry_run: p.dry_run,
            fingerprint_before: before.clone(),
            fingerprint: before,
            read_us,
            ..Default::default()
        };
        let mut loaded = match read {
            Ok(l) => l,
            Err(e) => {
                self.mark(Event::ReloadRefused {
                    source: p.source.clone(),
                    reason: e.clone(),
                });
                reply.error = Some(e);
                return Some(reply);
            }
        };
        if let Some((path, r)) = loaded.followed.take() {
            self.mark(Event::FileFollowed {
                path: path.display().to_string(),
                fingerprint: fingerprint_hex(loaded.fingerprint),
                error: r.err(),
            });
        }
        let plan = diff::diff(&self.cfg, &loaded.cfg);
        reply.changes = plan.changes.iter().map(ToString::to_string).collect();
        reply.refused = plan.refused.iter().map(ToString::to_string).collect();
        if let Some(why) = self.cannot_apply(&loaded) {
            reply.refused.push(why);
        }
        if p.origin != Origin::Peer
            && let Some(why) = self.standby_refuses(&loaded)
        {
            reply.refused = vec![why];
        }
        if !reply.refused.is_empty() {
            self.mark(Event::ReloadRefused {
                source: p.source.clone(),
                reason: reply.refused.join("; "),
            });
            return Some(reply);
        }
        if p.dry_run {
            return Some(reply);
        }
        if plan.changes.is_empty() {
            // The same services: nothing to write, nothing to send.
            reply.applied = true;
            return Some(reply);
        }
        let started = Instant::now();
        let services_changed = loaded.fingerprint != self.fingerprint;
        let errors = self.apply_config(*loaded);
        if services_changed {
            self.publish_services();
        }
        reply.applied = true;
        if !errors.is_empty() {
            reply.error = Some(errors.join("; "));
        }
        self.writes.wait(crate::daemon::writes::Applying {
            ticket,
            origin: p.origin,
            source: p.source.clone(),
            changes: plan.changes.len() as u32,
            started,
            reply,
        });
        None
    }

    /// After an applied change: whether the answer waits for the standby
    /// to run it (queued, with its timer); if not, `reply` says why the
    /// standby will not run it, where it will not.
    pub(super) fn wait_for_standby(&mut self, ticket: u64, reply: &mut ReloadReply) -> Result<bool> {
        if !reply.applied || reply.fingerprint == reply.fingerprint_before {
            return Ok(false);
        }
        let peer = self.peer_id;
        if self.sync.is_none() {
            if self.live_peer_fingerprint().is_some() {
                reply.standby_note = Some(format!(
                    "state sync is off ([sync] enabled = false): node {peer} does not receive this change; apply the same file there"
                ));
            }
            return Ok(false);
        }
        let shown = self.live_peer_fingerprint();
        if shown == Some(self.fingerprint) {
            reply.standby_held_us = Some(0);
            return Ok(false);
        }
        if shown.is_none() {
            reply.standby_note = Some(format!(
                "node {peer} is not heard: the change runs on this node only, and reaches the peer over sync when it joins"
            ));
            return Ok(false);
        }
        let applied_at = Instant::now();
        self.standby_holds.push(HoldWait {
            ticket,
            fingerprint: self.fingerprint,
            applied_at,
            reply: std::mem::take(reply),
        });
        // Arming replaces the timer in flight: only the first wait arms
        // it, the timeout re-arms it for the next.
        if self.standby_holds.len() == 1 {
            self.ring
                .arm_timeout(Token::StandbyHold, applied_at + STANDBY_HOLD_WAIT)?;
        }
        Ok(true)
    }

    /// The peer's heartbeats carry fingerprint `f`: the answers that
    /// waited for it go out.
    pub(super) fn standby_runs(&mut self, f: u64) -> Result<()> {
        let (held, waiting): (Vec<HoldWait>, Vec<HoldWait>) =
            std::mem::take(&mut self.standby_holds)
                .into_iter()
                .partition(|w| w.fingerprint == f);
        self.standby_holds = waiting;
        for mut w in held {
            w.reply.standby_held_us = Some(w.applied_at.elapsed().as_micros() as u64);
            self.answer_deferred(w.ticket, &crate::admin::Response::Reload(w.reply))?;
        }
        Ok(())
    }

    /// The wait is over for the answers whose standby did not show their
    /// change: they go out saying so (the change runs here; a failover
    /// before the standby holds it would start without it).
    pub(super) fn on_standby_hold_timeout(&mut self) -> Result<()> {
        let now = Instant::now();
        let (late, waiting): (Vec<HoldWait>, Vec<HoldWait>) =
            std::mem::take(&mut self.standby_holds)
                .into_iter()
                .partition(|w| now >= w.applied_at + STANDBY_HOLD_WAIT);
        self.standby_holds = waiting;
        let shows = self
            .live_peer_fingerprint()
            .map_or_else(|| "is not heard".to_string(), |f| format!("shows {}", fingerprint_hex(f)));
        for mut w in late {
            let note = format!(
                "node {} did not run this change within {} ms (its heartbeats' fingerprint {} {shows}): it runs on this node; a failover before the standby holds it starts without it",
                self.peer_id,
                STANDBY_HOLD_WAIT.as_millis(),
                fingerprint_hex(w.fingerprint),
            );
            tracing::warn!("reload: {note}");
            w.reply.standby_note = Some(note);
            self.answer_deferred(w.ticket, &crate::admin::Response::Reload(w.reply))?;
        }
        if let Some(next) = self.standby_holds.iter().map(|w| w.applied_at + STANDBY_HOLD_WAIT).min() {
            self.ring.arm_timeout(Token::StandbyHold, next)?;
        }
        Ok(())
    }

    /// The fingerprint of the active's services this standby holds from
    /// sync (None: it is active, or holds none).
    fn peer_services_held(&self) -> Option<u64> {
        let sy = self.sync.as_ref()?;
        if sy.is_publishing() || self.pair.state() == tandem_dataplane::common::node::NodeState::Active {
            return None;
        }
        sy.store().services().map(|(f, _)| f)
    }

    /// While active: the running services go to the standby, in parts,
    /// through the sync store (so a standby that connects later gets them
    /// first in its snapshot).
    pub(super) fn publish_services(&mut self) {
        let Some(sy) = self.sync.as_mut().filter(|s| s.is_publishing()) else {
            return;
        };
        let now = Instant::now();
        for p in crate::sync::ServicesPart::cut(self.fingerprint, &self.services_text) {
            sy.record(crate::sync::Record::ServicesPart(p), now);
        }
    }

    /// On the standby, after sync records were applied: if the store now
    /// holds every part of services other than those running here, they
    /// are read and checked off the loop and applied as a reload would.
    pub(super) fn services_from_peer(&mut self) {
        let Some((f, text)) = self.sync.as_ref().filter(|s| !s.is_publishing()).and_then(|s| s.store().services())
        else {
            return;
        };
        if f == self.fingerprint || self.peer_services_loading == Some(f) {
            return;
        }
        self.peer_services_loading = Some(f);
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        self.reloads.insert(
            ticket,
            Pending {
                origin: Origin::Peer,
                dry_run: false,
                source: format!("the active's services ({})", fingerprint_hex(f)),
            },
        );
        self.cfg_worker.request(Job {
            ticket,
            source: Source::Services {
                base: Box::new(self.cfg.clone()),
                services: text,
                follow: self.config_path.clone(),
            },
        });
    }

    /// On a standby that runs the active's services: its own file is
    /// taken for the rest (keys, a rotation's steps) only while its
    /// `[timeouts]` and `[[service]]` are those services (the file follows
    /// them); a file that changes them is refused with a pointer to the
    /// active, where they are changed.
    fn standby_refuses(&self, new: &Loaded) -> Option<String> {
        let f = self.peer_services_held()?;
        (new.fingerprint != f).then(|| {
            format!(
                "this node stands by and runs the active's services (fingerprint {}, replicated over sync): change them on the active (node {}), they reach this node from there",
                fingerprint_hex(f),
                self.peer_id
            )
        })
    }

    /// What of a new configuration this daemon, as it was started, could
    /// not carry out (the plan refuses the rest).
    fn cannot_apply(&self, new: &Loaded) -> Option<String> {
        if !new.targets.is_empty() && self.probe_sock.is_none() {
            return Some(
                "service.sip_options: SIP OPTIONS probes where there were none need the probe socket opened at start-up (restart to apply, after a switchover if it is active)"
                    .into(),
            );
        }
        None
    }

    /// A key rotation's step on this node's side (the kernel's sender
    /// entries are [`sender_changes`](crate::reload::sender_changes)'):
    /// heartbeats and echoes are sent under the new current director key
    /// from the next one on, and the next sync handshakes take the new
    /// keys (the session in progress goes on under its own keys).
    fn apply_keys(&mut self, new: &crate::config::Config) {
        let (old_hb, new_hb) = (&self.cfg.heartbeat, &new.heartbeat);
        if old_hb.key.secret != new_hb.key.secret {
            self.sender.set_key(tandem_dataplane::common::heartbeat::Key::from_bytes(&new_hb.key));
        }
        if let (Some(sy), Some(sc)) = (self.sync.as_mut(), new.sync.as_ref())
            && self.cfg.sync.as_ref().is_some_and(|o| o.key != sc.key || o.next_key != sc.next_key)
        {
            sy.set_keys(sc.keys());
        }
        if old_hb.key != new_hb.key || old_hb.next_key != new_hb.next_key {
            tracing::info!(
                next_key = new_hb.next_key.is_some(),
                "reload: heartbeat keys changed (sent under the current key, the peer's taken under the current or the next)"
            );
        }
    }

    /// Applies a configuration the plan accepted: the daemon's view
    /// becomes the new configuration, the heartbeat senders and timeouts
    /// are written, and the services' kernel writes are queued
    /// ([`super::writes`]); the errors of what failed (each naming what
    /// it concerns, each logged once).
    fn apply_config(&mut self, new: Loaded) -> Vec<String> {
        use crate::reload::{Places, ivr_slots, sender_changes, service_writes};
        let mut errors = Vec::new();
        let places = Places::between(&self.cfg, &new.cfg);
        let old_eff =
            crate::pool::effective(&self.services, &self.ivr_slots, &self.pool, &self.sip_down, &self.neigh.table);
        let senders = sender_changes(&self.senders, &new.senders);
        for n in senders.forget {
            if let Err(e) = self.dp.remove_heartbeat_node(n) {
                errors.push(format!("heartbeat sender {n}: forgetting it: {e}"));
            }
        }
        for s in &senders.declare {
            if let Err(e) = self.dp.add_heartbeat_sender(s) {
                errors.push(format!("heartbeat sender {} at {}: {e}", s.node_id, s.addr));
            }
        }
        for s in &senders.rekey {
            if let Err(e) = self.dp.rekey_heartbeat_sender(s) {
                errors.push(format!("heartbeat sender {} at {}: its new keys: {e}", s.node_id, s.addr));
            }
        }
        self.apply_keys(&new.cfg);
        if new.cfg.timeouts != self.cfg.timeouts
            && let Err(e) = self.dp.set_settings(&new.cfg.timeouts.settings())
        {
            errors.push(format!("timeouts: writing them to the dataplane: {e}"));
        }
        let had_ivrs = !self.ivr_slots.is_empty();
        let held = self.writes.advertised(self.fingerprint);
        self.ivr_slots = ivr_slots(&new.cfg);
        self.pool.set_nodes(self.ivr_slots.keys().copied());
        self.sip_down = places.remap(&self.sip_down);
        let mut probes = crate::sipprobe::ProbeSet::new(new.targets, Instant::now());
        probes.carry_from(&self.probes, |p| places.get(p));
        self.probes = probes;
        self.services = new.services;
        self.neigh.want(crate::neigh::unresolved(&self.services));
        self.senders = new.senders;
        self.cfg = new.cfg;
        self.fingerprint = new.fingerprint;
        self.services_text = new.services_text;
        self.check_fingerprints();
        let new_eff =
            crate::pool::effective(&self.services, &self.ivr_slots, &self.pool, &self.sip_down, &self.neigh.table);
        let (removed, written) = service_writes(&old_eff, &new_eff);
        // The kernel writes are made a few per turn (`writes`).
        let written = written.into_iter().map(|i| new_eff[i].key()).collect();
        self.writes.queue(held, removed, written);
        if !had_ivrs && !self.ivr_slots.is_empty() {
            let at = Instant::now() + self.cfg.heartbeat.interval;
            if let Err(e) = self.ring.arm_timeout(Token::PoolScan, at) {
                errors.push(format!("the IVR pool scan: {e}"));
            }
        }
        for e in &errors {
            tracing::error!("reload: {e}");
        }
        errors
    }
}
