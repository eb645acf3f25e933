//! Statistics and reports of the failover bench: nearest-rank
//! percentiles per (system, failure), the JSON, the Markdown table with
//! its notes, the SVG plot and the checks against tandem's targets. Pure
//! functions of the trials: nothing here runs or waits.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::trial::Trial;
use super::{Failure, Options, System};

/// Nearest-rank percentile of sorted `v` (q in 0..=1).
pub(super) fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = (q * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

pub(super) fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

pub(super) fn num(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

#[derive(Default)]
pub(super) struct Case {
    pub(super) trials: Vec<Trial>,
}

impl Case {
    pub(super) fn ok(&self) -> impl Iterator<Item = &Trial> {
        self.trials.iter().filter(|t| t.ok)
    }
    /// `f` of the trials that recovered (`only_recovered`) or of all, sorted, in ms.
    pub(super) fn sorted(&self, f: impl Fn(&Trial) -> Option<u64>, only_recovered: bool) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .trials
            .iter()
            .filter(|t| !only_recovered || t.recovered)
            .filter_map(|t| f(t).map(ms))
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }
    pub(super) fn detect(&self) -> Vec<f64> {
        self.sorted(|t| t.detect_ns, true)
    }
    pub(super) fn takeover(&self) -> Vec<f64> {
        self.sorted(|t| t.takeover_ns, true)
    }
    pub(super) fn garp(&self) -> Vec<f64> {
        self.sorted(|t| t.garp_wire_ns, true)
    }
    /// Gaps of every trial that got past setup (failed ones censored at the limit).
    pub(super) fn gap(&self) -> Vec<f64> {
        self.sorted(
            |t| (t.ok || t.takeover_ns.is_some() || t.gap_ns > 0).then_some(t.gap_ns),
            false,
        )
    }
    pub(super) fn lost(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .trials
            .iter()
            .filter(|t| t.gap_ns > 0)
            .map(|t| t.lost as f64)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }
    pub(super) fn unstable(&self) -> usize {
        self.trials.iter().map(|t| t.unstable.len()).sum()
    }
    pub(super) fn setup_failed(&self) -> usize {
        self.trials
            .iter()
            .filter(|t| {
                !t.ok
                    && t.reason
                        .as_deref()
                        .is_some_and(|r| r.starts_with("setup") || r.starts_with("harness"))
            })
            .count()
    }
    pub(super) fn failed(&self) -> usize {
        self.trials.iter().filter(|t| !t.ok).count()
    }
    /// Steady state observed, in seconds (every attempt's, every trial's).
    pub(super) fn steady_s(&self) -> f64 {
        self.trials.iter().map(|t| t.steady_ns).sum::<u64>() as f64 / 1e9
    }
    /// Role changes seen in that steady state.
    pub(super) fn role_changes(&self) -> usize {
        self.trials.iter().map(|t| t.role_changes).sum()
    }
    /// Failed trials' reasons with their counts, most frequent first.
    pub(super) fn reasons(&self) -> Vec<(String, usize)> {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for t in self.trials.iter().filter(|t| !t.ok) {
            *m.entry(reason_class(t.reason.as_deref().unwrap_or("unknown")))
                .or_default() += 1;
        }
        let mut v: Vec<(String, usize)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
    /// hang: trials in which the old active yielded quietly after SIGCONT,
    /// and trials in which it got that far.
    pub(super) fn quiet_returns(&self) -> (usize, usize) {
        let seen = self.trials.iter().filter(|t| t.returned_quietly.is_some());
        let all: Vec<&Trial> = seen.collect();
        (
            all.iter().filter(|t| t.returned_quietly == Some(true)).count(),
            all.len(),
        )
    }

    pub(super) fn to_json(&self, sys: System, failure: Failure, mac_a: [u8; 6]) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("trials".into(), json!(self.trials.len()));
        o.insert("failed_trials".into(), json!(self.failed()));
        o.insert(
            "failed_before_injection_trials".into(),
            json!(self.setup_failed()),
        );
        for (name, v) in [
            ("detect", self.detect()),
            ("takeover", self.takeover()),
            ("garp_wire", self.garp()),
            ("gap", self.gap()),
        ] {
            for (k, q) in [("min", 0.0), ("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
                let x = if k == "min" {
                    v.first().copied().unwrap_or(f64::NAN)
                } else {
                    pct(&v, q)
                };
                o.insert(format!("{name}_{k}_ms"), num(x));
            }
        }
        let lost = self.lost();
        o.insert("lost_probes".into(), json!(lost.iter().sum::<f64>() as u64));
        o.insert("lost_probes_p50".into(), num(pct(&lost, 0.5)));
        o.insert("lost_probes_p99".into(), num(pct(&lost, 0.99)));
        o.insert("lost_probes_max".into(), num(pct(&lost, 1.0)));
        if failure == Failure::Kill9 {
            let checked = self.ok().filter(|t| !t.arp_answer_macs.is_empty()).count();
            let dead = self
                .ok()
                .filter(|t| t.arp_answer_macs.contains(&mac_a))
                .count();
            o.insert("arp_checked_trials".into(), json!(checked));
            o.insert("dead_node_answered_arp_trials".into(), json!(dead));
            if sys == System::Tandem {
                o.insert(
                    "xdp_left_attached_trials".into(),
                    json!(
                        self.trials
                            .iter()
                            .filter(|t| t.xdp_left == Some(true))
                            .count()
                    ),
                );
            }
        }
        if failure == Failure::Hang {
            let (quiet, seen) = self.quiet_returns();
            o.insert("comeback_checked_trials".into(), json!(seen));
            o.insert("returned_without_second_takeover_trials".into(), json!(quiet));
            o.insert(
                "hung_node_answered_arp_trials".into(),
                json!(
                    self.trials
                        .iter()
                        .filter(|t| t.hung_answered_arp == Some(true))
                        .count()
                ),
            );
        }
        let (steady, changes) = (self.steady_s(), self.role_changes());
        o.insert("steady_state_s".into(), num(steady));
        o.insert("role_changes".into(), json!(changes));
        o.insert("role_changes_per_hour".into(), num(per_hour(changes, steady)));
        o.insert(
            "failure_reasons".into(),
            Value::Object(
                self.reasons()
                    .into_iter()
                    .map(|(r, n)| (r, json!(n)))
                    .collect(),
            ),
        );
        let unstable: Vec<&String> = self.trials.iter().flat_map(|t| t.unstable.iter()).collect();
        o.insert("unstable_setups".into(), json!(unstable.len()));
        o.insert(
            "unstable_examples".into(),
            json!(unstable.iter().take(5).collect::<Vec<_>>()),
        );
        o.insert(
            "client_neigh_on_new_owner_trials".into(),
            json!(
                self.trials
                    .iter()
                    .filter(|t| t.neigh_on_new_owner == Some(true))
                    .count()
            ),
        );
        let fails: Vec<Value> = self
            .trials
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.ok)
            .map(|(i, t)| json!({"trial": i, "reason": t.reason.clone().unwrap_or_default()}))
            .collect();
        o.insert("failures".into(), Value::Array(fails));
        let ns_list = |f: &dyn Fn(&Trial) -> Option<u64>| -> Value {
            Value::Array(
                self.trials
                    .iter()
                    .map(|t| f(t).map_or(Value::Null, |x| num(ms(x))))
                    .collect(),
            )
        };
        o.insert(
            "samples_ms".into(),
            json!({
                "detect": ns_list(&|t| t.detect_ns),
                "takeover": ns_list(&|t| t.takeover_ns),
                "garp_wire": ns_list(&|t| t.garp_wire_ns),
                "gap": ns_list(&|t| Some(t.gap_ns)),
                "lost_probes": Value::Array(self.trials.iter().map(|t| json!(t.lost)).collect()),
            }),
        );
        Value::Object(o)
    }
}

pub(super) fn fmt_ms(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

pub(super) fn trio(v: &[f64]) -> String {
    format!(
        "{} / {} / {}",
        fmt_ms(pct(v, 0.5)),
        fmt_ms(pct(v, 0.99)),
        fmt_ms(pct(v, 1.0))
    )
}

pub(super) type Results = BTreeMap<(System, Failure), Case>;

/// Role changes per hour of steady state (NaN with none observed).
pub(super) fn per_hour(changes: usize, steady_s: f64) -> f64 {
    if steady_s > 0.0 {
        changes as f64 * 3600.0 / steady_s
    } else {
        f64::NAN
    }
}

/// A failure reason without its trial-specific numbers, so that like
/// reasons are counted together.
fn reason_class(r: &str) -> String {
    let mut out = String::new();
    let mut in_num = false;
    for c in r.chars().take(160) {
        if c.is_ascii_digit() || (in_num && c == '.') {
            if !in_num {
                out.push('#');
            }
            in_num = true;
        } else {
            in_num = false;
            out.push(c);
        }
    }
    out
}

/// Per system, over all its failures: (steady s, role changes).
pub(super) fn steady_by_system(res: &Results, sys: System) -> (f64, usize) {
    res.iter()
        .filter(|((s, _), _)| *s == sys)
        .fold((0.0, 0), |(t, n), (_, c)| (t + c.steady_s(), n + c.role_changes()))
}

fn fmt_rate(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.0}")
    } else {
        "–".into()
    }
}

/// `header`: lines that describe the load (the steal generator's
/// figures), placed under the title.
pub(super) fn markdown(
    res: &Results,
    opts: &Options,
    elapsed: Duration,
    checks: &[String],
    header: &str,
) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "# Failover: tandem vs keepalived, same lab, same run ({})\n\n",
        super::mode(opts)
    ));
    if !header.is_empty() {
        s.push_str(header);
        s.push('\n');
    }
    s.push_str(&format!(
        "{} trials per system and failure; the systems run one after the other in the same lab, the failures interleaved (one trial of each per round). \
         Times in ms after the failure (T0, CLOCK_MONOTONIC): p50 / p99 / max (nearest rank; with 50 trials p99 is the 50th value, the max). \
         Run took {:.0} s.\n\n",
        opts.trials,
        elapsed.as_secs_f64()
    ));
    s.push_str("| failure | system | detect p50 / p99 / max | takeover p50 / p99 / max | GARP on the wire p50 / p99 | client gap p50 / p99 / max | lost probes total (p50 / p99 per trial) | failed | unstable setups | steady state s: role changes (per h) |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for f in &opts.failures {
        for sys in &opts.systems {
            let Some(c) = res.get(&(*sys, *f)) else {
                continue;
            };
            let g = c.garp();
            let lost = c.lost();
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} / {} | {} | {} ({} / {}) | {} / {}{} | {} | {:.1}: {} ({}) |\n",
                f.label(),
                sys.label(),
                trio(&c.detect()),
                trio(&c.takeover()),
                fmt_ms(pct(&g, 0.5)),
                fmt_ms(pct(&g, 0.99)),
                trio(&c.gap()),
                lost.iter().sum::<f64>() as u64,
                pct(&lost, 0.5),
                pct(&lost, 0.99),
                c.failed(),
                c.trials.len(),
                if c.setup_failed() > 0 {
                    format!(" ({} before injection)", c.setup_failed())
                } else {
                    String::new()
                },
                c.unstable(),
                c.steady_s(),
                c.role_changes(),
                fmt_rate(per_hour(c.role_changes(), c.steady_s()))
            ));
        }
    }
    s.push_str(&format!(
        "\n## Spontaneous role changes in steady state ({})\n\n",
        super::mode(opts)
    ));
    s.push_str("| system | steady state observed (s) | role changes seen | per hour of steady state |\n|---|---|---|---|\n");
    for sys in &opts.systems {
        let (t, n) = steady_by_system(res, *sys);
        s.push_str(&format!(
            "| {} | {:.1} | {} | {} |\n",
            sys.label(),
            t,
            n,
            fmt_rate(per_hour(n, t))
        ));
    }
    if opts.failures.contains(&Failure::Hang) {
        s.push_str("\n## Hang (SIGSTOP 2 s): after SIGCONT\n\n| system | old active yielded without a second takeover | hung node answered ARP for the VIP during the hang |\n|---|---|---|\n");
        for sys in &opts.systems {
            let Some(c) = res.get(&(*sys, Failure::Hang)) else {
                continue;
            };
            let (quiet, seen) = c.quiet_returns();
            let asked = c.trials.iter().filter(|t| t.hung_answered_arp.is_some()).count();
            let answered = c
                .trials
                .iter()
                .filter(|t| t.hung_answered_arp == Some(true))
                .count();
            s.push_str(&format!(
                "| {} | {quiet} of {seen} | {answered} of {asked} asked |\n",
                sys.label(),
            ));
        }
    }
    s.push_str("\n## Failed trials, by what went wrong\n\n");
    let mut any = false;
    for f in &opts.failures {
        for sys in &opts.systems {
            let Some(c) = res.get(&(*sys, *f)) else {
                continue;
            };
            for (r, n) in c.reasons() {
                any = true;
                s.push_str(&format!("- {} / {}: {n} × {r}\n", sys.key(), f.key()));
            }
        }
    }
    if !any {
        s.push_str("- none\n");
    }
    s.push_str("\n## keepalived ÷ tandem (p99)\n\n| failure | metric | keepalived VRRP ÷ tandem | keepalived BFD ÷ tandem |\n|---|---|---|---|\n");
    for f in &opts.failures {
        let Some(t) = res.get(&(System::Tandem, *f)) else {
            continue;
        };
        for (name, get) in [
            ("detect", Case::detect as fn(&Case) -> Vec<f64>),
            ("takeover", Case::takeover),
            ("client gap", Case::gap),
        ] {
            let tv = pct(&get(t), 0.99);
            let r = |sys: System| {
                res.get(&(sys, *f)).map_or("–".to_string(), |c| {
                    let k = pct(&get(c), 0.99);
                    if tv > 0.0 && k.is_finite() && tv.is_finite() {
                        if k / tv < 1.0 {
                            format!("{:.2}×", k / tv)
                        } else {
                            format!("{:.1}×", k / tv)
                        }
                    } else {
                        "–".into()
                    }
                })
            };
            s.push_str(&format!(
                "| {} | {name} | {} | {} |\n",
                f.key(),
                r(System::KeepalivedVrrp),
                r(System::KeepalivedBfd)
            ));
        }
    }
    s.push_str("\n## Targets (tandem)\n\n");
    for c in checks {
        s.push_str(&format!("- {c}\n"));
    }
    s.push_str(
        "\n## Notes\n\n\
- **Probes.** The client sends a UDP datagram to VIP:5060 every 1 ms (one socket, a sequence number in the payload). \
For tandem the probes go through the active director's XDP dispatcher to the two IVRs (DR) and the IVRs answer the client directly: that is the product path. \
keepalived has no dispatcher in the path: a UDP responder in each director namespace answers for whichever node holds the VIP.\n\
- **Detection.** tandem: the standby's first `state standby -> …` line (its own CLOCK_MONOTONIC stamp). keepalived: the standby's first \
`Receive advertisement timeout` (VRRP) or, with BFD, `(peer) Entering Down state`, stamped when this harness read the line from the pipe.\n\
- **Takeover.** tandem: `takeover done: VIPs owned, GARP sent`. keepalived: `Sending/queueing gratuitous ARPs` (the VIP has been added, the first GARP goes out). \
*GARP on the wire*: the first gratuitous ARP for the VIP from the new owner's MAC seen by a packet socket in the client's namespace, the same observer for every system.\n\
- **Client gap.** The longest interval between two consecutive probe replies from T0 − 50 ms until the probes are answered again (30 in a row); \
a trial that does not recover within 1.5 s counts as failed, with its gap censored at the window's end; lost probes: probes sent in that window without a reply.\n\
- **kill -9.** tandem: SIGKILL of `tandemd` by PID. keepalived: SIGKILL of all its processes by PID (VRRP child, BFD child, then the parent; run with `--dont-respawn`) — killing only the parent makes the children exit cleanly (priority-0 advert), which is not a crash. \
*What a killed daemon leaves behind:* tandem's XDP programs are attached through bpf links owned by the process, so they go with it; the VIP stays on `lo` but the service interface runs with `arp_ignore=1`, so nobody answers ARP for it on the dead node, and the dispatcher is gone: the node is silent on the service network. \
A killed keepalived leaves the VIP on `eth0` with the kernel answering ARP for it, so after the backup's takeover two nodes answer ARP for the VIP, and (with a service that survives the daemon, as here and as with IPVS) the dead-daemon node goes on serving whatever still reaches it — that is why keepalived's client gap under kill -9 is near zero while it has no master anymore.\n\
- **Crash.** The daemon killed and the director's `eth0` and `hb0` set down at once (rtnetlink, within ~100 µs). **Link down.** `eth0` of the active set down alone (tandem: a local fault; the active hands over through the heartbeat link; keepalived: its tracked interface goes down, the instance enters FAULT and b's advert timer runs out).\n\
- **keepalived settings.** 2.2.7 (Debian), VRRPv3, `advert_int 0.01` (its minimum), unicast adverts on the service network, priorities 250 (a) / 200 (b) (skew ≈ 2 ms), default scheduling (no `max_auto_priority`). BFD: `min_rx 10`, `min_tx 10`, `multiplier 3` on the heartbeat link, `track_bfd { peer weight 50 reverse }` (the priority goes up when the peer is lost). \
tandem: `interval_ms = 1`, `multiplier = 3`, heartbeats on the heartbeat link and the service network, witness on (the standby probes it every 1 ms and takes over on an answer to a probe sent after the peer missed two heartbeats, so the witness adds no round trip). Both systems run their loops at SCHED_FIFO 50 (tandem `realtime_priority = 50`; keepalived `vrrp_rt_priority 50`, `bfd_rt_priority 50`).\n\
- **What a takeover waits for.** tandem's takeover is done when the dataplane owns the VIP and the first GARP is out; the VIP's address on `lo` is added by a worker thread after it, because the netlink request waits for the kernel's RTNL mutex: in a crash, the failed node's links going down hold it, and an inline add measured 5–22 ms here (takeover p99 17.3 ms in the previous run). XDP answers ARP and dispatches the VIP's traffic without the address.\n\
- **Why tandem's client gap can end before its takeover.** When a director's `eth0` goes down (crash, link down), the bridge drops its MAC from the forwarding table and floods the client's frames for it to every port; tandem's standby runs the dispatcher too and forwards VIP traffic that reaches it before it owns the VIP, so the probes are answered through b before b has taken over (under link down the gap stays a few ms although the takeover fails or takes ~1 s). A switch that flushes its table on link down does the same. Under kill -9 the dead node's port stays up and nothing is flooded.\n\
- **Unstable setups.** Before the failure, both nodes must keep their roles from the confirmed steady state through the ≥ 55 ms of steady probes; an attempt in which either changed its role by itself (a spurious takeover) is discarded, counted here, and retried (3 attempts, then the trial fails).\n\
- **Hang.** SIGSTOP of every process of the active's daemon by PID at T0, SIGCONT at T0 + 2 s; detect and takeover as for kill -9. While the node is stopped (after the takeover) the client asks for the VIP over ARP once: *hung node answered ARP* counts the trials in which the stopped node's MAC answered. After SIGCONT the pair is watched for 1 s: the trial fails unless the new owner keeps the role (tandem: a is standby and b active by their admin status; keepalived: a enters BACKUP) — a second takeover is a failed trial, its detect and takeover still counted.\n\
- **Role changes in steady state.** Each setup's steady window runs from the confirmed steady state (both nodes' roles read) until T0, or until a discarded attempt is checked; its role changes are the lines of a node entering the active role in it (tandem `state … -> active`, keepalived `Entering MASTER STATE`). Per hour = changes × 3600 / steady seconds: with ~0.1 s of steady state per setup, one change weighs a lot; `TANDEM_BENCH_DWELL_MS` holds each setup longer.\n\
- Percentiles are nearest-rank over the trials that recovered (detect, takeover, GARP) or over all trials (gap, lost probes).\n",
    );
    s
}

/// Log-axis plot: per failure and system, the takeover time (min–max line,
/// p50–p99 box) and the client gap (same, lighter).
pub(super) fn svg(res: &Results, opts: &Options) -> String {
    let rows: Vec<(Failure, System)> = opts
        .failures
        .iter()
        .flat_map(|f| opts.systems.iter().map(move |s| (*f, *s)))
        .collect();
    let (lmin, lmax) = (0.1f64.log10(), 3000f64.log10());
    let (x0, x1) = (330.0, 950.0);
    let row_h = 44.0;
    let top = 60.0;
    let h = top + row_h * rows.len() as f64 + 60.0;
    let x = |v: f64| x0 + (v.clamp(0.1, 3000.0).log10() - lmin) / (lmax - lmin) * (x1 - x0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"980\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
<text x=\"490\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Failover of the active director: takeover time and client-seen gap (ms, log scale)</text>\n\
<text x=\"490\" y=\"40\" text-anchor=\"middle\" fill=\"#555\">line: min–max; box: p50–p99; dark: takeover (T0 → VIP + GARP); light: longest gap in the 1 ms probe stream; {} trials each</text>\n",
        opts.trials
    );
    for v in [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0] {
        let xv = x(v);
        s.push_str(&format!(
            "<line x1=\"{xv:.1}\" y1=\"{top}\" x2=\"{xv:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n<text x=\"{xv:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{v}</text>\n",
            h - 50.0,
            h - 35.0
        ));
    }
    let colors = |sys: System| match sys {
        System::Tandem => ("#1b7837", "#a6dba0"),
        System::KeepalivedVrrp => ("#b2182b", "#f4a582"),
        System::KeepalivedBfd => ("#2166ac", "#92c5de"),
    };
    for (i, (f, sys)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64 + 8.0;
        let Some(c) = res.get(&(*sys, *f)) else {
            continue;
        };
        s.push_str(&format!(
            "<text x=\"10\" y=\"{:.1}\">{}</text>\n<text x=\"10\" y=\"{:.1}\" fill=\"#555\">{}</text>\n",
            y + 12.0,
            f.key(),
            y + 27.0,
            sys.key()
        ));
        for (k, (v, col)) in [(c.takeover(), colors(*sys).0), (c.gap(), colors(*sys).1)]
            .into_iter()
            .enumerate()
        {
            if v.is_empty() {
                continue;
            }
            let yy = y + 6.0 + k as f64 * 16.0;
            let (mn, p50, p99, mx) = (v[0], pct(&v, 0.5), pct(&v, 0.99), pct(&v, 1.0));
            s.push_str(&format!(
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{col}\" stroke-width=\"2\"/>\n",
                x(mn),
                yy + 5.0,
                x(mx),
                yy + 5.0
            ));
            s.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{yy:.1}\" width=\"{:.1}\" height=\"10\" fill=\"{col}\" stroke=\"#333\" stroke-width=\"0.5\"/>\n",
                x(p50),
                (x(p99) - x(p50)).max(2.0)
            ));
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#333\">{}</text>\n",
                x(mx) + 4.0,
                yy + 9.0,
                if k == 0 {
                    format!("takeover p99 {}", fmt_ms(p99))
                } else {
                    format!("gap p99 {}", fmt_ms(p99))
                }
            ));
        }
        let failed = c.failed();
        if failed > 0 {
            s.push_str(&format!(
                "<text x=\"200\" y=\"{:.1}\" fill=\"#b2182b\">{failed}/{} failed</text>\n",
                y + 27.0,
                c.trials.len()
            ));
        }
    }
    s.push_str("</svg>\n");
    s
}

pub(super) fn target_checks(res: &Results, opts: &Options) -> Vec<String> {
    let mut out = Vec::new();
    let mark = |ok: bool| if ok { "PASS" } else { "FAIL" };
    if opts.systems.contains(&System::Tandem) {
        let (steady, changes) = steady_by_system(res, System::Tandem);
        let setups: usize = res
            .iter()
            .filter(|((s, _), _)| *s == System::Tandem)
            .map(|(_, c)| c.trials.iter().map(|t| t.steady_setups).sum::<usize>())
            .sum();
        out.push(format!(
            "spontaneous role changes: {changes} in {steady:.1} s of steady state ({setups} setups) = 0: {}",
            mark(changes == 0)
        ));
    }
    for f in &opts.failures {
        let Some(t) = res.get(&(System::Tandem, *f)) else {
            continue;
        };
        let failed = t.failed();
        let d99 = pct(&t.detect(), 0.99);
        let t99 = pct(&t.takeover(), 0.99);
        let g99 = pct(&t.gap(), 0.99);
        if *f == Failure::Hang {
            let (quiet, seen) = t.quiet_returns();
            out.push(format!(
                "hang: detect p99 {} ms ≤ 25: {}; takeover p99 {} ms; gap p99 {} ms; old active yielded without a second takeover in {quiet} of {seen}; failed trials {} (of {}, {} of them before the failure was injected): {}",
                fmt_ms(d99),
                mark(d99 <= 25.0),
                fmt_ms(t99),
                fmt_ms(g99),
                failed,
                t.trials.len(),
                t.setup_failed(),
                mark(failed == 0)
            ));
            continue;
        }
        out.push(format!(
            "{}: detect p99 {} ms ≤ 5: {}; takeover p99 {} ms ≤ 10: {}; gap p99 {} ms ≤ 15: {}; failed trials {} (of {}, {} of them before the failure was injected): {}",
            f.key(),
            fmt_ms(d99),
            mark(d99 <= 5.0),
            fmt_ms(t99),
            mark(t99 <= 10.0),
            fmt_ms(g99),
            mark(g99 <= 15.0),
            failed,
            t.trials.len(),
            t.setup_failed(),
            mark(failed == 0)
        ));
        let fastest = [System::KeepalivedVrrp, System::KeepalivedBfd]
            .iter()
            .filter_map(|s| res.get(&(*s, *f)).map(|c| pct(&c.takeover(), 0.99)))
            .filter(|x| x.is_finite())
            .fold(f64::INFINITY, f64::min);
        if fastest.is_finite() {
            out.push(format!(
                "{}: keepalived's fastest takeover p99 {} ms ÷ tandem's {} ms = {:.2}× ≥ 3×: {}",
                f.key(),
                fmt_ms(fastest),
                fmt_ms(t99),
                fastest / t99,
                mark(t99.is_finite() && fastest / t99 >= 3.0)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_changes_per_hour_of_steady_state() {
        assert_eq!(per_hour(2, 7200.0), 1.0);
        assert_eq!(per_hour(0, 1.5), 0.0);
        assert!(per_hour(3, 0.0).is_nan());
    }

    #[test]
    fn like_reasons_count_together() {
        assert_eq!(
            reason_class("b left the active role +443.9 ms after SIGCONT (epoch 20)"),
            reason_class("b left the active role +12.0 ms after SIGCONT (epoch 7)")
        );
        let c = Case {
            trials: vec![
                Trial { reason: Some("no takeover by b within 1500 ms".into()), ..Trial::default() },
                Trial { reason: Some("no takeover by b within 1500 ms".into()), ..Trial::default() },
                Trial { ok: true, recovered: true, steady_ns: 2_000_000_000, role_changes: 1, ..Trial::default() },
            ],
        };
        assert_eq!(c.reasons(), vec![("no takeover by b within # ms".to_string(), 2)]);
        assert_eq!(c.failed(), 2);
        assert_eq!(c.role_changes(), 1);
        assert_eq!(c.steady_s(), 2.0);
    }
}
