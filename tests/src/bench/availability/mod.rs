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
//! - `faults.json`, optional: if it holds `<system>.<failure>.client_gap_ms` (an
//!   array of the client's gaps in the fault campaign, ms), its p99
//!   (nearest rank) replaces the gap.
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


mod inputs;
mod model;
mod report;
#[cfg(test)]
mod tests;

pub use inputs::*;
pub use model::*;
pub use report::*;

use std::path::Path;

use anyhow::{Context, Result};

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
