//! `cargo xtask bench calls`: real SIP calls (SIPp) through two `tandemd`
//! in the pair lab (four SIPp IVRs with heartbeats, the UDP service mh +
//! `sip_persist`, state sync on).
//!
//! 1. **Rate ramp**: 1 s calls without RTP at 20, 50, 100, 200, 400, 600,
//!    800, 1000, 1500, 2000, 2500, 3000, 4000, 5000 calls/s, five seconds
//!    of calls per step, one step after the
//!    other while steps pass. A step passes when SIPp placed every call,
//!    none failed, and SIPp kept up with the rate (its achieved rate ≥ 90 %
//!    of the target). `max_rate_cps` is the highest passing rate: the lab's
//!    capacity, two SIPp ends and two directors on one 2-vCPU machine,
//!    which bounds what this measures (RTP does not cross the directors, so
//!    it is left out here; the failover phase carries it).
//! 2. **Failovers**, on a fresh pair (the ramp's ~100,000 calls would
//!    overfill the Call-ID tables): 20 cycles (`TANDEM_BENCH_FAILOVERS`), each with its
//!    own SIPp caller at 20 calls/s, 3 s calls with RTP, 6 s of placing:
//!    `kill -9` of the active at a random instant 1.5–2.5 s in, the old
//!    active restarted (it stands by and takes the snapshot), switched
//!    back by `tandemctl switchover`, all while calls are in progress.
//!    Every failed call is attributed: established before the kill (lost
//!    by the kill); established between the kill and the new active's
//!    takeover (set up through the killed node, whose XDP program still
//!    dispatches until its process is gone, but whose daemon can no
//!    longer sync the new Call-ID); established after the takeover but
//!    before the switchback (lost by the switchback); never established
//!    (in flight: its INVITE met a failing director).
//!    `established_calls_lost` is the sum of the first three over every
//!    cycle.
//!
//! Writes `calls.json` and `calls.md`. Every wait is bounded; processes are
//! started and stopped by PID; the lab goes with its `Drop`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::actors::calls::{self, Ivr};
use crate::actors::sipp::{self, CallerOptions, CallerReport};
use crate::lab::tandemd::{Binaries, Director, Pair, PairOptions, WorkDir, wait_for};

/// What to run; from the environment in [`Options::from_env`].
pub struct Options {
    pub bins: Binaries,
    /// Rates of the ramp, calls per second.
    pub rates: Vec<u32>,
    /// Seconds of calls per ramp step.
    pub step_secs: u32,
    /// Failover cycles.
    pub failovers: usize,
}

impl Options {
    /// `TANDEMD`/`TANDEMCTL` (default: next to this executable),
    /// `TANDEM_BENCH_RATES` (comma-separated), `TANDEM_BENCH_FAILOVERS`.
    pub fn from_env() -> Result<Options> {
        let rates = match std::env::var("TANDEM_BENCH_RATES") {
            Ok(v) => v
                .split(',')
                .map(|r| {
                    r.trim()
                        .parse::<u32>()
                        .with_context(|| format!("TANDEM_BENCH_RATES: {r:?} is not a rate"))
                })
                .collect::<Result<Vec<_>>>()?,
            Err(_) => vec![
                20, 50, 100, 200, 400, 600, 800, 1000, 1500, 2000, 2500, 3000, 4000, 5000,
            ],
        };
        let failovers = match std::env::var("TANDEM_BENCH_FAILOVERS") {
            Ok(v) => v
                .parse()
                .with_context(|| format!("TANDEM_BENCH_FAILOVERS: {v:?}"))?,
            Err(_) => 20,
        };
        Ok(Options {
            bins: Binaries::from_env()?,
            rates,
            step_secs: 5,
            failovers,
        })
    }
}

/// A small xorshift generator for the kill instants (no dependency, seeded
/// from the clock, the seed written to the report; the fault campaign's
/// fault instants too).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// Seeded from the wall clock (never 0); the seed is `self.0`.
    pub(crate) fn from_clock() -> Rng {
        Rng(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1)
    }

    pub(crate) fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn num(v: &Option<Value>, k: &str) -> u64 {
    v.as_ref()
        .and_then(|v| v.get(k))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

fn text(v: &Option<Value>, k: &str) -> String {
    v.as_ref()
        .and_then(|v| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Waits for every IVR to hold no call (bounded).
fn ivrs_idle(ivrs: &mut [Ivr], timeout: Duration) {
    let end = Instant::now() + timeout;
    for i in ivrs.iter_mut() {
        i.sipp
            .wait_idle(end.saturating_duration_since(Instant::now()));
    }
}

fn stats_json(r: &CallerReport) -> Value {
    json!({
        "created": r.stats.created(),
        "successful": r.stats.successful(),
        "failed": r.stats.failed(),
        "failed_by_cause": r.stats.failures(),
        "retransmissions": r.stats.retransmissions(),
        "out_of_call_messages": r.stats.out_of_call(),
        "exit_code": r.exit_code,
        "per_ivr": r.per_ivr(),
    })
}

/// One ramp step.
fn ramp_step(pair: &Pair, ivrs: &mut [Ivr], dir: &Path, rate: u32, secs: u32) -> Result<Value> {
    let mut o = CallerOptions::new(rate, u64::from(rate * secs), 1000);
    o.rtp = false;
    let t = Instant::now();
    let caller = calls::start_caller(&pair.lab, dir, &o)?;
    let r = caller.wait()?;
    let elapsed = t.elapsed().as_secs_f64();
    let achieved = r.stats.get("CallRate") as f64;
    // SIPp's cumulative CallRate is over its whole run (calls + their end):
    // the placing rate is what matters, from the first to the last INVITE.
    let starts: Vec<f64> = r.calls.iter().filter_map(|c| c.started).collect();
    let placing = match (
        starts.iter().cloned().fold(f64::NAN, f64::min),
        starts.iter().cloned().fold(f64::NAN, f64::max),
    ) {
        (a, b) if b > a => (starts.len() as f64 - 1.0) / (b - a),
        _ => 0.0,
    };
    let pass = r.stats.created() == o.count
        && r.stats.failed() == 0
        && r.stats.successful() == o.count
        && placing >= 0.9 * f64::from(rate);
    eprintln!(
        "calls bench: {rate} calls/s: {} ; placed at {placing:.1}/s; {}",
        r.stats.summary(),
        if pass { "pass" } else { "FAIL" }
    );
    ivrs_idle(ivrs, Duration::from_secs(5));
    let _ = achieved;
    let mut v = stats_json(&r);
    v["rate_cps"] = json!(rate);
    v["calls"] = json!(o.count);
    v["call_ms"] = json!(o.duration_ms);
    v["placing_rate_cps"] = json!((placing * 10.0).round() / 10.0);
    v["elapsed_s"] = json!((elapsed * 100.0).round() / 100.0);
    v["pass"] = json!(pass);
    Ok(v)
}

/// tandemd's own timeline after `t0` (CLOCK_MONOTONIC ns): ms from `t0` to
/// the first line containing `pat`.
fn since(d: &Director, t0: u64, pat: &str) -> Option<f64> {
    d.timeline()
        .into_iter()
        .find(|(ns, w)| *ns >= t0 && w.contains(pat))
        .map(|(ns, _)| (ns - t0) as f64 / 1e6)
}

/// One failover cycle: kill -9 of a (active) mid-call, b takes over, a
/// restarted and synced, switched back to a; the caller's calls attributed.
fn failover_cycle(
    pair: &mut Pair,
    ivrs: &mut [Ivr],
    dir: &Path,
    n: usize,
    rng: &mut Rng,
) -> Result<Value> {
    // A fresh or just switched-back pair may still be settling: wait for
    // it (bounded) before the cycle starts.
    let settled = wait_for(Duration::from_secs(10), || {
        pair.a.state().as_deref() == Some("active") && pair.b.state().as_deref() == Some("standby")
    });
    if !settled {
        bail!(
            "cycle {n}: the pair is not a active, b standby: {:?} / {:?}",
            pair.a.state(),
            pair.b.state()
        );
    }
    if !wait_for(Duration::from_secs(10), || {
        text(&pair.b.sync(), "state") == "in sync"
    }) {
        bail!("cycle {n}: b not in sync: {:?}", pair.b.sync());
    }
    let o = CallerOptions::new(20, 120, 3000);
    let caller = calls::start_caller(&pair.lab, dir, &o)?;
    let kill_after = 1.5 + rng.next_f64();
    std::thread::sleep(Duration::from_secs_f64(kill_after));
    let t_kill = sipp::wall_now();
    let kill_ns = pair.a.kill9().unwrap_or(0);
    // kill9 returns once the process is reaped: its XDP program is gone.
    let t_reaped = sipp::wall_now();
    if !wait_for(Duration::from_secs(5), || {
        pair.b.state().as_deref() == Some("active")
    }) {
        bail!("cycle {n}: b did not take over:\n{}", pair.b.log_text());
    }
    let t_active = sipp::wall_now();
    // The old active comes back as standby and takes b's snapshot.
    pair.a.start()?;
    if !wait_for(Duration::from_secs(15), || {
        pair.a.state().as_deref() == Some("standby") && text(&pair.a.sync(), "state") == "in sync"
    }) {
        bail!(
            "cycle {n}: the restarted a did not stand by in sync: {:?}\n{}",
            pair.a.sync(),
            pair.a.log_text()
        );
    }
    let restarted = sipp::wall_now();
    let a_sync = pair.a.sync();
    let b_sync = pair.b.sync();
    let t_switch = sipp::wall_now();
    let switch_ns = tandem_dataplane::monotonic_ns();
    if !pair.b.switchover() {
        bail!("cycle {n}: switchover on b refused:\n{}", pair.b.log_text());
    }
    if !wait_for(Duration::from_secs(5), || {
        pair.a.state().as_deref() == Some("active") && pair.b.state().as_deref() == Some("standby")
    }) {
        bail!(
            "cycle {n}: the switchover back to a did not complete:\na: {}\nb: {}",
            pair.a.log_text(),
            pair.b.log_text()
        );
    }
    let r = caller.wait()?;
    ivrs_idle(ivrs, Duration::from_secs(5));
    // b's takeover on its own timeline, as wall clock (the two clocks
    // advance together over these few seconds).
    let b_takeover_ms = since(&pair.b, kill_ns, "takeover done");
    let t_takeover = b_takeover_ms
        .map_or(t_active, |ms| t_kill + ms / 1000.0)
        .max(t_reaped);
    let mut lost_kill = Vec::new();
    let mut lost_dying = Vec::new();
    let mut lost_switch = Vec::new();
    let mut lost_later = Vec::new();
    let mut in_flight = Vec::new();
    for c in r.failed_calls() {
        let at = |e: f64| json!({"call": c.number, "established_ms_after_kill": ((e - t_kill) * 1e4).round() / 10.0});
        match c.established {
            Some(e) if e <= t_kill => lost_kill.push(at(e)),
            Some(e) if e <= t_takeover => lost_dying.push(at(e)),
            Some(e) if e <= t_switch => lost_switch.push(at(e)),
            Some(e) => lost_later.push(at(e)),
            None => in_flight.push(json!({"call": c.number})),
        }
    }
    let established_before_kill = r
        .calls
        .iter()
        .filter(|c| c.established_before(t_kill))
        .count();
    let in_progress_at_kill = r
        .calls
        .iter()
        .filter(|c| c.established_before(t_kill) && c.done.is_none_or(|d| d > t_kill))
        .count();
    let in_progress_at_switch = r
        .calls
        .iter()
        .filter(|c| c.established_before(t_switch) && c.done.is_none_or(|d| d > t_switch))
        .count();
    let detail = json!({
        "cycle": n,
        "kill_after_s": (kill_after * 1000.0).round() / 1000.0,
        "calls": r.stats.created(),
        "successful": r.stats.successful(),
        "failed": r.stats.failed(),
        "failed_by_cause": r.stats.failures(),
        "retransmissions": r.stats.retransmissions(),
        "established_before_kill": established_before_kill,
        "in_progress_at_kill": in_progress_at_kill,
        "in_progress_at_switchback": in_progress_at_switch,
        "lost_at_kill": lost_kill.len(),
        "lost_through_killed_node": lost_dying.len(),
        "lost_at_switchback": lost_switch.len(),
        "lost_after_switchback": lost_later.len(),
        "in_flight_lost": in_flight.len(),
        "lost_calls": { "kill": lost_kill, "through_killed_node": lost_dying, "switchback": lost_switch, "later": lost_later, "in_flight": in_flight },
        "a_reaped_ms": ((t_reaped - t_kill) * 1e4).round() / 10.0,
        "b_active_seen_ms": ((t_active - t_kill) * 1e4).round() / 10.0,
        "b_detect_ms": since(&pair.b, kill_ns, "-> takeover"),
        "b_takeover_ms": b_takeover_ms,
        "a_back_in_sync_s": ((restarted - t_kill) * 100.0).round() / 100.0,
        "a_snapshot_calls": num(&a_sync, "calls"),
        "a_sync_at_switchback": {
            "calls": num(&a_sync, "calls"),
            "records": num(&a_sync, "records"),
            "applied": num(&a_sync, "applied"),
            "kernel_errors": num(&a_sync, "kernel_errors"),
            "last_seq": num(&a_sync, "last_seq"),
        },
        "b_sync_at_switchback": {
            "calls": num(&b_sync, "calls"),
            "last_seq": num(&b_sync, "last_seq"),
            "acked": num(&b_sync, "acked"),
            "snapshots": num(&b_sync, "snapshots"),
            "overflows": num(&b_sync, "overflows"),
        },
        "switchback_takeover_ms": since(&pair.a, switch_ns, "takeover done"),
    });
    eprintln!(
        "calls bench: failover {n}: {} ; in progress at kill {in_progress_at_kill}, lost {} at kill, {} through the killed node, {} at switchback, {} in flight",
        r.stats.summary(),
        lost_kill.len(),
        lost_dying.len(),
        lost_switch.len(),
        in_flight.len()
    );
    Ok(detail)
}

/// Runs the bench; writes `calls.json` and `calls.md` under `out`; returns the Markdown.
pub fn run(out: &Path, opts: Options) -> Result<String> {
    crate::lab::privileged::ensure_root("tandem-bench calls", "network namespaces, XDP")?;
    let version = sipp::version()?;
    let started = Instant::now();
    let dir = WorkDir::new("bench-calls")?;
    // Maglev over the Call-ID (`TANDEM_BENCH_SCHEDULER` to change it):
    // both directors build the same table from the same configuration, so
    // even a dialog the active could not sync before it died (set up in the
    // instant of a kill -9) is scheduled to the same IVR by the new active.
    let scheduler = std::env::var("TANDEM_BENCH_SCHEDULER").unwrap_or_else(|_| "mh".into());
    let o = PairOptions { scheduler, ..PairOptions::default() };
    let pair = Pair::start(4, &o, dir.path(), &opts.bins, None)?;
    let mut ivrs = calls::start_ivrs(&pair.lab, dir.path(), true, true)?;
    if !wait_for(Duration::from_secs(10), || calls::reals_alive(&pair.a, 4)) {
        bail!("a does not hear every IVR: {:?}", pair.a.reals());
    }

    // 1. Rate ramp, after a warm-up step that is not counted: the first
    // calls of a fresh lab meet cold neighbour tables and SIPp start-up,
    // and were retransmitted (up to 268 retransmissions in a 20 calls/s
    // step that then passed at 100 and 1,000 calls/s without any).
    let _ = ramp_step(&pair, &mut ivrs, dir.path(), 10, 2)?;
    let mut steps = Vec::new();
    let mut max_rate = 0;
    for &rate in &opts.rates {
        let v = ramp_step(&pair, &mut ivrs, dir.path(), rate, opts.step_secs)?;
        let pass = v["pass"].as_bool() == Some(true);
        steps.push(v);
        if !pass {
            break;
        }
        max_rate = rate;
    }

    // 2. Failovers, on a fresh pair: the ramp leaves some 100,000 calls
    // in the directors' Call-ID tables (idle timeout 1 h), more than the
    // kernel's table holds (65,536), which is a capacity test of its own.
    calls::stop_ivrs(&mut ivrs);
    drop(ivrs);
    drop(pair);
    let mut pair = Pair::start(4, &o, dir.path(), &opts.bins, None)?;
    let mut ivrs = calls::start_ivrs(&pair.lab, dir.path(), true, true)?;
    if !wait_for(Duration::from_secs(10), || calls::reals_alive(&pair.a, 4)) {
        bail!("a does not hear every IVR: {:?}", pair.a.reals());
    }
    let mut rng = Rng::from_clock();
    let seed = rng.0;
    let mut cycles = Vec::new();
    for n in 1..=opts.failovers {
        cycles.push(failover_cycle(
            &mut pair,
            &mut ivrs,
            dir.path(),
            n,
            &mut rng,
        )?);
    }
    let sum = |k: &str| {
        cycles
            .iter()
            .map(|c| c[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let lost_kill = sum("lost_at_kill");
    let lost_dying = sum("lost_through_killed_node");
    let lost_switch = sum("lost_at_switchback");
    let per_ivr = calls::stop_ivrs(&mut ivrs);
    let rtp: BTreeMap<String, u64> = per_ivr
        .iter()
        .map(|(n, _, r)| (n.clone(), r.received))
        .collect();
    drop(pair);

    let report = json!({
        "bench": "calls",
        "sipp": version,
        "elapsed_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "max_rate_cps": max_rate,
        "max_rate_is_ramp_top": steps.iter().all(|v| v["pass"].as_bool() == Some(true)),
        "failovers": cycles.len(),
        "established_calls_lost": lost_kill + lost_dying + lost_switch,
        "established_calls_lost_through_killed_node": lost_dying,
        "established_calls_lost_at_kill": lost_kill,
        "established_calls_lost_at_switchback": lost_switch,
        "in_flight_calls_lost": sum("in_flight_lost"),
        "calls_in_progress_at_kills": sum("in_progress_at_kill"),
        "calls_in_progress_at_switchbacks": sum("in_progress_at_switchback"),
        "failover_calls": sum("calls"),
        "failover_calls_failed": sum("failed"),
        "rtp_packets_per_ivr": rtp,
        "seed": seed,
        "lab": {
            "ivrs": 4,
            "service": format!("udp VIP:5060 {} sip_persist", o.scheduler),
            "heartbeat": "10 ms x 3, link + service network",
            "ivr_heartbeat_ms": calls::IVR_HEARTBEAT_INTERVAL.as_millis() as u64,
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        },
        "ramp": steps,
        "per_failover": cycles,
    });
    let md = markdown(&report);
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("calls.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    std::fs::write(out.join("calls.md"), &md)?;
    Ok(md)
}

fn markdown(r: &Value) -> String {
    let mut s = String::new();
    s.push_str("# Calls: SIPp through two tandemd in the pair lab\n\n");
    s.push_str(&format!(
        "{}; four SIPp IVRs (UAS on the VIP, SDP to their own address, RTP echo), one SIPp caller on client:5060, UDP service {} + `sip_persist`, state sync on; {} CPUs; {:.0} s in all.\n\n",
        r["sipp"].as_str().unwrap_or("SIPp"),
        r["lab"]["service"].as_str().unwrap_or("").split(' ').nth(2).unwrap_or("?"),
        r["lab"]["cpus"],
        r["elapsed_s"].as_f64().unwrap_or(0.0)
    ));
    s.push_str("| measure | value |\n|---|---|\n");
    s.push_str(&format!(
        "| `max_rate_cps`: highest rate with every call successful (1 s calls, no RTP) | {} calls/s{} |\n",
        r["max_rate_cps"],
        if r["max_rate_is_ramp_top"].as_bool() == Some(true) { " (the top of the ramp: no step failed)" } else { "" }
    ));
    s.push_str(&format!(
        "| `established_calls_lost` over {} failovers (kill -9 of the active + switchback each) | {}: {} established before the kills, {} set up through the killed node after its kill, {} at the switchbacks |\n",
        r["failovers"],
        r["established_calls_lost"],
        r["established_calls_lost_at_kill"],
        r["established_calls_lost_through_killed_node"],
        r["established_calls_lost_at_switchback"]
    ));
    s.push_str(&format!(
        "| calls in progress at the kills / at the switchbacks | {} / {} |\n",
        r["calls_in_progress_at_kills"], r["calls_in_progress_at_switchbacks"]
    ));
    s.push_str(&format!(
        "| calls lost in flight (never established: INVITE met a failing director) | {} |\n",
        r["in_flight_calls_lost"]
    ));
    s.push_str(&format!(
        "| calls placed during the failovers / failed | {} / {} |\n",
        r["failover_calls"], r["failover_calls_failed"]
    ));
    s.push_str("\n## Rate ramp\n\n| rate (calls/s) | calls | placed at (calls/s) | successful | failed | retransmissions | per IVR | result |\n|---:|---:|---:|---:|---:|---:|---|---|\n");
    for st in r["ramp"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            st["rate_cps"],
            st["calls"],
            st["placing_rate_cps"],
            st["successful"],
            st["failed"],
            st["retransmissions"],
            st["per_ivr"],
            if st["pass"].as_bool() == Some(true) {
                "pass"
            } else {
                "FAIL"
            }
        ));
    }
    s.push_str("\n## Failovers\n\nEach: 120 calls at 20/s, 3 s each with RTP; kill -9 of the active (a) at the given time, b takes over, a restarted (snapshot), switched back.\n\n");
    s.push_str("| # | kill at (s) | in progress at kill | lost at kill | lost through the killed node | a reaped (ms) | in progress at switchback | lost at switchback | in flight lost | b takeover (ms, tandemd timeline) | failed (SIPp) | retransmissions |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for c in r["per_failover"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            c["cycle"],
            c["kill_after_s"],
            c["in_progress_at_kill"],
            c["lost_at_kill"],
            c["lost_through_killed_node"],
            c["a_reaped_ms"],
            c["in_progress_at_switchback"],
            c["lost_at_switchback"],
            c["in_flight_lost"],
            c["b_takeover_ms"]
                .as_f64()
                .map_or("-".into(), |v| format!("{v:.2}")),
            c["failed"],
            c["retransmissions"]
        ));
    }
    s.push_str(
        "\nA call counts as lost when SIPp got no 200 to its BYE from the IVR that answered its INVITE (SIPp counts it failed). \
`lost through the killed node`: set up after the kill -9 but before b's takeover: the killed daemon's XDP program \
still dispatched the INVITE until its process was gone (`a reaped`), but no daemon was left to sync the new Call-ID, \
so the new active sent the call's BYE to another IVR. `in flight`: the call never got its 200 to the INVITE.\n",
    );
    s
}
