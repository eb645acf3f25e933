//! `cargo xtask bench reload`: live changes on a pair under SIP load
//! (issue 13). Two `tandemd` in the pair lab (a active, b standby, state
//! sync on), four SIPp IVRs with heartbeats, and a SIPp caller placing
//! calls through the VIP for the whole measurement (50 calls/s of 10 s
//! calls on the pair's first service, mh + `sip_persist`).
//!
//! 1. **Edits** (`--edits N`, default 100): each a weight edit of ivr1 in
//!    the first service, the weight new each time, made as `tandemctl
//!    real edit -u … -r … -w W` makes it, through the same library calls
//!    (`config::edit::apply`, `edit::write_atomically`, then
//!    `admin::request(Reload)` on a's socket) rather than by running
//!    `tandemctl`: a process spawn per sample would add its own
//!    milliseconds of noise to what is measured. Timed from the start of
//!    the edit to a's `ReloadReply` (a writes its kernel maps before it
//!    answers; a's `reals` are checked once after it) and to b's `reals`
//!    showing the weight (polled every 0.5 ms, at most 3 s: a timeout is
//!    a failed trial). The daemon's own `read_us` and `apply_us` come with
//!    the reply; b's apply time from its `Reloaded` event.
//! 2. **The design maximum** (`--big-rounds N`, default 3): a's file
//!    grown to 64 services × 32 real servers around the first service
//!    ([`big`]). On the same pair, N reloads from the pair's file to it
//!    (`load`; each from the pair's file again: a role change hands a
//!    back the pair's services from b). Then on a second pair whose two
//!    files are at the design maximum from the start, N rounds of one
//!    weight in the first service (`one_weight`, mh: its Maglev table is
//!    rebuilt; must write only that service, so one change), one weight
//!    in service 1 (`one_weight_wlc`, no scheduler table) and the same
//!    file again (`nothing`), then back to the pair's file once (`back`).
//!    The standby's hold is polled on its `status.config_fingerprint`
//!    (a `reals` answer of 2,048 rows is built in one turn of the loop it
//!    measures: it is timed once, on b, in the set-up), and both nodes'
//!    fingerprints are checked after. Around each: both daemons'
//!    `late_turns`, their `LoopLate` and `SlowTurn` events, and a's sync
//!    bytes. A role change is undone before the next trial by a
//!    switchover on b once a's hold-down is over (counted, with the time
//!    it took), and whether it undid the change is recorded.
//!
//! Each stage ([`stage`]) builds its own pair and starts its IVRs before
//! its daemons; the trials are in [`trial`], the report in [`report`].
//! 3. Throughout: both daemons' states polled every 10 ms and their state
//!    change events (any change is spontaneous here and counted in
//!    `role_changes`); the SIPp outcome (calls attempted, failed, by the
//!    phase they started in).
//!
//! Writes `reload.json` and `reload.md`. There is no baseline ratio: this
//! kernel has no IPVS, so keepalived cannot apply a weight to anything
//! here (the report says so; see [`baseline_note`]). Every wait is
//! bounded; processes are started and stopped by PID; the lab goes with
//! its `Drop`.

mod big;
mod phases;
mod report;
mod stage;
mod trial;

pub use big::{REALS_PER_SERVICE, SERVICES, big_config, with_weight};
pub use report::Summary;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use tandem_control::config::{Config, diff::ServiceId};
use tandem_control::events::{Event, Stamped};

use crate::actors::sipp;
use crate::lab::tandemd::{Binaries, PairOptions};
use stage::{LOAD_MAX, Stage, StageEnd, StageKind};
use trial::{BigKind, BigTrial, EditTrial, big_trial, edit_trial};
use phases::*;
pub(crate) use phases::machine;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub bins: Binaries,
    /// Weight edits of the first phase.
    pub edits: usize,
    /// Rounds of the design-maximum phase (each: load, one weight, nothing, back).
    pub big_rounds: usize,
    /// The SIPp load: calls per second and each call's length.
    pub rate: u32,
    pub call_ms: u64,
}

impl Options {
    /// `TANDEMD` / `TANDEMCTL` (default: next to this executable), the
    /// counts given.
    pub fn new(edits: usize, big_rounds: usize) -> Result<Options> {
        Ok(Options {
            bins: Binaries::from_env()?,
            edits,
            big_rounds,
            rate: 50,
            call_ms: 10_000,
        })
    }
}

/// Why there is no ratio to keepalived in this lab (None: there could be one).
pub fn baseline_note() -> Option<String> {
    if Path::new("/proc/net/ip_vs").exists() {
        return None;
    }
    Some(
        "No baseline ratio. keepalived reloads on SIGHUP by re-reading its file and applying the difference to IPVS, and this kernel has no IPVS (`/proc/net/ip_vs` is absent; `ipvsadm -Ln` says \"Can't initialize ipvs: Protocol not available\"; no modules can be loaded): keepalived's checker has nothing to apply a weight to, so a keepalived reload here would time only its parsing, which is not comparable. Measured: nothing; no ratio is given."
            .into(),
    )
}

/// Runs the bench; writes `reload.json` and `reload.md` under `out`; returns the Markdown.
pub fn run(out: &Path, opts: Options) -> Result<String> {
    crate::lab::privileged::ensure_root("tandem-bench reload", "network namespaces, XDP")?;
    let version = sipp::version()?;
    let started = Instant::now();
    let machine = machine();
    let o = PairOptions {
        scheduler: "mh".into(),
        ..PairOptions::default()
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = Rng(seed);
    let mut restores: Vec<f64> = Vec::new();
    let mut aborted: Option<String> = None;

    // Stage 1, the pair's file: the edits, then the reloads to the design
    // maximum, each followed by a reload back to the pair's file (so each
    // load starts from it).
    eprintln!("reload bench: stage 1 ({})", StageKind::Small.name());
    let st = Stage::start(StageKind::Small, &opts, &o)?;
    let (small_lines, big_lines, first) = (st.small.len(), st.big.len(), st.first);
    let mut trials = run_edits(&st, opts.edits, &mut rng, &mut restores, &mut aborted);
    let mut bigs = Vec::new();
    if aborted.is_none() {
        let now = std::fs::read_to_string(&st.path)
            .with_context(|| format!("reading {}", st.path.display()))?;
        let big = big_config(&now).map_err(anyhow::Error::msg)?;
        let steps: Vec<_> = (0..opts.big_rounds)
            .flat_map(|r| [(r, BigKind::Load, Some(big.clone())), (r, BigKind::Back, Some(now.clone()))])
            .collect();
        bigs.extend(run_bigs(&st, &steps, &mut restores, &mut aborted));
    }
    let mut ends = vec![st.finish()?];
    let stage1_big = bigs.len();

    // Stage 2, both files at the design maximum from the start.
    if aborted.is_none() && opts.big_rounds > 0 {
        eprintln!("reload bench: stage 2 ({})", StageKind::Big.name());
        match Stage::start(StageKind::Big, &opts, &o) {
            Ok(st) => run_big_stage(st, &opts, &mut bigs, &mut ends, &mut restores, &mut aborted)?,
            Err(e) => {
                eprintln!("reload bench: stage 2 did not start: {e:#}");
                // The first lines: the rest is a daemon's log.
                let short: String = format!("{e:#}")
                    .lines()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" / ");
                aborted = Some(format!(
                    "stage 2 ({}) did not start: {short}",
                    StageKind::Big.name()
                ));
            }
        }
    }
    // The daemons' accounts, per trial.
    let stage_of_big = |i: usize| if i < stage1_big { 0 } else { 1 };
    for t in trials.iter_mut() {
        if let Some(r) = &t.reply {
            t.standby_apply_us = standby_apply(&ends[0].ev_b, t.start_ns, t.end_ns, &r.fingerprint);
        }
    }
    let mut big_gaps = Vec::new();
    for (i, t) in bigs.iter_mut().enumerate() {
        let e = &ends[stage_of_big(i).min(ends.len() - 1)];
        if let Some(r) = &t.reply {
            t.standby_apply_us = standby_apply(&e.ev_b, t.start_ns, t.end_ns, &r.fingerprint);
        }
        big_gaps.push([
            loop_gap_max(&e.ev_a, t.start_ns, t.end_ns),
            loop_gap_max(&e.ev_b, t.start_ns, t.end_ns),
        ]);
    }

    // The report.
    let deadline_ms = o.heartbeat_interval_ms * o.multiplier;
    // `heartbeat.dead_man_ms` absent: max(20, 4 × interval).
    let dead_man_ms = (4 * o.heartbeat_interval_ms).max(20);
    let mut r = Map::new();
    r.insert("bench".into(), json!("reload"));
    let mut machine = machine;
    machine["other_labs_at_end"] = other_labs();
    r.insert("machine".into(), machine);
    r.insert("sipp".into(), json!(version));
    r.insert(
        "elapsed_s".into(),
        json!((started.elapsed().as_secs_f64() * 10.0).round() / 10.0),
    );
    r.insert("seed".into(), json!(seed));
    r.insert(
        "lab".into(),
        json!({
            "ivrs": 4,
            "scheduler": o.scheduler,
            "service": format!("udp {}:{} {} sip_persist", first.vip, first.port, o.scheduler),
            "heartbeat": format!("{} ms × {}", o.heartbeat_interval_ms, o.multiplier),
            "heartbeat_deadline_ms": deadline_ms,
            "dead_man_ms": dead_man_ms,
            "realtime_priority": o.realtime_priority,
            "call_rate_cps": opts.rate,
            "call_ms": opts.call_ms,
            "small_config_bytes": small_lines,
            "big_config_bytes": big_lines,
            "big_services": SERVICES,
            "big_reals_per_service": REALS_PER_SERVICE,
            "stages": ends.iter().map(|e| e.kind.name()).collect::<Vec<_>>(),
        }),
    );
    r.insert(
        "method".into(),
        json!({
            "edits": "tandem_control::config::edit::apply + write_atomically + admin::request(Reload) on a's socket (the library tandemctl runs, without a process per sample)",
            "reply_us": "edit start -> a's ReloadReply (a writes its kernel maps before answering; a's reals checked once after)",
            "standby_us_edits": "edit start -> b's Request::Reals shows the weight, polled every 0.5 ms, at most 3 s",
            "standby_us_big": "reload start -> b's status.config_fingerprint equals a's new one, polled every 0.5 ms, at most 20 s; b's reals checked once after",
            "stages": "1: the pair's file (edits; then reloads to 64 x 32, each from the pair's file); 2: both files at 64 x 32 from the start (one weight in the mh service, one in a wlc service, the same file; then back to the pair's file)",
            "percentiles": "nearest rank",
        }),
    );

    // Edits.
    let mut edit_failures: BTreeMap<String, u64> = BTreeMap::new();
    for t in &trials {
        if let Some(f) = &t.failure {
            let reason = f.split(':').next().unwrap_or(f).to_string();
            *edit_failures.entry(reason).or_default() += 1;
        }
    }
    let edit_failed = trials.iter().filter(|t| t.failure.is_some()).count();
    let big_failed = bigs.iter().filter(|t| t.failure.is_some()).count();
    r.insert("edits".into(), json!(trials.len()));
    r.insert("edit_failed_trials".into(), json!(edit_failed));
    r.insert("edit_failures".into(), json!(edit_failures));
    r.insert("big_rounds".into(), json!(opts.big_rounds));
    r.insert("big_failed_trials".into(), json!(big_failed));
    r.insert("failed_trials".into(), json!(edit_failed + big_failed));
    let ok: Vec<&EditTrial> = trials.iter().filter(|t| t.failure.is_none()).collect();
    let col = |f: &dyn Fn(&EditTrial) -> Option<u64>| {
        ok.iter().filter_map(|t| f(t)).collect::<Vec<u64>>()
    };
    Summary::insert(Summary::of(&col(&|t| t.reply_us)), "reply_us", &mut r);
    Summary::insert(Summary::of(&col(&|t| Some(t.edit_us))), "edit_us", &mut r);
    Summary::insert(
        Summary::of(&col(&|t| t.reply.as_ref().map(|r| r.read_us))),
        "read_us",
        &mut r,
    );
    Summary::insert(
        Summary::of(&col(&|t| t.reply.as_ref().map(|r| r.apply_us))),
        "apply_us",
        &mut r,
    );
    Summary::insert(Summary::of(&col(&|t| t.standby_us)), "standby_us", &mut r);
    Summary::insert(
        Summary::of(&col(&|t| t.standby_apply_us)),
        "standby_apply_us",
        &mut r,
    );

    // The design maximum, per kind. Times are of the reloads that were
    // answered (a role change afterwards does not unmake a's apply time);
    // `failed_trials` counts every trial with a failure.
    let mut by_kind = Map::new();
    for kind in BigKind::ALL {
        let of: Vec<(usize, &BigTrial)> = bigs
            .iter()
            .enumerate()
            .filter(|(_, t)| t.kind == kind)
            .collect();
        let col = |f: &dyn Fn(&BigTrial) -> Option<u64>| {
            of.iter().filter_map(|(_, t)| f(t)).collect::<Vec<u64>>()
        };
        let mut k = Map::new();
        k.insert("trials".into(), json!(of.len()));
        k.insert(
            "failed_trials".into(),
            json!(of.iter().filter(|(_, t)| t.failure.is_some()).count()),
        );
        let changes: Vec<usize> = of
            .iter()
            .filter_map(|(_, t)| t.reply.as_ref().map(|r| r.changes.len()))
            .collect();
        k.insert("changes".into(), json!(changes.iter().max().copied()));
        k.insert("changes_per_trial".into(), json!(changes));
        Summary::insert(
            Summary::of(&col(&|t| t.reply.as_ref().map(|r| r.read_us))),
            "read_us",
            &mut k,
        );
        Summary::insert(
            Summary::of(&col(&|t| t.reply.as_ref().map(|r| r.apply_us))),
            "apply_us",
            &mut k,
        );
        Summary::insert(Summary::of(&col(&|t| t.reply_us)), "reply_us", &mut k);
        Summary::insert(Summary::of(&col(&|t| t.standby_us)), "standby_us", &mut k);
        Summary::insert(
            Summary::of(&col(&|t| t.standby_apply_us)),
            "standby_apply_us",
            &mut k,
        );
        k.insert(
            "sync_bytes_max".into(),
            json!(of.iter().filter_map(|(_, t)| t.sync_bytes).max()),
        );
        k.insert(
            "late_turns_a".into(),
            json!(of.iter().map(|(_, t)| t.late_turns[0]).sum::<u64>()),
        );
        k.insert(
            "late_turns_b".into(),
            json!(of.iter().map(|(_, t)| t.late_turns[1]).sum::<u64>()),
        );
        k.insert(
            "loop_gap_us_max_a".into(),
            json!(of.iter().filter_map(|(i, _)| big_gaps[*i][0]).max()),
        );
        k.insert(
            "loop_gap_us_max_b".into(),
            json!(of.iter().filter_map(|(i, _)| big_gaps[*i][1]).max()),
        );
        let failures: Vec<&str> = of
            .iter()
            .filter_map(|(_, t)| t.failure.as_deref())
            .collect();
        k.insert("failures".into(), json!(failures));
        by_kind.insert(kind.name().into(), Value::Object(k));
    }
    for kind in BigKind::ALL.map(BigKind::name) {
        for key in [
            "read_us_max",
            "apply_us_max",
            "reply_us_max",
            "standby_us_max",
        ] {
            r.insert(format!("big_{kind}_{key}"), by_kind[kind][key].clone());
        }
    }
    r.insert("big".into(), Value::Object(by_kind));

    // Roles, lateness, alarms, over every stage's measurement.
    let mut state_changes = Vec::new();
    let mut mismatch = [0usize; 2];
    let mut gap_max: [Option<u64>; 2] = [None, None];
    for e in &ends {
        for (k, (node, ev)) in [("a", &e.ev_a), ("b", &e.ev_b)].into_iter().enumerate() {
            for x in ev
                .iter()
                .filter(|x| x.at_ns >= e.measure_ns && x.at_ns <= e.end_ns)
            {
                match &x.event {
                    Event::StateChanged {
                        from, to, reason, ..
                    } => state_changes.push(json!({
                        "stage": e.kind.name(),
                        "node": node,
                        "ms_into_stage": (x.at_ns - e.measure_ns) as f64 / 1e6,
                        "from": from, "to": to, "reason": reason,
                    })),
                    Event::ConfigMismatch { on: true, .. } => mismatch[k] += 1,
                    _ => {}
                }
            }
            gap_max[k] = gap_max[k].max(loop_gap_max(ev, e.measure_ns, e.end_ns));
        }
    }
    let seen: Vec<Value> = ends
        .iter()
        .flat_map(|e| {
            e.seen
                .iter()
                .map(|s| json!({"stage": e.kind.name(), "node": s.node, "s_into_stage": s.at_s, "from": s.from, "to": s.to}))
        })
        .collect();
    r.insert("role_changes".into(), json!(state_changes.len()));
    r.insert("role_changes_detail".into(), json!(state_changes));
    r.insert("role_changes_polled".into(), json!(seen.len()));
    r.insert("role_changes_polled_detail".into(), json!(seen));
    r.insert(
        "role_polls".into(),
        json!(ends.iter().map(|e| e.polls).sum::<u64>()),
    );
    r.insert(
        "role_polls_unanswered".into(),
        json!(ends.iter().map(|e| e.unanswered).sum::<u64>()),
    );
    r.insert(
        "states_at_end".into(),
        json!(
            ends.iter()
                .map(|e| [e.states_at_end.0.clone(), e.states_at_end.1.clone()])
                .collect::<Vec<_>>()
        ),
    );
    r.insert(
        "setup_role_changes".into(),
        json!(ends.iter().map(|e| e.setup_changes.len()).sum::<usize>()),
    );
    r.insert(
        "setup_role_changes_detail".into(),
        json!(
            ends.iter()
                .flat_map(|e| e.setup_changes.clone())
                .collect::<Vec<_>>()
        ),
    );
    r.insert(
        "setup_switchovers".into(),
        json!(ends.iter().map(|e| e.setup_switchovers).sum::<u64>()),
    );
    r.insert("restoring_switchovers".into(), json!(restores.len()));
    r.insert(
        "restore_wait_s".into(),
        json!((restores.iter().sum::<f64>() * 10.0).round() / 10.0),
    );
    r.insert("aborted".into(), json!(aborted));
    r.insert(
        "late_turns_a".into(),
        json!(ends.iter().map(|e| e.late_turns[0]).sum::<u64>()),
    );
    r.insert(
        "late_turns_b".into(),
        json!(ends.iter().map(|e| e.late_turns[1]).sum::<u64>()),
    );
    r.insert("loop_gap_us_max_a".into(), json!(gap_max[0]));
    r.insert("loop_gap_us_max_b".into(), json!(gap_max[1]));
    let mut slow = Vec::new();
    for e in &ends {
        for (node, ev) in [("a", &e.ev_a), ("b", &e.ev_b)] {
            for (window, from, to) in [
                ("set-up", 0, e.measure_ns),
                ("measurement", e.measure_ns, e.end_ns + 1),
            ] {
                for (during, (count, max_us)) in slow_turns(ev, from, to) {
                    slow.push(json!({"stage": e.kind.name(), "node": node, "window": window, "during": during, "count": count, "max_us": max_us}));
                }
            }
        }
    }
    r.insert("slow_turns".into(), json!(slow));
    if let Some((rows, us)) = ends.iter().find_map(|e| e.reals_b) {
        // b's loop turn that built it: its SlowTurn event in the set-up.
        r.insert("reals_rows_design_max".into(), json!(rows));
        r.insert("reals_reply_us_design_max".into(), json!(us));
    }
    let undone = bigs.iter().filter(|t| t.undone == Some(true)).count();
    r.insert("big_changes_undone".into(), json!(undone));
    r.insert(
        "edit_changes_undone".into(),
        json!(trials.iter().filter(|t| t.undone == Some(true)).count()),
    );
    r.insert("config_mismatch_alarms_a".into(), json!(mismatch[0]));
    r.insert("config_mismatch_alarms_b".into(), json!(mismatch[1]));

    // The calls, every stage's.
    let mut failed_by_phase: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed_calls = Vec::new();
    let sum = |f: &dyn Fn(&StageEnd) -> u64| ends.iter().map(f).sum::<u64>();
    let attempted = sum(&|e| e.calls.stats.created());
    let successful = sum(&|e| e.calls.stats.successful());
    let failed = sum(&|e| e.calls.stats.failed());
    let retrans = sum(&|e| e.calls.stats.retransmissions());
    for e in &ends {
        for c in e.calls.failed_calls() {
            let phase = match c.started {
                None => "never started",
                Some(t) if t < e.measure_wall => "warm-up",
                Some(t) if t < e.end_wall => "measurement",
                Some(_) => "after the measurement",
            };
            *failed_by_phase
                .entry(format!("{}: {phase}", e.kind.name()))
                .or_default() += 1;
            failed_calls.push(json!({"stage": e.kind.name(), "call": c.number, "phase": phase, "established": c.established.is_some(), "ivr": c.ivr}));
        }
    }
    r.insert("calls_attempted".into(), json!(attempted));
    r.insert("calls_successful".into(), json!(successful));
    r.insert("calls_failed".into(), json!(failed));
    r.insert("calls_failed_by_phase".into(), json!(failed_by_phase));
    r.insert("calls_failed_detail".into(), json!(failed_calls));
    r.insert("calls_retransmissions".into(), json!(retrans));
    r.insert(
        "calls_per_stage".into(),
        json!(ends.iter().map(|e| json!({
            "stage": e.kind.name(),
            "attempted": e.calls.stats.created(),
            "successful": e.calls.stats.successful(),
            "failed": e.calls.stats.failed(),
            "failed_by_cause": e.calls.stats.failures(),
            "per_ivr": e.calls.per_ivr(),
            "ivr_sipp_failed": e.ivr_sipp_failed,
            "sipp_exit_code": e.calls.exit_code,
            "load_placing_s": ((e.load_stopped - e.load_started) * 10.0).round() / 10.0,
            "load_covered_measurement": e.load_stopped - e.load_started < LOAD_MAX.as_secs_f64(),
        })).collect::<Vec<_>>()),
    );

    r.insert("baseline".into(), Value::Null);
    r.insert(
        "baseline_note".into(),
        json!(baseline_note().unwrap_or_else(|| {
            "IPVS is present on this kernel, but this bench does not run keepalived: no ratio."
                .into()
        })),
    );

    // Per trial.
    r.insert(
        "trials".into(),
        json!(
            trials
                .iter()
                .map(|t| json!({
                    "weight": t.weight,
                    "edit_us": t.edit_us,
                    "reply_us": t.reply_us,
                    "read_us": t.reply.as_ref().map(|r| r.read_us),
                    "apply_us": t.reply.as_ref().map(|r| r.apply_us),
                    "standby_us": t.standby_us,
                    "standby_apply_us": t.standby_apply_us,
                    "changes": t.reply.as_ref().map(|r| r.changes.clone()),
                    "after_restore": t.after_restore,
                    "undone": t.undone,
                    "failure": t.failure,
                }))
                .collect::<Vec<_>>()
        ),
    );
    r.insert(
        "big_reloads".into(),
        json!(
            bigs.iter()
                .enumerate()
                .map(|(i, t)| json!({
                    "stage": ends[stage_of_big(i).min(ends.len() - 1)].kind.name(),
                    "round": t.round,
                    "kind": t.kind.name(),
                    "changes": t.reply.as_ref().map(|r| r.changes.len()),
                    "write_us": t.edit_us,
                    "reply_us": t.reply_us,
                    "read_us": t.reply.as_ref().map(|r| r.read_us),
                    "apply_us": t.reply.as_ref().map(|r| r.apply_us),
                    "standby_us": t.standby_us,
                    "standby_apply_us": t.standby_apply_us,
                    "sync_bytes": t.sync_bytes,
                    "sync_records": t.sync_records,
                    "late_turns_a": t.late_turns[0],
                    "late_turns_b": t.late_turns[1],
                    "loop_gap_us_max_a": big_gaps[i][0],
                    "loop_gap_us_max_b": big_gaps[i][1],
                    "after_restore": t.after_restore,
                    "undone": t.undone,
                    "failure": t.failure,
                }))
                .collect::<Vec<_>>()
        ),
    );
    // What the figures say next to the pair's own deadlines.
    let mut notes = Vec::new();
    let ms = |v: &Value| {
        v.as_u64()
            .map_or("–".to_string(), |us| format!("{:.1}", us as f64 / 1000.0))
    };
    if r["apply_us_p50"].is_u64() {
        notes.push(format!(
            "A weight edit of the pair's first service (mh) is applied on a's loop in {} ms (p50; max {}), and on b's in {} ms (p50; max {}); the heartbeat deadline is {deadline_ms} ms and the dead-man budget {dead_man_ms} ms; the kernel writes go at most ~4 ms per loop turn, with the loop's other work between them.",
            ms(&r["apply_us_p50"]), ms(&r["apply_us_max"]), ms(&r["standby_apply_us_p50"]), ms(&r["standby_apply_us_max"])
        ));
    }
    let changed_roles =
        |f: &Option<String>| f.as_deref().is_some_and(|f| f.starts_with("roles changed"));
    let big_role = bigs.iter().filter(|t| changed_roles(&t.failure)).count();
    let edit_role = trials.iter().filter(|t| changed_roles(&t.failure)).count();
    notes.push(format!(
        "Reloads followed by a role change before b held the change: {edit_role} of {} edits, {big_role} of {} design-maximum reloads.",
        trials.len(),
        bigs.len()
    ));
    let k = &r["big"];
    if k["nothing"]["apply_us_p50"].is_u64() {
        notes.push(format!(
            "At 64 × 32, a's apply (plan to last kernel write, spread over loop turns; the turns themselves are in the lateness columns): one weight in the mh service {} ms, one weight in a wlc service {} ms, nothing changed {} ms (p50), the pair's file to 64 × 32 {} ms, back {} ms.",
            ms(&k["one_weight"]["apply_us_p50"]),
            ms(&k["one_weight_wlc"]["apply_us_p50"]),
            ms(&k["nothing"]["apply_us_p50"]),
            ms(&k["load"]["apply_us_p50"]),
            ms(&k["back"]["apply_us_p50"]),
        ));
    }
    if let Some(b) = k["nothing"]["sync_bytes_max"].as_u64() {
        notes.push(format!("A reload that changed nothing at 64 × 32 was followed by {b} bytes of sync from a (the largest window; the calls' records included)."));
    }
    r.insert("notes".into(), json!(notes));
    let report = Value::Object(r);
    let md = report::markdown(&report);
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("reload.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    std::fs::write(out.join("reload.md"), &md)?;
    Ok(md)
}
