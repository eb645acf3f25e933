//! `to_file` against a base configuration (MACs, VIPs, gateways, the
//! configuration's own checks), the neighbour table, the options'
//! values, the report, and both parsers fed garbage and truncations of
//! the fixtures.

use std::net::IpAddr;

use tandem_dataplane::{
    ServiceFlag,
    common::{Forward, Scheduler},
    config::Protocol,
};

use super::*;

const BASE: &str = r#"
[node]
id = 1
name = "director-a"
peer_id = 2

[heartbeat]
key = "000102030405060708090a0b0c0d0e0f"
paths = [
  { name = "link", interface = "hb0", local = "198.18.1.1", peer = "198.18.1.2" },
  { name = "service", interface = "svc0", local = "198.18.0.11", peer = "198.18.0.12" },
]

[[vip]]
address = "198.18.0.100"
interface = "svc0"

[[vip]]
address = "198.18.0.101"
interface = "svc0"

[[service]]
vip = "198.18.0.101"
port = 5060
protocol = "udp"
scheduler = "rr"
forward = "nat"
gateway_mac = "02:18:00:00:00:01"
client_interface = "svc0"

[[service.real]]
address = "198.18.0.31"
port = 5080
mac = "02:18:00:00:00:31"

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "rr"

[[service.real]]
address = "198.18.0.21"
mac = "02:18:00:00:00:21"

[[service.real]]
address = "198.18.0.33"
mac = "02:18:00:00:00:33"
"#;

const ARP: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
198.18.0.22      0x1         0x2         02:18:00:00:00:22     *        svc0
198.18.0.23      0x1         0x0         00:00:00:00:00:00     *        svc0
198.18.0.24      0x1         0x2         02:18:00:00:00:24     *        svc0
198.18.0.24      0x1         0x2         02:18:00:00:00:99     *        hb0
198.18.0.25      0x1         0x2         00:00:00:00:00:00     *        svc0
not an entry
";

fn base() -> Config {
    Config::parse(BASE).expect("base")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn mac(last: u8) -> [u8; 6] {
    [0x02, 0x18, 0, 0, 0, last]
}

fn service(vip: &str, port: u16, forward: Forward, reals: &[(&str, u16)]) -> ImportedService {
    ImportedService {
        line: 1,
        text: "-A".into(),
        vip: ip(vip),
        port,
        protocol: Protocol::Udp,
        scheduler: Scheduler::Wrr,
        forward,
        flags: vec![ServiceFlag::SchedPort],
        reals: reals
            .iter()
            .enumerate()
            .map(|(i, (a, p))| ImportedReal {
                line: i + 2,
                text: format!("-a {a}"),
                address: ip(a),
                port: *p,
                weight: 10,
            })
            .collect(),
    }
}

fn import(services: Vec<ImportedService>) -> Imported {
    Imported {
        services,
        unexpressed: Vec::new(),
    }
}

fn causes(e: &Exported, line: usize) -> Vec<Cause> {
    e.unexpressed
        .iter()
        .find(|u| u.line == line)
        .map(|u| u.causes.clone())
        .unwrap_or_default()
}

#[test]
fn the_service_list_is_replaced_and_the_rest_kept() {
    let base = base();
    let macs = MacSource {
        given: vec![(ip("198.18.0.21"), mac(0x99))],
        ..MacSource::default()
    };
    let i = import(vec![service(
        "198.18.0.100",
        5060,
        Forward::Dr,
        &[("198.18.0.21", 0)],
    )]);
    let e = to_file(&i, &base, &macs).expect("to_file");
    assert_eq!(e.unexpressed, vec![]);
    assert_eq!(e.notes, vec![]);
    let c = &e.config;
    assert_eq!(
        (
            &c.node,
            &c.heartbeat,
            &c.vips,
            &c.dataplane,
            &c.admin,
            &c.sync,
            &c.witness,
            &c.cards
        ),
        (
            &base.node,
            &base.heartbeat,
            &base.vips,
            &base.dataplane,
            &base.admin,
            &base.sync,
            &base.witness,
            &base.cards
        )
    );
    assert_eq!(c.services.len(), 1);
    let s = &c.services[0];
    assert_eq!(
        (s.vip, s.port, s.protocol, s.scheduler, s.forward, s.flags),
        (
            ip("198.18.0.100"),
            5060,
            Protocol::Udp,
            Scheduler::Wrr,
            Forward::Dr,
            ServiceFlag::SchedPort.bit()
        )
    );
    let reals: Vec<(IpAddr, u16, [u8; 6], u32)> = s
        .reals
        .iter()
        .map(|r| (r.address, r.port, r.mac.unwrap_or_default(), r.weight))
        .collect();
    // --mac wins over the base's MAC for the same address.
    assert_eq!(reals, vec![(ip("198.18.0.21"), 0, mac(0x99), 10)]);
    assert_eq!(Config::parse(&e.toml).expect("reads back"), e.config);
    assert_eq!((e.services(), e.reals()), (1, 1));
}

#[test]
fn macs_come_from_the_options_the_base_then_the_neighbour_table() {
    let base = base();
    let macs = MacSource {
        given: vec![(ip("198.18.0.26"), mac(0x26))],
        gateway: None,
        neighbours: parse_neighbours(ARP),
    };
    let reals = [
        ("198.18.0.26", 0), // given
        ("198.18.0.21", 0), // the base
        ("198.18.0.22", 0), // the neighbour table
        ("198.18.0.23", 0), // incomplete in the table
        ("198.18.0.24", 0), // two MACs in the table
        ("198.18.0.25", 0), // zero MAC
        ("198.18.0.27", 0), // nowhere
    ];
    let i = import(vec![service("198.18.0.100", 5060, Forward::Dr, &reals)]);
    let e = to_file(&i, &base, &macs).expect("to_file");
    let found: Vec<(IpAddr, Option<[u8; 6]>)> = e.config.services[0]
        .reals
        .iter()
        .map(|r| (r.address, r.mac))
        .collect();
    // The four without a MAC are imported without one (tandemd takes it
    // from its neighbour table), each said in a note; nothing is listed.
    assert_eq!(
        found,
        vec![
            (ip("198.18.0.26"), Some(mac(0x26))),
            (ip("198.18.0.21"), Some(mac(0x21))),
            (ip("198.18.0.22"), Some(mac(0x22))),
            (ip("198.18.0.23"), None),
            (ip("198.18.0.24"), None),
            (ip("198.18.0.25"), None),
            (ip("198.18.0.27"), None),
        ]
    );
    assert!(e.unexpressed.is_empty(), "{:?}", e.unexpressed);
    let noted: Vec<usize> = e.notes.iter().filter(|n| n.text.contains("neighbour table")).map(|n| n.line).collect();
    assert_eq!(noted, (5..=8).collect::<Vec<_>>());
    assert!(e.notes.iter().any(|n| n.text.contains("give --mac 198.18.0.23=MAC")), "{:?}", e.notes);
}

#[test]
fn the_neighbour_table_leaves_out_incomplete_entries() {
    let n = parse_neighbours(ARP);
    let got: Vec<(IpAddr, [u8; 6], &str)> = n
        .iter()
        .map(|n| (IpAddr::V4(n.address), n.mac, n.device.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (ip("198.18.0.22"), mac(0x22), "svc0"),
            (ip("198.18.0.24"), mac(0x24), "svc0"),
            (ip("198.18.0.24"), mac(0x99), "hb0"),
        ]
    );
    assert_eq!(parse_neighbours(""), vec![]);
}

#[test]
fn a_vip_is_added_on_the_one_interface_of_the_base() {
    let i = import(vec![service(
        "198.18.0.102",
        5060,
        Forward::Dr,
        &[("198.18.0.21", 0)],
    )]);
    let e = to_file(&i, &base(), &MacSource::default()).expect("to_file");
    assert_eq!(e.unexpressed, vec![]);
    let added = e
        .config
        .vips
        .iter()
        .find(|v| v.address.to_string() == "198.18.0.102");
    assert_eq!(added.map(|v| v.interface.as_str()), Some("svc0"));
    assert_eq!(e.notes.len(), 1);
    assert_eq!(e.notes[0].line, 1);
}

#[test]
fn a_vip_is_listed_when_the_interface_is_ambiguous() {
    let text = BASE.replacen(
        "address = \"198.18.0.101\"\ninterface = \"svc0\"",
        "address = \"198.18.0.101\"\ninterface = \"svc1\"",
        1,
    );
    let base = Config::parse(&text).expect("base with two VIP interfaces");
    let i = import(vec![service(
        "198.18.0.102",
        5060,
        Forward::Dr,
        &[("198.18.0.21", 0)],
    )]);
    let e = to_file(&i, &base, &MacSource::default()).expect("to_file");
    assert_eq!(e.config.services, vec![]);
    assert_eq!(e.config.vips, base.vips);
    assert_eq!(causes(&e, 1), vec![Cause::NoVip]);
    assert_eq!(causes(&e, 2), vec![Cause::ServiceSkipped]);
}

#[test]
fn the_pairs_own_addresses_are_not_made_vips() {
    let i = import(vec![service(
        "198.18.0.12",
        5060,
        Forward::Dr,
        &[("198.18.0.21", 0)],
    )]);
    let e = to_file(&i, &base(), &MacSource::default()).expect("to_file");
    assert_eq!(e.config.services, vec![]);
    assert_eq!(e.config.vips, base().vips);
    assert_eq!(e.notes, vec![]);
    assert_eq!(causes(&e, 1), vec![Cause::NoVip]);
    assert_eq!(causes(&e, 2), vec![Cause::ServiceSkipped]);
}

#[test]
fn nat_gateways_from_the_option_the_same_service_or_the_only_one() {
    let base = base();
    let nat = |vip: &str| service(vip, 5060, Forward::Nat, &[("198.18.0.31", 5080)]);
    // The base's same service: its gateway and client interface.
    let e = to_file(
        &import(vec![nat("198.18.0.101")]),
        &base,
        &MacSource::default(),
    )
    .expect("to_file");
    let s = &e.config.services[0];
    assert_eq!(
        (s.gateway_mac, s.client_interface.as_deref()),
        (Some(mac(1)), Some("svc0"))
    );
    assert_eq!(s.reals[0].port, 5080);
    // Another VIP: the one NAT gateway of the base.
    let e = to_file(
        &import(vec![nat("198.18.0.100")]),
        &base,
        &MacSource::default(),
    )
    .expect("to_file");
    assert_eq!(e.config.services[0].gateway_mac, Some(mac(1)));
    assert_eq!(e.config.services[0].client_interface, None);
    // --gateway-mac first.
    let macs = MacSource {
        gateway: Some(mac(0x42)),
        ..MacSource::default()
    };
    let e = to_file(&import(vec![nat("198.18.0.101")]), &base, &macs).expect("to_file");
    assert_eq!(e.config.services[0].gateway_mac, Some(mac(0x42)));
    // None known: the service is left out.
    let dr_only = base_without_nat();
    let e = to_file(
        &import(vec![nat("198.18.0.100")]),
        &dr_only,
        &MacSource::default(),
    )
    .expect("to_file");
    assert_eq!(e.config.services, vec![]);
    assert_eq!(causes(&e, 1), vec![Cause::NoGateway]);
    assert_eq!(causes(&e, 2), vec![Cause::ServiceSkipped]);
    // And so is the [[vip]] it would have had.
    let e = to_file(
        &import(vec![nat("198.18.0.109")]),
        &dr_only,
        &MacSource::default(),
    )
    .expect("to_file");
    assert_eq!(
        (e.config.services.len(), e.config.vips.len(), e.notes.len()),
        (0, 2, 0)
    );
}

/// [`BASE`] with its NAT service made a DR one.
fn base_without_nat() -> Config {
    let text = BASE
        .replacen(
            "forward = \"nat\"\ngateway_mac = \"02:18:00:00:00:01\"\nclient_interface = \"svc0\"",
            "",
            1,
        )
        .replacen("port = 5080\n", "", 1);
    Config::parse(&text).expect("a base without NAT")
}

#[test]
fn what_the_checks_refuse_is_left_out_and_listed() {
    let macs = MacSource {
        given: vec![(ip("198.18.0.22"), mac(0x22))],
        ..MacSource::default()
    };
    // UDP 694 is the heartbeat port.
    let mut refused = service("198.18.0.100", 694, Forward::Dr, &[("198.18.0.21", 0)]);
    refused.line = 10;
    refused.reals[0].line = 11;
    let kept = service("198.18.0.100", 5060, Forward::Dr, &[("198.18.0.22", 0)]);
    let e = to_file(&import(vec![refused, kept]), &base(), &macs).expect("to_file");
    assert_eq!(e.config.services.len(), 1);
    assert_eq!(e.config.services[0].port, 5060);
    assert_eq!(causes(&e, 10), vec![Cause::Refused]);
    assert_eq!(causes(&e, 11), vec![Cause::ServiceSkipped]);
}

#[test]
fn at_most_max_reals_per_service() {
    let addrs: Vec<String> = (1..=40).map(|i| format!("198.18.2.{i}")).collect();
    let reals: Vec<(&str, u16)> = addrs.iter().map(|a| (a.as_str(), 0)).collect();
    let macs = MacSource {
        given: addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (ip(a), mac(i as u8 + 1)))
            .collect(),
        ..MacSource::default()
    };
    let e = to_file(
        &import(vec![service("198.18.0.100", 5060, Forward::Dr, &reals)]),
        &base(),
        &macs,
    )
    .expect("to_file");
    assert_eq!(e.config.services[0].reals.len(), MAX_REALS as usize);
    assert_eq!(e.unexpressed.len(), 40 - MAX_REALS as usize);
    assert!(e.unexpressed.iter().all(|u| u.causes == vec![Cause::Limit]));
}

#[test]
fn an_ipv6_service_is_imported_and_listed() {
    let macs = MacSource {
        given: vec![(ip("2001:db8::21"), mac(0x21))],
        ..MacSource::default()
    };
    let e = to_file(
        &import(vec![service(
            "2001:db8::100",
            5060,
            Forward::Dr,
            &[("2001:db8::21", 0)],
        )]),
        &base(),
        &macs,
    )
    .expect("to_file");
    assert_eq!(e.config.services.len(), 1);
    assert_eq!(e.config.services[0].reals.len(), 1);
    assert_eq!(causes(&e, 1), vec![Cause::AddressFamily]);
}

#[test]
fn the_parsers_list_merges_with_to_files() {
    let mut i = import(vec![service(
        "198.18.0.100",
        5060,
        Forward::Dr,
        &[("198.18.0.27", 0)],
    )]);
    i.unexpressed.push(Unexpressed {
        line: 2,
        text: "-a 198.18.0.27".into(),
        reason: "connection thresholds (-x, -y) have no tandem equivalent".into(),
        causes: vec![Cause::Unsupported],
    });
    let e = to_file(&i, &base(), &MacSource::default()).expect("to_file");
    assert_eq!(e.unexpressed.len(), 1);
    assert_eq!(e.unexpressed[0].causes, vec![Cause::Unsupported]);
    assert_eq!(e.notes.len(), 1, "its missing MAC is a note: {:?}", e.notes);
}

#[test]
fn the_report_lists_each_line_then_the_summary() {
    let e = to_file(
        &import(vec![service(
            "198.18.0.102",
            5060,
            Forward::Dr,
            &[("198.18.0.21", 0), ("198.18.0.27", 0)],
        )]),
        &base(),
        &MacSource::default(),
    )
    .expect("to_file");
    assert_eq!(
        e.report("x.save"),
        "x.save:1: note: added [[vip]] 198.18.0.102 on svc0, the interface of every [[vip]] of the base\n\
         x.save:3: note: real server 198.18.0.27: no MAC from --mac, the base or /proc/net/arp; none is written, tandemd takes it from its neighbour table (give --mac 198.18.0.27=MAC to type one)\n\
         imported 1 services, 2 real servers; 0 lines not expressed\n"
    );
    // A line not expressed: its reason, then the line itself.
    let mut i = import(vec![service("198.18.0.102", 5060, Forward::Dr, &[("198.18.0.21", 0)])]);
    i.unexpressed.push(Unexpressed {
        line: 3,
        text: "-a 198.18.0.27 -i".into(),
        reason: TUNNEL.into(),
        causes: vec![Cause::Tunnel],
    });
    let e = to_file(&i, &base(), &MacSource::default()).expect("to_file");
    assert_eq!(
        e.report("x.save"),
        format!(
            "x.save:1: note: added [[vip]] 198.18.0.102 on svc0, the interface of every [[vip]] of the base\n\
             x.save:3: not imported: {TUNNEL}\n    \
             -a 198.18.0.27 -i\n\
             imported 1 services, 1 real servers; 1 lines not expressed\n"
        )
    );
}

#[test]
fn option_values() {
    assert_eq!(
        parse_mac_option("198.18.0.21=02:18:00:00:00:21"),
        Ok((ip("198.18.0.21"), mac(0x21)))
    );
    assert_eq!(
        parse_mac_option("2001:db8::1=02:18:00:00:00:21"),
        Ok((ip("2001:db8::1"), mac(0x21)))
    );
    for bad in [
        "198.18.0.21",
        "198.18.0.21=",
        "host=02:18:00:00:00:21",
        "198.18.0.21=01:00:5e:00:00:01",
        "198.18.0.21=00:00:00:00:00:00",
        "198.18.0.21=2:18:0:0:0:21",
    ] {
        assert!(parse_mac_option(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_mac_value("02:18:00:00:00:01"), Ok(mac(1)));
}

/// A few bytes of xorshift, for garbage that is the same on every run.
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn text(&mut self, len: usize, alphabet: &[char]) -> String {
        (0..len)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
            .collect()
    }
}

/// Both parsers and `to_file` on `text`: no panic, and a list that names
/// each line of the text at most once, in order.
fn survives(text: &str, base: &Config) {
    for format in [Format::Ipvsadm, Format::Keepalived] {
        let i = parse(format, text);
        let lines: Vec<usize> = i.unexpressed.iter().map(|u| u.line).collect();
        let count = text.lines().count();
        assert!(
            lines.windows(2).all(|w| w[0] < w[1]) && lines.iter().all(|l| (1..=count).contains(l)),
            "{format:?} lines {lines:?} of {count} for {text:?}"
        );
        let e = to_file(&i, base, &MacSource::default());
        assert!(e.is_ok(), "{format:?}: {e:?} for {text:?}");
    }
}

#[test]
fn garbage_and_truncations_do_not_panic() {
    let base = base();
    let fixtures = [
        include_str!("../../../tests/fixtures/import/ipvsadm.save"),
        include_str!("../../../tests/fixtures/import/keepalived.conf"),
    ];
    for fixture in fixtures {
        let chars: Vec<(usize, char)> = fixture.char_indices().collect();
        for (at, _) in chars.iter().step_by(7) {
            survives(&fixture[..*at], &base);
            survives(&fixture[*at..], &base);
        }
        let lines: Vec<&str> = fixture.lines().collect();
        for skip in 0..lines.len() {
            let without: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, l)| *l)
                .collect();
            survives(&without.join("\n"), &base);
        }
    }
    let mut g = Garbage(0x9e37_79b9_7f4a_7c15);
    let alphabet: Vec<char> = "-Aatuf:s rpgmiwxy{}#!\"\n0123456789.[]=,éÿ\u{0}\t"
        .chars()
        .collect();
    for _ in 0..300 {
        let len = (g.next() % 200) as usize;
        survives(&g.text(len, &alphabet), &base);
    }
    // Words of both formats in random order.
    let words = [
        "-A",
        "-a",
        "-u",
        "-t",
        "-f",
        "-s",
        "-r",
        "-g",
        "-m",
        "-i",
        "-w",
        "-p",
        "-b",
        "-O",
        "-x",
        "198.18.0.100:5060",
        "198.18.0.21",
        "[2001:db8::1]:5060",
        "wrr",
        "mh",
        "sh-port",
        "1",
        "0",
        "virtual_server",
        "real_server",
        "lb_algo",
        "lb_kind",
        "NAT",
        "DR",
        "TUN",
        "protocol",
        "UDP",
        "weight",
        "fwmark",
        "group",
        "{",
        "}",
        "\n",
        "TCP_CHECK",
        "vrrp_instance",
        "5060",
    ];
    for _ in 0..300 {
        let n = (g.next() % 60) as usize;
        let text: Vec<&str> = (0..n)
            .map(|_| words[(g.next() % words.len() as u64) as usize])
            .collect();
        survives(&text.join(" "), &base);
    }
}
