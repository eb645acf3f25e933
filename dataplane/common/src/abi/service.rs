//! Virtual services and their real servers: the `SERVICES` key, the
//! `SERVICE_CONF` and `REALS` values, scheduler and forwarding numbers,
//! service flags, reported load, scheduler state and the port pre-filter.

use super::*;

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
