//! Heartbeats in the kernel: a valid one is recorded and consumed, and a
//! change of the sender's boot or state is pushed to the ring buffer;
//! forged, replayed, truncated, foreign and unknown-sender heartbeats are
//! counted per reason and change nothing. Each sender is bound to its
//! address, interface and own key: an IVR's key forges neither a director
//! nor another IVR, and the sequence window refuses a jump and a replayed
//! boot but takes a restarted sender at once. Also ARP answered for owned
//! VIPs.
//!
//! `BPF_PROG_TEST_RUN` runs the program as if the frame came in on the
//! loopback interface (ifindex 1): that is the "right" path here.

mod support;

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use support::*;
use tandem_dataplane::{
    Dataplane, HeartbeatSender,
    common::{
        heartbeat::{self, Key, Kind, Packet, Repr},
        node::NodeState,
        *,
    },
    packet::FrameSpec,
};

/// The director heartbeat key, and two IVRs' own keys.
const KEY: [u8; 16] = *b"tandem-test-key!";
const IVR_A_KEY: [u8; 16] = *b"ivr-a-own-key-01";
const IVR_B_KEY: [u8; 16] = *b"ivr-b-own-key-02";
const PEER: u32 = 2;
const IVR_A: u32 = 101;
const IVR_B: u32 = 102;
const DIRECTOR: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
const PEER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3));
const IVR_A_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11));
const IVR_B_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 12));
/// The interface `BPF_PROG_TEST_RUN` frames come in on (loopback).
const TEST_RUN_IFINDEX: u32 = 1;
const BOOT: u64 = 0x5eed_0000_0000_0001;

fn hb(node_id: u32, state: NodeState, epoch: u64, seq: u64) -> Repr {
    Repr {
        kind: Kind::Director,
        state,
        priority: 100,
        node_id,
        path: 0,
        epoch,
        boot_id: BOOT,
        seq,
        sent_ns: seq.wrapping_mul(1000),
        active_channels: 3,
        capacity: 30,
        restart_grace_ms: 0,
    }
}

fn ivr(node_id: u32, seq: u64) -> Repr {
    Repr { kind: Kind::Ivr, state: NodeState::Active, priority: 0, ..hb(node_id, NodeState::Active, 0, seq) }
}

fn frame_from(src: IpAddr, r: &Repr, key: &[u8; 16]) -> Vec<u8> {
    let mut payload = vec![0u8; heartbeat::LEN];
    r.emit(&mut Packet::new_unchecked(&mut payload[..]), &Key::from_bytes(key));
    FrameSpec::udp(src, 694, DIRECTOR, 694, &payload).build()
}

fn frame(r: &Repr, key: &[u8; 16]) -> Vec<u8> {
    frame_from(PEER_ADDR, r, key)
}

fn director(ifindex: u32) -> HeartbeatSender {
    HeartbeatSender { node_id: PEER, addr: PEER_ADDR, kind: Kind::Director, ifindex, key: Key::from_bytes(&KEY), next_key: None, restart_gap: Duration::ZERO }
}

fn setup() -> Dataplane {
    let mut dp = load();
    dp.set_heartbeat_port(694).unwrap();
    dp.add_heartbeat_sender(&director(TEST_RUN_IFINDEX)).unwrap();
    for (node_id, addr, key) in [(IVR_A, IVR_A_ADDR, IVR_A_KEY), (IVR_B, IVR_B_ADDR, IVR_B_KEY)] {
        let s = HeartbeatSender { node_id, addr, kind: Kind::Ivr, ifindex: 0, key: Key::from_bytes(&key), next_key: None, restart_gap: Duration::ZERO };
        dp.add_heartbeat_sender(&s).unwrap();
    }
    dp
}

fn expect(dp: &mut Dataplane, f: &[u8], verdict: u32, reason: Reason) {
    let before = dp.reason(reason).unwrap();
    let r = dp.test_run(f).unwrap();
    assert_eq!(r.verdict, verdict, "verdict for {}", reason.name());
    assert_eq!(dp.reason(reason).unwrap(), before + 1, "counter {}", reason.name());
}

/// The kernel's record of the director peer.
fn peer_record(dp: &Dataplane) -> HbPeer {
    let peers: Vec<HbPeer> = dp.heartbeat_peers().into_iter().filter(|p| p.node_id == PEER).collect();
    assert_eq!(peers.len(), 1, "{peers:?}");
    peers[0]
}

#[test]
fn privileged_valid_heartbeat_is_recorded_and_state_changes_are_pushed() {
    if !privileged("privileged_valid_heartbeat_is_recorded_and_state_changes_are_pushed") {
        return;
    }
    let mut dp = setup();
    let mut events = dp.take_heartbeat_events().expect("ring buffer");
    let t0 = tandem_dataplane::monotonic_ns();
    expect(&mut dp, &frame(&hb(PEER, NodeState::Active, 4, 1), &KEY), XDP_DROP, Reason::HbAccepted);
    let p = peer_record(&dp);
    assert_eq!((p.node_id, p.boot_id, p.seq, p.epoch, p.state, p.priority), (PEER, BOOT, 1, 4, NodeState::Active as u8, 100));
    assert_eq!((p.active_channels, p.capacity, p.kind), (3, 30, Kind::Director as u8));
    assert_eq!((p.addr, p.ifindex, p.prev_boot_id), (tandem_dataplane::config::addr16(PEER_ADDR), TEST_RUN_IFINDEX, 0));
    assert!(p.last_seen_ns >= t0 && p.last_seen_ns <= tandem_dataplane::monotonic_ns(), "last_seen on CLOCK_MONOTONIC");
    let e = events.next().expect("first contact is an event");
    assert_eq!((e.node_id, e.state, e.epoch, e.boot_id), (PEER, NodeState::Active as u8, 4, BOOT));
    assert!(events.next().is_none());
    // Same state, newer sequence: recorded, no event.
    expect(&mut dp, &frame(&hb(PEER, NodeState::Active, 4, 2), &KEY), XDP_DROP, Reason::HbAccepted);
    assert_eq!(peer_record(&dp).seq, 2);
    assert!(events.next().is_none(), "no change, no event");
    // A change of state: an event.
    expect(&mut dp, &frame(&hb(PEER, NodeState::Standby, 5, 3), &KEY), XDP_DROP, Reason::HbAccepted);
    let e = events.next().expect("state change event");
    assert_eq!((e.state, e.epoch, e.seq), (NodeState::Standby as u8, 5, 3));
    // An IVR under its own key: recorded beside the director.
    expect(&mut dp, &frame_from(IVR_A_ADDR, &ivr(IVR_A, 1), &IVR_A_KEY), XDP_DROP, Reason::HbAccepted);
    assert_eq!(dp.heartbeat_records().iter().filter(|r| r.node_id == IVR_A && r.kind == Kind::Ivr).count(), 1);
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
    let seq_byte = 14 + 20 + 8 + heartbeat::field::SEQ.end - 1;
    forged[seq_byte] = forged[seq_byte].wrapping_add(1);
    expect(&mut dp, &forged, XDP_DROP, Reason::HbBadMac);
    // Another key.
    expect(&mut dp, &frame(&hb(PEER, NodeState::Fault, 9, 5001), b"some-other-key!!"), XDP_DROP, Reason::HbBadMac);
    // Unknown sender (valid MAC).
    expect(&mut dp, &frame(&hb(77, NodeState::Active, 9, 5001), &KEY), XDP_DROP, Reason::HbUnknownSender);
    // Right node id, address and key, wrong kind.
    let mut as_ivr = hb(PEER, NodeState::Active, 9, 5001);
    as_ivr.kind = Kind::Ivr;
    expect(&mut dp, &frame(&as_ivr, &KEY), XDP_DROP, Reason::HbUnknownSender);
    // Truncated, oversized, and the 56-byte version 1.
    let mut payload = vec![0u8; heartbeat::LEN];
    hb(PEER, NodeState::Active, 9, 5001).emit(&mut Packet::new_unchecked(&mut payload[..]), &Key::from_bytes(&KEY));
    let short = FrameSpec::udp(PEER_ADDR, 694, DIRECTOR, 694, &payload[..40]).build();
    expect(&mut dp, &short, XDP_DROP, Reason::HbBadLength);
    let v1 = FrameSpec::udp(PEER_ADDR, 694, DIRECTOR, 694, &payload[..56]).build();
    expect(&mut dp, &v1, XDP_DROP, Reason::HbBadLength);
    let mut long = payload.clone();
    long.push(0);
    expect(&mut dp, &FrameSpec::udp(PEER_ADDR, 694, DIRECTOR, 694, &long).build(), XDP_DROP, Reason::HbBadLength);
    // Bad magic, and version 1 in a 64-byte message.
    let mut magic = payload.clone();
    magic[0] = b'X';
    expect(&mut dp, &FrameSpec::udp(PEER_ADDR, 694, DIRECTOR, 694, &magic).build(), XDP_DROP, Reason::HbBadMagic);
    let mut version = payload.clone();
    version[heartbeat::field::VERSION] = 1;
    Packet::new_unchecked(&mut version[..]).fill_mac(&Key::from_bytes(&KEY));
    expect(&mut dp, &FrameSpec::udp(PEER_ADDR, 694, DIRECTOR, 694, &version).build(), XDP_DROP, Reason::HbBadMagic);
    // Unknown state, valid MAC.
    let mut state = payload.clone();
    state[6] = 42;
    Packet::new_unchecked(&mut state[..]).fill_mac(&Key::from_bytes(&KEY));
    expect(&mut dp, &FrameSpec::udp(PEER_ADDR, 694, DIRECTOR, 694, &state).build(), XDP_DROP, Reason::HbBadField);

    assert_eq!(dp.heartbeat_peers(), snapshot, "refused heartbeats changed the record");
    assert!(events.next().is_none(), "refused heartbeats pushed an event");
}

#[test]
fn privileged_an_ivr_key_forges_neither_a_director_nor_another_ivr() {
    if !privileged("privileged_an_ivr_key_forges_neither_a_director_nor_another_ivr") {
        return;
    }
    let mut dp = setup();
    // The split brain of issue 11: the peer's node id, Active, a high
    // epoch, sequence 2^64-1, from the peer's address on its path, MAC'd
    // with a key an IVR holds.
    let forged = hb(PEER, NodeState::Active, 1 << 40, u64::MAX);
    for _ in 0..4 {
        expect(&mut dp, &frame(&forged, &IVR_A_KEY), XDP_DROP, Reason::HbBadMac);
    }
    // IVR A's key speaking as IVR B, from B's address.
    expect(&mut dp, &frame_from(IVR_B_ADDR, &ivr(IVR_B, 1), &IVR_A_KEY), XDP_DROP, Reason::HbBadMac);
    // IVR A's key speaking as IVR B from A's own address: not a sender.
    expect(&mut dp, &frame_from(IVR_A_ADDR, &ivr(IVR_B, 1), &IVR_A_KEY), XDP_DROP, Reason::HbUnknownSender);
    assert!(dp.heartbeat_peers().is_empty(), "{:?}", dp.heartbeat_peers());
    // Each with its own key is taken.
    expect(&mut dp, &frame(&hb(PEER, NodeState::Standby, 1, 1), &KEY), XDP_DROP, Reason::HbAccepted);
    expect(&mut dp, &frame_from(IVR_B_ADDR, &ivr(IVR_B, 1), &IVR_B_KEY), XDP_DROP, Reason::HbAccepted);
}

#[test]
fn privileged_the_right_key_from_the_wrong_address_or_interface_is_refused() {
    if !privileged("privileged_the_right_key_from_the_wrong_address_or_interface_is_refused") {
        return;
    }
    let mut dp = setup();
    let good = hb(PEER, NodeState::Active, 4, 1);
    // From an IVR's address (the director key, the peer's node id).
    expect(&mut dp, &frame_from(IVR_A_ADDR, &good, &KEY), XDP_DROP, Reason::HbUnknownSender);
    // From the peer's address, on another interface than its path's.
    dp.add_heartbeat_sender(&director(TEST_RUN_IFINDEX + 100)).unwrap();
    expect(&mut dp, &frame(&good, &KEY), XDP_DROP, Reason::HbWrongPath);
    assert!(dp.heartbeat_peers().is_empty());
    // On its path.
    dp.add_heartbeat_sender(&director(TEST_RUN_IFINDEX)).unwrap();
    expect(&mut dp, &frame(&good, &KEY), XDP_DROP, Reason::HbAccepted);
}

#[test]
fn privileged_a_sequence_jump_is_refused_and_the_next_real_heartbeat_taken() {
    if !privileged("privileged_a_sequence_jump_is_refused_and_the_next_real_heartbeat_taken") {
        return;
    }
    let mut dp = setup();
    let mut events = dp.take_heartbeat_events().unwrap();
    expect(&mut dp, &frame(&hb(PEER, NodeState::Standby, 4, 10), &KEY), XDP_DROP, Reason::HbAccepted);
    assert!(events.next().is_some());
    for _ in 0..4 {
        expect(&mut dp, &frame(&hb(PEER, NodeState::Active, 1 << 40, u64::MAX), &KEY), XDP_DROP, Reason::HbSeqJump);
    }
    assert!(events.next().is_none(), "a refused jump pushed an event");
    assert_eq!((peer_record(&dp).seq, peer_record(&dp).epoch), (10, 4), "the jump moved the floor");
    expect(&mut dp, &frame(&hb(PEER, NodeState::Standby, 4, 11), &KEY), XDP_DROP, Reason::HbAccepted);
    assert_eq!(peer_record(&dp).seq, 11);
}

#[test]
fn privileged_a_restarted_sender_is_taken_at_once_and_its_old_boot_refused() {
    if !privileged("privileged_a_restarted_sender_is_taken_at_once_and_its_old_boot_refused") {
        return;
    }
    let mut dp = setup();
    let mut events = dp.take_heartbeat_events().unwrap();
    let old = hb(PEER, NodeState::Active, 4, 1_000_000);
    expect(&mut dp, &frame(&old, &KEY), XDP_DROP, Reason::HbAccepted);
    let _ = events.next();
    // Restarted: a new boot counting from 1, far below the old sequence.
    let new_boot = BOOT + 1;
    let restarted = Repr { boot_id: new_boot, seq: 1, ..hb(PEER, NodeState::Active, 4, 1) };
    expect(&mut dp, &frame(&restarted, &KEY), XDP_DROP, Reason::HbAccepted);
    let p = peer_record(&dp);
    assert_eq!((p.boot_id, p.prev_boot_id, p.seq), (new_boot, BOOT, 1));
    let e = events.next().expect("a new boot is an event");
    assert_eq!(e.boot_id, new_boot);
    // The old boot replayed, above its last sequence: refused.
    expect(&mut dp, &frame(&Repr { seq: 1_000_001, ..old }, &KEY), XDP_DROP, Reason::HbStaleBoot);
    expect(&mut dp, &frame(&Repr { seq: 2, ..old }, &KEY), XDP_DROP, Reason::HbStaleBoot);
    // A third boot already past a restart's first sequences: refused.
    let far = Repr { boot_id: BOOT + 2, seq: heartbeat::window::RESTART_SEQS + 1, ..old };
    expect(&mut dp, &frame(&far, &KEY), XDP_DROP, Reason::HbStaleBoot);
    assert_eq!(peer_record(&dp).boot_id, new_boot);
    expect(&mut dp, &frame(&Repr { seq: 2, ..restarted }, &KEY), XDP_DROP, Reason::HbAccepted);
}

/// A replayed boot start while the sender is still sending: refused until
/// its current boot has been silent for the restart gap.
#[test]
fn privileged_a_new_boot_is_refused_while_the_current_one_is_still_heard() {
    if !privileged("privileged_a_new_boot_is_refused_while_the_current_one_is_still_heard") {
        return;
    }
    let mut dp = setup();
    let gap = Duration::from_millis(50);
    dp.add_heartbeat_sender(&HeartbeatSender { restart_gap: gap, ..director(TEST_RUN_IFINDEX) }).unwrap();
    let live = hb(PEER, NodeState::Active, 4, 10);
    expect(&mut dp, &frame(&live, &KEY), XDP_DROP, Reason::HbAccepted);
    let replayed = Repr { boot_id: BOOT + 7, seq: 1, ..hb(PEER, NodeState::Standby, 1, 1) };
    expect(&mut dp, &frame(&replayed, &KEY), XDP_DROP, Reason::HbStaleBoot);
    expect(&mut dp, &frame(&Repr { seq: 11, ..live }, &KEY), XDP_DROP, Reason::HbAccepted);
    assert_eq!(peer_record(&dp).boot_id, BOOT);
    // Silent for the gap, as a restarting process is: the new boot is taken.
    std::thread::sleep(gap + Duration::from_millis(10));
    expect(&mut dp, &frame(&Repr { seq: 2, ..replayed }, &KEY), XDP_DROP, Reason::HbAccepted);
    assert_eq!(peer_record(&dp).boot_id, BOOT + 7);
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

/// A configured sender whose heartbeats fail authentication is recorded
/// as alive-but-misconfigured (count, time, interface); an unknown sender's
/// garbage records nothing (it cannot fill the map).
#[test]
fn privileged_bad_mac_heartbeats_of_a_configured_sender_are_recorded_per_sender() {
    if !privileged("privileged_bad_mac_heartbeats_of_a_configured_sender_are_recorded_per_sender") {
        return;
    }
    let mut dp = setup();
    assert!(dp.bad_mac_senders().is_empty());
    let other_key = b"some-other-key!!";
    expect(&mut dp, &frame(&hb(PEER, NodeState::Active, 1, 1), other_key), XDP_DROP, Reason::HbBadMac);
    expect(&mut dp, &frame(&hb(PEER, NodeState::Active, 1, 2), other_key), XDP_DROP, Reason::HbBadMac);
    // Not configured: counted as unknown, not recorded.
    expect(&mut dp, &frame(&hb(77, NodeState::Active, 1, 1), other_key), XDP_DROP, Reason::HbUnknownSender);
    let bad = dp.bad_mac_senders();
    assert_eq!(bad.len(), 1, "{bad:?}");
    let (node, count, last_ns, ifindex) = bad[0];
    assert_eq!((node, count, ifindex), (PEER, 2, TEST_RUN_IFINDEX));
    assert!(last_ns > 0);
    assert!(dp.heartbeat_peers().is_empty(), "a bad MAC records no heartbeat");
}
