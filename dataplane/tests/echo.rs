//! The echo in the kernel (BFD echo, RFC 5880 §6.4): the peer's echo
//! request is reflected (XDP_TX) with Ethernet, IPv4 and UDP source and
//! destination swapped, the payload intact and both checksums still valid
//! — unless this node is fenced, or the request does not come from the
//! configured peer, or is not exactly one message long; this node's own
//! echoes coming back are verified (pair key, own node id, path) and the
//! newest sequence per path recorded, never moved back; anything else is
//! refused, counted, and changes nothing. Runs the real program through
//! `BPF_PROG_TEST_RUN` (frames come in on loopback, ifindex 1).

mod support;

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use support::*;
use tandem_dataplane::{
    Dataplane, EchoReturn, HeartbeatSender,
    common::{
        heartbeat::{self, Key, Kind, Packet, Repr},
        node::NodeState,
        *,
    },
    monotonic_ns,
    packet::FrameSpec,
};

const KEY: [u8; 16] = *b"tandem-test-key!";
const OTHER_KEY: [u8; 16] = *b"some-other-key!!";
const SELF_ID: u32 = 1;
const PEER: u32 = 2;
const PORT: u16 = 694;
/// The port this node's echo socket sends from.
const ECHO_SPORT: u16 = 40001;
const OURS: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
const PEER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3));
const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 9));
const TEST_RUN_IFINDEX: u32 = 1;

fn echo(node_id: u32, path: u8, seq: u64) -> Repr {
    Repr {
        kind: Kind::Echo,
        state: NodeState::Standby,
        priority: 100,
        node_id,
        path,
        epoch: 3,
        boot_id: 0x5eed,
        seq,
        sent_ns: seq * 1000,
        active_channels: 0,
        capacity: 0,
        restart_grace_ms: 0,
    }
}

fn payload(r: &Repr, key: &[u8; 16]) -> Vec<u8> {
    let mut p = vec![0u8; heartbeat::LEN];
    r.emit(&mut Packet::new_unchecked(&mut p[..]), &Key::from_bytes(key));
    p
}

/// The peer's echo request, from its echo socket to our heartbeat port.
fn request_spec(src: IpAddr, r: &Repr) -> FrameSpec {
    FrameSpec::udp(src, ECHO_SPORT, OURS, PORT, &payload(r, &KEY))
}

/// One of our echoes coming back: from the peer's heartbeat port to our
/// echo socket.
fn reply(src: IpAddr, r: &Repr, key: &[u8; 16]) -> Vec<u8> {
    FrameSpec::udp(src, PORT, OURS, ECHO_SPORT, &payload(r, key)).build()
}

fn setup() -> Dataplane {
    let mut dp = load();
    dp.set_heartbeat_port(PORT).unwrap();
    let peer = HeartbeatSender {
        node_id: PEER,
        addr: PEER_ADDR,
        kind: Kind::Director,
        ifindex: TEST_RUN_IFINDEX,
        key: Key::from_bytes(&KEY),
        next_key: None,
        restart_gap: Duration::ZERO,
    };
    dp.add_heartbeat_sender(&peer).unwrap();
    dp.set_echo_identity(SELF_ID, PEER).unwrap();
    dp
}

fn expect(dp: &mut Dataplane, f: &[u8], verdict: u32, reason: Reason) -> Vec<u8> {
    let before = dp.reason(reason).unwrap();
    let r = dp.test_run(f).unwrap();
    assert_eq!(r.verdict, verdict, "verdict for {}", reason.name());
    assert_eq!(dp.reason(reason).unwrap(), before + 1, "counter {}", reason.name());
    r.frame
}

#[test]
fn privileged_the_peers_echo_request_is_reflected_with_swapped_addresses_and_intact_payload() {
    if !privileged("privileged_the_peers_echo_request_is_reflected_with_swapped_addresses_and_intact_payload") {
        return;
    }
    let mut dp = setup();
    let spec = request_spec(PEER_ADDR, &echo(PEER, 1, 5));
    let out = expect(&mut dp, &spec.build(), XDP_TX, Reason::EchoReflected);
    // What the peer's echo socket must receive: the same datagram with
    // every source and destination swapped, built afresh, so equal bytes
    // also mean valid IPv4 and UDP checksums.
    let back = FrameSpec {
        dst_mac: spec.src_mac,
        src_mac: spec.dst_mac,
        src: spec.dst,
        dst: spec.src,
        sport: spec.dport,
        dport: spec.sport,
        ..spec.clone()
    };
    assert_eq!(out, back.build(), "reflected: swapped, payload intact, checksums valid");
    assert_eq!(&out[out.len() - heartbeat::LEN..], &spec.payload[..]);
    // Reflecting records nothing and is no heartbeat.
    assert!(dp.echo_returns().unwrap().is_empty());
    assert!(dp.heartbeat_peers().is_empty());
    assert_eq!(dp.reason(Reason::HbAccepted).unwrap(), 0);
}

#[test]
fn privileged_a_fenced_node_reflects_no_echo() {
    if !privileged("privileged_a_fenced_node_reflects_no_echo") {
        return;
    }
    let mut dp = setup();
    let f = request_spec(PEER_ADDR, &echo(PEER, 0, 1)).build();
    dp.arm_dead_man(Duration::from_millis(20), 0, monotonic_ns()).unwrap();
    expect(&mut dp, &f, XDP_TX, Reason::EchoReflected);
    std::thread::sleep(Duration::from_millis(30));
    expect(&mut dp, &f, XDP_DROP, Reason::EchoFenced);
    assert!(dp.dead_man().unwrap().tripped_ns.is_some());
    // The daemon stamps again: reflected again.
    dp.stamp(Duration::from_millis(20), monotonic_ns()).unwrap();
    expect(&mut dp, &f, XDP_TX, Reason::EchoReflected);
}

#[test]
fn privileged_an_exited_daemon_reflects_no_echo() {
    if !privileged("privileged_an_exited_daemon_reflects_no_echo") {
        return;
    }
    let mut dp = setup();
    let f = request_spec(PEER_ADDR, &echo(PEER, 0, 1)).build();
    dp.arm_dead_man(Duration::from_secs(10), std::process::id(), monotonic_ns()).unwrap();
    expect(&mut dp, &f, XDP_TX, Reason::EchoReflected);
    // The exit flag alone, stamp fresh: not reflected.
    dp.mark_dead_man_exited().unwrap();
    expect(&mut dp, &f, XDP_DROP, Reason::EchoFenced);
    assert_eq!(dp.reason(Reason::DeadManExit).unwrap(), 1);
    dp.stamp(Duration::from_secs(10), monotonic_ns()).unwrap();
    expect(&mut dp, &f, XDP_TX, Reason::EchoReflected);
    // Through the kernel: the armed process is killed (SIGKILL).
    arm_for_a_child_and_kill_it(&mut dp);
    expect(&mut dp, &f, XDP_DROP, Reason::EchoFenced);
    assert_eq!(dp.reason(Reason::DeadManExit).unwrap(), 2);
}

#[test]
fn privileged_only_exact_echo_requests_of_the_configured_peer_are_reflected() {
    if !privileged("privileged_only_exact_echo_requests_of_the_configured_peer_are_reflected") {
        return;
    }
    let mut dp = setup();
    // The peer's node id from another address; an unknown node id from
    // the peer's address.
    expect(&mut dp, &request_spec(STRANGER, &echo(PEER, 0, 1)).build(), XDP_DROP, Reason::EchoNotPeer);
    expect(&mut dp, &request_spec(PEER_ADDR, &echo(7, 0, 1)).build(), XDP_DROP, Reason::EchoNotPeer);
    // Our own id from the peer's address, to the heartbeat port from
    // another port: not a reply, and not the peer's: never reflected.
    expect(&mut dp, &request_spec(PEER_ADDR, &echo(SELF_ID, 0, 1)).build(), XDP_DROP, Reason::EchoNotPeer);
    // One byte longer: not an echo (a heartbeat of the wrong length).
    let mut long = request_spec(PEER_ADDR, &echo(PEER, 0, 1));
    long.payload.push(0);
    expect(&mut dp, &long.build(), XDP_DROP, Reason::HbBadLength);
    // Truncated payload (cut frame): never reflected.
    let mut cut = request_spec(PEER_ADDR, &echo(PEER, 0, 1)).build();
    cut.truncate(cut.len() - 8);
    assert_ne!(dp.test_run(&cut).unwrap().verdict, XDP_TX);
    // A heartbeat (kind Director) is still a heartbeat, not reflected.
    let hb = Repr { kind: Kind::Director, ..echo(PEER, 0, 1) };
    let f = FrameSpec::udp(PEER_ADDR, ECHO_SPORT, OURS, PORT, &payload(&hb, &KEY)).build();
    expect(&mut dp, &f, XDP_DROP, Reason::HbAccepted);
    assert_eq!(dp.reason(Reason::EchoReflected).unwrap(), 0);
}

#[test]
fn privileged_a_returning_echo_is_verified_and_its_newest_sequence_recorded() {
    if !privileged("privileged_a_returning_echo_is_verified_and_its_newest_sequence_recorded") {
        return;
    }
    let mut dp = setup();
    let t0 = monotonic_ns();
    expect(&mut dp, &reply(PEER_ADDR, &echo(SELF_ID, 1, 7), &KEY), XDP_DROP, Reason::EchoReturned);
    let r = dp.echo_returns().unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].path, r[0].seq, r[0].count), (1, 7, 1));
    assert!(r[0].at_ns >= t0 && r[0].at_ns <= monotonic_ns(), "arrival on CLOCK_MONOTONIC");
    let recorded = r[0];

    // Refused, counted, the record untouched: a bad MAC, another node id,
    // from another address, a path out of range, an older or equal
    // sequence.
    expect(&mut dp, &reply(PEER_ADDR, &echo(SELF_ID, 1, 9), &OTHER_KEY), XDP_DROP, Reason::EchoBadMac);
    expect(&mut dp, &reply(PEER_ADDR, &echo(5, 1, 9), &KEY), XDP_DROP, Reason::EchoBadReply);
    expect(&mut dp, &reply(STRANGER, &echo(SELF_ID, 1, 9), &KEY), XDP_DROP, Reason::EchoBadReply);
    expect(&mut dp, &reply(PEER_ADDR, &echo(SELF_ID, MAX_ECHO_PATHS as u8, 9), &KEY), XDP_DROP, Reason::EchoBadReply);
    expect(&mut dp, &reply(PEER_ADDR, &echo(SELF_ID, 1, 6), &KEY), XDP_DROP, Reason::EchoStale);
    expect(&mut dp, &reply(PEER_ADDR, &echo(SELF_ID, 1, 7), &KEY), XDP_DROP, Reason::EchoStale);
    assert_eq!(dp.echo_returns().unwrap(), vec![recorded]);

    // Newer: recorded; another path has its own record.
    expect(&mut dp, &reply(PEER_ADDR, &echo(SELF_ID, 1, 8), &KEY), XDP_DROP, Reason::EchoReturned);
    expect(&mut dp, &reply(PEER_ADDR, &echo(SELF_ID, 0, 2), &KEY), XDP_DROP, Reason::EchoReturned);
    let r: Vec<(u8, u64, u64)> = dp.echo_returns().unwrap().iter().map(|e: &EchoReturn| (e.path, e.seq, e.count)).collect();
    assert_eq!(r, vec![(0, 2, 1), (1, 8, 2)]);
    assert_eq!(dp.reason(Reason::EchoReflected).unwrap(), 0, "a reply is never reflected");
}

#[test]
fn privileged_without_an_echo_identity_no_echo_is_taken_back() {
    if !privileged("privileged_without_an_echo_identity_no_echo_is_taken_back") {
        return;
    }
    let mut dp = setup();
    dp.set_echo_identity(0, PEER).unwrap();
    expect(&mut dp, &reply(PEER_ADDR, &echo(SELF_ID, 0, 1), &KEY), XDP_DROP, Reason::EchoBadReply);
    assert!(dp.echo_returns().unwrap().is_empty());
    // Ordinary traffic from the heartbeat port is not touched.
    let f = FrameSpec::udp(PEER_ADDR, PORT, OURS, ECHO_SPORT, b"not an echo").build();
    assert_eq!(dp.test_run(&f).unwrap().verdict, XDP_PASS);
}
