//! The tables `tandemctl` prints for each response: `status`, `services`
//! and `reals` laid out like `ipvsadm -Ln`, `conns` like `ipvsadm -Lnc`,
//! the rates of `services --rate` like `ipvsadm -Ln --rate`, `cards` like
//! `dahdi_tool`'s span list, `sync` and `stats`.
//!
//! Pure formatting of the reply structs: no I/O, no decisions.

use std::fmt::Write as _;

use super::protocol::{
    ConnStatus, RealStatus, ReasonCount, ReloadReply, Response, ServiceStatus, SpanStatus,
    StatusReply, SyncReply, endpoint,
};
use super::rate::{Rate, RatesReply};

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// ipvsadm's name of a forwarding method.
fn forward_name(f: &str) -> &str {
    match f {
        "dr" => "Route",
        "nat" => "Masq",
        other => other,
    }
}

fn duration_text(ms: u64) -> String {
    match ms {
        ms if ms < 10_000 => format!("{ms} ms"),
        ms if ms < 600_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms => format!("{} min", ms / 60_000),
    }
}

/// `tandemctl status`.
pub fn render_status(s: &StatusReply) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "node        {} ({})  priority {}  preempt {}",
        s.node_id,
        s.node_name,
        s.priority,
        on_off(s.preempt)
    );
    let _ = writeln!(
        o,
        "state       {}  epoch {}  for {}",
        s.state,
        s.epoch,
        duration_text(s.state_ms)
    );
    let _ = writeln!(o, "maintenance {}", on_off(s.maintenance));
    if !s.config_fingerprint.is_empty() {
        let peer = match &s.peer_config_fingerprint {
            Some(p) if *p == s.config_fingerprint => "  (the peer's is the same)".to_string(),
            Some(p) => format!("  MISMATCH: the peer's is {p}"),
            None => String::new(),
        };
        let _ = writeln!(o, "services    fingerprint {}{peer}", s.config_fingerprint);
    }
    match &s.peer {
        Some(p) => {
            let _ = writeln!(
                o,
                "peer        {}  {}  epoch {}  priority {}",
                p.node_id, p.state, p.epoch, p.priority
            );
        }
        None => {
            let _ = writeln!(o, "peer        none seen");
        }
    }
    if let Some(w) = &s.witness {
        let _ = writeln!(
            o,
            "witness     {}  {}",
            w.address,
            if w.reachable {
                "reachable"
            } else {
                "unreachable"
            }
        );
    }
    if !s.paths.is_empty() {
        let _ = writeln!(o, "\nPath         Interface        State  Last heard");
        for p in &s.paths {
            let heard = p
                .last_heard_ms
                .map(|ms| format!("{} ago", duration_text(ms)))
                .unwrap_or_else(|| "never".into());
            let _ = writeln!(
                o,
                "{:<12} {:<16} {:<6} {}",
                p.name,
                p.interface,
                if p.up { "up" } else { "down" },
                heard
            );
        }
    }
    if !s.vips.is_empty() {
        let _ = writeln!(o, "\nVIP              Interface        Owned");
        for v in &s.vips {
            let _ = writeln!(
                o,
                "{:<16} {:<16} {}",
                v.address,
                v.interface,
                if v.owned { "yes" } else { "no" }
            );
        }
    }
    o
}

/// `tandemctl services`, laid out like `ipvsadm -Ln`.
pub fn render_services(services: &[ServiceStatus]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Prot LocalAddress:Port                 Scheduler Flags");
    let _ = writeln!(
        o,
        "  -> RemoteAddress:Port                Forward Weight State    Health  Flows"
    );
    for s in services {
        let line = format!(
            "{:<4} {:<33} {:<9} {}",
            s.protocol.to_uppercase(),
            endpoint(s.vip, s.port),
            s.scheduler,
            s.flags.join(",")
        );
        let _ = writeln!(o, "{}", line.trim_end());
        for r in &s.reals {
            let port = if r.port == 0 { s.port } else { r.port };
            let _ = writeln!(
                o,
                "  -> {:<33} {:<7} {:<6} {:<8} {:<7} {}",
                endpoint(r.address, port),
                forward_name(&s.forward),
                r.weight,
                r.state,
                if r.health.is_empty() { "-" } else { &r.health },
                r.flows
            );
        }
    }
    o
}

/// `tandemctl reals`: every real server with its health, load and counters.
pub fn render_reals(reals: &[RealStatus]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<28} {:<24} {:>6} {:<8} {:<7} {:>9} {:>8} {:>12} {:>14}  {}",
        "Service", "Real", "Weight", "State", "Health", "Load", "Flows", "Packets", "Bytes", "MAC"
    );
    for r in reals {
        let load = match (r.channels, r.capacity) {
            (Some(c), Some(cap)) => format!("{c}/{cap}"),
            (Some(c), None) => c.to_string(),
            _ => "-".into(),
        };
        let _ = writeln!(
            o,
            "{:<28} {:<24} {:>6} {:<8} {:<7} {:>9} {:>8} {:>12} {:>14}  {}",
            r.service,
            endpoint(r.address, r.port),
            r.weight,
            r.state,
            if r.health.is_empty() { "-" } else { &r.health },
            load,
            r.flows,
            r.packets,
            r.bytes,
            r.mac.as_deref().unwrap_or("none (no neighbour entry: down)")
        );
    }
    o
}

/// Channels per line in [`render_cards`].
const CHANNELS_PER_LINE: usize = 6;

/// `tandemctl cards`: every span with its alarms and state, like
/// `dahdi_tool`'s span list, grouped by card, then the call state of each
/// channel of the spans this node owns.
pub fn render_cards(spans: &[SpanStatus]) -> String {
    let mut o = String::new();
    let mut card: Option<&str> = None;
    for s in spans {
        if card != Some(s.card.as_str()) {
            if card.is_some() {
                o.push('\n');
            }
            card = Some(&s.card);
            let _ = writeln!(o, "Card {}", s.card);
            let _ = writeln!(
                o,
                "{:<4} {:<16} {:<4} {:<16} {:<8} {:<5} {:<5} {:>8}",
                "Span", "Name", "Type", "Alarms", "State", "Owned", "Fault", "Channels"
            );
        }
        let line = format!(
            "{:<4} {:<16} {:<4} {:<16} {:<8} {:<5} {:<5} {:>8}",
            s.span,
            if s.name.is_empty() { "-" } else { &s.name },
            if s.span_type.is_empty() {
                "-"
            } else {
                &s.span_type
            },
            if s.alarms.is_empty() { "-" } else { &s.alarms },
            s.state,
            if s.owned { "yes" } else { "no" },
            if s.fault { "FAULT" } else { "no" },
            format!("{}/{}", s.configured_channels, s.total_channels),
        );
        let _ = writeln!(o, "{}", line.trim_end());
        if let Some(e) = &s.error {
            let _ = writeln!(o, "     error: {e}");
        }
        for row in s.channels.chunks(CHANNELS_PER_LINE) {
            let cells: Vec<String> = row
                .iter()
                .map(|c| format!("{:>3} {:<9}", c.channel, c.state))
                .collect();
            let _ = writeln!(o, "    {}", cells.join(" ").trim_end());
        }
    }
    o
}

/// `tandemctl stats`: the reasons with a non-zero count, one per line.
pub fn render_stats(reasons: &[ReasonCount]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{:<24} {:>14}", "Reason", "Packets");
    for r in reasons.iter().filter(|r| r.packets > 0) {
        let _ = writeln!(o, "{:<24} {:>14}", r.reason, r.packets);
    }
    o
}

/// `tandemctl sync`.
pub fn render_sync(s: &SyncReply) -> String {
    if !s.enabled {
        return "state sync off ([sync] enabled = false)\n".into();
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "role        {}  {}  peer {}",
        s.role,
        s.state,
        s.peer.as_deref().unwrap_or("none")
    );
    let _ = writeln!(
        o,
        "tables      {} flows  {} calls  {} channels",
        s.flows, s.calls, s.channels
    );
    if s.role == "publisher" {
        let _ = writeln!(
            o,
            "sequence    last {}  acked {}  queued {}{}",
            s.last_seq,
            s.acked,
            s.queue,
            if s.out_of_date {
                "  (standby out of date: snapshot due)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            o,
            "lag         p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} samples)",
            s.lag_p50_us as f64 / 1000.0,
            s.lag_p99_us as f64 / 1000.0,
            s.lag_max_us as f64 / 1000.0,
            s.lag_samples
        );
    } else {
        let _ = writeln!(
            o,
            "sequence    applied up to {}  records {}  into the kernel {}  refused {}",
            s.last_seq, s.records, s.applied, s.kernel_errors
        );
    }
    let _ = writeln!(
        o,
        "counters    {} connections  {} snapshots  {} resumes  {} overflows  {} bad frames  {} B out  {} B in",
        s.connections,
        s.snapshots,
        s.resumes,
        s.overflows,
        s.bad_frames,
        s.bytes_sent,
        s.bytes_received
    );
    o
}

/// `tandemctl reload`: the plan, then what became of it.
pub fn render_reload(r: &ReloadReply) -> String {
    let mut o = String::new();
    for c in &r.changes {
        let _ = writeln!(o, "{c}");
    }
    for c in &r.refused {
        let _ = writeln!(o, "refused: {c}");
    }
    if let Some(e) = &r.error {
        let _ = writeln!(o, "error: {e}");
    }
    let verdict = if r.applied {
        format!(
            "reloaded {}: {} change(s) applied in {} µs (read and checked in {} µs); fingerprint {} -> {}",
            r.source,
            r.changes.len(),
            r.apply_us,
            r.read_us,
            r.fingerprint_before,
            r.fingerprint
        )
    } else if r.dry_run && r.error.is_none() && r.refused.is_empty() {
        format!("dry run of {}: {} change(s) would apply; nothing changed", r.source, r.changes.len())
    } else {
        format!("{}: not reloaded; nothing changed (fingerprint {})", r.source, r.fingerprint)
    };
    let _ = writeln!(o, "{verdict}");
    if let Some(us) = r.standby_held_us {
        let _ = writeln!(o, "the standby runs it ({} ms after the apply)", us / 1000);
    }
    if let Some(n) = &r.standby_note {
        let _ = writeln!(o, "warning: {n}");
    }
    o
}

/// The human-readable form of any response.
pub fn render(response: &Response) -> String {
    match response {
        Response::Status(s) => render_status(s),
        Response::Services { services, .. } => render_services(services),
        Response::Reals { reals } => render_reals(reals),
        Response::Cards { spans } => render_cards(spans),
        Response::Sync(s) => render_sync(s),
        Response::Metrics { text } | Response::Config { text } => text.clone(),
        Response::Stats { reasons } => render_stats(reasons),
        Response::Events { events } => events
            .iter()
            .map(|e| format!("{:>6} {} {}\n", e.seq, e.at_ns, e.event))
            .collect(),
        Response::Reload(r) => render_reload(r),
        Response::Timeouts {
            tcp_s,
            tcp_fin_s,
            udp_s,
            sip_call_s,
        } => format!("Timeout (tcp tcpfin udp): {tcp_s} {tcp_fin_s} {udp_s}\nSIP dialogs: {sip_call_s}\n"),
        Response::Done { message } => format!("{message}\n"),
        Response::Error { message } => format!("error: {message}\n"),
        Response::Conns {
            conns,
            total,
            truncated,
            ..
        } => render_conns(conns, *total, *truncated),
    }
}

/// An expiry as `ipvsadm -Lnc` shows it: minutes and seconds left,
/// rounded up (an entry 0.2 s from its timeout shows 00:01; 00:00 is idle
/// past it).
pub fn expire_text(ms: u64) -> String {
    let s = ms.div_ceil(1000);
    format!("{:02}:{:02}", s / 60, s % 60)
}

/// `tandemctl conns`, laid out like `ipvsadm -Lnc`, with whether each
/// entry is synced with the peer and the SIP dialogs' Call-IDs (the hash
/// when the daemon does not know the text); a last line says how many
/// matching entries were left out.
pub fn render_conns(conns: &[ConnStatus], total: u64, truncated: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<4} {:<6} {:<12} {:<24} {:<24} {:<24} {:<9} Call-ID",
        "Pro", "Expire", "State", "Source", "Virtual", "Destination", "Synced"
    );
    let addr = |a: Option<std::net::SocketAddr>| {
        a.map_or_else(|| "-".to_string(), |a| endpoint(a.ip(), a.port()))
    };
    for c in conns {
        let call = match (&c.call_id, c.call_hash) {
            (Some(id), _) => id.clone(),
            (None, Some(h)) => format!("#{h:016x}"),
            (None, None) => String::new(),
        };
        let line = format!(
            "{:<4} {:<6} {:<12} {:<24} {:<24} {:<24} {:<9} {}",
            c.protocol.to_uppercase(),
            expire_text(c.expires_ms),
            c.state,
            addr(c.client),
            endpoint(c.vip.ip(), c.vip.port()),
            addr(c.real),
            c.synced,
            call
        );
        let _ = writeln!(o, "{}", line.trim_end());
    }
    if truncated {
        let _ = writeln!(
            o,
            "({} of {total} matching entries shown: --limit)",
            conns.len()
        );
    }
    o
}

/// A rate as ipvsadm prints it: a whole number per second; `-` for a
/// direction not counted.
fn per_second(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.0}", v))
}

fn rate_cells(r: &Rate) -> String {
    format!(
        "{:>8} {:>9} {:>9} {:>11} {:>11}",
        per_second(Some(r.cps)),
        per_second(Some(r.in_pps)),
        per_second(r.out_pps),
        per_second(Some(r.in_bps)),
        per_second(r.out_bps)
    )
}

/// `tandemctl services --rate`, laid out like `ipvsadm -Ln --rate`.
pub fn render_rates(r: &RatesReply) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Prot LocalAddress:Port                 {:>8} {:>9} {:>9} {:>11} {:>11}",
        "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
    );
    let _ = writeln!(o, "  -> RemoteAddress:Port");
    for s in &r.services {
        let _ = writeln!(
            o,
            "{:<4} {:<33} {}",
            s.protocol.to_uppercase(),
            endpoint(s.vip, s.port),
            rate_cells(&s.rate)
        );
        for real in &s.reals {
            let port = if real.port == 0 { s.port } else { real.port };
            let _ = writeln!(
                o,
                "  -> {:<33} {}",
                endpoint(real.address, port),
                rate_cells(&real.rate)
            );
        }
    }
    let _ = writeln!(
        o,
        "(over {:.3} s of tandemd's clock; Out: not counted per service)",
        r.interval_ns as f64 / 1e9
    );
    o
}
