//! Where `tandemd`'s start-up time goes, from `main` to ready (XDP
//! attached and the role decided: when systemd is told `READY=1`), as one
//! typed report ([`StartupReport`]) with a duration per [`Phase`]: served
//! in `status` (`tandemctl status --json`, `startup`), recorded in the
//! timeline as [`crate::events::Event::Ready`] and logged once.
//!
//! Sans-IO: the daemon tells the recorder ([`Startup`]) where each phase
//! ended (`handle_phase_end`, `handle_load` for the dataplane's own
//! breakdown) and feeds it every loop turn's role (`handle_turn`); it
//! reads no clock itself. The phases tile the whole time: their sum is the
//! total, exactly ([`StartupReport::check`]).
//!
//! What bounds it: the verifier (the dataplane's programs, loaded in
//! parallel, one per thread), and for a node that hears no peer the
//! pair's `init_hold` (2 × `interval` × `multiplier`, 600 ms by default:
//! the protocol's wait before a lone node may claim the active role),
//! which [`Phase::Init`] reports apart.

use std::{
    fmt,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tandem_dataplane::{LoadTimings, common::node::NodeState};

/// One step of start-up, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The configuration file read and checked (keys included).
    Config,
    /// Logging set up; checks and lookups; sockets, monitors, cards and
    /// workers opened (nothing changed on the host yet).
    Open,
    /// The eBPF object parsed and relocated, its maps created (the
    /// kernel allocates the LRU tables here).
    Object,
    /// The dataplane's entry programs through the verifier.
    Verify,
    /// The exit fence loaded and attached to `sched_process_exit`.
    ExitFence,
    /// The node tables written at load (stages, settings, unused ids).
    Tables,
    /// Services (Maglev tables by batch), VIP guards, heartbeat senders,
    /// settings, ring buffers, the sync listeners.
    Services,
    /// XDP attached; ARP sysctls, stale VIPs off `lo`, spans shut down.
    Attach,
    /// The tail-call stages (schedulers, SIP) through the verifier, in
    /// parallel, after the attach: the kernel records heartbeats and the
    /// pair's init hold runs meanwhile.
    Stages,
    /// The loop's waits armed, up to its first turn.
    Loop,
    /// The pair in `init` after the first turn: what is left of
    /// listening for the peer, up to `init_hold` from before the attach
    /// when it hears none (a protocol wait, not work; the stages' load
    /// hides the rest of it).
    Init,
    /// From `init` to a decided role: `takeover` (the witness probe, when
    /// one is configured) or nothing when the peer was heard.
    Decide,
}

impl Phase {
    pub const ALL: [Phase; 12] = [
        Phase::Config,
        Phase::Open,
        Phase::Object,
        Phase::Verify,
        Phase::ExitFence,
        Phase::Tables,
        Phase::Services,
        Phase::Attach,
        Phase::Stages,
        Phase::Loop,
        Phase::Init,
        Phase::Decide,
    ];

    /// Its name, as the JSON writes it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Config => "config",
            Phase::Open => "open",
            Phase::Object => "object",
            Phase::Verify => "verify",
            Phase::ExitFence => "exit_fence",
            Phase::Tables => "tables",
            Phase::Services => "services",
            Phase::Attach => "attach",
            Phase::Stages => "stages",
            Phase::Loop => "loop",
            Phase::Init => "init",
            Phase::Decide => "decide",
        }
    }
}

/// One phase's duration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseTime {
    pub phase: Phase,
    pub us: u64,
}

/// One program's load (its verification), on its own thread.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgramTime {
    pub name: String,
    /// Wall time (µs).
    pub us: u64,
    /// The loading thread's CPU time (µs): the verifier's work, whatever
    /// else the machine runs.
    pub cpu_us: u64,
    /// Instructions the verifier processed (0: the kernel did not say).
    pub verified_insns: u32,
}

/// Start-up, from `main` to ready.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StartupReport {
    /// From `main` to ready (µs); the sum of `phases`.
    pub total_us: u64,
    /// Every [`Phase`], once each, in order.
    pub phases: Vec<PhaseTime>,
    /// The programs' loads (they overlap: `verify` is their wall time).
    pub programs: Vec<ProgramTime>,
    /// The role decided (`active`, `standby`, `fault`, `maintenance`).
    pub role: String,
    /// The pair's `init_hold` (µs): the longest [`Phase::Init`] can be.
    pub init_hold_us: u64,
    /// The LRU tables' sizes: connections, NAT reverse.
    pub flow_entries: u32,
    pub nat_entries: u32,
}

impl StartupReport {
    /// A phase's duration (µs), if it is in the report.
    pub fn phase_us(&self, phase: Phase) -> Option<u64> {
        self.phases.iter().find(|p| p.phase == phase).map(|p| p.us)
    }

    /// The time spent working: everything but the protocol's waits
    /// ([`Phase::Init`]).
    pub fn work_us(&self) -> u64 {
        self.total_us - self.phase_us(Phase::Init).unwrap_or(0).min(self.total_us)
    }

    /// The verifier's CPU time over every program (µs): the work that
    /// bounds [`Phase::Verify`] on a machine with fewer free cores than
    /// programs.
    pub fn verify_cpu_us(&self) -> u64 {
        self.programs.iter().map(|p| p.cpu_us).sum()
    }

    /// Whether the report is whole: every phase once, in order, summing to
    /// the total; `init` within `init_hold` (plus a turn's slack); every
    /// program within `verify`. Each problem, in words.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut bad = Vec::new();
        let got: Vec<Phase> = self.phases.iter().map(|p| p.phase).collect();
        if got != Phase::ALL {
            bad.push(format!("phases {got:?}, not {:?}", Phase::ALL));
        }
        let sum: u64 = self.phases.iter().map(|p| p.us).sum();
        if sum != self.total_us {
            bad.push(format!(
                "phases sum to {sum} µs, total is {} µs",
                self.total_us
            ));
        }
        if self.role.is_empty() || matches!(self.role.as_str(), "init" | "takeover") {
            bad.push(format!("role {:?} is not a decided one", self.role));
        }
        let init = self.phase_us(Phase::Init).unwrap_or(0);
        // A turn may end a few ms after the deadline it woke for.
        if init > self.init_hold_us + 100_000 {
            bad.push(format!(
                "init took {init} µs, init_hold is {} µs",
                self.init_hold_us
            ));
        }
        // Each program loads within its phase (verify, or stages).
        let verify = self.phase_us(Phase::Verify).unwrap_or(0);
        let stages = self.phase_us(Phase::Stages).unwrap_or(0);
        for p in &self.programs {
            if p.us > verify.max(stages) {
                bad.push(format!(
                    "{} took {} µs, longer than verify ({verify} µs) and stages ({stages} µs)",
                    p.name, p.us
                ));
            }
        }
        if self.programs.is_empty() {
            bad.push("no program loads".into());
        }
        if bad.is_empty() { Ok(()) } else { Err(bad) }
    }
}

impl fmt::Display for StartupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |us: u64| us as f64 / 1000.0;
        write!(
            f,
            "ready as {} {:.1} ms after start (",
            self.role,
            ms(self.total_us)
        )?;
        for (i, p) in self.phases.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{} {:.1}", p.phase.name(), ms(p.us))?;
        }
        write!(f, " ms; init_hold {:.0} ms)", ms(self.init_hold_us))
    }
}

/// The recorder: where each phase ended, until the role is decided.
#[derive(Clone, Debug)]
pub struct Startup {
    began: Instant,
    ends: Vec<(Phase, Instant)>,
    programs: Vec<ProgramTime>,
    init_hold: Duration,
    entries: (u32, u32),
    report: Option<StartupReport>,
}

impl Startup {
    /// Start-up began at `now` (the top of `main`).
    pub fn begin(now: Instant) -> Startup {
        Startup {
            began: now,
            ends: Vec::new(),
            programs: Vec::new(),
            init_hold: Duration::ZERO,
            entries: (0, 0),
            report: None,
        }
    }

    /// The report, once the role is decided.
    pub fn report(&self) -> Option<&StartupReport> {
        self.report.as_ref()
    }

    /// The pair's `init_hold` and the LRU tables' sizes, for the report.
    pub fn set_context(&mut self, init_hold: Duration, flow_entries: u32, nat_entries: u32) {
        self.init_hold = init_hold;
        self.entries = (flow_entries, nat_entries);
    }

    /// `phase` ended at `now`. A phase already ended is left as it was.
    pub fn handle_phase_end(&mut self, phase: Phase, now: Instant) {
        if self.report.is_none() && !self.ends.iter().any(|(p, _)| *p == phase) {
            self.ends.push((phase, now));
        }
    }

    /// The dataplane's load ended at `now` and took `t`: split into its
    /// object, verify, exit-fence and tables phases.
    pub fn handle_load(&mut self, t: &LoadTimings, now: Instant) {
        let start = now.checked_sub(t.total()).unwrap_or(now);
        let mut at = start;
        for (phase, d) in [
            (Phase::Object, t.object),
            (Phase::Verify, t.verify),
            (Phase::ExitFence, t.exit_fence),
        ] {
            at += d;
            self.handle_phase_end(phase, at.min(now));
        }
        self.handle_phase_end(Phase::Tables, now);
        self.set_programs(t);
    }

    /// The stages were loaded at `now` ([`Phase::Stages`]); `t` holds
    /// their loads.
    pub fn handle_stages(&mut self, t: &LoadTimings, now: Instant) {
        self.handle_phase_end(Phase::Stages, now);
        self.set_programs(t);
    }

    fn set_programs(&mut self, t: &LoadTimings) {
        self.programs = t
            .programs
            .iter()
            .map(|p| ProgramTime {
                name: p.name.to_string(),
                us: p.wall.as_micros() as u64,
                cpu_us: p.cpu.as_micros() as u64,
                verified_insns: p.verified_insns,
            })
            .collect();
    }

    /// One loop turn at `now` with the pair in `state`: true on the turn
    /// the role is first decided (the report is then ready). The same rule
    /// as systemd's `READY=1` ([`crate::systemd::Plan`]).
    pub fn handle_turn(&mut self, now: Instant, state: NodeState) -> bool {
        if self.report.is_some() {
            return false;
        }
        self.handle_phase_end(Phase::Loop, now);
        if state != NodeState::Init {
            self.handle_phase_end(Phase::Init, now);
        }
        if matches!(state, NodeState::Init | NodeState::Takeover) {
            return false;
        }
        self.handle_phase_end(Phase::Decide, now);
        self.report = Some(self.build(now, state));
        true
    }

    fn build(&self, now: Instant, state: NodeState) -> StartupReport {
        let us = |t: Instant| t.saturating_duration_since(self.began).as_micros() as u64;
        let total_us = us(now);
        // Cumulative offsets, so that the phases add up exactly; a phase
        // not marked (a path that skipped it) ends where the one before did.
        let mut phases = Vec::new();
        let mut prev = 0;
        for phase in Phase::ALL {
            let end = self
                .ends
                .iter()
                .find(|(p, _)| *p == phase)
                .map_or(prev, |(_, t)| us(*t))
                .clamp(prev, total_us);
            phases.push(PhaseTime {
                phase,
                us: end - prev,
            });
            prev = end;
        }
        if let Some(last) = phases.last_mut() {
            last.us += total_us - prev;
        }
        StartupReport {
            total_us,
            phases,
            programs: self.programs.clone(),
            role: state.name().to_string(),
            init_hold_us: self.init_hold.as_micros() as u64,
            flow_entries: self.entries.0,
            nat_entries: self.entries.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_dataplane::ProgramLoad;

    const MS: Duration = Duration::from_millis(1);

    fn timings() -> LoadTimings {
        LoadTimings {
            object: 60 * MS,
            programs: vec![
                ProgramLoad {
                    name: "tandem_xdp",
                    wall: 15 * MS,
                    cpu: 14 * MS,
                    verified_insns: 5_000,
                },
                ProgramLoad {
                    name: "tandem_sip",
                    wall: 900 * MS,
                    cpu: 700 * MS,
                    verified_insns: 500_000,
                },
            ],
            verify: 950 * MS,
            exit_fence: MS,
            tables: 2 * MS,
            stages: Duration::ZERO,
        }
    }

    /// A lone node: every phase, init up to init_hold, then takeover → active.
    #[test]
    fn a_lone_node_reports_every_phase_summing_to_the_total() {
        let t0 = Instant::now();
        let mut s = Startup::begin(t0);
        s.set_context(600 * MS, 1 << 20, 1 << 20);
        s.handle_phase_end(Phase::Config, t0 + MS);
        s.handle_phase_end(Phase::Open, t0 + 10 * MS);
        s.handle_load(&timings(), t0 + 10 * MS + timings().total());
        let loaded = t0 + 10 * MS + timings().total();
        s.handle_phase_end(Phase::Services, loaded + 5 * MS);
        s.handle_phase_end(Phase::Attach, loaded + 15 * MS);
        // Stages shorter than the init hold: init shows what is left of it.
        let mut staged = timings();
        staged.programs.push(ProgramLoad {
            name: "tandem_new_flow",
            wall: 40 * MS,
            cpu: 39 * MS,
            verified_insns: 20_000,
        });
        s.handle_stages(&staged, loaded + 55 * MS);
        let turn = loaded + 56 * MS;
        assert!(!s.handle_turn(turn, NodeState::Init));
        assert!(s.report().is_none(), "not ready in init");
        assert!(!s.handle_turn(turn + 600 * MS, NodeState::Takeover));
        assert!(s.handle_turn(turn + 601 * MS, NodeState::Active));
        assert!(
            !s.handle_turn(turn + 700 * MS, NodeState::Standby),
            "reported once"
        );
        let r = s.report().expect("report").clone();
        assert_eq!(r.check(), Ok(()), "{r:?}");
        assert_eq!(r.role, "active");
        assert_eq!(r.phase_us(Phase::Verify), Some(950_000));
        assert_eq!(r.phase_us(Phase::Object), Some(60_000));
        assert_eq!(r.phase_us(Phase::Stages), Some(40_000));
        assert_eq!(r.programs.len(), 3, "the stage's load joins the entry's");
        assert_eq!(r.verify_cpu_us(), 753_000);
        assert_eq!(r.phase_us(Phase::Init), Some(600_000));
        assert_eq!(r.phase_us(Phase::Decide), Some(1_000));
        assert_eq!(r.total_us, (turn + 601 * MS - t0).as_micros() as u64);
        assert_eq!(r.work_us(), r.total_us - 600_000);
        let json = serde_json::to_string(&r).expect("json");
        assert!(json.contains("\"phase\":\"exit_fence\""), "{json}");
        let back: StartupReport = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, r);
        let text = r.to_string();
        assert!(text.starts_with("ready as active "), "{text}");
        assert!(text.contains("init 600.0"), "{text}");
    }

    /// Stages longer than the init hold: the first turn decides at once.
    #[test]
    fn stages_longer_than_the_init_hold_leave_no_init_wait() {
        let t0 = Instant::now();
        let mut s = Startup::begin(t0);
        s.set_context(600 * MS, 1 << 20, 1 << 20);
        s.handle_phase_end(Phase::Config, t0 + MS);
        s.handle_phase_end(Phase::Open, t0 + 2 * MS);
        let loaded = t0 + 2 * MS + timings().total();
        s.handle_load(&timings(), loaded);
        s.handle_phase_end(Phase::Services, loaded + MS);
        s.handle_phase_end(Phase::Attach, loaded + 2 * MS);
        s.handle_stages(&timings(), loaded + 900 * MS);
        assert!(s.handle_turn(loaded + 901 * MS, NodeState::Active));
        let r = s.report().expect("report");
        assert_eq!(r.check(), Ok(()), "{r:?}");
        assert_eq!(r.phase_us(Phase::Stages), Some(898_000));
        assert_eq!(r.phase_us(Phase::Loop), Some(1_000));
        assert_eq!(r.phase_us(Phase::Init), Some(0));
        assert_eq!(r.work_us(), r.total_us);
    }

    /// A node that hears the active peer at once: init is one turn.
    #[test]
    fn a_joining_node_decides_without_the_init_hold() {
        let t0 = Instant::now();
        let mut s = Startup::begin(t0);
        s.set_context(600 * MS, 1024, 1024);
        s.handle_phase_end(Phase::Config, t0 + MS);
        s.handle_phase_end(Phase::Open, t0 + 2 * MS);
        s.handle_load(&timings(), t0 + 2 * MS + timings().total());
        // Services and Attach never marked: they end where Tables did.
        assert!(s.handle_turn(t0 + 1500 * MS, NodeState::Standby));
        let r = s.report().expect("report");
        assert_eq!(r.check(), Ok(()), "{r:?}");
        assert_eq!(r.phase_us(Phase::Services), Some(0));
        assert_eq!(r.phase_us(Phase::Init), Some(0));
        assert_eq!(r.role, "standby");
    }

    #[test]
    fn a_broken_report_is_refused_naming_what_is_wrong() {
        let t0 = Instant::now();
        let mut s = Startup::begin(t0);
        s.set_context(600 * MS, 1, 1);
        s.handle_load(&timings(), t0 + timings().total());
        assert!(s.handle_turn(t0 + 2000 * MS, NodeState::Active));
        let mut r = s.report().expect("report").clone();
        r.total_us += 1;
        r.phases.swap(0, 1);
        r.role = "init".into();
        r.programs[1].us = 10_000_000;
        let bad = r.check().expect_err("broken");
        assert_eq!(bad.len(), 4, "{bad:?}");
        assert!(bad.iter().any(|b| b.contains("sum")), "{bad:?}");
        assert!(bad.iter().any(|b| b.contains("tandem_sip")), "{bad:?}");
    }
}
