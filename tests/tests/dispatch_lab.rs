//! End to end in network namespaces: a client, a director running the XDP
//! dispatcher natively on its veth(s), four IVR stand-ins. Real UDP and TCP
//! traffic to the VIP; every request must be answered by the real server
//! the kernel's counters say it went to, in the proportions the weights
//! ask for; a real server set down gets no new flows. DR and NAT.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use tandem_dataplane::{
    Dataplane, LoadOptions, RealConfig, RealState, ServiceConfig,
    common::{FLAG_SCHED_PORT, Forward, Reason, Scheduler},
    config::Protocol,
};
use tandem_tests::{
    Lab, Responder,
    lab::{self, DIRECTOR},
    require_privileged, spawn_tcp_responder, spawn_udp_responder, tcp_request, udp_request,
};

const TIMEOUT: Duration = Duration::from_secs(3);

fn reals(lab: &Lab, nat: bool, weights: &[u32], director_back_ifindex: u32) -> Vec<RealConfig> {
    lab.ivrs()
        .iter()
        .zip(weights)
        .map(|(h, w)| RealConfig {
            addr: IpAddr::V4(h.addr()),
            port: 0,
            mac: h.eth0().mac,
            weight: *w,
            state: RealState::Up,
            ifindex: if nat { director_back_ifindex } else { 0 },
        })
        .collect()
}

fn service(
    vip: IpAddr,
    port: u16,
    proto: Protocol,
    sched: Scheduler,
    fwd: Forward,
    reals: Vec<RealConfig>,
) -> ServiceConfig {
    ServiceConfig {
        vip,
        port,
        proto,
        scheduler: sched,
        forward: fwd,
        flags: 0,
        mh_size: 65_537,
        client_ifindex: 0,
        gateway_mac: [0; 6],
        reals,
    }
}

fn start_responders(lab: &Lab) -> Vec<(Responder, Responder)> {
    lab.ivrs()
        .iter()
        .map(|h| {
            (
                spawn_udp_responder(&h.ns, &h.name, 5060).expect("udp responder"),
                spawn_tcp_responder(&h.ns, &h.name, 5060).expect("tcp responder"),
            )
        })
        .collect()
}

/// Sends `n` UDP requests from distinct source ports and returns, per IVR
/// name, how many answered (every request must be answered).
fn udp_round(lab: &Lab, vip: SocketAddr, first_port: u16, n: u16) -> HashMap<String, u32> {
    let client = lab.ns(lab::CLIENT).unwrap().to_string();
    let mut by = HashMap::new();
    for i in 0..n {
        let reply = udp_request(
            &client,
            first_port + i,
            vip,
            b"INVITE sip:ivr@tandem SIP/2.0",
            TIMEOUT,
        )
        .unwrap_or_else(|e| {
            panic!(
                "request {i} to {vip} from port {} unanswered: {e}",
                first_port + i
            )
        });
        let text = String::from_utf8_lossy(&reply);
        let name = text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(name.starts_with("ivr"), "unexpected reply {text:?}");
        *by.entry(name).or_insert(0) += 1;
    }
    by
}

fn tcp_round(lab: &Lab, vip: SocketAddr, n: u32) -> HashMap<String, u32> {
    let client = lab.ns(lab::CLIENT).unwrap().to_string();
    let mut by = HashMap::new();
    for i in 0..n {
        let reply = tcp_request(
            &client,
            vip,
            b"OPTIONS sip:ivr@tandem SIP/2.0\r\n\r\n",
            TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("tcp request {i} to {vip} unanswered: {e}"));
        let text = String::from_utf8_lossy(&reply);
        let name = text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(name.starts_with("ivr"), "unexpected reply {text:?}");
        *by.entry(name).or_insert(0) += 1;
    }
    by
}

fn attach(dp: &mut Dataplane, lab: &Lab, iface: &str) {
    tandem_tests::director::attach_director(dp, lab, iface).expect("attach the dispatcher");
}

fn counters_by_name(dp: &Dataplane, cfg: &ServiceConfig, lab: &Lab) -> HashMap<String, u64> {
    let img = dp.service(&cfg.key()).unwrap();
    lab.ivrs()
        .iter()
        .zip(&cfg.reals)
        .map(|(h, r)| {
            let slot = img.slot_of(r.addr, r.port).unwrap();
            (
                h.name.clone(),
                dp.real_counters(img.service.id, slot).unwrap().new_flows,
            )
        })
        .collect()
}

#[test]
fn privileged_lab_dr_dispatch_udp_and_tcp_by_weight() {
    if !require_privileged("privileged_lab_dr_dispatch_udp_and_tcp_by_weight") {
        return;
    }
    let lab = Lab::dr(4).expect("lab");
    let _ivrs = start_responders(&lab);
    let mut dp = Dataplane::load(LoadOptions {
        flow_entries: 65_536,
        nat_entries: 65_536,
    })
    .expect("load");
    attach(&mut dp, &lab, "eth0");
    let vip = IpAddr::V4(lab.vip());
    let weights = [1, 2, 3, 4];
    let mut udp = service(
        vip,
        5060,
        Protocol::Udp,
        Scheduler::Wrr,
        Forward::Dr,
        reals(&lab, false, &weights, 0),
    );
    dp.set_service(&udp).unwrap();
    let tcp = service(
        vip,
        5060,
        Protocol::Tcp,
        Scheduler::Rr,
        Forward::Dr,
        reals(&lab, false, &[1, 1, 1, 1], 0),
    );
    dp.set_service(&tcp).unwrap();

    // 100 new UDP flows: wrr with weights 1:2:3:4 gives exactly 10/20/30/40.
    let answered = udp_round(&lab, SocketAddr::new(vip, 5060), 20_000, 100);
    let counted = counters_by_name(&dp, &udp, &lab);
    for (k, w) in weights.iter().enumerate() {
        let name = lab::ivr_name(k + 1);
        assert_eq!(
            answered.get(&name).copied().unwrap_or(0),
            10 * w,
            "{name} answered {answered:?}"
        );
        assert_eq!(
            counted[&name],
            10 * *w as u64,
            "{name} kernel counter {counted:?}"
        );
    }
    // The same flows again stay on their real servers (connection table).
    let again = udp_round(&lab, SocketAddr::new(vip, 5060), 20_000, 100);
    assert_eq!(again, answered, "established flows moved");
    assert_eq!(
        counters_by_name(&dp, &udp, &lab),
        counted,
        "no new flows for established ones"
    );

    // TCP: 8 connections, rr: two per IVR, each answered.
    let t = tcp_round(&lab, SocketAddr::new(vip, 5060), 8);
    for k in 1..=4 {
        assert_eq!(t.get(&lab::ivr_name(k)).copied(), Some(2), "tcp {t:?}");
    }

    // ivr2 down: new flows avoid it, every request is still answered.
    udp.reals[1].state = RealState::Down;
    dp.set_service(&udp).unwrap();
    let before = counters_by_name(&dp, &udp, &lab);
    let after_down = udp_round(&lab, SocketAddr::new(vip, 5060), 30_000, 80);
    assert_eq!(
        after_down.get("ivr2"),
        None,
        "ivr2 is down but got {after_down:?}"
    );
    assert_eq!(after_down.values().sum::<u32>(), 80);
    assert_eq!(counters_by_name(&dp, &udp, &lab)["ivr2"], before["ivr2"]);
    assert!(dp.reason(Reason::ForwardDr).unwrap() >= 300);
    dp.detach_all().unwrap();
}

#[test]
fn privileged_lab_nat_dispatch_and_reverse_rewrite() {
    if !require_privileged("privileged_lab_nat_dispatch_and_reverse_rewrite") {
        return;
    }
    let lab = Lab::nat(4).expect("lab");
    let _ivrs = start_responders(&lab);
    let mut dp = Dataplane::load(LoadOptions {
        flow_entries: 65_536,
        nat_entries: 65_536,
    })
    .expect("load");
    let dir = lab.host(DIRECTOR).unwrap().clone();
    let front = dir.iface("eth0").unwrap().clone();
    let back = dir.iface("eth1").unwrap().clone();
    attach(&mut dp, &lab, "eth0");
    attach(&mut dp, &lab, "eth1");
    let vip = IpAddr::V4(lab.vip());
    let client_mac = lab.host(lab::CLIENT).unwrap().eth0().mac;
    let weights = [4, 3, 2, 1];
    let mut udp = service(
        vip,
        5060,
        Protocol::Udp,
        Scheduler::Wrr,
        Forward::Nat,
        reals(&lab, true, &weights, back.ifindex),
    );
    udp.client_ifindex = front.ifindex;
    udp.gateway_mac = client_mac;
    dp.set_service(&udp).unwrap();
    let mut tcp = service(
        vip,
        5060,
        Protocol::Tcp,
        Scheduler::Sh,
        Forward::Nat,
        reals(&lab, true, &[1, 1, 1, 1], back.ifindex),
    );
    tcp.client_ifindex = front.ifindex;
    tcp.gateway_mac = client_mac;
    tcp.flags = FLAG_SCHED_PORT;
    dp.set_service(&tcp).unwrap();

    let answered = udp_round(&lab, SocketAddr::new(vip, 5060), 21_000, 100);
    let counted = counters_by_name(&dp, &udp, &lab);
    for (k, w) in weights.iter().enumerate() {
        let name = lab::ivr_name(k + 1);
        assert_eq!(
            answered.get(&name).copied().unwrap_or(0),
            10 * w,
            "{name} answered {answered:?}"
        );
        assert_eq!(counted[&name], 10 * *w as u64);
    }
    // Every reply came back through the director and was rewritten to the
    // VIP (udp_request only accepts replies from the VIP).
    assert!(
        dp.reason(Reason::ReverseNat).unwrap() >= 100,
        "replies rewritten: {}",
        dp.reason(Reason::ReverseNat).unwrap()
    );
    assert!(dp.reason(Reason::ForwardNat).unwrap() >= 100);

    // TCP through NAT: whole connections (handshake, data, FIN) both ways.
    let t = tcp_round(&lab, SocketAddr::new(vip, 5060), 12);
    assert_eq!(t.values().sum::<u32>(), 12, "{t:?}");

    // ivr1 down: no new flows to it.
    udp.reals[0].state = RealState::Down;
    dp.set_service(&udp).unwrap();
    let after = udp_round(&lab, SocketAddr::new(vip, 5060), 31_000, 60);
    assert_eq!(after.get("ivr1"), None, "ivr1 is down but got {after:?}");
    dp.detach_all().unwrap();
}
