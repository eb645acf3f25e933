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

#[test]
fn privileged_synced_nat_flows_translate_replies_on_the_standby() {
    if !privileged("privileged_synced_nat_flows_translate_replies_on_the_standby") {
        return;
    }
    // NAT to port 5080 on the real servers: after a takeover the replies
    // of a synced flow come back through the standby, which must give them
    // the VIP back as their source, as the active did.
    let mut active = load();
    let mut reals: Vec<_> = (0..3).map(|i| real4(i, 1)).collect();
    for r in reals.iter_mut() {
        r.port = 5080;
    }
    let cfg = service(IpAddr::V4(VIP4), 5060, Protocol::Udp, Scheduler::Rr, Forward::Nat, reals);
    active.set_service(&cfg).unwrap();
    let mut events = active.take_flow_events().unwrap();
    active.set_flow_events(true).unwrap();
    let mut standby = load();
    let mut scfg = cfg.clone();
    scfg.reals.reverse();
    standby.set_service(&scfg).unwrap();
    let img = active.service(&cfg.key()).unwrap().clone();
    for c in 0..9u32 {
        let f = FrameSpec::udp(client4(c), 42000, IpAddr::V4(VIP4), 5060, b"INVITE").build();
        assert_eq!(active.test_run(&f).unwrap().verdict, XDP_TX);
    }
    let mut synced = 0;
    while let Some(e) = events.next() {
        let (addr, port) = img.slot_ids[e.value.real_idx as usize].unwrap();
        assert!(standby.upsert_synced_flow(&e.key, &cfg.key(), (addr, port), e.value.created_ns, e.value.flags).unwrap());
        synced += 1;
    }
    assert_eq!(synced, 9);
    assert_eq!(standby.nat_reverse().len(), 9, "one reverse entry per synced NAT flow");
    // Each real server's reply to its client, on the standby: translated.
    for (k, v) in active.flows() {
        let real = img.slot_ids[v.real_idx as usize].unwrap().0;
        let client = IpAddr::V6(std::net::Ipv6Addr::from(k.src)).to_canonical();
        let reply = FrameSpec::udp(real, 5080, client, k.sport, b"SIP/2.0 200 OK").build();
        let r = standby.test_run(&reply).unwrap();
        assert_eq!(r.verdict, XDP_TX, "reply of {client}:{} not forwarded", k.sport);
        let src = std::net::Ipv4Addr::new(r.frame[26], r.frame[27], r.frame[28], r.frame[29]);
        let sport = u16::from_be_bytes([r.frame[34], r.frame[35]]);
        assert_eq!((src, sport), (VIP4, 5060), "the reply leaves from the VIP");
    }
    assert_eq!(standby.reason(Reason::ReverseNat).unwrap(), 9);
    // Removed with its flow.
    let (k, v) = active.flows().into_iter().next().unwrap();
    standby.remove_synced_flow(&k).unwrap();
    assert_eq!(standby.nat_reverse().len(), 8);
    let real = img.slot_ids[v.real_idx as usize].unwrap().0;
    let client = IpAddr::V6(std::net::Ipv6Addr::from(k.src)).to_canonical();
    let reply = FrameSpec::udp(real, 5080, client, k.sport, b"SIP/2.0 200 OK").build();
    assert_eq!(standby.test_run(&reply).unwrap().verdict, XDP_PASS, "no reverse entry once the flow is gone");
}
