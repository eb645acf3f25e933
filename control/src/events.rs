//! The daemon's events as types: what `tandemd` records in its timeline,
//! prints (`<CLOCK_MONOTONIC ns> <text>`, the text from [`Event`]'s
//! `Display`) and serves over the admin socket (`{"cmd":"events"}`), so
//! that operators' tools, tests and benchmarks match on typed events, not
//! on log sentences.
//!
//! Vocabulary only: no I/O, no decisions.

use std::{fmt, net::IpAddr};

use serde::{Deserialize, Serialize};

/// One event of the daemon's life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Started {
        node_id: u32,
        name: String,
    },
    /// Start-up is over: XDP attached and the role decided (systemd is
    /// told `READY=1` in the same turn); where the time went.
    Ready {
        startup: crate::startup::StartupReport,
    },
    /// The pair state machine changed state. `peer_heard`: on a takeover,
    /// how long ago the kernel last heard the peer on each path
    /// (ifindex, µs).
    StateChanged {
        from: String,
        to: String,
        epoch: u64,
        peer_heard: Vec<(u32, u64)>,
        /// Why the pair machine moved (its decision, in words).
        #[serde(default)]
        reason: String,
    },
    /// The pair machine held back a move it would otherwise have made
    /// (a hold-down after a flap, preemption waiting for the peer's state
    /// or its delay, a misconfigured peer, a switchover hold).
    Held {
        hold: String,
        for_ms: Option<u64>,
    },
    /// The kernel's dead-man switch took this node out of the dataplane:
    /// the daemon's stamp was older than the budget (a hang, a stop).
    /// `stale_us`: how long the loop had not run.
    Fenced {
        stale_us: u64,
        state: String,
    },
    /// Heartbeats from the peer's address on `path` fail authentication
    /// (`on`), or authenticate again (`!on`).
    PeerMisconfigured {
        path: String,
        on: bool,
        bad_macs: u64,
    },
    /// The loop woke `micros` after its previous turn, later than the
    /// heartbeat interval allows (this node's own lateness: counted, never
    /// taken for the peer's silence).
    LoopLate {
        micros: u64,
    },
    TakeoverDone {
        epoch: u64,
        micros: u64,
    },
    VipsReleased,
    GarpResent,
    SpansShutDown,
    SpansStarted {
        root: String,
        micros: u64,
    },
    SpansFailed {
        root: String,
        error: String,
    },
    CardAlarm {
        raised: bool,
    },
    WitnessProbing,
    /// The witness answered while a takeover waited for it.
    WitnessAnswered,
    WitnessUnreachable,
    IvrHealth {
        node_id: u32,
        alive: bool,
    },
    SipOptions {
        real: IpAddr,
        answered: bool,
    },
    SyncConnected {
        peer: String,
        dialed: bool,
    },
    SyncClosed {
        peer: String,
        why: String,
    },
    SyncInSync,
    LinkChanged {
        name: String,
        up: bool,
    },
    LinksDown {
        names: Vec<String>,
    },
    VipAddress {
        addr: IpAddr,
        interface: String,
        added: bool,
        micros: u64,
        error: Option<String>,
    },
    Realtime {
        priority: u8,
        ok: bool,
        locked: bool,
        error: Option<String>,
    },
    /// A reload applied `changes` live changes read from `source` (a
    /// file's path, or `peer`); the running services' fingerprint is now
    /// `fingerprint`. `micros`: applying them on the loop.
    Reloaded {
        source: String,
        changes: u32,
        fingerprint: String,
        micros: u64,
    },
    /// The peer's heartbeats carry another services fingerprint than this
    /// node runs (`on`), or the same again (`!on`).
    ConfigMismatch {
        on: bool,
        here: String,
        peer: String,
    },
    /// A reload refused (the file unreadable or invalid, or a difference
    /// that cannot be taken live): nothing changed.
    ReloadRefused {
        source: String,
        reason: String,
    },
    /// The neighbour table's MAC for real server `address` (one the file
    /// gives none): learned, changed (`previous` set), or lost (`mac`
    /// None: the real server gets no new traffic until it is known).
    RealMac {
        address: std::net::IpAddr,
        mac: Option<String>,
        previous: Option<String>,
    },
    /// This standby wrote the active's services (fingerprint
    /// `fingerprint`) into its own file `path` (`error`: it could not,
    /// and the file still holds its own).
    FileFollowed {
        path: String,
        fingerprint: String,
        error: Option<String>,
    },
    ShuttingDown {
        signal: String,
    },
    /// SIGTERM with the tables pinned: this process stops for a restart,
    /// leaving XDP attached and its tables, VIPs and role (`state`,
    /// `epoch`) for the next one; the peer was told to wait `grace_ms`.
    Restarting {
        state: String,
        epoch: u64,
        grace_ms: u64,
    },
    /// What start-up found of a predecessor's tables (`tables`: adopted,
    /// created, not pinned, with `dir`), and whether it resumed its
    /// predecessor's active role (`resumed`, under `epoch`); `note` says
    /// why not when the predecessor was active (another layout, its grace
    /// over): then this node yields and the peer takes over.
    Tables {
        tables: String,
        dir: Option<String>,
        resumed: bool,
        epoch: Option<u64>,
        note: Option<String>,
    },
    /// A loop turn took long enough to delay heartbeats.
    SlowTurn {
        micros: u64,
        during: String,
    },
    /// A gratuitous ARP for `vip` failed on `interface`: the first failure
    /// of a run (or one with another errno; the others are only counted).
    /// `retrying`: it will be re-sent. The takeover goes on.
    GarpFailed {
        vip: IpAddr,
        interface: String,
        errno: i32,
        error: String,
        retrying: bool,
    },
    /// GARPs for `vip` go out again, after `failed` failures in a row.
    GarpRecovered {
        vip: IpAddr,
        interface: String,
        failed: u32,
    },
    /// A GARP burst for `vip` ended with its last `failed` GARPs failed:
    /// the VIP is held, but the segment may not have heard of it.
    GarpGaveUp {
        vip: IpAddr,
        interface: String,
        failed: u32,
    },
    /// A step of a takeover, demotion or split-brain heal failed on
    /// `object` (a VIP, the witness, a timer); the daemon went on.
    /// `retrying`: the step will be tried again.
    TakeoverStepFailed {
        step: TakeoverStep,
        object: String,
        errno: Option<i32>,
        error: String,
        retrying: bool,
    },
    /// A step that had failed on `object` passed, after `failed` failures.
    TakeoverStepRecovered {
        step: TakeoverStep,
        object: String,
        failed: u32,
    },
}

/// The steps of a takeover (or demotion, or heal) that can fail without
/// stopping it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TakeoverStep {
    /// Marking the VIP owned in the dataplane (XDP answers ARP for it).
    OwnVip,
    /// Marking the VIP no longer owned.
    ReleaseVip,
    /// The witness probe a takeover waits for.
    WitnessProbe,
    /// Arming a wait of the loop (the GARP timer, the witness reply).
    ArmWait,
    /// Starting the spans of the cards.
    StartSpans,
}

impl TakeoverStep {
    pub fn name(self) -> &'static str {
        match self {
            TakeoverStep::OwnVip => "marking the VIP owned in the dataplane",
            TakeoverStep::ReleaseVip => "releasing the VIP in the dataplane",
            TakeoverStep::WitnessProbe => "probing the witness",
            TakeoverStep::ArmWait => "arming a wait",
            TakeoverStep::StartSpans => "starting the spans",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Started { node_id, name } => {
                write!(f, "tandemd node {node_id} ({name}) started")
            }
            Event::Ready { startup } => write!(f, "{startup}"),
            Event::StateChanged {
                from,
                to,
                epoch,
                peer_heard,
                reason,
            } => {
                write!(f, "state {from} -> {to} (epoch {epoch})")?;
                if !peer_heard.is_empty() {
                    let heard: Vec<String> = peer_heard
                        .iter()
                        .map(|(i, us)| format!("{:.1} ms ago on ifindex {i}", *us as f64 / 1000.0))
                        .collect();
                    write!(f, " (peer last heard {})", heard.join(", "))?;
                }
                if !reason.is_empty() {
                    write!(f, ": {reason}")?;
                }
                Ok(())
            }
            Event::Held { hold, for_ms } => match for_ms {
                Some(ms) => write!(f, "held: {hold} (for {ms} ms more)"),
                None => write!(f, "held: {hold} (until released)"),
            },
            Event::Fenced { stale_us, state } => write!(
                f,
                "dead-man switch tripped: the loop had not run for {:.1} ms; the kernel stopped ARP, dispatch and echoes for this node ({state})",
                *stale_us as f64 / 1000.0
            ),
            Event::PeerMisconfigured {
                path,
                on: true,
                bad_macs,
            } => write!(
                f,
                "ALARM: the peer is alive on path {path} but its heartbeats fail authentication ({bad_macs} so far): check heartbeat.key on both directors; no takeover while it is heard"
            ),
            Event::PeerMisconfigured {
                path, on: false, ..
            } => write!(f, "the peer's heartbeats on path {path} authenticate again"),
            Event::LoopLate { micros } => write!(
                f,
                "loop woke {:.3} ms after its previous turn (this node was late)",
                *micros as f64 / 1000.0
            ),
            Event::TakeoverDone { epoch, micros } => write!(
                f,
                "takeover done: VIPs owned, GARP sent (epoch {epoch}; {micros} µs)"
            ),
            Event::VipsReleased => f.write_str("released VIPs"),
            Event::GarpResent => f.write_str("GARP re-sent"),
            Event::SpansShutDown => f.write_str("spans shut down"),
            Event::SpansStarted { root, micros } => write!(
                f,
                "spans started alarm-free on {root} in {:.3} ms",
                *micros as f64 / 1000.0
            ),
            Event::SpansFailed { root, error } => {
                write!(f, "spans on {root} failed to start: {error}")
            }
            Event::CardAlarm { raised: true } => f.write_str("card alarm raised: local fault"),
            Event::CardAlarm { raised: false } => f.write_str("card alarm cleared"),
            Event::WitnessProbing => f.write_str("probing the witness"),
            Event::WitnessAnswered => f.write_str("witness answered"),
            Event::WitnessUnreachable => f.write_str("witness unreachable"),
            Event::IvrHealth {
                node_id,
                alive: true,
            } => write!(f, "ivr node {node_id} alive"),
            Event::IvrHealth {
                node_id,
                alive: false,
            } => write!(f, "ivr node {node_id} dead: no new flows"),
            Event::SipOptions {
                real,
                answered: true,
            } => write!(f, "real {real}: SIP OPTIONS answered again"),
            Event::SipOptions {
                real,
                answered: false,
            } => write!(f, "real {real}: SIP OPTIONS unanswered: no new flows"),
            Event::SyncConnected { peer, dialed } => write!(
                f,
                "sync: connected {} {peer}",
                if *dialed { "to" } else { "from" }
            ),
            Event::SyncClosed { peer, why } => {
                write!(f, "sync: connection with {peer} closed: {why}")
            }
            Event::SyncInSync => f.write_str("sync: in sync with the active"),
            Event::LinkChanged { name, up } => {
                write!(f, "link {name} {}", if *up { "up" } else { "down" })
            }
            Event::LinksDown { names } => write!(f, "local fault: {} down", names.join(", ")),
            Event::VipAddress {
                addr,
                interface,
                added,
                micros,
                error,
            } => {
                let what = if *added { "added to" } else { "removed from" };
                match error {
                    None => write!(f, "VIP {addr} {what} {interface} ({micros} µs)"),
                    Some(e) => write!(f, "VIP {addr} not {what} {interface}: {e}"),
                }
            }
            Event::Realtime {
                priority,
                ok: true,
                locked,
                ..
            } => {
                write!(
                    f,
                    "running at SCHED_FIFO priority {priority}{}",
                    if *locked { ", memory locked" } else { "" }
                )
            }
            Event::Realtime {
                priority, error, ..
            } => write!(
                f,
                "node.realtime_priority {priority}: sched_setscheduler(SCHED_FIFO) failed: {}; normal scheduling",
                error.as_deref().unwrap_or("?")
            ),
            Event::Reloaded {
                source,
                changes,
                fingerprint,
                micros,
            } => write!(
                f,
                "reload of {source}: {changes} change(s) applied in {micros} µs; services fingerprint {fingerprint}"
            ),
            Event::ConfigMismatch { on: true, here, peer } => write!(
                f,
                "ALARM: the peer runs other services (fingerprint {peer}, here {here}): a takeover would dispatch differently"
            ),
            Event::ConfigMismatch { on: false, here, .. } => {
                write!(f, "the peer runs the same services again (fingerprint {here})")
            }
            Event::ReloadRefused { source, reason } => {
                write!(f, "reload of {source} refused, nothing changed: {reason}")
            }
            Event::RealMac { address, mac: Some(m), previous: None } => {
                write!(f, "real server {address}: MAC {m} (from the neighbour table)")
            }
            Event::RealMac { address, mac: Some(m), previous: Some(p) } => {
                write!(f, "real server {address}: MAC changed from {p} to {m}; its services are rewritten")
            }
            Event::RealMac { address, mac: None, previous } => write!(
                f,
                "real server {address}: no MAC in the neighbour table{}; it gets no new traffic until one is known",
                previous.as_ref().map_or(String::new(), |p| format!(" (was {p})"))
            ),
            Event::FileFollowed { path, fingerprint, error: None } => write!(
                f,
                "{path}: its [timeouts] and [[service]] tables replaced by the active's (fingerprint {fingerprint}), so that a restart runs them"
            ),
            Event::FileFollowed { path, fingerprint, error: Some(e) } => write!(
                f,
                "{path}: the active's services (fingerprint {fingerprint}) could not be written into it: {e}; a restart of this node would run the file's own"
            ),
            Event::ShuttingDown { signal } => write!(f, "signal {signal}: shutting down"),
            Event::Restarting { state, epoch, grace_ms } => write!(
                f,
                "SIGTERM: stopping for a restart as {state} (epoch {epoch}); XDP, tables and VIPs stay, the peer waits {grace_ms} ms"
            ),
            Event::Tables { tables, dir, resumed, epoch, note } => {
                write!(f, "tables {tables}")?;
                if let Some(d) = dir {
                    write!(f, " at {d}")?;
                }
                if *resumed {
                    write!(f, "; resumed the active role under epoch {}", epoch.unwrap_or(0))?;
                }
                if let Some(n) = note {
                    write!(f, "; {n}")?;
                }
                Ok(())
            }
            Event::SlowTurn { micros, during } => {
                write!(
                    f,
                    "loop turn took {:.3} ms ({during}): heartbeats may have been late",
                    *micros as f64 / 1000.0
                )
            }
            Event::GarpFailed {
                vip,
                interface,
                errno,
                error,
                retrying,
            } => write!(
                f,
                "gratuitous ARP for {vip} on {interface} failed (errno {errno}: {error}){}",
                if *retrying { "; re-sending" } else { "" }
            ),
            Event::GarpRecovered {
                vip,
                interface,
                failed,
            } => {
                write!(
                    f,
                    "gratuitous ARP for {vip} on {interface} sent again after {failed} failures"
                )
            }
            Event::GarpGaveUp {
                vip,
                interface,
                failed,
            } => {
                write!(
                    f,
                    "gratuitous ARP burst for {vip} on {interface} ended with its last {failed} failed"
                )
            }
            Event::TakeoverStepFailed {
                step,
                object,
                errno,
                error,
                retrying,
            } => {
                write!(f, "{} failed for {object}", step.name())?;
                match errno {
                    Some(n) => write!(f, " (errno {n}: {error})")?,
                    None => write!(f, " ({error})")?,
                }
                f.write_str(if *retrying {
                    "; retrying"
                } else {
                    "; going on"
                })
            }
            Event::TakeoverStepRecovered {
                step,
                object,
                failed,
            } => {
                write!(
                    f,
                    "{} done for {object} after {failed} failures",
                    step.name()
                )
            }
        }
    }
}

impl Event {
    /// Events an operator must see as warnings.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            Event::SpansFailed { .. }
                | Event::WitnessUnreachable
                | Event::SyncClosed { .. }
                | Event::LinksDown { .. }
                | Event::SlowTurn { .. }
                | Event::Fenced { .. }
                | Event::PeerMisconfigured { on: true, .. }
                | Event::LoopLate { .. }
                | Event::VipAddress { error: Some(_), .. }
                | Event::Realtime { ok: false, .. }
                | Event::GarpFailed { .. }
                | Event::GarpGaveUp { .. }
                | Event::TakeoverStepFailed { .. }
                | Event::ReloadRefused { .. }
                | Event::ConfigMismatch { on: true, .. }
                | Event::FileFollowed { error: Some(_), .. }
                | Event::RealMac { mac: None, .. }
                | Event::RealMac { previous: Some(_), .. }
        )
    }
}

/// The structured fields of an event, for a log record (journald's
/// `KIND=`, `EPOCH=`, …): what it is and what it is about, where it has them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    /// The event's name, as in its JSON (`state_changed`).
    pub kind: &'static str,
    /// An IVR's heartbeat node id (a real server), or this node's at start.
    pub ivr_node: Option<u32>,
    /// The sync peer's address.
    pub sync_peer: Option<&'a str>,
    pub epoch: Option<u64>,
    /// A real server's address.
    pub real: Option<IpAddr>,
    /// A VIP.
    pub vip: Option<IpAddr>,
    /// An interface, heartbeat path, card root or takeover object.
    pub object: Option<&'a str>,
    /// Why: a state change's reason, a refusal's, an error.
    pub reason: Option<&'a str>,
}

impl Event {
    /// The event's name, as its JSON `event` tag writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Started { .. } => "started",
            Event::Ready { .. } => "ready",
            Event::StateChanged { .. } => "state_changed",
            Event::Held { .. } => "held",
            Event::Fenced { .. } => "fenced",
            Event::PeerMisconfigured { .. } => "peer_misconfigured",
            Event::LoopLate { .. } => "loop_late",
            Event::TakeoverDone { .. } => "takeover_done",
            Event::VipsReleased => "vips_released",
            Event::GarpResent => "garp_resent",
            Event::SpansShutDown => "spans_shut_down",
            Event::SpansStarted { .. } => "spans_started",
            Event::SpansFailed { .. } => "spans_failed",
            Event::CardAlarm { .. } => "card_alarm",
            Event::WitnessProbing => "witness_probing",
            Event::WitnessAnswered => "witness_answered",
            Event::WitnessUnreachable => "witness_unreachable",
            Event::IvrHealth { .. } => "ivr_health",
            Event::SipOptions { .. } => "sip_options",
            Event::SyncConnected { .. } => "sync_connected",
            Event::SyncClosed { .. } => "sync_closed",
            Event::SyncInSync => "sync_in_sync",
            Event::LinkChanged { .. } => "link_changed",
            Event::LinksDown { .. } => "links_down",
            Event::VipAddress { .. } => "vip_address",
            Event::Realtime { .. } => "realtime",
            Event::Reloaded { .. } => "reloaded",
            Event::ConfigMismatch { .. } => "config_mismatch",
            Event::ReloadRefused { .. } => "reload_refused",
            Event::FileFollowed { .. } => "file_followed",
            Event::RealMac { .. } => "real_mac",
            Event::ShuttingDown { .. } => "shutting_down",
            Event::Restarting { .. } => "restarting",
            Event::Tables { .. } => "tables",
            Event::SlowTurn { .. } => "slow_turn",
            Event::GarpFailed { .. } => "garp_failed",
            Event::GarpRecovered { .. } => "garp_recovered",
            Event::GarpGaveUp { .. } => "garp_gave_up",
            Event::TakeoverStepFailed { .. } => "takeover_step_failed",
            Event::TakeoverStepRecovered { .. } => "takeover_step_recovered",
        }
    }

    /// Its fields for a structured log record.
    pub fn fields(&self) -> Fields<'_> {
        let mut f = Fields {
            kind: self.kind(),
            ..Fields::default()
        };
        match self {
            Event::StateChanged { epoch, reason, .. } => {
                f.epoch = Some(*epoch);
                f.reason = (!reason.is_empty()).then_some(reason.as_str());
            }
            Event::TakeoverDone { epoch, .. } => f.epoch = Some(*epoch),
            Event::Held { hold, .. } => f.reason = Some(hold),
            Event::PeerMisconfigured { path, .. } => f.object = Some(path),
            Event::SpansStarted { root, .. } => f.object = Some(root),
            Event::SpansFailed { root, error } => {
                f.object = Some(root);
                f.reason = Some(error);
            }
            Event::IvrHealth { node_id, .. } => f.ivr_node = Some(*node_id),
            Event::SipOptions { real, .. } => f.real = Some(*real),
            Event::SyncConnected { peer, .. } => f.sync_peer = Some(peer),
            Event::SyncClosed { peer, why } => {
                f.sync_peer = Some(peer);
                f.reason = Some(why);
            }
            Event::LinkChanged { name, .. } => f.object = Some(name),
            Event::VipAddress {
                addr,
                interface,
                error,
                ..
            } => {
                f.vip = Some(*addr);
                f.object = Some(interface);
                f.reason = error.as_deref();
            }
            Event::Realtime { error, .. } => f.reason = error.as_deref(),
            Event::Reloaded { source, .. } => f.object = Some(source),
            Event::ReloadRefused { source, reason } => {
                f.object = Some(source);
                f.reason = Some(reason);
            }
            Event::FileFollowed { path, error, .. } => {
                f.object = Some(path);
                f.reason = error.as_deref();
            }
            Event::RealMac { address, .. } => f.real = Some(*address),
            Event::ShuttingDown { signal } => f.reason = Some(signal),
            Event::Restarting { epoch, .. } => f.epoch = Some(*epoch),
            Event::Tables { dir, epoch, note, .. } => {
                f.object = dir.as_deref();
                f.epoch = *epoch;
                f.reason = note.as_deref();
            }
            Event::SlowTurn { during, .. } => f.object = Some(during),
            Event::GarpFailed {
                vip,
                interface,
                error,
                ..
            } => {
                f.vip = Some(*vip);
                f.object = Some(interface);
                f.reason = Some(error);
            }
            Event::GarpRecovered { vip, interface, .. } | Event::GarpGaveUp { vip, interface, .. } => {
                f.vip = Some(*vip);
                f.object = Some(interface);
            }
            Event::TakeoverStepFailed { object, error, .. } => {
                f.object = Some(object);
                f.reason = Some(error);
            }
            Event::TakeoverStepRecovered { object, .. } => f.object = Some(object),
            _ => {}
        }
        f
    }

    /// What makes two warnings "the same" for [`crate::repeats`]: the
    /// kind and what it is about, not its measurements (a loop late by
    /// 3 ms and by 4 ms is one warning repeated).
    pub fn repeat_key(&self) -> String {
        let f = self.fields();
        let mut key = f.kind.to_string();
        if let Event::PeerMisconfigured { on, .. } | Event::ConfigMismatch { on, .. } = self {
            key.push_str(if *on { "|on" } else { "|off" });
        }
        for part in [
            f.ivr_node.map(|n| n.to_string()),
            f.sync_peer.map(str::to_owned),
            f.real.map(|a| a.to_string()),
            f.vip.map(|a| a.to_string()),
            f.object.map(str::to_owned),
            f.reason.map(str::to_owned),
        ] {
            key.push('|');
            key.push_str(part.as_deref().unwrap_or(""));
        }
        key
    }
}

/// One event with its sequence number and `CLOCK_MONOTONIC` time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    pub seq: u64,
    pub at_ns: u64,
    #[serde(flatten)]
    pub event: Event,
}
