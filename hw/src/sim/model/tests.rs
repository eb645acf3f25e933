//! Unit tests of the model: DAHDI's errnos, span start and stop, calls in
//! both directions, the shared trunk's failover, alarms, wakers, unplug and
//! the bounded event queue, all driven through `World`'s methods.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::*;
use crate::abi;

fn world(cards: usize, shared: bool) -> World {
    World::new(SimConfig {
        cards,
        spans: 2,
        channels: 4,
        shared_trunks: shared,
        signalling: abi::DAHDI_SIG_FXSKS,
    })
    .expect("valid config")
}

fn drain(w: &mut World, id: ChannelId) -> Vec<i32> {
    let mut events = Vec::new();
    loop {
        match w.take_event(id).expect("event") {
            abi::DAHDI_EVENT_NONE => return events,
            e => events.push(e),
        }
    }
}

const A1: ChannelId = ChannelId {
    card: 0,
    span: 0,
    index: 0,
};
const B1: ChannelId = ChannelId {
    card: 1,
    span: 0,
    index: 0,
};

#[test]
fn config_out_of_range_is_rejected_with_the_field() {
    let e = World::new(SimConfig {
        spans: 0,
        ..SimConfig::default()
    })
    .err()
    .expect("zero spans rejected");
    assert_eq!(e.field, "spans");
    let e = World::new(SimConfig {
        spans: 40,
        channels: 31,
        ..SimConfig::default()
    })
    .err()
    .expect("too many channels rejected");
    assert_eq!(e.value, 40 * 31);
}

#[test]
fn span_numbers_and_channel_numbers_follow_dahdi_errnos() {
    let mut w = world(1, false);
    assert_eq!(w.span_info(0, 0).err(), Some(Errno::EINVAL));
    assert_eq!(w.span_info(0, 3).err(), Some(Errno::EINVAL));
    assert_eq!(w.startup(0, 3).err(), Some(Errno::ENXIO));
    assert_eq!(w.shutdown(0, -1).err(), Some(Errno::ENXIO));
    assert_eq!(
        w.maint(
            0,
            &abi::dahdi_maintinfo {
                spanno: 9,
                command: 0
            }
        )
        .err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        w.maint(
            0,
            &abi::dahdi_maintinfo {
                spanno: 1,
                command: 5
            }
        )
        .err(),
        Some(Errno::ENOSYS)
    );
    assert_eq!(w.channel_by_number(0, 0).err(), Some(Errno::EINVAL));
    assert_eq!(w.channel_by_number(0, 9).err(), Some(Errno::EINVAL));
    let id = w.channel_by_number(0, 6).expect("channel 6");
    assert_eq!((id.span, id.index), (1, 1));
    assert_eq!(w.channo(id), 6);
    assert_eq!(w.hook(id, 42).err(), Some(Errno::EINVAL));
}

#[test]
fn startup_clears_notopen_and_shutdown_unconfigures_channels() {
    let mut w = world(1, false);
    assert_eq!(
        w.span_info(0, 1).expect("span").alarms as u32,
        abi::DAHDI_ALARM_NOTOPEN
    );
    w.startup(0, 1).expect("startup");
    assert_eq!({ w.span_info(0, 1).expect("span").alarms }, 0);
    assert_eq!(drain(&mut w, A1), vec![abi::DAHDI_EVENT_NOALARM]);
    w.shutdown(0, 1).expect("shutdown");
    assert_eq!({ w.span_info(0, 1).expect("span").numchans }, 0);
    assert_eq!(w.open_channel(A1).err(), Some(Errno::ENXIO));
    assert_eq!(drain(&mut w, A1), vec![abi::DAHDI_EVENT_ALARM]);
}

#[test]
fn incoming_call_rings_answers_and_hangs_up() {
    let mut w = world(1, false);
    w.startup(0, 1).expect("startup");
    drain(&mut w, A1);
    w.far_ring(0, 1, 1).expect("ring");
    assert_eq!(w.far_ring(0, 1, 1).err(), Some(Errno::EBUSY));
    assert_eq!(w.call(0, 1, 1), Ok(CallState::Ringing));
    assert_eq!(w.params(A1).expect("params").rxisoffhook, 1);
    assert_eq!(drain(&mut w, A1), vec![abi::DAHDI_EVENT_RINGOFFHOOK]);
    w.hook(A1, abi::DAHDI_OFFHOOK).expect("answer");
    assert_eq!(w.call(0, 1, 1), Ok(CallState::Answered));
    w.hook(A1, abi::DAHDI_FLASH).expect("hold");
    assert_eq!(w.call(0, 1, 1), Ok(CallState::OnHold));
    w.hook(A1, abi::DAHDI_FLASH).expect("unhold");
    assert_eq!(w.call(0, 1, 1), Ok(CallState::Answered));
    w.far_hangup(0, 1, 1).expect("hangup");
    assert_eq!(w.call(0, 1, 1), Ok(CallState::HungUp));
    assert_eq!(
        drain(&mut w, A1),
        vec![
            abi::DAHDI_EVENT_HOOKCOMPLETE,
            abi::DAHDI_EVENT_HOOKCOMPLETE,
            abi::DAHDI_EVENT_ONHOOK
        ]
    );
    w.hook(A1, abi::DAHDI_ONHOOK).expect("onhook");
    assert_eq!(w.call(0, 1, 1), Ok(CallState::Idle));
}

#[test]
fn outgoing_call_rings_the_far_end_until_it_answers() {
    let mut w = world(1, false);
    w.startup(0, 1).expect("startup");
    drain(&mut w, A1);
    w.hook(A1, abi::DAHDI_RING).expect("ring");
    assert_eq!(w.hook(A1, abi::DAHDI_RING).err(), Some(Errno::EBUSY));
    assert_eq!(w.hook(A1, abi::DAHDI_OFFHOOK).err(), Some(Errno::EBUSY));
    assert_eq!(w.call(0, 1, 1), Ok(CallState::Alerting));
    w.far_answer(0, 1, 1).expect("answer");
    assert_eq!(w.call(0, 1, 1), Ok(CallState::Answered));
    assert_eq!(
        drain(&mut w, A1),
        vec![abi::DAHDI_EVENT_RINGERON, abi::DAHDI_EVENT_RINGOFFHOOK]
    );
    w.hook(A1, abi::DAHDI_ONHOOK).expect("hang up");
    assert_eq!(w.call(0, 1, 1), Ok(CallState::Idle));
    assert_eq!(w.far_hangup(0, 1, 1).err(), Some(Errno::EINVAL));
}

#[test]
fn shared_trunk_follows_the_started_span_and_keeps_calls_up() {
    let mut w = world(2, true);
    w.startup(0, 1).expect("start A");
    w.startup(1, 1).expect("start B");
    let a = w.report(0).expect("report")[0].clone();
    let b = w.report(1).expect("report")[0].clone();
    assert!(a.carrier && !b.carrier);
    assert_eq!(a.alarms, 0);
    assert_eq!(b.alarms, abi::DAHDI_ALARM_RED | abi::DAHDI_ALARM_LOS);
    drain(&mut w, A1);
    drain(&mut w, B1);

    // Only the carrier hears the far end.
    w.far_ring(1, 1, 1).expect("ring");
    assert_eq!(drain(&mut w, A1), vec![abi::DAHDI_EVENT_RINGOFFHOOK]);
    assert_eq!(drain(&mut w, B1), Vec::<i32>::new());
    w.hook(A1, abi::DAHDI_OFFHOOK).expect("answer on A");
    // B's hook does not reach the trunk.
    w.hook(B1, abi::DAHDI_ONHOOK).expect("B on hook");
    assert_eq!(w.call(0, 1, 1), Ok(CallState::Answered));

    // A shuts down: the trunk moves to B with the call still up.
    w.shutdown(0, 1).expect("stop A");
    assert_eq!(w.call(1, 1, 1), Ok(CallState::Orphaned));
    assert_eq!(
        drain(&mut w, B1),
        vec![abi::DAHDI_EVENT_RINGOFFHOOK, abi::DAHDI_EVENT_NOALARM]
    );
    assert_eq!({ w.span_info(1, 1).expect("span").alarms }, 0);
    w.hook(B1, abi::DAHDI_OFFHOOK).expect("B picks the call up");
    assert_eq!(w.call(1, 1, 1), Ok(CallState::Answered));
    w.far_hangup(0, 1, 1).expect("far end hangs up");
    assert_eq!(drain(&mut w, B1), vec![abi::DAHDI_EVENT_ONHOOK]);
    assert_eq!(drain(&mut w, A1), vec![abi::DAHDI_EVENT_ALARM]);
}

#[test]
fn alarm_sim_loopback_and_injection_raise_and_clear_alarms() {
    let mut w = world(1, false);
    w.startup(0, 1).expect("startup");
    drain(&mut w, A1);
    let maint = |command| abi::dahdi_maintinfo { spanno: 1, command };
    w.maint(0, &maint(abi::DAHDI_MAINT_ALARM_SIM))
        .expect("alarm sim");
    assert_eq!(
        w.span_info(0, 1).expect("span").alarms as u32,
        abi::DAHDI_ALARM_RED | abi::DAHDI_ALARM_LOS
    );
    w.maint(0, &maint(abi::DAHDI_MAINT_LOCALLOOP))
        .expect("loop");
    assert_ne!(
        w.span_info(0, 1).expect("span").alarms as u32 & abi::DAHDI_ALARM_LOOPBACK,
        0
    );
    w.maint(0, &maint(abi::DAHDI_MAINT_NONE)).expect("none");
    assert_eq!({ w.span_info(0, 1).expect("span").alarms }, 0);
    w.inject_alarms(0, 1, abi::DAHDI_ALARM_YELLOW)
        .expect("inject");
    assert_eq!(
        w.params(A1).expect("params").chan_alarms,
        abi::DAHDI_ALARM_YELLOW
    );
    w.inject_alarms(0, 1, 0).expect("clear");
    w.cut_trunk(0, 1, true).expect("cut");
    assert_eq!(
        w.span_info(0, 1).expect("span").alarms as u32,
        abi::DAHDI_ALARM_RED | abi::DAHDI_ALARM_LOS
    );
    w.cut_trunk(0, 1, false).expect("restore");
    // ALARM_SIM, LOOPBACK (changed), NONE → NOALARM, YELLOW, clear, cut, restore.
    assert_eq!(
        drain(&mut w, A1),
        vec![
            abi::DAHDI_EVENT_ALARM,
            abi::DAHDI_EVENT_ALARM,
            abi::DAHDI_EVENT_NOALARM,
            abi::DAHDI_EVENT_ALARM,
            abi::DAHDI_EVENT_NOALARM,
            abi::DAHDI_EVENT_ALARM,
            abi::DAHDI_EVENT_NOALARM,
        ]
    );
}

#[test]
fn wakers_fire_once_when_an_event_arrives() {
    let mut w = world(1, false);
    w.startup(0, 1).expect("startup");
    drain(&mut w, A1);
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let ready = w
        .poll_events(
            A1,
            7,
            Some(Box::new(move || {
                f.fetch_add(1, Ordering::SeqCst);
            })),
        )
        .expect("poll");
    assert!(!ready);
    w.far_ring(0, 1, 1).expect("ring");
    w.far_hangup(0, 1, 1).expect("hangup");
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert!(w.poll_events(A1, 7, None).expect("poll"));
}

#[test]
fn unplugged_card_answers_enodev_and_lets_go_of_the_trunk() {
    let mut w = world(2, true);
    w.startup(0, 1).expect("start A");
    w.startup(1, 1).expect("start B");
    drain(&mut w, B1);
    w.unplug(0).expect("unplug");
    assert_eq!(w.span_info(0, 1).err(), Some(Errno::ENODEV));
    assert_eq!(w.take_event(A1).err(), Some(Errno::ENODEV));
    assert!(w.report(1).expect("report")[0].carrier);
    assert_eq!(drain(&mut w, B1), vec![abi::DAHDI_EVENT_NOALARM]);
}

#[test]
fn event_queue_is_bounded() {
    let mut w = world(1, false);
    for _ in 0..(abi::DAHDI_MAX_EVENTSIZE + 10) {
        w.hook(A1, abi::DAHDI_WINK).expect("wink");
    }
    assert_eq!(w.pending_events(A1), abi::DAHDI_MAX_EVENTSIZE);
}

// ---------------------------------------------------------------------------
// The failover switch's watchdog
// ---------------------------------------------------------------------------

const MS: Duration = Duration::from_millis(1);

/// Two cards on a shared trunk, both spans started, A carrying, A's
/// watchdog armed for 100 ms at `t0`; B's events drained.
fn watched(t0: Instant) -> World {
    let mut w = world(2, true);
    w.startup(0, 1).expect("start A");
    w.startup(1, 1).expect("start B");
    w.watchdog_arm(0, 100, t0).expect("arm A");
    drain(&mut w, A1);
    drain(&mut w, B1);
    w
}

#[test]
fn watchdog_kicked_keeps_the_trunk() {
    let t0 = Instant::now();
    let mut w = watched(t0);
    for step in 1..=20u32 {
        w.watchdog_kick(0, t0 + 50 * MS * step).expect("kick");
        assert!(w.watchdog_expire(t0 + 50 * MS * step + 60 * MS).is_empty());
    }
    assert!(w.report(0).expect("A")[0].carrier);
    let r = w.watchdog_report(0, t0 + 1000 * MS).expect("report");
    assert!(r.armed && !r.released && r.expired == 0);
    assert_eq!(r.relay_holder, Some(0));
    assert_eq!(r.since_kick, Some(Duration::ZERO));
    assert_eq!(w.next_watchdog_deadline(), Some(t0 + 1100 * MS));
}

#[test]
fn watchdog_expiry_moves_the_trunk_with_its_calls() {
    let t0 = Instant::now();
    let mut w = watched(t0);
    w.far_ring(0, 1, 1).expect("ring");
    w.hook(A1, abi::DAHDI_OFFHOOK).expect("A answers");
    drain(&mut w, A1);
    // Exactly the timeout is not late yet.
    assert!(w.watchdog_expire(t0 + 100 * MS).is_empty());
    assert_eq!(w.watchdog_expire(t0 + 101 * MS), vec![0]);
    let (a, b) = (&w.report(0).expect("A")[0], &w.report(1).expect("B")[0]);
    assert!(!a.carrier && b.carrier, "the trunk moved to B");
    assert!(
        a.running,
        "A's span still runs (its host is gone, not its card)"
    );
    assert_eq!(a.alarms, abi::DAHDI_ALARM_RED | abi::DAHDI_ALARM_LOS);
    assert_eq!(b.alarms, 0);
    assert_eq!(drain(&mut w, A1), vec![abi::DAHDI_EVENT_ALARM]);
    assert_eq!(
        drain(&mut w, B1),
        vec![abi::DAHDI_EVENT_RINGOFFHOOK, abi::DAHDI_EVENT_NOALARM],
        "B learns the call is up"
    );
    let r = w.watchdog_report(0, t0 + 150 * MS).expect("report");
    assert!(!r.armed && r.released);
    assert_eq!((r.expired, r.relay_holder), (1, Some(1)));
    assert_eq!(r.last_expiry, Some(t0 + 101 * MS));
    assert_eq!(w.next_watchdog_deadline(), None);
    // A late kick does not bring the trunk back.
    assert_eq!(w.watchdog_kick(0, t0 + 160 * MS), Err(Errno::ETIMEDOUT));
    assert!(w.report(1).expect("B")[0].carrier);
    // Neither does B letting go while A is released: nothing carries it.
    w.shutdown(1, 1).expect("B stops");
    assert_eq!(
        w.watchdog_report(0, t0 + 170 * MS).expect("r").relay_holder,
        None
    );
    assert!(!w.report(0).expect("A")[0].carrier);
    // Arming again takes A back, and the free trunk comes to it.
    w.watchdog_arm(0, 100, t0 + 200 * MS).expect("re-arm");
    assert!(w.report(0).expect("A")[0].carrier);
    assert_eq!(w.call(0, 1, 1), Ok(CallState::Answered));
}

#[test]
fn watchdog_expiry_without_a_started_peer_frees_the_trunk_for_the_next_start() {
    let t0 = Instant::now();
    let mut w = world(2, true);
    w.startup(0, 1).expect("start A");
    w.watchdog_arm(0, 10, t0).expect("arm");
    assert_eq!(w.watchdog_expire(t0 + 11 * MS), vec![0]);
    assert_eq!(w.watchdog_report(1, t0).expect("B").relay_holder, None);
    w.startup(1, 1).expect("B starts");
    assert!(w.report(1).expect("B")[0].carrier);
    // A released card that starts a span does not take a free trunk.
    w.shutdown(1, 1).expect("B stops");
    w.shutdown(0, 1).expect("A stops");
    w.startup(0, 1).expect("A starts");
    assert!(!w.report(0).expect("A")[0].carrier);
    w.watchdog_disarm(0).expect("disarm takes A back");
    assert!(w.report(0).expect("A")[0].carrier);
}

#[test]
fn watchdog_disarmed_never_expires_and_bad_arguments_are_refused() {
    let t0 = Instant::now();
    let mut w = watched(t0);
    w.watchdog_disarm(0).expect("disarm");
    w.watchdog_disarm(0).expect("disarm twice is a no-op");
    assert!(w.watchdog_expire(t0 + 10_000 * MS).is_empty());
    assert!(w.report(0).expect("A")[0].carrier);
    assert_eq!(
        w.watchdog_kick(0, t0),
        Err(Errno::EINVAL),
        "nothing to kick"
    );
    assert_eq!(w.watchdog_arm(0, 9, t0), Err(Errno::EINVAL));
    assert_eq!(w.watchdog_arm(0, 60_001, t0), Err(Errno::EINVAL));
    assert_eq!(w.watchdog_arm(5, 100, t0), Err(Errno::ENODEV));
    let s = w.watchdog_status(0, t0).expect("status");
    assert_eq!((s.armed, s.timeout_ms, s.relay_holder), (0, 100, 0));
    let never = world(1, false).watchdog_status(0, t0).expect("status");
    assert_eq!(never.last_kick_age_ms, u32::MAX);
    w.unplug(0).expect("unplug");
    assert_eq!(w.watchdog_kick(0, t0), Err(Errno::ENODEV));
}

// ---------------------------------------------------------------------------
// What dahdi_cfg and dahdi_test need: echo cancellers, the master flag,
// HDLC rate, tone zones, pseudo channels, the unserved log.
// ---------------------------------------------------------------------------

fn chanconfig(chan: i32, sigtype: i32, master: i32) -> abi::dahdi_chanconfig {
    abi::dahdi_chanconfig {
        chan,
        sigtype,
        master,
        ..Default::default()
    }
}

fn attach(chan: i32, name: &str) -> abi::dahdi_attach_echocan {
    let mut ae = abi::dahdi_attach_echocan {
        chan,
        ..Default::default()
    };
    abi::set_c_string(&mut ae.echocan, name);
    ae
}

#[test]
fn echo_cancellers_attach_by_name_without_case_and_detach_when_empty() {
    let mut w = world(1, false);
    w.attach_echocan(0, &attach(2, "mg2")).expect("mg2 exists");
    let report = w.channel_report(0).expect("report");
    assert_eq!(report[1].echocan, Some("MG2"));
    assert_eq!(report[0].echocan, None, "only channel 2");
    assert_eq!(
        w.attach_echocan(0, &attach(2, "nosuch")),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        w.channel_report(0).expect("report")[1].echocan,
        Some("MG2"),
        "kept on refusal"
    );
    assert_eq!(w.attach_echocan(0, &attach(99, "mg2")), Err(Errno::EINVAL));
    w.attach_echocan(0, &attach(2, "")).expect("detach");
    assert_eq!(w.channel_report(0).expect("report")[1].echocan, None);
    // A name filling all 16 bytes is cut at 15, as DAHDI terminates it.
    let mut long = attach(1, "");
    long.echocan = *b"OSLECOSLECOSLECX";
    assert_eq!(w.attach_echocan(0, &long), Err(Errno::EINVAL));
    let version = w.version(0).expect("version");
    assert_eq!(
        abi::c_string(&version.echo_canceller),
        "MG2 KB1 SEC SEC2 OSLEC"
    );
}

#[test]
fn get_params_returns_the_master_only_when_asked() {
    let mut w = world(1, false);
    w.chan_config(0, &chanconfig(3, abi::DAHDI_SIG_CLEAR, 0))
        .expect("clear");
    let id = w.channel_by_number(0, 3).expect("channel 3");
    assert_eq!(w.params(id).expect("params").channo, 3);
    assert_eq!(
        w.params_with_master(id).expect("params").channo,
        3 | (3 << 16)
    );
    // A slave names its master; its master must exist.
    w.chan_config(0, &chanconfig(4, abi::DAHDI_SIG_SLAVE, 3))
        .expect("slave of 3");
    let slave = w.channel_by_number(0, 4).expect("channel 4");
    assert_eq!(
        w.params_with_master(slave).expect("params").channo,
        4 | (3 << 16)
    );
    assert_eq!(w.channel_report(0).expect("report")[3].master, 3);
    assert_eq!(
        w.chan_config(0, &chanconfig(5, abi::DAHDI_SIG_SLAVE, 0)),
        Err(Errno::EINVAL)
    );
    // Configured as a master again, it is its own.
    w.chan_config(0, &chanconfig(4, abi::DAHDI_SIG_CLEAR, 3))
        .expect("clear");
    assert_eq!(
        w.params_with_master(slave).expect("params").channo,
        4 | (4 << 16)
    );
}

#[test]
fn hdlc_rate_is_56_only_for_56() {
    let mut w = world(1, false);
    w.set_hdlc_rate(A1, 56).expect("56k");
    assert_eq!(
        w.channel_report(0).expect("report")[0].hdlc_rate,
        HdlcRate::Kbps56
    );
    w.set_hdlc_rate(A1, 48).expect("anything else is 64k");
    assert_eq!(
        w.channel_report(0).expect("report")[0].hdlc_rate,
        HdlcRate::Kbps64
    );
}

fn zone(number: i32, name: &str, count: i32) -> abi::dahdi_tone_def_header {
    let mut header = abi::dahdi_tone_def_header {
        count,
        zone: number,
        ..Default::default()
    };
    header.ringcadence[..2].copy_from_slice(&[1000, 4000]);
    abi::set_c_string(&mut header.name, name);
    header
}

#[test]
fn tone_zones_load_once_free_quietly_and_default_only_when_loaded() {
    let mut w = world(1, false);
    assert_eq!(w.set_default_zone(0, 3), Err(Errno::EINVAL), "not loaded");
    w.load_zone(0, &zone(3, "Netherlands", 23)).expect("load");
    assert_eq!(
        w.load_zone(0, &zone(3, "again", 1)),
        Err(Errno::EINVAL),
        "loaded twice"
    );
    assert_eq!(w.load_zone(0, &zone(256, "big", 1)), Err(Errno::EINVAL));
    assert_eq!(w.load_zone(0, &zone(4, "many", 129)), Err(Errno::EINVAL));
    w.set_default_zone(0, 3).expect("default");
    let report = w.tone_zones(0).expect("zones");
    assert_eq!(
        report,
        ToneZoneReport {
            zones: vec![ToneZone {
                number: 3,
                name: "Netherlands".into(),
                ring_cadence: vec![1000, 4000],
                tones: 23,
            }],
            default: Some(3),
        }
    );
    w.free_zone(0, 9).expect("an unknown zone frees quietly");
    w.free_zone(0, 3).expect("free");
    assert_eq!(w.tone_zones(0).expect("zones"), ToneZoneReport::default());
}

#[test]
fn pseudo_channels_read_one_block_per_128_ms_and_drop_what_waits_too_long() {
    let mut w = world(1, false);
    let t0 = Instant::now();
    let p = w.open_pseudo(0, t0).expect("open");
    assert_eq!(w.pseudo_channo(p), Ok(9), "after the 2 × 4 span channels");
    let q = w.open_pseudo(0, t0).expect("open");
    assert_eq!(w.pseudo_channo(q), Ok(10));
    // 1024 bytes at 8 per ms: the first block is whole at 128 ms.
    assert_eq!(
        w.pseudo_read(p, 8192, t0 + Duration::from_millis(100)),
        Ok(PseudoRead::At(t0 + Duration::from_millis(128)))
    );
    match w.pseudo_read(p, 8192, t0 + Duration::from_millis(128)) {
        Ok(PseudoRead::Ready(bytes)) => assert_eq!(bytes, vec![PSEUDO_SILENCE; 1024]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        w.pseudo_read(p, 8192, t0 + Duration::from_millis(130)),
        Ok(PseudoRead::At(t0 + Duration::from_millis(256)))
    );
    // A short read takes the whole block.
    w.set_pseudo_blocksize(p, 160).expect("160");
    match w.pseudo_read(p, 100, t0 + Duration::from_millis(150)) {
        Ok(PseudoRead::Ready(bytes)) => assert_eq!(bytes.len(), 100),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.set_pseudo_blocksize(p, 0), Err(Errno::EINVAL));
    assert_eq!(w.set_pseudo_blocksize(p, 8193), Err(Errno::EINVAL));
    // Ten seconds unread: only two blocks are kept, the rest is an overrun.
    let late = t0 + Duration::from_secs(10);
    for _ in 0..2 {
        assert!(matches!(
            w.pseudo_read(p, 160, late),
            Ok(PseudoRead::Ready(_))
        ));
    }
    assert!(matches!(w.pseudo_read(p, 160, late), Ok(PseudoRead::At(_))));
    let totals = w.pseudo_totals(0).expect("totals");
    assert_eq!((totals.opened, totals.reads), (2, 4));
    assert_eq!(totals.bytes_read, 1024 + 100 + 160 + 160);
    assert!(totals.overruns > 400, "{totals:?}");
    let params = w.pseudo_params(p, true).expect("params");
    assert_eq!((params.spanno, params.channo), (0, 9 | (9 << 16)));
    assert_eq!(abi::c_string(&params.name), "Pseudo/9");
    // Closing frees the number and the handle.
    w.close_pseudo(p);
    assert_eq!(w.pseudo_read(p, 160, late), Err(Errno::EBADF));
    let r = w.open_pseudo(0, late).expect("open");
    assert_eq!(w.pseudo_channo(r), Ok(9));
}

#[test]
fn unserved_requests_are_counted_per_card() {
    let mut w = world(2, false);
    w.note_unserved(1, 0x4004_da16 as abi::IoctlRequest);
    w.note_unserved(1, 0x4004_da16 as abi::IoctlRequest);
    assert_eq!(w.unserved(0), Ok(vec![]));
    assert_eq!(
        w.unserved(1),
        Ok(vec![(0x4004_da16 as abi::IoctlRequest, 2)])
    );
}
