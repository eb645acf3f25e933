//! Heartbeat detection: the key and port, the configured senders, the
//! last heartbeat per sender and path, and the ring of sender state
//! changes; and the VIPs this node answers ARP for. The host writes the
//! configuration; the program records the peers.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, RingBuf},
};
use tandem_common::*;

#[map]
pub static HB_CONFIG: Array<HbConfig> = Array::with_max_entries(1, 0);
/// Configured heartbeat senders: node id to `heartbeat::Kind`.
#[map]
pub static HB_NODES: HashMap<u32, u32> = HashMap::with_max_entries(1024, 0);
/// Last heartbeat per sender and path.
#[map]
pub static HB_PEERS: HashMap<HbPeerKey, HbPeer> = HashMap::with_max_entries(4096, 0);
/// Sender state changes, for the control plane.
#[map]
pub static HB_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);
/// IPv4 VIPs this node owns (network-order address) to the MAC to answer with.
#[map]
pub static OWNED_VIPS: HashMap<u32, Iface> = HashMap::with_max_entries(256, 0);
