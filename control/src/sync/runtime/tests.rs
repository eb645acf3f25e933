//! The sync runtime on loopback sockets, driven by hand as the daemon's
//! loop drives it: a publisher and a subscriber in sync, then peers that
//! connect and do not authenticate (silent, slow, too talkative, from an
//! address that is not the peer's). None may replace the session; each is
//! counted.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use super::*;

const KEY: [u8; 16] = [7; 16];

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

/// A publisher (node 1) listening on loopback and a subscriber (node 2)
/// dialing it.
fn pair() -> (SyncRuntime, SyncRuntime, SocketAddr) {
    let mut p = SyncRuntime::new(
        1,
        KEY,
        &[loopback()],
        &["127.0.0.1:1".parse().expect("peer")],
    )
    .expect("publisher");
    let addr = p.listeners[0].local_addr().expect("bound");
    let mut s = SyncRuntime::new(2, KEY, &[loopback()], &[addr]).expect("subscriber");
    let now = Instant::now();
    p.become_publisher(1, now);
    s.become_subscriber(1, now);
    (p, s, addr)
}

/// One turn of both loops: accepts, pending handshakes, reads, timers,
/// writes.
fn turn(p: &mut SyncRuntime, s: &mut SyncRuntime) {
    let now = Instant::now();
    while let Ok((stream, _)) = p.listeners[0].accept() {
        p.accepted(OwnedFd::from(stream), now);
    }
    for slot in 0..MAX_PENDING {
        p.on_pending_ready(slot, now);
    }
    for rt in [&mut *p, &mut *s] {
        rt.handle_timeout(now);
        rt.flush(now);
        let _ = rt.on_readable(now);
        rt.flush(now);
    }
}

fn run(p: &mut SyncRuntime, s: &mut SyncRuntime, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        turn(p, s);
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn in_sync() -> (SyncRuntime, SyncRuntime, SocketAddr) {
    let (mut p, mut s, addr) = pair();
    let end = Instant::now() + Duration::from_secs(5);
    while s.status().state != "in sync" || p.status().state != "streaming" {
        assert!(
            Instant::now() < end,
            "no sync: {:?} / {:?}",
            p.status(),
            s.status()
        );
        turn(&mut p, &mut s);
        std::thread::sleep(Duration::from_millis(1));
    }
    (p, s, addr)
}

#[test]
fn a_pair_on_loopback_authenticates_and_syncs() {
    let (mut p, mut s, _) = in_sync();
    let now = Instant::now();
    p.record(
        crate::sync::Record::CallRemoved("call-1@198.18.0.1".into()),
        now,
    );
    run(&mut p, &mut s, Duration::from_millis(50));
    assert_eq!(s.status().last_seq, 1);
    let a = p.auth_counters();
    assert_eq!((a.accepted, a.handshakes, a.refused), (1, 1, 0));
}

#[test]
fn a_hung_up_call_leaves_both_stores_after_its_linger_by_the_publishers_decision() {
    use crate::sync::{CallRecord, CallState, Record};
    let (mut p, mut s, _) = in_sync();
    // Hung up one linger ago (the clock cannot be moved: the records go
    // out on the real one).
    let t0 = Instant::now()
        .checked_sub(ENDED_CALL_LINGER)
        .expect("up for longer than a linger");
    let call = |state| CallRecord {
        id: "bye@198.18.0.1".into(),
        channel: None,
        flow: None,
        ivr: None,
        state,
        created_ms: 1,
        updated_ms: 2,
    };
    p.record(Record::Call(call(CallState::Ringing)), t0);
    p.record(Record::Call(call(CallState::HungUp)), t0);
    run(&mut p, &mut s, Duration::from_millis(50));
    assert_eq!(s.store().calls_len(), 1, "the standby holds the hung-up call");
    assert!(p.linger_ended_calls(t0 + ENDED_CALL_LINGER / 2).is_empty(), "lingering");
    let now = Instant::now();
    assert!(s.linger_ended_calls(now).is_empty(), "a subscriber decides nothing");
    assert_eq!(p.linger_ended_calls(now), vec!["bye@198.18.0.1".to_string()]);
    run(&mut p, &mut s, Duration::from_millis(50));
    assert_eq!((p.store().calls_len(), s.store().calls_len()), (0, 0));
}

#[test]
fn connects_that_do_not_authenticate_replace_nothing_and_are_counted() {
    let (mut p, mut s, addr) = in_sync();
    let before = (p.status().connections, s.status().connections);
    // Ten silent connections: eight wait, the two oldest make room.
    let silent: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    run(&mut p, &mut s, Duration::from_millis(100));
    let a = p.auth_counters();
    assert_eq!((a.accepted, a.pending_dropped), (11, 2), "{a:?}");
    assert_eq!(p.status().pending, MAX_PENDING as u64);
    // One that talks too much before authenticating (a well-formed header
    // announcing a long body, then the body) takes the oldest's slot and
    // is dropped for its bytes.
    let mut talker = TcpStream::connect(addr).expect("connect");
    let mut header = b"TSYN\x02\x08\x00\x00\x00\x00\x00\x02".to_vec();
    header.extend_from_slice(&1500u32.to_be_bytes());
    header.extend_from_slice(&[0; 16]);
    talker.write_all(&header).expect("send");
    talker.write_all(&[0; 1500]).expect("send");
    run(&mut p, &mut s, Duration::from_millis(100));
    let a = p.auth_counters();
    assert_eq!(
        (a.accepted, a.pending_dropped, a.over_budget),
        (12, 3, 1),
        "{a:?}"
    );
    // The rest time out; the session was never touched.
    run(&mut p, &mut s, HANDSHAKE_TIMEOUT_FOR_TESTS);
    let a = p.auth_counters();
    assert_eq!((p.status().pending, a.timeouts), (0, 7), "{a:?}");
    assert_eq!((p.status().connections, s.status().connections), before);
    assert_eq!(s.status().state, "in sync");
    assert_eq!(a.handshakes, 1);
    let events = p.take_events();
    assert!(
        !events.iter().any(|e| matches!(e, Event::Closed { .. })),
        "{events:?}"
    );
    drop(silent);
}

#[test]
fn connects_from_another_address_are_refused_at_once() {
    let (mut p, mut s, addr) = in_sync();
    // 127.0.0.2 is loopback but not the peer's address.
    let sock = socket2_like_bind("127.0.0.2");
    let Some(stream) = sock.and_then(|fd| connect_from(fd, addr)) else {
        eprintln!("skipped: cannot bind 127.0.0.2 here");
        return;
    };
    run(&mut p, &mut s, Duration::from_millis(50));
    let a = p.auth_counters();
    assert_eq!((a.refused, p.status().pending), (1, 0));
    drop(stream);
}

const HANDSHAKE_TIMEOUT_FOR_TESTS: Duration =
    Duration::from_millis(crate::sync::session::HANDSHAKE_TIMEOUT.as_millis() as u64 + 200);

/// A TCP socket bound to `ip` (port chosen by the kernel).
fn socket2_like_bind(ip: &str) -> Option<OwnedFd> {
    use std::os::fd::FromRawFd;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    // SAFETY: plain socket(2); owned right after.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is new and owned by nothing else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sin is a valid sockaddr_in for its size.
    let rc = unsafe {
        libc::bind(
            fd,
            &sin as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    (rc == 0).then_some(owned)
}

fn connect_from(fd: OwnedFd, to: SocketAddr) -> Option<TcpStream> {
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(to) = to else {
        return None;
    };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: to.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(to.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sin is a valid sockaddr_in for its size; a blocking connect
    // on loopback.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            &sin as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    (rc == 0).then(|| TcpStream::from(fd))
}
