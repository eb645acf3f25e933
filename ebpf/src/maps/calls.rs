//! The SIP call table (`CALLS`, by service and Call-ID hash) and the ring
//! of its changes for state sync. The SIP and new-flow stages write it;
//! the host reads, ages and syncs it.

use aya_ebpf::{
    macros::map,
    maps::{LruHashMap, RingBuf},
};
use tandem_common::*;

use super::sync_events_on;
use crate::stage::SIP_SCRATCH;

/// SIP calls: (service, Call-ID hash) to the real server (see `calls`);
/// the host sets its size at load time.
#[map]
pub static CALLS: LruHashMap<CallKey, CallValue> =
    LruHashMap::with_max_entries(DEFAULT_CALL_ENTRIES, 0);
/// New and replaced calls, for state sync (when `GLOBALS.flow_events`).
#[map]
pub static CALL_EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Pushes a `CALLS` change for state sync, if sync is on, with the
/// Call-ID text the SIP stage left in `SIP_SCRATCH` (the packet being
/// handled is the one that carried it). Like `flow_event`, a separate BPF
/// function writing straight into the ring buffer.
#[inline(never)]
pub fn call_event(key: &CallKey, value: &CallValue, kind: u32) {
    if !sync_events_on() {
        return;
    }
    let Some(s) = SIP_SCRATCH.get_ptr(0) else {
        return;
    };
    if let Some(mut entry) = CALL_EVENTS.reserve::<CallEvent>(0) {
        let p = entry.as_mut_ptr();
        // SAFETY: the reservation holds one CallEvent; s points to this
        // CPU's scratch value. The text is copied as 16 aligned words
        // (volatile, so that it stays word moves and not a memcpy call).
        unsafe {
            (*p).service_id = key.service_id;
            (*p).real_idx = value.real_idx;
            (*p).hash = key.hash;
            (*p).created_ns = value.created_ns;
            (*p).kind = kind;
            let len = (*s).scan.len;
            (*p).len = if len > 128 { 128 } else { len };
            let src = (*s).scan.text.as_ptr() as *const u64;
            let dst = (*p).callid.as_mut_ptr() as *mut u64;
            let mut i = 0;
            while i < 16 {
                core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i)));
                i += 1;
            }
        }
        entry.submit(0);
    }
}
