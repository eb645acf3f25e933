//! Heartbeat detection: the port, the configured senders (each bound to
//! its address, path and key), the last heartbeat taken per sender, and
//! the ring of sender state changes; and the VIPs this node answers ARP
//! for. The host writes the configuration and the senders; the program
//! records the peers.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use tandem_common::*;

/// `BPF_F_MMAPABLE` (linux/bpf.h).
const BPF_F_MMAPABLE: u32 = 1024;

#[map]
pub static HB_CONFIG: Array<HbConfig> = Array::with_max_entries(1, 0);
/// Configured heartbeat senders: (node id, source address) to kind,
/// required interface and key.
#[map]
pub static HB_SENDERS: HashMap<HbSenderKey, HbSender> = HashMap::with_max_entries(4096, 0);
/// Last heartbeat taken per sender (one entry per `HB_SENDERS` entry).
#[map]
pub static HB_PEERS: HashMap<HbSenderKey, HbPeer> = HashMap::with_max_entries(4096, 0);
/// Where the program builds the record it writes (a per-CPU slot, not
/// its stack: the dispatcher's and the heartbeat stage's frames together
/// must fit the verifier's 512 bytes).
#[map]
pub static HB_SCRATCH: PerCpuArray<HbPeer> = PerCpuArray::with_max_entries(1, 0);
/// Sender state changes, for the control plane.
#[map]
pub static HB_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);
/// IPv4 VIPs this node owns (network-order address) to the MAC to answer with.
#[map]
pub static OWNED_VIPS: HashMap<u32, Iface> = HashMap::with_max_entries(256, 0);
/// Bad-MAC heartbeats per configured sender (only configured senders: the
/// program looks the sender up first).
#[map]
pub static HB_BAD_MAC: HashMap<HbSenderKey, HbBadMac> = HashMap::with_max_entries(256, 0);
/// The dead-man switch over the daemon (`crate::deadman`). Mmapable: the
/// daemon stamps it with one store to shared memory, no syscall, and
/// never overwrites the latch or the exit flag the kernel writes.
#[map]
pub static DEAD_MAN: Array<DeadMan> = Array::with_max_entries(1, BPF_F_MMAPABLE);
/// Addresses the program treats as VIPs (16 bytes, IPv4-mapped) to
/// `VIP_SERVICE | VIP_DECLARED | VIP_OWNED` (`tandem_common::guard`),
/// looked up only while `GLOBALS.vip_guard` is set (`crate::deadman`).
#[map]
pub static VIPS: HashMap<[u8; 16], u32> = HashMap::with_max_entries(1024, 0);
/// This node's echo identity (`crate::echo`).
#[map]
pub static ECHO_ID: Array<EchoId> = Array::with_max_entries(1, 0);
/// Returns of this node's echo requests, by path (`crate::echo`).
#[map]
pub static ECHO_RETURNS: Array<EchoSlot> = Array::with_max_entries(ECHO_PATHS, 0);
