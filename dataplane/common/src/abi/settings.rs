//! Node-wide values: timeouts (`SETTINGS`), what the host derives from
//! the set of services (`GLOBALS`), and the interfaces frames leave by
//! (`IFACES`).

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
