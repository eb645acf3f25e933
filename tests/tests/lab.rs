//! Tests of the lab itself: the wires, addresses, responders and clean-up.
//! Every test here builds network namespaces and so needs root: each says so
//! in its name and skips with a printed reason when not root (and fails
//! instead where TANDEM_REQUIRE_PRIVILEGED=1).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use tandem_tests::lab::{self, CLIENT, DIRECTOR, DIRECTOR_ADDR, Lab, LabOptions, Topology, VIP};
use tandem_tests::{
    LabError, in_netns, netns, require_privileged, spawn_tcp_responder, spawn_udp_responder,
    tcp_request, udp_request,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const T: Duration = Duration::from_secs(3);

/// Namespaces `ip netns list` shows (first word of each line).
fn ip_netns_list() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("running ip netns list");
    assert!(
        out.status.success(),
        "ip netns list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn root_dr_lab_client_pings_director_and_ivrs() -> TestResult {
    if !require_privileged("root_dr_lab_client_pings_director_and_ivrs") {
        return Ok(());
    }
    let lab = Lab::dr(2)?;
    assert_eq!(lab.topology(), Topology::Dr);
    lab.ping(CLIENT, DIRECTOR_ADDR)?;
    lab.ping(CLIENT, lab::dr_ivr_addr(1))?;
    lab.ping(CLIENT, lab::dr_ivr_addr(2))?;
    // The director holds the VIP by default, so the VIP answers (from the director).
    lab.ping(CLIENT, VIP)?;
    Ok(())
}

#[test]
fn root_dr_lab_layout_and_accessors() -> TestResult {
    if !require_privileged("root_dr_lab_layout_and_accessors") {
        return Ok(());
    }
    let lab = Lab::dr(2)?;
    let names: Vec<&str> = lab.hosts().iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["client", "dir", "ivr1", "ivr2"]);
    assert_eq!(
        lab.namespaces().len(),
        5,
        "switch + 4 hosts: {:?}",
        lab.namespaces()
    );
    for h in lab.hosts() {
        assert!(
            h.ns.starts_with(lab.prefix()),
            "{} not under {}",
            h.ns,
            lab.prefix()
        );
        let eth0 = h.eth0();
        assert_eq!(eth0.name, "eth0");
        assert_eq!(eth0.peer_ns, lab.switch_ns());
        assert!(eth0.peer.len() <= 15);
        // The accessors agree with what the kernel reports inside the namespace.
        let shown = lab.exec(
            &h.name,
            "cat",
            &[&format!("/sys/class/net/{}/address", eth0.name)],
        )?;
        assert_eq!(shown.trim(), eth0.mac_string(), "MAC of {}", h.name);
        let idx = lab.exec(
            &h.name,
            "cat",
            &[&format!("/sys/class/net/{}/ifindex", eth0.name)],
        )?;
        assert_eq!(
            idx.trim(),
            eth0.ifindex.to_string(),
            "ifindex of {}",
            h.name
        );
        let peer_idx = tandem_tests::cmd::exec_in(
            lab.switch_ns(),
            "cat",
            &[&format!("/sys/class/net/{}/ifindex", eth0.peer)],
        )?;
        assert_eq!(
            peer_idx.trim(),
            eth0.peer_ifindex.to_string(),
            "peer ifindex of {}",
            h.name
        );
    }
    assert_eq!(lab.host("ivr2")?.addr(), Ipv4Addr::new(198, 18, 0, 22));
    assert_eq!(lab.ivrs()[0].loopback_addrs, [VIP]);
    assert!(lab.host(DIRECTOR)?.eth0().addrs.contains(&(VIP, 32)));
    // IVRs do not answer ARP for the VIP on lo.
    let ivr1 = lab.ns("ivr1")?;
    assert_eq!(
        netns::read_sysctl(ivr1, "net.ipv4.conf.eth0.arp_ignore")?,
        "1"
    );
    assert_eq!(
        netns::read_sysctl(ivr1, "net.ipv4.conf.all.arp_announce")?,
        "2"
    );
    // GRO is on for the director's bridge-side veth (XDP_TX needs it).
    let dir_peer = &lab.host(DIRECTOR)?.eth0().peer;
    let features = tandem_tests::cmd::exec_in(lab.switch_ns(), "ethtool", &["-k", dir_peer])?;
    assert!(
        features
            .lines()
            .any(|l| l.trim() == "generic-receive-offload: on"),
        "GRO not on for {dir_peer}: {features}"
    );
    assert!(matches!(
        lab.host("ivr9"),
        Err(LabError::UnknownHost { .. })
    ));
    // The topology prints every host.
    let shown = lab.to_string();
    for h in lab.hosts() {
        assert!(shown.contains(&h.ns), "{shown}");
    }
    Ok(())
}

#[test]
fn root_dr_lab_responders_answer_direct_requests() -> TestResult {
    if !require_privileged("root_dr_lab_responders_answer_direct_requests") {
        return Ok(());
    }
    let lab = Lab::dr(2)?;
    let client = lab.ns(CLIENT)?;
    let mut responders = Vec::new();
    for ivr in lab.ivrs() {
        responders.push(spawn_udp_responder(&ivr.ns, &ivr.name, 5060)?);
        responders.push(spawn_tcp_responder(&ivr.ns, &ivr.name, 5061)?);
    }
    for (k, ivr) in lab.ivrs().iter().enumerate() {
        let udp = udp_request(
            client,
            40000 + k as u16,
            SocketAddr::from((ivr.addr(), 5060)),
            b"hello",
            T,
        )?;
        assert_eq!(udp, format!("{} hello", ivr.name).as_bytes());
        let tcp = tcp_request(
            client,
            SocketAddr::from((ivr.addr(), 5061)),
            b"INVITE sip:ivr",
            T,
        )?;
        assert_eq!(tcp, format!("{} INVITE sip:ivr", ivr.name).as_bytes());
    }
    for r in &responders {
        assert_eq!(r.served(), 1, "responder {} on port {}", r.name(), r.port());
    }
    // A UDP reply to a request for the VIP leaves from the VIP (what DR needs):
    // asked from inside ivr1 itself, the connected client socket only accepts it if so.
    let ivr1 = lab.ns("ivr1")?;
    let from_vip = udp_request(ivr1, 0, SocketAddr::from((VIP, 5060)), b"loop", T)?;
    assert_eq!(from_vip, b"ivr1 loop");
    // Nobody listens on 5999: a bounded error, not a hang.
    let err = udp_request(
        client,
        0,
        SocketAddr::from((lab::dr_ivr_addr(1), 5999)),
        b"x",
        T,
    );
    assert!(err.is_err(), "{err:?}");
    Ok(())
}

#[test]
fn root_dr_lab_without_director_vip() -> TestResult {
    if !require_privileged("root_dr_lab_without_director_vip") {
        return Ok(());
    }
    let options = LabOptions {
        director_holds_vip: false,
        ..LabOptions::default()
    };
    let mut lab = Lab::dr_with(1, options)?;
    assert!(!lab.host(DIRECTOR)?.eth0().addrs.contains(&(VIP, 32)));
    let addrs = lab.exec(DIRECTOR, "ip", &["-4", "-o", "addr", "show", "dev", "eth0"])?;
    assert!(!addrs.contains(&VIP.to_string()), "{addrs}");
    lab.set_director_vip(true)?;
    let addrs = lab.exec(DIRECTOR, "ip", &["-4", "-o", "addr", "show", "dev", "eth0"])?;
    assert!(addrs.contains(&format!("{VIP}/32")), "{addrs}");
    Ok(())
}

#[test]
fn root_lab_drop_removes_its_namespaces() -> TestResult {
    if !require_privileged("root_lab_drop_removes_its_namespaces") {
        return Ok(());
    }
    let lab = Lab::dr(2)?;
    let names = lab.namespaces();
    let listed = ip_netns_list();
    for n in &names {
        assert!(
            listed.contains(n),
            "{n} missing from ip netns list while the lab is up"
        );
    }
    let responder = spawn_udp_responder(lab.ns("ivr1")?, "ivr1", 5060)?;
    drop(responder);
    drop(lab);
    let listed = ip_netns_list();
    for n in &names {
        assert!(
            !listed.contains(n),
            "{n} still listed after the lab was dropped"
        );
    }
    Ok(())
}

#[test]
fn root_lab_cleans_up_after_a_panicking_test_body() -> TestResult {
    if !require_privileged("root_lab_cleans_up_after_a_panicking_test_body") {
        return Ok(());
    }
    let mut names = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::nat(1).expect("building the lab");
        names = lab.namespaces();
        panic!("test body fails while the lab is up");
    }));
    assert!(result.is_err(), "the body should have panicked");
    assert_eq!(names.len(), 4, "switch, client, dir, ivr1: {names:?}");
    let listed = ip_netns_list();
    for n in &names {
        assert!(!listed.contains(n), "{n} still listed after the panic");
    }
    Ok(())
}

#[test]
fn root_nat_lab_client_reaches_ivr_through_director() -> TestResult {
    if !require_privileged("root_nat_lab_client_reaches_ivr_through_director") {
        return Ok(());
    }
    let lab = Lab::nat(2)?;
    assert_eq!(lab.topology(), Topology::Nat);
    let dir = lab.host(DIRECTOR)?;
    assert_eq!(dir.ifaces.len(), 2);
    assert_eq!(dir.iface("eth1")?.addrs, [(lab::DIRECTOR_BACK_ADDR, 24)]);
    assert_eq!(dir.iface("eth1")?.bridge, "br1");
    assert_eq!(netns::read_sysctl(&dir.ns, "net.ipv4.ip_forward")?, "1");
    let ivr1 = lab.host("ivr1")?;
    assert_eq!(ivr1.addr(), Ipv4Addr::new(198, 18, 1, 21));
    assert!(ivr1.loopback_addrs.is_empty(), "no VIP on IVRs in NAT mode");

    lab.ping(CLIENT, DIRECTOR_ADDR)?;
    lab.ping(CLIENT, ivr1.addr())?;
    let _udp = spawn_udp_responder(&ivr1.ns, "ivr1", 5060)?;
    let _tcp = spawn_tcp_responder(&ivr1.ns, "ivr1", 5060)?;
    let dst = SocketAddr::from((ivr1.addr(), 5060));
    assert_eq!(
        udp_request(lab.ns(CLIENT)?, 0, dst, b"via dir", T)?,
        b"ivr1 via dir"
    );
    assert_eq!(
        tcp_request(lab.ns(CLIENT)?, dst, b"via dir", T)?,
        b"ivr1 via dir"
    );
    // The IVR saw the client's own address: the director routes, it does not masquerade.
    let route = lab.exec(
        "ivr1",
        "ip",
        &["-4", "-o", "route", "get", &lab::CLIENT_ADDR.to_string()],
    )?;
    assert!(
        route.contains(&format!("via {}", lab::DIRECTOR_BACK_ADDR)),
        "{route}"
    );
    Ok(())
}

#[test]
fn root_in_netns_runs_inside_the_namespace() -> TestResult {
    if !require_privileged("root_in_netns_runs_inside_the_namespace") {
        return Ok(());
    }
    let lab = Lab::dr(1)?;
    let client = lab.ns(CLIENT)?;
    // A socket bound to the client's address only works inside the client's namespace.
    let bound = in_netns(client, || {
        std::net::UdpSocket::bind((lab::CLIENT_ADDR, 0)).map(|s| s.local_addr())
    });
    assert!(bound.is_ok(), "{bound:?}");
    let outside = std::net::UdpSocket::bind((lab::CLIENT_ADDR, 0));
    assert!(
        outside.is_err(),
        "198.18.0.10 should not exist outside the lab"
    );
    // Panics inside pass through.
    let caught = std::panic::catch_unwind(|| in_netns(client, || panic!("inside")));
    assert!(caught.is_err());
    assert!(tandem_tests::try_in_netns("tdm-no-such-namespace", || ()).is_err());
    Ok(())
}

#[test]
fn root_cleanup_stale_removes_only_dead_owners() -> TestResult {
    if !require_privileged("root_cleanup_stale_removes_only_dead_owners") {
        return Ok(());
    }
    // The first lab of a process runs cleanup_stale once; build one first so
    // that this test's own call is the one that finds the probes.
    let lab = Lab::dr(0)?;
    // A pid above pid_max (2^22) can never be alive.
    let probes = Probes(["tdm4194305x0-probe", "tdmtest-foreign-probe"]);
    let [dead, foreign] = probes.0;
    for p in probes.0 {
        if netns::exists(p) {
            netns::delete(p)?; // left by an earlier, interrupted run of this test
        }
        netns::add(p)?;
    }
    let removed = netns::cleanup_stale()?;
    let listed = ip_netns_list();
    assert!(removed.iter().any(|n| n == dead), "{removed:?}");
    assert!(!listed.iter().any(|n| n == dead));
    assert!(
        listed.iter().any(|n| n == foreign),
        "a namespace without a tdm<pid>x<n> name was removed"
    );
    for n in lab.namespaces() {
        assert!(listed.contains(&n), "live lab namespace {n} was removed");
    }
    Ok(())
}

/// Deletes the probe namespaces of a test, also when it fails.
struct Probes([&'static str; 2]);

impl Drop for Probes {
    fn drop(&mut self) {
        for p in self.0 {
            if netns::exists(p) {
                let _ = netns::delete(p);
            }
        }
    }
}
