//! Spans in `cargo xtask bench failover`: the DAHDI ioctl round trip
//! against the card simulator, and the span takeover of two `tandemd` with
//! simulated cards on a shared trunk (E1, 31 channels, through the
//! simulator's failover switch).
//!
//! Span takeover is measured on switchovers (each node in turn), from the
//! new active's takeover decision (its `state … -> active` line) to its
//! `spans started alarm-free` line: `DAHDI_STARTUP` after the old active's
//! `DAHDI_SHUTDOWN` moved the trunk, then `DAHDI_SPANSTAT` until the span
//! is alarm-free. Both stamps are the daemon's own CLOCK_MONOTONIC. The
//! failure trials of the main bench run without cards: a daemon killed
//! with SIGKILL leaves its spans started (as DAHDI's driver does), so the
//! trunk cannot follow until that node's tandemd starts again and shuts
//! them (see the README).
//!
//! The two daemons are [`Director`]s with [`PairOptions`] as the sync bench
//! has them but without sync, each with its own simulated card (neither
//! answers calls itself), asked through `tandemctl` every
//! [`TANDEMCTL_POLL`] while waiting.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};


use super::TANDEMCTL_POLL;
use crate::lab::director::attach_pair_bridge_pass;
use crate::lab::tandemd::{Binaries, Director, PairOptions};
use crate::lab::wait::wait_until;
use crate::{
    Lab, Responder,
    lab::{DIRECTOR_A, DIRECTOR_B},
    spawn_udp_responder,
};

/// The daemon's timeline stamp (CLOCK_MONOTONIC ns) of the last line
/// after `from` that contains `pat`, and the line.
fn stamp_after(log: &str, from: u64, pat: &str) -> Option<(u64, String)> {
    log.lines()
        .filter_map(|l| {
            let (ns, rest) = l.split_once(' ')?;
            Some((ns.parse::<u64>().ok()?, rest.to_string()))
        })
        .rfind(|(ns, rest)| *ns > from && rest.contains(pat))
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Runs the spans measurement; its JSON object and Markdown section.
pub fn run(tandemd: &Path, tandemctl: &Path, switchovers: usize) -> Result<(Value, String)> {
    let dir = std::env::temp_dir().join(format!("tandem-bench-spans-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cards = crate::lab::cards::SharedTrunkCards::mount(&dir, 31)?;
    let roots = &cards.roots;

    // The ioctl round trip, before any daemon opens the card.
    let ioctl = {
        let ctl = tandem_hw::device::Control::open(&roots[0])?;
        ctl.startup(1)?;
        let ch = tandem_hw::device::Channel::open(&roots[0], 1, 1)?;
        tandem_hw::device::measure_get_params(&ch, 500)?;
        let t = tandem_hw::device::measure_get_params(&ch, 10_000)?;
        drop(ch);
        ctl.shutdown(1)?;
        json!({
            "ioctl": "DAHDI_GET_PARAMS",
            "iterations": t.iterations,
            "min_us": t.min.as_secs_f64() * 1e6,
            "p50_us": t.median.as_secs_f64() * 1e6,
            "p99_us": t.p99.as_secs_f64() * 1e6,
            "max_us": t.max.as_secs_f64() * 1e6,
        })
    };

    let lab = Lab::pair(2).context("pair lab")?;
    let _ivrs: Vec<Responder> = lab.ivrs().iter().map(|h| spawn_udp_responder(&h.ns, &h.name, 5060)).collect::<Result<_, _>>()?;
    let _peers = attach_pair_bridge_pass(&lab)?;
    let o = PairOptions {
        flags: Vec::new(),
        ivr_heartbeats: false,
        realtime_priority: 0,
        flow_entries: 131_072,
        sync: false,
        ..PairOptions::default()
    };
    let bins = Binaries { tandemd: tandemd.to_path_buf(), tandemctl: tandemctl.to_path_buf() };
    let node = |name: &'static str, root: &Path| Director::new(&lab, name, &dir, &o, Some((root, false)), &bins);
    let mut nodes = [node(DIRECTOR_A, &roots[0])?, node(DIRECTOR_B, &roots[1])?];
    nodes[0].start()?;
    if !wait_until(Duration::from_secs(15), TANDEMCTL_POLL, || nodes[0].state().as_deref() == Some("active")) {
        bail!("a did not become active:\n{}", nodes[0].log_text());
    }
    nodes[1].start()?;
    if !wait_until(Duration::from_secs(15), TANDEMCTL_POLL, || nodes[1].state().as_deref() == Some("standby")) {
        bail!("b did not stand by:\n{}", nodes[1].log_text());
    }
    if !wait_until(Duration::from_secs(5), TANDEMCTL_POLL, || nodes[0].log_text().contains("spans started alarm-free")) {
        bail!("a's spans did not start:\n{}", nodes[0].log_text());
    }
    let mut decision_to_up = Vec::new();
    let mut start_to_up = Vec::new();
    let mut failed = 0usize;
    let mut active = 0usize;
    for round in 0..switchovers {
        let (from, to) = (active, 1 - active);
        let t0 = tandem_dataplane::monotonic_ns();
        if nodes[from].ask(&["switchover"]).is_none() {
            bail!("round {round}: switchover not answered");
        }
        let up = wait_until(Duration::from_secs(3), TANDEMCTL_POLL, || {
            stamp_after(&nodes[to].log_text(), t0, "spans started alarm-free").is_some()
                && nodes[from].state().as_deref() == Some("standby")
        });
        let log = nodes[to].log_text();
        match (stamp_after(&log, t0, "-> active"), stamp_after(&log, t0, "spans started alarm-free")) {
            (Some((decided, _)), Some((started, line))) if up => {
                decision_to_up.push(started.saturating_sub(decided) as f64 / 1e6);
                // "… in X ms": the card manager's own begin_start → alarm-free.
                if let Some(ms) = line.rsplit(" in ").next().and_then(|t| t.trim_end_matches(" ms").parse::<f64>().ok()) {
                    start_to_up.push(ms);
                }
            }
            _ => {
                failed += 1;
                eprintln!("spans bench: round {round}: no span takeover on {}", if to == 0 { "a" } else { "b" });
            }
        }
        active = to;
        // Let heartbeats settle before the next handover.
        let settle = Instant::now() + Duration::from_millis(100);
        while Instant::now() < settle {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    for n in nodes.iter_mut() {
        n.kill9();
    }
    drop(cards);
    let _ = std::fs::remove_dir_all(&dir);
    let n = decision_to_up.len();
    let (d50, d99, dmax) = (pct(&mut decision_to_up, 0.5), pct(&mut decision_to_up, 0.99), pct(&mut decision_to_up, 1.0));
    let (s50, s99) = (pct(&mut start_to_up, 0.5), pct(&mut start_to_up, 0.99));
    let v = json!({
        "card": "tandem-cardsim: 2 cards, 1 E1 span of 31 channels each, shared trunk through the simulated failover switch",
        "ioctl_round_trip": ioctl,
        "span_takeover": {
            "switchovers": switchovers,
            "measured": n,
            "failed": failed,
            "decision_to_alarm_free_p50_ms": d50,
            "decision_to_alarm_free_p99_ms": d99,
            "decision_to_alarm_free_max_ms": dmax,
            "startup_to_alarm_free_p50_ms": s50,
            "startup_to_alarm_free_p99_ms": s99,
        },
    });
    let md = format!(
        "\n## Spans (simulated cards)\n\n| measure | p50 | p99 | max | n |\n|---|---|---|---|---|\n\
| `DAHDI_GET_PARAMS` round trip to the card simulator (FUSE) | {:.1} µs | {:.1} µs | {:.1} µs | {} |\n\
| span takeover: decision (`-> active`) → span alarm-free, tandemd switchovers | {d50:.2} ms | {d99:.2} ms | {dmax:.2} ms | {n} ({failed} failed) |\n\
| of which `DAHDI_STARTUP` → alarm-free `DAHDI_SPANSTAT` | {s50:.2} ms | {s99:.2} ms | | |\n\n\
Two tandemd with simulated cards on a shared E1 trunk (31 channels); the trunk follows the started span through the simulator's failover switch. Measured on switchovers: a daemon killed with SIGKILL leaves its span started (as DAHDI's driver would), so the trunk moves only when that node's tandemd restarts and shuts it, or the machine dies.\n",
        ioctl["p50_us"].as_f64().unwrap_or(f64::NAN),
        ioctl["p99_us"].as_f64().unwrap_or(f64::NAN),
        ioctl["max_us"].as_f64().unwrap_or(f64::NAN),
        ioctl["iterations"],
    );
    Ok((v, md))
}
