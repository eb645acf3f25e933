//! The shape of `tandem.toml` as serde reads and writes it: one struct per
//! table, named as in the file, with its defaults, refusing unknown fields.
//!
//! The leaves are the checking newtypes of [`super::value`], so a file that
//! deserializes has every value in range; what involves several values is
//! left to [`super::validate`]. [`File::resolve`] turns a valid file into
//! the [`Config`] the daemon uses, filling the defaults that depend on other
//! tables (the dataplane's interfaces, the sync addresses, the witness's
//! probe interval); `From<&Config>` writes every value back out. Nothing
//! here reads a file or looks at the system.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tandem_dataplane::{
    RealState,
    common::{DEFAULT_FLOW_ENTRIES, Forward, MH_DEFAULT_SIZE, Scheduler},
    config::Protocol,
};

use super::{
    AdminConfig, CardConfig, CardLine, Config, DEFAULT_ADMIN_SOCKET,
    DEFAULT_CARD_FAULT_HOLDDOWN_MS, DEFAULT_CARD_ROOT, DEFAULT_GARP_COUNT,
    DEFAULT_GARP_INTERVAL_MS, DEFAULT_HEARTBEAT_PORT, DEFAULT_HOLD_DOWN_MAX_MS,
    DEFAULT_HOLD_DOWN_MS, DEFAULT_INTERVAL_MS, DEFAULT_MULTIPLIER, DEFAULT_PREEMPT_DELAY_MS,
    DEFAULT_PRIORITY, DEFAULT_SYNC_PORT, DEFAULT_TAKEOVER_DEADLINE_MS, DataplaneConfig,
    HeartbeatConfig, HeartbeatPath, MIN_DEFAULT_DEAD_MAN_MS, NodeConfig, RealEntry, ServiceEntry,
    SyncConfig, VipConfig, WitnessConfig, value::*,
};

/// A port number, 1 to 65535.
pub type Port = Int<u16, 1, 65_535>;
/// A node id: non-zero.
pub type NodeId = Int<u32, 1, { u32::MAX as i64 }>;

/// The whole file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct File {
    pub node: NodeTable,
    pub heartbeat: HeartbeatTable,
    /// Absent: on, over every heartbeat path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncTable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness: Option<WitnessTable>,
    #[serde(default)]
    pub vip: List<VipTable>,
    #[serde(default)]
    pub dataplane: DataplaneTable,
    /// Absent: IPVS's defaults (written out by `save`, and replicated with
    /// the services: see [`File::replicated`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsTable>,
    #[serde(default, skip_serializing_if = "List::is_empty")]
    pub service: List<ServiceTable>,
    #[serde(default)]
    pub admin: AdminTable,
    #[serde(default, skip_serializing_if = "List::is_empty")]
    pub card: List<CardTable>,
}

/// `[node]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct NodeTable {
    pub id: NodeId,
    pub name: NodeName,
    #[serde(default = "default_priority")]
    pub priority: Int<u8, 0, 255>,
    #[serde(default)]
    pub preempt: Bool,
    pub peer_id: NodeId,
    #[serde(default)]
    pub realtime_priority: Int<u8, 0, 99>,
    #[serde(default = "default_holddown")]
    pub card_fault_holddown_ms: Millis<0, 3_600_000>,
    #[serde(default = "default_hold_down")]
    pub hold_down_ms: Millis<0, 3_600_000>,
    /// At least `hold_down_ms` (a check of [`super::validate`]).
    #[serde(default = "default_hold_down_max")]
    pub hold_down_max_ms: Millis<0, 3_600_000>,
    #[serde(default = "default_preempt_delay")]
    pub preempt_delay_ms: Millis<0, 3_600_000>,
    /// 0: until released.
    #[serde(default = "zero_ms")]
    pub switchover_hold_ms: Millis<0, 86_400_000>,
}

/// `[heartbeat]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct HeartbeatTable {
    #[serde(default = "default_heartbeat_port")]
    pub port: Port,
    #[serde(default = "default_interval")]
    pub interval_ms: Millis<1, 60_000>,
    #[serde(default = "default_multiplier")]
    pub multiplier: Int<u32, 2, 1000>,
    /// The director heartbeat key, or `key_file` (one of the two: a check
    /// of [`super::validate`]; read by [`super::keys`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<AbsPath>,
    /// During a key rotation, the key the directors move to, or
    /// `next_key_file`: heartbeats are taken under either, sent under `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_key: Option<Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_key_file: Option<AbsPath>,
    /// The IVR master key, or `ivr_key_file`: needed when a real server
    /// has a `node_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ivr_key: Option<Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ivr_key_file: Option<AbsPath>,
    /// At least one (a check of [`super::validate`]).
    #[serde(default)]
    pub paths: List<PathTable>,
    /// Absent: max(20, 4 × interval_ms); 0: off; otherwise at least
    /// 2 × interval_ms (a check of [`super::validate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_man_ms: Option<Millis<0, 60_000>>,
    #[serde(default = "yes")]
    pub echo: Bool,
}

/// `heartbeat.paths[i]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct PathTable {
    pub name: Text,
    pub interface: IfName,
    pub local: UnicastV4,
    pub peer: UnicastV4,
}

/// `[witness]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct WitnessTable {
    pub address: UnicastV4,
    /// Absent: the heartbeat interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_interval_ms: Option<Millis<1, 60_000>>,
}

/// `[sync]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct SyncTable {
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub enabled: Bool,
    #[serde(default = "default_sync_port")]
    pub port: Port,
    /// The sync key, or `key_file`; both absent: derived from the
    /// director heartbeat key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<AbsPath>,
    /// During a key rotation, the sync key the directors move to, or
    /// `next_key_file`; both absent: derived from `heartbeat.next_key`
    /// when `key` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_key: Option<Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_key_file: Option<AbsPath>,
    /// Absent: every heartbeat path's local address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<OneOrMany<SyncAddr>>,
    /// Absent: every heartbeat path's peer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<OneOrMany<SyncAddr>>,
}

/// `[[vip]]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct VipTable {
    pub address: UnicastV4,
    pub interface: IfName,
    #[serde(default = "default_garp_count")]
    pub garp_count: Int<u32, 0, 1000>,
    #[serde(default = "default_garp_interval")]
    pub garp_interval_ms: Millis<0, 10_000>,
}

/// `[dataplane]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct DataplaneTable {
    #[serde(default = "default_xdp_mode")]
    pub xdp_mode: Word<XdpMode>,
    /// Absent: the heartbeat and VIP interfaces, in that order, each once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<List<IfName>>,
    #[serde(default = "default_flow_entries")]
    pub flow_entries: Int<u32, 1024, { 1 << 26 }>,
    /// Absent: not pinned (`tandem_dataplane::DEFAULT_PIN_DIR` is the
    /// usual place when it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_dir: Option<Text>,
    /// How long the peer waits for a restarted daemon (SIGTERM with the
    /// tables pinned) before it takes over.
    #[serde(default = "default_restart_grace")]
    pub restart_grace_ms: Millis<100, 60_000>,
}

/// Covers a start-up (the programs verified again) with room to spare.
pub const DEFAULT_RESTART_GRACE_MS: u64 = 10_000;

fn default_restart_grace() -> Millis<100, 60_000> {
    Millis::ms(DEFAULT_RESTART_GRACE_MS)
}

impl Default for DataplaneTable {
    fn default() -> Self {
        DataplaneTable {
            xdp_mode: default_xdp_mode(),
            interfaces: None,
            flow_entries: default_flow_entries(),
            pin_dir: None,
            restart_grace_ms: default_restart_grace(),
        }
    }
}

/// `[timeouts]`: idle timeouts of the connection table, node-wide as in
/// IPVS (`ipvsadm --set tcp tcpfin udp`), and of SIP dialogs.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct TimeoutsTable {
    #[serde(default = "default_tcp_timeout")]
    pub tcp_s: Int<u32, 1, 604_800>,
    #[serde(default = "default_tcp_fin_timeout")]
    pub tcp_fin_s: Int<u32, 1, 604_800>,
    #[serde(default = "default_udp_timeout")]
    pub udp_s: Int<u32, 1, 604_800>,
    #[serde(default = "default_sip_call_timeout")]
    pub sip_call_s: Int<u32, 1, 604_800>,
}

impl Default for TimeoutsTable {
    fn default() -> Self {
        TimeoutsTable {
            tcp_s: default_tcp_timeout(),
            tcp_fin_s: default_tcp_fin_timeout(),
            udp_s: default_udp_timeout(),
            sip_call_s: default_sip_call_timeout(),
        }
    }
}

fn secs_of(ns: u64) -> Int<u32, 1, 604_800> {
    Int((ns / tandem_dataplane::common::SEC_NS) as u32)
}
fn default_tcp_timeout() -> Int<u32, 1, 604_800> {
    secs_of(tandem_dataplane::common::Settings::default().tcp_timeout_ns)
}
fn default_tcp_fin_timeout() -> Int<u32, 1, 604_800> {
    secs_of(tandem_dataplane::common::Settings::default().tcp_fin_timeout_ns)
}
fn default_udp_timeout() -> Int<u32, 1, 604_800> {
    secs_of(tandem_dataplane::common::Settings::default().udp_timeout_ns)
}
fn default_sip_call_timeout() -> Int<u32, 1, 604_800> {
    secs_of(tandem_dataplane::common::Settings::default().call_timeout_ns)
}

/// `[[service]]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct ServiceTable {
    pub vip: Unicast,
    pub port: Port,
    pub protocol: Word<Protocol>,
    pub scheduler: Word<Scheduler>,
    #[serde(default = "default_forward")]
    pub forward: Word<Forward>,
    #[serde(default)]
    pub flags: List<FlagName>,
    #[serde(default = "default_mh_size")]
    pub mh_size: Int<u32, 0, { u32::MAX as i64 }>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_mac: Option<Mac>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_interface: Option<IfName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_options: Option<SipOptionsTable>,
    #[serde(default)]
    pub real: List<RealTable>,
}

/// `service.sip_options`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct SipOptionsTable {
    #[serde(default = "default_probe_interval")]
    pub interval_ms: Millis<10, 3_600_000>,
    #[serde(default = "default_probe_timeout")]
    pub timeout_ms: Millis<1, 60_000>,
    #[serde(default = "default_probe_failures")]
    pub failures: Int<u32, 1, 100>,
}

/// `[[service.real]]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RealTable {
    pub address: Unicast,
    #[serde(default)]
    pub port: Int<u16, 0, 65_535>,
    /// Absent: taken from the kernel's neighbour table (`crate::neigh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    #[serde(default = "default_weight")]
    pub weight: Int<u32, 0, 65_535>,
    #[serde(default = "default_state")]
    pub state: Word<RealState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<IfName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<NodeId>,
}

/// `[admin]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct AdminTable {
    #[serde(default = "default_admin_socket")]
    pub socket: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<ListenAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_group: Option<Text>,
}

impl Default for AdminTable {
    fn default() -> Self {
        AdminTable {
            socket: default_admin_socket(),
            metrics_listen: None,
            read_group: None,
        }
    }
}

/// `[[card]]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct CardTable {
    #[serde(default = "default_card_root")]
    pub root: AbsPath,
    /// DAHDI's `system.conf` for this card: the spans, their lines and
    /// channels come from it (then `spans`, `lineconfig`, `timing` and
    /// `signalling` are not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_conf: Option<AbsPath>,
    /// Required without `system_conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spans: Option<List<Span>>,
    #[serde(default = "default_takeover_deadline")]
    pub takeover_deadline_ms: Millis<1, 60_000>,
    /// Absent: the span's line is left as it is (no `DAHDI_SPANCONFIG`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineconfig: Option<List<LineWord>>,
    /// Only with `lineconfig`; absent: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Int<u32, 0, 255>>,
    /// Absent: `fxsks` (without `system_conf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signalling: Option<Signalling>,
    #[serde(default)]
    pub auto_answer: Bool,
    /// The failover switch's watchdog; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog_ms: Option<Millis<10, 60_000>>,
}

/// What the two nodes of a pair must agree on, and the active replicates:
/// the `[timeouts]` and the `[[service]]` tables of a [`File`].
#[derive(Clone, Debug, Serialize)]
pub struct Replicated {
    pub timeouts: Option<TimeoutsTable>,
    pub service: List<ServiceTable>,
}

impl File {
    pub(super) fn replicated(self) -> Replicated {
        Replicated {
            timeouts: self.timeouts,
            service: self.service,
        }
    }

    pub(super) fn without_replicated(mut self) -> File {
        self.timeouts = None;
        self.service = List(Vec::new());
        self
    }
}

impl<T> List<T> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

macro_rules! tables {
    ($($t:ty),*) => {
        $(impl Item for $t {
            const LIST: &'static str = "is not a list of tables";
        })*
    };
}
tables!(PathTable, VipTable, ServiceTable, RealTable, CardTable);

fn default_priority() -> Int<u8, 0, 255> {
    Int(DEFAULT_PRIORITY)
}
fn default_holddown() -> Millis<0, 3_600_000> {
    Millis::ms(DEFAULT_CARD_FAULT_HOLDDOWN_MS)
}
fn zero_ms<const MAX: i64>() -> Millis<0, MAX> {
    Millis::ms(0)
}
fn default_hold_down() -> Millis<0, 3_600_000> {
    Millis::ms(DEFAULT_HOLD_DOWN_MS)
}
fn default_hold_down_max() -> Millis<0, 3_600_000> {
    Millis::ms(DEFAULT_HOLD_DOWN_MAX_MS)
}
fn default_preempt_delay() -> Millis<0, 3_600_000> {
    Millis::ms(DEFAULT_PREEMPT_DELAY_MS)
}
fn default_heartbeat_port() -> Port {
    Int(DEFAULT_HEARTBEAT_PORT)
}
fn default_interval() -> Millis<1, 60_000> {
    Millis::ms(DEFAULT_INTERVAL_MS)
}
fn default_multiplier() -> Int<u32, 2, 1000> {
    Int(DEFAULT_MULTIPLIER)
}
fn yes() -> Bool {
    Bool(true)
}
fn is_yes(b: &Bool) -> bool {
    b.0
}
fn default_sync_port() -> Port {
    Int(DEFAULT_SYNC_PORT)
}
fn default_garp_count() -> Int<u32, 0, 1000> {
    Int(DEFAULT_GARP_COUNT)
}
fn default_garp_interval() -> Millis<0, 10_000> {
    Millis::ms(DEFAULT_GARP_INTERVAL_MS)
}
fn default_xdp_mode() -> Word<XdpMode> {
    Word(XdpMode::Auto)
}
fn default_flow_entries() -> Int<u32, 1024, { 1 << 26 }> {
    Int(DEFAULT_FLOW_ENTRIES)
}
fn default_forward() -> Word<Forward> {
    Word(Forward::Dr)
}
fn default_mh_size() -> Int<u32, 0, { u32::MAX as i64 }> {
    Int(MH_DEFAULT_SIZE)
}
fn default_probe_interval() -> Millis<10, 3_600_000> {
    Millis::ms(1000)
}
fn default_probe_timeout() -> Millis<1, 60_000> {
    Millis::ms(500)
}
fn default_probe_failures() -> Int<u32, 1, 100> {
    Int(3)
}
fn default_weight() -> Int<u32, 0, 65_535> {
    Int(1)
}
fn default_state() -> Word<RealState> {
    Word(RealState::Up)
}
fn default_admin_socket() -> Text {
    Text(DEFAULT_ADMIN_SOCKET.into())
}
fn default_card_root() -> AbsPath {
    AbsPath(DEFAULT_CARD_ROOT.into())
}
fn default_takeover_deadline() -> Millis<1, 60_000> {
    Millis::ms(DEFAULT_TAKEOVER_DEADLINE_MS)
}
fn default_signalling() -> Signalling {
    let by_name = super::SIGNALLING_NAMES
        .iter()
        .find(|(n, _)| *n == super::DEFAULT_SIGNALLING);
    Signalling(by_name.map_or(tandem_hw::abi::DAHDI_SIG_FXSKS, |(_, sig)| *sig))
}

impl File {
    /// The configuration this (valid) file describes, with the defaults
    /// that depend on other tables filled in.
    /// The whole configuration, with the keys and each card's `system.conf`
    /// (`systems[i]` for `card[i]`, `None` without one) as loaded.
    pub(super) fn resolve(
        &self,
        keys: super::keys::Loaded,
        systems: Vec<Option<super::SystemConf>>,
    ) -> Config {
        let mut heartbeat = self.heartbeat.resolve(keys.heartbeat);
        heartbeat.next_key = keys.heartbeat_next;
        heartbeat.ivr_key = keys.ivr;
        let vips: Vec<VipConfig> = self.vip.0.iter().map(VipTable::resolve).collect();
        let witness = self.witness.as_ref().map(|w| WitnessConfig {
            address: w.address.0,
            probe_interval: w.probe_interval_ms.map_or(heartbeat.interval, |m| m.0),
        });
        let dataplane = DataplaneConfig {
            xdp_mode: self.dataplane.xdp_mode.0.into(),
            interfaces: match &self.dataplane.interfaces {
                Some(list) => list.0.iter().map(|n| n.0.clone()).collect(),
                None => default_interfaces(&heartbeat, &vips),
            },
            flow_entries: self.dataplane.flow_entries.0,
            pin_dir: self.dataplane.pin_dir.as_ref().map(|t| PathBuf::from(&t.0)),
            restart_grace: self.dataplane.restart_grace_ms.0,
        };
        Config {
            node: self.node.resolve(),
            sync: self.sync.as_ref().map_or_else(
                || {
                    Some(SyncConfig {
                        port: DEFAULT_SYNC_PORT,
                        key: keys.sync.clone(),
                        next_key: keys.sync_next.clone(),
                        local: sync_locals(&heartbeat.paths),
                        peer: sync_peers(&heartbeat.paths),
                    })
                },
                |s| s.resolve(&heartbeat.paths, keys.sync.clone(), keys.sync_next.clone()),
            ),
            witness,
            dataplane,
            services: self.service.0.iter().map(ServiceTable::resolve).collect(),
            timeouts: {
                let t = self.timeouts.clone().unwrap_or_default();
                super::Timeouts {
                    tcp_s: t.tcp_s.0,
                    tcp_fin_s: t.tcp_fin_s.0,
                    udp_s: t.udp_s.0,
                    sip_call_s: t.sip_call_s.0,
                }
            },
            admin: AdminConfig {
                socket: PathBuf::from(&self.admin.socket.0),
                metrics_listen: self.admin.metrics_listen.map(|m| m.0),
                read_group: self.admin.read_group.as_ref().map(|g| g.0.clone()),
            },
            cards: self
                .card
                .0
                .iter()
                .zip(systems.into_iter().chain(std::iter::repeat(None)))
                .map(|(card, system)| card.resolve(system))
                .collect(),
            heartbeat,
            vips,
        }
    }
}

/// The heartbeat and VIP interfaces, in that order, each once.
fn default_interfaces(hb: &HeartbeatConfig, vips: &[VipConfig]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in hb
        .paths
        .iter()
        .map(|p| &p.interface)
        .chain(vips.iter().map(|v| &v.interface))
    {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

pub(super) fn sync_locals(paths: &[HeartbeatPath]) -> Vec<std::net::IpAddr> {
    paths.iter().map(|p| p.local.into()).collect()
}

pub(super) fn sync_peers(paths: &[HeartbeatPath]) -> Vec<std::net::IpAddr> {
    paths.iter().map(|p| p.peer.into()).collect()
}

fn addrs(list: &OneOrMany<SyncAddr>) -> Vec<std::net::IpAddr> {
    list.0.iter().map(|a| a.0).collect()
}

impl NodeTable {
    fn resolve(&self) -> NodeConfig {
        NodeConfig {
            id: self.id.0,
            name: self.name.0.clone(),
            priority: self.priority.0,
            preempt: self.preempt.0,
            peer_id: self.peer_id.0,
            realtime_priority: self.realtime_priority.0,
            card_fault_holddown: self.card_fault_holddown_ms.0,
            hold_down: self.hold_down_ms.0,
            hold_down_max: self.hold_down_max_ms.0,
            preempt_delay: self.preempt_delay_ms.0,
            switchover_hold: Some(self.switchover_hold_ms.0).filter(|d| !d.is_zero()),
        }
    }
}

impl HeartbeatTable {
    fn resolve(&self, key: super::KeyConfig) -> HeartbeatConfig {
        HeartbeatConfig {
            port: self.port.0,
            interval: self.interval_ms.0,
            multiplier: self.multiplier.0,
            key,
            next_key: None,
            ivr_key: None,
            paths: self.paths(),
            dead_man: self.dead_man(),
            echo: self.echo.0,
        }
    }

    /// `dead_man_ms` resolved: absent → max(20, 4 × interval), 0 → off.
    pub(super) fn dead_man(&self) -> Option<std::time::Duration> {
        match self.dead_man_ms {
            Some(m) => Some(m.0).filter(|d| !d.is_zero()),
            None => Some(
                self.interval_ms
                    .0
                    .saturating_mul(4)
                    .max(std::time::Duration::from_millis(MIN_DEFAULT_DEAD_MAN_MS)),
            ),
        }
    }

    /// The paths as the daemon takes them.
    pub(super) fn paths(&self) -> Vec<HeartbeatPath> {
        self.paths
            .0
            .iter()
            .map(|p| HeartbeatPath {
                name: p.name.0.clone(),
                interface: p.interface.0.clone(),
                local: p.local.0,
                peer: p.peer.0,
            })
            .collect()
    }
}

impl SyncTable {
    /// The local and peer lists, defaults filled in.
    pub(super) fn lists(
        &self,
        paths: &[HeartbeatPath],
    ) -> (Vec<std::net::IpAddr>, Vec<std::net::IpAddr>) {
        let local = self
            .local
            .as_ref()
            .map_or_else(|| sync_locals(paths), addrs);
        let peer = self.peer.as_ref().map_or_else(|| sync_peers(paths), addrs);
        (local, peer)
    }

    fn resolve(
        &self,
        paths: &[HeartbeatPath],
        key: super::KeyConfig,
        next_key: Option<super::KeyConfig>,
    ) -> Option<SyncConfig> {
        let (local, peer) = self.lists(paths);
        self.enabled.0.then_some(SyncConfig {
            port: self.port.0,
            key,
            next_key,
            local,
            peer,
        })
    }
}

impl VipTable {
    fn resolve(&self) -> VipConfig {
        VipConfig {
            address: self.address.0,
            interface: self.interface.0.clone(),
            garp_count: self.garp_count.0,
            garp_interval: self.garp_interval_ms.0,
        }
    }
}

impl ServiceTable {
    /// The service as the daemon takes it.
    pub(super) fn resolve(&self) -> ServiceEntry {
        ServiceEntry {
            vip: self.vip.0,
            port: self.port.0,
            protocol: self.protocol.0,
            scheduler: self.scheduler.0,
            forward: self.forward.0,
            flags: self.flags.0.iter().fold(0, |bits, f| bits | f.0),
            mh_size: self.mh_size.0,
            gateway_mac: self.gateway_mac.map(|m| m.0),
            client_interface: self.client_interface.as_ref().map(|n| n.0.clone()),
            reals: self.real.0.iter().map(RealTable::resolve).collect(),
            sip_options: self
                .sip_options
                .as_ref()
                .map(|o| crate::sipprobe::ProbeConfig {
                    interval: o.interval_ms.0,
                    timeout: o.timeout_ms.0,
                    failures: o.failures.0,
                }),
        }
    }
}

impl RealTable {
    fn resolve(&self) -> RealEntry {
        RealEntry {
            address: self.address.0,
            port: self.port.0,
            mac: self.mac.map(|m| m.0),
            weight: self.weight.0,
            state: self.state.0,
            interface: self.interface.as_ref().map(|n| n.0.clone()),
            node_id: self.node_id.map(|n| n.0),
        }
    }
}

impl CardTable {
    fn resolve(&self, system: Option<super::SystemConf>) -> CardConfig {
        let spans = match &system {
            Some(system) => system.spans.iter().map(|s| s.number).collect(),
            None => self
                .spans
                .iter()
                .flat_map(|spans| spans.0.iter().map(|s| s.0))
                .collect(),
        };
        CardConfig {
            root: PathBuf::from(&self.root.0),
            spans,
            takeover_deadline: self.takeover_deadline_ms.0,
            line: self.lineconfig.as_ref().map(|words| CardLine {
                config: words.0.iter().fold(0, |bits, w| bits | w.0),
                timing: self.timing.map_or(0, |t| t.0),
            }),
            signalling: self.signalling.map_or_else(|| default_signalling().0, |s| s.0),
            auto_answer: self.auto_answer.0,
            watchdog: self.watchdog_ms.map(|m| m.0),
            system,
        }
    }
}

mod written;
