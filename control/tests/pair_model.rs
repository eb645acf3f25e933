//! Model check of the pair state machine: two real [`Pair`]s, a simulated
//! network and a simulated clock, every interleaving explored breadth-first
//! up to a budget of faults.
//!
//! The world: nodes A (id 1) and B (id 2); path 0 is the dedicated heartbeat
//! link, path 1 the service network, which works when both nodes' service
//! links are up; a node reaches the witness when its own service link is up.
//! Time advances in ticks of `interval`. In each tick every running node
//! sends one heartbeat (its state, epoch and priority at that moment) on
//! each working path, and everything else happens in any order before the
//! next tick: deliveries, due timeouts, witness answers (the runtime answers
//! within the tick), and the faults the budget allows: cut the heartbeat
//! link, take a node's service link down, crash a node (its state is lost;
//! a restart is free and starts a new `Pair` in Init), a local fault (its
//! clearing is free), an admin switchover on the active node, maintenance
//! (leaving it is free). Healing a link is free. Cutting a path drops what
//! is in flight on it.
//!
//! States are deduplicated on the machines' [`Fingerprint`]s (instants
//! relative to now) and the network, so the search is over all time, not a
//! fixed number of ticks: it ends when every state reachable with the budget
//! has been seen. At every step it asserts:
//! 1. never two actives at the end of two ticks in a row in which
//!    heartbeats crossed both ways and neither node changed state or epoch
//!    (so each heard the other's current state): settle time 2 × interval
//!    after they can hear each other;
//! 2. never no active for longer than max(deadline, init_hold) + 2 ticks
//!    after the last fault while some node has been healthy throughout:
//!    running (no restart), unfaulted, out of maintenance and (with a
//!    witness) able to reach it;
//! 3. a running node's epoch never goes back, and a node holds at least the
//!    epoch of every heartbeat it handled;
//!
//! and, as contract checks, that BecomeActive/BecomeStandby follow the
//! state, that handle_timeout moves the next deadline past now, and that
//! epochs stay small (a flapping pair would grow them without bound).
//!
//! A broken variant (a node that ignores part of what it hears) must be
//! caught: the last tests run the checker on two and expect counterexamples.
//!
//! # Size
//! The default budget is 2 faults per run (about 0.6–1.1 million states per
//! configuration, some 40 s of CPU for the file in a debug build).
//! `PAIR_MODEL_BUDGET=3 cargo test --release -p tandem-control --test
//! pair_model -- --nocapture` searches 7–13 million states per
//! configuration (about 4 minutes, 1.5 GB); it passed when written.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{Duration, Instant};

use tandem_control::pair::{Action, Event, FaultKind, Fingerprint, NodeState, Pair, PairConfig};

const PATHS: usize = 2;
const INTERVAL: Duration = Duration::from_millis(1);
const MULTIPLIER: u32 = 3;
const INIT_HOLD_TICKS: u32 = 3;
/// Ticks two actives that hear each other may last (property 1).
const SETTLE_TICKS: u8 = 2;
const NAMES: [&str; 2] = ["A", "B"];

/// A heartbeat on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Msg {
    state: NodeState,
    epoch: u64,
    priority: u8,
}

/// Rewrites (or drops) a heartbeat as the receiver in `NodeState` sees it:
/// the hook a deliberately broken variant uses.
type Tamper = fn(NodeState, Msg) -> Option<Msg>;

#[derive(Clone, Debug)]
struct Node {
    /// None: crashed.
    pair: Option<Pair>,
    sent: bool,
    /// A ProbeWitness awaits its answer.
    probe: bool,
    /// The local fault in the environment (survives a crash).
    fault: bool,
    /// Operator maintenance (lost with the process).
    maint: bool,
    /// Holds the VIPs, as the actions said (BecomeActive … BecomeStandby).
    serving: bool,
}

#[derive(Clone, Debug)]
struct World {
    tick: u32,
    nodes: [Node; 2],
    hb_link: bool,
    service: [bool; 2],
    /// `wire[from][path]`: a heartbeat in flight to the other node.
    wire: [[Option<Msg>; PATHS]; 2],
    budget: u8,
    /// `heard[to]`: a heartbeat reached `to` during this tick.
    heard: [bool; 2],
    /// A node's (state, epoch) changed during this tick: its heartbeats of
    /// this tick may not tell the peer its current state.
    changed: bool,
    dual_ticks: u8,
    /// `disturbed[n]`: node n was not healthy at some point of this tick.
    disturbed: [bool; 2],
    /// A fault from the budget happened during this tick.
    faulted: bool,
    /// Ticks in a row with no active, no fault, and some node healthy
    /// throughout.
    calm: u32,
    /// Some node was active at some point of this tick.
    served: bool,
}

#[derive(Hash)]
struct Key<'a> {
    nodes: [(Option<Fingerprint>, bool, bool, bool, bool); 2],
    hb_link: bool,
    service: [bool; 2],
    wire: &'a [[Option<Msg>; PATHS]; 2],
    budget: u8,
    heard: [bool; 2],
    changed: bool,
    dual_ticks: u8,
    disturbed: [bool; 2],
    faulted: bool,
    calm: u32,
    served: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Send(usize),
    Deliver(usize, usize),
    Timeout(usize),
    Answer(usize),
    Tick,
    CutHeartbeatLink,
    HealHeartbeatLink,
    ServiceDown(usize),
    ServiceUp(usize),
    Crash(usize),
    Restart(usize),
    Fault(usize),
    Clear(usize),
    Switchover(usize),
    MaintenanceOn(usize),
    MaintenanceOff(usize),
}

impl Step {
    fn describe(self) -> String {
        use Step::*;
        match self {
            Send(n) => format!("{} sends", NAMES[n]),
            Deliver(from, p) => format!("path {p} delivers {}→{}", NAMES[from], NAMES[1 - from]),
            Timeout(n) => format!("{} timeout", NAMES[n]),
            Answer(n) => format!("witness answers {}", NAMES[n]),
            Tick => "tick".into(),
            CutHeartbeatLink => "heartbeat link cut".into(),
            HealHeartbeatLink => "heartbeat link healed".into(),
            ServiceDown(n) => format!("{} service link down", NAMES[n]),
            ServiceUp(n) => format!("{} service link up", NAMES[n]),
            Crash(n) => format!("{} crashes", NAMES[n]),
            Restart(n) => format!("{} restarts", NAMES[n]),
            Fault(n) => format!("{} local fault", NAMES[n]),
            Clear(n) => format!("{} fault cleared", NAMES[n]),
            Switchover(n) => format!("{} admin switchover", NAMES[n]),
            MaintenanceOn(n) => format!("{} maintenance on", NAMES[n]),
            MaintenanceOff(n) => format!("{} maintenance off", NAMES[n]),
        }
    }
}

/// A 128-bit state digest, fed word by word: the states' fields are
/// integers, and SipHash over them byte by byte dominated the search's
/// time. Two independently multiplied lanes; 128 bits keep the chance
/// that two of a few million states collide below 1e-25.
#[derive(Default)]
struct StateHasher {
    a: u64,
    b: u64,
}

impl StateHasher {
    fn mix(&mut self, x: u64) {
        self.a = (self.a ^ x)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
        self.b = (self.b.rotate_left(17) ^ x).wrapping_mul(0xc2b2_ae3d_27d4_eb4f) ^ (self.b >> 31);
    }

    fn finish128(&self) -> u128 {
        let fin = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        (u128::from(fin(self.a)) << 64) | u128::from(fin(self.b ^ self.a.rotate_left(32)))
    }
}

impl Hasher for StateHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(w) ^ ((chunk.len() as u64) << 56));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i) | 0x100);
    }
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i) | 0x4_0000_0000);
    }
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64 ^ 0x5555_0000_0000_0000);
    }
    fn write_isize(&mut self, i: isize) {
        self.mix(i as u64 ^ 0xaaaa_0000_0000_0000);
    }
    fn finish(&self) -> u64 {
        self.finish128() as u64
    }
}

/// The set of seen digests hashes them by their low 64 bits (already mixed).
#[derive(Default)]
struct Low64(u64);

impl Hasher for Low64 {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, i: u128) {
        self.0 = i as u64;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// What to check.
#[derive(Clone, Debug)]
struct Model {
    name: &'static str,
    priority: [u8; 2],
    preempt: bool,
    witness: bool,
    /// Faults allowed (heals, restarts, clears are free).
    budget: u8,
    tamper: Option<Tamper>,
}

#[derive(Debug)]
struct Counterexample {
    property: String,
    trace: String,
}

#[derive(Debug, Default)]
struct Stats {
    /// Transitions (from, to) the machines took somewhere in the search.
    state_changes: BTreeSet<(NodeState, NodeState)>,
    garps: bool,
    /// The longest run of ticks without an active that property 2 counted.
    max_calm: u32,
    states: usize,
    transitions: usize,
    max_ticks: u32,
    max_epoch: u64,
}

impl Model {
    fn cfg(&self, n: usize) -> PairConfig {
        PairConfig {
            node_id: n as u32 + 1,
            priority: self.priority[n],
            preempt: self.preempt,
            interval: INTERVAL,
            multiplier: MULTIPLIER,
            paths: PATHS as u8,
            witness: self.witness,
            init_hold: INTERVAL * INIT_HOLD_TICKS,
            hold_down: Duration::ZERO,
            hold_down_max: Duration::ZERO,
            preempt_delay: Duration::ZERO,
            switchover_hold: Some(Duration::ZERO),
            sync: false,
            echo: false,
        }
    }

    fn idle_bound(&self) -> u32 {
        MULTIPLIER.max(INIT_HOLD_TICKS) + u32::from(SETTLE_TICKS)
    }

    /// Epochs beyond this mean the pair flaps: every takeover costs a fault
    /// from the budget, a few per fault at most.
    fn epoch_bound(&self) -> u64 {
        4 * u64::from(self.budget) + 8
    }

    fn initial(&self) -> World {
        let node = || Node {
            pair: None,
            sent: false,
            probe: false,
            fault: false,
            maint: false,
            serving: false,
        };
        World {
            tick: 0,
            nodes: [node(), node()],
            hb_link: true,
            service: [true, true],
            wire: [[None; PATHS]; 2],
            budget: self.budget,
            heard: [false; 2],
            changed: false,
            dual_ticks: 0,
            disturbed: [true; 2],
            faulted: false,
            calm: 0,
            served: false,
        }
    }

    fn enabled(&self, w: &World, now: Instant) -> Vec<Step> {
        use Step::*;
        let mut steps = Vec::new();
        let mut tick_ok = true;
        for n in 0..2 {
            let node = &w.nodes[n];
            if let Some(pair) = &node.pair {
                if !node.sent {
                    steps.push(Send(n));
                    tick_ok = false;
                }
                if pair.poll_timeout().is_some_and(|t| t <= now) {
                    steps.push(Timeout(n));
                    tick_ok = false;
                }
                if node.probe {
                    steps.push(Answer(n));
                    tick_ok = false;
                }
            }
            for p in 0..PATHS {
                if w.wire[n][p].is_some() {
                    steps.push(Deliver(n, p));
                    tick_ok = false;
                }
            }
        }
        if tick_ok {
            steps.push(Tick);
        }
        if !w.hb_link {
            steps.push(HealHeartbeatLink);
        }
        for n in 0..2 {
            let node = &w.nodes[n];
            if !w.service[n] {
                steps.push(ServiceUp(n));
            }
            match &node.pair {
                None => steps.push(Restart(n)),
                Some(pair) => {
                    if node.fault {
                        steps.push(Clear(n));
                    }
                    if node.maint {
                        steps.push(MaintenanceOff(n));
                    }
                    if w.budget > 0 {
                        steps.push(Crash(n));
                        if !node.fault {
                            steps.push(Fault(n));
                        }
                        if !node.maint {
                            steps.push(MaintenanceOn(n));
                        }
                        if pair.state() == NodeState::Active {
                            steps.push(Switchover(n));
                        }
                    }
                }
            }
            if w.budget > 0 && w.service[n] {
                steps.push(ServiceDown(n));
            }
        }
        if w.budget > 0 && w.hb_link {
            steps.push(CutHeartbeatLink);
        }
        steps
    }

    /// Running, unfaulted, out of maintenance and (with a witness) able to
    /// reach it: a node that could serve.
    fn healthy(&self, w: &World, n: usize) -> bool {
        let node = &w.nodes[n];
        node.pair.is_some() && !node.fault && !node.maint && (!self.witness || w.service[n])
    }

    fn any_active(w: &World) -> bool {
        w.nodes.iter().any(|node| {
            node.pair
                .as_ref()
                .is_some_and(|p| p.state() == NodeState::Active)
        })
    }

    fn path_up(w: &World, p: usize) -> bool {
        if p == 0 {
            w.hb_link
        } else {
            w.service[0] && w.service[1]
        }
    }

    /// Apply `step` to `w` (at `now`); Err names a broken property.
    fn apply(
        &self,
        w: &mut World,
        step: Step,
        t0: Instant,
        stats: &mut Stats,
    ) -> Result<(), String> {
        use Step::*;
        let now = t0 + INTERVAL * w.tick;
        let before: [Option<u64>; 2] = [0, 1].map(|n| w.nodes[n].pair.as_ref().map(Pair::epoch));
        let incarnation =
            |w: &World| [0, 1].map(|n| w.nodes[n].pair.as_ref().map(|p| (p.state(), p.epoch())));
        let was = incarnation(w);
        let budget_before = w.budget;
        let mut handled: Option<(usize, u64)> = None;
        match step {
            Send(n) => {
                let pair = w.nodes[n].pair.as_ref().expect("running");
                let msg = Msg {
                    state: pair.state(),
                    epoch: pair.epoch(),
                    priority: pair.priority(),
                };
                for p in 0..PATHS {
                    if Self::path_up(w, p) {
                        w.wire[n][p] = Some(msg);
                    }
                }
                w.nodes[n].sent = true;
            }
            Deliver(from, p) => {
                let msg = w.wire[from][p].take().expect("in flight");
                let to = 1 - from;
                if let Some(pair) = w.nodes[to].pair.as_mut() {
                    w.heard[to] = true;
                    let msg = match self.tamper {
                        Some(tamper) => tamper(pair.state(), msg),
                        None => Some(msg),
                    };
                    if let Some(msg) = msg {
                        let ev = Event::Heartbeat {
                            path: p as u8,
                            from: from as u32 + 1,
                            state: msg.state,
                            epoch: msg.epoch,
                            priority: msg.priority,
                        };
                        pair.handle(ev, now);
                        handled = Some((to, msg.epoch));
                    }
                }
            }
            Timeout(n) => {
                let pair = w.nodes[n].pair.as_mut().expect("running");
                pair.handle_timeout(now);
                if pair.poll_timeout().is_some_and(|t| t <= now) {
                    return Err(format!(
                        "{}: handle_timeout left a deadline at or before now",
                        NAMES[n]
                    ));
                }
            }
            Answer(n) => {
                w.nodes[n].probe = false;
                let reachable = w.service[n];
                let pair = w.nodes[n].pair.as_mut().expect("running");
                pair.handle(Event::Witness { reachable }, now);
            }
            Tick => {
                self.end_of_tick(w, stats)?;
                w.tick += 1;
                for node in &mut w.nodes {
                    node.sent = false;
                }
                w.heard = [false; 2];
                w.changed = false;
                w.disturbed = [0, 1].map(|n| !self.healthy(w, n));
                w.served = Self::any_active(w);
                w.faulted = false;
            }
            CutHeartbeatLink => {
                w.budget -= 1;
                w.hb_link = false;
                w.wire[0][0] = None;
                w.wire[1][0] = None;
            }
            HealHeartbeatLink => w.hb_link = true,
            ServiceDown(n) => {
                w.budget -= 1;
                w.service[n] = false;
                w.wire[0][1] = None;
                w.wire[1][1] = None;
            }
            ServiceUp(n) => w.service[n] = true,
            Crash(n) => {
                w.budget -= 1;
                let node = &mut w.nodes[n];
                node.pair = None;
                node.sent = false;
                node.probe = false;
                node.maint = false;
                node.serving = false;
            }
            Restart(n) => {
                let node = &mut w.nodes[n];
                let mut pair = Pair::new(self.cfg(n), now);
                if node.fault {
                    pair.handle(Event::LocalFault(FaultKind::CardAlarm), now);
                }
                node.pair = Some(pair);
                node.sent = false;
            }
            Fault(n) => {
                w.budget -= 1;
                w.nodes[n].fault = true;
                let pair = w.nodes[n].pair.as_mut().expect("running");
                pair.handle(Event::LocalFault(FaultKind::CardAlarm), now);
            }
            Clear(n) => {
                w.nodes[n].fault = false;
                let pair = w.nodes[n].pair.as_mut().expect("running");
                pair.handle(Event::LocalFaultCleared, now);
            }
            Switchover(n) => {
                w.budget -= 1;
                let pair = w.nodes[n].pair.as_mut().expect("running");
                pair.handle(Event::AdminSwitchover, now);
            }
            MaintenanceOn(n) | MaintenanceOff(n) => {
                let on = matches!(step, MaintenanceOn(_));
                if on {
                    w.budget -= 1;
                }
                w.nodes[n].maint = on;
                let pair = w.nodes[n].pair.as_mut().expect("running");
                pair.handle(Event::AdminMaintenance(on), now);
            }
        }
        // Drain the actions and check them against the state.
        for n in 0..2 {
            let node = &mut w.nodes[n];
            let Some(pair) = node.pair.as_mut() else {
                continue;
            };
            while let Some(a) = pair.poll_action() {
                match a {
                    Action::ProbeWitness => node.probe = true,
                    Action::BecomeActive { .. } => {
                        if node.serving {
                            return Err(format!("{}: BecomeActive while serving", NAMES[n]));
                        }
                        node.serving = true;
                    }
                    Action::BecomeStandby => {
                        if !node.serving {
                            return Err(format!("{}: BecomeStandby while not serving", NAMES[n]));
                        }
                        node.serving = false;
                    }
                    Action::SendGarp => stats.garps = true,
                    Action::StateChanged { from, to, .. } => {
                        stats.state_changes.insert((from, to));
                    }
                    Action::Held { .. } => {}
                }
            }
            if node.serving != (pair.state() == NodeState::Active) {
                return Err(format!(
                    "{}: actions say serving={} in state {:?}",
                    NAMES[n],
                    node.serving,
                    pair.state()
                ));
            }
            if pair.state() != NodeState::Takeover {
                node.probe = false;
            }
            // Property 3: epochs never go back (a restarted node was down
            // before this step and starts over at 0).
            if let Some(b) = before[n]
                && pair.epoch() < b
            {
                return Err(format!(
                    "property 3: {} epoch went back {b} → {}",
                    NAMES[n],
                    pair.epoch()
                ));
            }
            if pair.epoch() > self.epoch_bound() {
                return Err(format!(
                    "{}: epoch {} beyond {}: the pair flaps",
                    NAMES[n],
                    pair.epoch(),
                    self.epoch_bound()
                ));
            }
        }
        if w.budget < budget_before {
            w.faulted = true;
        }
        if step != Tick && incarnation(w) != was {
            w.changed = true;
        }
        for n in 0..2 {
            if !self.healthy(w, n) {
                w.disturbed[n] = true;
            }
        }
        w.served |= Self::any_active(w);
        // What this tick's end will decide anyway, decided now: fewer
        // distinct states, same verdicts.
        if w.served || w.faulted || w.disturbed == [true; 2] {
            w.served = true;
            w.faulted = false;
            w.disturbed = [true; 2];
            w.calm = 0;
        }
        if w.changed {
            w.heard = [true; 2];
            w.dual_ticks = 0;
        }
        if let Some((to, epoch)) = handled {
            let got = w.nodes[to].pair.as_ref().map_or(0, Pair::epoch);
            if got < epoch {
                return Err(format!(
                    "property 3: {} handled epoch {epoch} but holds {got}",
                    NAMES[to]
                ));
            }
        }
        Ok(())
    }

    /// Properties 1 and 2, judged at the end of each tick.
    fn end_of_tick(&self, w: &mut World, stats: &mut Stats) -> Result<(), String> {
        let active = |n: usize| {
            w.nodes[n]
                .pair
                .as_ref()
                .is_some_and(|p| p.state() == NodeState::Active)
        };
        // Heartbeats crossed both ways and told each side the other's
        // current state: a correct pair cannot still have two actives.
        if active(0) && active(1) && w.heard[0] && w.heard[1] && !w.changed {
            w.dual_ticks += 1;
            if w.dual_ticks >= SETTLE_TICKS {
                return Err(format!(
                    "property 1: two actives for {} ticks while hearing each other",
                    w.dual_ticks
                ));
            }
        } else {
            w.dual_ticks = 0;
        }
        let healthy = w.disturbed.iter().any(|d| !d);
        if w.served || w.faulted || !healthy {
            w.calm = 0;
        } else {
            w.calm += 1;
            stats.max_calm = stats.max_calm.max(w.calm);
            if w.calm > self.idle_bound() {
                return Err(format!(
                    "property 2: no active for {} ticks after the last fault while a node is healthy",
                    w.calm
                ));
            }
        }
        Ok(())
    }

    fn key(w: &World, now: Instant) -> u128 {
        let key = Key {
            nodes: [0, 1].map(|n| {
                let node = &w.nodes[n];
                (
                    node.pair.as_ref().map(|p| p.fingerprint(now)),
                    node.sent,
                    node.probe,
                    node.fault,
                    node.maint,
                )
            }),
            hb_link: w.hb_link,
            service: w.service,
            wire: &w.wire,
            budget: w.budget,
            heard: w.heard,
            changed: w.changed,
            dual_ticks: w.dual_ticks,
            disturbed: w.disturbed,
            faulted: w.faulted,
            calm: w.calm,
            served: w.served,
        };
        let mut h = StateHasher::default();
        key.hash(&mut h);
        h.finish128()
    }

    /// Breadth-first over every reachable state.
    fn check(&self) -> Result<Stats, Counterexample> {
        let t0 = Instant::now();
        let init = self.initial();
        let mut seen: HashSet<u128, BuildHasherDefault<Low64>> = HashSet::default();
        // For each state: its parent and the step that led to it.
        let mut parents: Vec<(u32, Step)> = Vec::new();
        let mut queue: VecDeque<(u32, World)> = VecDeque::new();
        seen.insert(Self::key(&init, t0));
        parents.push((u32::MAX, Step::Tick));
        queue.push_back((0, init));
        let mut stats = Stats {
            states: 1,
            ..Stats::default()
        };
        while let Some((id, w)) = queue.pop_front() {
            let now = t0 + INTERVAL * w.tick;
            for step in self.enabled(&w, now) {
                stats.transitions += 1;
                let mut next = w.clone();
                if let Err(property) = self.apply(&mut next, step, t0, &mut stats) {
                    let mut path = vec![step];
                    let mut at = id;
                    while at != 0 {
                        let (parent, s) = parents[at as usize];
                        path.push(s);
                        at = parent;
                    }
                    path.reverse();
                    return Err(Counterexample {
                        property,
                        trace: self.replay(&path, t0),
                    });
                }
                let key = Self::key(&next, t0 + INTERVAL * next.tick);
                if seen.insert(key) {
                    stats.states += 1;
                    stats.max_ticks = stats.max_ticks.max(next.tick);
                    for node in &next.nodes {
                        stats.max_epoch = stats
                            .max_epoch
                            .max(node.pair.as_ref().map_or(0, Pair::epoch));
                    }
                    parents.push((id, step));
                    queue.push_back((parents.len() as u32 - 1, next));
                }
            }
        }
        Ok(stats)
    }

    /// Re-run a trace from the start, one line per step with both nodes.
    fn replay(&self, path: &[Step], t0: Instant) -> String {
        let mut w = self.initial();
        let mut out = String::new();
        for &step in path {
            let tick = w.tick;
            let res = self.apply(&mut w, step, t0, &mut Stats::default());
            let node = |n: usize| match &w.nodes[n].pair {
                None => format!("{}: down", NAMES[n]),
                Some(p) => format!(
                    "{}: {:?} e{} p{}",
                    NAMES[n],
                    p.state(),
                    p.epoch(),
                    p.priority()
                ),
            };
            let _ = writeln!(
                out,
                "t{tick:<3} {:<32} {:<28} {}",
                step.describe(),
                node(0),
                node(1)
            );
            if let Err(e) = res {
                let _ = writeln!(out, "     ✗ {e}");
                break;
            }
        }
        out
    }
}

fn run(model: &Model) -> Stats {
    let started = Instant::now();
    match model.check() {
        Ok(stats) => {
            let changes: Vec<String> = stats
                .state_changes
                .iter()
                .map(|(f, t)| format!("{}→{}", f.name(), t.name()))
                .collect();
            println!(
                "{}: {} states, {} transitions, up to tick {}, epochs up to {}, budget {} faults, {:.1?}\n  \
                 longest run without an active: {} ticks (bound {}); SendGarp seen: {}\n  \
                 state changes taken ({}): {}",
                model.name,
                stats.states,
                stats.transitions,
                stats.max_ticks,
                stats.max_epoch,
                model.budget,
                started.elapsed(),
                stats.max_calm,
                model.idle_bound(),
                stats.garps,
                changes.len(),
                changes.join(" ")
            );
            stats
        }
        Err(cex) => panic!("{}: {}\n{}", model.name, cex.property, cex.trace),
    }
}

/// Every state change the machine has, as `(from, to)`.
fn all_changes(witness: bool) -> Vec<(NodeState, NodeState)> {
    use NodeState::*;
    let mut changes = vec![
        (Init, Standby),
        (Init, Takeover),
        (Init, Active),
        (Init, Fault),
        (Init, Maintenance),
        (Standby, Takeover),
        (Standby, Active),
        (Standby, Fault),
        (Standby, Maintenance),
        (Takeover, Active),
        (Active, Standby),
        (Active, Fault),
        (Active, Maintenance),
        (Fault, Standby),
        (Fault, Maintenance),
        (Maintenance, Standby),
    ];
    if witness {
        // Only a witness probe keeps a node in Takeover long enough to hear
        // the peer, fault, or be put in maintenance; only isolation retries.
        changes.extend([
            (Takeover, Standby),
            (Takeover, Fault),
            (Takeover, Maintenance),
            (Fault, Takeover),
        ]);
    }
    changes
}

/// The model must drive the machines through these state changes, or it
/// checks less than it seems to (some need two faults: checked from a
/// budget of 2 on).
fn assert_reached(stats: &Stats, changes: &[(NodeState, NodeState)]) {
    if budget() < 2 {
        return;
    }
    for c in changes {
        assert!(
            stats.state_changes.contains(c),
            "the search never took {:?} → {:?}",
            c.0,
            c.1
        );
    }
}

fn expect_counterexample(model: &Model, property: &str) {
    match model.check() {
        Ok(stats) => panic!(
            "{}: the broken variant passed ({} states)",
            model.name, stats.states
        ),
        Err(cex) => {
            println!(
                "{}: found as expected: {}\n{}",
                model.name, cex.property, cex.trace
            );
            assert!(
                cex.property.starts_with(property),
                "{}: wrong property: {}",
                model.name,
                cex.property
            );
        }
    }
}

/// Faults per run; `PAIR_MODEL_BUDGET` overrides it for longer searches.
fn budget() -> u8 {
    std::env::var("PAIR_MODEL_BUDGET")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(BUDGET)
}

const BUDGET: u8 = 2;

#[test]
fn model_equal_priority_no_preempt_with_witness() {
    let stats = run(&Model {
        name: "equal priority, preempt off, witness",
        priority: [100, 100],
        preempt: false,
        witness: true,
        budget: budget(),
        tamper: None,
    });
    assert_reached(&stats, &all_changes(true));
}

#[test]
fn model_preempt_higher_priority_with_witness() {
    let stats = run(&Model {
        name: "A preferred (200/100), preempt on, witness",
        priority: [200, 100],
        preempt: true,
        witness: true,
        budget: budget(),
        tamper: None,
    });
    assert_reached(&stats, &all_changes(true));
}

#[test]
fn model_without_witness() {
    let stats = run(&Model {
        name: "B preferred (100/200), preempt off, no witness",
        priority: [100, 200],
        preempt: false,
        witness: false,
        budget: budget(),
        tamper: None,
    });
    assert_reached(&stats, &all_changes(false));
}

/// A node that, while active, ignores heartbeats of an active peer: the
/// dual-active tie-break is gone. The checker must see two actives stay.
#[test]
fn model_finds_missing_dual_active_tie_break() {
    fn deaf_active(receiver: NodeState, msg: Msg) -> Option<Msg> {
        (receiver != NodeState::Active || msg.state != NodeState::Active).then_some(msg)
    }
    expect_counterexample(
        &Model {
            name: "broken: no dual-active tie-break",
            priority: [100, 100],
            preempt: false,
            witness: true,
            budget: 1,
            tamper: Some(deaf_active),
        },
        "property 1",
    );
}

/// A node that, while it has no role, believes every peer outranks it: the
/// tie-break between two standbys is gone, both wait for the other. The
/// checker must see nobody serve.
#[test]
fn model_finds_missing_standby_tie_break() {
    fn humble(receiver: NodeState, msg: Msg) -> Option<Msg> {
        let no_role = matches!(receiver, NodeState::Init | NodeState::Standby);
        Some(if no_role {
            Msg {
                priority: 255,
                ..msg
            }
        } else {
            msg
        })
    }
    expect_counterexample(
        &Model {
            name: "broken: no standby tie-break",
            priority: [100, 100],
            preempt: false,
            witness: true,
            budget: 1,
            tamper: Some(humble),
        },
        "property 2",
    );
}
