//! Key rotation in the kernel: a sender's entry holds its current key and,
//! during a rotation, the next one. A heartbeat (and a returning echo) is
//! taken under either — the next key's counted as `hb_next_key` — and
//! under no other key; rewriting the entry with new keys
//! (`rekey_heartbeat_sender`) keeps what the kernel took from the sender,
//! so its sequence goes on and it is heard throughout. An entry without a
//! next key does not take the all-zero key (the empty slot).
//!
//! `BPF_PROG_TEST_RUN` runs the program as if the frame came in on the
//! loopback interface (ifindex 1): that is the sender's path here.

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

const OLD: [u8; 16] = *b"rotation-old-key";
const NEW: [u8; 16] = *b"rotation-new-key";
const STRANGER_KEY: [u8; 16] = *b"some-other-key!!";
const SELF_ID: u32 = 1;
const PEER: u32 = 2;
const PORT: u16 = 694;
const ECHO_SPORT: u16 = 40001;
const OURS: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
const PEER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3));
const TEST_RUN_IFINDEX: u32 = 1;
const BOOT: u64 = 0x5eed_0000_0000_0002;

fn hb(seq: u64) -> Repr {
    Repr {
        kind: Kind::Director,
        state: NodeState::Active,
        priority: 100,
        node_id: PEER,
        path: 0,
        epoch: 4,
        boot_id: BOOT,
        seq,
        sent_ns: seq * 1000,
        active_channels: 0,
        capacity: 0,
        restart_grace_ms: 0,
    }
}

fn payload(r: &Repr, key: &[u8; 16]) -> Vec<u8> {
    let mut p = vec![0u8; heartbeat::LEN];
    r.emit(
        &mut Packet::new_unchecked(&mut p[..]),
        &Key::from_bytes(key),
    );
    p
}

/// The peer's heartbeat under `key`.
fn frame(seq: u64, key: &[u8; 16]) -> Vec<u8> {
    FrameSpec::udp(PEER_ADDR, PORT, OURS, PORT, &payload(&hb(seq), key)).build()
}

/// One of this node's echoes coming back from the peer, made under `key`.
fn echo_back(seq: u64, key: &[u8; 16]) -> Vec<u8> {
    let r = Repr {
        kind: Kind::Echo,
        node_id: SELF_ID,
        state: NodeState::Standby,
        ..hb(seq)
    };
    FrameSpec::udp(PEER_ADDR, PORT, OURS, ECHO_SPORT, &payload(&r, key)).build()
}

fn peer(key: &[u8; 16], next: Option<&[u8; 16]>) -> HeartbeatSender {
    HeartbeatSender {
        node_id: PEER,
        addr: PEER_ADDR,
        kind: Kind::Director,
        ifindex: TEST_RUN_IFINDEX,
        key: Key::from_bytes(key),
        next_key: next.map(Key::from_bytes),
        restart_gap: Duration::ZERO,
    }
}

fn setup(key: &[u8; 16], next: Option<&[u8; 16]>) -> Dataplane {
    let mut dp = load();
    dp.set_heartbeat_port(PORT).unwrap();
    dp.add_heartbeat_sender(&peer(key, next)).unwrap();
    dp.set_echo_identity(SELF_ID, PEER).unwrap();
    dp
}

/// Runs `f`: its verdict is `reason` (counted once), and `hb_next_key`
/// moved by `next`.
fn expect(dp: &mut Dataplane, f: &[u8], reason: Reason, next: u64) {
    let before = dp.reason(reason).unwrap();
    let next_before = dp.reason(Reason::HbNextKey).unwrap();
    let r = dp.test_run(f).unwrap();
    assert_eq!(r.verdict, XDP_DROP, "verdict for {}", reason.name());
    assert_eq!(
        dp.reason(reason).unwrap(),
        before + 1,
        "counter {}",
        reason.name()
    );
    assert_eq!(
        dp.reason(Reason::HbNextKey).unwrap(),
        next_before + next,
        "hb_next_key after {}",
        reason.name()
    );
}

fn peer_seq(dp: &Dataplane) -> u64 {
    let peers: Vec<HbPeer> = dp
        .heartbeat_peers()
        .into_iter()
        .filter(|p| p.node_id == PEER)
        .collect();
    assert_eq!(peers.len(), 1, "{peers:?}");
    peers[0].seq
}

#[test]
fn privileged_a_heartbeat_is_taken_under_the_current_or_the_next_key_and_no_other() {
    if !privileged("privileged_a_heartbeat_is_taken_under_the_current_or_the_next_key_and_no_other")
    {
        return;
    }
    // Step 1 of a rotation: the next key added beside the current one.
    let mut dp = setup(&OLD, Some(&NEW));
    expect(&mut dp, &frame(1, &OLD), Reason::HbAccepted, 0);
    expect(&mut dp, &frame(2, &NEW), Reason::HbAccepted, 1);
    expect(&mut dp, &frame(3, &STRANGER_KEY), Reason::HbBadMac, 0);
    assert_eq!(peer_seq(&dp), 2, "the unknown key moved nothing");
    // Step 2: current and next swapped, written in place: the record stays.
    dp.rekey_heartbeat_sender(&peer(&NEW, Some(&OLD))).unwrap();
    assert_eq!(peer_seq(&dp), 2, "rekeying keeps what the kernel took");
    expect(&mut dp, &frame(2, &NEW), Reason::HbReplay, 0);
    expect(&mut dp, &frame(3, &NEW), Reason::HbAccepted, 0);
    expect(&mut dp, &frame(4, &OLD), Reason::HbAccepted, 1);
    // Step 3: the old key dropped: refused, as any other key.
    dp.rekey_heartbeat_sender(&peer(&NEW, None)).unwrap();
    expect(&mut dp, &frame(5, &OLD), Reason::HbBadMac, 0);
    expect(&mut dp, &frame(5, &STRANGER_KEY), Reason::HbBadMac, 0);
    expect(&mut dp, &frame(5, &NEW), Reason::HbAccepted, 0);
    assert_eq!(peer_seq(&dp), 5);
}

#[test]
fn privileged_an_entry_without_a_next_key_does_not_take_the_all_zero_key() {
    if !privileged("privileged_an_entry_without_a_next_key_does_not_take_the_all_zero_key") {
        return;
    }
    let mut dp = setup(&OLD, None);
    expect(&mut dp, &frame(1, &[0; 16]), Reason::HbBadMac, 0);
    expect(&mut dp, &echo_back(1, &[0; 16]), Reason::EchoBadMac, 0);
    assert!(dp.heartbeat_peers().is_empty());
    expect(&mut dp, &frame(1, &OLD), Reason::HbAccepted, 0);
}

#[test]
fn privileged_a_returning_echo_is_taken_under_either_key() {
    if !privileged("privileged_a_returning_echo_is_taken_under_either_key") {
        return;
    }
    let mut dp = setup(&OLD, Some(&NEW));
    expect(&mut dp, &echo_back(1, &OLD), Reason::EchoReturned, 0);
    expect(&mut dp, &echo_back(2, &NEW), Reason::EchoReturned, 1);
    expect(&mut dp, &echo_back(3, &STRANGER_KEY), Reason::EchoBadMac, 0);
    let r = dp.echo_returns().unwrap();
    assert_eq!(r.iter().map(|e| e.seq).max(), Some(2), "{r:?}");
}
