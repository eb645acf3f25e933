//! Heartbeats in the kernel: a valid one is recorded and consumed, and a
//! change of the sender's state is pushed to the ring buffer; forged,
//! replayed, truncated, foreign and unknown-sender heartbeats are counted
//! per reason and change nothing. Also ARP answered for owned VIPs.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use support::*;
use tandem_dataplane::{
    Dataplane,
    common::{
        heartbeat::{self, Key, Kind, Packet, Repr},
        node::NodeState,
        *,
    },
    packet::FrameSpec,
};

const KEY: [u8; 16] = *b"tandem-test-key!";
const PEER: u32 = 2;
const DIRECTOR: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
const PEER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3));

fn hb(node_id: u32, state: NodeState, epoch: u64, seq: u64) -> Repr {
    Repr {
        kind: Kind::Director,
        state,
        priority: 100,
        node_id,
        path: 0,
        epoch,
        seq,
        sent_ns: seq * 1000,
        active_channels: 3,
        capacity: 30,
    }
}

fn frame(r: &Repr, key: &[u8; 16]) -> Vec<u8> {
    let mut payload = vec![0u8; heartbeat::LEN];
    r.emit(&mut Packet::new_unchecked(&mut payload[..]), &Key::from_bytes(key));
    FrameSpec::udp(PEER_ADDR, 694, DIRECTOR, 694, &payload).build()
}

fn setup() -> Dataplane {
    let mut dp = load();
    dp.set_heartbeat(&Key::from_bytes(&KEY), 694).unwrap();
    dp.add_heartbeat_node(PEER, Kind::Director).unwrap();
    dp
}

fn expect(dp: &mut Dataplane, f: &[u8], verdict: u32, reason: Reason) {
    let before = dp.reason(reason).unwrap();
    let r = dp.test_run(f).unwrap();
    assert_eq!(r.verdict, verdict, "verdict for {}", reason.name());
    assert_eq!(dp.reason(reason).unwrap(), before + 1, "counter {}", reason.name());
}

#[test]
fn privileged_valid_heartbeat_is_recorded_and_state_changes_are_pushed() {
    if !privileged("privileged_valid_heartbeat_is_recorded_and_state_changes_are_pushed") {
        return;
    }
    let mut dp = setup();
    let mut events = dp.take_heartbeat_events().expect("ring buffer");
    let t0 = tandem_dataplane::monotonic_ns();
    expect(&mut dp, &frame(&hb(PEER, NodeState::Active, 4, 1000), &KEY), XDP_DROP, Reason::HbAccepted);
    let peers = dp.heartbeat_peers();
    assert_eq!(peers.len(), 1);
    let p = peers[0];
    assert_eq!((p.node_id, p.seq, p.epoch, p.state, p.priority), (PEER, 1000, 4, NodeState::Active as u8, 100));
    assert_eq!((p.active_channels, p.capacity, p.kind), (3, 30, Kind::Director as u8));
    assert!(p.last_seen_ns >= t0 && p.last_seen_ns <= tandem_dataplane::monotonic_ns(), "last_seen on CLOCK_MONOTONIC");
    let e = events.next().expect("first contact is an event");
    assert_eq!((e.node_id, e.state, e.epoch), (PEER, NodeState::Active as u8, 4));
    assert!(events.next().is_none());
    // Same state, newer sequence: recorded, no event.
    expect(&mut dp, &frame(&hb(PEER, NodeState::Active, 4, 1001), &KEY), XDP_DROP, Reason::HbAccepted);
    assert_eq!(dp.heartbeat_peers()[0].seq, 1001);
    assert!(events.next().is_none(), "no change, no event");
    // A change of state: an event.
    expect(&mut dp, &frame(&hb(PEER, NodeState::Standby, 5, 1002), &KEY), XDP_DROP, Reason::HbAccepted);
    let e = events.next().expect("state change event");
    assert_eq!((e.state, e.epoch, e.seq), (NodeState::Standby as u8, 5, 1002));
}

#[test]
fn privileged_bad_heartbeats_are_counted_and_change_nothing() {
    if !privileged("privileged_bad_heartbeats_are_counted_and_change_nothing") {
        return;
    }
    let mut dp = setup();
    let mut events = dp.take_heartbeat_events().unwrap();
    let good = frame(&hb(PEER, NodeState::Active, 4, 5000), &KEY);
    expect(&mut dp, &good, XDP_DROP, Reason::HbAccepted);
    assert!(events.next().is_some());
    let snapshot = dp.heartbeat_peers();

    // Replayed: the same datagram again, and an older sequence.
    expect(&mut dp, &good, XDP_DROP, Reason::HbReplay);
    expect(&mut dp, &frame(&hb(PEER, NodeState::Standby, 9, 4999), &KEY), XDP_DROP, Reason::HbReplay);
    // Forged: a field changed after the MAC was computed.
    let mut forged = good.clone();
    let seq_byte = 14 + 20 + 8 + 31;
    forged[seq_byte] = forged[seq_byte].wrapping_add(1);
    expect(&mut dp, &forged, XDP_DROP, Reason::HbBadMac);
    // Another key.
    expect(&mut dp, &frame(&hb(PEER, NodeState::Fault, 9, 6000), b"some-other-key!!"), XDP_DROP, Reason::HbBadMac);
    // Unknown sender (valid MAC).
    expect(&mut dp, &frame(&hb(77, NodeState::Active, 9, 6001), &KEY), XDP_DROP, Reason::HbUnknownSender);
    // Right node id, wrong kind.
    let mut ivr = hb(PEER, NodeState::Active, 9, 6002);
    ivr.kind = Kind::Ivr;
    expect(&mut dp, &frame(&ivr, &KEY), XDP_DROP, Reason::HbUnknownSender);
    // Truncated and oversized.
    let mut payload = vec![0u8; heartbeat::LEN];
    hb(PEER, NodeState::Active, 9, 6003).emit(&mut Packet::new_unchecked(&mut payload[..]), &Key::from_bytes(&KEY));
    let short = FrameSpec::udp(PEER_ADDR, 694, DIRECTOR, 694, &payload[..40]).build();
    expect(&mut dp, &short, XDP_DROP, Reason::HbBadLength);
    let mut long = payload.clone();
    long.push(0);
    expect(&mut dp, &FrameSpec::udp(PEER_ADDR, 694, DIRECTOR, 694, &long).build(), XDP_DROP, Reason::HbBadLength);
    // Bad magic.
    let mut magic = payload.clone();
    magic[0] = b'X';
    expect(&mut dp, &FrameSpec::udp(PEER_ADDR, 694, DIRECTOR, 694, &magic).build(), XDP_DROP, Reason::HbBadMagic);
    // Unknown state, valid MAC.
    let mut state = payload.clone();
    state[6] = 42;
    Packet::new_unchecked(&mut state[..]).fill_mac(&Key::from_bytes(&KEY));
    expect(&mut dp, &FrameSpec::udp(PEER_ADDR, 694, DIRECTOR, 694, &state).build(), XDP_DROP, Reason::HbBadField);

    assert_eq!(dp.heartbeat_peers(), snapshot, "refused heartbeats changed the record");
    assert!(events.next().is_none(), "refused heartbeats pushed an event");
}

#[test]
fn privileged_heartbeat_port_is_ordinary_traffic_when_disabled() {
    if !privileged("privileged_heartbeat_port_is_ordinary_traffic_when_disabled") {
        return;
    }
    let mut dp = load();
    let f = frame(&hb(PEER, NodeState::Active, 1, 1), &KEY);
    expect(&mut dp, &f, XDP_PASS, Reason::NotService);
}

fn arp_request(sender_mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f.resize(60, 0);
    f
}

#[test]
fn privileged_arp_for_an_owned_vip_is_answered_in_xdp() {
    if !privileged("privileged_arp_for_an_owned_vip_is_answered_in_xdp") {
        return;
    }
    let mut dp = load();
    let vip = Ipv4Addr::new(198, 18, 0, 100);
    let ours = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    let client_mac = [0x02, 0xcc, 0, 0, 0, 1];
    let client = Ipv4Addr::new(198, 18, 0, 10);
    let req = arp_request(client_mac, client, vip);
    // Not owned yet: passed to the stack untouched.
    let r = dp.test_run(&req).unwrap();
    assert_eq!((r.verdict, &r.frame), (XDP_PASS, &req));
    dp.set_vip_owned(vip, ours, true).unwrap();
    let r = dp.test_run(&req).unwrap();
    assert_eq!(r.verdict, XDP_TX);
    let f = &r.frame;
    assert_eq!(&f[0..6], &client_mac, "to the requester");
    assert_eq!(&f[6..12], &ours, "from us");
    assert_eq!(&f[20..22], &[0, 2], "an ARP reply");
    assert_eq!(&f[22..28], &ours, "sender MAC");
    assert_eq!(&f[28..32], &vip.octets(), "sender IP = VIP");
    assert_eq!(&f[32..38], &client_mac, "target MAC");
    assert_eq!(&f[38..42], &client.octets(), "target IP");
    assert_eq!(dp.reason(Reason::ArpReply).unwrap(), 1);
    // Another address, and a released VIP: passed.
    let other = arp_request(client_mac, client, Ipv4Addr::new(198, 18, 0, 101));
    assert_eq!(dp.test_run(&other).unwrap().verdict, XDP_PASS);
    dp.set_vip_owned(vip, ours, false).unwrap();
    assert_eq!(dp.test_run(&req).unwrap().verdict, XDP_PASS);
}
