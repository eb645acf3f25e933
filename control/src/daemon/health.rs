//! Health into the deciders and their verdicts into the dataplane: the
//! kernel's heartbeat records fed once each to the pair state machine
//! (directors) and the IVR pool (IVRs); local faults (links, cards)
//! told to the pair; IVR heartbeat health and SIP OPTIONS answers
//! merged ([`crate::pool::effective`]) into the services the dataplane
//! schedules on; the SIP probes sent and read.
//!
//! Decisions are the pair's, the pool's and the probe set's; this module
//! moves their inputs and outputs.

use std::{
    net::{IpAddr, SocketAddr},
    time::Instant,
};

use anyhow::Result;
use std::os::fd::AsRawFd;
use tandem_dataplane::{HeartbeatRecord, ServiceFlag, common::heartbeat::Kind};

use super::{Daemon, Event, token::Token};

/// How long the two nodes' services may differ before it is a mismatch
/// (the reload answer's wait for the standby, [`super::reload::STANDBY_HOLD_WAIT`]).
pub(super) const MISMATCH_GRACE: std::time::Duration = super::reload::STANDBY_HOLD_WAIT;
use crate::pair::{Event as PairEvent, local_fault};

impl Daemon {
    /// Feeds the kernel's heartbeat records that are newer than what the
    /// state machine has seen.
    pub(super) fn refresh(&mut self) {
        for r in self.dp.heartbeat_records() {
            self.feed_record(&r);
        }
        self.refresh_bad_mac();
        self.refresh_echoes();
        self.refreshed_at = Instant::now();
    }

    /// Reads the kernel's heartbeat records if the last read is older
    /// than half a heartbeat interval: after a long piece of work (a
    /// reload writing many services, a stall of this process) the pair
    /// machine must not judge the peer by a view as old as the work —
    /// any event it handles applies its rules, and a standby would take
    /// over from a peer whose heartbeats sit unread in the kernel (seen:
    /// a takeover 0.1 ms before "peer heard active", after a 60 ms
    /// reload turn).
    pub(super) fn refresh_if_stale(&mut self) {
        if self.refreshed_at.elapsed() > self.cfg.heartbeat.interval / 2 {
            self.refresh();
        }
    }

    /// Feeds one record of the kernel's heartbeat ring, as the ring
    /// (`HeartbeatEvents::next`) hands it out; one of a sender kind this
    /// version does not know is skipped.
    pub(super) fn feed_record(&mut self, r: &HeartbeatRecord) {
        // Each kernel record is fed once: a stale record fed again would
        // look like a new heartbeat to the machines.
        let last = self.seen.entry((r.node_id, r.path_ifindex)).or_insert(0);
        if r.last_seen_ns <= *last {
            return;
        }
        if r.kind == Kind::Ivr {
            *last = r.last_seen_ns;
            let mut changes = Vec::new();
            self.pool.heard(
                r.node_id,
                crate::clock::instant_of(r.last_seen_ns),
                r.load,
                &mut changes,
            );
            self.apply_pool(changes);
            return;
        }
        if r.node_id != self.peer_id {
            return;
        }
        let Some(path) = self.paths.get(&r.path_ifindex).copied() else {
            return;
        };
        self.seen
            .insert((r.node_id, r.path_ifindex), r.last_seen_ns);
        let Some(state) = r.state else {
            return;
        };
        let ev = PairEvent::Heartbeat {
            path,
            from: r.node_id,
            state,
            epoch: r.epoch,
            priority: r.priority,
        };
        self.pair
            .handle(ev, crate::clock::instant_of(r.last_seen_ns));
        // After the machine took it: the peer is alive now.
        self.peer_fingerprint_heard((u64::from(r.load.0) << 32) | u64::from(r.load.1));
    }

    /// The fingerprint the peer's heartbeats carry (0: an older peer that
    /// sends none).
    fn peer_fingerprint_heard(&mut self, f: u64) {
        if f == 0 || self.peer_fingerprint == Some(f) {
            return;
        }
        self.peer_fingerprint = Some(f);
        self.check_fingerprints();
        if let Err(e) = self.standby_runs(f) {
            tracing::error!("reload: answering the clients whose change the standby now runs: {e}");
        }
    }

    /// The peer's fingerprint while the peer is alive (a dead peer's last
    /// one says nothing of what would dispatch).
    pub(super) fn live_peer_fingerprint(&self) -> Option<u64> {
        let alive = self
            .pair
            .peer()
            .is_some_and(|p| p.alive(Instant::now(), self.cfg.heartbeat.deadline()));
        self.peer_fingerprint.filter(|_| alive)
    }

    /// Records a change of agreement between this node's services and
    /// the live peer's, once per change. A difference is a mismatch once
    /// it has lasted [`MISMATCH_GRACE`]: every change made on the active
    /// differs from the standby's for the milliseconds it takes to reach
    /// it, which is replication, not drift (called from the heartbeat
    /// timer too, so that a lasting one is raised).
    pub(super) fn check_fingerprints(&mut self) {
        let Some(peer) = self.live_peer_fingerprint() else {
            return;
        };
        let now = Instant::now();
        let differs = peer != self.fingerprint;
        let since = if differs { *self.mismatch_since.get_or_insert(now) } else { now };
        if !differs {
            self.mismatch_since = None;
        }
        let mismatch = differs && now.saturating_duration_since(since) >= MISMATCH_GRACE;
        if mismatch != self.config_mismatch {
            self.config_mismatch = mismatch;
            self.mark(Event::ConfigMismatch {
                on: mismatch,
                here: crate::config::fingerprint_hex(self.fingerprint),
                peer: crate::config::fingerprint_hex(peer),
            });
        }
    }

    /// Tells the state machine whether this node has a local fault (a
    /// service link down, a card alarm), on changes only.
    pub(super) fn update_fault(&mut self) {
        // The state machine decides a local fault on what it knows of the
        // peer: read the kernel's heartbeat records first (an active node
        // otherwise only re-reads them at its deadlines).
        self.refresh();
        let now = Instant::now();
        match (
            local_fault(self.link_fault, self.card_fault.is_faulty()),
            self.pair.local_fault(),
        ) {
            (Some(k), None) => self.pair.handle(PairEvent::LocalFault(k), now),
            (None, Some(_)) => self.pair.handle(PairEvent::LocalFaultCleared, now),
            _ => {}
        }
    }

    /// Neighbour notifications: the services whose real servers' MACs
    /// changed are written again; each change is recorded.
    pub(super) fn on_neigh(&mut self) -> Result<()> {
        let changes = self.neigh.read_changes();
        let mut touched = Vec::new();
        for c in &changes {
            let show = |m: [u8; 6]| tandem_dataplane::fmt_mac(&m);
            self.mark(Event::RealMac {
                address: c.addr,
                mac: c.after.map(show),
                previous: c.before.map(show),
            });
            for (si, s) in self.services.iter().enumerate() {
                if s.reals.iter().any(|r| r.addr == c.addr && r.mac == [0; 6]) && !touched.contains(&si) {
                    touched.push(si);
                }
            }
        }
        if !touched.is_empty() {
            self.push_services(touched);
        }
        self.ring
            .poll(Token::Neigh, self.neigh.as_raw_fd(), libc::POLLIN as u32)?;
        Ok(())
    }

    /// IVR records: a returning server pushes no ring event, so the pool
    /// is also scanned periodically.
    pub(super) fn on_pool_scan(&mut self) -> Result<()> {
        self.refresh();
        let mut changes = Vec::new();
        self.pool.handle_timeout(Instant::now(), &mut changes);
        self.apply_pool(changes);
        if !self.ivr_slots.is_empty() {
            let scan = Instant::now() + self.cfg.heartbeat.deadline();
            let at = self.pool.poll_timeout().map_or(scan, |t| t.min(scan));
            self.ring
                .arm_timeout(Token::PoolScan, at.max(Instant::now()))?;
        }
        Ok(())
    }

    /// Applies IVR health and load changes to the dataplane.
    fn apply_pool(&mut self, changes: Vec<crate::pool::Change>) {
        let mut touched = Vec::new();
        for c in changes {
            match c {
                crate::pool::Change::Health { node_id, alive } => {
                    self.mark(Event::IvrHealth { node_id, alive });
                    for (si, _) in self.ivr_slots.get(&node_id).cloned().unwrap_or_default() {
                        if !touched.contains(&si) {
                            touched.push(si);
                        }
                    }
                }
                crate::pool::Change::Load {
                    node_id,
                    active,
                    capacity,
                } => {
                    for (si, ri) in self.ivr_slots.get(&node_id).cloned().unwrap_or_default() {
                        let s = &self.services[si];
                        if !s.has_flag(ServiceFlag::ReportedLoad) {
                            continue;
                        }
                        if let Some(img) = self.dp.service(&s.key())
                            && let Some(slot) = img.slot_of(s.reals[ri].addr, s.reals[ri].port)
                        {
                            let id = img.service.id;
                            let name = s.name();
                            if let Err(e) = self.dp.set_real_load(
                                id,
                                slot,
                                tandem_dataplane::common::RealLoad { active, capacity },
                            ) {
                                tracing::error!(
                                    "service {name}: real server slot {slot}: writing its reported load: {e}"
                                );
                            }
                        }
                    }
                }
            }
        }
        if !touched.is_empty() {
            self.push_services(touched);
        }
    }

    /// Writes these services, with health applied, to the dataplane.
    pub(super) fn push_services(&mut self, touched: Vec<usize>) {
        let eff =
            crate::pool::effective(&self.services, &self.ivr_slots, &self.pool, &self.sip_down, &self.neigh.table);
        self.translator.invalidate();
        for si in touched {
            if let Err(e) = self.dp.set_service(&eff[si]) {
                tracing::error!("service {}: {e}", eff[si].name());
            }
        }
    }

    /// Sends the SIP OPTIONS probes that are due, counts the timeouts, and
    /// re-arms the probe timer.
    pub(super) fn probe_turn(&mut self) -> Result<()> {
        if self.probes.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let changes = self.probes.expire(now);
        self.apply_sip(changes);
        let port = self
            .probe_sock
            .as_ref()
            .and_then(|s| s.local_addr().ok())
            .map_or(0, |a| a.port());
        for r in self.probes.due(now) {
            let t = self.probes.targets()[r.target].clone();
            let msg =
                crate::sipprobe::options_request(&t, self.probe_src, port, r.seq, self.cfg.node.id);
            let sent = if t.dr {
                match self.vips.first() {
                    Some(v) => {
                        let mut f = tandem_dataplane::packet::FrameSpec::udp(
                            IpAddr::V4(self.probe_src),
                            port,
                            IpAddr::V4(t.vip),
                            t.vport,
                            msg.as_bytes(),
                        );
                        f.dst_mac = match t.mac {
                            [0, 0, 0, 0, 0, 0] => self.neigh.table.mac(IpAddr::V4(t.addr)).unwrap_or_default(),
                            m => m,
                        };
                        f.src_mac = v.mac;
                        if f.dst_mac == [0; 6] {
                            Err(format!("no MAC known for {} yet", t.addr))
                        } else {
                            v.garp.send_frame(&f.build()).map_err(|e| e.to_string())
                        }
                    }
                    None => Err("no VIP interface".into()),
                }
            } else {
                let dst = SocketAddr::new(
                    IpAddr::V4(t.addr),
                    if t.port == 0 { t.vport } else { t.port },
                );
                match &self.probe_sock {
                    Some(s) => s
                        .send_to(msg.as_bytes(), dst)
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    None => Err("no probe socket".into()),
                }
            };
            if let Err(e) = sent {
                // Counted as unanswered by the probe set; not an error of
                // the daemon's.
                tracing::debug!("SIP probe to {}: {e}", t.addr);
            }
        }
        let at = self.probes.poll_timeout();
        self.ring
            .rearm_if_moved(Token::SipTimer, at, &mut self.probe_timer_at)?;
        Ok(())
    }

    /// Reads the answers to the SIP probes.
    pub(super) fn probe_replies(&mut self) {
        let mut buf = [0u8; 4096];
        let mut changes = Vec::new();
        if let Some(sock) = &self.probe_sock {
            for _ in 0..1024 {
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        if let Some((seq, status)) =
                            crate::sipprobe::parse_response(&buf[..n], self.cfg.node.id)
                        {
                            changes.extend(self.probes.reply(seq, status));
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        self.apply_sip(changes);
    }

    fn apply_sip(&mut self, changes: Vec<crate::sipprobe::Change>) {
        let mut touched = Vec::new();
        for c in changes {
            let real = self.cfg.services[c.service].reals[c.real].address;
            if c.up {
                self.sip_down.remove(&(c.service, c.real));
            } else {
                self.sip_down.insert((c.service, c.real));
            }
            self.mark(Event::SipOptions {
                real,
                answered: c.up,
            });
            if !touched.contains(&c.service) {
                touched.push(c.service);
            }
        }
        if !touched.is_empty() {
            self.push_services(touched);
        }
    }
}
