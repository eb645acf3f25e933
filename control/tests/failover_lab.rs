//! Two `tandemd` in a pair lab (two directors, a heartbeat link, the
//! service bridge, a witness, a client, IVRs): the active is killed with
//! SIGKILL, the standby takes the VIP and the client's UDP probes to the
//! VIP are answered again; the old active comes back; only the heartbeat
//! link is cut; a full partition heals; switchover by command. Asserts on
//! states, traffic and the daemons' typed events, not on times.
//!
//! The pair is the lab's ([`tandem_tests::tandemd`]); these tests run it
//! with 10 ms × 5 heartbeats at normal scheduling ([`options`]) and ask
//! the daemons over their admin sockets from this process.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    ops::{Deref, DerefMut},
    path::Path,
    time::{Duration, Instant},
};

use tandem_common::node::NodeState;
use tandem_control::{
    admin::{Request, Response},
    events::Event,
};
use tandem_tests::{
    Lab, Responder, in_netns,
    ivr_heartbeat::{HEARTBEAT_PORT, IvrHeartbeat},
    lab::{self, DIRECTOR_A, DIRECTOR_B},
    privileged::lab_turn,
    spawn_udp_responder,
    tandemd::{self, Binaries, Director, Pair, PairOptions, WorkDir, wait_for},
    udp_flows, udp_request,
};

/// IVR heartbeats in these tests: every 10 ms, reporting 3 of 30 channels.
const IVR_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(10);
const IVR_CHANNELS: (u32, u32) = (3, 30);

fn bins() -> Binaries {
    Binaries {
        tandemd: env!("CARGO_BIN_EXE_tandemd").into(),
        tandemctl: env!("CARGO_BIN_EXE_tandemctl").into(),
    }
}

/// The pair's configuration here: 10 ms × 5 heartbeats (a busy shared
/// machine must not fail a director), normal scheduling, a UDP service
/// without flags, no IVR heartbeats, state sync, the metrics endpoint.
fn options() -> PairOptions {
    PairOptions {
        flags: Vec::new(),
        ivr_heartbeats: false,
        multiplier: 5,
        realtime_priority: 0,
        metrics_listen: Some("127.0.0.1:9469".into()),
        ..PairOptions::default()
    }
}

/// What answers on the IVRs.
#[derive(Clone, Copy, PartialEq)]
enum StandIns {
    /// A UDP responder each (`<name> <payload>`).
    Udp,
    /// A [`SipResponder`] each.
    Sip,
}

/// A pair (a active, b standby in sync) with stand-ins on its IVRs, which
/// start before the daemons. Dropped in field order: stand-ins, daemons
/// and lab, files.
struct PairLab {
    /// SIP stand-ins (with [`StandIns::Sip`]), by IVR.
    sip: Vec<Option<SipResponder>>,
    _udp: Vec<Responder>,
    pair: Pair,
    _dir: WorkDir,
}

impl Deref for PairLab {
    type Target = Pair;
    fn deref(&self) -> &Pair {
        &self.pair
    }
}

impl DerefMut for PairLab {
    fn deref_mut(&mut self) -> &mut Pair {
        &mut self.pair
    }
}

/// A pair of `n_ivr` IVRs with options `o`; `udp_service_line`s go into
/// the UDP service's table (e.g. `sip_options = { … }`).
fn pair_lab(
    tag: &str,
    n_ivr: usize,
    o: &PairOptions,
    udp_service_lines: &[&str],
    stand_ins: StandIns,
) -> PairLab {
    let dir = WorkDir::new(tag).expect("work dir");
    let mut pair = Pair::build(n_ivr, o, dir.path(), &bins(), None).expect("pair lab");
    for l in udp_service_lines {
        pair.add_udp_service_line(l).expect("configuration");
    }
    let (udp, sip) = start_stand_ins(&pair.lab, stand_ins);
    pair.start_directors().expect("a active, b standby");
    PairLab {
        sip,
        _udp: udp,
        pair,
        _dir: dir,
    }
}

fn start_stand_ins(lab: &Lab, stand_ins: StandIns) -> (Vec<Responder>, Vec<Option<SipResponder>>) {
    match stand_ins {
        StandIns::Udp => (
            lab.ivrs()
                .iter()
                .map(|h| spawn_udp_responder(&h.ns, &h.name, 5060).unwrap())
                .collect(),
            Vec::new(),
        ),
        StandIns::Sip => (
            Vec::new(),
            lab.ivrs()
                .iter()
                .map(|h| Some(SipResponder::start(&h.ns, &h.name, lab.vip())))
                .collect(),
        ),
    }
}

/// The usual pair: two IVRs answering UDP.
fn pair(tag: &str, o: &PairOptions) -> PairLab {
    pair_lab(tag, 2, o, &[], StandIns::Udp)
}

fn probe(lab: &Lab, port: u16) -> bool {
    let client = lab.ns(lab::CLIENT).unwrap();
    udp_request(
        client,
        port,
        SocketAddr::new(IpAddr::V4(lab.vip()), 5060),
        b"OPTIONS",
        Duration::from_millis(200),
    )
    .is_ok()
}

fn settled(p: &Pair) -> bool {
    wait_for(Duration::from_secs(10), || {
        p.a.pair_state().as_deref() == Some("active")
            && p.b.pair_state().as_deref() == Some("standby")
    })
}

/// `heartbeats` for IVR `k`, reporting [`IVR_CHANNELS`].
fn ivr_heartbeat(lab: &Lab, k: usize) -> IvrHeartbeat {
    let hb = IvrHeartbeat::start_in_pair_lab(lab, k, IVR_HEARTBEAT_INTERVAL, IVR_CHANNELS.1)
        .expect("IVR heartbeats");
    hb.set_channels(IVR_CHANNELS.0);
    hb
}

#[test]
fn privileged_lab_kill9_active_standby_takes_over_and_old_active_returns() {
    let Some(_turn) =
        lab_turn("privileged_lab_kill9_active_standby_takes_over_and_old_active_returns")
    else {
        return;
    };
    let mut p = pair("kill9", &options());
    assert!(settled(&p), "a: {}\nb: {}", p.a.log_text(), p.b.log_text());
    assert!(
        wait_for(Duration::from_secs(5), || probe(&p.lab, 21000)),
        "VIP not answered via a"
    );
    p.a.kill9();
    assert!(
        wait_for(Duration::from_secs(5), || p.b.pair_state().as_deref()
            == Some("active")),
        "b did not take over:\n{}",
        p.b.log_text()
    );
    let mut port = 22000;
    assert!(
        wait_for(Duration::from_secs(5), || {
            port += 1;
            probe(&p.lab, port)
        }),
        "client probes not answered after takeover:\n{}",
        p.b.log_text()
    );
    // The old active comes back without preemption: it stays standby.
    p.a.start().expect("restarting a");
    assert!(
        wait_for(Duration::from_secs(5), || p.a.pair_state().as_deref()
            == Some("standby")),
        "a not standby:\n{}",
        p.a.log_text()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        p.b.pair_state().as_deref(),
        Some("active"),
        "b must stay active without preemption"
    );
    assert_eq!(p.a.pair_state().as_deref(), Some("standby"));
    // Switchover by command: a takes over, b steps down.
    let r = p.b.request(&Request::Switchover).unwrap();
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    assert!(
        wait_for(Duration::from_secs(5), || {
            p.a.pair_state().as_deref() == Some("active")
                && p.b.pair_state().as_deref() == Some("standby")
        }),
        "a: {}\nb: {}",
        p.a.log_text(),
        p.b.log_text()
    );
    assert!(
        wait_for(Duration::from_secs(5), || {
            port += 1;
            probe(&p.lab, port)
        }),
        "client probes not answered after the switchover"
    );
}

#[test]
fn privileged_lab_preempting_old_active_takes_back() {
    let Some(_turn) = lab_turn("privileged_lab_preempting_old_active_takes_back") else {
        return;
    };
    let mut p = pair(
        "preempt",
        &PairOptions {
            preempt: true,
            ..options()
        },
    );
    assert!(settled(&p), "a: {}\nb: {}", p.a.log_text(), p.b.log_text());
    p.a.kill9();
    assert!(
        wait_for(Duration::from_secs(5), || p.b.pair_state().as_deref()
            == Some("active")),
        "b not active:\n{}",
        p.b.log_text()
    );
    p.a.start().expect("restarting a");
    // It preempts once it holds b's state and `node.preempt_delay_ms`
    // (3 s by default) has passed: start-up + sync + the delay.
    assert!(
        wait_for(Duration::from_secs(15), || {
            p.a.pair_state().as_deref() == Some("active")
                && p.b.pair_state().as_deref() == Some("standby")
        }),
        "a: {}\nb: {}",
        p.a.log_text(),
        p.b.log_text()
    );
}

#[test]
fn privileged_lab_link_cut_and_partition() {
    let Some(_turn) = lab_turn("privileged_lab_link_cut_and_partition") else {
        return;
    };
    let p = pair("partition", &options());
    assert!(settled(&p), "a: {}\nb: {}", p.a.log_text(), p.b.log_text());
    // Only the heartbeat link: heartbeats still cross the service network.
    p.lab.set_link(DIRECTOR_A, "hb0", false).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        p.a.pair_state().as_deref(),
        Some("active"),
        "a: {}\nb: {}",
        p.a.log_text(),
        p.b.log_text()
    );
    assert_eq!(
        p.b.pair_state().as_deref(),
        Some("standby"),
        "no dual active when only the link broke:\n{}",
        p.b.log_text()
    );
    // State sync moves to the service network (its other path).
    let service_addr = lab::DIRECTOR_A_ADDR.to_string();
    assert!(
        wait_for(Duration::from_secs(10), || {
            p.b.sync_status().is_some_and(|s| {
                s.state == "in sync"
                    && s.peer
                        .as_deref()
                        .is_some_and(|x| x.starts_with(&format!("{service_addr}:")))
            })
        }),
        "{:?}\n{}",
        p.b.sync_status(),
        p.b.log_text()
    );
    // Full partition of a: both links down. b takes over (witness reachable).
    p.lab.set_link(DIRECTOR_A, "eth0", false).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || p.b.pair_state().as_deref()
            == Some("active")),
        "b not active:\n{}",
        p.b.log_text()
    );
    // Heal: exactly one active remains, and GARPs are re-sent by it.
    p.lab.set_link(DIRECTOR_A, "eth0", true).unwrap();
    p.lab.set_link(DIRECTOR_A, "hb0", true).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || {
            let (sa, sb) = (p.a.pair_state(), p.b.pair_state());
            (sa.as_deref() == Some("active")) ^ (sb.as_deref() == Some("active"))
                && (sa.as_deref() == Some("standby") || sb.as_deref() == Some("standby"))
        }),
        "a: {}\nb: {}",
        p.a.log_text(),
        p.b.log_text()
    );
    let garp =
        |d: &Director| d.saw(|e| matches!(e, Event::GarpResent | Event::TakeoverDone { .. }));
    assert!(
        garp(&p.a) || garp(&p.b),
        "no GARP after the heal:\na: {}\nb: {}",
        p.a.log_text(),
        p.b.log_text()
    );
}

#[test]
fn privileged_lab_service_link_down_hands_over_and_sigterm_releases() {
    let Some(_turn) = lab_turn("privileged_lab_service_link_down_hands_over_and_sigterm_releases")
    else {
        return;
    };
    let mut p = pair("linkdown", &options());
    assert!(settled(&p), "a: {}\nb: {}", p.a.log_text(), p.b.log_text());
    // The active's service interface goes down: a local fault; it hands
    // over through the heartbeat link.
    p.lab.set_link(DIRECTOR_A, "eth0", false).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || {
            p.b.pair_state().as_deref() == Some("active")
                && p.a.pair_state().as_deref() == Some("fault")
        }),
        "a: {}\nb: {}",
        p.a.log_text(),
        p.b.log_text()
    );
    let mut port = 23000;
    assert!(
        wait_for(Duration::from_secs(5), || {
            port += 1;
            probe(&p.lab, port)
        }),
        "client probes not answered via b"
    );
    p.lab.set_link(DIRECTOR_A, "eth0", true).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || p.a.pair_state().as_deref()
            == Some("standby")),
        "a not standby:\n{}",
        p.a.log_text()
    );
    // SIGTERM on the active (b): it releases the VIP and detaches XDP; a
    // takes over.
    assert!(
        p.b.terminate(Duration::from_secs(5)),
        "b did not exit on SIGTERM:\n{}",
        p.b.log_text()
    );
    let b_lo = p
        .lab
        .exec(DIRECTOR_B, "ip", &["-4", "addr", "show", "dev", "lo"])
        .unwrap();
    assert!(
        !b_lo.contains(&p.lab.vip().to_string()),
        "b kept the VIP after SIGTERM: {b_lo}"
    );
    let b_xdp = p
        .lab
        .exec(DIRECTOR_B, "ip", &["link", "show", "eth0"])
        .unwrap();
    assert!(!b_xdp.contains("prog/xdp"), "b left XDP attached: {b_xdp}");
    // b no longer answers: its events from its log.
    let released =
        p.b.logged_events()
            .iter()
            .any(|(_, e)| matches!(e, Event::VipsReleased | Event::ShuttingDown { .. }));
    assert!(
        released,
        "b did not record its release or shutdown:\n{}",
        p.b.log_text()
    );
    assert!(
        wait_for(Duration::from_secs(5), || p.a.pair_state().as_deref()
            == Some("active")),
        "a not active:\n{}",
        p.a.log_text()
    );
}

#[test]
fn privileged_lab_forged_and_replayed_heartbeats_change_nothing() {
    use tandem_common::heartbeat::{Key, Kind, LEN, Packet, Repr};
    let Some(_turn) = lab_turn("privileged_lab_forged_and_replayed_heartbeats_change_nothing")
    else {
        return;
    };
    let p = pair("forged", &options());
    assert!(settled(&p), "a: {}\nb: {}", p.a.log_text(), p.b.log_text());
    let client = p.lab.ns(lab::CLIENT).unwrap().to_string();
    let key = tandemd::key();
    let send = |r: &Repr, key: &[u8; 16]| {
        let mut buf = vec![0u8; LEN];
        r.emit(
            &mut Packet::new_unchecked(&mut buf[..]),
            &Key::from_bytes(key),
        );
        in_netns(&client, || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            for _ in 0..20 {
                s.send_to(&buf, (lab::DIRECTOR_B_ADDR, HEARTBEAT_PORT))
                    .unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    };
    // "a is in fault" with the wrong key (forged), and with the right key
    // but an old sequence number (a replay): b must not take over.
    let fake = Repr {
        kind: Kind::Director,
        state: NodeState::Fault,
        priority: 150,
        node_id: 1,
        path: 1,
        epoch: 99,
        boot_id: 1,
        seq: 1,
        sent_ns: 0,
        active_channels: 0,
        capacity: 0,
        restart_grace_ms: 0,
    };
    send(
        &Repr {
            seq: u64::MAX / 2,
            ..fake
        },
        b"not-the-real-key",
    );
    send(&fake, &key);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        p.b.pair_state().as_deref(),
        Some("standby"),
        "forged/replayed heartbeats moved b:\n{}",
        p.b.log_text()
    );
    assert_eq!(p.a.pair_state().as_deref(), Some("active"));
}

/// Which IVR answered a probe (its name), if any.
fn probe_who(lab: &Lab, port: u16) -> Option<String> {
    let client = lab.ns(lab::CLIENT).unwrap();
    let r = udp_request(
        client,
        port,
        SocketAddr::new(IpAddr::V4(lab.vip()), 5060),
        b"OPTIONS",
        Duration::from_millis(200),
    )
    .ok()?;
    String::from_utf8_lossy(&r)
        .split_whitespace()
        .next()
        .map(str::to_string)
}

#[test]
fn privileged_lab_ivr_heartbeats_drive_real_server_health() {
    let Some(_turn) = lab_turn("privileged_lab_ivr_heartbeats_drive_real_server_health") else {
        return;
    };
    let p = pair(
        "ivrhb",
        &PairOptions {
            ivr_heartbeats: true,
            ..options()
        },
    );
    let hb1 = ivr_heartbeat(&p.lab, 0);
    let _hb2 = ivr_heartbeat(&p.lab, 1);
    assert!(settled(&p), "a: {}\nb: {}", p.a.log_text(), p.b.log_text());
    let mut port = 24000;
    let mut seen = HashSet::new();
    assert!(
        wait_for(Duration::from_secs(5), || {
            port += 1;
            if let Some(w) = probe_who(&p.lab, port) {
                seen.insert(w);
            }
            seen.len() == 2
        }),
        "seen {seen:?}\na: {}",
        p.a.log_text()
    );
    // ivr1 stops sending heartbeats: it is marked dead, new flows avoid it.
    drop(hb1);
    let dead = Event::IvrHealth {
        node_id: tandemd::ivr_node_id(0),
        alive: false,
    };
    assert!(
        wait_for(Duration::from_secs(5), || p.a.saw(|e| *e == dead)),
        "ivr1 not marked dead:\n{}",
        p.a.log_text()
    );
    for _ in 0..20 {
        port += 1;
        assert_eq!(
            probe_who(&p.lab, port).as_deref(),
            Some("ivr2"),
            "a new flow reached the silent ivr1"
        );
    }
    // Back: new flows reach it again.
    let _hb1 = ivr_heartbeat(&p.lab, 0);
    let mut back = false;
    assert!(
        wait_for(Duration::from_secs(5), || {
            port += 1;
            back = probe_who(&p.lab, port).as_deref() == Some("ivr1");
            back
        }),
        "ivr1 does not answer again:\n{}",
        p.a.log_text()
    );
    // tandemctl reals shows the health.
    match p.a.request(&Request::Reals) {
        Some(Response::Reals { reals }) => {
            assert!(reals.iter().all(|r| r.health == "alive"), "{reals:?}");
            assert!(
                reals
                    .iter()
                    .all(|r| r.channels == Some(IVR_CHANNELS.0)
                        && r.capacity == Some(IVR_CHANNELS.1)),
                "{reals:?}"
            );
        }
        other => panic!("reals: {other:?}"),
    }
}

/// Two simulated cards sharing one trunk (a failover switch), one per
/// director, served from this process over FUSE.
type Cards = tandem_tests::lab::cards::SharedTrunkCards;

fn cards(dir: &Path) -> Cards {
    Cards::mount(dir, 4).expect("two simulated cards on a shared trunk")
}

/// Does card `c`'s span 1 carry the trunk? (From the simulator's status.)
fn carries(cards: &Cards, c: usize) -> bool {
    let s = cards.sim.execute(&format!("status {c}"));
    s.contains("carrier") && !s.contains("carrier=no") && !s.contains("carrier: no") && {
        let reports = cards.sim.report(c).unwrap_or_default();
        reports
            .iter()
            .any(|r| format!("{r:?}").contains("carrier: true"))
    }
}

/// Two tandemd with simulated cards (a shared trunk), a active and b
/// standby in sync, two IVRs answering UDP. Dropped in field order:
/// responders, daemons and lab, cards, files.
struct CardPair {
    _udp: Vec<Responder>,
    pair: Pair,
    cards: Cards,
    _dir: WorkDir,
}

fn card_pair(tag: &str) -> CardPair {
    let dir = WorkDir::new(tag).expect("work dir");
    let cards = cards(dir.path());
    let roots = [cards.roots[0].as_path(), cards.roots[1].as_path()];
    let mut pair = Pair::build(2, &options(), dir.path(), &bins(), Some(roots)).expect("pair lab");
    let (udp, _) = start_stand_ins(&pair.lab, StandIns::Udp);
    pair.start_directors().expect("a active, b standby");
    CardPair {
        _udp: udp,
        pair,
        cards,
        _dir: dir,
    }
}

#[test]
fn privileged_lab_cut_trunk_hands_over_once() {
    let Some(_turn) = lab_turn("privileged_lab_cut_trunk_hands_over_once") else {
        return;
    };
    let CardPair { pair: p, cards, .. } = &card_pair("cut");
    assert!(
        wait_for(Duration::from_secs(5), || carries(cards, 0)),
        "no trunk on card 0: {}",
        cards.sim.execute("status 0")
    );
    // The trunk itself is cut: a's span sees RED|LOS, hands over to b, whose
    // span then sees the same. b keeps the role (a holds its card fault
    // down): one handover, no bouncing.
    let r = cards.sim.execute("cut 0 1");
    assert!(r.starts_with("ok"), "{r}");
    assert!(
        wait_for(Duration::from_secs(5), || p.b.pair_state().as_deref()
            == Some("active")),
        "b: {}",
        p.b.log_text()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        p.b.pair_state().as_deref(),
        Some("active"),
        "b: {}",
        p.b.log_text()
    );
    assert_eq!(
        p.a.pair_state().as_deref(),
        Some("fault"),
        "a: {}",
        p.a.log_text()
    );
    let to_active = |d: &Director| {
        d.events(0).iter().filter(|e| matches!(&e.event, Event::StateChanged { to, .. } if to == NodeState::Active.name())).count()
    };
    assert_eq!(
        to_active(&p.a),
        1,
        "a became active more than once:\n{}",
        p.a.log_text()
    );
    assert_eq!(
        to_active(&p.b),
        1,
        "b became active more than once:\n{}",
        p.b.log_text()
    );
    // The trunk comes back: b's span clears and b serves on.
    let r = cards.sim.execute("restore 0 1");
    assert!(r.starts_with("ok"), "{r}");
    assert!(
        wait_for(Duration::from_secs(5), || carries(cards, 1)),
        "no trunk on card 1: {}",
        cards.sim.execute("status 1")
    );
    assert_eq!(p.b.pair_state().as_deref(), Some("active"));
}

#[test]
fn privileged_lab_spans_follow_the_active_node() {
    let Some(_turn) = lab_turn("privileged_lab_spans_follow_the_active_node") else {
        return;
    };
    let CardPair {
        pair: Pair { a, b, .. },
        cards,
        ..
    } = &card_pair("cards");
    assert!(
        wait_for(Duration::from_secs(5), || a
            .saw(|e| matches!(e, Event::SpansStarted { .. }))),
        "a's spans did not start:\n{}",
        a.log_text()
    );
    assert!(
        wait_for(Duration::from_secs(5), || carries(cards, 0)),
        "no trunk on card 0: {}",
        cards.sim.execute("status 0")
    );
    assert!(
        !carries(cards, 1),
        "the standby's card must not carry the trunk"
    );
    assert!(
        wait_for(Duration::from_secs(5), || b
            .sync_status()
            .is_some_and(|s| s.state == "in sync")),
        "{:?}",
        b.sync_status()
    );

    // A call comes in on the trunk: a answers it, and the call record
    // reaches b.
    let r = cards.sim.execute("ring 0 1 1");
    assert!(r.starts_with("ok"), "{r}");
    assert!(
        wait_for(Duration::from_secs(5), || cards
            .sim
            .execute("call 0 1 1")
            .contains("answered")),
        "{}\n{}",
        cards.sim.execute("call 0 1 1"),
        a.log_text()
    );
    assert!(
        wait_for(Duration::from_secs(5), || b
            .sync_status()
            .is_some_and(|s| s.calls == 1)),
        "{:?}",
        b.sync_status()
    );

    // Switchover: a shuts its spans down first, b starts its own, the trunk follows.
    assert!(
        matches!(
            b.request(&Request::Switchover),
            Some(Response::Error { .. })
        ),
        "only the active can switch over"
    );
    assert!(matches!(
        a.request(&Request::Switchover),
        Some(Response::Done { .. })
    ));
    assert!(
        wait_for(Duration::from_secs(5), || b.pair_state().as_deref()
            == Some("active")),
        "b not active:\n{}",
        b.log_text()
    );
    assert!(
        wait_for(Duration::from_secs(5), || b
            .saw(|e| matches!(e, Event::SpansStarted { .. }))),
        "b's spans did not start:\n{}",
        b.log_text()
    );
    assert!(
        wait_for(Duration::from_secs(5), || carries(cards, 1)),
        "no trunk on card 1: {}",
        cards.sim.execute("status 1")
    );
    // The call survived: b picked it up from the synced record (b does not
    // answer calls by itself).
    assert!(
        wait_for(Duration::from_secs(5), || cards
            .sim
            .execute("call 1 1 1")
            .contains("answered")),
        "{}\nb: {}",
        cards.sim.execute("call 1 1 1"),
        b.log_text()
    );
    assert!(
        wait_for(Duration::from_secs(5), || a
            .sync_status()
            .is_some_and(|s| s.calls == 1 && s.role == "subscriber")),
        "{:?}",
        a.sync_status()
    );
    // tandemctl cards shows the spans.
    match b.request(&Request::Cards) {
        Some(Response::Cards { spans }) => assert!(!spans.is_empty(), "no spans reported"),
        other => panic!("cards: {other:?}"),
    }

    // A red alarm on the active's span is a local fault: switchover to a.
    assert!(
        wait_for(Duration::from_secs(5), || a.pair_state().as_deref()
            == Some("standby")),
        "a not standby after the switchover"
    );
    let r = cards.sim.execute("alarm 1 1 RED");
    assert!(r.starts_with("ok"), "{r}");
    assert!(
        wait_for(Duration::from_secs(5), || {
            a.pair_state().as_deref() == Some("active")
                && b.pair_state().as_deref() == Some("fault")
        }),
        "a: {}\nb: {}",
        a.log_text(),
        b.log_text()
    );
    assert!(
        wait_for(Duration::from_secs(5), || carries(cards, 0)),
        "no trunk on card 0: {}",
        cards.sim.execute("status 0")
    );
    let _ = cards.sim.execute("alarm 1 1 none");
}

/// One UDP flow per source port through the VIP; which IVR answered each.
fn who_answers(lab: &Lab, ports: &[u16]) -> Vec<Option<String>> {
    let client = lab.ns(lab::CLIENT).unwrap();
    let dst = SocketAddr::new(IpAddr::V4(lab.vip()), 5060);
    let name = |r: Vec<u8>| {
        String::from_utf8_lossy(&r)
            .split_whitespace()
            .next()
            .map(str::to_string)
    };
    let mut who: Vec<Option<String>> =
        udp_flows(client, ports, dst, b"OPTIONS", 5000, Duration::from_secs(2))
            .unwrap()
            .into_iter()
            .map(|r| r.and_then(name))
            .collect();
    // A datagram lost on a loaded machine: ask again on the same 5-tuple
    // (the same flow), a few times.
    for (i, w) in who.iter_mut().enumerate() {
        for _ in 0..3 {
            if w.is_some() {
                break;
            }
            *w = udp_request(
                client,
                ports[i],
                dst,
                b"OPTIONS",
                Duration::from_millis(300),
            )
            .ok()
            .and_then(name);
        }
    }
    who
}

/// [`who_answers`] with the flows opened in the reverse order: a fresh
/// rr scheduling of the same flows in the same order would repeat the
/// same assignment and hide a flow table that was not synced.
fn who_answers_reversed(lab: &Lab, ports: &[u16]) -> Vec<Option<String>> {
    let rev: Vec<u16> = ports.iter().rev().copied().collect();
    let mut w = who_answers(lab, &rev);
    w.reverse();
    w
}

/// The dead-man switch and loop lateness of `d`, for a failure message.
fn liveness(d: &Director) -> String {
    match d.request(&Request::Status) {
        Some(Response::Status(s)) => format!(
            "state {}, dead-man {:?}, late turns {}, worst gap {} µs",
            s.state, s.dead_man, s.late_turns, s.worst_turn_gap_us
        ),
        other => format!("no status: {other:?}"),
    }
}

fn moved(before: &[Option<String>], after: &[Option<String>]) -> usize {
    before.iter().zip(after).filter(|(b, a)| b != a).count()
}

#[test]
fn privileged_lab_sync_no_flow_moves_across_failover_and_failback() {
    let Some(_turn) = lab_turn("privileged_lab_sync_no_flow_moves_across_failover_and_failback")
    else {
        return;
    };
    // Four IVRs and rr: a fresh scheduling would move about 3 flows in 4.
    let mut p = pair_lab("sync", 4, &options(), &[], StandIns::Udp);
    assert!(settled(&p), "a: {}\nb: {}", p.a.log_text(), p.b.log_text());
    assert!(
        wait_for(Duration::from_secs(10), || p
            .b
            .sync_status()
            .is_some_and(|s| s.state == "in sync")),
        "b: {:?}\n{}",
        p.b.sync_status(),
        p.b.log_text()
    );
    let ports: Vec<u16> = (30_000..31_000).collect();
    let before = who_answers(&p.lab, &ports);
    assert!(
        before.iter().all(Option::is_some),
        "{} of 1000 flows unanswered through a (ports {:?}…); a's liveness: {}\n{}",
        before.iter().filter(|w| w.is_none()).count(),
        ports.iter().zip(&before).filter(|(_, w)| w.is_none()).map(|(p, _)| *p).take(10).collect::<Vec<_>>(),
        liveness(&p.a),
        p.a.log_text()
    );
    for ivr in p.lab.ivrs() {
        let n = before
            .iter()
            .filter(|w| w.as_deref() == Some(ivr.name.as_str()))
            .count();
        assert!(
            (200..=300).contains(&n),
            "rr gave {} {n} of 1000 flows",
            ivr.name
        );
    }
    // The standby holds every flow (and the active's standby acked them all).
    assert!(
        wait_for(Duration::from_secs(10), || {
            let (a, b) = (p.a.sync_status(), p.b.sync_status());
            a.is_some_and(|a| a.acked == a.last_seq && a.last_seq >= 1000)
                && b.is_some_and(|b| b.flows >= 1000 && b.kernel_errors == 0)
        }),
        "a: {:?}\nb: {:?}",
        p.a.sync_status(),
        p.b.sync_status()
    );

    // Failover: every flow keeps its IVR on b.
    p.a.kill9();
    assert!(
        wait_for(Duration::from_secs(5), || p.b.pair_state().as_deref()
            == Some("active")),
        "b not active:\n{}",
        p.b.log_text()
    );
    let after = who_answers_reversed(&p.lab, &ports);
    assert!(
        after.iter().all(Option::is_some),
        "flows unanswered after the takeover:\n{}",
        p.b.log_text()
    );
    assert_eq!(moved(&before, &after), 0, "flows moved across the failover");

    // The old active returns as standby and gets b's tables by snapshot.
    p.a.start().expect("restarting a");
    assert!(
        wait_for(Duration::from_secs(10), || p.a.pair_state().as_deref()
            == Some("standby")),
        "a not standby:\n{}",
        p.a.log_text()
    );
    assert!(
        wait_for(Duration::from_secs(10), || {
            p.a.sync_status()
                .is_some_and(|s| s.state == "in sync" && s.flows >= 1000 && s.applied >= 1000)
        }),
        "a: {:?}\n{}",
        p.a.sync_status(),
        p.a.log_text()
    );
    let snap = p.b.sync_status().unwrap();
    assert!(snap.snapshots >= 1, "b sent no snapshot: {snap:?}");

    // Failback by switchover: still nothing moves.
    let r = p.b.request(&Request::Switchover).unwrap();
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    assert!(
        wait_for(Duration::from_secs(5), || {
            p.a.pair_state().as_deref() == Some("active")
                && p.b.pair_state().as_deref() == Some("standby")
        }),
        "a: {}\nb: {}",
        p.a.log_text(),
        p.b.log_text()
    );
    let back = who_answers_reversed(&p.lab, &ports);
    assert!(
        back.iter().all(Option::is_some),
        "flows unanswered after the failback:\n{}",
        p.a.log_text()
    );
    assert_eq!(moved(&before, &back), 0, "flows moved across the failback");
    // The roles turned: b subscribes to a again.
    assert!(
        wait_for(Duration::from_secs(10), || p
            .b
            .sync_status()
            .is_some_and(|s| s.state == "in sync")),
        "b: {:?}",
        p.b.sync_status()
    );
}

/// SIP requests with these Call-IDs, all from one client socket (as SIPp
/// sends every call from client:5060), in order; which IVR answered each.
fn sip_who(lab: &Lab, src_port: u16, call_ids: &[String]) -> Vec<Option<String>> {
    let client = lab.ns(lab::CLIENT).unwrap();
    let dst = SocketAddr::new(IpAddr::V4(lab.vip()), 5060);
    tandem_tests::in_netns(client, || {
        let sock = std::net::UdpSocket::bind(("0.0.0.0", src_port)).unwrap();
        sock.connect(dst).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 2048];
        call_ids
            .iter()
            .map(|id| {
                let msg = format!(
                    "INVITE sip:ivr@{vip} SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.0.2:{src_port};branch=z9hG4bK{id}\r\nFrom: <sip:caller@198.18.0.2>;tag=1\r\nTo: <sip:ivr@{vip}>\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
                    vip = lab.vip()
                );
                for _ in 0..3 {
                    let _ = sock.send(msg.as_bytes());
                    if let Ok(n) = sock.recv(&mut buf) {
                        return String::from_utf8_lossy(&buf[..n]).split_whitespace().next().map(str::to_string);
                    }
                }
                None
            })
            .collect::<Vec<Option<String>>>()
    })
}

#[test]
fn privileged_lab_sip_dialogs_keep_their_ivr_across_failover() {
    let Some(_turn) = lab_turn("privileged_lab_sip_dialogs_keep_their_ivr_across_failover") else {
        return;
    };
    // Call-ID persistence: 200 dialogs from ONE client socket spread over
    // four IVRs by rr; after a takeover, every dialog's next message, from
    // another socket, reaches the same IVR (the new active learned the
    // Call-IDs through state sync, not from the 5-tuple).
    let mut p = pair_lab(
        "sip",
        4,
        &PairOptions {
            flags: vec!["sip_persist".into()],
            ..options()
        },
        &[],
        StandIns::Udp,
    );
    assert!(settled(&p), "a: {}\nb: {}", p.a.log_text(), p.b.log_text());
    assert!(
        wait_for(Duration::from_secs(10), || p
            .b
            .sync_status()
            .is_some_and(|s| s.state == "in sync")),
        "{:?}",
        p.b.sync_status()
    );
    let ids: Vec<String> = (0..200)
        .map(|i| format!("{i:04}-f81d4fae7dec11d0a76500a0c91e6bf6@198.18.0.2"))
        .collect();
    let before = sip_who(&p.lab, 5060, &ids);
    assert!(
        before.iter().all(Option::is_some),
        "dialogs unanswered through a"
    );
    for ivr in p.lab.ivrs() {
        let n = before
            .iter()
            .filter(|w| w.as_deref() == Some(ivr.name.as_str()))
            .count();
        assert!(
            (40..=60).contains(&n),
            "rr by Call-ID gave {} {n} of 200 dialogs",
            ivr.name
        );
    }
    // Same dialogs again from another port: they stick.
    assert_eq!(
        moved(&before, &sip_who(&p.lab, 5062, &ids)),
        0,
        "dialogs moved with the source port"
    );
    assert!(
        wait_for(Duration::from_secs(10), || p
            .b
            .sync_status()
            .is_some_and(|s| s.calls >= 200 && s.kernel_errors == 0)),
        "a: {:?}\nb: {:?}",
        p.a.sync_status(),
        p.b.sync_status()
    );
    p.a.kill9();
    assert!(
        wait_for(Duration::from_secs(5), || p.b.pair_state().as_deref()
            == Some("active")),
        "b not active:\n{}",
        p.b.log_text()
    );
    // In the reverse order, from a third socket: a fresh rr would move most.
    let rev: Vec<String> = ids.iter().rev().cloned().collect();
    let mut after = sip_who(&p.lab, 5064, &rev);
    after.reverse();
    assert!(
        after.iter().all(Option::is_some),
        "dialogs unanswered after the takeover:\n{}",
        p.b.log_text()
    );
    assert_eq!(
        moved(&before, &after),
        0,
        "dialogs moved across the failover"
    );
}

#[test]
fn privileged_lab_sync_keeps_up_with_10k_new_flows_per_second() {
    let Some(_turn) = lab_turn("privileged_lab_sync_keeps_up_with_10k_new_flows_per_second") else {
        return;
    };
    // 10,000 new flows at 10,000 per second through the active: the
    // standby ends up holding every one, nothing overflowed, and the lag
    // distribution is reported (the bench checks it against 50 ms).
    let p = pair("synclag", &options());
    assert!(settled(&p), "a: {}\nb: {}", p.a.log_text(), p.b.log_text());
    assert!(
        wait_for(Duration::from_secs(10), || p
            .b
            .sync_status()
            .is_some_and(|s| s.state == "in sync")),
        "{:?}",
        p.b.sync_status()
    );
    let client = p.lab.ns(lab::CLIENT).unwrap();
    let ports: Vec<u16> = (20_000..30_000).collect();
    let dst = SocketAddr::new(IpAddr::V4(p.lab.vip()), 5060);
    udp_flows(client, &ports, dst, b"OPTIONS", 10_000, Duration::ZERO).unwrap();
    assert!(
        wait_for(Duration::from_secs(15), || {
            let (a, b) = (p.a.sync_status(), p.b.sync_status());
            a.is_some_and(|a| a.acked == a.last_seq && a.last_seq >= 10_000)
                && b.is_some_and(|b| b.flows >= 10_000)
        }),
        "a: {:?}\nb: {:?}\na: {}\nb: {}",
        p.a.sync_status(),
        p.b.sync_status(),
        p.a.log_text(),
        p.b.log_text()
    );
    let a = p.a.sync_status().unwrap();
    let b = p.b.sync_status().unwrap();
    assert_eq!(
        (a.overflows, a.out_of_date, b.kernel_errors, b.bad_frames),
        (0, false, 0, 0),
        "a: {a:?}\nb: {b:?}"
    );
    // The services a published when it took over, before b connected,
    // went in b's snapshot: recorded, not streamed, so not timed.
    assert_eq!(
        a.lag_samples,
        a.last_seq - 1,
        "every change acknowledged and timed"
    );
    // The same numbers for Prometheus: tandemctl metrics, and the HTTP
    // endpoint inside the director's namespace.
    let text = match p.a.request(&Request::Metrics) {
        Some(Response::Metrics { text }) => text,
        other => panic!("metrics: {other:?}"),
    };
    assert!(
        text.contains("tandem_node_state{state=\"active\"} 1"),
        "{text}"
    );
    let fwd: u64 = text
        .lines()
        .find(|l| l.starts_with("tandem_dispatch_packets_total{reason=\"forward_dr\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert!(fwd >= 10_000, "forward_dr {fwd}:\n{text}");
    assert!(
        text.contains("tandem_sync_lag_seconds{quantile=\"0.99\"}"),
        "{text}"
    );
    let ns = p.lab.ns(DIRECTOR_B).unwrap();
    let http = in_netns(ns, || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect("127.0.0.1:9469").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    });
    assert!(
        http.starts_with("HTTP/1.0 200 OK"),
        "{http}\nb: {}\na: {}",
        p.b.log_text(),
        p.a.log_text()
    );
    assert!(
        http.contains("tandem_node_state{state=\"standby\"} 1"),
        "{http}\nb: {}\na: {}",
        p.b.log_text(),
        p.a.log_text()
    );
    assert!(http.contains("tandem_sync_in_sync 1"), "{http}");
    eprintln!(
        "sync lag at 10k new flows/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} changes",
        a.lag_p50_us as f64 / 1000.0,
        a.lag_p99_us as f64 / 1000.0,
        a.lag_max_us as f64 / 1000.0,
        a.lag_samples
    );
}

/// An IVR stand-in that speaks enough SIP for the OPTIONS probe: it answers
/// OPTIONS with 200 OK (Via, Call-ID and CSeq copied) and anything else with
/// `<name> <payload>`, on a thread in the IVR's namespace (bound to the VIP
/// on its lo); stops when dropped.
struct SipResponder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SipResponder {
    fn start(ns: &str, name: &str, vip: Ipv4Addr) -> SipResponder {
        use std::sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        };
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let (ns, name) = (ns.to_string(), name.to_string());
        // On the VIP: DR replies must come from it.
        let sock = in_netns(&ns, || std::net::UdpSocket::bind((vip, 5060)).unwrap());
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Bounded: at most 10 minutes.
            let end = Instant::now() + Duration::from_secs(600);
            while !s2.load(Ordering::Relaxed) && Instant::now() < end {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let reply = if msg.starts_with("OPTIONS ") {
                    let keep: Vec<&str> = msg
                        .lines()
                        .map(|l| l.trim_end_matches('\r'))
                        .filter(|l| {
                            ["via:", "call-id:", "cseq:", "from:", "to:"]
                                .iter()
                                .any(|h| l.to_ascii_lowercase().starts_with(h))
                        })
                        .collect();
                    format!(
                        "SIP/2.0 200 OK\r\n{}\r\nContent-Length: 0\r\n\r\n",
                        keep.join("\r\n")
                    )
                } else {
                    format!("{name} {msg}")
                };
                let _ = sock.send_to(reply.as_bytes(), from);
            }
        });
        SipResponder {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SipResponder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn privileged_lab_sip_options_probe_takes_a_mute_ivr_out() {
    let Some(_turn) = lab_turn("privileged_lab_sip_options_probe_takes_a_mute_ivr_out") else {
        return;
    };
    // Two IVRs with heartbeats and SIP stand-ins; the director probes them
    // with OPTIONS (DR: frames to their MACs, addressed to the VIP).
    let o = PairOptions {
        ivr_heartbeats: true,
        ..options()
    };
    let mut p = pair_lab(
        "sipopt",
        2,
        &o,
        &["sip_options = { interval_ms = 100, timeout_ms = 50, failures = 2 }"],
        StandIns::Sip,
    );
    let _hb1 = ivr_heartbeat(&p.lab, 0);
    let _hb2 = ivr_heartbeat(&p.lab, 1);
    let ivrs: Vec<lab::Host> = p.lab.ivrs().into_iter().cloned().collect();
    let ivr = |k: usize| &ivrs[k];
    let probed = |k: usize, answered: bool| Event::SipOptions {
        real: IpAddr::V4(ivr(k).addr()),
        answered,
    };
    assert!(settled(&p), "a: {}\nb: {}", p.a.log_text(), p.b.log_text());
    let mut port = 26000;
    let mut seen = HashSet::new();
    assert!(
        wait_for(Duration::from_secs(5), || {
            port += 1;
            if let Some(w) = probe_who(&p.lab, port) {
                seen.insert(w);
            }
            seen.len() == 2
        }),
        "seen {seen:?}\na: {}",
        p.a.log_text()
    );
    let unanswered = |e: &Event| {
        matches!(
            e,
            Event::SipOptions {
                answered: false,
                ..
            }
        )
    };
    assert!(
        !p.a.saw(unanswered),
        "a healthy IVR was taken out:\n{}",
        p.a.log_text()
    );
    // ivr1's SIP stack goes mute while its heartbeat goes on: it is taken
    // out, and new flows avoid it.
    drop(p.sip[0].take());
    let gone = probed(0, false);
    assert!(
        wait_for(Duration::from_secs(5), || p.a.saw(|e| *e == gone)),
        "ivr1 not taken out:\n{}",
        p.a.log_text()
    );
    let dead = Event::IvrHealth {
        node_id: tandemd::ivr_node_id(0),
        alive: false,
    };
    assert!(
        !p.a.saw(|e| *e == dead),
        "its heartbeat went on:\n{}",
        p.a.log_text()
    );
    for _ in 0..20 {
        port += 1;
        assert_eq!(
            probe_who(&p.lab, port).as_deref(),
            Some(ivr(1).name.as_str()),
            "a new flow reached the mute ivr1"
        );
    }
    // It answers again: back in.
    p.sip[0] = Some(SipResponder::start(&ivr(0).ns, &ivr(0).name, p.lab.vip()));
    let back = probed(0, true);
    assert!(
        wait_for(Duration::from_secs(5), || p.a.saw(|e| *e == back)),
        "ivr1 not back in:\n{}",
        p.a.log_text()
    );
}
