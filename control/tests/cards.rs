//! `tandem_control::cards` against the card simulator mounted over FUSE:
//! two simulated cards share one trunk through the failover switch, one
//! [`CardManager`] per card plays the card side of each director.
//!
//! The `fuse_*` tests need root and /dev/fuse. Without them a test prints
//! `SKIP <name>: <reason>` and returns, unless `TANDEM_REQUIRE_PRIVILEGED=1`
//! is set, in which case it fails. Each test mounts its own cards in its own
//! temporary directory (RAII: unmounted at the end, also on a panic), and
//! every wait is bounded.

use std::io::Write;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tandem_control::admin::{self, Response};
use tandem_control::cards::{
    CallEvent, CallState, CardError, CardManager, SpanPhase, WatchdogAction, WatchdogNews,
};
use tandem_control::config::{CardConfig, CardLine};
use tandem_hw::abi;
use tandem_hw::sim::{
    self, ControlServer, MountOptions, MountScratch, MountedCard, SimConfig, Simulator,
};
use tandem_tests::privileged::{Need, require};

const WAIT: Duration = Duration::from_secs(5);
const DEADLINE: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// True if this process may mount FUSE filesystems. Otherwise prints
/// `SKIP <test>: <reason>` (or panics under TANDEM_REQUIRE_PRIVILEGED=1):
/// the workspace's rule for privileged tests.
fn privileged(test: &str) -> bool {
    require(test, &[Need::Fuse])
}

/// Two simulated cards (card 0 = director A, card 1 = director B) whose span
/// 1 shares one trunk, and the simulator's control socket. Fields drop in
/// order: socket and mounts first, then the directory.
struct Pair {
    control: ControlServer,
    cards: Vec<Option<MountedCard>>,
    sim: Simulator,
    roots: Vec<PathBuf>,
    _dir: MountScratch,
}

impl Pair {
    fn new(tag: &str, channels: usize) -> Pair {
        let dir = MountScratch::new(&format!("cards-{}", tag)).expect("mkdtemp");
        let sim = Simulator::new(SimConfig {
            cards: 2,
            spans: 1,
            channels,
            shared_trunks: true,
            signalling: abi::DAHDI_SIG_FXSKS,
        })
        .expect("simulator config");
        let mut cards = Vec::new();
        let mut roots = Vec::new();
        for card in 0..2 {
            let root = dir.subdir(&format!("card{card}")).expect("create mount point");
            cards.push(Some(
                sim.mount(card, &root, MountOptions::default())
                    .expect("mount card"),
            ));
            roots.push(root);
        }
        let control = sim
            .serve_control(&dir.path().join("control.sock"))
            .expect("control socket");
        Pair {
            control,
            cards,
            sim,
            roots,
            _dir: dir,
        }
    }

    fn config(&self, card: usize) -> CardConfig {
        CardConfig {
            root: self.roots[card].clone(),
            spans: vec![1],
            takeover_deadline: DEADLINE,
            line: Some(CardLine {
                config: abi::DAHDI_CONFIG_CCS | abi::DAHDI_CONFIG_HDB3 | abi::DAHDI_CONFIG_CRC4,
                timing: 1,
            }),
            signalling: abi::DAHDI_SIG_FXSKS,
            auto_answer: false,
            watchdog: None,
            system: None,
        }
    }

    /// A director's card side, as tandemd sets it up: open, shut down, armed.
    fn standby(&self, card: usize) -> CardManager {
        let mut m = CardManager::open(&self.config(card)).expect("open the card");
        m.shutdown_spans().expect("standby shuts its spans down");
        m.arm().expect("arm");
        m
    }

    /// One line of the simulator's control protocol, through its socket.
    fn sim(&self, line: &str) -> String {
        sim::control::request(self.control.path(), line, WAIT).expect("simulator control socket")
    }

    fn carrier(&self) -> Option<usize> {
        (0..2).find(|&card| self.sim.report(card).expect("report")[0].carrier)
    }
}

fn expect_call(m: &mut CardManager, channel: u32, state: CallState) -> CallEvent {
    let event = m
        .wait_call_event(WAIT)
        .expect("channel events")
        .unwrap_or_else(|| panic!("no call event on channel {channel} (wanted {state})"));
    assert_eq!(
        (event.span, event.channel, event.state),
        (1, channel, state),
        "{event:?}"
    );
    event
}

fn no_call_event(m: &mut CardManager) {
    let event = m
        .wait_call_event(Duration::from_millis(30))
        .expect("channel events");
    assert_eq!(event, None);
}

fn stats(samples: &mut [Duration]) -> String {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "{} takeovers: min {:?}, median {:?}, p99 {:?}, max {:?}",
        samples.len(),
        samples[0],
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    )
}

// ---------------------------------------------------------------------------
// Spans follow the pair state
// ---------------------------------------------------------------------------

#[test]
fn fuse_cards_takeover_moves_the_trunk() {
    if !privileged("fuse_cards_takeover_moves_the_trunk") {
        return;
    }
    let pair = Pair::new("takeover", 31);
    let mut a = pair.standby(0);
    let mut b = pair.standby(1);
    assert_eq!(pair.carrier(), None, "both standing by: nobody carries");

    // A becomes active.
    let up = a
        .start_spans(Instant::now() + a.takeover_deadline())
        .expect("A's span is alarm-free within the deadline");
    assert_eq!(up.spans.len(), 1);
    assert!(up.elapsed < DEADLINE, "{up}");
    assert_eq!(a.phase(1), Some(SpanPhase::Started));
    assert_eq!(pair.carrier(), Some(0), "A carries the trunk");
    assert!(!a.check_alarms().local_fault());
    let standby = b.check_alarms();
    assert!(
        !standby.local_fault(),
        "a shut-down standby span (NOTOPEN) is no fault: {standby}"
    );
    assert_eq!(
        standby.spans[0].alarms,
        Some(tandem_hw::Alarms::NOTOPEN),
        "{standby}"
    );

    // Takeover, both ways, many times: demotion shuts down first, then the
    // other side starts (blocking path on B, event-loop path on A).
    let mut samples = Vec::new();
    for round in 0..50 {
        a.shutdown_spans().expect("A demotes");
        a.arm().expect("A arms as standby");
        let up = b
            .start_spans(Instant::now() + DEADLINE)
            .unwrap_or_else(|e| panic!("round {round}: B takes over: {e}"));
        assert_eq!(
            pair.carrier(),
            Some(1),
            "round {round}: B carries the trunk"
        );
        samples.push(up.elapsed);

        b.shutdown_spans().expect("B demotes");
        b.arm().expect("B arms as standby");
        a.begin_start(Instant::now() + DEADLINE).expect("A starts");
        let up = loop {
            if let Some(r) = a.poll_started(Instant::now()) {
                break r.unwrap_or_else(|e| panic!("round {round}: A takes over: {e}"));
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        assert_eq!(
            pair.carrier(),
            Some(0),
            "round {round}: A carries the trunk"
        );
        samples.push(up.elapsed);
    }
    assert!(!a.check_alarms().local_fault());
    assert!(!b.check_alarms().local_fault());
    let _ = writeln!(
        std::io::stderr(),
        "span takeover time (cardsim, E1 31 channels, STARTUP to alarm-free SPANSTAT): {}",
        stats(&mut samples)
    );
    assert!(
        samples.iter().all(|&t| t < DEADLINE),
        "every takeover within the deadline"
    );

    // Cold: a standby that was not armed configures and opens its 31
    // channels inside the takeover.
    let mut cold = Vec::new();
    for round in 0..10 {
        let (from, to) = if round % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        from.shutdown_spans().expect("demotion");
        to.shutdown_spans().expect("standby, not armed");
        assert_eq!(to.channel_fds().len(), 31, "files stay open");
        let up = to
            .start_spans(Instant::now() + DEADLINE)
            .unwrap_or_else(|e| panic!("cold round {round}: {e}"));
        assert_eq!(pair.carrier(), Some(round % 2 ^ 1));
        cold.push(up.elapsed);
    }
    let _ = writeln!(
        std::io::stderr(),
        "span takeover time, standby not armed (CHANCONFIG x31 inside the takeover): {}",
        stats(&mut cold)
    );
}

#[test]
fn fuse_cards_start_fails_clearly_while_the_peer_holds_the_trunk() {
    if !privileged("fuse_cards_start_fails_clearly_while_the_peer_holds_the_trunk") {
        return;
    }
    let pair = Pair::new("held", 4);
    let mut a = pair.standby(0);
    let mut b = pair.standby(1);
    a.start_spans(Instant::now() + DEADLINE).expect("A active");

    // B starts while A still carries: B's span sees no signal.
    let started = Instant::now();
    let err = b
        .start_spans(Instant::now() + Duration::from_millis(50))
        .expect_err("B cannot be alarm-free");
    assert!(started.elapsed() < WAIT, "bounded by the deadline");
    let text = err.to_string();
    assert!(
        matches!(err, CardError::NotAlarmFree { span: 1, .. }),
        "{text}"
    );
    assert!(
        text.contains(&pair.roots[1].display().to_string()),
        "{text}"
    );
    assert!(
        text.contains("span 1") && text.contains("RED|LOS"),
        "{text}"
    );
    // The span stays started, and now it is judged: a fault.
    assert_eq!(b.phase(1), Some(SpanPhase::Started));
    let report = b.check_alarms();
    assert!(report.local_fault() && report.changed(), "{report}");
    assert!(
        b.poll_started(Instant::now())
            .is_some_and(|r| matches!(r, Err(CardError::NotStarting { .. })))
    );

    // While starting, the alarms are excused until the deadline.
    b.shutdown_spans().expect("B back to standby");
    b.begin_start(Instant::now() + Duration::from_secs(60))
        .expect("B starts");
    assert!(b.poll_started(Instant::now()).is_none(), "still waiting");
    let report = b.check_alarms();
    assert!(!report.local_fault(), "starting is no fault yet: {report}");
    assert!(report.changed(), "the fault cleared");
    // A lets go: the switch moves the trunk to B, which comes up.
    a.shutdown_spans().expect("A demotes");
    let up = loop {
        if let Some(r) = b.poll_started(Instant::now()) {
            break r.expect("B alarm-free once A let go");
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    assert_eq!(up.spans[0].span, 1);
    assert_eq!(pair.carrier(), Some(1));
}

// ---------------------------------------------------------------------------
// Alarms are local faults
// ---------------------------------------------------------------------------

#[test]
fn fuse_cards_alarms_on_the_active_span_are_a_local_fault() {
    if !privileged("fuse_cards_alarms_on_the_active_span_are_a_local_fault") {
        return;
    }
    let pair = Pair::new("alarm", 4);
    let mut a = pair.standby(0);
    let mut b = pair.standby(1);
    a.start_spans(Instant::now() + DEADLINE).expect("A active");
    let first = a.check_alarms();
    assert!(!first.local_fault() && !first.changed(), "{first}");
    a.read_all_events().expect("drain A");
    a.take_alarm_events();

    for (inject, clear) in [
        ("alarm 0 1 RED,LOS", "alarm 0 1 none"),
        ("alarm 0 1 BLUE", "alarm 0 1 none"),
        ("cut 0 1", "restore 0 1"),
    ] {
        assert_eq!(pair.sim(inject), "ok", "{inject}");
        // The channels hear it first (ALARM), as the daemon would.
        a.wait_call_event(Duration::from_millis(50))
            .expect("events");
        assert!(
            a.take_alarm_events(),
            "{inject}: ALARM event on A's channels"
        );
        let report = a.check_alarms();
        assert!(
            report.local_fault() && report.changed(),
            "{inject}: {report}"
        );
        assert!(report.spans[0].fault, "{report}");
        let again = a.check_alarms();
        assert!(again.local_fault() && !again.changed(), "edge only once");
        // The standby's span, shut down, is unaffected.
        assert!(!b.check_alarms().local_fault(), "{inject}: standby");

        assert_eq!(pair.sim(clear), "ok", "{clear}");
        a.wait_call_event(Duration::from_millis(50))
            .expect("events");
        assert!(a.take_alarm_events(), "{clear}: NOALARM event");
        let report = a.check_alarms();
        assert!(
            !report.local_fault() && report.changed(),
            "{clear}: cleared: {report}"
        );
    }

    // Yellow (remote alarm) is reported, not a fault.
    assert_eq!(pair.sim("alarm 0 1 YELLOW"), "ok");
    let report = a.check_alarms();
    assert!(!report.local_fault(), "{report}");
    assert_eq!(report.spans[0].alarms, Some(tandem_hw::Alarms::YELLOW));
    assert_eq!(pair.sim("alarm 0 1 none"), "ok");

    // DAHDI_MAINT_ALARM_SIM, the ioctl way to inject, is seen the same.
    let ctl = tandem_hw::Control::open(&pair.roots[0]).expect("ctl");
    ctl.maint(1, tandem_hw::MaintCommand::AlarmSim)
        .expect("alarm sim");
    assert!(a.check_alarms().local_fault());
    ctl.maint(1, tandem_hw::MaintCommand::None)
        .expect("maint none");
    assert!(!a.check_alarms().local_fault());
}

#[test]
fn fuse_cards_standby_span_faults_only_on_a_real_alarm() {
    if !privileged("fuse_cards_standby_span_faults_only_on_a_real_alarm") {
        return;
    }
    let pair = Pair::new("standby", 4);
    let mut a = pair.standby(0);
    let mut b = pair.standby(1);
    a.start_spans(Instant::now() + DEADLINE).expect("A active");

    // Shut down on purpose: NOTOPEN, no fault, however often it is checked.
    for _ in 0..3 {
        let report = b.check_alarms();
        assert!(!report.local_fault() && !report.changed(), "{report}");
        assert_eq!(report.spans[0].phase, SpanPhase::Stopped);
    }
    // A red alarm the card reports on the stopped span: this standby could
    // not carry the trunk if promoted, so it is a fault (the pair then keeps
    // the active degraded instead of handing over).
    assert_eq!(pair.sim("alarm 1 1 RED"), "ok");
    let report = b.check_alarms();
    assert!(report.local_fault() && report.changed(), "{report}");
    assert!(!a.check_alarms().local_fault(), "the active is fine");
    assert_eq!(pair.sim("alarm 1 1 none"), "ok");
    let report = b.check_alarms();
    assert!(!report.local_fault() && report.changed(), "{report}");
}

// ---------------------------------------------------------------------------
// Channel call states become call records
// ---------------------------------------------------------------------------

#[test]
fn fuse_cards_channel_events_become_call_records() {
    if !privileged("fuse_cards_channel_events_become_call_records") {
        return;
    }
    let pair = Pair::new("calls", 4);
    let mut a = pair.standby(0);
    let _b = pair.standby(1);
    a.start_spans(Instant::now() + DEADLINE).expect("A active");
    a.read_all_events().expect("drain");
    assert!(
        a.take_call_events().is_empty(),
        "starting makes no call records"
    );
    assert_eq!(a.channel_fds().len(), 4);

    // Incoming: the far end rings, we answer, hold, take back; it hangs up.
    assert_eq!(pair.sim("ring 0 1 1"), "ok");
    let ringing = expect_call(&mut a, 1, CallState::Ringing);
    assert!(
        ringing.at_ms > 1_600_000_000_000,
        "wall-clock ms: {ringing:?}"
    );
    a.answer(1, 1).expect("answer");
    expect_call(&mut a, 1, CallState::Answered);
    assert_eq!(pair.sim("call 0 1 1"), "ok answered");
    a.toggle_hold(1, 1).expect("hold");
    expect_call(&mut a, 1, CallState::OnHold);
    assert_eq!(pair.sim("call 0 1 1"), "ok on-hold");
    a.toggle_hold(1, 1).expect("unhold");
    expect_call(&mut a, 1, CallState::Answered);
    assert_eq!(pair.sim("hangup 0 1 1"), "ok");
    expect_call(&mut a, 1, CallState::HungUp);
    assert_eq!(a.call_state(1, 1), Some(CallState::HungUp));
    a.hang_up(1, 1).expect("hang up");
    expect_call(&mut a, 1, CallState::Idle);
    assert_eq!(pair.sim("call 0 1 1"), "ok idle");

    // Outgoing: we ring, the far end answers, then hangs up.
    a.ring(1, 2).expect("ring out");
    expect_call(&mut a, 2, CallState::Ringing);
    assert_eq!(pair.sim("call 0 1 2"), "ok alerting");
    assert_eq!(pair.sim("answer 0 1 2"), "ok");
    expect_call(&mut a, 2, CallState::Answered);
    assert_eq!(pair.sim("hangup 0 1 2"), "ok");
    expect_call(&mut a, 2, CallState::HungUp);
    a.hang_up(1, 2).expect("hang up");
    expect_call(&mut a, 2, CallState::Idle);

    // Abandoned before answer: hung up, and the channel is free at once.
    assert_eq!(pair.sim("ring 0 1 3"), "ok");
    expect_call(&mut a, 3, CallState::Ringing);
    assert_eq!(pair.sim("hangup 0 1 3"), "ok");
    expect_call(&mut a, 3, CallState::HungUp);
    expect_call(&mut a, 3, CallState::Idle);
    no_call_event(&mut a);

    // Operations the state does not allow are refused, naming the channel.
    let e = a.answer(1, 4).expect_err("nothing rings");
    assert!(
        e.to_string()
            .contains("span 1 channel 4: cannot answer a call that is idle"),
        "{e}"
    );
    assert!(matches!(
        a.answer(1, 9),
        Err(CardError::NotOwned { channel: 9, .. })
    ));

    // The daemon's path: POLLPRI on the channel's fd, then read that channel.
    let fd = a
        .channel_fds()
        .into_iter()
        .find(|c| c.channel == 4)
        .expect("channel 4 fd");
    assert_eq!(pair.sim("ring 0 1 4"), "ok");
    // SAFETY: the fd belongs to `a`, which outlives this borrow.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd.fd) };
    let mut fds = [PollFd::new(borrowed, PollFlags::POLLPRI)];
    let n = poll(&mut fds, PollTimeout::from(5000u16)).expect("poll");
    assert_eq!(n, 1, "POLLPRI on the ringing channel");
    assert_eq!(a.read_channel_events(fd.span, fd.channel).expect("read"), 1);
    let events = a.take_call_events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].channel, events[0].state),
        (4, CallState::Ringing)
    );
    let states: Vec<CallState> = a.call_states().iter().map(|c| c.state).collect();
    assert_eq!(
        states,
        [
            CallState::Idle,
            CallState::Idle,
            CallState::Idle,
            CallState::Ringing
        ]
    );

    // A demotion resets the states without records (the calls go on elsewhere).
    a.shutdown_spans().expect("demote");
    assert!(a.take_call_events().is_empty());
    assert_eq!(a.call_state(1, 4), Some(CallState::Idle));
    assert!(
        a.answer(1, 4)
            .unwrap_err()
            .to_string()
            .contains("the span is shut down")
    );
}

#[test]
fn fuse_cards_calls_survive_a_takeover_from_the_records() {
    if !privileged("fuse_cards_calls_survive_a_takeover_from_the_records") {
        return;
    }
    let pair = Pair::new("survive", 4);
    let mut a = pair.standby(0);
    let mut b = pair.standby(1);
    a.start_spans(Instant::now() + DEADLINE).expect("A active");

    // Channel 1 answered, channel 2 held, channel 3 ringing.
    for ch in 1..=3 {
        assert_eq!(pair.sim(&format!("ring 0 1 {ch}")), "ok");
        expect_call(&mut a, ch, CallState::Ringing);
    }
    for ch in 1..=2 {
        a.answer(1, ch).expect("answer");
        expect_call(&mut a, ch, CallState::Answered);
    }
    a.toggle_hold(1, 2).expect("hold");
    expect_call(&mut a, 2, CallState::OnHold);
    // What the sync layer carried to the standby.
    let records = a.call_states();

    // Failover: A goes away, B takes over with the records.
    b.expect_calls(&records).expect("records");
    a.shutdown_spans().expect("A demotes");
    b.start_spans(Instant::now() + DEADLINE)
        .expect("B takes over");
    let mut seen = Vec::new();
    while let Some(e) = b
        .wait_call_event(Duration::from_millis(100))
        .expect("events")
    {
        seen.push((e.channel, e.state));
    }
    seen.sort_by_key(|&(channel, _)| channel);
    assert_eq!(
        seen,
        [
            (1, CallState::Answered),
            (2, CallState::OnHold),
            (3, CallState::Ringing)
        ],
        "records picked up, the unanswered call rings on"
    );
    assert_eq!(pair.sim("call 1 1 1"), "ok answered", "no call lost");
    assert_eq!(pair.sim("call 1 1 2"), "ok on-hold");
    assert_eq!(pair.sim("call 1 1 3"), "ok ringing");

    // Without records, a carried call only rings (nothing to tell it from a new one)...
    a.expect_calls(&[]).expect("no records");
    b.shutdown_spans().expect("B demotes");
    a.start_spans(Instant::now() + DEADLINE)
        .expect("A takes over");
    let mut seen = Vec::new();
    while let Some(e) = a
        .wait_call_event(Duration::from_millis(100))
        .expect("events")
    {
        seen.push((e.channel, e.state));
    }
    seen.sort_by_key(|&(channel, _)| channel);
    assert_eq!(
        seen,
        [
            (1, CallState::Ringing),
            (2, CallState::Ringing),
            (3, CallState::Ringing)
        ]
    );
    // ...until the records arrive: then it is picked up at once.
    a.expect_calls(&records).expect("late records");
    let mut seen = Vec::new();
    while let Some(e) = a
        .wait_call_event(Duration::from_millis(50))
        .expect("events")
    {
        seen.push((e.channel, e.state));
    }
    seen.sort_by_key(|&(channel, _)| channel);
    assert_eq!(seen, [(1, CallState::Answered), (2, CallState::OnHold)]);
    assert_eq!(pair.sim("call 0 1 1"), "ok answered");
}

// ---------------------------------------------------------------------------
// tandemctl cards
// ---------------------------------------------------------------------------

#[test]
fn fuse_cards_status_lists_spans_alarms_and_channels() {
    if !privileged("fuse_cards_status_lists_spans_alarms_and_channels") {
        return;
    }
    let pair = Pair::new("status", 4);
    let mut a = pair.standby(0);
    let b = pair.standby(1);
    a.start_spans(Instant::now() + DEADLINE).expect("A active");
    assert_eq!(pair.sim("ring 0 1 2"), "ok");
    expect_call(&mut a, 2, CallState::Ringing);

    let spans = a.cards_status();
    assert_eq!(spans.len(), 1);
    let s = &spans[0];
    assert_eq!(s.card, pair.roots[0].display().to_string());
    assert_eq!(
        (s.span, s.name.as_str(), s.span_type.as_str()),
        (1, "CARDSIM/0/1", "E1")
    );
    assert_eq!((s.alarms.as_str(), s.state.as_str()), ("OK", "started"));
    assert!(s.owned && !s.fault);
    assert_eq!((s.configured_channels, s.total_channels), (4, 4));
    let states: Vec<&str> = s.channels.iter().map(|c| c.state.as_str()).collect();
    assert_eq!(states, ["idle", "ringing", "idle", "idle"]);

    let standby = b.cards_status();
    assert_eq!(
        (
            standby[0].alarms.as_str(),
            standby[0].state.as_str(),
            standby[0].fault
        ),
        ("NOTOPEN", "stopped", false)
    );

    // As tandemctl prints it.
    let text = admin::render(&Response::Cards {
        spans: [spans, standby].concat(),
    });
    let _ = writeln!(std::io::stderr(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("Card {}", pair.roots[0].display()));
    assert!(lines[1].starts_with("Span Name"), "{text}");
    assert!(
        lines[2].starts_with("1    CARDSIM/0/1      E1   OK "),
        "{text}"
    );
    assert!(lines[2].contains(" started  yes   no "), "{text}");
    assert!(lines[3].contains("2 ringing"), "{text}");
    assert_eq!(lines[5], format!("Card {}", pair.roots[1].display()));

    // `tandemctl cards` against a stand-in for tandemd's admin socket.
    let socket = pair.roots[0].parent().expect("dir").join("admin.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let answer = Response::Cards {
        spans: a.cards_status(),
    };
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader};
        let (stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("request");
        (&stream)
            .write_all(admin::format_response(&answer).as_bytes())
            .expect("answer");
        line
    });
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .arg("--socket")
        .arg(&socket)
        .arg("cards")
        .output()
        .expect("run tandemctl");
    let request = server.join().expect("server");
    assert_eq!(request.trim_end(), admin::CARDS_REQUEST);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!("Card {}\n", pair.roots[0].display())),
        "{stdout}"
    );
    assert!(stdout.contains("2 ringing"), "{stdout}");
    let _ = std::fs::remove_file(&socket);
    assert!(
        lines[7].contains("NOTOPEN") && lines[7].contains(" stopped "),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// Vanished devices
// ---------------------------------------------------------------------------

#[test]
fn fuse_cards_vanished_device_gives_clear_errors() {
    if !privileged("fuse_cards_vanished_device_gives_clear_errors") {
        return;
    }
    let mut pair = Pair::new("vanish", 4);
    let mut a = pair.standby(0);
    let mut b = pair.standby(1);
    a.start_spans(Instant::now() + DEADLINE).expect("A active");
    assert!(!a.check_alarms().local_fault());
    let root = pair.roots[0].display().to_string();

    // The simulator stops serving card A, files open.
    let card = pair.cards[0].take().expect("mounted");
    card.unmount().expect("unmount with files open");
    let started = Instant::now();

    let report = a.check_alarms();
    assert!(report.local_fault() && report.changed(), "{report}");
    let error = report.spans[0].error.as_deref().expect("an error");
    assert!(
        error.contains(&format!("{root}/ctl")),
        "names the device: {error}"
    );
    assert!(
        error.contains("DAHDI_SPANSTAT") && error.contains("ENODEV"),
        "{error}"
    );

    let e = a.wait_call_event(Duration::from_secs(2));
    if let Err(e) = &e {
        assert!(e.to_string().contains(&root), "{e}");
    }
    a.wait_call_event(Duration::from_millis(20)).ok();
    assert!(
        a.channel_fds().len() < 4,
        "broken channels are not polled any more"
    );

    let e = a.shutdown_spans().expect_err("nothing to shut down");
    let text = e.to_string();
    assert!(
        text.contains(&root) && text.contains("DAHDI_SHUTDOWN"),
        "{text}"
    );
    assert_eq!(e.errno(), Some(Errno::ENODEV));

    let e = a
        .start_spans(Instant::now() + DEADLINE)
        .expect_err("cannot start");
    assert!(e.to_string().contains(&root), "{e}");

    let status = a.cards_status();
    assert!(status[0].fault && status[0].error.is_some(), "{status:?}");

    let e = CardManager::open(&pair.config(0)).expect_err("reopen");
    assert!(e.to_string().contains(&format!("{root}/ctl")), "{e}");
    assert!(started.elapsed() < WAIT, "errors at once, no hang");

    // Once the failover switch drops the dead card, the other card takes over.
    assert_eq!(pair.sim("unplug 0"), "ok");
    b.start_spans(Instant::now() + DEADLINE)
        .expect("B takes over");
    assert!(!b.check_alarms().local_fault());
}

#[test]
fn fuse_cards_watchdog_turn_holds_the_trunk_until_the_node_stops_kicking() {
    if !privileged("fuse_cards_watchdog_turn_holds_the_trunk_until_the_node_stops_kicking") {
        return;
    }
    let pair = Pair::new("watchdog", 4);
    let timeout = Duration::from_millis(40);
    let open = |card: usize| {
        let config = CardConfig {
            watchdog: Some(timeout),
            system: None,
            ..pair.config(card)
        };
        let mut m = CardManager::open(&config).expect("open the card");
        m.shutdown_spans().expect("shut down");
        m.arm().expect("arm");
        m
    };
    let (mut a, mut b) = (open(0), open(1));
    // A active, B standby with its span started too (as after a takeover
    // whose peer had not let go yet).
    a.start_spans(Instant::now() + DEADLINE).expect("A up");
    b.begin_start(Instant::now() + DEADLINE).expect("B starts");
    assert!(
        b.watchdog_turn(Instant::now(), false).is_none(),
        "a standby leaves it alone"
    );
    let done = a.watchdog_turn(Instant::now(), true).expect("an action");
    assert_eq!(done.action, WatchdogAction::Arm(timeout));
    assert!(done.error.is_none(), "{:?}", done.error);

    // The loop turns every 2 ms for 300 ms: kicked every 10 ms, the trunk stays.
    let mut kicks = 0;
    for _ in 0..150 {
        std::thread::sleep(Duration::from_millis(2));
        if let Some(d) = a.watchdog_turn(Instant::now(), true) {
            assert_eq!(d.action, WatchdogAction::Kick);
            assert!(d.error.is_none(), "{:?}", d.error);
            kicks += 1;
        }
    }
    assert!((20..=32).contains(&kicks), "{kicks} kicks in 300 ms");
    assert_eq!(pair.carrier(), Some(0));
    assert_eq!(pair.sim.watchdog(0).expect("watchdog").expired, 0);

    // A's loop stops turning: the switch moves the trunk to B by itself.
    let stopped = Instant::now();
    assert!(
        wait_until(WAIT, || pair.carrier() == Some(1)),
        "{}",
        pair.sim("watchdog 0")
    );
    assert!(stopped.elapsed() >= timeout - Duration::from_millis(10));
    let w = pair.sim.watchdog(0).expect("watchdog");
    assert!(
        w.released && w.expired == 1 && w.relay_holder == Some(1),
        "{w:?}"
    );

    // A's next kick is refused: one error naming the device and the ioctl.
    std::thread::sleep(timeout);
    let d = a.watchdog_turn(Instant::now(), true).expect("kick due");
    let text = d
        .error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        text.contains(&pair.roots[0].join("ctl").display().to_string())
            && text.contains("TANDEM_WATCHDOG_KICK")
            && text.contains("ETIMEDOUT"),
        "{text}"
    );
    assert_eq!(d.news, Some(WatchdogNews::Failing));
    // Still active, A arms again one interval later: the switch takes its
    // card back, but the trunk B carries stays with B.
    std::thread::sleep(timeout);
    let d = a.watchdog_turn(Instant::now(), true).expect("arm due");
    assert!(
        matches!(d.action, WatchdogAction::Arm(_)) && d.error.is_none() && d.news == Some(WatchdogNews::Recovered),
        "{d:?}"
    );
    assert_eq!(pair.carrier(), Some(1), "arming moves no trunk another card carries");
    // A steps down: disarmed, the trunk stays with B.
    let d = a.watchdog_turn(Instant::now(), false).expect("disarm");
    assert_eq!((d.action, d.error.is_none(), d.news), (WatchdogAction::Disarm, true, None));
    assert!(a.watchdog_turn(Instant::now(), false).is_none());
    assert_eq!(pair.carrier(), Some(1));
    assert!(!pair.sim.watchdog(0).expect("watchdog").released);
}

fn wait_until(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    ok()
}

#[test]
fn fuse_cards_open_refuses_a_span_the_card_lacks() {
    if !privileged("fuse_cards_open_refuses_a_span_the_card_lacks") {
        return;
    }
    let pair = Pair::new("nospan", 2);
    let mut config = pair.config(0);
    config.spans = vec![1, 3];
    let e = CardManager::open(&config).expect_err("no span 3");
    assert_eq!(
        e.to_string(),
        format!(
            "card {}: span 3 is not on this card (it has spans 1)",
            pair.roots[0].display()
        )
    );
}

#[test]
fn cards_open_names_a_missing_device() {
    let config = CardConfig {
        root: "/nonexistent/tandem-dahdi".into(),
        spans: vec![1],
        takeover_deadline: DEADLINE,
        line: None,
        signalling: abi::DAHDI_SIG_FXSKS,
        auto_answer: false,
        watchdog: None,
        system: None,
    };
    let e = CardManager::open(&config).expect_err("no device");
    let text = e.to_string();
    assert!(text.contains("/nonexistent/tandem-dahdi/ctl"), "{text}");
    assert_eq!(e.errno(), Some(Errno::ENOENT));
}
