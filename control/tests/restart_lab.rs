//! Restarts of the active's tandemd with no failover (issue 14), in the
//! pair lab with the tables pinned in a bpffs the test mounts: ten
//! SIGTERM + start cycles of the active under a SIPp load, with the
//! client probing the VIP every millisecond and a capture on the active's
//! bridge port timing what it dispatches; then one restart with another
//! table size (another layout), which must end in a clean switchover.
//! Asserted on typed events and status: the standby never changes state
//! during the ten, each new process resumes the role under the same epoch
//! from adopted tables, no call fails; the layout change moves the role
//! to the standby once, the restarted node never serves beside it, and no
//! call fails across it either.

// Shared with detection_lab, which uses what this test does not.
#[allow(dead_code)]
#[path = "detection_lab/support.rs"]
mod support;
#[allow(dead_code)]
#[path = "detection_lab/wire.rs"]
mod wire;

use std::time::Duration;

use tandem_control::events::Event;
use tandem_tests::calls;
use tandem_tests::lab::wait::wait_until;
use tandem_tests::lab::{CLIENT, CLIENT_ADDR, DIRECTOR_A, Iface};
use tandem_tests::privileged::lab_turn;
use tandem_tests::sipp::{self, CallerOptions};
use tandem_tests::tandemd::{Binaries, Pair, PairOptions, WorkDir, wait_for};

use support::{Clocks, EventLog, TestBpffs, log_tail, replace_in_config, status};
use wire::{Carries, PortCapture, Prober};

const N_IVR: usize = 2;
const RESTARTS: usize = 10;

fn bins() -> Binaries {
    let pick = |var: &str, built: &str| std::env::var_os(var).map_or_else(|| built.into(), Into::into);
    Binaries { tandemd: pick("TANDEMD", env!("CARGO_BIN_EXE_tandemd")), tandemctl: pick("TANDEMCTL", env!("CARGO_BIN_EXE_tandemctl")) }
}

fn iface(p: &Pair, host: &str) -> Iface {
    p.lab.iface(host, "eth0").expect("service interface").clone()
}

fn logs(p: &Pair) -> String {
    format!("--- a's log (tail) ---\n{}\n--- b's log (tail) ---\n{}", log_tail(&p.a, 80), log_tail(&p.b, 40))
}

/// The Tables events of `log`: (resumed, epoch, tables kind, note).
fn tables_events(log: &EventLog) -> Vec<(bool, Option<u64>, String, Option<String>)> {
    log.events
        .iter()
        .filter_map(|s| match &s.event {
            Event::Tables { tables, resumed, epoch, note, .. } => Some((*resumed, *epoch, tables.clone(), note.clone())),
            _ => None,
        })
        .collect()
}

/// Within `[from, to]`: the client-seen dispatch gap (the longest time
/// from the last probe `a` dispatched to the next it dispatched, over
/// runs of probes it did not: 0 when it dispatched every one), the probes
/// it did not dispatch, and the prober's own longest pause between two
/// probes. A probe counts as dispatched when a dispatched frame leaves
/// before the next probe comes in (XDP takes microseconds).
fn dispatch_gap(incoming: &[u64], dispatched: &[u64], from: u64, to: u64) -> (u64, usize, u64) {
    let probes: Vec<u64> = incoming.iter().copied().filter(|t| *t >= from && *t <= to).collect();
    let mut d = dispatched.iter().copied().filter(|t| *t >= from).peekable();
    let mut served = Vec::with_capacity(probes.len());
    for (i, p) in probes.iter().enumerate() {
        let next = probes.get(i + 1).copied().unwrap_or(u64::MAX);
        while d.peek().is_some_and(|t| *t < *p) {
            d.next();
        }
        let ok = d.peek().is_some_and(|t| *t < next);
        if ok {
            d.next();
        }
        served.push(ok);
    }
    let lost = served.iter().filter(|ok| !**ok).count();
    let mut gap = 0;
    let mut last_ok: Option<u64> = None;
    let mut in_run = false;
    for (p, ok) in probes.iter().zip(&served) {
        if *ok {
            if in_run && let Some(l) = last_ok {
                gap = gap.max(p - l);
            }
            last_ok = Some(*p);
            in_run = false;
        } else {
            in_run = true;
        }
    }
    if in_run && let Some(l) = last_ok {
        gap = gap.max(to - l);
    }
    let pause = probes.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    (gap, lost, pause)
}

#[test]
fn privileged_lab_ten_restarts_of_the_active_move_no_role_and_lose_no_call_and_a_new_layout_switches_over_cleanly() {
    const NAME: &str =
        "privileged_lab_ten_restarts_of_the_active_move_no_role_and_lose_no_call_and_a_new_layout_switches_over_cleanly";
    let Some(_turn) = lab_turn(NAME) else { return };
    eprintln!("{NAME}: {}", sipp::version().expect("SIPp (cargo xtask setup installs sip-tester)"));
    let dir = WorkDir::new("rl-restart").expect("work dir");
    let bpffs = TestBpffs::mount(dir.path().join("bpffs")).expect("the test's bpffs");
    let o = PairOptions { pin_dir: Some(bpffs.0.join("tandem")), ..PairOptions::default() };
    let mut p = Pair::build(N_IVR, &o, dir.path(), &bins(), None).expect("pair lab");
    p.start_directors().expect("a active, b standby in sync");
    let mut ivrs = calls::start_ivrs(&p.lab, dir.path(), true, false).expect("IVRs");
    assert!(wait_for(Duration::from_secs(10), || calls::reals_alive(&p.a, N_IVR)), "a does not hear every IVR: {:?}", p.a.reals());
    let epoch = status(&p.a).map(|s| s.epoch).expect("a's status");

    let a_mac = iface(&p, DIRECTOR_A).mac;
    let cap = {
        let i = iface(&p, DIRECTOR_A);
        PortCapture::start(&i.peer_ns, i.peer_ifindex).expect("packet socket on a's bridge port")
    };
    // The probes as the client sent them, on the client's bridge port (a
    // port's capture sees what comes in on it, not what the bridge sends).
    let cap_client = {
        let i = iface(&p, CLIENT);
        PortCapture::start(&i.peer_ns, i.peer_ifindex).expect("packet socket on the client's bridge port")
    };
    let prober = {
        let c = iface(&p, CLIENT);
        Prober::start(p.lab.ns(CLIENT).expect("client"), c.ifindex, c.mac, CLIENT_ADDR, Duration::from_millis(1)).expect("prober")
    };
    prober.aim(Some(a_mac));
    // 20 calls/s of 4 s each, placed for longer than the ten restarts take.
    let co = CallerOptions { rtp: false, ..CallerOptions::new(20, 1400, 4000) };
    let caller = calls::start_caller(&p.lab, dir.path(), &co).expect("caller");
    std::thread::sleep(Duration::from_millis(500));
    // The same measure with no restart, for comparison (the prober and the
    // captures share two cores with SIPp and the daemons).
    let quiet_from = Clocks::now().real_ns;
    std::thread::sleep(Duration::from_secs(4));
    let quiet_to = Clocks::now().real_ns;

    // Each process numbers its events from 1: one log per process of a.
    let mut a_logs: Vec<EventLog> = Vec::new();
    let mut b_log = EventLog::from_now(&p.b);
    let t0 = Clocks::now();
    let mut windows = Vec::new();
    let mut failed_restarts = Vec::new();
    let sync_of = |d: &tandem_tests::tandemd::Director| {
        d.ask(&["sync"]).map(|v| format!("{} {} flows {} calls {} records {} applied {} snapshots {}", v["role"], v["state"], v["flows"], v["calls"], v["records"], v["applied"], v["snapshots"]))
    };
    for i in 0..RESTARTS {
        let stop_at = Clocks::now();
        let exited = p.a.terminate(Duration::from_secs(5));
        let started = exited && p.a.start().is_ok();
        let back = started && wait_until(Duration::from_secs(30), Duration::from_millis(20), || status(&p.a).is_some_and(|s| s.state == "active"));
        windows.push((stop_at.real_ns, Clocks::now().real_ns));
        let mut l = EventLog::from_start();
        l.poll(&p.a);
        a_logs.push(l);
        if !back {
            failed_restarts.push(format!("restart {i}: exited {exited}, started {started}, active again {back}"));
        }
        b_log.poll(&p.b);
        std::thread::sleep(Duration::from_millis(300));
    }
    b_log.poll(&p.b);
    let seen = cap.seen();
    let sent = cap_client.seen();
    // The client-seen dispatch gap: the longest time between two probes a
    // dispatched to an IVR, within each restart's window.
    // The probes the client sent to a's MAC, and what a dispatched of them
    // (from a's MAC to an IVR's), both stamped by the kernel.
    let client_mac = iface(&p, CLIENT).mac;
    let incoming: Vec<u64> = sent.iter().filter(|s| s.probe && s.src == client_mac && s.dst == a_mac).map(|s| s.at_ns).collect();
    let dispatched: Vec<u64> = seen.iter().filter(|s| s.probe && s.src == a_mac && s.carries == Carries::ToVip && s.dst != a_mac).map(|s| s.at_ns).collect();
    let quiet = dispatch_gap(&incoming, &dispatched, quiet_from, quiet_to);
    eprintln!("no restart, 4 s: dispatch gap {} µs, probes not dispatched {}, the prober's longest pause {} µs", quiet.0 / 1000, quiet.1, quiet.2 / 1000);
    let mut gaps_us = Vec::new();
    let mut lost_probes = Vec::new();
    let mut prober_gaps_us = Vec::new();
    for (from, to) in &windows {
        let (g, lost, pg) = dispatch_gap(&incoming, &dispatched, *from, *to);
        gaps_us.push(g / 1000);
        lost_probes.push(lost);
        prober_gaps_us.push(pg / 1000);
    }
    let a_epoch_after = status(&p.a).map(|s| s.epoch);

    // A restart into another layout (a bigger connection table), once the
    // standby holds a's state again (the operator's `tandemctl sync`).
    let b_in_step = wait_for(Duration::from_secs(10), || status(&p.b).is_some_and(|s| s.damping.peer_state_held));
    std::thread::sleep(Duration::from_millis(200));
    eprintln!("before the layout change: a's sync {:?}; b's {:?}", sync_of(&p.a), sync_of(&p.b));
    let mut a_log2 = EventLog::from_start();
    let mut b_log2 = EventLog::from_now(&p.b);
    replace_in_config(dir.path(), DIRECTOR_A, "flow_entries = 65536", "flow_entries = 131072");
    let switch_at = Clocks::now();
    let exited = p.a.terminate(Duration::from_secs(5));
    let started = exited && p.a.start().is_ok();
    let b_active = wait_for(Duration::from_secs(30), || p.b.pair_state().as_deref() == Some("active"));
    let a_standby = wait_for(Duration::from_secs(30), || p.a.pair_state().as_deref() == Some("standby"));
    std::thread::sleep(Duration::from_millis(500));
    a_log2.poll(&p.a);
    b_log2.poll(&p.b);
    drop(prober);
    drop(cap);
    drop(cap_client);
    let r = caller.wait().expect("caller report");
    calls::stop_ivrs(&mut ivrs);
    p.a.interrupt(Duration::from_secs(3));
    p.b.interrupt(Duration::from_secs(3));
    eprintln!("caller: {} (exit {:?})", r.stats.summary(), r.exit_code);

    let b_changes = b_log.state_changes();
    let a_tables: Vec<_> = a_logs.iter().flat_map(tables_events).collect();
    let resumed = a_tables.iter().filter(|t| t.0 && t.1 == Some(epoch) && t.2 == "adopted").count();
    let a_takeovers = a_logs.iter().flat_map(|l| &l.events).filter(|s| matches!(s.event, Event::TakeoverDone { .. })).count();
    // The calls placed during the ten restarts, ended before the layout
    // change began (4 s calls).
    let (from_s, to_s) = (t0.real_ns as f64 / 1e9 - 4.5, switch_at.real_ns as f64 / 1e9 - 4.5);
    let during = |c: &&tandem_tests::sipp::CallRecord| c.started_after(from_s) && !c.started_after(to_s);
    let calls_failed: Vec<u64> = r.calls.iter().filter(during).filter(|c| !c.succeeded()).map(|c| c.number).collect();
    let restart_calls = r.calls.iter().filter(during).count();
    // In progress across the switchover: placed before the SIGTERM. A call
    // placed within the takeover's few tens of ms may lose its INVITE to
    // the fenced old dispatcher: counted apart, reported.
    let sw_s = switch_at.real_ns as f64 / 1e9;
    let switch_failed = r.calls.iter().filter(|c| c.started_after(to_s) && !c.started_after(sw_s) && !c.succeeded()).count();
    let placed_in_switch_failed = r.calls.iter().filter(|c| c.started_after(sw_s) && !c.succeeded()).count();
    let failed_at: Vec<String> = r.calls.iter().filter(|c| c.started_after(to_s) && !c.succeeded()).map(|c| format!("{}@{:.2}", c.number, c.started.unwrap_or(0.0) - sw_s)).collect();
    eprintln!("calls failed across the layout change (number@start relative to the SIGTERM, s): {failed_at:?}");
    let mut sorted = gaps_us.clone();
    sorted.sort();
    eprintln!(
        "{RESTARTS} restarts: dispatch gap per restart (µs) {gaps_us:?}, max {:?}; probes not dispatched {lost_probes:?}; the prober's own longest pause (µs) {prober_gaps_us:?}; b's state changes {}; a resumed {resumed} times; calls during them {restart_calls}, failed {}",
        sorted.last(),
        b_changes.len(),
        calls_failed.len()
    );
    let a2_tables = tables_events(&a_log2);
    let a2_active = a_log2.entered("active", switch_at.mono_ns);
    let b2_active = b_log2.entered("active", switch_at.mono_ns);
    eprintln!(
        "layout change: a's tables {a2_tables:?}; b active {:?} ms after the SIGTERM; calls in progress across it that failed {switch_failed}; placed after the SIGTERM and failed {placed_in_switch_failed}",
        b2_active.first().map(|t| (t - switch_at.mono_ns) as f64 / 1e6)
    );

    let mut fails = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            fails.push(what)
        }
    };
    check(failed_restarts.is_empty(), format!("restarts that did not come back active: {failed_restarts:?}"));
    check(b_changes.is_empty(), format!("b changed state during the restarts: {b_changes:?}"));
    check(resumed == RESTARTS, format!("a resumed {resumed} of {RESTARTS} times under epoch {epoch} from adopted tables: {a_tables:?}"));
    check(a_takeovers == 0, format!("a's new processes took over {a_takeovers} times (a resumed role is no takeover)"));
    check(a_epoch_after == Some(epoch), format!("a's epoch after the restarts {a_epoch_after:?}, before {epoch}"));
    check(calls_failed.is_empty(), format!("calls failed during the restarts: {calls_failed:?}"));
    check(restart_calls > 0, "no call was placed during the restarts: the test proves nothing".into());
    // The client-seen gap: probes a did not dispatch, in a row. Measured
    // at 0 here (every probe of every restart dispatched); a capture that
    // misses frames on a busy machine shows a few ms even with no restart
    // (the quiet window above), so less than a detection deadline is
    // allowed: never an outage.
    check(gaps_us.iter().all(|g| *g <= 30_000), format!("dispatch gaps per restart (µs): {gaps_us:?}, probes not dispatched {lost_probes:?}"));
    check(incoming.len() > 1000, format!("only {} probes came in: the gap proves nothing", incoming.len()));
    check(b_in_step, "b did not hold a's state again after the restarts".into());
    check(started, "a did not start again with another table size".into());
    check(a2_tables.iter().any(|t| !t.0 && t.2 == "created" && t.3.is_some()), format!("a's restart into another layout: {a2_tables:?}"));
    check(switch_failed == 0, format!("{switch_failed} calls in progress failed across the switchover to another layout: {failed_at:?}"));
    check(b_active && b2_active.len() == 1, format!("b did not take over once after the layout change: {b2_active:?}"));
    check(a_standby && a2_active.is_empty(), format!("a's new process was active {a2_active:?} (standby: {a_standby})"));
    assert!(fails.is_empty(), "{NAME}:\n{}\n{}", fails.join("\n"), logs(&p));
}
