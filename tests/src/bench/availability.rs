//! `cargo xtask bench availability`: the steady-state availability of a
//! single director, of keepalived-style pairs and of tandem's pair, with
//! the expected downtime and calls lost per year, from the failover
//! bench's measured outages and stated assumptions (issue 15). No lab, no
//! root: it reads the other benches' reports and runs in milliseconds.
//!
//! # The model
//!
//! Every component is a two-state Markov chain: up → down at
//! λ = 1 / MTBF, down → up at μ = 1 / MTTR, so its steady-state
//! availability is μ / (λ + μ) = MTBF / (MTBF + MTTR).
//!
//! - **Single director.** Its components in series, independent:
//!   A₁ = Π_i μ_i / (λ_i + μ_i) over the director's failure classes
//!   ([`Failure`]: hardware, daemon crash, daemon hang, service link,
//!   card). Every failure is an outage until its repair; it cuts the
//!   calls in progress (`single_loss_fraction`, 1 by default) and the
//!   calls attempted while it lasts are lost.
//! - **Hot-standby pair.** Each director is the series system above,
//!   reduced to an equivalent two-state node with the same failure rate
//!   λ = Σ λ_i and the same availability A₁ (so μ = λ A₁ / (1 − A₁)). The
//!   pair is a three-state chain — 2 (both up), 1 (one up), 0 (none up) —
//!   with 2 → 1 at 2λ, 1 → 0 at λ, 1 → 2 at μ and 0 → 1 at m μ, m the
//!   number of repair crews (1 or 2). Its balance equations give, with
//!   ρ = λ / μ, the closed form ([`pair_chain`])
//!   π₂ = 1 / (1 + 2ρ + 2ρ² / m), π₁ = 2ρ π₂, π₀ = (2ρ² / m) π₂.
//!   The pair serves unless both are down (π₀) or it is taking over: in
//!   state 2 the active fails by class i at λ_i; with probability c_i
//!   (coverage) the standby takes over, an outage of τ_i (the measured
//!   client gap), k_i times per failure (k > 1 when a hung active comes
//!   back and takes the role again); with 1 − c_i the failover does not
//!   happen and the outage lasts the repair, r_i = 1 / μ_i. So
//!   U = π₀ + Σ_i π₂ λ_i (c_i k_i τ_i + (1 − c_i) r_i), A = 1 − U
//!   (first order: those outages are rare enough not to overlap).
//! - **Calls.** N = call rate × mean call duration calls are in progress
//!   (Little's law). Lost per year = established calls cut (N × the
//!   system's loss fraction per failover, N per outage that is not a
//!   failover) + calls attempted during the outages (call rate × downtime,
//!   an upper bound: SIP retransmits an INVITE after 500 ms, so attempts
//!   within a short gap mostly succeed).
//!
//! Out of scope, the same for every system: the shared trunk (one per
//! site, whatever directs the calls), and the IVRs, which every director
//! routes around (their heartbeats take a dead one out of scheduling); a
//! dead IVR cuts its own calls whichever system directs them, reported
//! once as a common figure. The heartbeat link is not a single point of
//! failure of either pair (tandem heartbeats also on the service network;
//! keepalived sends its VRRP adverts there): its failure alone causes no
//! outage, so its MTBF is listed but adds nothing. Cards are modelled the
//! same for every pair: a card fault on the active moves the trunk to the
//! standby's card in `card_takeover_ms` (tandem's failover-switch
//! watchdog; a keepalived setup would need an equivalent `track_script`).
//!
//! # Inputs
//!
//! Measured, from the directory the report is written to
//! (`bench/results/`):
//! - `failover.json` (`cargo xtask bench failover`), required: per system
//!   (`tandem`, `keepalived_vrrp`, `keepalived_bfd`) and failure (`crash` for
//!   director hardware, `kill9` for a daemon crash, `hang`, `link_down` for
//!   the service link): `gap_p99_ms` (τ), `detect_p99_ms`, `trials`,
//!   `failed_trials`, `failed_before_injection_trials` and `failures[].reason`
//!   (coverage c = 1 − failures after injection ÷ trials; a hang trial
//!   that failed because the woken node took the role back counts as a
//!   second takeover, k, not as a failed failover).
//! - `faults.json`, optional: if it holds `<system>.<failure>.mttr_ms` (an
//!   array of outages, ms), its p99 (nearest rank) replaces the gap.
//! - `calls.json` (`cargo xtask bench calls`): tandem's fraction of calls
//!   lost per failover, `established_calls_lost` ÷
//!   `calls_in_progress_at_kills` (conservative: it counts the losses at
//!   switchbacks too). Needed unless `TANDEM_AVAIL_TANDEM_LOSS` is set.
//! - `startup.json` (`cargo xtask bench startup`): the daemon's restart,
//!   `RestartSec` (1 s, `control/dist/tandemd.service`) + `lone.ready_ms.p99`
//!   (exec → READY alone). Needed unless `TANDEM_AVAIL_RESTART_S` is set.
//!
//! Parameters, each overridable by an environment variable (a value that
//! does not parse or is out of range is refused, naming the variable):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TANDEM_AVAIL_CALL_RATE` | calls per second offered | 100 |
//! | `TANDEM_AVAIL_CALL_S` | mean call duration, s | 180 (assumption) |
//! | `TANDEM_AVAIL_REPAIR_H` | repair by a person of hardware, links, card, IVR, h | 4 (assumption) |
//! | `TANDEM_AVAIL_MTBF_HW_H` | director hardware MTBF, h | 50,000 (assumption) |
//! | `TANDEM_AVAIL_MTBF_DAEMON_CRASH_H` | daemon crash MTBF, h | 8,760 (assumption) |
//! | `TANDEM_AVAIL_MTBF_DAEMON_HANG_H` | daemon hang MTBF, h | 17,520 (assumption) |
//! | `TANDEM_AVAIL_MTBF_SERVICE_LINK_H` | service link (NIC, cable, port) MTBF, h | 50,000 (assumption) |
//! | `TANDEM_AVAIL_MTBF_HB_LINK_H` | heartbeat link MTBF, h | 50,000 (assumption) |
//! | `TANDEM_AVAIL_MTBF_CARD_H` | telephony card MTBF, h | 100,000 (assumption) |
//! | `TANDEM_AVAIL_MTBF_IVR_H` | IVR server MTBF, h | 20,000 (assumption) |
//! | `TANDEM_AVAIL_RESTART_S` | daemon restart after a crash, s | measured (startup.json) + 1 |
//! | `TANDEM_AVAIL_WATCHDOG_S` | systemd watchdog before a hung daemon is restarted, s | 2 (tandemd.service) |
//! | `TANDEM_AVAIL_REPAIR_CREWS` | directors repaired at once (1 or 2) | 1 (assumption) |
//! | `TANDEM_AVAIL_CARD_TAKEOVER_MS` | trunk moved to the standby's card, ms | 100 (assumption) |
//! | `TANDEM_AVAIL_KEEPALIVED_DEFAULT_S` | keepalived's takeover at its defaults, s | 3 (advert_int 1 s × 3) |
//! | `TANDEM_AVAIL_KEEPALIVED_LOSS` | keepalived: fraction of calls in progress a failover loses | 1 (assumption) |
//! | `TANDEM_AVAIL_TANDEM_LOSS` | tandem: the same | measured (calls.json) |
//! | `TANDEM_AVAIL_SINGLE_LOSS` | single director: fraction of calls a failure cuts | 1 (assumption) |
//! | `TANDEM_AVAIL_COVERAGE` | every pair's coverage c, every failure | measured (failover.json) |

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// Hours in the year the report counts (365 days).
pub const HOURS_PER_YEAR: f64 = 8760.0;

/// A director's failure classes: each a component in series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Hardware,
    DaemonCrash,
    DaemonHang,
    ServiceLink,
    Card,
}

impl Failure {
    pub const ALL: [Failure; 5] = [
        Failure::Hardware,
        Failure::DaemonCrash,
        Failure::DaemonHang,
        Failure::ServiceLink,
        Failure::Card,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Failure::Hardware => "director hardware",
            Failure::DaemonCrash => "daemon crash",
            Failure::DaemonHang => "daemon hang",
            Failure::ServiceLink => "service link",
            Failure::Card => "card",
        }
    }

    /// The key of this class in the report's JSON.
    pub fn key(self) -> &'static str {
        match self {
            Failure::Hardware => "hardware",
            Failure::DaemonCrash => "daemon_crash",
            Failure::DaemonHang => "daemon_hang",
            Failure::ServiceLink => "service_link",
            Failure::Card => "card",
        }
    }

    /// The failover bench's failure that stands for this class (`crash`:
    /// daemon killed and both links down at once, as a dead machine), or
    /// none (cards: not in that bench).
    pub fn bench_failure(self) -> Option<&'static str> {
        match self {
            Failure::Hardware => Some("crash"),
            Failure::DaemonCrash => Some("kill9"),
            Failure::DaemonHang => Some("hang"),
            Failure::ServiceLink => Some("link_down"),
            Failure::Card => None,
        }
    }
}

/// One component's two-state chain, in hours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Component {
    pub mtbf_h: f64,
    pub mttr_h: f64,
}

impl Component {
    /// λ, per hour.
    pub fn lambda(&self) -> f64 {
        1.0 / self.mtbf_h
    }

    /// μ / (λ + μ), written as MTBF / (MTBF + MTTR) so that MTTR → 0 is
    /// well defined.
    pub fn availability(&self) -> f64 {
        self.mtbf_h / (self.mtbf_h + self.mttr_h)
    }
}

/// What a pair does when its active fails by one class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Takeover {
    /// τ: the service outage of one takeover, ms.
    pub outage_ms: f64,
    /// c: the probability that the standby takes over.
    pub coverage: f64,
    /// k ≥ 1: takeovers per failure (a hung active that wakes and takes
    /// the role back costs a second one).
    pub takeovers_per_failure: f64,
}

/// A hot-standby pair: its takeovers by class and the calls it keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub name: String,
    /// Indexed as [`Failure::ALL`].
    pub takeover: [Takeover; 5],
    /// Fraction of the calls in progress that a failover loses.
    pub loss_fraction: f64,
}

/// Every parameter of the model but the pairs' own.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// One director's components, indexed as [`Failure::ALL`].
    pub director: [Component; 5],
    /// Listed for completeness: no outage on its own (see the module doc).
    pub heartbeat_link: Component,
    /// Common to every system (see the module doc).
    pub ivr: Component,
    /// Directors repaired at once when both are down (1 or 2).
    pub repair_crews: u32,
    pub call_rate_per_s: f64,
    pub call_s: f64,
    /// Fraction of the calls in progress a single director's failure cuts.
    pub single_loss_fraction: f64,
}

/// One system's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub system: String,
    pub availability: f64,
    pub downtime_s_per_year: f64,
    /// The part of the downtime spent in takeovers (Σ c k τ per failure).
    pub takeover_downtime_s_per_year: f64,
    pub established_calls_lost_per_year: f64,
    pub attempted_calls_lost_per_year: f64,
    /// Failovers (takeovers started) per year; 0 for a single director.
    pub failovers_per_year: f64,
    /// Outages that last until a repair, per year.
    pub outages_until_repair_per_year: f64,
    /// π₀ for a pair; 1 − A for a single director.
    pub p_none_up: f64,
}

impl Outcome {
    pub fn calls_lost_per_year(&self) -> f64 {
        self.established_calls_lost_per_year + self.attempted_calls_lost_per_year
    }

    /// −log₁₀(1 − A).
    pub fn nines(&self) -> f64 {
        -(1.0 - self.availability).log10()
    }
}

/// The pair's three-state chain solved in closed form: `[π₂, π₁, π₀]`
/// (both up, one up, none up) for node failure rate λ, repair rate μ and
/// `crews` repair crews (1 or 2; more repair no faster than 2).
pub fn pair_chain(lambda: f64, mu: f64, crews: u32) -> [f64; 3] {
    let rho = lambda / mu;
    let m = f64::from(crews.clamp(1, 2));
    let p2 = 1.0 / (1.0 + 2.0 * rho + 2.0 * rho * rho / m);
    [p2, 2.0 * rho * p2, 2.0 * rho * rho / m * p2]
}

impl Model {
    /// Calls in progress on average (Little's law).
    pub fn calls_in_progress(&self) -> f64 {
        self.call_rate_per_s * self.call_s
    }

    /// One director alone: A₁ = Π μ_i / (λ_i + μ_i).
    pub fn director_availability(&self) -> f64 {
        self.director.iter().map(Component::availability).product()
    }

    /// The equivalent two-state node of one director: (λ, μ) per hour,
    /// λ = Σ λ_i and μ such that μ / (λ + μ) = A₁.
    pub fn node_rates(&self) -> (f64, f64) {
        let lambda: f64 = self.director.iter().map(Component::lambda).sum();
        let a = self.director_availability();
        (lambda, lambda * a / (1.0 - a))
    }

    pub fn single(&self) -> Outcome {
        let a = self.director_availability();
        let lambda: f64 = self.director.iter().map(Component::lambda).sum();
        // Failures that start an outage happen while the director is up.
        let failures = HOURS_PER_YEAR * a * lambda;
        let downtime_s = (1.0 - a) * HOURS_PER_YEAR * 3600.0;
        Outcome {
            system: "single director".into(),
            availability: a,
            downtime_s_per_year: downtime_s,
            takeover_downtime_s_per_year: 0.0,
            established_calls_lost_per_year: failures
                * self.single_loss_fraction
                * self.calls_in_progress(),
            attempted_calls_lost_per_year: self.call_rate_per_s * downtime_s,
            failovers_per_year: 0.0,
            outages_until_repair_per_year: failures,
            p_none_up: 1.0 - a,
        }
    }

    /// U = π₀ + Σ_i π₂ λ_i (c_i k_i τ_i + (1 − c_i) r_i).
    pub fn pair(&self, p: &Pair) -> Outcome {
        let (lambda, mu) = self.node_rates();
        let [p2, p1, p0] = pair_chain(lambda, mu, self.repair_crews);
        let n = self.calls_in_progress();
        let mut u = p0;
        let mut failovers = 0.0;
        let mut uncovered = 0.0;
        let mut cut = 0.0;
        let mut in_takeovers_h = 0.0;
        for (c, t) in self.director.iter().zip(&p.takeover) {
            let rate = p2 * c.lambda(); // failures of the active, per hour
            let tau_h = t.outage_ms / 3.6e6;
            u += rate
                * (t.coverage * t.takeovers_per_failure * tau_h + (1.0 - t.coverage) * c.mttr_h);
            let per_year = rate * HOURS_PER_YEAR;
            in_takeovers_h += rate * t.coverage * t.takeovers_per_failure * tau_h;
            failovers += per_year * t.coverage * t.takeovers_per_failure;
            uncovered += per_year * (1.0 - t.coverage);
            cut += per_year
                * (t.coverage * t.takeovers_per_failure * p.loss_fraction + (1.0 - t.coverage))
                * n;
        }
        // The last director up fails: both down until a repair.
        let last = p1 * lambda * HOURS_PER_YEAR;
        cut += last * n;
        let downtime_s = u * HOURS_PER_YEAR * 3600.0;
        Outcome {
            system: p.name.clone(),
            availability: 1.0 - u,
            downtime_s_per_year: downtime_s,
            takeover_downtime_s_per_year: in_takeovers_h * HOURS_PER_YEAR * 3600.0,
            established_calls_lost_per_year: cut,
            attempted_calls_lost_per_year: self.call_rate_per_s * downtime_s,
            failovers_per_year: failovers,
            outages_until_repair_per_year: uncovered + last,
            p_none_up: p0,
        }
    }

    /// Calls cut by IVR failures per year, the same for every system: each
    /// of n IVRs fails 1/MTBF times an hour and holds N / n of the calls.
    pub fn ivr_calls_lost_per_year(&self) -> f64 {
        HOURS_PER_YEAR * self.ivr.lambda() * self.calls_in_progress()
    }
}

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

fn number(v: &Value, file: &str, path: &[&str]) -> Result<f64, InputError> {
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

/// The p99 (nearest rank) of `<system>.<failure>.mttr_ms` in a faults
/// report, if it has one.
pub fn faults_p99(v: &Value, system: &str, failure: &str) -> Option<f64> {
    let mut xs: Vec<f64> = v
        .get(system)?
        .get(failure)?
        .get("mttr_ms")?
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

fn read_json(dir: &Path, name: &str) -> Result<Option<Value>> {
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

fn missing(name: &str, command: &'static str) -> InputError {
    InputError::MissingFile {
        file: format!("bench/results/{name}"),
        command,
    }
}

/// A number from the environment, if set; refused unless `ok`.
fn env_f64(
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

fn positive(x: f64) -> bool {
    x > 0.0
}
fn non_negative(x: f64) -> bool {
    x >= 0.0
}
fn fraction(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

/// One parameter: its default and where that comes from, the variable
/// that overrides it and what it must be.
struct Spec {
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
fn record_param(
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
const TANDEM: &str = "tandem";
const VRRP: &str = "keepalived_vrrp";
const BFD: &str = "keepalived_bfd";

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
                        format!("bench/results/faults.json `{system}.{bf}.mttr_ms` p99"),
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

fn fmt_duration(s: f64) -> String {
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

fn fmt_count(x: f64) -> String {
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

fn fmt_ms(x: f64) -> String {
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

fn fmt_value(x: f64) -> String {
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

/// Computes every system's figures.
pub fn outcomes(l: &Loaded) -> Vec<Outcome> {
    let mut v = vec![l.model.single()];
    v.extend(l.pairs.iter().map(|p| l.model.pair(p)));
    v
}

/// Reads the inputs in `out` (the results directory), writes
/// `availability.json` and `availability.md` there, returns the Markdown.
pub fn run(out: &Path) -> Result<String> {
    let loaded = load(out, &|k| std::env::var(k).ok())?;
    let outs = outcomes(&loaded);
    let md = markdown(&loaded, &outs);
    let js = json_report(&loaded, &outs);
    std::fs::write(
        out.join("availability.json"),
        serde_json::to_string_pretty(&js)? + "\n",
    )
    .with_context(|| format!("writing {}/availability.json", out.display()))?;
    std::fs::write(out.join("availability.md"), &md)
        .with_context(|| format!("writing {}/availability.md", out.display()))?;
    Ok(md)
}

#[cfg(test)]
mod tests {
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
            json!({ "tandem": { "crash": { "mttr_ms": [1.0, 3.0, 2.0] } } }).to_string(),
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
}
