//! The inputs: the measured reports read (`failover.json`, `calls.json`,
//! `startup.json`, `faults.json`) and the `TANDEM_AVAIL_*` parameters.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use super::*;

/// Why an input could not be read.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("{file} not found: `{command}` writes it")]
    MissingFile { file: String, command: &'static str },
    #[error("{file}: no number at `{key}`")]
    MissingKey { file: String, key: String },
    #[error("{file}: {what}")]
    Invalid { file: String, what: String },
    #[error("{var}={value}: want {want}")]
    BadEnv {
        var: &'static str,
        value: String,
        want: &'static str,
    },
}

/// One measured case of the failover bench.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchCase {
    pub gap_p99_ms: f64,
    pub detect_p99_ms: f64,
    pub trials: f64,
    /// Failed trials after the failure was injected, not counting comebacks.
    pub failed: f64,
    /// Hang trials in which the woken node took the role back.
    pub comebacks: f64,
}

impl BenchCase {
    /// c = 1 − failed ÷ trials (trials that failed before the injection
    /// are not trials of the failover).
    pub fn coverage(&self) -> f64 {
        if self.trials <= 0.0 {
            return 1.0;
        }
        1.0 - self.failed / self.trials
    }

    pub fn takeovers_per_failure(&self) -> f64 {
        if self.trials <= 0.0 {
            return 1.0;
        }
        1.0 + self.comebacks / self.trials
    }
}

pub(super) fn number(v: &Value, file: &str, path: &[&str]) -> Result<f64, InputError> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).unwrap_or(&Value::Null);
    }
    cur.as_f64().ok_or_else(|| InputError::MissingKey {
        file: file.into(),
        key: path.join("."),
    })
}

/// `<system>.<failure>` of a failover report (`failover.json`).
pub fn failover_case(
    v: &Value,
    file: &str,
    system: &str,
    failure: &str,
) -> Result<BenchCase, InputError> {
    let n = |k: &str| number(v, file, &[system, failure, k]);
    let before = number(
        v,
        file,
        &[system, failure, "failed_before_injection_trials"],
    )
    .unwrap_or(0.0);
    let comebacks = v
        .get(system)
        .and_then(|s| s.get(failure))
        .and_then(|c| c.get("failures"))
        .and_then(Value::as_array)
        .map_or(0, |a| {
            a.iter()
                .filter(|f| {
                    f.get("reason")
                        .and_then(Value::as_str)
                        .is_some_and(|r| r.starts_with("after SIGCONT"))
                })
                .count()
        }) as f64;
    let trials = n("trials")? - before;
    let failed = (n("failed_trials")? - before - comebacks).max(0.0);
    Ok(BenchCase {
        gap_p99_ms: n("gap_p99_ms")?,
        detect_p99_ms: n("detect_p99_ms")?,
        trials,
        failed,
        comebacks,
    })
}

/// The p99 (nearest rank) of `<system>.<failure>.client_gap_ms` in a faults
/// report, if it has one.
pub fn faults_p99(v: &Value, system: &str, failure: &str) -> Option<f64> {
    let mut xs: Vec<f64> = v
        .get(system)?
        .get(failure)?
        .get("client_gap_ms")?
        .as_array()?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let rank = ((0.99 * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    Some(xs[rank - 1])
}

/// A reported input: what, how much, in what, from where.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    pub key: &'static str,
    pub label: String,
    pub value: f64,
    pub unit: &'static str,
    pub source: String,
}

/// Where each pair's takeover by class came from.
#[derive(Clone, Debug, PartialEq)]
pub struct TakeoverSource {
    pub pair: usize,
    pub failure: Failure,
    pub source: String,
}

/// The model, the pairs and where every number came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    pub model: Model,
    pub pairs: Vec<Pair>,
    pub inputs: Vec<Input>,
    pub takeover_sources: Vec<TakeoverSource>,
}

pub(super) fn read_json(dir: &Path, name: &str) -> Result<Option<Value>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|e| InputError::Invalid {
                file: format!("bench/results/{name}"),
                what: e.to_string(),
            })
            .with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub(super) fn missing(name: &str, command: &'static str) -> InputError {
    InputError::MissingFile {
        file: format!("bench/results/{name}"),
        command,
    }
}

/// A number from the environment, if set; refused unless `ok`.
pub(super) fn env_f64(
    env: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    ok: fn(f64) -> bool,
    want: &'static str,
) -> Result<Option<f64>, InputError> {
    let Some(s) = env(var) else { return Ok(None) };
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && ok(x) => Ok(Some(x)),
        _ => Err(InputError::BadEnv {
            var,
            value: s,
            want,
        }),
    }
}

pub(super) fn positive(x: f64) -> bool {
    x > 0.0
}
pub(super) fn non_negative(x: f64) -> bool {
    x >= 0.0
}
pub(super) fn fraction(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

/// One parameter: its default and where that comes from, the variable
/// that overrides it and what it must be.
pub(super) struct Spec {
    key: &'static str,
    var: &'static str,
    label: &'static str,
    unit: &'static str,
    default: f64,
    source: &'static str,
    ok: fn(f64) -> bool,
    want: &'static str,
}

/// The parameter's value (the variable's, or the default), recorded with
/// its source in `inputs`.
pub(super) fn record_param(
    inputs: &mut Vec<Input>,
    env: &dyn Fn(&str) -> Option<String>,
    spec: Spec,
) -> Result<f64, InputError> {
    let (value, source) = match env_f64(env, spec.var, spec.ok, spec.want)? {
        Some(v) => (v, format!("`{}`", spec.var)),
        None => (spec.default, spec.source.to_string()),
    };
    inputs.push(Input {
        key: spec.key,
        label: spec.label.into(),
        value,
        unit: spec.unit,
        source,
    });
    Ok(value)
}

/// The pairs' systems in the failover report.
pub(super) const TANDEM: &str = "tandem";
pub(super) const VRRP: &str = "keepalived_vrrp";
pub(super) const BFD: &str = "keepalived_bfd";

/// Reads the measured inputs from `dir` (the results directory) and the
/// parameters from `env` (`std::env::var` in the bench, a map in tests).
pub fn load(dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded> {
    let mut inputs = Vec::new();
    let mut param = |spec: Spec| record_param(&mut inputs, env, spec);
    const A: &str = "assumption";
    let call_rate = param(Spec {
        key: "call_rate_per_s",
        var: "TANDEM_AVAIL_CALL_RATE",
        label: "call rate",
        unit: "calls/s",
        default: 100.0,
        source: "parameter (issue 15's default)",
        ok: non_negative,
        want: "a number ≥ 0",
    })?;
    let call_s = param(Spec {
        key: "call_s",
        var: "TANDEM_AVAIL_CALL_S",
        label: "mean call duration",
        unit: "s",
        default: 180.0,
        source: A,
        ok: positive,
        want: "a number > 0",
    })?;
    let repair_h = param(Spec {
        key: "repair_h",
        var: "TANDEM_AVAIL_REPAIR_H",
        label: "repair by a person (hardware, links, card, IVR)",
        unit: "h",
        default: 4.0,
        source: "assumption (a 4-hour on-site repair)",
        ok: positive,
        want: "a number > 0",
    })?;
    let mut mtbf = |key, var, label, default| {
        param(Spec {
            key,
            var,
            label,
            unit: "h",
            default,
            source: A,
            ok: positive,
            want: "a number > 0",
        })
    };
    let mtbf_hw = mtbf(
        "mtbf_hardware_h",
        "TANDEM_AVAIL_MTBF_HW_H",
        "MTBF, director hardware",
        50_000.0,
    )?;
    let mtbf_crash = mtbf(
        "mtbf_daemon_crash_h",
        "TANDEM_AVAIL_MTBF_DAEMON_CRASH_H",
        "MTBF, daemon crash",
        8_760.0,
    )?;
    let mtbf_hang = mtbf(
        "mtbf_daemon_hang_h",
        "TANDEM_AVAIL_MTBF_DAEMON_HANG_H",
        "MTBF, daemon hang",
        17_520.0,
    )?;
    let mtbf_link = mtbf(
        "mtbf_service_link_h",
        "TANDEM_AVAIL_MTBF_SERVICE_LINK_H",
        "MTBF, service link (NIC, cable, switch port)",
        50_000.0,
    )?;
    let mtbf_hb = mtbf(
        "mtbf_heartbeat_link_h",
        "TANDEM_AVAIL_MTBF_HB_LINK_H",
        "MTBF, heartbeat link (no outage on its own)",
        50_000.0,
    )?;
    let mtbf_card = mtbf(
        "mtbf_card_h",
        "TANDEM_AVAIL_MTBF_CARD_H",
        "MTBF, telephony card",
        100_000.0,
    )?;
    let mtbf_ivr = mtbf(
        "mtbf_ivr_h",
        "TANDEM_AVAIL_MTBF_IVR_H",
        "MTBF, IVR server (common to every system)",
        20_000.0,
    )?;

    // The daemon's restart: systemd's RestartSec + a lone start to READY.
    let restart_s = match env_f64(env, "TANDEM_AVAIL_RESTART_S", positive, "a number > 0")? {
        Some(s) => {
            inputs.push(Input {
                key: "restart_s",
                label: "daemon restart after a crash (RestartSec + start)".into(),
                value: s,
                unit: "s",
                source: "`TANDEM_AVAIL_RESTART_S`".into(),
            });
            s
        }
        None => {
            let v = read_json(dir, "startup.json")?
                .ok_or_else(|| missing("startup.json", "cargo xtask bench startup"))?;
            let start_ms = number(
                &v,
                "bench/results/startup.json",
                &["lone", "ready_ms", "p99"],
            )?;
            let s = 1.0 + start_ms / 1000.0;
            inputs.push(Input {
                key: "restart_s",
                label: "daemon restart after a crash (RestartSec + start)".into(),
                value: s,
                unit: "s",
                source: format!(
                    "RestartSec=1s (control/dist/tandemd.service) + bench/results/startup.json `lone.ready_ms.p99` ({start_ms:.0} ms)"
                ),
            });
            s
        }
    };
    let mut param = |spec: Spec| record_param(&mut inputs, env, spec);
    let watchdog_s = param(Spec {
        key: "watchdog_s",
        var: "TANDEM_AVAIL_WATCHDOG_S",
        label: "systemd watchdog before a hung daemon is restarted",
        unit: "s",
        default: 2.0,
        source: "WatchdogSec=2s (control/dist/tandemd.service)",
        ok: non_negative,
        want: "a number ≥ 0",
    })?;
    let crews = param(Spec {
        key: "repair_crews",
        var: "TANDEM_AVAIL_REPAIR_CREWS",
        label: "directors repaired at once when both are down",
        unit: "crews",
        default: 1.0,
        source: "assumption (one technician)",
        ok: |x| x == 1.0 || x == 2.0,
        want: "1 or 2",
    })?;
    let card_ms = param(Spec {
        key: "card_takeover_ms",
        var: "TANDEM_AVAIL_CARD_TAKEOVER_MS",
        label: "card fault: trunk moved to the standby's card (every pair)",
        unit: "ms",
        default: 100.0,
        source: "assumption (card.watchdog_ms = 100; trunk_watchdog_lab saw 71–96 ms, README)",
        ok: non_negative,
        want: "a number ≥ 0",
    })?;
    let ka_default_s = param(Spec {
        key: "keepalived_default_takeover_s",
        var: "TANDEM_AVAIL_KEEPALIVED_DEFAULT_S",
        label: "keepalived takeover at its defaults",
        unit: "s",
        default: 3.0,
        source: "parameter (VRRP advert_int 1 s × 3 adverts missed)",
        ok: positive,
        want: "a number > 0",
    })?;
    let ka_loss = param(Spec {
        key: "keepalived_loss_fraction",
        var: "TANDEM_AVAIL_KEEPALIVED_LOSS",
        label: "keepalived: calls in progress lost per failover (no SIP-aware state sync)",
        unit: "fraction",
        default: 1.0,
        source: A,
        ok: fraction,
        want: "a fraction in 0..=1",
    })?;
    let single_loss = param(Spec {
        key: "single_loss_fraction",
        var: "TANDEM_AVAIL_SINGLE_LOSS",
        label: "single director: calls in progress a failure cuts",
        unit: "fraction",
        default: 1.0,
        source: A,
        ok: fraction,
        want: "a fraction in 0..=1",
    })?;
    let coverage_override = env_f64(
        env,
        "TANDEM_AVAIL_COVERAGE",
        fraction,
        "a fraction in 0..=1",
    )?;
    let tandem_loss = match env_f64(
        env,
        "TANDEM_AVAIL_TANDEM_LOSS",
        fraction,
        "a fraction in 0..=1",
    )? {
        Some(f) => (f, "`TANDEM_AVAIL_TANDEM_LOSS`".to_string()),
        None => {
            let file = "bench/results/calls.json";
            let v = read_json(dir, "calls.json")?
                .ok_or_else(|| missing("calls.json", "cargo xtask bench calls"))?;
            let lost = number(&v, file, &["established_calls_lost"])?;
            let at = number(&v, file, &["calls_in_progress_at_kills"])?;
            let failovers = number(&v, file, &["failovers"])?;
            if at <= 0.0 {
                return Err(InputError::Invalid {
                    file: file.into(),
                    what: "calls_in_progress_at_kills is 0: no calls to lose".into(),
                }
                .into());
            }
            (
                lost / at,
                format!(
                    "{file}: `established_calls_lost` ÷ `calls_in_progress_at_kills` = {lost} ÷ {at} over {failovers} failovers"
                ),
            )
        }
    };
    inputs.push(Input {
        key: "tandem_loss_fraction",
        label: "tandem: calls in progress lost per failover".into(),
        value: tandem_loss.0,
        unit: "fraction",
        source: tandem_loss.1,
    });

    let repair_restart_h = restart_s / 3600.0;
    let model = Model {
        director: [
            Component {
                mtbf_h: mtbf_hw,
                mttr_h: repair_h,
            },
            Component {
                mtbf_h: mtbf_crash,
                mttr_h: repair_restart_h,
            },
            Component {
                mtbf_h: mtbf_hang,
                mttr_h: (watchdog_s + restart_s) / 3600.0,
            },
            Component {
                mtbf_h: mtbf_link,
                mttr_h: repair_h,
            },
            Component {
                mtbf_h: mtbf_card,
                mttr_h: repair_h,
            },
        ],
        heartbeat_link: Component {
            mtbf_h: mtbf_hb,
            mttr_h: repair_h,
        },
        ivr: Component {
            mtbf_h: mtbf_ivr,
            mttr_h: repair_h,
        },
        repair_crews: crews as u32,
        call_rate_per_s: call_rate,
        call_s,
        single_loss_fraction: single_loss,
    };

    // The failover bench's outages.
    let file = "bench/results/failover.json";
    let fo = read_json(dir, "failover.json")?
        .ok_or_else(|| missing("failover.json", "cargo xtask bench failover"))?;
    let faults = read_json(dir, "faults.json")?;
    let mut takeover_sources = Vec::new();
    let mut pairs = Vec::new();
    // (name, system in the report, loss fraction, keepalived defaults?)
    let systems: [(&str, &str, f64, bool); 4] = [
        ("keepalived pair, defaults", VRRP, ka_loss, true),
        (
            "keepalived pair, VRRPv3 10 ms (measured)",
            VRRP,
            ka_loss,
            false,
        ),
        (
            "keepalived pair, VRRPv3 10 ms + BFD (measured)",
            BFD,
            ka_loss,
            false,
        ),
        ("tandem pair (measured)", TANDEM, tandem_loss.0, false),
    ];
    for (idx, (name, system, loss, defaults)) in systems.into_iter().enumerate() {
        let mut takeover = [Takeover {
            outage_ms: 0.0,
            coverage: 1.0,
            takeovers_per_failure: 1.0,
        }; 5];
        for (slot, f) in takeover.iter_mut().zip(Failure::ALL) {
            let Some(bf) = f.bench_failure() else {
                *slot = Takeover {
                    outage_ms: card_ms,
                    coverage: coverage_override.unwrap_or(1.0),
                    takeovers_per_failure: 1.0,
                };
                takeover_sources.push(TakeoverSource {
                    pair: idx,
                    failure: f,
                    source: "`card_takeover_ms`; c = 1 (assumption)".into(),
                });
                continue;
            };
            let case = failover_case(&fo, file, system, bf)?;
            let (mut outage, mut source) =
                match faults.as_ref().and_then(|v| faults_p99(v, system, bf)) {
                    Some(ms) => (
                        ms,
                        format!("bench/results/faults.json `{system}.{bf}.client_gap_ms` p99 (the campaign's client gap under SIP load)"),
                    ),
                    None => (
                        case.gap_p99_ms,
                        format!("{file} `{system}.{bf}.gap_p99_ms`"),
                    ),
                };
            if defaults {
                // Where the measured gap is shorter than the detection, the
                // service outlived the daemon (keepalived leaves the VIP and
                // the service behind): the gap does not depend on
                // advert_int. Elsewhere the outage is the detection.
                if outage >= case.detect_p99_ms {
                    outage = ka_default_s * 1000.0;
                    source = format!(
                        "`keepalived_default_takeover_s` (measured gap ≥ detection: {source})"
                    );
                } else {
                    source = format!("{source} (shorter than its detection: kept)");
                }
            }
            let coverage = coverage_override.unwrap_or_else(|| case.coverage());
            let c_source = match coverage_override {
                Some(_) => "`TANDEM_AVAIL_COVERAGE`".to_string(),
                None => format!("c = 1 − {} failed ÷ {} trials", case.failed, case.trials),
            };
            let k = case.takeovers_per_failure();
            let k_source = if case.comebacks > 0.0 {
                format!(
                    "; k = 1 + {} comebacks ÷ {} trials",
                    case.comebacks, case.trials
                )
            } else {
                String::new()
            };
            *slot = Takeover {
                outage_ms: outage,
                coverage,
                takeovers_per_failure: k,
            };
            takeover_sources.push(TakeoverSource {
                pair: idx,
                failure: f,
                source: format!("{source}; {c_source}{k_source}"),
            });
        }
        pairs.push(Pair {
            name: name.into(),
            takeover,
            loss_fraction: loss,
        });
    }
    Ok(Loaded {
        model,
        pairs,
        inputs,
        takeover_sources,
    })
}

