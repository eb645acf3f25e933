//! The kernel side of state sync: new and expired flows are pushed to the
//! flow ring buffer, and a flow written into another node's table (with
//! its own service ids and real-server slots) keeps its real server there.

mod support;

use std::net::IpAddr;

use support::*;
use tandem_dataplane::{
    common::*,
    config::Protocol,
    packet::FrameSpec,
};

#[test]
fn privileged_new_and_expired_flows_are_pushed_and_replayed_on_the_standby() {
    if !privileged("privileged_new_and_expired_flows_are_pushed_and_replayed_on_the_standby") {
        return;
    }
    let mut active = load();
    let cfg = service(IpAddr::V4(VIP4), 5060, Protocol::Udp, Scheduler::Rr, Forward::Dr, (0..4).map(|i| real4(i, 1)).collect());
    active.set_service(&cfg).unwrap();
    let mut events = active.take_flow_events().unwrap();
    // Off by default: nothing is pushed.
    let f0 = FrameSpec::udp(client4(100), 40000, IpAddr::V4(VIP4), 5060, b"x").build();
    assert_eq!(active.test_run(&f0).unwrap().verdict, XDP_TX);
    assert!(events.next().is_none());
    active.set_flow_events(true).unwrap();

    // 40 new flows, rr: each real server gets 10; every one is pushed.
    let mut picked = Vec::new();
    for c in 0..40u32 {
        let f = FrameSpec::udp(client4(c), 41000, IpAddr::V4(VIP4), 5060, b"INVITE").build();
        let r = active.test_run(&f).unwrap();
        assert_eq!(r.verdict, XDP_TX);
        picked.push(r.frame[0..6].to_vec());
    }
    let mut pushed = Vec::new();
    while let Some(e) = events.next() {
        assert_eq!(e.kind, FLOW_EVENT_NEW);
        pushed.push(e);
    }
    assert_eq!(pushed.len(), 40, "every new flow is pushed once");
    // An established flow is not pushed again.
    let again = FrameSpec::udp(client4(0), 41000, IpAddr::V4(VIP4), 5060, b"ACK").build();
    active.test_run(&again).unwrap();
    assert!(events.next().is_none());

    // The standby has the same service with its real servers listed in
    // another order (other slots) and rr starting elsewhere.
    let mut standby = load();
    let mut scfg = cfg.clone();
    scfg.reals.reverse();
    standby.set_service(&scfg).unwrap();
    let img = active.service(&cfg.key()).unwrap().clone();
    for e in &pushed {
        let (addr, port) = img.slot_ids[e.value.real_idx as usize].unwrap();
        assert!(standby.upsert_synced_flow(&e.key, &cfg.key(), (addr, port), e.value.created_ns, e.value.flags).unwrap());
    }
    // Every flow reaches the same real server (MAC) on the standby.
    let mut moved = 0;
    for c in 0..40u32 {
        let f = FrameSpec::udp(client4(c), 41000, IpAddr::V4(VIP4), 5060, b"BYE").build();
        let r = standby.test_run(&f).unwrap();
        assert_eq!(r.verdict, XDP_TX);
        if r.frame[0..6] != picked[c as usize][..] {
            moved += 1;
        }
    }
    assert_eq!(moved, 0, "flows moved on the standby");
    assert_eq!(standby.reason(Reason::ForwardDr).unwrap(), 40);
    let sid = standby.service(&scfg.key()).unwrap().service.id;
    let total: u64 = (0..4).map(|s| standby.active_conns(sid, s).unwrap()).sum();
    assert_eq!(total, 40, "synced flows count as active connections");
    assert_eq!(standby.service_counters(sid).unwrap().new_flows, 0, "no flow was scheduled anew");

    // Expiry on the active: removal then a fresh schedule are pushed.
    active.set_settings(&Settings { udp_timeout_ns: 10 * SEC_NS, ..Settings::default() }).unwrap();
    active.age_flows(20 * SEC_NS).unwrap();
    active.test_run(&again).unwrap();
    let e1 = events.next().expect("removal pushed");
    let e2 = events.next().expect("new flow pushed");
    assert_eq!((e1.kind, e2.kind), (FLOW_EVENT_REMOVED, FLOW_EVENT_NEW));
    assert_eq!(e1.key, e2.key);
    // The standby drops it on the removal.
    standby.remove_synced_flow(&e1.key).unwrap();
    assert!(standby.flow(&e1.key).is_none());
    let total: u64 = (0..4).map(|s| standby.active_conns(sid, s).unwrap()).sum();
    assert_eq!(total, 39);
    // A flow for a service the standby does not have is refused, not kept.
    let other = ServiceKey::new([9; 16], 9, PROTO_UDP, FAMILY_V6);
    assert!(!standby.upsert_synced_flow(&e1.key, &other, (IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0), 0, 0).unwrap());
}
