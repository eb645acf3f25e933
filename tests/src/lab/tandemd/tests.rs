//! Unit tests of the pair's `tandem.toml`: what each option puts in or
//! leaves out, for a made-up lab (no namespaces needed).

use std::net::Ipv4Addr;
use std::path::Path;

use super::*;

fn ivrs() -> Vec<(Ipv4Addr, String)> {
    vec![
        (lab::dr_ivr_addr(1), "02:00:00:00:00:21".into()),
        (lab::dr_ivr_addr(2), "02:00:00:00:00:22".into()),
    ]
}

fn text(me: &str, o: &PairOptions, card: Option<(&Path, bool)>) -> String {
    render_config(
        "tdm1x0",
        lab::VIP,
        &ivrs(),
        me,
        o,
        Path::new("/tmp/x/a.sock"),
        card,
    )
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
        "address = \"198.18.0.21\"\nmac = \"02:00:00:00:00:21\"\nweight = 1\nnode_id = 101",
        "node_id = 102",
        "flow_entries = 65536",
        "socket = \"/tmp/x/a.sock\"",
    ] {
        assert!(a.contains(line), "{line:?} missing in\n{a}");
    }
    assert!(!a.contains("[[card]]") && !a.contains("metrics_listen"));
    assert!(!a.contains("protocol = \"tcp\""));
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
    assert!(!a.contains("[sync]"), "{a}");
    assert!(!a.contains("node_id"), "{a}");
    assert!(a.contains("flags = []"));
    assert!(a.contains("interval_ms = 1\n"));
    assert!(a.contains("preempt = true"));
    assert!(a.contains("protocol = \"tcp\""));
    assert!(a.contains("[[card]]\nroot = \"/tmp/card0\"\nspans = [1]"));
    assert!(a.contains("auto_answer = true"));
    assert!(a.ends_with("metrics_listen = \"127.0.0.1:9469\"\n"), "{a}");
}

#[test]
fn key_is_the_hex_key() {
    assert_eq!(key()[0], 0x00);
    assert_eq!(key()[1], 0x11);
    assert_eq!(key()[15], 0xff);
    assert_eq!(ivr_node_id(0), 101);
}
