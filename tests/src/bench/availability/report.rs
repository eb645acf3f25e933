//! The report: the formulas, the Markdown tables and the JSON.

use serde_json::{Value, json};

use super::*;

pub(super) fn fmt_duration(s: f64) -> String {
    if s >= 3600.0 {
        format!("{:.2} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.1} min", s / 60.0)
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1000.0)
    }
}

pub(super) fn fmt_count(x: f64) -> String {
    if x >= 100.0 {
        let n = x.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        out
    } else if x >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

pub(super) fn fmt_ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// The formulas, as the report states them.
pub const FORMULAS: [&str; 5] = [
    "component: two-state Markov chain, up → down at λ = 1/MTBF, down → up at μ = 1/MTTR; A = μ/(λ+μ) = MTBF/(MTBF+MTTR)",
    "single director: components in series, A₁ = Π_i μ_i/(λ_i+μ_i); every failure is an outage until its repair",
    "pair: each director an equivalent node, λ = Σ λ_i, μ = λ A₁/(1−A₁); three-state chain 2 → 1 at 2λ, 1 → 0 at λ, 1 → 2 at μ, 0 → 1 at mμ (m repair crews); ρ = λ/μ: π₂ = 1/(1+2ρ+2ρ²/m), π₁ = 2ρπ₂, π₀ = (2ρ²/m)π₂",
    "pair: U = π₀ + Σ_i π₂ λ_i (c_i k_i τ_i + (1−c_i) r_i), A = 1 − U (τ_i: outage of a takeover, c_i: coverage, k_i: takeovers per failure, r_i: repair time)",
    "calls: N = call rate × mean duration in progress; lost per year = N × (loss fraction × failovers + outages until repair) + call rate × downtime (attempts during outages: an upper bound, SIP retransmits after 500 ms)",
];

/// The report's Markdown.
pub fn markdown(l: &Loaded, outcomes: &[Outcome]) -> String {
    let m = &l.model;
    let mut s =
        String::from("# Availability: single director, keepalived pairs, tandem's pair\n\n");
    s.push_str(
        "`cargo xtask bench availability`: steady-state availability from the failover bench's \
         measured outages and the stated assumptions (no lab). Every number marked *assumption* \
         is one: no MTBF here comes from a cited source; each is a parameter (environment \
         variables in `tests/src/bench/availability.rs`).\n\n",
    );
    s.push_str("## Results\n\n");
    s.push_str(&format!(
        "At {} calls/s of {} s each ({} calls in progress), {} h per year:\n\n",
        fmt_count(m.call_rate_per_s),
        m.call_s,
        fmt_count(m.calls_in_progress()),
        HOURS_PER_YEAR
    ));
    s.push_str(&results_table(l, outcomes));
    if let Some(p) = outcomes.iter().find(|o| o.failovers_per_year > 0.0) {
        s.push_str(&format!(
            "\nBoth directors down at once (π₀ = {:.2e}) is {} of every pair's downtime a year, \
             the same for each (one node model); the takeovers add the column *of it in \
             takeovers*. So the pairs' availabilities are close, and they differ in the calls a \
             failover cuts.\n",
            p.p_none_up,
            fmt_duration(p.p_none_up * HOURS_PER_YEAR * 3600.0),
        ));
    }
    s.push_str(&format!(
        "\nCommon to every system, not in the rows: IVR failures cut {} calls a year \
         (N × 8760 / MTBF_IVR; the directors route new calls around a dead IVR); the shared \
         trunk is out of scope.\n\n",
        fmt_count(m.ivr_calls_lost_per_year())
    ));
    s.push_str("## Formulas\n\n");
    for f in FORMULAS {
        s.push_str(&format!("- {f}\n"));
    }
    s.push_str(
        "\nWhat is where: a hardware failure is the failover bench's `crash` (daemon killed, \
         both links down at once), a daemon crash its `kill9`, a hang its `hang` (SIGSTOP), a \
         service link failure its `link_down`. A single director's daemon crash lasts a \
         systemd restart, a hang the watchdog and a restart; every other repair is a person's. \
         The pairs share the directors' chain (the same node for every pair); they differ in \
         τ, c, k and the calls a failover loses. The heartbeat link has a second path in both \
         pairs (no outage on its own). The keepalived defaults row takes 3 s where the \
         measured gap is the detection (crash, link down) and keeps the measured gap where it \
         is shorter than the detection (kill -9, hang: keepalived leaves the VIP and the \
         service behind, so what reaches the old node is still served).\n\n",
    );
    s.push_str("## Inputs\n\n| input | value | unit | source |\n|---|---:|---|---|\n");
    for i in &l.inputs {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            i.label,
            fmt_value(i.value),
            i.unit,
            i.source
        ));
    }
    s.push_str("\n## Takeovers per failure class\n\nτ ms / c / k per pair and class, and where each came from:\n\n| pair | class | τ ms | c | k | source |\n|---|---|---:|---:|---:|---|\n");
    for src in &l.takeover_sources {
        let p = &l.pairs[src.pair];
        let i = Failure::ALL
            .iter()
            .position(|f| *f == src.failure)
            .unwrap_or(0);
        let t = &p.takeover[i];
        s.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} | {} |\n",
            p.name,
            src.failure.label(),
            fmt_ms(t.outage_ms),
            t.coverage,
            t.takeovers_per_failure,
            src.source
        ));
    }
    s.push_str(
        "\nc and k are from the bench's 40 trials per case: 0 failed of 40 gives c = 1, which \
         bounds 1 − c only by about 3/40 (rule of three); `TANDEM_AVAIL_COVERAGE` sets c for \
         every pair. keepalived's hang trials all failed the bench's check because the woken \
         node took the role back: counted as a second takeover (k = 2), not as a failed \
         failover.\n",
    );
    s
}

pub(super) fn fmt_value(x: f64) -> String {
    if x.fract() == 0.0 && x >= 100.0 {
        fmt_count(x)
    } else if x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x >= 0.01 {
        format!("{x:.3}")
    } else {
        format!("{x:.5}")
    }
}

/// The result table alone (the README copies it).
pub fn results_table(l: &Loaded, outcomes: &[Outcome]) -> String {
    let mut s = String::from(
        "| system | takeover τ ms: hardware / daemon crash / hang / link / card | availability | nines | downtime per year | of it in takeovers | calls lost per year (cut + attempted) | failovers per year |\n|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for o in outcomes {
        let pair = l.pairs.iter().find(|p| p.name == o.system);
        let (tau, in_takeovers, failovers) = match pair {
            Some(p) => (
                p.takeover
                    .iter()
                    .map(|t| fmt_ms(t.outage_ms))
                    .collect::<Vec<_>>()
                    .join(" / "),
                fmt_duration(o.takeover_downtime_s_per_year),
                format!("{:.2}", o.failovers_per_year),
            ),
            None => (
                "— (every failure an outage until repair)".to_string(),
                "—".to_string(),
                "—".to_string(),
            ),
        };
        s.push_str(&format!(
            "| {} | {} | {:.9} | {:.2} | {} | {} | {} ({} + {}) | {} |\n",
            o.system,
            tau,
            o.availability,
            o.nines(),
            fmt_duration(o.downtime_s_per_year),
            in_takeovers,
            fmt_count(o.calls_lost_per_year()),
            fmt_count(o.established_calls_lost_per_year),
            fmt_count(o.attempted_calls_lost_per_year),
            failovers,
        ));
    }
    s
}

/// The report's JSON.
pub fn json_report(l: &Loaded, outcomes: &[Outcome]) -> Value {
    let inputs: serde_json::Map<String, Value> = l
        .inputs
        .iter()
        .map(|i| {
            (
                i.key.to_string(),
                json!({ "value": i.value, "unit": i.unit, "source": i.source, "label": i.label }),
            )
        })
        .collect();
    let takeovers: Vec<Value> = l
        .takeover_sources
        .iter()
        .map(|src| {
            let p = &l.pairs[src.pair];
            let i = Failure::ALL
                .iter()
                .position(|f| *f == src.failure)
                .unwrap_or(0);
            let t = &p.takeover[i];
            json!({
                "system": p.name,
                "failure": src.failure.key(),
                "takeover_ms": t.outage_ms,
                "coverage": t.coverage,
                "takeovers_per_failure": t.takeovers_per_failure,
                "source": src.source,
            })
        })
        .collect();
    let results: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let pair = l.pairs.iter().find(|p| p.name == o.system);
            json!({
                "system": o.system,
                "availability": o.availability,
                "unavailability": 1.0 - o.availability,
                "nines": o.nines(),
                "downtime_s_per_year": o.downtime_s_per_year,
                "downtime_min_per_year": o.downtime_s_per_year / 60.0,
                "takeover_downtime_s_per_year": o.takeover_downtime_s_per_year,
                "calls_lost_per_year": o.calls_lost_per_year(),
                "established_calls_lost_per_year": o.established_calls_lost_per_year,
                "attempted_calls_lost_per_year": o.attempted_calls_lost_per_year,
                "failovers_per_year": o.failovers_per_year,
                "outages_until_repair_per_year": o.outages_until_repair_per_year,
                "p_none_up": o.p_none_up,
                "loss_fraction_per_failover": pair.map(|p| p.loss_fraction),
                "takeover_ms": pair.map(|p| {
                    Failure::ALL
                        .iter()
                        .zip(&p.takeover)
                        .map(|(f, t)| (f.key().to_string(), json!(t.outage_ms)))
                        .collect::<serde_json::Map<_, _>>()
                }),
            })
        })
        .collect();
    let (lambda, mu) = l.model.node_rates();
    json!({
        "bench": "availability",
        "hours_per_year": HOURS_PER_YEAR,
        "formulas": FORMULAS,
        "inputs": inputs,
        "calls_in_progress": l.model.calls_in_progress(),
        "director": {
            "availability": l.model.director_availability(),
            "node_lambda_per_h": lambda,
            "node_mu_per_h": mu,
            "node_mttr_h": 1.0 / mu,
        },
        "takeovers": takeovers,
        "results": results,
        "common": {
            "ivr_calls_lost_per_year": l.model.ivr_calls_lost_per_year(),
            "out_of_scope": ["shared trunk", "IVRs (routed around; their calls cut alike for every system)", "heartbeat link (a second heartbeat path in both pairs)"],
        },
    })
}

