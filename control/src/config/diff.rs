//! What changed between the running configuration of a director and a new
//! one, and what of it a running daemon can take without a restart: the
//! plan of a reload (issue 13), computed without touching anything.
//!
//! Services and their real servers are compared by identity (a service
//! by protocol, VIP and port, as IPVS keys it; a real server by address
//! and port within its service), so that reordering the file changes
//! nothing and an edited weight is an edit, not a delete and an add.
//! Every other difference is refused with the field it concerns and why
//! it cannot be taken live: the node's identity and wiring (ids, the
//! heartbeat port and paths, the XDP attachment, the admin socket, the
//! sync endpoints) never can on a running node; the rest is not applied
//! live by this version yet and is named as such, so that an operator
//! knows a restart (after a switchover) is what applies it. Keys — the
//! director and sync keys and their next keys, a rotation (issue 14) —
//! are live; the IVR master key is not yet.

use std::{fmt, net::IpAddr};

use serde::Serialize;

use super::{Config, RealEntry, ServiceEntry};
use tandem_dataplane::config::Protocol;

/// A virtual service's identity, as IPVS keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ServiceId {
    pub protocol: Protocol,
    pub vip: IpAddr,
    pub port: u16,
}

impl ServiceId {
    pub fn of(s: &ServiceEntry) -> ServiceId {
        ServiceId {
            protocol: s.protocol,
            vip: s.vip,
            port: s.port,
        }
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        };
        match self.vip {
            IpAddr::V4(a) => write!(f, "{proto} {a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "{proto} [{a}]:{}", self.port),
        }
    }
}

/// A real server's identity within its service: address and port (0:
/// the virtual port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RealId {
    pub address: IpAddr,
    pub port: u16,
}

impl RealId {
    pub fn of(r: &RealEntry) -> RealId {
        RealId {
            address: r.address,
            port: r.port,
        }
    }
}

impl fmt::Display for RealId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.address, self.port) {
            (a, 0) => write!(f, "{a}"),
            (IpAddr::V4(a), p) => write!(f, "{a}:{p}"),
            (IpAddr::V6(a), p) => write!(f, "[{a}]:{p}"),
        }
    }
}

/// One field that differs: its name and both values as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: &'static str,
    pub from: String,
    pub to: String,
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.field, self.from, self.to)
    }
}

/// One change a running daemon applies live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    ServiceAdded(ServiceId),
    ServiceRemoved(ServiceId),
    /// Settings of the service itself (its real servers are separate changes).
    ServiceEdited {
        service: ServiceId,
        fields: Vec<FieldChange>,
    },
    RealAdded {
        service: ServiceId,
        real: RealId,
    },
    RealRemoved {
        service: ServiceId,
        real: RealId,
    },
    RealEdited {
        service: ServiceId,
        real: RealId,
        fields: Vec<FieldChange>,
    },
    /// `[timeouts]`: new flows and calls, and those idle now, expire by them.
    TimeoutsEdited { fields: Vec<FieldChange> },
    /// The director heartbeat key, the sync key or their next keys (a key
    /// rotation): the kernel takes the peer's heartbeats under the new
    /// keys at once, what this node sends is made under the new current
    /// keys, and the sync session in progress goes on. No key is shown.
    KeysEdited { fields: Vec<KeyChange> },
}

/// One key of a [`Change::KeysEdited`]: its field and what happened to
/// it, never its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyChange {
    pub field: &'static str,
    pub change: KeyChangeKind,
}

/// What happened to a key in a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyChangeKind {
    Added,
    Removed,
    /// Another key (or the same bytes from another place).
    Changed,
    /// The current key is now the one that was the next key: the
    /// middle step of a rotation.
    NowTheFormerNext,
}

impl fmt::Display for KeyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.change {
            KeyChangeKind::Added => "added",
            KeyChangeKind::Removed => "removed",
            KeyChangeKind::Changed => "changed",
            KeyChangeKind::NowTheFormerNext => "changed to the former next key",
        };
        write!(f, "{} {what}", self.field)
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined = |v: &[FieldChange]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        match self {
            Change::ServiceAdded(s) => write!(f, "+ service {s}"),
            Change::ServiceRemoved(s) => write!(f, "- service {s}"),
            Change::ServiceEdited { service, fields } => {
                write!(f, "~ service {service}: {}", joined(fields))
            }
            Change::RealAdded { service, real } => write!(f, "+ real {real} in {service}"),
            Change::RealRemoved { service, real } => write!(f, "- real {real} in {service}"),
            Change::RealEdited {
                service,
                real,
                fields,
            } => write!(f, "~ real {real} in {service}: {}", joined(fields)),
            Change::TimeoutsEdited { fields } => write!(f, "~ timeouts: {}", joined(fields)),
            Change::KeysEdited { fields } => {
                let all: Vec<String> = fields.iter().map(ToString::to_string).collect();
                write!(f, "~ keys: {}", all.join("; "))
            }
        }
    }
}

/// Why a difference is not taken by a running daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotLive {
    /// The node's identity or wiring: never changed on a running node.
    Identity,
    /// Not applied live by this version: a restart applies it.
    NotYet,
}

/// A difference a reload refuses, with the field it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refused {
    pub field: String,
    pub why: NotLive,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.why {
            NotLive::Identity => write!(
                f,
                "{}: the node's identity and wiring cannot change on a running daemon (restart it, after a switchover if it is active)",
                self.field
            ),
            NotLive::NotYet => write!(
                f,
                "{}: not applied live by this version (restart to apply, after a switchover if it is active)",
                self.field
            ),
        }
    }
}

/// The plan of a reload: the live changes in the order they apply
/// (removals first, then additions, then edits, services before their
/// real servers), and what is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    pub changes: Vec<Change>,
    pub refused: Vec<Refused>,
}

impl ConfigDiff {
    /// The two configurations are the same.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.refused.is_empty()
    }

    /// A reload may go ahead: nothing refused.
    pub fn applicable(&self) -> bool {
        self.refused.is_empty()
    }
}

impl fmt::Display for ConfigDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no change");
        }
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        for r in &self.refused {
            writeln!(f, "refused: {r}")?;
        }
        Ok(())
    }
}

/// Pushes a [`FieldChange`] when `a` and `b` (as written) differ.
fn field(out: &mut Vec<FieldChange>, name: &'static str, a: String, b: String) {
    if a != b {
        out.push(FieldChange {
            field: name,
            from: a,
            to: b,
        });
    }
}

fn mac(m: &[u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

fn or_dash<T>(v: &Option<T>, show: impl Fn(&T) -> String) -> String {
    v.as_ref().map_or_else(|| "-".into(), show)
}

fn flag_names(bits: u16) -> String {
    let names: Vec<&str> = super::FLAG_NAMES.iter().filter(|(_, b)| bits & b != 0).map(|(n, _)| *n).collect();
    format!("[{}]", names.join(","))
}

/// Pushes a [`Refused`] when `a` and `b` differ.
fn refuse<T: PartialEq>(out: &mut Vec<Refused>, name: &str, why: NotLive, a: &T, b: &T) {
    if a != b {
        out.push(Refused {
            field: name.to_string(),
            why,
        });
    }
}

/// What differs from `old` (running) to `new` (the file just read).
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    use NotLive::{Identity, NotYet};
    let mut d = ConfigDiff::default();
    let r = &mut d.refused;
    let (on, nn) = (&old.node, &new.node);
    refuse(r, "node.id", Identity, &on.id, &nn.id);
    refuse(r, "node.peer_id", Identity, &on.peer_id, &nn.peer_id);
    refuse(r, "node.name", NotYet, &on.name, &nn.name);
    refuse(r, "node.priority", NotYet, &on.priority, &nn.priority);
    refuse(r, "node.preempt", NotYet, &on.preempt, &nn.preempt);
    refuse(r, "node.realtime_priority", NotYet, &on.realtime_priority, &nn.realtime_priority);
    refuse(r, "node.card_fault_holddown_ms", NotYet, &on.card_fault_holddown, &nn.card_fault_holddown);
    refuse(r, "node.hold_down_ms", NotYet, &on.hold_down, &nn.hold_down);
    refuse(r, "node.hold_down_max_ms", NotYet, &on.hold_down_max, &nn.hold_down_max);
    refuse(r, "node.preempt_delay_ms", NotYet, &on.preempt_delay, &nn.preempt_delay);
    refuse(r, "node.switchover_hold_ms", NotYet, &on.switchover_hold, &nn.switchover_hold);
    let (oh, nh) = (&old.heartbeat, &new.heartbeat);
    refuse(r, "heartbeat.port", Identity, &oh.port, &nh.port);
    refuse(r, "heartbeat.paths", Identity, &oh.paths, &nh.paths);
    refuse(r, "heartbeat.interval_ms", NotYet, &oh.interval, &nh.interval);
    refuse(r, "heartbeat.multiplier", NotYet, &oh.multiplier, &nh.multiplier);
    refuse(r, "heartbeat.ivr_key", NotYet, &oh.ivr_key, &nh.ivr_key);
    refuse(r, "heartbeat.dead_man_ms", NotYet, &oh.dead_man, &nh.dead_man);
    refuse(r, "heartbeat.echo", NotYet, &oh.echo, &nh.echo);
    refuse(r, "witness", NotYet, &old.witness, &new.witness);
    refuse(r, "vip", NotYet, &old.vips, &new.vips);
    refuse(r, "dataplane", Identity, &old.dataplane, &new.dataplane);
    refuse(r, "admin", Identity, &old.admin, &new.admin);
    refuse(r, "card", NotYet, &old.cards, &new.cards);
    match (&old.sync, &new.sync) {
        (Some(a), Some(b)) => {
            refuse(r, "sync.port", Identity, &a.port, &b.port);
            refuse(r, "sync.local", Identity, &a.local, &b.local);
            refuse(r, "sync.peer", Identity, &a.peer, &b.peer);
        }
        (a, b) => refuse(r, "sync.enabled", Identity, &a.is_some(), &b.is_some()),
    }
    let mut keys = Vec::new();
    key_change(&mut keys, "heartbeat.key", Some(&oh.key), Some(&nh.key), oh.next_key.as_ref());
    key_change(&mut keys, "heartbeat.next_key", oh.next_key.as_ref(), nh.next_key.as_ref(), None);
    if let (Some(a), Some(b)) = (&old.sync, &new.sync) {
        key_change(&mut keys, "sync.key", Some(&a.key), Some(&b.key), a.next_key.as_ref());
        key_change(&mut keys, "sync.next_key", a.next_key.as_ref(), b.next_key.as_ref(), None);
    }
    if !keys.is_empty() {
        d.changes.push(Change::KeysEdited { fields: keys });
    }
    let (ot, nt) = (&old.timeouts, &new.timeouts);
    let mut fields = Vec::new();
    field(&mut fields, "tcp_s", ot.tcp_s.to_string(), nt.tcp_s.to_string());
    field(&mut fields, "tcp_fin_s", ot.tcp_fin_s.to_string(), nt.tcp_fin_s.to_string());
    field(&mut fields, "udp_s", ot.udp_s.to_string(), nt.udp_s.to_string());
    field(&mut fields, "sip_call_s", ot.sip_call_s.to_string(), nt.sip_call_s.to_string());
    if !fields.is_empty() {
        d.changes.push(Change::TimeoutsEdited { fields });
    }
    services(old, new, &mut d.changes);
    d
}

/// Pushes the [`KeyChange`] of key `field` from `old` to `new`, if any
/// (`old_next`: the next key of the same role before, for the middle
/// step of a rotation).
fn key_change(
    out: &mut Vec<KeyChange>,
    field: &'static str,
    old: Option<&super::KeyConfig>,
    new: Option<&super::KeyConfig>,
    old_next: Option<&super::KeyConfig>,
) {
    let change = match (old, new) {
        (None, None) => return,
        (Some(a), Some(b)) if a == b => return,
        (None, Some(_)) => KeyChangeKind::Added,
        (Some(_), None) => KeyChangeKind::Removed,
        (Some(_), Some(b)) if old_next.is_some_and(|n| n.secret == b.secret) => KeyChangeKind::NowTheFormerNext,
        (Some(_), Some(_)) => KeyChangeKind::Changed,
    };
    out.push(KeyChange { field, change });
}

/// The live changes of the services and their real servers.
fn services(old: &Config, new: &Config, out: &mut Vec<Change>) {
    let find = |c: &'_ Config, id: ServiceId| c.services.iter().position(|s| ServiceId::of(s) == id);
    let mut added = Vec::new();
    let mut edits = Vec::new();
    for s in &old.services {
        let id = ServiceId::of(s);
        if find(new, id).is_none() {
            out.push(Change::ServiceRemoved(id));
        }
    }
    for s in &new.services {
        let id = ServiceId::of(s);
        let Some(i) = find(old, id) else {
            added.push(Change::ServiceAdded(id));
            continue;
        };
        let o = &old.services[i];
        let mut fields = Vec::new();
        let fwd = |f: &tandem_dataplane::common::Forward| match f {
            tandem_dataplane::common::Forward::Dr => "dr".to_string(),
            tandem_dataplane::common::Forward::Nat => "nat".to_string(),
        };
        field(&mut fields, "scheduler", o.scheduler.name().into(), s.scheduler.name().into());
        field(&mut fields, "forward", fwd(&o.forward), fwd(&s.forward));
        field(&mut fields, "flags", flag_names(o.flags), flag_names(s.flags));
        field(&mut fields, "mh_size", o.mh_size.to_string(), s.mh_size.to_string());
        field(&mut fields, "gateway_mac", or_dash(&o.gateway_mac, mac), or_dash(&s.gateway_mac, mac));
        field(&mut fields, "client_interface", or_dash(&o.client_interface, Clone::clone), or_dash(&s.client_interface, Clone::clone));
        field(&mut fields, "sip_options", or_dash(&o.sip_options, |p| format!("{p:?}")), or_dash(&s.sip_options, |p| format!("{p:?}")));
        if !fields.is_empty() {
            edits.push(Change::ServiceEdited { service: id, fields });
        }
        reals(id, &o.reals, &s.reals, &mut edits);
    }
    out.extend(added);
    // Removals of real servers before additions and edits, as for services.
    edits.sort_by_key(|c| match c {
        Change::RealRemoved { .. } => 0,
        Change::ServiceEdited { .. } => 1,
        Change::RealAdded { .. } => 2,
        _ => 3,
    });
    out.extend(edits);
}

fn reals(service: ServiceId, old: &[RealEntry], new: &[RealEntry], out: &mut Vec<Change>) {
    let find = |v: &[RealEntry], id: RealId| v.iter().position(|r| RealId::of(r) == id);
    for r in old {
        if find(new, RealId::of(r)).is_none() {
            out.push(Change::RealRemoved {
                service,
                real: RealId::of(r),
            });
        }
    }
    for r in new {
        let real = RealId::of(r);
        let Some(i) = find(old, real) else {
            out.push(Change::RealAdded { service, real });
            continue;
        };
        let o = &old[i];
        let mut fields = Vec::new();
        field(&mut fields, "weight", o.weight.to_string(), r.weight.to_string());
        field(&mut fields, "state", o.state.name().into(), r.state.name().into());
        field(&mut fields, "mac", or_dash(&o.mac, mac), or_dash(&r.mac, mac));
        field(&mut fields, "interface", or_dash(&o.interface, Clone::clone), or_dash(&r.interface, Clone::clone));
        field(&mut fields, "node_id", or_dash(&o.node_id, u32::to_string), or_dash(&r.node_id, u32::to_string));
        if !fields.is_empty() {
            out.push(Change::RealEdited {
                service,
                real,
                fields,
            });
        }
    }
}
