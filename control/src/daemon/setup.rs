//! `tandemd`'s start-up: every check that can fail runs first, then the
//! node is set up (XDP loaded and attached, sysctls written, stale VIPs
//! removed, spans shut down), so that a configuration the daemon refuses
//! changes nothing on the host. A sysctl that cannot be written is an
//! error naming its key.
//!
//! It runs once, before the loop; it may block (RTNL, files).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use tandem_dataplane::{
    Dataplane, Handoff, HeartbeatSender, LinkPin, LoadOptions, Tables,
    common::heartbeat::{Key, Kind},
};

use super::{Daemon, Event, OwnedVip, clients::Clients, mono_ns, timeline::Timeline, token::Ring};
use crate::{
    config::Config,
    hbsend::{PathSpec, Sender},
    pair::Pair,
    uring::Signals,
    vip::{AddressSocket, GarpSender, Interface},
    witness::Witness,
};

/// Writes `value` to the sysctl `key` (`net.ipv4.conf.eth0.arp_ignore`).
pub(super) fn sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).with_context(|| format!("writing sysctl {key} = {value} ({path})"))
}

/// The heartbeat senders the kernel takes heartbeats from: the peer
/// director once per heartbeat path (its address on the path, the path's
/// interface, the director key and, during a rotation, the next one), and
/// every IVR server with a node id (its address, its interface if it names
/// one, its own key derived from the IVR master key).
pub(crate) fn heartbeat_senders(
    cfg: &Config,
    ifindex: impl Fn(&str) -> Option<u32>,
) -> Result<Vec<HeartbeatSender>> {
    let director = Key::from_bytes(&cfg.heartbeat.key);
    let director_next = cfg.heartbeat.next_key.as_deref().map(Key::from_bytes);
    // Two intervals: a restarting process is silent longer, a sender that
    // is sending is not (a replayed boot start is refused meanwhile).
    let restart_gap = cfg.heartbeat.interval * 2;
    let mut out = Vec::new();
    for p in &cfg.heartbeat.paths {
        let idx = ifindex(&p.interface)
            .with_context(|| format!("heartbeat path {}: no interface {}", p.name, p.interface))?;
        out.push(HeartbeatSender {
            node_id: cfg.node.peer_id,
            addr: IpAddr::V4(p.peer),
            kind: Kind::Director,
            ifindex: idx,
            key: director,
            next_key: director_next,
            restart_gap,
        });
    }
    for (si, s) in cfg.services.iter().enumerate() {
        for (ri, r) in s.reals.iter().enumerate() {
            let Some(node_id) = r.node_id else { continue };
            // Validation refuses a node_id without an IVR master key.
            let Some(ivr_master) = cfg.heartbeat.ivr_key.as_deref() else {
                bail!("service[{si}].real[{ri}].node_id: heartbeat.ivr_key is required");
            };
            let idx = match &r.interface {
                Some(name) => ifindex(name)
                    .with_context(|| format!("service[{si}].real[{ri}]: no interface {name}"))?,
                None => 0,
            };
            let key = crate::keys::ivr_heartbeat_key(ivr_master, node_id);
            out.push(HeartbeatSender {
                node_id,
                addr: r.address,
                kind: Kind::Ivr,
                ifindex: idx,
                key,
                next_key: None,
                restart_gap,
            });
        }
    }
    Ok(out)
}

/// The SIP OPTIONS probe targets of the configuration.
pub(crate) fn probe_targets(cfg: &Config) -> Vec<crate::sipprobe::Target> {
    let mut targets = Vec::new();
    for (si, s) in cfg.services.iter().enumerate() {
        let (Some(pc), IpAddr::V4(vip)) = (s.sip_options, s.vip) else {
            continue;
        };
        for (ri, r) in s.reals.iter().enumerate() {
            let IpAddr::V4(addr) = r.address else {
                continue;
            };
            targets.push(crate::sipprobe::Target {
                service: si,
                real: ri,
                vip,
                vport: s.port,
                addr,
                port: r.port,
                // Unknown: the neighbour table's, when the probe is sent.
                mac: r.mac.unwrap_or([0; 6]),
                dr: s.forward == tandem_dataplane::common::Forward::Dr,
                cfg: pc,
            });
        }
    }
    targets
}

/// The dataplane, with its tables pinned where restarts are possible
/// (`dataplane.pin_dir` and the dead-man switch): then orphaned pins are
/// pruned first and the predecessor's hand-over taken.
fn load_dataplane(cfg: &Config, options: LoadOptions) -> Result<(Dataplane, Tables)> {
    let calls = tandem_dataplane::common::DEFAULT_CALL_ENTRIES;
    match pin_dir(cfg) {
        Some(dir) => Ok(Dataplane::load_pinned(options, calls, dir).context("loading the XDP object")?),
        None => {
            let dp = Dataplane::load_entry_with_calls(options, calls).context("loading the XDP object")?;
            let reason = "dataplane.pin_dir and heartbeat.dead_man_ms are not both set".to_string();
            Ok((dp, Tables::NotPinned { reason }))
        }
    }
}

/// Where the tables are pinned: `dataplane.pin_dir`, with the dead-man switch.
fn pin_dir(cfg: &Config) -> Option<&std::path::Path> {
    match (&cfg.dataplane.pin_dir, cfg.heartbeat.dead_man) {
        (Some(dir), Some(_)) => Some(dir),
        _ => None,
    }
}

/// What a predecessor left (its pins of dead namespaces pruned first).
fn take_predecessor(cfg: &Config) -> Option<Handoff> {
    let dir = pin_dir(cfg)?;
    for p in tandem_dataplane::prune_orphans(dir) {
        tracing::info!("removed {}: its network namespace is gone", p.display());
    }
    tandem_dataplane::take_handoff(dir).unwrap_or_else(|e| {
        tracing::warn!("reading the predecessor's hand-over: {e}");
        None
    })
}

/// An active predecessor whose tables this build cannot adopt (another
/// layout), within its grace: its dispatcher is fenced and the peer told
/// at once — one heartbeat, Init at priority 0 — so that the peer takes
/// over now rather than after this process has loaded, seconds during
/// which no daemon would sync what the old dispatcher sets up.
fn hand_over_now(cfg: &Config, h: Option<&Handoff>, layout: u64, sender: &mut Sender) {
    let (Some(dir), Some(h)) = (pin_dir(cfg), h) else { return };
    let now_ns = mono_ns();
    if !h.active || h.layout == layout || now_ns >= h.until_ns {
        return;
    }
    match tandem_dataplane::fence_tables(dir, h.layout) {
        Ok(()) => {
            sender.send_all(crate::pair::NodeState::Init, h.epoch, 0, (0, 0), now_ns);
            tracing::info!(
                "the active predecessor's tables are of another layout ({:016x}): its dispatcher fenced, the peer told to take over",
                h.layout
            );
        }
        Err(e) => tracing::warn!("fencing the predecessor's dispatcher: {e}; the peer takes over when this node announces itself"),
    }
}

/// Whether this process resumes its predecessor's active role (its epoch)
/// and, when the predecessor was active but cannot be resumed, why not.
pub(crate) fn resume_of(
    cfg: &Config,
    tables: &Tables,
    handoff: Option<Handoff>,
    layout: u64,
    now_ns: u64,
) -> (Option<u64>, Option<String>) {
    let Some(h) = handoff.filter(|h| h.active) else {
        return (None, None);
    };
    let why = if !matches!(tables, Tables::Adopted { .. }) || h.layout != layout {
        format!(
            "the active predecessor's tables are of another layout ({:016x}, this build's {layout:016x}): not resumed, the peer takes over",
            h.layout
        )
    } else if now_ns >= h.until_ns {
        "the active predecessor's restart grace was over: not resumed".to_string()
    } else if !cfg.cards.is_empty() {
        "cards are configured (their channels lived in the predecessor): not resumed".to_string()
    } else {
        return (Some(h.epoch), None);
    };
    (None, Some(why))
}

impl Daemon {
    /// Checks everything, then sets the node up: loads and attaches XDP,
    /// configures services and heartbeats, opens the sockets. Nothing on
    /// the host is changed if the configuration is refused.
    pub fn new_timed(cfg: Config, mut startup: crate::startup::Startup) -> Result<Daemon> {
        // 1. Checks and lookups: nothing changes yet. The admin socket
        // first: one in use is another tandemd's (refused, naming the path).
        let clients = Clients::bind(&cfg.admin)?;
        let ifindex = |n: &str| crate::config::ifindex(n);
        let services = cfg.dataplane_services(ifindex).context("services")?;
        let peer_id = cfg.node.peer_id;
        // IVR servers that send heartbeats: (service, real) by node id.
        let ivr_slots = crate::reload::ivr_slots(&cfg);
        let senders = heartbeat_senders(&cfg, ifindex)?;
        let mut paths = HashMap::new();
        let mut specs = Vec::new();
        for (i, p) in cfg.heartbeat.paths.iter().enumerate() {
            let idx = ifindex(&p.interface).with_context(|| {
                format!("heartbeat path {}: no interface {}", p.name, p.interface)
            })?;
            paths.insert(idx, i as u8);
            specs.push(PathSpec {
                index: i as u8,
                local: SocketAddr::new(IpAddr::V4(p.local), 0),
                peer: SocketAddr::new(IpAddr::V4(p.peer), cfg.heartbeat.port),
            });
        }
        // SIP OPTIONS probes leave from the director's address on the
        // service network (the heartbeat path on the VIP's interface).
        let targets = probe_targets(&cfg);
        let probe_src = cfg
            .vips
            .first()
            .and_then(|v| {
                cfg.heartbeat
                    .paths
                    .iter()
                    .find(|p| p.interface == v.interface)
            })
            .map_or(Ipv4Addr::UNSPECIFIED, |p| p.local);
        if targets.iter().any(|t| t.dr) && (probe_src.is_unspecified() || cfg.vips.is_empty()) {
            bail!(
                "sip_options on a DR service needs a VIP and a heartbeat path on its interface (the probes' source address)"
            );
        }
        let mut vip_ifaces = Vec::new();
        for v in &cfg.vips {
            vip_ifaces.push(
                Interface::by_name(&v.interface).with_context(|| format!("vip {}", v.address))?,
            );
        }
        let mut watched = Vec::new();
        for v in &cfg.vips {
            if let Some(i) = ifindex(&v.interface)
                && !watched
                    .iter()
                    .any(|(n, _): &(String, u32)| *n == v.interface)
            {
                watched.push((v.interface.clone(), i));
            }
        }
        let lo = Interface::by_name("lo")?;

        // 2. Descriptors, sockets and devices: opened, not yet changed.
        let key = Key::from_bytes(&cfg.heartbeat.key);
        let mut sender =
            Sender::new(key, cfg.node.id, Kind::Director, &specs).context("heartbeat sockets")?;
        // A predecessor's hand-over, and the layout of this build's tables.
        let options = LoadOptions {
            flow_entries: cfg.dataplane.flow_entries,
            nat_entries: cfg.dataplane.flow_entries,
        };
        let layout = tandem_dataplane::layout_hash(options, tandem_dataplane::common::DEFAULT_CALL_ENTRIES)
            .context("the tables' layout")?;
        let handoff = take_predecessor(&cfg);
        hand_over_now(&cfg, handoff.as_ref(), layout, &mut sender);
        let mut vips = Vec::new();
        for (v, iface) in cfg.vips.iter().zip(&vip_ifaces) {
            let garp = GarpSender::open(iface, v.address)
                .with_context(|| format!("vip {}: GARP socket", v.address))?;
            let mac = garp.mac();
            vips.push(OwnedVip {
                addr: v.address,
                garp,
                mac,
                garp_count: v.garp_count,
                garp_interval: v.garp_interval,
            });
        }
        let addrs = AddressSocket::open()?;
        let witness = match &cfg.witness {
            Some(w) => {
                Some(Witness::new(w.address).with_context(|| format!("witness {}", w.address))?)
            }
            None => None,
        };
        let links = crate::link::LinkMonitor::new(&watched).context("link monitor")?;
        let mut neigh = crate::neigh::NeighMonitor::new().context("neighbour monitor")?;
        neigh.table.set_wanted(crate::neigh::unresolved(&services));
        let mut cards = Vec::new();
        for c in &cfg.cards {
            cards.push(
                crate::cards::CardManager::open(c)
                    .with_context(|| format!("card {}", c.root.display()))?,
            );
        }
        let probe_sock = if targets.is_empty() {
            None
        } else {
            let sock = std::net::UdpSocket::bind((probe_src, 0))
                .with_context(|| format!("SIP probe socket on {probe_src}"))?;
            sock.set_nonblocking(true)?;
            Some(sock)
        };
        let ring = Ring::new(256)?;
        let signals = Signals::new(&[
            nix::sys::signal::Signal::SIGTERM,
            nix::sys::signal::Signal::SIGINT,
            nix::sys::signal::Signal::SIGHUP,
        ])
        .context("signalfd")?;
        let addr_worker =
            crate::addrworker::AddressWorker::start().context("VIP address worker")?;
        let cfg_worker = crate::cfgworker::ConfigWorker::start().context("configuration worker")?;

        // 3. The dataplane, in this process: freed if anything below fails
        // before the attach.
        let mut pool = crate::pool::Pool::new(ivr_slots.keys().copied(), cfg.heartbeat.deadline());
        startup.handle_phase_end(crate::startup::Phase::Open, Instant::now());
        let (mut dp, tables) = load_dataplane(&cfg, options)?;
        startup.handle_load(dp.load_timings(), Instant::now());
        let (resuming, note) = resume_of(&cfg, &tables, handoff, layout, mono_ns());
        if resuming.is_some() {
            // What the adopted tables say, until the kernel says more: the
            // real servers' MACs and the IVRs heard, so that the services
            // written below are the ones the tables hold.
            for img in dp.services() {
                for (r, id) in img.reals.iter().zip(&img.slot_ids) {
                    if let Some((addr, _)) = id {
                        neigh.table.seed(*addr, r.mac);
                    }
                }
            }
            for r in dp.heartbeat_records() {
                if r.kind == Kind::Ivr {
                    let at = crate::clock::instant_of(r.last_seen_ns);
                    pool.heard(r.node_id, at, r.load, &mut Vec::new());
                }
            }
        }
        for s in &crate::pool::effective(&services, &ivr_slots, &pool, &Default::default(), &neigh.table) {
            dp.set_service(s)
                .with_context(|| format!("service {}", s.name()))?;
        }
        // The VIP guard: until this node owns a VIP (takeover), traffic to
        // it is dropped in XDP, neither answered nor rejected by the stack.
        // A resumed node owns its VIPs already.
        if resuming.is_none() {
            for v in &cfg.vips {
                dp.set_vip_guarded(v.address, true).with_context(|| format!("vip {}: guarding it", v.address))?;
            }
        }
        // This node's echoes come back carrying its id, from the peer.
        dp.set_echo_identity(cfg.node.id, peer_id).context("echo identity")?;
        for s in &senders {
            dp.add_heartbeat_sender(s)
                .with_context(|| format!("heartbeat sender {} at {}", s.node_id, s.addr))?;
        }
        dp.set_heartbeat_port(cfg.heartbeat.port)?;
        dp.set_settings(&cfg.timeouts.settings()).context("timeouts")?;
        let events = dp
            .take_heartbeat_events()
            .context("heartbeat ring buffer")?;
        let (flow_events, call_events) = if cfg.sync.is_some() {
            dp.set_flow_events(true).context("turning flow events on")?;
            (
                Some(dp.take_flow_events().context("flow ring buffer")?),
                dp.take_call_events(),
            )
        } else {
            (None, None)
        };

        // The listeners last before the host changes: a daemon restarted
        // right after a kill -9 finds its predecessor's sockets gone only
        // once that process is torn down (the XDP load above takes longer).
        let sync = match &cfg.sync {
            Some(sc) => Some(
                crate::sync::runtime::SyncRuntime::new(
                    cfg.node.id,
                    sc.keys(),
                    &sc.local
                        .iter()
                        .map(|a| SocketAddr::new(*a, sc.port))
                        .collect::<Vec<_>>(),
                    &sc.peer
                        .iter()
                        .map(|a| SocketAddr::new(*a, sc.port))
                        .collect::<Vec<_>>(),
                )?
                .with_peer_ids(&[cfg.node.peer_id]),
            ),
            None => None,
        };
        let now = Instant::now();
        startup.handle_phase_end(crate::startup::Phase::Services, now);
        let holddown = cfg.node.card_fault_holddown;
        let pair_cfg = cfg.pair_config(witness.is_some());
        let pair = match resuming {
            Some(epoch) => Pair::resume(pair_cfg, now, epoch),
            None => {
                let mut p = Pair::new(pair_cfg, now);
                if note.is_some() {
                    // The predecessor was active and its tables are not
                    // ours: the peer, which holds the synced state, takes
                    // the role.
                    p.yield_at_start(now);
                }
                p
            }
        };
        let mut d = Daemon {
            dp,
            pair,
            sender,
            events,
            ring,
            signals,
            timeline: Timeline::new(true),
            witness,
            witness_ok: false,
            addrs,
            addr_worker,
            lo,
            vips,
            paths,
            seen: HashMap::new(),
            refreshed_at: now,
            peer_id,
            next_hb: now,
            garp_left: 0,
            state_since: now,
            links,
            neigh,
            services,
            ivr_slots,
            pool,
            cards,
            link_fault: false,
            card_fault: crate::cards::CardFaultFilter::new(holddown),
            sync,
            flow_events,
            call_events,
            chan_polls: HashMap::new(),
            chan_gens: Vec::new(),
            translator: Default::default(),
            sync_polled: None,
            sync_timer_at: None,
            pair_timer_at: None,
            probes: crate::sipprobe::ProbeSet::new(targets, now),
            probe_sock,
            probe_src,
            probe_timer_at: None,
            sip_down: Default::default(),
            clients,
            client_timer_at: None,
            live: super::liveness::Liveness::new(now),
            echoes: Default::default(),
            config_path: None,
            cfg_worker,
            reloads: HashMap::new(),
            standby_holds: Vec::new(),
            writes: Default::default(),
            next_ticket: 0,
            senders,
            fingerprint: cfg.fingerprint(),
            services_text: cfg.services_toml(),
            peer_fingerprint: None,
            peer_services_loading: None,
            config_mismatch: false,
            mismatch_since: None,
            baseline: Default::default(),
            notify: crate::systemd::Notifier::from_env(),
            tables,
            layout,
            resuming,
            startup,
            cfg,
        };
        // 4. Changes to the host.
        d.change_host()?;
        let (kind, dir) = match &d.tables {
            Tables::Adopted { dir } => ("adopted", Some(dir.display().to_string())),
            Tables::Created { dir, .. } => ("created", Some(dir.display().to_string())),
            Tables::NotPinned { reason } => ("not pinned", Some(reason.clone())),
        };
        d.mark(Event::Tables {
            tables: kind.into(),
            dir,
            resumed: resuming.is_some(),
            epoch: resuming,
            note,
        });
        d.startup.handle_phase_end(crate::startup::Phase::Attach, Instant::now());
        // The stages last (`crate::startup`): the kernel records the
        // peer's heartbeats meanwhile, so the pair's init hold runs while
        // the verifier works, and the first turn decides on what it heard.
        d.dp.load_stages().context("loading the XDP stages")?;
        d.startup.handle_stages(d.dp.load_timings(), Instant::now());
        Ok(d)
    }

    /// The host changes start-up makes, after every check passed: XDP
    /// attached, ARP sysctls for the VIP interfaces, stale VIPs off `lo`,
    /// spans shut down and readied.
    fn change_host(&mut self) -> Result<()> {
        let mode = self.cfg.dataplane.xdp_mode;
        for iface in &self.cfg.dataplane.interfaces {
            // Pinned, XDP outlives a killed daemon: only when configured, and
            // with the dead-man switch armed, which fences the orphaned
            // program.
            let pin_dir = match (&self.cfg.dataplane.pin_dir, self.cfg.heartbeat.dead_man) {
                (Some(dir), Some(_)) => dir.clone(),
                _ => {
                    self.dp
                        .attach(iface, mode)
                        .with_context(|| format!("attaching XDP to {iface}"))?;
                    continue;
                }
            };
            let (_, pin) = self
                .dp
                .attach_pinned(iface, mode, &pin_dir)
                .with_context(|| format!("attaching XDP to {iface}"))?;
            match pin {
                LinkPin::Pinned { path, stale: Some(id) } => tracing::warn!(
                    "{iface}: XDP link pinned at {}, replacing a killed predecessor's (link {id})",
                    path.display()
                ),
                LinkPin::Pinned { path, stale: None } => {
                    tracing::info!("{iface}: XDP link pinned at {}", path.display())
                }
                LinkPin::Replaced { path, link } => tracing::info!(
                    "{iface}: XDP program replaced in the predecessor's pinned link {link} at {}",
                    path.display()
                ),
                LinkPin::NotPinned { reason } => {
                    tracing::warn!("{iface}: XDP link not pinned, it goes with this process: {reason}")
                }
            }
        }
        let dr_probes = self.probes.targets().iter().any(|t| t.dr);
        for v in &self.cfg.vips {
            // Only XDP answers ARP for the VIP (see the module doc).
            sysctl(&format!("net.ipv4.conf.{}.arp_ignore", v.interface), "1")?;
            sysctl(&format!("net.ipv4.conf.{}.arp_announce", v.interface), "2")?;
        }
        if dr_probes && let Some(v) = self.cfg.vips.first() {
            // A DR server answers the probe from the VIP, which the active
            // node has on lo: without accept_local the kernel drops the
            // answer as a martian (a packet from one of its own addresses).
            sysctl(&format!("net.ipv4.conf.{}.accept_local", v.interface), "1")?;
        }
        if let Tables::Created { superseded, .. } = &self.tables
            && !superseded.is_empty()
        {
            // The new program replaced the one that used them.
            self.dp.remove_superseded(superseded).context("removing another layout's tables")?;
        }
        // A previous daemon killed while active may have left the VIPs on
        // lo; a resumed one keeps them.
        for v in self.vips.iter().filter(|_| self.resuming.is_none()) {
            self.addrs
                .remove(&self.lo, v.addr)
                .with_context(|| format!("removing a stale VIP {} from lo", v.addr))?;
        }
        for (c, m) in self.cfg.cards.iter().zip(self.cards.iter_mut()) {
            // Spans start shut down: only the active node drives them.
            m.shutdown_spans()
                .with_context(|| format!("card {}: shutting spans down", c.root.display()))?;
            m.arm()
                .with_context(|| format!("card {}: arming", c.root.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sysctl_that_cannot_be_written_is_an_error_naming_its_key() {
        let e = super::sysctl("net.ipv4.conf.tandem-no-such0.arp_ignore", "1")
            .expect_err("no such interface");
        let text = format!("{e:#}");
        assert!(
            text.contains("net.ipv4.conf.tandem-no-such0.arp_ignore = 1"),
            "{text}"
        );
    }
}
