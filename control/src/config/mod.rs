//! `tandem.toml`: the daemon's configuration, parsed and validated as a whole.
//!
//! This module owns the file format, its defaults and every check that can be
//! made without touching the system, so that `tandemd` refuses a bad file
//! before it changes anything. Each error names the field by its path in the
//! file (`service[1].real[0].mac`) and the value it got; a file with several
//! problems is refused with all of them. It also converts the virtual
//! services to the dataplane's [`ServiceConfig`](tandem_dataplane::ServiceConfig),
//! resolving interface names through a closure the caller supplies.
//!
//! The parts, in the order a file goes through them:
//! - `read`: TOML syntax, then serde (through `serde_path_to_error`) into
//!   - `model`: one struct per table of the file, with its defaults, refusing
//!     unknown fields (with the nearest known name), whose leaves are
//!   - `value`: newtypes that check what they read (ranges, addresses, MACs,
//!     interface names, the dataplane's enums by their serde names);
//! - `validate`: the checks between fields and tables, every problem at once;
//! - [`Config`] (this module): what the daemon uses, resolved from the model;
//! - `keys`: the key files, read once everything else is valid;
//! - `dataplane`: the services in the dataplane's form.
//!
//! Writing a configuration ([`Config::to_toml`]) serializes the same model,
//! never showing a key. It must not do I/O beyond reading the file and its
//! key files, and it applies nothing: what
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

mod dataplane;
pub mod diff;
pub mod edit;
pub mod import;
mod keys;
mod model;
mod open_keys;
mod read;
pub mod system_conf;
pub use system_conf::{SystemChannel, SystemConf, SystemConfError, SystemSpan};
mod validate;
mod value;

#[cfg(test)]
mod rotation_tests;
#[cfg(test)]
mod tests;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use tandem_dataplane::{
    AttachMode, RealState, ServiceFlag,
    common::{Forward, Scheduler},
    config::Protocol,
};

pub use dataplane::ifindex;
pub use keys::{KeyConfig, KeySource, read_key_file};
pub use open_keys::{OpenKey, OpenKeys};

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
/// `[node] hold_down_ms`: the first hold-down after a flap.
pub const DEFAULT_HOLD_DOWN_MS: u64 = 2_000;
/// `[node] hold_down_max_ms`: the cap of the hold-down's back-off.
pub const DEFAULT_HOLD_DOWN_MAX_MS: u64 = 60_000;
/// `[node] preempt_delay_ms`.
pub const DEFAULT_PREEMPT_DELAY_MS: u64 = 3_000;
/// The smallest default dead-man budget, in milliseconds (the default is
/// the larger of this and 4 × the heartbeat interval).
pub const MIN_DEFAULT_DEAD_MAN_MS: u64 = 20;
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
pub const FLAG_NAMES: [(&str, u16); ServiceFlag::ALL.len()] = {
    // The dataplane's vocabulary, not a second one.
    let mut out = [("", 0u16); ServiceFlag::ALL.len()];
    let mut k = 0;
    while k < out.len() {
        out[k] = (ServiceFlag::ALL[k].name(), ServiceFlag::ALL[k].bit());
        k += 1;
    }
    out
};

/// A configuration that cannot be used. Nothing has been changed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The problems of the file at `path`, one per line, each prefixed with it.
    #[error("{}", lines(Some(path), error))]
    File {
        path: PathBuf,
        error: Box<ConfigError>,
    },
    /// The file is not TOML; the message carries line and column.
    #[error("not valid TOML: {0}")]
    Syntax(String),
    #[error("{field}: missing")]
    Missing { field: String },
    /// `heartbeat.intreval_ms: unknown field (did you mean `interval_ms`?)`.
    #[error("{field}: unknown field{}", guess(did_you_mean))]
    Unknown {
        field: String,
        /// The known field of the same table closest in spelling, if any is close.
        did_you_mean: Option<String>,
    },
    /// `field: value problem`, e.g. `heartbeat.interval_ms: 0 is below the minimum 1`.
    #[error("{field}: {value} {problem}")]
    Invalid {
        field: String,
        value: String,
        problem: String,
    },
    /// A value serde refused in its own words.
    #[error("{field}: {message}")]
    Refused { field: String, message: String },
    /// Key material others than the file's owner may read (the file
    /// names itself, its mode and the fix).
    #[error("{0}")]
    OpenKeys(OpenKey),
    /// A line of a card's `system_conf` that cannot be taken (the error
    /// names the file and the line).
    #[error("{field}: {error}")]
    SystemConf {
        field: String,
        error: system_conf::SystemConfError,
    },
    /// More than one problem, in the order found; one per line.
    #[error("{}", lines(None, self))]
    Several(Vec<ConfigError>),
}

impl ConfigError {
    /// The dotted path of the field at fault, when there is one (the
    /// first problem's, when there are several).
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Missing { field }
            | ConfigError::Unknown { field, .. }
            | ConfigError::Invalid { field, .. }
            | ConfigError::Refused { field, .. }
            | ConfigError::SystemConf { field, .. } => Some(field),
            ConfigError::File { error, .. } => error.field(),
            ConfigError::Several(all) => all.first().and_then(ConfigError::field),
            _ => None,
        }
    }

    /// Each problem on its own: the list of [`ConfigError::Several`], else this one.
    pub fn problems(&self) -> &[ConfigError] {
        match self {
            ConfigError::Several(all) => all,
            ConfigError::File { error, .. } => error.problems(),
            one => std::slice::from_ref(one),
        }
    }

    /// One problem as itself, several as [`ConfigError::Several`].
    fn from_problems(mut problems: Vec<ConfigError>) -> ConfigError {
        if problems.len() == 1 {
            problems.remove(0)
        } else {
            ConfigError::Several(problems)
        }
    }
}

/// ` (did you mean `interval_ms`?)`, or nothing without a guess.
fn guess(did_you_mean: &Option<String>) -> String {
    did_you_mean
        .as_ref()
        .map(|name| format!(" (did you mean `{name}`?)"))
        .unwrap_or_default()
}

/// The problems of `error`, one per line, each prefixed with `path`.
fn lines(path: Option<&PathBuf>, error: &ConfigError) -> String {
    let mut out = String::new();
    for (i, e) in error.problems().iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if let Some(path) = path {
            out.push_str(&format!("{}: ", path.display()));
        }
        // `Several` lists are flat: a problem is never `Several` itself.
        out.push_str(&e.to_string());
    }
    out
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
    /// `[timeouts]`.
    pub timeouts: Timeouts,
    pub admin: AdminConfig,
    /// Telephony cards whose spans follow the pair state (may be empty).
    pub cards: Vec<CardConfig>,
    /// State sync with the peer (None: `[sync] enabled = false`).
    pub sync: Option<SyncConfig>,
}

/// `[timeouts]`: idle timeouts in seconds (IPVS's defaults: TCP 900,
/// TCP after FIN 120, UDP 300; SIP dialogs an hour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_s: u32,
    pub tcp_fin_s: u32,
    pub udp_s: u32,
    pub sip_call_s: u32,
}

impl Timeouts {
    /// The dataplane's settings with these timeouts.
    pub fn settings(&self) -> tandem_dataplane::common::Settings {
        use tandem_dataplane::common::SEC_NS;
        tandem_dataplane::common::Settings {
            udp_timeout_ns: u64::from(self.udp_s) * SEC_NS,
            tcp_timeout_ns: u64::from(self.tcp_s) * SEC_NS,
            tcp_fin_timeout_ns: u64::from(self.tcp_fin_s) * SEC_NS,
            call_timeout_ns: u64::from(self.sip_call_s) * SEC_NS,
        }
    }
}

/// `[sync]`: the TCP connection that carries flows, calls and channel
/// states to the standby. On by default, over the first heartbeat path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    pub port: u16,
    /// The sync pre-shared key every session derives its keys from.
    pub key: KeyConfig,
    /// During a key rotation, the sync key the pair moves to: a
    /// handshake is taken under either, made under `key`.
    pub next_key: Option<KeyConfig>,
    /// This node listens on these (default: every heartbeat path's local address).
    pub local: Vec<IpAddr>,
    /// The peer's addresses, dialed in turn (default: every heartbeat
    /// path's peer address, the dedicated link first): sync survives the
    /// loss of one network as the heartbeats do.
    pub peer: Vec<IpAddr>,
}

impl SyncConfig {
    /// The keys the sync handshakes use: made under `key`, the peer's
    /// taken under `key` or `next_key`.
    pub fn keys(&self) -> crate::sync::wire::SyncKeys {
        crate::sync::wire::SyncKeys::new(*self.key, self.next_key.as_deref().copied())
    }
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
    /// Flap damping: after losing the active role other than by command,
    /// do not compete for it for this long (doubling per recent flap)
    /// unless the peer is positively dead. Zero: no damping.
    pub hold_down: Duration,
    /// The cap of the hold-down's back-off; a flap counts as recent this long.
    pub hold_down_max: Duration,
    /// A preemption waits until the peer has been alive (and, with sync,
    /// its state held) continuously for this long.
    pub preempt_delay: Duration,
    /// After `tandemctl switchover` this node does not preempt for this
    /// long; None (`switchover_hold_ms = 0`): until `tandemctl switchover --release`.
    pub switchover_hold: Option<Duration>,
}

/// `[heartbeat]`: how the directors watch each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatConfig {
    pub port: u16,
    pub interval: Duration,
    /// Missed intervals before a path is dead.
    pub multiplier: u32,
    /// The director heartbeat key (SipHash-2-4), held by the two directors:
    /// heartbeats and echoes are sent under it.
    pub key: KeyConfig,
    /// During a key rotation, the director key the pair moves to: the
    /// peer's heartbeats are taken under `key` or this one.
    pub next_key: Option<KeyConfig>,
    /// The IVR master key: each IVR's heartbeats are checked under
    /// [`crate::keys::ivr_heartbeat_key`] of it and the IVR's node id.
    pub ivr_key: Option<KeyConfig>,
    /// At least one; the peer is dead only when silent on all of them.
    pub paths: Vec<HeartbeatPath>,
    /// The kernel's dead-man switch: a daemon stamp older than this takes
    /// the node out of the dataplane. None (`dead_man_ms = 0`): off.
    pub dead_man: Option<Duration>,
    /// Echo liveness: the standby's echoes, reflected by the peer's XDP
    /// while its daemon is alive, keep the peer alive.
    pub echo: bool,
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
    /// The bpffs directory the dispatcher's links are pinned in (with the
    /// dead-man switch armed), so that XDP outlives a killed daemon. None
    /// (the default): not pinned. Where the exit tracepoint cannot attach,
    /// a pinned orphan proves liveness until the dead-man budget runs out.
    pub pin_dir: Option<PathBuf>,
    /// With `pin_dir` and the dead-man switch: SIGTERM is a planned
    /// restart, and the peer waits this long for the next process.
    pub restart_grace: Duration,
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
    /// None: resolved from the kernel's neighbour table at run time.
    pub mac: Option<[u8; 6]>,
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
    /// A group whose members may use the read requests (status, services,
    /// reals, cards, sync, metrics, stats, events): the socket becomes mode
    /// 0660 owned by it. Everything else stays root's. None: root only.
    pub read_group: Option<String>,
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
    /// `card.watchdog_ms`: the card's failover switch holds the trunk on
    /// this host while the active daemon kicks its watchdog at least this
    /// often; None: no watchdog (the trunk stays where it is).
    pub watchdog: Option<Duration>,
    /// `card.system_conf`: DAHDI's `system.conf` the spans (and `spans`)
    /// came from; a takeover configures each span's line and channels as
    /// it says (`line` and `signalling` are then not used). None: `spans`,
    /// `lineconfig`, `timing` and `signalling` of the card table.
    pub system: Option<SystemConf>,
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
    /// The pair machine's configuration (`witness`: a witness is in use).
    pub fn pair_config(&self, witness: bool) -> crate::pair::PairConfig {
        crate::pair::PairConfig {
            node_id: self.node.id,
            priority: self.node.priority,
            preempt: self.node.preempt,
            interval: self.heartbeat.interval,
            multiplier: self.heartbeat.multiplier,
            paths: u8::try_from(self.heartbeat.paths.len()).unwrap_or(u8::MAX),
            witness,
            init_hold: self.heartbeat.deadline() * 2,
            hold_down: self.node.hold_down,
            hold_down_max: self.node.hold_down_max,
            preempt_delay: self.node.preempt_delay,
            switchover_hold: self.node.switchover_hold,
            sync: self.sync.is_some(),
            echo: self.heartbeat.echo,
        }
    }

    /// Reads and validates a file; errors are prefixed with its path.
    /// Key material others may read is refused ([`OpenKeys::Refuse`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Config::load_with(path, OpenKeys::Refuse).map(|(c, _)| c)
    }

    /// [`Config::load`], with key material that others than its owner
    /// may read (a key file, or this file when it holds a key inline)
    /// refused or, under [`OpenKeys::Warn`], returned as warnings.
    pub fn load_with(
        path: impl AsRef<Path>,
        open_keys: OpenKeys,
    ) -> Result<(Config, Vec<OpenKey>), ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let (cfg, mut warnings) =
            Config::parse_with(&text, open_keys).map_err(|error| ConfigError::File {
                path: path.to_owned(),
                error: Box::new(error),
            })?;
        if let Some(open) = open_keys::inline_in(path, &cfg) {
            match open_keys {
                OpenKeys::Refuse => return Err(ConfigError::OpenKeys(open)),
                OpenKeys::Warn => warnings.insert(0, open),
            }
        }
        Ok((cfg, warnings))
    }

    /// Parses and validates the text of a `tandem.toml`. A file with
    /// several problems is refused with all of them
    /// ([`ConfigError::Several`]): every unknown field, the first value that
    /// cannot be read, or (when every value could be read) every problem of
    /// the checks across fields and tables.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(text, OpenKeys::Refuse).map(|(c, _)| c)
    }

    /// [`Config::parse`], with key files others may read refused or
    /// returned as warnings.
    fn parse_with(text: &str, open_keys: OpenKeys) -> Result<(Config, Vec<OpenKey>), ConfigError> {
        let (file, mut problems) = read::read(text)?;
        if let Some(file) = &file {
            problems.extend(validate::validate(file));
        }
        let mut warnings = Vec::new();
        match file {
            Some(file) if problems.is_empty() => {
                let keys = keys::load(&file, open_keys, &mut warnings);
                let systems = load_system_confs(&file);
                match (keys, systems) {
                    (Ok(keys), Ok(systems)) => Ok((file.resolve(keys, systems), warnings)),
                    (keys, systems) => {
                        let mut problems = keys.err().unwrap_or_default();
                        problems.extend(systems.err().unwrap_or_default());
                        Err(ConfigError::from_problems(problems))
                    }
                }
            }
            _ => Err(ConfigError::from_problems(problems)),
        }
    }

    /// The canonical TOML text of this configuration, every value written
    /// out but the keys: a key file is named, an inline key written as
    /// `"(not shown)"` (which does not read back: see [`Config::to_toml_with_keys`]).
    pub fn to_toml(&self) -> String {
        toml::to_string(&model::File::written(self, false)).unwrap_or_default()
    }

    /// [`Config::to_toml`] with inline keys written out: it parses back to
    /// an equal `Config`. For a file an operator keeps, never for output.
    pub fn to_toml_with_keys(&self) -> String {
        toml::to_string(&model::File::written(self, true)).unwrap_or_default()
    }

    /// The `[timeouts]` and `[[service]]` tables alone, in their
    /// canonical TOML text: what the two nodes of a pair must agree on
    /// (and what the active replicates to the standby).
    pub fn services_toml(&self) -> String {
        toml::to_string(&model::File::written(self, false).replicated()).unwrap_or_default()
    }

    /// This configuration with its `[timeouts]` and `[[service]]` tables
    /// replaced by those of `services` (as [`Config::services_toml`]
    /// writes them), checked whole as a file is. Its keys stay these,
    /// as they run (key files are not read again): a standby that takes
    /// the active's services never takes a key with them.
    pub fn with_services(&self, services: &str) -> Result<Config, ConfigError> {
        let mut text = toml::to_string(&model::File::written(self, true).without_replicated()).unwrap_or_default();
        text.push('\n');
        text.push_str(services);
        let mut cfg = Config::parse(&text)?;
        cfg.heartbeat.key = self.heartbeat.key.clone();
        cfg.heartbeat.next_key = self.heartbeat.next_key.clone();
        cfg.heartbeat.ivr_key = self.heartbeat.ivr_key.clone();
        if let (Some(s), Some(own)) = (cfg.sync.as_mut(), self.sync.as_ref()) {
            s.key = own.key.clone();
            s.next_key = own.next_key.clone();
        }
        Ok(cfg)
    }

    /// A fingerprint of the running services: the first 8 bytes of the
    /// SHA-256 of [`Config::services_toml`]. Equal on two nodes exactly
    /// when they dispatch the same services to the same real servers the
    /// same way (order of the file included: reordering is a change of
    /// text, not of behaviour, and shows as a mismatch until both run
    /// the same file).
    pub fn fingerprint(&self) -> u64 {
        fingerprint_of(&self.services_toml())
    }
}

/// Every card's `system_conf`, read and parsed (`None` for a card without
/// one), or every problem they have. Besides the key files, the only files
/// the configuration reads.
fn load_system_confs(file: &model::File) -> Result<Vec<Option<SystemConf>>, Vec<ConfigError>> {
    let mut problems = Vec::new();
    let mut systems = Vec::with_capacity(file.card.0.len());
    for (i, card) in file.card.0.iter().enumerate() {
        let Some(path) = &card.system_conf else {
            systems.push(None);
            continue;
        };
        match system_conf::load(Path::new(&path.0)) {
            Ok(system) if system.spans.is_empty() => problems.push(ConfigError::SystemConf {
                field: format!("card[{i}].system_conf"),
                error: system_conf::SystemConfError {
                    path: system.path,
                    line: 0,
                    problem: "has no span= line: the card would own no span".into(),
                },
            }),
            Ok(system) => systems.push(Some(system)),
            Err(error) => problems.push(ConfigError::SystemConf {
                field: format!("card[{i}].system_conf"),
                error,
            }),
        }
    }
    if problems.is_empty() {
        Ok(systems)
    } else {
        Err(problems)
    }
}

/// The fingerprint of a [`Config::services_toml`] text.
pub fn fingerprint_of(services_toml: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(services_toml.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A [`Config::fingerprint`] as operators see it: 16 hex digits.
pub fn fingerprint_hex(f: u64) -> String {
    format!("{f:016x}")
}
