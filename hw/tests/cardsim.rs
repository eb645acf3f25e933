//! Real ioctl syscalls against the card simulator mounted over FUSE.
//!
//! Every test here needs root and /dev/fuse (their names start with `fuse_`).
//! Without them a test prints `SKIP <name>: <reason>` and returns, unless
//! `TANDEM_REQUIRE_PRIVILEGED=1` is set, in which case it fails. Each test
//! mounts its own cards in its own temporary directory; the mounts are RAII
//! guards, so they are unmounted at the end of the test, also on a panic.
//! Every wait is bounded by a timeout.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use tandem_hw::abi;
use tandem_hw::device::{
    Alarms, Channel, ChannelConfig, Control, Event, Hook, LineConfig, MaintCommand,
    measure_get_params,
};
use tandem_hw::sim::{
    self, CallState, MountOptions, MountScratch, MountedCard, SimConfig, Simulator, clean_stale_mount,
    is_mount_point,
};
use tandem_tests::privileged::{Need, require};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// True if this process may mount FUSE filesystems. Otherwise prints
/// `SKIP <test>: <reason>` (or panics under TANDEM_REQUIRE_PRIVILEGED=1):
/// the workspace's rule for privileged tests.
fn privileged(test: &str) -> bool {
    require(test, &[Need::Fuse])
}

/// Simulated cards, each mounted in its own directory. Fields drop in order:
/// mounts first, then the directory.
struct Rig {
    cards: Vec<MountedCard>,
    sim: Simulator,
    _dir: MountScratch,
}

impl Rig {
    fn new(tag: &str, config: SimConfig) -> Rig {
        let dir = MountScratch::new(&format!("hw-{}", tag)).expect("mkdtemp");
        let sim = Simulator::new(config.clone()).expect("simulator config");
        let cards = (0..config.cards)
            .map(|card| {
                let root = dir.subdir(&format!("card{card}")).expect("create mount point");
                sim.mount(card, &root, MountOptions::default())
                    .expect("mount card")
            })
            .collect();
        Rig {
            cards,
            sim,
            _dir: dir,
        }
    }

    fn one_card(tag: &str, spans: usize, channels: usize) -> Rig {
        Rig::new(
            tag,
            SimConfig {
                cards: 1,
                spans,
                channels,
                ..SimConfig::default()
            },
        )
    }

    fn root(&self, card: usize) -> &Path {
        self.cards[card].path()
    }

    fn control(&self, card: usize) -> Control {
        Control::open(self.root(card)).expect("open ctl")
    }
}

/// Take every queued event without waiting.
fn drain(channel: &Channel) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(event) = channel.event().expect("DAHDI_GETEVENT") {
        events.push(event);
    }
    events
}

fn expect_event(channel: &Channel, want: Event) {
    let got = channel.wait_event(WAIT).expect("wait for event");
    assert_eq!(got, Some(want), "{}", channel.path().display());
}

fn ioctl_errno(result: Result<impl std::fmt::Debug, tandem_hw::Error>, ioctl: &str) -> Errno {
    let err = result.expect_err("the ioctl should fail");
    let text = err.to_string();
    assert!(text.contains(ioctl), "error names the ioctl: {text}");
    err.errno().unwrap_or_else(|| panic!("no errno in {text}"))
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

#[test]
fn fuse_control_ioctls_round_trip() {
    if !privileged("fuse_control_ioctls_round_trip") {
        return;
    }
    let rig = Rig::one_card("ctl", 2, 4);
    let ctl = rig.control(0);

    let version = ctl.version().expect("DAHDI_GETVERSION");
    assert!(
        version.version.starts_with("tandem-cardsim "),
        "{version:?}"
    );

    let spans = ctl.spans().expect("all spans");
    assert_eq!(spans.len(), 2);
    let status = &spans[1];
    assert_eq!(status.span, 2);
    assert_eq!(status.name, "CARDSIM/0/2");
    assert_eq!(status.span_type, "E1");
    assert_eq!(
        (
            status.total_channels,
            status.configured_channels,
            status.total_spans
        ),
        (4, 4, 2)
    );
    assert_eq!(status.alarms, Alarms::NOTOPEN, "a span starts shut down");

    ctl.configure_span(1, &LineConfig::E1_CCS_HDB3_CRC4)
        .expect("DAHDI_SPANCONFIG");
    let span = ctl.span(1);
    span.startup().expect("DAHDI_STARTUP");
    let status = span.status().expect("DAHDI_SPANSTAT");
    assert!(
        status.alarms.is_clear(),
        "started span is alarm-free: {}",
        status.alarms
    );
    assert_eq!(status.line_config, LineConfig::E1_CCS_HDB3_CRC4.line_config);
    assert_eq!(status.sync_source, 1);

    span.maint(MaintCommand::LocalLoop)
        .expect("DAHDI_MAINT local loop");
    assert!(
        span.status()
            .expect("spanstat")
            .alarms
            .contains(Alarms::LOOPBACK)
    );
    span.maint(MaintCommand::AlarmSim)
        .expect("DAHDI_MAINT alarm sim");
    assert!(
        span.status()
            .expect("spanstat")
            .alarms
            .contains(Alarms::RED | Alarms::LOS)
    );
    span.maint(MaintCommand::CrcDefect)
        .expect("DAHDI_MAINT crc defect");
    assert_eq!(span.status().expect("spanstat").crc4_count, 1);
    span.maint(MaintCommand::ResetCounters)
        .expect("DAHDI_MAINT reset counters");
    span.maint(MaintCommand::None).expect("DAHDI_MAINT none");
    let status = span.status().expect("spanstat");
    assert!(status.alarms.is_clear(), "{}", status.alarms);
    assert_eq!(status.crc4_count, 0);

    // CHANCONFIG through ctl, seen by GET_PARAMS through ctl (channel 6 = span 2, position 2).
    ctl.configure_channel(&ChannelConfig {
        channel: 6,
        signalling: abi::DAHDI_SIG_FXOKS,
        law: abi::DAHDI_LAW_MULAW,
        idle_bits: 0,
    })
    .expect("DAHDI_CHANCONFIG");
    let params = ctl.channel_params(6).expect("DAHDI_GET_PARAMS on ctl");
    assert_eq!((params.channo, params.spanno, params.chanpos), (6, 2, 2));
    assert_eq!(params.sigtype, abi::DAHDI_SIG_FXOKS);
    assert_eq!(params.curlaw, abi::DAHDI_LAW_MULAW);
    assert_eq!(abi::c_string(&params.name), "CARDSIM/0/2/2");

    span.shutdown().expect("DAHDI_SHUTDOWN");
    let status = span.status().expect("spanstat");
    assert_eq!(status.alarms, Alarms::NOTOPEN);
    assert_eq!(
        status.configured_channels, 0,
        "shutdown unconfigures the channels"
    );
}

#[test]
fn fuse_channel_ioctls_round_trip() {
    if !privileged("fuse_channel_ioctls_round_trip") {
        return;
    }
    let rig = Rig::one_card("chan", 2, 4);
    let ctl = rig.control(0);
    ctl.startup(2).expect("startup");

    // Through chan/002/003 ...
    let by_path = ctl.span(2).channel(3).expect("open chan/002/003");
    assert!(by_path.path().ends_with("chan/002/003"));
    assert_eq!(by_path.number().expect("DAHDI_CHANNO"), 7);
    let mut params = by_path.params().expect("DAHDI_GET_PARAMS");
    assert_eq!((params.channo, params.spanno, params.chanpos), (7, 2, 3));
    assert_eq!(params.sigtype, abi::DAHDI_SIG_FXSKS);
    assert_eq!(params.rxisoffhook, 0);
    assert_eq!(params.chan_alarms, 0);

    params.debouncetime = 600;
    params.winktime = 150;
    by_path.set_params(&params).expect("DAHDI_SET_PARAMS");
    // ... and through `channel` + DAHDI_SPECIFY, the same channel.
    let by_number = Channel::open_by_number(rig.root(0), 7).expect("channel + DAHDI_SPECIFY");
    let again = by_number.params().expect("DAHDI_GET_PARAMS");
    assert_eq!((again.debouncetime, again.winktime), (600, 150));
    assert_eq!(
        by_number
            .span_status()
            .expect("DAHDI_SPANSTAT via channel")
            .span,
        2
    );
    assert_eq!(
        by_number.buffer_info().expect("DAHDI_GET_BUFINFO").numbufs,
        2
    );

    assert_eq!(
        drain(&by_path),
        vec![Event::NoAlarm],
        "startup cleared NOTOPEN"
    );
    assert_eq!(by_path.event().expect("DAHDI_GETEVENT"), None);
    by_path.hook(Hook::OffHook).expect("DAHDI_HOOK offhook");
    assert_eq!(
        by_path.params().expect("params").txhooksig,
        abi::DAHDI_TXSIG_OFFHOOK
    );
    by_path.hook(Hook::Flash).expect("DAHDI_HOOK flash");
    expect_event(&by_path, Event::HookComplete);
    by_path.hook(Hook::OnHook).expect("DAHDI_HOOK onhook");
    by_path.hook(Hook::Wink).expect("DAHDI_HOOK wink");
    expect_event(&by_path, Event::HookComplete);
    assert_eq!(by_path.wait_event(QUIET).expect("quiet"), None);
}

// ---------------------------------------------------------------------------
// Calls and events
// ---------------------------------------------------------------------------

#[test]
fn fuse_incoming_call_raises_pollpri_events() {
    if !privileged("fuse_incoming_call_raises_pollpri_events") {
        return;
    }
    let rig = Rig::one_card("incoming", 1, 4);
    let ctl = rig.control(0);
    ctl.startup(1).expect("startup");
    let channel = ctl.span(1).channel(2).expect("open channel");
    drain(&channel);

    // The far end rings while this thread sleeps in poll(POLLPRI).
    let sim = rig.sim.clone();
    let ringer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        sim.ring(0, 1, 2)
    });
    let started = Instant::now();
    let event = channel.wait_event(WAIT).expect("wait for ring");
    let waited = started.elapsed();
    ringer.join().expect("ringer thread").expect("ring");
    assert_eq!(event, Some(Event::RingOffHook));
    assert!(
        waited < WAIT / 2,
        "woken by POLLPRI, not by the timeout ({waited:?})"
    );
    assert_eq!(channel.params().expect("params").rxisoffhook, 1);
    assert_eq!(rig.sim.call(0, 1, 2), Ok(CallState::Ringing));

    channel.hook(Hook::OffHook).expect("answer");
    assert_eq!(rig.sim.call(0, 1, 2), Ok(CallState::Answered));
    channel.hook(Hook::Flash).expect("hold");
    expect_event(&channel, Event::HookComplete);
    assert_eq!(rig.sim.call(0, 1, 2), Ok(CallState::OnHold));
    channel.hook(Hook::Flash).expect("unhold");
    expect_event(&channel, Event::HookComplete);

    rig.sim.hangup(0, 1, 2).expect("far-end hangup");
    expect_event(&channel, Event::OnHook);
    assert_eq!(rig.sim.call(0, 1, 2), Ok(CallState::HungUp));
    channel.hook(Hook::OnHook).expect("hang up");
    assert_eq!(rig.sim.call(0, 1, 2), Ok(CallState::Idle));
    assert_eq!(channel.wait_event(QUIET).expect("quiet"), None);
}

/// The control plane waits for channel events with io_uring: `POLL_ADD` for
/// `POLLPRI` on the channel fd completes when the simulator queues an event.
#[test]
fn fuse_io_uring_poll_add_sees_pollpri() {
    if !privileged("fuse_io_uring_poll_add_sees_pollpri") {
        return;
    }
    use io_uring::{IoUring, opcode, types};
    const POLL: u64 = 1;
    const TIMEOUT: u64 = 2;

    let rig = Rig::one_card("uring", 1, 2);
    let ctl = rig.control(0);
    ctl.startup(1).expect("startup");
    let channel = ctl.span(1).channel(2).expect("open");
    drain(&channel);

    let mut ring = IoUring::new(4).expect("io_uring");
    let deadline = types::Timespec::new().sec(WAIT.as_secs());
    let poll = opcode::PollAdd::new(types::Fd(channel.as_raw_fd()), libc::POLLPRI as u32)
        .build()
        .user_data(POLL);
    let timeout = opcode::Timeout::new(&deadline).build().user_data(TIMEOUT);
    // SAFETY: the fd and the timespec outlive the ring (dropped at the end of this test, before them).
    unsafe {
        let mut queue = ring.submission();
        queue.push(&poll).expect("queue poll");
        queue.push(&timeout).expect("queue timeout");
    }
    ring.submit().expect("submit");

    let sim = rig.sim.clone();
    let ringer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        sim.ring(0, 1, 2)
    });
    ring.submit_and_wait(1).expect("wait for a completion");
    ringer.join().expect("ringer thread").expect("ring");
    let completion = ring.completion().next().expect("a completion");
    assert_eq!(
        completion.user_data(),
        POLL,
        "the poll completed before the timeout"
    );
    assert_ne!(
        completion.result() & libc::POLLPRI as i32,
        0,
        "POLLPRI: {}",
        completion.result()
    );
    assert_eq!(
        channel.event().expect("DAHDI_GETEVENT"),
        Some(Event::RingOffHook)
    );
    drop(ring);
}

#[test]
fn fuse_outgoing_call_events() {
    if !privileged("fuse_outgoing_call_events") {
        return;
    }
    let rig = Rig::one_card("outgoing", 1, 2);
    let ctl = rig.control(0);
    ctl.startup(1).expect("startup");
    let channel = Channel::open_by_number(rig.root(0), 1).expect("open channel 1");
    drain(&channel);

    channel.hook(Hook::Ring).expect("ring the far end");
    expect_event(&channel, Event::RingerOn);
    assert_eq!(rig.sim.call(0, 1, 1), Ok(CallState::Alerting));
    assert_eq!(
        ioctl_errno(channel.hook(Hook::Ring), "DAHDI_HOOK"),
        Errno::EBUSY
    );
    rig.sim.answer(0, 1, 1).expect("far end answers");
    expect_event(&channel, Event::RingOffHook);
    assert_eq!(rig.sim.call(0, 1, 1), Ok(CallState::Answered));
    channel.hook(Hook::OnHook).expect("hang up");
    assert_eq!(rig.sim.call(0, 1, 1), Ok(CallState::Idle));

    channel.hook(Hook::Ring).expect("ring again");
    expect_event(&channel, Event::RingerOn);
    channel.hook(Hook::RingOff).expect("stop ringing");
    expect_event(&channel, Event::RingerOff);
    assert_eq!(rig.sim.call(0, 1, 1), Ok(CallState::Idle));
}

#[test]
fn fuse_alarms_raise_and_clear_events() {
    if !privileged("fuse_alarms_raise_and_clear_events") {
        return;
    }
    let rig = Rig::one_card("alarms", 1, 2);
    let ctl = rig.control(0);
    ctl.startup(1).expect("startup");
    let channel = ctl.span(1).channel(1).expect("open");
    drain(&channel);

    rig.sim
        .inject_alarms(0, 1, Alarms::RED | Alarms::LOS)
        .expect("inject");
    expect_event(&channel, Event::Alarm);
    assert_eq!(
        ctl.span_status(1).expect("spanstat").alarms,
        Alarms::RED | Alarms::LOS
    );
    assert_eq!(
        channel.params().expect("params").chan_alarms,
        (Alarms::RED | Alarms::LOS).0
    );
    rig.sim.inject_alarms(0, 1, Alarms::NONE).expect("clear");
    expect_event(&channel, Event::NoAlarm);

    ctl.maint(1, MaintCommand::AlarmSim)
        .expect("DAHDI_MAINT_ALARM_SIM");
    expect_event(&channel, Event::Alarm);
    ctl.maint(1, MaintCommand::None).expect("DAHDI_MAINT_NONE");
    expect_event(&channel, Event::NoAlarm);

    // The control protocol reaches the same model.
    assert_eq!(rig.sim.execute("cut 0 1"), "ok");
    expect_event(&channel, Event::Alarm);
    assert!(rig.sim.execute("status 0").contains("alarms=RED|LOS"));
    assert_eq!(rig.sim.execute("restore 0 1"), "ok");
    expect_event(&channel, Event::NoAlarm);
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[test]
fn fuse_bad_arguments_give_clear_errors() {
    if !privileged("fuse_bad_arguments_give_clear_errors") {
        return;
    }
    let rig = Rig::one_card("errors", 2, 4);
    let ctl = rig.control(0);

    // Span numbers out of range.
    let err = ctl.span_status(3).expect_err("span 3 of 2");
    let text = err.to_string();
    assert!(
        text.contains(&rig.root(0).join("ctl").display().to_string()),
        "names the path: {text}"
    );
    assert!(
        text.contains("DAHDI_SPANSTAT") && text.contains("EINVAL"),
        "{text}"
    );
    assert_eq!(
        ioctl_errno(ctl.span_status(0), "DAHDI_SPANSTAT"),
        Errno::EINVAL
    );
    assert_eq!(ioctl_errno(ctl.startup(99), "DAHDI_STARTUP"), Errno::ENXIO);
    assert_eq!(
        ioctl_errno(ctl.shutdown(-1), "DAHDI_SHUTDOWN"),
        Errno::ENXIO
    );
    assert_eq!(
        ioctl_errno(ctl.maint(129, MaintCommand::None), "DAHDI_MAINT"),
        Errno::EINVAL
    );
    // DAHDI answers ENOSYS for an unknown maintenance command; FUSE turns a
    // server's ENOSYS into ENOTTY (fs/fuse/ioctl.c), so that is what arrives.
    assert_eq!(
        ioctl_errno(ctl.maint_raw(1, 5), "DAHDI_MAINT"),
        Errno::ENOTTY
    );
    assert_eq!(
        ioctl_errno(
            ctl.configure_span(3, &LineConfig::default()),
            "DAHDI_SPANCONFIG"
        ),
        Errno::ENXIO
    );
    let bad_line = LineConfig {
        line_config: abi::DAHDI_CONFIG_NTTE,
        ..LineConfig::default()
    };
    assert_eq!(
        ioctl_errno(ctl.configure_span(1, &bad_line), "DAHDI_SPANCONFIG"),
        Errno::EINVAL
    );

    // Channel numbers out of range.
    assert_eq!(
        ioctl_errno(ctl.channel_params(0), "DAHDI_GET_PARAMS"),
        Errno::EINVAL
    );
    assert_eq!(
        ioctl_errno(ctl.channel_params(9), "DAHDI_GET_PARAMS"),
        Errno::EINVAL
    );
    let config = ChannelConfig {
        channel: 9,
        signalling: abi::DAHDI_SIG_FXSKS,
        law: abi::DAHDI_LAW_ALAW,
        idle_bits: 0,
    };
    assert_eq!(
        ioctl_errno(ctl.configure_channel(&config), "DAHDI_CHANCONFIG"),
        Errno::EINVAL
    );
    let err = Channel::open_by_number(rig.root(0), 9).expect_err("channel 9 of 8");
    assert_eq!(err.errno(), Some(Errno::EINVAL));
    assert!(err.to_string().contains("DAHDI_SPECIFY"), "{err}");
    let err = Channel::open(rig.root(0), 3, 1).expect_err("no span 3");
    assert_eq!(err.errno(), Some(Errno::ENOENT));
    assert!(err.to_string().contains("chan/003/001"), "{err}");
    assert_eq!(
        Channel::open(rig.root(0), 1, 5)
            .expect_err("no channel 5")
            .errno(),
        Some(Errno::ENOENT)
    );

    // An unconfigured channel cannot be opened (DAHDI: ENXIO).
    ctl.shutdown(2).expect("shutdown unconfigures");
    assert_eq!(
        Channel::open(rig.root(0), 2, 1)
            .expect_err("unconfigured")
            .errno(),
        Some(Errno::ENXIO)
    );

    // A `channel` file before DAHDI_SPECIFY takes nothing else.
    let unbound = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(rig.root(0).join("channel"))
        .expect("open channel");
    let mut params = abi::dahdi_params::default();
    // SAFETY: the fd is open; params is a valid dahdi_params the call may read and write.
    let res = unsafe { libc::ioctl(unbound.as_raw_fd(), abi::DAHDI_GET_PARAMS, &mut params) };
    assert_eq!(
        (res, Errno::last()),
        (-1, Errno::ENOTTY),
        "DAHDI's ENOSYS, as FUSE delivers it"
    );

    // A bad hook value, and wrong hook state.
    let channel = ctl.span(1).channel(1).expect("open");
    assert_eq!(
        ioctl_errno(channel.hook_raw(42), "DAHDI_HOOK"),
        Errno::EINVAL
    );
    assert_eq!(
        ioctl_errno(channel.hook(Hook::Flash), "DAHDI_HOOK"),
        Errno::EBUSY
    );

    // Wrong sizes: a SPANSTAT number with another struct size, and the legacy
    // _IOR form of GET_PARAMS. Neither matches a request the device knows.
    let mut big = [0u8; 400];
    big[0] = 1;
    let wrong_size: abi::IoctlRequest =
        nix::request_code_readwrite!(abi::DAHDI_CODE, 10, big.len());
    // SAFETY: the fd is open; `big` is as large as the size encoded in the request.
    let res = unsafe { libc::ioctl(ctl.as_raw_fd(), wrong_size, big.as_mut_ptr()) };
    assert_eq!((res, Errno::last()), (-1, Errno::ENOTTY));
    let legacy: abi::IoctlRequest =
        nix::request_code_read!(abi::DAHDI_CODE, 5, size_of::<abi::dahdi_params>());
    // SAFETY: as above, with a buffer of the encoded size.
    let res = unsafe { libc::ioctl(channel.as_raw_fd(), legacy, &mut params) };
    assert_eq!((res, Errno::last()), (-1, Errno::ENOTTY));
    // A channel-only ioctl on ctl, and a ctl-only ioctl on a channel.
    let mut event = 0i32;
    // SAFETY: the fd is open; the request moves one int.
    let res = unsafe { libc::ioctl(ctl.as_raw_fd(), abi::DAHDI_GETEVENT, &mut event) };
    assert_eq!((res, Errno::last()), (-1, Errno::ENOTTY));
    let span = 1i32;
    // SAFETY: the fd is open; the request reads one int.
    let res = unsafe { libc::ioctl(channel.as_raw_fd(), abi::DAHDI_STARTUP, &span) };
    assert_eq!((res, Errno::last()), (-1, Errno::ENOTTY));

    // Each of the four is noted as not served (the unbound file's ENOSYS
    // and the model's refusals are not), in request order.
    let mut expected = vec![
        (wrong_size, 1),
        (legacy, 1),
        (abi::DAHDI_GETEVENT, 1),
        (abi::DAHDI_STARTUP, 1),
    ];
    expected.sort();
    assert_eq!(rig.sim.unserved(0).expect("unserved"), expected);
}

#[test]
fn fuse_unplugged_card_answers_enodev() {
    if !privileged("fuse_unplugged_card_answers_enodev") {
        return;
    }
    let rig = Rig::one_card("unplug", 1, 2);
    let ctl = rig.control(0);
    ctl.startup(1).expect("startup");
    let channel = ctl.span(1).channel(1).expect("open");
    drain(&channel);
    rig.sim.unplug(0).expect("unplug");
    assert_eq!(
        ioctl_errno(ctl.span_status(1), "DAHDI_SPANSTAT"),
        Errno::ENODEV
    );
    assert_eq!(
        ioctl_errno(channel.params(), "DAHDI_GET_PARAMS"),
        Errno::ENODEV
    );
    let started = Instant::now();
    let err = channel.wait_event(WAIT).expect_err("the channel is gone");
    assert_eq!(err.errno(), Some(Errno::ENODEV), "{err}");
    assert!(started.elapsed() < WAIT, "no hang");
    assert_eq!(
        Control::open(rig.root(0)).expect_err("reopen").errno(),
        Some(Errno::ENODEV)
    );
}

// ---------------------------------------------------------------------------
// Two cards, one trunk
// ---------------------------------------------------------------------------

#[test]
fn fuse_shared_trunk_follows_the_started_span() {
    if !privileged("fuse_shared_trunk_follows_the_started_span") {
        return;
    }
    let rig = Rig::new(
        "trunk",
        SimConfig {
            cards: 2,
            spans: 1,
            channels: 4,
            shared_trunks: true,
            ..SimConfig::default()
        },
    );
    let (ctl_a, ctl_b) = (rig.control(0), rig.control(1));
    ctl_a.startup(1).expect("A starts");
    let a = ctl_a.span(1).channel(1).expect("A channel 1");
    drain(&a);
    assert!(ctl_a.span_status(1).expect("A").alarms.is_clear());
    assert_eq!(ctl_b.span_status(1).expect("B").alarms, Alarms::NOTOPEN);

    // A call comes in and is answered on A.
    rig.sim.ring(0, 1, 1).expect("ring");
    expect_event(&a, Event::RingOffHook);
    a.hook(Hook::OffHook).expect("A answers");
    assert_eq!(
        rig.sim.call(1, 1, 1),
        Ok(CallState::Answered),
        "same timeslot seen from card 1"
    );

    // B starts while A carries the trunk: B sees no signal.
    ctl_b.startup(1).expect("B starts");
    assert_eq!(
        ctl_b.span_status(1).expect("B").alarms,
        Alarms::RED | Alarms::LOS
    );
    let b = ctl_b.span(1).channel(1).expect("B channel 1");
    drain(&b);

    // Takeover: A shuts down, the switch moves the trunk to B with the call up.
    ctl_a.shutdown(1).expect("A stops");
    expect_event(&b, Event::RingOffHook);
    expect_event(&b, Event::NoAlarm);
    assert!(ctl_b.span_status(1).expect("B").alarms.is_clear());
    assert_eq!(ctl_a.span_status(1).expect("A").alarms, Alarms::NOTOPEN);
    assert_eq!(rig.sim.call(1, 1, 1), Ok(CallState::Orphaned));
    b.hook(Hook::OffHook).expect("B picks the call up");
    assert_eq!(rig.sim.call(1, 1, 1), Ok(CallState::Answered));
    let report = rig.sim.report(1).expect("report");
    assert!(report[0].carrier && report[0].running);

    rig.sim.hangup(1, 1, 1).expect("far end hangs up");
    expect_event(&b, Event::OnHook);
    assert_eq!(
        a.wait_event(QUIET).expect("A"),
        Some(Event::Alarm),
        "A only saw its own shutdown"
    );
    assert_eq!(a.wait_event(QUIET).expect("A"), None);
}

// ---------------------------------------------------------------------------
// The failover switch's watchdog (tandem's extension ioctls)
// ---------------------------------------------------------------------------

/// Two cards on a shared trunk with both spans started and A carrying.
fn shared_pair(tag: &str) -> (Rig, Control, Control) {
    let rig = Rig::new(
        tag,
        SimConfig {
            cards: 2,
            spans: 1,
            channels: 4,
            shared_trunks: true,
            ..SimConfig::default()
        },
    );
    let (ctl_a, ctl_b) = (rig.control(0), rig.control(1));
    ctl_a.startup(1).expect("A starts");
    ctl_b.startup(1).expect("B starts");
    assert!(ctl_a.span_status(1).expect("A").alarms.is_clear());
    assert_eq!(
        ctl_b.span_status(1).expect("B").alarms,
        Alarms::RED | Alarms::LOS
    );
    (rig, ctl_a, ctl_b)
}

#[test]
fn fuse_watchdog_kicks_hold_the_trunk_and_silence_moves_it() {
    if !privileged("fuse_watchdog_kicks_hold_the_trunk_and_silence_moves_it") {
        return;
    }
    let (rig, ctl_a, ctl_b) = shared_pair("watchdog");
    let b = ctl_b.span(1).channel(1).expect("B channel 1");
    let timeout = Duration::from_millis(50);
    let before = ctl_a.watchdog_status().expect("status before arming");
    assert!(!before.armed && before.since_kick.is_none() && before.expired == 0);
    assert_eq!(before.relay_holder, Some(0));
    ctl_a.watchdog_arm(timeout).expect("arm");

    // Kicked every 10 ms for 300 ms (6 timeouts): the trunk stays on A.
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(10));
        ctl_a.watchdog_kick().expect("kick");
    }
    let s = ctl_a.watchdog_status().expect("status");
    assert!(s.armed && !s.released, "{s:?}");
    assert_eq!(
        (s.timeout, s.expired, s.relay_holder),
        (timeout, 0, Some(0))
    );
    assert!(s.since_kick.is_some_and(|d| d < timeout), "{s:?}");
    assert!(ctl_a.span_status(1).expect("A").alarms.is_clear());
    drain(&b);

    // Silence: the simulator's own timer releases A, the trunk moves to B.
    let last_kick = Instant::now();
    ctl_a.watchdog_kick().expect("last kick");
    let moved = loop {
        if ctl_b.span_status(1).expect("B").alarms.is_clear() {
            break last_kick.elapsed();
        }
        assert!(last_kick.elapsed() < WAIT, "the trunk never moved");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(
        moved >= timeout,
        "moved after {moved:?}, before the timeout"
    );
    assert!(
        moved < timeout + Duration::from_millis(40),
        "moved {moved:?} after the last kick"
    );
    expect_event(&b, Event::NoAlarm);
    assert_eq!(
        ctl_a.span_status(1).expect("A").alarms,
        Alarms::RED | Alarms::LOS,
        "A's span runs on without the trunk"
    );
    let s = ctl_a.watchdog_status().expect("status");
    assert!(!s.armed && s.released, "{s:?}");
    assert_eq!((s.expired, s.relay_holder), (1, Some(1)));
    let report = rig.sim.watchdog(0).expect("report");
    assert!(report.released && report.last_expiry.is_some());

    // A late kick is refused: the trunk is gone, and stays with B.
    let errno = ioctl_errno(ctl_a.watchdog_kick(), "TANDEM_WATCHDOG_KICK");
    assert_eq!(errno, Errno::ETIMEDOUT);
    assert!(rig.sim.report(1).expect("B")[0].carrier);
    // Arming again takes A back without taking the trunk from B.
    ctl_a.watchdog_arm(timeout).expect("re-arm");
    ctl_a.watchdog_disarm().expect("disarm");
    assert!(rig.sim.report(1).expect("B")[0].carrier);
    assert_eq!(ctl_a.watchdog_status().expect("status").expired, 1);
}

#[test]
fn fuse_watchdog_disarm_and_bad_arguments() {
    if !privileged("fuse_watchdog_disarm_and_bad_arguments") {
        return;
    }
    let (rig, ctl_a, _ctl_b) = shared_pair("watchdog-args");
    let ctl_path = rig.root(0).join("ctl").display().to_string();

    // Out-of-range timeouts: caught by the driver, and refused by the card.
    for bad in [
        Duration::from_millis(9),
        Duration::from_secs(61),
        Duration::from_micros(10_500),
    ] {
        let text = ctl_a
            .watchdog_arm(bad)
            .expect_err("bad timeout")
            .to_string();
        assert!(
            text.contains(&ctl_path) && text.contains("TANDEM_WATCHDOG_ARM"),
            "{text}"
        );
        assert!(text.contains("timeout_ms"), "{text}");
    }
    for raw in [0, 9, 60_001, u32::MAX] {
        let errno = ioctl_errno(ctl_a.watchdog_arm_raw(raw), "TANDEM_WATCHDOG_ARM");
        assert_eq!(errno, Errno::EINVAL, "timeout {raw}");
    }
    let err = ctl_a.watchdog_kick().expect_err("nothing armed");
    let text = err.to_string();
    assert!(
        text.contains(&ctl_path) && text.contains("TANDEM_WATCHDOG_KICK"),
        "{text}"
    );
    assert_eq!(err.errno(), Some(Errno::EINVAL));

    // Armed, then disarmed: it never expires.
    ctl_a.watchdog_arm(Duration::from_millis(20)).expect("arm");
    ctl_a.watchdog_disarm().expect("disarm");
    std::thread::sleep(Duration::from_millis(150));
    let s = ctl_a.watchdog_status().expect("status");
    assert!(!s.armed && !s.released && s.expired == 0, "{s:?}");
    assert!(rig.sim.report(0).expect("A")[0].carrier);

    // A channel file does not answer the card-wide watchdog requests.
    let chan = ctl_a.span(1).channel(1).expect("channel");
    // SAFETY: an argument-less ioctl on an open fd.
    let rc = unsafe { libc::ioctl(chan.as_raw_fd(), abi::TANDEM_WATCHDOG_KICK) };
    assert_eq!(rc, -1);
    assert_eq!(Errno::last(), Errno::ENOTTY);
}

// ---------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------

#[test]
fn fuse_get_params_round_trip_time() {
    if !privileged("fuse_get_params_round_trip_time") {
        return;
    }
    let rig = Rig::one_card("timing", 1, 1);
    let ctl = rig.control(0);
    ctl.startup(1).expect("startup");
    let channel = ctl.span(1).channel(1).expect("open");
    measure_get_params(&channel, 200).expect("warm up");
    let timing = measure_get_params(&channel, 5000).expect("measure");
    let _ = writeln!(
        std::io::stderr(),
        "cardsim DAHDI_GET_PARAMS round trip: {timing}"
    );
    assert_eq!(timing.iterations, 5000);
    assert!(timing.min <= timing.median && timing.median <= timing.p99 && timing.p99 <= timing.max);
    assert!(
        timing.median < Duration::from_millis(2),
        "FUSE ioctl round trip is far too slow: {timing}"
    );
    assert!(measure_get_params(&channel, 0).is_err());
}

// ---------------------------------------------------------------------------
// Mount lifecycle
// ---------------------------------------------------------------------------

#[test]
fn fuse_unmount_leaves_no_mount_behind() {
    if !privileged("fuse_unmount_leaves_no_mount_behind") {
        return;
    }
    let dir = MountScratch::new("hw-unmount").expect("mkdtemp");
    let sim = Simulator::new(SimConfig::default()).expect("config");
    let root = dir.subdir("card0").expect("create mount point");
    let card = sim.mount(0, &root, MountOptions::default()).expect("mount");
    assert!(is_mount_point(&root));
    {
        let ctl = Control::open(card.path()).expect("ctl");
        ctl.version().expect("version");
    }
    card.unmount().expect("unmount");
    assert!(!is_mount_point(&root));

    // A guard dropped while unwinding from a panic unmounts too.
    let card = sim
        .mount(0, &root, MountOptions::default())
        .expect("mount again");
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _card = card;
        panic!("test failure while mounted");
    }));
    assert!(unwound.is_err());
    assert!(
        !is_mount_point(&root),
        "the guard unmounted during unwinding"
    );
    assert!(!clean_stale_mount(&root).expect("nothing stale"));
    assert!(
        sim.mount(5, &root, MountOptions::default()).is_err(),
        "no card 5"
    );
}

#[test]
fn fuse_unmount_with_an_open_channel_makes_it_vanish() {
    if !privileged("fuse_unmount_with_an_open_channel_makes_it_vanish") {
        return;
    }
    let dir = MountScratch::new("hw-vanish").expect("mkdtemp");
    let sim = Simulator::new(SimConfig::default()).expect("config");
    let root = dir.subdir("card0").expect("create mount point");
    let card = sim.mount(0, &root, MountOptions::default()).expect("mount");
    let ctl = Control::open(card.path()).expect("ctl");
    ctl.startup(1).expect("startup");
    let channel = ctl.span(1).channel(1).expect("open");
    drain(&channel);

    // A thread sleeps in poll(POLLPRI) while the card is unmounted under it.
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let started = Instant::now();
            let result = channel.wait_event(WAIT);
            let _ = tx.send((result.map_err(|e| e.errno()), started.elapsed()));
        });
        std::thread::sleep(Duration::from_millis(100));
        card.unmount().expect("unmount with files open");
        let (result, waited) = rx.recv_timeout(WAIT * 2).expect("the waiter returns");
        assert_eq!(result, Err(Some(Errno::ENODEV)));
        assert!(
            waited < WAIT,
            "woken by the removal, not the timeout ({waited:?})"
        );
    });
    assert!(!is_mount_point(&root), "detached");
    assert_eq!(
        ioctl_errno(channel.params(), "DAHDI_GET_PARAMS"),
        Errno::ENODEV
    );
    assert_eq!(
        ioctl_errno(ctl.version(), "DAHDI_GETVERSION"),
        Errno::ENODEV
    );
}

/// A `tandem-cardsim` child process. Dropping it stops it (SIGTERM, then
/// SIGKILL by its PID) and detaches any mount it left behind.
struct CardsimProcess {
    child: Child,
    mounts: Vec<PathBuf>,
}

impl CardsimProcess {
    fn spawn(mounts: &[&Path], extra: &[&str]) -> CardsimProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tandem-cardsim"));
        for dir in mounts {
            command.arg("--mount").arg(dir);
        }
        let child = command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tandem-cardsim");
        CardsimProcess {
            child,
            mounts: mounts.iter().map(|p| p.to_path_buf()).collect(),
        }
    }

    fn wait_ready(&mut self) {
        let stdout = self.child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("tandem-cardsim ready in time");
        assert_eq!(line.trim(), "ready");
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    fn kill(&mut self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGKILL)
            .expect("kill tandem-cardsim");
        self.child.wait().expect("reap tandem-cardsim");
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM).ok()?;
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for CardsimProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) && self.terminate().is_none() {
            self.kill();
        }
        for dir in &self.mounts {
            let _ = clean_stale_mount(dir);
        }
    }
}

#[test]
fn fuse_device_vanishes_when_cardsim_is_killed() {
    if !privileged("fuse_device_vanishes_when_cardsim_is_killed") {
        return;
    }
    let dir = MountScratch::new("hw-killed").expect("mkdtemp");
    let root = dir.subdir("card0").expect("create mount point");
    let socket = dir.path().join("control.sock");
    let socket_arg = socket.to_str().expect("utf-8 temp path");
    let mut cardsim = CardsimProcess::spawn(
        &[&root],
        &["--spans", "2", "--channels", "4", "--control", socket_arg],
    );
    cardsim.wait_ready();

    let ctl = Control::open(&root).expect("ctl");
    ctl.startup(1).expect("startup");
    let channel = ctl.span(1).channel(1).expect("open");
    drain(&channel);
    assert_eq!(
        sim::control::request(&socket, "ring 0 1 1", WAIT).expect("control"),
        "ok"
    );
    expect_event(&channel, Event::RingOffHook);
    assert_eq!(
        sim::control::request(&socket, "call 0 1 1", WAIT).expect("control"),
        "ok ringing"
    );
    assert!(
        sim::control::request(&socket, "ring 0 9 1", WAIT)
            .expect("control")
            .starts_with("error:"),
        "bad span is refused"
    );

    cardsim.kill();
    let started = Instant::now();
    assert_eq!(
        ioctl_errno(channel.params(), "DAHDI_GET_PARAMS"),
        Errno::ENOTCONN
    );
    assert_eq!(
        ioctl_errno(ctl.span_status(1), "DAHDI_SPANSTAT"),
        Errno::ENOTCONN
    );
    let err = channel
        .wait_event(WAIT)
        .expect_err("no events from a dead device");
    assert_eq!(err.errno(), Some(Errno::ENOTCONN), "{err}");
    assert_eq!(
        Control::open(&root).expect_err("reopen").errno(),
        Some(Errno::ENOTCONN)
    );
    assert!(
        started.elapsed() < WAIT,
        "errors came at once, not after a timeout"
    );

    drop(channel);
    drop(ctl);

    // A new simulator on the same directory detaches the dead mount and serves again.
    assert!(
        is_mount_point(&root),
        "the dead mount is still there (stale)"
    );
    let mut restarted = CardsimProcess::spawn(&[&root], &["--channels", "2"]);
    restarted.wait_ready();
    let ctl = Control::open(&root).expect("ctl of the restarted simulator");
    assert_eq!(ctl.span_status(1).expect("spanstat").total_channels, 2);
    drop(ctl);
    let status = restarted.terminate().expect("stops on SIGTERM");
    assert!(status.success(), "{status}");
    assert!(!is_mount_point(&root), "clean unmount on SIGTERM");
}

#[test]
fn fuse_cardsim_serves_two_cards_and_stops_on_sigterm() {
    if !privileged("fuse_cardsim_serves_two_cards_and_stops_on_sigterm") {
        return;
    }
    let dir = MountScratch::new("hw-sigterm").expect("mkdtemp");
    let (a, b) = (dir.subdir("a").expect("create mount point"), dir.subdir("b").expect("create mount point"));
    let mut cardsim = CardsimProcess::spawn(&[&a, &b], &["--shared-trunk", "--channels", "2"]);
    cardsim.wait_ready();
    {
        let (ctl_a, ctl_b) = (Control::open(&a).expect("a"), Control::open(&b).expect("b"));
        ctl_b.startup(1).expect("B starts first");
        ctl_a.startup(1).expect("A starts");
        assert!(
            ctl_b.span_status(1).expect("b").alarms.is_clear(),
            "B carries the trunk"
        );
        assert_eq!(
            ctl_a.span_status(1).expect("a").alarms,
            Alarms::RED | Alarms::LOS
        );
    }
    let pid = nix::unistd::Pid::from_raw(cardsim.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = cardsim.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tandem-cardsim did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
    assert!(
        !is_mount_point(&a) && !is_mount_point(&b),
        "both cards unmounted"
    );
}
