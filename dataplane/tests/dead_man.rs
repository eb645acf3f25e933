//! The dead-man switch in the kernel: with a budget armed, a daemon stamp
//! older than the budget fences the node — ARP for an owned VIP is not
//! answered, traffic to the VIP is dropped (never passed to the stack,
//! which would answer with ICMP), other traffic passes — and the trip is
//! latched (counted once) until the daemon stamps again; with no budget
//! the switch never fences. Runs the real program through
//! `BPF_PROG_TEST_RUN`.

mod support;

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use support::*;
use tandem_dataplane::{common::*, monotonic_ns, packet::FrameSpec};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const OTHER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 101);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const OURS: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
const CLIENT_MAC: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 1];

fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&CLIENT.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f.resize(60, 0);
    f
}

fn udp_to(dst: Ipv4Addr) -> Vec<u8> {
    FrameSpec::udp(IpAddr::V4(CLIENT), 40000, IpAddr::V4(dst), 5060, b"OPTIONS sip:x SIP/2.0\r\n\r\n").build()
}

#[test]
fn privileged_a_stale_stamp_fences_the_node_until_the_daemon_stamps_again() {
    if !privileged("privileged_a_stale_stamp_fences_the_node_until_the_daemon_stamps_again") {
        return;
    }
    let mut dp = load();
    dp.set_vip_owned(VIP, OURS, true).unwrap();
    let budget = Duration::from_millis(20);
    dp.arm_dead_man(budget, 0, monotonic_ns()).unwrap();
    // Fresh: ARP answered, nothing tripped.
    assert_eq!(dp.test_run(&arp_request(VIP)).unwrap().verdict, XDP_TX);
    assert_eq!(dp.dead_man().unwrap().tripped_ns, None);
    assert_eq!(dp.dead_man().unwrap().budget_ns, 20_000_000);

    // The daemon stops stamping for longer than the budget.
    std::thread::sleep(Duration::from_millis(30));
    let r = dp.test_run(&arp_request(VIP)).unwrap();
    assert_eq!(r.verdict, XDP_DROP, "a fenced node answers no ARP for its VIP");
    assert_eq!(dp.reason(Reason::DeadManArp).unwrap(), 1);
    let tripped = dp.dead_man().unwrap().tripped_ns.expect("the trip is latched");
    assert!(tripped > 0);
    assert_eq!(dp.test_run(&udp_to(VIP)).unwrap().verdict, XDP_DROP, "VIP traffic is dropped, not passed");
    assert_eq!(dp.reason(Reason::DeadManDrop).unwrap(), 1);
    // Other traffic passes as before; ARP for another address too.
    assert_eq!(dp.test_run(&udp_to(OTHER)).unwrap().verdict, XDP_PASS);
    assert_eq!(dp.test_run(&arp_request(OTHER)).unwrap().verdict, XDP_PASS);
    // Counted once per trip, and the latch holds.
    assert_eq!(dp.reason(Reason::DeadManTrip).unwrap(), 1);
    assert_eq!(dp.dead_man().unwrap().tripped_ns, Some(tripped));

    // The daemon stamps again (after it stepped down): serving resumes.
    dp.stamp(budget, monotonic_ns()).unwrap();
    assert_eq!(dp.dead_man().unwrap().tripped_ns, None);
    assert_eq!(dp.test_run(&arp_request(VIP)).unwrap().verdict, XDP_TX);
    assert_eq!(dp.reason(Reason::DeadManTrip).unwrap(), 1);
}

#[test]
fn privileged_with_no_budget_the_switch_never_fences() {
    if !privileged("privileged_with_no_budget_the_switch_never_fences") {
        return;
    }
    let mut dp = load();
    dp.set_vip_owned(VIP, OURS, true).unwrap();
    // Never armed: a stamp of 0 is ancient, and still nothing is fenced.
    assert_eq!(dp.test_run(&arp_request(VIP)).unwrap().verdict, XDP_TX);
    // Armed, then turned off at a clean stop.
    dp.arm_dead_man(Duration::from_millis(20), 0, monotonic_ns()).unwrap();
    dp.disarm_dead_man().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(dp.test_run(&arp_request(VIP)).unwrap().verdict, XDP_TX);
    assert_ne!(dp.test_run(&udp_to(VIP)).unwrap().verdict, XDP_DROP);
    assert_eq!(dp.reason(Reason::DeadManTrip).unwrap(), 0);
    assert_eq!(dp.dead_man().unwrap(), tandem_dataplane::DeadManState::default());
}

#[test]
fn privileged_an_exited_daemon_fences_the_node_at_once() {
    if !privileged("privileged_an_exited_daemon_fences_the_node_at_once") {
        return;
    }
    let mut dp = load();
    dp.set_vip_owned(VIP, OURS, true).unwrap();
    dp.arm_dead_man(Duration::from_secs(10), std::process::id(), monotonic_ns()).unwrap();
    assert_eq!(dp.test_run(&arp_request(VIP)).unwrap().verdict, XDP_TX);
    // The kernel marks the exit: fenced at once, stamp fresh or not.
    dp.mark_dead_man_exited().unwrap();
    assert_eq!(dp.test_run(&arp_request(VIP)).unwrap().verdict, XDP_DROP, "no ARP for the VIP");
    assert_eq!(dp.test_run(&udp_to(VIP)).unwrap().verdict, XDP_DROP, "VIP traffic dropped");
    assert_eq!(dp.test_run(&udp_to(OTHER)).unwrap().verdict, XDP_PASS);
    assert_eq!(dp.reason(Reason::DeadManTrip).unwrap(), 1);
    assert_eq!(dp.reason(Reason::DeadManExit).unwrap(), 1);
    assert!(dp.dead_man().unwrap().tripped_ns.is_some());
    // A stamp (a live daemon) clears the exit and the latch.
    dp.stamp(Duration::from_secs(10), monotonic_ns()).unwrap();
    let d = dp.dead_man().unwrap();
    assert!(!d.exited && d.tripped_ns.is_none());
    assert_eq!(d.tgid, std::process::id());
    assert_eq!(dp.test_run(&arp_request(VIP)).unwrap().verdict, XDP_TX);
    // Disarmed (clean stop): the tgid is forgotten.
    dp.disarm_dead_man().unwrap();
    assert_eq!(dp.dead_man().unwrap(), tandem_dataplane::DeadManState::default());
}

#[test]
fn privileged_kill_9_of_the_armed_process_fences_the_node_through_the_exit_tracepoint() {
    if !privileged("privileged_kill_9_of_the_armed_process_fences_the_node_through_the_exit_tracepoint") {
        return;
    }
    let mut dp = load();
    dp.set_vip_owned(VIP, OURS, true).unwrap();
    // Another process's exit is not the armed one's.
    let mut other = std::process::Command::new("true").spawn().expect("spawn true");
    arm_for_a_child_and_kill_it(&mut dp);
    other.wait().unwrap();
    assert_eq!(dp.test_run(&arp_request(VIP)).unwrap().verdict, XDP_DROP, "no ARP for the VIP");
    assert_eq!(dp.test_run(&udp_to(VIP)).unwrap().verdict, XDP_DROP, "VIP traffic dropped");
    assert_eq!(dp.reason(Reason::DeadManExit).unwrap(), 1);
    assert!(dp.dead_man().unwrap().tripped_ns.is_some());
}

#[test]
fn privileged_other_exits_and_a_disarmed_exit_do_not_fence() {
    if !privileged("privileged_other_exits_and_a_disarmed_exit_do_not_fence") {
        return;
    }
    let mut dp = load();
    dp.set_vip_owned(VIP, OURS, true).unwrap();
    assert!(dp.exit_fence_attached());
    // Armed for a child that keeps running while others exit.
    let mut armed = std::process::Command::new("sleep").arg("5").spawn().expect("spawn sleep");
    dp.arm_dead_man(Duration::from_secs(10), armed.id(), monotonic_ns()).unwrap();
    for _ in 0..3 {
        std::process::Command::new("true").status().unwrap();
    }
    assert!(!dp.dead_man().unwrap().exited);
    // Disarmed before it dies (a clean stop): no fence.
    dp.disarm_dead_man().unwrap();
    armed.kill().unwrap();
    armed.wait().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(!dp.dead_man().unwrap().exited);
    assert_eq!(dp.test_run(&arp_request(VIP)).unwrap().verdict, XDP_TX);
    assert_eq!(dp.reason(Reason::DeadManExit).unwrap(), 0);
}
