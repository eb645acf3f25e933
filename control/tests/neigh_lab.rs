//! Real servers without typed MACs (issue 14): the lab's files give the
//! IVRs no `mac`, tandemd takes each from its neighbour table, and when an
//! IVR's interface gets a new MAC (a replaced NIC, announced by its
//! gratuitous ARP) new flows reach it again within a second, with no
//! change to the configuration; the change is recorded (`RealMac`).
//!
//! The pair is the lab's ([`tandem_tests::tandemd`]): two IVRs answering
//! UDP on VIP:5060 ([`spawn_udp_responder`]), an rr service without flags,
//! no IVR heartbeats. Traffic: a bounded number of one-datagram flows from
//! the lab's client namespace to the lab's VIP.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use tandem_control::{
    admin::{RealStatus, Request, Response},
    events::Event,
};
use tandem_tests::{
    lab::CLIENT,
    privileged::lab_turn,
    spawn_udp_responder,
    tandemd::{Binaries, Director, Pair, PairOptions, WorkDir, wait_for},
    udp_request,
};

fn bins() -> Binaries {
    Binaries {
        tandemd: env!("CARGO_BIN_EXE_tandemd").into(),
        tandemctl: env!("CARGO_BIN_EXE_tandemctl").into(),
    }
}

fn reals(d: &Director) -> BTreeMap<IpAddr, RealStatus> {
    match d.request(&Request::Reals) {
        Some(Response::Reals { reals }) => reals.into_iter().map(|r| (r.address, r)).collect(),
        other => panic!("{}: reals: {other:?}", d.name),
    }
}

/// The file the daemon was started with.
fn config_path(d: &Director) -> String {
    match d.request(&Request::Status) {
        Some(Response::Status(s)) => s.config_path,
        other => panic!("{}: status: {other:?}", d.name),
    }
}

/// Sends one datagram from each of `ports` (each a new flow) and counts
/// the answers by IVR name.
fn answers(client: &str, vip: SocketAddr, ports: std::ops::Range<u16>) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for p in ports {
        if let Ok(reply) = udp_request(client, p, vip, b"who", Duration::from_millis(300)) {
            let text = String::from_utf8_lossy(&reply);
            let name = text.split_whitespace().next().unwrap_or_default().to_string();
            *by.entry(name).or_insert(0) += 1;
        }
    }
    by
}

#[test]
fn privileged_lab_an_ivr_with_a_new_mac_gets_new_flows_again_without_a_config_change() {
    const NAME: &str = "privileged_lab_an_ivr_with_a_new_mac_gets_new_flows_again_without_a_config_change";
    let Some(_turn) = lab_turn(NAME) else {
        return;
    };
    let dir = WorkDir::new("neigh").expect("work dir");
    let o = PairOptions {
        ivr_heartbeats: false,
        flags: Vec::new(),
        multiplier: 5,
        realtime_priority: 0,
        typed_macs: false,
        ..PairOptions::default()
    };
    let pair = Pair::start(2, &o, dir.path(), &bins(), None).expect("a active, b standby");
    let ivrs: Vec<(String, String, IpAddr, String, String)> = pair
        .lab
        .ivrs()
        .iter()
        .map(|h| (h.name.clone(), h.ns.clone(), IpAddr::V4(h.addr()), h.eth0().name.clone(), h.eth0().mac_string()))
        .collect();
    let _responders: Vec<_> = ivrs
        .iter()
        .map(|(name, ns, ..)| spawn_udp_responder(ns, name, 5060).expect("responder"))
        .collect();
    let client = pair.lab.ns(CLIENT).expect("client").to_string();
    let vip = SocketAddr::new(IpAddr::V4(pair.lab.vip()), 5060);

    // The file gives no MAC: each IVR's comes from the neighbour table.
    let text = std::fs::read_to_string(config_path(&pair.a)).expect("a's file");
    assert!(!text.contains("mac ="), "the lab's file types no MAC:\n{text}");
    assert!(
        wait_for(Duration::from_secs(5), || {
            let r = reals(&pair.a);
            ivrs.iter().all(|(_, _, addr, _, mac)| r.get(addr).and_then(|x| x.mac.as_deref()) == Some(mac.as_str()))
        }),
        "a did not learn the IVRs' MACs: {:?}",
        reals(&pair.a)
    );
    let before = answers(&client, vip, 43_000..43_020);
    for (name, ..) in &ivrs {
        assert!(before.get(name).copied().unwrap_or(0) >= 5, "rr over both IVRs: {before:?}");
    }

    // ivr1 gets a new NIC: a new MAC, announced by its gratuitous ARP.
    let (name, ns, addr, eth, old) = ivrs[0].clone();
    let new = "02:18:00:00:99:01";
    let sh = |args: &[&str]| {
        let out = std::process::Command::new("ip").args(["netns", "exec", &ns]).args(args).output().expect("ip netns exec");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    sh(&["sysctl", "-qw", &format!("net.ipv4.conf.{eth}.arp_notify=1")]);
    let changed = Instant::now();
    sh(&["ip", "link", "set", "dev", &eth, "address", new]);
    assert!(
        wait_for(Duration::from_secs(3), || reals(&pair.a).get(&addr).and_then(|x| x.mac.clone()).as_deref() == Some(new)),
        "a still dispatches {name} to {old}: {:?}",
        reals(&pair.a).get(&addr)
    );
    let followed = changed.elapsed();
    let after = answers(&client, vip, 43_100..43_120);
    let reached = changed.elapsed();
    println!("{name}'s new MAC followed {} ms after the change; 20 new flows sent by {} ms: {after:?}", followed.as_millis(), reached.as_millis());
    assert!(after.get(&name).copied().unwrap_or(0) >= 5, "{name} gets new flows at its new MAC: {after:?}");
    assert!(followed < Duration::from_secs(1), "the new MAC took {followed:?}");
    assert!(
        pair.a.saw(|e| matches!(e, Event::RealMac { address, mac: Some(m), previous: Some(p) } if *address == addr && m == new && *p == old)),
        "a recorded the change"
    );
    // The file was not touched.
    assert_eq!(std::fs::read_to_string(config_path(&pair.a)).expect("a's file"), text);
}
