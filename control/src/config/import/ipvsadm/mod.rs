//! `ipvsadm-save -n` (`ipvsadm -Sn`) output, as ipvsadm(8) documents its
//! rules: one command per line, `-A` for a virtual service and `-a` for a
//! real server of one, with the options of the man page, short or long
//! (`--scheduler=wrr` too), optionally after the word `ipvsadm` (a script's
//! lines). Blank lines and `#` comments are skipped; `-C` (clear) is
//! what replacing the service list does anyway.
//!
//! A real server belongs to the service its `-t`/`-u`/`-f` names, which
//! an earlier `-A` line must define (as `ipvsadm -R` requires). Forwarding
//! is per real server in IPVS and per service in tandem: the first real
//! server imported sets its service's, and one that differs is listed.
//! This module reads text only; see [`super`] for the mapping.

use std::{collections::HashMap, net::IpAddr};

use tandem_dataplane::{ServiceFlag, common::Forward, config::Protocol};

use super::{
    Cause, FWMARK, Imported, ImportedReal, ImportedService, Listing, PERSISTENCE, Source, TUNNEL,
    real_port, scheduler, service_name, set_flag,
};

/// What `ipvsadm-save` prints, read into services and the lines it could not express.
pub fn parse(text: &str) -> Imported {
    let source = Source::new(text);
    let mut p = Parser::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        let mut tokens: Vec<&str> = trimmed
            .split_whitespace()
            .take_while(|t| !t.starts_with('#'))
            .collect();
        if tokens.first() == Some(&"ipvsadm") {
            tokens.remove(0);
        }
        if tokens.is_empty() {
            continue;
        }
        let at = At {
            line,
            text: source.line(line),
        };
        match read_line(&tokens) {
            Err(e) => p.listed.add(line, at.text, Cause::Malformed, e),
            Ok(l) => p.line(&at, &l),
        }
    }
    Imported {
        services: p.services,
        unexpressed: p.listed.into_vec(),
    }
}

/// Why a line is listed.
type Why = (Cause, String);

/// A source line: its number and trimmed text.
struct At<'a> {
    line: usize,
    text: &'a str,
}

/// The protocol option of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Proto {
    Tcp,
    Udp,
    Sctp,
}

/// A virtual service as ipvsadm names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Addr(Proto, IpAddr, u16),
    Fwmark(u32),
}

/// What became of a service's `-A` line.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// Index in `services`; the line of the real server that set its forwarding.
    Imported(usize, Option<(Forward, usize)>),
    /// Not imported; its `-A` line.
    Skipped(usize),
}

/// The parse so far.
#[derive(Default)]
struct Parser {
    services: Vec<ImportedService>,
    slots: HashMap<Key, (usize, Slot)>,
    listed: Listing,
}

/// A command of ipvsadm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    AddService,
    AddServer,
    Clear,
    /// Any other (edit, delete, list, …): not imported.
    Other,
}

/// An option of an `-A` or `-a` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    SchedFlags,
    Ops,
    Pe,
    Ipv6,
    Real,
    Gatewaying,
    Masquerading,
    Ipip,
    Weight,
    UThreshold,
    LThreshold,
    Tunnel,
    Numeric,
}

/// What follows an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arity {
    Flag,
    Value,
    /// `-p [timeout]`: the next word when it is a number.
    OptionalNumber,
}

/// ipvsadm's commands: short letter, long name.
const COMMANDS: [(Option<char>, &str, Command); 16] = [
    (Some('A'), "add-service", Command::AddService),
    (Some('a'), "add-server", Command::AddServer),
    (Some('C'), "clear", Command::Clear),
    (Some('E'), "edit-service", Command::Other),
    (Some('D'), "delete-service", Command::Other),
    (Some('R'), "restore", Command::Other),
    (Some('S'), "save", Command::Other),
    (Some('e'), "edit-server", Command::Other),
    (Some('d'), "delete-server", Command::Other),
    (Some('L'), "list", Command::Other),
    (Some('l'), "list", Command::Other),
    (Some('Z'), "zero", Command::Other),
    (None, "set", Command::Other),
    (None, "start-daemon", Command::Other),
    (None, "stop-daemon", Command::Other),
    (Some('h'), "help", Command::Other),
];

/// The options of `-A` and `-a` lines: short letter, long name, meaning, arity.
const OPTIONS: [(Option<char>, &str, Opt, Arity); 25] = [
    (Some('t'), "tcp-service", Opt::Tcp, Arity::Value),
    (Some('u'), "udp-service", Opt::Udp, Arity::Value),
    (None, "sctp-service", Opt::Sctp, Arity::Value),
    (Some('f'), "fwmark-service", Opt::Fwmark, Arity::Value),
    (Some('s'), "scheduler", Opt::Scheduler, Arity::Value),
    (
        Some('p'),
        "persistent",
        Opt::Persistent,
        Arity::OptionalNumber,
    ),
    (Some('M'), "netmask", Opt::Netmask, Arity::Value),
    (Some('b'), "sched-flags", Opt::SchedFlags, Arity::Value),
    (Some('o'), "ops", Opt::Ops, Arity::Flag),
    (Some('O'), "ops", Opt::Ops, Arity::Flag),
    (None, "pe", Opt::Pe, Arity::Value),
    (Some('6'), "ipv6", Opt::Ipv6, Arity::Flag),
    (Some('r'), "real-server", Opt::Real, Arity::Value),
    (Some('g'), "gatewaying", Opt::Gatewaying, Arity::Flag),
    (Some('m'), "masquerading", Opt::Masquerading, Arity::Flag),
    (Some('i'), "ipip", Opt::Ipip, Arity::Flag),
    (Some('w'), "weight", Opt::Weight, Arity::Value),
    (Some('x'), "u-threshold", Opt::UThreshold, Arity::Value),
    (Some('y'), "l-threshold", Opt::LThreshold, Arity::Value),
    (None, "tun-type", Opt::Tunnel, Arity::Value),
    (None, "tun-port", Opt::Tunnel, Arity::Value),
    (None, "tun-nocsum", Opt::Tunnel, Arity::Flag),
    (None, "tun-csum", Opt::Tunnel, Arity::Flag),
    (None, "tun-remcsum", Opt::Tunnel, Arity::Flag),
    (Some('n'), "numeric", Opt::Numeric, Arity::Flag),
];

/// Options that only an `-a` line takes.
const SERVER_ONLY: [Opt; 8] = [
    Opt::Real,
    Opt::Gatewaying,
    Opt::Masquerading,
    Opt::Ipip,
    Opt::Weight,
    Opt::UThreshold,
    Opt::LThreshold,
    Opt::Tunnel,
];

/// Options that only an `-A` line takes.
const SERVICE_ONLY: [Opt; 6] = [
    Opt::Scheduler,
    Opt::Persistent,
    Opt::Netmask,
    Opt::SchedFlags,
    Opt::Ops,
    Opt::Pe,
];

/// One command line, its options in order.
#[derive(Debug)]
struct Line {
    command: Command,
    /// The command as written (`-A`, `--edit-service`).
    command_word: String,
    /// Each option as written, with its value.
    opts: Vec<(Opt, String, Option<String>)>,
}

impl Line {
    fn get(&self, opt: Opt) -> Option<(&str, Option<&str>)> {
        self.opts
            .iter()
            .find(|(o, _, _)| *o == opt)
            .map(|(_, w, v)| (w.as_str(), v.as_deref()))
    }

    fn has(&self, opt: Opt) -> bool {
        self.get(opt).is_some()
    }

    /// The value of an option of arity `Value` (always present once read).
    fn value(&self, opt: Opt) -> Option<&str> {
        self.get(opt).and_then(|(_, v)| v)
    }
}

/// `-s`, `--scheduler`, `--scheduler=wrr`: the name and an inline value.
fn split_option(word: &str) -> Option<(Name<'_>, Option<&str>)> {
    if let Some(long) = word.strip_prefix("--") {
        let (name, value) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (long, None),
        };
        return (!name.is_empty()).then_some((Name::Long(name), value));
    }
    let mut chars = word.strip_prefix('-')?.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some((Name::Short(c), None)),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Name<'a> {
    Short(char),
    Long(&'a str),
}

impl Name<'_> {
    fn is(&self, short: Option<char>, long: &str) -> bool {
        match *self {
            Name::Short(c) => short == Some(c),
            Name::Long(l) => l == long,
        }
    }
}

/// The words of a line as one command and its options.
fn read_line(words: &[&str]) -> Result<Line, String> {
    let mut command: Option<(Command, String)> = None;
    let mut opts: Vec<(Opt, String, Option<String>)> = Vec::new();
    let mut i = 0;
    while let Some(&word) = words.get(i) {
        i += 1;
        let Some((name, inline)) = split_option(word) else {
            return Err(format!("unexpected `{word}` (not an option of ipvsadm)"));
        };
        if let Some((_, _, c)) = COMMANDS.iter().find(|(s, l, _)| name.is(*s, l)) {
            if let Some((_, first)) = &command {
                return Err(format!("two commands on one line ({first} and {word})"));
            }
            if *c == Command::Other {
                // Not imported whatever follows: its arguments are not read.
                return Ok(Line {
                    command: *c,
                    command_word: word.to_string(),
                    opts,
                });
            }
            command = Some((*c, word.to_string()));
            continue;
        }
        let Some((_, _, opt, arity)) = OPTIONS.iter().find(|(s, l, _, _)| name.is(*s, l)) else {
            return Err(format!("unknown option `{word}`"));
        };
        let value = match arity {
            Arity::Flag => {
                if inline.is_some() {
                    return Err(format!("`{word}` takes no value"));
                }
                None
            }
            Arity::Value => match inline {
                Some(v) => Some(v.to_string()),
                None => {
                    let v = words
                        .get(i)
                        .ok_or_else(|| format!("`{word}` needs a value"))?;
                    i += 1;
                    Some(v.to_string())
                }
            },
            Arity::OptionalNumber => match inline {
                Some(v) => Some(v.to_string()),
                None => match words.get(i) {
                    Some(v) if v.parse::<u32>().is_ok() => {
                        i += 1;
                        Some(v.to_string())
                    }
                    _ => None,
                },
            },
        };
        if *opt != Opt::Tunnel && opts.iter().any(|(o, _, _)| o == opt) {
            return Err(format!("`{word}` given twice"));
        }
        opts.push((*opt, word.to_string(), value));
    }
    let (command, command_word) =
        command.ok_or("no command: an ipvsadm-save line starts with -A or -a")?;
    Ok(Line {
        command,
        command_word,
        opts,
    })
}

/// `198.18.0.100:5060`, `[2001:db8::1]:5060`; without the port only when
/// `port_optional` (a real server's).
fn endpoint(s: &str, port_optional: bool) -> Result<(IpAddr, Option<u16>), String> {
    let numeric = "(save with ipvsadm -Sn for numeric addresses and ports)";
    let (host, port) =
        if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{s}` has no closing `]`"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(after.strip_prefix(':').ok_or_else(|| {
                        format!("`{s}`: `{after}` after the address is not :PORT")
                    })?),
                ),
            }
        } else if let Ok(ip) = s.parse::<IpAddr>() {
            return match port_optional {
                true => Ok((ip, None)),
                false => Err(format!("`{s}` has no port (ADDRESS:PORT)")),
            };
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
    let ip: IpAddr = host
        .parse()
        .map_err(|_| format!("`{host}` is not a numeric IP address {numeric}"))?;
    let port = match port {
        None if port_optional => None,
        None => return Err(format!("`{s}` has no port (ADDRESS:PORT)")),
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("`{p}` is not a port number {numeric}"))?,
        ),
    };
    Ok((ip, port))
}

/// The virtual service a line names.
fn service_key(l: &Line) -> Result<Key, String> {
    let specs: Vec<(Opt, &str)> = [Opt::Tcp, Opt::Udp, Opt::Sctp, Opt::Fwmark]
        .into_iter()
        .filter_map(|o| l.value(o).map(|v| (o, v)))
        .collect();
    let [(opt, value)] = specs[..] else {
        return Err(match specs.len() {
            0 => format!("{} names no virtual service (-t, -u or -f)", l.command_word),
            _ => "names two virtual services".to_string(),
        });
    };
    let proto = match opt {
        Opt::Tcp => Proto::Tcp,
        Opt::Udp => Proto::Udp,
        Opt::Sctp => Proto::Sctp,
        _ => {
            return value
                .parse::<u32>()
                .ok()
                .filter(|m| *m > 0)
                .map(Key::Fwmark)
                .ok_or_else(|| format!("firewall mark `{value}` is not a positive integer"));
        }
    };
    let (vip, port) = endpoint(value, false)?;
    Ok(Key::Addr(proto, vip, port.unwrap_or_default()))
}

/// How ipvsadm writes a forwarding method.
fn forward_word(f: Forward) -> &'static str {
    match f {
        Forward::Dr => "-g",
        Forward::Nat => "-m",
    }
}

/// A number option's value, or why not.
fn number(l: &Line, opt: Opt, max: u32) -> Result<Option<u32>, String> {
    match l.get(opt) {
        None => Ok(None),
        Some((word, v)) => {
            let v = v.unwrap_or_default();
            v.parse::<u32>()
                .ok()
                .filter(|n| *n <= max)
                .map(Some)
                .ok_or_else(|| format!("{word} `{v}` is not a number from 0 to {max}"))
        }
    }
}

impl Parser {
    fn line(&mut self, at: &At, l: &Line) {
        match l.command {
            Command::AddService => self.add_service(at, l),
            Command::AddServer => self.add_server(at, l),
            Command::Clear if l.opts.is_empty() => {}
            Command::Clear => {
                self.listed
                    .add(at.line, at.text, Cause::Malformed, "-C takes no options")
            }
            Command::Other => self.listed.add(
                at.line,
                at.text,
                Cause::Unsupported,
                format!(
                    "{} lines are not imported: only -A and -a, what ipvsadm-save writes",
                    l.command_word
                ),
            ),
        }
    }

    fn add_service(&mut self, at: &At, l: &Line) {
        let key = match service_key(l) {
            Ok(k) => k,
            Err(e) => return self.listed.add(at.line, at.text, Cause::Malformed, e),
        };
        if let Some((first, _)) = self.slots.get(&key) {
            let why = format!("the service is already defined at line {first}");
            return self.listed.add(at.line, at.text, Cause::Duplicate, why);
        }
        match self.service(at, l, key) {
            Ok((service, soft)) => {
                for (cause, why) in soft {
                    self.listed.add(at.line, at.text, cause, why);
                }
                self.slots
                    .insert(key, (at.line, Slot::Imported(self.services.len(), None)));
                self.services.push(service);
            }
            Err((cause, why)) => {
                self.listed.add(at.line, at.text, cause, why);
                self.slots.insert(key, (at.line, Slot::Skipped(at.line)));
            }
        }
    }

    /// The service of an `-A` line and what of it is not expressed, or why
    /// it cannot be imported at all.
    fn service(&self, at: &At, l: &Line, key: Key) -> Result<(ImportedService, Vec<Why>), Why> {
        let malformed = |why: String| (Cause::Malformed, why);
        if let Some((word, _)) = SERVER_ONLY.iter().find_map(|o| l.get(*o)) {
            return Err(malformed(format!("`{word}` belongs on an -a line")));
        }
        let Some(sched) = l.value(Opt::Scheduler) else {
            return Err(malformed("no scheduler (-s)".into()));
        };
        let (proto, vip, port) = match key {
            Key::Fwmark(mark) => return Err((Cause::Fwmark, format!("-f {mark}: {FWMARK}"))),
            Key::Addr(Proto::Sctp, ..) => {
                return Err((
                    Cause::Protocol,
                    "SCTP: tandem services are udp or tcp".into(),
                ));
            }
            Key::Addr(_, _, 0) => {
                return Err((
                    Cause::Unsupported,
                    "port 0 (every port of a persistent service): a tandem service has one port"
                        .into(),
                ));
            }
            Key::Addr(Proto::Tcp, vip, port) => (Protocol::Tcp, vip, port),
            Key::Addr(Proto::Udp, vip, port) => (Protocol::Udp, vip, port),
        };
        let scheduler = scheduler(sched).map_err(|why| (Cause::Scheduler, why))?;
        let mut flags = Vec::new();
        let mut soft = Vec::new();
        let sip = match l.value(Opt::Pe) {
            None => false,
            Some("sip") => {
                set_flag(&mut flags, ServiceFlag::SipPersist);
                true
            }
            Some(other) => {
                soft.push((
                    Cause::Unsupported,
                    format!("persistence engine `{other}` has no tandem equivalent"),
                ));
                false
            }
        };
        if let Some((word, timeout)) = l.get(Opt::Persistent) {
            let timeout = timeout.unwrap_or("300");
            soft.push((
                Cause::Persistence,
                if sip {
                    format!("persistence timeout ({word} {timeout}): sip_persist is set for --pe sip, and its Call-ID entries idle out after 3600 s")
                } else {
                    format!("persistence ({word} {timeout}): {PERSISTENCE}")
                },
            ));
        }
        if let Some(mask) = l.value(Opt::Netmask)
            && !matches!(mask, "255.255.255.255" | "32" | "128")
        {
            soft.push((
                Cause::Persistence,
                format!("persistence netmask (-M {mask}): {PERSISTENCE}"),
            ));
        }
        for flag in l.value(Opt::SchedFlags).unwrap_or_default().split(',') {
            match flag.trim() {
                "" => {}
                "sh-fallback" | "mh-fallback" => set_flag(&mut flags, ServiceFlag::SchedFallback),
                "sh-port" | "mh-port" => set_flag(&mut flags, ServiceFlag::SchedPort),
                f @ ("flag-1" | "flag-2" | "flag-3") => soft.push((
                    Cause::Unsupported,
                    format!("scheduler flag `{f}` has no tandem equivalent (sh-fallback, sh-port, mh-fallback, mh-port do)"),
                )),
                f => soft.push((Cause::Malformed, format!("unknown scheduler flag `{f}`"))),
            }
        }
        if l.has(Opt::Ops) {
            match proto {
                Protocol::Udp => set_flag(&mut flags, ServiceFlag::OnePacket),
                Protocol::Tcp => soft.push((
                    Cause::Unsupported,
                    "one-packet scheduling (--ops) is for UDP services only".into(),
                )),
            }
        }
        Ok((
            ImportedService {
                line: at.line,
                text: at.text.to_string(),
                vip,
                port,
                protocol: proto,
                scheduler,
                forward: Forward::Dr,
                flags,
                reals: Vec::new(),
            },
            soft,
        ))
    }

    fn add_server(&mut self, at: &At, l: &Line) {
        match self.server(at, l) {
            Ok((index, real, soft)) => {
                for (cause, why) in soft {
                    self.listed.add(at.line, at.text, cause, why);
                }
                self.services[index].reals.push(real);
            }
            Err((cause, why)) => self.listed.add(at.line, at.text, cause, why),
        }
    }

    /// The real server of an `-a` line (with its service's index) and what
    /// of it is not expressed, or why it cannot be imported.
    fn server(&mut self, at: &At, l: &Line) -> Result<(usize, ImportedReal, Vec<Why>), Why> {
        let malformed = |why: String| (Cause::Malformed, why);
        let key = service_key(l).map_err(malformed)?;
        if let Some((word, _)) = SERVICE_ONLY.iter().find_map(|o| l.get(*o)) {
            return Err(malformed(format!("`{word}` belongs on an -A line")));
        }
        let rip = l
            .value(Opt::Real)
            .ok_or_else(|| malformed("no real server (-r)".into()))?;
        let (address, port) = endpoint(rip, true).map_err(malformed)?;
        let methods: Vec<Opt> = [Opt::Gatewaying, Opt::Masquerading, Opt::Ipip]
            .into_iter()
            .filter(|o| l.has(*o))
            .collect();
        let method = match methods[..] {
            [] => Opt::Gatewaying,
            [one] => one,
            _ => return Err(malformed("two forwarding methods (-g, -m, -i)".into())),
        };
        let weight = number(l, Opt::Weight, 65_535)
            .map_err(malformed)?
            .unwrap_or(1);
        let mut soft = Vec::new();
        for opt in [Opt::UThreshold, Opt::LThreshold] {
            if number(l, opt, u32::MAX).map_err(malformed)?.is_some() {
                soft.push((
                    Cause::Unsupported,
                    "connection thresholds (-x, -y) have no tandem equivalent".to_string(),
                ));
            }
        }
        if l.has(Opt::Tunnel) {
            soft.push((Cause::Tunnel, format!("tunnel options: {TUNNEL}")));
        }
        let Some(&(defined, slot)) = self.slots.get(&key) else {
            return Err(malformed(
                "no -A line before it defines its virtual service".into(),
            ));
        };
        let (index, forward_set) = match slot {
            Slot::Skipped(line) => {
                return Err((
                    Cause::ServiceSkipped,
                    format!("its service (line {line}) is not imported"),
                ));
            }
            Slot::Imported(index, forward_set) => (index, forward_set),
        };
        let forward = match method {
            Opt::Masquerading => Forward::Nat,
            Opt::Ipip => return Err((Cause::Tunnel, format!("-i: {TUNNEL}"))),
            _ => Forward::Dr,
        };
        let service = &self.services[index];
        if address.is_ipv4() != service.vip.is_ipv4() {
            return Err((
                Cause::AddressFamily,
                format!(
                    "{address} is not of the VIP's address family: tandem does not forward {} across families",
                    service_name(service.protocol, service.vip, service.port)
                ),
            ));
        }
        if let Some((first, line)) = forward_set
            && first != forward
        {
            return Err((
                Cause::MixedForwarding,
                format!(
                    "forwarded by {} while its service's first real server (line {line}) is by {}: tandem forwards a whole service one way",
                    forward_word(forward),
                    forward_word(first)
                ),
            ));
        }
        if forward == Forward::Dr
            && let Some(p) = port.filter(|p| *p != 0 && *p != service.port)
        {
            soft.push((
                Cause::Unsupported,
                format!(
                    "direct routing does not change the port: imported without port {p} (the real server receives port {})",
                    service.port
                ),
            ));
        }
        let port = real_port(forward, port, service.port);
        if let Some(twin) = service
            .reals
            .iter()
            .find(|r| r.address == address && r.port == port)
        {
            return Err((
                Cause::Duplicate,
                format!(
                    "already a real server of this service at line {}",
                    twin.line
                ),
            ));
        }
        if forward_set.is_none() {
            self.slots.insert(
                key,
                (defined, Slot::Imported(index, Some((forward, at.line)))),
            );
            self.services[index].forward = forward;
        }
        Ok((
            index,
            ImportedReal {
                line: at.line,
                text: at.text.to_string(),
                address,
                port,
                weight,
            },
            soft,
        ))
    }
}

#[cfg(test)]
mod tests;
