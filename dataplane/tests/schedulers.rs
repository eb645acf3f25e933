//! The schedulers in the kernel, with IPVS semantics: wrr follows the
//! weights, lc/wlc/sed/nq follow the kernel's active-connection counts,
//! sh/dh/mh are stable for a key, and Maglev moves about 1/N of the flows
//! when one of N real servers goes.

mod support;

use std::{collections::HashMap, net::IpAddr};

use support::*;
use tandem_dataplane::{Dataplane, ServiceConfig, common::*, config::Protocol, packet::FrameSpec};

/// Sends one new UDP flow from client `c` and returns the real server
/// slot it went to (from the destination MAC), or None if not forwarded.
fn send(dp: &mut Dataplane, cfg: &ServiceConfig, c: u32, sport: u16) -> Option<u32> {
    let client = if cfg.vip.is_ipv6() {
        client6(c)
    } else {
        client4(c)
    };
    let mut spec = FrameSpec::udp(
        client,
        sport,
        cfg.vip,
        cfg.port,
        b"INVITE sip:ivr@tandem SIP/2.0",
    );
    spec.proto = cfg.proto;
    spec.tcp_flags = 0x02;
    let r = dp.test_run(&spec.build()).expect("test run");
    if r.verdict != XDP_TX {
        return None;
    }
    let slot = r.frame[5] as u32 - 10;
    Some(slot)
}

fn dist(dp: &mut Dataplane, cfg: &ServiceConfig, flows: u32) -> Vec<u32> {
    let mut counts = vec![0u32; cfg.reals.len()];
    for i in 0..flows {
        let slot = send(dp, cfg, i, 40000 + (i % 7) as u16).expect("forwarded");
        counts[slot as usize] += 1;
    }
    counts
}

#[test]
fn privileged_wrr_matches_weights_within_2_percent() {
    if !privileged("privileged_wrr_matches_weights_within_2_percent") {
        return;
    }
    let mut dp = load();
    let weights = [5u32, 3, 1, 1];
    let reals = weights
        .iter()
        .enumerate()
        .map(|(i, w)| real4(i as u8, *w))
        .collect();
    let cfg = service(
        IpAddr::V4(VIP4),
        5060,
        Protocol::Udp,
        Scheduler::Wrr,
        Forward::Dr,
        reals,
    );
    dp.set_service(&cfg).unwrap();
    let n = 10_000;
    let counts = dist(&mut dp, &cfg, n);
    let total: u32 = weights.iter().sum();
    for (i, w) in weights.iter().enumerate() {
        let want = *w as f64 / total as f64;
        let got = counts[i] as f64 / n as f64;
        assert!(
            (got - want).abs() <= 0.02 * want.max(0.05),
            "real {i}: {got:.4} of flows, weight share {want:.4} ({counts:?})"
        );
    }
    // The kernel counted every new flow on its real server.
    let id = dp.service(&cfg.key()).unwrap().service.id;
    for (i, c) in counts.iter().enumerate() {
        assert_eq!(dp.real_counters(id, i as u32).unwrap().new_flows, *c as u64);
        assert_eq!(dp.active_conns(id, i as u32).unwrap(), *c as u64);
    }
}

#[test]
fn privileged_rr_rotates_and_skips_unavailable() {
    if !privileged("privileged_rr_rotates_and_skips_unavailable") {
        return;
    }
    let mut dp = load();
    let mut reals: Vec<_> = (0..4).map(|i| real4(i, 1)).collect();
    reals[1].state = tandem_dataplane::RealState::Draining;
    reals[2].weight = 0;
    let cfg = service(
        IpAddr::V4(VIP4),
        5060,
        Protocol::Udp,
        Scheduler::Rr,
        Forward::Dr,
        reals,
    );
    dp.set_service(&cfg).unwrap();
    let picks: Vec<u32> = (0..6)
        .map(|i| send(&mut dp, &cfg, i, 40000).unwrap())
        .collect();
    assert_eq!(picks, vec![0, 3, 0, 3, 0, 3]);
}

#[test]
fn privileged_lc_and_wlc_follow_active_counts() {
    if !privileged("privileged_lc_and_wlc_follow_active_counts") {
        return;
    }
    let mut dp = load();
    // lc: the real server with the fewest active connections.
    let cfg = service(
        IpAddr::V4(VIP4),
        5060,
        Protocol::Udp,
        Scheduler::Lc,
        Forward::Dr,
        (0..3).map(|i| real4(i, 1)).collect(),
    );
    let id = dp.set_service(&cfg).unwrap().service.id;
    for (slot, n) in [(0, 5u64), (1, 2), (2, 7)] {
        dp.set_active_conns(id, slot, n).unwrap();
    }
    assert_eq!(send(&mut dp, &cfg, 1, 40000), Some(1));
    assert_eq!(dp.active_conns(id, 1).unwrap(), 3);
    // Fill up: the next flows go to 1 until it reaches 5, then 0 and 1 alternate.
    let picks: Vec<u32> = (2..8)
        .map(|c| send(&mut dp, &cfg, c, 40000).unwrap())
        .collect();
    assert_eq!(picks, vec![1, 1, 0, 1, 0, 1]);
    // A closed TCP connection gives its count back.
    let tcfg = service(
        IpAddr::V4(VIP4),
        80,
        Protocol::Tcp,
        Scheduler::Lc,
        Forward::Dr,
        (0..2).map(|i| real4(i, 1)).collect(),
    );
    let tid = dp.set_service(&tcfg).unwrap().service.id;
    assert_eq!(send(&mut dp, &tcfg, 1, 41000), Some(0));
    assert_eq!(dp.active_conns(tid, 0).unwrap(), 1);
    let fin = FrameSpec::tcp(client4(1), 41000, IpAddr::V4(VIP4), 80, 0x11, b"").build();
    assert_eq!(dp.test_run(&fin).unwrap().verdict, XDP_TX);
    assert_eq!(dp.active_conns(tid, 0).unwrap(), 0);
    assert_eq!(
        send(&mut dp, &tcfg, 2, 41000),
        Some(0),
        "lc again prefers the now idle slot 0"
    );

    // wlc: active / weight; weights 1, 3: slot 1 takes 3 of every 4.
    let wcfg = service(
        IpAddr::V4(VIP4),
        5062,
        Protocol::Udp,
        Scheduler::Wlc,
        Forward::Dr,
        vec![real4(0, 1), real4(1, 3)],
    );
    let wid = dp.set_service(&wcfg).unwrap().service.id;
    let counts = dist(&mut dp, &wcfg, 400);
    assert_eq!(counts, vec![100, 300]);
    assert_eq!(dp.active_conns(wid, 0).unwrap(), 100);
    // sed prefers the heavier server when both are idle ((0+1)/3 < (0+1)/1).
    let scfg = service(
        IpAddr::V4(VIP4),
        5063,
        Protocol::Udp,
        Scheduler::Sed,
        Forward::Dr,
        vec![real4(0, 1), real4(1, 3)],
    );
    dp.set_service(&scfg).unwrap();
    assert_eq!(send(&mut dp, &scfg, 1, 40000), Some(1));
    // nq sends to an idle server first, whatever the weights.
    let ncfg = service(
        IpAddr::V4(VIP4),
        5064,
        Protocol::Udp,
        Scheduler::Nq,
        Forward::Dr,
        vec![real4(0, 1), real4(1, 3)],
    );
    let nid = dp.set_service(&ncfg).unwrap().service.id;
    dp.set_active_conns(nid, 1, 0).unwrap();
    dp.set_active_conns(nid, 0, 0).unwrap();
    assert_eq!(send(&mut dp, &ncfg, 1, 40000), Some(0));
    assert_eq!(send(&mut dp, &ncfg, 2, 40000), Some(1));
}

#[test]
fn privileged_sh_dh_mh_are_stable_for_a_key() {
    if !privileged("privileged_sh_dh_mh_are_stable_for_a_key") {
        return;
    }
    let mut dp = load();
    for (port, sched) in [
        (5060, Scheduler::Sh),
        (5061, Scheduler::Dh),
        (5062, Scheduler::Mh),
    ] {
        let cfg = service(
            IpAddr::V4(VIP4),
            port,
            Protocol::Udp,
            sched,
            Forward::Dr,
            (0..5).map(|i| real4(i, 1)).collect(),
        );
        dp.set_service(&cfg).unwrap();
        let first: Vec<u32> = (0..200)
            .map(|c| send(&mut dp, &cfg, c, 40000).unwrap())
            .collect();
        dp.clear_flows().unwrap();
        // Same clients, new source ports, connection table empty: same picks.
        let again: Vec<u32> = (0..200)
            .map(|c| send(&mut dp, &cfg, c, 50000).unwrap())
            .collect();
        assert_eq!(first, again, "{} is not stable", sched.name());
        let distinct: std::collections::HashSet<_> = first.iter().collect();
        if sched == Scheduler::Dh {
            assert_eq!(
                distinct.len(),
                1,
                "dh hashes the destination: one VIP, one real server"
            );
        } else {
            assert_eq!(
                distinct.len(),
                5,
                "{} should spread 200 clients over 5 reals",
                sched.name()
            );
        }
    }
}

#[test]
fn privileged_mh_remove_one_of_n_moves_about_one_nth() {
    if !privileged("privileged_mh_remove_one_of_n_moves_about_one_nth") {
        return;
    }
    let mut dp = load();
    let n = 8usize;
    let mut cfg = service(
        IpAddr::V4(VIP4),
        5060,
        Protocol::Udp,
        Scheduler::Mh,
        Forward::Dr,
        (0..n as u8).map(|i| real4(i, 1)).collect(),
    );
    dp.set_service(&cfg).unwrap();
    let clients = 10_000u32;
    let before: HashMap<u32, u32> = (0..clients)
        .map(|c| (c, send(&mut dp, &cfg, c, 40000).unwrap()))
        .collect();
    dp.clear_flows().unwrap();
    let removed = cfg.reals.remove(3);
    let img = dp.set_service(&cfg).unwrap();
    let removed_slot = 3u32;
    assert!(img.slot_of(removed.addr, removed.port).is_none());
    let mut moved = 0;
    for c in 0..clients {
        let now = send(&mut dp, &cfg, c, 40000).unwrap();
        assert_ne!(now, removed_slot, "a flow went to the removed real server");
        if now != before[&c] {
            moved += 1;
        }
    }
    let frac = moved as f64 / clients as f64;
    eprintln!(
        "mh: removing 1 of {n} real servers moved {:.2}% of {clients} flows",
        frac * 100.0
    );
    assert!(
        frac <= 1.0 / n as f64 + 0.03,
        "moved {frac:.4} of flows, more than 1/{n} + 3%"
    );
    assert!(
        frac >= 1.0 / n as f64 - 0.03,
        "moved {frac:.4}: the removed server's flows must move"
    );
}

#[test]
fn privileged_down_real_gets_no_new_flows_and_expire_nodest_moves_old_ones() {
    if !privileged("privileged_down_real_gets_no_new_flows_and_expire_nodest_moves_old_ones") {
        return;
    }
    let mut dp = load();
    let mut cfg = service(
        IpAddr::V4(VIP4),
        5060,
        Protocol::Udp,
        Scheduler::Rr,
        Forward::Dr,
        (0..2).map(|i| real4(i, 1)).collect(),
    );
    dp.set_service(&cfg).unwrap();
    assert_eq!(send(&mut dp, &cfg, 1, 40000), Some(0));
    assert_eq!(send(&mut dp, &cfg, 2, 40000), Some(1));
    cfg.reals[0].state = tandem_dataplane::RealState::Down;
    dp.set_service(&cfg).unwrap();
    // Without expire_nodest the old flow stays; new flows avoid slot 0.
    assert_eq!(send(&mut dp, &cfg, 1, 40000), Some(0));
    for c in 3..10 {
        assert_eq!(send(&mut dp, &cfg, c, 40000), Some(1));
    }
    cfg.flags |= FLAG_EXPIRE_NODEST;
    dp.set_service(&cfg).unwrap();
    assert_eq!(
        send(&mut dp, &cfg, 1, 40000),
        Some(1),
        "expire_nodest moves the flow"
    );
    assert_eq!(dp.reason(Reason::NodestExpired).unwrap(), 1);
    // Draining: old flows continue, no new ones.
    cfg.reals[0].state = tandem_dataplane::RealState::Up;
    cfg.reals[1].state = tandem_dataplane::RealState::Draining;
    dp.set_service(&cfg).unwrap();
    assert_eq!(send(&mut dp, &cfg, 1, 40000), Some(1));
    assert_eq!(send(&mut dp, &cfg, 20, 40000), Some(0));
    // All unavailable: new flows are dropped and counted.
    cfg.reals[0].state = tandem_dataplane::RealState::Down;
    dp.set_service(&cfg).unwrap();
    assert_eq!(send(&mut dp, &cfg, 21, 40000), None);
    assert_eq!(dp.reason(Reason::NoReal).unwrap(), 1);
}

#[test]
fn privileged_reported_load_drives_wlc_and_a_full_ivr_gets_nothing() {
    if !privileged("privileged_reported_load_drives_wlc_and_a_full_ivr_gets_nothing") {
        return;
    }
    let mut dp = load();
    let mut cfg = service(IpAddr::V4(VIP4), 5060, Protocol::Udp, Scheduler::Wlc, Forward::Dr, (0..3).map(|i| real4(i, 1)).collect());
    cfg.flags = FLAG_REPORTED_LOAD;
    let id = dp.set_service(&cfg).unwrap().service.id;
    // IVRs report 10, 2 and 30 busy channels of 30: wlc picks the second,
    // whatever the kernel's own flow counts say.
    dp.set_active_conns(id, 1, 1000).unwrap();
    for (slot, active) in [(0, 10), (1, 2), (2, 30)] {
        dp.set_real_load(id, slot, RealLoad { active, capacity: 30 }).unwrap();
    }
    assert_eq!(send(&mut dp, &cfg, 1, 40000), Some(1));
    // Relative to capacity: 10 of 30, 8 of 10 and 20 of 100 busy — the
    // third is the least loaded although it has the most calls.
    for (slot, active, capacity) in [(0, 10, 30), (1, 8, 10), (2, 20, 100)] {
        dp.set_real_load(id, slot, RealLoad { active, capacity }).unwrap();
    }
    assert_eq!(send(&mut dp, &cfg, 2, 40000), Some(2));
    // The third is full: even rr skips it.
    let mut rr = cfg.clone();
    rr.port = 5061;
    rr.scheduler = Scheduler::Rr;
    let rid = dp.set_service(&rr).unwrap().service.id;
    dp.set_real_load(rid, 2, RealLoad { active: 30, capacity: 30 }).unwrap();
    let picks: Vec<u32> = (0..6).map(|c| send(&mut dp, &rr, c, 40000).unwrap()).collect();
    assert!(!picks.contains(&2), "a full IVR got a new call: {picks:?}");
    // All full: no real server.
    for slot in 0..3 {
        dp.set_real_load(rid, slot, RealLoad { active: 30, capacity: 30 }).unwrap();
    }
    assert_eq!(send(&mut dp, &rr, 99, 40000), None);
}
