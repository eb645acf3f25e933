//! ipvsadm's views of a running pair (issue 13): `tandemctl conns` lists
//! the kernel's flows and SIP dialogs (filtered by VIP, real server and
//! Call-ID, capped by --limit, marked as synced on both directors), and
//! `tandemctl zero` zeroes what the `services` and `reals` views count
//! while the Prometheus counters of `metrics` go on rising.
//!
//! The pair is the lab's ([`tandem_tests::tandemd`]): two IVRs, a UDP
//! service on VIP:5060 with `sip_persist`, state sync on, no IVR
//! heartbeats (the real servers take flows at once). The traffic is
//! bounded: one datagram from each of 24 client ports (24 flows), three
//! SIP INVITEs with their own Call-IDs (3 dialogs), then 10 more
//! datagrams on flows that exist — all from the lab's client namespace to
//! the lab's VIP. Asserts on the typed answers, not on log lines.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    process::Command,
    time::Duration,
};

use tandem_control::admin::{ConnStatus, Request, Response, ServiceStatus};
use tandem_tests::{
    in_netns,
    lab::CLIENT,
    privileged::lab_turn,
    tandemd::{Binaries, Director, Pair, PairOptions, WorkDir, wait_for},
    udp_flows,
};

const FLOW_PORTS: std::ops::Range<u16> = 41_000..41_024;
const SIP_PORT: u16 = 42_000;

fn bins() -> Binaries {
    Binaries {
        tandemd: env!("CARGO_BIN_EXE_tandemd").into(),
        tandemctl: env!("CARGO_BIN_EXE_tandemctl").into(),
    }
}

fn call_id(i: usize) -> String {
    format!("views-{i}@198.18.0.10")
}

/// `tandemctl <args>` against `d`: exit code and stdout.
fn tandemctl(d: &Director, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .arg("--socket")
        .arg(d.socket())
        .args(["--timeout-ms", "2000"])
        .args(args)
        .output()
        .expect("run tandemctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `tandemctl --json conns <filters>`: rows, total, truncated.
fn conns(d: &Director, filters: &[&str]) -> (Vec<ConnStatus>, u64, bool) {
    let mut args = vec!["--json", "conns"];
    args.extend_from_slice(filters);
    let (code, out) = tandemctl(d, &args);
    assert_eq!(code, Some(0), "tandemctl {args:?}: {out}");
    match serde_json::from_str(&out) {
        Ok(Response::Conns {
            conns,
            total,
            truncated,
            next,
        }) => {
            assert_eq!(next, None, "tandemctl walks to the end");
            (conns, total, truncated)
        }
        other => panic!("tandemctl {args:?}: {other:?}"),
    }
}

fn flows(rows: &[ConnStatus]) -> Vec<&ConnStatus> {
    rows.iter().filter(|r| r.kind == "flow").collect()
}

/// The UDP service of the `services` view.
fn udp_service(d: &Director) -> ServiceStatus {
    match d.request(&Request::Services) {
        Some(Response::Services { services, taken_ns }) => {
            assert!(taken_ns > 0, "services carries the daemon's clock");
            services
                .into_iter()
                .find(|s| s.protocol == "udp" && s.port == 5060)
                .expect("the UDP service")
        }
        other => panic!("services: {other:?}"),
    }
}

/// The `service_packets` and `real_packets` samples of `metrics`, by
/// their label text.
fn packet_counters(d: &Director) -> BTreeMap<String, u64> {
    let text = match d.request(&Request::Metrics) {
        Some(Response::Metrics { text }) => text,
        other => panic!("metrics: {other:?}"),
    };
    text.lines()
        .filter(|l| {
            l.starts_with("tandem_service_packets_total{")
                || l.starts_with("tandem_real_packets_total{")
        })
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn assert_not_below(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) {
    assert!(!before.is_empty(), "no packet counters in metrics");
    for (k, v) in before {
        let now = after.get(k).copied();
        assert!(
            now.is_some_and(|n| n >= *v),
            "{k} went from {v} to {now:?}: a Prometheus counter went back"
        );
    }
}

#[test]
fn privileged_conns_lists_the_flows_and_zero_leaves_metrics_monotonic() {
    let Some(_turn) =
        lab_turn("privileged_conns_lists_the_flows_and_zero_leaves_metrics_monotonic")
    else {
        return;
    };
    let dir = WorkDir::new("views").expect("work dir");
    let o = PairOptions {
        ivr_heartbeats: false,
        multiplier: 5,
        realtime_priority: 0,
        ..PairOptions::default()
    };
    let pair = Pair::start(2, &o, dir.path(), &bins(), None).expect("a active, b standby in sync");
    let (a, b) = (&pair.a, &pair.b);
    let client = pair.lab.ns(CLIENT).expect("client").to_string();
    let vip = SocketAddr::new(IpAddr::V4(pair.lab.vip()), 5060);
    let ivrs: Vec<IpAddr> = pair
        .lab
        .ivrs()
        .iter()
        .map(|h| IpAddr::V4(h.addr()))
        .collect();

    // 24 flows (no Call-ID: the connection table) and 3 SIP dialogs.
    let ports: Vec<u16> = FLOW_PORTS.collect();
    udp_flows(&client, &ports, vip, b"not sip", 0, Duration::ZERO).expect("flows");
    in_netns(&client, || {
        let s = std::net::UdpSocket::bind(("0.0.0.0", SIP_PORT)).expect("bind");
        for i in 0..3 {
            let invite = format!(
                "INVITE sip:ivr@{vip} SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.0.10:{SIP_PORT}\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\n\r\n",
                call_id(i)
            );
            s.send_to(invite.as_bytes(), vip).expect("send");
        }
    });
    let from_ports = |rows: &[ConnStatus]| {
        flows(rows)
            .into_iter()
            .filter(|r| r.client.is_some_and(|c| FLOW_PORTS.contains(&c.port())))
            .count()
    };
    let mut all = Vec::new();
    assert!(
        wait_for(Duration::from_secs(10), || {
            all = conns(a, &[]).0;
            from_ports(&all) == ports.len()
                && all.iter().filter(|r| r.kind == "call").count() == 3
                && all.iter().all(|r| r.synced == "to peer")
        }),
        "a's tables: {all:#?}"
    );

    // Every row: the VIP, one of the IVRs, its state and its expiry.
    for r in flows(&all) {
        assert_eq!(
            (r.protocol.as_str(), r.state.as_str(), r.vip),
            ("udp", "udp", vip),
            "{r:?}"
        );
        assert!(
            r.real
                .is_some_and(|x| ivrs.contains(&x.ip()) && x.port() == 5060),
            "{r:?}"
        );
        assert!(
            (250_000..=300_000).contains(&r.expires_ms),
            "300 s UDP timeout: {r:?}"
        );
        assert_eq!(r.service, "udp/198.18.0.100:5060");
    }
    let mut calls: Vec<&ConnStatus> = all.iter().filter(|r| r.kind == "call").collect();
    calls.sort_by_key(|r| r.call_id.clone());
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(
            c.call_id.as_deref(),
            Some(call_id(i).as_str()),
            "the Call-ID from the synced tables: {c:?}"
        );
        assert_eq!(
            (c.state.as_str(), c.client, c.vip),
            ("sip", None, vip),
            "{c:?}"
        );
        assert!(
            (3_500_000..=3_600_000).contains(&c.expires_ms),
            "an hour's call timeout: {c:?}"
        );
    }

    // Filters, applied by the daemon.
    let mut by_real = 0;
    for ivr in &ivrs {
        let (rows, total, truncated) = conns(a, &["--real", &ivr.to_string()]);
        assert!(!rows.is_empty(), "rr gave {ivr} nothing");
        assert!(
            rows.iter().all(|r| r.real.map(|x| x.ip()) == Some(*ivr)),
            "{rows:#?}"
        );
        assert_eq!((total, truncated), (rows.len() as u64, false));
        by_real += rows.len();
    }
    assert_eq!(
        by_real,
        all.len(),
        "every entry has one of the two real servers"
    );
    let (rows, ..) = conns(a, &["--vip", "198.18.0.100"]);
    assert_eq!(rows.len(), all.len());
    let (rows, total, _) = conns(a, &["--vip", "198.18.0.101"]);
    assert_eq!((rows.len(), total), (0, 0), "another VIP has no entries");
    let (rows, total, _) = conns(a, &["--call-id", &call_id(1)]);
    assert_eq!((rows.len(), total), (1, 1), "{rows:#?}");
    assert_eq!(rows[0].call_id.as_deref(), Some(call_id(1).as_str()));
    let (rows, total, truncated) = conns(a, &["--limit", "5"]);
    assert_eq!((rows.len(), total, truncated), (5, all.len() as u64, true));
    // The table, as an operator reads it.
    let (code, table) = tandemctl(a, &["conns", "--real", &ivrs[0].to_string()]);
    assert_eq!(code, Some(0));
    eprintln!("$ tandemctl conns --real {}\n{table}", ivrs[0]);
    assert!(
        table
            .lines()
            .skip(1)
            .all(|l| l.contains(&format!("{}:5060", ivrs[0]))),
        "{table}"
    );

    // The standby holds the same flows, received from the active.
    let mut on_b = Vec::new();
    assert!(
        wait_for(Duration::from_secs(10), || {
            on_b = conns(b, &[]).0;
            flows(&on_b)
                .iter()
                .filter(|r| r.synced == "from peer")
                .count()
                >= ports.len()
        }),
        "b's tables: {on_b:#?}"
    );

    // zero: the services view counts from zero; metrics count on.
    let before = packet_counters(a);
    let svc = udp_service(a);
    assert!(
        svc.packets >= (ports.len() + 3) as u64 && svc.new_flows >= ports.len() as u64,
        "{svc:?}"
    );
    let (code, out) = tandemctl(a, &["zero"]);
    assert_eq!(code, Some(0), "{out}");
    let zeroed = udp_service(a);
    assert_eq!(
        (zeroed.packets, zeroed.bytes, zeroed.new_flows),
        (0, 0, 0),
        "{zeroed:?}"
    );
    assert!(
        zeroed
            .reals
            .iter()
            .all(|r| r.packets == 0 && r.new_flows == 0),
        "{zeroed:?}"
    );
    assert_eq!(
        zeroed.reals.iter().map(|r| r.flows).sum::<u64>(),
        svc.reals.iter().map(|r| r.flows).sum::<u64>(),
        "active connections are not zeroed"
    );
    let after_zero = packet_counters(a);
    assert_not_below(&before, &after_zero);
    // 10 more datagrams on flows that exist: the view counts just them.
    udp_flows(&client, &ports[..10], vip, b"again", 0, Duration::ZERO).expect("flows");
    let mut now = zeroed.clone();
    assert!(
        wait_for(Duration::from_secs(5), || {
            now = udp_service(a);
            now.packets >= 10
        }),
        "{now:?}"
    );
    assert_eq!((now.packets, now.new_flows), (10, 0), "{now:?}");
    assert_eq!(now.reals.iter().map(|r| r.packets).sum::<u64>(), 10);
    let later = packet_counters(a);
    assert_not_below(&after_zero, &later);
    let key = "tandem_service_packets_total{service=\"udp/198.18.0.100:5060\"}";
    assert_eq!(
        later.get(key).copied(),
        after_zero.get(key).map(|n| n + 10),
        "metrics: {later:?}"
    );
    // The reals view is zeroed the same way.
    match a.request(&Request::Reals) {
        Some(Response::Reals { reals }) => {
            let udp: u64 = reals
                .iter()
                .filter(|r| r.service.starts_with("udp/"))
                .map(|r| r.packets)
                .sum();
            assert_eq!(udp, 10, "{reals:?}");
        }
        other => panic!("reals: {other:?}"),
    }
    // One service by PROTO:VIP:PORT; an unknown one is an error.
    let (code, _) = tandemctl(a, &["zero", "--service", "udp:198.18.0.100:5060"]);
    assert_eq!(code, Some(0));
    assert_eq!(udp_service(a).packets, 0);
    let (code, out) = tandemctl(a, &["--json", "zero", "--service", "udp:198.18.0.100:5999"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no service udp/198.18.0.100:5999"), "{out}");

    // Rates over the daemon's clock: no traffic, no rate.
    let (code, out) = tandemctl(a, &["--json", "services", "--rate", "--interval-ms", "200"]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("rates");
    let interval = v["interval_ns"].as_u64().expect("interval");
    assert!((150_000_000..2_000_000_000).contains(&interval), "{v}");
    let udp = v["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["service"] == "udp/198.18.0.100:5060"))
        .expect("the UDP service's rates");
    assert_eq!(
        (udp["cps"].as_f64(), udp["in_pps"].as_f64()),
        (Some(0.0), Some(0.0)),
        "{v}"
    );
    assert!(udp["out_pps"].is_null(), "{v}");
}
