//! `bench/results/startup.md` from the startup bench's JSON
//! ([`super::startup`]): the exec→READY table, the phase breakdown, the
//! baselines and their ratios, and what bounds start-up, in words
//! computed from the same numbers.

use serde_json::Value;
use tandem_control::startup::Phase;

fn f(v: &Value, path: &str) -> f64 {
    v.pointer(path).and_then(Value::as_f64).unwrap_or(0.0)
}

fn row(v: &Value, path: &str) -> String {
    format!(
        "{:.1} | {:.1} | {:.1}",
        f(v, &format!("{path}/p50")),
        f(v, &format!("{path}/p99")),
        f(v, &format!("{path}/max"))
    )
}

pub(super) fn markdown(r: &Value) -> String {
    let mut s = String::from("# tandemd start-up: exec to READY\n\n");
    s.push_str(&format!(
        "`cargo xtask bench startup` ({} starts per case, `TANDEM_BENCH_STARTS`), {} s; machine: {}; load average before / after: {} / {}.\n\n",
        r["starts"],
        r["seconds"],
        r.pointer("/machine/cpu_model").and_then(Value::as_str).unwrap_or("?"),
        r["loadavg_before"].as_str().unwrap_or("?"),
        r["loadavg_after"].as_str().unwrap_or("?"),
    ));
    s.push_str(
        "Default tables (1,048,576-entry LRU connection and NAT tables, 65,536 calls), \
         default heartbeats (100 ms × 3: `init_hold` 600 ms), the lab's pair file (one UDP rr \
         service with `sip_persist`, two IVRs with heartbeats, a witness). Measured from the \
         exec of `ip netns exec … tandemd` to `READY=1` on a notify socket the bench binds \
         (what systemd waits for: XDP attached, role decided); the phases are the daemon's own \
         (`tandemctl status --json`, `startup`), from `main`.\n\n",
    );
    s.push_str("| case | p50 ms | p99 ms | max ms | starts ok |\n|---|---|---|---|---|\n");
    for (name, key) in [
        ("tandemd alone (decides active)", "/lone/ready_ms"),
        (
            "tandemd beside an active peer (standby)",
            "/joining/ready_ms",
        ),
        (
            "keepalived to its first state",
            "/keepalived/first_state_ms",
        ),
        ("keepalived alone to MASTER", "/keepalived/master_alone_ms"),
        (
            "trivial XDP_TX: load + attach",
            "/trivial_xdp/load_attach_ms",
        ),
        (
            "tandemd before (`TANDEMD_BEFORE`), alone",
            "/before/ready_ms",
        ),
    ] {
        if r.pointer(key).is_none() {
            continue;
        }
        s.push_str(&format!(
            "| {name} | {} | {} |\n",
            row(r, key),
            f(r, &format!("{key}/n"))
        ));
    }
    s.push_str(&format!(
        "\nFailed starts: {} ({}).\n\nRatios (p50): tandemd alone / keepalived alone to MASTER \
         {:.1}×; tandemd joining / keepalived first state {:.1}×; tandemd alone / trivial XDP \
         {:.1}×; tandemd alone now / before {:.2}×.\n\n",
        r["failed"],
        r["failures"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; "))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "none".into()),
        f(r, "/ratios_p50/lone_vs_keepalived_master"),
        f(r, "/ratios_p50/joining_vs_keepalived_first_state"),
        f(r, "/ratios_p50/lone_vs_trivial_xdp"),
        f(r, "/ratios_p50/lone_vs_before"),
    ));
    s.push_str("## Phases (ms, p50 / p99 / max)\n\n| phase | alone | joining |\n|---|---|---|\n");
    let phases: Vec<&str> = Phase::ALL
        .iter()
        .map(|p| p.name())
        .chain(["work", "verifier_cpu"])
        .collect();
    for p in phases {
        s.push_str(&format!(
            "| {p} | {} | {} |\n",
            row(r, &format!("/lone/phases_ms/{p}")).replace(" | ", " / "),
            row(r, &format!("/joining/phases_ms/{p}")).replace(" | ", " / "),
        ));
    }
    if let Some(c) = r
        .pointer("/joining/peer_cpu_ms_per_s")
        .and_then(Value::as_f64)
    {
        s.push_str(&format!(
            "\nThe active peer used {c:.1} ms of CPU per second while the joining starts ran.\n"
        ));
    }
    s.push_str("\nVerifier CPU per program (alone, ms p50 / p99 / max):\n\n");
    if let Some(progs) = r
        .pointer("/lone/phases_ms/program_cpu")
        .and_then(Value::as_object)
    {
        for name in progs.keys() {
            s.push_str(&format!(
                "- `{name}`: {}\n",
                row(r, &format!("/lone/phases_ms/program_cpu/{name}")).replace(" | ", " / ")
            ));
        }
    }
    let (stages, cpu, init, total) = (
        f(r, "/lone/phases_ms/stages/p50"),
        f(r, "/lone/phases_ms/verifier_cpu/p50"),
        f(r, "/lone/phases_ms/init/p50"),
        f(r, "/lone/phases_ms/work/p50"),
    );
    // The program the verifier spends longest on, alone.
    let longest = r
        .pointer("/lone/phases_ms/program_cpu")
        .and_then(Value::as_object)
        .and_then(|progs| {
            progs
                .keys()
                .map(|k| (k.clone(), f(r, &format!("/lone/phases_ms/program_cpu/{k}/p50"))))
                .max_by(|a, b| a.1.total_cmp(&b.1))
        });
    let longest = match longest {
        Some((name, ms)) => format!("the longest, `{name}`, {ms:.0} ms"),
        None => "no per-program figure".to_string(),
    };
    let bound = if init >= 1.0 {
        format!(
            "so for a node alone the protocol bounds it: its `init_hold` ends {init:.0} ms \
             (p50) after the stages are verified"
        )
    } else {
        "so the verifier bounds it, for a node alone as for one joining".to_string()
    };
    s.push_str(&format!(
        "\n## What bounds it\n\n\
         - The verifier. All programs cost {cpu:.0} ms of its CPU (p50; {longest}); the stages, \
         verified in parallel, one thread each, after the attach, take {stages:.0} ms of wall \
         time on this machine's 2 cores (shared with other work: the verifier's CPU time is \
         the figure that does not depend on it). Map creation, 1M-entry LRU tables included, \
         is the `object` phase (≈ 0.1 s).\n\
         - The protocol, for a node alone: the pair's `init_hold` (2 × interval × multiplier = \
         600 ms by default) before it may claim the active role. The kernel records the \
         peer's heartbeats from the attach on, so the hold runs while the stages verify: what \
         is left of it is the `init` phase ({init:.0} ms p50 here), {bound}. A node beside an \
         active peer hears it at once and waits for nothing.\n\
         - Ready within 1 s: {}, {total:.0} ms p50 alone.\n",
        if total <= 1000.0 { "met" } else { "missed" }
    ));
    s
}
