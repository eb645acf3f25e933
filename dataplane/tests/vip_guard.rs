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

/// The VIP filter (`VIP_FILTER`) lets a packet skip the guard and the
/// service lookups only when its destination is certainly none of the
/// node's addresses: a VIP guarded without any service on it is still
/// guarded, a service's address and a VIP are in the filter while
/// configured and out of it once gone, and other addresses pass.
#[test]
fn privileged_the_vip_filter_holds_every_service_address_and_guarded_vip_and_only_while_they_are_configured() {
    if !privileged("privileged_the_vip_filter_holds_every_service_address_and_guarded_vip_and_only_while_they_are_configured") {
        return;
    }
    let mut dp = load();
    let bare = Ipv4Addr::new(198, 18, 0, 101);
    let mapped = |a: Ipv4Addr| a.to_ipv6_mapped().octets();
    let empty = dp.vip_filter().unwrap();
    assert_eq!(empty.words, [0; 16], "nothing configured, nothing in the filter");
    // A guarded VIP with no service: traffic to it is still dropped.
    dp.set_vip_guarded(bare, true).unwrap();
    assert!(dp.vip_filter().unwrap().may_contain(&mapped(bare)));
    assert_eq!(dp.vip_filter().unwrap().all_owned, 0, "a guarded VIP not owned: the guard's fast path is off");
    let to_bare = FrameSpec::udp(client4(1), 40000, IpAddr::V4(bare), 7000, b"x").build();
    assert_eq!(dp.test_run(&to_bare).unwrap().verdict, XDP_DROP, "guarded, not owned: dropped");
    assert_eq!(dp.reason(Reason::VipNotOwned).unwrap(), 1);
    // IPv4 and IPv6 service addresses.
    let v4 = service(IpAddr::V4(VIP4), 5060, Protocol::Udp, Scheduler::Rr, Forward::Dr, vec![real4(1, 1)]);
    let v6 = service(IpAddr::V6(VIP6), 5060, Protocol::Udp, Scheduler::Rr, Forward::Dr, vec![real6(1, 1)]);
    dp.set_service(&v4).unwrap();
    dp.set_service(&v6).unwrap();
    let f = dp.vip_filter().unwrap();
    assert!(f.may_contain(&mapped(VIP4)) && f.may_contain(&VIP6.octets()), "service addresses: {f:?}");
    assert_eq!(dp.test_run(&to_vip(5060)).unwrap().verdict, XDP_TX, "the IPv4 service is dispatched");
    let to_v6 = FrameSpec::udp(client6(1), 40000, IpAddr::V6(VIP6), 5060, b"INVITE").build();
    assert_eq!(dp.test_run(&to_v6).unwrap().verdict, XDP_TX, "the IPv6 service is dispatched");
    // Gone: out of the filter (unless another address shares the bit).
    dp.remove_service(&v4.key()).unwrap();
    dp.remove_service(&v6.key()).unwrap();
    dp.set_vip_guarded(bare, false).unwrap();
    let mut expected = tandem_dataplane::common::VipFilter { all_owned: 1, ..Default::default() };
    assert_eq!(dp.vip_filter().unwrap(), expected, "everything removed, the filter is empty again (nothing guarded: all owned)");
    assert_eq!(dp.test_run(&to_bare).unwrap().verdict, XDP_PASS, "no longer guarded: passed");
    // An owned VIP is in it too (its ARP and dispatch need the lookups).
    dp.set_vip_owned(bare, OURS, true).unwrap();
    expected.insert(&mapped(bare));
    assert_eq!(dp.vip_filter().unwrap(), expected);
    // Guarded and owned: the fast path is on; released: off, and the
    // traffic dropped again.
    dp.set_vip_guarded(bare, true).unwrap();
    assert_eq!(dp.vip_filter().unwrap().all_owned, 1, "every guarded VIP owned");
    assert_eq!(dp.test_run(&to_bare).unwrap().verdict, XDP_PASS, "owned, no service on the port: passed");
    dp.set_vip_owned(bare, OURS, false).unwrap();
    assert_eq!(dp.vip_filter().unwrap().all_owned, 0);
    assert_eq!(dp.test_run(&to_bare).unwrap().verdict, XDP_DROP, "released: dropped");
}
