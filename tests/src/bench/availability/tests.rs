use serde_json::{Value, json};

use super::*;
use std::collections::HashMap;

/// πQ = 0, Σπ = 1 for the pair's generator, by Gaussian elimination
/// with partial pivoting (one balance equation replaced by the sum).
fn numeric_chain(lambda: f64, mu: f64, crews: u32) -> [f64; 3] {
    let m = f64::from(crews.min(2));
    // Q[i][j]: rate i → j, states 0 = both up, 1 = one up, 2 = none up.
    let mut q = [[0.0; 3]; 3];
    q[0][1] = 2.0 * lambda;
    q[1][2] = lambda;
    q[1][0] = mu;
    q[2][1] = m * mu;
    for (i, row) in q.iter_mut().enumerate() {
        row[i] = -row.iter().sum::<f64>();
    }
    // Rows of A x = b: Σ_i π_i Q[i][j] = 0 for j = 0, 1, then Σπ = 1.
    let mut a = [[0.0; 4]; 3];
    for j in 0..2 {
        for i in 0..3 {
            a[j][i] = q[i][j];
        }
    }
    a[2] = [1.0, 1.0, 1.0, 1.0];
    for col in 0..3 {
        let piv = (col..3)
            .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
            .unwrap();
        a.swap(col, piv);
        for r in 0..3 {
            if r != col {
                let f = a[r][col] / a[col][col];
                let pivot_row = a[col];
                for (x, p) in a[r].iter_mut().zip(pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    [a[0][3] / a[0][0], a[1][3] / a[1][1], a[2][3] / a[2][2]]
}

fn model() -> Model {
    Model {
        director: [
            Component {
                mtbf_h: 50_000.0,
                mttr_h: 4.0,
            },
            Component {
                mtbf_h: 8_760.0,
                mttr_h: 2.4 / 3600.0,
            },
            Component {
                mtbf_h: 17_520.0,
                mttr_h: 4.4 / 3600.0,
            },
            Component {
                mtbf_h: 50_000.0,
                mttr_h: 4.0,
            },
            Component {
                mtbf_h: 100_000.0,
                mttr_h: 4.0,
            },
        ],
        heartbeat_link: Component {
            mtbf_h: 50_000.0,
            mttr_h: 4.0,
        },
        ivr: Component {
            mtbf_h: 20_000.0,
            mttr_h: 4.0,
        },
        repair_crews: 1,
        call_rate_per_s: 100.0,
        call_s: 180.0,
        single_loss_fraction: 1.0,
    }
}

fn pair(tau_ms: f64, coverage: f64) -> Pair {
    Pair {
        name: "p".into(),
        takeover: [Takeover {
            outage_ms: tau_ms,
            coverage,
            takeovers_per_failure: 1.0,
        }; 5],
        loss_fraction: 0.01,
    }
}

#[test]
fn availability_closed_form_matches_the_numeric_chain() {
    for crews in [1, 2] {
        for (lambda, mu) in [(1e-4, 0.25), (0.01, 0.5), (0.3, 1.0), (2.0, 0.7)] {
            let closed = pair_chain(lambda, mu, crews);
            let num = numeric_chain(lambda, mu, crews);
            for (c, n) in closed.iter().zip(num) {
                assert!(
                    (c - n).abs() <= 1e-9 * c.max(n) + 1e-15,
                    "{closed:?} vs {num:?}"
                );
            }
            assert!((closed.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }
    // Two crews: the nodes are independent, π₀ = (1 − A_node)².
    let [_, _, p0] = pair_chain(0.01, 0.5, 2);
    let u = 0.01 / 0.51;
    assert!((p0 - u * u).abs() < 1e-15);
}

#[test]
fn availability_tends_to_one_as_repair_tends_to_zero() {
    let mut m = model();
    for c in &mut m.director {
        c.mttr_h = 1e-12;
    }
    assert!(1.0 - m.single().availability < 1e-10);
    let p = m.pair(&pair(0.0, 1.0));
    assert!(1.0 - p.availability < 1e-15);
}

#[test]
fn availability_pair_without_takeover_cost_is_one_minus_both_down() {
    let m = model();
    let o = m.pair(&pair(0.0, 1.0));
    let (lambda, mu) = m.node_rates();
    let [_, _, p0] = pair_chain(lambda, mu, m.repair_crews);
    assert_eq!(o.availability, 1.0 - p0);
    assert_eq!(o.p_none_up, p0);
    // The equivalent node has the series availability.
    assert!((mu / (lambda + mu) - m.director_availability()).abs() < 1e-15);
}

#[test]
fn availability_pair_beats_single_director() {
    let m = model();
    let single = m.single();
    for p in [pair(6.0, 1.0), pair(3000.0, 1.0), pair(33.0, 0.95)] {
        let o = m.pair(&p);
        assert!(o.availability > single.availability);
        assert!(o.downtime_s_per_year < single.downtime_s_per_year);
        assert!(o.calls_lost_per_year() < single.calls_lost_per_year());
    }
}

#[test]
fn availability_never_grows_with_the_takeover_time() {
    let m = model();
    let mut last = f64::INFINITY;
    for tau in [0.0, 1.0, 6.0, 33.0, 100.0, 3000.0, 60_000.0] {
        let a = m.pair(&pair(tau, 0.99)).availability;
        assert!(a <= last, "τ = {tau}: {a} > {last}");
        last = a;
    }
}

#[test]
fn availability_single_is_the_series_product() {
    let m = model();
    let want: f64 = m
        .director
        .iter()
        .map(|c| (1.0 / c.mttr_h) / (1.0 / c.mtbf_h + 1.0 / c.mttr_h))
        .product();
    let o = m.single();
    assert!((o.availability - want).abs() < 1e-15);
    assert!((o.downtime_s_per_year - (1.0 - want) * HOURS_PER_YEAR * 3600.0).abs() < 1e-6);
}

fn case(gap: f64, detect: f64, trials: u32, failed: u32) -> Value {
    json!({
        "gap_p99_ms": gap, "detect_p99_ms": detect, "trials": trials,
        "failed_trials": failed, "failed_before_injection_trials": 0,
        "failures": [],
    })
}

fn fixture(dir: &Path, drop_key: Option<(&str, &str, &str)>) {
    let mut fo = json!({ "bench": "failover" });
    for (sys, gap) in [
        ("tandem", 6.0),
        ("keepalived_vrrp", 33.0),
        ("keepalived_bfd", 32.0),
    ] {
        fo[sys] = json!({
            "crash": case(gap, gap - 1.0, 40, 0),
            "kill9": case(4.0, gap, 40, 0),
            "hang": case(12.0, 25.0, 40, 0),
            "link_down": case(gap, gap - 1.0, 40, 2),
        });
    }
    fo["keepalived_vrrp"]["hang"]["failed_trials"] = json!(40);
    fo["keepalived_vrrp"]["hang"]["failures"] =
        json!([{ "reason": "after SIGCONT: b left the active role", "trial": 0 }]);
    if let Some((s, f, k)) = drop_key {
        fo[s][f].as_object_mut().unwrap().remove(k);
    }
    std::fs::write(dir.join("failover.json"), fo.to_string()).unwrap();
    std::fs::write(
        dir.join("calls.json"),
        json!({ "established_calls_lost": 2, "failovers": 20, "calls_in_progress_at_kills": 500 })
            .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("startup.json"),
        json!({ "lone": { "ready_ms": { "p99": 1500.0 } } }).to_string(),
    )
    .unwrap();
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tandem-avail-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn availability_reads_a_failover_fixture() {
    let dir = tempdir("fixture");
    fixture(&dir, None);
    let l = load(&dir, &|_| None).unwrap();
    let tandem = l
        .pairs
        .iter()
        .find(|p| p.name.starts_with("tandem"))
        .unwrap();
    assert_eq!(tandem.takeover[0].outage_ms, 6.0); // crash
    assert_eq!(tandem.takeover[1].outage_ms, 4.0); // kill9
    assert_eq!(tandem.takeover[3].coverage, 1.0 - 2.0 / 40.0); // link_down
    assert_eq!(tandem.takeover[4].outage_ms, 100.0); // card default
    assert_eq!(tandem.loss_fraction, 2.0 / 500.0);
    let defaults = &l.pairs[0];
    assert_eq!(defaults.takeover[0].outage_ms, 3000.0); // gap ≥ detect
    assert_eq!(defaults.takeover[1].outage_ms, 4.0); // gap < detect: kept
    assert_eq!(defaults.loss_fraction, 1.0);
    // One comeback of 40 is a second takeover; the other 39 failures
    // are failed failovers.
    let hang = &l.pairs[1].takeover[2];
    assert_eq!(hang.takeovers_per_failure, 1.0 + 1.0 / 40.0);
    assert_eq!(hang.coverage, 1.0 - 39.0 / 40.0);
    // Restart = RestartSec 1 s + 1.5 s.
    assert!((l.model.director[1].mttr_h - 2.5 / 3600.0).abs() < 1e-15);
    // faults.json, when present, replaces the gap.
    std::fs::write(
        dir.join("faults.json"),
        json!({ "tandem": { "crash": { "client_gap_ms": [1.0, 3.0, 2.0] } } }).to_string(),
    )
    .unwrap();
    let l = load(&dir, &|_| None).unwrap();
    assert_eq!(l.pairs[3].takeover[0].outage_ms, 3.0);
    assert_eq!(l.pairs[3].takeover[1].outage_ms, 4.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn availability_missing_key_and_file_are_named() {
    let dir = tempdir("missing");
    fixture(&dir, Some(("keepalived_bfd", "link_down", "gap_p99_ms")));
    let err = load(&dir, &|_| None).unwrap_err();
    assert_eq!(
        err.downcast_ref::<InputError>(),
        Some(&InputError::MissingKey {
            file: "bench/results/failover.json".into(),
            key: "keepalived_bfd.link_down.gap_p99_ms".into(),
        })
    );
    std::fs::remove_file(dir.join("failover.json")).unwrap();
    let err = load(&dir, &|_| None).unwrap_err();
    assert_eq!(
        err.downcast_ref::<InputError>(),
        Some(&InputError::MissingFile {
            file: "bench/results/failover.json".into(),
            command: "cargo xtask bench failover",
        })
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn availability_env_overrides_and_refusals() {
    let dir = tempdir("env");
    fixture(&dir, None);
    std::fs::remove_file(dir.join("calls.json")).unwrap();
    let vars: HashMap<&str, &str> = [
        ("TANDEM_AVAIL_CALL_RATE", "50"),
        ("TANDEM_AVAIL_TANDEM_LOSS", "0"),
        ("TANDEM_AVAIL_REPAIR_CREWS", "2"),
    ]
    .into();
    let l = load(&dir, &|k| vars.get(k).map(|v| v.to_string())).unwrap();
    assert_eq!(l.model.call_rate_per_s, 50.0);
    assert_eq!(l.model.repair_crews, 2);
    assert_eq!(l.pairs[3].loss_fraction, 0.0);
    for (var, bad) in [
        ("TANDEM_AVAIL_CALL_S", "-1"),
        ("TANDEM_AVAIL_REPAIR_H", "soon"),
        ("TANDEM_AVAIL_COVERAGE", "1.5"),
        ("TANDEM_AVAIL_REPAIR_CREWS", "3"),
    ] {
        let err = load(&dir, &|k| (k == var).then(|| bad.to_string())).unwrap_err();
        match err.downcast_ref::<InputError>() {
            Some(InputError::BadEnv { var: v, value, .. }) => {
                assert_eq!((*v, value.as_str()), (var, bad));
            }
            other => panic!("{var}: {other:?}"),
        }
    }
    // Without calls.json and without the variable: the file is named.
    let err = load(&dir, &|_| None).unwrap_err();
    assert!(matches!(
        err.downcast_ref::<InputError>(),
        Some(InputError::MissingFile {
            command: "cargo xtask bench calls",
            ..
        })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
