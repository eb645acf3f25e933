//! `tandemctl import`: an LVS director's configuration (`ipvsadm-save -n`
//! output or a `keepalived.conf`) turned into the `[[service]]` list of a
//! `tandem.toml`, with every line that tandem cannot express listed and
//! why.
//!
//! The parsers ([`ipvsadm::parse`], [`keepalived::parse`]) read text and
//! return an [`Imported`]: the virtual services they could express, in
//! tandem's vocabulary, and one [`Unexpressed`] per source line that they
//! could not (or not fully) express. [`to_file`] puts the services into a
//! director's existing configuration (its `[node]`, `[heartbeat]`,
//! `[[vip]]`, `[dataplane]`, `[admin]`, `[sync]`, `[witness]` and
//! `[[card]]` tables are kept, its `[[service]]` list is replaced),
//! resolves each real server's MAC address, and checks the result with
//! [`Config::parse`] before returning it. None of this does I/O: the caller
//! passes the texts in (`command` is the shell that reads and writes
//! the files for `tandemctl`).
//!
//! # Mapping
//!
//! | ipvsadm | keepalived.conf | tandem.toml |
//! | --- | --- | --- |
//! | `-A -u VIP:PORT` / `-t` (`--udp-service`, `--tcp-service`) | `virtual_server VIP PORT`, `protocol UDP` / `TCP` (default TCP) | `[[service]]` `vip`, `port`, `protocol = "udp"` / `"tcp"` |
//! | `-s rr\|wrr\|lc\|wlc\|sed\|nq\|sh\|dh\|mh` (`--scheduler`) | `lb_algo` / `lvs_sched` (absent: wlc, listed) | `scheduler`, same name |
//! | `-s lblc\|lblcr\|fo\|ovf\|twos\|…` | the same in `lb_algo` | not imported: the service and its reals are listed |
//! | `-a … -g` (`--gatewaying`, the default) | `lb_kind DR` / `lvs_method DR` | `forward = "dr"`, real `port = 0` |
//! | `-a … -m` (`--masquerading`) | `lb_kind NAT` (absent: NAT, listed) | `forward = "nat"`, real `port` as given; `gateway_mac` from `--gateway-mac`, the base's same service, or the base's one NAT gateway |
//! | `-a … -i` (`--ipip`), `--tun-*` | `lb_kind TUN` / `GRE` | not imported: the real (ipvsadm) or the whole service (keepalived) is listed |
//! | `-b sh-fallback` / `mh-fallback` | `sh-fallback` / `mh-fallback` | `flags = ["sched_fallback"]` |
//! | `-b sh-port` / `mh-port` | `sh-port` / `mh-port` | `flags = ["sched_port"]` |
//! | `-O` / `-o` / `--ops` (UDP) | `ops` (UDP) | `flags = ["one_packet"]` |
//! | `--pe sip` | `persistence_engine sip` | `flags = ["sip_persist"]` (SIP Call-ID persistence) |
//! | `-p [TIMEOUT]` (`--persistent`), `-M MASK` | `persistence_timeout`, `persistence_granularity` | not imported: tandem has no source-IP persistence (see `sip_persist`) |
//! | `-a … -r RIP[:PORT]` (`--real-server`) | `real_server RIP [PORT]` | `[[service.real]]` `address`, `port` |
//! | `-w N` (`--weight`, default 1) | `weight N` (default 1) | `weight` |
//! | — | — | `mac`: `--mac RIP=MAC`, else the base's real of that address, else `/proc/net/arp`; none: the real is listed |
//! | `-x`, `-y` (connection thresholds) | `uthreshold`, `lthreshold` | not imported |
//! | `-f MARK` (`--fwmark-service`) | `virtual_server fwmark N`, `virtual_server group NAME` | not imported |
//! | — | `TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`, `DNS_CHECK`, `SMTP_CHECK`, … and `delay_loop`, `retry`, … | not imported: tandem checks real servers with SIP OPTIONS (`service.sip_options`) and IVR heartbeats |
//! | — | `vrrp_instance` | not imported: VRRP is tandem's own pair (`[node]`, `[heartbeat]`) |
//! | — | `global_defs`, `vrrp_script`, `vrrp_sync_group`, `static_*` | ignored (not about services) |
//! | — | `sorry_server`, `quorum`, `inhibit_on_failure`, `notify_*`, … | not imported |
//!
//! A service whose VIP has no `[[vip]]` in the base is given one when every
//! `[[vip]]` of the base is on one interface (a [`Note`] says so), and is
//! listed otherwise (or when the address is a heartbeat path's or the
//! witness's): which interface an address belongs on is not a guess to
//! make for the operator. An IPv6 VIP is imported (the dataplane
//! dispatches it) but listed: `[[vip]]` holds IPv4 addresses only.
//!
//! A line is listed once, with every reason it has; a line inside a block
//! that is not imported (a keepalived `virtual_server`'s settings) is
//! covered by the block's entry, except its `real_server` lines, which are
//! listed each.

pub mod command;
pub mod ipvsadm;
pub mod keepalived;
mod macs;

pub use macs::{MacSource, Neighbour, parse_mac_option, parse_mac_value, parse_neighbours};

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use tandem_dataplane::{
    ServiceFlag,
    common::{Forward, MAX_REALS, MH_DEFAULT_SIZE, Scheduler},
    config::Protocol,
};

use super::{
    Config, ConfigError, DEFAULT_GARP_COUNT, DEFAULT_GARP_INTERVAL_MS, RealEntry, ServiceEntry,
    VipConfig,
};

/// What a parser made of a configuration: the services it could express
/// and the lines it could not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub services: Vec<ImportedService>,
    /// One entry per line, in line order.
    pub unexpressed: Vec<Unexpressed>,
}

/// A virtual service in tandem's terms, with the line that defined it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedService {
    /// 1-based line of the `-A` line or the `virtual_server` header.
    pub line: usize,
    /// That line, trimmed.
    pub text: String,
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub scheduler: Scheduler,
    pub forward: Forward,
    /// Each flag once, in the order found.
    pub flags: Vec<ServiceFlag>,
    pub reals: Vec<ImportedReal>,
}

/// A real server in tandem's terms (no MAC yet: [`to_file`] finds it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedReal {
    /// 1-based line of the `-a` line or the `real_server` header.
    pub line: usize,
    pub text: String,
    pub address: IpAddr,
    /// NAT: the port on the real server; DR: 0 (the virtual port).
    pub port: u16,
    pub weight: u32,
}

/// A source line that is not (fully) in the result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unexpressed {
    /// 1-based.
    pub line: usize,
    /// The source line, trimmed.
    pub text: String,
    /// Every reason, joined with `; `.
    pub reason: String,
    /// What kind of thing each reason is, for callers and tests.
    pub causes: Vec<Cause>,
}

/// Why a line is listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// It cannot be read: a bad address or number, an unknown option or
    /// keyword, a missing argument, an unbalanced brace.
    Malformed,
    /// A scheduler tandem does not have (lblc, lblcr, fo, ovf, twos, …).
    Scheduler,
    /// IPIP/GRE tunnelling (`-i`, `lb_kind TUN`).
    Tunnel,
    /// A real server forwarded otherwise than the first one of its service
    /// (tandem forwards a whole service one way).
    MixedForwarding,
    /// Source-IP persistence (`-p`, `-M`, `persistence_*`).
    Persistence,
    /// A health checker or its timing.
    Checker,
    /// A firewall-mark service.
    Fwmark,
    /// A keepalived virtual server group.
    Group,
    /// A protocol other than UDP and TCP (SCTP).
    Protocol,
    /// A keepalived `vrrp_instance`.
    Vrrp,
    /// A setting with no tandem equivalent (thresholds, sorry server,
    /// quorum, generic scheduler flags, `include`, …).
    Unsupported,
    /// A default the source left implicit, assumed: check it.
    Assumed,
    /// A second definition of the same service or real server.
    Duplicate,
    /// An address family tandem cannot take there.
    AddressFamily,
    /// A line of a service that is not imported.
    ServiceSkipped,
    /// The VIP is not a `[[vip]]` of the base and cannot be added.
    NoVip,
    /// NAT without a known gateway MAC.
    NoGateway,
    /// More real servers than a tandem service takes.
    Limit,
    /// Refused by the configuration's own checks.
    Refused,
}

/// What [`to_file`] did that was not in the source, for the operator to
/// see (not a failure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub line: usize,
    pub text: String,
}

/// Reason of every health checker.
pub const CHECKERS: &str =
    "tandem checks real servers with SIP OPTIONS (service.sip_options) and IVR heartbeats";
/// Reason of source-IP persistence.
pub const PERSISTENCE: &str = "tandem has no source-IP persistence (SIP dialogs stay on one real server with the sip_persist flag, SIP Call-ID persistence)";
/// Reason of a `vrrp_instance`.
pub const VRRP: &str = "VRRP is tandem's own pair; configure [node]/[heartbeat]";
/// Reason of a tunnelled real server.
pub const TUNNEL: &str = "tunnelling (IPIP/GRE) is not a tandem forwarding method (dr, nat)";
/// Reason of a firewall-mark service.
pub const FWMARK: &str = "a firewall-mark service has no tandem equivalent: a tandem service is a VIP, port and protocol";

/// The entries of an [`Imported::unexpressed`] list being built, one per
/// line, each with its reasons in the order given (each once).
#[derive(Clone, Debug, Default)]
pub(super) struct Listing {
    entries: BTreeMap<usize, (Unexpressed, Vec<String>)>,
}

impl Listing {
    /// Lists `line` (whose trimmed text is `text`) for `reason`, merged
    /// into its entry when it has one already.
    pub(super) fn add(&mut self, line: usize, text: &str, cause: Cause, reason: impl Into<String>) {
        let reason = reason.into();
        let (entry, reasons) = self.entries.entry(line).or_insert_with(|| {
            let entry = Unexpressed {
                line,
                text: text.to_string(),
                reason: String::new(),
                causes: Vec::new(),
            };
            (entry, Vec::new())
        });
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
        if !entry.causes.contains(&cause) {
            entry.causes.push(cause);
        }
    }

    pub(super) fn into_vec(self) -> Vec<Unexpressed> {
        self.entries
            .into_values()
            .map(|(mut entry, reasons)| {
                entry.reason = reasons.join("; ");
                entry
            })
            .collect()
    }

    /// A list to add to, holding `list` (each reason as one).
    fn from_list(list: &[Unexpressed]) -> Listing {
        let entries = list
            .iter()
            .map(|u| (u.line, (u.clone(), vec![u.reason.clone()])))
            .collect();
        Listing { entries }
    }
}

/// The source's lines, for the text of a listed line.
pub(super) struct Source<'a>(Vec<&'a str>);

impl<'a> Source<'a> {
    pub(super) fn new(text: &'a str) -> Source<'a> {
        Source(text.lines().collect())
    }

    /// Line `line` (1-based), trimmed; empty past the end.
    pub(super) fn line(&self, line: usize) -> &'a str {
        line.checked_sub(1)
            .and_then(|i| self.0.get(i))
            .map_or("", |l| l.trim())
    }
}

/// tandem's scheduler of this IPVS name, or why there is none.
pub(super) fn scheduler(name: &str) -> Result<Scheduler, String> {
    tandem_dataplane::config::parse_scheduler(name).ok_or_else(|| {
        let known: Vec<&str> = Scheduler::ALL.iter().map(|s| s.name()).collect();
        format!(
            "scheduler `{name}` is not one of tandem's ({})",
            known.join(", ")
        )
    })
}

/// Adds `flag` to `flags` unless it is there.
pub(super) fn set_flag(flags: &mut Vec<ServiceFlag>, flag: ServiceFlag) {
    if !flags.contains(&flag) {
        flags.push(flag);
    }
}

/// `udp 198.18.0.100:5060`, for messages.
pub(super) fn service_name(protocol: Protocol, vip: IpAddr, port: u16) -> String {
    super::diff::ServiceId {
        protocol,
        vip,
        port,
    }
    .to_string()
}

/// A real's port as tandem takes it: 0 for DR (the virtual port; IPVS
/// ignores a DR real's port too), the port on the server for NAT.
pub(super) fn real_port(forward: Forward, given: Option<u16>, vport: u16) -> u16 {
    match forward {
        Forward::Dr => 0,
        Forward::Nat => given.unwrap_or(vport),
    }
}

/// The only element of `set`, if it has exactly one.
pub(super) fn one<T: Copy>(set: &BTreeSet<T>) -> Option<T> {
    let mut it = set.iter();
    match (it.next(), it.next()) {
        (Some(x), None) => Some(*x),
        _ => None,
    }
}

/// The imported configuration: the file, what it is, and what was left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    /// What the file reads back as (it passed [`Config::parse`]).
    pub config: Config,
    /// The `tandem.toml` text (inline keys of the base written out).
    pub toml: String,
    /// The parser's list and the lines `to_file` had to leave out, one
    /// entry per line, in line order.
    pub unexpressed: Vec<Unexpressed>,
    /// What was added that the source did not say (a `[[vip]]`).
    pub notes: Vec<Note>,
}

impl Exported {
    /// Services in the file.
    pub fn services(&self) -> usize {
        self.config.services.len()
    }

    /// Real servers in the file, over every service.
    pub fn reals(&self) -> usize {
        self.config.services.iter().map(|s| s.reals.len()).sum()
    }

    /// What `tandemctl import` prints on stderr: every listed line as
    /// `FILE:LINE: not imported: REASON` and its text, every note, then
    /// the summary.
    pub fn report(&self, file: &str) -> String {
        let mut out = String::new();
        let mut notes = self.notes.iter().peekable();
        for u in &self.unexpressed {
            while let Some(n) = notes.next_if(|n| n.line <= u.line) {
                out.push_str(&format!("{file}:{}: note: {}\n", n.line, n.text));
            }
            out.push_str(&format!(
                "{file}:{}: not imported: {}\n    {}\n",
                u.line, u.reason, u.text
            ));
        }
        for n in notes {
            out.push_str(&format!("{file}:{}: note: {}\n", n.line, n.text));
        }
        out.push_str(&format!(
            "imported {} services, {} real servers; {} lines not expressed\n",
            self.services(),
            self.reals(),
            self.unexpressed.len()
        ));
        out
    }
}

/// The imported services cannot make a configuration for a reason that is
/// not theirs (the base itself no longer passes the checks).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the base with the imported services does not pass tandem's checks:\n{0}")]
    Refused(ConfigError),
}

/// Where a service of the file being built came from.
struct Origin {
    line: usize,
    text: String,
    /// Per real server: its line and text.
    reals: Vec<(usize, String)>,
}

/// A whole `tandem.toml`: `base` with its `[[service]]` list replaced by
/// the services of `imported`, each real server given a MAC from `macs`
/// (left out and listed when none is known), VIPs added as described in
/// the module's documentation, and checked by reading the text back with
/// [`Config::parse`]. A service or real server the checks refuse is left
/// out and listed with the check's words, so that what is returned always
/// passes them.
pub fn to_file(
    imported: &Imported,
    base: &Config,
    macs: &MacSource,
) -> Result<Exported, ImportError> {
    let mut listed = Listing::from_list(&imported.unexpressed);
    // The [[vip]] tables added, each with the note that says so.
    let mut added: Vec<(VipConfig, Note)> = Vec::new();
    // Real servers imported without a MAC (tandemd resolves them).
    let mut unresolved: Vec<Note> = Vec::new();
    let interfaces: BTreeSet<&str> = base.vips.iter().map(|v| v.interface.as_str()).collect();
    let mut built: Vec<(ServiceEntry, Origin)> = Vec::new();
    for s in &imported.services {
        let skip_reals = |listed: &mut Listing, why: &str| {
            for r in &s.reals {
                listed.add(
                    r.line,
                    &r.text,
                    Cause::ServiceSkipped,
                    format!("its service (line {}) is not imported: {why}", s.line),
                );
            }
        };
        match s.vip {
            IpAddr::V4(a)
                if base.vips.iter().chain(added.iter().map(|(v, _)| v)).any(|v| v.address == a) => {}
            IpAddr::V4(a) => match added_vip(a, base, &interfaces) {
                Ok(vip) => {
                    let note = Note {
                        line: s.line,
                        text: format!(
                            "added [[vip]] {a} on {}, the interface of every [[vip]] of the base",
                            vip.interface
                        ),
                    };
                    added.push((vip, note));
                }
                Err(why) => {
                    listed.add(s.line, &s.text, Cause::NoVip, &why);
                    skip_reals(&mut listed, &why);
                    continue;
                }
            },
            IpAddr::V6(a) => listed.add(
                s.line,
                &s.text,
                Cause::AddressFamily,
                format!("VIP {a} is IPv6: the service is imported, but [[vip]] holds IPv4 addresses only, so tandem does not hold this address"),
            ),
        }
        let key = (s.protocol, s.vip, s.port);
        let (gateway_mac, client_interface) = match s.forward {
            Forward::Dr => (None, None),
            Forward::Nat => match macs.gateway(key, base) {
                Some((mac, interface)) => (Some(mac), interface),
                None => {
                    let why = "NAT needs the MAC of the gateway toward the clients: give --gateway-mac MAC";
                    listed.add(s.line, &s.text, Cause::NoGateway, why);
                    skip_reals(&mut listed, why);
                    continue;
                }
            },
        };
        let mut origin = Origin {
            line: s.line,
            text: s.text.clone(),
            reals: Vec::new(),
        };
        let mut reals = Vec::new();
        for r in &s.reals {
            if reals.len() == MAX_REALS as usize {
                listed.add(
                    r.line,
                    &r.text,
                    Cause::Limit,
                    format!("a tandem service takes at most {MAX_REALS} real servers"),
                );
                continue;
            }
            // No MAC known here: the file leaves it out, and tandemd takes
            // it from its neighbour table (said in a note).
            let mac = macs.real(r.address, key, base);
            if mac.is_none() {
                unresolved.push(Note {
                    line: r.line,
                    text: format!(
                        "real server {0}: no MAC from --mac, the base or /proc/net/arp; none is written, tandemd takes it from its neighbour table (give --mac {0}=MAC to type one)",
                        r.address
                    ),
                });
            }
            reals.push(RealEntry {
                address: r.address,
                port: r.port,
                mac,
                weight: r.weight,
                state: tandem_dataplane::RealState::Up,
                interface: None,
                node_id: None,
            });
            origin.reals.push((r.line, r.text.clone()));
        }
        built.push((
            ServiceEntry {
                vip: s.vip,
                port: s.port,
                protocol: s.protocol,
                scheduler: s.scheduler,
                forward: s.forward,
                flags: s.flags.iter().fold(0, |bits, f| bits | f.bit()),
                mh_size: MH_DEFAULT_SIZE,
                gateway_mac,
                client_interface,
                reals,
                sip_options: None,
            },
            origin,
        ));
    }
    // Every round leaves out at least one service or real server, or returns.
    loop {
        // A [[vip]] is added for a service that is imported, not one left out.
        added.retain(|(v, _)| built.iter().any(|(s, _)| s.vip == IpAddr::V4(v.address)));
        let mut config = base.clone();
        config.vips.extend(added.iter().map(|(v, _)| v.clone()));
        config.services = built.iter().map(|(s, _)| s.clone()).collect();
        let toml = config.to_toml_with_keys();
        let error = match Config::parse(&toml) {
            Ok(config) => {
                return Ok(Exported {
                    config,
                    toml,
                    unexpressed: listed.into_vec(),
                    notes: {
                        let mut notes: Vec<Note> = added.into_iter().map(|(_, n)| n).chain(unresolved).collect();
                        notes.sort_by_key(|n| n.line);
                        notes
                    },
                });
            }
            Err(e) => e,
        };
        let mut drop_services = BTreeSet::new();
        let mut drop_reals = BTreeSet::new();
        let mut drop_vips = BTreeSet::new();
        for problem in error.problems() {
            let why = refusal(problem);
            match problem.field().and_then(blame) {
                Some(Blame::Service(i, real)) if i < built.len() => {
                    let origin = &built[i].1;
                    match real.and_then(|j| origin.reals.get(j).map(|r| (j, r))) {
                        Some((j, (line, text))) => {
                            listed.add(*line, text, Cause::Refused, why);
                            drop_reals.insert((i, j));
                        }
                        None => {
                            refuse_service(&mut listed, origin, &why);
                            drop_services.insert(i);
                        }
                    }
                }
                // A [[vip]] added for the services that use it.
                Some(Blame::Vip(k))
                    if k >= base.vips.len() && k - base.vips.len() < added.len() =>
                {
                    let k = k - base.vips.len();
                    let address = IpAddr::V4(added[k].0.address);
                    for (i, (service, origin)) in built.iter().enumerate() {
                        if service.vip == address {
                            refuse_service(&mut listed, origin, &why);
                            drop_services.insert(i);
                        }
                    }
                    drop_vips.insert(k);
                }
                _ => return Err(ImportError::Refused(error)),
            }
        }
        for &(i, j) in drop_reals.iter().rev() {
            if !drop_services.contains(&i) {
                built[i].0.reals.remove(j);
                built[i].1.reals.remove(j);
            }
        }
        for &i in drop_services.iter().rev() {
            built.remove(i);
        }
        for &k in drop_vips.iter().rev() {
            added.remove(k);
        }
    }
}

/// Lists a service the checks refuse, and its real servers.
fn refuse_service(listed: &mut Listing, origin: &Origin, why: &str) {
    listed.add(origin.line, &origin.text, Cause::Refused, why);
    for (line, text) in &origin.reals {
        listed.add(
            *line,
            text,
            Cause::ServiceSkipped,
            format!("its service (line {}) is not imported: {why}", origin.line),
        );
    }
}

/// The `[[vip]]` to add for a service's VIP `a` that the base lacks: on
/// the one interface of the base's VIPs, unless that is ambiguous or the
/// address is one of the pair's own or the witness's.
fn added_vip(a: Ipv4Addr, base: &Config, interfaces: &BTreeSet<&str>) -> Result<VipConfig, String> {
    let add = format!("add [[vip]] address = \"{a}\" to the base");
    if let Some(path) = base
        .heartbeat
        .paths
        .iter()
        .find(|p| p.local == a || p.peer == a)
    {
        return Err(format!(
            "VIP {a} is an address of the heartbeat path {:?}, not a VIP the base can be given",
            path.name
        ));
    }
    if base.witness.as_ref().is_some_and(|w| w.address == a) {
        return Err(format!(
            "VIP {a} is the witness's address, not a VIP the base can be given"
        ));
    }
    match one(interfaces) {
        Some(interface) => Ok(VipConfig {
            address: a,
            interface: interface.to_string(),
            garp_count: DEFAULT_GARP_COUNT,
            garp_interval: Duration::from_millis(DEFAULT_GARP_INTERVAL_MS),
        }),
        None if interfaces.is_empty() => Err(format!(
            "VIP {a} is not a [[vip]] of the base, which has none to take the interface from: {add}"
        )),
        None => Err(format!(
            "VIP {a} is not a [[vip]] of the base, whose VIPs are on several interfaces ({}): {add}",
            interfaces.iter().copied().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// What a problem of the configuration being built names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Blame {
    /// `service[3]` → (3, None), `service[3].real[1].mac` → (3, Some(1)).
    Service(usize, Option<usize>),
    /// `vip[9].address`.
    Vip(usize),
}

fn blame(field: &str) -> Option<Blame> {
    let index = |s: &str| -> Option<(usize, String)> {
        let (n, rest) = s.split_once(']')?;
        Some((n.parse().ok()?, rest.to_string()))
    };
    if let Some(v) = field.strip_prefix("vip[") {
        return Some(Blame::Vip(index(v)?.0));
    }
    let (i, rest) = index(field.strip_prefix("service[")?)?;
    let real = match rest.strip_prefix(".real[") {
        Some(r) => Some(index(r)?.0),
        None => None,
    };
    Some(Blame::Service(i, real))
}

/// A check's refusal in the words of the source line (the file's field
/// paths would name the generated file, not the source).
fn refusal(problem: &ConfigError) -> String {
    match problem {
        ConfigError::Invalid { value, problem, .. } => {
            format!("tandem refuses it: {value} {problem}")
        }
        other => format!("tandem refuses it: {other}"),
    }
}

/// Which parser reads the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `ipvsadm-save -n` / `ipvsadm -Sn` output.
    Ipvsadm,
    /// `keepalived.conf`.
    Keepalived,
}

/// The source parsed as `format`.
pub fn parse(format: Format, text: &str) -> Imported {
    match format {
        Format::Ipvsadm => ipvsadm::parse(text),
        Format::Keepalived => keepalived::parse(text),
    }
}

#[cfg(test)]
mod tests;

/// What the parsers' tests ask of an [`Imported`].
#[cfg(test)]
pub(crate) mod test_support;
