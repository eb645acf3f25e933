//! The pair's actions and their effects on this node: taking the VIPs
//! (dataplane ownership, the address on `lo` through the worker, the
//! gratuitous ARP burst), starting the spans with the synced calls
//! expected, releasing all of it on demotion; heartbeats sent on time;
//! the witness probes a takeover waits for.
//!
//! The decisions are the pair state machine's ([`crate::pair`]) and, for
//! each VIP's ownership and GARPs, its [`crate::vip::announce`] machine;
//! this module carries them out and reports what it did to the timeline.
//! Nothing on these paths ends the daemon: a node that fails a step while
//! it takes over is still the only director left. A failed step is
//! reported as a typed event naming what it concerns (the VIP and its
//! interface, the witness, the wait) with its errno, counted, and retried
//! where that can help (GARPs and ownership on the announcement's
//! schedule, the loop's waits on the next turn); the takeover goes on.

use std::{
    error::Error as StdError,
    io,
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use anyhow::Result;
use tandem_dataplane::common::node::NodeState;

use super::{Daemon, Event, OwnedVip, mono_ns, token::Token};
use crate::{
    events::TakeoverStep,
    pair::{Action, Event as PairEvent},
    vip::announce::Notice,
};

/// The errno an error carries somewhere in its chain of sources, if any.
fn errno_of(e: &(dyn StdError + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(n) = err
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(n);
        }
        cur = err.source();
    }
    None
}

/// The text of an errno, as `strerror` gives it.
fn errno_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

/// The event reporting what VIP `v`'s announcement noticed
/// (`own_error`: the dataplane's words for its last refusal).
fn notice_event(v: &OwnedVip, n: Notice, own_error: Option<&str>) -> Event {
    let (vip, interface) = (v.addr.into(), v.garp.interface().name.clone());
    match n {
        Notice::GarpFailing { errno, retrying } => Event::GarpFailed {
            vip,
            interface,
            errno,
            error: errno_text(errno),
            retrying,
        },
        Notice::GarpRecovered { failed } => Event::GarpRecovered {
            vip,
            interface,
            failed,
        },
        Notice::GarpGaveUp { failed } => Event::GarpGaveUp {
            vip,
            interface,
            failed,
        },
        Notice::OwnFailing { errno, retrying } => Event::TakeoverStepFailed {
            step: TakeoverStep::OwnVip,
            object: v.addr.to_string(),
            errno: (errno != 0).then_some(errno),
            error: own_error.map_or_else(|| errno_text(errno), str::to_string),
            retrying,
        },
        Notice::OwnRecovered { failed } => Event::TakeoverStepRecovered {
            step: TakeoverStep::OwnVip,
            object: v.addr.to_string(),
            failed,
        },
    }
}

impl Daemon {
    /// Carries out what the pair state machine asks for. Never fails:
    /// what fails inside is reported and the daemon goes on (the
    /// `Result` is the loop's calling convention).
    pub(super) fn apply_actions(&mut self) -> Result<()> {
        while let Some(a) = self.pair.poll_action() {
            match a {
                Action::StateChanged {
                    from,
                    to,
                    epoch,
                    reason,
                } => self.on_state_changed(from, to, epoch, reason.to_string()),
                Action::BecomeActive { epoch } => self.become_active(epoch),
                Action::BecomeStandby => self.become_standby(),
                Action::SendGarp => {
                    // A split brain healed in our favour: announce again.
                    let now = Instant::now();
                    for v in self.vips.iter_mut() {
                        v.garp
                            .announcement_mut()
                            .announce(now, v.garp_count, v.garp_interval);
                    }
                    self.announce_turn(now);
                    self.mark(Event::GarpResent);
                }
                Action::ProbeWitness => self.probe_witness(),
                Action::Held { hold, until } => {
                    let for_ms = until
                        .map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64);
                    self.mark(Event::Held {
                        hold: hold.to_string(),
                        for_ms,
                    });
                }
            }
        }
        self.rearm_lost_waits();
        Ok(())
    }

    fn on_state_changed(&mut self, from: NodeState, to: NodeState, epoch: u64, reason: String) {
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
        self.mark(Event::StateChanged {
            from: from.name().into(),
            to: to.name().into(),
            epoch,
            peer_heard,
            reason,
        });
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
        if to == NodeState::Active {
            self.publish_services();
        }
    }

    fn become_active(&mut self, epoch: u64) {
        // The dataplane owns the VIP and the first GARP leaves (or is
        // owed, if the queue refused it); the address on lo follows from
        // the worker thread.
        let t = Instant::now();
        for v in self.vips.iter_mut() {
            v.garp
                .announcement_mut()
                .take(t, v.garp_count, v.garp_interval);
        }
        self.announce_turn(t);
        for v in &self.vips {
            self.addr_worker
                .request(crate::addrworker::Op::Add, &self.lo, v.addr, 32);
        }
        if self.resuming.take().is_some() {
            // The predecessor's role, resumed: its VIPs, tables and flows are
            // in place; the standby gets the flows the tables hold.
            self.seed_sync_from_tables();
        } else {
            self.mark(Event::TakeoverDone {
                epoch,
                micros: t.elapsed().as_micros() as u64,
            });
        }
        if !self.cards.is_empty()
            && let Err(e) = self.start_spans()
        {
            // The cards were asked to start; only the wait for their
            // progress failed, which the next turn arms again.
            let errno = errno_of(e.as_ref());
            self.mark(Event::TakeoverStepFailed {
                step: TakeoverStep::StartSpans,
                object: "the cards".into(),
                errno,
                error: format!("{e:#}"),
                retrying: true,
            });
        }
        // Tell the peer at once.
        self.send_heartbeats();
    }

    fn become_standby(&mut self) {
        // Spans first: the peer must find the trunk free.
        for c in self.cards.iter_mut() {
            if let Err(e) = c.shutdown_spans() {
                tracing::error!("card {}: {e}", c.root().display());
            }
        }
        if !self.cards.is_empty() {
            self.mark(Event::SpansShutDown);
        }
        let mut failed = Vec::new();
        for v in self.vips.iter_mut() {
            v.garp.announcement_mut().stop();
            if let Err(e) = self.dp.set_vip_owned(v.addr, v.mac, false) {
                failed.push((v.addr, errno_of(&e), e.to_string()));
            }
            self.addr_worker
                .request(crate::addrworker::Op::Remove, &self.lo, v.addr, 32);
        }
        for (addr, errno, error) in failed {
            self.mark(Event::TakeoverStepFailed {
                step: TakeoverStep::ReleaseVip,
                object: addr.to_string(),
                errno,
                error,
                retrying: false,
            });
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
    }

    /// Does what the VIPs' announcements have due at `now` (dataplane
    /// ownership, GARPs), reports what they noticed and arms the GARP
    /// timer for the next thing due.
    fn announce_turn(&mut self, now: Instant) {
        let mut events = Vec::new();
        for v in self.vips.iter_mut() {
            let mut own_error = None;
            if v.garp.announcement().poll_own(now) {
                let outcome = self.dp.set_vip_owned(v.addr, v.mac, true).map_err(|e| {
                    own_error = Some(e.to_string());
                    errno_of(&e).unwrap_or(0)
                });
                v.garp.announcement_mut().handle_owned(outcome, now);
            }
            v.garp.announce_due(now);
            while let Some(n) = v.garp.announcement_mut().poll_notice() {
                events.push(notice_event(v, n, own_error.as_deref()));
            }
        }
        for e in events {
            self.mark(e);
        }
        // VIPs with something left to do.
        self.garp_left = self
            .vips
            .iter()
            .filter(|v| !v.garp.announcement().is_idle())
            .count() as u32;
        if let Some(at) = self.next_announcement() {
            let r = self.ring.rearm(Token::Garp, at.max(now));
            self.arm_failed(Token::Garp, r);
        }
    }

    /// When the VIPs' announcements have something due next.
    fn next_announcement(&self) -> Option<Instant> {
        self.vips
            .iter()
            .filter_map(|v| v.garp.announcement().poll_timeout())
            .min()
    }

    /// The GARP timer: the announcements' next step, while active.
    pub(super) fn on_garp(&mut self) -> Result<()> {
        if self.pair.state() == NodeState::Active {
            self.announce_turn(Instant::now());
        } else {
            for v in self.vips.iter_mut() {
                v.garp.announcement_mut().stop();
            }
            self.garp_left = 0;
        }
        Ok(())
    }

    /// Reports a wait of the loop that could not be armed (the next turn
    /// arms it again, [`Daemon::rearm_lost_waits`]).
    fn arm_failed(&mut self, token: Token, r: Result<(), crate::uring::ReactorError>) {
        if let Err(e) = r {
            self.mark(Event::TakeoverStepFailed {
                step: TakeoverStep::ArmWait,
                object: format!("{token:?}"),
                errno: errno_of(&e),
                error: e.to_string(),
                retrying: true,
            });
        }
    }

    /// Arms again, once per loop turn, the waits of these paths that a
    /// failure left unarmed: the GARP timer while an announcement has
    /// something due, the witness reply and tick, the cards' start
    /// progress. Failures here were reported when they first happened.
    fn rearm_lost_waits(&mut self) {
        let now = Instant::now();
        let mut r = Ok(());
        if !self.ring.is_armed(Token::Garp)
            && let Some(at) = self.next_announcement()
        {
            r = r.and(self.ring.arm_timeout(Token::Garp, at.max(now)));
        }
        if let Some(w) = &self.witness {
            if !self.ring.is_armed(Token::WitnessReply) {
                r = r.and(
                    self.ring
                        .poll(Token::WitnessReply, w.as_raw_fd(), libc::POLLIN as u32),
                );
            }
            if !self.ring.is_armed(Token::WitnessTick)
                && let Some(wc) = &self.cfg.witness
            {
                r = r.and(
                    self.ring
                        .arm_timeout(Token::WitnessTick, now + wc.probe_interval),
                );
            }
        }
        if !self.ring.is_armed(Token::CardsStart) && self.cards.iter().any(|c| c.is_starting()) {
            r = r.and(
                self.ring
                    .arm_timeout(Token::CardsStart, now + Duration::from_micros(500)),
            );
        }
        if let Err(e) = r {
            tracing::debug!("arming a lost wait again: {e}");
        }
    }

    /// A probe the pair asked for: a takeover waits for its answer (the
    /// pair decides whether an answer is fresh, [`crate::pair`]). A probe
    /// that cannot be sent is reported; the standby's periodic probes
    /// ([`Daemon::on_witness_tick`]) go on, and any of their answers counts.
    fn probe_witness(&mut self) {
        let now = Instant::now();
        match self.witness.as_mut() {
            Some(w) => {
                let (sent, addr, fd) = (w.send(), w.addr(), w.as_raw_fd());
                match sent {
                    Ok(_) => self.mark(Event::WitnessProbing),
                    Err(e) => self.mark(Event::TakeoverStepFailed {
                        step: TakeoverStep::WitnessProbe,
                        object: addr.to_string(),
                        errno: e.raw_os_error(),
                        error: e.to_string(),
                        retrying: true,
                    }),
                }
                if !self.ring.is_armed(Token::WitnessReply) {
                    let r = self.ring.poll(Token::WitnessReply, fd, libc::POLLIN as u32);
                    self.arm_failed(Token::WitnessReply, r);
                }
            }
            None => self
                .pair
                .handle(PairEvent::Witness { reachable: true }, now),
        }
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
            self.pair
                .handle(PairEvent::WitnessAnswered { sent_at }, Instant::now());
        }
        if let Some(fd) = self.witness.as_ref().map(|w| w.as_raw_fd())
            && !self.ring.is_armed(Token::WitnessReply)
        {
            let r = self.ring.poll(Token::WitnessReply, fd, libc::POLLIN as u32);
            self.arm_failed(Token::WitnessReply, r);
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
        if let Some(interval) = self.cfg.witness.as_ref().map(|wc| wc.probe_interval) {
            let r = self
                .ring
                .arm_timeout(Token::WitnessTick, Instant::now() + interval);
            self.arm_failed(Token::WitnessTick, r);
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
        self.send_echoes();
        self.next_hb += self.cfg.heartbeat.interval;
        if self.next_hb < now {
            self.next_hb = now + self.cfg.heartbeat.interval;
        }
    }

    pub(super) fn send_heartbeats(&mut self) {
        let (s, e, p) = (self.pair.state(), self.pair.epoch(), self.pair.priority());
        // A director's load fields carry its services' fingerprint: that
        // of the services in its kernel maps.
        let f = self.writes.advertised(self.fingerprint);
        self.sender.send_all(s, e, p, ((f >> 32) as u32, f as u32), mono_ns());
    }
}
