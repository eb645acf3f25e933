//! Heartbeat detection: its settings (`HB_CONFIG`), and what the kernel
//! last heard from each sender on each path (`HB_PEERS`, `HB_EVENTS`).

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
