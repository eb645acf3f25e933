//! The configuration's tests: values and defaults, round trips through
//! `to_toml`, and the message of every kind of bad field.

use std::{net::Ipv4Addr, path::PathBuf, time::Duration};

use tandem_dataplane::{
    AttachMode, RealState,
    common::{FLAG_EXPIRE_NODEST, FLAG_REPORTED_LOAD, Forward, Scheduler},
};

use super::*;

pub(super) const GOOD: &str = r#"
[node]
id = 1
name = "director-a"
priority = 150
preempt = true
peer_id = 2

[heartbeat]
interval_ms = 1
multiplier = 3
key = "000102030405060708090a0b0c0d0e0f"
paths = [
  { name = "link", interface = "hb0", local = "198.18.1.1", peer = "198.18.1.2" },
  { name = "service", interface = "svc0", local = "198.18.0.11", peer = "198.18.0.12" },
]

[witness]
address = "198.18.0.1"

[[vip]]
address = "198.18.0.100"
interface = "svc0"

[[service]]
vip = "198.18.0.100"
port = 5060
protocol = "udp"
scheduler = "wrr"
flags = ["expire_nodest", "reported_load"]

[[service.real]]
address = "198.18.0.21"
mac = "02:00:00:00:00:21"
weight = 2

[[service.real]]
address = "198.18.0.22"
mac = "02:00:00:00:00:22"
weight = 1
state = "draining"
interface = "svc0"
"#;

fn with(find: &str, replace: &str) -> String {
    assert!(GOOD.contains(find), "test fixture lacks {find:?}");
    GOOD.replacen(find, replace, 1)
}

/// Checks every case and names each one whose message differs.
fn assert_cases(cases: &[(String, &str)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(text, want)| {
            let got = error_of(text);
            (got != *want).then(|| format!("want: {want}\n got: {got}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

fn error_of(text: &str) -> String {
    match Config::parse(text) {
        Ok(_) => panic!("accepted a bad config:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn good_config_values_and_defaults() {
    let c = Config::parse(GOOD).expect("good config");
    assert_eq!(c.node.id, 1);
    assert_eq!(c.node.priority, 150);
    assert!(c.node.preempt);
    assert_eq!(c.heartbeat.port, DEFAULT_HEARTBEAT_PORT);
    assert_eq!(c.heartbeat.interval, Duration::from_millis(1));
    assert_eq!(c.heartbeat.deadline(), Duration::from_millis(3));
    assert_eq!(c.heartbeat.key[15], 0x0f);
    assert_eq!(c.heartbeat.paths.len(), 2);
    assert_eq!(c.heartbeat.paths[1].peer, Ipv4Addr::new(198, 18, 0, 12));
    assert_eq!(
        c.witness.as_ref().map(|w| w.address),
        Some(Ipv4Addr::new(198, 18, 0, 1))
    );
    assert_eq!(c.vips[0].garp_count, DEFAULT_GARP_COUNT);
    assert_eq!(c.vips[0].garp_interval, Duration::from_millis(10));
    assert_eq!(c.dataplane.xdp_mode, AttachMode::Auto);
    assert_eq!(c.dataplane.interfaces, vec!["hb0", "svc0"]);
    assert_eq!(c.services[0].forward, Forward::Dr);
    assert_eq!(c.services[0].flags, FLAG_EXPIRE_NODEST | FLAG_REPORTED_LOAD);
    assert_eq!(c.services[0].reals[1].state, RealState::Draining);
    assert_eq!(c.services[0].reals[0].weight, 2);
    assert_eq!(c.admin.socket, PathBuf::from(DEFAULT_ADMIN_SOCKET));
}

#[test]
fn good_config_round_trip() {
    let c = Config::parse(GOOD).expect("good config");
    let text = c.to_toml_with_keys();
    let again = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c, again);
}

#[test]
fn dataplane_services_resolve_interfaces() {
    let c = Config::parse(GOOD).expect("good config");
    let s = c
        .dataplane_services(|n| (n == "svc0").then_some(7))
        .expect("resolves");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].scheduler, Scheduler::Wrr);
    assert_eq!(s[0].reals[0].ifindex, 0);
    assert_eq!(s[0].reals[1].ifindex, 7);
    assert_eq!(s[0].reals[1].mac, [2, 0, 0, 0, 0, 0x22]);
    let e = c.dataplane_services(|_| None).expect_err("no interfaces");
    assert_eq!(
        e.to_string(),
        r#"service[0].real[1].interface: "svc0" is not an interface of this host"#
    );
}

#[test]
fn example_file_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tandem.example.toml");
    // A checkout's file may be 0644: its inline keys are warned of here.
    let (c, _open) = Config::load_with(path, crate::config::OpenKeys::Warn).unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.services.is_empty());
    assert!(c.witness.is_some());
    let again = Config::parse(&c.to_toml_with_keys()).expect("round trip");
    assert_eq!(c, again);
}

#[test]
fn load_names_the_file() {
    let e = Config::load("/nonexistent/tandem.toml").expect_err("no file");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/tandem.toml: cannot read"),
        "{e}"
    );
}

#[test]
fn bad_fields_are_named_with_their_values() {
    let cases: Vec<(String, &str)> = vec![
        (
            with("interval_ms = 1", "interval_ms = 0"),
            "heartbeat.interval_ms: 0 is below the minimum 1",
        ),
        (
            with("multiplier = 3", "multiplier = 1"),
            "heartbeat.multiplier: 1 is below the minimum 2",
        ),
        (
            with("interval_ms = 1", "interval_ms = \"fast\""),
            r#"heartbeat.interval_ms: "fast" is not an integer"#,
        ),
        (
            with("000102030405060708090a0b0c0d0e0f", "0001020304050607"),
            "heartbeat.key: (a key of 16 characters, not shown) is not a 16-byte key written as 32 hexadecimal digits",
        ),
        (
            with(
                "000102030405060708090a0b0c0d0e0f",
                "zz0102030405060708090a0b0c0d0e0f",
            ),
            "heartbeat.key: (a key of 32 characters, not shown) is not a 16-byte key written as 32 hexadecimal digits",
        ),
        (
            with("peer_id = 2", "peer_id = 1"),
            "node.peer_id: 1 is this node's own id",
        ),
        (
            with("id = 1", "id = 0"),
            "node.id: 0 is below the minimum 1",
        ),
        (
            with("id = 1", "id = 4294967296"),
            "node.id: 4294967296 is above the maximum 4294967295",
        ),
        (
            with("priority = 150", "priority = 256"),
            "node.priority: 256 is above the maximum 255",
        ),
        (
            with("preempt = true", "preempt = 1"),
            "node.preempt: 1 is not true or false",
        ),
        (with("id = 1\n", ""), "node.id: missing"),
        (
            with("preempt = true", "preempt = true\nprio = 3"),
            "node.prio: unknown field",
        ),
        (
            with("local = \"198.18.1.1\"", "local = \"198.18.1\""),
            r#"heartbeat.paths[0].local: "198.18.1" is not an IP address"#,
        ),
        (
            with("peer = \"198.18.0.12\"", "peer = \"fd00::1\""),
            r#"heartbeat.paths[1].peer: "fd00::1" is not an IPv4 address"#,
        ),
        (
            with("peer = \"198.18.1.2\"", "peer = \"198.18.1.1\""),
            r#"heartbeat.paths[0].peer: "198.18.1.1" is the local address"#,
        ),
        (
            with("name = \"service\"", "name = \"link\""),
            r#"heartbeat.paths[1].name: "link" is used by another path"#,
        ),
        (
            with(
                "interface = \"hb0\"",
                "interface = \"a-very-long-interface-name\"",
            ),
            r#"heartbeat.paths[0].interface: "a-very-long-interface-name" is not an interface name"#,
        ),
        (
            with("address = \"198.18.0.1\"", "address = \"224.0.0.1\""),
            r#"witness.address: "224.0.0.1" is not a unicast address"#,
        ),
        (
            with("scheduler = \"wrr\"", "scheduler = \"fifo\""),
            r#"service[0].scheduler: "fifo" is not a scheduler (rr, wrr, lc, wlc, sed, nq, sh, dh, mh)"#,
        ),
        (
            with("protocol = \"udp\"", "protocol = \"sctp\""),
            r#"service[0].protocol: "sctp" is not udp or tcp"#,
        ),
        (
            with("port = 5060", "port = 70000"),
            "service[0].port: 70000 is above the maximum 65535",
        ),
        (
            with(
                "flags = [\"expire_nodest\", \"reported_load\"]",
                "flags = [\"expire_nodest\", \"fast\"]",
            ),
            r#"service[0].flags[1]: "fast" is not a flag (expire_nodest, sched_fallback, sched_port, one_packet, reported_load, sip_persist)"#,
        ),
        (
            with(
                "flags = [\"expire_nodest\", \"reported_load\"]",
                "flags = []\nsip_options = { interval_ms = 100, timeout_ms = 200 }",
            ),
            "service[0].sip_options.timeout_ms: 200 is longer than interval_ms",
        ),
        (
            with(
                "flags = [\"expire_nodest\", \"reported_load\"]",
                "flags = []\nsip_options = { interval_ms = 1000, retries = 2 }",
            ),
            "service[0].sip_options.retries: unknown field",
        ),
        (
            with("02:00:00:00:00:21", "zz:00:00:00:00:21"),
            r#"service[0].real[0].mac: "zz:00:00:00:00:21" is not a MAC address"#,
        ),
        (
            with("02:00:00:00:00:22", "01:00:5e:00:00:22"),
            r#"service[0].real[1].mac: "01:00:5e:00:00:22" is not a unicast MAC address"#,
        ),
        (
            with("state = \"draining\"", "state = \"sleepy\""),
            r#"service[0].real[1].state: "sleepy" is not up, draining or down"#,
        ),
        (
            with("weight = 2", "weight = -1"),
            "service[0].real[0].weight: -1 is below the minimum 0",
        ),
        (
            with("address = \"198.18.0.21\"", "address = \"fd00::21\""),
            r#"service[0].real[0].address: "fd00::21" is not of the VIP's address family"#,
        ),
        (
            with("vip = \"198.18.0.100\"", "vip = \"198.18.0.101\""),
            "service[0].vip: 198.18.0.101 is not the address of any [[vip]]",
        ),
        (
            with("scheduler = \"wrr\"", "scheduler = \"mh\"\nmh_size = 65536"),
            "service[0].mh_size: 65536 is not a prime at most 131071",
        ),
        (
            with("[witness]", "[dataplane]\nxdp_mode = \"turbo\"\n[witness]"),
            r#"dataplane.xdp_mode: "turbo" is not one of native, generic, auto"#,
        ),
        (
            with("[witness]", "[dataplane]\ninterfaces = []\n[witness]"),
            "dataplane.interfaces: [] is empty",
        ),
        (
            with("[witness]", "[dataplane]\nflow_entries = 10\n[witness]"),
            "dataplane.flow_entries: 10 is below the minimum 1024",
        ),
        (
            with("paths = [", "paths = []\nold_paths = ["),
            // Every unknown field is reported, then the file's other problems.
            "heartbeat.old_paths: unknown field\n\
             heartbeat.paths: [] is empty: at least one heartbeat path is needed",
        ),
        (
            with("[heartbeat]", "[heartbeats]"),
            "heartbeats: unknown field (did you mean `heartbeat`?)\nheartbeat: missing",
        ),
        // The dataplane's own checks, mapped to the file's names.
        (
            with(
                "protocol = \"udp\"",
                "protocol = \"udp\"\nforward = \"nat\"",
            ),
            "service[0].gateway_mac: (udp/198.18.0.100:5060) NAT needs the MAC of the gateway toward the clients",
        ),
    ];
    assert_cases(&cases);
}

#[test]
fn duplicates_across_sections() {
    let dup_vip = format!("{GOOD}\n[[vip]]\naddress = \"198.18.0.100\"\ninterface = \"svc0\"\n");
    assert_eq!(
        error_of(&dup_vip),
        "vip[1].address: 198.18.0.100 is listed twice"
    );
    let dup_service = format!(
        "{GOOD}\n[[service]]\nvip = \"198.18.0.100\"\nport = 5060\nprotocol = \"udp\"\nscheduler = \"rr\"\n"
    );
    assert_eq!(
        error_of(&dup_service),
        "service[1]: udp/198.18.0.100:5060 is configured twice"
    );
}

const CARDS: &str = r#"
[[card]]
root = "/run/cardsim/a"
spans = [1, 2]
takeover_deadline_ms = 250
lineconfig = ["ccs", "hdb3", "crc4"]
timing = 1
signalling = "em_e1"

[[card]]
spans = [3]
"#;

#[test]
fn cards_values_defaults_and_round_trip() {
    let c = Config::parse(&format!("{GOOD}{CARDS}")).expect("cards config");
    assert_eq!(c.cards.len(), 2);
    let a = &c.cards[0];
    assert_eq!(a.root, PathBuf::from("/run/cardsim/a"));
    assert_eq!(a.spans, vec![1, 2]);
    assert_eq!(a.takeover_deadline, Duration::from_millis(250));
    assert_eq!(
        a.line,
        Some(CardLine {
            config: tandem_hw::abi::DAHDI_CONFIG_CCS
                | tandem_hw::abi::DAHDI_CONFIG_HDB3
                | tandem_hw::abi::DAHDI_CONFIG_CRC4,
            timing: 1,
        })
    );
    assert_eq!(a.signalling, tandem_hw::abi::DAHDI_SIG_EM_E1);
    let b = &c.cards[1];
    assert_eq!(b.root, PathBuf::from(DEFAULT_CARD_ROOT));
    assert_eq!(b.root, PathBuf::from("/dev/dahdi"));
    assert_eq!(
        b.takeover_deadline,
        Duration::from_millis(DEFAULT_TAKEOVER_DEADLINE_MS)
    );
    assert_eq!(b.line, None, "no lineconfig: no DAHDI_SPANCONFIG");
    assert_eq!(b.signalling, tandem_hw::abi::DAHDI_SIG_FXSKS);

    let text = c.to_toml_with_keys();
    let again = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c, again);
    assert!(Config::parse(GOOD).expect("no cards").cards.is_empty());
}

#[test]
fn damping_dead_man_and_echo_defaults_and_pair_config() {
    let c = Config::parse(GOOD).expect("good config");
    assert_eq!(
        c.node.hold_down,
        Duration::from_millis(DEFAULT_HOLD_DOWN_MS)
    );
    assert_eq!(c.node.hold_down_max, Duration::from_millis(60_000));
    assert_eq!(c.node.preempt_delay, Duration::from_millis(3_000));
    assert_eq!(c.node.switchover_hold, None, "0: until released");
    assert_eq!(
        c.heartbeat.dead_man,
        Some(Duration::from_millis(20)),
        "max(20, 4 × 1 ms)"
    );
    assert!(c.heartbeat.echo);
    let p = c.pair_config(true);
    assert_eq!(
        (p.node_id, p.priority, p.preempt, p.paths),
        (1, 150, true, 2)
    );
    assert_eq!(p.init_hold, c.heartbeat.deadline() * 2);
    assert_eq!(p.hold_down, c.node.hold_down);
    assert!(p.witness && p.sync && p.echo);
    assert!(!c.pair_config(false).witness);

    let slow = with("interval_ms = 1", "interval_ms = 10");
    let c = Config::parse(&slow).expect("10 ms");
    assert_eq!(
        c.heartbeat.dead_man,
        Some(Duration::from_millis(40)),
        "4 × 10 ms"
    );

    let set = with(
        "peer_id = 2",
        "peer_id = 2\nhold_down_ms = 500\nhold_down_max_ms = 8000\npreempt_delay_ms = 0\nswitchover_hold_ms = 30000",
    )
    .replace("multiplier = 3", "multiplier = 3\ndead_man_ms = 0\necho = false");
    let c = Config::parse(&set).expect("set config");
    assert_eq!(c.node.hold_down, Duration::from_millis(500));
    assert_eq!(c.node.hold_down_max, Duration::from_millis(8000));
    assert_eq!(c.node.preempt_delay, Duration::ZERO);
    assert_eq!(c.node.switchover_hold, Some(Duration::from_secs(30)));
    assert_eq!(c.heartbeat.dead_man, None, "0: off");
    assert!(!c.heartbeat.echo);
    let p = c.pair_config(false);
    assert_eq!(p.switchover_hold, Some(Duration::from_secs(30)));
    assert!(!p.echo);
    let again = Config::parse(&c.to_toml_with_keys()).expect("round trip");
    assert_eq!(c, again, "dead_man off and echo off survive a round trip");

    let sync_off = format!("{GOOD}\n[sync]\nenabled = false\n");
    assert!(
        !Config::parse(&sync_off)
            .expect("sync off")
            .pair_config(false)
            .sync
    );
}

#[test]
fn bad_damping_and_dead_man_fields_are_named() {
    let cases: Vec<(String, &str)> = vec![
        (
            with(
                "peer_id = 2",
                "peer_id = 2\nhold_down_ms = 5000\nhold_down_max_ms = 1000",
            ),
            "node.hold_down_max_ms: 1000 is below node.hold_down_ms (5000)",
        ),
        (
            with("peer_id = 2", "peer_id = 2\npreempt_delay_ms = -1"),
            "node.preempt_delay_ms: -1 is below the minimum 0",
        ),
        (
            with("multiplier = 3", "multiplier = 3\ndead_man_ms = 1"),
            "heartbeat.dead_man_ms: 1 is below 2 × heartbeat.interval_ms (2): a daemon on time would be fenced (0 switches the dead-man off)",
        ),
        (
            with("multiplier = 3", "multiplier = 3\ndead_man_ms = 60001"),
            "heartbeat.dead_man_ms: 60001 is above the maximum 60000",
        ),
        (
            with("multiplier = 3", "multiplier = 3\necho = 1"),
            "heartbeat.echo: 1 is not true or false",
        ),
        (
            with("peer_id = 2", "peer_id = 2\nhold_down = 5"),
            "node.hold_down: unknown field (did you mean `hold_down_ms`?)",
        ),
    ];
    assert_cases(&cases);
    let at_two = with("multiplier = 3", "multiplier = 3\ndead_man_ms = 2");
    assert_eq!(
        Config::parse(&at_two)
            .expect("2 × interval is allowed")
            .heartbeat
            .dead_man,
        Some(Duration::from_millis(2))
    );
}

#[test]
fn card_watchdog_is_optional_and_round_trips() {
    let c = Config::parse(&format!("{GOOD}{CARDS}")).expect("cards config");
    assert_eq!(c.cards[0].watchdog, None, "absent: no watchdog");
    let text = format!("{GOOD}\n[[card]]\nspans = [1]\nwatchdog_ms = 200\n");
    let c = Config::parse(&text).expect("watchdog config");
    assert_eq!(c.cards[0].watchdog, Some(Duration::from_millis(200)));
    let again = Config::parse(&c.to_toml_with_keys()).expect("round trip");
    assert_eq!(c, again);
}

#[test]
fn example_card_section_parses_when_uncommented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tandem.example.toml");
    let text = std::fs::read_to_string(path).expect("example file");
    let at = text.find("# [[card]]").expect("the example shows [[card]]");
    let uncommented: String = text[at..]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let c = Config::parse(&format!("{}\n{uncommented}\n", &text[..at]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.cards.len(), 1);
    assert_eq!(c.cards[0].spans, vec![1]);
    assert_eq!(c.cards[0].line.map(|l| l.timing), Some(1));
    assert_eq!(c.cards[0].watchdog, Some(Duration::from_millis(200)));
}

#[test]
fn bad_card_fields_are_named_with_their_values() {
    let card = |body: &str| format!("{GOOD}\n[[card]]\n{body}\n");
    let cases: Vec<(String, &str)> = vec![
        (card("root = \"/dev/dahdi\""), "card[0].spans: missing"),
        (
            card("spans = []"),
            "card[0].spans: [] is empty: a card needs at least one span this node owns",
        ),
        (
            card("spans = [0]"),
            "card[0].spans[0]: 0 is not a span number (1 to 128)",
        ),
        (
            card("spans = [1, 129]"),
            "card[0].spans[1]: 129 is not a span number (1 to 128)",
        ),
        (
            card("spans = [2, 2]"),
            "card[0].spans[1]: 2 is listed twice",
        ),
        (
            card("spans = [\"one\"]"),
            r#"card[0].spans[0]: "one" is not an integer"#,
        ),
        (
            card("spans = 1"),
            "card[0].spans: 1 is not a list of span numbers",
        ),
        (
            card("spans = [1]\nroot = \"dev/dahdi\""),
            r#"card[0].root: "dev/dahdi" is not an absolute path"#,
        ),
        (
            card("spans = [1]\ntakeover_deadline_ms = 0"),
            "card[0].takeover_deadline_ms: 0 is below the minimum 1",
        ),
        (
            card("spans = [1]\nlineconfig = [\"hdb3\", \"crc5\"]"),
            r#"card[0].lineconfig[1]: "crc5" is not a framing or coding word (d4, esf, ami, b8zs, ccs, hdb3, crc4)"#,
        ),
        (
            card("spans = [1]\ntiming = 1"),
            "card[0].timing: (set) needs lineconfig: the timing priority goes with DAHDI_SPANCONFIG",
        ),
        (
            card("spans = [1]\nsignalling = \"sip\""),
            r#"card[0].signalling: "sip" is not a signalling (fxsls, fxsgs, fxsks, fxols, fxogs, fxoks, em, em_e1, cas, clear)"#,
        ),
        (
            card("spans = [1]\nwatchdog_ms = 5"),
            "card[0].watchdog_ms: 5 is below the minimum 10",
        ),
        (
            card("spans = [1]\nwatchdog_ms = 60001"),
            "card[0].watchdog_ms: 60001 is above the maximum 60000",
        ),
        (
            card("spans = [1]\nwatchdog_ms = 500"),
            "card[0].takeover_deadline_ms: 500 is not above card[0].watchdog_ms (500): a takeover from a hung peer waits for its watchdog to expire",
        ),
        (
            with("interval_ms = 1", "interval_ms = 5")
                + "\n[[card]]\nspans = [1]\nwatchdog_ms = 19\n",
            "card[0].watchdog_ms: 19 is below 4 × heartbeat.interval_ms (20): the daemon could not kick it in time",
        ),
        (
            card("spans = [1]\nspan = 1"),
            "card[0].span: unknown field (did you mean `spans`?)",
        ),
        (
            format!(
                "{GOOD}\n[[card]]\nspans = [1]\n[[card]]\nroot = \"/dev/dahdi\"\nspans = [2]\n"
            ),
            r#"card[1].root: "/dev/dahdi" is listed twice"#,
        ),
    ];
    assert_cases(&cases);
}

#[test]
fn syntax_error_says_where() {
    let e = error_of("[node\nid = 1");
    assert!(e.starts_with("not valid TOML: "), "{e}");
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn unknown_field_names_the_nearest_known_one() {
    let e = Config::parse(&with("interval_ms = 1", "intreval_ms = 1")).expect_err("typo");
    assert_eq!(
        e.to_string(),
        "heartbeat.intreval_ms: unknown field (did you mean `interval_ms`?)"
    );
    match &e {
        ConfigError::Unknown {
            field,
            did_you_mean,
        } => {
            assert_eq!(field, "heartbeat.intreval_ms");
            assert_eq!(did_you_mean.as_deref(), Some("interval_ms"));
        }
        other => panic!("not an unknown field: {other:?}"),
    }
    // Inside an element of an array of tables, with its index.
    assert_eq!(
        error_of(&with("weight = 2", "wieght = 2")),
        "service[0].real[0].wieght: unknown field (did you mean `weight`?)"
    );
    // Nothing close: no guess.
    assert_eq!(
        error_of(&with("preempt = true", "preempt = true\nzzz = 1")),
        "node.zzz: unknown field"
    );
}

#[test]
fn nearest_name_allows_one_slip_per_three_characters() {
    let known = ["interval_ms", "multiplier", "port", "key", "paths"];
    let near = |n: &str| read::nearest(n, known.iter().copied());
    assert_eq!(
        near("intreval_ms").as_deref(),
        Some("interval_ms"),
        "a swap is one slip"
    );
    assert_eq!(near("interval").as_deref(), None, "three missing of eight");
    assert_eq!(near("prot").as_deref(), Some("port"));
    assert_eq!(near("multiplyer").as_deref(), Some("multiplier"));
    assert_eq!(near("path").as_deref(), Some("paths"));
    assert_eq!(near("xyz"), None);
}

#[test]
fn several_problems_are_reported_at_once() {
    let text = with("peer_id = 2", "peer_id = 1")
        .replacen("peer = \"198.18.1.2\"", "peer = \"198.18.1.1\"", 1)
        .replacen("vip = \"198.18.0.100\"", "vip = \"198.18.0.101\"", 1)
        + "\n[[card]]\nspans = [1, 1]\ntiming = 1\n";
    let e = Config::parse(&text).expect_err("four faults");
    let want = [
        "node.peer_id: 1 is this node's own id",
        r#"heartbeat.paths[0].peer: "198.18.1.1" is the local address"#,
        "card[0].spans[1]: 1 is listed twice",
        "card[0].timing: (set) needs lineconfig: the timing priority goes with DAHDI_SPANCONFIG",
        "service[0].vip: 198.18.0.101 is not the address of any [[vip]]",
    ];
    let got: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
    assert_eq!(got, want);
    assert!(matches!(e, ConfigError::Several(_)));
    assert_eq!(e.to_string(), want.join("\n"));
    assert_eq!(e.field(), Some("node.peer_id"));

    // Several unknown fields in different tables, each with its guess.
    let typos =
        with("interval_ms = 1", "intreval_ms = 1").replacen("priority = 150", "priorty = 150", 1);
    assert_eq!(
        error_of(&typos),
        "heartbeat.intreval_ms: unknown field (did you mean `interval_ms`?)\n\
         node.priorty: unknown field (did you mean `priority`?)"
    );
}

#[test]
fn load_prefixes_every_problem_with_the_file() {
    let dir = std::env::temp_dir().join(format!("tandem-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("tandem.toml");
    let text = with("peer_id = 2", "peer_id = 1").replacen(
        "multiplier = 3",
        "multiplier = 3\nmultiplyer = 3",
        1,
    );
    std::fs::write(&path, text).expect("write");
    let e = Config::load(&path).expect_err("two faults");
    let p = path.display();
    assert_eq!(
        e.to_string(),
        format!(
            "{p}: heartbeat.multiplyer: unknown field (did you mean `multiplier`?)\n\
             {p}: node.peer_id: 1 is this node's own id"
        )
    );
    assert_eq!(e.problems().len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nested_array_elements_are_named_by_index() {
    let second = "\n[[service]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\n\
                  [[service.real]]\naddress = \"198.18.0.21\"\nmac = \"02:00:00:00:00:21\"\nweight = 70000\n";
    assert_eq!(
        error_of(&format!("{GOOD}{second}")),
        "service[1].real[0].weight: 70000 is above the maximum 65535"
    );
    assert_eq!(
        error_of(&format!(
            "{GOOD}{}",
            second.replace("weight = 70000", "weight = 1\nstate = 3")
        )),
        r#"service[1].real[0].state: 3 is not a string"#
    );
    assert_eq!(
        error_of(&with("address = \"198.18.0.22\"\n", "")),
        "service[0].real[1].address: missing"
    );
    // Root keys go before the first table.
    let vip_block = "[[vip]]\naddress = \"198.18.0.100\"\ninterface = \"svc0\"\n";
    assert_eq!(
        error_of(&format!("vip = 7\n{}", with(vip_block, ""))),
        "vip: 7 is not a list of tables"
    );
    let witness_block = "[witness]\naddress = \"198.18.0.1\"\n";
    assert_eq!(
        error_of(&format!("witness = 1\n{}", with(witness_block, ""))),
        "witness: integer `1` is not a table"
    );
}

/// A configuration with every optional field set.
fn full() -> Config {
    let mut c = Config::parse(&format!("{GOOD}{CARDS}")).expect("cards config");
    c.admin.metrics_listen = Some("127.0.0.1:9464".parse().expect("address"));
    c.admin.read_group = Some("tandem".into());
    c.services[0].reals[0].node_id = Some(21);
    c.heartbeat.ivr_key = Some(KeyConfig::inline([9; 16]));
    c.sync.as_mut().expect("sync on").key = KeyConfig::inline([5; 16]);
    c.services[0].client_interface = Some("svc0".into());
    c.services[0].gateway_mac = Some([2, 0, 0, 0, 0, 1]);
    c.services[0].sip_options = Some(crate::sipprobe::ProbeConfig {
        interval: Duration::from_millis(1000),
        timeout: Duration::from_millis(500),
        failures: 3,
    });
    c.cards[1].auto_answer = true;
    c
}

#[test]
fn every_field_round_trips_and_sync_off_stays_off() {
    let c = full();
    let text = c.to_toml_with_keys();
    let again = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c, again);

    let mut off = c.clone();
    off.sync = None;
    let text = off.to_toml_with_keys();
    assert!(text.contains("enabled = false"), "{text}");
    assert_eq!(Config::parse(&text).expect("sync off").sync, None);
}

#[test]
fn example_file_shows_every_field() {
    fn keys(v: &toml::Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    out.insert(k.clone());
                    keys(v, out);
                }
            }
            toml::Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tandem.example.toml");
    let example = std::fs::read_to_string(path).expect("example file");
    let written: toml::Value = full()
        .to_toml()
        .parse::<toml::Table>()
        .expect("toml")
        .into();
    let mut all = std::collections::BTreeSet::new();
    keys(&written, &mut all);
    all.insert("enabled".into()); // [sync] enabled, written only when false
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| !example.contains(&format!("[{k}]")) && !example.contains(&format!(".{k}]")))
        .filter(|k| {
            !example.contains(&format!(" {k} ="))
                && !example.contains(&format!("\n{k} ="))
                && !example.contains(&format!("{{ {k} ="))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "tandem.example.toml does not show {missing:?}"
    );
}

/// Issue 11: configurations `--check` accepted that break the pair.
#[test]
fn dangerous_wiring_is_refused_with_the_field_named() {
    let two_paths_one_link = with(
        r#"{ name = "service", interface = "svc0", local = "198.18.0.11", peer = "198.18.0.12" }"#,
        r#"{ name = "service", interface = "hb0", local = "198.18.0.11", peer = "198.18.0.12" }"#,
    );
    let cases: Vec<(String, &str)> = vec![
        (
            with("interval_ms = 1\n", "interval_ms = 1\nport = 5060\n"),
            "service[0].port: 5060 is the heartbeat port (heartbeat.port): every datagram to it would be taken for a heartbeat",
        ),
        (
            with(r#"address = "198.18.0.1""#, r#"address = "198.18.0.100""#),
            "witness.address: 198.18.0.100 is vip[0]'s address: the witness must be a third host on the service network",
        ),
        (
            with(r#"address = "198.18.0.1""#, r#"address = "198.18.1.2""#),
            r#"witness.address: 198.18.1.2 is the peer's address on path "link": the witness must be a third host on the service network"#,
        ),
        (
            with(r#"address = "198.18.0.1""#, r#"address = "198.18.0.11""#),
            r#"witness.address: 198.18.0.11 is this node's address on path "service": the witness must be a third host on the service network"#,
        ),
        (
            two_paths_one_link,
            r#"heartbeat.paths[1].interface: "hb0" is also heartbeat.paths[0]'s: two paths over one link or address fail together"#,
        ),
        (
            with(r#"peer = "198.18.0.12""#, r#"peer = "198.18.1.2""#),
            r#"heartbeat.paths[1].peer: "198.18.1.2" is also heartbeat.paths[0]'s: two paths over one link or address fail together"#,
        ),
        (
            with(
                "[[vip]]\naddress = \"198.18.0.100\"",
                "[[vip]]\naddress = \"198.18.0.12\"",
            )
            .replace("vip = \"198.18.0.100\"", "vip = \"198.18.0.12\""),
            r#"vip[0].address: 198.18.0.12 is the peer's address on path "service""#,
        ),
        (
            format!("{GOOD}\n[dataplane]\ninterfaces = [\"hb0\"]\n"),
            r#"vip[0].interface: "svc0" is not in dataplane.interfaces: the VIP's ARP answers and dispatch need the XDP program there"#,
        ),
        (
            with(
                "000102030405060708090a0b0c0d0e0f",
                "00000000000000000000000000000000",
            ),
            "heartbeat.key: (a key of 32 characters, not shown) is all zeros: not a secret",
        ),
        (
            with("weight = 2\n", "weight = 2\nnode_id = 101\n"),
            "service[0].real[0].node_id: 101 needs heartbeat.ivr_key (or ivr_key_file): each IVR's heartbeat key is derived from it",
        ),
        (
            with(
                "multiplier = 3\n",
                "multiplier = 3\nivr_key = \"000102030405060708090a0b0c0d0e0f\"\n",
            ),
            "heartbeat.ivr_key: (not shown) is the same key as heartbeat.key: each role needs its own key",
        ),
        (
            format!("{GOOD}\n[sync]\nkey = \"000102030405060708090a0b0c0d0e0f\"\n"),
            "sync.key: (not shown) is the same key as heartbeat.key: each role needs its own key",
        ),
        (
            with(
                "multiplier = 3\n",
                "multiplier = 3\nkey_file = \"/etc/tandem/hb.key\"\n",
            ),
            "heartbeat.key_file: (set) is given with heartbeat.key: give one of the two",
        ),
    ];
    assert_cases(&cases);
}

/// Issue 11, finding 7: a key typo's error printed 31 of its 32 digits.
#[test]
fn no_error_and_no_written_file_shows_a_key() {
    let typo = "000102030405060708090a0b0c0d0e0";
    let e = error_of(&with("000102030405060708090a0b0c0d0e0f", typo));
    assert!(!e.contains("0102030405"), "{e}");
    let c = Config::parse(GOOD).expect("good");
    for shown in [c.to_toml(), format!("{c:?}"), format!("{:?}", c.heartbeat)] {
        assert!(!shown.contains("0102030405"), "{shown}");
        assert!(!shown.contains("1, 2, 3, 4"), "{shown}");
    }
    assert!(c.to_toml().contains(r#"key = "(not shown)""#));
    // The hidden file does not read back as if it had a key.
    assert!(Config::parse(&c.to_toml()).is_err());
}

/// A key file: owner-only, one key line; the file is named in every refusal.
#[test]
fn key_files_are_read_and_checked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tandem-keyfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str, mode: u32| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let good = write(
        "hb.key",
        "# director heartbeats\n0f0e0d0c0b0a09080706050403020100\n",
        0o600,
    );
    let text_for = |p: &std::path::Path| {
        with(
            "key = \"000102030405060708090a0b0c0d0e0f\"",
            &format!("key_file = \"{}\"", p.display()),
        )
    };
    let c = Config::parse(&text_for(&good)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.heartbeat.key[0], 0x0f);
    assert_eq!(c.heartbeat.key.source, KeySource::File(good.clone()));
    assert!(
        c.to_toml()
            .contains(&format!("key_file = \"{}\"", good.display()))
    );
    assert_eq!(Config::parse(&c.to_toml()).expect("names the file"), c);
    // The sync key is derived, and not the heartbeat key.
    let sync = c.sync.as_ref().expect("sync on");
    assert_eq!(sync.key.source, KeySource::Derived);
    assert_ne!(*sync.key, *c.heartbeat.key);

    let open = write("open.key", "0f0e0d0c0b0a09080706050403020100\n", 0o644);
    let e = error_of(&text_for(&open));
    assert!(
        e.starts_with("heartbeat.key_file: ")
            && e.contains("is mode 0644 (uid ")
            && e.contains(&format!("chmod 600 {}", open.display())),
        "{e}"
    );
    let garbage = write("bad.key", "0f0e0d0c0b0a0908070605040302010\n", 0o600);
    let e = error_of(&text_for(&garbage));
    assert!(
        e.contains("does not hold a 16-byte key") && !e.contains("0f0e0d0c"),
        "{e}"
    );
    let zero = write("zero.key", "00000000000000000000000000000000\n", 0o400);
    assert!(error_of(&text_for(&zero)).contains("all-zero key"));
    let e = error_of(&text_for(&dir.join("absent.key")));
    assert!(e.contains("cannot be read"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 13: the plan of a reload, by identity, with what is refused named.
mod reload_diff {
    use super::*;
    use crate::config::diff::{Change, NotLive, diff};

    fn parse(text: &str) -> Config {
        Config::parse(text).expect("fixture parses")
    }

    #[test]
    fn the_same_file_or_a_reordered_one_changes_nothing() {
        let a = parse(GOOD);
        assert!(diff(&a, &a).is_empty());
        // The two real servers in the other order: the same service.
        let first = "[[service.real]]\naddress = \"198.18.0.21\"\nmac = \"02:00:00:00:00:21\"\nweight = 2\n";
        let reordered = GOOD.replacen(first, "", 1) + "\n" + first;
        let d = diff(&a, &parse(&reordered));
        assert!(d.is_empty(), "{d}");
    }

    #[test]
    fn weights_states_and_schedulers_are_edits_not_deletes() {
        let a = parse(GOOD);
        let b = parse(
            &GOOD
                .replacen("weight = 2", "weight = 5", 1)
                .replacen("state = \"draining\"", "state = \"down\"", 1)
                .replacen("scheduler = \"wrr\"", "scheduler = \"rr\"", 1),
        );
        let d = diff(&a, &b);
        assert!(d.applicable(), "{d}");
        let text = d.to_string();
        assert_eq!(
            text,
            "~ service udp 198.18.0.100:5060: scheduler wrr -> rr\n\
             ~ real 198.18.0.21 in udp 198.18.0.100:5060: weight 2 -> 5\n\
             ~ real 198.18.0.22 in udp 198.18.0.100:5060: state draining -> down\n"
        );
    }

    #[test]
    fn added_and_removed_services_and_reals_come_removals_first() {
        let a = parse(GOOD);
        let tcp = "\n[[service]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\n\n[[service.real]]\naddress = \"198.18.0.21\"\nmac = \"02:00:00:00:00:21\"\n";
        let b = parse(
            &(GOOD.replacen(
                "[[service.real]]\naddress = \"198.18.0.22\"\nmac = \"02:00:00:00:00:22\"\nweight = 1\nstate = \"draining\"\ninterface = \"svc0\"\n",
                "[[service.real]]\naddress = \"198.18.0.23\"\nmac = \"02:00:00:00:00:23\"\n",
                1,
            ) + tcp),
        );
        let d = diff(&a, &b);
        let kinds: Vec<&str> = d
            .changes
            .iter()
            .map(|c| match c {
                Change::ServiceAdded(_) => "service+",
                Change::ServiceRemoved(_) => "service-",
                Change::ServiceEdited { .. } => "service~",
                Change::RealAdded { .. } => "real+",
                Change::RealRemoved { .. } => "real-",
                Change::RealEdited { .. } => "real~",
                Change::TimeoutsEdited { .. } => "timeouts~",
                Change::KeysEdited { .. } => "keys~",
            })
            .collect();
        assert_eq!(kinds, ["service+", "real-", "real+"], "{d}");
        assert!(d.to_string().contains("- real 198.18.0.22 in udp 198.18.0.100:5060"), "{d}");
        assert!(d.to_string().contains("+ service tcp 198.18.0.100:80"), "{d}");
        // The other way round: the TCP service goes.
        let back = diff(&b, &a);
        assert_eq!(back.changes[0], Change::ServiceRemoved(crate::config::diff::ServiceId::of(&b.services[1])), "{back}");
        // Timeouts are live, and replicated with the services.
        let t = parse(&format!("{GOOD}\n[timeouts]\nudp_s = 60\n"));
        let d = diff(&a, &t);
        assert!(d.applicable(), "{d}");
        assert_eq!(d.to_string(), "~ timeouts: udp_s 300 -> 60\n");
        assert_ne!(a.fingerprint(), t.fingerprint(), "timeouts are part of what the pair agrees on");
        assert_eq!(a.with_services(&t.services_toml()).expect("replicated"), t);
    }

    #[test]
    fn identity_and_not_yet_live_fields_are_refused_by_name() {
        let a = parse(GOOD);
        let b = parse(&GOOD.replacen("id = 1", "id = 3", 1).replacen("priority = 150", "priority = 90", 1).replacen("weight = 2", "weight = 3", 1));
        let d = diff(&a, &b);
        assert!(!d.applicable());
        let refused: Vec<(&str, NotLive)> = d.refused.iter().map(|r| (r.field.as_str(), r.why)).collect();
        assert_eq!(refused, [("node.id", NotLive::Identity), ("node.priority", NotLive::NotYet)]);
        assert_eq!(d.changes.len(), 1, "the live part is still planned (and shown by --dry-run): {d}");
        assert!(d.to_string().contains("refused: node.id: the node's identity"), "{d}");
    }
}
