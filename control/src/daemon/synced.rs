//! The loop's side of state sync: the kernel's connection-table and
//! Call-ID rings read in bounded chunks (heartbeats between them) and
//! turned into records ([`crate::sync::apply`]) for the publisher; what a
//! subscriber receives written into the kernel; the sync runtime's
//! readiness, timer and events.
//!
//! What to send and when is the sync sessions'; translation is
//! [`crate::sync::apply`]'s.

use std::{
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use super::{Daemon, Event, token::Token};
use crate::sync::{Applied, apply::ApplyCount};
use anyhow::Result;

impl Daemon {
    /// The connection ring: in bounded chunks, heartbeats between them (a
    /// burst of new flows must not delay them).
    pub(super) fn on_flow_ring(&mut self) -> Result<()> {
        let publishing = self.sync.as_ref().is_some_and(|s| s.is_publishing());
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(5) {
            let mut evs = Vec::with_capacity(256);
            if let Some(fe) = self.flow_events.as_mut() {
                while evs.len() < 256
                    && let Some(e) = fe.next_change()
                {
                    evs.push(e);
                }
            }
            if publishing {
                let now = Instant::now();
                for e in &evs {
                    if let Some(r) = self.translator.flow_record(&self.dp, e)
                        && let Some(sy) = self.sync.as_mut()
                    {
                        sy.record(r, now);
                    }
                }
            }
            self.heartbeat_if_due();
            if evs.len() < 256 {
                break;
            }
        }
        if let Some(f) = &self.flow_events {
            self.ring
                .poll(Token::FlowRing, f.as_raw_fd(), libc::POLLIN as u32)?;
        }
        Ok(())
    }

    pub(super) fn on_call_ring(&mut self) -> Result<()> {
        let mut evs = Vec::new();
        if let Some(ce) = self.call_events.as_mut() {
            while let Some(e) = ce.next_change() {
                evs.push(e);
                if evs.len() >= 16_384 {
                    break;
                }
            }
        }
        if self.sync.as_ref().is_some_and(|s| s.is_publishing()) {
            let now = Instant::now();
            for e in evs {
                if let Some(r) = self.translator.sip_call_record(&self.dp, e)
                    && let Some(sy) = self.sync.as_mut()
                {
                    sy.record(r, now);
                }
            }
        }
        if let Some(c) = &self.call_events {
            self.ring
                .poll(Token::CallRing, c.as_raw_fd(), libc::POLLIN as u32)?;
        }
        Ok(())
    }

    pub(super) fn on_sync_readable(&mut self) {
        self.sync_polled = None;
        let applied = match self.sync.as_mut() {
            Some(sy) => sy.on_readable(Instant::now()),
            None => Vec::new(),
        };
        if !applied.is_empty() {
            self.apply_synced(applied);
        }
    }

    /// An unauthenticated sync connection is ready (its handshake).
    pub(super) fn on_sync_pending(&mut self, slot: usize) {
        if let Some(sy) = self.sync.as_mut() {
            *sy.pending_polled(slot) = None;
            sy.on_pending_ready(slot, Instant::now());
        }
    }

    /// After every turn of the loop: lets sync send what is due, reports
    /// its connection changes and re-arms its poll and timer.
    pub(super) fn sync_turn(&mut self) -> Result<()> {
        let Some(sy) = self.sync.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        sy.handle_timeout(now);
        for id in sy.linger_ended_calls(now) {
            crate::sync::apply::remove_ended_sip_call(&mut self.dp, &id);
        }
        let Some(sy) = self.sync.as_mut() else {
            return Ok(());
        };
        sy.flush(now);
        let events = sy.take_events();
        let want = sy.conn_poll();
        let at = sy.poll_timeout();
        for e in events {
            self.mark(match e {
                crate::sync::runtime::Event::Connected { peer, dialed } => Event::SyncConnected {
                    peer: peer.to_string(),
                    dialed,
                },
                crate::sync::runtime::Event::Closed { peer, why } => Event::SyncClosed {
                    peer: peer.to_string(),
                    why,
                },
                crate::sync::runtime::Event::InSync => Event::SyncInSync,
            });
        }
        let polled = want.map(|(id, _, ev)| (id, ev));
        if polled != self.sync_polled || (polled.is_some() && !self.ring.is_armed(Token::SyncConn))
        {
            self.ring.cancel(Token::SyncConn)?;
            if let Some((_, fd, ev)) = want {
                self.ring.poll(Token::SyncConn, fd, ev)?;
            }
            self.sync_polled = polled;
        }
        // Each unauthenticated connection's own poll, re-armed when its
        // slot holds another connection or wants other events.
        if let Some(sy) = self.sync.as_mut() {
            for slot in 0..crate::sync::runtime::MAX_PENDING {
                let want = sy.pending_poll(slot);
                let polled = want.map(|(id, _, ev)| (id, ev));
                let token = Token::SyncPending(slot);
                if polled != *sy.pending_polled(slot)
                    || (polled.is_some() && !self.ring.is_armed(token))
                {
                    self.ring.cancel(token)?;
                    if let Some((_, fd, ev)) = want {
                        self.ring.poll(token, fd, ev)?;
                    }
                    *sy.pending_polled(slot) = polled;
                }
            }
        }
        self.ring
            .rearm_if_moved(Token::SyncTimer, at, &mut self.sync_timer_at)?;
        self.update_state_held();
        Ok(())
    }

    /// Writes what the subscriber received into the kernel's tables.
    fn apply_synced(&mut self, applied: Vec<Applied>) {
        let services = applied.iter().any(|a| matches!(a.record, crate::sync::Record::ServicesPart(_)));
        // The active's services, read off the loop: flows of a service
        // new here are refused until it is applied (counted below).
        if services {
            self.services_from_peer();
        }
        let mut count = ApplyCount::default();
        for (i, a) in applied.iter().enumerate() {
            if i % 64 == 63 {
                self.heartbeat_if_due();
            }
            self.translator.apply(&mut self.dp, a, &mut count);
        }
        if let Some(sy) = self.sync.as_mut() {
            sy.applied += count.ok;
            if count.refused > 0 && sy.kernel_errors == 0 {
                tracing::warn!(
                    "sync: {} flows name a service or real server this node does not have",
                    count.refused
                );
            }
            sy.kernel_errors += count.refused;
        }
    }
}
