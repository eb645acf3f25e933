//! The checks of a whole `tandem.toml` that no single value can make:
//! relations between the fields of a table (a path's peer is not its local
//! address), between tables (a service's VIP is a `[[vip]]`), and the
//! dataplane's own checks of each virtual service.
//!
//! [`validate`] returns every problem it finds, not only the first, each
//! naming its field by path and the value it got. It reads a model that
//! deserialized, so every leaf is already in range (see [`super::value`]);
//! it changes nothing and looks at nothing outside the file.

use std::{collections::BTreeSet, fmt, net::IpAddr};

use tandem_dataplane::{
    common::{MH_MAX_SIZE, Scheduler},
    config::Protocol,
};

use super::{
    ConfigError, dataplane,
    model::{CardTable, File, ServiceTable},
    value::quoted,
};

/// Every problem of `file`, in the order of the file's tables, then those
/// between tables, then the dataplane's checks of the services that had no
/// problem of their own.
pub(super) fn validate(file: &File) -> Vec<ConfigError> {
    let mut p = Problems::default();
    let node = &file.node;
    if node.peer_id.0 == node.id.0 {
        p.add("node.peer_id", node.peer_id.0, "is this node's own id");
    }
    if node.hold_down_max_ms.0 < node.hold_down_ms.0 {
        p.add(
            "node.hold_down_max_ms",
            node.hold_down_max_ms.0.as_millis(),
            format!(
                "is below node.hold_down_ms ({})",
                node.hold_down_ms.0.as_millis()
            ),
        );
    }
    heartbeat(file, &mut p);
    if let Some(list) = &file.dataplane.interfaces {
        if list.0.is_empty() {
            p.add("dataplane.interfaces", "[]", "is empty");
        }
        for (i, name) in list.0.iter().enumerate() {
            if list.0[..i].contains(name) {
                p.add(
                    format!("dataplane.interfaces[{i}]"),
                    quoted(&name.0),
                    "is listed twice",
                );
            }
        }
    }
    for (i, s) in file.service.0.iter().enumerate() {
        service(i, s, &mut p);
    }
    for (i, c) in file.card.0.iter().enumerate() {
        card(i, c, file.heartbeat.interval_ms.0, &mut p);
    }
    sync(file, &mut p);
    across(file, &mut p);
    keys(file, &mut p);
    wiring(file, &mut p);
    // The dataplane's own checks (wrr cycle length, NAT gateway, ...), with
    // interfaces resolved to a placeholder index. A service already at
    // fault is left out: its fault would only be reported twice.
    for (i, s) in file.service.0.iter().enumerate() {
        if !p.about(&format!("service[{i}]"))
            && let Err(e) = dataplane::service_config(i, &s.resolve(), &mut |_| Some(1))
        {
            p.0.push(e);
        }
    }
    p.0
}

/// The problems found so far.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn add(
        &mut self,
        field: impl Into<String>,
        value: impl fmt::Display,
        problem: impl Into<String>,
    ) {
        self.0.push(ConfigError::Invalid {
            field: field.into(),
            value: value.to_string(),
            problem: problem.into(),
        });
    }

    /// Whether a problem names `prefix` or a field inside it.
    fn about(&self, prefix: &str) -> bool {
        self.0.iter().filter_map(ConfigError::field).any(|f| {
            f.strip_prefix(prefix).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            })
        })
    }
}

fn heartbeat(file: &File, p: &mut Problems) {
    let hb = &file.heartbeat;
    if let Some(dead_man) = hb.dead_man_ms.map(|m| m.0)
        && !dead_man.is_zero()
        && dead_man < hb.interval_ms.0.saturating_mul(2)
    {
        p.add(
            "heartbeat.dead_man_ms",
            dead_man.as_millis(),
            format!(
                "is below 2 × heartbeat.interval_ms ({}): a daemon on time would be fenced (0 switches the dead-man off)",
                hb.interval_ms.0.as_millis() * 2
            ),
        );
    }
    let paths = &file.heartbeat.paths.0;
    if paths.is_empty() {
        p.add(
            "heartbeat.paths",
            "[]",
            "is empty: at least one heartbeat path is needed",
        );
    }
    for (i, path) in paths.iter().enumerate() {
        let field = |name: &str| format!("heartbeat.paths[{i}].{name}");
        let name = &path.name.0;
        if name.is_empty() {
            p.add(field("name"), quoted(name), "is empty");
        } else if paths[..i].iter().any(|o| o.name.0 == *name) {
            p.add(field("name"), quoted(name), "is used by another path");
        }
        if path.peer.0 == path.local.0 {
            p.add(
                field("peer"),
                quoted(&path.peer.0.to_string()),
                "is the local address",
            );
        }
    }
}

fn service(i: usize, s: &ServiceTable, p: &mut Problems) {
    let field = |name: &str| format!("service[{i}].{name}");
    let mh_size = s.mh_size.0;
    if s.scheduler.0 == Scheduler::Mh && (mh_size > MH_MAX_SIZE || !is_prime(mh_size)) {
        p.add(
            field("mh_size"),
            mh_size,
            format!("is not a prime at most {MH_MAX_SIZE}"),
        );
    }
    let vip = s.vip.0;
    for (j, r) in s.real.0.iter().enumerate() {
        if r.address.0.is_ipv4() != vip.is_ipv4() {
            p.add(
                field(&format!("real[{j}].address")),
                quoted(&r.address.0.to_string()),
                "is not of the VIP's address family",
            );
        }
    }
    if let Some(o) = &s.sip_options {
        if s.protocol.0 != Protocol::Udp || !vip.is_ipv4() {
            p.add(
                field("sip_options"),
                "(set)",
                "probes SIP over UDP to IPv4 services only",
            );
        }
        if o.timeout_ms.0 > o.interval_ms.0 {
            p.add(
                field("sip_options.timeout_ms"),
                o.timeout_ms.0.as_millis(),
                "is longer than interval_ms",
            );
        }
    }
}

fn card(i: usize, c: &CardTable, heartbeat_interval: std::time::Duration, p: &mut Problems) {
    let spans = c.spans.as_ref().map_or(&[][..], |s| &s.0[..]);
    if c.system_conf.is_some() {
        // The spans, their lines and channels come from DAHDI's file.
        let given = [
            ("spans", c.spans.is_some()),
            ("lineconfig", c.lineconfig.is_some()),
            ("timing", c.timing.is_some()),
            ("signalling", c.signalling.is_some()),
        ];
        for (field, _) in given.iter().filter(|(_, given)| *given) {
            p.add(
                format!("card[{i}].{field}"),
                "(set)",
                "is given with system_conf: the spans, their lines and channels come from system.conf",
            );
        }
    } else if c.spans.is_none() {
        p.0.push(ConfigError::Missing {
            field: format!("card[{i}].spans"),
        });
    } else if spans.is_empty() {
        p.add(
            format!("card[{i}].spans"),
            "[]",
            "is empty: a card needs at least one span this node owns",
        );
    }
    for (k, span) in spans.iter().enumerate() {
        if spans[..k].contains(span) {
            p.add(format!("card[{i}].spans[{k}]"), span.0, "is listed twice");
        }
    }
    if c.lineconfig.is_none() && c.timing.is_some() {
        p.add(
            format!("card[{i}].timing"),
            "(set)",
            "needs lineconfig: the timing priority goes with DAHDI_SPANCONFIG",
        );
    }
    if let Some(watchdog) = c.watchdog_ms.map(|m| m.0) {
        // The loop turns at least once a heartbeat interval and kicks every
        // watchdog / 4: a kick is then at most watchdog / 2 late.
        if watchdog < heartbeat_interval.saturating_mul(4) {
            p.add(
                format!("card[{i}].watchdog_ms"),
                watchdog.as_millis(),
                format!(
                    "is below 4 × heartbeat.interval_ms ({}): the daemon could not kick it in time",
                    heartbeat_interval.as_millis() * 4
                ),
            );
        }
        if c.takeover_deadline_ms.0 <= watchdog {
            p.add(
                format!("card[{i}].takeover_deadline_ms"),
                c.takeover_deadline_ms.0.as_millis(),
                format!(
                    "is not above card[{i}].watchdog_ms ({}): a takeover from a hung peer waits for its watchdog to expire",
                    watchdog.as_millis()
                ),
            );
        }
    }
}

/// `[sync]`, when the file has the table (its defaults cannot conflict).
fn sync(file: &File, p: &mut Problems) {
    let Some(s) = &file.sync else {
        return;
    };
    for (name, list) in [("local", &s.local), ("peer", &s.peer)] {
        if list.as_ref().is_some_and(|l| l.0.is_empty()) {
            p.add(format!("sync.{name}"), "[]", "is empty");
        }
    }
    let (local, peer) = s.lists(&file.heartbeat.paths());
    if let Some(a) = peer.iter().find(|a| local.contains(a)) {
        p.add(
            "sync.peer",
            quoted(&a.to_string()),
            "is this node's own sync address",
        );
    }
}

/// Checks between tables.
fn across(file: &File, p: &mut Problems) {
    let mut vips = BTreeSet::new();
    for (i, v) in file.vip.0.iter().enumerate() {
        let address = v.address.0;
        if !vips.insert(address) {
            p.add(format!("vip[{i}].address"), address, "is listed twice");
        }
        if file
            .heartbeat
            .paths
            .0
            .iter()
            .any(|path| path.local.0 == address)
        {
            p.add(
                format!("vip[{i}].address"),
                address,
                "is also a heartbeat path's local address",
            );
        }
    }
    let mut roots = BTreeSet::new();
    for (i, c) in file.card.0.iter().enumerate() {
        if !roots.insert(&c.root.0) {
            p.add(
                format!("card[{i}].root"),
                quoted(&c.root.0),
                "is listed twice",
            );
        }
    }
    let mut keys = BTreeSet::new();
    for (i, s) in file.service.0.iter().enumerate() {
        let (vip, port, protocol) = (s.vip.0, s.port.0, s.protocol.0);
        if let IpAddr::V4(v4) = vip
            && !vips.contains(&v4)
        {
            p.add(
                format!("service[{i}].vip"),
                vip,
                "is not the address of any [[vip]]",
            );
        }
        if !keys.insert((vip, port, protocol.number())) {
            p.add(
                format!("service[{i}]"),
                service_name(protocol, vip, port),
                "is configured twice",
            );
        }
    }
}

/// Each key given once, inline or as a file; the IVR master key present
/// when an IVR sends heartbeats. (The files are read by [`super::keys`].)
fn keys(file: &File, p: &mut Problems) {
    let hb = &file.heartbeat;
    let mut pairs = vec![
        ("heartbeat.key", hb.key.is_some(), hb.key_file.is_some()),
        (
            "heartbeat.next_key",
            hb.next_key.is_some(),
            hb.next_key_file.is_some(),
        ),
        (
            "heartbeat.ivr_key",
            hb.ivr_key.is_some(),
            hb.ivr_key_file.is_some(),
        ),
    ];
    if let Some(s) = &file.sync {
        pairs.push(("sync.key", s.key.is_some(), s.key_file.is_some()));
        pairs.push((
            "sync.next_key",
            s.next_key.is_some(),
            s.next_key_file.is_some(),
        ));
    }
    for (field, inline, in_file) in pairs {
        if inline && in_file {
            p.add(
                format!("{field}_file"),
                "(set)",
                format!("is given with {field}: give one of the two"),
            );
        }
    }
    if hb.key.is_none() && hb.key_file.is_none() {
        p.0.push(ConfigError::Missing {
            field: "heartbeat.key".into(),
        });
    }
    if hb.ivr_key.is_none() && hb.ivr_key_file.is_none() {
        for (i, s) in file.service.0.iter().enumerate() {
            for (j, r) in s.real.0.iter().enumerate() {
                if let Some(id) = r.node_id {
                    p.add(
                        format!("service[{i}].real[{j}].node_id"),
                        id.0,
                        "needs heartbeat.ivr_key (or ivr_key_file): each IVR's heartbeat key is derived from it",
                    );
                }
            }
        }
    }
}

/// The mistakes that break the pair although every value is fine alone:
/// the heartbeat port taken by a UDP service, a witness that is one of the
/// pair's own addresses, two heartbeat paths that share a link, a VIP that
/// is the peer, a VIP on an interface without the XDP program.
fn wiring(file: &File, p: &mut Problems) {
    let hb = &file.heartbeat;
    let paths = &hb.paths.0;
    for (i, s) in file.service.0.iter().enumerate() {
        if s.protocol.0 == Protocol::Udp && s.port.0 == hb.port.0 {
            p.add(
                format!("service[{i}].port"),
                s.port.0,
                "is the heartbeat port (heartbeat.port): every datagram to it would be taken for a heartbeat",
            );
        }
    }
    for (i, path) in paths.iter().enumerate() {
        let field = |name: &str| format!("heartbeat.paths[{i}].{name}");
        for (j, other) in paths[..i].iter().enumerate() {
            let shared = [
                (
                    "interface",
                    path.interface.0 == other.interface.0,
                    quoted(&path.interface.0),
                ),
                (
                    "local",
                    path.local.0 == other.local.0,
                    quoted(&path.local.0.to_string()),
                ),
                (
                    "peer",
                    path.peer.0 == other.peer.0,
                    quoted(&path.peer.0.to_string()),
                ),
            ];
            for (name, same, value) in shared {
                if same {
                    p.add(
                        field(name),
                        value,
                        format!("is also heartbeat.paths[{j}]'s: two paths over one link or address fail together"),
                    );
                }
            }
        }
    }
    if let Some(w) = &file.witness {
        let a = w.address.0;
        let mine = |what: &str| {
            format!("is {what}: the witness must be a third host on the service network")
        };
        if let Some(i) = file.vip.0.iter().position(|v| v.address.0 == a) {
            p.add("witness.address", a, mine(&format!("vip[{i}]'s address")));
        }
        if let Some(path) = paths.iter().find(|path| path.peer.0 == a) {
            p.add(
                "witness.address",
                a,
                mine(&format!(
                    "the peer's address on path {}",
                    quoted(&path.name.0)
                )),
            );
        }
        if let Some(path) = paths.iter().find(|path| path.local.0 == a) {
            p.add(
                "witness.address",
                a,
                mine(&format!(
                    "this node's address on path {}",
                    quoted(&path.name.0)
                )),
            );
        }
    }
    for (i, v) in file.vip.0.iter().enumerate() {
        if let Some(path) = paths.iter().find(|path| path.peer.0 == v.address.0) {
            p.add(
                format!("vip[{i}].address"),
                v.address.0,
                format!("is the peer's address on path {}", quoted(&path.name.0)),
            );
        }
        if let Some(list) = &file.dataplane.interfaces
            && !list.0.is_empty()
            && !list.0.iter().any(|n| n.0 == v.interface.0)
        {
            p.add(
                format!("vip[{i}].interface"),
                quoted(&v.interface.0),
                "is not in dataplane.interfaces: the VIP's ARP answers and dispatch need the XDP program there",
            );
        }
    }
}

/// `udp/198.18.0.100:5060`, as the dataplane names a service.
fn service_name(protocol: Protocol, vip: IpAddr, port: u16) -> String {
    let p = match protocol {
        Protocol::Udp => "udp",
        Protocol::Tcp => "tcp",
    };
    match vip {
        IpAddr::V4(a) => format!("{p}/{a}:{port}"),
        IpAddr::V6(a) => format!("{p}/[{a}]:{port}"),
    }
}

fn is_prime(n: u32) -> bool {
    n >= 2
        && (2..)
            .take_while(|d: &u64| d * d <= n as u64)
            .all(|d| !(n as u64).is_multiple_of(d))
}
