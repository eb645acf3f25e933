//! `cargo xtask bench faults`: the fault campaign. Every fault of
//! [`Fault::ALL`], injected `--trials` times at a random moment under a
//! steady SIPp load through the pair lab (four SIPp IVRs with heartbeats,
//! the UDP service mh + `sip_persist`, state sync on), measured the same
//! way for each, from outside the daemons where the lab allows it.
//!
//! One trial:
//! 1. The pair is settled: one node active, the other standby and in
//!    sync, every IVR heard. Faults hit whichever node is active then.
//! 2. A SIPp caller places calls at `rate` (default 100 calls/s) for
//!    `placing_s` seconds, each call lasting `call_ms` (no RTP: the
//!    directors never see it, and the two vCPUs are better spent on SIP).
//! 3. At a random moment 2.5–4.5 s in, the fault is injected (see
//!    [`Fault`]); the bench waits for the service to be taken over where
//!    the fault calls for it, then repairs what the fault broke (restarts
//!    the killed daemon or IVR, as systemd would; brings links back;
//!    continues a stopped process) and waits for the pair to be redundant
//!    again (active + standby in sync + every IVR heard).
//! 4. When the caller is done, every call is attributed from SIPp's own
//!    per-call log (`actors::sipp`): established before the fault and
//!    failed (`calls_lost`); established after the fault and failed
//!    (`calls_lost_set_up_after_fault`); never established
//!    (`calls_failed_in_flight`). A call whose INVITE had to be
//!    retransmitted (set up in more than [`SLOW_SETUP_S`]) was not lost
//!    but met the outage.
//!
//! Per trial, and per fault over its trials:
//! - `mttr_calls_ms`: fault → calls succeed again: the set-up of the first
//!   call started after the last call that met the outage (failed in
//!   flight, or set up slowly), minus the fault's instant; 0 when no call
//!   met it.
//! - `mttr_redundant_ms`: fault → the pair is redundant again (includes
//!   the repair: a restarted daemon's start-up and snapshot).
//! - `takeover_ms`: fault → the new active's "takeover done" on its own
//!   timeline (the time of the `tandemctl` poll, every [`POLL`], if it
//!   has none), for the faults that move the role.
//! - `role_changes`: acquisitions of the active role in the trial, from
//!   both daemons' typed events (`StateChanged` to `active`); the fault's
//!   expected count is [`Fault::expected_role_changes`], anything above it
//!   is `unexpected_role_changes`.
//!
//! Not yet measured here (the campaign asks for them): a
//! dual-active observer on the service network, the client's 1 ms probe
//! gap, the loss, starvation, partition, card and trunk faults, TCP, the
//! soak. `TANDEM_BENCH_FAULTS` (comma-separated names) picks faults,
//! `TANDEM_BENCH_TRIALS` (default 10), `TANDEM_BENCH_RATE` (calls/s,
//! default 100), `TANDEM_BENCH_CALL_MS` (default 5000),
//! `TANDEM_BENCH_PLACING_S` (default 8), `TANDEM_BENCH_HEARTBEAT_MS` (the
//! pair's heartbeat interval, × 3; default 10, the lab's).
//!
//! Writes `faults.json` and `faults.md`. Every wait is bounded; processes
//! are signalled by PID; the lab goes with its `Drop`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tandem_control::events::Event;

use super::calls::Rng;
use crate::actors::calls::{self, Ivr};
use crate::actors::sipp::{self, CallerOptions, CallerReport};
use crate::lab::tandemd::{Binaries, Director, Pair, PairOptions, WorkDir, wait_for};

/// How often the bench asks `tandemctl` while it waits for a state.
pub const POLL: Duration = super::TANDEMCTL_POLL;
/// A call set up in more than this met the outage (its INVITE, or the
/// answer, was retransmitted: SIP's T1 is 500 ms).
pub const SLOW_SETUP_S: f64 = 0.25;
/// How long a hang (SIGSTOP) lasts before SIGCONT, and a link stays down.
pub const FAULT_HOLD: Duration = Duration::from_secs(2);

/// The faults of the campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` of the active's daemon; restarted after the takeover.
    Kill9,
    /// SIGSTOP of the active's daemon for [`FAULT_HOLD`], then SIGCONT.
    Hang,
    /// The active's links down and its daemon killed at once (a machine
    /// crash); links back and daemon restarted after the takeover.
    Crash,
    /// The active's service link (`eth0`) down for [`FAULT_HOLD`].
    ServiceLinkDown,
    /// The heartbeat link (`hb0`) of the active down for [`FAULT_HOLD`]:
    /// heartbeats go on over the service network, so no role change.
    HeartbeatLinkCut,
    /// `tandemctl switchover` on the active while calls are set up.
    Switchover,
    /// One IVR killed (SIPp and its heartbeats); restarted after.
    IvrKill,
    /// One IVR's SIPp stopped (SIGSTOP) for [`FAULT_HOLD`] while its
    /// heartbeats go on.
    IvrHang,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::Kill9,
        Fault::Hang,
        Fault::Crash,
        Fault::ServiceLinkDown,
        Fault::HeartbeatLinkCut,
        Fault::Switchover,
        Fault::IvrKill,
        Fault::IvrHang,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill9 => "kill9",
            Fault::Hang => "hang",
            Fault::Crash => "crash",
            Fault::ServiceLinkDown => "service_link_down",
            Fault::HeartbeatLinkCut => "heartbeat_link_cut",
            Fault::Switchover => "switchover",
            Fault::IvrKill => "ivr_kill",
            Fault::IvrHang => "ivr_hang",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Whether it befalls a director (the targets for director
    /// faults: no established call lost, MTTR p99 ≤ 10 ms).
    pub fn on_director(self) -> bool {
        !matches!(self, Fault::IvrKill | Fault::IvrHang)
    }

    /// Acquisitions of the active role the fault calls for.
    pub fn expected_role_changes(self) -> u64 {
        match self {
            Fault::Kill9 | Fault::Hang | Fault::Crash | Fault::ServiceLinkDown | Fault::Switchover => 1,
            Fault::HeartbeatLinkCut | Fault::IvrKill | Fault::IvrHang => 0,
        }
    }
}

/// What to run; from the environment in [`Options::from_env`].
pub struct Options {
    pub bins: Binaries,
    pub faults: Vec<Fault>,
    pub trials: usize,
    pub rate: u32,
    pub call_ms: u64,
    pub placing_s: u32,
    /// The pair's heartbeat interval (× 3), ms: the lab's 10 by default.
    pub heartbeat_ms: u32,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T, ok: impl Fn(&T) -> bool) -> Result<T> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => match v.trim().parse::<T>() {
            Ok(n) if ok(&n) => Ok(n),
            _ => bail!("{name}={v:?}: not a valid value"),
        },
    }
}

impl Options {
    /// How long the IVRs' SIPp may run: the whole campaign, bounded (a
    /// trial takes its placing, a call, and at most ~60 s of waits).
    pub fn ivr_lifetime(&self) -> Duration {
        let per_trial = u64::from(self.placing_s) + self.call_ms / 1000 + 60;
        Duration::from_secs((per_trial * (self.trials * self.faults.len()) as u64 + 120).min(6 * 3600))
    }

    pub fn from_env() -> Result<Options> {
        let faults = match std::env::var("TANDEM_BENCH_FAULTS") {
            Err(_) => Fault::ALL.to_vec(),
            Ok(v) => v
                .split(',')
                .map(|f| {
                    Fault::parse(f.trim()).with_context(|| {
                        format!(
                            "TANDEM_BENCH_FAULTS: {f:?} is not a fault (one of {})",
                            Fault::ALL.map(Fault::name).join(", ")
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };
        Ok(Options {
            bins: Binaries::from_env()?,
            faults,
            trials: env_num("TANDEM_BENCH_TRIALS", 10, |n| (1..=1000).contains(n))?,
            rate: env_num("TANDEM_BENCH_RATE", 100, |n| (1..=2000).contains(n))?,
            call_ms: env_num("TANDEM_BENCH_CALL_MS", 5000, |n| (100..=120_000).contains(n))?,
            placing_s: env_num("TANDEM_BENCH_PLACING_S", 8, |n| (6..=600).contains(n))?,
            heartbeat_ms: env_num("TANDEM_BENCH_HEARTBEAT_MS", 10, |n| (1..=1000).contains(n))?,
        })
    }
}

/// Which of the pair is active now (a: true), if exactly one is and the
/// other is standby.
fn settled_roles(pair: &Pair) -> Option<bool> {
    match (pair.a.state().as_deref(), pair.b.state().as_deref()) {
        (Some("active"), Some("standby")) => Some(true),
        (Some("standby"), Some("active")) => Some(false),
        _ => None,
    }
}

fn in_sync(d: &Director) -> bool {
    d.sync()
        .and_then(|s| s.get("state").and_then(Value::as_str).map(|s| s == "in sync"))
        .unwrap_or(false)
}

/// The pair is redundant: one active, one standby in sync, every IVR
/// heard by the active.
fn redundant(pair: &Pair, n_ivr: usize) -> bool {
    match settled_roles(pair) {
        Some(a_active) => {
            let (act, sby) = if a_active { (&pair.a, &pair.b) } else { (&pair.b, &pair.a) };
            in_sync(sby) && calls::reals_alive(act, n_ivr)
        }
        None => false,
    }
}

/// The last event number a running daemon holds (0 when none or not
/// answering).
fn last_seq(d: &Director) -> u64 {
    d.events(0).last().map_or(0, |e| e.seq)
}

/// Acquisitions of the active role among a daemon's events after `after`.
fn acquisitions(d: &Director, after: u64) -> u64 {
    d.events(after)
        .iter()
        .filter(|e| matches!(&e.event, Event::StateChanged { to, .. } if to == "active"))
        .count() as u64
}

fn signal(pid: Option<u32>, sig: libc::c_int) {
    if let Some(pid) = pid {
        // SAFETY: kill(2) on a child this bench started and still holds.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    }
}

fn ms(s: f64) -> f64 {
    (s * 1e4).round() / 10.0
}

/// One trial of `fault`.
#[allow(clippy::too_many_arguments)]
fn trial(
    pair: &mut Pair,
    ivrs: &mut [Ivr],
    dir: &Path,
    o: &Options,
    fault: Fault,
    n: usize,
    rng: &mut Rng,
) -> Result<Value> {
    let n_ivr = ivrs.len();
    if !wait_for(Duration::from_secs(20), || redundant(pair, n_ivr)) {
        bail!(
            "{} trial {n}: the pair is not redundant before the fault: a {:?}, b {:?}, b sync {:?}",
            fault.name(),
            pair.a.state(),
            pair.b.state(),
            pair.b.sync()
        );
    }
    if let Some(dead) = ivrs.iter_mut().position(|i| !i.sipp.running()) {
        // Its heartbeats go on, so the directors cannot tell: the trial's
        // calls would fail for a reason that is not the fault.
        bail!("{} trial {n}: the SIPp of {} is not running", fault.name(), ivrs[dead].name);
    }
    let a_active = settled_roles(pair).unwrap_or(true);
    let seqs = (last_seq(&pair.a), last_seq(&pair.b));
    let mut restarted = (false, false);
    let mut co = CallerOptions::new(o.rate, u64::from(o.rate * o.placing_s), o.call_ms);
    co.rtp = false;
    let caller = calls::start_caller(&pair.lab, dir, &co)?;
    let after = 2.5 + 2.0 * rng.next_f64();
    std::thread::sleep(Duration::from_secs_f64(after));
    let ivr_k = (rng.next_f64() * n_ivr as f64) as usize % n_ivr.max(1);
    let (act_name, _) = if a_active { (pair.a.name, pair.b.name) } else { (pair.b.name, pair.a.name) };
    let t_fault = sipp::wall_now();
    let t0 = Instant::now();
    let mono_fault = tandem_dataplane::monotonic_ns();
    {
        let (act, _) = if a_active { (&mut pair.a, &mut pair.b) } else { (&mut pair.b, &mut pair.a) };
        match fault {
            Fault::Kill9 => {
                act.kill9();
            }
            Fault::Hang => signal(act.pid(), libc::SIGSTOP),
            Fault::Crash => {
                for ifname in ["eth0", "hb0"] {
                    pair.lab.set_link(act_name, ifname, false)?;
                }
                act.kill9();
            }
            Fault::ServiceLinkDown => pair.lab.set_link(act_name, "eth0", false)?,
            Fault::HeartbeatLinkCut => pair.lab.set_link(act_name, "hb0", false)?,
            Fault::Switchover => {
                if !act.switchover() {
                    bail!("switchover trial {n}: refused:\n{}", act.log_text());
                }
            }
            Fault::IvrKill => ivrs[ivr_k].kill(),
            Fault::IvrHang => signal(ivrs[ivr_k].sipp.pid(), libc::SIGSTOP),
        }
    }
    // The takeover, for the faults that move the role.
    let mut takeover_ms = None;
    if fault.expected_role_changes() > 0 {
        let other_active = |p: &Pair| {
            let d = if a_active { &p.b } else { &p.a };
            d.state().as_deref() == Some("active")
        };
        if wait_for(Duration::from_secs(10), || other_active(pair)) {
            // The new active's own timeline (CLOCK_MONOTONIC, as the
            // fault's stamp); the poll's time when it has no such line.
            let other = if a_active { &pair.b } else { &pair.a };
            takeover_ms = Some(
                other
                    .timeline()
                    .into_iter()
                    .find(|(ns, w)| *ns >= mono_fault && w.contains("takeover done"))
                    .map_or(t0.elapsed().as_secs_f64() * 1e3, |(ns, _)| (ns - mono_fault) as f64 / 1e6),
            );
        } else {
            bail!(
                "{} trial {n}: the other node did not take over:\na: {}\nb: {}",
                fault.name(),
                pair.a.log_text(),
                pair.b.log_text()
            );
        }
    }
    // Repair what the fault broke, as an operator or systemd would.
    match fault {
        Fault::Kill9 | Fault::Crash => {
            if fault == Fault::Crash {
                for ifname in ["eth0", "hb0"] {
                    pair.lab.set_link(act_name, ifname, true)?;
                }
            }
            let act = if a_active { &mut pair.a } else { &mut pair.b };
            act.start()?;
            if a_active {
                restarted.0 = true;
            } else {
                restarted.1 = true;
            }
        }
        Fault::Hang => {
            std::thread::sleep(FAULT_HOLD.saturating_sub(t0.elapsed()));
            let act = if a_active { &pair.a } else { &pair.b };
            signal(act.pid(), libc::SIGCONT);
        }
        Fault::ServiceLinkDown | Fault::HeartbeatLinkCut => {
            std::thread::sleep(FAULT_HOLD.saturating_sub(t0.elapsed()));
            let ifname = if fault == Fault::ServiceLinkDown { "eth0" } else { "hb0" };
            pair.lab.set_link(act_name, ifname, true)?;
        }
        Fault::IvrKill => {
            ivrs[ivr_k] = calls::start_ivr(&pair.lab, dir, ivr_k, true, false, Some(o.ivr_lifetime()))?;
        }
        Fault::IvrHang => {
            std::thread::sleep(FAULT_HOLD.saturating_sub(t0.elapsed()));
            signal(ivrs[ivr_k].sipp.pid(), libc::SIGCONT);
        }
        Fault::Switchover => {}
    }
    let redundant_again = wait_for(Duration::from_secs(30), || redundant(pair, n_ivr));
    let mttr_redundant_ms = redundant_again.then(|| t0.elapsed().as_secs_f64() * 1e3);
    let r = caller.wait()?;
    for i in ivrs.iter_mut() {
        i.sipp.wait_idle(Duration::from_secs(5));
    }
    let role_changes = [(&pair.a, seqs.0, restarted.0), (&pair.b, seqs.1, restarted.1)]
        .iter()
        .map(|(d, seq, fresh)| acquisitions(d, if *fresh { 0 } else { *seq }))
        .sum::<u64>();
    if r.stats.created() > 0 && r.stats.successful() == 0 {
        bail!(
            "{} trial {n}: no call got through at all ({}): the lab, not the fault",
            fault.name(),
            r.stats.summary()
        );
    }
    let mut v = attribute(&r, t_fault);
    v["trial"] = json!(n);
    v["fault"] = json!(fault.name());
    v["fault_after_s"] = json!((after * 1000.0).round() / 1000.0);
    v["on"] = json!(match fault {
        Fault::IvrKill | Fault::IvrHang => ivrs[ivr_k].name.clone(),
        _ => act_name.to_string(),
    });
    v["takeover_ms"] = json!(takeover_ms.map(|t| (t * 10.0).round() / 10.0));
    v["mttr_redundant_ms"] = json!(mttr_redundant_ms.map(|t| t.round()));
    v["redundant_again"] = json!(redundant_again);
    v["role_changes"] = json!(role_changes);
    v["unexpected_role_changes"] = json!(role_changes.saturating_sub(fault.expected_role_changes()));
    eprintln!(
        "faults bench: {} {n}: {} ; lost {}, in flight {}, mttr calls {} ms, takeover {} ms, redundant {} ms, role changes {role_changes}",
        fault.name(),
        r.stats.summary(),
        v["calls_lost"],
        v["calls_failed_in_flight"],
        v["mttr_calls_ms"],
        v["takeover_ms"],
        v["mttr_redundant_ms"],
    );
    Ok(v)
}

/// Attributes the caller's calls around a fault at `t_fault` (wall clock)
/// and derives the calls' MTTR (see the module).
pub fn attribute(r: &CallerReport, t_fault: f64) -> Value {
    let failed = r.failed_calls();
    let lost = failed.iter().filter(|c| c.established_before(t_fault)).count();
    let lost_later = failed
        .iter()
        .filter(|c| c.established.is_some_and(|e| e > t_fault))
        .count();
    let in_flight = failed.iter().filter(|c| c.established.is_none()).count();
    // Calls that met the outage: failed without being set up, or set up
    // slowly, and placed no earlier than a second before the fault.
    let met = |c: &&sipp::CallRecord| {
        let Some(s) = c.started else { return false };
        if s < t_fault - 1.0 {
            return false;
        }
        match c.established {
            None => !c.succeeded(),
            Some(e) => e - s > SLOW_SETUP_S,
        }
    };
    let last_met = r.calls.iter().filter(met).filter_map(|c| c.started).fold(f64::NAN, f64::max);
    let mttr_calls_ms = if last_met.is_nan() {
        Some(0.0)
    } else {
        r.calls
            .iter()
            .filter(|c| c.succeeded() && c.started.is_some_and(|s| s > last_met))
            .filter_map(|c| c.established)
            .fold(None, |m: Option<f64>, e| Some(m.map_or(e, |m| m.min(e))))
            .map(|e| ms(e - t_fault).max(0.0))
    };
    let in_progress = r
        .calls
        .iter()
        .filter(|c| c.established_before(t_fault) && c.done.is_none_or(|d| d > t_fault))
        .count();
    json!({
        "calls": r.stats.created(),
        "successful": r.stats.successful(),
        "failed": r.stats.failed(),
        "in_progress_at_fault": in_progress,
        "calls_lost": lost,
        "calls_lost_set_up_after_fault": lost_later,
        "calls_failed_in_flight": in_flight,
        "calls_met_outage": r.calls.iter().filter(met).count(),
        "mttr_calls_ms": mttr_calls_ms,
        "retransmissions": r.stats.retransmissions(),
    })
}

fn percentile(v: &mut [f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    Some(v[i.min(v.len() - 1)])
}

/// The per-fault summary of its trials.
pub fn summarize(fault: Fault, trials: &[Value], failures: &[String]) -> Value {
    let sum = |k: &str| trials.iter().filter_map(|t| t[k].as_u64()).sum::<u64>();
    let series = |k: &str| -> Value {
        let mut v: Vec<f64> = trials.iter().filter_map(|t| t[k].as_f64()).collect();
        let n = v.len();
        json!({
            "p50": percentile(&mut v, 50.0),
            "p99": percentile(&mut v, 99.0),
            "max": v.last().copied(),
            "n": n,
        })
    };
    json!({
        "fault": fault.name(),
        "on_director": fault.on_director(),
        "trials": trials.len() + failures.len(),
        "failed_trials": failures.len(),
        "failures": failures,
        "calls_lost": sum("calls_lost"),
        "calls_lost_set_up_after_fault": sum("calls_lost_set_up_after_fault"),
        "calls_failed_in_flight": sum("calls_failed_in_flight"),
        "calls_in_progress_at_fault": sum("in_progress_at_fault"),
        "role_changes": sum("role_changes"),
        "unexpected_role_changes": sum("unexpected_role_changes"),
        "mttr_calls_ms": series("mttr_calls_ms"),
        "mttr_redundant_ms": series("mttr_redundant_ms"),
        "takeover_ms": series("takeover_ms"),
    })
}

/// Runs the campaign; writes `faults.json` and `faults.md` under `out`;
/// returns the Markdown.
pub fn run(out: &Path, o: Options) -> Result<String> {
    crate::lab::privileged::ensure_root("tandem-bench faults", "network namespaces, XDP")?;
    let version = sipp::version()?;
    let started = Instant::now();
    let dir = WorkDir::new("bench-faults")?;
    let po = PairOptions {
        scheduler: "mh".into(),
        heartbeat_interval_ms: o.heartbeat_ms,
        ..PairOptions::default()
    };
    let mut pair = Pair::start(4, &po, dir.path(), &o.bins, None)?;
    let mut ivrs = calls::start_ivrs_for(&pair.lab, dir.path(), true, false, Some(o.ivr_lifetime()))?;
    if !wait_for(Duration::from_secs(10), || calls::reals_alive(&pair.a, 4)) {
        bail!("a does not hear every IVR: {:?}", pair.a.reals());
    }
    let mut rng = Rng::from_clock();
    let seed = rng.0;
    let mut per_fault = Vec::new();
    let mut all_trials = Vec::new();
    for &fault in &o.faults {
        let mut trials = Vec::new();
        let mut failures = Vec::new();
        for n in 1..=o.trials {
            match trial(&mut pair, &mut ivrs, dir.path(), &o, fault, n, &mut rng) {
                Ok(v) => trials.push(v),
                Err(e) => {
                    eprintln!("faults bench: {} trial {n} failed: {e:#}", fault.name());
                    failures.push(format!("trial {n}: {e:#}"));
                    // A failed trial may leave the pair broken: a fresh one.
                    calls::stop_ivrs(&mut ivrs);
                    drop(ivrs);
                    drop(pair);
                    pair = Pair::start(4, &po, dir.path(), &o.bins, None)?;
                    ivrs = calls::start_ivrs_for(&pair.lab, dir.path(), true, false, Some(o.ivr_lifetime()))?;
                }
            }
        }
        per_fault.push(summarize(fault, &trials, &failures));
        all_trials.extend(trials);
    }
    calls::stop_ivrs(&mut ivrs);
    drop(pair);
    let checks = target_checks(&per_fault);
    let report = json!({
        "bench": "faults",
        "sipp": version,
        "elapsed_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "seed": seed,
        "setup": {
            "rate_cps": o.rate,
            "call_ms": o.call_ms,
            "placing_s": o.placing_s,
            "heartbeat_ms": o.heartbeat_ms,
            "trials_per_fault": o.trials,
            "fault_hold_ms": FAULT_HOLD.as_millis() as u64,
            "slow_setup_ms": SLOW_SETUP_S * 1e3,
            "ivrs": 4,
            "service": "udp VIP:5060 mh sip_persist",
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        },
        "target_checks": checks,
        "per_fault": per_fault,
        "trials": all_trials,
    });
    let md = markdown(&report);
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("faults.json"), serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(out.join("faults.md"), &md)?;
    Ok(md)
}

/// The targets that this campaign measures, each PASS or MISS.
pub fn target_checks(per_fault: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for f in per_fault {
        let name = f["fault"].as_str().unwrap_or("?");
        let failed = f["failed_trials"].as_u64().unwrap_or(0);
        let unexpected = f["unexpected_role_changes"].as_u64().unwrap_or(0);
        let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
        if f["on_director"].as_bool() == Some(true) {
            let lost = f["calls_lost"].as_u64().unwrap_or(0);
            let p99 = f["mttr_calls_ms"]["p99"].as_f64();
            out.push(format!(
                "{name}: established calls lost {lost} = 0: {}; calls' MTTR p99 {} ≤ 10 ms: {}; unexpected role changes {unexpected} = 0: {}; failed trials {failed}",
                verdict(lost == 0),
                p99.map_or("-".to_string(), |p| format!("{p:.1} ms")),
                verdict(p99.is_some_and(|p| p <= 10.0)),
                verdict(unexpected == 0),
            ));
        } else {
            out.push(format!(
                "{name}: unexpected role changes {unexpected} = 0: {}; failed trials {failed}",
                verdict(unexpected == 0)
            ));
        }
    }
    out
}

fn cell(v: &Value) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

fn markdown(r: &Value) -> String {
    let mut s = String::new();
    let st = &r["setup"];
    s.push_str("# Fault campaign: faults under SIP load in the pair lab\n\n");
    s.push_str(&format!(
        "`cargo xtask bench faults`: {}; {} calls/s for {} s per trial, calls of {} ms (no RTP), four SIPp IVRs, UDP service mh + `sip_persist`, state sync on, heartbeats {} ms × 3; {} trials per fault; {} CPUs; {} s in all; seed {}.\n\n",
        r["sipp"].as_str().unwrap_or("SIPp"),
        st["rate_cps"],
        st["placing_s"],
        st["call_ms"],
        st["heartbeat_ms"],
        st["trials_per_fault"],
        st["cpus"],
        r["elapsed_s"],
        r["seed"],
    ));
    s.push_str("| fault | trials (failed) | `calls_lost` | lost, set up after the fault | failed in flight | in progress at the fault | `mttr_calls_ms` p50 / p99 / max | `mttr_redundant_ms` p50 / p99 | takeover ms p50 / p99 | `role_changes` (unexpected) |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---|---|---|---:|\n");
    for f in r["per_fault"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} ({}) | {} | {} | {} | {} | {} / {} / {} | {} / {} | {} / {} | {} ({}) |\n",
            f["fault"].as_str().unwrap_or("?"),
            f["trials"],
            f["failed_trials"],
            f["calls_lost"],
            f["calls_lost_set_up_after_fault"],
            f["calls_failed_in_flight"],
            f["calls_in_progress_at_fault"],
            cell(&f["mttr_calls_ms"]["p50"]),
            cell(&f["mttr_calls_ms"]["p99"]),
            cell(&f["mttr_calls_ms"]["max"]),
            cell(&f["mttr_redundant_ms"]["p50"]),
            cell(&f["mttr_redundant_ms"]["p99"]),
            cell(&f["takeover_ms"]["p50"]),
            cell(&f["takeover_ms"]["p99"]),
            f["role_changes"],
            f["unexpected_role_changes"],
        ));
    }
    s.push_str("\n## Targets\n\n");
    for c in r["target_checks"].as_array().into_iter().flatten() {
        s.push_str(&format!("- {}\n", c.as_str().unwrap_or("")));
    }
    s.push_str(
        "\n`calls_lost`: established before the fault, and failed (SIPp got no 200 to its BYE from the IVR that answered). \
`mttr_calls_ms`: fault → the set-up of the first call placed after the last call that met the outage (failed in flight, or set up in more than 250 ms: retransmitted). \
`mttr_redundant_ms`: fault → active + standby in sync + every IVR heard, repair included (a restarted daemon's start-up and snapshot; a link back after 2 s). \
Takeover: fault → the new active's `takeover done` on its own timeline (the failover bench measures takeovers on the wire).\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::sipp::CallRecord;

    fn call(n: u64, started: f64, established: Option<f64>, ok: bool) -> CallRecord {
        CallRecord {
            number: n,
            started: Some(started),
            established,
            ivr: established.map(|_| "ivr1".to_string()),
            call_id: None,
            done: if ok { established.map(|e| e + 5.0) } else { None },
            bye_ivr: if ok { Some("ivr1".to_string()) } else { None },
        }
    }

    fn report(calls: Vec<CallRecord>) -> CallerReport {
        CallerReport {
            exit_code: Some(1),
            stats: sipp::SippStats::default(),
            calls,
            errors: String::new(),
        }
    }

    #[test]
    fn calls_are_attributed_around_the_fault_and_the_mttr_follows_the_last_call_that_met_it() {
        let t = 1000.0;
        let r = report(vec![
            // Established before the fault, lost.
            call(1, t - 3.0, Some(t - 2.999), false),
            // Established before, survived.
            call(2, t - 2.0, Some(t - 1.999), true),
            // Placed just before the fault, never set up.
            call(3, t - 0.001, None, false),
            // Placed after, retransmitted: slow set-up (met the outage).
            call(4, t + 0.002, Some(t + 0.503), true),
            // The first good call after the last one that met it.
            call(5, t + 0.010, Some(t + 0.0115), true),
            call(6, t + 0.020, Some(t + 0.0212), true),
        ]);
        let v = attribute(&r, t);
        assert_eq!(v["calls_lost"], 1);
        assert_eq!(v["calls_failed_in_flight"], 1);
        assert_eq!(v["calls_lost_set_up_after_fault"], 0);
        assert_eq!(v["calls_met_outage"], 2);
        assert_eq!(v["in_progress_at_fault"], 2);
        assert!((v["mttr_calls_ms"].as_f64().unwrap() - 11.5).abs() < 0.05, "{v}");
    }

    #[test]
    fn no_call_met_the_outage_is_an_mttr_of_zero() {
        let t = 50.0;
        let r = report(vec![call(1, t - 1.5, Some(t - 1.499), true), call(2, t + 0.01, Some(t + 0.011), true)]);
        let v = attribute(&r, t);
        assert_eq!(v["mttr_calls_ms"].as_f64(), Some(0.0));
        assert_eq!(v["calls_lost"], 0);
    }

    #[test]
    fn the_summary_and_its_checks_name_what_missed() {
        let trials = vec![
            json!({"calls_lost": 0, "calls_lost_set_up_after_fault": 0, "calls_failed_in_flight": 2, "in_progress_at_fault": 300,
                   "role_changes": 1, "unexpected_role_changes": 0, "mttr_calls_ms": 4.0, "mttr_redundant_ms": 900.0, "takeover_ms": 3.0}),
            json!({"calls_lost": 2, "calls_lost_set_up_after_fault": 0, "calls_failed_in_flight": 0, "in_progress_at_fault": 310,
                   "role_changes": 2, "unexpected_role_changes": 1, "mttr_calls_ms": 20.0, "mttr_redundant_ms": 950.0, "takeover_ms": 4.0}),
        ];
        let s = summarize(Fault::Kill9, &trials, &["trial 3: x".to_string()]);
        assert_eq!(s["trials"], 3);
        assert_eq!(s["failed_trials"], 1);
        assert_eq!(s["calls_lost"], 2);
        assert_eq!(s["unexpected_role_changes"], 1);
        assert_eq!(s["mttr_calls_ms"]["p99"].as_f64(), Some(20.0));
        let c = target_checks(&[s]);
        assert_eq!(c.len(), 1);
        assert!(c[0].starts_with("kill9: established calls lost 2 = 0: MISS"), "{}", c[0]);
        assert!(c[0].contains("MTTR p99 20.0 ms ≤ 10 ms: MISS"), "{}", c[0]);
    }

    #[test]
    fn faults_parse_by_name_and_director_faults_are_told_apart() {
        for f in Fault::ALL {
            assert_eq!(Fault::parse(f.name()), Some(f));
        }
        assert_eq!(Fault::parse("meteor"), None);
        assert!(Fault::Kill9.on_director() && !Fault::IvrHang.on_director());
        assert_eq!(Fault::HeartbeatLinkCut.expected_role_changes(), 0);
    }
}
