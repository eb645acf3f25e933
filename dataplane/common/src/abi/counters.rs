//! What the program counts: packets and bytes per service and real
//! server (`SERVICE_STATS`, `REAL_STATS`), packets per [`Reason`]
//! (`REASONS`), and active connections per real server (`REAL_ACTIVE`
//! with the host's `REAL_ACTIVE_ADJ`, see [`active_count`]).

/// The active-connection count of a real server slot, from its two
/// halves, each with one writer:
///
/// - `kernel`: `REAL_ACTIVE`, written only by the program (atomic adds:
///   +1 when it records a counted flow or call, -1 when it ends one);
/// - `adj`: `REAL_ACTIVE_ADJ`, written only by the host (flows and calls
///   learned by state sync, removed ones, counts set by tests).
///
/// The program's count may go below zero (it ends a flow the host
/// counted), so both are read as signed and the sum is never below 0.
/// The schedulers (lc, wlc, sed, nq) and the host's reports read this.
#[inline(always)]
pub fn active_count(kernel: u64, adj: i64) -> u64 {
    let n = kernel.wrapping_add(adj as u64) as i64;
    if n < 0 { 0 } else { n as u64 }
}

/// Per-service and per-real-server counters (per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    pub _pad: u64,
}

/// Why a packet took the path it took: indices of the per-CPU `REASONS`
/// array. `PASS` reasons hand the frame to the stack untouched.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// PASS: not IPv4/IPv6/ARP.
    NotIp = 0,
    /// PASS: ARP (not for an owned VIP).
    Arp = 1,
    /// PASS: shorter than an Ethernet header.
    TruncatedEth = 2,
    /// PASS: 802.1Q tag cut short.
    TruncatedVlan = 3,
    /// PASS: a second VLAN tag (QinQ is not dispatched).
    DoubleVlan = 4,
    /// PASS: IPv4 header cut short.
    TruncatedIpv4 = 5,
    /// PASS: IPv4 version or IHL invalid (IHL < 5).
    BadIpv4Header = 6,
    /// PASS: IPv4 total length smaller than the header or larger than the frame.
    BadIpv4Length = 7,
    /// PASS: an IPv4 fragment (MF set or offset non-zero).
    Ipv4Fragment = 8,
    /// PASS: IPv6 header cut short.
    TruncatedIpv6 = 9,
    /// PASS: IPv6 payload length larger than the frame.
    BadIpv6Length = 10,
    /// PASS: IPv6 extension header (not dispatched).
    Ipv6ExtHeader = 11,
    /// PASS: IPv6 fragment header.
    Ipv6Fragment = 12,
    /// PASS: neither UDP nor TCP.
    NotUdpTcp = 13,
    /// PASS: UDP or TCP header cut short.
    TruncatedL4 = 14,
    /// PASS: UDP length field < 8 (zero-length UDP included) or beyond the IP payload.
    BadUdpLength = 15,
    /// PASS: TCP data offset < 5 or beyond the IP payload.
    BadTcpHeader = 16,
    /// PASS: not addressed to a virtual service and not a NAT reply.
    NotService = 17,
    /// DROP: a virtual service with no real server available for a new flow.
    NoReal = 18,
    /// PASS: a TCP segment without SYN for which there is no flow.
    TcpNoFlow = 19,
    /// TX/REDIRECT: forwarded by direct routing.
    ForwardDr = 20,
    /// TX/REDIRECT: forwarded with NAT.
    ForwardNat = 21,
    /// TX/REDIRECT: NAT reply rewritten back to the VIP.
    ReverseNat = 22,
    /// A flow found idle past its timeout and scheduled anew.
    FlowExpired = 23,
    /// A flow to a down real server dropped and scheduled anew (`FLAG_EXPIRE_NODEST`).
    NodestExpired = 24,
    /// DROP: redirect to an interface missing from the devmap.
    RedirectFailed = 25,
    /// PASS: the service's configuration is inconsistent (bad id, scheduler, table).
    BadServiceConfig = 26,
    /// The connection table refused an insert: the packet is still
    /// forwarded, but its flow is not remembered.
    FlowInsertFailed = 27,
    /// PASS: IPv6 version field is not 6.
    BadIpv6Header = 28,
    /// DROP: a verified heartbeat, recorded.
    HbAccepted = 29,
    /// DROP: a heartbeat-port datagram that is not exactly one heartbeat long.
    HbBadLength = 30,
    /// DROP: heartbeat magic or version wrong.
    HbBadMagic = 31,
    /// DROP: heartbeat MAC wrong (forged, corrupted, other key).
    HbBadMac = 32,
    /// DROP: heartbeat sequence not above the last one taken from that
    /// sender in the same boot (replay).
    HbReplay = 33,
    /// DROP: heartbeat from a (node id, source address) that is not a
    /// configured sender, or of another kind than the sender's.
    HbUnknownSender = 34,
    /// DROP: heartbeat with an unknown kind or state.
    HbBadField = 35,
    /// TX: an ARP request for an owned VIP, answered in XDP.
    ArpReply = 36,
    /// A SIP Call-ID with no live `CALLS` entry: scheduled and recorded
    /// (the forward is counted as well).
    SipCallIdNew = 37,
    /// A SIP Call-ID found in `CALLS`: sent to its real server.
    SipCallIdHit = 38,
    /// A datagram to a SIP-persistence service (or a data segment of one
    /// of its TCP connections) without a usable Call-ID in the scan
    /// window (not SIP, keepalive, no or empty or cut-off Call-ID): it
    /// takes the connection-table path.
    SipNoCallId = 39,
    /// A `CALLS` entry found idle past `call_timeout_ns`, or whose real
    /// server is down with `FLAG_EXPIRE_NODEST` (or gone): replaced by a
    /// fresh schedule.
    SipCallIdExpired = 40,
    /// TCP: a Call-ID in a data segment was recorded for the UDP service
    /// on the same VIP and port.
    SipCallIdLearned = 41,
    /// TCP: a Call-ID in a data segment could not be recorded: no UDP
    /// service with `FLAG_SIP_PERSIST` on the same VIP and port, or the
    /// connection's real server is not one of its real servers.
    SipLearnNoTarget = 42,
    /// DROP: a configured sender's heartbeat on another interface than its
    /// path's.
    HbWrongPath = 43,
    /// DROP: heartbeat sequence beyond the window above the last one taken
    /// (`heartbeat::window`): not taken as the new floor.
    HbSeqJump = 44,
    /// DROP: heartbeat of another boot that cannot be the sender's restart
    /// (the boot it replaced, or a sequence too high for a new boot).
    HbStaleBoot = 45,
    /// The dead-man switch tripped: the daemon's stamp was older than its
    /// budget (counted once per trip, when the program latches it).
    DeadManTrip = 46,
    /// DROP: traffic to an owned VIP while the dead-man switch is tripped
    /// (passing it would let the stack answer with ICMP).
    DeadManDrop = 47,
    /// DROP: an ARP request for an owned VIP while the dead-man switch is
    /// tripped: not answered.
    DeadManArp = 48,
    /// DROP: traffic to a configured VIP (`VIPS`) this node does not own
    /// (`OWNED_VIPS`): a standby neither answers nor rejects it (passing
    /// it would let the stack answer with ICMP port unreachable), and it
    /// does not dispatch it.
    VipNotOwned = 49,
    /// TX: an echo request from the configured peer, reflected in XDP
    /// (the dead-man switch is not tripped: this node's daemon is alive).
    EchoReflected = 50,
    /// DROP: an echo request from the configured peer while the dead-man
    /// switch is tripped: not reflected (a hung daemon's node stops
    /// proving liveness).
    EchoFenced = 51,
    /// DROP: an echo request from an address or node id that is not a
    /// configured director sender (or on another interface than its
    /// path's): never reflected.
    EchoNotPeer = 52,
    /// DROP: one of this node's echoes came back, authentic and newer than
    /// the last on its path: recorded in `ECHO_RETURNS`.
    EchoReturned = 53,
    /// DROP: a returning echo whose MAC does not match the pair key.
    EchoBadMac = 54,
    /// DROP: a returning echo not newer than the last recorded on its
    /// path (late or replayed): the record is not moved back.
    EchoStale = 55,
    /// DROP: an echo from the heartbeat port that is not one of this
    /// node's (another node id, echo identity unset, not from the
    /// configured peer's address, a path out of range, not IPv4).
    EchoBadReply = 56,
    /// The dead-man switch tripped because the armed daemon's process
    /// exited (`sched_process_exit`, e.g. kill -9) before its stamp went
    /// stale (counted once per trip, with `DeadManTrip`).
    DeadManExit = 57,
    /// A heartbeat (or a returning echo) whose MAC verified under the
    /// sender's *next* key, not its current one (counted besides its
    /// verdict): during a key rotation, the peer already sends under the
    /// new key.
    HbNextKey = 58,
}

pub const REASON_COUNT: u32 = 59;

impl Reason {
    pub const ALL: [Reason; REASON_COUNT as usize] = [
        Reason::NotIp,
        Reason::Arp,
        Reason::TruncatedEth,
        Reason::TruncatedVlan,
        Reason::DoubleVlan,
        Reason::TruncatedIpv4,
        Reason::BadIpv4Header,
        Reason::BadIpv4Length,
        Reason::Ipv4Fragment,
        Reason::TruncatedIpv6,
        Reason::BadIpv6Length,
        Reason::Ipv6ExtHeader,
        Reason::Ipv6Fragment,
        Reason::NotUdpTcp,
        Reason::TruncatedL4,
        Reason::BadUdpLength,
        Reason::BadTcpHeader,
        Reason::NotService,
        Reason::NoReal,
        Reason::TcpNoFlow,
        Reason::ForwardDr,
        Reason::ForwardNat,
        Reason::ReverseNat,
        Reason::FlowExpired,
        Reason::NodestExpired,
        Reason::RedirectFailed,
        Reason::BadServiceConfig,
        Reason::FlowInsertFailed,
        Reason::BadIpv6Header,
        Reason::HbAccepted,
        Reason::HbBadLength,
        Reason::HbBadMagic,
        Reason::HbBadMac,
        Reason::HbReplay,
        Reason::HbUnknownSender,
        Reason::HbBadField,
        Reason::ArpReply,
        Reason::SipCallIdNew,
        Reason::SipCallIdHit,
        Reason::SipNoCallId,
        Reason::SipCallIdExpired,
        Reason::SipCallIdLearned,
        Reason::SipLearnNoTarget,
        Reason::HbWrongPath,
        Reason::HbSeqJump,
        Reason::HbStaleBoot,
        Reason::DeadManTrip,
        Reason::DeadManDrop,
        Reason::DeadManArp,
        Reason::VipNotOwned,
        Reason::EchoReflected,
        Reason::EchoFenced,
        Reason::EchoNotPeer,
        Reason::EchoReturned,
        Reason::EchoBadMac,
        Reason::EchoStale,
        Reason::EchoBadReply,
        Reason::DeadManExit,
        Reason::HbNextKey,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Reason::NotIp => "not_ip",
            Reason::Arp => "arp",
            Reason::TruncatedEth => "truncated_eth",
            Reason::TruncatedVlan => "truncated_vlan",
            Reason::DoubleVlan => "double_vlan",
            Reason::TruncatedIpv4 => "truncated_ipv4",
            Reason::BadIpv4Header => "bad_ipv4_header",
            Reason::BadIpv4Length => "bad_ipv4_length",
            Reason::Ipv4Fragment => "ipv4_fragment",
            Reason::TruncatedIpv6 => "truncated_ipv6",
            Reason::BadIpv6Length => "bad_ipv6_length",
            Reason::Ipv6ExtHeader => "ipv6_ext_header",
            Reason::Ipv6Fragment => "ipv6_fragment",
            Reason::NotUdpTcp => "not_udp_tcp",
            Reason::TruncatedL4 => "truncated_l4",
            Reason::BadUdpLength => "bad_udp_length",
            Reason::BadTcpHeader => "bad_tcp_header",
            Reason::NotService => "not_service",
            Reason::NoReal => "no_real",
            Reason::TcpNoFlow => "tcp_no_flow",
            Reason::ForwardDr => "forward_dr",
            Reason::ForwardNat => "forward_nat",
            Reason::ReverseNat => "reverse_nat",
            Reason::FlowExpired => "flow_expired",
            Reason::NodestExpired => "nodest_expired",
            Reason::RedirectFailed => "redirect_failed",
            Reason::BadServiceConfig => "bad_service_config",
            Reason::FlowInsertFailed => "flow_insert_failed",
            Reason::BadIpv6Header => "bad_ipv6_header",
            Reason::HbAccepted => "hb_accepted",
            Reason::HbBadLength => "hb_bad_length",
            Reason::HbBadMagic => "hb_bad_magic",
            Reason::HbBadMac => "hb_bad_mac",
            Reason::HbReplay => "hb_replay",
            Reason::HbUnknownSender => "hb_unknown_sender",
            Reason::HbBadField => "hb_bad_field",
            Reason::ArpReply => "arp_reply",
            Reason::SipCallIdNew => "sip_callid_new",
            Reason::SipCallIdHit => "sip_callid_hit",
            Reason::SipNoCallId => "sip_no_callid",
            Reason::SipCallIdExpired => "sip_callid_expired",
            Reason::SipCallIdLearned => "sip_callid_learned",
            Reason::SipLearnNoTarget => "sip_learn_no_target",
            Reason::HbWrongPath => "hb_wrong_path",
            Reason::HbSeqJump => "hb_seq_jump",
            Reason::HbStaleBoot => "hb_stale_boot",
            Reason::DeadManTrip => "dead_man_trip",
            Reason::DeadManDrop => "dead_man_drop",
            Reason::DeadManArp => "dead_man_arp",
            Reason::DeadManExit => "dead_man_exit",
            Reason::VipNotOwned => "vip_not_owned",
            Reason::EchoReflected => "echo_reflected",
            Reason::EchoFenced => "echo_fenced",
            Reason::EchoNotPeer => "echo_not_peer",
            Reason::EchoReturned => "echo_returned",
            Reason::EchoBadMac => "echo_bad_mac",
            Reason::EchoStale => "echo_stale",
            Reason::EchoBadReply => "echo_bad_reply",
            Reason::HbNextKey => "hb_next_key",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::active_count;

    #[test]
    fn active_count_sums_signed_halves_and_never_goes_below_zero() {
        assert_eq!(active_count(5, 3), 8);
        assert_eq!(active_count(5, -3), 2);
        assert_eq!(active_count(5, -7), 0);
        // The program ended two flows the host had counted (its half is
        // -2 as a u64), the host counted three.
        assert_eq!(active_count(0u64.wrapping_sub(2), 3), 1);
        assert_eq!(active_count(0u64.wrapping_sub(2), 2), 0);
        assert_eq!(active_count(0u64.wrapping_sub(2), 0), 0);
    }
}
