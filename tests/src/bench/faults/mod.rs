//! `cargo xtask bench faults`: the fault campaign. Every fault of
//! [`Fault::ALL`], injected `--trials` times at a random moment under a
//! steady SIPp load through the pair lab ([`rig`]: simulated cards on a
//! shared trunk, four SIPp IVRs with heartbeats, the UDP service mh +
//! `sip_persist`, state sync on, a client probing the VIP every 1 ms),
//! measured the same way for each, by observers outside the daemons.
//!
//! One SIPp caller places calls at `rate` (default 100 calls/s) of
//! `call_ms` (default 30 s) for the whole campaign, so that faults meet
//! calls in every phase, and thousands of established ones. The faults
//! come in rounds (each fault once per round, `trials` rounds). One trial
//! ([`trial`]):
//! 1. The pair is redundant: one node active, the other standby and in
//!    sync, every IVR heard, the active's card carrying the trunk. Faults
//!    hit whichever node is active then.
//! 2. After a random 0.5–2 s, the fault is injected; the bench waits for
//!    the standby to take over where the fault calls for it, repairs what
//!    the fault broke after its hold (restarts a killed daemon or IVR, as
//!    systemd would; brings links back; continues a stopped process;
//!    clears the alarm) and waits for the pair to be redundant again.
//! 3. When the caller is done, every call is attributed from SIPp's own
//!    per-call log ([`attribute`]).
//!
//! Per trial, and per fault over its trials:
//! - `calls_lost`, `calls_failed_in_flight`, `calls_lost_set_up_after_fault`
//!   ([`attribute`] says how a call is charged to a fault);
//! - `mttr_calls_ms`: fault → calls succeed again: the set-up of the first
//!   call placed after the last call that met the outage (failed in
//!   flight, or set up slowly), minus the fault's instant; 0 when no call
//!   met it;
//! - `mttr_redundant_ms`: fault → the pair is redundant again (the repair
//!   included: a restarted daemon's start-up and snapshot);
//! - `takeover_ms`: fault → the new active's "takeover done" on its own
//!   timeline, for the faults that move the role;
//! - `dual_active_ms`: both directors forwarding VIP traffic or claiming
//!   the VIP in ARP at once, seen on the service bridge
//!   ([`crate::bench::observe::DualActiveWatch`]);
//! - `client_gap_ms`: the client's longest run without an answer to its
//!   1 ms probes of VIP:[`rig::PROBE_PORT`];
//! - `role_changes`: acquisitions of the active role, from both daemons'
//!   typed events (`StateChanged` to `active`), against the fault's
//!   [`Fault::role_changes`].
//!
//! `TANDEM_BENCH_FAULTS` (comma-separated names) picks faults,
//! `TANDEM_BENCH_TRIALS` (default 10), `TANDEM_BENCH_RATE` (calls/s,
//! default 100), `TANDEM_BENCH_CALL_MS` (default 30000),
//! `TANDEM_BENCH_HEARTBEAT_MS` (the pair's heartbeat interval; default 10,
//! the lab's), `TANDEM_BENCH_MULTIPLIER` (default 3),
//! `TANDEM_BENCH_PINNED` (default 1: the pair pinned in a bpffs of the
//! rig's). Writes `faults.json`, `faults.md` and the plots. Every
//! wait is bounded; processes are signalled by PID; the lab goes with its
//! `Drop`.

pub mod attribute;
pub mod fault;
pub mod report;
pub mod rig;
pub mod svg;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

pub use self::fault::Fault;
use self::attribute::Mark;
use self::rig::{Rig, acquisitions, last_seq};
use super::calls::Rng;
use crate::actors::sipp::{self, CallerOptions, SippCaller, Transport};
use crate::actors::calls;
use crate::lab::tandemd::{Binaries, WorkDir, wait_for};
pub use report::{markdown, summarize, target_checks};

/// What to run; from the environment in [`Options::from_env`].
#[derive(Clone)]
pub struct Options {
    pub bins: Binaries,
    pub faults: Vec<Fault>,
    pub trials: usize,
    pub rate: u32,
    pub call_ms: u64,
    /// The pair's heartbeat interval, ms: the lab's 10 by default.
    pub heartbeat_ms: u32,
    /// Heartbeats missed before the peer is dead: 3 by default.
    pub multiplier: u32,
    /// SIP over UDP (the default), or over one TCP connection (SIPp
    /// `-t t1`) to the TCP twin of the service, with `sip_persist`.
    pub transport: Transport,
    /// The soak: this long, a director fault every [`SOAK_PERIOD`]
    /// (instead of `trials` rounds), checking after each that the daemons'
    /// memory, descriptors, kernel flows and sync store come back.
    pub soak: Option<Duration>,
    /// The pair's XDP and tables pinned in a bpffs the rig mounts
    /// (`dataplane.pin_dir`), as a deployment runs under systemd: a
    /// killed daemon's program stays, fenced by its dead-man switch, and
    /// its stack never sees the VIP's traffic. `TANDEM_BENCH_PINNED=0`
    /// runs the pair unpinned (the program goes with its process).
    pub pinned: bool,
}

/// One soak cycle: a director fault, then calm.
pub const SOAK_PERIOD: Duration = Duration::from_secs(120);

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
    /// A budget for the whole campaign: the caller is told to place calls
    /// for this long at most (it is stopped when the campaign is done).
    pub fn budget(&self) -> Duration {
        if let Some(d) = self.soak {
            return d + Duration::from_secs(300);
        }
        let per_trial = 25;
        Duration::from_secs((per_trial * (self.trials * self.faults.len()) as u64 + 120).min(6 * 3600))
    }

    /// How long the IVRs' SIPp may run: the campaign's budget, its last
    /// calls and the lab's start.
    pub fn ivr_lifetime(&self) -> Duration {
        self.budget() + Duration::from_millis(self.call_ms) + Duration::from_secs(120)
    }

    /// Makes this run the soak of `d` (at 50 calls/s unless
    /// `TANDEM_BENCH_RATE` says otherwise).
    pub fn set_soak(&mut self, d: Duration) {
        self.soak = Some(d);
        if std::env::var_os("TANDEM_BENCH_RATE").is_none() {
            self.rate = 50;
        }
    }

    /// The faults in the order the campaign injects them, with their trial
    /// numbers: `trials` rounds of every fault; or, in a soak, one
    /// director fault per [`SOAK_PERIOD`], in turn.
    pub fn schedule(&self) -> Vec<(Fault, usize)> {
        match self.soak {
            None => (1..=self.trials).flat_map(|n| self.faults.iter().map(move |&f| (f, n))).collect(),
            Some(d) => {
                let on_dir: Vec<Fault> = self.faults.iter().copied().filter(|f| f.on_director()).collect();
                let cycles = (d.as_secs() / SOAK_PERIOD.as_secs()).max(1) as usize;
                if on_dir.is_empty() {
                    return Vec::new();
                }
                (0..cycles).map(|k| (on_dir[k % on_dir.len()], k / on_dir.len() + 1)).collect()
            }
        }
    }

    pub fn from_env() -> Result<Options> {
        let soak = match std::env::var("TANDEM_BENCH_SOAK_MIN") {
            Err(_) => None,
            Ok(v) => match v.trim().parse::<u64>() {
                Ok(m) if (2..=24 * 60).contains(&m) => Some(Duration::from_secs(m * 60)),
                _ => bail!("TANDEM_BENCH_SOAK_MIN={v:?}: minutes, 2 to 1440"),
            },
        };
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
            rate: env_num("TANDEM_BENCH_RATE", if soak.is_some() { 50 } else { 100 }, |n| (1..=2000).contains(n))?,
            call_ms: env_num("TANDEM_BENCH_CALL_MS", 30_000, |n| (100..=600_000).contains(n))?,
            heartbeat_ms: env_num("TANDEM_BENCH_HEARTBEAT_MS", 10, |n| (1..=1000).contains(n))?,
            multiplier: env_num("TANDEM_BENCH_MULTIPLIER", 3, |n| (2..=20).contains(n))?,
            transport: match std::env::var("TANDEM_BENCH_TRANSPORT").as_deref() {
                Err(_) | Ok("udp") => Transport::Udp,
                Ok("tcp") => Transport::Tcp,
                Ok(v) => bail!("TANDEM_BENCH_TRANSPORT={v:?}: udp or tcp"),
            },
            soak,
            pinned: match std::env::var("TANDEM_BENCH_PINNED").as_deref() {
                Err(_) | Ok("1") => true,
                Ok("0") => false,
                Ok(v) => bail!("TANDEM_BENCH_PINNED={v:?}: 1 (the default) or 0"),
            },
        })
    }

    /// The smoke `cargo xtask test` runs: every fault once, calls of 3 s
    /// at 50 calls/s, heartbeats 10 ms × 5 (debug daemons on a CI machine).
    pub fn smoke(bins: Binaries) -> Options {
        Options {
            bins,
            faults: Fault::ALL.to_vec(),
            trials: 1,
            rate: 50,
            call_ms: 3000,
            heartbeat_ms: 10,
            multiplier: 5,
            transport: Transport::Udp,
            soak: None,
            pinned: true,
        }
    }

    /// What the campaign needs that may be missing on this machine.
    pub fn check_tools(&self) -> Result<()> {
        if self.faults.iter().any(|f| f.needs_nft()) && !on_path("nft") {
            bail!("nft is not installed (`cargo xtask setup` installs Debian's `nftables`): heartbeat_loss needs it");
        }
        if self.faults.iter().any(|f| f.needs_stress_ng()) && crate::lab::noise::stress_ng().is_none() {
            bail!("stress-ng is not installed (`cargo xtask setup` installs it): cpu_starvation needs it");
        }
        Ok(())
    }
}

/// `name` is an executable on PATH or in /usr/sbin (where Debian puts nft).
fn on_path(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/sbin")])
        .any(|d| d.join(name).is_file())
}

/// One caller and the trials it saw.
struct Segment {
    caller: SippCaller,
    marks: Vec<Mark>,
    trials: Vec<Value>,
}

impl Segment {
    fn start(rig: &Rig, o: &Options) -> Result<Segment> {
        let count = u64::from(o.rate) * o.budget().as_secs();
        let mut co = CallerOptions::new(o.rate, count, o.call_ms);
        co.rtp = false;
        co.transport = o.transport;
        let caller = calls::start_caller(&rig.pair.lab, &rig.dir, &co)?;
        // The first calls are through before the first fault.
        if !wait_for(Duration::from_secs(10), || caller.calls_so_far().iter().any(|c| c.established.is_some())) {
            bail!("no call was set up in the first 10 s: {:?}", caller.stats().map(|s| s.summary()));
        }
        Ok(Segment { caller, marks: Vec::new(), trials: Vec::new() })
    }

    /// Stops placing calls (SIGUSR1: SIPp's smooth exit, its calls run to
    /// their end), waits for it, attributes every call; the trials with
    /// their calls, and what no trial could take.
    fn finish(self, o: &Options) -> Result<(Vec<Value>, Value)> {
        let Segment { caller, marks, mut trials } = self;
        let t_end = sipp::wall_now();
        rig::signal(caller.pid(), libc::SIGUSR1);
        let r = caller.wait().context("the caller's report")?;
        let a = attribute::attribute(&r.calls, &marks, o.call_ms as f64 / 1000.0, t_end);
        for (t, m) in trials.iter_mut().zip(a.per_mark) {
            if let (Some(t), Some(m)) = (t.as_object_mut(), m.as_object()) {
                t.extend(m.clone());
            }
        }
        let seg = json!({
            "sipp": r.stats.summary(),
            "calls": r.stats.created(),
            "successful": r.stats.successful(),
            "failed": r.stats.failed(),
            "retransmissions": r.stats.retransmissions(),
            "trials": trials.len(),
            "unattributed": a.unattributed,
        });
        Ok((trials, seg))
    }
}

/// One trial of `fault` (see the module); its record without the calls
/// (those come when the caller is done) and its mark for them.
fn trial(rig: &mut Rig, seg: &mut SippCaller, fault: Fault, n: usize, rng: &mut Rng) -> Result<(Value, Mark)> {
    let n_ivr = rig.ivrs.len();
    if !wait_for(Duration::from_secs(20), || rig.redundant()) {
        bail!("not redundant before the fault: {}", rig.describe());
    }
    if let Some(dead) = rig.ivrs.iter_mut().position(|i| !i.sipp.running()) {
        // Its heartbeats go on, so the directors cannot tell: calls would
        // fail for a reason that is not the fault.
        bail!("the SIPp of {} is not running", rig.ivrs[dead].name);
    }
    if !seg.running() {
        bail!("the caller quit: {:?}", seg.stats().map(|s| s.summary()));
    }
    rig.watch.forget_before(sipp::wall_now() - 1.0);
    let after = 0.5 + 1.5 * rng.next_f64();
    std::thread::sleep(Duration::from_secs_f64(after));
    let ivr_k = (rng.next_f64() * n_ivr as f64) as usize % n_ivr.max(1);
    let a_active = rig.settled().context("the pair moved before the fault")?;
    let seqs = (last_seq(&rig.pair.a), last_seq(&rig.pair.b));
    let t_fault = sipp::wall_now();
    let t0 = Instant::now();
    let mono_fault = tandem_dataplane::monotonic_ns();
    let mut takeover_ms = None;
    let mut takeover = |r: &Rig| -> Result<()> {
        if !fault.moves_role() {
            return Ok(());
        }
        let other = r.director(!a_active);
        if !wait_for(Duration::from_secs(10), || other.state().as_deref() == Some("active")) {
            bail!("the other node did not take over:\na: {}\nb: {}", r.pair.a.log_text(), r.pair.b.log_text());
        }
        // The new active's own timeline (CLOCK_MONOTONIC, as the fault's
        // stamp); the poll's time when it has no such line.
        takeover_ms = Some(
            other
                .timeline()
                .into_iter()
                .find(|(ns, w)| *ns >= mono_fault && w.contains("takeover done"))
                .map_or(t0.elapsed().as_secs_f64() * 1e3, |(ns, _)| (ns - mono_fault) as f64 / 1e6),
        );
        Ok(())
    };
    let done = rig.inject_and_repair(fault, a_active, ivr_k, t0, &mut takeover)?;
    let redundant_again = wait_for(Duration::from_secs(30), || rig.redundant());
    if !redundant_again {
        bail!("not redundant again 30 s after the fault: {}", rig.describe());
    }
    let mttr_redundant_ms = t0.elapsed().as_secs_f64() * 1e3;
    // The observers' window closes a moment after the pair is whole again.
    std::thread::sleep(Duration::from_millis(300));
    let t_done = sipp::wall_now();
    let role_changes = [(&rig.pair.a, seqs.0, done.restarted.0), (&rig.pair.b, seqs.1, done.restarted.1)]
        .iter()
        .map(|(d, seq, fresh)| acquisitions(d, if *fresh { 0 } else { *seq }))
        .sum::<u64>();
    let (least, most) = fault.role_changes();
    let dual = rig.watch.window(t_fault - 0.05, t_done);
    let gap = rig.probe.gap_ms(t_fault - 0.05, t_done);
    let v = json!({
        "trial": n,
        "fault": fault.name(),
        "on": done.on,
        "fault_after_s": (after * 1000.0).round() / 1000.0,
        "t_fault": t_fault,
        "takeover_ms": takeover_ms.map(|t| (t * 10.0).round() / 10.0),
        "mttr_redundant_ms": mttr_redundant_ms.round(),
        "role_changes": role_changes,
        "unexpected_role_changes": role_changes.saturating_sub(most),
        "missing_role_changes": least.saturating_sub(role_changes),
        "dual_active_ms": (dual.ms * 1000.0).round() / 1000.0,
        "dual_active": {"frames_a": dual.frames_a, "frames_b": dual.frames_b, "arp_a": dual.arp_a, "arp_b": dual.arp_b},
        "client_gap_ms": gap.map(|g| (g * 10.0).round() / 10.0),
        "client_probes_lost": rig.probe.lost(t_fault - 0.05, t_done),
        "detail": done.detail,
        "daemons": [rig::resources(&rig.pair.a), rig::resources(&rig.pair.b)],
    });
    eprintln!(
        "faults bench: {} {n}: on {}, takeover {} ms, redundant {} ms, dual-active {} ms, client gap {} ms, role changes {role_changes}",
        fault.name(),
        v["on"].as_str().unwrap_or("?"),
        v["takeover_ms"],
        v["mttr_redundant_ms"],
        v["dual_active_ms"],
        v["client_gap_ms"],
    );
    Ok((v, Mark { fault, at: t_fault, ivr: done.ivr }))
}

/// Runs the campaign and returns its report (no files written).
pub fn campaign(o: &Options) -> Result<Value> {
    crate::lab::privileged::ensure_root("tandem-bench faults", "network namespaces, XDP")?;
    o.check_tools()?;
    let version = sipp::version()?;
    let started = Instant::now();
    let dir = WorkDir::new("bench-faults")?;
    let mut rig = Rig::start(dir.path(), o)?;
    let mut seg = Segment::start(&rig, o)?;
    let mut rng = Rng::from_clock();
    let seed = rng.0;
    let mut trials = Vec::new();
    let mut failures: Vec<(Fault, String)> = Vec::new();
    let mut segments = Vec::new();
    for (fault, n) in o.schedule() {
        let cycle = Instant::now();
        {
            match trial(&mut rig, &mut seg.caller, fault, n, &mut rng) {
                Ok((v, m)) => {
                    seg.trials.push(v);
                    seg.marks.push(m);
                }
                Err(e) => {
                    eprintln!("faults bench: {} trial {n} failed: {e:#}", fault.name());
                    failures.push((fault, format!("trial {n}: {e:#}")));
                    // The pair may be broken: its calls end here, and a
                    // fresh lab and caller go on.
                    let (t, s) = seg.finish(o)?;
                    trials.extend(t);
                    segments.push(s);
                    calls::stop_ivrs(&mut rig.ivrs);
                    drop(rig);
                    rig = Rig::start(dir.path(), o)?;
                    seg = Segment::start(&rig, o)?;
                }
            }
        }
        if o.soak.is_some() {
            std::thread::sleep(SOAK_PERIOD.saturating_sub(cycle.elapsed()));
        }
    }
    let (t, s) = seg.finish(o)?;
    trials.extend(t);
    segments.push(s);
    let watch_dropped = rig.watch.dropped();
    calls::stop_ivrs(&mut rig.ivrs);
    drop(rig);
    let schedule = o.schedule();
    let per_fault: Vec<Value> = o
        .faults
        .iter()
        .filter(|f| schedule.iter().any(|(g, _)| g == *f))
        .map(|&f| {
            let mine: Vec<Value> = trials.iter().filter(|t| t["fault"] == f.name()).cloned().collect();
            let failed: Vec<String> = failures.iter().filter(|(g, _)| *g == f).map(|(_, e)| e.clone()).collect();
            summarize(f, &mine, &failed)
        })
        .collect();
    // For the availability bench: per failure of its model, every trial's
    // client gap (the service's outage, as the failover bench measures it)
    // and calls' MTTR.
    let mut availability = serde_json::Map::new();
    for &f in &o.faults {
        if let Some(name) = f.availability_name() {
            let of = |k: &str| -> Vec<Value> {
                trials
                    .iter()
                    .filter(|t| t["fault"] == f.name())
                    .filter_map(|t| t[k].as_f64())
                    .map(Value::from)
                    .collect()
            };
            availability.insert(
                name.to_string(),
                json!({"client_gap_ms": of("client_gap_ms"), "mttr_calls_ms": of("mttr_calls_ms")}),
            );
        }
    }
    let mut checks = target_checks(&per_fault);
    let soak = o.soak.map(|d| {
        let v = report::soak_checks(&trials, &segments, o);
        checks.extend(v["checks"].as_array().into_iter().flatten().filter_map(|c| c.as_str().map(String::from)));
        json!({"minutes": d.as_secs() / 60, "period_s": SOAK_PERIOD.as_secs(), "resources": v})
    });
    Ok(json!({
        "bench": "faults",
        "sipp": version,
        "elapsed_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "seed": seed,
        "setup": {
            "rate_cps": o.rate,
            "call_ms": o.call_ms,
            "heartbeat_ms": o.heartbeat_ms,
            "multiplier": o.multiplier,
            "trials_per_fault": o.trials,
            "fault_hold_ms": fault::FAULT_HOLD.as_millis() as u64,
            "loss_hold_ms": fault::LOSS_HOLD.as_millis() as u64,
            "loss_percent": fault::LOSS_PERCENT,
            "slow_setup_ms": attribute::SLOW_SETUP_S * 1e3,
            "ivrs": 4,
            "transport": o.transport.name(),
            "service": match o.transport {
                Transport::Udp => "udp VIP:5060 mh sip_persist; probes udp VIP:7070 rr",
                Transport::Tcp => "SIP over one TCP connection (SIPp -t t1) to tcp VIP:5060 rr sip_persist (beside udp VIP:5060 mh); probes udp VIP:7070 rr",
            },
            "cards": "two simulated cards, one shared trunk",
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        },
        "dual_active_watch_dropped": watch_dropped,
        "soak": soak,
        "target_checks": checks,
        "segments": segments,
        "per_fault": per_fault,
        "tandem": availability,
        "trials": trials,
    }))
}

/// Runs the campaign; writes `faults.json`, `faults.md` and the plots
/// under `out` (`faults-tcp.*` over TCP, `faults-soak.*` for the soak, no
/// plots); returns the Markdown.
pub fn run(out: &Path, o: Options) -> Result<String> {
    let report = campaign(&o)?;
    let md = markdown(&report);
    std::fs::create_dir_all(out)?;
    let stem = match (o.soak.is_some(), o.transport) {
        (true, _) => "faults-soak",
        (false, Transport::Udp) => "faults",
        (false, Transport::Tcp) => "faults-tcp",
    };
    std::fs::write(out.join(format!("{stem}.json")), serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(out.join(format!("{stem}.md")), &md)?;
    if stem == "faults" {
        svg::write_plots(&report, out)?;
    }
    Ok(md)
}
