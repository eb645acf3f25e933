//! The maps, one per table of `tandem_common::abi::maps`. The host
//! (`tandem_dataplane`) is the only writer of configuration maps and of
//! `REAL_ACTIVE_ADJ`; this program writes flows, counters (`REAL_ACTIVE`
//! among them) and scheduler state.

use aya_ebpf::{
    macros::map,
    maps::{Array, DevMapHash, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use tandem_common::*;

use crate::parse::Pkt;

/// Value of `SIP_SCRATCH`: the scanner's state and the copy of the
/// payload window it reads (map memory, not stack: 1 KiB would not fit,
/// and the verifier does not track values stored here).
#[repr(C, align(8))]
pub struct SipScratch {
    pub scan: tandem_common::sip::Scanner,
    pub buf: [u8; tandem_common::sip::SIP_SCAN_LEN],
}

#[map]
pub static SERVICES: HashMap<ServiceKey, u32> = HashMap::with_max_entries(MAX_SERVICES, 0);
#[map]
pub static SERVICE_CONF: Array<Service> = Array::with_max_entries(MAX_SERVICES, 0);
#[map]
pub static REALS: Array<RealServer> = Array::with_max_entries(MAX_REAL_SLOTS, 0);
/// Active connections per real server as this program counts them (its
/// only writer: atomic adds, `dispatch::active_add`).
#[map]
pub static REAL_ACTIVE: Array<u64> = Array::with_max_entries(MAX_REAL_SLOTS, 0);
/// The host's adjustment of `REAL_ACTIVE` (synced flows and calls): the
/// host is its only writer, this program only reads it when it schedules
/// (`tandem_common::active_count`).
#[map]
pub static REAL_ACTIVE_ADJ: Array<i64> = Array::with_max_entries(MAX_REAL_SLOTS, 0);
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
/// The connection table; the host sets its size at load time.
#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowValue> =
    LruHashMap::with_max_entries(DEFAULT_FLOW_ENTRIES, 0);
/// NAT replies: real → client 5-tuple to the service and real server.
#[map]
pub static NAT_REVERSE: LruHashMap<FlowKey, NatReverse> =
    LruHashMap::with_max_entries(DEFAULT_FLOW_ENTRIES, 0);
#[map]
pub static PORT_FLAGS: Array<u32> = Array::with_max_entries(PORT_FLAGS_ENTRIES, 0);
#[map]
pub static GLOBALS: Array<Globals> = Array::with_max_entries(1, 0);
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
/// New and expired flows, for state sync (when `GLOBALS.flow_events`).
#[map]
pub static FLOW_EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);
/// SIP calls: (service, Call-ID hash) to the real server (see `sip`);
/// the host sets its size at load time.
#[map]
pub static CALLS: LruHashMap<CallKey, CallValue> =
    LruHashMap::with_max_entries(DEFAULT_CALL_ENTRIES, 0);
/// New and replaced calls, for state sync (when `GLOBALS.flow_events`).
#[map]
pub static CALL_EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);
/// Per-CPU scratch of the SIP stage: the payload window and the scanner.
#[map]
pub static SIP_SCRATCH: PerCpuArray<SipScratch> = PerCpuArray::with_max_entries(1, 0);
/// IPv4 VIPs this node owns (network-order address) to the MAC to answer with.
#[map]
pub static OWNED_VIPS: HashMap<u32, Iface> = HashMap::with_max_entries(256, 0);
#[map]
pub static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);
#[map]
pub static IFACES: HashMap<u32, Iface> = HashMap::with_max_entries(64, 0);
#[map]
pub static TX_PORTS: DevMapHash = DevMapHash::with_max_entries(64, 0);
#[map]
pub static REASONS: PerCpuArray<u64> = PerCpuArray::with_max_entries(REASON_COUNT, 0);
#[map]
pub static SERVICE_STATS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(MAX_SERVICES, 0);
#[map]
pub static REAL_STATS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(MAX_REAL_SLOTS, 0);
/// Later stages of the dispatcher, entered by tail call: `STAGE_NEW_FLOW`
/// schedules a new flow. A separate program keeps the verifier's work
/// linear: the schedulers' loops are verified once, not once per parse path.
#[map]
pub static STAGES: ProgramArray = ProgramArray::with_max_entries(4, 0);
pub const STAGE_NEW_FLOW: u32 = 0;
/// The same for services with `FLAG_REPORTED_LOAD`.
pub const STAGE_NEW_FLOW_LOAD: u32 = 1;
/// The SIP stage (`sip::run`): Call-ID scan, `CALLS`, TCP learning.
pub const STAGE_SIP: u32 = 2;
/// Per-CPU scratch of the least-connection schedulers.
#[map]
pub static LEAST_SCRATCH: PerCpuArray<tandem_common::sched::LeastScratch> =
    PerCpuArray::with_max_entries(1, 0);
/// Per-CPU scratch space for the parsed packet (see `parse::Pkt`).
#[map]
pub static SCRATCH: PerCpuArray<Pkt> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static BENCH_FRAME: Array<BenchFrame> = Array::with_max_entries(1, 0);
#[map]
pub static BENCH_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static BENCH_FWD: Array<u32> = Array::with_max_entries(1, 0);
#[map]
pub static BENCH_TARGET: ProgramArray = ProgramArray::with_max_entries(1, 0);

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

/// Pushes a connection-table change for state sync, if sync is on. A
/// separate BPF function writing straight into the ring buffer, so that
/// the event never sits on the dispatcher's stack.
#[inline(never)]
pub fn flow_event(key: &FlowKey, value: &FlowValue, kind: u32) {
    match GLOBALS.get(0) {
        Some(g) if g.flow_events != 0 => {}
        _ => return,
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

/// Pushes a `CALLS` change for state sync, if sync is on, with the
/// Call-ID text the SIP stage left in `SIP_SCRATCH` (the packet being
/// handled is the one that carried it). Like `flow_event`, a separate BPF
/// function writing straight into the ring buffer.
#[inline(never)]
pub fn call_event(key: &CallKey, value: &CallValue, kind: u32) {
    match GLOBALS.get(0) {
        Some(g) if g.flow_events != 0 => {}
        _ => return,
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
