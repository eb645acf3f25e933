//! `tandem.toml`: the daemon's configuration, parsed and validated as a whole.
//!
//! This module owns the file format, its defaults and every check that can be
//! made without touching the system, so that `tandemd` refuses a bad file
//! before it changes anything. Each error names the field by its path in the
//! file (`service[1].real[0].mac`) and the value it got. It also converts the
//! virtual services to the dataplane's [`ServiceConfig`], resolving interface
//! names through a closure the caller supplies.
//!
//! It must not do I/O beyond reading the file, and it applies nothing: what
//! to do with a configuration is the daemon's business.
//!
//! ```toml
//! [node]
//! id = 1
//! name = "director-a"
//!
//! [heartbeat]
//! key = "000102030405060708090a0b0c0d0e0f"
//! paths = [{ name = "link", interface = "hb0", local = "198.18.1.1", peer = "198.18.1.2" }]
//! ```
//!
//! See `control/tandem.example.toml` for every field.

use std::{
    collections::BTreeSet,
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use tandem_dataplane::{
    AttachMode, RealConfig, RealState, ServiceConfig,
    common::{
        DEFAULT_FLOW_ENTRIES, FLAG_EXPIRE_NODEST, FLAG_ONE_PACKET, FLAG_REPORTED_LOAD,
        FLAG_SCHED_FALLBACK, FLAG_SCHED_PORT, FLAG_SIP_PERSIST, Forward, MH_DEFAULT_SIZE, MH_MAX_SIZE, Scheduler,
    },
    config::Protocol,
};
use toml::{Table, Value};

/// Default UDP port of heartbeats (the one Linux-HA heartbeat used).
pub const DEFAULT_HEARTBEAT_PORT: u16 = 694;
/// Default heartbeat interval in milliseconds.
pub const DEFAULT_INTERVAL_MS: u64 = 100;
/// Default number of missed intervals before a path is declared dead.
pub const DEFAULT_MULTIPLIER: u32 = 3;
/// Default gratuitous ARPs sent per takeover.
pub const DEFAULT_GARP_COUNT: u32 = 5;
/// Default spacing of gratuitous ARPs in milliseconds.
pub const DEFAULT_GARP_INTERVAL_MS: u64 = 10;
/// Default path of the admin socket.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/tandem/tandemd.sock";
/// Default node priority (higher wins).
pub const DEFAULT_PRIORITY: u8 = 100;
/// `[node] card_fault_holddown_ms`.
pub const DEFAULT_CARD_FAULT_HOLDDOWN_MS: u64 = 10_000;
/// `[sync] port`.
pub const DEFAULT_SYNC_PORT: u16 = crate::sync::DEFAULT_PORT;
/// Default device root of a telephony card (DAHDI's nodes).
pub const DEFAULT_CARD_ROOT: &str = tandem_hw::device::DEFAULT_DEVICE_ROOT;
/// Default time a takeover waits for its spans to be alarm-free after
/// `DAHDI_STARTUP`, in milliseconds.
pub const DEFAULT_TAKEOVER_DEADLINE_MS: u64 = 500;
/// Default channel signalling set on an owned span's channels.
pub const DEFAULT_SIGNALLING: &str = "fxsks";

/// Framing and coding words of `card.lineconfig` (as in DAHDI's
/// `system.conf`), with their `DAHDI_CONFIG_*` bits.
pub const LINECONFIG_NAMES: [(&str, i32); 7] = [
    ("d4", tandem_hw::abi::DAHDI_CONFIG_D4),
    ("esf", tandem_hw::abi::DAHDI_CONFIG_ESF),
    ("ami", tandem_hw::abi::DAHDI_CONFIG_AMI),
    ("b8zs", tandem_hw::abi::DAHDI_CONFIG_B8ZS),
    ("ccs", tandem_hw::abi::DAHDI_CONFIG_CCS),
    ("hdb3", tandem_hw::abi::DAHDI_CONFIG_HDB3),
    ("crc4", tandem_hw::abi::DAHDI_CONFIG_CRC4),
];

/// Channel signalling names of `card.signalling` (as in `system.conf`),
/// with their `DAHDI_SIG_*` values.
pub const SIGNALLING_NAMES: [(&str, i32); 10] = [
    ("fxsls", tandem_hw::abi::DAHDI_SIG_FXSLS),
    ("fxsgs", tandem_hw::abi::DAHDI_SIG_FXSGS),
    ("fxsks", tandem_hw::abi::DAHDI_SIG_FXSKS),
    ("fxols", tandem_hw::abi::DAHDI_SIG_FXOLS),
    ("fxogs", tandem_hw::abi::DAHDI_SIG_FXOGS),
    ("fxoks", tandem_hw::abi::DAHDI_SIG_FXOKS),
    ("em", tandem_hw::abi::DAHDI_SIG_EM),
    ("em_e1", tandem_hw::abi::DAHDI_SIG_EM_E1),
    ("cas", tandem_hw::abi::DAHDI_SIG_CAS),
    ("clear", tandem_hw::abi::DAHDI_SIG_CLEAR),
];

/// Service flag names as written in the file, with their bits.
pub const FLAG_NAMES: [(&str, u16); 6] = [
    ("expire_nodest", FLAG_EXPIRE_NODEST),
    ("sched_fallback", FLAG_SCHED_FALLBACK),
    ("sched_port", FLAG_SCHED_PORT),
    ("one_packet", FLAG_ONE_PACKET),
    ("reported_load", FLAG_REPORTED_LOAD),
    ("sip_persist", FLAG_SIP_PERSIST),
];

/// A configuration that cannot be used. Nothing has been changed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {error}")]
    File {
        path: PathBuf,
        error: Box<ConfigError>,
    },
    /// The file is not TOML; the message carries line and column.
    #[error("not valid TOML: {0}")]
    Syntax(String),
    #[error("{field}: missing")]
    Missing { field: String },
    #[error("{field}: unknown field")]
    Unknown { field: String },
    /// `field: value problem`, e.g. `heartbeat.interval_ms: 0 is below the minimum 1`.
    #[error("{field}: {value} {problem}")]
    Invalid {
        field: String,
        value: String,
        problem: String,
    },
}

impl ConfigError {
    /// The dotted path of the field at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Missing { field }
            | ConfigError::Unknown { field }
            | ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::File { error, .. } => error.field(),
            _ => None,
        }
    }
}

/// The whole configuration of one director.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub node: NodeConfig,
    pub heartbeat: HeartbeatConfig,
    pub witness: Option<WitnessConfig>,
    pub vips: Vec<VipConfig>,
    pub dataplane: DataplaneConfig,
    pub services: Vec<ServiceEntry>,
    pub admin: AdminConfig,
    /// Telephony cards whose spans follow the pair state (may be empty).
    pub cards: Vec<CardConfig>,
    /// State sync with the peer (None: `[sync] enabled = false`).
    pub sync: Option<SyncConfig>,
}

/// `[sync]`: the TCP connection that carries flows, calls and channel
/// states to the standby. On by default, over the first heartbeat path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    pub port: u16,
    /// This node listens on these (default: every heartbeat path's local address).
    pub local: Vec<IpAddr>,
    /// The peer's addresses, dialed in turn (default: every heartbeat
    /// path's peer address, the dedicated link first): sync survives the
    /// loss of one network as the heartbeats do.
    pub peer: Vec<IpAddr>,
}

/// `[node]`: who this director is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// Non-zero, unique among the directors.
    pub id: u32,
    pub name: String,
    /// Higher wins an election; ties go to the higher id.
    pub priority: u8,
    /// Take the active role back from a lower-priority peer.
    pub preempt: bool,
    /// The node id of the other director (its heartbeats are accepted).
    pub peer_id: u32,
    /// SCHED_FIFO priority of the daemon's loop once it runs (1 to 99; 0:
    /// normal scheduling). With 1 ms heartbeats, a sender delayed by the
    /// scheduler for `interval × multiplier` looks dead to its peer; like
    /// keepalived's `vrrp_rt_priority`, a real-time priority prevents it.
    pub realtime_priority: u8,
    /// After its card fault clears, a node that is not active stays faulty
    /// this long (its shut-down span cannot show whether the trunk came
    /// back): a trunk cut behind both nodes does not bounce the role.
    pub card_fault_holddown: Duration,
}

/// `[heartbeat]`: how the directors watch each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatConfig {
    pub port: u16,
    pub interval: Duration,
    /// Missed intervals before a path is dead.
    pub multiplier: u32,
    /// SipHash-2-4 key shared by the directors.
    pub key: [u8; 16],
    /// At least one; the peer is dead only when silent on all of them.
    pub paths: Vec<HeartbeatPath>,
}

impl HeartbeatConfig {
    /// Silence after which a path is dead: `interval × multiplier`.
    pub fn deadline(&self) -> Duration {
        self.interval * self.multiplier
    }
}

/// One heartbeat path (a dedicated link or the service network).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatPath {
    pub name: String,
    pub interface: String,
    pub local: Ipv4Addr,
    pub peer: Ipv4Addr,
}

/// `[witness]`: a target on the service network that must answer before a
/// takeover when only the heartbeat link broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessConfig {
    pub address: Ipv4Addr,
    /// How often the standby probes the witness while it waits (default:
    /// the heartbeat interval). A takeover whose peer went silent before
    /// the last answered probe was sent needs no probe of its own.
    pub probe_interval: Duration,
}

/// `[[vip]]`: an address the active director holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipConfig {
    pub address: Ipv4Addr,
    /// The service interface the address goes on.
    pub interface: String,
    pub garp_count: u32,
    pub garp_interval: Duration,
}

/// `[dataplane]`: where and how the XDP program is attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneConfig {
    pub xdp_mode: AttachMode,
    /// When absent in the file: the heartbeat and VIP interfaces, in that
    /// order, each once.
    pub interfaces: Vec<String>,
    /// Entries of the connection table.
    pub flow_entries: u32,
}

/// `[[service]]`: a virtual service as written in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub scheduler: Scheduler,
    pub forward: Forward,
    /// `FLAG_*` bits.
    pub flags: u16,
    pub mh_size: u32,
    /// NAT: MAC of the gateway toward the clients.
    pub gateway_mac: Option<[u8; 6]>,
    /// NAT: interface replies to clients leave by (absent: the one they came in on).
    pub client_interface: Option<String>,
    pub reals: Vec<RealEntry>,
    /// SIP OPTIONS health probes of the real servers (UDP services only).
    pub sip_options: Option<crate::sipprobe::ProbeConfig>,
}

/// `[[service.real]]`: a real server as written in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealEntry {
    pub address: IpAddr,
    /// NAT: port on the real server (0: the virtual port).
    pub port: u16,
    pub mac: [u8; 6],
    pub weight: u32,
    pub state: RealState,
    /// Interface toward it (absent: the one the packet came in on).
    pub interface: Option<String>,
    /// The node id this IVR server sends heartbeats with: it is then
    /// marked down when silent for the heartbeat deadline and up when heard
    /// again, and its reported load feeds `reported_load` services.
    pub node_id: Option<u32>,
}

/// `[admin]`: the control socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    pub socket: PathBuf,
    /// Serve Prometheus metrics over HTTP here (None: only `tandemctl metrics`).
    pub metrics_listen: Option<SocketAddr>,
}

/// `[[card]]`: a telephony card (a DAHDI device root) and the spans this
/// node drives while it is active. See [`crate::cards`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardConfig {
    /// The directory holding `ctl` and `chan/` (`/dev/dahdi` on a real system).
    pub root: PathBuf,
    /// Span numbers (1-based, distinct) started on takeover and shut down on demotion.
    pub spans: Vec<u32>,
    /// How long a takeover waits for every span to be alarm-free after `DAHDI_STARTUP`.
    pub takeover_deadline: Duration,
    /// `DAHDI_SPANCONFIG` before `DAHDI_STARTUP`; `None` leaves the span's line as it is.
    pub line: Option<CardLine>,
    /// `DAHDI_SIG_*` set on every channel of an owned span (a name of [`SIGNALLING_NAMES`]).
    pub signalling: i32,
    /// The active node answers incoming calls itself (`HOOK(OFFHOOK)` on
    /// ringing): a front end that holds calls for the IVRs. Default off.
    pub auto_answer: bool,
}

/// `card.lineconfig` and `card.timing`: an owned span's line configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CardLine {
    /// `DAHDI_CONFIG_*` framing and coding bits (names in [`LINECONFIG_NAMES`]).
    pub config: i32,
    /// Timing source priority; 0: never a timing source.
    pub timing: u32,
}

impl Config {
    /// Reads and validates a file; errors are prefixed with its path.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|error| ConfigError::File {
            path: path.to_owned(),
            error: Box::new(error),
        })
    }

    /// Parses and validates the text of a `tandem.toml`.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let root: Table = toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let root = Fields::new(String::new(), &root);
        let node = parse_node(&root.req_table("node")?)?;
        let heartbeat = parse_heartbeat(&root.req_table("heartbeat")?)?;
        let witness = match root.opt_table("witness")? {
            Some(w) => {
                let address = w.req_ipv4("address")?;
                let default_ms = heartbeat.interval.as_millis() as i64;
                let ms = w.int("probe_interval_ms", Some(default_ms), 1, 60_000)? as u64;
                w.finish()?;
                Some(WitnessConfig { address, probe_interval: Duration::from_millis(ms) })
            }
            None => None,
        };
        let vips = root
            .tables("vip")?
            .iter()
            .map(parse_vip)
            .collect::<Result<Vec<_>, _>>()?;
        let dataplane = parse_dataplane(root.opt_table("dataplane")?.as_ref(), &heartbeat, &vips)?;
        let services = root
            .tables("service")?
            .iter()
            .map(parse_service)
            .collect::<Result<Vec<_>, _>>()?;
        let admin = match root.opt_table("admin")? {
            Some(a) => {
                let socket = PathBuf::from(a.string("socket", Some(DEFAULT_ADMIN_SOCKET))?);
                let metrics_listen = match a.opt("metrics_listen") {
                    None => None,
                    Some(v) => Some(v.as_str().and_then(|s| s.parse::<SocketAddr>().ok()).ok_or_else(|| {
                        invalid(a.path("metrics_listen"), v, "is not an address:port to listen on")
                    })?),
                };
                a.finish()?;
                AdminConfig { socket, metrics_listen }
            }
            None => AdminConfig {
                socket: DEFAULT_ADMIN_SOCKET.into(),
                metrics_listen: None,
            },
        };
        let cards = root
            .tables("card")?
            .iter()
            .map(parse_card)
            .collect::<Result<Vec<_>, _>>()?;
        let sync = parse_sync(root.opt_table("sync")?.as_ref(), &heartbeat)?;
        root.finish()?;
        let config = Config {
            node,
            heartbeat,
            witness,
            vips,
            dataplane,
            services,
            admin,
            cards,
            sync,
        };
        config.check_across()?;
        // The dataplane's own checks (wrr cycle length, NAT gateway, ...),
        // with interfaces resolved to a placeholder index.
        config.dataplane_services(|_| Some(1))?;
        Ok(config)
    }

    /// Checks between sections.
    fn check_across(&self) -> Result<(), ConfigError> {
        let mut vips = BTreeSet::new();
        for (i, v) in self.vips.iter().enumerate() {
            if !vips.insert(v.address) {
                return Err(invalid(
                    format!("vip[{i}].address"),
                    &v.address,
                    "is listed twice",
                ));
            }
            if self.heartbeat.paths.iter().any(|p| p.local == v.address) {
                return Err(invalid(
                    format!("vip[{i}].address"),
                    &v.address,
                    "is also a heartbeat path's local address",
                ));
            }
        }
        let mut roots = BTreeSet::new();
        for (i, c) in self.cards.iter().enumerate() {
            if !roots.insert(&c.root) {
                return Err(invalid(
                    format!("card[{i}].root"),
                    &quoted(&c.root.to_string_lossy()),
                    "is listed twice",
                ));
            }
        }
        let mut keys = BTreeSet::new();
        for (i, s) in self.services.iter().enumerate() {
            if let IpAddr::V4(v4) = s.vip
                && !vips.contains(&v4)
            {
                return Err(invalid(
                    format!("service[{i}].vip"),
                    &s.vip,
                    "is not the address of any [[vip]]",
                ));
            }
            if !keys.insert((s.vip, s.port, s.protocol.number())) {
                return Err(invalid(
                    format!("service[{i}]"),
                    &service_name(s.protocol, s.vip, s.port),
                    "is configured twice",
                ));
            }
        }
        Ok(())
    }

    /// The virtual services in the dataplane's form. `ifindex` maps an
    /// interface name to its index (`None`: no such interface); see
    /// [`ifindex`] for the system's.
    pub fn dataplane_services(
        &self,
        mut ifindex: impl FnMut(&str) -> Option<u32>,
    ) -> Result<Vec<ServiceConfig>, ConfigError> {
        let mut out = Vec::with_capacity(self.services.len());
        for (i, s) in self.services.iter().enumerate() {
            let mut resolve = |field: String, name: &Option<String>| match name {
                None => Ok(0),
                Some(n) => ifindex(n)
                    .ok_or_else(|| invalid(field, &quoted(n), "is not an interface of this host")),
            };
            let client_ifindex = resolve(
                format!("service[{i}].client_interface"),
                &s.client_interface,
            )?;
            let mut reals = Vec::with_capacity(s.reals.len());
            for (j, r) in s.reals.iter().enumerate() {
                reals.push(RealConfig {
                    addr: r.address,
                    port: r.port,
                    mac: r.mac,
                    weight: r.weight,
                    state: r.state,
                    ifindex: resolve(format!("service[{i}].real[{j}].interface"), &r.interface)?,
                });
            }
            let sc = ServiceConfig {
                vip: s.vip,
                port: s.port,
                proto: s.protocol,
                scheduler: s.scheduler,
                forward: s.forward,
                flags: s.flags,
                mh_size: s.mh_size,
                client_ifindex,
                gateway_mac: s.gateway_mac.unwrap_or([0; 6]),
                reals,
            };
            sc.validate().map_err(|e| dataplane_error(i, e))?;
            out.push(sc);
        }
        Ok(out)
    }

    /// The canonical TOML text of this configuration; it parses back to
    /// an equal `Config`.
    pub fn to_toml(&self) -> String {
        let mut root = Table::new();
        let mut node = Table::new();
        node.insert("id".into(), int(self.node.id));
        node.insert("name".into(), self.node.name.clone().into());
        node.insert("priority".into(), int(self.node.priority));
        node.insert("preempt".into(), self.node.preempt.into());
        node.insert("peer_id".into(), int(self.node.peer_id));
        node.insert("realtime_priority".into(), int(self.node.realtime_priority));
        node.insert("card_fault_holddown_ms".into(), int(self.node.card_fault_holddown.as_millis() as i64));
        root.insert("node".into(), node.into());

        let hb = &self.heartbeat;
        let mut t = Table::new();
        t.insert("port".into(), int(hb.port));
        t.insert("interval_ms".into(), int(hb.interval.as_millis() as i64));
        t.insert("multiplier".into(), int(hb.multiplier));
        t.insert(
            "key".into(),
            hb.key
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into(),
        );
        let paths = hb
            .paths
            .iter()
            .map(|p| {
                let mut t = Table::new();
                t.insert("name".into(), p.name.clone().into());
                t.insert("interface".into(), p.interface.clone().into());
                t.insert("local".into(), p.local.to_string().into());
                t.insert("peer".into(), p.peer.to_string().into());
                Value::Table(t)
            })
            .collect::<Vec<_>>();
        t.insert("paths".into(), paths.into());
        root.insert("heartbeat".into(), t.into());

        let mut t = Table::new();
        match &self.sync {
            Some(sy) => {
                t.insert("port".into(), int(sy.port));
                let strs = |v: &[IpAddr]| v.iter().map(|a| Value::from(a.to_string())).collect::<Vec<_>>();
                t.insert("local".into(), strs(&sy.local).into());
                t.insert("peer".into(), strs(&sy.peer).into());
            }
            None => {
                t.insert("enabled".into(), false.into());
            }
        }
        root.insert("sync".into(), t.into());

        if let Some(w) = &self.witness {
            let mut t = Table::new();
            t.insert("address".into(), w.address.to_string().into());
            t.insert("probe_interval_ms".into(), int(w.probe_interval.as_millis() as i64));
            root.insert("witness".into(), t.into());
        }
        let vips = self
            .vips
            .iter()
            .map(|v| {
                let mut t = Table::new();
                t.insert("address".into(), v.address.to_string().into());
                t.insert("interface".into(), v.interface.clone().into());
                t.insert("garp_count".into(), int(v.garp_count));
                t.insert(
                    "garp_interval_ms".into(),
                    int(v.garp_interval.as_millis() as i64),
                );
                Value::Table(t)
            })
            .collect::<Vec<_>>();
        root.insert("vip".into(), vips.into());

        let mut t = Table::new();
        let mode = match self.dataplane.xdp_mode {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
            AttachMode::Auto => "auto",
        };
        t.insert("xdp_mode".into(), mode.into());
        t.insert(
            "interfaces".into(),
            self.dataplane
                .interfaces
                .iter()
                .map(|s| Value::from(s.clone()))
                .collect::<Vec<_>>()
                .into(),
        );
        t.insert("flow_entries".into(), int(self.dataplane.flow_entries));
        root.insert("dataplane".into(), t.into());

        let services = self.services.iter().map(service_toml).collect::<Vec<_>>();
        root.insert("service".into(), services.into());

        let mut t = Table::new();
        t.insert(
            "socket".into(),
            self.admin.socket.to_string_lossy().into_owned().into(),
        );
        if let Some(m) = self.admin.metrics_listen {
            t.insert("metrics_listen".into(), m.to_string().into());
        }
        root.insert("admin".into(), t.into());

        let cards = self.cards.iter().map(card_toml).collect::<Vec<_>>();
        if !cards.is_empty() {
            root.insert("card".into(), cards.into());
        }
        toml::to_string(&root).unwrap_or_default()
    }
}

/// The system's interface index of `name` in the caller's network
/// namespace, for [`Config::dataplane_services`].
pub fn ifindex(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

fn int(v: impl Into<i64>) -> Value {
    Value::Integer(v.into())
}

fn service_toml(s: &ServiceEntry) -> Value {
    let mut t = Table::new();
    t.insert("vip".into(), s.vip.to_string().into());
    t.insert("port".into(), int(s.port));
    t.insert(
        "protocol".into(),
        match s.protocol {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        }
        .into(),
    );
    t.insert("scheduler".into(), s.scheduler.name().into());
    t.insert(
        "forward".into(),
        match s.forward {
            Forward::Dr => "dr",
            Forward::Nat => "nat",
        }
        .into(),
    );
    let flags = FLAG_NAMES
        .iter()
        .filter(|(_, bit)| s.flags & bit != 0)
        .map(|(name, _)| Value::from(*name))
        .collect::<Vec<_>>();
    t.insert("flags".into(), flags.into());
    t.insert("mh_size".into(), int(s.mh_size));
    if let Some(mac) = &s.gateway_mac {
        t.insert("gateway_mac".into(), tandem_dataplane::fmt_mac(mac).into());
    }
    if let Some(i) = &s.client_interface {
        t.insert("client_interface".into(), i.clone().into());
    }
    if let Some(o) = &s.sip_options {
        let mut p = Table::new();
        p.insert("interval_ms".into(), int(o.interval.as_millis() as i64));
        p.insert("timeout_ms".into(), int(o.timeout.as_millis() as i64));
        p.insert("failures".into(), int(o.failures));
        t.insert("sip_options".into(), p.into());
    }
    let reals = s
        .reals
        .iter()
        .map(|r| {
            let mut t = Table::new();
            t.insert("address".into(), r.address.to_string().into());
            t.insert("port".into(), int(r.port));
            t.insert("mac".into(), tandem_dataplane::fmt_mac(&r.mac).into());
            t.insert("weight".into(), int(r.weight));
            t.insert(
                "state".into(),
                match r.state {
                    RealState::Up => "up",
                    RealState::Draining => "draining",
                    RealState::Down => "down",
                }
                .into(),
            );
            if let Some(i) = &r.interface {
                t.insert("interface".into(), i.clone().into());
            }
            if let Some(n) = r.node_id {
                t.insert("node_id".into(), int(n));
            }
            Value::Table(t)
        })
        .collect::<Vec<_>>();
    t.insert("real".into(), reals.into());
    Value::Table(t)
}

fn card_toml(c: &CardConfig) -> Value {
    let mut t = Table::new();
    t.insert("root".into(), c.root.to_string_lossy().into_owned().into());
    t.insert(
        "spans".into(),
        c.spans.iter().map(|&s| int(s)).collect::<Vec<_>>().into(),
    );
    t.insert(
        "takeover_deadline_ms".into(),
        int(c.takeover_deadline.as_millis() as i64),
    );
    if let Some(line) = &c.line {
        let words = LINECONFIG_NAMES
            .iter()
            .filter(|(_, bit)| line.config & bit != 0)
            .map(|(name, _)| Value::from(*name))
            .collect::<Vec<_>>();
        t.insert("lineconfig".into(), words.into());
        t.insert("timing".into(), int(line.timing));
    }
    let signalling = SIGNALLING_NAMES
        .iter()
        .find(|(_, sig)| *sig == c.signalling)
        .map_or(DEFAULT_SIGNALLING, |(name, _)| name);
    t.insert("signalling".into(), signalling.into());
    t.insert("auto_answer".into(), c.auto_answer.into());
    Value::Table(t)
}

fn service_name(proto: Protocol, vip: IpAddr, port: u16) -> String {
    let p = match proto {
        Protocol::Udp => "udp",
        Protocol::Tcp => "tcp",
    };
    match vip {
        IpAddr::V4(a) => format!("{p}/{a}:{port}"),
        IpAddr::V6(a) => format!("{p}/[{a}]:{port}"),
    }
}

/// Maps a check of the dataplane to the file's field names.
fn dataplane_error(i: usize, e: tandem_dataplane::ConfigError) -> ConfigError {
    let file_field = |f: &str| match f {
        "addr" => "address".to_string(),
        "proto" => "protocol".to_string(),
        "reals" => "real".to_string(),
        other => other.to_string(),
    };
    match e {
        tandem_dataplane::ConfigError::Service {
            service,
            field,
            reason,
        } => ConfigError::Invalid {
            field: format!("service[{i}].{}", file_field(field)),
            value: format!("({service})"),
            problem: reason,
        },
        tandem_dataplane::ConfigError::Real {
            index,
            addr,
            field,
            reason,
            ..
        } => ConfigError::Invalid {
            field: format!("service[{i}].real[{index}].{}", file_field(field)),
            value: format!("({addr})"),
            problem: reason,
        },
    }
}

fn quoted(s: &str) -> String {
    Value::from(s).to_string()
}

fn invalid(field: impl Into<String>, value: &dyn fmt::Display, problem: &str) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        value: value.to_string(),
        problem: problem.to_string(),
    }
}

fn parse_node(t: &Fields) -> Result<NodeConfig, ConfigError> {
    let id = t.int("id", None, 1, u32::MAX as i64)? as u32;
    let name = t.string("name", None)?;
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
        return Err(invalid(
            t.path("name"),
            &quoted(&name),
            "is not a node name (1 to 64 printable characters)",
        ));
    }
    let priority = t.int("priority", Some(DEFAULT_PRIORITY as i64), 0, 255)? as u8;
    let preempt = t.bool("preempt", Some(false))?;
    let peer_id = t.int("peer_id", None, 1, u32::MAX as i64)? as u32;
    let realtime_priority = t.int("realtime_priority", Some(0), 0, 99)? as u8;
    let holddown_ms = t.int("card_fault_holddown_ms", Some(DEFAULT_CARD_FAULT_HOLDDOWN_MS as i64), 0, 3_600_000)? as u64;
    if peer_id == id {
        return Err(invalid(
            t.path("peer_id"),
            &peer_id.to_string(),
            "is this node's own id",
        ));
    }
    t.finish()?;
    Ok(NodeConfig {
        id,
        name,
        priority,
        preempt,
        peer_id,
        realtime_priority,
        card_fault_holddown: Duration::from_millis(holddown_ms),
    })
}

fn parse_sync(t: Option<&Fields>, hb: &HeartbeatConfig) -> Result<Option<SyncConfig>, ConfigError> {
    let locals: Vec<IpAddr> = hb.paths.iter().map(|p| IpAddr::V4(p.local)).collect();
    let peers: Vec<IpAddr> = hb.paths.iter().map(|p| IpAddr::V4(p.peer)).collect();
    let Some(t) = t else {
        return Ok(Some(SyncConfig { port: DEFAULT_SYNC_PORT, local: locals, peer: peers }));
    };
    let enabled = t.bool("enabled", Some(true))?;
    let port = t.int("port", Some(DEFAULT_SYNC_PORT as i64), 1, 65_535)? as u16;
    let list = |key: &str, default: Vec<IpAddr>| -> Result<Vec<IpAddr>, ConfigError> {
        let Some(v) = t.opt(key) else {
            return Ok(default);
        };
        let items: Vec<&toml::Value> = match v {
            toml::Value::Array(a) => a.iter().collect(),
            one => vec![one],
        };
        if items.is_empty() {
            return Err(invalid(t.path(key), v, "is empty"));
        }
        items
            .into_iter()
            .map(|i| {
                i.as_str()
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    .filter(|a| !a.is_unspecified() && !a.is_multicast())
                    .ok_or_else(|| invalid(t.path(key), i, "is not a unicast IP address"))
            })
            .collect()
    };
    let local = list("local", locals)?;
    let peer = list("peer", peers)?;
    if let Some(a) = peer.iter().find(|a| local.contains(a)) {
        return Err(invalid(t.path("peer"), &quoted(&a.to_string()), "is this node's own sync address"));
    }
    t.finish()?;
    Ok(enabled.then_some(SyncConfig { port, local, peer }))
}

fn parse_heartbeat(t: &Fields) -> Result<HeartbeatConfig, ConfigError> {
    let port = t.int("port", Some(DEFAULT_HEARTBEAT_PORT as i64), 1, 65_535)? as u16;
    let interval_ms = t.int("interval_ms", Some(DEFAULT_INTERVAL_MS as i64), 1, 60_000)? as u64;
    let multiplier = t.int("multiplier", Some(DEFAULT_MULTIPLIER as i64), 2, 1000)? as u32;
    let key_text = t.string("key", None)?;
    let key = parse_key(&key_text).ok_or_else(|| {
        invalid(
            t.path("key"),
            &quoted(&key_text),
            "is not a 16-byte key written as 32 hexadecimal digits",
        )
    })?;
    let paths_list = t.tables("paths")?;
    if paths_list.is_empty() {
        return Err(ConfigError::Invalid {
            field: t.path("paths"),
            value: "[]".into(),
            problem: "is empty: at least one heartbeat path is needed".into(),
        });
    }
    let mut paths: Vec<HeartbeatPath> = Vec::new();
    for p in &paths_list {
        let name = p.string("name", None)?;
        if name.is_empty() {
            return Err(invalid(p.path("name"), &quoted(&name), "is empty"));
        }
        if paths.iter().any(|o| o.name == name) {
            return Err(invalid(
                p.path("name"),
                &quoted(&name),
                "is used by another path",
            ));
        }
        let interface = p.interface("interface")?;
        let local = p.req_ipv4("local")?;
        let peer = p.req_ipv4("peer")?;
        if peer == local {
            return Err(invalid(
                p.path("peer"),
                &quoted(&peer.to_string()),
                "is the local address",
            ));
        }
        p.finish()?;
        paths.push(HeartbeatPath {
            name,
            interface,
            local,
            peer,
        });
    }
    t.finish()?;
    Ok(HeartbeatConfig {
        port,
        interval: Duration::from_millis(interval_ms),
        multiplier,
        key,
        paths,
    })
}

fn parse_key(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

fn parse_vip(t: &Fields) -> Result<VipConfig, ConfigError> {
    let address = t.req_ipv4("address")?;
    let interface = t.interface("interface")?;
    let garp_count = t.int("garp_count", Some(DEFAULT_GARP_COUNT as i64), 0, 1000)? as u32;
    let garp_interval_ms = t.int(
        "garp_interval_ms",
        Some(DEFAULT_GARP_INTERVAL_MS as i64),
        0,
        10_000,
    )? as u64;
    t.finish()?;
    Ok(VipConfig {
        address,
        interface,
        garp_count,
        garp_interval: Duration::from_millis(garp_interval_ms),
    })
}

fn parse_dataplane(
    t: Option<&Fields>,
    hb: &HeartbeatConfig,
    vips: &[VipConfig],
) -> Result<DataplaneConfig, ConfigError> {
    let mut defaults = Vec::new();
    for name in hb
        .paths
        .iter()
        .map(|p| &p.interface)
        .chain(vips.iter().map(|v| &v.interface))
    {
        if !defaults.contains(name) {
            defaults.push(name.clone());
        }
    }
    let Some(t) = t else {
        return Ok(DataplaneConfig {
            xdp_mode: AttachMode::Auto,
            interfaces: defaults,
            flow_entries: DEFAULT_FLOW_ENTRIES,
        });
    };
    let mode = t.string("xdp_mode", Some("auto"))?;
    let xdp_mode = match mode.as_str() {
        "native" => AttachMode::Native,
        "generic" => AttachMode::Generic,
        "auto" => AttachMode::Auto,
        _ => {
            return Err(invalid(
                t.path("xdp_mode"),
                &quoted(&mode),
                "is not one of native, generic, auto",
            ));
        }
    };
    let interfaces = match t.opt("interfaces") {
        None => defaults,
        Some(v) => {
            let field = t.path("interfaces");
            let list = v
                .as_array()
                .ok_or_else(|| invalid(field.clone(), v, "is not a list of interface names"))?;
            if list.is_empty() {
                return Err(invalid(field, v, "is empty"));
            }
            let mut out: Vec<String> = Vec::new();
            for (i, item) in list.iter().enumerate() {
                let f = format!("{field}[{i}]");
                let name = item
                    .as_str()
                    .ok_or_else(|| invalid(f.clone(), item, "is not an interface name"))?;
                check_ifname(&f, name)?;
                if out.iter().any(|o| o == name) {
                    return Err(invalid(f, item, "is listed twice"));
                }
                out.push(name.to_string());
            }
            out
        }
    };
    let flow_entries = t.int(
        "flow_entries",
        Some(DEFAULT_FLOW_ENTRIES as i64),
        1024,
        1 << 26,
    )? as u32;
    t.finish()?;
    Ok(DataplaneConfig {
        xdp_mode,
        interfaces,
        flow_entries,
    })
}

fn parse_service(t: &Fields) -> Result<ServiceEntry, ConfigError> {
    let vip = t.req_ip("vip")?;
    let port = t.int("port", None, 1, 65_535)? as u16;
    let proto = t.string("protocol", None)?;
    let protocol = match proto.as_str() {
        "udp" => Protocol::Udp,
        "tcp" => Protocol::Tcp,
        _ => {
            return Err(invalid(
                t.path("protocol"),
                &quoted(&proto),
                "is not udp or tcp",
            ));
        }
    };
    let sched = t.string("scheduler", None)?;
    let scheduler = tandem_dataplane::config::parse_scheduler(&sched).ok_or_else(|| {
        invalid(
            t.path("scheduler"),
            &quoted(&sched),
            "is not a scheduler (rr, wrr, lc, wlc, sed, nq, sh, dh, mh)",
        )
    })?;
    let fwd = t.string("forward", Some("dr"))?;
    let forward = match fwd.as_str() {
        "dr" => Forward::Dr,
        "nat" => Forward::Nat,
        _ => {
            return Err(invalid(
                t.path("forward"),
                &quoted(&fwd),
                "is not dr or nat",
            ));
        }
    };
    let mut flags = 0u16;
    if let Some(v) = t.opt("flags") {
        let field = t.path("flags");
        let list = v
            .as_array()
            .ok_or_else(|| invalid(field.clone(), v, "is not a list of flag names"))?;
        for (i, item) in list.iter().enumerate() {
            let bit = item
                .as_str()
                .and_then(|s| FLAG_NAMES.iter().find(|(n, _)| *n == s))
                .map(|(_, b)| *b)
                .ok_or_else(|| {
                    invalid(
                        format!("{field}[{i}]"),
                        item,
                        "is not a flag (expire_nodest, sched_fallback, sched_port, one_packet, reported_load, sip_persist)",
                    )
                })?;
            flags |= bit;
        }
    }
    let mh_size = t.int("mh_size", Some(MH_DEFAULT_SIZE as i64), 0, u32::MAX as i64)? as u32;
    if scheduler == Scheduler::Mh && (mh_size > MH_MAX_SIZE || !is_prime(mh_size)) {
        return Err(invalid(
            t.path("mh_size"),
            &mh_size,
            &format!("is not a prime at most {MH_MAX_SIZE}"),
        ));
    }
    let gateway_mac = t.opt_mac("gateway_mac")?;
    let client_interface = match t.opt("client_interface") {
        Some(_) => Some(t.interface("client_interface")?),
        None => None,
    };
    let mut reals = Vec::new();
    for r in t.tables("real")? {
        reals.push(parse_real(&r, vip)?);
    }
    let sip_options = match t.opt_table("sip_options")? {
        None => None,
        Some(o) => {
            if protocol != Protocol::Udp || !vip.is_ipv4() {
                return Err(invalid(t.path("sip_options"), &"(set)", "probes SIP over UDP to IPv4 services only"));
            }
            let interval = o.int("interval_ms", Some(1000), 10, 3_600_000)? as u64;
            let timeout = o.int("timeout_ms", Some(500), 1, 60_000)? as u64;
            if timeout > interval {
                return Err(invalid(o.path("timeout_ms"), &timeout, "is longer than interval_ms"));
            }
            let failures = o.int("failures", Some(3), 1, 100)? as u32;
            o.finish()?;
            Some(crate::sipprobe::ProbeConfig {
                interval: Duration::from_millis(interval),
                timeout: Duration::from_millis(timeout),
                failures,
            })
        }
    };
    t.finish()?;
    Ok(ServiceEntry {
        sip_options,
        vip,
        port,
        protocol,
        scheduler,
        forward,
        flags,
        mh_size,
        gateway_mac,
        client_interface,
        reals,
    })
}

fn parse_real(t: &Fields, vip: IpAddr) -> Result<RealEntry, ConfigError> {
    let address = t.req_ip("address")?;
    if address.is_ipv4() != vip.is_ipv4() {
        return Err(invalid(
            t.path("address"),
            &quoted(&address.to_string()),
            "is not of the VIP's address family",
        ));
    }
    let port = t.int("port", Some(0), 0, 65_535)? as u16;
    let mac = t.opt_mac("mac")?.ok_or_else(|| ConfigError::Missing {
        field: t.path("mac"),
    })?;
    let weight = t.int("weight", Some(1), 0, 65_535)? as u32;
    let st = t.string("state", Some("up"))?;
    let state = match st.as_str() {
        "up" => RealState::Up,
        "draining" => RealState::Draining,
        "down" => RealState::Down,
        _ => {
            return Err(invalid(
                t.path("state"),
                &quoted(&st),
                "is not up, draining or down",
            ));
        }
    };
    let interface = match t.opt("interface") {
        Some(_) => Some(t.interface("interface")?),
        None => None,
    };
    let node_id = match t.opt("node_id") {
        Some(_) => Some(t.int("node_id", None, 1, u32::MAX as i64)? as u32),
        None => None,
    };
    t.finish()?;
    Ok(RealEntry {
        address,
        port,
        mac,
        weight,
        state,
        interface,
        node_id,
    })
}

fn parse_card(t: &Fields) -> Result<CardConfig, ConfigError> {
    let root = t.string("root", Some(DEFAULT_CARD_ROOT))?;
    if root.is_empty() || !root.starts_with('/') || root.chars().any(|c| c.is_control()) {
        return Err(invalid(
            t.path("root"),
            &quoted(&root),
            "is not an absolute path",
        ));
    }
    let field = t.path("spans");
    let v = t.req("spans")?;
    let list = v
        .as_array()
        .ok_or_else(|| invalid(field.clone(), v, "is not a list of span numbers"))?;
    if list.is_empty() {
        return Err(invalid(
            field,
            v,
            "is empty: a card needs at least one span this node owns",
        ));
    }
    let max_span = tandem_hw::abi::DAHDI_MAX_SPANS as i64;
    let mut spans: Vec<u32> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let n = item
            .as_integer()
            .ok_or_else(|| invalid(f.clone(), item, "is not an integer"))?;
        if !(1..=max_span).contains(&n) {
            return Err(invalid(
                f,
                item,
                &format!("is not a span number (1 to {max_span})"),
            ));
        }
        if spans.contains(&(n as u32)) {
            return Err(invalid(f, item, "is listed twice"));
        }
        spans.push(n as u32);
    }
    let deadline_ms = t.int(
        "takeover_deadline_ms",
        Some(DEFAULT_TAKEOVER_DEADLINE_MS as i64),
        1,
        60_000,
    )? as u64;
    let line = match t.opt("lineconfig") {
        None => {
            if t.opt("timing").is_some() {
                return Err(invalid(
                    t.path("timing"),
                    &"(set)",
                    "needs lineconfig: the timing priority goes with DAHDI_SPANCONFIG",
                ));
            }
            None
        }
        Some(v) => {
            let field = t.path("lineconfig");
            let list = v.as_array().ok_or_else(|| {
                invalid(
                    field.clone(),
                    v,
                    "is not a list of framing and coding words",
                )
            })?;
            let mut config = 0;
            for (i, item) in list.iter().enumerate() {
                let bit = item
                    .as_str()
                    .and_then(|s| LINECONFIG_NAMES.iter().find(|(n, _)| *n == s))
                    .map(|(_, b)| *b)
                    .ok_or_else(|| {
                        invalid(
                            format!("{field}[{i}]"),
                            item,
                            "is not a framing or coding word (d4, esf, ami, b8zs, ccs, hdb3, crc4)",
                        )
                    })?;
                config |= bit;
            }
            let timing = t.int("timing", Some(0), 0, 255)? as u32;
            Some(CardLine { config, timing })
        }
    };
    let sig = t.string("signalling", Some(DEFAULT_SIGNALLING))?;
    let signalling = SIGNALLING_NAMES
        .iter()
        .find(|(n, _)| *n == sig)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            invalid(
                t.path("signalling"),
                &quoted(&sig),
                "is not a signalling (fxsls, fxsgs, fxsks, fxols, fxogs, fxoks, em, em_e1, cas, clear)",
            )
        })?;
    let auto_answer = t.bool("auto_answer", Some(false))?;
    t.finish()?;
    Ok(CardConfig {
        root: PathBuf::from(root),
        spans,
        takeover_deadline: Duration::from_millis(deadline_ms),
        line,
        signalling,
        auto_answer,
    })
}

fn is_prime(n: u32) -> bool {
    n >= 2
        && (2..)
            .take_while(|d: &u64| d * d <= n as u64)
            .all(|d| !(n as u64).is_multiple_of(d))
}

fn check_ifname(field: &str, name: &str) -> Result<(), ConfigError> {
    // IFNAMSIZ is 16 with the terminating NUL.
    if name.is_empty()
        || name.len() > 15
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(invalid(field, &quoted(name), "is not an interface name"));
    }
    Ok(())
}

/// A TOML table being read, with its path for errors and the keys read so
/// far (whatever is left at [`Fields::finish`] is an unknown field).
struct Fields<'a> {
    path: String,
    table: &'a Table,
    seen: std::cell::RefCell<Vec<&'a str>>,
}

impl<'a> Fields<'a> {
    fn new(path: String, table: &'a Table) -> Fields<'a> {
        Fields {
            path,
            table,
            seen: Default::default(),
        }
    }

    fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn opt(&self, key: &str) -> Option<&'a Value> {
        let (k, v) = self.table.get_key_value(key)?;
        self.seen.borrow_mut().push(k.as_str());
        Some(v)
    }

    fn req(&self, key: &str) -> Result<&'a Value, ConfigError> {
        self.opt(key).ok_or_else(|| ConfigError::Missing {
            field: self.path(key),
        })
    }

    fn finish(&self) -> Result<(), ConfigError> {
        let seen = self.seen.borrow();
        match self.table.keys().find(|k| !seen.contains(&k.as_str())) {
            Some(k) => Err(ConfigError::Unknown {
                field: self.path(k),
            }),
            None => Ok(()),
        }
    }

    fn int(&self, key: &str, default: Option<i64>, min: i64, max: i64) -> Result<i64, ConfigError> {
        let v = match (self.opt(key), default) {
            (Some(v), _) => v,
            (None, Some(d)) => return Ok(d),
            (None, None) => {
                return Err(ConfigError::Missing {
                    field: self.path(key),
                });
            }
        };
        let n = v
            .as_integer()
            .ok_or_else(|| invalid(self.path(key), v, "is not an integer"))?;
        if n < min {
            return Err(invalid(
                self.path(key),
                v,
                &format!("is below the minimum {min}"),
            ));
        }
        if n > max {
            return Err(invalid(
                self.path(key),
                v,
                &format!("is above the maximum {max}"),
            ));
        }
        Ok(n)
    }

    fn bool(&self, key: &str, default: Option<bool>) -> Result<bool, ConfigError> {
        match (self.opt(key), default) {
            (Some(v), _) => v
                .as_bool()
                .ok_or_else(|| invalid(self.path(key), v, "is not true or false")),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(ConfigError::Missing {
                field: self.path(key),
            }),
        }
    }

    fn string(&self, key: &str, default: Option<&str>) -> Result<String, ConfigError> {
        match (self.opt(key), default) {
            (Some(v), _) => v
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(self.path(key), v, "is not a string")),
            (None, Some(d)) => Ok(d.to_string()),
            (None, None) => Err(ConfigError::Missing {
                field: self.path(key),
            }),
        }
    }

    fn interface(&self, key: &str) -> Result<String, ConfigError> {
        let name = self.string(key, None)?;
        check_ifname(&self.path(key), &name)?;
        Ok(name)
    }

    fn req_ip(&self, key: &str) -> Result<IpAddr, ConfigError> {
        let v = self.req(key)?;
        let ip: IpAddr = v
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(self.path(key), v, "is not an IP address"))?;
        if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
            return Err(invalid(self.path(key), v, "is not a unicast address"));
        }
        Ok(ip)
    }

    fn req_ipv4(&self, key: &str) -> Result<Ipv4Addr, ConfigError> {
        match self.req_ip(key)? {
            IpAddr::V4(a) => Ok(a),
            IpAddr::V6(_) => Err(invalid(
                self.path(key),
                self.req(key)?,
                "is not an IPv4 address",
            )),
        }
    }

    fn opt_mac(&self, key: &str) -> Result<Option<[u8; 6]>, ConfigError> {
        let Some(v) = self.opt(key) else {
            return Ok(None);
        };
        let mac = v
            .as_str()
            .filter(|s| s.len() == 17)
            .and_then(tandem_dataplane::parse_mac)
            .ok_or_else(|| invalid(self.path(key), v, "is not a MAC address"))?;
        if mac == [0; 6] || mac[0] & 1 != 0 {
            return Err(invalid(self.path(key), v, "is not a unicast MAC address"));
        }
        Ok(Some(mac))
    }

    fn req_table(&self, key: &str) -> Result<Fields<'a>, ConfigError> {
        self.opt_table(key)?.ok_or_else(|| ConfigError::Missing {
            field: self.path(key),
        })
    }

    fn opt_table(&self, key: &str) -> Result<Option<Fields<'a>>, ConfigError> {
        match self.opt(key) {
            None => Ok(None),
            Some(Value::Table(t)) => Ok(Some(Fields::new(self.path(key), t))),
            Some(v) => Err(invalid(self.path(key), v, "is not a table")),
        }
    }

    /// An array of tables (`[[key]]` or `key = [{..}]`), each with its
    /// indexed path; absent is empty.
    fn tables(&self, key: &str) -> Result<Vec<Fields<'a>>, ConfigError> {
        let Some(v) = self.opt(key) else {
            return Ok(Vec::new());
        };
        let list = v
            .as_array()
            .ok_or_else(|| invalid(self.path(key), v, "is not a list of tables"))?;
        list.iter()
            .enumerate()
            .map(|(i, item)| {
                let path = format!("{}[{i}]", self.path(key));
                match item {
                    Value::Table(t) => Ok(Fields::new(path, t)),
                    other => Err(invalid(path, other, "is not a table")),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[node]
id = 1
name = "director-a"
priority = 150
preempt = true
peer_id = 2

[heartbeat]
interval_ms = 1
multiplier = 3
key = "000102030405060708090a0b0c0d0e0f"
paths = [
  { name = "link", interface = "hb0", local = "198.18.1.1", peer = "198.18.1.2" },
  { name = "service", interface = "svc0", local = "198.18.0.11", peer = "198.18.0.12" },
]

[witness]
address = "198.18.0.1"

[[vip]]
address = "198.18.0.100"
interface = "svc0"

[[service]]
vip = "198.18.0.100"
port = 5060
protocol = "udp"
scheduler = "wrr"
flags = ["expire_nodest", "reported_load"]

[[service.real]]
address = "198.18.0.21"
mac = "02:00:00:00:00:21"
weight = 2

[[service.real]]
address = "198.18.0.22"
mac = "02:00:00:00:00:22"
weight = 1
state = "draining"
interface = "svc0"
"#;

    fn with(find: &str, replace: &str) -> String {
        assert!(GOOD.contains(find), "test fixture lacks {find:?}");
        GOOD.replacen(find, replace, 1)
    }

    fn error_of(text: &str) -> String {
        match Config::parse(text) {
            Ok(_) => panic!("accepted a bad config:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn good_config_values_and_defaults() {
        let c = Config::parse(GOOD).expect("good config");
        assert_eq!(c.node.id, 1);
        assert_eq!(c.node.priority, 150);
        assert!(c.node.preempt);
        assert_eq!(c.heartbeat.port, DEFAULT_HEARTBEAT_PORT);
        assert_eq!(c.heartbeat.interval, Duration::from_millis(1));
        assert_eq!(c.heartbeat.deadline(), Duration::from_millis(3));
        assert_eq!(c.heartbeat.key[15], 0x0f);
        assert_eq!(c.heartbeat.paths.len(), 2);
        assert_eq!(c.heartbeat.paths[1].peer, Ipv4Addr::new(198, 18, 0, 12));
        assert_eq!(
            c.witness.as_ref().map(|w| w.address),
            Some(Ipv4Addr::new(198, 18, 0, 1))
        );
        assert_eq!(c.vips[0].garp_count, DEFAULT_GARP_COUNT);
        assert_eq!(c.vips[0].garp_interval, Duration::from_millis(10));
        assert_eq!(c.dataplane.xdp_mode, AttachMode::Auto);
        assert_eq!(c.dataplane.interfaces, vec!["hb0", "svc0"]);
        assert_eq!(c.services[0].forward, Forward::Dr);
        assert_eq!(c.services[0].flags, FLAG_EXPIRE_NODEST | FLAG_REPORTED_LOAD);
        assert_eq!(c.services[0].reals[1].state, RealState::Draining);
        assert_eq!(c.services[0].reals[0].weight, 2);
        assert_eq!(c.admin.socket, PathBuf::from(DEFAULT_ADMIN_SOCKET));
    }

    #[test]
    fn good_config_round_trip() {
        let c = Config::parse(GOOD).expect("good config");
        let text = c.to_toml();
        let again = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c, again);
    }

    #[test]
    fn dataplane_services_resolve_interfaces() {
        let c = Config::parse(GOOD).expect("good config");
        let s = c
            .dataplane_services(|n| (n == "svc0").then_some(7))
            .expect("resolves");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].scheduler, Scheduler::Wrr);
        assert_eq!(s[0].reals[0].ifindex, 0);
        assert_eq!(s[0].reals[1].ifindex, 7);
        assert_eq!(s[0].reals[1].mac, [2, 0, 0, 0, 0, 0x22]);
        let e = c.dataplane_services(|_| None).expect_err("no interfaces");
        assert_eq!(
            e.to_string(),
            r#"service[0].real[1].interface: "svc0" is not an interface of this host"#
        );
    }

    #[test]
    fn example_file_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tandem.example.toml");
        let c = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.services.is_empty());
        assert!(c.witness.is_some());
        let again = Config::parse(&c.to_toml()).expect("round trip");
        assert_eq!(c, again);
    }

    #[test]
    fn load_names_the_file() {
        let e = Config::load("/nonexistent/tandem.toml").expect_err("no file");
        assert!(
            e.to_string()
                .starts_with("/nonexistent/tandem.toml: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn bad_fields_are_named_with_their_values() {
        let cases: Vec<(String, &str)> = vec![
            (
                with("interval_ms = 1", "interval_ms = 0"),
                "heartbeat.interval_ms: 0 is below the minimum 1",
            ),
            (
                with("multiplier = 3", "multiplier = 1"),
                "heartbeat.multiplier: 1 is below the minimum 2",
            ),
            (
                with("interval_ms = 1", "interval_ms = \"fast\""),
                r#"heartbeat.interval_ms: "fast" is not an integer"#,
            ),
            (
                with("000102030405060708090a0b0c0d0e0f", "0001020304050607"),
                r#"heartbeat.key: "0001020304050607" is not a 16-byte key written as 32 hexadecimal digits"#,
            ),
            (
                with(
                    "000102030405060708090a0b0c0d0e0f",
                    "zz0102030405060708090a0b0c0d0e0f",
                ),
                r#"heartbeat.key: "zz0102030405060708090a0b0c0d0e0f" is not a 16-byte key written as 32 hexadecimal digits"#,
            ),
            (
                with("peer_id = 2", "peer_id = 1"),
                "node.peer_id: 1 is this node's own id",
            ),
            (
                with("id = 1", "id = 0"),
                "node.id: 0 is below the minimum 1",
            ),
            (
                with("id = 1", "id = 4294967296"),
                "node.id: 4294967296 is above the maximum 4294967295",
            ),
            (
                with("priority = 150", "priority = 256"),
                "node.priority: 256 is above the maximum 255",
            ),
            (
                with("preempt = true", "preempt = 1"),
                "node.preempt: 1 is not true or false",
            ),
            (with("id = 1\n", ""), "node.id: missing"),
            (
                with("preempt = true", "preempt = true\nprio = 3"),
                "node.prio: unknown field",
            ),
            (
                with("local = \"198.18.1.1\"", "local = \"198.18.1\""),
                r#"heartbeat.paths[0].local: "198.18.1" is not an IP address"#,
            ),
            (
                with("peer = \"198.18.0.12\"", "peer = \"fd00::1\""),
                r#"heartbeat.paths[1].peer: "fd00::1" is not an IPv4 address"#,
            ),
            (
                with("peer = \"198.18.1.2\"", "peer = \"198.18.1.1\""),
                r#"heartbeat.paths[0].peer: "198.18.1.1" is the local address"#,
            ),
            (
                with("name = \"service\"", "name = \"link\""),
                r#"heartbeat.paths[1].name: "link" is used by another path"#,
            ),
            (
                with(
                    "interface = \"hb0\"",
                    "interface = \"a-very-long-interface-name\"",
                ),
                r#"heartbeat.paths[0].interface: "a-very-long-interface-name" is not an interface name"#,
            ),
            (
                with("address = \"198.18.0.1\"", "address = \"224.0.0.1\""),
                r#"witness.address: "224.0.0.1" is not a unicast address"#,
            ),
            (
                with("scheduler = \"wrr\"", "scheduler = \"fifo\""),
                r#"service[0].scheduler: "fifo" is not a scheduler (rr, wrr, lc, wlc, sed, nq, sh, dh, mh)"#,
            ),
            (
                with("protocol = \"udp\"", "protocol = \"sctp\""),
                r#"service[0].protocol: "sctp" is not udp or tcp"#,
            ),
            (
                with("port = 5060", "port = 70000"),
                "service[0].port: 70000 is above the maximum 65535",
            ),
            (
                with(
                    "flags = [\"expire_nodest\", \"reported_load\"]",
                    "flags = [\"expire_nodest\", \"fast\"]",
                ),
                r#"service[0].flags[1]: "fast" is not a flag (expire_nodest, sched_fallback, sched_port, one_packet, reported_load, sip_persist)"#,
            ),
            (
                with(
                    "flags = [\"expire_nodest\", \"reported_load\"]",
                    "flags = []\nsip_options = { interval_ms = 100, timeout_ms = 200 }",
                ),
                "service[0].sip_options.timeout_ms: 200 is longer than interval_ms",
            ),
            (
                with(
                    "flags = [\"expire_nodest\", \"reported_load\"]",
                    "flags = []\nsip_options = { interval_ms = 1000, retries = 2 }",
                ),
                "service[0].sip_options.retries: unknown field",
            ),
            (
                with("02:00:00:00:00:21", "zz:00:00:00:00:21"),
                r#"service[0].real[0].mac: "zz:00:00:00:00:21" is not a MAC address"#,
            ),
            (
                with("02:00:00:00:00:22", "01:00:5e:00:00:22"),
                r#"service[0].real[1].mac: "01:00:5e:00:00:22" is not a unicast MAC address"#,
            ),
            (
                with("state = \"draining\"", "state = \"sleepy\""),
                r#"service[0].real[1].state: "sleepy" is not up, draining or down"#,
            ),
            (
                with("weight = 2", "weight = -1"),
                "service[0].real[0].weight: -1 is below the minimum 0",
            ),
            (
                with("address = \"198.18.0.21\"", "address = \"fd00::21\""),
                r#"service[0].real[0].address: "fd00::21" is not of the VIP's address family"#,
            ),
            (
                with("vip = \"198.18.0.100\"", "vip = \"198.18.0.101\""),
                "service[0].vip: 198.18.0.101 is not the address of any [[vip]]",
            ),
            (
                with("scheduler = \"wrr\"", "scheduler = \"mh\"\nmh_size = 65536"),
                "service[0].mh_size: 65536 is not a prime at most 131071",
            ),
            (
                with("[witness]", "[dataplane]\nxdp_mode = \"turbo\"\n[witness]"),
                r#"dataplane.xdp_mode: "turbo" is not one of native, generic, auto"#,
            ),
            (
                with("[witness]", "[dataplane]\ninterfaces = []\n[witness]"),
                "dataplane.interfaces: [] is empty",
            ),
            (
                with("[witness]", "[dataplane]\nflow_entries = 10\n[witness]"),
                "dataplane.flow_entries: 10 is below the minimum 1024",
            ),
            (
                with("paths = [", "paths = []\nold_paths = ["),
                "heartbeat.paths: [] is empty: at least one heartbeat path is needed",
            ),
            (with("[heartbeat]", "[heartbeats]"), "heartbeat: missing"),
            // The dataplane's own checks, mapped to the file's names.
            (
                with(
                    "protocol = \"udp\"",
                    "protocol = \"udp\"\nforward = \"nat\"",
                ),
                "service[0].gateway_mac: (udp/198.18.0.100:5060) NAT needs the MAC of the gateway toward the clients",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(error_of(&text), want);
        }
    }

    #[test]
    fn duplicates_across_sections() {
        let dup_vip =
            format!("{GOOD}\n[[vip]]\naddress = \"198.18.0.100\"\ninterface = \"svc0\"\n");
        assert_eq!(
            error_of(&dup_vip),
            "vip[1].address: 198.18.0.100 is listed twice"
        );
        let dup_service = format!(
            "{GOOD}\n[[service]]\nvip = \"198.18.0.100\"\nport = 5060\nprotocol = \"udp\"\nscheduler = \"rr\"\n"
        );
        assert_eq!(
            error_of(&dup_service),
            "service[1]: udp/198.18.0.100:5060 is configured twice"
        );
    }

    const CARDS: &str = r#"
[[card]]
root = "/run/cardsim/a"
spans = [1, 2]
takeover_deadline_ms = 250
lineconfig = ["ccs", "hdb3", "crc4"]
timing = 1
signalling = "em_e1"

[[card]]
spans = [3]
"#;

    #[test]
    fn cards_values_defaults_and_round_trip() {
        let c = Config::parse(&format!("{GOOD}{CARDS}")).expect("cards config");
        assert_eq!(c.cards.len(), 2);
        let a = &c.cards[0];
        assert_eq!(a.root, PathBuf::from("/run/cardsim/a"));
        assert_eq!(a.spans, vec![1, 2]);
        assert_eq!(a.takeover_deadline, Duration::from_millis(250));
        assert_eq!(
            a.line,
            Some(CardLine {
                config: tandem_hw::abi::DAHDI_CONFIG_CCS
                    | tandem_hw::abi::DAHDI_CONFIG_HDB3
                    | tandem_hw::abi::DAHDI_CONFIG_CRC4,
                timing: 1,
            })
        );
        assert_eq!(a.signalling, tandem_hw::abi::DAHDI_SIG_EM_E1);
        let b = &c.cards[1];
        assert_eq!(b.root, PathBuf::from(DEFAULT_CARD_ROOT));
        assert_eq!(b.root, PathBuf::from("/dev/dahdi"));
        assert_eq!(
            b.takeover_deadline,
            Duration::from_millis(DEFAULT_TAKEOVER_DEADLINE_MS)
        );
        assert_eq!(b.line, None, "no lineconfig: no DAHDI_SPANCONFIG");
        assert_eq!(b.signalling, tandem_hw::abi::DAHDI_SIG_FXSKS);

        let text = c.to_toml();
        let again = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c, again);
        assert!(Config::parse(GOOD).expect("no cards").cards.is_empty());
    }

    #[test]
    fn example_card_section_parses_when_uncommented() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tandem.example.toml");
        let text = std::fs::read_to_string(path).expect("example file");
        let at = text.find("# [[card]]").expect("the example shows [[card]]");
        let uncommented: String = text[at..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&format!("{}\n{uncommented}\n", &text[..at]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.cards.len(), 1);
        assert_eq!(c.cards[0].spans, vec![1]);
        assert_eq!(c.cards[0].line.map(|l| l.timing), Some(1));
    }

    #[test]
    fn bad_card_fields_are_named_with_their_values() {
        let card = |body: &str| format!("{GOOD}\n[[card]]\n{body}\n");
        let cases: Vec<(String, &str)> = vec![
            (card("root = \"/dev/dahdi\""), "card[0].spans: missing"),
            (
                card("spans = []"),
                "card[0].spans: [] is empty: a card needs at least one span this node owns",
            ),
            (
                card("spans = [0]"),
                "card[0].spans[0]: 0 is not a span number (1 to 128)",
            ),
            (
                card("spans = [1, 129]"),
                "card[0].spans[1]: 129 is not a span number (1 to 128)",
            ),
            (
                card("spans = [2, 2]"),
                "card[0].spans[1]: 2 is listed twice",
            ),
            (
                card("spans = [\"one\"]"),
                r#"card[0].spans[0]: "one" is not an integer"#,
            ),
            (
                card("spans = 1"),
                "card[0].spans: 1 is not a list of span numbers",
            ),
            (
                card("spans = [1]\nroot = \"dev/dahdi\""),
                r#"card[0].root: "dev/dahdi" is not an absolute path"#,
            ),
            (
                card("spans = [1]\ntakeover_deadline_ms = 0"),
                "card[0].takeover_deadline_ms: 0 is below the minimum 1",
            ),
            (
                card("spans = [1]\nlineconfig = [\"hdb3\", \"crc5\"]"),
                r#"card[0].lineconfig[1]: "crc5" is not a framing or coding word (d4, esf, ami, b8zs, ccs, hdb3, crc4)"#,
            ),
            (
                card("spans = [1]\ntiming = 1"),
                "card[0].timing: (set) needs lineconfig: the timing priority goes with DAHDI_SPANCONFIG",
            ),
            (
                card("spans = [1]\nsignalling = \"sip\""),
                r#"card[0].signalling: "sip" is not a signalling (fxsls, fxsgs, fxsks, fxols, fxogs, fxoks, em, em_e1, cas, clear)"#,
            ),
            (card("spans = [1]\nspan = 1"), "card[0].span: unknown field"),
            (
                format!(
                    "{GOOD}\n[[card]]\nspans = [1]\n[[card]]\nroot = \"/dev/dahdi\"\nspans = [2]\n"
                ),
                r#"card[1].root: "/dev/dahdi" is listed twice"#,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(error_of(&text), want);
        }
    }

    #[test]
    fn syntax_error_says_where() {
        let e = error_of("[node\nid = 1");
        assert!(e.starts_with("not valid TOML: "), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }
}
