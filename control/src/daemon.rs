//! `tandemd`'s runtime: the thin shell around the sans-IO pair state
//! machine ([`crate::pair`]). One io_uring loop ([`crate::uring`]) waits on
//! the heartbeat send timer, the pair's deadline, the kernel's heartbeat
//! ring buffer, the witness probe, the admin socket and SIGTERM/SIGINT.
//!
//! Failure detection: the kernel (XDP) verifies and timestamps every
//! heartbeat in `HB_PEERS` and pushes state changes to a ring buffer. The
//! loop wakes at the pair's deadline, re-reads the per-path timestamps,
//! feeds the arrivals it finds to the state machine and lets it decide.
//! This costs one map read per deadline instead of one wakeup per
//! heartbeat, and its precision is the io_uring timer's (tens of µs; see
//! `uring`'s timing test), well inside the 5 ms budget. A BPF timer in the
//! kernel would still need a ring-buffer wakeup to reach this loop, so it
//! would not shorten the path from silence to takeover.
//!
//! Takeover: the VIP is marked owned in the dataplane (XDP answers ARP
//! for it), added to `lo` (so the stack accepts what XDP passes), and
//! announced with a burst of gratuitous ARPs; demotion reverses it. The
//! service interface runs with `arp_ignore=1`, so only XDP answers ARP for
//! the VIP: a daemon killed with SIGKILL loses its XDP program (the link
//! dies with the process) and stops answering for the VIP at once, which
//! is what keeps a dead active from competing with the new one.

use std::{
    collections::HashMap,
    io::{BufRead, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    os::fd::{AsRawFd, OwnedFd, RawFd},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use tandem_dataplane::{
    AttachMode, Dataplane, HeartbeatEvents, LoadOptions,
    common::{
        HbPeer,
        heartbeat::{Key, Kind},
        node::NodeState,
    },
};

use crate::{
    admin,
    config::Config,
    hbsend::{PathSpec, Sender},
    pair::{Action, Event, Pair, PairConfig},
    uring::{Reactor, Signals},
    vip::{AddressSocket, GarpSender, Interface},
    witness::Witness,
};

const T_HB: u64 = 1;
const T_PAIR: u64 = 2;
const T_RING: u64 = 3;
const T_SIGNAL: u64 = 4;
const T_WITNESS_REPLY: u64 = 5;
const T_WITNESS_DEADLINE: u64 = 6;
const T_GARP: u64 = 7;
const T_ADMIN: u64 = 8;
const T_LOG: u64 = 9;
const T_LINK: u64 = 10;
const T_POOL: u64 = 11;
const T_CARDS: u64 = 12;
const T_CARD_ALARMS: u64 = 13;
const T_WITNESS_TICK: u64 = 14;
const T_ADDR: u64 = 15;
/// Sync listeners: `T_SYNC_ACCEPT_BASE + index`.
const T_SYNC_ACCEPT_BASE: u64 = 1000;
const T_SYNC_CONN: u64 = 17;
const T_SYNC_TIMER: u64 = 18;
const T_FLOW_RING: u64 = 19;
const T_CALL_RING: u64 = 20;
const T_SIP_READ: u64 = 21;
const T_SIP_TIMER: u64 = 22;
const T_METRICS: u64 = 23;
/// Channel polls: `T_CHAN_BASE + card × 65536 + index`.
const T_CHAN_BASE: u64 = 1 << 32;

/// One entry of the timeline the daemon keeps (and prints with `-v`).
#[derive(Clone, Debug)]
pub struct Mark {
    pub at_ns: u64,
    pub what: String,
}

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
    reactor: Reactor,
    signals: Signals,
    witness: Option<Witness>,
    /// A takeover waits for a witness reply to a probe sent at or after
    /// this time.
    witness_need: Option<Instant>,
    /// Send time of the newest probe the witness answered.
    witness_answered: Option<Instant>,
    addrs: AddressSocket,
    /// VIP address changes on `lo`, off the loop (see [`crate::addrworker`]).
    addr_worker: crate::addrworker::AddressWorker,
    lo: Interface,
    vips: Vec<OwnedVip>,
    /// Heartbeat path ifindex → path number.
    paths: HashMap<u32, u8>,
    /// Per (node, ifindex): the last arrival fed to the state machine.
    seen: HashMap<(u32, u32), u64>,
    peer_id: u32,
    next_hb: Instant,
    garp_left: u32,
    admin: Option<std::os::unix::net::UnixListener>,
    pub timeline: Vec<Mark>,
    #[allow(dead_code)]
    started: Instant,
    state_since: Instant,
    witness_ok: bool,
    links: crate::link::LinkMonitor,
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
    card_fault: bool,
    /// The card fault clears then (hold-down), unless raised again.
    card_clear_at: Option<Instant>,
    /// State sync (None: off in the configuration).
    sync: Option<crate::syncrt::SyncRuntime>,
    /// The kernel's connection-table changes (with sync on).
    flow_events: Option<tandem_dataplane::FlowEvents>,
    /// The kernel's SIP Call-ID table changes (with sync on).
    call_events: Option<tandem_dataplane::CallEvents>,
    /// Channel files polled for `POLLPRI`: token → (card, channel), and the
    /// card generations they were taken at.
    chan_polls: HashMap<u64, (usize, crate::cards::ChannelFd)>,
    chan_gens: Vec<u64>,
    /// Service id → (its key, real server by slot), for flow records.
    svc_cache: HashMap<u32, (crate::sync::VirtualService, Vec<Option<(IpAddr, u16)>>)>,
    /// The connection poll armed: (connection id, events).
    sync_polled: Option<(u64, u32)>,
    sync_timer_at: Option<Instant>,
    /// When T_PAIR is armed for (the pair's deadline last armed).
    pair_timer_at: Option<Instant>,
    /// SIP OPTIONS probes of the real servers (`[[service]] sip_options`).
    probes: crate::sipprobe::ProbeSet,
    probe_sock: Option<std::net::UdpSocket>,
    probe_src: Ipv4Addr,
    probe_timer_at: Option<Instant>,
    /// (service, real) whose SIP stack stopped answering.
    sip_down: std::collections::HashSet<(usize, usize)>,
    /// The Prometheus endpoint (`[admin] metrics_listen`).
    metrics: Option<std::net::TcpListener>,
}

/// The services with health applied: a real server whose IVR is dead (its
/// heartbeat) or whose SIP stack does not answer (OPTIONS probes) is down
/// (no new flows) whatever its configured state.
fn effective(
    services: &[tandem_dataplane::ServiceConfig],
    ivr_slots: &HashMap<u32, Vec<(usize, usize)>>,
    pool: &crate::pool::Pool,
    sip_down: &std::collections::HashSet<(usize, usize)>,
) -> Vec<tandem_dataplane::ServiceConfig> {
    let mut out = services.to_vec();
    for (si, ri) in sip_down {
        out[*si].reals[*ri].state = tandem_dataplane::RealState::Down;
    }
    for (node, places) in ivr_slots {
        let alive = pool.member(*node).is_some_and(|m| m.alive);
        if !alive {
            for (si, ri) in places {
                out[*si].reals[*ri].state = tandem_dataplane::RealState::Down;
            }
        }
    }
    out
}

fn ip_of(a: &[u8; 16]) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(*a);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

fn mono_ns() -> u64 {
    tandem_dataplane::monotonic_ns()
}

/// The `Instant` of a CLOCK_MONOTONIC nanosecond timestamp (both are the
/// same clock on Linux).
fn instant_of(ns: u64) -> Instant {
    let now_ns = mono_ns();
    let now = Instant::now();
    now.checked_sub(Duration::from_nanos(now_ns.saturating_sub(ns))).unwrap_or(now)
}

fn sysctl(key: &str, value: &str) {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let _ = std::fs::write(path, value);
}

impl Daemon {
    /// Checks everything, then sets the node up: loads and attaches XDP,
    /// configures services and heartbeats, opens the sockets. Nothing is
    /// changed if the configuration is refused.
    pub fn new(cfg: Config) -> Result<Daemon> {
        let ifindex = |n: &str| crate::config::ifindex(n);
        let services = cfg.dataplane_services(&ifindex).context("services")?;
        let peer_id = cfg.node.peer_id;
        // IVR servers that send heartbeats: (service, real) by node id.
        let mut ivr_slots: HashMap<u32, Vec<(usize, usize)>> = HashMap::new();
        for (si, s) in cfg.services.iter().enumerate() {
            for (ri, r) in s.reals.iter().enumerate() {
                if let Some(n) = r.node_id {
                    ivr_slots.entry(n).or_default().push((si, ri));
                }
            }
        }
        let pool = crate::pool::Pool::new(ivr_slots.keys().copied(), cfg.heartbeat.deadline());
        let mut dp = Dataplane::load(LoadOptions { flow_entries: cfg.dataplane.flow_entries, nat_entries: cfg.dataplane.flow_entries })
            .context("loading the XDP object")?;
        for s in &effective(&services, &ivr_slots, &pool, &Default::default()) {
            dp.set_service(s).with_context(|| format!("service {}", s.name()))?;
        }
        let key = Key::from_bytes(&cfg.heartbeat.key);
        dp.set_heartbeat(&key, cfg.heartbeat.port)?;
        dp.add_heartbeat_node(peer_id, Kind::Director)?;
        for n in ivr_slots.keys() {
            dp.add_heartbeat_node(*n, Kind::Ivr)?;
        }
        let mode = match cfg.dataplane.xdp_mode {
            m => m,
        };
        for iface in &cfg.dataplane.interfaces {
            dp.attach(iface, mode).with_context(|| format!("attaching XDP to {iface}"))?;
        }
        let mut paths = HashMap::new();
        let mut specs = Vec::new();
        for (i, p) in cfg.heartbeat.paths.iter().enumerate() {
            let idx = ifindex(&p.interface).with_context(|| format!("heartbeat path {}: no interface {}", p.name, p.interface))?;
            paths.insert(idx, i as u8);
            specs.push(PathSpec {
                index: i as u8,
                local: SocketAddr::new(IpAddr::V4(p.local), 0),
                peer: SocketAddr::new(IpAddr::V4(p.peer), cfg.heartbeat.port),
            });
        }
        let sender = Sender::new(key, cfg.node.id, Kind::Director, &specs).context("heartbeat sockets")?;
        let events = dp.take_heartbeat_events().context("heartbeat ring buffer")?;
        let mut vips = Vec::new();
        for v in &cfg.vips {
            let iface = Interface::by_name(&v.interface)?;
            let garp = GarpSender::open(&iface, v.address)?;
            let mac = garp.mac();
            // Only XDP answers ARP for the VIP (see the module doc).
            sysctl(&format!("net.ipv4.conf.{}.arp_ignore", v.interface), "1");
            sysctl(&format!("net.ipv4.conf.{}.arp_announce", v.interface), "2");
            vips.push(OwnedVip { addr: v.address, garp, mac, garp_count: v.garp_count, garp_interval: v.garp_interval });
        }
        let mut addrs = AddressSocket::open()?;
        let lo = Interface::by_name("lo")?;
        // A previous daemon killed while active may have left the VIPs on lo.
        for v in &vips {
            addrs.remove(&lo, v.addr)?;
        }
        let witness = match &cfg.witness {
            Some(w) => Some(Witness::new(w.address)?),
            None => None,
        };
        let now = Instant::now();
        let pair = Pair::new(
            PairConfig {
                node_id: cfg.node.id,
                priority: cfg.node.priority,
                preempt: cfg.node.preempt,
                interval: cfg.heartbeat.interval,
                multiplier: cfg.heartbeat.multiplier,
                paths: cfg.heartbeat.paths.len() as u8,
                witness: witness.is_some(),
                init_hold: cfg.heartbeat.deadline() * 2,
            },
            now,
        );
        let mut watched = Vec::new();
        for v in &cfg.vips {
            if let Some(i) = ifindex(&v.interface)
                && !watched.iter().any(|(n, _): &(String, u32)| *n == v.interface)
            {
                watched.push((v.interface.clone(), i));
            }
        }
        let links = crate::link::LinkMonitor::new(&watched).context("link monitor")?;
        let mut cards = Vec::new();
        for c in &cfg.cards {
            let mut m = crate::cards::CardManager::open(c).with_context(|| format!("card {}", c.root.display()))?;
            // Spans start shut down: only the active node drives them.
            m.shutdown_spans().with_context(|| format!("card {}: shutting spans down", c.root.display()))?;
            m.arm().with_context(|| format!("card {}: arming", c.root.display()))?;
            cards.push(m);
        }
        let (sync, flow_events) = match &cfg.sync {
            Some(sc) => {
                let rt = crate::syncrt::SyncRuntime::new(
                    cfg.node.id,
                    key.clone(),
                    &sc.local.iter().map(|a| SocketAddr::new(*a, sc.port)).collect::<Vec<_>>(),
                    &sc.peer.iter().map(|a| SocketAddr::new(*a, sc.port)).collect::<Vec<_>>(),
                )?;
                dp.set_flow_events(true).context("turning flow events on")?;
                (Some(rt), Some(dp.take_flow_events().context("flow ring buffer")?))
            }
            None => (None, None),
        };
        let call_events = if sync.is_some() { dp.take_call_events() } else { None };
        // SIP OPTIONS probes: from the director's address on the service
        // network (the heartbeat path on the VIP's interface).
        let mut targets = Vec::new();
        for (si, s) in cfg.services.iter().enumerate() {
            let (Some(pc), IpAddr::V4(vip)) = (s.sip_options, s.vip) else { continue };
            for (ri, r) in s.reals.iter().enumerate() {
                let IpAddr::V4(addr) = r.address else { continue };
                targets.push(crate::sipprobe::Target {
                    service: si,
                    real: ri,
                    vip,
                    vport: s.port,
                    addr,
                    port: r.port,
                    mac: r.mac,
                    dr: s.forward == tandem_dataplane::common::Forward::Dr,
                    cfg: pc,
                });
            }
        }
        let probe_src = cfg
            .vips
            .first()
            .and_then(|v| cfg.heartbeat.paths.iter().find(|p| p.interface == v.interface))
            .map_or(Ipv4Addr::UNSPECIFIED, |p| p.local);
        if targets.iter().any(|t| t.dr) && (probe_src.is_unspecified() || cfg.vips.is_empty()) {
            anyhow::bail!("sip_options on a DR service needs a VIP and a heartbeat path on its interface (the probes' source address)");
        }
        if targets.iter().any(|t| t.dr)
            && let Some(v) = cfg.vips.first()
        {
            // A DR server answers the probe from the VIP, which the active
            // node has on lo: without accept_local the kernel drops the
            // answer as a martian (a packet from one of its own addresses).
            sysctl(&format!("net.ipv4.conf.{}.accept_local", v.interface), "1");
        }
        let probe_sock = if targets.is_empty() {
            None
        } else {
            let sock = std::net::UdpSocket::bind((probe_src, 0)).with_context(|| format!("SIP probe socket on {probe_src}"))?;
            sock.set_nonblocking(true)?;
            Some(sock)
        };
        let probes = crate::sipprobe::ProbeSet::new(targets, Instant::now());
        let metrics = match cfg.admin.metrics_listen {
            Some(a) => {
                let l = std::net::TcpListener::bind(a).with_context(|| format!("admin.metrics_listen: listening on {a}"))?;
                l.set_nonblocking(true)?;
                Some(l)
            }
            None => None,
        };
        let admin = match crate::admin::bind(&cfg.admin.socket) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!("admin socket {}: {e}", cfg.admin.socket.display());
                None
            }
        };
        Ok(Daemon {
            reactor: Reactor::new(64)?,
            signals: Signals::termination()?,
            dp,
            pair,
            sender,
            events,
            witness,
            witness_need: None,
            witness_answered: None,
            addrs,
            addr_worker: crate::addrworker::AddressWorker::start().context("VIP address worker")?,
            lo,
            vips,
            paths,
            seen: HashMap::new(),
            peer_id,
            next_hb: now,
            garp_left: 0,
            admin,
            timeline: Vec::new(),
            started: now,
            state_since: now,
            witness_ok: false,
            links,
            services,
            ivr_slots,
            pool,
            cards,
            link_fault: false,
            card_fault: false,
            card_clear_at: None,
            sync,
            flow_events,
            call_events,
            chan_polls: HashMap::new(),
            chan_gens: Vec::new(),
            svc_cache: HashMap::new(),
            sync_polled: None,
            sync_timer_at: None,
            pair_timer_at: None,
            probes,
            probe_sock,
            probe_src,
            probe_timer_at: None,
            sip_down: Default::default(),
            metrics,
            cfg,
        })
    }

    fn mark(&mut self, what: String) {
        let at_ns = mono_ns();
        tracing::info!("{what}");
        println!("{at_ns} {what}");
        let _ = std::io::stdout().flush();
        self.timeline.push(Mark { at_ns, what });
    }

    /// Feeds the kernel's heartbeat records that are newer than what the
    /// state machine has seen.
    fn refresh(&mut self) {
        for p in self.dp.heartbeat_peers() {
            self.feed(&p);
        }
    }

    fn feed(&mut self, p: &HbPeer) {
        // Each kernel record is fed once: `instant_of` converts the same
        // stamp to a slightly different Instant on every call, and a stale
        // record fed again would look like a new heartbeat (a dead IVR
        // flapped alive for an instant on every refresh).
        let last = self.seen.entry((p.node_id, p.ifindex)).or_insert(0);
        if p.last_seen_ns <= *last {
            return;
        }
        if p.kind == Kind::Ivr as u8 {
            *last = p.last_seen_ns;
            let mut changes = Vec::new();
            self.pool.heard(p.node_id, instant_of(p.last_seen_ns), (p.active_channels, p.capacity), &mut changes);
            self.apply_pool(changes);
            return;
        }
        if p.node_id != self.peer_id {
            return;
        }
        let Some(path) = self.paths.get(&p.ifindex).copied() else {
            return;
        };
        self.seen.insert((p.node_id, p.ifindex), p.last_seen_ns);
        let Some(state) = NodeState::from_u8(p.state) else {
            return;
        };
        let ev = Event::Heartbeat { path, from: p.node_id, state, epoch: p.epoch, priority: p.priority };
        self.pair.handle(ev, instant_of(p.last_seen_ns));
    }

    /// Tells the state machine whether this node has a local fault (a
    /// service link down, a card alarm), on changes only.
    fn update_fault(&mut self) {
        // The state machine decides a local fault on what it knows of the
        // peer: read the kernel's heartbeat records first (an active node
        // otherwise only re-reads them at its deadlines).
        self.refresh();
        let now = Instant::now();
        let want = if self.link_fault {
            Some(crate::pair::FaultKind::InterfaceDown)
        } else if self.card_fault {
            Some(crate::pair::FaultKind::CardAlarm)
        } else {
            None
        };
        match (want, self.pair.local_fault()) {
            (Some(k), None) => self.pair.handle(Event::LocalFault(k), now),
            (None, Some(_)) => self.pair.handle(Event::LocalFaultCleared, now),
            _ => {}
        }
    }

    /// Applies IVR health and load changes to the dataplane.
    fn apply_pool(&mut self, changes: Vec<crate::pool::Change>) {
        let mut touched = Vec::new();
        for c in changes {
            match c {
                crate::pool::Change::Health { node_id, alive } => {
                    self.mark(format!("ivr node {node_id} {}", if alive { "alive" } else { "dead: no new flows" }));
                    for (si, _) in self.ivr_slots.get(&node_id).cloned().unwrap_or_default() {
                        if !touched.contains(&si) {
                            touched.push(si);
                        }
                    }
                }
                crate::pool::Change::Load { node_id, active, capacity } => {
                    for (si, ri) in self.ivr_slots.get(&node_id).cloned().unwrap_or_default() {
                        let s = &self.services[si];
                        if s.flags & tandem_dataplane::common::FLAG_REPORTED_LOAD == 0 {
                            continue;
                        }
                        if let Some(img) = self.dp.service(&s.key())
                            && let Some(slot) = img.slot_of(s.reals[ri].addr, s.reals[ri].port)
                        {
                            let id = img.service.id;
                            let _ = self.dp.set_real_load(id, slot, tandem_dataplane::common::RealLoad { active, capacity });
                        }
                    }
                }
            }
        }
        if touched.is_empty() {
            return;
        }
        self.push_services(touched);
    }

    /// Writes these services, with health applied, to the dataplane.
    fn push_services(&mut self, touched: Vec<usize>) {
        let eff = effective(&self.services, &self.ivr_slots, &self.pool, &self.sip_down);
        self.svc_cache.clear();
        for si in touched {
            if let Err(e) = self.dp.set_service(&eff[si]) {
                tracing::error!("service {}: {e}", eff[si].name());
            }
        }
    }

    /// Spacing of the gratuitous ARPs of a takeover burst.
    fn garp_gap(&self) -> Duration {
        self.vips.first().map_or(Duration::from_millis(10), |v| v.garp_interval)
    }

    fn arm(&mut self, token: u64, at: Instant) -> Result<()> {
        if self.reactor.is_armed(token) {
            self.reactor.cancel(token)?;
        }
        self.reactor.arm_timeout(token, at)?;
        Ok(())
    }

    fn apply_actions(&mut self) -> Result<()> {
        while let Some(a) = self.pair.poll_action() {
            match a {
                Action::StateChanged { from, to, epoch } => {
                    self.state_since = Instant::now();
                    let why = if to == NodeState::Takeover {
                        // What the kernel last recorded of the peer, per path.
                        let now_ns = mono_ns();
                        let heard: Vec<String> = self
                            .dp
                            .heartbeat_peers()
                            .iter()
                            .filter(|p| p.node_id == self.peer_id)
                            .map(|p| format!("{:.1} ms ago on ifindex {}", now_ns.saturating_sub(p.last_seen_ns) as f64 / 1e6, p.ifindex))
                            .collect();
                        format!(" (peer last heard {})", heard.join(", "))
                    } else {
                        String::new()
                    };
                    self.mark(format!("state {} -> {} (epoch {epoch}){why}", from.name(), to.name()));
                    if let Some(sy) = self.sync.as_mut() {
                        if to == NodeState::Active {
                            sy.become_publisher(epoch, Instant::now());
                        } else if to != NodeState::Takeover {
                            sy.become_subscriber(epoch, Instant::now());
                        }
                    }
                }
                Action::BecomeActive { epoch } => {
                    // The dataplane owns the VIP and the first GARP leaves;
                    // the address on lo follows from the worker thread.
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
                        self.arm(T_GARP, at)?;
                    }
                    self.mark(format!("takeover done: VIPs owned, GARP sent (epoch {epoch}; {} µs)", t.elapsed().as_micros()));
                    if !self.cards.is_empty() {
                        // The calls the synced records say were up on our
                        // channels: picked up as the trunk arrives.
                        let expected = self.synced_card_calls();
                        for (i, c) in self.cards.iter_mut().enumerate() {
                            let calls: Vec<crate::cards::CallEvent> = expected.iter().filter(|(card, _)| *card == i).map(|(_, e)| *e).collect();
                            if !calls.is_empty() {
                                tracing::info!("card {}: expecting {} calls", c.root().display(), calls.len());
                            }
                            if let Err(e) = c.expect_calls(&calls) {
                                tracing::error!("card {}: {e}", c.root().display());
                            }
                        }
                        let now = Instant::now();
                        for c in self.cards.iter_mut() {
                            let deadline = now + c.takeover_deadline();
                            if let Err(e) = c.begin_start(deadline) {
                                tracing::error!("card {}: {e}", c.root().display());
                            }
                        }
                        self.arm(T_CARDS, now + Duration::from_micros(200))?;
                    }
                    // Tell the peer at once.
                    self.send_heartbeats();
                }
                Action::BecomeStandby => {
                    // Spans first: the peer must find the trunk free.
                    for c in self.cards.iter_mut() {
                        if let Err(e) = c.shutdown_spans() {
                            tracing::error!("card {}: {e}", c.root().display());
                        }
                    }
                    if !self.cards.is_empty() {
                        self.mark("spans shut down".into());
                    }
                    for i in 0..self.vips.len() {
                        let (addr, mac) = (self.vips[i].addr, self.vips[i].mac);
                        self.dp.set_vip_owned(addr, mac, false)?;
                        self.addr_worker.request(crate::addrworker::Op::Remove, &self.lo, addr, 32);
                    }
                    self.garp_left = 0;
                    self.mark("released VIPs".into());
                    // Ready the shut-down spans for a fast takeover, after
                    // the release so that it does not delay it.
                    for c in self.cards.iter_mut() {
                        if let Err(e) = c.arm() {
                            tracing::error!("card {}: {e}", c.root().display());
                        }
                    }
                    self.send_heartbeats();
                }
                Action::SendGarp => {
                    for v in &self.vips {
                        v.garp.send_garp()?;
                    }
                    self.mark("GARP re-sent".into());
                }
                Action::ProbeWitness => {
                    let now = Instant::now();
                    // The witness must have answered a probe sent after the
                    // peer missed heartbeats: then our service network
                    // worked while the peer was silent on it. The standby's
                    // continuous probes usually satisfy this already.
                    let hb = &self.cfg.heartbeat;
                    let need = self
                        .pair
                        .peer()
                        .and_then(|p| p.paths.iter().filter_map(|pp| pp.last_seen).max())
                        .map_or(now, |t| t + hb.interval * hb.multiplier.saturating_sub(1));
                    match self.witness.as_mut() {
                        Some(_) if self.witness_answered.is_some_and(|t| t >= need) => {
                            self.witness_ok = true;
                            self.mark("witness answered after the peer fell silent".into());
                            self.pair.handle(Event::Witness { reachable: true }, now);
                        }
                        Some(w) => {
                            w.send()?;
                            let fd = w.as_raw_fd();
                            self.witness_need = Some(need);
                            self.mark("probing the witness".into());
                            if !self.reactor.is_armed(T_WITNESS_REPLY) {
                                self.reactor.poll(T_WITNESS_REPLY, fd, libc::POLLIN as u32)?;
                            }
                            let wait = (self.cfg.heartbeat.interval * 20).max(Duration::from_millis(20));
                            self.arm(T_WITNESS_DEADLINE, now + wait)?;
                        }
                        None => self.pair.handle(Event::Witness { reachable: true }, now),
                    }
                }
            }
        }
        Ok(())
    }

    /// The sync record of a connection-table change from the kernel.
    fn flow_record(&mut self, ev: &tandem_dataplane::common::FlowEvent) -> Option<crate::sync::Record> {
        use tandem_dataplane::common::{FLOW_EVENT_NEW, FLOW_EVENT_REMOVED};
        match ev.kind {
            FLOW_EVENT_REMOVED => Some(crate::sync::Record::FlowRemoved(ev.key)),
            FLOW_EVENT_NEW => {
                let (vs, (addr, port)) = self.service_real(ev.value.service_id, ev.value.real_idx as usize)?;
                let real_addr = mapped(addr);
                let age_ms = (tandem_dataplane::monotonic_coarse_ns().saturating_sub(ev.value.created_ns) / 1_000_000).min(u32::MAX as u64) as u32;
                Some(crate::sync::Record::Flow(crate::sync::FlowRecord {
                    key: ev.key,
                    service: vs,
                    real_addr,
                    real_port: port,
                    age_ms,
                    flags: ev.value.flags,
                }))
            }
            _ => None,
        }
    }

    /// The sync record of a SIP Call-ID table change from the kernel. The
    /// record's id is the Call-ID, `ivr` the real server's address, and
    /// `flow` names the virtual service (destination VIP, port and
    /// protocol; no source): enough for the standby to route the dialog's
    /// next message to the same IVR.
    fn sip_call_record(&mut self, ev: &tandem_dataplane::common::CallEvent) -> Option<crate::sync::Record> {
        use tandem_dataplane::common::{CALL_EVENT_NEW, CALL_EVENT_REMOVED};
        let id = String::from_utf8_lossy(ev.callid()).into_owned();
        if id.is_empty() {
            return None;
        }
        match ev.kind {
            CALL_EVENT_REMOVED => Some(crate::sync::Record::CallRemoved(id)),
            CALL_EVENT_NEW => {
                let (vs, addr) = self.service_real(ev.service_id, ev.real_idx as usize)?;
                let ms = wall_ms();
                Some(crate::sync::Record::Call(crate::sync::CallRecord {
                    id,
                    channel: None,
                    flow: Some(tandem_dataplane::common::FlowKey::new([0; 16], vs.addr, 0, vs.port, vs.proto)),
                    ivr: Some(mapped(addr.0)),
                    state: crate::sync::CallState::Ringing,
                    created_ms: ms,
                    updated_ms: ms,
                }))
            }
            _ => None,
        }
    }

    /// A service's key and one of its real servers' address, by this
    /// node's ids (cached; refreshed on a miss).
    fn service_real(&mut self, id: u32, slot: usize) -> Option<(crate::sync::VirtualService, (IpAddr, u16))> {
        if !self.svc_cache.get(&id).is_some_and(|(_, slots)| slots.get(slot).is_some_and(|s| s.is_some())) {
            self.svc_cache = self
                .dp
                .services()
                .map(|img| {
                    let vs = crate::sync::VirtualService { addr: img.key.addr, port: img.key.port, proto: img.key.proto };
                    (img.service.id, (vs, img.slot_ids.clone()))
                })
                .collect();
        }
        let (vs, slots) = self.svc_cache.get(&id)?;
        Some((*vs, (*slots.get(slot)?)?))
    }

    /// The card call records of the synced store, by card index.
    fn synced_card_calls(&self) -> Vec<(usize, crate::cards::CallEvent)> {
        let Some(sy) = &self.sync else {
            return Vec::new();
        };
        sy.store()
            .calls()
            .filter_map(|c| {
                let (card, _, _) = parse_card_call_id(&c.id)?;
                let ch = c.channel?;
                Some((card, crate::cards::CallEvent { span: ch.span, channel: ch.channel, state: card_state(c.state), at_ms: c.updated_ms }))
            })
            .collect()
    }

    /// Publishes the call events of the cards (active node), answering
    /// incoming calls first on cards with `auto_answer`.
    fn publish_card_calls(&mut self) {
        let mut records = Vec::new();
        for (i, c) in self.cards.iter_mut().enumerate() {
            let mut events = c.take_call_events();
            if self.cfg.cards.get(i).is_some_and(|cc| cc.auto_answer) {
                for e in events.clone() {
                    if e.state == crate::cards::CallState::Ringing && c.call_state(e.span, e.channel) == Some(crate::cards::CallState::Ringing) {
                        match c.answer(e.span, e.channel) {
                            Ok(()) => events.extend(c.take_call_events()),
                            Err(err) => tracing::debug!("auto answer: {err}"),
                        }
                    }
                }
            }
            for e in events {
                let id = card_call_id(i, e.span, e.channel);
                if e.state == crate::cards::CallState::Idle {
                    records.push(crate::sync::Record::CallRemoved(id));
                } else {
                    records.push(crate::sync::Record::Call(crate::sync::CallRecord {
                        id,
                        channel: Some(crate::sync::ChannelRef { span: e.span, channel: e.channel }),
                        flow: None,
                        ivr: None,
                        state: sync_state(e.state),
                        created_ms: e.at_ms,
                        updated_ms: e.at_ms,
                    }));
                }
            }
        }
        if records.is_empty() {
            return;
        }
        if let Some(sy) = self.sync.as_mut() {
            let now = Instant::now();
            for r in records {
                sy.record(r, now);
            }
        }
    }

    /// Polls the cards' channel files for `POLLPRI`, again whenever a card's
    /// set of open channels changed.
    fn cards_turn(&mut self) -> Result<()> {
        let gens: Vec<u64> = self.cards.iter().map(|c| c.generation()).collect();
        if gens == self.chan_gens {
            return Ok(());
        }
        for t in self.chan_polls.keys().copied().collect::<Vec<_>>() {
            if self.reactor.is_armed(t) {
                self.reactor.cancel(t)?;
            }
        }
        self.chan_polls.clear();
        for (i, c) in self.cards.iter().enumerate() {
            for (j, ch) in c.channel_fds().into_iter().enumerate() {
                let token = T_CHAN_BASE + ((i as u64) << 16) + j as u64;
                self.reactor.poll(token, ch.fd, libc::POLLPRI as u32)?;
                self.chan_polls.insert(token, (i, ch));
            }
        }
        self.chan_gens = gens;
        Ok(())
    }

    /// Writes what the subscriber received into the kernel's tables.
    fn apply_synced(&mut self, applied: Vec<crate::sync::Applied>) {
        let (mut ok, mut refused) = (0u64, 0u64);
        for (i, a) in applied.into_iter().enumerate() {
            if i % 64 == 63 {
                self.heartbeat_if_due();
            }
            match a.record {
                crate::sync::Record::Flow(f) => {
                    let created = tandem_dataplane::monotonic_coarse_ns().saturating_sub(u64::from(f.age_ms) * 1_000_000);
                    match self.dp.upsert_synced_flow(&f.key, &f.service.service_key(), (ip_of(&f.real_addr), f.real_port), created, f.flags) {
                        Ok(true) => ok += 1,
                        Ok(false) => refused += 1,
                        Err(e) => {
                            refused += 1;
                            tracing::error!("sync: writing a flow: {e}");
                        }
                    }
                }
                crate::sync::Record::FlowRemoved(k) => {
                    if let Err(e) = self.dp.remove_synced_flow(&k) {
                        tracing::error!("sync: removing a flow: {e}");
                    }
                    ok += 1;
                }
                crate::sync::Record::Call(c) if c.channel.is_none() => match self.apply_sip_call(&c) {
                    Ok(true) => ok += 1,
                    Ok(false) => refused += 1,
                    Err(e) => {
                        refused += 1;
                        tracing::error!("sync: writing call {}: {e}", c.id);
                    }
                },
                crate::sync::Record::CallRemoved(id) if parse_card_call_id(&id).is_none() => {
                    let hash = tandem_dataplane::common::sip::callid_hash(id.as_bytes());
                    let keys: Vec<_> = self
                        .dp
                        .services()
                        .filter(|img| img.service.flags & tandem_dataplane::common::FLAG_SIP_PERSIST != 0)
                        .map(|img| img.key)
                        .collect();
                    for k in keys {
                        let _ = self.dp.remove_synced_call(&k, hash);
                    }
                    ok += 1;
                }
                // Card calls and channels live in the subscriber's store.
                _ => ok += 1,
            }
        }
        if let Some(sy) = self.sync.as_mut() {
            sy.applied += ok;
            if refused > 0 && sy.kernel_errors == 0 {
                tracing::warn!("sync: {refused} flows name a service or real server this node does not have");
            }
            sy.kernel_errors += refused;
        }
    }

    /// A synced SIP dialog into this node's Call-ID table: the service
    /// from the record's `flow`, the real server by address.
    fn apply_sip_call(&mut self, c: &crate::sync::CallRecord) -> Result<bool, tandem_dataplane::Error> {
        let (Some(f), Some(ivr)) = (c.flow, c.ivr) else {
            return Ok(true); // nothing for the kernel
        };
        let vs = crate::sync::VirtualService { addr: f.dst, port: f.dport, proto: f.proto };
        let skey = vs.service_key();
        let ivr_ip = ip_of(&ivr);
        let Some(real) = self.dp.service(&skey).and_then(|img| img.slot_ids.iter().flatten().find(|(a, _)| *a == ivr_ip).copied()) else {
            return Ok(false);
        };
        let hash = tandem_dataplane::common::sip::callid_hash(c.id.as_bytes());
        let age_ns = wall_ms().saturating_sub(c.created_ms).saturating_mul(1_000_000);
        let created = tandem_dataplane::monotonic_coarse_ns().saturating_sub(age_ns);
        self.dp.upsert_synced_call(&skey, hash, real, created)
    }

    /// Sends the SIP OPTIONS probes that are due, counts the timeouts, and
    /// re-arms the probe timer.
    fn probe_turn(&mut self) -> Result<()> {
        if self.probes.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let changes = self.probes.expire(now);
        self.apply_sip(changes);
        let port = self.probe_sock.as_ref().and_then(|s| s.local_addr().ok()).map_or(0, |a| a.port());
        for r in self.probes.due(now) {
            let t = self.probes.targets()[r.target].clone();
            let msg = crate::sipprobe::options_request(&t, self.probe_src, port, r.seq, self.cfg.node.id);
            let sent = if t.dr {
                match self.vips.first() {
                    Some(v) => {
                        let mut f = tandem_dataplane::packet::FrameSpec::udp(IpAddr::V4(self.probe_src), port, IpAddr::V4(t.vip), t.vport, msg.as_bytes());
                        f.dst_mac = t.mac;
                        f.src_mac = v.mac;
                        v.garp.send_frame(&f.build()).map_err(|e| e.to_string())
                    }
                    None => Err("no VIP interface".into()),
                }
            } else {
                let dst = SocketAddr::new(IpAddr::V4(t.addr), if t.port == 0 { t.vport } else { t.port });
                match &self.probe_sock {
                    Some(s) => s.send_to(msg.as_bytes(), dst).map(|_| ()).map_err(|e| e.to_string()),
                    None => Err("no probe socket".into()),
                }
            };
            if let Err(e) = sent {
                tracing::debug!("SIP probe to {}: {e}", t.addr);
            }
        }
        let at = self.probes.poll_timeout();
        rearm_if_moved(&mut self.reactor, T_SIP_TIMER, at, &mut self.probe_timer_at)
    }

    /// Reads the answers to the SIP probes.
    fn probe_replies(&mut self) {
        let mut buf = [0u8; 4096];
        let mut changes = Vec::new();
        if let Some(sock) = &self.probe_sock {
            for _ in 0..1024 {
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        if let Some((seq, status)) = crate::sipprobe::parse_response(&buf[..n], self.cfg.node.id) {
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
            let addr = self.cfg.services[c.service].reals[c.real].address;
            if c.up {
                self.sip_down.remove(&(c.service, c.real));
                self.mark(format!("real {addr}: SIP OPTIONS answered again"));
            } else {
                self.sip_down.insert((c.service, c.real));
                self.mark(format!("real {addr}: SIP OPTIONS unanswered: no new flows"));
            }
            if !touched.contains(&c.service) {
                touched.push(c.service);
            }
        }
        if !touched.is_empty() {
            self.push_services(touched);
        }
    }

    /// After every turn of the loop: lets sync send what is due, reports
    /// its connection changes and re-arms its poll and timer.
    fn sync_turn(&mut self) -> Result<()> {
        let Some(sy) = self.sync.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        sy.handle_timeout(now);
        sy.flush(now);
        let events = sy.take_events();
        let want = sy.conn_poll();
        let at = sy.poll_timeout();
        for e in events {
            self.mark(match e {
                crate::syncrt::Event::Connected { peer, dialed } => {
                    format!("sync: connected {} {peer}", if dialed { "to" } else { "from" })
                }
                crate::syncrt::Event::Closed { peer, why } => format!("sync: connection with {peer} closed: {why}"),
                crate::syncrt::Event::InSync => "sync: in sync with the active".into(),
            });
        }
        let polled = want.map(|(id, _, ev)| (id, ev));
        if polled != self.sync_polled || (polled.is_some() && !self.reactor.is_armed(T_SYNC_CONN)) {
            if self.reactor.is_armed(T_SYNC_CONN) {
                self.reactor.cancel(T_SYNC_CONN)?;
            }
            if let Some((_, fd, ev)) = want {
                self.reactor.poll(T_SYNC_CONN, fd, ev)?;
            }
            self.sync_polled = polled;
        }
        rearm_if_moved(&mut self.reactor, T_SYNC_TIMER, at, &mut self.sync_timer_at)
    }

    fn sync_status(&self) -> admin::SyncReply {
        let Some(sy) = &self.sync else {
            return admin::SyncReply::default();
        };
        let s = sy.status();
        admin::SyncReply {
            enabled: true,
            role: s.role.into(),
            state: s.state,
            peer: s.peer.map(|p| p.to_string()),
            flows: s.flows as u64,
            calls: s.calls as u64,
            channels: s.channels as u64,
            last_seq: s.last_seq,
            acked: s.acked,
            queue: s.queue as u64,
            out_of_date: s.out_of_date,
            records: s.records,
            applied: s.applied,
            kernel_errors: s.kernel_errors,
            snapshots: s.snapshots,
            resumes: s.resumes,
            overflows: s.overflows,
            bad_frames: s.bad_frames,
            connections: s.connections,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            lag_samples: s.lag_samples as u64,
            lag_p50_us: s.lag_p50_us,
            lag_p99_us: s.lag_p99_us,
            lag_max_us: s.lag_max_us,
        }
    }

    /// Sends the heartbeats if their time has come (also from inside long
    /// work, so that a burst cannot delay them past the peer's deadline).
    fn heartbeat_if_due(&mut self) {
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

    fn send_heartbeats(&mut self) {
        let (s, e, p) = (self.pair.state(), self.pair.epoch(), self.pair.priority());
        self.sender.send_all(s, e, p, (0, 0), mono_ns());
    }

    fn status(&self) -> admin::StatusReply {
        let now = Instant::now();
        let deadline = self.cfg.heartbeat.deadline();
        let peer = self.pair.peer();
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
                state: if p.alive(now, deadline) { p.state.name().to_string() } else { "lost".into() },
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
                    up: peer.as_ref().is_some_and(|p| p.heard_on(i as u8, now, deadline)),
                    last_heard_ms: peer
                        .as_ref()
                        .and_then(|p| p.paths.get(i).and_then(|pp| pp.last_seen))
                        .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                })
                .collect(),
            vips: self
                .vips
                .iter()
                .zip(&self.cfg.vips)
                .map(|(v, c)| admin::VipStatus {
                    address: v.addr,
                    interface: c.interface.clone(),
                    owned: self.pair.state() == NodeState::Active,
                })
                .collect(),
            witness: self.cfg.witness.as_ref().map(|w| admin::WitnessStatus { address: w.address, reachable: self.witness_ok }),
        }
    }

    fn services(&self) -> (Vec<admin::ServiceStatus>, Vec<admin::RealStatus>) {
        let mut services = Vec::new();
        let mut all_reals = Vec::new();
        // Active connections as the kernel counts them per real server
        // (IPVS's ActiveConn): one lookup each. Walking the connection
        // table here would hold the loop (and its heartbeats) for as long
        // as a million-entry walk takes.
        for img in self.dp.services() {
            let c = self.dp.service_counters(img.service.id).unwrap_or_default();
            let proto = if img.key.proto == tandem_dataplane::common::PROTO_TCP { "tcp" } else { "udp" };
            let vip = ip_of(&img.key.addr);
            let name = format!("{proto}/{vip}:{}", img.key.port);
            let sched = tandem_dataplane::common::Scheduler::from_u8(img.service.scheduler).map_or("?", |s| s.name());
            let mut reals = Vec::new();
            for (slot, id) in img.slot_ids.iter().enumerate() {
                let Some((addr, port)) = id else { continue };
                let r = &img.reals[slot];
                let rc = self.dp.real_counters(img.service.id, slot as u32).unwrap_or_default();
                let n = self.dp.active_conns(img.service.id, slot as u32).unwrap_or(0);
                let ivr = self.ivr_of(img.service.id, slot as u32);
                reals.push(admin::RealStatus {
                    service: name.clone(),
                    address: *addr,
                    port: *port,
                    weight: r.weight,
                    state: match r.state {
                        0 => "up",
                        1 => "draining",
                        _ => "down",
                    }
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
                });
            }
            all_reals.extend(reals.iter().cloned());
            services.push(admin::ServiceStatus {
                vip,
                port: img.key.port,
                protocol: proto.into(),
                scheduler: sched.into(),
                forward: if img.service.forward == 1 { "nat".into() } else { "dr".into() },
                flags: Vec::new(),
                packets: c.packets,
                bytes: c.bytes,
                reals,
            });
        }
        (services, all_reals)
    }

    /// The pool member serving as real server `slot` of service `id`.
    fn ivr_of(&self, id: u32, slot: u32) -> Option<crate::pool::Member> {
        for (node, places) in &self.ivr_slots {
            for (si, ri) in places {
                let s = &self.services[*si];
                if let Some(img) = self.dp.service(&s.key())
                    && img.service.id == id
                    && img.slot_of(s.reals[*ri].addr, s.reals[*ri].port) == Some(slot)
                {
                    return self.pool.member(*node).copied();
                }
            }
        }
        None
    }

    fn answer(&mut self, req: Result<admin::Request, admin::AdminError>) -> admin::Response {
        // Bring the state machine up to date with the kernel's records first.
        self.refresh();
        let now = Instant::now();
        match req {
            Err(e) => admin::Response::Error { message: e.to_string() },
            Ok(admin::Request::Status) => admin::Response::Status(self.status()),
            Ok(admin::Request::Services) => admin::Response::Services { services: self.services().0 },
            Ok(admin::Request::Reals) => admin::Response::Reals { reals: self.services().1 },
            Ok(admin::Request::Switchover) => match self.pair.can_switchover(now) {
                Err(e) => admin::Response::Error { message: format!("switchover refused: {e}") },
                Ok(()) => {
                    self.pair.handle(Event::AdminSwitchover, now);
                    let r = self.apply_actions();
                    match r {
                        Ok(()) => admin::Response::Done { message: format!("switched over: now {}", self.pair.state().name()) },
                        Err(e) => admin::Response::Error { message: format!("{e:#}") },
                    }
                }
            },
            Ok(admin::Request::Sync) => admin::Response::Sync(self.sync_status()),
            Ok(admin::Request::Metrics) => admin::Response::Metrics { text: self.metrics_text() },
            Ok(admin::Request::Stats) => match self.dp.reasons() {
                Ok(v) => admin::Response::Stats {
                    reasons: v.into_iter().map(|(r, n)| admin::ReasonCount { reason: r.name().into(), packets: n }).collect(),
                },
                Err(e) => admin::Response::Error { message: format!("reading the reason counters: {e}") },
            },
            Ok(admin::Request::Cards) => admin::Response::Cards { spans: self.cards.iter().flat_map(|c| c.cards_status()).collect() },
            Ok(admin::Request::Maintenance { on }) => {
                self.pair.handle(Event::AdminMaintenance(on), now);
                match self.apply_actions() {
                    Ok(()) => admin::Response::Done { message: format!("maintenance {}: now {}", if on { "on" } else { "off" }, self.pair.state().name()) },
                    Err(e) => admin::Response::Error { message: format!("{e:#}") },
                }
            }
        }
    }

    /// Every metric, as Prometheus text.
    fn metrics_text(&mut self) -> String {
        use crate::metrics::{Exposition, labels};
        self.refresh();
        let mut e = Exposition::new();
        let state = self.pair.state();
        for st in [NodeState::Init, NodeState::Standby, NodeState::Takeover, NodeState::Active, NodeState::Fault, NodeState::Maintenance] {
            e.gauge("node_state", "1 for this node's pair state, 0 for the others", labels([("state", st.name().into())]), f64::from(u8::from(st == state)));
        }
        e.gauge("node_epoch", "The pair epoch (term) this node is in", Vec::new(), self.pair.epoch() as f64);
        let now = Instant::now();
        let alive = self.pair.peer().is_some_and(|p| p.alive(now, self.cfg.heartbeat.deadline()));
        e.gauge("peer_alive", "1 while the peer is heard on some heartbeat path", Vec::new(), f64::from(u8::from(alive)));
        if self.cfg.witness.is_some() {
            e.gauge("witness_reachable", "1 if the witness answered the last probe", Vec::new(), f64::from(u8::from(self.witness_ok)));
        }
        e.gauge("local_fault", "1 while a local fault (link, card) is raised", labels([("source", "link".into())]), f64::from(u8::from(self.link_fault)));
        e.gauge("local_fault", "1 while a local fault (link, card) is raised", labels([("source", "card".into())]), f64::from(u8::from(self.card_fault)));
        if let Ok(reasons) = self.dp.reasons() {
            for (r, n) in reasons {
                e.counter("dispatch_packets", "Packets the XDP program handled, by reason", labels([("reason", r.name().into())]), n);
            }
        }
        for s in self.services().0 {
            let svc = format!("{}/{}:{}", s.protocol, s.vip, s.port);
            e.counter("service_packets", "Packets dispatched to a virtual service", labels([("service", svc.clone())]), s.packets);
            e.counter("service_bytes", "Bytes dispatched to a virtual service", labels([("service", svc.clone())]), s.bytes);
            for r in s.reals {
                let real = format!("{}:{}", r.address, if r.port == 0 { s.port } else { r.port });
                let l = || labels([("service", svc.clone()), ("real", real.clone())]);
                e.counter("real_packets", "Packets forwarded to a real server", l(), r.packets);
                e.counter("real_bytes", "Bytes forwarded to a real server", l(), r.bytes);
                e.gauge("real_flows", "Connection-table entries to a real server", l(), r.flows as f64);
                e.gauge("real_up", "1 if the real server takes new flows (state and health)", l(), f64::from(u8::from(r.state == "up" && r.health != "dead")));
                if let Some(c) = r.channels {
                    e.gauge("real_channels", "Busy channels the IVR reports", l(), f64::from(c));
                }
            }
        }
        if self.sync.is_some() {
            let s = self.sync_status();
            e.gauge("sync_publishing", "1 on the node that publishes (the active)", Vec::new(), f64::from(u8::from(s.role == "publisher")));
            e.gauge("sync_in_sync", "1 on a standby that holds the active's state", Vec::new(), f64::from(u8::from(s.state == "in sync")));
            e.gauge("sync_last_seq", "Last change recorded (publisher) or applied (subscriber)", Vec::new(), s.last_seq as f64);
            e.gauge("sync_acked_seq", "Last change the standby acknowledged", Vec::new(), s.acked as f64);
            e.gauge("sync_queue", "Changes kept for the standby", Vec::new(), s.queue as f64);
            e.gauge("sync_records", "Synced records this node holds", labels([("table", "flows".into())]), s.flows as f64);
            e.gauge("sync_records", "Synced records this node holds", labels([("table", "calls".into())]), s.calls as f64);
            e.counter("sync_bytes_sent", "Sync bytes sent", Vec::new(), s.bytes_sent);
            e.counter("sync_snapshots", "Snapshots sent or received", Vec::new(), s.snapshots);
            e.counter("sync_overflows", "Times the standby fell out of the window", Vec::new(), s.overflows);
            e.counter("sync_bad_frames", "Frames that failed to parse or authenticate", Vec::new(), s.bad_frames);
            e.counter("sync_kernel_refused", "Synced records this node's kernel could not take", Vec::new(), s.kernel_errors);
            for (q, v) in [("0.5", s.lag_p50_us), ("0.99", s.lag_p99_us), ("1", s.lag_max_us)] {
                e.gauge("sync_lag_seconds", "Record to acknowledgement, over the recent changes", labels([("quantile", q.into())]), v as f64 / 1e6);
            }
        }
        e.encode()
    }

    /// One scrape of the metrics endpoint, answered synchronously with short
    /// timeouts (like the admin socket).
    fn serve_metrics(&mut self, conn: OwnedFd) {
        use std::io::Read;
        let mut stream = std::net::TcpStream::from(conn);
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while req.len() < 8192 && !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let text = self.metrics_text();
        let _ = stream.write_all(crate::metrics::http_response(&text).as_bytes());
    }

    fn serve_admin(&mut self, conn: OwnedFd) {
        // Admin requests are rare and tiny: answer them synchronously with
        // short timeouts, so that a stuck client cannot hold the loop.
        let stream = std::os::unix::net::UnixStream::from(conn);
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
        let mut line = String::new();
        let mut reader = std::io::BufReader::new(&stream);
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            return;
        }
        let resp = self.answer(admin::parse_request(line.trim()));
        let mut out = &stream;
        let _ = out.write_all(admin::format_response(&resp).as_bytes());
    }

    /// Runs until SIGTERM/SIGINT; then releases the VIPs and detaches XDP.
    pub fn run(&mut self) -> Result<()> {
        self.mark(format!("tandemd node {} ({}) started", self.cfg.node.id, self.cfg.node.name));
        let ring_fd = self.events.as_raw_fd();
        self.reactor.poll(T_RING, ring_fd, libc::POLLIN as u32)?;
        self.reactor.poll(T_SIGNAL, self.signals.fd(), libc::POLLIN as u32)?;
        if let Some(l) = &self.admin {
            let fd = l.as_raw_fd();
            self.reactor.accept(T_ADMIN, fd)?;
        }
        let link_fd = self.links.as_raw_fd();
        self.reactor.poll(T_LINK, link_fd, libc::POLLIN as u32)?;
        let down = self.links.down();
        if !down.is_empty() {
            self.mark(format!("local fault: {} down", down.join(", ")));
            self.link_fault = true;
            self.update_fault();
        }
        if !self.cards.is_empty() {
            self.arm(T_CARD_ALARMS, Instant::now() + Duration::from_millis(50))?;
        }
        if let Some(w) = &self.witness {
            let fd = w.as_raw_fd();
            self.reactor.poll(T_WITNESS_REPLY, fd, libc::POLLIN as u32)?;
            self.arm(T_WITNESS_TICK, Instant::now())?;
        }
        let addr_fd = self.addr_worker.fd();
        self.reactor.poll(T_ADDR, addr_fd, libc::POLLIN as u32)?;
        let listen_fds: Vec<RawFd> = self.sync.as_ref().map(|s| s.listener_fds()).unwrap_or_default();
        for (i, fd) in listen_fds.iter().enumerate() {
            self.reactor.accept(T_SYNC_ACCEPT_BASE + i as u64, *fd)?;
        }
        let sync_fds = self.flow_events.as_ref().map(|f| ((), f.as_raw_fd()));
        if let Some((_, ring_fd)) = sync_fds {
            self.reactor.poll(T_FLOW_RING, ring_fd, libc::POLLIN as u32)?;
        }
        let metrics_fd = self.metrics.as_ref().map(|l| l.as_raw_fd());
        if let Some(fd) = metrics_fd {
            self.reactor.accept(T_METRICS, fd)?;
        }
        let probe_fd = self.probe_sock.as_ref().map(|s| s.as_raw_fd());
        if let Some(fd) = probe_fd {
            self.reactor.poll(T_SIP_READ, fd, libc::POLLIN as u32)?;
        }
        let call_ring_fd = self.call_events.as_ref().map(|c| c.as_raw_fd());
        if let Some(fd) = call_ring_fd {
            self.reactor.poll(T_CALL_RING, fd, libc::POLLIN as u32)?;
        }
        self.cards_turn()?;
        self.realtime();
        self.arm(T_HB, Instant::now())?;
        if !self.ivr_slots.is_empty() {
            self.arm(T_POOL, Instant::now() + self.cfg.heartbeat.interval)?;
        }
        self.arm(T_LOG, Instant::now() + Duration::from_secs(3600))?;
        loop {
            // Re-armed only when the deadline moves: re-arming cancels the
            // armed timeout, and the completions of that cancel end the
            // wait below at once, so re-arming on every turn kept a
            // standby's loop spinning at 100 % CPU.
            let at = self.pair.poll_timeout();
            rearm_if_moved(&mut self.reactor, T_PAIR, at, &mut self.pair_timer_at)?;
            let done = self.reactor.submit_and_wait(1, Some(Duration::from_secs(1)))?;
            for c in done {
                let turn = Instant::now();
                let token = c.token;
                match c.token {
                    T_HB => {
                        self.heartbeat_if_due();
                        let at = self.next_hb;
                        self.reactor.arm_timeout(T_HB, at)?;
                    }
                    T_PAIR => {
                        self.pair_timer_at = None;
                        self.refresh();
                        self.pair.handle_timeout(Instant::now());
                    }
                    T_POOL => {
                        // IVR records: a returning server pushes no ring
                        // event, so the pool is also scanned periodically.
                        self.refresh();
                        let mut changes = Vec::new();
                        self.pool.handle_timeout(Instant::now(), &mut changes);
                        self.apply_pool(changes);
                        if !self.ivr_slots.is_empty() {
                            let scan = Instant::now() + self.cfg.heartbeat.deadline();
                            let at = self.pool.poll_timeout().map_or(scan, |t| t.min(scan));
                            self.reactor.arm_timeout(T_POOL, at.max(Instant::now()))?;
                        }
                    }
                    T_RING => {
                        while let Some(p) = self.events.next() {
                            self.feed(&p);
                        }
                        self.reactor.poll(T_RING, ring_fd, libc::POLLIN as u32)?;
                    }
                    T_SIGNAL => {
                        self.mark("signal: shutting down".into());
                        self.shutdown()?;
                        return Ok(());
                    }
                    T_WITNESS_REPLY => {
                        let answered = self.witness.as_mut().and_then(|w| w.check_reply());
                        if let Some(t) = answered {
                            self.witness_ok = true;
                            self.witness_answered = Some(self.witness_answered.map_or(t, |a| a.max(t)));
                            if self.witness_need.is_some_and(|need| t >= need) {
                                self.witness_need = None;
                                if self.reactor.is_armed(T_WITNESS_DEADLINE) {
                                    self.reactor.cancel(T_WITNESS_DEADLINE)?;
                                }
                                self.mark("witness answered".into());
                                self.pair.handle(Event::Witness { reachable: true }, Instant::now());
                            }
                        }
                        if let Some(w) = &self.witness {
                            let fd = w.as_raw_fd();
                            self.reactor.poll(T_WITNESS_REPLY, fd, libc::POLLIN as u32)?;
                        }
                    }
                    T_WITNESS_TICK => {
                        // Probe while a takeover may come (not while active
                        // or in maintenance): the answers let it skip a
                        // round trip.
                        let state = self.pair.state();
                        if !matches!(state, NodeState::Active | NodeState::Maintenance)
                            && let Some(w) = self.witness.as_mut()
                            && let Err(e) = w.send()
                        {
                            tracing::debug!("{e}");
                        }
                        if let Some(wc) = &self.cfg.witness {
                            let at = Instant::now() + wc.probe_interval;
                            self.reactor.arm_timeout(T_WITNESS_TICK, at)?;
                        }
                    }
                    T_WITNESS_DEADLINE => {
                        if self.witness_need.is_some() {
                            self.witness_need = None;
                            self.witness_ok = false;
                            self.mark("witness unreachable".into());
                            self.pair.handle(Event::Witness { reachable: false }, Instant::now());
                        }
                    }
                    T_GARP => {
                        if self.pair.state() == NodeState::Active && self.garp_left > 0 {
                            for v in &self.vips {
                                v.garp.send_garp()?;
                            }
                            self.garp_left -= 1;
                            if self.garp_left > 0 {
                                let at = Instant::now() + self.garp_gap();
                                self.reactor.arm_timeout(T_GARP, at)?;
                            }
                        }
                    }
                    T_ADMIN => {
                        if let Some(conn) = c.accepted {
                            self.serve_admin(conn);
                        }
                        if let Some(l) = &self.admin {
                            let fd = l.as_raw_fd();
                            self.reactor.accept(T_ADMIN, fd)?;
                        }
                    }
                    T_LINK => {
                        for (name, up) in self.links.read_changes() {
                            self.mark(format!("link {name} {}", if up { "up" } else { "down" }));
                        }
                        self.link_fault = !self.links.down().is_empty();
                        self.update_fault();
                        self.reactor.poll(T_LINK, link_fd, libc::POLLIN as u32)?;
                    }
                    T_CARDS => {
                        let now = Instant::now();
                        let mut pending = false;
                        let mut results = Vec::new();
                        for c in self.cards.iter_mut() {
                            match c.poll_started(now) {
                                None => pending |= c.is_starting(),
                                Some(r) => results.push((c.root().display().to_string(), r)),
                            }
                        }
                        for (root, r) in results {
                            match r {
                                Ok(t) => self.mark(format!("spans started alarm-free on {root} in {:.3} ms", t.elapsed.as_secs_f64() * 1000.0)),
                                Err(e) => {
                                    self.mark(format!("spans on {root} failed to start: {e}"));
                                    self.card_fault = true;
                                    self.update_fault();
                                }
                            }
                        }
                        if pending {
                            self.reactor.arm_timeout(T_CARDS, now + Duration::from_micros(500))?;
                        }
                    }
                    T_CARD_ALARMS => {
                        let mut fault = false;
                        for c in self.cards.iter_mut() {
                            let r = c.check_alarms();
                            fault |= r.local_fault();
                        }
                        let now = Instant::now();
                        if fault {
                            self.card_clear_at = None;
                            if !self.card_fault {
                                self.mark("card alarm raised: local fault".into());
                                self.card_fault = true;
                                self.update_fault();
                            }
                        } else if self.card_fault {
                            // A span shut down shows no alarm, which says
                            // nothing of the trunk behind it: a node that
                            // lost the role to a card fault stays faulty for
                            // the hold-down, so that a trunk cut on both
                            // sides does not bounce the role between them.
                            let holddown = self.cfg.node.card_fault_holddown;
                            let until = *self.card_clear_at.get_or_insert(now + holddown);
                            if self.pair.state() == NodeState::Active || now >= until {
                                self.mark("card alarm cleared".into());
                                self.card_fault = false;
                                self.card_clear_at = None;
                                self.update_fault();
                            }
                        }
                        self.reactor.arm_timeout(T_CARD_ALARMS, Instant::now() + Duration::from_millis(50))?;
                    }
                    T_ADDR => {
                        for d in self.addr_worker.take_done() {
                            let what = if d.op == crate::addrworker::Op::Add { "added to" } else { "removed from" };
                            match d.result {
                                Ok(_) => self.mark(format!("VIP {} {what} {} ({} µs)", d.addr, d.iface, d.took.as_micros())),
                                Err(e) => self.mark(format!("VIP {} not {what} {}: {e}", d.addr, d.iface)),
                            }
                        }
                        self.reactor.poll(T_ADDR, addr_fd, libc::POLLIN as u32)?;
                    }
                    t if (T_SYNC_ACCEPT_BASE..T_SYNC_ACCEPT_BASE + listen_fds.len() as u64).contains(&t) => {
                        if let (Some(conn), Some(sy)) = (c.accepted, self.sync.as_mut()) {
                            sy.accepted(conn, Instant::now());
                        }
                        let fd = listen_fds[(t - T_SYNC_ACCEPT_BASE) as usize];
                        self.reactor.accept(t, fd)?;
                    }
                    T_SYNC_CONN => {
                        self.sync_polled = None;
                        let applied = match self.sync.as_mut() {
                            Some(sy) => sy.on_readable(Instant::now()),
                            None => Vec::new(),
                        };
                        if !applied.is_empty() {
                            self.apply_synced(applied);
                        }
                    }
                    T_SYNC_TIMER => {
                        self.sync_timer_at = None;
                    }
                    T_FLOW_RING => {
                        // In bounded chunks, heartbeats between them: a
                        // burst of new flows must not delay them.
                        let publishing = self.sync.as_ref().is_some_and(|s| s.is_publishing());
                        let started = Instant::now();
                        while started.elapsed() < Duration::from_millis(5) {
                            let mut evs = Vec::with_capacity(256);
                            if let Some(fe) = self.flow_events.as_mut() {
                                while evs.len() < 256
                                    && let Some(e) = fe.next()
                                {
                                    evs.push(e);
                                }
                            }
                            if publishing {
                                let now = Instant::now();
                                for e in &evs {
                                    if let Some(r) = self.flow_record(e)
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
                        if let Some((_, ring_fd)) = sync_fds {
                            self.reactor.poll(T_FLOW_RING, ring_fd, libc::POLLIN as u32)?;
                        }
                    }
                    T_SIP_READ => {
                        self.probe_replies();
                        if let Some(fd) = probe_fd {
                            self.reactor.poll(T_SIP_READ, fd, libc::POLLIN as u32)?;
                        }
                    }
                    T_SIP_TIMER => self.probe_timer_at = None,
                    T_METRICS => {
                        if let Some(conn) = c.accepted {
                            self.serve_metrics(conn);
                        }
                        if let Some(fd) = metrics_fd {
                            self.reactor.accept(T_METRICS, fd)?;
                        }
                    }
                    T_CALL_RING => {
                        let mut evs = Vec::new();
                        if let Some(ce) = self.call_events.as_mut() {
                            while let Some(e) = ce.next() {
                                evs.push(e);
                                if evs.len() >= 16_384 {
                                    break;
                                }
                            }
                        }
                        if self.sync.as_ref().is_some_and(|s| s.is_publishing()) {
                            let now = Instant::now();
                            for e in &evs {
                                if let Some(r) = self.sip_call_record(e)
                                    && let Some(sy) = self.sync.as_mut()
                                {
                                    sy.record(r, now);
                                }
                            }
                        }
                        if let Some(fd) = call_ring_fd {
                            self.reactor.poll(T_CALL_RING, fd, libc::POLLIN as u32)?;
                        }
                    }
                    t if t >= T_CHAN_BASE => {
                        if let Some(&(card, ch)) = self.chan_polls.get(&t) {
                            match self.cards[card].read_channel_events(ch.span, ch.channel) {
                                Ok(_) => {
                                    if self.cards[card].take_alarm_events() {
                                        let r = self.cards[card].check_alarms();
                                        if r.local_fault() != self.card_fault {
                                            self.card_fault = r.local_fault();
                                            self.mark(format!("card alarm {}", if self.card_fault { "raised: local fault" } else { "cleared" }));
                                            self.update_fault();
                                        }
                                    }
                                }
                                Err(e) => tracing::warn!("{e}"),
                            }
                            self.publish_card_calls();
                            // One-shot poll: again, unless the channel broke
                            // (a new generation re-polls everything).
                            if self.cards[card].generation() == self.chan_gens.get(card).copied().unwrap_or(u64::MAX) {
                                self.reactor.poll(t, ch.fd, libc::POLLPRI as u32)?;
                            }
                        }
                    }
                    T_LOG => {}
                    _ => {}
                }
                if turn.elapsed() > self.cfg.heartbeat.interval * 2 {
                    tracing::warn!("loop turn took {:?} (event {token}): heartbeats may have been late", turn.elapsed());
                }
            }
            let turn = Instant::now();
            self.apply_actions()?;
            self.publish_card_calls();
            self.cards_turn()?;
            self.sync_turn()?;
            self.probe_turn()?;
            if turn.elapsed() > self.cfg.heartbeat.interval * 2 {
                tracing::warn!("loop turn took {:?} (after the events): heartbeats may have been late", turn.elapsed());
            }
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
        let param = libc::sched_param { sched_priority: i32::from(prio) };
        // SAFETY: plain syscalls on the calling thread with a valid param.
        let (rc, locked) = unsafe {
            (libc::sched_setscheduler(0, libc::SCHED_FIFO, &param), libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE))
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            self.mark(format!("node.realtime_priority {prio}: sched_setscheduler(SCHED_FIFO) failed: {e}; normal scheduling"));
        } else {
            self.mark(format!("running at SCHED_FIFO priority {prio}{}", if locked == 0 { ", memory locked" } else { "" }));
        }
    }

    fn shutdown(&mut self) -> Result<()> {
        for c in self.cards.iter_mut() {
            let _ = c.shutdown_spans();
        }
        // Pending address changes first, so that the removals below are last.
        self.addr_worker.finish();
        for i in 0..self.vips.len() {
            let (addr, mac) = (self.vips[i].addr, self.vips[i].mac);
            let _ = self.dp.set_vip_owned(addr, mac, false);
            let _ = self.addrs.remove(&self.lo, addr);
        }
        self.dp.detach_all()?;
        let _ = std::fs::remove_file(&self.cfg.admin.socket);
        Ok(())
    }

    pub fn state(&self) -> NodeState {
        self.pair.state()
    }
}

/// `AttachMode` re-exported for the binary.
pub fn attach_mode(s: &str) -> Option<AttachMode> {
    AttachMode::parse(s)
}

/// Arms `token` for `at` (cancels it for `None`) unless it is already
/// armed for that time, which `armed` remembers. Re-arming cancels the
/// armed timeout, and the cancel's completion wakes the loop at once: done
/// on every turn, it would keep the loop spinning.
fn rearm_if_moved(reactor: &mut Reactor, token: u64, at: Option<Instant>, armed: &mut Option<Instant>) -> Result<()> {
    if at == *armed && (at.is_none() || reactor.is_armed(token)) {
        return Ok(());
    }
    if reactor.is_armed(token) {
        reactor.cancel(token)?;
    }
    if let Some(t) = at {
        reactor.arm_timeout(token, t.max(Instant::now()))?;
    }
    *armed = at;
    Ok(())
}

/// Milliseconds since the Unix epoch.
fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// An address as the dataplane keeps it (IPv4-mapped for IPv4).
fn mapped(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The sync id of a card channel's call: `dahdi/<card>/<span>/<channel>`,
/// the card by its position in the configuration (the same on both
/// directors; their device roots differ).
fn card_call_id(card: usize, span: u32, channel: u32) -> String {
    format!("dahdi/{card}/{span}/{channel}")
}

fn parse_card_call_id(id: &str) -> Option<(usize, u32, u32)> {
    let mut it = id.strip_prefix("dahdi/")?.split('/');
    let card = it.next()?.parse().ok()?;
    let span = it.next()?.parse().ok()?;
    let channel = it.next()?.parse().ok()?;
    it.next().is_none().then_some((card, span, channel))
}

fn sync_state(s: crate::cards::CallState) -> crate::sync::CallState {
    use crate::cards::CallState as C;
    use crate::sync::CallState as S;
    match s {
        C::Idle => S::Idle,
        C::Ringing => S::Ringing,
        C::Answered => S::Answered,
        C::OnHold => S::OnHold,
        C::HungUp => S::HungUp,
    }
}

fn card_state(s: crate::sync::CallState) -> crate::cards::CallState {
    use crate::cards::CallState as C;
    use crate::sync::CallState as S;
    match s {
        S::Idle => C::Idle,
        S::Ringing => C::Ringing,
        S::Answered => C::Answered,
        S::OnHold => C::OnHold,
        S::HungUp => C::HungUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_call_ids_round_trip_and_reject_others() {
        assert_eq!(card_call_id(1, 2, 31), "dahdi/1/2/31");
        assert_eq!(parse_card_call_id("dahdi/1/2/31"), Some((1, 2, 31)));
        for bad in ["dahdi/1/2", "dahdi/1/2/3/4", "a84b4c76e66710@pc33.example.com", "dahdi/x/1/1", ""] {
            assert_eq!(parse_card_call_id(bad), None, "{bad}");
        }
        for s in [
            crate::cards::CallState::Idle,
            crate::cards::CallState::Ringing,
            crate::cards::CallState::Answered,
            crate::cards::CallState::OnHold,
            crate::cards::CallState::HungUp,
        ] {
            assert_eq!(card_state(sync_state(s)), s);
        }
    }
}
