//! `keepalived.conf`, as keepalived.conf(5) documents it: keywords in
//! blocks delimited by `{` and `}` (nested), comments from `#` or `!` to
//! the end of the line, strings optionally in double quotes. Only the
//! `virtual_server` blocks describe services; `global_defs`, `vrrp_script`,
//! `vrrp_sync_group` and the static address and route blocks are not about
//! them and are skipped silently; a `vrrp_instance`, a
//! `virtual_server_group` and an `include` are listed once each.
//!
//! The text is first read into a tree of statements (a keyword line and
//! its block, if any) without recursion, so that no input can exhaust the
//! stack; then each `virtual_server` is interpreted. A service that cannot
//! be imported is listed at its header line and at each of its
//! `real_server` lines; the lines inside it are not listed one by one. This
//! module reads text only; see [`super`] for the mapping.

use std::{collections::HashMap, net::IpAddr};

use tandem_dataplane::{
    ServiceFlag,
    common::{Forward, Scheduler},
    config::Protocol,
};

mod tree;

use tree::{MAX_DEPTH, Stmt, UNCLOSED, tree};

use super::{
    CHECKERS, Cause, FWMARK, Imported, ImportedReal, ImportedService, Listing, PERSISTENCE, Source,
    TUNNEL, VRRP, real_port, scheduler, set_flag,
};

/// What a keepalived.conf describes, read into services and the lines it could not express.
pub fn parse(text: &str) -> Imported {
    let source = Source::new(text);
    let mut listed = Listing::default();
    let (top, problems) = tree(text);
    for (line, why) in problems {
        listed.add(line, source.line(line), Cause::Malformed, why);
    }
    let mut p = Interpreter {
        source: &source,
        listed,
        services: Vec::new(),
        defined: HashMap::new(),
    };
    for stmt in &top {
        p.top(stmt);
    }
    Imported {
        services: p.services,
        unexpressed: p.listed.into_vec(),
    }
}

/// Top-level blocks and keywords that do not describe services.
const NOT_SERVICES: [&str; 20] = [
    "global_defs",
    "vrrp_script",
    "vrrp_sync_group",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "garp_group",
    "vrrp_track_process",
    "track_file",
    "vrrp_track_file",
    "linkbeat_interfaces",
    "linkbeat_use_polling",
    "bfd_instance",
    "net_namespace",
    "net_namespace_ipvs",
    "namespace_with_ipsets",
    "instance",
    "use_pid_dir",
    "child_wait_time",
    "static_track_group",
];

/// Health checkers of a `real_server`.
const CHECKER_BLOCKS: [&str; 10] = [
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "MISC_CHECK",
    "DNS_CHECK",
    "SMTP_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
    "BFD_CHECK",
];

/// Settings of the checkers (at virtual or real server level).
const CHECKER_SETTINGS: [&str; 11] = [
    "delay_loop",
    "retry",
    "nb_get_retry",
    "delay_before_retry",
    "connect_timeout",
    "warmup",
    "alpha",
    "virtualhost",
    "inhibit_on_failure",
    "notify_up",
    "notify_down",
];

/// Virtual-server settings with no tandem equivalent.
const UNSUPPORTED: [&str; 12] = [
    "sorry_server",
    "sorry_server_inhibit",
    "quorum",
    "hysteresis",
    "quorum_up",
    "quorum_down",
    "omega",
    "ha_suspend",
    "smtp_alert",
    "nat_mask",
    "hashed",
    "ip_family",
];

/// A line to list: its number, the kind of reason and the reason.
type Entry = (usize, Cause, String);

/// What is known of a virtual server and its real servers while its block is read.
struct Draft {
    header: usize,
    scheduler: Option<Scheduler>,
    forward: Option<Forward>,
    protocol: Option<Protocol>,
    flags: Vec<ServiceFlag>,
    ops: Option<usize>,
    /// `persistence_timeout` and `persistence_granularity` lines.
    persistence: Vec<usize>,
    /// Lines listed if the service is imported.
    soft: Vec<Entry>,
    /// Why the service cannot be imported, first found.
    fatal: Option<Entry>,
    reals: Vec<RealDraft>,
}

impl Draft {
    fn fail(&mut self, line: usize, cause: Cause, why: impl Into<String>) {
        if self.fatal.is_none() {
            self.fatal = Some((line, cause, why.into()));
        }
    }
}

/// A `real_server` block as read.
struct RealDraft {
    line: usize,
    address: Result<IpAddr, String>,
    port: Option<u16>,
    weight: u32,
    /// `lb_kind` inside the real server (keepalived 2), with its line.
    forward: Option<(Forward, usize)>,
    soft: Vec<Entry>,
    fatal: Option<Entry>,
}

struct Interpreter<'a> {
    source: &'a Source<'a>,
    listed: Listing,
    services: Vec<ImportedService>,
    /// Each imported service's header line.
    defined: HashMap<(Protocol, IpAddr, u16), usize>,
}

/// `NAT`, `DR` (any case): the forwarding method; `TUN`/`GRE`: why not.
fn method(word: &str) -> Result<Forward, (Cause, String)> {
    match word.to_ascii_uppercase().as_str() {
        "NAT" => Ok(Forward::Nat),
        "DR" => Ok(Forward::Dr),
        "TUN" | "GRE" => Err((Cause::Tunnel, format!("lb_kind {word}: {TUNNEL}"))),
        _ => Err((
            Cause::Malformed,
            format!("lb_kind `{word}` is not NAT, DR or TUN"),
        )),
    }
}

/// The one argument of `s`, or why not.
fn one_arg(s: &Stmt) -> Result<&str, (Cause, String)> {
    match s.args() {
        [a] => Ok(a),
        _ => Err((Cause::Malformed, format!("{} takes one value", s.keyword()))),
    }
}

/// A port 1 to 65535.
fn port(word: &str) -> Result<u16, String> {
    word.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("`{word}` is not a port number (1 to 65535)"))
}

impl Interpreter<'_> {
    fn list(&mut self, line: usize, cause: Cause, why: impl Into<String>) {
        self.listed.add(line, self.source.line(line), cause, why);
    }

    fn top(&mut self, s: &Stmt) {
        if s.block.as_ref().is_some_and(|b| !b.closed) {
            self.list(s.line, Cause::Malformed, UNCLOSED);
        }
        match s.keyword() {
            "virtual_server" => self.virtual_server(s),
            "vrrp_instance" => self.list(s.line, Cause::Vrrp, VRRP),
            "virtual_server_group" => self.list(
                s.line,
                Cause::Group,
                "virtual_server_group: groups have no tandem equivalent: write one virtual_server per address and port",
            ),
            "include" => self.list(
                s.line,
                Cause::Unsupported,
                "include is not followed: import the included file on its own",
            ),
            k if NOT_SERVICES.contains(&k) => {}
            k => self.list(
                s.line,
                Cause::Malformed,
                format!("unknown keyword `{k}`"),
            ),
        }
    }

    fn virtual_server(&mut self, s: &Stmt) {
        let mut d = Draft {
            header: s.line,
            scheduler: None,
            forward: None,
            protocol: None,
            flags: Vec::new(),
            ops: None,
            persistence: Vec::new(),
            soft: Vec::new(),
            fatal: None,
            reals: Vec::new(),
        };
        let address = match s.args() {
            [kind, mark] if kind == "fwmark" => {
                d.fail(
                    s.line,
                    Cause::Fwmark,
                    format!("virtual_server fwmark {mark}: {FWMARK}"),
                );
                None
            }
            [kind, name] if kind == "group" => {
                d.fail(
                    s.line,
                    Cause::Group,
                    format!("virtual_server group {name}: groups have no tandem equivalent: write one virtual_server per address and port"),
                );
                None
            }
            [ip, p] => match (ip.parse::<IpAddr>(), p.parse::<u16>()) {
                (Err(_), _) => {
                    d.fail(
                        s.line,
                        Cause::Malformed,
                        format!("`{ip}` is not an IP address"),
                    );
                    None
                }
                (Ok(_), Ok(0)) => {
                    d.fail(
                        s.line,
                        Cause::Unsupported,
                        "port 0 (every port of a persistent service): a tandem service has one port",
                    );
                    None
                }
                (Ok(ip), Ok(p)) => Some((ip, p)),
                (Ok(_), Err(_)) => {
                    d.fail(
                        s.line,
                        Cause::Malformed,
                        format!("`{p}` is not a port number (1 to 65535)"),
                    );
                    None
                }
            },
            _ => {
                d.fail(
                    s.line,
                    Cause::Malformed,
                    "virtual_server takes an address and a port, fwmark N or group NAME",
                );
                None
            }
        };
        match &s.block {
            None => d.fail(
                s.line,
                Cause::Malformed,
                "virtual_server without a { … } block",
            ),
            Some(b) if !b.closed => d.fail(s.line, Cause::Malformed, UNCLOSED),
            Some(b) if b.too_deep => d.fail(
                s.line,
                Cause::Malformed,
                format!("it holds blocks nested deeper than {MAX_DEPTH}"),
            ),
            Some(_) => {}
        }
        for inner in s.stmts() {
            self.setting(&mut d, inner);
        }
        self.finish(d, address);
    }

    /// One statement inside a `virtual_server` block.
    fn setting(&mut self, d: &mut Draft, s: &Stmt) {
        let line = s.line;
        let kw = s.keyword();
        let value = one_arg(s);
        match kw {
            "real_server" => {
                let real = self.real_server(s);
                d.reals.push(real);
            }
            "lb_algo" | "lvs_sched" => match value.and_then(|v| scheduler(v).map_err(|e| (Cause::Scheduler, e))) {
                Ok(sched) => d.scheduler = Some(sched),
                Err((cause, why)) => d.fail(line, cause, why),
            },
            "lb_kind" | "lvs_method" => match value.and_then(method) {
                Ok(f) => d.forward = Some(f),
                Err((cause, why)) => d.fail(line, cause, why),
            },
            "protocol" => match value.map(str::to_ascii_uppercase).as_deref() {
                Ok("TCP") => d.protocol = Some(Protocol::Tcp),
                Ok("UDP") => d.protocol = Some(Protocol::Udp),
                Ok("SCTP") => d.fail(line, Cause::Protocol, "SCTP: tandem services are udp or tcp"),
                Ok(other) => d.fail(line, Cause::Malformed, format!("protocol `{other}` is not TCP or UDP")),
                Err((cause, why)) => d.fail(line, *cause, why.clone()),
            },
            "persistence_timeout" | "persistence_granularity" => d.persistence.push(line),
            "persistence_engine" => match value {
                Ok("sip") => set_flag(&mut d.flags, ServiceFlag::SipPersist),
                Ok(other) => d.soft.push((
                    line,
                    Cause::Unsupported,
                    format!("persistence engine `{other}` has no tandem equivalent"),
                )),
                Err((cause, why)) => d.soft.push((line, cause, why)),
            },
            "ops" => d.ops = Some(line),
            "sh-port" | "mh-port" => set_flag(&mut d.flags, ServiceFlag::SchedPort),
            "sh-fallback" | "mh-fallback" => set_flag(&mut d.flags, ServiceFlag::SchedFallback),
            "flag-1" | "flag-2" | "flag-3" => d.soft.push((
                line,
                Cause::Unsupported,
                format!("scheduler flag `{kw}` has no tandem equivalent (sh-fallback, sh-port, mh-fallback, mh-port do)"),
            )),
            k if CHECKER_SETTINGS.contains(&k) || CHECKER_BLOCKS.contains(&k) => {
                d.soft.push((line, Cause::Checker, format!("`{k}` belongs to the health checkers: {CHECKERS}")));
            }
            k if UNSUPPORTED.contains(&k) => d.soft.push((
                line,
                Cause::Unsupported,
                format!("`{k}` has no tandem equivalent"),
            )),
            k => d.soft.push((
                line,
                Cause::Malformed,
                format!("unknown keyword `{k}` in a virtual_server"),
            )),
        }
    }

    fn real_server(&self, s: &Stmt) -> RealDraft {
        let mut r = RealDraft {
            line: s.line,
            address: Err(String::new()),
            port: None,
            weight: 1,
            forward: None,
            soft: Vec::new(),
            fatal: None,
        };
        let fail = |r: &mut RealDraft, line: usize, cause: Cause, why: String| {
            if r.fatal.is_none() {
                r.fatal = Some((line, cause, why));
            }
        };
        match s.args() {
            [ip, rest @ ..] if rest.len() <= 1 => {
                r.address = ip
                    .parse()
                    .map_err(|_| format!("`{ip}` is not an IP address"));
                if let Err(why) = &r.address {
                    let why = why.clone();
                    fail(&mut r, s.line, Cause::Malformed, why);
                }
                if let [p] = rest {
                    match port(p) {
                        Ok(p) => r.port = Some(p),
                        Err(why) => fail(&mut r, s.line, Cause::Malformed, why),
                    }
                }
            }
            _ => fail(
                &mut r,
                s.line,
                Cause::Malformed,
                "real_server takes an address and a port".into(),
            ),
        }
        for inner in s.stmts() {
            let line = inner.line;
            match inner.keyword() {
                "weight" => match one_arg(inner).map(|v| (v, v.parse::<u32>())) {
                    Ok((_, Ok(w))) if w <= 65_535 => r.weight = w,
                    Ok((v, _)) => fail(
                        &mut r,
                        line,
                        Cause::Malformed,
                        format!("weight `{v}` is not a number from 0 to 65535"),
                    ),
                    Err((cause, why)) => fail(&mut r, line, cause, why),
                },
                "lb_kind" | "lvs_method" => match one_arg(inner).and_then(method) {
                    Ok(f) => r.forward = Some((f, line)),
                    Err((cause, why)) => fail(&mut r, line, cause, why),
                },
                k if CHECKER_BLOCKS.contains(&k) => {
                    r.soft.push((line, Cause::Checker, CHECKERS.to_string()))
                }
                k if CHECKER_SETTINGS.contains(&k) => r.soft.push((
                    line,
                    Cause::Checker,
                    format!("`{k}` belongs to the health checkers: {CHECKERS}"),
                )),
                "uthreshold" | "lthreshold" => r.soft.push((
                    line,
                    Cause::Unsupported,
                    "connection thresholds (uthreshold, lthreshold) have no tandem equivalent"
                        .into(),
                )),
                "smtp_alert" => r.soft.push((
                    line,
                    Cause::Unsupported,
                    "`smtp_alert` has no tandem equivalent".into(),
                )),
                k => r.soft.push((
                    line,
                    Cause::Malformed,
                    format!("unknown keyword `{k}` in a real_server"),
                )),
            }
        }
        r
    }

    /// Lists what `d` could not express and imports its service when it can be.
    fn finish(&mut self, mut d: Draft, address: Option<(IpAddr, u16)>) {
        let protocol = d.protocol.unwrap_or(Protocol::Tcp);
        if let Some((vip, vport)) = address
            && let Some(first) = self.defined.get(&(protocol, vip, vport))
        {
            let why = format!("the service is already defined at line {first}");
            d.fail(d.header, Cause::Duplicate, why);
        }
        let Some((vip, vport)) = address.filter(|_| d.fatal.is_none()) else {
            let (line, cause, why) = d.fatal.unwrap_or((
                d.header,
                Cause::Malformed,
                "not a virtual service".to_string(),
            ));
            self.list(line, cause, why.clone());
            if line != d.header {
                self.list(
                    d.header,
                    cause,
                    format!("the service is not imported (line {line}: {why})"),
                );
            }
            for r in &d.reals {
                self.list(
                    r.line,
                    Cause::ServiceSkipped,
                    format!("its virtual_server (line {}) is not imported", d.header),
                );
            }
            return;
        };
        let scheduler = d.scheduler.unwrap_or_else(|| {
            d.soft.push((
                d.header,
                Cause::Assumed,
                "no lb_algo: imported with wlc, IPVS's default scheduler: check it".into(),
            ));
            Scheduler::Wlc
        });
        let forward = d.forward.unwrap_or_else(|| {
            d.soft.push((
                d.header,
                Cause::Assumed,
                "no lb_kind: imported as NAT, keepalived's default: check it".into(),
            ));
            Forward::Nat
        });
        if let Some(line) = d.ops {
            match protocol {
                Protocol::Udp => set_flag(&mut d.flags, ServiceFlag::OnePacket),
                Protocol::Tcp => d.soft.push((
                    line,
                    Cause::Unsupported,
                    "one-packet scheduling (ops) is for UDP services only".into(),
                )),
            }
        }
        let sip = d.flags.contains(&ServiceFlag::SipPersist);
        for &line in &d.persistence {
            let why = if sip {
                "persistence: sip_persist is set for persistence_engine sip, and its Call-ID entries idle out after 3600 s".to_string()
            } else {
                format!("persistence: {PERSISTENCE}")
            };
            d.soft.push((line, Cause::Persistence, why));
        }
        for (line, cause, why) in d.soft {
            self.list(line, cause, why);
        }
        let mut service = ImportedService {
            line: d.header,
            text: self.source.line(d.header).to_string(),
            vip,
            port: vport,
            protocol,
            scheduler,
            forward,
            flags: d.flags,
            reals: Vec::new(),
        };
        for r in d.reals {
            match real(&service, &r) {
                Ok((real, soft)) => {
                    for (line, cause, why) in r.soft.into_iter().chain(soft) {
                        self.list(line, cause, why);
                    }
                    service.reals.push(real.with_text(self.source.line(r.line)));
                }
                Err((line, cause, why)) => self.list(line, cause, why),
            }
        }
        self.defined.insert((protocol, vip, vport), d.header);
        self.services.push(service);
    }
}

impl ImportedReal {
    fn with_text(mut self, text: &str) -> ImportedReal {
        self.text = text.to_string();
        self
    }
}

/// The real server of `r` in `service`, and what of it is not expressed
/// beyond its own lines, or why it cannot be imported.
fn real(service: &ImportedService, r: &RealDraft) -> Result<(ImportedReal, Vec<Entry>), Entry> {
    if let Some(fatal) = &r.fatal {
        return Err(fatal.clone());
    }
    let address = r
        .address
        .clone()
        .map_err(|why| (r.line, Cause::Malformed, why))?;
    if address.is_ipv4() != service.vip.is_ipv4() {
        return Err((
            r.line,
            Cause::AddressFamily,
            format!(
                "{address} is not of the VIP's address family: tandem does not forward across families"
            ),
        ));
    }
    if let Some((f, line)) = r.forward
        && f != service.forward
    {
        return Err((
            line,
            Cause::MixedForwarding,
            "this real server's lb_kind differs from its virtual_server's: tandem forwards a whole service one way".into(),
        ));
    }
    let mut soft = Vec::new();
    if service.forward == Forward::Dr
        && let Some(p) = r.port.filter(|p| *p != service.port)
    {
        soft.push((
            r.line,
            Cause::Unsupported,
            format!(
                "direct routing does not change the port: imported without port {p} (the real server receives port {})",
                service.port
            ),
        ));
    }
    let port = real_port(service.forward, r.port, service.port);
    if let Some(twin) = service
        .reals
        .iter()
        .find(|o| o.address == address && o.port == port)
    {
        return Err((
            r.line,
            Cause::Duplicate,
            format!(
                "already a real server of this service at line {}",
                twin.line
            ),
        ));
    }
    Ok((
        ImportedReal {
            line: r.line,
            text: String::new(),
            address,
            port,
            weight: r.weight,
        },
        soft,
    ))
}
#[cfg(test)]
mod tests;
