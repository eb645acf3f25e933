//! What the program counts: packets per reason, packets, bytes and new
//! flows per service and per real server (per CPU), and the active
//! connections per real server (`REAL_ACTIVE`, the program's half; the
//! host's adjustment `REAL_ACTIVE_ADJ` is only read here).

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray},
};
use tandem_common::*;

/// Active connections per real server as this program counts them (its
/// only writer: atomic adds, [`active_add`]).
#[map]
pub static REAL_ACTIVE: Array<u64> = Array::with_max_entries(MAX_REAL_SLOTS, 0);
/// The host's adjustment of `REAL_ACTIVE` (synced flows and calls): the
/// host is its only writer, this program only reads it when it schedules
/// (`tandem_common::active_count`).
#[map]
pub static REAL_ACTIVE_ADJ: Array<i64> = Array::with_max_entries(MAX_REAL_SLOTS, 0);
#[map]
pub static REASONS: PerCpuArray<u64> = PerCpuArray::with_max_entries(REASON_COUNT, 0);
#[map]
pub static SERVICE_STATS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(MAX_SERVICES, 0);
#[map]
pub static REAL_STATS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(MAX_REAL_SLOTS, 0);

/// Counts one packet for `reason`.
#[inline(always)]
pub fn count(reason: Reason) {
    if let Some(p) = REASONS.get_ptr_mut(reason as u32) {
        // SAFETY: per-CPU slot, no concurrent writer.
        unsafe { *p += 1 };
    }
}

/// Adds a packet (and maybe a new flow) to a per-CPU counter slot.
#[inline(always)]
pub fn add(map: &PerCpuArray<Counters>, idx: u32, bytes: u64, new_flow: bool) {
    if let Some(p) = map.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, no concurrent writer.
        unsafe {
            (*p).packets += 1;
            (*p).bytes += bytes;
            if new_flow {
                (*p).new_flows += 1;
            }
        }
    }
}

/// Adds `delta` to a real server's active-connection count (the
/// program's half, `REAL_ACTIVE`; the host never writes it).
#[inline(always)]
pub fn active_add(slot: u32, delta: u64) {
    if let Some(p) = REAL_ACTIVE.get_ptr_mut(slot) {
        // SAFETY: p points into the map value, valid and 8-byte aligned.
        // The BPF target has no `AtomicU64::fetch_add`; this is BPF_XADD.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, delta) };
    }
}
