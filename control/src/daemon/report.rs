//! What the daemon reports: `tandemctl status/services/reals/sync/stats/
//! cards`, the admin socket's answers (switchover and maintenance go to
//! the pair state machine), the timeline's events, and the Prometheus
//! metrics. Everything is read from the subsystems and the kernel's
//! counters at the moment of the request; nothing here walks the
//! connection table (that would hold the loop for as long as a
//! million-entry walk takes: `conns` walks it a bounded slice per
//! answer, see `conns`). The `services` and `reals` views subtract the
//! baselines of `tandemctl zero` (`zero`); `metrics` never does.

use std::{collections::HashMap, time::Instant};

use tandem_dataplane::{
    RealState,
    common::{Forward, node::NodeState},
};

use super::{Daemon, mono_ns};
use crate::sync::apply::ip_of;
use crate::{admin, pair::Event as PairEvent};

impl Daemon {
    pub(super) fn sync_status(&self) -> admin::SyncReply {
        let Some(sy) = &self.sync else {
            return admin::SyncReply::default();
        };
        sy.status()
    }

    pub(super) fn status(&self) -> admin::StatusReply {
        let now = Instant::now();
        let deadline = self.cfg.heartbeat.deadline();
        let peer = self.pair.peer();
        let echo = self.echo_status(now);
        admin::StatusReply {
            node_id: self.cfg.node.id,
            node_name: self.cfg.node.name.clone(),
            state: self.pair.state().name().to_string(),
            epoch: self.pair.epoch(),
            priority: self.pair.priority(),
            preempt: self.cfg.node.preempt,
            maintenance: self.pair.state() == NodeState::Maintenance,
            state_ms: self.state_since.elapsed().as_millis() as u64,
            peer: peer.as_ref().map(|p| admin::PeerStatus {
                node_id: self.peer_id,
                state: if p.alive(now, deadline) {
                    p.state.name().to_string()
                } else {
                    "lost".into()
                },
                epoch: p.epoch,
                priority: p.priority,
            }),
            paths: self
                .cfg
                .heartbeat
                .paths
                .iter()
                .enumerate()
                .map(|(i, path)| admin::PathStatus {
                    name: path.name.clone(),
                    interface: path.interface.clone(),
                    up: peer
                        .as_ref()
                        .is_some_and(|p| p.heard_on(i as u8, now, deadline)),
                    last_heard_ms: peer
                        .as_ref()
                        .and_then(|p| p.paths.get(i).and_then(|pp| pp.last_seen))
                        .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                    bad_mac: self.live.bad_mac_alarm.contains(&(i as u8)),
                    echo: echo.get(i).map_or_else(|| "off".into(), |e| e.0.to_string()),
                    last_echo_ms: echo.get(i).and_then(|e| e.1),
                })
                .collect(),
            vips: self
                .vips
                .iter()
                .zip(&self.cfg.vips)
                .map(|(v, c)| {
                    let g = v.garp.announcement().stats();
                    admin::VipStatus {
                        address: v.addr,
                        interface: c.interface.clone(),
                        owned: self.pair.state() == NodeState::Active,
                        garp_sent: g.garp_sent,
                        garp_failed: g.garp_failed,
                        garp_retried: g.garp_retried,
                        garp_dropped: g.garp_dropped,
                        garp_last_errno: g.garp_last_errno,
                        own_failed: g.own_failed,
                    }
                })
                .collect(),
            witness: self.cfg.witness.as_ref().map(|w| admin::WitnessStatus {
                address: w.address,
                reachable: self.witness_ok,
            }),
            damping: admin::DampingStatus {
                flaps: self.pair.flaps(),
                hold_down_ms: self
                    .pair
                    .hold_down_until()
                    .filter(|t| *t > now)
                    .map(|t| t.saturating_duration_since(now).as_millis() as u64),
                switchover_hold: self.pair.switchover_hold().map(|h| match h {
                    None => admin::SwitchoverHold::UntilReleased,
                    Some(t) => admin::SwitchoverHold::ForMs(
                        t.saturating_duration_since(now).as_millis() as u64,
                    ),
                }),
                peer_state_held: self.pair.peer_state_held(),
            },
            dead_man: admin::DeadManStatus {
                budget_ms: self
                    .cfg
                    .heartbeat
                    .dead_man
                    .map_or(0, |d| d.as_millis() as u64),
                trips: self.live.trips,
                fenced: self.dp.dead_man().is_ok_and(|d| d.tripped_ns.is_some()),
            },
            peer_misconfigured: self.pair.peer_misconfigured(now),
            late_turns: self.live.late_turns,
            worst_turn_gap_us: self.live.worst_gap.as_micros() as u64,
            config_fingerprint: crate::config::fingerprint_hex(self.fingerprint),
            peer_config_fingerprint: self.live_peer_fingerprint().map(crate::config::fingerprint_hex),
            config_path: self.config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            startup: self.startup.report().cloned(),
            alarms: self.alarms(now),
        }
    }

    pub(super) fn services(&self) -> (Vec<admin::ServiceStatus>, Vec<admin::RealStatus>) {
        let mut services = Vec::new();
        let mut all_reals = Vec::new();
        let ivrs = self.ivr_index();
        // Active connections as the kernel counts them per real server
        // (IPVS's ActiveConn): one lookup each. Walking the connection
        // table here would hold the loop (and its heartbeats) for as long
        // as a million-entry walk takes.
        for img in self.dp.services() {
            let c = self.dp.service_counters(img.service.id).unwrap_or_default();
            let proto = if img.key.proto == tandem_dataplane::common::PROTO_TCP {
                "tcp"
            } else {
                "udp"
            };
            let vip = ip_of(&img.key.addr);
            let name = format!("{proto}/{vip}:{}", img.key.port);
            let sched = img.scheduler().map_or("?", |s| s.name());
            let mut reals = Vec::new();
            for (slot, id) in img.slot_ids.iter().enumerate() {
                let Some((addr, port)) = id else { continue };
                let r = &img.reals[slot];
                let rc = self
                    .dp
                    .real_counters(img.service.id, slot as u32)
                    .unwrap_or_default();
                let n = self
                    .dp
                    .active_conns(img.service.id, slot as u32)
                    .unwrap_or(0);
                let ivr = ivrs
                    .get(&(img.service.id, slot as u32))
                    .and_then(|n| self.pool.member(*n).copied());
                reals.push(admin::RealStatus {
                    service: name.clone(),
                    address: *addr,
                    port: *port,
                    weight: r.weight,
                    // A state byte this version does not know is not up.
                    state: img
                        .real_state(slot)
                        .unwrap_or(RealState::Down)
                        .name()
                        .into(),
                    health: match ivr {
                        Some(m) => if m.alive { "alive" } else { "dead" }.into(),
                        None => "unknown".into(),
                    },
                    flows: n,
                    channels: ivr.map(|m| m.load.0),
                    capacity: ivr.map(|m| m.load.1),
                    packets: rc.packets,
                    bytes: rc.bytes,
                    new_flows: rc.new_flows,
                    mac: (r.mac != [0; 6]).then(|| tandem_dataplane::fmt_mac(&r.mac)),
                });
            }
            all_reals.extend(reals.iter().cloned());
            services.push(admin::ServiceStatus {
                vip,
                port: img.key.port,
                protocol: proto.into(),
                scheduler: sched.into(),
                forward: if img.forward() == Some(Forward::Nat) {
                    "nat".into()
                } else {
                    "dr".into()
                },
                // As the kernel holds them, named as in the file.
                flags: img.flags().iter().map(|f| f.name().to_string()).collect(),
                packets: c.packets,
                bytes: c.bytes,
                new_flows: c.new_flows,
                reals,
            });
        }
        (services, all_reals)
    }

    /// The IVR node serving as each real server, by (service id, slot):
    /// built once per answer, since looking each real server up among all
    /// the IVRs' places would cost (real servers)² at the design maximum.
    fn ivr_index(&self) -> HashMap<(u32, u32), u32> {
        let mut index = HashMap::new();
        for (node, places) in &self.ivr_slots {
            for (si, ri) in places {
                let s = &self.services[*si];
                if let Some(img) = self.dp.service(&s.key())
                    && let Some(slot) = img.slot_of(s.reals[*ri].addr, s.reals[*ri].port)
                {
                    index.entry((img.service.id, slot)).or_insert(*node);
                }
            }
        }
        index
    }

    pub(super) fn answer(
        &mut self,
        req: Result<admin::Request, admin::AdminError>,
    ) -> admin::Response {
        // Bring the state machine up to date with the kernel's records first.
        self.refresh();
        let now = Instant::now();
        match req {
            Err(e) => admin::Response::Error {
                message: e.to_string(),
            },
            Ok(admin::Request::Status) => admin::Response::Status(self.status()),
            Ok(admin::Request::Services) => {
                let taken_ns = mono_ns();
                let mut services = self.services().0;
                self.baseline.apply(&mut services);
                admin::Response::Services { services, taken_ns }
            }
            Ok(admin::Request::Reals) => {
                let mut reals = self.services().1;
                self.baseline.apply_reals(&mut reals);
                admin::Response::Reals { reals }
            }
            Ok(admin::Request::Switchover) => match self.pair.can_switchover(now) {
                Err(e) => admin::Response::Error {
                    message: format!("switchover refused: {e}"),
                },
                Ok(()) => {
                    self.pair.handle(PairEvent::AdminSwitchover, now);
                    let r = self.apply_actions();
                    match r {
                        Ok(()) => admin::Response::Done {
                            message: format!("switched over: now {}", self.pair.state().name()),
                        },
                        Err(e) => admin::Response::Error {
                            message: format!("{e:#}"),
                        },
                    }
                }
            },
            Ok(admin::Request::ReleaseHold) => {
                let had = self.pair.switchover_hold().is_some();
                self.pair.handle(PairEvent::AdminReleaseHold, now);
                match self.apply_actions() {
                    Ok(()) if had => admin::Response::Done {
                        message: format!(
                            "switchover hold released: now {}",
                            self.pair.state().name()
                        ),
                    },
                    Ok(()) => admin::Response::Done {
                        message: "no switchover hold was in force".into(),
                    },
                    Err(e) => admin::Response::Error {
                        message: format!("{e:#}"),
                    },
                }
            }
            Ok(admin::Request::Sync) => admin::Response::Sync(self.sync_status()),
            Ok(admin::Request::Metrics) => admin::Response::Metrics {
                text: self.metrics_text(),
            },
            // Answered by the admin server once the file is read (`reload`).
            Ok(admin::Request::Reload { .. }) => admin::Response::Error {
                message: "reload is answered when the file has been read".into(),
            },
            Ok(admin::Request::Save) => admin::Response::Config {
                text: self.cfg.to_toml_with_keys(),
            },
            Ok(admin::Request::Stats) => match self.dp.reasons() {
                Ok(v) => admin::Response::Stats {
                    reasons: v
                        .into_iter()
                        .map(|(r, n)| admin::ReasonCount {
                            reason: r.name().into(),
                            packets: n,
                        })
                        .collect(),
                },
                Err(e) => admin::Response::Error {
                    message: format!("reading the reason counters: {e}"),
                },
            },
            Ok(admin::Request::Events { after }) => admin::Response::Events {
                events: self.timeline.since(after, admin::MAX_EVENTS),
            },
            Ok(admin::Request::Cards) => admin::Response::Cards {
                spans: self.cards.iter().flat_map(|c| c.cards_status()).collect(),
            },
            Ok(admin::Request::Conns {
                vip,
                real,
                call_id,
                limit,
                after,
            }) => {
                let filter = super::conns::ConnFilter::new(vip, real, call_id.as_deref());
                self.conns(filter, call_id, limit, after)
            }
            // As the kernel holds them.
            Ok(admin::Request::Timeouts) => match self.dp.settings() {
                Ok(t) => {
                    let s = |ns: u64| (ns / tandem_dataplane::common::SEC_NS) as u32;
                    admin::Response::Timeouts {
                        tcp_s: s(t.tcp_timeout_ns),
                        tcp_fin_s: s(t.tcp_fin_timeout_ns),
                        udp_s: s(t.udp_timeout_ns),
                        sip_call_s: s(t.call_timeout_ns),
                    }
                }
                Err(e) => admin::Response::Error {
                    message: format!("reading the timeouts from the dataplane: {e}"),
                },
            },
            Ok(admin::Request::Zero { service }) => {
                // Its name, whichever way it was written (`udp:VIP:PORT` too).
                let service = match service.as_deref().map(admin::service_name).transpose() {
                    Ok(s) => s,
                    Err(message) => return admin::Response::Error { message },
                };
                let raw = self.services().0;
                let (n, m) = self.baseline.zero(&raw, service.as_deref());
                match service {
                    Some(name) if n == 0 => admin::Response::Error {
                        message: format!(
                            "no service {name}: the services are {}",
                            raw.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
                        ),
                    },
                    _ => admin::Response::Done {
                        message: format!(
                            "zeroed {n} service(s) and {m} real server(s) in the services and reals views (metrics count on)"
                        ),
                    },
                }
            }
            Ok(admin::Request::Maintenance { on }) => {
                self.pair.handle(PairEvent::AdminMaintenance(on), now);
                match self.apply_actions() {
                    Ok(()) => admin::Response::Done {
                        message: format!(
                            "maintenance {}: now {}",
                            if on { "on" } else { "off" },
                            self.pair.state().name()
                        ),
                    },
                    Err(e) => admin::Response::Error {
                        message: format!("{e:#}"),
                    },
                }
            }
        }
    }

    /// What an operator must look at now, one sentence each.
    fn alarms(&self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(t) = self.pair.hold_down_until().filter(|t| *t > now) {
            out.push(format!(
                "flap damping: this node lost the active role {} time(s) recently and is held down for {} ms",
                self.pair.flaps(),
                t.saturating_duration_since(now).as_millis()
            ));
        }
        if let Some(h) = self.pair.switchover_hold() {
            out.push(match h {
                None => "switchover hold: this node will not preempt until `tandemctl switchover --release`".to_string(),
                Some(t) => format!("switchover hold: this node will not preempt for {} ms", t.saturating_duration_since(now).as_millis()),
            });
        }
        if self.pair.peer_misconfigured(now) {
            out.push("the peer is alive but its heartbeats fail authentication: check heartbeat.key on both directors; this node will not take over beside it".to_string());
        }
        if let Some(p) = self.live_peer_fingerprint().filter(|_| self.config_mismatch) {
            out.push(format!(
                "configuration mismatch: the peer runs other services (fingerprint {}, here {}): `tandemctl diff` on each node, then reload the same file on both",
                crate::config::fingerprint_hex(p),
                crate::config::fingerprint_hex(self.fingerprint)
            ));
        }
        if self.live.trips > 0 {
            out.push(format!("dead-man switch: tripped {} time(s) since start (the loop was stale beyond its budget)", self.live.trips));
        }
        out
    }

    /// Every metric, as Prometheus text.
    pub(super) fn metrics_text(&mut self) -> String {
        use crate::metrics::{Exposition, labels};
        self.refresh();
        let mut e = Exposition::new();
        let state = self.pair.state();
        for st in [
            NodeState::Init,
            NodeState::Standby,
            NodeState::Takeover,
            NodeState::Active,
            NodeState::Fault,
            NodeState::Maintenance,
        ] {
            e.gauge(
                "node_state",
                "1 for this node's pair state, 0 for the others",
                labels([("state", st.name().into())]),
                f64::from(u8::from(st == state)),
            );
        }
        e.gauge(
            "node_epoch",
            "The pair epoch (term) this node is in",
            Vec::new(),
            self.pair.epoch() as f64,
        );
        e.gauge(
            "pair_flaps",
            "Recent losses of the active role counted by flap damping",
            Vec::new(),
            f64::from(self.pair.flaps()),
        );
        e.gauge(
            "pair_held_down",
            "1 while flap damping holds this node down",
            Vec::new(),
            f64::from(u8::from(
                self.pair
                    .hold_down_until()
                    .filter(|t| *t > Instant::now())
                    .is_some(),
            )),
        );
        e.gauge(
            "config_mismatch",
            "1 while the peer's heartbeats carry another services fingerprint than this node runs (for over a second: not a change on its way)",
            Vec::new(),
            f64::from(u8::from(self.config_mismatch && self.live_peer_fingerprint().is_some())),
        );
        e.counter(
            "dead_man_trips",
            "Times the kernel's dead-man switch fenced this node",
            Vec::new(),
            self.live.trips,
        );
        e.counter(
            "loop_late_turns",
            "Loop turns that started later than two heartbeat intervals after the previous one",
            Vec::new(),
            self.live.late_turns,
        );
        let now = Instant::now();
        let alive = self
            .pair
            .peer()
            .is_some_and(|p| p.alive(now, self.cfg.heartbeat.deadline()));
        e.gauge(
            "peer_alive",
            "1 while the peer is heard on some heartbeat path",
            Vec::new(),
            f64::from(u8::from(alive)),
        );
        if self.cfg.witness.is_some() {
            e.gauge(
                "witness_reachable",
                "1 if the witness answered the last probe",
                Vec::new(),
                f64::from(u8::from(self.witness_ok)),
            );
        }
        e.gauge(
            "local_fault",
            "1 while a local fault (link, card) is raised",
            labels([("source", "link".into())]),
            f64::from(u8::from(self.link_fault)),
        );
        e.gauge(
            "local_fault",
            "1 while a local fault (link, card) is raised",
            labels([("source", "card".into())]),
            f64::from(u8::from(self.card_fault.is_faulty())),
        );
        for (v, c) in self.vips.iter().zip(&self.cfg.vips) {
            let g = v.garp.announcement().stats();
            let l = || {
                labels([
                    ("vip", v.addr.to_string()),
                    ("interface", c.interface.clone()),
                ])
            };
            e.counter(
                "garp_sent",
                "Gratuitous ARPs sent for a VIP",
                l(),
                g.garp_sent,
            );
            e.counter(
                "garp_failed",
                "Gratuitous ARP sends that failed",
                l(),
                g.garp_failed,
            );
            e.counter(
                "garp_retried",
                "Failed gratuitous ARPs sent again",
                l(),
                g.garp_retried,
            );
            e.counter(
                "garp_dropped",
                "Failed gratuitous ARPs given up",
                l(),
                g.garp_dropped,
            );
            e.counter(
                "vip_own_failed",
                "Dataplane ownership updates of a VIP that failed",
                l(),
                g.own_failed,
            );
        }
        if let Ok(reasons) = self.dp.reasons() {
            for (r, n) in reasons {
                e.counter(
                    "dispatch_packets",
                    "Packets the XDP program handled, by reason",
                    labels([("reason", r.name().into())]),
                    n,
                );
            }
        }
        for s in self.services().0 {
            let svc = format!("{}/{}:{}", s.protocol, s.vip, s.port);
            e.counter(
                "service_packets",
                "Packets dispatched to a virtual service",
                labels([("service", svc.clone())]),
                s.packets,
            );
            e.counter(
                "service_bytes",
                "Bytes dispatched to a virtual service",
                labels([("service", svc.clone())]),
                s.bytes,
            );
            for r in s.reals {
                let real = format!(
                    "{}:{}",
                    r.address,
                    if r.port == 0 { s.port } else { r.port }
                );
                let l = || labels([("service", svc.clone()), ("real", real.clone())]);
                e.counter(
                    "real_packets",
                    "Packets forwarded to a real server",
                    l(),
                    r.packets,
                );
                e.counter(
                    "real_bytes",
                    "Bytes forwarded to a real server",
                    l(),
                    r.bytes,
                );
                e.gauge(
                    "real_flows",
                    "Connection-table entries to a real server",
                    l(),
                    r.flows as f64,
                );
                e.gauge(
                    "real_up",
                    "1 if the real server takes new flows (state and health)",
                    l(),
                    f64::from(u8::from(r.state == "up" && r.health != "dead")),
                );
                if let Some(c) = r.channels {
                    e.gauge(
                        "real_channels",
                        "Busy channels the IVR reports",
                        l(),
                        f64::from(c),
                    );
                }
            }
        }
        if self.sync.is_some() {
            let s = self.sync_status();
            e.gauge(
                "sync_publishing",
                "1 on the node that publishes (the active)",
                Vec::new(),
                f64::from(u8::from(s.role == "publisher")),
            );
            e.gauge(
                "sync_in_sync",
                "1 on a standby that holds the active's state",
                Vec::new(),
                f64::from(u8::from(s.state == "in sync")),
            );
            e.gauge(
                "sync_last_seq",
                "Last change recorded (publisher) or applied (subscriber)",
                Vec::new(),
                s.last_seq as f64,
            );
            e.gauge(
                "sync_acked_seq",
                "Last change the standby acknowledged",
                Vec::new(),
                s.acked as f64,
            );
            e.gauge(
                "sync_queue",
                "Changes kept for the standby",
                Vec::new(),
                s.queue as f64,
            );
            e.gauge(
                "sync_records",
                "Synced records this node holds",
                labels([("table", "flows".into())]),
                s.flows as f64,
            );
            e.gauge(
                "sync_records",
                "Synced records this node holds",
                labels([("table", "calls".into())]),
                s.calls as f64,
            );
            e.counter(
                "sync_bytes_sent",
                "Sync bytes sent",
                Vec::new(),
                s.bytes_sent,
            );
            e.counter(
                "sync_snapshots",
                "Snapshots sent or received",
                Vec::new(),
                s.snapshots,
            );
            e.counter(
                "sync_overflows",
                "Times the standby fell out of the window",
                Vec::new(),
                s.overflows,
            );
            e.counter(
                "sync_bad_frames",
                "Frames that failed to parse or authenticate",
                Vec::new(),
                s.bad_frames,
            );
            e.counter(
                "sync_kernel_refused",
                "Synced records this node's kernel could not take",
                Vec::new(),
                s.kernel_errors,
            );
            e.counter(
                "sync_connections_accepted",
                "Connections accepted on the sync port",
                Vec::new(),
                s.accepted,
            );
            e.counter(
                "sync_connections_refused",
                "Sync connections closed at once (not a peer address, or not publishing)",
                Vec::new(),
                s.refused,
            );
            e.gauge(
                "sync_connections_pending",
                "Sync connections not yet authenticated",
                Vec::new(),
                s.pending as f64,
            );
            e.counter(
                "sync_handshakes",
                "Sync handshakes completed",
                Vec::new(),
                s.handshakes,
            );
            for (why, n) in [
                ("dropped for a newer one", s.pending_dropped),
                ("timeout", s.handshake_timeouts),
                ("bad proof", s.handshake_bad_proof),
                ("bad frame", s.handshake_bad_frames),
                ("over budget", s.handshake_over_budget),
                ("closed", s.handshake_closed),
            ] {
                e.counter(
                    "sync_handshakes_failed",
                    "Sync connections that did not authenticate, by reason",
                    labels([("reason", why.into())]),
                    n,
                );
            }
            // A summary over the publisher's recent changes (NaN before the
            // first): the sync runtime keeps no running sum or count, so the
            // window's size is a gauge of its own rather than a `_count`.
            let secs = |us: u64| {
                if s.lag_samples == 0 {
                    f64::NAN
                } else {
                    us as f64 / 1e6
                }
            };
            let quantiles = [
                (0.5, secs(s.lag_p50_us)),
                (0.99, secs(s.lag_p99_us)),
                (1.0, secs(s.lag_max_us)),
            ];
            e.summary(
                "sync_lag_seconds",
                "Record to acknowledgement, over the recent changes",
                Vec::new(),
                &quantiles,
                None,
            );
            e.gauge(
                "sync_lag_samples",
                "Recent changes the sync lag quantiles are over",
                Vec::new(),
                s.lag_samples as f64,
            );
        }
        e.encode()
    }
}
