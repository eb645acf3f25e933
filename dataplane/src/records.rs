//! The typed records the dataplane hands to the control plane, decoded
//! from the ABI structs the program writes: what the kernel heard from a
//! heartbeat sender ([`HeartbeatRecord`]), connection-table and SIP
//! call-table changes ([`FlowChange`], [`CallChange`]), and typed views of
//! a service as configured ([`ServiceFlag`], [`ServiceFlags`], and
//! accessors on [`ServiceImage`] and [`ServiceConfig`]).
//!
//! Decoding never panics: a record carrying a value this version does not
//! know (a sender kind, a change kind) is refused here (`None`) and
//! skipped by the reader, which counts it; a node state or real-server
//! state byte it does not know reads as `None`. Nothing here reads or
//! writes a map: the readers are in `events`, `heartbeats` and `services`.

use tandem_common::{
    heartbeat::Kind,
    node::NodeState,
    *,
};

use crate::{RealState, ServiceConfig, ServiceImage};

/// What the kernel last took from one heartbeat sender on one path
/// (`HB_PEERS`, and the record pushed to `HB_EVENTS` on a change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatRecord {
    pub node_id: u32,
    /// The source address it came from (a configured sender's).
    pub addr: std::net::IpAddr,
    /// Who sent it: the peer director or an IVR server.
    pub kind: Kind,
    /// The interface it came in on: the path, as this node names it.
    pub path_ifindex: u32,
    /// The sender's own number for the path.
    pub sender_path: u8,
    /// When it arrived (`bpf_ktime_get_ns`, CLOCK_MONOTONIC).
    pub last_seen_ns: u64,
    /// The sender's boot (drawn when its process started) and the boot
    /// that one replaced (0: none seen).
    pub boot_id: u64,
    pub prev_boot_id: u64,
    /// The sender's sequence within its boot.
    pub seq: u64,
    /// The sender's own clock when it sent it.
    pub sent_ns: u64,
    /// The sender's state; `None` for a state byte this version does not
    /// know (the program refuses such heartbeats, so not in practice).
    pub state: Option<NodeState>,
    pub epoch: u64,
    pub priority: u8,
    /// The load it reports: (active channels, capacity).
    pub load: (u32, u32),
    /// The sender is restarting and asks to be counted alive this long
    /// from `last_seen_ns` (`heartbeat::FLAG_RESTARTING`).
    pub restart_grace: Option<std::time::Duration>,
}

impl HeartbeatRecord {
    /// Decodes the program's record; `None` for a sender kind this version
    /// does not know.
    pub fn from_raw(p: &HbPeer) -> Option<HeartbeatRecord> {
        Some(HeartbeatRecord {
            node_id: p.node_id,
            addr: addr_of(&p.addr),
            kind: Kind::from_u8(p.kind)?,
            path_ifindex: p.ifindex,
            sender_path: p.path,
            last_seen_ns: p.last_seen_ns,
            boot_id: p.boot_id,
            prev_boot_id: p.prev_boot_id,
            seq: p.seq,
            sent_ns: p.sent_ns,
            state: NodeState::from_u8(p.state),
            epoch: p.epoch,
            priority: p.priority,
            load: (p.active_channels, p.capacity),
            restart_grace: (p.restart_grace_ms != 0)
                .then(|| std::time::Duration::from_millis(u64::from(p.restart_grace_ms))),
        })
    }
}

/// An address of the maps' 16-byte form: IPv4 when IPv4-mapped.
pub(crate) fn addr_of(b: &[u8; 16]) -> std::net::IpAddr {
    let v6 = std::net::Ipv6Addr::from(*b);
    match v6.to_ipv4_mapped() {
        Some(v4) => std::net::IpAddr::V4(v4),
        None => std::net::IpAddr::V6(v6),
    }
}

/// The bits the program keeps on a connection-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct FlowFlags(u32);

impl FlowFlags {
    /// Flags as carried elsewhere (state sync's flow records); bits this
    /// version does not know are kept, and dropped where they are written.
    pub const fn from_bits(bits: u32) -> FlowFlags {
        FlowFlags(bits)
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The active-connection count of its real server includes it.
    pub const fn counted(self) -> bool {
        self.0 & FLOW_COUNTED != 0
    }

    /// A FIN or RST was seen (TCP); the short timeout applies.
    pub const fn closing(self) -> bool {
        self.0 & FLOW_CLOSING != 0
    }
}

/// A connection-table change the program pushed (`FLOW_EVENTS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowChange {
    /// A flow was scheduled and inserted.
    New {
        key: FlowKey,
        /// This node's service id.
        service_id: u32,
        /// This node's slot of the real server within the service.
        real_slot: u32,
        /// When it was scheduled (`bpf_ktime_get_ns`).
        created_ns: u64,
        flags: FlowFlags,
    },
    /// A flow expired (idle) or lost its real server.
    Removed { key: FlowKey },
}

impl FlowChange {
    /// Decodes the program's record; `None` for a change kind this version
    /// does not know.
    pub fn from_raw(e: &FlowEvent) -> Option<FlowChange> {
        match e.kind {
            FLOW_EVENT_NEW => Some(FlowChange::New {
                key: e.key,
                service_id: e.value.service_id,
                real_slot: e.value.real_idx,
                created_ns: e.value.created_ns,
                flags: FlowFlags(e.value.flags),
            }),
            FLOW_EVENT_REMOVED => Some(FlowChange::Removed { key: e.key }),
            _ => None,
        }
    }

    /// The flow's 5-tuple.
    pub fn key(&self) -> &FlowKey {
        match self {
            FlowChange::New { key, .. } | FlowChange::Removed { key } => key,
        }
    }
}

/// A SIP call-table change the program pushed (`CALL_EVENTS`). The
/// Call-ID is the program's copy: trimmed, at most its first
/// `sip::MAX_CALLID_LEN` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallChange {
    /// A call was scheduled (or learned) and inserted.
    New {
        call_id: Vec<u8>,
        /// This node's service id.
        service_id: u32,
        /// This node's slot of the real server within the service.
        real_slot: u32,
        /// When it was scheduled (`bpf_ktime_get_coarse_ns`).
        created_ns: u64,
    },
    /// A call expired (idle) or lost its real server and was replaced.
    Removed {
        call_id: Vec<u8>,
        service_id: u32,
        real_slot: u32,
    },
    /// A call's end was seen (BYE, CANCEL, the answer to a BYE): it no
    /// longer counts as an active connection; its entry stays.
    Ended {
        call_id: Vec<u8>,
        service_id: u32,
        real_slot: u32,
        created_ns: u64,
    },
}

impl CallChange {
    /// Decodes the program's record; `None` for a change kind this version
    /// does not know.
    pub fn from_raw(e: &CallEvent) -> Option<CallChange> {
        let call_id = e.callid().to_vec();
        match e.kind {
            CALL_EVENT_NEW => Some(CallChange::New {
                call_id,
                service_id: e.service_id,
                real_slot: e.real_idx,
                created_ns: e.created_ns,
            }),
            CALL_EVENT_REMOVED => Some(CallChange::Removed {
                call_id,
                service_id: e.service_id,
                real_slot: e.real_idx,
            }),
            CALL_EVENT_ENDED => Some(CallChange::Ended {
                call_id,
                service_id: e.service_id,
                real_slot: e.real_idx,
                created_ns: e.created_ns,
            }),
            _ => None,
        }
    }

    /// The Call-ID text (the program's copy).
    pub fn call_id(&self) -> &[u8] {
        match self {
            CallChange::New { call_id, .. }
            | CallChange::Removed { call_id, .. }
            | CallChange::Ended { call_id, .. } => call_id,
        }
    }
}

/// One service flag (IPVS-style options of a virtual service).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceFlag {
    /// A flow whose real server is down is scheduled anew (`FLAG_EXPIRE_NODEST`).
    ExpireNodest,
    /// sh/dh/mh try the next table entries when the hashed real server is
    /// unavailable (`FLAG_SCHED_FALLBACK`).
    SchedFallback,
    /// sh/mh hash the source port too (`FLAG_SCHED_PORT`).
    SchedPort,
    /// UDP: every datagram scheduled on its own (`FLAG_ONE_PACKET`).
    OnePacket,
    /// Load-aware scheduling from the IVR servers' reports (`FLAG_REPORTED_LOAD`).
    ReportedLoad,
    /// SIP Call-ID persistence (`FLAG_SIP_PERSIST`).
    SipPersist,
}

impl ServiceFlag {
    pub const ALL: [ServiceFlag; 6] = [
        ServiceFlag::ExpireNodest,
        ServiceFlag::SchedFallback,
        ServiceFlag::SchedPort,
        ServiceFlag::OnePacket,
        ServiceFlag::ReportedLoad,
        ServiceFlag::SipPersist,
    ];

    /// Its bit in `Service::flags`.
    pub const fn bit(self) -> u16 {
        match self {
            ServiceFlag::ExpireNodest => FLAG_EXPIRE_NODEST,
            ServiceFlag::SchedFallback => FLAG_SCHED_FALLBACK,
            ServiceFlag::SchedPort => FLAG_SCHED_PORT,
            ServiceFlag::OnePacket => FLAG_ONE_PACKET,
            ServiceFlag::ReportedLoad => FLAG_REPORTED_LOAD,
            ServiceFlag::SipPersist => FLAG_SIP_PERSIST,
        }
    }

    /// Its name in the configuration file.
    pub const fn name(self) -> &'static str {
        match self {
            ServiceFlag::ExpireNodest => "expire_nodest",
            ServiceFlag::SchedFallback => "sched_fallback",
            ServiceFlag::SchedPort => "sched_port",
            ServiceFlag::OnePacket => "one_packet",
            ServiceFlag::ReportedLoad => "reported_load",
            ServiceFlag::SipPersist => "sip_persist",
        }
    }
}

/// The flags of a service (`Service::flags`, `ServiceConfig::flags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct ServiceFlags(u16);

impl ServiceFlags {
    pub const fn from_bits(bits: u16) -> ServiceFlags {
        ServiceFlags(bits)
    }

    pub const fn bits(self) -> u16 {
        self.0
    }

    pub const fn contains(self, flag: ServiceFlag) -> bool {
        self.0 & flag.bit() != 0
    }

    /// The flags set, in [`ServiceFlag::ALL`] order (unknown bits are not
    /// listed).
    pub fn iter(self) -> impl Iterator<Item = ServiceFlag> {
        ServiceFlag::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl From<&Service> for ServiceFlags {
    fn from(s: &Service) -> ServiceFlags {
        ServiceFlags(s.flags)
    }
}

impl ServiceConfig {
    pub fn service_flags(&self) -> ServiceFlags {
        ServiceFlags(self.flags)
    }

    pub fn has_flag(&self, flag: ServiceFlag) -> bool {
        self.service_flags().contains(flag)
    }
}

impl RealState {
    /// The state of a `RealServer::state` byte; `None` for one this
    /// version does not know.
    pub fn from_raw(v: u8) -> Option<RealState> {
        match v {
            REAL_UP => Some(RealState::Up),
            REAL_DRAINING => Some(RealState::Draining),
            REAL_DOWN => Some(RealState::Down),
            _ => None,
        }
    }

    /// Its name in the configuration file and the admin API.
    pub const fn name(self) -> &'static str {
        match self {
            RealState::Up => "up",
            RealState::Draining => "draining",
            RealState::Down => "down",
        }
    }
}

/// Typed views of what is written for a service. An image built by
/// [`ServiceImage::build`] always holds known values; `None` is for one
/// whose bytes were changed by hand since.
impl ServiceImage {
    pub fn scheduler(&self) -> Option<Scheduler> {
        Scheduler::from_u8(self.service.scheduler)
    }

    pub fn forward(&self) -> Option<Forward> {
        Forward::from_u8(self.service.forward)
    }

    pub fn flags(&self) -> ServiceFlags {
        ServiceFlags(self.service.flags)
    }

    pub fn has_flag(&self, flag: ServiceFlag) -> bool {
        self.flags().contains(flag)
    }

    /// The state of real server slot `slot`; `None` for a slot out of
    /// range or a state byte this version does not know.
    pub fn real_state(&self, slot: usize) -> Option<RealState> {
        RealState::from_raw(self.reals.get(slot)?.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_records_decode_known_values_and_refuse_unknown_kinds() {
        let raw = HbPeer {
            last_seen_ns: 7,
            boot_id: 11,
            prev_boot_id: 12,
            seq: 8,
            epoch: 9,
            sent_ns: 10,
            addr: crate::config::addr16("198.18.0.7".parse().unwrap()),
            node_id: 2,
            ifindex: 4,
            active_channels: 3,
            capacity: 30,
            state: NodeState::Active as u8,
            priority: 100,
            kind: Kind::Ivr as u8,
            path: 1,
            restart_grace_ms: 0,
            _pad: 0,
        };
        let r = HeartbeatRecord::from_raw(&raw).expect("known kind");
        assert_eq!((r.node_id, r.kind, r.path_ifindex, r.sender_path), (2, Kind::Ivr, 4, 1));
        assert_eq!((r.last_seen_ns, r.seq, r.sent_ns, r.epoch, r.priority), (7, 8, 10, 9, 100));
        assert_eq!((r.boot_id, r.prev_boot_id, r.addr), (11, 12, "198.18.0.7".parse().unwrap()));
        let v6 = HbPeer { addr: crate::config::addr16("2001:2::7".parse().unwrap()), ..raw };
        assert_eq!(HeartbeatRecord::from_raw(&v6).map(|r| r.addr), Some("2001:2::7".parse().unwrap()));
        assert_eq!((r.state, r.load), (Some(NodeState::Active), (3, 30)));
        assert_eq!(HeartbeatRecord::from_raw(&HbPeer { state: 42, ..raw }).map(|r| r.state), Some(None));
        assert_eq!(HeartbeatRecord::from_raw(&HbPeer { kind: 0, ..raw }), None);
        assert_eq!(r.restart_grace, None);
        let restarting = HeartbeatRecord::from_raw(&HbPeer { restart_grace_ms: 4000, ..raw }).unwrap();
        assert_eq!(restarting.restart_grace, Some(std::time::Duration::from_secs(4)));
        assert_eq!(HeartbeatRecord::from_raw(&HbPeer { kind: 9, ..raw }), None);
    }

    #[test]
    fn flow_changes_decode_by_kind() {
        let key = FlowKey::new([1; 16], [2; 16], 3, 4, PROTO_UDP);
        let value = FlowValue { last_seen_ns: 1, created_ns: 2, service_id: 3, real_idx: 4, flags: FLOW_COUNTED, _pad: 0 };
        let new = FlowChange::from_raw(&FlowEvent { key, value, kind: FLOW_EVENT_NEW, _pad: 0 });
        let Some(FlowChange::New { service_id: 3, real_slot: 4, created_ns: 2, flags, .. }) = new else {
            panic!("{new:?}");
        };
        assert!(flags.counted() && !flags.closing());
        assert_eq!(flags.bits(), FLOW_COUNTED);
        let removed = FlowChange::from_raw(&FlowEvent { key, value, kind: FLOW_EVENT_REMOVED, _pad: 0 });
        assert_eq!(removed, Some(FlowChange::Removed { key }));
        assert_eq!(removed.map(|c| *c.key()), Some(key));
        assert_eq!(FlowChange::from_raw(&FlowEvent { key, value, kind: 0, _pad: 0 }), None);
    }

    #[test]
    fn call_changes_carry_the_call_id_within_its_length() {
        let mut callid = [b'x'; 128];
        callid[..3].copy_from_slice(b"abc");
        let raw = CallEvent { service_id: 1, real_idx: 2, hash: 3, created_ns: 4, kind: CALL_EVENT_NEW, len: 3, callid };
        assert_eq!(
            CallChange::from_raw(&raw),
            Some(CallChange::New { call_id: b"abc".to_vec(), service_id: 1, real_slot: 2, created_ns: 4 })
        );
        let removed = CallChange::from_raw(&CallEvent { kind: CALL_EVENT_REMOVED, ..raw }).expect("known kind");
        assert_eq!(removed.call_id(), b"abc");
        // A length past the buffer reads the whole buffer, never beyond.
        let long = CallChange::from_raw(&CallEvent { len: 4000, ..raw }).expect("known kind");
        assert_eq!(long.call_id().len(), 128);
        assert_eq!(CallChange::from_raw(&CallEvent { kind: 7, ..raw }), None);
    }

    #[test]
    fn service_flags_name_their_bits() {
        let flags = ServiceFlags::from_bits(FLAG_SIP_PERSIST | FLAG_REPORTED_LOAD | 0x8000);
        assert!(flags.contains(ServiceFlag::SipPersist) && flags.contains(ServiceFlag::ReportedLoad));
        assert!(!flags.contains(ServiceFlag::OnePacket));
        assert_eq!(flags.iter().collect::<Vec<_>>(), [ServiceFlag::ReportedLoad, ServiceFlag::SipPersist]);
        let all = ServiceFlag::ALL.iter().fold(0, |a, f| a | f.bit());
        assert_eq!(all, FLAGS_KNOWN);
    }

    #[test]
    fn real_states_decode_and_unknown_bytes_are_none() {
        for s in [RealState::Up, RealState::Draining, RealState::Down] {
            assert_eq!(RealState::from_raw(s.raw()), Some(s));
        }
        assert_eq!(RealState::from_raw(3), None);
        assert_eq!(RealState::Draining.name(), "draining");
    }
}
