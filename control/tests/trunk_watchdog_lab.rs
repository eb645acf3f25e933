//! The trunk follows the active director by the failover switch's watchdog
//! alone: two `tandemd` in a pair lab, each with a simulated card on one
//! shared E1 trunk (the simulator in this process, over FUSE) and
//! `card.watchdog_ms = 100`. The active kicks its card's watchdog; when it
//! is killed with SIGKILL, or stopped with SIGSTOP, nobody kicks, and the
//! simulator's switch moves the trunk to the standby's card by itself — no
//! `unplug`, no other harness action. A TDM call placed afterwards is
//! answered on the new active's card; a stopped node that wakes up does not
//! get the trunk back.
//!
//! Assertions are on typed state: the simulator's [`WatchdogReport`] and
//! [`SpanReport`]s, call states, the daemons' pair states and `cards`
//! answers. Each case runs [`rounds`] times on a fresh lab and prints the
//! span takeover times: from the kill (or stop) to the relay moving (the
//! simulator's expiry instant), and to the new active's span carrying the
//! trunk alarm-free.
//!
//! Needs root (network namespaces, XDP, FUSE): without it each test prints
//! why it skips, and fails instead under `TANDEM_REQUIRE_PRIVILEGED=1`.
//!
//! [`WatchdogReport`]: tandem_hw::sim::WatchdogReport
//! [`SpanReport`]: tandem_hw::sim::SpanReport

use std::time::{Duration, Instant};

use tandem_control::admin::{Request, Response};
use tandem_hw::sim::CallState;
use tandem_tests::{
    lab::cards::SharedTrunkCards,
    privileged::lab_turn,
    tandemd::{Binaries, Director, Pair, PairOptions, WorkDir, wait_for},
};

/// The failover switch's watchdog in these tests.
const WATCHDOG: Duration = Duration::from_millis(100);
/// How much later than the watchdog the relay may move on a shared 2-core
/// machine (the kicker's interval is 25 ms, the simulator's tick 2 ms).
const MARGIN: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(5);

fn bins() -> Binaries {
    Binaries {
        tandemd: env!("CARGO_BIN_EXE_tandemd").into(),
        tandemctl: env!("CARGO_BIN_EXE_tandemctl").into(),
    }
}

/// Rounds per case: `TANDEM_WATCHDOG_LAB_ROUNDS`, default 3.
fn rounds() -> usize {
    std::env::var("TANDEM_WATCHDOG_LAB_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3)
}

/// 10 ms × 5 heartbeats at normal scheduling, no IVR heartbeats, sync on,
/// a card each with the watchdog, both directors answering card calls.
fn options() -> PairOptions {
    PairOptions {
        flags: Vec::new(),
        ivr_heartbeats: false,
        multiplier: 5,
        realtime_priority: 0,
        card_watchdog_ms: Some(WATCHDOG.as_millis() as u32),
        card_auto_answer: [true, true],
        ..PairOptions::default()
    }
}

/// Two simulated cards on one shared trunk (card 0: a's, card 1: b's), a
/// active and b standby. Dropped in field order: daemons and lab, mounts,
/// files.
struct Lab {
    pair: Pair,
    cards: SharedTrunkCards,
    _dir: WorkDir,
}

fn lab(tag: &str) -> Lab {
    let dir = WorkDir::new(tag).expect("work dir");
    let cards = SharedTrunkCards::mount(dir.path(), 4).expect("two simulated cards on a shared trunk");
    let mut pair = Pair::build(2, &options(), dir.path(), &bins(), Some(cards.root_pair())).expect("pair lab");
    pair.start_directors().expect("a active, b standby");
    Lab { pair, cards, _dir: dir }
}

impl Lab {
    /// Card `c`'s span 1 carries the trunk, alarm-free.
    fn carries(&self, c: usize) -> bool {
        self.cards.sim
            .report(c)
            .ok()
            .and_then(|r| r.first().cloned())
            .is_some_and(|s| s.carrier && s.running && s.alarms == 0)
    }

    fn holder(&self) -> Option<usize> {
        self.cards.sim.watchdog(0).ok().and_then(|w| w.relay_holder)
    }

    /// a active with its span carrying the trunk and its watchdog armed;
    /// b standby with no watchdog armed.
    fn settled(&self) {
        let Pair { a, b, .. } = &self.pair;
        assert!(
            wait_for(WAIT, || self.carries(0)),
            "no trunk on a's card: {}\n{}",
            self.cards.sim.execute("status 0"),
            a.log_text()
        );
        assert!(
            wait_for(WAIT, || self.cards.sim.watchdog(0).is_ok_and(|w| w.armed)),
            "a did not arm its watchdog: {}\n{}",
            self.cards.sim.execute("watchdog 0"),
            a.log_text()
        );
        let w = self.cards.sim.watchdog(0).expect("watchdog 0");
        assert_eq!(
            (w.timeout, w.expired, w.released, w.relay_holder),
            (WATCHDOG, 0, false, Some(0)),
            "{w:?}"
        );
        assert!(w.since_kick.is_some_and(|d| d < WATCHDOG), "a kicks: {w:?}");
        let wb = self.cards.sim.watchdog(1).expect("watchdog 1");
        assert!(
            !wb.armed && wb.since_kick.is_none(),
            "the standby leaves its watchdog alone: {wb:?}"
        );
        assert_eq!(b.pair_state().as_deref(), Some("standby"));
    }

    /// After `fault` at `t0`: waits for the relay to move and for b's span
    /// to carry the trunk alarm-free; returns (relay moved, b carrying)
    /// after `t0`.
    fn takeover(&self, t0: Instant, what: &str) -> (Duration, Duration) {
        let Pair { a, b, .. } = &self.pair;
        let mut released = None;
        let mut carrying = None;
        let end = t0 + WAIT;
        while Instant::now() < end && (released.is_none() || carrying.is_none()) {
            if released.is_none() {
                released = self
                    .cards
                    .sim
                    .watchdog(0)
                    .ok()
                    .filter(|w| w.released)
                    .and_then(|w| w.last_expiry);
            }
            if carrying.is_none() && self.carries(1) {
                carrying = Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let released = released.unwrap_or_else(|| {
            panic!(
                "{what}: the relay never let go of a's card: {}\n{}",
                self.cards.sim.execute("watchdog 0"),
                a.log_text()
            )
        });
        let carrying = carrying.unwrap_or_else(|| {
            panic!(
                "{what}: b's span never carried the trunk: {}\n{}",
                self.cards.sim.execute("status 1"),
                b.log_text()
            )
        });
        let moved = released.saturating_duration_since(t0);
        assert!(
            moved <= WATCHDOG + MARGIN,
            "{what}: the relay moved {moved:?} after, more than {WATCHDOG:?} + {MARGIN:?}"
        );
        // The last kick was at most one kick interval (+ a loop turn) before the fault.
        assert!(
            moved >= WATCHDOG / 2,
            "{what}: the relay moved {moved:?} after, before a's watchdog could have expired"
        );
        let w = self.cards.sim.watchdog(0).expect("watchdog 0");
        assert_eq!((w.expired, w.relay_holder), (1, Some(1)), "{what}: {w:?}");
        // Nobody shut a's span down: the switch took the trunk from a running span.
        let a_span = self.cards.sim.report(0).expect("report 0")[0].clone();
        assert!(
            a_span.running && !a_span.carrier,
            "{what}: a's span {a_span:?}"
        );
        assert_eq!(
            a_span.alarms,
            tandem_hw::abi::DAHDI_ALARM_RED | tandem_hw::abi::DAHDI_ALARM_LOS,
            "{what}: a's span lost the trunk"
        );
        (moved, carrying)
    }

    /// b is active, its span started and alarm-free as b reports it, and a
    /// call the far end places now is answered on b's card.
    fn b_serves(&self, what: &str, channel: i32) {
        let b = &self.pair.b;
        assert!(
            wait_for(WAIT, || b.pair_state().as_deref() == Some("active")),
            "{what}: b not active:\n{}",
            b.log_text()
        );
        let spans_ok = || match b.request(&Request::Cards) {
            Some(Response::Cards { spans }) => {
                spans.len() == 1
                    && spans[0].state == "started"
                    && spans[0].alarms == "OK"
                    && !spans[0].fault
            }
            _ => false,
        };
        assert!(
            wait_for(WAIT, spans_ok),
            "{what}: b's cards: {:?}",
            b.request(&Request::Cards)
        );
        assert_eq!(self.cards.sim.ring(1, 1, channel), Ok(()), "{what}: ring");
        assert!(
            wait_for(WAIT, || self.cards.sim.call(1, 1, channel)
                == Ok(CallState::Answered)),
            "{what}: call on channel {channel}: {:?}\n{}",
            self.cards.sim.call(1, 1, channel),
            b.log_text()
        );
        assert!(self.carries(1), "{what}: answered on b's card");
        assert_eq!(self.holder(), Some(1));
    }
}

/// A director stopped with SIGSTOP by its PID; SIGCONT when dropped (also
/// on a panic), unless [`Stopped::cont`] already did.
struct Stopped {
    pid: libc::pid_t,
    stopped: bool,
}

impl Stopped {
    fn stop(d: &Director) -> Stopped {
        let pid = d.pid().expect("the director runs") as libc::pid_t;
        // SAFETY: kill(2) on our own running child's PID.
        let r = unsafe { libc::kill(pid, libc::SIGSTOP) };
        assert_eq!(r, 0, "SIGSTOP {pid}: {}", std::io::Error::last_os_error());
        Stopped { pid, stopped: true }
    }

    fn cont(&mut self) {
        if std::mem::take(&mut self.stopped) {
            // SAFETY: kill(2) on our own child's PID (not reaped: it is stopped).
            unsafe { libc::kill(self.pid, libc::SIGCONT) };
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        self.cont();
    }
}

fn summary(name: &str, samples: &[(Duration, Duration)]) {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    let moved: Vec<String> = samples.iter().map(|s| ms(s.0)).collect();
    let carrying: Vec<String> = samples.iter().map(|s| ms(s.1)).collect();
    eprintln!(
        "span takeover ({name}, watchdog {} ms, {} rounds): relay moved after [{}] ms; standby's span alarm-free after [{}] ms",
        WATCHDOG.as_millis(),
        samples.len(),
        moved.join(", "),
        carrying.join(", ")
    );
}

#[test]
fn privileged_lab_kill9_active_trunk_moves_by_the_watchdog() {
    let Some(_turn) = lab_turn("privileged_lab_kill9_active_trunk_moves_by_the_watchdog") else {
        return;
    };
    let mut samples = Vec::new();
    for round in 0..rounds() {
        let mut l = lab(&format!("wdkill{round}"));
        l.settled();
        let t0 = Instant::now();
        assert!(l.pair.a.kill9().is_some(), "a was running");
        let what = format!("kill -9, round {round}");
        let took = l.takeover(t0, &what);
        eprintln!(
            "{what}: relay moved after {:?}, b's span alarm-free after {:?}",
            took.0, took.1
        );
        l.b_serves(&what, 1);
        samples.push(took);
    }
    summary("kill -9 of the active", &samples);
}

#[test]
fn privileged_lab_sigstop_active_trunk_moves_and_stays() {
    let Some(_turn) = lab_turn("privileged_lab_sigstop_active_trunk_moves_and_stays") else {
        return;
    };
    let mut samples = Vec::new();
    for round in 0..rounds() {
        let l = lab(&format!("wdstop{round}"));
        l.settled();
        let t0 = Instant::now();
        let mut stopped = Stopped::stop(&l.pair.a);
        let what = format!("SIGSTOP, round {round}");
        let took = l.takeover(t0, &what);
        eprintln!(
            "{what}: relay moved after {:?}, b's span alarm-free after {:?}",
            took.0, took.1
        );
        l.b_serves(&what, 1);
        samples.push(took);

        // a wakes up: it must not get the trunk back while b is active.
        stopped.cont();
        let woke = Instant::now();
        let mut a_left = false;
        while woke.elapsed() < Duration::from_millis(1500) {
            assert!(
                l.carries(1) && !l.carries(0),
                "{what}: the trunk left b after a's SIGCONT: {}",
                l.cards.sim.execute("status 0")
            );
            assert_eq!(l.holder(), Some(1), "{what}");
            a_left |= l.pair.a.pair_state().is_some_and(|s| s != "active");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            a_left
                || wait_for(WAIT, || l
                    .pair
                    .a
                    .pair_state()
                    .is_some_and(|s| s != "active")),
            "{what}: a did not step down:\n{}",
            l.pair.a.log_text()
        );
        assert_eq!(
            l.pair.b.pair_state().as_deref(),
            Some("active"),
            "{what}: b:\n{}",
            l.pair.b.log_text()
        );
        // a disarmed its watchdog on stepping down; the trunk stays with b.
        assert!(
            wait_for(WAIT, || l
                .cards.sim
                .watchdog(0)
                .is_ok_and(|w| !w.armed && !w.released)),
            "{what}: a's watchdog after stepping down: {}\n{}",
            l.cards.sim.execute("watchdog 0"),
            l.pair.a.log_text()
        );
        assert!(l.carries(1), "{what}: b still carries");
        assert_eq!(
            l.cards.sim.call(1, 1, 1),
            Ok(CallState::Answered),
            "{what}: the call lives on"
        );
        // And a second call after the wake-up is answered on b's card too.
        l.b_serves(&format!("{what}, after SIGCONT"), 2);
    }
    summary("SIGSTOP of the active", &samples);
}
