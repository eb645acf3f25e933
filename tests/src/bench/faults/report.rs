//! The campaign's summary per fault, its verdicts against the issue's
//! targets, and its Markdown.

use serde_json::{Value, json};

use super::fault::Fault;

/// The dual-active target: at most this long, on every director fault.
pub const DUAL_ACTIVE_TARGET_MS: f64 = 1.0;
/// The calls' MTTR target for director faults (p99).
pub const MTTR_TARGET_MS: f64 = 10.0;

fn percentile(v: &mut [f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    Some(v[i.min(v.len() - 1)])
}

/// The per-fault summary of its trials (with their calls attributed).
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
    let (least, most) = fault.role_changes();
    json!({
        "fault": fault.name(),
        "on_director": fault.on_director(),
        "allowed_role_changes": [least, most],
        "trials": trials.len() + failures.len(),
        "failed_trials": failures.len(),
        "failures": failures,
        "calls_lost": sum("calls_lost"),
        "calls_lost_at_hangup": sum("calls_lost_at_hangup"),
        "calls_lost_set_up_after_fault": sum("calls_lost_set_up_after_fault"),
        "calls_failed_in_flight": sum("calls_failed_in_flight"),
        "calls_in_progress_at_fault": sum("in_progress_at_fault"),
        "role_changes": sum("role_changes"),
        "unexpected_role_changes": sum("unexpected_role_changes"),
        "missing_role_changes": sum("missing_role_changes"),
        "client_probes_lost": sum("client_probes_lost"),
        "mttr_calls_ms": series("mttr_calls_ms"),
        "mttr_redundant_ms": series("mttr_redundant_ms"),
        "takeover_ms": series("takeover_ms"),
        "dual_active_ms": series("dual_active_ms"),
        "client_gap_ms": series("client_gap_ms"),
    })
}

/// The targets that this campaign measures, each PASS or MISS.
pub fn target_checks(per_fault: &[Value]) -> Vec<String> {
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    let mut out = Vec::new();
    for f in per_fault {
        let name = f["fault"].as_str().unwrap_or("?");
        let failed = f["failed_trials"].as_u64().unwrap_or(0);
        let unexpected = f["unexpected_role_changes"].as_u64().unwrap_or(0);
        let missing = f["missing_role_changes"].as_u64().unwrap_or(0);
        let roles = format!(
            "role changes outside {} per trial: {unexpected} more, {missing} fewer: {}",
            f["allowed_role_changes"],
            verdict(unexpected == 0 && missing == 0)
        );
        if f["on_director"].as_bool() == Some(true) {
            let lost = f["calls_lost"].as_u64().unwrap_or(0);
            let p99 = f["mttr_calls_ms"]["p99"].as_f64();
            let dual = f["dual_active_ms"]["max"].as_f64();
            out.push(format!(
                "{name}: established calls lost {lost} = 0: {}; dual-active max {} ≤ {DUAL_ACTIVE_TARGET_MS} ms: {}; calls' MTTR p99 {} ≤ {MTTR_TARGET_MS} ms: {}; {roles}; failed trials {failed}",
                verdict(lost == 0),
                dual.map_or("-".to_string(), |p| format!("{p:.2} ms")),
                verdict(dual.is_some_and(|d| d <= DUAL_ACTIVE_TARGET_MS)),
                p99.map_or("-".to_string(), |p| format!("{p:.1} ms")),
                verdict(p99.is_some_and(|p| p <= MTTR_TARGET_MS)),
            ));
        } else {
            out.push(format!("{name}: {roles}; failed trials {failed}"));
        }
    }
    out
}

/// Slack for a daemon's descriptors over its first soak cycle's count.
pub const SOAK_FD_SLACK: u64 = 4;
/// Slack for a daemon's resident memory over its first cycle's: × 1.25 +
/// 8 MiB (allocator pools, the flow tables' fill).
pub const SOAK_RSS_FACTOR: f64 = 1.25;
pub const SOAK_RSS_SLACK_KB: u64 = 8192;

/// The soak's leak checks, from the daemons' resources read at the end of
/// every cycle (the pair redundant again): per director, every cycle's
/// descriptors and memory against its first cycle's (a restarted daemon
/// starts lower, so it only helps), the kernel's connection table bounded
/// by the flows the load keeps up (a flow per call: ×2), and SIPp's counts
/// adding up. The sync store's call records are bounded by the calls the
/// load keeps up with their linger after the BYE (×2), plus every call
/// that failed (one that never saw its end stays its idle timeout).
pub fn soak_checks(trials: &[Value], segments: &[Value], o: &super::Options) -> Value {
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    let steady_calls = (f64::from(o.rate) * o.call_ms as f64 / 1000.0).ceil() as u64;
    let linger_s = tandem_control::sync::runtime::ENDED_CALL_LINGER.as_secs();
    let failed: u64 = segments.iter().filter_map(|s| s["failed"].as_u64()).sum();
    let calls_bound = 2 * (steady_calls + u64::from(o.rate) * linger_s) + failed;
    let mut checks = Vec::new();
    let mut series = serde_json::Map::new();
    for name in ["a", "b"] {
        let rows: Vec<&Value> = trials
            .iter()
            .filter_map(|t| t["daemons"].as_array())
            .flatten()
            .filter(|d| d["director"] == name)
            .collect();
        let get = |k: &str| rows.iter().map(|d| d[k].as_u64()).collect::<Vec<_>>();
        let (fds, rss, flows, calls) = (get("fds"), get("rss_kb"), get("kernel_flows"), get("sync_calls"));
        let first = |v: &[Option<u64>]| v.iter().flatten().next().copied().unwrap_or(0);
        let max = |v: &[Option<u64>]| v.iter().flatten().max().copied().unwrap_or(0);
        let (fd0, rss0) = (first(&fds), first(&rss));
        let (fd_max, rss_max, flows_max, calls_max) = (max(&fds), max(&rss), max(&flows), max(&calls));
        let rss_bound = (rss0 as f64 * SOAK_RSS_FACTOR) as u64 + SOAK_RSS_SLACK_KB;
        checks.push(format!(
            "soak {name}: descriptors {fd0} → at most {fd_max} ≤ {}: {}; resident {rss0} kB → at most {rss_max} kB ≤ {rss_bound}: {}; kernel flows at most {flows_max} ≤ {}: {}; sync call records at most {calls_max} ≤ {calls_bound}: {}",
            fd0 + SOAK_FD_SLACK,
            verdict(fd_max <= fd0 + SOAK_FD_SLACK),
            verdict(rss_max <= rss_bound),
            2 * steady_calls,
            verdict(flows_max <= 2 * steady_calls),
            verdict(calls_max <= calls_bound),
        ));
        series.insert(name.to_string(), json!({"fds": fds, "rss_kb": rss, "kernel_flows": flows, "sync_calls": calls}));
    }
    for (k, s) in segments.iter().enumerate() {
        let (c, ok, bad) = (s["calls"].as_u64(), s["successful"].as_u64(), s["failed"].as_u64());
        let adds_up = matches!((c, ok, bad), (Some(c), Some(ok), Some(bad)) if c == ok + bad);
        checks.push(format!(
            "soak caller {}: created {} = successful {} + failed {}: {}",
            k + 1,
            s["calls"],
            s["successful"],
            s["failed"],
            verdict(adds_up)
        ));
    }
    json!({"checks": checks, "per_director": series})
}

fn cell(v: &Value) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

pub fn markdown(r: &Value) -> String {
    let mut s = String::new();
    let st = &r["setup"];
    s.push_str("# Fault campaign: faults under SIP load in the pair lab\n\n");
    s.push_str(&format!(
        "`cargo xtask bench faults`: {}; one caller at {} calls/s for the whole campaign, calls of {} ms (no RTP), four SIPp IVRs, {}, state sync on, simulated cards on a shared trunk, heartbeats {} ms × {}, a client probing VIP:7070 every 1 ms; {} trials per fault in rounds; {} CPUs; {} s in all; seed {}.\n\n",
        r["sipp"].as_str().unwrap_or("SIPp"),
        st["rate_cps"],
        st["call_ms"],
        st["service"].as_str().unwrap_or("?"),
        st["heartbeat_ms"],
        st["multiplier"],
        st["trials_per_fault"],
        st["cpus"],
        r["elapsed_s"],
        r["seed"],
    ));
    s.push_str("| fault | trials (failed) | in progress at the fault | `calls_lost` (at hang-up) | lost, set up after | failed in flight | `mttr_calls_ms` p50 / p99 / max | `mttr_redundant_ms` p50 / p99 | takeover ms p50 / p99 | `dual_active_ms` max | client gap ms p50 / max | `role_changes` (outside allowed) |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---|---|---|---:|---|---:|\n");
    for f in r["per_fault"].as_array().into_iter().flatten() {
        let outside = f["unexpected_role_changes"].as_u64().unwrap_or(0) + f["missing_role_changes"].as_u64().unwrap_or(0);
        s.push_str(&format!(
            "| {} | {} ({}) | {} | {} ({}) | {} | {} | {} / {} / {} | {} / {} | {} / {} | {} | {} / {} | {} ({outside}) |\n",
            f["fault"].as_str().unwrap_or("?"),
            f["trials"],
            f["failed_trials"],
            f["calls_in_progress_at_fault"],
            f["calls_lost"],
            f["calls_lost_at_hangup"],
            f["calls_lost_set_up_after_fault"],
            f["calls_failed_in_flight"],
            cell(&f["mttr_calls_ms"]["p50"]),
            cell(&f["mttr_calls_ms"]["p99"]),
            cell(&f["mttr_calls_ms"]["max"]),
            cell(&f["mttr_redundant_ms"]["p50"]),
            cell(&f["mttr_redundant_ms"]["p99"]),
            cell(&f["takeover_ms"]["p50"]),
            cell(&f["takeover_ms"]["p99"]),
            f["dual_active_ms"]["max"].as_f64().map_or("-".into(), |x| format!("{x:.2}")),
            cell(&f["client_gap_ms"]["p50"]),
            cell(&f["client_gap_ms"]["max"]),
            f["role_changes"],
        ));
    }
    s.push_str("\n## Targets\n\n");
    for c in r["target_checks"].as_array().into_iter().flatten() {
        s.push_str(&format!("- {}\n", c.as_str().unwrap_or("")));
    }
    s.push_str("\n## Callers\n\n");
    for (k, g) in r["segments"].as_array().into_iter().flatten().enumerate() {
        s.push_str(&format!(
            "- caller {}: {} trials; {}; charged to no fault: {} lost, {} failed in flight ({} not judged: cut by the end)\n",
            k + 1,
            g["trials"],
            g["sipp"].as_str().unwrap_or("?"),
            g["unattributed"]["calls_lost"],
            g["unattributed"]["calls_failed_in_flight"],
            g["unattributed"]["cut_by_the_end"],
        ));
    }
    s.push_str(
        "\n`calls_lost`: set up, and failed (SIPp got no 200 to its BYE from the IVR that answered), charged to every fault it lived through (to an IVR fault alone when that IVR held it); at hang-up: once, to the fault whose window its BYE was sent in. \
`mttr_calls_ms`: fault → the set-up of the first call placed after the last call that met the outage (failed in flight, or set up in more than 250 ms: retransmitted). \
`mttr_redundant_ms`: fault → active + standby in sync + every IVR heard + the active's card on the trunk, repair included (a restarted daemon's start-up and snapshot; a link back after 2 s; the loss rules gone after 10 s). \
Takeover: fault → the new active's `takeover done` on its own timeline. \
`dual_active_ms`: both directors forwarding VIP traffic or claiming the VIP in ARP at once, seen on their bridge ports. \
Client gap: the longest run of unanswered 1 ms probes of VIP:7070.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_and_its_checks_name_what_missed() {
        let trials = vec![
            json!({"calls_lost": 0, "calls_lost_set_up_after_fault": 0, "calls_failed_in_flight": 2, "in_progress_at_fault": 300,
                   "role_changes": 1, "unexpected_role_changes": 0, "missing_role_changes": 0, "mttr_calls_ms": 4.0,
                   "mttr_redundant_ms": 900.0, "takeover_ms": 3.0, "dual_active_ms": 0.0, "client_gap_ms": 5.0}),
            json!({"calls_lost": 2, "calls_lost_set_up_after_fault": 0, "calls_failed_in_flight": 0, "in_progress_at_fault": 310,
                   "role_changes": 2, "unexpected_role_changes": 1, "missing_role_changes": 0, "mttr_calls_ms": 20.0,
                   "mttr_redundant_ms": 950.0, "takeover_ms": 4.0, "dual_active_ms": 3.5, "client_gap_ms": 9.0}),
        ];
        let s = summarize(Fault::Kill9, &trials, &["trial 3: x".to_string()]);
        assert_eq!(s["trials"], 3);
        assert_eq!(s["failed_trials"], 1);
        assert_eq!(s["calls_lost"], 2);
        assert_eq!(s["unexpected_role_changes"], 1);
        assert_eq!(s["mttr_calls_ms"]["p99"].as_f64(), Some(20.0));
        assert_eq!(s["dual_active_ms"]["max"].as_f64(), Some(3.5));
        let c = target_checks(&[s]);
        assert_eq!(c.len(), 1);
        assert!(c[0].starts_with("kill9: established calls lost 2 = 0: MISS"), "{}", c[0]);
        assert!(c[0].contains("dual-active max 3.50 ms ≤ 1 ms: MISS"), "{}", c[0]);
        assert!(c[0].contains("MTTR p99 20.0 ms ≤ 10 ms: MISS"), "{}", c[0]);
        assert!(c[0].contains("1 more, 0 fewer: MISS"), "{}", c[0]);
    }

    #[test]
    fn a_fault_that_allows_no_role_change_misses_on_one() {
        let t = json!({"role_changes": 1, "unexpected_role_changes": 1, "missing_role_changes": 0});
        let c = target_checks(&[summarize(Fault::HeartbeatLoss, &[t], &[])]);
        assert!(c[0].starts_with("heartbeat_loss: "), "{}", c[0]);
        assert!(c[0].contains("role changes outside [0,0] per trial: 1 more, 0 fewer: MISS"), "{}", c[0]);
    }

    #[test]
    fn the_soak_flags_memory_that_does_not_come_back_and_counts_that_do_not_add_up() {
        let o = super::super::Options {
            soak: Some(std::time::Duration::from_secs(600)),
            rate: 50,
            call_ms: 3000,
            ..super::super::Options::smoke(crate::lab::tandemd::Binaries {
                tandemd: "tandemd".into(),
                tandemctl: "tandemctl".into(),
            })
        };
        let row = |d: &str, fds: u64, rss: u64, flows: u64, calls: u64| {
            json!({"director": d, "fds": fds, "rss_kb": rss, "kernel_flows": flows, "sync_calls": calls})
        };
        let trials: Vec<Value> = [(78, 44_000, 140, 10), (79, 50_000, 150, 20), (78, 70_000, 160, 30)]
            .iter()
            .map(|&(f, r, k, c)| json!({"daemons": [row("a", f, r, k, c), row("b", 78, 44_000, 400, 3_604 + 10 * c)]}))
            .collect();
        let segments = vec![
            json!({"calls": 10, "successful": 8, "failed": 2}),
            json!({"calls": 10, "successful": 8, "failed": 1}),
        ];
        let v = soak_checks(&trials, &segments, &o);
        let c: Vec<&str> = v["checks"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert_eq!(c.len(), 4, "{c:?}");
        // a: descriptors within 78 + 4; memory 70,000 kB over 44,000 × 1.25 + 8,192.
        assert!(c[0].contains("descriptors 78 → at most 79 ≤ 82: PASS"), "{}", c[0]);
        assert!(c[0].contains("at most 70000 kB ≤ 63192: MISS"), "{}", c[0]);
        assert!(c[0].contains("kernel flows at most 160 ≤ 300: PASS"), "{}", c[0]);
        // b: its table holds more flows than the load keeps up, twice over.
        assert!(c[1].contains("kernel flows at most 400 ≤ 300: MISS"), "{}", c[1]);
        // Call records: 2 × (150 + 50 × 32 s of linger) + 3 failed = 3,503.
        assert!(c[0].ends_with("sync call records at most 30 ≤ 3503: PASS"), "{}", c[0]);
        assert!(c[1].ends_with("sync call records at most 3904 ≤ 3503: MISS"), "{}", c[1]);
        assert!(c[2].ends_with("successful 8 + failed 2: PASS"), "{}", c[2]);
        assert!(c[3].ends_with("successful 8 + failed 1: MISS"), "{}", c[3]);
        assert_eq!(v["per_director"]["a"]["rss_kb"], json!([44_000, 50_000, 70_000]));
    }

    #[test]
    fn faults_parse_by_name_and_director_faults_are_told_apart() {
        for f in Fault::ALL {
            assert_eq!(Fault::parse(f.name()), Some(f));
        }
        assert_eq!(Fault::parse("meteor"), None);
        assert!(Fault::Kill9.on_director() && !Fault::IvrHang.on_director());
        assert_eq!(Fault::HeartbeatLinkCut.role_changes(), (0, 0));
        assert_eq!(Fault::Partition.role_changes(), (1, 2));
        assert!(Fault::RedAlarm.moves_role() && !Fault::CpuStarvation.moves_role());
    }
}
