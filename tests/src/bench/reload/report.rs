//! The reload bench's statistics and report: nearest-rank percentiles of
//! microsecond samples ([`Summary`]), their JSON keys (named with their
//! unit: `reply_us_p50`, `apply_us_p99`, …) and the Markdown. Pure
//! functions of what the run measured: nothing here runs or waits.

use serde_json::{Map, Value, json};

/// Nearest-rank percentiles of a set of samples (µs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub n: usize,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// The nearest-rank `q` quantile (0 < q ≤ 1) of `sorted` (not empty).
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Summary {
    /// None for no samples.
    pub fn of(samples: &[u64]) -> Option<Summary> {
        let mut v = samples.to_vec();
        v.sort_unstable();
        let max = *v.last()?;
        Some(Summary {
            n: v.len(),
            p50: nearest_rank(&v, 0.50),
            p90: nearest_rank(&v, 0.90),
            p99: nearest_rank(&v, 0.99),
            max,
        })
    }

    /// `{name}_p50`, `_p90`, `_p99`, `_max` (null without samples) and
    /// `{name}_samples` into `out`. `name` carries the unit (`reply_us`).
    pub fn insert(s: Option<Summary>, name: &str, out: &mut Map<String, Value>) {
        let v = |f: fn(&Summary) -> u64| s.as_ref().map_or(Value::Null, |s| json!(f(s)));
        out.insert(format!("{name}_p50"), v(|s| s.p50));
        out.insert(format!("{name}_p90"), v(|s| s.p90));
        out.insert(format!("{name}_p99"), v(|s| s.p99));
        out.insert(format!("{name}_max"), v(|s| s.max));
        out.insert(format!("{name}_samples"), json!(s.map_or(0, |s| s.n)));
    }
}

/// µs as ms for people: `1234` → `1.23`.
fn ms(us: u64) -> String {
    let m = us as f64 / 1000.0;
    if m >= 100.0 {
        format!("{m:.0}")
    } else if m >= 10.0 {
        format!("{m:.1}")
    } else {
        format!("{m:.2}")
    }
}

fn cell(r: &Value, key: &str) -> String {
    r[key].as_u64().map_or("–".into(), ms)
}

/// The Markdown of the report `r` (the JSON [`super::run`] writes).
pub fn markdown(r: &Value) -> String {
    let mut s = String::new();
    let m = &r["machine"];
    s.push_str("# Live reload: edits and the design maximum on a pair under SIP load\n\n");
    s.push_str(&format!(
        "{} CPUs ({}), kernel {}, load average {} at the start; other labs' processes running at the start / end: {} / {} (the machine is shared: they compete for the same two CPUs); {}; {:.0} s in all. Two tandemd (a active, b standby, state sync on, heartbeats {}), four SIPp IVRs with heartbeats, one SIPp caller at {} calls/s of {} s calls (no RTP: it does not cross the directors in DR mode) through the VIP for the whole measurement, on the pair's first service (udp VIP:5060, {} + `sip_persist`).\n\n",
        m["cpus"],
        m["cpu_model"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?"),
        m["loadavg_at_start"].as_str().unwrap_or("?"),
        m["other_labs_at_start"],
        m["other_labs_at_end"],
        r["sipp"].as_str().unwrap_or("SIPp"),
        r["elapsed_s"].as_f64().unwrap_or(0.0),
        r["lab"]["heartbeat"].as_str().unwrap_or("?"),
        r["lab"]["call_rate_cps"],
        r["lab"]["call_ms"].as_u64().unwrap_or(0) / 1000,
        r["lab"]["scheduler"].as_str().unwrap_or("?"),
    ));
    s.push_str(&format!(
        "## {} weight edits (`real edit -u udp/VIP:5060 -r ivr1 -w W`, W new each time)\n\nEach edit through the library `tandemctl` uses (`config::edit::apply`, `write_atomically`, then `admin::request(Reload)` on a's socket), timed from the start of the edit. Times in ms, nearest rank.\n\n",
        r["edits"]
    ));
    s.push_str("| measure | p50 | p90 | p99 | max | samples |\n|---|---:|---:|---:|---:|---:|\n");
    for (label, key) in [
        (
            "client-seen reload reply (edit start → a's `ReloadReply`, sent once a's maps are written and b's heartbeats carry the new fingerprint)",
            "reply_us",
        ),
        (
            "… of which the edit (read, toml_edit, checked parse, write + fsync + rename)",
            "edit_us",
        ),
        (
            "a's `read_us` (file read and checked off the loop, queueing included)",
            "read_us",
        ),
        (
            "a's `apply_us` (from the plan to its last kernel write, a few writes per loop turn; services published to sync)",
            "apply_us",
        ),
        (
            "standby holds it (edit start → b's `reals` show the new weight; polled every 0.5 ms)",
            "standby_us",
        ),
        (
            "b's own apply (its `Reloaded` event: on its loop)",
            "standby_apply_us",
        ),
    ] {
        s.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {} |\n",
            cell(r, &format!("{key}_p50")),
            cell(r, &format!("{key}_p90")),
            cell(r, &format!("{key}_p99")),
            cell(r, &format!("{key}_max")),
            r[format!("{key}_samples")]
        ));
    }
    s.push_str(&format!(
        "\nEdits followed by a role change that undid them (a, now standby, took b's services back): {}.\n",
        r["edit_changes_undone"]
    ));
    s.push_str(&format!(
        "\nFailed trials: {} of {} ({}).\n",
        r["edit_failed_trials"],
        r["edits"],
        r["edit_failures"]
            .as_object()
            .filter(|o| !o.is_empty())
            .map_or("none".into(), |o| {
                o.iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
    ));

    s.push_str(&format!(
        "\n## The design maximum: 64 services × 32 real servers ({} rounds)\n\n`load`: on the pair of the edits, the pair's file → the 64 × 32 file (63 services and 28 real servers added; 8 of the 64 services are mh; the 28 made-up IVRs, dead, have weight 0 in the first service, see `tests/src/bench/reload/big.rs`), once per round, each from the pair's file. Then on a second pair whose two files are 64 × 32 from the start, per round: one weight in the first service (`one_weight`: ivr1, mh), one weight in service 1 (`one_weight_wlc`: its first real server, wlc, no scheduler table), the same file again (`nothing`); then once back to the pair's file (`back`). Before each, a role change is undone by a switchover on b once a's hold-down is over (counted below). Values: median / max over the trials that a answered, ms; `failed` counts trials with any failure (see the JSON's `big.*.failures`). Lateness: the daemons' `late_turns` delta (turns later than 2 × the heartbeat interval) and the longest loop gap they logged (`LoopLate` events) in the window, a / b.\n\n",
        r["big_rounds"]
    ));
    s.push_str("| reload | changes per trial | a read | a apply | client-seen reply | standby holds it | b apply | sync bytes sent by a | late turns a / b | longest loop gap a / b | failed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for kind in ["load", "one_weight", "one_weight_wlc", "nothing", "back"] {
        let k = &r["big"][kind];
        let pm = |key: &str| match (
            k[format!("{key}_p50")].as_u64(),
            k[format!("{key}_max")].as_u64(),
        ) {
            (Some(a), Some(b)) => format!("{} / {}", ms(a), ms(b)),
            _ => "–".into(),
        };
        let gap = |n: &str| {
            k[format!("loop_gap_us_max_{n}")]
                .as_u64()
                .map_or("–".into(), ms)
        };
        s.push_str(&format!(
            "| `{kind}` | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} |\n",
            k["changes_per_trial"].as_array().map_or("–".into(), |v| v
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")),
            pm("read_us"),
            pm("apply_us"),
            pm("reply_us"),
            if kind == "nothing" {
                "– (nothing to hold)".into()
            } else {
                pm("standby_us")
            },
            pm("standby_apply_us"),
            k["sync_bytes_max"]
                .as_u64()
                .map_or("–".into(), |b| b.to_string()),
            k["late_turns_a"],
            k["late_turns_b"],
            gap("a"),
            gap("b"),
            k["failed_trials"],
        ));
    }
    s.push_str(
        "\n`changes per trial`: the plan a's reply listed; after a role change a runs b's services again, so the next trial's plan also holds what was undone. `sync bytes sent by a`: the largest over the trials a stayed active through, from the reload until b acknowledged everything a had recorded by then; it includes the SIPp calls' own records (about 50 per second).\n",
    );
    s.push_str(&format!(
        "\nDesign-maximum reloads followed by a role change that undid them (a, now standby, took b's services back over sync: the change is in a's file but runs nowhere): {}.",
        r["big_changes_undone"]
    ));
    if r["reals_reply_us_design_max"].is_u64() {
        s.push_str(&format!(
            " One `reals` answer at the design maximum ({} rows), asked of b in the set-up: {} ms client-seen (built in one turn of b's loop; a turn over 20 ms would show as an `AdminConn` row of b's set-up below).",
            r["reals_rows_design_max"],
            cell(r, "reals_reply_us_design_max")
        ));
    }
    s.push('\n');

    s.push_str("\n## Outcome\n\n| measure | value |\n|---|---|\n");
    s.push_str(&format!(
        "| `failed_trials` (edits + big reloads) | {} |\n",
        r["failed_trials"]
    ));
    s.push_str(&format!(
        "| `role_changes` (state changes in either daemon's events during the measurement; states also polled every 10 ms: {} changes seen) | {} |\n",
        r["role_changes_polled"], r["role_changes"]
    ));
    s.push_str(&format!(
        "| switchovers the bench made to bring a back as the active after a role change (`restoring_switchovers`; waiting for a's hold-down first) | {} ({} s of waiting) |\n",
        r["restoring_switchovers"], r["restore_wait_s"]
    ));
    s.push_str(&format!(
        "| role changes during the set-up, before the measurement (not in `role_changes`) | {} |\n",
        r["setup_role_changes"]
    ));
    if let Some(a) = r["aborted"].as_str() {
        s.push_str(&format!("| stopped early | {a} |\n"));
    }
    s.push_str(&format!(
        "| loop lateness over the whole measurement: `late_turns` a / b; longest gap logged a / b (ms) | {} / {}; {} / {} |\n",
        r["late_turns_a"],
        r["late_turns_b"],
        r["loop_gap_us_max_a"].as_u64().map_or("–".into(), ms),
        r["loop_gap_us_max_b"].as_u64().map_or("–".into(), ms),
    ));
    s.push_str(&format!(
        "| config mismatch alarms raised (a / b: the peer's heartbeat fingerprint differs, until b applies) | {} / {} |\n",
        r["config_mismatch_alarms_a"], r["config_mismatch_alarms_b"]
    ));
    s.push_str(&format!(
        "| SIPp calls attempted / successful / failed (`calls_failed`) | {} / {} / {} |\n",
        r["calls_attempted"], r["calls_successful"], r["calls_failed"]
    ));
    s.push_str(&format!(
        "| failed calls by the phase they started in | {} |\n",
        r["calls_failed_by_phase"]
    ));
    s.push_str(&format!(
        "| SIPp retransmissions | {} |\n",
        r["calls_retransmissions"]
    ));
    if let Some(slow) = r["slow_turns"].as_array().filter(|v| !v.is_empty()) {
        s.push_str("\n## Slow loop turns (the daemons' `SlowTurn` events: turns long enough to delay heartbeats)\n\n| stage | node | window | what the turn handled | turns | longest (ms) |\n|---|---|---|---|---:|---:|\n");
        for t in slow {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                t["stage"].as_str().unwrap_or("?"),
                t["node"].as_str().unwrap_or("?"),
                t["window"].as_str().unwrap_or("?"),
                t["during"].as_str().unwrap_or("?"),
                t["count"],
                t["max_us"].as_u64().map_or("–".into(), ms)
            ));
        }
    }
    s.push_str(&format!(
        "\n## Baseline\n\n{}\n",
        r["baseline_note"].as_str().unwrap_or("")
    ));
    if let Some(notes) = r["notes"].as_array() {
        s.push_str("\n## Notes\n\n");
        for n in notes {
            s.push_str(&format!("- {}\n", n.as_str().unwrap_or("")));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(
            Summary::of(&v),
            Some(Summary {
                n: 100,
                p50: 50,
                p90: 90,
                p99: 99,
                max: 100
            })
        );
        assert_eq!(
            Summary::of(&[7]),
            Some(Summary {
                n: 1,
                p50: 7,
                p90: 7,
                p99: 7,
                max: 7
            })
        );
        // Ten samples: p99 is the tenth value, p90 the ninth.
        let ten = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
        let s = Summary::of(&ten).unwrap();
        assert_eq!((s.p50, s.p90, s.p99, s.max), (5, 9, 10, 10));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn keys_carry_the_unit_and_are_null_without_samples() {
        let mut m = Map::new();
        Summary::insert(Summary::of(&[3, 1, 2]), "apply_us", &mut m);
        Summary::insert(None, "standby_us", &mut m);
        assert_eq!(m["apply_us_p50"], json!(2));
        assert_eq!(m["apply_us_max"], json!(3));
        assert_eq!(m["apply_us_samples"], json!(3));
        assert_eq!(m["standby_us_p99"], Value::Null);
        assert_eq!(m["standby_us_samples"], json!(0));
    }

    #[test]
    fn milliseconds_for_people() {
        assert_eq!(ms(1234), "1.23");
        assert_eq!(ms(12_345), "12.3");
        assert_eq!(ms(123_456), "123");
    }
}
