//! Edits of a `tandem.toml`'s services and real servers, as `tandemctl
//! service …` and `tandemctl real …` make them (ipvsadm's `-A -E -D -a
//! -e -d`): the file stays the truth. An edit is made on the file's text
//! with its comments and layout kept (toml_edit), checked whole by
//! [`super::Config::parse`] before it is returned, and the caller writes
//! it atomically and asks the daemon to reload: so what an operator
//! changes survives a restart, and a reload of the file is the only way
//! a running daemon's services change.
//!
//! Services are named as IPVS names them (protocol, VIP, port), real
//! servers by address and port within their service; an edit of a real
//! server without a service applies to every service it serves.

use std::net::IpAddr;

use toml_edit::{DocumentMut, Item, Table, value};

use super::{
    Config,
    diff::{RealId, ServiceId},
};
use tandem_dataplane::config::Protocol;

/// One edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    ServiceAdd { id: ServiceId, settings: ServiceSettings },
    ServiceEdit { id: ServiceId, settings: ServiceSettings },
    ServiceDelete { id: ServiceId },
    RealAdd { service: ServiceId, real: RealId, settings: RealSettings },
    /// `service` None: in every service that has this real server.
    RealEdit { service: Option<ServiceId>, real: RealId, settings: RealSettings },
    RealDelete { service: Option<ServiceId>, real: RealId },
    /// `[timeouts]`, each given one set (None: as it is).
    Timeouts {
        tcp_s: Option<u32>,
        tcp_fin_s: Option<u32>,
        udp_s: Option<u32>,
        sip_call_s: Option<u32>,
    },
}

/// Service fields to set (None: leave as it is, or the default on add).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceSettings {
    pub scheduler: Option<String>,
    pub forward: Option<String>,
    pub flags: Option<Vec<String>>,
    pub mh_size: Option<u32>,
    pub gateway_mac: Option<String>,
    pub client_interface: Option<String>,
}

/// Real server fields to set (None: leave as it is, or the default on add).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RealSettings {
    pub mac: Option<String>,
    pub weight: Option<u32>,
    /// up, draining, down.
    pub state: Option<String>,
    pub node_id: Option<u32>,
    pub interface: Option<String>,
}

/// Why an edit was not made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    #[error("the file is not TOML: {0}")]
    NotToml(String),
    #[error("service {0} already exists")]
    ServiceExists(ServiceId),
    #[error("no service {0}")]
    NoService(ServiceId),
    #[error("real server {real} already exists in service {service}")]
    RealExists { service: ServiceId, real: RealId },
    #[error("no real server {real}{}", .service.map_or(String::new(), |s| format!(" in service {s}")))]
    NoReal { service: Option<ServiceId>, real: RealId },
    #[error("the edited file is refused, nothing written:\n{0}")]
    Refused(String),
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "udp",
        Protocol::Tcp => "tcp",
    }
}

fn is_service(t: &Table, id: &ServiceId) -> bool {
    let vip = t.get("vip").and_then(Item::as_str).and_then(|s| s.parse::<IpAddr>().ok());
    let port = t.get("port").and_then(Item::as_integer);
    let proto = t.get("protocol").and_then(Item::as_str);
    vip == Some(id.vip) && port == Some(i64::from(id.port)) && proto == Some(proto_name(id.protocol))
}

fn is_real(t: &Table, id: &RealId) -> bool {
    let addr = t.get("address").and_then(Item::as_str).and_then(|s| s.parse::<IpAddr>().ok());
    let port = t.get("port").and_then(Item::as_integer).unwrap_or(0);
    addr == Some(id.address) && port == i64::from(id.port)
}

fn set_service(t: &mut Table, s: &ServiceSettings) {
    if let Some(v) = &s.scheduler {
        t["scheduler"] = value(v.as_str());
    }
    if let Some(v) = &s.forward {
        t["forward"] = value(v.as_str());
    }
    if let Some(v) = &s.flags {
        let mut a = toml_edit::Array::new();
        for f in v {
            a.push(f.as_str());
        }
        t["flags"] = value(a);
    }
    if let Some(v) = s.mh_size {
        t["mh_size"] = value(i64::from(v));
    }
    if let Some(v) = &s.gateway_mac {
        t["gateway_mac"] = value(v.as_str());
    }
    if let Some(v) = &s.client_interface {
        t["client_interface"] = value(v.as_str());
    }
}

fn set_real(t: &mut Table, s: &RealSettings) {
    if let Some(v) = &s.mac {
        t["mac"] = value(v.as_str());
    }
    if let Some(v) = s.weight {
        t["weight"] = value(i64::from(v));
    }
    if let Some(v) = &s.state {
        t["state"] = value(v.as_str());
    }
    if let Some(v) = s.node_id {
        t["node_id"] = value(i64::from(v));
    }
    if let Some(v) = &s.interface {
        t["interface"] = value(v.as_str());
    }
}

fn address_text(a: IpAddr) -> String {
    a.to_string()
}

/// The services array of tables, created if absent.
fn services(doc: &mut DocumentMut) -> Result<&mut toml_edit::ArrayOfTables, EditError> {
    if doc.get("service").is_none() {
        doc["service"] = Item::ArrayOfTables(Default::default());
    }
    doc["service"]
        .as_array_of_tables_mut()
        .ok_or_else(|| EditError::NotToml("`service` is not a list of [[service]] tables".into()))
}

fn reals_of(t: &mut Table) -> Result<&mut toml_edit::ArrayOfTables, EditError> {
    if t.get("real").is_none() {
        t["real"] = Item::ArrayOfTables(Default::default());
    }
    t["real"]
        .as_array_of_tables_mut()
        .ok_or_else(|| EditError::NotToml("`service.real` is not a list of [[service.real]] tables".into()))
}

/// `text` with `edit` made, checked whole; the file's comments and
/// layout are kept.
pub fn apply(text: &str, edit: &Edit) -> Result<String, EditError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| EditError::NotToml(e.to_string()))?;
    if let Edit::Timeouts {
        tcp_s,
        tcp_fin_s,
        udp_s,
        sip_call_s,
    } = edit
    {
        if doc.get("timeouts").is_none() {
            doc["timeouts"] = Item::Table(Table::new());
        }
        let t = doc["timeouts"]
            .as_table_mut()
            .ok_or_else(|| EditError::NotToml("`timeouts` is not a table".into()))?;
        for (k, v) in [("tcp_s", tcp_s), ("tcp_fin_s", tcp_fin_s), ("udp_s", udp_s), ("sip_call_s", sip_call_s)] {
            if let Some(v) = v {
                t[k] = value(i64::from(*v));
            }
        }
        let out = doc.to_string();
        Config::parse(&out).map_err(|e| EditError::Refused(e.to_string()))?;
        return Ok(out);
    }
    let list = services(&mut doc)?;
    let find = |list: &toml_edit::ArrayOfTables, id: &ServiceId| list.iter().position(|t| is_service(t, id));
    match edit {
        Edit::ServiceAdd { id, settings } => {
            if find(list, id).is_some() {
                return Err(EditError::ServiceExists(*id));
            }
            let mut t = Table::new();
            t["vip"] = value(address_text(id.vip));
            t["port"] = value(i64::from(id.port));
            t["protocol"] = value(proto_name(id.protocol));
            set_service(&mut t, settings);
            list.push(t);
        }
        Edit::ServiceEdit { id, settings } => {
            let i = find(list, id).ok_or(EditError::NoService(*id))?;
            set_service(list.get_mut(i).expect("found"), settings);
        }
        Edit::ServiceDelete { id } => {
            let i = find(list, id).ok_or(EditError::NoService(*id))?;
            list.remove(i);
        }
        Edit::RealAdd { service, real, settings } => {
            let i = find(list, service).ok_or(EditError::NoService(*service))?;
            let reals = reals_of(list.get_mut(i).expect("found"))?;
            if reals.iter().any(|r| is_real(r, real)) {
                return Err(EditError::RealExists { service: *service, real: *real });
            }
            let mut t = Table::new();
            t["address"] = value(address_text(real.address));
            if real.port != 0 {
                t["port"] = value(i64::from(real.port));
            }
            set_real(&mut t, settings);
            reals.push(t);
        }
        Edit::RealEdit { service, real, settings } => {
            let mut n = 0;
            for s in list.iter_mut().filter(|t| service.is_none_or(|id| is_service(t, &id))) {
                for r in reals_of(s)?.iter_mut().filter(|r| is_real(r, real)) {
                    set_real(r, settings);
                    n += 1;
                }
            }
            if n == 0 {
                return Err(EditError::NoReal { service: *service, real: *real });
            }
        }
        Edit::RealDelete { service, real } => {
            let mut n = 0;
            for s in list.iter_mut().filter(|t| service.is_none_or(|id| is_service(t, &id))) {
                let reals = reals_of(s)?;
                loop {
                    let at = reals.iter().position(|r| is_real(r, real));
                    let Some(i) = at else { break };
                    reals.remove(i);
                    n += 1;
                }
            }
            if n == 0 {
                return Err(EditError::NoReal { service: *service, real: *real });
            }
        }
        Edit::Timeouts { .. } => {}
    }
    let out = doc.to_string();
    Config::parse(&out).map_err(|e| EditError::Refused(e.to_string()))?;
    Ok(out)
}

/// The file `text` with its `[timeouts]` and `[[service]]` tables
/// replaced by those of `services` (a [`Config::services_toml`] text, the
/// active's): the rest of the file, comments included, is kept; the
/// result is checked whole.
pub fn replace_services(text: &str, services: &str) -> Result<String, EditError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| EditError::NotToml(e.to_string()))?;
    let new: DocumentMut = services
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::NotToml(format!("the services given: {e}")))?;
    doc.remove("timeouts");
    doc.remove("service");
    for (k, item) in new.iter() {
        doc.insert(k, item.clone());
    }
    let out = doc.to_string();
    Config::parse(&out).map_err(|e| EditError::Refused(e.to_string()))?;
    Ok(out)
}

/// Writes `text` to `path` atomically: a temporary file beside it (with
/// the file's mode), synced, then renamed over it.
pub fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::PermissionsExt};
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tandemctl-{}", std::process::id()));
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0o600);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# the lab director
[node]
id = 1
name = "a"
peer_id = 2

[heartbeat]
key = "000102030405060708090a0b0c0d0e0f"
paths = [{ name = "link", interface = "lo", local = "198.18.1.1", peer = "198.18.1.2" }]

[[vip]]
address = "198.18.0.100"
interface = "lo"

# SIP
[[service]]
vip = "198.18.0.100"
port = 5060
protocol = "udp"
scheduler = "wrr"

[[service.real]]
address = "198.18.0.21" # ivr1
mac = "02:00:00:00:00:21"
"#;

    fn sip() -> ServiceId {
        ServiceId {
            protocol: Protocol::Udp,
            vip: "198.18.0.100".parse().unwrap(),
            port: 5060,
        }
    }

    fn real(last: u8) -> RealId {
        RealId {
            address: format!("198.18.0.{last}").parse().unwrap(),
            port: 0,
        }
    }

    #[test]
    fn the_active_s_services_replace_the_file_s_and_keep_the_rest() {
        let edited = apply(FILE, &Edit::RealEdit {
            service: None,
            real: real(21),
            settings: RealSettings { weight: Some(7), ..Default::default() },
        })
        .unwrap();
        let active = Config::parse(&edited).unwrap();
        let text = replace_services(FILE, &active.services_toml()).expect("replaced");
        assert!(text.contains("# the lab director"), "the rest of the file is kept: {text}");
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.fingerprint(), active.fingerprint(), "{text}");
        assert_eq!(c.node, Config::parse(FILE).unwrap().node);
        assert!(matches!(replace_services(FILE, "[[service]]\nport = \"x\"\n"), Err(EditError::Refused(_))));
        assert!(matches!(replace_services("[node", "x"), Err(EditError::NotToml(_))));
    }

    #[test]
    fn edits_keep_comments_and_read_back_as_the_change() {
        let add = Edit::RealAdd {
            service: sip(),
            real: real(22),
            settings: RealSettings {
                mac: Some("02:00:00:00:00:22".into()),
                weight: Some(3),
                ..Default::default()
            },
        };
        let text = apply(FILE, &add).expect("added");
        assert!(text.contains("# the lab director") && text.contains("# ivr1"), "{text}");
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.services[0].reals.len(), 2);
        assert_eq!((c.services[0].reals[1].weight, c.services[0].reals[1].mac), (3, Some([2, 0, 0, 0, 0, 0x22])));
        assert_eq!(apply(&text, &add), Err(EditError::RealExists { service: sip(), real: real(22) }));

        let drain = Edit::RealEdit {
            service: None,
            real: real(21),
            settings: RealSettings {
                state: Some("draining".into()),
                ..Default::default()
            },
        };
        let c = Config::parse(&apply(&text, &drain).unwrap()).unwrap();
        assert_eq!(c.services[0].reals[0].state, tandem_dataplane::RealState::Draining);

        let del = Edit::RealDelete { service: Some(sip()), real: real(22) };
        let back = apply(&text, &del).unwrap();
        assert_eq!(Config::parse(&back).unwrap(), Config::parse(FILE).unwrap());
        assert!(matches!(apply(FILE, &del), Err(EditError::NoReal { .. })));
    }

    #[test]
    fn timeouts_are_set_one_by_one() {
        let e = Edit::Timeouts {
            tcp_s: None,
            tcp_fin_s: Some(60),
            udp_s: Some(30),
            sip_call_s: None,
        };
        let c = Config::parse(&apply(FILE, &e).unwrap()).unwrap();
        assert_eq!((c.timeouts.tcp_s, c.timeouts.tcp_fin_s, c.timeouts.udp_s, c.timeouts.sip_call_s), (900, 60, 30, 3600));
        let zero = Edit::Timeouts {
            tcp_s: Some(0),
            tcp_fin_s: None,
            udp_s: None,
            sip_call_s: None,
        };
        assert!(matches!(apply(FILE, &zero), Err(EditError::Refused(e)) if e.contains("timeouts.tcp_s")));
    }

    #[test]
    fn services_are_added_edited_and_deleted_and_bad_values_refused() {
        let rtp = ServiceId { port: 5080, ..sip() };
        let add = Edit::ServiceAdd {
            id: rtp,
            settings: ServiceSettings {
                scheduler: Some("mh".into()),
                flags: Some(vec!["sched_port".into()]),
                ..Default::default()
            },
        };
        let text = apply(FILE, &add).unwrap();
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.services.len(), 2);
        assert_eq!(c.services[1].scheduler, tandem_dataplane::common::Scheduler::Mh);
        assert_eq!(apply(&text, &add), Err(EditError::ServiceExists(rtp)));
        let edit = Edit::ServiceEdit {
            id: rtp,
            settings: ServiceSettings {
                scheduler: Some("fastest".into()),
                ..Default::default()
            },
        };
        match apply(&text, &edit) {
            Err(EditError::Refused(e)) => assert!(e.contains("service[1].scheduler"), "{e}"),
            other => panic!("{other:?}"),
        }
        let back = apply(&text, &Edit::ServiceDelete { id: rtp }).unwrap();
        assert_eq!(Config::parse(&back).unwrap(), Config::parse(FILE).unwrap());
        assert_eq!(apply(FILE, &Edit::ServiceDelete { id: rtp }), Err(EditError::NoService(rtp)));
    }
}
