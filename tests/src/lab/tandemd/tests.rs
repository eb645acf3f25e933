//! Unit tests of the pair's `tandem.toml` (what each option puts in or
//! leaves out, for a made-up lab: no namespaces needed) and of reading
//! events back from a log's timeline lines.

use std::net::Ipv4Addr;
use std::path::Path;

use super::*;
use crate::lab;

fn ivrs() -> Vec<(Ipv4Addr, String)> {
    vec![
        (lab::dr_ivr_addr(1), "02:00:00:00:00:21".into()),
        (lab::dr_ivr_addr(2), "02:00:00:00:00:22".into()),
    ]
}

fn config(me: &str, o: &PairOptions, card: Option<(&Path, bool)>) -> DirectorConfig {
    DirectorConfig {
        prefix: "tdm1x0".into(),
        vip: lab::VIP,
        ivrs: ivrs(),
        me: me.into(),
        options: o.clone(),
        socket: "/tmp/x/a.sock".into(),
        card: card.map(|(root, answer)| (root.to_path_buf(), answer)),
        udp_service_lines: Vec::new(),
    }
}

fn text(me: &str, o: &PairOptions, card: Option<(&Path, bool)>) -> String {
    config(me, o, card).text()
}

#[test]
fn default_pair_config_has_sync_persistence_and_ivr_heartbeats() {
    let a = text(DIRECTOR_A, &PairOptions::default(), None);
    for line in [
        "id = 1",
        "peer_id = 2",
        "priority = 150",
        "preempt = false",
        "realtime_priority = 50",
        "interval_ms = 10",
        "multiplier = 3",
        "[sync]\nport = 8848",
        "flags = [\"sip_persist\"]",
        // No typed MAC: tandemd takes it from its neighbour table.
        "address = \"198.18.0.21\"\nweight = 1\nnode_id = 101",
        "node_id = 102",
        "flow_entries = 65536",
        "socket = \"/tmp/x/a.sock\"",
    ] {
        assert!(a.contains(line), "{line:?} missing in\n{a}");
    }
    assert!(!a.contains("[[card]]") && !a.contains("metrics_listen"));
    assert!(!a.contains("protocol = \"tcp\""));
    let typed = text(DIRECTOR_A, &PairOptions { typed_macs: true, ..PairOptions::default() }, None);
    assert!(typed.contains("address = \"198.18.0.21\"\nmac = \"02:00:00:00:00:21\"\nweight = 1"), "{typed}");
    let b = text(DIRECTOR_B, &PairOptions::default(), None);
    assert!(b.contains("id = 2\npeer_id = 1") && b.contains("priority = 100"));
    assert!(b.contains(&format!("local = \"{}\"", lab::HB_B_ADDR)));
}

#[test]
fn options_turn_sections_off_and_on() {
    let o = PairOptions {
        flags: Vec::new(),
        ivr_heartbeats: false,
        heartbeat_interval_ms: 1,
        sync: false,
        preempt: true,
        tcp_service: true,
        metrics_listen: Some("127.0.0.1:9469".into()),
        ..PairOptions::default()
    };
    let a = text(DIRECTOR_A, &o, Some((Path::new("/tmp/card0"), true)));
    assert!(a.contains("[sync]\nenabled = false\n"), "sync off says so (absent, it is on): {a}");
    assert!(!a.contains("node_id"), "{a}");
    assert!(a.contains("flags = []"));
    assert!(a.contains("interval_ms = 1\n"));
    assert!(a.contains("preempt = true"));
    assert!(a.contains("protocol = \"tcp\""));
    assert!(a.contains("[[card]]\nroot = \"/tmp/card0\"\nspans = [1]"));
    assert!(a.contains("auto_answer = true"));
    assert!(!a.contains("watchdog_ms"), "no watchdog unless asked: {a}");
    let o = PairOptions {
        card_watchdog_ms: Some(100),
        ..o
    };
    let w = text(DIRECTOR_B, &o, Some((Path::new("/tmp/card1"), false)));
    assert!(
        w.contains("auto_answer = false\nwatchdog_ms = 100\n"),
        "{w}"
    );
    assert!(a.ends_with("metrics_listen = \"127.0.0.1:9469\"\n"), "{a}");
}

#[test]
fn key_is_the_hex_key() {
    assert_eq!(key()[0], 0x00);
    assert_eq!(key()[1], 0x11);
    assert_eq!(key()[15], 0xff);
    assert_eq!(ivr_node_id(0), 101);
}

#[test]
fn added_lines_go_into_the_udp_service_table_only() {
    let o = PairOptions {
        tcp_service: true,
        ..PairOptions::default()
    };
    let plain = text(DIRECTOR_A, &o, None);
    let mut c = config(DIRECTOR_A, &o, None);
    let line = "sip_options = { interval_ms = 100, timeout_ms = 50, failures = 2 }";
    c.udp_service_lines.push(line.into());
    let a = c.text();
    assert_eq!(a.matches(line).count(), 1, "{a}");
    let udp = a.find("protocol = \"udp\"").expect("udp service");
    let at = a.find(line).expect("the line");
    let first_real = a.find("[[service.real]]").expect("a real");
    assert!(udp < at && at < first_real, "{a}");
    // Without added lines the text is as before.
    assert_eq!(a.replace(&format!("{line}\n"), ""), plain);
}

#[test]
fn logged_events_read_back_what_the_daemon_prints() {
    let events = [
        Event::StateChanged {
            from: "standby".into(),
            to: "takeover".into(),
            epoch: 7,
            peer_heard: vec![(4, 15_700), (5, 200)],
            reason: "the peer is dead on every path".into(),
        },
        Event::StateChanged {
            from: "takeover".into(),
            to: "active".into(),
            epoch: 7,
            peer_heard: Vec::new(),
            reason: String::new(),
        },
        Event::TakeoverDone {
            epoch: 7,
            micros: 31,
        },
        Event::VipsReleased,
        Event::GarpResent,
        Event::ShuttingDown {
            signal: "SIGTERM".into(),
        },
        Event::Reloaded {
            source: "/etc/tandem/tandem.toml".into(),
            changes: 3,
            fingerprint: "00ff00ff00ff00ff".into(),
            micros: 120,
        },
        Event::ConfigMismatch {
            on: true,
            here: "0000000000000001".into(),
            peer: "0000000000000002".into(),
        },
        Event::ConfigMismatch {
            on: false,
            here: "0000000000000002".into(),
            peer: "0000000000000002".into(),
        },
        Event::ReloadRefused {
            source: "/etc/tandem/tandem.toml".into(),
            reason: "/etc/tandem/tandem.toml: node.id: cannot change".into(),
        },
        Event::Started {
            node_id: 2,
            name: "b".into(),
        },
        Event::IvrHealth {
            node_id: 101,
            alive: false,
        },
        Event::IvrHealth {
            node_id: 102,
            alive: true,
        },
        Event::SipOptions {
            real: "198.18.0.21".parse().unwrap(),
            answered: false,
        },
        Event::SipOptions {
            real: "198.18.0.22".parse().unwrap(),
            answered: true,
        },
        Event::LinkChanged {
            name: "eth0".into(),
            up: false,
        },
        Event::CardAlarm { raised: true },
        Event::WitnessUnreachable,
        Event::SyncInSync,
    ];
    for e in events {
        assert_eq!(parse_logged_event(&e.to_string()), Some(e.clone()), "{e}");
    }
    // Lines of other events, or no event, are left out.
    let slow = Event::SlowTurn {
        micros: 40_000,
        during: "admin".into(),
    };
    assert_eq!(parse_logged_event(&slow.to_string()), None);
    assert_eq!(parse_logged_event("state of the art"), None);
    assert_eq!(parse_logged_event("link eth0 sideways"), None);
}
