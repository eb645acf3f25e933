//! Virtual services, their real servers, the schedulers' tables and state,
//! and what the host derives from the set of services (the port
//! pre-filter, `GLOBALS`). The host writes all of it except `SCHED_STATE`'s
//! cursors, which the schedulers advance.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap},
};
use tandem_common::*;

#[map]
pub static SERVICES: HashMap<ServiceKey, u32> = HashMap::with_max_entries(MAX_SERVICES, 0);
#[map]
pub static SERVICE_CONF: Array<Service> = Array::with_max_entries(MAX_SERVICES, 0);
#[map]
pub static REALS: Array<RealServer> = Array::with_max_entries(MAX_REAL_SLOTS, 0);
#[map]
pub static REAL_LOAD: Array<RealLoad> = Array::with_max_entries(MAX_REAL_SLOTS, 0);
#[map]
pub static SCHED_STATE: Array<SchedState> = Array::with_max_entries(MAX_SERVICES, 0);
#[map]
pub static WRR_SEQ: Array<u32> = Array::with_max_entries(MAX_SERVICES * WRR_SEQ_MAX, 0);
#[map]
pub static SHDH_TABLE: Array<u32> = Array::with_max_entries(MAX_SERVICES * SHDH_BUCKETS, 0);
#[map]
pub static MH_TABLE: Array<u32> = Array::with_max_entries(MH_SLOTS * MH_MAX_SIZE, 0);
#[map]
pub static PORT_FLAGS: Array<u32> = Array::with_max_entries(PORT_FLAGS_ENTRIES, 0);
#[map]
pub static GLOBALS: Array<Globals> = Array::with_max_entries(1, 0);
/// Every service address and guarded VIP, as a one-hash Bloom filter
/// (`tandem_common::VipFilter`).
#[map]
pub static VIP_FILTER: Array<VipFilter> = Array::with_max_entries(1, 0);

/// What the VIP filter says of `addr`: `None` if it is no service's
/// address and no VIP (the filter's bit is clear); otherwise whether this
/// node owns every guarded VIP (`VipFilter::all_owned`). Without the map
/// entry: may be a VIP, nothing owned for sure.
#[inline(always)]
pub fn vip_filter(addr: &[u8; 16]) -> Option<bool> {
    match VIP_FILTER.get(0) {
        Some(f) if !f.may_contain(addr) => None,
        Some(f) => Some(f.all_owned != 0),
        None => Some(false),
    }
}

/// Service `id`, if it is configured.
#[inline(always)]
pub fn service(id: u32) -> Option<&'static Service> {
    if id >= MAX_SERVICES {
        return None;
    }
    match SERVICE_CONF.get(id) {
        Some(s) if s.id == id && s.n_reals <= MAX_REALS => Some(s),
        _ => None,
    }
}

/// True if flow and call changes go to their ring buffers (state sync on).
#[inline(always)]
pub fn sync_events_on() -> bool {
    matches!(GLOBALS.get(0), Some(g) if g.flow_events != 0)
}
