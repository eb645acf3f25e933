//! Nobody on the wire can take the standby's place on the sync port (issue
//! 11, findings 1 and 2), in a pair lab with sync on: a active and
//! publishing, b standby and in sync.
//!
//! - A captured Hello replayed to the active's sync port, from the
//!   standby's own address (the hardest place: the peer filter lets it
//!   through to the handshake), gets no state frame and is closed within
//!   the handshake's budget; the real standby's session stays up. Replayed
//!   are the Hello of the protocol before the handshake (what the issue
//!   captured: it used to get the whole snapshot and evict the standby),
//!   and a genuine Init followed by the Confirm of an earlier handshake.
//! - 1,000 bare connects per second for 10 s to the active's sync port,
//!   from the client network and from the standby's address, leave the
//!   standby's session untouched (no close or reconnect in its status or
//!   events); the active counts them (refused, or failed before
//!   authenticating).
//!
//! `TANDEMD` runs the tests against another daemon (an older build). Each
//! needs root and network namespaces, and skips with a printed reason
//! otherwise.

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use tandem_common::heartbeat::{Key, siphash24};
use tandem_control::{
    admin::SyncReply,
    events::Event,
    sync::{
        session::{HANDSHAKE_TIMEOUT, Handshake},
        wire::{Nonce, SyncKey},
    },
};
use tandem_tests::{
    in_netns,
    lab::{CLIENT, DIRECTOR_A_ADDR},
    require_privileged,
    tandemd::{self, Binaries, Director, Pair, PairOptions, WorkDir, wait_for},
};

const SYNC_PORT: u16 = 8848;
const A_ID: u32 = 1;
const B_ID: u32 = 2;
/// Frame kinds that carry or describe state (Hello and the snapshot and
/// delta kinds, in both protocols): none may reach an unauthenticated peer.
const STATE_KINDS: std::ops::RangeInclusive<u8> = 1..=7;

fn bins() -> Binaries {
    Binaries {
        tandemd: std::env::var_os("TANDEMD")
            .map_or_else(|| env!("CARGO_BIN_EXE_tandemd").into(), Into::into),
        tandemctl: env!("CARGO_BIN_EXE_tandemctl").into(),
    }
}

fn sync_addr() -> SocketAddr {
    SocketAddr::new(DIRECTOR_A_ADDR.into(), SYNC_PORT)
}

/// A pair with sync on, settled: a active, b standby in sync.
fn pair(tag: &str) -> (WorkDir, Pair) {
    let dir = WorkDir::new(tag).expect("work dir");
    let o = PairOptions {
        multiplier: 5,
        ivr_heartbeats: false,
        ..PairOptions::default()
    };
    let pair = Pair::start(2, &o, dir.path(), &bins(), None).expect("pair lab");
    (dir, pair)
}

fn sync_status(d: &Director) -> SyncReply {
    d.sync_status()
        .unwrap_or_else(|| panic!("{} does not answer `sync`", d.name))
}

fn last_seq(d: &Director) -> u64 {
    d.events(0).last().map_or(0, |e| e.seq)
}

/// Sync connections opened or closed on `d` after event `after`.
fn sync_churn(d: &Director, after: u64) -> Vec<String> {
    d.events(after)
        .into_iter()
        .filter_map(|e| match e.event {
            Event::SyncClosed { peer, why } => Some(format!("{} closed {peer}: {why}", d.name)),
            Event::SyncConnected { peer, dialed } => {
                Some(format!("{} connected {peer} (dialed {dialed})", d.name))
            }
            _ => None,
        })
        .collect()
}

/// The Hello of sync protocol 1 (no handshake, SipHash MAC under the
/// heartbeat key) a standby sent: what the issue captured and replayed.
fn protocol_1_hello() -> Vec<u8> {
    let mut f = b"TSYN".to_vec();
    f.push(1); // version
    f.push(1); // Hello
    f.extend_from_slice(&0u16.to_be_bytes());
    f.extend_from_slice(&B_ID.to_be_bytes());
    f.extend_from_slice(&32u32.to_be_bytes());
    f.extend_from_slice(&0u64.to_be_bytes()); // epoch
    f.extend_from_slice(&0u64.to_be_bytes()); // last sequence held
    f.extend_from_slice(&1u16.to_be_bytes()); // protocol 1
    f.push(2); // subscriber
    f.push(0);
    f.extend_from_slice(&65536u32.to_be_bytes());
    f.extend_from_slice(&0u64.to_be_bytes()); // stream
    f.extend_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes()); // nonce
    f.extend_from_slice(&0u64.to_be_bytes()); // received
    let mac = siphash24(&Key::from_bytes(&tandemd::key()), &f);
    f.extend_from_slice(&mac.to_le_bytes());
    f
}

/// A whole handshake of an earlier connection, as recorded off the wire:
/// the standby's Init and its Confirm (over that connection's publisher
/// nonce). Made here with the pair's sync key, as the real standby would.
fn recorded_handshake() -> (Vec<u8>, Vec<u8>) {
    let keys = SyncKey::new(tandemd::sync_key()).handshake_keys();
    let now = Instant::now();
    let mut s = Handshake::subscriber(
        B_ID,
        0,
        keys.clone(),
        Nonce::new([0x5a; 32]),
        now,
        HANDSHAKE_TIMEOUT,
    );
    let mut p = Handshake::publisher(
        A_ID,
        0,
        keys,
        Nonce::new([0xa5; 32]),
        now,
        HANDSHAKE_TIMEOUT,
    );
    let init = s.poll_transmit().expect("an init");
    p.handle_frame(&init, now).expect("init");
    s.handle_frame(&p.poll_transmit().expect("a reply"), now)
        .expect("reply");
    let confirm = s.poll_transmit().expect("a confirm");
    p.handle_frame(&confirm, now)
        .expect("the recorded handshake completes");
    (init, confirm)
}

/// The kinds of the frames in `bytes` (either protocol's layout: a
/// 32-byte header, the body, an 8-byte MAC in version 1, a 16-byte tag in
/// version 2), as far as they parse.
fn frame_kinds(mut bytes: &[u8]) -> Vec<u8> {
    let mut kinds = Vec::new();
    while bytes.len() >= 32 && &bytes[..4] == b"TSYN" {
        kinds.push(bytes[5]);
        let body = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
        let tag = if bytes[4] == 1 { 8 } else { 16 };
        let len = (32 + body + tag).min(bytes.len());
        bytes = &bytes[len..];
    }
    kinds
}

/// What an attacker connected from `ns` gets for sending `frames`: every
/// byte until the daemon closes (or 4 s pass), and how long that took.
fn replay(ns: &str, frames: Vec<Vec<u8>>) -> (Vec<u8>, Duration, bool) {
    in_netns(ns, move || {
        let mut s = TcpStream::connect_timeout(&sync_addr(), Duration::from_secs(1))
            .expect("connect to the sync port");
        let t0 = Instant::now();
        for f in &frames {
            s.write_all(f).expect("send");
            std::thread::sleep(Duration::from_millis(20));
        }
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        let mut closed = false;
        while t0.elapsed() < Duration::from_secs(4) && got.len() < 16 << 20 {
            match s.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        (got, t0.elapsed(), closed)
    })
}

#[test]
fn privileged_lab_a_replayed_hello_gets_nothing_and_evicts_nobody() {
    if !require_privileged("privileged_lab_a_replayed_hello_gets_nothing_and_evicts_nobody") {
        return;
    }
    let (_dir, pair) = pair("sync-replay");
    // A settled session: b in sync, a streaming to it.
    assert!(
        wait_for(Duration::from_secs(10), || sync_status(&pair.a).state
            == "streaming"),
        "a does not stream: {:?}",
        pair.a.sync_status()
    );
    let (a0, b0) = (sync_status(&pair.a), sync_status(&pair.b));
    let (a_mark, b_mark) = (last_seq(&pair.a), last_seq(&pair.b));
    let b_ns = pair.b.ns().to_string();
    let (init, confirm) = recorded_handshake();
    let attempts = [
        ("a protocol-1 Hello", vec![protocol_1_hello()]),
        ("a recorded Init and Confirm", vec![init.clone(), confirm]),
        ("a recorded Init alone", vec![init]),
    ];
    let mut failures = Vec::new();
    for (what, frames) in attempts {
        let (got, took, closed) = replay(&b_ns, frames);
        let kinds = frame_kinds(&got);
        eprintln!(
            "{what}: {} bytes back, frame kinds {kinds:?}, closed {closed} after {took:?}",
            got.len()
        );
        if kinds.iter().any(|k| STATE_KINDS.contains(k)) {
            failures.push(format!(
                "{what}: got {} bytes with state frames (kinds {kinds:?})",
                got.len()
            ));
        }
        if !closed || took > HANDSHAKE_TIMEOUT + Duration::from_secs(1) {
            failures.push(format!(
                "{what}: not closed within the handshake budget (closed {closed}, {took:?})"
            ));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let (a1, b1) = (sync_status(&pair.a), sync_status(&pair.b));
    let churn: Vec<String> = sync_churn(&pair.a, a_mark)
        .into_iter()
        .chain(sync_churn(&pair.b, b_mark))
        .collect();
    if !churn.is_empty() {
        failures.push(format!("the standby's session changed: {churn:?}"));
    }
    if (a1.peer.as_deref(), a1.connections) != (a0.peer.as_deref(), a0.connections)
        || b1.connections != b0.connections
    {
        failures.push(format!(
            "session replaced: a peer {:?} -> {:?}, connections {} -> {}; b connections {} -> {}",
            a0.peer, a1.peer, a0.connections, a1.connections, b0.connections, b1.connections
        ));
    }
    if b1.state != "in sync" {
        failures.push(format!("b is {:?}, not in sync", b1.state));
    }
    let failed = a1.handshake_bad_frames - a0.handshake_bad_frames;
    let bad_proof = a1.handshake_bad_proof - a0.handshake_bad_proof;
    let timeouts = a1.handshake_timeouts - a0.handshake_timeouts;
    eprintln!(
        "a counted: {failed} bad frames, {bad_proof} bad proofs, {timeouts} timeouts; {} accepted",
        a1.accepted - a0.accepted
    );
    if (failed, bad_proof, timeouts) != (1, 1, 1) {
        failures.push(format!("a counted {failed} bad frames, {bad_proof} bad proofs, {timeouts} timeouts, not 1 of each"));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `per_second` bare connects (connect, close) to the sync port from
/// `ns` for `run`; returns how many connected.
fn bare_connects(ns: String, per_second: u32, run: Duration) -> u64 {
    in_netns(&ns, move || {
        let start = Instant::now();
        let total = (per_second as f64 * run.as_secs_f64()) as u64;
        let mut connected = 0;
        for i in 0..total {
            // Paced, bounded in count and time.
            let due = start + Duration::from_secs_f64(i as f64 / per_second as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if start.elapsed() > run + Duration::from_secs(5) {
                break;
            }
            if let Ok(s) = TcpStream::connect_timeout(&sync_addr(), Duration::from_millis(200)) {
                connected += 1;
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        connected
    })
}

#[test]
fn privileged_lab_bare_connects_to_the_sync_port_leave_the_standby_alone() {
    if !require_privileged("privileged_lab_bare_connects_to_the_sync_port_leave_the_standby_alone")
    {
        return;
    }
    let (_dir, pair) = pair("sync-connects");
    assert!(
        wait_for(Duration::from_secs(10), || sync_status(&pair.a).state
            == "streaming"),
        "a does not stream: {:?}",
        pair.a.sync_status()
    );
    let (a0, b0) = (sync_status(&pair.a), sync_status(&pair.b));
    let (a_mark, b_mark) = (last_seq(&pair.a), last_seq(&pair.b));
    let client = pair.lab.ns(CLIENT).expect("client namespace").to_string();
    let b_ns = pair.b.ns().to_string();
    // 1,000 a second in all: half from the client network (not a peer
    // address), half from the standby's own address.
    let run = Duration::from_secs(10);
    let from_client = std::thread::spawn(move || bare_connects(client, 500, run));
    let from_b = std::thread::spawn(move || bare_connects(b_ns, 500, run));
    let (n_client, n_b) = (
        from_client.join().expect("client thread"),
        from_b.join().expect("b thread"),
    );
    eprintln!("bare connects: {n_client} from the client network, {n_b} from b's address");
    // Let the last handshakes time out.
    std::thread::sleep(HANDSHAKE_TIMEOUT + Duration::from_millis(500));
    let (a1, b1) = (sync_status(&pair.a), sync_status(&pair.b));
    let churn: Vec<String> = sync_churn(&pair.a, a_mark)
        .into_iter()
        .chain(sync_churn(&pair.b, b_mark))
        .collect();
    let d = |f: fn(&SyncReply) -> u64| f(&a1) - f(&a0);
    let unauthenticated = d(|s| s.refused)
        + d(|s| s.pending_dropped)
        + d(|s| s.handshake_closed)
        + d(|s| s.handshake_timeouts)
        + d(|s| s.handshake_bad_frames)
        + d(|s| s.handshake_over_budget);
    eprintln!(
        "a: accepted {}, refused {}, closed {}, dropped {}, timeouts {}; churn {churn:?}",
        d(|s| s.accepted),
        d(|s| s.refused),
        d(|s| s.handshake_closed),
        d(|s| s.pending_dropped),
        d(|s| s.handshake_timeouts)
    );
    let mut failures = Vec::new();
    if n_client + n_b < 9_000 {
        failures.push(format!(
            "only {} of 10,000 connects got through",
            n_client + n_b
        ));
    }
    if !churn.is_empty() {
        failures.push(format!(
            "{} session changes, first {:?}",
            churn.len(),
            churn.first()
        ));
    }
    if (a1.peer.as_deref(), a1.connections) != (a0.peer.as_deref(), a0.connections)
        || b1.connections != b0.connections
    {
        failures.push(format!(
            "session replaced: a peer {:?} -> {:?}, connections {} -> {}; b connections {} -> {}",
            a0.peer, a1.peer, a0.connections, a1.connections, b0.connections, b1.connections
        ));
    }
    if b1.state != "in sync" {
        failures.push(format!("b is {:?}, not in sync", b1.state));
    }
    // Every connect is counted, as accepted and as refused or failed.
    if d(|s| s.accepted) < (n_client + n_b) * 9 / 10 || unauthenticated < (n_client + n_b) * 9 / 10
    {
        failures.push(format!(
            "a counted {} accepted and {unauthenticated} unauthenticated of {} connects",
            d(|s| s.accepted),
            n_client + n_b
        ));
    }
    if d(|s| s.refused) < n_client * 9 / 10 {
        failures.push(format!(
            "a refused {} of {n_client} connects from a non-peer address",
            d(|s| s.refused)
        ));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
