//! `cargo xtask bench sync`: state sync between two `tandemd` in the pair
//! lab (two directors, heartbeat link, service bridge, four IVRs, rr).
//!
//! Phases, on one pair:
//! 1. **Lag**: 10,000 new UDP flows at 10,000 per second through the
//!    active; the active's sync lag samples (each change from when it was
//!    recorded to when the standby's ack covered it: an upper bound of the
//!    time until the standby's kernel table held it, on one clock) and the
//!    standby's table at the end.
//! 2. **Throughput**: a burst of new flows as fast as the client can open
//!    them; flows per second from the first datagram until the standby
//!    acknowledged the last, next to the client's own rate (when the two
//!    are close, the client is the limit, not sync); bytes on the wire per
//!    flow (the active's sync bytes sent ÷ changes recorded).
//! 3. **Failover and failback**: 1,000 UDP flows (rr over four IVRs, so a
//!    fresh scheduling would move about three in four); which IVR answers
//!    each; kill -9 of the active; again after the takeover; the old
//!    active restarted (it gets the snapshot) and a switchover back;
//!    again. `flows_moved` counts flows answered by another IVR than
//!    before (must be 0).
//!
//! The pair is [`Pair`]'s, with sync on, no flags, no IVR heartbeats,
//! 10 ms × 3 heartbeats at normal scheduling and room for 131,072 flows.
//! The daemons are asked with `tandemctl --json` (status, sync), the same
//! tool an operator uses, every [`TANDEMCTL_POLL`] while waiting. Every
//! wait is bounded; processes are started and stopped by PID only; the lab
//! goes with its `Drop`.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::TANDEMCTL_POLL;
use crate::lab::tandemd::{Binaries, Director, Pair, PairOptions};
use crate::lab::wait::wait_until;
use crate::{Lab, Responder, lab::CLIENT, spawn_udp_responder, udp_flows};

/// What to run; from the environment in [`Options::from_env`].
pub struct Options {
    pub tandemd: PathBuf,
    pub tandemctl: PathBuf,
    /// Flows of the failover phase.
    pub flows: usize,
    /// Flows and rate of the lag phase.
    pub lag_flows: usize,
    pub lag_rate: u32,
    /// Flows of the throughput burst.
    pub burst_flows: usize,
}

impl Options {
    /// `TANDEMD` / `TANDEMCTL` (default: next to this executable).
    pub fn from_env() -> Result<Options> {
        let here = std::env::current_exe().context("locating this executable")?;
        let dir = here.parent().context("executable without a directory")?.to_path_buf();
        let bin = |var: &str, name: &str| std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| dir.join(name));
        Ok(Options {
            tandemd: bin("TANDEMD", "tandemd"),
            tandemctl: bin("TANDEMCTL", "tandemctl"),
            flows: 1000,
            lag_flows: 10_000,
            lag_rate: 10_000,
            burst_flows: 30_000,
        })
    }
}

/// Which IVR answered each flow (None: no answer).
fn who_answers(lab: &Lab, ports: &[u16]) -> Result<Vec<Option<String>>> {
    let client = lab.ns(CLIENT)?;
    let dst = SocketAddr::new(IpAddr::V4(lab.vip()), 5060);
    let name = |r: Vec<u8>| String::from_utf8_lossy(&r).split_whitespace().next().map(str::to_string);
    let mut who: Vec<Option<String>> = udp_flows(client, ports, dst, b"OPTIONS", 5000, Duration::from_secs(2))?
        .into_iter()
        .map(|r| r.and_then(name))
        .collect();
    // A datagram lost on a loaded machine: ask again on the same 5-tuple.
    for (i, w) in who.iter_mut().enumerate() {
        for _ in 0..3 {
            if w.is_some() {
                break;
            }
            *w = crate::udp_request(client, ports[i], dst, b"OPTIONS", Duration::from_millis(300)).ok().and_then(name);
        }
    }
    Ok(who)
}

/// [`who_answers`] with the flows opened in the reverse order: a fresh
/// rr scheduling of the same flows in the same order would repeat the
/// same assignment and hide a flow table that was not synced.
fn who_answers_reversed(lab: &Lab, ports: &[u16]) -> Result<Vec<Option<String>>> {
    let rev: Vec<u16> = ports.iter().rev().copied().collect();
    let mut w = who_answers(lab, &rev)?;
    w.reverse();
    Ok(w)
}

/// Number `k` of a `tandemctl --json` answer (0 if absent).
fn num(v: &Option<Value>, k: &str) -> u64 {
    v.as_ref().and_then(|v| v.get(k)).and_then(Value::as_u64).unwrap_or(0)
}

/// Text `k` of a `tandemctl --json` answer ("" if absent).
fn text(v: &Option<Value>, k: &str) -> String {
    v.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str).unwrap_or("").to_string()
}

fn moved(before: &[Option<String>], after: &[Option<String>]) -> usize {
    before.iter().zip(after).filter(|(b, a)| b != a).count()
}

/// Runs the bench; writes `sync.json` and `sync.md` under `out`; returns the Markdown.
pub fn run(out: &Path, opts: Options) -> Result<String> {
    crate::lab::privileged::ensure_root("tandem-bench sync", "network namespaces, XDP")?;
    for (what, p) in [("tandemd", &opts.tandemd), ("tandemctl", &opts.tandemctl)] {
        if !p.is_file() {
            bail!("{}: no {what} there; build it into the same target directory (`cargo build --release -p tandem-control`) or set {}", p.display(), what.to_uppercase());
        }
    }
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("tandem-bench-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let o = PairOptions {
        flags: Vec::new(),
        ivr_heartbeats: false,
        realtime_priority: 0,
        flow_entries: 131_072,
        ..PairOptions::default()
    };
    let bins = Binaries { tandemd: opts.tandemd.clone(), tandemctl: opts.tandemctl.clone() };
    // a active, then b standby and in sync.
    let mut pair = Pair::start(4, &o, &dir, &bins, None)?;
    let _ivrs: Vec<Responder> = pair.lab.ivrs().iter().map(|h| spawn_udp_responder(&h.ns, &h.name, 5060)).collect::<Result<_, _>>()?;
    let lab = &pair.lab;
    let (a, b) = (&mut pair.a, &mut pair.b);
    let converged = |a: &Director, b: &Director, flows: u64| {
        let (sa, sb) = (a.sync(), b.sync());
        num(&sa, "acked") == num(&sa, "last_seq") && num(&sb, "flows") >= flows
    };

    // 1. Lag at 10,000 new flows per second.
    eprintln!("sync bench: {} flows at {}/s through a", opts.lag_flows, opts.lag_rate);
    let client = lab.ns(CLIENT)?.to_string();
    let dst = SocketAddr::new(IpAddr::V4(lab.vip()), 5060);
    let lag_ports: Vec<u16> = (20_000..20_000 + opts.lag_flows as u16).collect();
    let t = Instant::now();
    let replies = udp_flows(&client, &lag_ports, dst, b"OPTIONS", opts.lag_rate, Duration::from_secs(2))?;
    let lag_send_s = t.elapsed().as_secs_f64();
    let answered = replies.iter().filter(|r| r.is_some()).count();
    if !wait_until(Duration::from_secs(10), TANDEMCTL_POLL, || converged(a, b, opts.lag_flows as u64)) {
        bail!("b did not catch up: a {:?} b {:?}", a.sync(), b.sync());
    }
    let sa = a.sync();
    let sb = b.sync();
    let lag = json!({
        "flows": opts.lag_flows,
        "rate_per_s": opts.lag_rate,
        "answered": answered,
        "send_s": lag_send_s,
        "standby_flows": num(&sb, "flows"),
        "standby_refused": num(&sb, "kernel_errors"),
        "lag_samples": num(&sa, "lag_samples"),
        "lag_p50_ms": num(&sa, "lag_p50_us") as f64 / 1000.0,
        "lag_p99_ms": num(&sa, "lag_p99_us") as f64 / 1000.0,
        "lag_max_ms": num(&sa, "lag_max_us") as f64 / 1000.0,
    });
    eprintln!("sync bench: lag {lag}");

    // 2. Throughput: a burst as fast as the client opens flows.
    let before = a.sync();
    let burst_ports: Vec<u16> = (33_000..33_000 + opts.burst_flows as u16).collect();
    let total = (opts.lag_flows + opts.burst_flows) as u64;
    let t = Instant::now();
    let replies = udp_flows(&client, &burst_ports, dst, b"OPTIONS", 0, Duration::ZERO)?;
    let client_s = t.elapsed().as_secs_f64();
    let _ = replies;
    if !wait_until(Duration::from_secs(20), TANDEMCTL_POLL, || converged(a, b, total)) {
        bail!("b did not catch up with the burst: a {:?} b {:?}", a.sync(), b.sync());
    }
    let synced_s = t.elapsed().as_secs_f64();
    let after = a.sync();
    let records = num(&after, "records") - num(&before, "records");
    let bytes = num(&after, "bytes_sent") - num(&before, "bytes_sent");
    let throughput = json!({
        "flows": opts.burst_flows,
        "records": records,
        "client_flows_per_s": opts.burst_flows as f64 / client_s,
        "synced_flows_per_s": opts.burst_flows as f64 / synced_s,
        "bytes_per_flow": if records > 0 { bytes as f64 / records as f64 } else { 0.0 },
        "standby_flows": num(&b.sync(), "flows"),
    });
    eprintln!("sync bench: throughput {throughput}");

    // 3. Failover and failback: no flow may move.
    let ports: Vec<u16> = (31_000..31_000 + opts.flows as u16).collect();
    let first = who_answers(lab, &ports)?;
    let unanswered = first.iter().filter(|w| w.is_none()).count();
    if unanswered > 0 {
        bail!("{unanswered} of {} flows unanswered through a", ports.len());
    }
    let mut per_ivr = serde_json::Map::new();
    for ivr in lab.ivrs() {
        per_ivr.insert(ivr.name.clone(), json!(first.iter().filter(|w| w.as_deref() == Some(ivr.name.as_str())).count()));
    }
    let total = total + opts.flows as u64;
    if !wait_until(Duration::from_secs(10), TANDEMCTL_POLL, || converged(a, b, total)) {
        bail!("b did not catch up: a {:?} b {:?}", a.sync(), b.sync());
    }
    a.kill9();
    let t = Instant::now();
    if !wait_until(Duration::from_secs(5), TANDEMCTL_POLL, || b.state().as_deref() == Some("active")) {
        bail!("b did not take over:\n{}", b.log_text());
    }
    let takeover_seen_ms = t.elapsed().as_secs_f64() * 1000.0;
    let after_failover = who_answers_reversed(lab, &ports)?;
    let moved_failover = moved(&first, &after_failover);
    a.start()?;
    if !wait_until(Duration::from_secs(15), TANDEMCTL_POLL, || {
        a.state().as_deref() == Some("standby") && text(&a.sync(), "state") == "in sync" && num(&a.sync(), "flows") >= total
    }) {
        bail!("the restarted a did not get the snapshot: {:?}\n{}", a.sync(), a.log_text());
    }
    let snapshot = a.sync();
    if b.ask(&["switchover"]).is_none() {
        bail!("switchover on b not answered");
    }
    if !wait_until(Duration::from_secs(5), TANDEMCTL_POLL, || a.state().as_deref() == Some("active") && b.state().as_deref() == Some("standby")) {
        bail!("the switchover back to a did not complete:\na: {}\nb: {}", a.log_text(), b.log_text());
    }
    let after_failback = who_answers_reversed(lab, &ports)?;
    let moved_failback = moved(&first, &after_failback);
    let failover = json!({
        "flows": opts.flows,
        "scheduler": "rr",
        "ivrs": lab.ivrs().len(),
        "per_ivr": per_ivr,
        "flows_moved_failover": moved_failover,
        "flows_moved_failback": moved_failback,
        "unanswered_after_failover": after_failover.iter().filter(|w| w.is_none()).count(),
        "unanswered_after_failback": after_failback.iter().filter(|w| w.is_none()).count(),
        "restarted_node_snapshot_records": num(&snapshot, "records"),
        "restarted_node_flows": num(&snapshot, "flows"),
        "kill9_to_active_seen_ms": takeover_seen_ms,
    });
    a.kill9();
    b.kill9();
    let _ = std::fs::remove_dir_all(&dir);

    let report = json!({
        "bench": "sync",
        "elapsed_s": started.elapsed().as_secs_f64(),
        "flows_moved": moved_failover + moved_failback,
        "lag_p50_ms": lag["lag_p50_ms"],
        "lag_p99_ms": lag["lag_p99_ms"],
        "bytes_per_flow": throughput["bytes_per_flow"],
        "synced_flows_per_s": throughput["synced_flows_per_s"],
        "lag": lag,
        "throughput": throughput,
        "failover": failover,
        "targets": {
            "flows_moved": {"goal": 0, "pass": moved_failover + moved_failback == 0},
            "lag_p99_ms": {"goal": 50.0, "pass": lag["lag_p99_ms"].as_f64().unwrap_or(f64::MAX) <= 50.0},
        },
    });
    let md = markdown(&report);
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("sync.json"), serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(out.join("sync.md"), &md)?;
    Ok(md)
}

fn markdown(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let (l, t, fo) = (&r["lag"], &r["throughput"], &r["failover"]);
    let mut s = String::new();
    s.push_str("# State sync: two tandemd in the pair lab\n\n");
    s.push_str("| measure | value |\n|---|---|\n");
    s.push_str(&format!(
        "| sync lag at {} new flows/s ({} flows; record → standby's ack, on the active's clock) | p50 {:.2} ms / p99 {:.2} ms / max {:.2} ms ({} samples) |\n",
        l["rate_per_s"], l["flows"], f(&l["lag_p50_ms"]), f(&l["lag_p99_ms"]), f(&l["lag_max_ms"]), l["lag_samples"]
    ));
    s.push_str(&format!("| standby's table after the lag phase | {} flows ({} refused) |\n", l["standby_flows"], l["standby_refused"]));
    s.push_str(&format!(
        "| burst of {} new flows: synced (first datagram → standby's last ack) | {:.0} flows/s (the client opened them at {:.0} flows/s) |\n",
        t["flows"], f(&t["synced_flows_per_s"]), f(&t["client_flows_per_s"])
    ));
    s.push_str(&format!("| bytes on the wire per flow | {:.1} B |\n", f(&t["bytes_per_flow"])));
    s.push_str(&format!(
        "| flows moved, {} rr flows over {} IVRs: kill -9 of the active / switchover back to the restarted node | {} / {} (`flows_moved` = {}) |\n",
        fo["flows"], fo["ivrs"], fo["flows_moved_failover"], fo["flows_moved_failback"], r["flows_moved"]
    ));
    s.push_str(&format!("| restarted node's snapshot | {} records, {} flows |\n", fo["restarted_node_snapshot_records"], fo["restarted_node_flows"]));
    s.push_str(&format!("\nPer IVR before the failover: {}.\n", fo["per_ivr"]));
    s.push_str(&format!(
        "\nTargets: flows moved 0: {}; lag p99 ≤ 50 ms: {}.\n",
        if r["targets"]["flows_moved"]["pass"].as_bool() == Some(true) { "PASS" } else { "FAIL" },
        if r["targets"]["lag_p99_ms"]["pass"].as_bool() == Some(true) { "PASS" } else { "FAIL" }
    ));
    s
}
