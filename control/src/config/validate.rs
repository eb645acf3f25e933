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
        card(i, c, &mut p);
    }
    sync(file, &mut p);
    across(file, &mut p);
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

fn card(i: usize, c: &CardTable, p: &mut Problems) {
    let spans = &c.spans.0;
    if spans.is_empty() {
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
    let (local, peer) = s.lists(&file.heartbeat.resolve());
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
