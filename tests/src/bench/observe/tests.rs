use super::*;
use crate::lab::privileged::lab_turn;

const MS: u64 = 1_000_000;
/// A base instant: 2025-01-01 on the wall clock, in ns.
const T0: u64 = 1_735_689_600 * 1_000_000_000;

/// Claims of `director` every `every` ns over `[from, to]` ns after T0.
fn stream(director: Director, from: u64, to: u64, every: u64) -> Vec<Seen> {
    (from..=to)
        .step_by(every as usize)
        .map(|t| Seen {
            at_ns: T0 + t,
            director,
            kind: Kind::Forward,
        })
        .collect()
}

fn secs(ns_after_t0: u64) -> f64 {
    (T0 + ns_after_t0) as f64 / 1e9
}

fn around(events: &[Seen]) -> DualActive {
    dual_active(events, secs(0), secs(10_000 * MS))
}

#[test]
fn clean_handover_is_not_dual_active() {
    let mut ev = stream(Director::A, 0, 100 * MS, MS);
    ev.extend(stream(Director::B, 102 * MS, 200 * MS, MS));
    let d = around(&ev);
    assert_eq!(d.ms, 0.0);
    assert_eq!((d.frames_a, d.frames_b), (101, 99));
    assert!(d.both_seen());
}

#[test]
fn both_forwarding_for_50_ms_counts_50_ms() {
    let mut ev = stream(Director::A, 0, 100 * MS, MS);
    // B a quarter period out of phase, interleaved with A; then alone.
    ev.extend(stream(Director::B, 50 * MS + MS / 4, 200 * MS, MS));
    ev.reverse(); // the recorder threads interleave: order must not matter
    let d = around(&ev);
    assert!((d.ms - 49.75).abs() < 1e-6, "{d:?}");
}

#[test]
fn a_stray_frame_counts_its_distance_into_the_new_owner() {
    let mut ev = stream(Director::A, 0, 100 * MS, MS);
    ev.extend(stream(Director::B, 102 * MS, 200 * MS, MS));
    ev.push(Seen {
        at_ns: T0 + 102 * MS + MS / 2,
        director: Director::A,
        kind: Kind::Forward,
    });
    assert!((around(&ev).ms - 0.5).abs() < 1e-6);
    // A lone claim (no other of A's within 20 ms) inside B's span: one period.
    ev.push(Seen {
        at_ns: T0 + 150 * MS,
        director: Director::A,
        kind: Kind::ArpClaim,
    });
    let d = around(&ev);
    assert!((d.ms - 1.5).abs() < 1e-6, "{d:?}");
    assert_eq!((d.frames_a, d.arp_a, d.arp_b), (102, 1, 0));
}

#[test]
fn dual_active_only_looks_inside_its_window() {
    let mut ev = stream(Director::A, 0, 100 * MS, MS);
    ev.extend(stream(Director::B, 0, 100 * MS, MS));
    assert!((around(&ev).ms - 100.0).abs() < 1e-6);
    let d = dual_active(&ev, secs(20 * MS), secs(30 * MS));
    assert!((d.ms - 10.0).abs() < 1e-6, "{d:?}");
    assert_eq!((d.frames_a, d.frames_b), (11, 11));
    let d = dual_active(&ev, secs(200 * MS), secs(300 * MS));
    assert_eq!(d, DualActive::default());
    assert!(!d.both_seen());
    // One director alone is never dual-active.
    assert_eq!(
        dual_active_ms(
            &stream(Director::B, 0, 100 * MS, MS),
            secs(0),
            secs(MS * 200)
        ),
        0.0
    );
}

/// A frame from `mac` to `dst` (IPv4, optionally VLAN-tagged) or an ARP `op`.
fn ipv4_frame(
    mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    vlan: bool,
) -> Vec<u8> {
    let mut f = [dst_mac, mac].concat();
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
    }
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&[0x30, 0x39, 0, 9, 0, 8, 0, 0]);
    f
}

fn arp_frame(mac: [u8; 6], op: u16, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = [[0xff; 6], mac].concat();
    f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&mac);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa.octets());
    f
}

#[test]
fn frames_are_classified_by_what_they_claim() {
    let (m, vip, other) = ([2, 0, 0, 0, 0, 1], lab::VIP, Ipv4Addr::new(198, 18, 0, 21));
    assert_eq!(
        classify(&ipv4_frame(m, m, other, vip, false), vip),
        Some(Kind::Forward)
    );
    assert_eq!(
        classify(&ipv4_frame(m, m, other, vip, true), vip),
        Some(Kind::Forward)
    );
    assert_eq!(classify(&ipv4_frame(m, m, vip, other, false), vip), None);
    assert_eq!(
        classify(&arp_frame(m, 1, vip, vip), vip),
        Some(Kind::ArpClaim)
    );
    assert_eq!(
        classify(&arp_frame(m, 2, vip, other), vip),
        Some(Kind::ArpClaim)
    );
    assert_eq!(classify(&arp_frame(m, 1, vip, other), vip), None);
    assert_eq!(classify(&arp_frame(m, 2, other, vip), vip), None);
    assert_eq!(
        classify(&ipv4_frame(m, m, other, vip, false)[..30], vip),
        None
    );
    assert_eq!(classify(&[], vip), None);
}

/// Send times every 1 ms from T0; `lost` the sequence numbers unanswered.
fn probes(n: usize, lost: impl Fn(usize) -> bool) -> (Vec<u64>, Vec<u64>) {
    let sent: Vec<u64> = (0..n as u64).map(|i| T0 + i * MS).collect();
    let replied = sent
        .iter()
        .enumerate()
        .map(|(i, &s)| if lost(i) { 0 } else { s + MS / 10 })
        .collect();
    (sent, replied)
}

#[test]
fn probe_gap_spans_a_run_of_lost_probes() {
    let (s, r) = probes(1000, |i| (400..450).contains(&i));
    let w = probe_window(&s, &r, T0, T0 + 999 * MS);
    assert_eq!((w.sent, w.answered, w.lost), (1000, 950, 50));
    // From probe 399's send to probe 450's.
    assert_eq!(w.gap_ms, Some(51.0));
    assert!(!w.gap_open);
    // A window that starts inside the run measures it whole, counts
    // only its own lost probes.
    let w = probe_window(&s, &r, T0 + 420 * MS, T0 + 600 * MS);
    assert_eq!((w.lost, w.gap_ms), (30, Some(51.0)));
    // Without loss the gap is the period.
    let w = probe_window(&s, &r, T0 + 500 * MS, T0 + 600 * MS);
    assert_eq!((w.sent, w.lost, w.gap_ms), (101, 0, Some(1.0)));
}

#[test]
fn probes_outside_the_window_are_ignored() {
    let (s, r) = probes(1000, |i| (100..300).contains(&i) || i == 700);
    // The long run ends at probe 300, the first of the window.
    let w = probe_window(&s, &r, T0 + 300 * MS, T0 + 650 * MS);
    assert_eq!((w.lost, w.gap_ms), (0, Some(1.0)));
    let w = probe_window(&s, &r, T0 + 300 * MS, T0 + 800 * MS);
    assert_eq!((w.lost, w.gap_ms), (1, Some(2.0)));
    assert_eq!(
        probe_window(&s, &r, T0 + 2000 * MS, T0 + 3000 * MS),
        ProbeWindow::default()
    );
    assert_eq!(probe_window(&s, &r, T0 + 5 * MS, T0 + 5 * MS).gap_ms, None);
}

#[test]
fn an_unended_run_of_lost_probes_is_an_open_gap() {
    let (s, r) = probes(1000, |i| !(10..900).contains(&i));
    let w = probe_window(&s, &r, T0, T0 + 999 * MS);
    assert_eq!((w.lost, w.gap_ms, w.gap_open), (110, Some(100.0), true));
    // The leading run has no answered probe before it: measured from its first.
    let w = probe_window(&s, &r, T0, T0 + 100 * MS);
    assert_eq!((w.lost, w.gap_ms, w.gap_open), (10, Some(10.0), false));
}

/// Sends `frames` out of `eth0` (`ifindex`) in `ns` through a packet socket.
fn send_frames(ns: &str, ifindex: u32, frames: &[Vec<u8>]) {
    let fd = open_port(ns, "eth0", ifindex).expect("a packet socket to send on");
    for f in frames {
        // SAFETY: f is valid for its length; the socket is bound to the port.
        let n = unsafe { libc::send(fd.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
        assert_eq!(
            n,
            f.len() as isize,
            "send in {ns}: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn privileged_dual_active_watch_attributes_frames_to_their_director() {
    let Some(_turn) =
        lab_turn("privileged_dual_active_watch_attributes_frames_to_their_director")
    else {
        return;
    };
    let lab = Lab::pair(1).expect("pair lab");
    let watch = DualActiveWatch::start(&lab).expect("dual-active watch");
    let small = DualActiveWatch::start_with(&lab, 2).expect("a watch keeping 2 events");
    let ivr = lab.iface(&lab::ivr_name(1), "eth0").unwrap().mac;
    let (vip, ivr_addr) = (lab.vip(), lab::dr_ivr_addr(1));
    let t0 = crate::actors::sipp::wall_now();
    for (host, addr, forwards) in [
        (lab::DIRECTOR_A, lab::DIRECTOR_A_ADDR, 3),
        (lab::DIRECTOR_B, lab::DIRECTOR_B_ADDR, 2),
    ] {
        let eth0 = lab.iface(host, "eth0").unwrap();
        let m = eth0.mac;
        // Claims (one VLAN-tagged, a GARP, an ARP reply) and frames that are none.
        let mut frames: Vec<Vec<u8>> = (0..forwards)
            .map(|k| ipv4_frame(m, ivr, lab::CLIENT_ADDR, vip, k == 0))
            .collect();
        frames.push(arp_frame(
            m,
            if host == lab::DIRECTOR_A { 1 } else { 2 },
            vip,
            vip,
        ));
        frames.push(ipv4_frame(m, ivr, addr, ivr_addr, false));
        frames.push(arp_frame(m, 1, addr, vip));
        send_frames(lab.ns(host).unwrap(), eth0.ifindex, &frames);
        std::thread::sleep(Duration::from_millis(30));
    }
    // Broadcasts and floods of each reached the other's port as well:
    // they are the bridge's frames to it, not its own.
    assert!(lab::wait::wait_until(
        Duration::from_secs(2),
        Duration::from_millis(10),
        || watch.events().len() >= 7
    ));
    std::thread::sleep(Duration::from_millis(100));
    let t1 = crate::actors::sipp::wall_now();
    let ev = watch.events();
    let of =
        |d: Director, k: Kind| ev.iter().filter(|e| e.director == d && e.kind == k).count();
    assert_eq!(ev.len(), 7, "{ev:?}");
    assert_eq!(
        (
            of(Director::A, Kind::Forward),
            of(Director::A, Kind::ArpClaim)
        ),
        (3, 1),
        "{ev:?}"
    );
    assert_eq!(
        (
            of(Director::B, Kind::Forward),
            of(Director::B, Kind::ArpClaim)
        ),
        (2, 1),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .all(|e| e.at_ns >= s_to_ns(t0) && e.at_ns <= s_to_ns(t1)),
        "stamps outside [{t0}, {t1}]: {ev:?}"
    );
    let last_a = ev
        .iter()
        .filter(|e| e.director == Director::A)
        .map(|e| e.at_ns)
        .max();
    let first_b = ev
        .iter()
        .filter(|e| e.director == Director::B)
        .map(|e| e.at_ns)
        .min();
    assert!(last_a < first_b, "{ev:?}");
    let d = watch.window(t0, t1);
    assert_eq!(
        d,
        DualActive {
            ms: 0.0,
            frames_a: 3,
            frames_b: 2,
            arp_a: 1,
            arp_b: 1
        }
    );
    assert_eq!((watch.dropped(), watch.unstamped()), (0, 0));
    assert_eq!((small.events(), small.dropped()), (ev[..2].to_vec(), 5));
    watch.forget_before(t1);
    assert!(watch.events().is_empty());
}

#[test]
fn privileged_client_probe_measures_an_outage() {
    let Some(_turn) = lab_turn("privileged_client_probe_measures_an_outage") else {
        return;
    };
    let lab = Lab::pair(1).expect("pair lab");
    let (ivr_ns, port) = (lab.ns(&lab::ivr_name(1)).unwrap().to_owned(), 7070);
    let responder = crate::actors::responder::spawn_udp_responder(&ivr_ns, "ivr1", port)
        .expect("responder");
    let target = SocketAddrV4::new(lab::dr_ivr_addr(1), port);
    let probe = ClientProbe::start(lab.ns(lab::CLIENT).unwrap(), lab::CLIENT_ADDR, target)
        .expect("probe");
    let t0 = crate::actors::sipp::wall_now();
    // Long enough for the window's probes to have waited REPLY_WAIT_NS.
    std::thread::sleep(Duration::from_millis(600));
    let w = probe.window(t0 + 0.05, t0 + 0.35);
    assert_eq!(w.lost, 0, "{w:?}");
    assert!(w.answered > 100 && w.answered == w.sent, "{w:?}");
    assert!(w.gap_ms.is_some_and(|g| g >= 0.5), "{w:?}");
    // An outage of at least 300 ms: the responder gone, then back.
    drop(responder);
    let down = crate::actors::sipp::wall_now();
    std::thread::sleep(Duration::from_millis(300));
    let up = crate::actors::sipp::wall_now();
    let _responder = crate::actors::responder::spawn_udp_responder(&ivr_ns, "ivr1", port)
        .expect("responder again");
    std::thread::sleep(Duration::from_millis(500));
    let w = probe.window(down - 0.1, up + 0.2);
    assert!(w.lost > 0 && w.lost == w.sent - w.answered, "{w:?}");
    assert!(w.gap_ms.is_some_and(|g| g >= 300.0) && !w.gap_open, "{w:?}");
    assert_eq!(probe.lost(t0 + 0.05, t0 + 0.35), 0);
    assert!(probe.gap_ms(down - 0.1, up + 0.2) == w.gap_ms && probe.sent() > 1000);
}
