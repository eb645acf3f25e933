//! The connection table (`FLOWS`), the NAT reverse table
//! (`NAT_REVERSE`) and the connection-table changes pushed for state sync
//! (`FLOW_EVENTS`).

/// Key of the connection table and of the NAT reverse table.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Host order.
    pub sport: u16,
    /// Host order.
    pub dport: u16,
    pub proto: u8,
    pub _pad1: u8,
    pub _pad2: u16,
}

impl FlowKey {
    #[inline(always)]
    pub fn new(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, proto: u8) -> FlowKey {
        FlowKey {
            src,
            dst,
            sport,
            dport,
            proto,
            _pad1: 0,
            _pad2: 0,
        }
    }
}

/// Flow flag: the active-connection count of its real server includes it.
pub const FLOW_COUNTED: u32 = 1 << 0;
/// Flow flag: a FIN or RST was seen (TCP); the short timeout applies.
pub const FLOW_CLOSING: u32 = 1 << 1;

/// Value of the connection table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowValue {
    /// `bpf_ktime_get_ns` of the last packet.
    pub last_seen_ns: u64,
    /// `bpf_ktime_get_ns` when the flow was scheduled.
    pub created_ns: u64,
    pub service_id: u32,
    /// Index of the real server within the service.
    pub real_idx: u32,
    /// `FLOW_*` bits.
    pub flags: u32,
    pub _pad: u32,
}

/// Value of the NAT reverse table (key: real → client 5-tuple).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NatReverse {
    pub service_id: u32,
    pub real_idx: u32,
}

/// `FlowEvent::kind`: a flow was scheduled and inserted.
pub const FLOW_EVENT_NEW: u32 = 1;
/// `FlowEvent::kind`: a flow expired (idle) or lost its real server.
pub const FLOW_EVENT_REMOVED: u32 = 2;

/// A connection-table change pushed to `FLOW_EVENTS` for state sync.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowEvent {
    pub key: FlowKey,
    pub value: FlowValue,
    pub kind: u32,
    pub _pad: u32,
}
