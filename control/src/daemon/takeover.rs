//! The pair's actions and their effects on this node: taking the VIPs
//! (dataplane ownership, the address on `lo` through the worker, the
//! gratuitous ARP burst), starting the spans with the synced calls
//! expected, releasing all of it on demotion; heartbeats sent on time;
//! the witness probes a takeover waits for.
//!
//! The decisions are the pair state machine's ([`crate::pair`]); this
//! module carries them out and reports what it did to the timeline.

use std::{
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use anyhow::Result;
use tandem_dataplane::common::node::NodeState;

use super::{Daemon, Event, mono_ns, token::Token};
use crate::pair::{Action, Event as PairEvent};

impl Daemon {
    /// Carries out what the pair state machine asks for.
    pub(super) fn apply_actions(&mut self) -> Result<()> {
        while let Some(a) = self.pair.poll_action() {
            match a {
                Action::StateChanged { from, to, epoch } => self.on_state_changed(from, to, epoch),
                Action::BecomeActive { epoch } => self.become_active(epoch)?,
                Action::BecomeStandby => self.become_standby()?,
                Action::SendGarp => {
                    for v in &self.vips {
                        v.garp.send_garp()?;
                    }
                    self.mark(Event::GarpResent);
                }
                Action::ProbeWitness => self.probe_witness()?,
            }
        }
        Ok(())
    }

    fn on_state_changed(&mut self, from: NodeState, to: NodeState, epoch: u64) {
        self.state_since = Instant::now();
        let peer_heard = if to == NodeState::Takeover {
            // What the kernel last recorded of the peer, per path.
            let now_ns = mono_ns();
            self.dp
                .heartbeat_records()
                .iter()
                .filter(|r| r.node_id == self.peer_id)
                .map(|r| (r.path_ifindex, now_ns.saturating_sub(r.last_seen_ns) / 1000))
                .collect()
        } else {
            Vec::new()
        };
        self.mark(Event::StateChanged { from: from.name().into(), to: to.name().into(), epoch, peer_heard });
        if from == NodeState::Takeover && to == NodeState::Fault {
            // Isolated: the witness did not answer in time.
            self.witness_ok = false;
            self.mark(Event::WitnessUnreachable);
        }
        if let Some(sy) = self.sync.as_mut() {
            if to == NodeState::Active {
                sy.become_publisher(epoch, Instant::now());
            } else if to != NodeState::Takeover {
                sy.become_subscriber(epoch, Instant::now());
            }
        }
    }

    fn become_active(&mut self, epoch: u64) -> Result<()> {
        // The dataplane owns the VIP and the first GARP leaves; the
        // address on lo follows from the worker thread.
        let t = Instant::now();
        for i in 0..self.vips.len() {
            let (addr, mac) = (self.vips[i].addr, self.vips[i].mac);
            self.dp.set_vip_owned(addr, mac, true)?;
            self.vips[i].garp.send_garp()?;
        }
        for v in &self.vips {
            self.addr_worker.request(crate::addrworker::Op::Add, &self.lo, v.addr, 32);
        }
        self.garp_left = self.vips.iter().map(|v| v.garp_count).max().unwrap_or(1).saturating_sub(1);
        if self.garp_left > 0 {
            let at = Instant::now() + self.garp_gap();
            self.ring.rearm(Token::Garp, at)?;
        }
        self.mark(Event::TakeoverDone { epoch, micros: t.elapsed().as_micros() as u64 });
        if !self.cards.is_empty() {
            self.start_spans()?;
        }
        // Tell the peer at once.
        self.send_heartbeats();
        Ok(())
    }

    fn become_standby(&mut self) -> Result<()> {
        // Spans first: the peer must find the trunk free.
        for c in self.cards.iter_mut() {
            if let Err(e) = c.shutdown_spans() {
                tracing::error!("card {}: {e}", c.root().display());
            }
        }
        if !self.cards.is_empty() {
            self.mark(Event::SpansShutDown);
        }
        for i in 0..self.vips.len() {
            let (addr, mac) = (self.vips[i].addr, self.vips[i].mac);
            self.dp.set_vip_owned(addr, mac, false)?;
            self.addr_worker.request(crate::addrworker::Op::Remove, &self.lo, addr, 32);
        }
        self.garp_left = 0;
        self.mark(Event::VipsReleased);
        // Ready the shut-down spans for a fast takeover, after the release
        // so that it does not delay it.
        for c in self.cards.iter_mut() {
            if let Err(e) = c.arm() {
                tracing::error!("card {}: {e}", c.root().display());
            }
        }
        self.send_heartbeats();
        Ok(())
    }

    /// Spacing of the gratuitous ARPs of a takeover burst.
    fn garp_gap(&self) -> Duration {
        self.vips.first().map_or(Duration::from_millis(10), |v| v.garp_interval)
    }

    pub(super) fn on_garp(&mut self) -> Result<()> {
        if self.pair.state() == NodeState::Active && self.garp_left > 0 {
            for v in &self.vips {
                v.garp.send_garp()?;
            }
            self.garp_left -= 1;
            if self.garp_left > 0 {
                let at = Instant::now() + self.garp_gap();
                self.ring.arm_timeout(Token::Garp, at)?;
            }
        }
        Ok(())
    }

    /// A probe the pair asked for: a takeover waits for its answer (the
    /// pair decides whether an answer is fresh, [`crate::pair`]).
    fn probe_witness(&mut self) -> Result<()> {
        let now = Instant::now();
        match self.witness.as_mut() {
            Some(w) => {
                w.send()?;
                let fd = w.as_raw_fd();
                self.mark(Event::WitnessProbing);
                if !self.ring.is_armed(Token::WitnessReply) {
                    self.ring.poll(Token::WitnessReply, fd, libc::POLLIN as u32)?;
                }
            }
            None => self.pair.handle(PairEvent::Witness { reachable: true }, now),
        }
        Ok(())
    }

    /// Every answer goes to the pair with its probe's send time.
    pub(super) fn on_witness_reply(&mut self) -> Result<()> {
        if let Some(sent_at) = self.witness.as_mut().and_then(|w| w.check_reply()) {
            self.witness_ok = true;
            if self.pair.state() == NodeState::Takeover {
                self.mark(Event::WitnessAnswered);
            }
            // Every input makes the machine re-apply its rules to its view
            // of the peer, which the loop refreshes only at deadlines: read
            // the kernel's heartbeat records first, or a standby would
            // judge a live peer by a stale view and take over (seen: a
            // takeover with the peer heard 0.1 ms before).
            self.refresh();
            self.pair.handle(PairEvent::WitnessAnswered { sent_at }, Instant::now());
        }
        if let Some(w) = &self.witness {
            self.ring.poll(Token::WitnessReply, w.as_raw_fd(), libc::POLLIN as u32)?;
        }
        Ok(())
    }

    /// Probe while a takeover may come (not while active or in
    /// maintenance): the answers let it skip a round trip.
    pub(super) fn on_witness_tick(&mut self) -> Result<()> {
        let state = self.pair.state();
        if !matches!(state, NodeState::Active | NodeState::Maintenance)
            && let Some(w) = self.witness.as_mut()
            && let Err(e) = w.send()
        {
            tracing::debug!("witness {}: {e}", w.addr());
        }
        if let Some(wc) = &self.cfg.witness {
            let at = Instant::now() + wc.probe_interval;
            self.ring.arm_timeout(Token::WitnessTick, at)?;
        }
        Ok(())
    }

    /// Sends the heartbeats if their time has come (also from inside long
    /// work, so that a burst cannot delay them past the peer's deadline).
    pub(super) fn heartbeat_if_due(&mut self) {
        let now = Instant::now();
        if now < self.next_hb {
            return;
        }
        self.send_heartbeats();
        self.next_hb += self.cfg.heartbeat.interval;
        if self.next_hb < now {
            self.next_hb = now + self.cfg.heartbeat.interval;
        }
    }

    pub(super) fn send_heartbeats(&mut self) {
        let (s, e, p) = (self.pair.state(), self.pair.epoch(), self.pair.priority());
        self.sender.send_all(s, e, p, (0, 0), mono_ns());
    }
}
