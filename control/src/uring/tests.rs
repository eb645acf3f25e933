//! The reactor against a real ring: timer precision, polls, receives,
//! accepts, cancels.

use super::*;
use std::{
    net::UdpSocket,
    os::{fd::AsRawFd, unix::net::UnixListener},
};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn timer_precision_1ms() {
    let mut r = Reactor::new(64).expect("ring");
    let mut late = Vec::new();
    for i in 0..200u64 {
        let deadline = Instant::now() + Duration::from_millis(1);
        r.arm_timeout(i, deadline).expect("arm");
        let c = r
            .submit_and_wait(1, Some(Duration::from_secs(1)))
            .expect("wait");
        let now = Instant::now();
        assert_eq!(c.len(), 1, "timer {i} did not fire within 1 s");
        assert_eq!(c[0].token, i);
        assert_eq!(c[0].kind, OpKind::Timeout);
        assert_eq!(c[0].result.as_ref().ok(), Some(&0));
        late.push(now.saturating_duration_since(deadline));
    }
    late.sort();
    println!(
        "1 ms io_uring timers, 200 runs, lateness: min {:?} p50 {:?} p99 {:?} max {:?}",
        late[0],
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        late[late.len() - 1]
    );
    assert_eq!(r.in_flight(), 0);
}

#[test]
fn timers_fire_in_deadline_order() {
    let mut r = Reactor::new(64).expect("ring");
    let base = Instant::now() + Duration::from_millis(2);
    // Armed out of order; token k fires at base + k × 300 µs.
    let order = [7u64, 2, 9, 0, 5, 1, 8, 3, 6, 4];
    for k in order {
        r.arm_timeout(k, base + Duration::from_micros(300 * k))
            .expect("arm");
    }
    let mut fired = Vec::new();
    let stop = Instant::now() + Duration::from_secs(2);
    while fired.len() < order.len() && Instant::now() < stop {
        for c in r
            .submit_and_wait(1, Some(Duration::from_millis(100)))
            .expect("wait")
        {
            assert!(Instant::now() >= base + Duration::from_micros(300 * c.token));
            fired.push(c.token);
        }
    }
    assert_eq!(fired, (0..10).collect::<Vec<_>>());
}

#[test]
fn rearm_replaces_and_cancel_silences() {
    let mut r = Reactor::new(16).expect("ring");
    let now = Instant::now();
    r.arm_timeout(1, now + Duration::from_millis(30))
        .expect("arm");
    r.arm_timeout(1, now + Duration::from_millis(1))
        .expect("re-arm");
    r.arm_timeout(2, now + Duration::from_millis(5))
        .expect("arm");
    assert!(r.cancel(2).expect("cancel"));
    assert!(!r.cancel(2).expect("cancel again"));
    let mut seen = Vec::new();
    while Instant::now() < now + Duration::from_millis(60) {
        for c in r
            .submit_and_wait(1, Some(Duration::from_millis(10)))
            .expect("wait")
        {
            seen.push((c.token, now.elapsed()));
        }
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, 1);
    assert!(
        seen[0].1 < Duration::from_millis(25),
        "the replaced deadline fired: {seen:?}"
    );
    // A token in flight cannot name a second operation.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    r.recv(3, sock.as_raw_fd(), 16).expect("recv");
    assert!(matches!(
        r.recv(3, sock.as_raw_fd(), 16),
        Err(ReactorError::TokenInUse(3))
    ));
    assert!(matches!(
        r.arm_timeout(3, Instant::now()),
        Err(ReactorError::TokenInUse(3))
    ));
    assert!(matches!(
        r.poll(INTERNAL, 0, 0),
        Err(ReactorError::ReservedToken(_))
    ));
}

#[test]
fn udp_ping_pong_on_loopback() {
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind a");
    let b = UdpSocket::bind("127.0.0.1:0").expect("bind b");
    a.connect(b.local_addr().expect("addr")).expect("connect");
    b.connect(a.local_addr().expect("addr")).expect("connect");
    let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
    const A_RECV: u64 = 1;
    const B_RECV: u64 = 2;
    const A_SEND: u64 = 3;
    const B_SEND: u64 = 4;
    let mut r = Reactor::new(64).expect("ring");
    r.recv(A_RECV, fa, 1500).expect("recv");
    r.recv_from(B_RECV, fb, 1500).expect("recv");
    let rounds = 1000u32;
    let mut rtts = Vec::with_capacity(rounds as usize);
    let mut sent_at = Instant::now();
    r.send(A_SEND, fa, 0u32.to_be_bytes().to_vec())
        .expect("send");
    let stop = Instant::now() + Duration::from_secs(10);
    let mut done = 0u32;
    while done < rounds && Instant::now() < stop {
        for c in r
            .submit_and_wait(1, Some(Duration::from_secs(1)))
            .expect("wait")
        {
            let n = *c.result.as_ref().map_err(|e| e.to_string()).expect("op ok");
            match c.token {
                B_RECV => {
                    assert_eq!(n, 4);
                    assert_eq!(c.from, Some(a.local_addr().expect("addr")));
                    r.recv_from(B_RECV, fb, 1500).expect("re-arm");
                    let mut pong = c.data.clone();
                    pong.reverse();
                    r.send(B_SEND, fb, pong).expect("pong");
                }
                A_RECV => {
                    let mut back = c.data.clone();
                    back.reverse();
                    assert_eq!(back, done.to_be_bytes(), "pong carries the ping reversed");
                    rtts.push(sent_at.elapsed());
                    done += 1;
                    r.recv(A_RECV, fa, 1500).expect("re-arm");
                    sent_at = Instant::now();
                    r.send(A_SEND, fa, done.to_be_bytes().to_vec())
                        .expect("ping");
                }
                A_SEND | B_SEND => assert_eq!(n, 4),
                other => panic!("unexpected token {other}"),
            }
        }
    }
    assert_eq!(done, rounds, "ping-pong stalled");
    rtts.sort();
    println!(
        "UDP ping-pong through io_uring, {rounds} rounds: RTT p50 {:?} p99 {:?}",
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.99)
    );
}

#[test]
fn accept_on_unix_listener() {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!("tandem-uring-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("accept.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind");
    let mut r = Reactor::new(8).expect("ring");
    r.accept(9, listener.as_raw_fd()).expect("accept");
    r.poll(10, listener.as_raw_fd(), libc::POLLIN as u32)
        .expect("poll");
    let mut client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    let mut got = Vec::new();
    let stop = Instant::now() + Duration::from_secs(2);
    while got.len() < 2 && Instant::now() < stop {
        got.extend(
            r.submit_and_wait(1, Some(Duration::from_millis(200)))
                .expect("wait"),
        );
    }
    let accepted = got
        .iter_mut()
        .find(|c| c.token == 9)
        .and_then(|c| c.accepted.take())
        .expect("accepted a connection");
    let mut server = std::os::unix::net::UnixStream::from(accepted);
    server.set_nonblocking(false).expect("blocking");
    client.write_all(b"status\n").expect("write");
    let mut buf = [0u8; 7];
    server.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"status\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_through_signalfd() {
    // Blocked in this thread only, and sent to this thread only, so the
    // test harness's other threads never see it.
    let signals = Signals::termination().expect("signalfd");
    let mut r = Reactor::new(8).expect("ring");
    r.poll(1, signals.fd(), libc::POLLIN as u32).expect("poll");
    assert!(r.submit_and_wait(0, None).expect("submit").is_empty());
    // SAFETY: tgkill to our own thread with a blocked signal.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::gettid(),
            libc::SIGTERM,
        )
    };
    assert_eq!(rc, 0);
    let c = r
        .submit_and_wait(1, Some(Duration::from_secs(2)))
        .expect("wait");
    assert_eq!(c.len(), 1, "no completion for the signalfd");
    let events = *c[0].result.as_ref().expect("poll ok");
    assert!(events & libc::POLLIN as u32 != 0);
    assert_eq!(signals.read().expect("read"), vec![Signal::SIGTERM]);
    assert!(signals.read().expect("read").is_empty());
}

#[test]
fn read_through_ring_and_drop_with_ops_in_flight() {
    let (rx, tx) = nix::unistd::pipe().expect("pipe");
    let mut r = Reactor::new(8).expect("ring");
    r.read(5, rx.as_raw_fd(), 64).expect("read");
    nix::unistd::write(&tx, b"hello").expect("write");
    let c = r
        .submit_and_wait(1, Some(Duration::from_secs(2)))
        .expect("wait");
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].data, b"hello");
    // Left in flight: dropping cancels it and returns promptly.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    r.recv(6, sock.as_raw_fd(), 64).expect("recv");
    r.arm_timeout(7, Instant::now() + Duration::from_secs(60))
        .expect("arm");
    r.submit_and_wait(0, None).expect("submit");
    let t = Instant::now();
    drop(r);
    assert!(
        t.elapsed() < Duration::from_millis(150),
        "drop took {:?}",
        t.elapsed()
    );
}
