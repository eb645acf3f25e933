//! Heartbeat detection: its settings (`HB_CONFIG`), the senders it takes
//! heartbeats from, each bound to its address, path and key
//! (`HB_SENDERS`), and what the kernel last took from each (`HB_PEERS`,
//! `HB_EVENTS`); the echo identity (`ECHO_CONFIG`) and the echoes that
//! came back (`ECHO_RETURNS`). Key bytes live in `HB_SENDERS` only; no
//! record the kernel writes carries one.

/// Heartbeat settings (value 0 of `HB_CONFIG`): the UDP port; port 0
/// disables heartbeat detection. (Keys are per sender, in `HB_SENDERS`.)
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HbConfig {
    pub port: u16,
    pub _pad: [u16; 3],
}

/// The dead-man switch over the daemon (value 0 of `DEAD_MAN`): the
/// daemon writes `stamp_ns` (CLOCK_MONOTONIC, the clock of
/// `bpf_ktime_get_ns`) every loop turn. With `budget_ns` ≠ 0, a stamp
/// older than the budget *fences* the node: the program stops answering
/// ARP for the VIPs and drops traffic to them, and latches `tripped_ns`
/// (the time it first saw the stale stamp) until the daemon clears it.
/// `tgid` is the armed daemon's process (0: none); when its thread-group
/// leader exits (`sched_process_exit`, program `tandem_exit_fence`) the
/// kernel sets `exited` and the node is fenced at once, stamp or not.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeadMan {
    pub stamp_ns: u64,
    pub budget_ns: u64,
    pub tripped_ns: u64,
    pub tgid: u32,
    pub exited: u32,
}

/// Heartbeats that failed authentication from a configured sender's
/// address (value of `HB_BAD_MAC`, keyed like `HB_SENDERS`): the sender is
/// alive but holds another key — a misconfiguration, not silence.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HbBadMac {
    pub count: u64,
    /// `bpf_ktime_get_ns` of the last one.
    pub last_ns: u64,
    /// The interface it came in on.
    pub ifindex: u32,
    pub _pad: u32,
}

/// A heartbeat sender as the kernel tells it: the node id it claims and
/// the source address it must come from (16 bytes, IPv4-mapped). Key of
/// `HB_SENDERS` and of `HB_PEERS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct HbSenderKey {
    pub node_id: u32,
    pub addr: [u8; 16],
}

/// A configured sender (value of `HB_SENDERS`): what it is, the interface
/// its heartbeats must come in on (0: any) and the SipHash keys they are
/// authenticated with (each as its two little-endian halves): the current
/// key, and during a key rotation the next one (`n0`, `n1`; both 0: none,
/// an all-zero key is never configured). A heartbeat is taken under the
/// current key or, failing that, the next. `Debug` prints no key bytes.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct HbSender {
    pub k0: u64,
    pub k1: u64,
    /// The next key's halves (both 0: no next key).
    pub n0: u64,
    pub n1: u64,
    pub ifindex: u32,
    /// Silence of the sender's current boot, in µs, after which a new
    /// boot may replace it (`heartbeat::window::admit`'s restart gap).
    pub restart_gap_us: u32,
    /// `heartbeat::Kind` as u8.
    pub kind: u8,
    pub _pad: [u8; 7],
}

impl core::fmt::Debug for HbSender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HbSender")
            .field("ifindex", &self.ifindex)
            .field("restart_gap_us", &self.restart_gap_us)
            .field("kind", &self.kind)
            .field("next_key", &(self.n0 | self.n1 != 0))
            .finish_non_exhaustive()
    }
}

/// What the kernel last took from a sender (value of `HB_PEERS`), also
/// the record pushed to `HB_EVENTS` when the sender's boot, state, epoch
/// or priority changed (or on first contact). `last_seen_ns`, `boot_id`,
/// `prev_boot_id` and `seq` are the admission window
/// (`heartbeat::Window`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HbPeer {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when it arrived.
    pub last_seen_ns: u64,
    /// The sender's boot id, and the one it replaced (0: none).
    pub boot_id: u64,
    pub prev_boot_id: u64,
    pub seq: u64,
    pub epoch: u64,
    /// The sender's own clock.
    pub sent_ns: u64,
    /// The source address it came from (IPv4-mapped).
    pub addr: [u8; 16],
    pub node_id: u32,
    /// The interface it came in on.
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
    /// The restart grace the heartbeat asked for, in ms (0: not
    /// restarting; see `heartbeat::FLAG_RESTARTING`).
    pub restart_grace_ms: u16,
    pub _pad: u16,
}

/// Heartbeat paths whose echo returns the program records (`ECHO_RETURNS`
/// is indexed by the path number the echo carries).
pub const MAX_ECHO_PATHS: u32 = 8;

/// This node's echo identity (value 0 of `ECHO_CONFIG`): its own node id,
/// which its returning echoes carry, and the peer's, whose `HB_SENDERS`
/// entries give the address a returning echo must come from and the key
/// it is verified with. `node_id` 0: no echo of this node is taken back
/// (echo requests of the peer are reflected regardless).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EchoConfig {
    pub node_id: u32,
    pub peer_id: u32,
}

/// The newest of this node's echoes that came back on one path (value of
/// `ECHO_RETURNS`, by path number): its sequence, when it arrived
/// (`bpf_ktime_get_ns`), and how many were recorded in all.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EchoRecord {
    pub seq: u64,
    pub at_ns: u64,
    pub count: u64,
}
