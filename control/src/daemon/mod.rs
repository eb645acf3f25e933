//! `tandemd`'s runtime: a router between one io_uring ring and the
//! sans-IO subsystems that decide — the pair state machine
//! ([`crate::pair`]), the IVR pool ([`crate::pool`]), the SIP OPTIONS
//! probes ([`crate::sipprobe`]), the sync sessions ([`crate::sync`]), the
//! cards ([`crate::cards`]) and the admin protocol ([`crate::admin`]). The
//! loop in [`Daemon::run`] waits on the ring, hands each completion
//! ([`token::Token`]) to its owner, and carries out what the subsystems
//! ask for; it decides nothing itself and never blocks on a client, a
//! file or RTNL (VIP address changes go to [`crate::addrworker`]'s
//! thread; admin and metrics clients are served non-blocking with a
//! budget, [`clients`]).
//!
//! The files: [`setup`] (start-up: checks first, then host changes),
//! [`token`] (what the ring waits for), `takeover` (the pair's actions
//! and their effects: VIPs, GARPs, spans, heartbeats, the witness),
//! `health` (heartbeat records into the pair and the pool, IVR and SIP
//! health into the dataplane), `synced` (sync records ↔ kernel tables),
//! `spans` (card events and calls), `echo` (echoes sent and returned),
//! `report` (status, metrics, admin
//! answers), `conns` (the connection tables a slice per answer), `zero`
//! (the views' baselines), [`timeline`] (typed events).
//!
//! Failure detection: the kernel (XDP) verifies and timestamps every
//! heartbeat in `HB_PEERS` and pushes state changes to a ring buffer. The
//! loop wakes at the pair's deadline, re-reads the per-path timestamps,
//! feeds the arrivals it finds to the state machine and lets it decide.
//!
//! Takeover: the VIP is marked owned in the dataplane (XDP answers ARP
//! for it), added to `lo` (so the stack accepts what XDP passes), and
//! announced with a burst of gratuitous ARPs; demotion reverses it. The
//! service interface runs with `arp_ignore=1`, so only XDP answers ARP for
//! the VIP.
//!
//! The kernel guards against this daemon ([`liveness`]): the loop stamps
//! the kernel every turn. A stamp older than `heartbeat.dead_man_ms`
//! fences the node: XDP answers no ARP for the VIPs and drops the traffic
//! to them (not refused with ICMP) — so a hung or stopped active leaves no
//! half-active node behind while its peer takes over, and when it wakes it
//! steps down before it sends or serves anything. A daemon killed with
//! SIGKILL loses its XDP program (the link dies with the process).

pub mod clients;
mod conns;
mod echo;
mod health;
mod liveness;
mod ready;
mod reload;
mod report;
mod restart;
pub mod setup;
mod spans;
mod synced;
mod takeover;
pub mod timeline;
pub mod token;
mod writes;
mod zero;

use std::{
    collections::{HashMap, HashSet},
    net::Ipv4Addr,
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use anyhow::Result;
use tandem_dataplane::{AttachMode, Dataplane, HeartbeatEvents, common::node::NodeState};

use crate::{
    config::Config,
    hbsend::Sender,
    pair::Pair,
    uring::{Completion, Signals},
    vip::{AddressSocket, GarpSender, Interface},
    witness::Witness,
};
use clients::Clients;
use timeline::Timeline;
pub use timeline::{Event, Stamped};
use token::{Ring, Token};

/// A VIP this node may own.
struct OwnedVip {
    addr: Ipv4Addr,
    garp: GarpSender,
    mac: [u8; 6],
    garp_count: u32,
    garp_interval: Duration,
}

/// The running daemon.
pub struct Daemon {
    cfg: Config,
    dp: Dataplane,
    pair: Pair,
    sender: Sender,
    events: HeartbeatEvents,
    ring: Ring,
    signals: Signals,
    timeline: Timeline,
    witness: Option<Witness>,
    witness_ok: bool,
    addrs: AddressSocket,
    /// VIP address changes on `lo`, off the loop (see [`crate::addrworker`]).
    addr_worker: crate::addrworker::AddressWorker,
    lo: Interface,
    vips: Vec<OwnedVip>,
    /// Heartbeat path ifindex → path number.
    paths: HashMap<u32, u8>,
    /// Per (node, ifindex): the last arrival fed to the state machine.
    seen: HashMap<(u32, u32), u64>,
    /// When the kernel's heartbeat records were last read whole
    /// ([`Daemon::refresh`]).
    refreshed_at: Instant,
    peer_id: u32,
    next_hb: Instant,
    garp_left: u32,
    state_since: Instant,
    links: crate::link::LinkMonitor,
    /// Real servers' MACs from the neighbour table (those the file leaves out).
    neigh: crate::neigh::NeighMonitor,
    /// The services as configured (operator states); the dataplane gets
    /// them with IVR health applied.
    services: Vec<tandem_dataplane::ServiceConfig>,
    /// IVR node id → (service index, real index) it serves as.
    ivr_slots: HashMap<u32, Vec<(usize, usize)>>,
    pool: crate::pool::Pool,
    /// Telephony cards whose spans follow the pair state.
    cards: Vec<crate::cards::CardManager>,
    /// Faults the pair state machine was told of, by source.
    link_fault: bool,
    card_fault: crate::cards::CardFaultFilter,
    /// State sync (None: off in the configuration).
    sync: Option<crate::sync::runtime::SyncRuntime>,
    /// The kernel's connection-table changes (with sync on).
    flow_events: Option<tandem_dataplane::FlowEvents>,
    /// The kernel's SIP Call-ID table changes (with sync on).
    call_events: Option<tandem_dataplane::CallEvents>,
    /// Channel files polled for `POLLPRI`, by (card, index), and the card
    /// generations they were taken at.
    chan_polls: HashMap<(usize, usize), crate::cards::ChannelFd>,
    chan_gens: Vec<u64>,
    /// Sync records ↔ this node's kernel tables.
    translator: crate::sync::apply::Translator,
    /// The connection poll armed: (connection id, events).
    sync_polled: Option<(u64, u32)>,
    sync_timer_at: Option<Instant>,
    /// When the pair deadline is armed for.
    pair_timer_at: Option<Instant>,
    /// SIP OPTIONS probes of the real servers (`[[service]] sip_options`).
    probes: crate::sipprobe::ProbeSet,
    probe_sock: Option<std::net::UdpSocket>,
    probe_src: Ipv4Addr,
    probe_timer_at: Option<Instant>,
    /// (service, real) whose SIP stack stopped answering.
    sip_down: HashSet<(usize, usize)>,
    /// Admin socket and metrics endpoint clients.
    clients: Clients,
    client_timer_at: Option<Instant>,
    /// Dead-man stamps, echoes, bad-MAC evidence and this loop's lateness.
    live: liveness::Liveness,
    /// Echoes sent and returned (`echo`).
    echoes: echo::Echoes,
    /// The file this daemon was started from (what a reload reads again).
    config_path: Option<std::path::PathBuf>,
    /// Configurations read and checked off the loop (`reload`).
    cfg_worker: crate::cfgworker::ConfigWorker,
    /// Reloads being read, by ticket.
    reloads: HashMap<u64, reload::Pending>,
    /// A reload's kernel writes still to make, and the reloads waiting for them.
    writes: writes::Writes,
    /// Reload answers waiting for the standby to run their change.
    standby_holds: Vec<reload::HoldWait>,
    next_ticket: u64,
    /// The running services' fingerprint ([`Config::fingerprint`]) and
    /// the text it is of ([`Config::services_toml`], what the active
    /// replicates).
    fingerprint: u64,
    services_text: String,
    /// The one the peer's heartbeats carry (None: not heard, or an older peer).
    peer_fingerprint: Option<u64>,
    /// A mismatch with the live peer's fingerprint was marked (and not
    /// cleared since).
    config_mismatch: bool,
    /// Since when the live peer's fingerprint differs (None: it does not).
    mismatch_since: Option<Instant>,
    /// The active's services being read off the loop (their fingerprint).
    peer_services_loading: Option<u64>,
    /// The heartbeat senders declared to the kernel (director and IVRs).
    senders: Vec<tandem_dataplane::HeartbeatSender>,
    /// What `tandemctl zero` made the views' zero (`zero`).
    baseline: zero::Baseline,
    /// systemd's notify socket: READY, RELOADING, STOPPING, WATCHDOG
    /// ([`crate::systemd`]; a no-op when not started by systemd).
    notify: crate::systemd::Notifier,
    /// What start-up found of a predecessor's pinned tables (`restart`).
    tables: tandem_dataplane::Tables,
    /// The layout of this process's tables (`tandem_dataplane::layout_hash`).
    layout: u64,
    /// The predecessor's active role was resumed under this epoch; the
    /// first BecomeActive finds its effects in place (`restart`).
    resuming: Option<u64>,
    /// Where start-up time goes, until the role is decided (`ready`).
    startup: crate::startup::Startup,
}

fn mono_ns() -> u64 {
    crate::clock::now_ns()
}

impl Daemon {
    /// Records an event in the timeline (printed and logged).
    fn mark(&mut self, event: Event) {
        self.timeline.record(mono_ns(), event);
    }

    /// The events recorded so far (the newest [`timeline::CAPACITY`]).
    pub fn timeline(&self) -> impl Iterator<Item = &Stamped> {
        self.timeline.iter()
    }

    pub fn state(&self) -> NodeState {
        self.pair.state()
    }

    /// The file the configuration was read from: SIGHUP and `tandemctl
    /// reload` read it again (without one, they are refused).
    pub fn set_config_path(&mut self, path: impl Into<std::path::PathBuf>) {
        self.config_path = Some(path.into());
    }

    /// What a reload does with key material others may read: refuse it
    /// (the default), or warn (`tandemd --allow-open-keys`).
    pub fn set_open_keys(&mut self, policy: crate::config::OpenKeys) {
        self.cfg_worker.set_open_keys(policy);
    }

    /// Arms every wait the loop starts with.
    fn start_waits(&mut self) -> Result<()> {
        let now = Instant::now();
        self.ring.poll(
            Token::HeartbeatRing,
            self.events.as_raw_fd(),
            libc::POLLIN as u32,
        )?;
        self.ring
            .poll(Token::Signal, self.signals.fd(), libc::POLLIN as u32)?;
        self.ring
            .poll(Token::Link, self.links.as_raw_fd(), libc::POLLIN as u32)?;
        self.ring
            .poll(Token::Neigh, self.neigh.as_raw_fd(), libc::POLLIN as u32)?;
        self.ring.arm_timeout(Token::NeighNudge, now)?;
        self.ring
            .poll(Token::AddrDone, self.addr_worker.fd(), libc::POLLIN as u32)?;
        self.ring
            .poll(Token::ConfigDone, self.cfg_worker.fd(), libc::POLLIN as u32)?;
        self.clients.start(&mut self.ring)?;
        if !self.cards.is_empty() {
            self.ring
                .arm_timeout(Token::CardAlarms, now + Duration::from_millis(50))?;
        }
        if let Some(w) = &self.witness {
            self.ring
                .poll(Token::WitnessReply, w.as_raw_fd(), libc::POLLIN as u32)?;
            self.ring.arm_timeout(Token::WitnessTick, now)?;
        }
        let listen_fds = self
            .sync
            .as_ref()
            .map(|s| s.listener_fds())
            .unwrap_or_default();
        for (i, fd) in listen_fds.into_iter().enumerate() {
            self.ring.accept(Token::SyncAccept(i), fd)?;
        }
        if let Some(f) = &self.flow_events {
            self.ring
                .poll(Token::FlowRing, f.as_raw_fd(), libc::POLLIN as u32)?;
        }
        if let Some(c) = &self.call_events {
            self.ring
                .poll(Token::CallRing, c.as_raw_fd(), libc::POLLIN as u32)?;
        }
        if let Some(s) = &self.probe_sock {
            self.ring
                .poll(Token::SipRead, s.as_raw_fd(), libc::POLLIN as u32)?;
        }
        self.cards_turn()?;
        self.ring.arm_timeout(Token::HeartbeatSend, now)?;
        if !self.ivr_slots.is_empty() {
            self.ring
                .arm_timeout(Token::PoolScan, now + self.cfg.heartbeat.interval)?;
        }
        Ok(())
    }

    /// Runs until SIGTERM/SIGINT; then releases the VIPs and detaches XDP.
    pub fn run(&mut self) -> Result<()> {
        self.mark(Event::Started {
            node_id: self.cfg.node.id,
            name: self.cfg.node.name.clone(),
        });
        self.start_waits()?;
        let down = self.links.down();
        if !down.is_empty() {
            self.mark(Event::LinksDown { names: down });
            self.link_fault = true;
            self.update_fault();
        }
        self.realtime();
        self.arm_liveness()?;
        // A resumed role's actions before any completion: the publisher
        // must exist when the ring buffers' backlog (what the dispatcher
        // did while no daemon ran) is read on the first turn.
        self.apply_actions()?;
        loop {
            // Re-armed only when the deadline moves: re-arming cancels the
            // armed timeout, and the completions of that cancel end the
            // wait below at once, so re-arming on every turn kept a
            // standby's loop spinning at 100 % CPU.
            let at = self.pair.poll_timeout();
            self.ring
                .rearm_if_moved(Token::PairDeadline, at, &mut self.pair_timer_at)?;
            let done = self.ring.submit_and_wait(1, Some(Duration::from_secs(1)))?;
            // First, before anything is sent or served: was this loop
            // stale long enough for the kernel to fence it?
            self.turn_started()?;
            self.refresh_if_stale();
            // The failover switch's watchdog: kicked while active (one ioctl, no wait).
            let active = self.pair.state() == NodeState::Active;
            for c in self.cards.iter_mut() {
                c.watchdog_turn(Instant::now(), active);
            }
            for (token, c) in done {
                let turn = Instant::now();
                if self.route(token, c)? == Flow::Stop {
                    return Ok(());
                }
                self.warn_if_slow(turn, || format!("{token:?}"));
                self.refresh_if_stale();
            }
            let turn = Instant::now();
            self.refresh_echoes();
            self.apply_actions()?;
            self.publish_card_calls();
            self.cards_turn()?;
            self.sync_turn()?;
            self.probe_turn()?;
            self.clients_turn()?;
            // systemd: READY once the role is decided, RELOADING around
            // an operator's reload, and the watchdog ping of this turn.
            let reloading = self.operator_reload_running();
            // The start-up report first: its end is not after READY's.
            self.startup_turn();
            self.notify.turn(Instant::now(), self.pair.state(), reloading);
            self.timeline.tick(mono_ns());
            self.warn_if_slow(turn, || "after the events".into());
        }
    }

    /// Hands one completion to the subsystem that owns its token.
    fn route(&mut self, token: Token, c: Completion) -> Result<Flow> {
        match token {
            Token::HeartbeatSend => {
                self.heartbeat_if_due();
                self.check_fingerprints();
                self.ring.arm_timeout(Token::HeartbeatSend, self.next_hb)?;
            }
            Token::PairDeadline => {
                self.pair_timer_at = None;
                self.refresh();
                self.pair.handle_timeout(Instant::now());
            }
            Token::PoolScan => self.on_pool_scan()?,
            Token::HeartbeatRing => {
                while let Some(r) = self.events.next_record() {
                    self.feed_record(&r);
                }
                self.ring.poll(
                    Token::HeartbeatRing,
                    self.events.as_raw_fd(),
                    libc::POLLIN as u32,
                )?;
            }
            Token::Signal => return self.on_signal(),
            Token::WitnessReply => self.on_witness_reply()?,
            Token::WitnessTick => self.on_witness_tick()?,
            Token::Garp => self.on_garp()?,
            Token::AdminAccept
            | Token::MetricsAccept
            | Token::AdminConn(_)
            | Token::MetricsConn(_)
            | Token::ClientDeadline => self.on_client(token, c)?,
            Token::Neigh => self.on_neigh()?,
            Token::NeighNudge => {
                let now = Instant::now();
                self.neigh.nudge(now);
                self.ring
                    .arm_timeout(Token::NeighNudge, now + crate::neigh::NUDGE_EVERY / 2)?;
            }
            Token::Link => {
                for (name, up) in self.links.read_changes() {
                    self.mark(Event::LinkChanged { name, up });
                }
                self.link_fault = !self.links.down().is_empty();
                self.update_fault();
                self.ring
                    .poll(Token::Link, self.links.as_raw_fd(), libc::POLLIN as u32)?;
            }
            Token::CardsStart => self.on_cards_start()?,
            Token::CardAlarms => self.on_card_alarms()?,
            Token::Channel { card, index } => self.on_channel(card, index)?,
            Token::AddrDone => {
                for d in self.addr_worker.take_done() {
                    let (micros, error) = match d.result {
                        Ok(_) => (d.took.as_micros() as u64, None),
                        Err(e) => (d.took.as_micros() as u64, Some(e.to_string())),
                    };
                    let added = d.op == crate::addrworker::Op::Add;
                    self.mark(Event::VipAddress {
                        addr: d.addr.into(),
                        interface: d.iface,
                        added,
                        micros,
                        error,
                    });
                }
                self.ring
                    .poll(Token::AddrDone, self.addr_worker.fd(), libc::POLLIN as u32)?;
            }
            Token::SyncAccept(i) => {
                if let (Some(conn), Some(sy)) = (c.accepted, self.sync.as_mut()) {
                    sy.accepted(conn, Instant::now());
                }
                if let Some(fd) = self
                    .sync
                    .as_ref()
                    .and_then(|s| s.listener_fds().get(i).copied())
                {
                    self.ring.accept(Token::SyncAccept(i), fd)?;
                }
            }
            Token::SyncConn => self.on_sync_readable(),
            Token::SyncPending(slot) => self.on_sync_pending(slot),
            Token::SyncTimer => self.sync_timer_at = None,
            Token::FlowRing => self.on_flow_ring()?,
            Token::CallRing => self.on_call_ring()?,
            Token::SipRead => {
                self.probe_replies();
                if let Some(s) = &self.probe_sock {
                    self.ring
                        .poll(Token::SipRead, s.as_raw_fd(), libc::POLLIN as u32)?;
                }
            }
            Token::SipTimer => self.probe_timer_at = None,
            Token::ConfigDone => self.on_config_done()?,
            Token::StandbyHold => self.on_standby_hold_timeout()?,
            Token::ApplyMore => self.write_some()?,
        }
        Ok(Flow::Continue)
    }

    /// SIGTERM/SIGINT stop the daemon; SIGHUP reloads the configuration
    /// file (its default action would kill an active node).
    fn on_signal(&mut self) -> Result<Flow> {
        let signals = self.signals.read().unwrap_or_else(|e| {
            tracing::error!("reading the signalfd: {e}");
            Vec::new()
        });
        let mut stop = None;
        for s in signals {
            if s == nix::sys::signal::Signal::SIGHUP {
                if let Err(reason) = self.start_reload(reload::Origin::Signal, false) {
                    self.mark(Event::ReloadRefused {
                        source: "SIGHUP".into(),
                        reason,
                    });
                }
            } else {
                stop = Some(s);
            }
        }
        if let Some(s) = stop {
            self.notify.stopping();
            // SIGTERM (systemd's stop and restart, a package upgrade)
            // leaves the node to the next process where it can; SIGINT
            // stops the node.
            match self.restart_dir() {
                Some(dir) if s == nix::sys::signal::Signal::SIGTERM => self.stop_for_restart(dir),
                _ => {
                    self.mark(Event::ShuttingDown {
                        signal: s.as_str().into(),
                    });
                    self.shutdown()?;
                }
            }
            return Ok(Flow::Stop);
        }
        self.ring
            .poll(Token::Signal, self.signals.fd(), libc::POLLIN as u32)?;
        Ok(Flow::Continue)
    }

    fn warn_if_slow(&mut self, since: Instant, during: impl FnOnce() -> String) {
        let took = since.elapsed();
        if took > self.cfg.heartbeat.interval * 2 {
            self.mark(Event::SlowTurn {
                micros: took.as_micros() as u64,
                during: during(),
            });
        }
    }

    /// Real-time scheduling for the loop once setup is done (the program
    /// load before it is CPU-heavy and must not run at a real-time
    /// priority), and memory locked so that a page fault cannot delay a
    /// heartbeat.
    fn realtime(&mut self) {
        let prio = self.cfg.node.realtime_priority;
        if prio == 0 {
            return;
        }
        let param = libc::sched_param {
            sched_priority: i32::from(prio),
        };
        // SAFETY: plain syscalls on the calling thread with a valid param.
        let (rc, locked) = unsafe {
            (
                libc::sched_setscheduler(0, libc::SCHED_FIFO, &param),
                libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE),
            )
        };
        let error = (rc != 0).then(|| std::io::Error::last_os_error().to_string());
        self.mark(Event::Realtime {
            priority: prio,
            ok: rc == 0,
            locked: locked == 0,
            error,
        });
    }

    fn shutdown(&mut self) -> Result<()> {
        self.disarm_liveness();
        for c in self.cards.iter_mut() {
            if let Err(e) = c.shutdown_spans() {
                tracing::error!("card {}: shutting spans down: {e}", c.root().display());
            }
            c.watchdog_turn(Instant::now(), false);
        }
        // Pending address changes first, so that the removals below are last.
        self.addr_worker.finish();
        for i in 0..self.vips.len() {
            let (addr, mac) = (self.vips[i].addr, self.vips[i].mac);
            if let Err(e) = self.dp.set_vip_owned(addr, mac, false) {
                tracing::error!("vip {addr}: releasing ownership in the dataplane: {e}");
            }
            if let Err(e) = self.addrs.remove(&self.lo, addr) {
                tracing::error!("vip {addr}: removing it from lo: {e}");
            }
        }
        self.dp.detach_all()?;
        self.clients.remove_socket(&self.cfg.admin.socket);
        Ok(())
    }
}

/// Whether the loop goes on after a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// `AttachMode` re-exported for the binary.
pub fn attach_mode(s: &str) -> Option<AttachMode> {
    AttachMode::parse(s)
}
