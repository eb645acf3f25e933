//! Map layouts shared by the kernel program and the host.
//!
//! Every struct here is `#[repr(C)]` with explicit padding so that the
//! kernel and the host see the same bytes; the sizes are asserted at the
//! bottom of this file. Ports are stored in host byte order, addresses as
//! 16 bytes in network order (IPv4 as the IPv4-mapped IPv6 address
//! `::ffff:a.b.c.d`).

/// Virtual services the program can hold at once (index space of the
/// per-service arrays).
pub const MAX_SERVICES: u32 = 64;
/// Real servers per virtual service.
pub const MAX_REALS: u32 = 32;
/// Slots in the per-real arrays (`MAX_SERVICES * MAX_REALS`).
pub const MAX_REAL_SLOTS: u32 = MAX_SERVICES * MAX_REALS;
/// Buckets of the source/destination hashing tables (IPVS uses 256).
pub const SHDH_BUCKETS: u32 = 256;
/// Longest weighted round-robin cycle a service may have.
pub const WRR_SEQ_MAX: u32 = 4096;
/// Services that can use the Maglev scheduler at once.
pub const MH_SLOTS: u32 = 8;
/// Largest Maglev table (a prime) per slot.
pub const MH_MAX_SIZE: u32 = 131_071;
/// Default Maglev table size (a prime, as in IPVS's mh).
pub const MH_DEFAULT_SIZE: u32 = 65_537;
/// How many further table entries mh/sh/dh look at when the chosen real
/// server is unavailable and the service has `FLAG_SCHED_FALLBACK`.
pub const FALLBACK_PROBES: u32 = 8;
/// Default size of the connection table.
pub const DEFAULT_FLOW_ENTRIES: u32 = 1 << 20;
/// Default size of the SIP call table (`CALLS`).
pub const DEFAULT_CALL_ENTRIES: u32 = 1 << 16;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Schedulers, numbered as stored in [`Service::scheduler`].
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "user",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Scheduler {
    /// Round robin over available real servers.
    Rr = 0,
    /// Weighted round robin (the IPVS interleaved sequence, built on the host).
    Wrr = 1,
    /// Least connections.
    Lc = 2,
    /// Weighted least connections.
    Wlc = 3,
    /// Shortest expected delay: (active + 1) / weight.
    Sed = 4,
    /// Never queue: an idle real server first, else sed.
    Nq = 5,
    /// Source hashing over a 256-bucket weighted table.
    Sh = 6,
    /// Destination hashing over a 256-bucket weighted table.
    Dh = 7,
    /// Maglev hashing over a prime-sized lookup table.
    Mh = 8,
}

impl Scheduler {
    pub const ALL: [Scheduler; 9] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Sh,
        Scheduler::Dh,
        Scheduler::Mh,
    ];

    pub const fn from_u8(v: u8) -> Option<Scheduler> {
        match v {
            0 => Some(Scheduler::Rr),
            1 => Some(Scheduler::Wrr),
            2 => Some(Scheduler::Lc),
            3 => Some(Scheduler::Wlc),
            4 => Some(Scheduler::Sed),
            5 => Some(Scheduler::Nq),
            6 => Some(Scheduler::Sh),
            7 => Some(Scheduler::Dh),
            8 => Some(Scheduler::Mh),
            _ => None,
        }
    }

    /// The name ipvsadm uses.
    pub const fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Sh => "sh",
            Scheduler::Dh => "dh",
            Scheduler::Mh => "mh",
        }
    }
}

/// Forwarding methods, as stored in [`Service::forward`].
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "user",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Forward {
    /// Direct routing: rewrite the MAC addresses only; the real server
    /// holds the VIP on its loopback and answers the client directly.
    Dr = 0,
    /// NAT (masquerading): rewrite the destination address and port; the
    /// real server's replies come back through the director, which rewrites
    /// their source back to the VIP.
    Nat = 1,
}

impl Forward {
    pub const fn from_u8(v: u8) -> Option<Forward> {
        match v {
            0 => Some(Forward::Dr),
            1 => Some(Forward::Nat),
            _ => None,
        }
    }
}

/// Service flag: a flow whose real server is `Down` is dropped from the
/// table and its packet scheduled anew (IPVS `expire_nodest_conn`, except
/// that the packet is rescheduled rather than dropped). Without it such a
/// flow keeps going to its real server.
pub const FLAG_EXPIRE_NODEST: u16 = 1 << 0;
/// Service flag: sh/dh/mh look at the next table entries when the hashed
/// real server is unavailable (IPVS `sh-fallback`/`mh-fallback`).
pub const FLAG_SCHED_FALLBACK: u16 = 1 << 1;
/// Service flag: sh/mh hash the source port as well as the address
/// (IPVS `sh-port`/`mh-port`).
pub const FLAG_SCHED_PORT: u16 = 1 << 2;
/// Service flag (UDP only): one-packet scheduling, IPVS `--ops`: every
/// datagram is scheduled on its own and no connection entry is kept (the
/// connection table is bypassed).
pub const FLAG_ONE_PACKET: u16 = 1 << 3;
/// Service flag: load-aware scheduling from the IVR servers' own reports
/// (their heartbeats' active channels and capacity, in `REAL_LOAD`): lc,
/// wlc, sed and nq count reported channels instead of the kernel's flows,
/// and a real server at its capacity gets no new flows under any scheduler.
pub const FLAG_REPORTED_LOAD: u16 = 1 << 4;
/// Service flag: SIP Call-ID persistence (IPVS `--pe sip`). UDP: a
/// datagram whose payload carries a SIP Call-ID (see `sip`) is dispatched
/// by its Call-ID through the `CALLS` table, not by its 5-tuple, so that
/// every message of a dialog reaches one real server whatever port or
/// proxy it comes from; datagrams without one use the connection table as
/// usual. TCP: connections are scheduled as usual (at the SYN), and a
/// Call-ID seen in a data segment is learned into the `CALLS` entries of
/// the UDP service on the same VIP and port (if it has this flag), so
/// that UDP messages of a dialog begun over TCP follow it.
pub const FLAG_SIP_PERSIST: u16 = 1 << 5;
/// All service flags this version knows.
pub const FLAGS_KNOWN: u16 = FLAG_EXPIRE_NODEST
    | FLAG_SCHED_FALLBACK
    | FLAG_SCHED_PORT
    | FLAG_ONE_PACKET
    | FLAG_REPORTED_LOAD
    | FLAG_SIP_PERSIST;

/// A real server's load as it reports it (value of `REAL_LOAD`, same index
/// as `REALS`). Capacity 0: unknown, never full.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RealLoad {
    pub active: u32,
    pub capacity: u32,
}

impl RealLoad {
    #[inline(always)]
    pub fn full(&self) -> bool {
        self.capacity > 0 && self.active >= self.capacity
    }
}

/// Real server states, as stored in [`RealServer::state`].
pub const REAL_UP: u8 = 0;
/// No new flows; existing flows continue.
pub const REAL_DRAINING: u8 = 1;
/// No new flows; existing flows per `FLAG_EXPIRE_NODEST`.
pub const REAL_DOWN: u8 = 2;

/// Key of the `SERVICES` hash map. Keys and values that hold addresses
/// are 8-byte aligned with the address first, so that the kernel program
/// copies and compares addresses as two 64-bit words (see [`addr_eq`]).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ServiceKey {
    /// The VIP (IPv4-mapped for IPv4).
    pub addr: [u8; 16],
    /// Virtual port, host order.
    pub port: u16,
    /// `PROTO_TCP` or `PROTO_UDP`.
    pub proto: u8,
    /// `FAMILY_V4` or `FAMILY_V6`.
    pub family: u8,
    pub _pad: u32,
}

impl ServiceKey {
    #[inline(always)]
    pub fn new(addr: [u8; 16], port: u16, proto: u8, family: u8) -> ServiceKey {
        ServiceKey {
            addr,
            port,
            proto,
            family,
            _pad: 0,
        }
    }
}

/// Compares two addresses as two 64-bit words. Both must be the first
/// field of an 8-byte aligned struct of this module (or of the program's
/// parsed packet), which all addresses here are.
#[inline(always)]
pub fn addr_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    // SAFETY: both are 16 bytes and, by the precondition above, 8-byte
    // aligned (the struct types guarantee it; no runtime check, which the
    // verifier would refuse as pointer arithmetic).
    let (x, y) = unsafe {
        (
            *(a.as_ptr() as *const [u64; 2]),
            *(b.as_ptr() as *const [u64; 2]),
        )
    };
    x[0] == y[0] && x[1] == y[1]
}

/// A virtual service (value of `SERVICE_CONF`, indexed by `id`).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Service {
    /// Its own key, so that reverse NAT can find the VIP from the id.
    pub key: ServiceKey,
    /// Index into the per-service arrays, `< MAX_SERVICES`.
    pub id: u32,
    /// Number of real server slots in use, `<= MAX_REALS`.
    pub n_reals: u32,
    /// Length of the wrr sequence or of the Maglev table.
    pub table_len: u32,
    /// Maglev slot (`< MH_SLOTS`) for mh services.
    pub mh_slot: u32,
    /// NAT: ifindex replies to clients leave by (0: the one they came in on).
    pub client_ifindex: u32,
    /// `Scheduler` as u8.
    pub scheduler: u8,
    /// `Forward` as u8.
    pub forward: u8,
    /// `FLAG_*` bits.
    pub flags: u16,
    /// NAT: MAC address of the gateway toward the clients.
    pub gateway_mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// A real server slot (value of `REALS`, index `service.id * MAX_REALS + i`).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RealServer {
    /// Address (IPv4-mapped for IPv4).
    pub addr: [u8; 16],
    /// MAC address frames to it are sent to.
    pub mac: [u8; 6],
    /// NAT: port to rewrite to, host order (0: keep the virtual port).
    pub port: u16,
    /// IPVS weight; 0 means quiesced (no new flows).
    pub weight: u32,
    /// Interface it is reached through (0: the ingress interface, XDP_TX).
    pub ifindex: u32,
    /// `REAL_UP`, `REAL_DRAINING` or `REAL_DOWN`.
    pub state: u8,
    pub _pad: [u8; 7],
}

impl RealServer {
    /// May this real server receive new flows?
    #[inline(always)]
    pub fn available(&self) -> bool {
        self.state == REAL_UP && self.weight > 0
    }
}

/// Key of the connection table and of the NAT reverse table.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Host order.
    pub sport: u16,
    /// Host order.
    pub dport: u16,
    pub proto: u8,
    pub _pad1: u8,
    pub _pad2: u16,
}

impl FlowKey {
    #[inline(always)]
    pub fn new(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, proto: u8) -> FlowKey {
        FlowKey {
            src,
            dst,
            sport,
            dport,
            proto,
            _pad1: 0,
            _pad2: 0,
        }
    }
}

/// Flow flag: the active-connection count of its real server includes it.
pub const FLOW_COUNTED: u32 = 1 << 0;
/// Flow flag: a FIN or RST was seen (TCP); the short timeout applies.
pub const FLOW_CLOSING: u32 = 1 << 1;

/// Value of the connection table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowValue {
    /// `bpf_ktime_get_ns` of the last packet.
    pub last_seen_ns: u64,
    /// `bpf_ktime_get_ns` when the flow was scheduled.
    pub created_ns: u64,
    pub service_id: u32,
    /// Index of the real server within the service.
    pub real_idx: u32,
    /// `FLOW_*` bits.
    pub flags: u32,
    pub _pad: u32,
}

/// Value of the NAT reverse table (key: real → client 5-tuple).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NatReverse {
    pub service_id: u32,
    pub real_idx: u32,
}

/// Per-service scheduler state (value of `SCHED_STATE`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SchedState {
    /// rr: index of the last real server picked (starts at `u32::MAX`).
    /// wrr: position in the sequence.
    pub cursor: u32,
    pub _pad: u32,
}

/// `PORT_FLAGS` bits, per (protocol, port): some service on this port
/// keeps connections / some service on it schedules one packet at a time.
/// A pre-filter: packets to other ports skip the connection table and
/// service lookups, and one-packet-only ports skip the connection table.
pub const PORT_CONN: u32 = 1 << 0;
pub const PORT_ONE_PACKET: u32 = 1 << 1;
/// `PORT_FLAGS` bit of a UDP port: some service on it has
/// `FLAG_SIP_PERSIST` (its datagrams go through the SIP stage first).
pub const PORT_SIP: u32 = 1 << 2;
/// Entries of `PORT_FLAGS`: UDP ports, then TCP ports.
pub const PORT_FLAGS_ENTRIES: u32 = 2 * 65536;

/// The `PORT_FLAGS` index of a protocol and port.
#[inline(always)]
pub fn port_index(proto: u8, port: u16) -> u32 {
    (if proto == PROTO_TCP { 65536 } else { 0 }) + port as u32
}

/// Heartbeat settings (value 0 of `HB_CONFIG`): the SipHash key and the
/// UDP port; port 0 disables heartbeat detection.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HbConfig {
    pub k0: u64,
    pub k1: u64,
    pub port: u16,
    pub _pad: [u16; 3],
}

/// Key of `HB_PEERS`: a sender on one path (the interface it came in on).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct HbPeerKey {
    pub node_id: u32,
    pub ifindex: u32,
}

/// What the kernel last heard from a sender on a path (value of
/// `HB_PEERS`), also the record pushed to `HB_EVENTS` when the sender's
/// state, epoch or priority changed (or on first contact).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HbPeer {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when it arrived.
    pub last_seen_ns: u64,
    pub seq: u64,
    pub epoch: u64,
    /// The sender's own clock.
    pub sent_ns: u64,
    pub node_id: u32,
    pub ifindex: u32,
    pub active_channels: u32,
    pub capacity: u32,
    /// `NodeState` as u8.
    pub state: u8,
    pub priority: u8,
    /// `heartbeat::Kind` as u8.
    pub kind: u8,
    /// The sender's path number.
    pub path: u8,
    pub _pad: u32,
}

/// Derived node state the host maintains (value 0 of `GLOBALS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Globals {
    /// Number of NAT services: without any, replies are not looked up.
    pub nat_services: u32,
    /// Non-zero: new and expired flows are pushed to `FLOW_EVENTS` (state
    /// sync to the standby is on).
    pub flow_events: u32,
}

/// `FlowEvent::kind`: a flow was scheduled and inserted.
pub const FLOW_EVENT_NEW: u32 = 1;
/// `FlowEvent::kind`: a flow expired (idle) or lost its real server.
pub const FLOW_EVENT_REMOVED: u32 = 2;

/// A connection-table change pushed to `FLOW_EVENTS` for state sync.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowEvent {
    pub key: FlowKey,
    pub value: FlowValue,
    pub kind: u32,
    pub _pad: u32,
}

/// Key of the SIP call table `CALLS`: a Call-ID (its
/// `sip::callid_hash`) within one virtual service.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct CallKey {
    pub service_id: u32,
    pub _pad: u32,
    pub hash: u64,
}

impl CallKey {
    #[inline(always)]
    pub fn new(service_id: u32, hash: u64) -> CallKey {
        CallKey {
            service_id,
            _pad: 0,
            hash,
        }
    }
}

/// Call flag: the active-connection count of its real server includes it.
pub const CALL_COUNTED: u32 = 1 << 0;
/// Call flag: learned from a TCP connection (not scheduled for a datagram).
pub const CALL_LEARNED: u32 = 1 << 1;

/// Value of `CALLS`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CallValue {
    /// `bpf_ktime_get_coarse_ns` of the last message of the call.
    pub last_seen_ns: u64,
    /// When the call was scheduled (or learned).
    pub created_ns: u64,
    /// Index of the real server within the service.
    pub real_idx: u32,
    /// `CALL_*` bits.
    pub flags: u32,
}

/// `CallEvent::kind`: a call was scheduled (or learned) and inserted.
pub const CALL_EVENT_NEW: u32 = 1;
/// `CallEvent::kind`: a call expired (idle) or lost its real server and
/// was replaced.
pub const CALL_EVENT_REMOVED: u32 = 2;

/// A `CALLS` change pushed to `CALL_EVENTS` for state sync (when
/// `Globals::flow_events` is on).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallEvent {
    pub service_id: u32,
    pub real_idx: u32,
    pub hash: u64,
    pub created_ns: u64,
    /// `CALL_EVENT_*`.
    pub kind: u32,
    /// Bytes of `callid` in use (at most `sip::MAX_CALLID_LEN`).
    pub len: u32,
    /// The Call-ID (trimmed, first 128 bytes); bytes past `len` are unspecified.
    pub callid: [u8; 128],
}

impl CallEvent {
    /// The Call-ID text.
    pub fn callid(&self) -> &[u8] {
        let n = if self.len as usize > self.callid.len() { self.callid.len() } else { self.len as usize };
        &self.callid[..n]
    }
}

/// Node-wide settings (value 0 of `SETTINGS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Idle timeout of UDP flows (IPVS default 300 s).
    pub udp_timeout_ns: u64,
    /// Idle timeout of established TCP flows (IPVS default 900 s).
    pub tcp_timeout_ns: u64,
    /// Idle timeout of TCP flows after FIN/RST (IPVS fin_wait 120 s).
    pub tcp_fin_timeout_ns: u64,
    /// Idle timeout of SIP calls (`CALLS`): the time between two SIP
    /// messages of one dialog can be as long as the call (RTP does not go
    /// through it), so this is much longer than the UDP timeout: an hour
    /// by default (RFC 4028 session timers refresh every 30 min).
    pub call_timeout_ns: u64,
}

pub const SEC_NS: u64 = 1_000_000_000;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            udp_timeout_ns: 300 * SEC_NS,
            tcp_timeout_ns: 900 * SEC_NS,
            tcp_fin_timeout_ns: 120 * SEC_NS,
            call_timeout_ns: 3600 * SEC_NS,
        }
    }
}

/// An interface the program forwards out of (value of `IFACES`, key ifindex).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Iface {
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// Per-service and per-real-server counters (per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    pub _pad: u64,
}

/// Why a packet took the path it took: indices of the per-CPU `REASONS`
/// array. `PASS` reasons hand the frame to the stack untouched.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// PASS: not IPv4/IPv6/ARP.
    NotIp = 0,
    /// PASS: ARP (not for an owned VIP).
    Arp = 1,
    /// PASS: shorter than an Ethernet header.
    TruncatedEth = 2,
    /// PASS: 802.1Q tag cut short.
    TruncatedVlan = 3,
    /// PASS: a second VLAN tag (QinQ is not dispatched).
    DoubleVlan = 4,
    /// PASS: IPv4 header cut short.
    TruncatedIpv4 = 5,
    /// PASS: IPv4 version or IHL invalid (IHL < 5).
    BadIpv4Header = 6,
    /// PASS: IPv4 total length smaller than the header or larger than the frame.
    BadIpv4Length = 7,
    /// PASS: an IPv4 fragment (MF set or offset non-zero).
    Ipv4Fragment = 8,
    /// PASS: IPv6 header cut short.
    TruncatedIpv6 = 9,
    /// PASS: IPv6 payload length larger than the frame.
    BadIpv6Length = 10,
    /// PASS: IPv6 extension header (not dispatched).
    Ipv6ExtHeader = 11,
    /// PASS: IPv6 fragment header.
    Ipv6Fragment = 12,
    /// PASS: neither UDP nor TCP.
    NotUdpTcp = 13,
    /// PASS: UDP or TCP header cut short.
    TruncatedL4 = 14,
    /// PASS: UDP length field < 8 (zero-length UDP included) or beyond the IP payload.
    BadUdpLength = 15,
    /// PASS: TCP data offset < 5 or beyond the IP payload.
    BadTcpHeader = 16,
    /// PASS: not addressed to a virtual service and not a NAT reply.
    NotService = 17,
    /// DROP: a virtual service with no real server available for a new flow.
    NoReal = 18,
    /// PASS: a TCP segment without SYN for which there is no flow.
    TcpNoFlow = 19,
    /// TX/REDIRECT: forwarded by direct routing.
    ForwardDr = 20,
    /// TX/REDIRECT: forwarded with NAT.
    ForwardNat = 21,
    /// TX/REDIRECT: NAT reply rewritten back to the VIP.
    ReverseNat = 22,
    /// A flow found idle past its timeout and scheduled anew.
    FlowExpired = 23,
    /// A flow to a down real server dropped and scheduled anew (`FLAG_EXPIRE_NODEST`).
    NodestExpired = 24,
    /// DROP: redirect to an interface missing from the devmap.
    RedirectFailed = 25,
    /// PASS: the service's configuration is inconsistent (bad id, scheduler, table).
    BadServiceConfig = 26,
    /// The connection table refused an insert: the packet is still
    /// forwarded, but its flow is not remembered.
    FlowInsertFailed = 27,
    /// PASS: IPv6 version field is not 6.
    BadIpv6Header = 28,
    /// DROP: a verified heartbeat, recorded.
    HbAccepted = 29,
    /// DROP: a heartbeat-port datagram that is not exactly one heartbeat long.
    HbBadLength = 30,
    /// DROP: heartbeat magic or version wrong.
    HbBadMagic = 31,
    /// DROP: heartbeat MAC wrong (forged, corrupted, other key).
    HbBadMac = 32,
    /// DROP: heartbeat sequence not above the last one seen on that path (replay).
    HbReplay = 33,
    /// DROP: heartbeat from a node id that is not configured.
    HbUnknownSender = 34,
    /// DROP: heartbeat with an unknown kind or state.
    HbBadField = 35,
    /// TX: an ARP request for an owned VIP, answered in XDP.
    ArpReply = 36,
    /// A SIP Call-ID with no live `CALLS` entry: scheduled and recorded
    /// (the forward is counted as well).
    SipCallIdNew = 37,
    /// A SIP Call-ID found in `CALLS`: sent to its real server.
    SipCallIdHit = 38,
    /// A datagram to a SIP-persistence service (or a data segment of one
    /// of its TCP connections) without a usable Call-ID in the scan
    /// window (not SIP, keepalive, no or empty or cut-off Call-ID): it
    /// takes the connection-table path.
    SipNoCallId = 39,
    /// A `CALLS` entry found idle past `call_timeout_ns`, or whose real
    /// server is down with `FLAG_EXPIRE_NODEST` (or gone): replaced by a
    /// fresh schedule.
    SipCallIdExpired = 40,
    /// TCP: a Call-ID in a data segment was recorded for the UDP service
    /// on the same VIP and port.
    SipCallIdLearned = 41,
    /// TCP: a Call-ID in a data segment could not be recorded: no UDP
    /// service with `FLAG_SIP_PERSIST` on the same VIP and port, or the
    /// connection's real server is not one of its real servers.
    SipLearnNoTarget = 42,
}

pub const REASON_COUNT: u32 = 43;

impl Reason {
    pub const ALL: [Reason; REASON_COUNT as usize] = [
        Reason::NotIp,
        Reason::Arp,
        Reason::TruncatedEth,
        Reason::TruncatedVlan,
        Reason::DoubleVlan,
        Reason::TruncatedIpv4,
        Reason::BadIpv4Header,
        Reason::BadIpv4Length,
        Reason::Ipv4Fragment,
        Reason::TruncatedIpv6,
        Reason::BadIpv6Length,
        Reason::Ipv6ExtHeader,
        Reason::Ipv6Fragment,
        Reason::NotUdpTcp,
        Reason::TruncatedL4,
        Reason::BadUdpLength,
        Reason::BadTcpHeader,
        Reason::NotService,
        Reason::NoReal,
        Reason::TcpNoFlow,
        Reason::ForwardDr,
        Reason::ForwardNat,
        Reason::ReverseNat,
        Reason::FlowExpired,
        Reason::NodestExpired,
        Reason::RedirectFailed,
        Reason::BadServiceConfig,
        Reason::FlowInsertFailed,
        Reason::BadIpv6Header,
        Reason::HbAccepted,
        Reason::HbBadLength,
        Reason::HbBadMagic,
        Reason::HbBadMac,
        Reason::HbReplay,
        Reason::HbUnknownSender,
        Reason::HbBadField,
        Reason::ArpReply,
        Reason::SipCallIdNew,
        Reason::SipCallIdHit,
        Reason::SipNoCallId,
        Reason::SipCallIdExpired,
        Reason::SipCallIdLearned,
        Reason::SipLearnNoTarget,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Reason::NotIp => "not_ip",
            Reason::Arp => "arp",
            Reason::TruncatedEth => "truncated_eth",
            Reason::TruncatedVlan => "truncated_vlan",
            Reason::DoubleVlan => "double_vlan",
            Reason::TruncatedIpv4 => "truncated_ipv4",
            Reason::BadIpv4Header => "bad_ipv4_header",
            Reason::BadIpv4Length => "bad_ipv4_length",
            Reason::Ipv4Fragment => "ipv4_fragment",
            Reason::TruncatedIpv6 => "truncated_ipv6",
            Reason::BadIpv6Length => "bad_ipv6_length",
            Reason::Ipv6ExtHeader => "ipv6_ext_header",
            Reason::Ipv6Fragment => "ipv6_fragment",
            Reason::NotUdpTcp => "not_udp_tcp",
            Reason::TruncatedL4 => "truncated_l4",
            Reason::BadUdpLength => "bad_udp_length",
            Reason::BadTcpHeader => "bad_tcp_header",
            Reason::NotService => "not_service",
            Reason::NoReal => "no_real",
            Reason::TcpNoFlow => "tcp_no_flow",
            Reason::ForwardDr => "forward_dr",
            Reason::ForwardNat => "forward_nat",
            Reason::ReverseNat => "reverse_nat",
            Reason::FlowExpired => "flow_expired",
            Reason::NodestExpired => "nodest_expired",
            Reason::RedirectFailed => "redirect_failed",
            Reason::BadServiceConfig => "bad_service_config",
            Reason::FlowInsertFailed => "flow_insert_failed",
            Reason::BadIpv6Header => "bad_ipv6_header",
            Reason::HbAccepted => "hb_accepted",
            Reason::HbBadLength => "hb_bad_length",
            Reason::HbBadMagic => "hb_bad_magic",
            Reason::HbBadMac => "hb_bad_mac",
            Reason::HbReplay => "hb_replay",
            Reason::HbUnknownSender => "hb_unknown_sender",
            Reason::HbBadField => "hb_bad_field",
            Reason::ArpReply => "arp_reply",
            Reason::SipCallIdNew => "sip_callid_new",
            Reason::SipCallIdHit => "sip_callid_hit",
            Reason::SipNoCallId => "sip_no_callid",
            Reason::SipCallIdExpired => "sip_callid_expired",
            Reason::SipCallIdLearned => "sip_callid_learned",
            Reason::SipLearnNoTarget => "sip_learn_no_target",
        }
    }
}

/// XDP verdicts (from the kernel's `enum xdp_action`).
pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// Map names in the object file, for the host's typed accessors.
pub mod maps {
    pub const SERVICES: &str = "SERVICES";
    pub const SERVICE_CONF: &str = "SERVICE_CONF";
    pub const REALS: &str = "REALS";
    pub const REAL_ACTIVE: &str = "REAL_ACTIVE";
    pub const REAL_LOAD: &str = "REAL_LOAD";
    pub const SCHED_STATE: &str = "SCHED_STATE";
    pub const WRR_SEQ: &str = "WRR_SEQ";
    pub const SHDH_TABLE: &str = "SHDH_TABLE";
    pub const MH_TABLE: &str = "MH_TABLE";
    pub const FLOWS: &str = "FLOWS";
    pub const NAT_REVERSE: &str = "NAT_REVERSE";
    pub const SETTINGS: &str = "SETTINGS";
    pub const IFACES: &str = "IFACES";
    pub const TX_PORTS: &str = "TX_PORTS";
    pub const REASONS: &str = "REASONS";
    pub const SERVICE_STATS: &str = "SERVICE_STATS";
    pub const REAL_STATS: &str = "REAL_STATS";
    pub const BENCH_FRAME: &str = "BENCH_FRAME";
    pub const BENCH_TARGET: &str = "BENCH_TARGET";
    pub const STAGES: &str = "STAGES";
    pub const PORT_FLAGS: &str = "PORT_FLAGS";
    pub const BENCH_COUNT: &str = "BENCH_COUNT";
    pub const BENCH_FWD: &str = "BENCH_FWD";
    pub const GLOBALS: &str = "GLOBALS";
    pub const HB_CONFIG: &str = "HB_CONFIG";
    pub const HB_NODES: &str = "HB_NODES";
    pub const HB_PEERS: &str = "HB_PEERS";
    pub const HB_EVENTS: &str = "HB_EVENTS";
    pub const FLOW_EVENTS: &str = "FLOW_EVENTS";
    pub const CALLS: &str = "CALLS";
    pub const CALL_EVENTS: &str = "CALL_EVENTS";
    pub const OWNED_VIPS: &str = "OWNED_VIPS";
}

/// Program names in the object file.
pub mod progs {
    /// The dispatcher attached to interfaces.
    pub const DISPATCH: &str = "tandem_xdp";
    /// The dispatcher's new-flow stage, entered by tail call (`STAGES[0]`).
    pub const NEW_FLOW: &str = "tandem_new_flow";
    /// The new-flow stage of load-aware services (`STAGES[1]`).
    pub const NEW_FLOW_LOAD: &str = "tandem_new_flow_load";
    /// The SIP stage (`STAGES[2]`): Call-ID scan, `CALLS` lookup, TCP learning.
    pub const SIP: &str = "tandem_sip";
    /// XDP_PASS, for the far end of veths that receive XDP_TX/REDIRECT.
    pub const PASS: &str = "tandem_pass";
    /// Benchmark floor: XDP_TX on the same packet.
    pub const TRIVIAL_TX: &str = "tandem_trivial_tx";
    /// Benchmark sink: counts (`BENCH_COUNT`) and drops.
    pub const SINK: &str = "tandem_sink";
    /// Benchmark baseline forwarder: redirects to `BENCH_FWD[0]`.
    pub const BENCH_FWD: &str = "tandem_bench_fwd";
    /// Benchmark wrapper: restores the frame then tail-calls `BENCH_TARGET[0]`.
    pub const BENCH_RESTORE: &str = "tandem_bench_restore";
}

/// Largest frame the benchmark wrapper restores.
pub const BENCH_FRAME_MAX: usize = 256;

/// Value of `BENCH_FRAME`: the frame the wrapper copies back each iteration.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BenchFrame {
    pub len: u32,
    /// If non-zero: before each iteration, a running counter is written
    /// (big-endian u32) at this offset of the frame, so that every
    /// iteration is a new flow (e.g. the source address).
    pub vary_off: u32,
    /// The running counter.
    pub seq: u32,
    pub _pad: u32,
    pub data: [u8; BENCH_FRAME_MAX],
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are #[repr(C)], plain old data with explicit padding.
    unsafe impl aya::Pod for ServiceKey {}
    unsafe impl aya::Pod for Service {}
    unsafe impl aya::Pod for RealServer {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FlowValue {}
    unsafe impl aya::Pod for NatReverse {}
    unsafe impl aya::Pod for SchedState {}
    unsafe impl aya::Pod for Settings {}
    unsafe impl aya::Pod for Iface {}
    unsafe impl aya::Pod for Counters {}
    unsafe impl aya::Pod for BenchFrame {}
    unsafe impl aya::Pod for Globals {}
    unsafe impl aya::Pod for RealLoad {}
    unsafe impl aya::Pod for FlowEvent {}
    unsafe impl aya::Pod for HbConfig {}
    unsafe impl aya::Pod for HbPeerKey {}
    unsafe impl aya::Pod for HbPeer {}
    unsafe impl aya::Pod for CallKey {}
    unsafe impl aya::Pod for CallValue {}
    unsafe impl aya::Pod for CallEvent {}
}

const _: () = {
    assert!(core::mem::size_of::<ServiceKey>() == 24);
    assert!(core::mem::size_of::<Service>() == 56);
    assert!(core::mem::size_of::<RealServer>() == 40);
    assert!(core::mem::size_of::<FlowKey>() == 40);
    assert!(core::mem::size_of::<FlowValue>() == 32);
    assert!(core::mem::size_of::<NatReverse>() == 8);
    assert!(core::mem::size_of::<SchedState>() == 8);
    assert!(core::mem::size_of::<Settings>() == 32);
    assert!(core::mem::size_of::<CallKey>() == 16);
    assert!(core::mem::size_of::<CallValue>() == 24);
    assert!(core::mem::size_of::<CallEvent>() == 160);
    assert!(core::mem::align_of::<CallEvent>() == 8);
    assert!(core::mem::size_of::<Iface>() == 8);
    assert!(core::mem::size_of::<Counters>() == 32);
    assert!(core::mem::size_of::<HbConfig>() == 24);
    assert!(core::mem::size_of::<HbPeer>() == 56);
    assert!(core::mem::size_of::<FlowEvent>() == 80);
    assert!(core::mem::size_of::<BenchFrame>() == 272);
};
