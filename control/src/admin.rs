//! The admin protocol between `tandemctl` and `tandemd`: newline-delimited
//! JSON over a root-only Unix stream socket.
//!
//! A request is one JSON object per line, `{"cmd":"status"}`,
//! `{"cmd":"switchover"}`, `{"cmd":"services"}`, `{"cmd":"reals"}`,
//! `{"cmd":"cards"}`, `{"cmd":"sync"}`, `{"cmd":"stats"}` or
//! `{"cmd":"maintenance","on":true}`; each gets one JSON object per line
//! back, tagged by `"reply"`: `status`, `services`, `reals`, `cards`,
//! `sync`, `stats`, `done` or `error`. (`Request::Cards` is behind the
//! `admin-cards` feature until tandemd answers it; [`request_cards`] sends
//! the same line either way.)
//!
//! This module owns the message types, the server-side helpers the daemon's
//! reactor drives without blocking ([`bind`] with mode 0600, [`Connection`]
//! for line framing over a non-blocking stream), the blocking client
//! ([`request`]) and the human-readable tables `tandemctl` prints. It knows
//! nothing of the pair state machine or the dataplane: states are strings
//! the daemon fills in, and it decides nothing.

use std::{
    fmt::Write as _,
    io::{self, BufRead, BufReader, Read, Write},
    net::{IpAddr, Ipv4Addr},
    os::{
        fd::{AsRawFd, OwnedFd, RawFd},
        unix::{
            fs::{FileTypeExt, PermissionsExt},
            net::{UnixListener, UnixStream},
        },
    },
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// Longest request or response line accepted, in bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// Mode of the admin socket: root only.
pub const SOCKET_MODE: u32 = 0o600;

/// A request from `tandemctl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Status,
    /// Hand the active role to the peer.
    Switchover,
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
    /// Prometheus metrics (OpenMetrics text).
    Metrics,
    /// The dispatcher's packet counters by reason (forwarded, passed and
    /// why, SIP Call-ID hits and fallbacks, heartbeats).
    Stats,
}

/// The daemon's answer to one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "lowercase")]
pub enum Response {
    Status(StatusReply),
    Services {
        services: Vec<ServiceStatus>,
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
    /// A command was carried out (switchover, maintenance).
    Done {
        message: String,
    },
    Error {
        message: String,
    },
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
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipStatus {
    pub address: Ipv4Addr,
    pub interface: String,
    /// This node holds the address.
    pub owned: bool,
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

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> AdminError + 'a {
    move |source| AdminError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

/// Creates the admin socket: non-blocking, mode 0600 before it listens (so
/// no one else can ever connect), its directory created if missing. A stale
/// socket left by a dead daemon is replaced; a live one is an error.
pub fn bind(path: &Path) -> Result<UnixListener, AdminError> {
    use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(io_err(path, "creating its directory"))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(AdminError::InUse {
                    path: path.to_owned(),
                });
            }
            std::fs::remove_file(path).map_err(io_err(path, "removing the stale socket"))?;
        }
        Ok(_) => {
            return Err(AdminError::NotASocket {
                path: path.to_owned(),
            });
        }
        Err(_) => {}
    }
    let nix_io = |op| move |e: nix::Error| io_err(path, op)(io::Error::from(e));
    let fd: OwnedFd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(nix_io("creating the socket"))?;
    let addr = UnixAddr::new(path).map_err(nix_io("socket address"))?;
    socket::bind(fd.as_raw_fd(), &addr).map_err(nix_io("binding"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(io_err(path, "setting mode 0600"))?;
    let backlog = Backlog::new(64).map_err(nix_io("backlog"))?;
    socket::listen(&fd, backlog).map_err(nix_io("listening"))?;
    Ok(UnixListener::from(fd))
}

/// One client connection on the daemon's side: a non-blocking stream with
/// its input split into request lines and its output buffered. The reactor
/// polls [`Connection::fd`] (readable, or writable while
/// [`Connection::wants_write`]) and calls [`Connection::read_requests`] /
/// [`Connection::flush`]; neither ever blocks.
pub struct Connection {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    eof: bool,
}

impl Connection {
    /// Takes an accepted connection (e.g. a reactor accept's descriptor)
    /// and makes it non-blocking.
    pub fn new(fd: OwnedFd) -> io::Result<Connection> {
        let stream = UnixStream::from(fd);
        stream.set_nonblocking(true)?;
        Ok(Connection {
            stream,
            input: Vec::new(),
            output: Vec::new(),
            eof: false,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Reads what is available and returns the complete request lines
    /// received, each parsed. A line longer than [`MAX_LINE`] is an error
    /// and the rest of the input is dropped.
    pub fn read_requests(&mut self) -> io::Result<Vec<Result<Request, AdminError>>> {
        let mut buf = [0u8; 4096];
        // Bounded: at most MAX_LINE + one buffer per call.
        for _ in 0..(MAX_LINE / buf.len() + 2) {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if self.input.len() > MAX_LINE {
                break;
            }
        }
        let mut out = Vec::new();
        while let Some(pos) = self.input.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.input.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line[..pos]);
            if line.trim().is_empty() {
                continue;
            }
            out.push(parse_request(&line));
        }
        if self.input.len() > MAX_LINE {
            self.input.clear();
            out.push(Err(AdminError::BadRequest {
                line: String::new(),
                reason: format!("line longer than {MAX_LINE} bytes"),
            }));
        }
        Ok(out)
    }

    /// Queues a response; [`Connection::flush`] sends it.
    pub fn queue(&mut self, response: &Response) {
        self.output
            .extend_from_slice(format_response(response).as_bytes());
    }

    /// Writes what the socket takes now; `true` when nothing is left.
    pub fn flush(&mut self) -> io::Result<bool> {
        // Bounded: each successful write removes at least one byte.
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    pub fn wants_write(&self) -> bool {
        !self.output.is_empty()
    }

    /// The client closed its side; close once [`Connection::flush`] is done.
    pub fn is_eof(&self) -> bool {
        self.eof
    }
}

/// Sends one request to the daemon at `socket` and waits (at most
/// `timeout`) for its response. Errors name the socket path.
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, AdminError> {
    let line = serde_json::to_string(req).map_err(|e| AdminError::BadRequest {
        line: format!("{req:?}"),
        reason: e.to_string(),
    })?;
    request_line(socket, line, timeout)
}

/// The request line of `Request::Cards`.
pub const CARDS_REQUEST: &str = r#"{"cmd":"cards"}"#;

/// Asks for the telephony cards (`{"cmd":"cards"}`), as [`request`] does.
pub fn request_cards(socket: &Path, timeout: Duration) -> Result<Response, AdminError> {
    request_line(socket, CARDS_REQUEST.to_string(), timeout)
}

fn request_line(
    socket: &Path,
    mut line: String,
    timeout: Duration,
) -> Result<Response, AdminError> {
    let path = socket.to_owned();
    let stream = UnixStream::connect(socket).map_err(|e| connect_error(socket, e))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(io_err(socket, "setting timeouts"))?;
    line.push('\n');
    (&stream)
        .write_all(line.as_bytes())
        .map_err(|e| timeout_or(socket, timeout, "sending the request", e))?;
    let mut reader = BufReader::new((&stream).take(MAX_LINE as u64 + 1));
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .map_err(|e| timeout_or(socket, timeout, "reading the response", e))?;
    if answer.is_empty() {
        return Err(AdminError::BadResponse {
            path,
            reason: "the daemon closed the connection without answering".into(),
        });
    }
    if !answer.ends_with('\n') {
        return Err(AdminError::BadResponse {
            path,
            reason: format!("unterminated or longer than {MAX_LINE} bytes"),
        });
    }
    serde_json::from_str(answer.trim_end()).map_err(|e| AdminError::BadResponse {
        path,
        reason: e.to_string(),
    })
}

/// Maps a failed connect to an error that says what to do.
pub fn connect_error(path: &Path, e: io::Error) -> AdminError {
    let path = path.to_owned();
    match e.kind() {
        io::ErrorKind::NotFound => AdminError::NoSocket { path },
        io::ErrorKind::PermissionDenied => AdminError::PermissionDenied { path },
        io::ErrorKind::ConnectionRefused => AdminError::NotListening { path },
        _ => AdminError::Io {
            path,
            op: "connecting",
            source: e,
        },
    }
}

fn timeout_or(path: &Path, timeout: Duration, op: &'static str, e: io::Error) -> AdminError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => AdminError::Timeout {
            path: path.to_owned(),
            timeout,
        },
        _ => AdminError::Io {
            path: path.to_owned(),
            op,
            source: e,
        },
    }
}

fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// ipvsadm's name of a forwarding method.
fn forward_name(f: &str) -> &str {
    match f {
        "dr" => "Route",
        "nat" => "Masq",
        other => other,
    }
}

fn duration_text(ms: u64) -> String {
    match ms {
        ms if ms < 10_000 => format!("{ms} ms"),
        ms if ms < 600_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms => format!("{} min", ms / 60_000),
    }
}

/// `tandemctl status`.
pub fn render_status(s: &StatusReply) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "node        {} ({})  priority {}  preempt {}",
        s.node_id,
        s.node_name,
        s.priority,
        on_off(s.preempt)
    );
    let _ = writeln!(
        o,
        "state       {}  epoch {}  for {}",
        s.state,
        s.epoch,
        duration_text(s.state_ms)
    );
    let _ = writeln!(o, "maintenance {}", on_off(s.maintenance));
    match &s.peer {
        Some(p) => {
            let _ = writeln!(
                o,
                "peer        {}  {}  epoch {}  priority {}",
                p.node_id, p.state, p.epoch, p.priority
            );
        }
        None => {
            let _ = writeln!(o, "peer        none seen");
        }
    }
    if let Some(w) = &s.witness {
        let _ = writeln!(
            o,
            "witness     {}  {}",
            w.address,
            if w.reachable {
                "reachable"
            } else {
                "unreachable"
            }
        );
    }
    if !s.paths.is_empty() {
        let _ = writeln!(o, "\nPath         Interface        State  Last heard");
        for p in &s.paths {
            let heard = p
                .last_heard_ms
                .map(|ms| format!("{} ago", duration_text(ms)))
                .unwrap_or_else(|| "never".into());
            let _ = writeln!(
                o,
                "{:<12} {:<16} {:<6} {}",
                p.name,
                p.interface,
                if p.up { "up" } else { "down" },
                heard
            );
        }
    }
    if !s.vips.is_empty() {
        let _ = writeln!(o, "\nVIP              Interface        Owned");
        for v in &s.vips {
            let _ = writeln!(
                o,
                "{:<16} {:<16} {}",
                v.address,
                v.interface,
                if v.owned { "yes" } else { "no" }
            );
        }
    }
    o
}

/// `tandemctl services`, laid out like `ipvsadm -Ln`.
pub fn render_services(services: &[ServiceStatus]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Prot LocalAddress:Port                 Scheduler Flags");
    let _ = writeln!(
        o,
        "  -> RemoteAddress:Port                Forward Weight State    Health  Flows"
    );
    for s in services {
        let line = format!(
            "{:<4} {:<33} {:<9} {}",
            s.protocol.to_uppercase(),
            endpoint(s.vip, s.port),
            s.scheduler,
            s.flags.join(",")
        );
        let _ = writeln!(o, "{}", line.trim_end());
        for r in &s.reals {
            let port = if r.port == 0 { s.port } else { r.port };
            let _ = writeln!(
                o,
                "  -> {:<33} {:<7} {:<6} {:<8} {:<7} {}",
                endpoint(r.address, port),
                forward_name(&s.forward),
                r.weight,
                r.state,
                if r.health.is_empty() { "-" } else { &r.health },
                r.flows
            );
        }
    }
    o
}

/// `tandemctl reals`: every real server with its health, load and counters.
pub fn render_reals(reals: &[RealStatus]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<28} {:<24} {:>6} {:<8} {:<7} {:>9} {:>8} {:>12} {:>14}",
        "Service", "Real", "Weight", "State", "Health", "Load", "Flows", "Packets", "Bytes"
    );
    for r in reals {
        let load = match (r.channels, r.capacity) {
            (Some(c), Some(cap)) => format!("{c}/{cap}"),
            (Some(c), None) => c.to_string(),
            _ => "-".into(),
        };
        let _ = writeln!(
            o,
            "{:<28} {:<24} {:>6} {:<8} {:<7} {:>9} {:>8} {:>12} {:>14}",
            r.service,
            endpoint(r.address, r.port),
            r.weight,
            r.state,
            if r.health.is_empty() { "-" } else { &r.health },
            load,
            r.flows,
            r.packets,
            r.bytes
        );
    }
    o
}

/// Channels per line in [`render_cards`].
const CHANNELS_PER_LINE: usize = 6;

/// `tandemctl cards`: every span with its alarms and state, like
/// `dahdi_tool`'s span list, grouped by card, then the call state of each
/// channel of the spans this node owns.
pub fn render_cards(spans: &[SpanStatus]) -> String {
    let mut o = String::new();
    let mut card: Option<&str> = None;
    for s in spans {
        if card != Some(s.card.as_str()) {
            if card.is_some() {
                o.push('\n');
            }
            card = Some(&s.card);
            let _ = writeln!(o, "Card {}", s.card);
            let _ = writeln!(
                o,
                "{:<4} {:<16} {:<4} {:<16} {:<8} {:<5} {:<5} {:>8}",
                "Span", "Name", "Type", "Alarms", "State", "Owned", "Fault", "Channels"
            );
        }
        let line = format!(
            "{:<4} {:<16} {:<4} {:<16} {:<8} {:<5} {:<5} {:>8}",
            s.span,
            if s.name.is_empty() { "-" } else { &s.name },
            if s.span_type.is_empty() {
                "-"
            } else {
                &s.span_type
            },
            if s.alarms.is_empty() { "-" } else { &s.alarms },
            s.state,
            if s.owned { "yes" } else { "no" },
            if s.fault { "FAULT" } else { "no" },
            format!("{}/{}", s.configured_channels, s.total_channels),
        );
        let _ = writeln!(o, "{}", line.trim_end());
        if let Some(e) = &s.error {
            let _ = writeln!(o, "     error: {e}");
        }
        for row in s.channels.chunks(CHANNELS_PER_LINE) {
            let cells: Vec<String> = row
                .iter()
                .map(|c| format!("{:>3} {:<9}", c.channel, c.state))
                .collect();
            let _ = writeln!(o, "    {}", cells.join(" ").trim_end());
        }
    }
    o
}

/// `tandemctl stats`: the reasons with a non-zero count, one per line.
pub fn render_stats(reasons: &[ReasonCount]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{:<24} {:>14}", "Reason", "Packets");
    for r in reasons.iter().filter(|r| r.packets > 0) {
        let _ = writeln!(o, "{:<24} {:>14}", r.reason, r.packets);
    }
    o
}

/// The human-readable form of any response.
/// `tandemctl sync`.
pub fn render_sync(s: &SyncReply) -> String {
    if !s.enabled {
        return "state sync off ([sync] enabled = false)\n".into();
    }
    let mut o = String::new();
    let _ = writeln!(o, "role        {}  {}  peer {}", s.role, s.state, s.peer.as_deref().unwrap_or("none"));
    let _ = writeln!(o, "tables      {} flows  {} calls  {} channels", s.flows, s.calls, s.channels);
    if s.role == "publisher" {
        let _ = writeln!(
            o,
            "sequence    last {}  acked {}  queued {}{}",
            s.last_seq,
            s.acked,
            s.queue,
            if s.out_of_date { "  (standby out of date: snapshot due)" } else { "" }
        );
        let _ = writeln!(
            o,
            "lag         p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} samples)",
            s.lag_p50_us as f64 / 1000.0,
            s.lag_p99_us as f64 / 1000.0,
            s.lag_max_us as f64 / 1000.0,
            s.lag_samples
        );
    } else {
        let _ = writeln!(o, "sequence    applied up to {}  records {}  into the kernel {}  refused {}", s.last_seq, s.records, s.applied, s.kernel_errors);
    }
    let _ = writeln!(
        o,
        "counters    {} connections  {} snapshots  {} resumes  {} overflows  {} bad frames  {} B out  {} B in",
        s.connections, s.snapshots, s.resumes, s.overflows, s.bad_frames, s.bytes_sent, s.bytes_received
    );
    o
}

pub fn render(response: &Response) -> String {
    match response {
        Response::Status(s) => render_status(s),
        Response::Services { services } => render_services(services),
        Response::Reals { reals } => render_reals(reals),
        Response::Cards { spans } => render_cards(spans),
        Response::Sync(s) => render_sync(s),
        Response::Metrics { text } => text.clone(),
        Response::Stats { reasons } => render_stats(reasons),
        Response::Done { message } => format!("{message}\n"),
        Response::Error { message } => format!("error: {message}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn requests_on_the_wire() {
        let cases = [
            (r#"{"cmd":"status"}"#, Request::Status),
            (r#"{"cmd":"switchover"}"#, Request::Switchover),
            (r#"{"cmd":"services"}"#, Request::Services),
            (r#"{"cmd":"reals"}"#, Request::Reals),
            (
                r#"{"cmd":"maintenance","on":true}"#,
                Request::Maintenance { on: true },
            ),
            (
                r#"{"cmd":"maintenance","on":false}"#,
                Request::Maintenance { on: false },
            ),
        ];
        for (line, req) in cases {
            assert_eq!(serde_json::to_string(&req).expect("encode"), line);
            assert_eq!(parse_request(line).expect("parse"), req);
        }
        let e = parse_request(r#"{"cmd":"reboot"}"#).expect_err("unknown command");
        assert!(
            e.to_string()
                .starts_with(r#"bad request "{\"cmd\":\"reboot\"}": unknown variant `reboot`"#),
            "{e}"
        );
        assert!(parse_request(r#"{"cmd":"maintenance"}"#).is_err());
        assert!(parse_request("status").is_err());
    }

    #[test]
    fn responses_on_the_wire() {
        let r = Response::Done {
            message: "switchover started".into(),
        };
        assert_eq!(
            format_response(&r),
            "{\"reply\":\"done\",\"message\":\"switchover started\"}\n"
        );
        let s = Response::Status(StatusReply {
            node_id: 1,
            state: "active".into(),
            ..Default::default()
        });
        let line = format_response(&s);
        assert!(
            line.starts_with("{\"reply\":\"status\",\"node_id\":1,"),
            "{line}"
        );
        assert_eq!(
            serde_json::from_str::<Response>(line.trim_end()).expect("decode"),
            s
        );
        // Fields a newer daemon may leave out take their defaults.
        let old: Response =
            serde_json::from_str(r#"{"reply":"status","node_id":2,"state":"standby"}"#)
                .expect("decode");
        assert!(matches!(
            old,
            Response::Status(StatusReply { node_id: 2, .. })
        ));
    }

    #[test]
    fn connection_frames_lines_without_blocking() {
        let (client, server) = UnixStream::pair().expect("pair");
        let mut conn = Connection::new(OwnedFd::from(server)).expect("conn");
        assert!(
            conn.read_requests().expect("read").is_empty(),
            "nothing yet, no block"
        );
        (&client)
            .write_all(b"{\"cmd\":\"status\"}\n\n{\"cmd\":\"maint")
            .expect("write");
        let got = conn.read_requests().expect("read");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().ok(), Some(&Request::Status));
        (&client)
            .write_all(b"enance\",\"on\":true}\nbogus\n")
            .expect("write");
        let got = conn.read_requests().expect("read");
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].as_ref().ok(),
            Some(&Request::Maintenance { on: true })
        );
        assert!(got[1].is_err());
        conn.queue(&Response::Done {
            message: "ok".into(),
        });
        assert!(conn.wants_write());
        assert!(conn.flush().expect("flush"));
        let mut line = String::new();
        BufReader::new(&client).read_line(&mut line).expect("read");
        assert_eq!(line, "{\"reply\":\"done\",\"message\":\"ok\"}\n");
        drop(client);
        conn.read_requests().expect("read");
        assert!(conn.is_eof());
    }

    #[test]
    fn connection_refuses_overlong_lines() {
        let (client, server) = UnixStream::pair().expect("pair");
        let mut conn = Connection::new(OwnedFd::from(server)).expect("conn");
        let junk = vec![b'x'; MAX_LINE + 10];
        let writer = std::thread::spawn(move || {
            let _ = (&client).write_all(&junk);
            client
        });
        let mut errors = 0;
        for _ in 0..100 {
            errors += conn
                .read_requests()
                .expect("read")
                .iter()
                .filter(|r| r.is_err())
                .count();
            if errors > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(errors, 1);
        drop(writer.join());
    }

    #[test]
    fn bind_is_root_only_and_replaces_stale_sockets() {
        let dir = std::env::temp_dir().join(format!("tandem-admin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("run").join("tandemd.sock");
        let listener = bind(&path).expect("bind");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A second daemon is refused while the first listens.
        let e = bind(&path).expect_err("in use");
        assert_eq!(
            e.to_string(),
            format!("{} is in use by a running tandemd", path.display())
        );
        // A dead daemon's socket is replaced.
        drop(listener);
        let _again = bind(&path).expect("stale socket replaced");
        // A regular file is never removed.
        let file = dir.join("not-a-socket");
        std::fs::write(&file, b"x").expect("write");
        assert!(matches!(bind(&file), Err(AdminError::NotASocket { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn client_errors_name_the_path() {
        let missing = Path::new("/nonexistent/tandem/tandemd.sock");
        let e = request(missing, &Request::Status, Duration::from_secs(1)).expect_err("no socket");
        assert_eq!(
            e.to_string(),
            "no admin socket at /nonexistent/tandem/tandemd.sock: is tandemd running?"
        );
        let denied = connect_error(
            Path::new("/run/tandem/tandemd.sock"),
            io::ErrorKind::PermissionDenied.into(),
        );
        assert_eq!(
            denied.to_string(),
            "permission denied on /run/tandem/tandemd.sock: the admin socket is root-only (run as root)"
        );
    }

    #[cfg(feature = "admin-cards")]
    #[test]
    fn cards_request_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&Request::Cards).expect("encode"),
            CARDS_REQUEST
        );
        assert_eq!(parse_request(CARDS_REQUEST).expect("parse"), Request::Cards);
    }

    #[test]
    fn cards_response_round_trips_and_renders_like_dahdi_tool() {
        let spans = vec![
            SpanStatus {
                card: "/dev/dahdi".into(),
                span: 1,
                name: "CARDSIM/0/1".into(),
                description: "tandem card simulator 0 span 1".into(),
                span_type: "E1".into(),
                alarms: "OK".into(),
                state: "started".into(),
                owned: true,
                fault: false,
                configured_channels: 8,
                total_channels: 8,
                channels: (1..=8)
                    .map(|c| ChannelStatus {
                        channel: c,
                        state: if c == 2 { "answered" } else { "idle" }.into(),
                    })
                    .collect(),
                error: None,
            },
            SpanStatus {
                card: "/dev/dahdi".into(),
                span: 2,
                alarms: "RED|LOS".into(),
                state: "stopped".into(),
                fault: true,
                error: Some("/dev/dahdi/ctl: DAHDI_SPANSTAT failed: ENODEV".into()),
                ..Default::default()
            },
        ];
        let r = Response::Cards {
            spans: spans.clone(),
        };
        let line = format_response(&r);
        assert!(
            line.starts_with(r#"{"reply":"cards","spans":[{"card":"/dev/dahdi","span":1,"#),
            "{line}"
        );
        assert_eq!(
            serde_json::from_str::<Response>(line.trim_end()).expect("decode"),
            r
        );
        let t = render(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "Card /dev/dahdi");
        assert_eq!(
            lines[1],
            "Span Name             Type Alarms           State    Owned Fault Channels"
        );
        assert_eq!(
            lines[2],
            "1    CARDSIM/0/1      E1   OK               started  yes   no         8/8"
        );
        assert_eq!(
            lines[3],
            "      1 idle        2 answered    3 idle        4 idle        5 idle        6 idle"
        );
        assert_eq!(lines[4], "      7 idle        8 idle");
        assert_eq!(
            lines[5],
            "2    -                -    RED|LOS          stopped  no    FAULT      0/0"
        );
        assert_eq!(
            lines[6],
            "     error: /dev/dahdi/ctl: DAHDI_SPANSTAT failed: ENODEV"
        );
        assert_eq!(lines.len(), 7);
        // A second card gets its own heading.
        let mut other = spans[1].clone();
        other.card = "/run/cardsim/b".into();
        let t = render_cards(&[spans[0].clone(), other]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[5], "");
        assert_eq!(lines[6], "Card /run/cardsim/b");
        assert!(lines[7].starts_with("Span Name"), "{t}");
    }

    #[test]
    fn tables_look_like_ipvsadm() {
        let services = vec![ServiceStatus {
            vip: "198.18.0.100".parse().expect("ip"),
            port: 5060,
            protocol: "udp".into(),
            scheduler: "wlc".into(),
            forward: "dr".into(),
            flags: vec!["expire_nodest".into()],
            packets: 10,
            bytes: 1000,
            reals: vec![RealStatus {
                service: "udp/198.18.0.100:5060".into(),
                address: "198.18.0.21".parse().expect("ip"),
                port: 0,
                weight: 100,
                state: "up".into(),
                health: "alive".into(),
                flows: 3,
                channels: Some(12),
                capacity: Some(30),
                packets: 10,
                bytes: 1000,
                new_flows: 9,
            }],
        }];
        let t = render_services(&services);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[2],
            "UDP  198.18.0.100:5060                 wlc       expire_nodest"
        );
        assert_eq!(
            lines[3],
            "  -> 198.18.0.21:5060                  Route   100    up       alive   3"
        );
        let t = render_reals(&services[0].reals);
        assert!(t.lines().nth(1).expect("row").contains("12/30"), "{t}");
    }
}
