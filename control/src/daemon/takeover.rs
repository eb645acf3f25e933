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
                .heartbeat_peers()
                .iter()
                .filter(|p| p.node_id == self.peer_id)
                .map(|p| (p.ifindex, now_ns.saturating_sub(p.last_seen_ns) / 1000))
                .collect()
        } else {
            Vec::new()
        };
        self.mark(Event::StateChanged { from: from.name().into(), to: to.name().into(), epoch, peer_heard });
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

    /// The witness must have answered a probe sent after the peer missed
    /// heartbeats: then our service network worked while the peer was
    /// silent on it. The standby's continuous probes usually satisfy this
    /// already.
    fn probe_witness(&mut self) -> Result<()> {
        let now = Instant::now();
        let hb = &self.cfg.heartbeat;
        let need = self
            .pair
            .peer()
            .and_then(|p| p.paths.iter().filter_map(|pp| pp.last_seen).max())
            .map_or(now, |t| t + hb.interval * hb.multiplier.saturating_sub(1));
        match self.witness.as_mut() {
            Some(_) if self.witness_answered.is_some_and(|t| t >= need) => {
                self.witness_ok = true;
                self.mark(Event::WitnessAnswered { already: true });
                self.pair.handle(PairEvent::Witness { reachable: true }, now);
            }
            Some(w) => {
                w.send()?;
                let fd = w.as_raw_fd();
                self.witness_need = Some(need);
                self.mark(Event::WitnessProbing);
                if !self.ring.is_armed(Token::WitnessReply) {
                    self.ring.poll(Token::WitnessReply, fd, libc::POLLIN as u32)?;
                }
                let wait = (self.cfg.heartbeat.interval * 20).max(Duration::from_millis(20));
                self.ring.rearm(Token::WitnessDeadline, now + wait)?;
            }
            None => self.pair.handle(PairEvent::Witness { reachable: true }, now),
        }
        Ok(())
    }

    pub(super) fn on_witness_reply(&mut self) -> Result<()> {
        let answered = self.witness.as_mut().and_then(|w| w.check_reply());
        if let Some(t) = answered {
            self.witness_ok = true;
            self.witness_answered = Some(self.witness_answered.map_or(t, |a| a.max(t)));
            if self.witness_need.is_some_and(|need| t >= need) {
                self.witness_need = None;
                self.ring.cancel(Token::WitnessDeadline)?;
                self.mark(Event::WitnessAnswered { already: false });
                self.pair.handle(PairEvent::Witness { reachable: true }, Instant::now());
            }
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

    pub(super) fn on_witness_deadline(&mut self) {
        if self.witness_need.is_some() {
            self.witness_need = None;
            self.witness_ok = false;
            self.mark(Event::WitnessUnreachable);
            self.pair.handle(PairEvent::Witness { reachable: false }, Instant::now());
        }
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
