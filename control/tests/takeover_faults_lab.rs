//! A takeover that meets a full interface queue (issue 11, finding 5): in
//! the standby's namespace the service interface's queue refuses every ARP
//! frame (an HTB root whose ARP class is a `pfifo limit 0`: the kernel
//! drops the frame at enqueue and an `AF_PACKET` send fails with
//! `ENOBUFS`, exactly as on a queue that is full), the active is killed
//! with SIGKILL, and the standby must still take over and live: the VIP
//! owned, its address added, client traffic answered, the failed GARPs
//! reported as typed events with the VIP, the interface and the errno;
//! once the queue takes frames again, the owed GARPs go out.
//!
//! Only ARP is refused, not the interface's IP traffic: the witness is on
//! the service network and a takeover waits for it, and the heartbeats on
//! that path go on. The lab is the pair lab of [`tandem_tests::tandemd`],
//! run as `failover_lab` runs it (10 ms × 5 heartbeats, normal
//! scheduling). `TANDEMD` / `TANDEMCTL` name other binaries to run (the
//! code before a change, to see the test fail there).

use std::{
    io::Write,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::Command,
    time::Duration,
};

use tandem_control::{
    admin::{Request, Response},
    events::Event,
    vip::{GarpSender, Interface},
};
use tandem_tests::{
    Lab, in_netns,
    lab::{self},
    privileged::{REQUIRE_ENV, lab_turn},
    spawn_udp_responder,
    tandemd::{Binaries, Pair, PairOptions, WorkDir, wait_for},
    udp_request,
};

/// The interface the VIP is announced on in the lab's configuration.
const SERVICE_IF: &str = "eth0";

fn bins() -> Binaries {
    let pick =
        |var: &str, built: &str| std::env::var_os(var).map_or_else(|| built.into(), Into::into);
    Binaries {
        tandemd: pick("TANDEMD", env!("CARGO_BIN_EXE_tandemd")),
        tandemctl: pick("TANDEMCTL", env!("CARGO_BIN_EXE_tandemctl")),
    }
}

fn options() -> PairOptions {
    PairOptions {
        flags: Vec::new(),
        ivr_heartbeats: false,
        multiplier: 5,
        realtime_priority: 0,
        ..PairOptions::default()
    }
}

/// `tc <args>` inside `ns`: its stdout, or why it failed.
fn tc(ns: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "tc"])
        .args(args)
        .output()
        .map_err(|e| format!("running tc: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "tc {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether this machine's `tc` and kernel can refuse ARP frames (HTB, u32
/// and pfifo); if not, says why the test skips (or fails, with
/// [`REQUIRE_ENV`]).
fn can_refuse_arp(test_name: &str, ns: &str) -> bool {
    let tried = refuse_arp(ns, SERVICE_IF).and_then(|()| accept_arp(ns, SERVICE_IF));
    match tried {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
                panic!(
                    "{test_name}: cannot refuse ARP frames with tc ({reason}), and {REQUIRE_ENV}=1 forbids skipping it"
                );
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIP {test_name}: cannot refuse ARP frames with tc: {reason}"
            );
            false
        }
    }
}

/// Makes `dev`'s queue refuse every ARP frame and take everything else.
fn refuse_arp(ns: &str, dev: &str) -> Result<(), String> {
    tc(
        ns,
        &[
            "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "1",
        ],
    )?;
    tc(
        ns,
        &[
            "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit",
        ],
    )?;
    tc(
        ns,
        &[
            "class", "add", "dev", dev, "parent", "1:", "classid", "1:2", "htb", "rate", "10gbit",
        ],
    )?;
    tc(
        ns,
        &[
            "qdisc", "add", "dev", dev, "parent", "1:2", "handle", "20:", "pfifo", "limit", "0",
        ],
    )?;
    tc(
        ns,
        &[
            "filter", "add", "dev", dev, "parent", "1:", "protocol", "arp", "prio", "1", "u32",
            "match", "u32", "0", "0", "flowid", "1:2",
        ],
    )?;
    Ok(())
}

/// Gives `dev` its default queue back.
fn accept_arp(ns: &str, dev: &str) -> Result<(), String> {
    tc(ns, &["qdisc", "del", "dev", dev, "root"]).map(drop)
}

/// The errno of a gratuitous ARP sent from `ns` on `dev` for an address
/// nobody uses (0 if it went out): the injection's own check.
fn probe_garp_errno(ns: &str, dev: &str) -> i32 {
    let dev = dev.to_string();
    in_netns(ns, move || {
        let iface = Interface::by_name(&dev).expect("service interface");
        let g = GarpSender::open(&iface, Ipv4Addr::new(198, 18, 0, 251)).expect("AF_PACKET socket");
        g.send_garp().err().map_or(0, |e| e.errno())
    })
}

fn probe(lab: &Lab, port: u16) -> bool {
    let client = lab.ns(lab::CLIENT).unwrap();
    udp_request(
        client,
        port,
        SocketAddr::new(IpAddr::V4(lab.vip()), 5060),
        b"OPTIONS",
        Duration::from_millis(200),
    )
    .is_ok()
}

#[test]
fn privileged_lab_takeover_survives_enobufs_on_the_service_interface() {
    const NAME: &str = "privileged_lab_takeover_survives_enobufs_on_the_service_interface";
    let Some(_turn) = lab_turn(NAME) else {
        return;
    };
    let dir = WorkDir::new("garp-enobufs").expect("work dir");
    let mut p = Pair::build(2, &options(), dir.path(), &bins(), None).expect("pair lab");
    let _udp: Vec<_> = p
        .lab
        .ivrs()
        .iter()
        .map(|h| spawn_udp_responder(&h.ns, &h.name, 5060).unwrap())
        .collect();
    p.start_directors().expect("a active, b standby");
    let b_ns = p.b.ns().to_string();
    if !can_refuse_arp(NAME, &b_ns) {
        return;
    }
    let vip = p.lab.vip();
    assert!(
        wait_for(Duration::from_secs(10), || {
            p.a.pair_state().as_deref() == Some("active")
                && p.b.pair_state().as_deref() == Some("standby")
        }),
        "a: {}\nb: {}",
        p.a.log_text(),
        p.b.log_text()
    );
    assert!(
        wait_for(Duration::from_secs(5), || probe(&p.lab, 31000)),
        "VIP not answered via a"
    );

    // The fault: b's service queue refuses ARP, as a full queue would.
    refuse_arp(&b_ns, SERVICE_IF).expect("refusing ARP on b's service interface");
    assert_eq!(
        probe_garp_errno(&b_ns, SERVICE_IF),
        libc::ENOBUFS,
        "the injected fault must be ENOBUFS"
    );
    let mark = p.b.events(0).last().map_or(0, |e| e.seq);
    p.a.kill9();

    // b takes over and stays alive.
    let took_over = wait_for(Duration::from_secs(5), || {
        p.b.pair_state().as_deref() == Some("active")
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        took_over && p.b.running(),
        "b {} after the active's kill -9 with its service queue refusing ARP:\n{}",
        if p.b.running() {
            "did not take over"
        } else {
            "died"
        },
        p.b.log_text()
    );
    // The takeover finished: the VIP owned, its address added.
    let owned = match p.b.request(&Request::Status) {
        Some(Response::Status(s)) => s.vips.iter().any(|v| v.address == vip && v.owned),
        other => panic!("b's status: {other:?}"),
    };
    assert!(owned, "b does not own {vip}");
    assert!(
        wait_for(Duration::from_secs(3), || p.b.events(mark).iter().any(
            |e| matches!(
                &e.event,
                Event::VipAddress { addr, added: true, error: None, .. } if *addr == IpAddr::V4(vip)
            )
        )),
        "the VIP's address was not added: {:?}",
        p.b.events(mark)
    );
    // The failed GARPs, reported once, typed, with what they concern.
    let events = p.b.events(mark);
    let failed: Vec<&Event> = events
        .iter()
        .map(|e| &e.event)
        .filter(|e| matches!(e, Event::GarpFailed { .. }))
        .collect();
    assert!(
        matches!(
            failed.as_slice(),
            [Event::GarpFailed { vip: v, interface, errno, retrying: true, .. }]
                if *v == IpAddr::V4(vip) && interface == SERVICE_IF && *errno == libc::ENOBUFS
        ),
        "one GarpFailed (ENOBUFS, retrying) for {vip} on {SERVICE_IF}: {failed:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e.event, Event::TakeoverDone { .. })),
        "no TakeoverDone: {events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.event, Event::GarpRecovered { .. })),
        "a GARP cannot have gone out through a queue that refuses them: {events:?}"
    );

    // The queue takes frames again: the owed GARPs go out.
    accept_arp(&b_ns, SERVICE_IF).expect("giving b's service interface its queue back");
    assert!(
        wait_for(Duration::from_secs(4), || {
            p.b.events(mark).iter().any(|e| matches!(
            &e.event,
            Event::GarpRecovered { vip: v, interface, failed } if *v == IpAddr::V4(vip) && interface == SERVICE_IF && *failed >= 1
        ))
        }),
        "no GARP went out once the queue accepted frames again: {:?}",
        p.b.events(mark)
    );
    // Clients that still held the dead active's MAC for the VIP learn
    // b's from those GARPs.
    let mut port = 32000;
    assert!(
        wait_for(Duration::from_secs(5), || {
            port += 1;
            probe(&p.lab, port)
        }),
        "client probes not answered once b's GARPs went out:\n{}",
        p.b.log_text()
    );
    assert!(p.b.running(), "b died:\n{}", p.b.log_text());
    assert_eq!(p.b.pair_state().as_deref(), Some("active"));
    assert!(
        !p.b.events(mark)
            .iter()
            .any(|e| matches!(e.event, Event::GarpGaveUp { .. })),
        "the retries gave up before the queue came back: {:?}",
        p.b.events(mark)
    );
}
