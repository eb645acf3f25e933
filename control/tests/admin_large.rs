//! Admin answers of any realistic size (issue 11, finding 8): at the design
//! maximum (64 services × 32 real servers) `services`, `reals` and
//! `metrics` answer far more than the 64 KiB one line used to be allowed.
//!
//! At the unit level, a server thread drives [`admin::Connection`] as the
//! daemon's loop does (non-blocking reads and writes, its deadline checked
//! each turn) against [`admin::request`] and raw clients over the admin
//! socket: an answer of the design maximum and one over 2 MB reach the
//! client whole; a client that reads slowly still gets all of it; one that
//! never reads is dropped at its deadline. In a lab, `tandemctl` asks a
//! running tandemd configured with 64 × 32 for each big answer.

mod large_lab;

use std::{
    io::{self, Read, Write},
    net::{IpAddr, Ipv4Addr},
    os::{
        fd::OwnedFd,
        unix::net::{UnixListener, UnixStream},
    },
    path::PathBuf,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tandem_control::admin::{self, Connection, RealStatus, Request, Response, ServiceStatus};

/// How the server's side of one connection ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The whole answer was written.
    Sent,
    /// Its deadline passed first: dropped, as the daemon drops it.
    Expired,
}

/// A scratch directory with the admin socket in it, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d =
            std::env::temp_dir().join(format!("tandem-admin-large-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        Dir(d)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("admin.sock")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves one connection of `listener` as tandemd's loop does: reads
/// without blocking, answers the first request with `answer`, writes what
/// the socket takes each turn, and drops the connection once its
/// deadline passes. A short sleep stands in for the reactor's poll.
fn serve_one(listener: UnixListener, answer: Response) -> JoinHandle<io::Result<Outcome>> {
    std::thread::spawn(move || {
        let give_up = Instant::now() + Duration::from_secs(30);
        let fd = loop {
            match listener.accept() {
                Ok((s, _)) => break OwnedFd::from(s),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        };
        let mut conn = Connection::new(fd)?;
        while Instant::now() < give_up {
            if conn.is_finished() {
                return Ok(Outcome::Sent);
            }
            if conn.expired(Instant::now()) {
                return Ok(Outcome::Expired);
            }
            if conn.wants_read() && conn.read_requests()?.into_iter().next().is_some() {
                conn.queue(&answer);
                conn.stop_reading();
            }
            if conn.wants_write() {
                conn.flush()?;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the connection neither finished nor expired in 30 s",
        ))
    })
}

fn listen(dir: &Dir) -> UnixListener {
    admin::bind(&dir.socket()).expect("bind the admin socket")
}

/// `services` at the design maximum: 64 services × 32 real servers, with
/// counters of realistic width.
fn design_maximum_services() -> Vec<ServiceStatus> {
    (0..64u32)
        .map(|s| {
            let vip = IpAddr::V4(Ipv4Addr::new(198, 18, 100, s as u8));
            let service = format!("udp/{vip}:5060");
            let reals = (0..32u32)
                .map(|r| RealStatus {
                    service: service.clone(),
                    address: IpAddr::V4(Ipv4Addr::new(198, 18, 1 + s as u8, 10 + r as u8)),
                    port: 5060,
                    weight: 100,
                    state: "up".into(),
                    health: "alive".into(),
                    flows: 123_456,
                    channels: Some(30),
                    capacity: Some(120),
                    packets: 12_345_678_901,
                    bytes: 9_876_543_210_123,
                    new_flows: 1_234_567,
                    mac: Some("02:18:00:00:01:0a".into()),
                })
                .collect();
            ServiceStatus {
                vip,
                port: 5060,
                protocol: "udp".into(),
                scheduler: "wlc".into(),
                forward: "dr".into(),
                flags: vec!["sip_persist".into()],
                packets: 98_765_432_109,
                bytes: 87_654_321_098_765,
                new_flows: 39_506_144,
                reals,
            }
        })
        .collect()
}

/// Metrics text of `len` bytes, in lines like tandemd's.
fn metrics_text(len: usize) -> String {
    let mut text = String::with_capacity(len + 128);
    let mut i = 0u64;
    while text.len() < len {
        text.push_str(&format!(
            "tandem_real_packets_total{{service=\"udp/198.18.100.{}:5060\",real=\"198.18.1.{}:5060\"}} {i}\n",
            i % 64,
            i % 250
        ));
        i += 1;
    }
    text
}

#[test]
fn design_maximum_services_and_reals_reach_the_client_whole() {
    let services = design_maximum_services();
    let reals: Vec<RealStatus> = services
        .iter()
        .flat_map(|s| s.reals.iter().cloned())
        .collect();
    for (tag, answer) in [
        ("services", Response::Services { services, taken_ns: 1 }),
        ("reals", Response::Reals { reals }),
    ] {
        let dir = Dir::new(tag);
        let size = admin::format_response(&answer).len();
        assert!(
            size > 4 * admin::MAX_LINE,
            "{tag}: the design maximum is only {size} bytes"
        );
        let server = serve_one(listen(&dir), answer.clone());
        let req = if tag == "services" {
            Request::Services
        } else {
            Request::Reals
        };
        let got = admin::request(&dir.socket(), &req, Duration::from_secs(10));
        let outcome = server.join().expect("server thread");
        assert!(
            got.as_ref().ok() == Some(&answer),
            "{tag} ({size} bytes): not the answer sent: {:?}",
            got.err()
        );
        assert_eq!(outcome.expect("server"), Outcome::Sent, "{tag}");
    }
}

#[test]
fn answer_over_two_megabytes_reaches_the_client_whole() {
    let dir = Dir::new("2mb");
    let answer = Response::Metrics {
        text: metrics_text(2 * 1024 * 1024),
    };
    let server = serve_one(listen(&dir), answer.clone());
    let got = admin::request(&dir.socket(), &Request::Metrics, Duration::from_secs(10));
    let outcome = server.join().expect("server thread");
    assert!(
        got.as_ref().ok() == Some(&answer),
        "not the answer sent: {:?}",
        got.err()
    );
    assert_eq!(outcome.expect("server"), Outcome::Sent);
}

/// Sends `request` on a raw connection, then reads `chunk` bytes at a time
/// with `pause` between reads until a newline or end of file (at most
/// 60 s). Returns what was read and how long it took.
fn slow_read(socket: &std::path::Path, chunk: usize, pause: Duration) -> (Vec<u8>, Duration) {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"{\"cmd\":\"metrics\"}\n").expect("request");
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; chunk];
    while start.elapsed() < Duration::from_secs(60) && !got.ends_with(b"\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        std::thread::sleep(pause);
    }
    (got, start.elapsed())
}

#[test]
fn a_client_that_reads_slowly_gets_the_whole_answer() {
    let dir = Dir::new("slow");
    let answer = Response::Metrics {
        text: metrics_text(2 * 1024 * 1024),
    };
    let server = serve_one(listen(&dir), answer.clone());
    // 32 KiB every 25 ms: about 1.6 s for the answer, past the 1 s a
    // connection may go without a request, but never idle for long.
    let (got, took) = slow_read(&dir.socket(), 32 * 1024, Duration::from_millis(25));
    let outcome = server.join().expect("server thread");
    assert!(
        took > admin::REQUEST_TIMEOUT,
        "the slow read took only {took:?}: it does not test a read slower than the request deadline"
    );
    assert!(
        got.ends_with(b"\n"),
        "got {} bytes in {took:?}, without the end of the answer",
        got.len()
    );
    let decoded: Response = serde_json::from_slice(&got).expect("decode the answer");
    assert!(decoded == answer, "not the answer sent");
    assert_eq!(outcome.expect("server"), Outcome::Sent);
}

#[test]
fn a_client_that_never_reads_is_dropped_at_its_deadline() {
    let dir = Dir::new("never");
    let answer = Response::Metrics {
        text: metrics_text(2 * 1024 * 1024),
    };
    let server = serve_one(listen(&dir), answer);
    let mut s = UnixStream::connect(dir.socket()).expect("connect");
    s.write_all(b"{\"cmd\":\"metrics\"}\n").expect("request");
    let asked = Instant::now();
    let outcome = server.join().expect("server thread").expect("server");
    let dropped_after = asked.elapsed();
    assert_eq!(outcome, Outcome::Expired);
    assert!(
        dropped_after < admin::REQUEST_TIMEOUT * 3,
        "dropped only after {dropped_after:?}"
    );
    // What the socket had taken, then end of file: never the whole line.
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !got.ends_with(b"\n"),
        "a client that did not read got the whole answer ({} bytes)",
        got.len()
    );
}

fn tandemctl(socket: &std::path::Path, args: &[&str]) -> std::process::Output {
    let bin =
        std::env::var_os("TANDEMCTL").unwrap_or_else(|| env!("CARGO_BIN_EXE_tandemctl").into());
    std::process::Command::new(bin)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run tandemctl")
}

#[test]
fn tandemctl_reads_every_big_answer_of_a_tandemd_at_the_design_maximum() {
    if !tandem_tests::require_privileged(
        "tandemctl_reads_every_big_answer_of_a_tandemd_at_the_design_maximum",
    ) {
        return;
    }
    let d = large_lab::LargeDaemon::start("admbig");
    let (services, reals) = (large_lab::SERVICES, large_lab::REALS_PER_SERVICE);
    let mut sizes = Vec::new();
    for args in [
        &["services"][..],
        &["reals"],
        &["metrics"],
        &["status"],
        &["--json", "services"],
        &["--json", "reals"],
        &["--json", "metrics"],
        &["--json", "status"],
    ] {
        let asked = Instant::now();
        let out = tandemctl(d.socket(), args);
        let took = asked.elapsed();
        assert!(
            out.status.success(),
            "tandemctl {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        sizes.push(format!(
            "{}: {} bytes in {} ms",
            args.join(" "),
            out.stdout.len(),
            took.as_millis()
        ));
        if args[0] != "--json" {
            continue;
        }
        let answer: Response =
            serde_json::from_slice(&out.stdout).expect("tandemctl --json prints one answer");
        match (args[1], answer) {
            ("services", Response::Services { services: s, .. }) => {
                assert_eq!(s.len(), services);
                assert!(
                    s.iter().all(|s| s.reals.len() == reals),
                    "a service without its {reals} reals"
                );
                // The Flags column: what each service was configured with.
                for s in &s {
                    let i = usize::from(s.port - 5060);
                    assert_eq!(s.flags, large_lab::flags_of(i), "service {i} (port {})", s.port);
                }
            }
            ("reals", Response::Reals { reals: r }) => {
                assert_eq!(r.len(), services * reals);
                // Each is known as its IVR (which sends no heartbeat).
                assert!(
                    r.iter().all(|r| r.health == "dead"),
                    "a real server not matched to its IVR"
                );
            }
            ("metrics", Response::Metrics { text }) => {
                let n = text
                    .lines()
                    .filter(|l| l.starts_with("tandem_real_packets_total{"))
                    .count();
                assert_eq!(
                    n,
                    services * reals,
                    "one real_packets sample per real server"
                );
            }
            ("status", Response::Status(_)) => {}
            (what, other) => panic!("tandemctl --json {what}: {other:?}"),
        }
    }
    // Seen with --nocapture: what the design maximum answers, and how long
    // the daemon took to start answering (the answer is built in one turn
    // of its loop).
    for cmd in ["services", "reals", "metrics", "status"] {
        let mut s = UnixStream::connect(d.socket()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let asked = Instant::now();
        s.write_all(format!("{{\"cmd\":\"{cmd}\"}}\n").as_bytes())
            .expect("request");
        let mut byte = [0u8; 1];
        let first = s
            .read(&mut byte)
            .map_or_else(|e| e.to_string(), |_| format!("{:?}", asked.elapsed()));
        sizes.push(format!("{cmd}: first byte after {first}"));
    }
    eprintln!("tandemd at {services} x {reals}: {}", sizes.join(", "));
}
