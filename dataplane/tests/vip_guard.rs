//! The VIP guard: a node that does not own a VIP must neither answer nor
//! reject traffic to it. Traffic to a guarded VIP (`set_vip_guarded`)
//! that is not owned is dropped and counted (`vip_not_owned`), never
//! passed to the stack (which would answer with ICMP port unreachable) and
//! never dispatched; once owned it is dispatched as before; traffic to
//! other addresses is untouched; an unguarded VIP behaves as before the
//! guard. Runs the real program through `BPF_PROG_TEST_RUN`.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use support::*;
use tandem_dataplane::{
    Dataplane,
    common::{Forward, Reason, Scheduler, XDP_DROP, XDP_PASS, XDP_TX},
    config::Protocol,
    packet::FrameSpec,
};

const OURS: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

fn setup() -> Dataplane {
    let mut dp = load();
    let cfg = service(IpAddr::V4(VIP4), 5060, Protocol::Udp, Scheduler::Rr, Forward::Dr, vec![real4(1, 1)]);
    dp.set_service(&cfg).expect("set service");
    dp
}

fn to_vip(port: u16) -> Vec<u8> {
    FrameSpec::udp(client4(1), 40000, IpAddr::V4(VIP4), port, b"INVITE").build()
}

#[test]
fn privileged_traffic_to_a_guarded_vip_not_owned_is_dropped_and_counted() {
    if !privileged("privileged_traffic_to_a_guarded_vip_not_owned_is_dropped_and_counted") {
        return;
    }
    let mut dp = setup();
    dp.set_vip_guarded(VIP4, true).unwrap();
    assert_eq!(dp.guarded_vips(), vec![VIP4]);
    // The service port (would be dispatched) and a port without a service
    // (would be passed to the stack): both dropped.
    for port in [5060, 5070] {
        let r = dp.test_run(&to_vip(port)).unwrap();
        assert_eq!(r.verdict, XDP_DROP, "port {port}: not owned, dropped");
    }
    assert_eq!(dp.reason(Reason::VipNotOwned).unwrap(), 2);
    assert_eq!(dp.reason(Reason::ForwardDr).unwrap(), 0, "a node that does not own the VIP does not dispatch");
    assert_eq!(dp.reason(Reason::NotService).unwrap(), 0);
}

#[test]
fn privileged_an_owned_guarded_vip_is_dispatched_as_before() {
    if !privileged("privileged_an_owned_guarded_vip_is_dispatched_as_before") {
        return;
    }
    let mut dp = setup();
    dp.set_vip_guarded(VIP4, true).unwrap();
    dp.set_vip_owned(VIP4, OURS, true).unwrap();
    let f = to_vip(5060);
    let r = dp.test_run(&f).unwrap();
    assert_eq!(r.verdict, XDP_TX);
    assert_eq!(&r.frame[0..6], &real4(1, 1).mac);
    assert_eq!(&r.frame[12..], &f[12..]);
    assert_eq!(dp.reason(Reason::ForwardDr).unwrap(), 1);
    assert_eq!(dp.reason(Reason::VipNotOwned).unwrap(), 0);
    // Stepped down: dropped again; taken over again: dispatched again.
    dp.set_vip_owned(VIP4, OURS, false).unwrap();
    assert_eq!(dp.test_run(&f).unwrap().verdict, XDP_DROP);
    assert_eq!(dp.reason(Reason::VipNotOwned).unwrap(), 1);
    dp.set_vip_owned(VIP4, OURS, true).unwrap();
    assert_eq!(dp.test_run(&f).unwrap().verdict, XDP_TX);
    assert_eq!(dp.reason(Reason::ForwardDr).unwrap(), 2);
}

#[test]
fn privileged_other_traffic_and_unguarded_vips_are_untouched_by_the_guard() {
    if !privileged("privileged_other_traffic_and_unguarded_vips_are_untouched_by_the_guard") {
        return;
    }
    let mut dp = setup();
    // Not guarded: dispatched without being owned (as before the guard).
    assert_eq!(dp.test_run(&to_vip(5060)).unwrap().verdict, XDP_TX);
    dp.set_vip_guarded(VIP4, true).unwrap();
    // Another address on the same port: passed, counted as before.
    let other = FrameSpec::udp(client4(1), 40000, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 7)), 5060, b"x").build();
    assert_eq!(dp.test_run(&other).unwrap().verdict, XDP_PASS);
    assert_eq!(dp.reason(Reason::NotService).unwrap(), 1);
    // Forgotten: not guarded any more.
    dp.set_vip_guarded(VIP4, false).unwrap();
    assert!(dp.guarded_vips().is_empty());
    assert_eq!(dp.test_run(&to_vip(5060)).unwrap().verdict, XDP_TX);
    assert_eq!(dp.reason(Reason::VipNotOwned).unwrap(), 0);
}
