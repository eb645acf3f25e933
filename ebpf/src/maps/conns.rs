//! The connection table (`FLOWS`), the NAT reverse table and the ring of
//! connection-table changes for state sync. The program inserts, refreshes
//! and removes entries; the host reads, ages and syncs them.

use aya_ebpf::{
    macros::map,
    maps::{LruHashMap, RingBuf},
};
use tandem_common::*;

use super::sync_events_on;

/// The connection table; the host sets its size at load time.
#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowValue> =
    LruHashMap::with_max_entries(DEFAULT_FLOW_ENTRIES, 0);
/// NAT replies: real → client 5-tuple to the service and real server.
#[map]
pub static NAT_REVERSE: LruHashMap<FlowKey, NatReverse> =
    LruHashMap::with_max_entries(DEFAULT_FLOW_ENTRIES, 0);
/// New and expired flows, for state sync (when `GLOBALS.flow_events`).
#[map]
pub static FLOW_EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Pushes a connection-table change for state sync, if sync is on. A
/// separate BPF function writing straight into the ring buffer, so that
/// the event never sits on the dispatcher's stack.
#[inline(never)]
pub fn flow_event(key: &FlowKey, value: &FlowValue, kind: u32) {
    if !sync_events_on() {
        return;
    }
    if let Some(mut entry) = FLOW_EVENTS.reserve::<FlowEvent>(0) {
        let p = entry.as_mut_ptr();
        // SAFETY: the reservation holds one FlowEvent.
        unsafe {
            (*p).key = *key;
            (*p).value = *value;
            (*p).kind = kind;
            (*p)._pad = 0;
        }
        entry.submit(0);
    }
}
