//! Node-wide settings and the interfaces frames may leave by: timeouts,
//! the MAC of each interface, and the redirect devmap. Written by the host
//! at start-up; read by every stage.

use aya_ebpf::{
    macros::map,
    maps::{Array, DevMapHash, HashMap},
};
use tandem_common::*;

#[map]
pub static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);
#[map]
pub static IFACES: HashMap<u32, Iface> = HashMap::with_max_entries(64, 0);
#[map]
pub static TX_PORTS: DevMapHash = DevMapHash::with_max_entries(64, 0);
