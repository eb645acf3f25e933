//! One stage of the reload bench: a pair lab with both daemons, its IVRs
//! (SIPp and heartbeats), the SIPp load through the VIP and a watcher of
//! both daemons' states, started and settled ([`Stage::start`]) and ended
//! with what the daemons recorded ([`Stage::finish`]); and bringing the
//! pair back to a active, b standby after a role change ([`ensure_pair`]).
//! Processes are started and stopped by PID; the lab goes with its `Drop`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tandem_control::admin;
use tandem_control::config::{Config, diff::ServiceId, edit};
use tandem_control::events::{Event, Stamped};
use tandem_dataplane::monotonic_ns;

use super::trial::{ADMIN_TIMEOUT, late_turns, reals, service_name, status, sync};
use super::{Options, big_config};
use crate::actors::calls;
use crate::actors::sipp::{self, CallerOptions};
use crate::lab::tandemd::{Pair, PairOptions, WorkDir, wait_for};

/// How often the role watcher asks both daemons their state.
pub(super) const ROLE_POLL: Duration = Duration::from_millis(10);

/// The longest the SIPp load may place calls (it is told to stop when
/// the measurement ends; this bounds it if the measurement runs long).
pub(super) const LOAD_MAX: Duration = Duration::from_secs(600);

/// How long the pair may take to be a active, b standby in sync again:
/// past a's hold-down after it lost the role (its back-off is capped at
/// 60 s by default, `node.hold_down_max_ms`).
pub(super) const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How long both daemons must have been in their state (`state_ms`)
/// before [`ensure_pair`] returns.
const STEADY_MS: u64 = 500;

/// Waits (at most [`SETTLE_TIMEOUT`]) until a is active, b stands by in
/// sync and both run the same services; when b is active and a stands
/// by (a role change happened), asks b for a switchover once a is past
/// its hold-down (a held-down standby advertises priority 0 and b refuses
/// to hand over to it), at most once a second; both must then have been
/// in their state for [`STEADY_MS`]. Ok(true) if a switchover was
/// needed, Ok(false) if the pair already was so; Err naming what it
/// found if it never came back.
pub(super) fn ensure_pair(pair: &Pair, a: &Path, b: &Path) -> Result<bool, String> {
    let end = Instant::now() + SETTLE_TIMEOUT;
    let mut switched = false;
    let mut last_ask: Option<Instant> = None;
    loop {
        let (sa, sb) = (status(a), status(b));
        let states = (
            sa.as_ref().map(|s| s.state.as_str()),
            sb.as_ref().map(|s| s.state.as_str()),
        );
        match states {
            (Some("active"), Some("standby")) => {
                let same = sa.as_ref().map(|s| &s.config_fingerprint)
                    == sb.as_ref().map(|s| &s.config_fingerprint);
                // Both in their state for a moment: right after a role
                // change the pair may still be settling a tie.
                let settled = [&sa, &sb]
                    .iter()
                    .all(|s| s.as_ref().is_some_and(|s| s.state_ms >= STEADY_MS));
                if same && settled && sync(b).is_some_and(|s| s.state == "in sync") {
                    return Ok(switched);
                }
            }
            (Some("standby"), Some("active"))
                if last_ask.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
                    && sa
                        .as_ref()
                        .is_some_and(|s| s.damping.hold_down_ms.is_none()) =>
            {
                last_ask = Some(Instant::now());
                switched |= pair.b.switchover();
            }
            _ => {}
        }
        if Instant::now() >= end {
            return Err(format!(
                "the pair did not come back to a active, b standby in sync with a's services within {SETTLE_TIMEOUT:?}: a {:?} ({:?}), b {:?} ({:?}), b's sync {:?}",
                states.0,
                sa.as_ref().map(|s| &s.config_fingerprint),
                states.1,
                sb.as_ref().map(|s| &s.config_fingerprint),
                sync(b).map(|s| s.state)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One state change the role watcher saw.
#[derive(Clone, Debug)]
pub(super) struct Seen {
    pub(super) at_s: f64,
    pub(super) node: &'static str,
    pub(super) from: String,
    pub(super) to: String,
}

/// Both daemons' states, asked every [`ROLE_POLL`] on a thread until stopped.
pub(super) struct RoleWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<Seen>, u64, u64)>,
}

impl RoleWatch {
    pub(super) fn start(a: PathBuf, b: PathBuf) -> Result<RoleWatch> {
        let stop = Arc::new(AtomicBool::new(false));
        let halt = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("reload-roles".into())
            .spawn(move || {
                let started = Instant::now();
                let mut last: [Option<String>; 2] = [None, None];
                let (mut seen, mut polls, mut unanswered) = (Vec::new(), 0u64, 0u64);
                // Bounded: it stops when told, or after LOAD_MAX twice over.
                while !halt.load(Ordering::Relaxed) && started.elapsed() < LOAD_MAX * 2 {
                    for (k, (node, sock)) in [("a", &a), ("b", &b)].into_iter().enumerate() {
                        polls += 1;
                        let Some(st) = status(sock) else {
                            unanswered += 1;
                            continue;
                        };
                        if let Some(prev) = &last[k]
                            && *prev != st.state
                        {
                            seen.push(Seen {
                                at_s: started.elapsed().as_secs_f64(),
                                node,
                                from: prev.clone(),
                                to: st.state.clone(),
                            });
                        }
                        last[k] = Some(st.state);
                    }
                    std::thread::sleep(ROLE_POLL);
                }
                (seen, polls, unanswered)
            })?;
        Ok(RoleWatch { stop, thread })
    }

    pub(super) fn finish(self) -> (Vec<Seen>, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// `node`'s state changes before `before_ns`, but its start (from
/// `init`, and a first takeover's `takeover -> active` right after it).
pub(super) fn setup_role_changes(node: &str, events: &[Stamped], before_ns: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut starting = false;
    for e in events.iter().filter(|e| e.at_ns < before_ns) {
        let Event::StateChanged {
            from, to, reason, ..
        } = &e.event
        else {
            continue;
        };
        let start = from == "init" || (starting && from == "takeover" && to == "active");
        starting = from == "init";
        if !start {
            out.push(json!({
                "node": node,
                "ms_before_measurement": (before_ns - e.at_ns) as f64 / 1e6,
                "from": from, "to": to, "reason": reason,
            }));
        }
    }
    out
}

/// Which pair a stage runs and what it measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StageKind {
    /// The pair's own file: the edits, then reloads to the design maximum.
    Small,
    /// Both files at the design maximum from the start: one weight, the
    /// same file, back to the pair's file.
    Big,
}

impl StageKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            StageKind::Small => "the pair's file",
            StageKind::Big => "the design maximum from the start",
        }
    }
}

/// One stage: a pair under SIPp load, watched, its files and identities.
pub(super) struct Stage {
    pub(super) kind: StageKind,
    pub(super) pair: Pair,
    pub(super) ivrs: Vec<calls::Ivr>,
    pub(super) caller: crate::actors::sipp::SippCaller,
    pub(super) roles: RoleWatch,
    pub(super) a: PathBuf,
    pub(super) b: PathBuf,
    /// a's file, which the edits and reloads write.
    pub(super) path: PathBuf,
    /// a's file as the pair lab wrote it, and the same at the design maximum.
    pub(super) small: String,
    pub(super) big: String,
    pub(super) first: ServiceId,
    pub(super) ivr1: Ipv4Addr,
    pub(super) load_started: f64,
    pub(super) measure_wall: f64,
    pub(super) measure_ns: u64,
    pub(super) turns_at_start: [u64; 2],
    pub(super) setup_switchovers: u64,
    /// Stage 2: b's `reals` answer in the set-up (rows, client-seen µs).
    pub(super) reals_b: Option<(Option<usize>, u64)>,
    pub(super) _dir: WorkDir,
}

/// What a stage saw, once its pair is gone.
pub(super) struct StageEnd {
    pub(super) kind: StageKind,
    pub(super) calls: crate::actors::sipp::CallerReport,
    pub(super) ivr_sipp_failed: BTreeMap<String, u64>,
    pub(super) ev_a: Vec<Stamped>,
    pub(super) ev_b: Vec<Stamped>,
    pub(super) seen: Vec<Seen>,
    pub(super) polls: u64,
    pub(super) unanswered: u64,
    pub(super) late_turns: [u64; 2],
    pub(super) states_at_end: (Option<String>, Option<String>),
    pub(super) setup_changes: Vec<Value>,
    pub(super) setup_switchovers: u64,
    pub(super) reals_b: Option<(Option<usize>, u64)>,
    pub(super) measure_ns: u64,
    pub(super) end_ns: u64,
    pub(super) load_started: f64,
    pub(super) measure_wall: f64,
    pub(super) end_wall: f64,
    pub(super) load_stopped: f64,
}

/// Whether a's `reals` show the lab's IVRs alive in the first service.
pub(super) fn lab_ivrs_alive(a: &Path, first: ServiceId, ivrs: &[Ipv4Addr]) -> bool {
    let name = service_name(first);
    reals(a).is_some_and(|r| {
        ivrs.iter().all(|ip| {
            r.iter()
                .any(|x| x.service == name && x.address == IpAddr::V4(*ip) && x.health == "alive")
        })
    })
}

impl Stage {
    /// Builds the pair (both files grown to the design maximum first for
    /// [`StageKind::Big`]), starts the IVRs (SIPp and heartbeats) before
    /// the daemons, then the daemons and the SIPp load, and waits until the
    /// pair is settled: a active, b standby in sync with a's services, the
    /// lab's IVRs alive.
    ///
    /// The IVRs come first so that the two daemons do not learn their
    /// health at the same instant: each health change rewrites every
    /// service listing the IVR, on the loop; on two CPUs both daemons doing
    /// it at once, at SCHED_FIFO, starved the IVR heartbeat senders and
    /// made the pair flap for up to a minute (seen while writing this bench).
    pub(super) fn start(kind: StageKind, opts: &Options, o: &PairOptions) -> Result<Stage> {
        let dir = WorkDir::new(match kind {
            StageKind::Small => "bench-reload-small",
            StageKind::Big => "bench-reload-big",
        })?;
        let mut pair = Pair::build(4, o, dir.path(), &opts.bins, None)?;
        let (a, b) = (pair.a.socket().to_path_buf(), pair.b.socket().to_path_buf());
        let path = dir.path().join("a.toml");
        let small = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let big = big_config(&small).map_err(anyhow::Error::msg)?;
        if kind == StageKind::Big {
            let b_path = dir.path().join("b.toml");
            let b_small = std::fs::read_to_string(&b_path)
                .with_context(|| format!("reading {}", b_path.display()))?;
            let b_big = big_config(&b_small).map_err(anyhow::Error::msg)?;
            edit::write_atomically(&path, &big)?;
            edit::write_atomically(&b_path, &b_big)?;
        }
        let cfg = Config::parse(&small).map_err(|e| anyhow::anyhow!("a's file: {e}"))?;
        let first = ServiceId::of(&cfg.services[0]);
        let lab_ivrs: Vec<Ipv4Addr> = cfg.services[0]
            .reals
            .iter()
            .filter_map(|r| match r.address {
                IpAddr::V4(v) => Some(v),
                IpAddr::V6(_) => None,
            })
            .collect();
        let ivr1 = *lab_ivrs.first().context("no IVR in the first service")?;
        let ivrs = calls::start_ivrs(&pair.lab, dir.path(), true, false)?;
        pair.start_directors()?;
        if admin::edits::config_path(&a, ADMIN_TIMEOUT, None)
            .ok()
            .as_deref()
            != Some(path.as_path())
        {
            bail!("a does not read {} on reload", path.display());
        }
        // The load, for the whole stage: stopped (SIGUSR1: no new calls,
        // those in progress end normally) when the stage ends.
        let mut co = CallerOptions::new(
            opts.rate,
            u64::from(opts.rate) * LOAD_MAX.as_secs(),
            opts.call_ms,
        );
        co.rtp = false;
        let mut caller = calls::start_caller(&pair.lab, dir.path(), &co)?;
        let load_started = sipp::wall_now();
        std::thread::sleep(Duration::from_secs(3));
        if !caller.running() {
            bail!(
                "the SIPp caller exited at once: {:?}",
                caller.stats().map(|s| s.summary())
            );
        }
        let setup_switchovers = u64::from(ensure_pair(&pair, &a, &b).map_err(anyhow::Error::msg)?);
        if !wait_for(Duration::from_secs(10), || {
            lab_ivrs_alive(&a, first, &lab_ivrs)
        }) {
            bail!(
                "a does not hear every IVR after the warm-up: {:?}",
                pair.a.reals().first()
            );
        }
        // At the design maximum, one `reals` answer, timed once on the
        // standby (whose lateness moves no role).
        let reals_b = if kind == StageKind::Big {
            let t = Instant::now();
            let n = reals(&b).map(|r| r.len());
            let us = t.elapsed().as_micros() as u64;
            ensure_pair(&pair, &a, &b).map_err(anyhow::Error::msg)?;
            Some((n, us))
        } else {
            None
        };
        let roles = RoleWatch::start(a.clone(), b.clone())?;
        let turns_at_start = late_turns(&a, &b);
        Ok(Stage {
            kind,
            pair,
            ivrs,
            caller,
            roles,
            a,
            b,
            path,
            small,
            big,
            first,
            ivr1,
            load_started,
            measure_wall: sipp::wall_now(),
            measure_ns: monotonic_ns(),
            turns_at_start,
            setup_switchovers,
            reals_b,
            _dir: dir,
        })
    }

    /// Ends the measurement, the load and the IVRs; the daemons' accounts.
    pub(super) fn finish(self) -> Result<StageEnd> {
        let Stage {
            kind,
            pair,
            mut ivrs,
            caller,
            roles,
            a,
            b,
            measure_ns,
            turns_at_start,
            load_started,
            measure_wall,
            setup_switchovers,
            reals_b,
            _dir,
            ..
        } = self;
        let end_wall = sipp::wall_now();
        let end_ns = monotonic_ns();
        let turns = late_turns(&a, &b);
        let (seen, polls, unanswered) = roles.finish();
        let states_at_end = (status(&a).map(|s| s.state), status(&b).map(|s| s.state));
        if let Some(pid) = caller.pid() {
            // SAFETY: kill(2) on our own child's PID (SIPp), not yet reaped.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) };
        }
        let load_stopped = sipp::wall_now();
        let calls = caller.wait()?;
        let ivr_sipp_failed = calls::stop_ivrs(&mut ivrs)
            .into_iter()
            .map(|(n, s, _)| (n, s.map_or(0, |s| s.failed())))
            .collect();
        let (ev_a, ev_b) = (pair.a.events(0), pair.b.events(0));
        let mut setup_changes = setup_role_changes("a", &ev_a, measure_ns);
        setup_changes.extend(setup_role_changes("b", &ev_b, measure_ns));
        drop(pair);
        Ok(StageEnd {
            kind,
            calls,
            ivr_sipp_failed,
            ev_a,
            ev_b,
            seen,
            polls,
            unanswered,
            late_turns: [0, 1].map(|k| turns[k].saturating_sub(turns_at_start[k])),
            states_at_end,
            setup_changes,
            setup_switchovers,
            reals_b,
            measure_ns,
            end_ns,
            load_started,
            measure_wall,
            end_wall,
            load_stopped,
        })
    }

    /// [`ensure_pair`] before a trial, with the time it took when it had
    /// to switch over.
    pub(super) fn restore(&self, restores: &mut Vec<f64>) -> Result<bool, String> {
        let t = Instant::now();
        let restored = ensure_pair(&self.pair, &self.a, &self.b)?;
        if restored {
            restores.push(t.elapsed().as_secs_f64());
            eprintln!(
                "reload bench: a restored as the active by a switchover after {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
        Ok(restored)
    }
}
