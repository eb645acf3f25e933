//! The SIP call table (`CALLS`) and its changes pushed for state sync
//! (`CALL_EVENTS`).

/// Key of the SIP call table `CALLS`: a Call-ID (its
/// `sip::callid_hash`) within one virtual service.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct CallKey {
    pub service_id: u32,
    pub _pad: u32,
    pub hash: u64,
}

impl CallKey {
    #[inline(always)]
    pub fn new(service_id: u32, hash: u64) -> CallKey {
        CallKey {
            service_id,
            _pad: 0,
            hash,
        }
    }
}

/// Call flag: the active-connection count of its real server includes it.
pub const CALL_COUNTED: u32 = 1 << 0;
/// Call flag: learned from a TCP connection (not scheduled for a datagram).
pub const CALL_LEARNED: u32 = 1 << 1;

/// Value of `CALLS`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CallValue {
    /// `bpf_ktime_get_coarse_ns` of the last message of the call.
    pub last_seen_ns: u64,
    /// When the call was scheduled (or learned).
    pub created_ns: u64,
    /// Index of the real server within the service.
    pub real_idx: u32,
    /// `CALL_*` bits.
    pub flags: u32,
}

/// `CallEvent::kind`: a call was scheduled (or learned) and inserted.
pub const CALL_EVENT_NEW: u32 = 1;
/// `CallEvent::kind`: a call expired (idle) or lost its real server and
/// was replaced.
pub const CALL_EVENT_REMOVED: u32 = 2;
/// `CallEvent::kind`: a call's end was seen (a BYE, a CANCEL, the answer
/// to a BYE): no longer counted active; its entry stays.
pub const CALL_EVENT_ENDED: u32 = 3;

/// A `CALLS` change pushed to `CALL_EVENTS` for state sync (when
/// `Globals::flow_events` is on).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallEvent {
    pub service_id: u32,
    pub real_idx: u32,
    pub hash: u64,
    pub created_ns: u64,
    /// `CALL_EVENT_*`.
    pub kind: u32,
    /// Bytes of `callid` in use (at most `sip::MAX_CALLID_LEN`).
    pub len: u32,
    /// The Call-ID (trimmed, first 128 bytes); bytes past `len` are unspecified.
    pub callid: [u8; 128],
}

impl CallEvent {
    /// The Call-ID text.
    pub fn callid(&self) -> &[u8] {
        let n = if self.len as usize > self.callid.len() { self.callid.len() } else { self.len as usize };
        &self.callid[..n]
    }
}
