//! SIP Call-ID persistence (`FLAG_SIP_PERSIST`): the kernel's scanner
//! against the model's independent reading of the rules; and through
//! `BPF_PROG_TEST_RUN`: calls from one 5-tuple spread and stick, messages
//! without a Call-ID use the connection table, down real servers per
//! `FLAG_EXPIRE_NODEST`, `CALL_EVENTS` and their replay on a standby, and
//! learning from TCP.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use proptest::{prelude::*, test_runner::TestRunner};
use support::*;
use tandem_dataplane::{
    Dataplane, RealState, ServiceConfig,
    common::{
        sip::{MAX_CALLID_LEN, callid_hash, find_call_id},
        *,
    },
    config::Protocol,
    model::{self, Model},
    packet::FrameSpec,
};

/// A SIPp-style request or response (CRLF line ends).
fn sip_msg(start: &str, callid: &str, cseq: &str) -> Vec<u8> {
    format!(
        "{start}\r\n\
         Via: SIP/2.0/UDP 198.19.0.1:5060;branch=z9hG4bK-1-{cseq}\r\n\
         From: sipp <sip:sipp@198.19.0.1:5060>;tag=1SIPpTag001\r\n\
         To: ivr <sip:ivr@198.18.0.100:5060>\r\n\
         Call-ID: {callid}\r\n\
         CSeq: {cseq}\r\n\
         Contact: sip:sipp@198.19.0.1:5060\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn invite(callid: &str) -> Vec<u8> {
    sip_msg("INVITE sip:ivr@198.18.0.100:5060 SIP/2.0", callid, "1 INVITE")
}

fn bye(callid: &str) -> Vec<u8> {
    sip_msg("BYE sip:ivr@198.18.0.100:5060 SIP/2.0", callid, "2 BYE")
}

/// The real server (by its test MAC, `real4`/`real6`) a frame was sent to.
fn real_of(frame: &[u8]) -> u8 {
    assert_eq!(&frame[0..5], &[0x02, 0xaa, 0, 0, 0], "not sent to a real server");
    frame[5] - 10
}

fn sip_service(n: u8, flags: u16) -> ServiceConfig {
    let mut cfg = service(
        IpAddr::V4(VIP4),
        5060,
        Protocol::Udp,
        Scheduler::Rr,
        Forward::Dr,
        (0..n).map(|i| real4(i, 1)).collect(),
    );
    cfg.flags = flags;
    cfg
}

/// Runs a frame through the kernel and the model; they must agree.
fn run(dp: &mut Dataplane, m: &mut Model, frame: &[u8], now: &mut u64) -> (u32, Vec<u8>) {
    *now += 1000;
    let got = dp.test_run(frame).unwrap();
    let (v, out) = m.process(frame, 1, *now);
    assert_eq!(got.verdict, v, "verdict: kernel vs model");
    assert_eq!(got.frame, out, "frame: kernel vs model");
    (got.verdict, got.frame)
}

fn udp(client: IpAddr, sport: u16, payload: &[u8]) -> Vec<u8> {
    FrameSpec::udp(client, sport, IpAddr::V4(VIP4), 5060, payload).build()
}

fn check_tables(dp: &Dataplane, m: &Model) {
    let mut k: Vec<_> = dp.calls().into_iter().map(|(k, v)| (k.service_id, k.hash, v.real_idx, v.flags)).collect();
    let mut mm: Vec<_> = m.calls.iter().map(|(k, v)| (k.service_id, k.hash, v.real_idx, v.flags)).collect();
    k.sort();
    mm.sort();
    assert_eq!(k, mm, "call tables: kernel vs model");
    for r in Reason::ALL {
        assert_eq!(dp.reason(r).unwrap(), m.reason(r), "counter {}", r.name());
    }
    for i in 0..MAX_REAL_SLOTS {
        let (id, slot) = (i / MAX_REALS, i % MAX_REALS);
        let a = m.active_conns(id, slot);
        if a != 0 || id < 2 {
            assert_eq!(dp.active_conns(id, slot).unwrap(), a, "active {id}/{slot}");
        }
    }
}

/// Random SIP-looking messages: a start line (mostly valid), then lines
/// made of header-name pieces, blanks, colons, values and odd bytes, with
/// CRLF, LF, bare CR or no line end, sometimes an empty line.
fn sipish() -> impl Strategy<Value = Vec<u8>> {
    let start = prop_oneof![
        4 => Just(b"INVITE sip:x SIP/2.0".to_vec()),
        2 => Just(b"SIP/2.0 200 OK".to_vec()),
        1 => Just(b"BYE".to_vec()),
        1 => Just(b"invite x".to_vec()),
        1 => Just(b"ABCDEFGHIJKLMNOPQ x".to_vec()),
        1 => Just(b"ABCDEFGHIJKLMNOP x".to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..6),
    ];
    let piece = prop_oneof![
        3 => Just(b"Call-ID".to_vec()),
        4 => Just(b"Call-ID: v1@h".to_vec()),
        2 => Just(b"i:v2 ".to_vec()),
        2 => Just(b"call-id \t:\tv3\t".to_vec()),
        1 => Just(b"call-id".to_vec()),
        1 => Just(b"CALL-ID".to_vec()),
        1 => Just(b"Call-I".to_vec()),
        2 => Just(b"i".to_vec()),
        1 => Just(b"I".to_vec()),
        1 => Just(b"X-Call-ID".to_vec()),
        4 => Just(b":".to_vec()),
        3 => Just(b" ".to_vec()),
        1 => Just(b"\t".to_vec()),
        1 => Just(b"\r".to_vec()),
        3 => Just(b"abc@host".to_vec()),
        1 => Just(b"Via".to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..3),
        1 => prop::collection::vec(Just(b'z'), 100..200),
    ];
    let eol = prop_oneof![
        4 => Just(b"\r\n".to_vec()),
        2 => Just(b"\n".to_vec()),
        1 => Just(b"\r".to_vec()),
        1 => Just(Vec::new()),
    ];
    let line = (prop::collection::vec(piece, 0..6), eol.clone()).prop_map(|(p, e)| [p.concat(), e].concat());
    (start, eol, prop::collection::vec(line, 0..8)).prop_map(|(s, e, lines)| [s, e, lines.concat()].concat())
}

#[test]
fn scanner_agrees_with_the_models_reading_of_the_rules() {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let found = std::cell::Cell::new(0u32);
    runner
        .run(&sipish(), |p| {
            let scanner = find_call_id(&p);
            let lines = model::call_id(&p);
            match (scanner, lines) {
                (None, None) => {}
                (Some(s), Some(t)) => {
                    found.set(found.get() + 1);
                    let keep = &t[..t.len().min(MAX_CALLID_LEN)];
                    prop_assert_eq!(s.as_bytes(), keep);
                    prop_assert_eq!(s.hash, callid_hash(t));
                }
                (s, t) => prop_assert!(false, "scanner {:?} model {:?} for {:?}", s, t.map(|t| t.escape_ascii().to_string()), p.escape_ascii().to_string()),
            }
            Ok(())
        })
        .unwrap();
    let found = found.get();
    eprintln!("scanner vs model: 10000 payloads, {found} with a Call-ID");
    assert!(found > 1000, "only {found} generated payloads held a Call-ID");
    // The window: a Call-ID line that ends past byte SIP_SCAN_LEN.
    let mut m = b"INVITE x SIP/2.0\r\nX: ".to_vec();
    m.resize(1000, b'p');
    m.extend_from_slice(b"\r\nCall-ID: abcdefghijklmnopqrstuvwxyz\r\n");
    assert_eq!(find_call_id(&m), None);
    assert_eq!(model::call_id(&m), None);
}

#[test]
fn privileged_calls_from_one_5tuple_spread_and_stick() {
    if !privileged("privileged_calls_from_one_5tuple_spread_and_stick") {
        return;
    }
    let mut dp = load();
    let mut m = Model::new();
    let mut now = 100 * SEC_NS;
    let img = dp.set_service(&sip_service(5, FLAG_SIP_PERSIST)).unwrap();
    m.apply(&img);
    let id = img.service.id;
    // 50 INVITEs, each its own Call-ID, all from client:5060 (SIPp).
    let mut real_of_call = Vec::new();
    let mut per_real = [0u32; 5];
    for c in 0..50 {
        let (v, out) = run(&mut dp, &mut m, &udp(client4(1), 5060, &invite(&format!("{c}-4242@198.19.0.1"))), &mut now);
        assert_eq!(v, XDP_TX);
        let r = real_of(&out);
        per_real[r as usize] += 1;
        real_of_call.push(r);
    }
    assert_eq!(per_real, [10; 5], "rr spreads the calls evenly");
    assert_eq!(dp.reason(Reason::SipCallIdNew).unwrap(), 50);
    assert!(dp.flows().is_empty(), "calls do not use the connection table");
    assert_eq!(dp.calls().len(), 50);
    assert_eq!((0..5).map(|s| dp.active_conns(id, s).unwrap()).sum::<u64>(), 50);
    // Re-sent and later messages of each call, from other ports and
    // other addresses (another proxy), reach the same real server.
    for c in 0..50u32 {
        for (client, sport) in [(client4(1), 5060), (client4(1), 40000 + c as u16), (client4(200 + c), 5060)] {
            let (v, out) = run(&mut dp, &mut m, &udp(client, sport, &bye(&format!("{c}-4242@198.19.0.1"))), &mut now);
            assert_eq!(v, XDP_TX);
            assert_eq!(real_of(&out), real_of_call[c as usize], "call {c} moved");
        }
    }
    assert_eq!(dp.reason(Reason::SipCallIdHit).unwrap(), 150);
    assert_eq!(dp.reason(Reason::ForwardDr).unwrap(), 200);
    assert_eq!(dp.service_counters(id).unwrap().new_flows, 50);
    // The BYEs ended the calls: no longer active connections of their
    // real servers (a drain waits for this), their entries kept for the
    // answers and retransmissions; a BYE again changes nothing.
    assert_eq!((0..5).map(|s| dp.active_conns(id, s).unwrap()).sum::<u64>(), 0, "a BYE ends the count");
    assert_eq!(dp.calls().len(), 50);
    assert!(dp.calls().iter().all(|(_, v)| v.flags & CALL_COUNTED == 0));
    check_tables(&dp, &m);
    // The compact form and other spellings name the same call.
    let c7 = "7-4242@198.19.0.1".to_string();
    for msg in [
        format!("ACK sip:ivr SIP/2.0\r\ni: {c7}\r\n\r\n"),
        format!("ACK sip:ivr SIP/2.0\ncall-id  :\t{c7} \t\n\n"),
        format!("SIP/2.0 200 OK\r\nCALL-ID:{c7}\r\n\r\n"),
    ] {
        let (_, out) = run(&mut dp, &mut m, &udp(client4(9), 6000, msg.as_bytes()), &mut now);
        assert_eq!(real_of(&out), real_of_call[7], "{msg:?}");
    }
    check_tables(&dp, &m);
}

/// In DR the IVR's BYE goes to the caller directly; the caller's answer
/// to it (a response whose CSeq names BYE) comes back through the VIP and
/// ends the call's count. Other responses do not.
#[test]
fn privileged_the_answer_to_an_ivr_s_bye_ends_the_call_s_count() {
    if !privileged("privileged_the_answer_to_an_ivr_s_bye_ends_the_call_s_count") {
        return;
    }
    let mut dp = load();
    let mut m = Model::new();
    let mut now = 100 * SEC_NS;
    let img = dp.set_service(&sip_service(2, FLAG_SIP_PERSIST)).unwrap();
    m.apply(&img);
    let id = img.service.id;
    let active = |dp: &Dataplane| (0..2).map(|s| dp.active_conns(id, s).unwrap()).sum::<u64>();
    for c in 0..10 {
        run(&mut dp, &mut m, &udp(client4(1), 5060, &invite(&format!("{c}-bye@198.19.0.1"))), &mut now);
    }
    assert_eq!(active(&dp), 10);
    for c in 0..10 {
        let callid = format!("{c}-bye@198.19.0.1");
        // The caller's 200 OK to the IVR's INVITE-time requests changes nothing.
        let (v, _) = run(&mut dp, &mut m, &udp(client4(1), 5060, &sip_msg("SIP/2.0 200 OK", &callid, "1 INVITE")), &mut now);
        assert_eq!(v, XDP_TX);
        if c < 6 {
            let (v, _) = run(&mut dp, &mut m, &udp(client4(1), 5060, &sip_msg("SIP/2.0 200 OK", &callid, "1 BYE")), &mut now);
            assert_eq!(v, XDP_TX, "the answer still reaches the IVR");
        }
    }
    assert_eq!(active(&dp), 4, "six calls ended by the answers to their BYEs");
    // A retransmitted answer, or a request named BYE in a CSeq of another
    // method's line, changes nothing more.
    run(&mut dp, &mut m, &udp(client4(1), 5060, &sip_msg("SIP/2.0 200 OK", "0-bye@198.19.0.1", "1 BYE")), &mut now);
    run(&mut dp, &mut m, &udp(client4(1), 5060, &sip_msg("SIP/2.0 200 OK", "8-bye@198.19.0.1", "1 BYEX")), &mut now);
    run(&mut dp, &mut m, &udp(client4(1), 5060, &sip_msg("INFO sip:ivr SIP/2.0", "9-bye@198.19.0.1", "3 BYE")), &mut now);
    assert_eq!(active(&dp), 4);
    check_tables(&dp, &m);
}

#[test]
fn privileged_messages_without_call_id_use_the_connection_table() {
    if !privileged("privileged_messages_without_call_id_use_the_connection_table") {
        return;
    }
    let mut dp = load();
    let mut m = Model::new();
    let mut now = 100 * SEC_NS;
    let img = dp.set_service(&sip_service(3, FLAG_SIP_PERSIST)).unwrap();
    m.apply(&img);
    let cases: [(&str, &[u8]); 5] = [
        ("rtp-like", b"\x80\x00\x12\x34binary"),
        ("keepalive", b"\r\n\r\n"),
        ("no call-id", b"OPTIONS sip:ivr SIP/2.0\r\nVia: v\r\nCSeq: 1 OPTIONS\r\n\r\n"),
        ("empty", b""),
        ("call-id in the body", b"MESSAGE sip:ivr SIP/2.0\r\nVia: v\r\n\r\nCall-ID: body\r\n"),
    ];
    for (i, (what, payload)) in cases.iter().enumerate() {
        let f = udp(client4(10 + i as u32), 5060, payload);
        let (v, out) = run(&mut dp, &mut m, &f, &mut now);
        assert_eq!(v, XDP_TX, "{what}");
        let first = real_of(&out);
        // The 5-tuple's flow keeps it there.
        for _ in 0..3 {
            let (_, out) = run(&mut dp, &mut m, &f, &mut now);
            assert_eq!(real_of(&out), first, "{what}: flow kept");
        }
    }
    assert_eq!(dp.reason(Reason::SipNoCallId).unwrap(), 20);
    assert_eq!(dp.flows().len(), 5);
    assert!(dp.calls().is_empty());
    check_tables(&dp, &m);
    // A service without the flag on the same port never scans.
    let mut plain = sip_service(2, 0);
    plain.vip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 101));
    m.apply(&dp.set_service(&plain).unwrap());
    let f = FrameSpec::udp(client4(1), 5060, plain.vip, 5060, &invite("x")).build();
    run(&mut dp, &mut m, &f, &mut now);
    assert_eq!(dp.reason(Reason::SipNoCallId).unwrap(), 20);
    assert_eq!(dp.calls().len(), 0);
    check_tables(&dp, &m);
}

#[test]
fn privileged_down_real_servers_keep_or_lose_their_calls_per_expire_nodest() {
    if !privileged("privileged_down_real_servers_keep_or_lose_their_calls_per_expire_nodest") {
        return;
    }
    for expire in [false, true] {
        let mut dp = load();
        let mut m = Model::new();
        let mut now = 100 * SEC_NS;
        let mut cfg = sip_service(2, FLAG_SIP_PERSIST | if expire { FLAG_EXPIRE_NODEST } else { 0 });
        let img = dp.set_service(&cfg).unwrap();
        m.apply(&img);
        dp.set_flow_events(true).unwrap();
        let mut events = dp.take_call_events().unwrap();
        let mut on = [Vec::new(), Vec::new()];
        for c in 0..6 {
            let id = format!("down-{c}");
            let (_, out) = run(&mut dp, &mut m, &udp(client4(1), 5060, &invite(&id)), &mut now);
            on[real_of(&out) as usize].push(id);
        }
        while events.next().is_some() {}
        cfg.reals[0].state = RealState::Down;
        m.apply(&dp.set_service(&cfg).unwrap());
        // (ACKs: a BYE would also end the call's count, and push that.)
        let ack = |id: &str| sip_msg("ACK sip:ivr@198.18.0.100:5060 SIP/2.0", id, "1 ACK");
        for id in &on[0] {
            let (_, out) = run(&mut dp, &mut m, &udp(client4(1), 5060, &ack(id)), &mut now);
            assert_eq!(real_of(&out), if expire { 1 } else { 0 }, "expire_nodest={expire}");
        }
        for id in &on[1] {
            let (_, out) = run(&mut dp, &mut m, &udp(client4(1), 5060, &ack(id)), &mut now);
            assert_eq!(real_of(&out), 1);
        }
        let moved = if expire { 3 } else { 0 };
        assert_eq!(dp.reason(Reason::SipCallIdExpired).unwrap(), moved);
        // Each move: REMOVED then NEW, both with the Call-ID.
        for id in on[0].iter().take(moved as usize) {
            let e1 = events.next().expect("removal pushed");
            let e2 = events.next().expect("new call pushed");
            assert_eq!((e1.kind, e2.kind), (CALL_EVENT_REMOVED, CALL_EVENT_NEW));
            assert_eq!((e1.real_idx, e2.real_idx), (0, 1));
            assert_eq!(e2.callid(), id.as_bytes());
            assert_eq!(e2.hash, callid_hash(id.as_bytes()));
        }
        assert!(events.next().is_none());
        check_tables(&dp, &m);
        // Idle calls expire after the call timeout and are scheduled anew.
        dp.set_settings(&Settings { call_timeout_ns: 10 * SEC_NS, ..Settings::default() }).unwrap();
        m.settings.call_timeout_ns = 10 * SEC_NS;
        dp.age_flows(20 * SEC_NS).unwrap();
        m.age_flows(20 * SEC_NS);
        run(&mut dp, &mut m, &udp(client4(1), 5060, &bye(&on[1][0])), &mut now);
        assert_eq!(dp.reason(Reason::SipCallIdExpired).unwrap(), moved + 1);
        check_tables(&dp, &m);
    }
}

#[test]
fn privileged_call_events_replay_on_a_standby() {
    if !privileged("privileged_call_events_replay_on_a_standby") {
        return;
    }
    let mut active = load();
    let cfg = sip_service(4, FLAG_SIP_PERSIST);
    active.set_service(&cfg).unwrap();
    let mut events = active.take_call_events().unwrap();
    assert!(active.take_call_events().is_none(), "taken once");
    // Off by default.
    active.test_run(&udp(client4(1), 5060, &invite("before-sync"))).unwrap();
    assert!(events.next().is_none());
    active.set_flow_events(true).unwrap();
    let ids: Vec<String> = (0..20).map(|c| format!("{c:08x}-sync@client.example")).collect();
    let mut picked = Vec::new();
    for id in &ids {
        let r = active.test_run(&udp(client4(1), 5060, &invite(id))).unwrap();
        picked.push(real_of(&r.frame));
    }
    let mut pushed = Vec::new();
    while let Some(e) = events.next() {
        pushed.push(e);
    }
    assert_eq!(pushed.len(), 20);
    let sid = active.service(&cfg.key()).unwrap().service.id;
    for (e, id) in pushed.iter().zip(&ids) {
        assert_eq!(e.kind, CALL_EVENT_NEW);
        assert_eq!(e.callid(), id.as_bytes(), "Call-ID text");
        assert_eq!(e.hash, callid_hash(id.as_bytes()), "the host computes the same hash");
        assert_eq!(e.service_id, sid);
        assert!(e.created_ns > 0);
    }
    // A long Call-ID: its first 128 bytes.
    let long = "L".repeat(200);
    active.test_run(&udp(client4(1), 5060, &invite(&long))).unwrap();
    let e = events.next().unwrap();
    assert_eq!((e.len, e.callid()), (128, &long.as_bytes()[..128]));
    assert_eq!(e.hash, callid_hash(long.as_bytes()));
    // Messages of known calls push nothing, but the end of a call: once.
    let ack = sip_msg("ACK sip:ivr@198.18.0.100:5060 SIP/2.0", &ids[1], "1 ACK");
    active.test_run(&udp(client4(2), 5070, &ack)).unwrap();
    assert!(events.next().is_none());
    active.test_run(&udp(client4(2), 5070, &bye(&ids[0]))).unwrap();
    let ended = events.next().expect("the BYE's event");
    assert_eq!((ended.kind, ended.callid(), ended.real_idx), (CALL_EVENT_ENDED, ids[0].as_bytes(), pushed[0].real_idx));
    assert_eq!(ended.created_ns, pushed[0].created_ns);
    active.test_run(&udp(client4(2), 5070, &bye(&ids[0]))).unwrap();
    assert!(events.next().is_none(), "a retransmitted BYE pushes nothing");
    // Its linger over, the ended call goes; a call still counted stays.
    let key0 = CallKey::new(sid, ended.hash);
    assert!(!active.remove_ended_call(&cfg.key(), pushed[1].hash).unwrap(), "still counted");
    assert!(active.call(&CallKey::new(sid, pushed[1].hash)).is_some());
    assert!(active.call(&key0).is_some());
    assert!(active.remove_ended_call(&cfg.key(), ended.hash).unwrap());
    assert!(active.call(&key0).is_none());
    assert!(!active.remove_ended_call(&cfg.key(), ended.hash).unwrap(), "gone already");

    // The standby lists its real servers in another order.
    let mut standby = load();
    let mut scfg = cfg.clone();
    scfg.reals.reverse();
    standby.set_service(&scfg).unwrap();
    let img = active.service(&cfg.key()).unwrap().clone();
    for e in &pushed {
        let (addr, port) = img.slot_ids[e.real_idx as usize].unwrap();
        assert!(standby.upsert_synced_call(&cfg.key(), e.hash, (addr, port), e.created_ns, true).unwrap());
        // Idempotent: a repeat does not count it twice.
        assert!(standby.upsert_synced_call(&cfg.key(), e.hash, (addr, port), e.created_ns, true).unwrap());
    }
    let ssid = standby.service(&scfg.key()).unwrap().service.id;
    let total: u64 = (0..4).map(|s| standby.active_conns(ssid, s).unwrap()).sum();
    assert_eq!(total, 20, "synced calls count as active connections, once");
    // (ACKs: a BYE would end the call's count.)
    for (id, want) in ids.iter().zip(&picked) {
        let ack = sip_msg("ACK sip:ivr@198.18.0.100:5060 SIP/2.0", id, "1 ACK");
        let r = standby.test_run(&udp(client4(77), 5099, &ack)).unwrap();
        assert_eq!(r.verdict, XDP_TX);
        assert_eq!(real_of(&r.frame), *want, "call {id} moved on the standby");
    }
    assert_eq!(standby.reason(Reason::SipCallIdHit).unwrap(), 20);
    assert_eq!(standby.reason(Reason::SipCallIdNew).unwrap(), 0);
    // The ended call: kept, no longer counted (twice: still once).
    let (addr, port) = img.slot_ids[ended.real_idx as usize].unwrap();
    for _ in 0..2 {
        assert!(standby.upsert_synced_call(&cfg.key(), ended.hash, (addr, port), ended.created_ns, false).unwrap());
    }
    let total: u64 = (0..4).map(|s| standby.active_conns(ssid, s).unwrap()).sum();
    assert_eq!(total, 19, "the call the active saw end no longer counts on the standby");
    assert_eq!(standby.call(&CallKey::new(ssid, ended.hash)).map(|v| v.flags & CALL_COUNTED), Some(0));
    // Removal.
    standby.remove_synced_call(&cfg.key(), pushed[1].hash).unwrap();
    assert!(standby.call(&CallKey::new(ssid, pushed[1].hash)).is_none());
    let total: u64 = (0..4).map(|s| standby.active_conns(ssid, s).unwrap()).sum();
    assert_eq!(total, 18);
    // Unknown service or real server: refused.
    let other = ServiceKey::new([9; 16], 9, PROTO_UDP, FAMILY_V6);
    assert!(!standby.upsert_synced_call(&other, 1, (IpAddr::V4(Ipv4Addr::LOCALHOST), 0), 0, true).unwrap());
    assert!(!standby.upsert_synced_call(&cfg.key(), 1, (IpAddr::V4(Ipv4Addr::LOCALHOST), 0), 0, true).unwrap());
    // Removing the service removes its calls and their counts.
    standby.remove_service(&scfg.key()).unwrap();
    assert!(standby.calls().is_empty());
    let total: u64 = (0..4).map(|s| standby.active_conns(ssid, s).unwrap()).sum();
    assert_eq!(total, 0);
}

#[test]
fn privileged_tcp_segments_teach_the_udp_service_their_call_ids() {
    if !privileged("privileged_tcp_segments_teach_the_udp_service_their_call_ids") {
        return;
    }
    let mut dp = load();
    let mut m = Model::new();
    let mut now = 100 * SEC_NS;
    let mut tcp = sip_service(3, FLAG_SIP_PERSIST);
    tcp.proto = Protocol::Tcp;
    tcp.forward = Forward::Nat;
    let mut udp_cfg = sip_service(3, FLAG_SIP_PERSIST);
    udp_cfg.reals.reverse();
    m.apply(&dp.set_service(&tcp).unwrap());
    let uimg = dp.set_service(&udp_cfg).unwrap();
    m.apply(&uimg);
    let uid = uimg.service.id;
    let vip = IpAddr::V4(VIP4);
    let seg = |flags: u8, payload: &[u8]| FrameSpec::tcp(client4(5), 41000, vip, 5060, flags, payload).build();
    let (v, out) = run(&mut dp, &mut m, &seg(0x02, b""), &mut now);
    assert_eq!(v, XDP_TX);
    // NAT: the real server's address is the new destination.
    let conn_real = out[30 + 3] - 10;
    let (_, out2) = run(&mut dp, &mut m, &seg(0x18, &invite("tcp-call-1")), &mut now);
    assert_eq!(out2[33] - 10, conn_real, "the connection keeps its real server");
    assert_eq!(dp.reason(Reason::SipCallIdLearned).unwrap(), 1);
    let c = dp.call(&CallKey::new(uid, callid_hash(b"tcp-call-1"))).expect("learned");
    assert_eq!(c.flags, CALL_COUNTED | CALL_LEARNED);
    assert_eq!(c.real_idx, 2 - conn_real as u32, "the UDP service's slot of the same address");
    // The dialog goes on over UDP, from anywhere: same IVR.
    let (_, out3) = run(&mut dp, &mut m, &udp(client4(99), 5060, &bye("tcp-call-1")), &mut now);
    assert_eq!(real_of(&out3), conn_real);
    assert_eq!(dp.reason(Reason::SipCallIdHit).unwrap(), 1);
    // Segments without a Call-ID: forwarded, counted.
    run(&mut dp, &mut m, &seg(0x18, b"\r\n\r\n"), &mut now);
    run(&mut dp, &mut m, &seg(0x10, b""), &mut now);
    assert_eq!(dp.reason(Reason::SipNoCallId).unwrap(), 1, "an empty ACK is not scanned");
    check_tables(&dp, &m);
    // Without a UDP service with the flag there is nothing to teach.
    let mut plain = udp_cfg.clone();
    plain.flags = 0;
    m.apply(&dp.set_service(&plain).unwrap());
    run(&mut dp, &mut m, &seg(0x18, &invite("tcp-call-2")), &mut now);
    assert_eq!(dp.reason(Reason::SipLearnNoTarget).unwrap(), 1);
    check_tables(&dp, &m);
}

/// Rough cost of the SIP stage (median of single `BPF_PROG_TEST_RUN`s,
/// debug build of the test, release build of the program): run with
/// `--ignored --nocapture`.
#[test]
#[ignore]
fn privileged_sip_stage_cost() {
    if !privileged("privileged_sip_stage_cost") {
        return;
    }
    let mut dp = load();
    dp.set_service(&sip_service(4, FLAG_SIP_PERSIST)).unwrap();
    let mut plain = sip_service(4, 0);
    plain.port = 5070;
    dp.set_service(&plain).unwrap();
    let median = |dp: &mut Dataplane, f: &[u8]| {
        let mut v: Vec<u64> = (0..2000).map(|_| dp.test_run(f).unwrap().duration_ns).collect();
        v.sort();
        v[v.len() / 2]
    };
    let msg = bye("1-4242@198.19.0.1");
    let at = msg.windows(8).position(|w| w == b"Call-ID:").unwrap();
    dp.test_run(&udp(client4(1), 5060, &invite("1-4242@198.19.0.1"))).unwrap();
    let hit = median(&mut dp, &udp(client4(1), 5060, &msg));
    let nocall = median(&mut dp, &udp(client4(1), 5060, b"\r\n\r\n"));
    let f = FrameSpec::udp(client4(1), 5060, IpAddr::V4(VIP4), 5070, &msg).build();
    let flow = median(&mut dp, &f);
    eprintln!(
        "SIP message of {} bytes, Call-ID at byte {at}: call hit {hit} ns, keepalive (no Call-ID, flow) {nocall} ns, same message to a service without the flag (flow hit) {flow} ns",
        msg.len()
    );
}
