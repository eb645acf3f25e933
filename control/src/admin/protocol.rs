//! The admin protocol's messages and their wire form: one JSON object per
//! line each way (a request within [`MAX_LINE`] bytes, an answer within
//! [`MAX_ANSWER`]), a [`Request`] tagged by `"cmd"` and a [`Response`] tagged
//! by `"reply"`, with the reply structs the daemon fills in.
//!
//! It owns the vocabulary and the encoding only ([`parse_request`],
//! [`format_response`]); it does no I/O, and the values in the replies are
//! strings and numbers the daemon chose: nothing here interprets them.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// Longest request line the daemon reads, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// Longest answer line a client reads, in bytes. Answers grow with the
/// configuration: at the design maximum (64 services × 32 real servers)
/// `metrics` is ≈ 0.9 MB and `services` and `reals` ≈ 0.4 MB each
/// (measured, control/tests/admin_large.rs); this leaves ample room.
pub const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// A request from `tandemctl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Status,
    /// Hand the active role to the peer.
    Switchover,
    /// End the hold a switchover put on this node (with preempt on, it
    /// may take the role back once it holds the peer's state).
    ReleaseHold,
    Services,
    Reals,
    /// Spans, alarms and channel states of the telephony cards.
    #[cfg(feature = "admin-cards")]
    Cards,
    /// Enter (`on`) or leave maintenance: no takeover, no election.
    Maintenance {
        on: bool,
    },
    /// State sync: role, connection, tables, sequence and lag.
    Sync,
    /// Prometheus metrics (the Prometheus text format, version 0.0.4).
    Metrics,
    /// The dispatcher's packet counters by reason (forwarded, passed and
    /// why, SIP Call-ID hits and fallbacks, heartbeats).
    Stats,
    /// The daemon's timeline: events numbered above `after`, oldest first
    /// (at most [`MAX_EVENTS`] per answer; ask again from the last one).
    Events {
        #[serde(default)]
        after: u64,
    },
    /// The running configuration as `tandem.toml` text (inline keys
    /// written out: it reads back to the same configuration).
    Save,
    /// Re-read the configuration file the daemon was started with, check
    /// it whole and apply what changed (`dry_run`: only say what would
    /// change). Answered once the file is read and checked off the loop
    /// and the changes are applied ([`Response::Reload`]).
    Reload {
        #[serde(default)]
        dry_run: bool,
    },
    /// The kernel's connection-table entries and SIP dialogs (like
    /// `ipvsadm -Lnc`), those that match every filter given, read from
    /// `after` (None: the start) for at most a few milliseconds of the
    /// daemon's loop ([`Response::Conns`] says where it stopped: ask again
    /// from its `next`, as `tandemctl conns` does). A table of a million
    /// entries is walked in a few such slices; no answer holds the loop
    /// longer than one.
    Conns {
        /// Only entries to this VIP.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vip: Option<IpAddr>,
        /// Only entries sent to this real server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        real: Option<IpAddr>,
        /// Only the SIP dialog(s) of this Call-ID (flows carry none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_id: Option<String>,
        /// Most rows in the answer (None, or more than [`MAX_CONNS`]:
        /// [`MAX_CONNS`]); matching entries beyond it are counted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        /// Where the previous answer stopped (its `next`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<ConnCursor>,
    },
    /// Zero the packet, byte and connection counters of every service
    /// and real server, or of one service (its name,
    /// `udp/198.18.0.100:5060`) and its real servers, like `ipvsadm -Z`
    /// — in the `services` and `reals` views only. The kernel's counters
    /// are not written: the daemon keeps a baseline per service and real
    /// server that those two views subtract, and `metrics` exports the
    /// kernel's counters as they are, so Prometheus counters never go
    /// backwards (a scrape sees no reset, and rates over a zero stay
    /// right). A counter found below its baseline was reset under the
    /// daemon (the service was removed and added again) and is shown as
    /// it is. Root only.
    Zero {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
    },
    /// The idle timeouts in force (like `ipvsadm -L --timeout`); they are
    /// changed through the file (`tandemctl timeouts --set` edits it and
    /// reloads).
    Timeouts,
}

impl Request {
    /// Its `cmd`, as `tandemctl` sends it.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Switchover => "switchover",
            Request::ReleaseHold => "releasehold",
            Request::Services => "services",
            Request::Reals => "reals",
            #[cfg(feature = "admin-cards")]
            Request::Cards => "cards",
            Request::Maintenance { .. } => "maintenance",
            Request::Sync => "sync",
            Request::Metrics => "metrics",
            Request::Stats => "stats",
            Request::Events { .. } => "events",
            Request::Save => "save",
            Request::Reload { .. } => "reload",
            Request::Conns { .. } => "conns",
            Request::Zero { .. } => "zero",
            Request::Timeouts => "timeouts",
        }
    }

    /// It only reads: what `[admin] read_group` members may ask. `save`
    /// is not one of them (it writes out the keys).
    pub fn is_read(&self) -> bool {
        match self {
            Request::Status
            | Request::Services
            | Request::Reals
            | Request::Sync
            | Request::Metrics
            | Request::Stats
            | Request::Events { .. } => true,
            #[cfg(feature = "admin-cards")]
            Request::Cards => true,
            Request::Switchover
            | Request::ReleaseHold
            | Request::Maintenance { .. }
            | Request::Save
            | Request::Reload { .. } => false,
            Request::Conns { .. } => true,
            Request::Zero { .. } => false,
            Request::Timeouts => true,
        }
    }
}

/// Whether the client with user id `uid` (None: unknown) may make
/// `request`: root may make any; anyone else who could connect (a member
/// of `[admin] read_group`) only the read requests.
pub fn authorize(request: &Request, uid: Option<u32>) -> Result<(), String> {
    if uid == Some(0) || request.is_read() {
        return Ok(());
    }
    Err(format!(
        "permission denied: `{}` is root's; members of admin.read_group may only read (uid {})",
        request.name(),
        uid.map_or_else(|| "unknown".into(), |u| u.to_string())
    ))
}

/// Most events one `events` answer carries.
pub const MAX_EVENTS: usize = 512;

/// The daemon's answer to one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "lowercase")]
pub enum Response {
    Status(StatusReply),
    Services {
        services: Vec<ServiceStatus>,
        /// CLOCK_MONOTONIC of the daemon when it read the counters, in ns
        /// (0 from a daemon that does not say): rates over two answers
        /// use the daemon's clock, not the client's.
        #[serde(default)]
        taken_ns: u64,
    },
    Reals {
        reals: Vec<RealStatus>,
    },
    Cards {
        spans: Vec<SpanStatus>,
    },
    Sync(SyncReply),
    Metrics {
        text: String,
    },
    Stats {
        reasons: Vec<ReasonCount>,
    },
    Events {
        events: Vec<crate::events::Stamped>,
    },
    /// `save`: the running configuration, as a `tandem.toml`.
    Config {
        text: String,
    },
    /// `reload`: what a reload found and did.
    Reload(ReloadReply),
    /// `timeouts`: the idle timeouts in force, in seconds.
    Timeouts {
        tcp_s: u32,
        tcp_fin_s: u32,
        udp_s: u32,
        sip_call_s: u32,
    },
    /// A command was carried out (switchover, maintenance).
    Done {
        message: String,
    },
    Error {
        message: String,
    },
    /// `conns`: the rows of one slice of the walk.
    Conns {
        conns: Vec<ConnStatus>,
        /// Entries of this slice that match the filters, those left out
        /// beyond the request's `limit` included.
        total: u64,
        /// Some matching entries are not among the rows (`total` > rows).
        truncated: bool,
        /// Where the walk stopped: ask again with `after` set to it for
        /// the rest (None: the tables' end was reached).
        #[serde(default)]
        next: Option<ConnCursor>,
    },
}

/// Most rows one `conns` answer carries (≈ 250 bytes each in JSON: well
/// within [`MAX_ANSWER`]).
pub const MAX_CONNS: usize = 10_000;

/// Which of the kernel's tables a `conns` walk is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnTable {
    /// The connection table (`FLOWS`), walked first.
    Flows,
    /// The SIP call table (`CALLS`).
    Calls,
}

/// Where a `conns` walk stands: a table and the kernel's bucket cursor in
/// it (0: the table's start). Opaque to clients: they hand back what an
/// answer gave them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnCursor {
    pub table: ConnTable,
    pub bucket: u32,
}

/// `conns`: one connection-table entry or one SIP dialog (a line of
/// `ipvsadm -Lnc`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnStatus {
    /// `flow` (a connection-table entry) or `call` (a SIP dialog, kept by
    /// Call-ID whatever the client's address).
    pub kind: String,
    /// udp or tcp.
    pub protocol: String,
    /// The client's address and port (None for a SIP dialog: the kernel
    /// keys it by Call-ID).
    pub client: Option<SocketAddr>,
    /// The VIP and port.
    pub vip: SocketAddr,
    /// The real server it goes to (None: its slot is no longer configured).
    pub real: Option<SocketAddr>,
    /// `established` or `fin_wait` (TCP: a FIN or RST was seen), `udp`,
    /// `sip` (a dialog scheduled for a datagram) or `sip_learned` (learned
    /// from a TCP connection).
    pub state: String,
    /// Time left until its idle timeout, from its last packet and the
    /// kernel's timeouts; 0: idle past it (the next packet schedules anew,
    /// and the LRU table reclaims the entry when it needs room).
    pub expires_ms: u64,
    /// `to peer` (the active holds it in its synced tables: sent to the
    /// standby), `from peer` (the standby received it), `no` (sync is on
    /// and this entry is not among the synced records), `-` (sync off, or
    /// not known).
    pub synced: String,
    /// The service's name, `udp/198.18.0.100:5060` (`?`: not configured).
    pub service: String,
    /// The dialog's Call-ID, when the daemon knows it (the kernel keeps
    /// only its hash; the synced tables keep the text).
    #[serde(default)]
    pub call_id: Option<String>,
    /// The kernel's hash of the Call-ID (`tandem_common::sip::callid_hash`).
    #[serde(default)]
    pub call_hash: Option<u64>,
}

/// `status`: this node, its peer, the heartbeat paths and the VIPs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusReply {
    pub node_id: u32,
    pub node_name: String,
    /// Pair state: init, standby, takeover, active, fault, maintenance.
    pub state: String,
    pub epoch: u64,
    pub priority: u8,
    pub preempt: bool,
    pub maintenance: bool,
    /// Time in the current state.
    pub state_ms: u64,
    pub peer: Option<PeerStatus>,
    pub paths: Vec<PathStatus>,
    pub vips: Vec<VipStatus>,
    pub witness: Option<WitnessStatus>,
    /// Flap damping, holds and preemption gating.
    pub damping: DampingStatus,
    /// The kernel's dead-man switch over this daemon.
    pub dead_man: DeadManStatus,
    /// The peer is alive but its heartbeats fail authentication (a wrong
    /// or different key): this node will not take over beside it.
    pub peer_misconfigured: bool,
    /// What an operator must look at, one sentence each (empty: nothing).
    pub alarms: Vec<String>,
    /// This daemon's own lateness: loop turns that started later than one
    /// heartbeat interval after the previous one, and the worst gap.
    pub late_turns: u64,
    pub worst_turn_gap_us: u64,
    /// The running services' fingerprint (16 hex digits,
    /// [`crate::config::Config::fingerprint`]).
    pub config_fingerprint: String,
    /// The fingerprint the peer's heartbeats carry (None: not heard yet,
    /// or a peer that sends none).
    pub peer_config_fingerprint: Option<String>,
    /// The file the daemon reads on reload (empty: none), which
    /// `tandemctl service|real` edit.
    pub config_path: String,
    /// Where start-up time went, from `main` to ready (None: not ready yet).
    pub startup: Option<crate::startup::StartupReport>,
}

/// `reload`: the file read, the plan, and whether it was applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReloadReply {
    /// Where the configuration came from (the file's path, or `peer`).
    pub source: String,
    pub dry_run: bool,
    /// The changes were applied (false: a dry run, or refused).
    pub applied: bool,
    /// The live changes, in the order they apply (`tandemctl diff`'s lines).
    pub changes: Vec<String>,
    /// Differences that cannot be taken live, with why: any of them
    /// refuses the whole reload.
    pub refused: Vec<String>,
    /// The file could not be read or is not valid (every problem, each
    /// naming the file), or applying failed: nothing was changed, or what
    /// failed is named.
    pub error: Option<String>,
    /// The running services' fingerprint before and after.
    pub fingerprint_before: String,
    pub fingerprint: String,
    /// Reading and checking the file, off the loop (queueing included).
    pub read_us: u64,
    /// Applying the changes on the loop (kernel maps written).
    pub apply_us: u64,
    /// From the apply to the standby's heartbeats carrying the new
    /// fingerprint: the standby runs the change (None: see
    /// `standby_note`, or nothing to hold).
    pub standby_held_us: Option<u64>,
    /// Why the standby does not (yet) run the change, when it does not:
    /// no peer heard, sync off, or not held within the wait.
    pub standby_note: Option<String>,
}

/// Flap damping and holds of the pair machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DampingStatus {
    /// Recent losses of the active role that count toward the back-off.
    pub flaps: u32,
    /// Time left in the hold-down (this node does not compete for the
    /// role unless the peer is positively dead on every path).
    pub hold_down_ms: Option<u64>,
    /// A switchover hold in force (None: no hold).
    pub switchover_hold: Option<SwitchoverHold>,
    /// This node holds the peer's state (sync snapshot applied, caught up).
    pub peer_state_held: bool,
}

/// How long a switchover hold lasts (an enum, not a nested `Option`:
/// JSON has one `null`, and "held until released" must not read back as
/// "no hold").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchoverHold {
    /// Until the operator releases it (`tandemctl switchover --release`).
    UntilReleased,
    /// For this many more milliseconds (`node.switchover_hold_ms`).
    ForMs(u64),
}

/// The dead-man switch: the daemon stamps the kernel every loop turn;
/// when the stamp is older than the budget (or the process exited), XDP
/// stops answering ARP for the VIPs, dispatching and reflecting echoes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeadManStatus {
    /// 0: the switch is off.
    pub budget_ms: u64,
    /// Times the switch tripped since the daemon started.
    pub trips: u64,
    /// Tripped now (not yet re-armed by the daemon).
    pub fenced: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerStatus {
    pub node_id: u32,
    /// The state the peer last reported, or `lost`.
    pub state: String,
    pub epoch: u64,
    pub priority: u8,
}

/// One heartbeat path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PathStatus {
    pub name: String,
    pub interface: String,
    pub up: bool,
    /// Time since the peer's last heartbeat on this path.
    pub last_heard_ms: Option<u64>,
    /// Echo liveness on this path: `unknown`, `alive` or `lost`.
    pub echo: String,
    /// Time since the peer last reflected one of our echoes on this path.
    pub last_echo_ms: Option<u64>,
    /// Heartbeats from the peer's address on this path fail authentication.
    pub bad_mac: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipStatus {
    pub address: Ipv4Addr,
    pub interface: String,
    /// This node holds the address.
    pub owned: bool,
    /// Gratuitous ARPs sent, failed, re-sent after a transient failure,
    /// and given up, since the daemon started.
    #[serde(default)]
    pub garp_sent: u64,
    #[serde(default)]
    pub garp_failed: u64,
    #[serde(default)]
    pub garp_retried: u64,
    #[serde(default)]
    pub garp_dropped: u64,
    /// The errno of the last failed GARP.
    #[serde(default)]
    pub garp_last_errno: Option<i32>,
    /// Dataplane ownership updates of the VIP that failed.
    #[serde(default)]
    pub own_failed: u64,
}

/// `sync`: this node's end of state sync.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReply {
    /// Off in the configuration.
    pub enabled: bool,
    /// `publisher` (active), `subscriber` (standby) or `none`.
    pub role: String,
    pub state: String,
    pub peer: Option<String>,
    /// Records in this node's synced tables.
    pub flows: u64,
    pub calls: u64,
    pub channels: u64,
    /// Publisher: the last change recorded; subscriber: the last applied.
    pub last_seq: u64,
    /// Publisher: the last change the standby acknowledged.
    pub acked: u64,
    /// Publisher: changes kept for the standby.
    pub queue: u64,
    pub out_of_date: bool,
    /// Publisher: changes recorded; subscriber: records received.
    pub records: u64,
    /// Subscriber: records written into the kernel's tables.
    pub applied: u64,
    /// Records this node's kernel could not take (no such service or real server).
    pub kernel_errors: u64,
    pub snapshots: u64,
    pub resumes: u64,
    pub overflows: u64,
    pub bad_frames: u64,
    pub connections: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Publisher: record → acknowledged, over the last samples, in µs.
    pub lag_samples: u64,
    pub lag_p50_us: u64,
    pub lag_p99_us: u64,
    pub lag_max_us: u64,
    /// Connections accepted on the sync port, and what became of those
    /// that had not authenticated (the sync runtime's `AuthCounters`):
    /// refused at once (not from a peer address, or not publishing),
    /// pending now, dropped for a newer one, handshakes completed, and
    /// failed by reason.
    #[serde(default)]
    pub accepted: u64,
    #[serde(default)]
    pub refused: u64,
    #[serde(default)]
    pub pending: u64,
    #[serde(default)]
    pub pending_dropped: u64,
    #[serde(default)]
    pub handshakes: u64,
    #[serde(default)]
    pub handshake_timeouts: u64,
    #[serde(default)]
    pub handshake_bad_proof: u64,
    #[serde(default)]
    pub handshake_bad_frames: u64,
    #[serde(default)]
    pub handshake_over_budget: u64,
    #[serde(default)]
    pub handshake_closed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessStatus {
    pub address: Ipv4Addr,
    pub reachable: bool,
}

/// `services`: a virtual service with its real servers (like `ipvsadm -Ln`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub vip: IpAddr,
    pub port: u16,
    /// udp or tcp.
    pub protocol: String,
    pub scheduler: String,
    /// dr or nat.
    pub forward: String,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub packets: u64,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub reals: Vec<RealStatus>,
    /// New flows (and new SIP calls) the service scheduled.
    #[serde(default)]
    pub new_flows: u64,
}

impl ServiceStatus {
    /// `udp/198.18.0.100:5060`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.protocol, endpoint(self.vip, self.port))
    }
}

/// `reals`: one real server of one service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealStatus {
    /// The service's name, `udp/198.18.0.100:5060`.
    pub service: String,
    pub address: IpAddr,
    pub port: u16,
    pub weight: u32,
    /// As configured: up, draining, down.
    pub state: String,
    /// From its heartbeats: alive, dead, unknown.
    #[serde(default)]
    pub health: String,
    /// Active connections to it, as the kernel counts them (flows in the
    /// connection table, IPVS's ActiveConn).
    #[serde(default)]
    pub flows: u64,
    /// Reported load: active channels.
    #[serde(default)]
    pub channels: Option<u32>,
    /// Reported load: channel capacity.
    #[serde(default)]
    pub capacity: Option<u32>,
    #[serde(default)]
    pub packets: u64,
    #[serde(default)]
    pub bytes: u64,
    /// New flows (and new SIP calls) the scheduler gave it.
    #[serde(default)]
    pub new_flows: u64,
    /// The MAC dispatched frames get (None: none known yet: the file
    /// gives none and the neighbour table has none, so it is down).
    #[serde(default)]
    pub mac: Option<String>,
}

/// `stats`: packets the dispatcher counted under one reason
/// (`tandem_common::Reason`, by its name: `forward_dr`, `sip_callid_hit`, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCount {
    pub reason: String,
    pub packets: u64,
}

/// `cards`: one span of a telephony card, like a line of `dahdi_scan`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpanStatus {
    /// The card's device root (`/dev/dahdi`).
    pub card: String,
    pub span: u32,
    pub name: String,
    pub description: String,
    /// E1, T1, …
    pub span_type: String,
    /// `OK` or the alarm names as dahdi_tool prints them, `RED|LOS`.
    pub alarms: String,
    /// started, starting or stopped.
    pub state: String,
    /// This node drives the span while it is active.
    pub owned: bool,
    /// The span makes this node unfit to serve (its alarms, or the card is gone).
    pub fault: bool,
    pub configured_channels: u32,
    pub total_channels: u32,
    /// The call state of each channel of an owned span.
    pub channels: Vec<ChannelStatus>,
    /// Why the span could not be read.
    pub error: Option<String>,
}

/// One channel of an owned span.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelStatus {
    /// Position in the span, from 1.
    pub channel: u32,
    /// idle, ringing, answered, on_hold, hung_up.
    pub state: String,
}

/// Errors of the admin socket, each naming the socket's path.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no admin socket at {path}: is tandemd running?")]
    NoSocket { path: PathBuf },
    #[error("permission denied on {path}: the admin socket is root-only (run as root)")]
    PermissionDenied { path: PathBuf },
    #[error("nothing is listening on {path} (tandemd is not running; the socket is stale)")]
    NotListening { path: PathBuf },
    #[error("{path} is in use by a running tandemd")]
    InUse { path: PathBuf },
    #[error("{path} exists and is not a socket")]
    NotASocket { path: PathBuf },
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("{path}: no answer within {timeout:?}")]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("{path}: bad response: {reason}")]
    BadResponse { path: PathBuf, reason: String },
    /// A request line the daemon cannot understand.
    #[error("bad request {line:?}: {reason}")]
    BadRequest { line: String, reason: String },
}

/// Parses one request line (without its newline).
pub fn parse_request(line: &str) -> Result<Request, AdminError> {
    let shown: String = line.chars().take(200).collect();
    serde_json::from_str(line.trim()).map_err(|e| AdminError::BadRequest {
        line: shown,
        reason: e.to_string(),
    })
}

/// One response line, newline included.
pub fn format_response(response: &Response) -> String {
    let mut s = serde_json::to_string(response).unwrap_or_else(|e| {
        // Only a non-string map key could fail; there are none.
        format!("{{\"reply\":\"error\",\"message\":\"cannot encode the response: {e}\"}}")
    });
    s.push('\n');
    s
}

/// The request line of `Request::Cards`.
pub const CARDS_REQUEST: &str = r#"{"cmd":"cards"}"#;

pub(super) fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// A service's name, `udp/198.18.0.100:5060`, from what an operator
/// types: `PROTO:VIP:PORT` (as `ipvsadm -t|-u VIP:PORT`), or the name
/// itself; IPv6 VIPs in brackets (`udp:[2001:db8::1]:5060`).
pub fn service_name(spec: &str) -> Result<String, String> {
    let bad = |why: &str| format!("service {spec:?}: {why} (PROTO:VIP:PORT, e.g. udp:198.18.0.100:5060)");
    let (proto, rest) = spec
        .split_once(['/', ':'])
        .ok_or_else(|| bad("no protocol"))?;
    let proto = proto.to_ascii_lowercase();
    if proto != "udp" && proto != "tcp" {
        return Err(bad("the protocol is udp or tcp"));
    }
    let addr: SocketAddr = rest.parse().map_err(|_| bad("not VIP:PORT"))?;
    Ok(format!("{proto}/{}", endpoint(addr.ip(), addr.port())))
}
