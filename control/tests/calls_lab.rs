//! Real SIP calls through the hot-standby pair, placed and answered by
//! SIPp: a caller on client:5060 (every call from one socket, as SIPp
//! sends them) to VIP:5060, four IVRs (SIPp UAS on the VIP, RTP echoed on
//! their own addresses, heartbeats to both directors), two `tandemd` with
//! the UDP service `rr` + `sip_persist` (each Call-ID is dispatched on its
//! own and keeps its IVR) and state sync on.
//!
//! - kill -9 of the active mid-way: no call established before the kill
//!   fails, every call placed after the takeover succeeds;
//! - one IVR killed mid-way (SIPp and its heartbeats): only its calls
//!   fail, and once its real server is dead no new call reaches it;
//! - malformed SIP on 5060 (no Call-ID, huge headers, binary garbage,
//!   fragments, a Call-ID split over two TCP segments) beside real calls:
//!   the calls all succeed, the daemon lives, and the dispatcher's reason
//!   counters show each fallback.
//!
//! Asserts on SIPp's own numbers (its statistics, its per-call log lines)
//! and on states, not on times. Each test takes about half a minute, and
//! they take turns ([`lab_turn`]): each runs eight SIPp and two daemons
//! with 10 ms heartbeats, which is what two cores can take.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use serde_json::Value;
use tandem_tests::calls::{self, Ivr};
use tandem_tests::lab::CLIENT;
use tandem_tests::privileged::lab_turn;
use tandem_tests::sipp::{self, CallRecord, CallerOptions, CallerReport};
use tandem_tests::tandemd::{Binaries, Pair, PairOptions, WorkDir, wait_for};
use tandem_tests::{in_netns, spawn_tcp_responder};

const N_IVR: usize = 4;

fn bins() -> Binaries {
    Binaries {
        tandemd: env!("CARGO_BIN_EXE_tandemd").into(),
        tandemctl: env!("CARGO_BIN_EXE_tandemctl").into(),
    }
}

/// The pair's options in these tests: as [`PairOptions::default`], with
/// deadlines of 5 heartbeats (50 ms) as in the other pair lab tests, so
/// that a busy shared machine does not fail a director or an IVR.
fn options() -> PairOptions {
    PairOptions {
        multiplier: 5,
        ..PairOptions::default()
    }
}

/// The pair (a active, b standby in sync) with SIPp on every IVR, every
/// IVR heard by a. Declared in this order, dropped in reverse: IVRs, pair, files.
fn setup(tag: &str, o: &PairOptions) -> (WorkDir, Pair, Vec<Ivr>) {
    let v = sipp::version().expect("SIPp (cargo xtask setup installs sip-tester)");
    eprintln!("{tag}: {v}");
    let dir = WorkDir::new(tag).expect("work dir");
    let pair = Pair::start(N_IVR, o, dir.path(), &bins(), None).expect("pair");
    let ivrs = calls::start_ivrs(&pair.lab, dir.path(), o.ivr_heartbeats, true).expect("IVRs");
    if o.ivr_heartbeats {
        assert!(
            wait_for(Duration::from_secs(10), || calls::reals_alive(
                &pair.a, N_IVR
            )),
            "a does not hear every IVR: {:?}",
            pair.a.reals()
        );
    }
    (dir, pair, ivrs)
}

fn stat(m: &BTreeMap<String, u64>, k: &str) -> u64 {
    m.get(k).copied().unwrap_or(0)
}



/// RTP: each IVR received the RTP of the calls it held (at least half of
/// what their length carries at one packet per 30 ms) and echoed it (not
/// once it was `killed`); an IVR that held no call received none.
fn check_rtp(
    r: &CallerReport,
    ivrs: &[(String, Option<sipp::SippStats>, sipp::RtpCount)],
    duration_ms: u64,
    killed: &[&str],
) -> u64 {
    let per = r.per_ivr();
    let mut total = 0;
    for (name, _, rtp) in ivrs {
        let held = per.get(name).copied().unwrap_or(0);
        let floor = held * duration_ms / sipp::PCAP_PACKET_MS / 2;
        assert!(
            rtp.received >= floor,
            "{name} held {held} calls but received {} RTP packets (< {floor})",
            rtp.received
        );
        if !killed.contains(&name.as_str()) {
            assert!(
                rtp.echoed * 10 >= rtp.received * 9,
                "{name}: RTP received {} but echoed {}",
                rtp.received,
                rtp.echoed
            );
        }
        if held == 0 {
            assert_eq!(rtp.received, 0, "{name} held no call but got RTP");
        }
        total += rtp.received;
    }
    total
}

#[test]
fn privileged_calls_survive_kill9_of_the_active() {
    let Some(_turn) = lab_turn("privileged_calls_survive_kill9_of_the_active") else {
        return;
    };
    let o = options();
    let (dir, mut pair, mut ivrs) = setup("calls-kill9", &o);
    // 200 calls at 20/s, 4 s each: about 80 in progress at any time.
    let co = CallerOptions::new(20, 200, 4000);
    let caller = calls::start_caller(&pair.lab, dir.path(), &co).expect("caller");
    std::thread::sleep(Duration::from_secs(5));
    // Kill when no call was established in the last 15 ms: every call
    // established so far has had time to reach b (sync lag p99 ≈ 7 ms).
    // (`tandem-bench calls` kills at random instants and counts what that
    // loses.)
    assert!(
        caller.wait_quiet(Duration::from_millis(15), Duration::from_secs(3)),
        "no quiet moment between call setups"
    );
    let t_kill = sipp::wall_now();
    pair.a.kill9();
    assert!(
        wait_for(Duration::from_secs(5), || pair.b.state().as_deref()
            == Some("active")),
        "b did not take over:\n{}",
        pair.b.log_text()
    );
    let t_active = sipp::wall_now();
    let r = caller.wait().expect("caller report");
    let b_stats = pair.b.stats();
    let per_ivr = calls::stop_ivrs(&mut ivrs);
    eprintln!("caller: {} (exit {:?})", r.stats.summary(), r.exit_code);
    eprintln!("{}", calls::per_ivr_table(&r, &per_ivr));
    eprintln!("b's dispatcher after the takeover: {b_stats:?}");

    r.assert_consistent(200);
    let before: Vec<&CallRecord> = r
        .calls
        .iter()
        .filter(|c| c.established_before(t_kill))
        .collect();
    let after: Vec<&CallRecord> = r
        .calls
        .iter()
        .filter(|c| c.started_after(t_active))
        .collect();
    eprintln!(
        "established before the kill: {}, placed after the takeover: {} (b active {:.1} ms after the kill), failed in all: {}",
        before.len(),
        after.len(),
        (t_active - t_kill) * 1000.0,
        r.stats.failed()
    );
    for c in r.failed_calls() {
        eprintln!("  failed: {} (kill at {t_kill:.6})", c.show());
    }
    assert!(
        before.len() >= 50,
        "the kill was not mid-way: {} calls established before it",
        before.len()
    );
    assert!(
        after.len() >= 50,
        "only {} calls placed after the takeover",
        after.len()
    );
    let lost: Vec<String> = before
        .iter()
        .filter(|c| !c.succeeded())
        .map(|c| c.show())
        .collect();
    assert!(
        lost.is_empty(),
        "{} calls established before the kill failed:\n{}\n{}\nb: {}",
        lost.len(),
        lost.join("\n"),
        r.errors,
        pair.b.log_text()
    );
    let late: Vec<String> = after
        .iter()
        .filter(|c| !c.succeeded())
        .map(|c| c.show())
        .collect();
    assert!(
        late.is_empty(),
        "calls placed after the takeover failed:\n{}\n{}",
        late.join("\n"),
        r.errors
    );
    // Every call from one socket, spread by Call-ID: each IVR held its share.
    for (name, n) in r.per_ivr() {
        assert!(
            n >= 25,
            "{name} held only {n} of 200 calls: {:?}",
            r.per_ivr()
        );
    }
    assert_eq!(r.per_ivr().len(), N_IVR, "{:?}", r.per_ivr());
    // b routed the in-dialog requests of the calls it inherited by their
    // synced Call-IDs.
    assert!(stat(&b_stats, "sip_callid_hit") > 0, "{b_stats:?}");
    // RTP reached the IVRs, and never crossed a director: b forwarded
    // about a handful of SIP messages per call, far fewer than the RTP.
    let rtp = check_rtp(&r, &per_ivr, co.duration_ms, &[]);
    let fwd = stat(&b_stats, "forward_dr");
    assert!(
        fwd < 200 * 8 && rtp > 10 * fwd,
        "b forwarded {fwd} packets, IVRs received {rtp} RTP packets"
    );
}

#[test]
fn privileged_calls_of_a_killed_ivr_fail_and_no_new_call_reaches_it() {
    let Some(_turn) = lab_turn("privileged_calls_of_a_killed_ivr_fail_and_no_new_call_reaches_it")
    else {
        return;
    };
    let o = options();
    let (dir, pair, mut ivrs) = setup("calls-ivr", &o);
    let co = CallerOptions::new(20, 200, 4000);
    let caller = calls::start_caller(&pair.lab, dir.path(), &co).expect("caller");
    std::thread::sleep(Duration::from_secs(5));
    let victim = 1;
    let (dead_name, dead_addr) = (ivrs[victim].name.clone(), ivrs[victim].addr);
    let t_kill = sipp::wall_now();
    ivrs[victim].kill();
    // Its heartbeats stopped with it: a marks its real server dead.
    let mut new_at_dead = None;
    assert!(
        wait_for(Duration::from_secs(5), || {
            let r = pair.a.udp_real(dead_addr);
            let dead = r
                .as_ref()
                .and_then(|r| r.get("health"))
                .and_then(Value::as_str)
                == Some("dead");
            if dead {
                new_at_dead = r
                    .as_ref()
                    .and_then(|r| r.get("new_flows"))
                    .and_then(Value::as_u64);
            }
            dead
        }),
        "{dead_name} not marked dead: {:?}\n{}",
        pair.a.reals(),
        pair.a.log_text()
    );
    let t_dead = sipp::wall_now();
    let new_at_dead = new_at_dead.expect("new_flows of the dead IVR");
    let r = caller.wait().expect("caller report");
    let new_at_end = pair
        .a
        .udp_real(dead_addr)
        .and_then(|r| r.get("new_flows").and_then(Value::as_u64))
        .expect("the dead IVR's real server");
    let per_ivr = calls::stop_ivrs(&mut ivrs);
    eprintln!("caller: {} (exit {:?})", r.stats.summary(), r.exit_code);
    eprintln!("{}", calls::per_ivr_table(&r, &per_ivr));
    eprintln!(
        "{dead_name}: new calls scheduled to it when marked dead {new_at_dead}, at the end {new_at_end}"
    );

    r.assert_consistent(200);
    assert_eq!(
        pair.a.state().as_deref(),
        Some("active"),
        "an IVR's death moved the pair:\n{}",
        pair.a.log_text()
    );
    // Its calls fail, honestly; no other call does.
    let failed = r.failed_calls();
    assert!(
        !failed.is_empty(),
        "{dead_name} held calls when it died, and none failed?"
    );
    for c in &failed {
        match c.ivr.as_deref() {
            Some(i) => assert_eq!(
                i,
                dead_name,
                "a call on a live IVR failed: {}\n{}",
                c.show(),
                r.errors
            ),
            // Never answered: its INVITE went to the IVR as it died.
            None => assert!(
                c.started.is_some_and(|s| s <= t_dead),
                "a call placed after {dead_name} was marked dead failed unanswered: {}",
                c.show()
            ),
        }
    }
    let on_dead_before: usize = r
        .calls
        .iter()
        .filter(|c| c.ivr.as_deref() == Some(&dead_name) && c.established_before(t_kill))
        .count();
    assert!(
        failed.len() <= on_dead_before + 20,
        "{} failed, {dead_name} held {on_dead_before}",
        failed.len()
    );
    // After the heartbeat deadline no new call goes to the dead IVR: the
    // dispatcher scheduled none to it, and every call placed since went
    // elsewhere and succeeded.
    assert_eq!(
        new_at_end, new_at_dead,
        "new calls were scheduled to {dead_name} after it was marked dead"
    );
    let after: Vec<&CallRecord> = r.calls.iter().filter(|c| c.started_after(t_dead)).collect();
    assert!(
        after.len() >= 50,
        "only {} calls placed after the IVR was marked dead",
        after.len()
    );
    for c in &after {
        assert!(
            c.succeeded() && c.ivr.as_deref() != Some(&dead_name),
            "{}",
            c.show()
        );
    }
    check_rtp(&r, &per_ivr, co.duration_ms, &[&dead_name]);
}

/// One UDP datagram from `port` in the client to VIP:5060.
fn send_udp(ns: &str, vip: Ipv4Addr, port: u16, payload: &[u8]) {
    in_netns(ns, || {
        let s = UdpSocket::bind(("0.0.0.0", port)).expect("bind");
        let _ = s.send_to(payload, (vip, 5060));
    });
}

/// A SIP request over TCP to VIP:5060 in two segments (split at `at`),
/// 50 ms apart; the IVR's TCP responder's answer.
fn send_tcp_split(ns: &str, vip: Ipv4Addr, msg: &[u8], at: usize) -> Vec<u8> {
    in_netns(ns, || {
        let mut s = TcpStream::connect_timeout(
            &SocketAddr::new(IpAddr::V4(vip), 5060),
            Duration::from_secs(2),
        )
        .expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        s.write_all(&msg[..at]).expect("first segment");
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(&msg[at..]).expect("second segment");
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    })
}

fn sip_request(method: &str, call_id: Option<&str>, pad: usize) -> Vec<u8> {
    let mut m = format!(
        "{method} sip:ivr@198.18.0.100 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.0.10:5999;branch=z9hG4bKjunk\r\nFrom: <sip:junk@198.18.0.10>;tag=j\r\nTo: <sip:ivr@198.18.0.100>\r\n"
    );
    if pad > 0 {
        m.push_str(&format!("X-Pad: {}\r\n", "p".repeat(pad)));
    }
    if let Some(id) = call_id {
        m.push_str(&format!("Call-ID: {id}\r\n"));
    }
    m.push_str("CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    m.into_bytes()
}

#[test]
fn privileged_calls_go_through_beside_malformed_sip() {
    let Some(_turn) = lab_turn("privileged_calls_go_through_beside_malformed_sip") else {
        return;
    };
    let o = PairOptions {
        tcp_service: true,
        ..options()
    };
    let (dir, mut pair, mut ivrs) = setup("calls-junk", &o);
    // SIP over TCP is answered by a responder on each IVR (SIPp listens on UDP).
    let _tcp: Vec<_> = pair
        .lab
        .ivrs()
        .iter()
        .map(|h| spawn_tcp_responder(&h.ns, &h.name, 5060).expect("TCP responder"))
        .collect();
    let before = pair.a.stats();
    let co = CallerOptions::new(20, 100, 2000);
    let caller = calls::start_caller(&pair.lab, dir.path(), &co).expect("caller");
    std::thread::sleep(Duration::from_secs(1));
    let client = pair.lab.ns(CLIENT).expect("client").to_string();
    let vip = pair.lab.vip();
    let mut port = 41000;
    let mut udp = |p: &[u8]| {
        port += 1;
        send_udp(&client, vip, port, p);
    };
    let mut sent = BTreeMap::new();
    for i in 0..20u8 {
        // No Call-ID at all.
        udp(&sip_request("OPTIONS", None, 0));
        // Huge headers: the Call-ID lies beyond the scanned window.
        udp(&sip_request("OPTIONS", Some("huge@junk"), 1200));
        // Binary garbage, and a SIP-looking start with a NUL in it.
        let garbage: Vec<u8> = (0..300u32)
            .map(|k| (k as u8).wrapping_mul(37).wrapping_add(i))
            .collect();
        udp(&garbage);
        udp(b"INVITE\0 sip:x SIP/2.0\r\nCall-ID: nul\r\n\r\n");
        // Cut off: the Call-ID's line never ends.
        udp(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: cut-off-here");
        // A CRLF keepalive and an empty datagram.
        udp(b"\r\n\r\n");
        udp(b"");
        std::thread::sleep(Duration::from_millis(50));
    }
    *sent.entry("udp without a usable Call-ID").or_insert(0) += 20 * 7;
    // Larger than the MTU: IP fragments, passed to the stack.
    for _ in 0..5 {
        udp(&sip_request("OPTIONS", Some("frag@junk"), 3000));
    }
    // SIP over TCP: a Call-ID split over two segments (not seen), and one
    // in a single segment (learned for the UDP service).
    let split = sip_request("OPTIONS", Some("split-across-segments@junk"), 0);
    let at = split
        .windows(7)
        .position(|w| w == b"Call-ID")
        .expect("Call-ID")
        + 4;
    let a1 = send_tcp_split(&client, vip, &split, at);
    let whole = sip_request("OPTIONS", Some("whole-segment@junk"), 0);
    let a2 = send_tcp_split(&client, vip, &whole, whole.len() - 2);
    let r = caller.wait().expect("caller report");
    let after = pair.a.stats();
    let delta = |k: &str| stat(&after, k).saturating_sub(stat(&before, k));
    let per_ivr = calls::stop_ivrs(&mut ivrs);
    eprintln!("caller: {} (exit {:?})", r.stats.summary(), r.exit_code);
    eprintln!("{}", calls::per_ivr_table(&r, &per_ivr));
    let keys = [
        "sip_callid_new",
        "sip_callid_hit",
        "sip_no_callid",
        "sip_callid_learned",
        "ipv4_fragment",
        "forward_dr",
        "bad_udp_length",
        "no_real",
    ];
    let shown: Vec<String> = keys.iter().map(|k| format!("{k} +{}", delta(k))).collect();
    eprintln!("a's dispatcher during the test: {}", shown.join(", "));
    eprintln!(
        "TCP answers: {:?} / {:?}",
        String::from_utf8_lossy(&a1).split_whitespace().next(),
        String::from_utf8_lossy(&a2).split_whitespace().next()
    );

    // The calls were not disturbed.
    r.assert_consistent(100);
    assert_eq!(r.stats.failed(), 0, "{}\n{}", r.stats.summary(), r.errors);
    // Nothing crashed: the daemon, the pair, every IVR.
    assert!(pair.a.running(), "tandemd a died:\n{}", pair.a.log_text());
    let states = (pair.a.state(), pair.b.state());
    assert_eq!(
        (states.0.as_deref(), states.1.as_deref()),
        (Some("active"), Some("standby")),
        "a:\n{}\nb:\n{}",
        pair.a.log_text(),
        pair.b.log_text()
    );
    for (name, st, _) in &per_ivr {
        assert!(st.is_some(), "{name}: no SIPp statistics");
    }
    // The fallbacks are counted: every UDP datagram without a usable
    // Call-ID took the connection-table path (140), and over TCP both
    // halves of the split Call-ID and the lone CRLF after the whole one
    // were segments without one (3).
    assert!(
        delta("sip_no_callid") >= 140 + 3,
        "sip_no_callid +{} for {sent:?}",
        delta("sip_no_callid")
    );
    assert!(
        delta("ipv4_fragment") >= 5,
        "fragments +{}",
        delta("ipv4_fragment")
    );
    assert!(
        delta("sip_callid_learned") >= 1,
        "the whole-segment Call-ID over TCP was not learned"
    );
    assert!(
        delta("sip_callid_new") >= 100,
        "new calls +{}",
        delta("sip_callid_new")
    );
    assert_eq!(delta("no_real"), 0);
    // Both TCP requests were answered by an IVR (the split one too).
    assert!(
        String::from_utf8_lossy(&a1).starts_with("ivr"),
        "{:?}",
        String::from_utf8_lossy(&a1)
    );
    assert!(
        String::from_utf8_lossy(&a2).starts_with("ivr"),
        "{:?}",
        String::from_utf8_lossy(&a2)
    );
}
