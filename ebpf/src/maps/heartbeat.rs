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
/// Every IPv4 VIP the pair may own (network-order address; the value is
/// 1): traffic to one of them that is not in `OWNED_VIPS` is dropped
/// (the VIP guard, `entry`).
#[map]
pub static VIPS: HashMap<u32, u32> = HashMap::with_max_entries(256, 0);
/// Bad-MAC heartbeats per configured sender (only configured senders: the
/// program looks the sender up first).
#[map]
pub static HB_BAD_MAC: HashMap<HbSenderKey, HbBadMac> = HashMap::with_max_entries(256, 0);
/// This node's echo identity (`crate::echo`).
#[map]
pub static ECHO_CONFIG: Array<EchoConfig> = Array::with_max_entries(1, 0);
/// The newest returned echo per path (`crate::echo`).
#[map]
pub static ECHO_RETURNS: Array<EchoRecord> = Array::with_max_entries(MAX_ECHO_PATHS, 0);
/// The dead-man switch over the daemon (`crate::deadman`).
#[map]
pub static DEAD_MAN: Array<DeadMan> = Array::with_max_entries(1, 0);
