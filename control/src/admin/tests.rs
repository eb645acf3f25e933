//! Unit tests of the admin protocol, the server-side framers and budgets,
//! the client's errors and the tables.

use super::*;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

#[test]
fn requests_on_the_wire() {
    let cases = [
        (r#"{"cmd":"status"}"#, Request::Status),
        (r#"{"cmd":"switchover"}"#, Request::Switchover),
        (r#"{"cmd":"services"}"#, Request::Services),
        (r#"{"cmd":"reals"}"#, Request::Reals),
        (
            r#"{"cmd":"maintenance","on":true}"#,
            Request::Maintenance { on: true },
        ),
        (
            r#"{"cmd":"maintenance","on":false}"#,
            Request::Maintenance { on: false },
        ),
    ];
    for (line, req) in cases {
        assert_eq!(serde_json::to_string(&req).expect("encode"), line);
        assert_eq!(parse_request(line).expect("parse"), req);
    }
    let e = parse_request(r#"{"cmd":"reboot"}"#).expect_err("unknown command");
    assert!(
        e.to_string()
            .starts_with(r#"bad request "{\"cmd\":\"reboot\"}": unknown variant `reboot`"#),
        "{e}"
    );
    assert!(parse_request(r#"{"cmd":"maintenance"}"#).is_err());
    assert!(parse_request("status").is_err());
}

#[test]
fn responses_on_the_wire() {
    let r = Response::Done {
        message: "switchover started".into(),
    };
    assert_eq!(
        format_response(&r),
        "{\"reply\":\"done\",\"message\":\"switchover started\"}\n"
    );
    let s = Response::Status(StatusReply {
        node_id: 1,
        state: "active".into(),
        ..Default::default()
    });
    let line = format_response(&s);
    assert!(
        line.starts_with("{\"reply\":\"status\",\"node_id\":1,"),
        "{line}"
    );
    assert_eq!(
        serde_json::from_str::<Response>(line.trim_end()).expect("decode"),
        s
    );
    // Fields a newer daemon may leave out take their defaults.
    let old: Response = serde_json::from_str(r#"{"reply":"status","node_id":2,"state":"standby"}"#)
        .expect("decode");
    assert!(matches!(
        old,
        Response::Status(StatusReply { node_id: 2, .. })
    ));
}

#[test]
fn connection_frames_lines_without_blocking() {
    let (client, server) = UnixStream::pair().expect("pair");
    let mut conn = Connection::new(OwnedFd::from(server)).expect("conn");
    assert!(
        conn.read_requests().expect("read").is_empty(),
        "nothing yet, no block"
    );
    (&client)
        .write_all(b"{\"cmd\":\"status\"}\n\n{\"cmd\":\"maint")
        .expect("write");
    let got = conn.read_requests().expect("read");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].as_ref().ok(), Some(&Request::Status));
    (&client)
        .write_all(b"enance\",\"on\":true}\nbogus\n")
        .expect("write");
    let got = conn.read_requests().expect("read");
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].as_ref().ok(),
        Some(&Request::Maintenance { on: true })
    );
    assert!(got[1].is_err());
    conn.queue(&Response::Done {
        message: "ok".into(),
    });
    assert!(conn.wants_write());
    assert!(conn.flush().expect("flush"));
    let mut line = String::new();
    BufReader::new(&client).read_line(&mut line).expect("read");
    assert_eq!(line, "{\"reply\":\"done\",\"message\":\"ok\"}\n");
    drop(client);
    conn.read_requests().expect("read");
    assert!(conn.is_eof());
}

#[test]
fn connection_refuses_overlong_lines() {
    let (client, server) = UnixStream::pair().expect("pair");
    let mut conn = Connection::new(OwnedFd::from(server)).expect("conn");
    let junk = vec![b'x'; MAX_LINE + 10];
    let writer = std::thread::spawn(move || {
        let _ = (&client).write_all(&junk);
        client
    });
    let mut errors = 0;
    for _ in 0..100 {
        errors += conn
            .read_requests()
            .expect("read")
            .iter()
            .filter(|r| r.is_err())
            .count();
        if errors > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(errors, 1);
    drop(writer.join());
}

#[test]
fn bind_is_root_only_and_replaces_stale_sockets() {
    let dir = std::env::temp_dir().join(format!("tandem-admin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("run").join("tandemd.sock");
    let listener = bind(&path).expect("bind");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A second daemon is refused while the first listens.
    let e = bind(&path).expect_err("in use");
    assert_eq!(
        e.to_string(),
        format!("{} is in use by a running tandemd", path.display())
    );
    // A dead daemon's socket is replaced.
    drop(listener);
    let _again = bind(&path).expect("stale socket replaced");
    // A regular file is never removed.
    let file = dir.join("not-a-socket");
    std::fs::write(&file, b"x").expect("write");
    assert!(matches!(bind(&file), Err(AdminError::NotASocket { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn client_errors_name_the_path() {
    let missing = Path::new("/nonexistent/tandem/tandemd.sock");
    let e = request(missing, &Request::Status, Duration::from_secs(1)).expect_err("no socket");
    assert_eq!(
        e.to_string(),
        "no admin socket at /nonexistent/tandem/tandemd.sock: is tandemd running?"
    );
    let denied = connect_error(
        Path::new("/run/tandem/tandemd.sock"),
        io::ErrorKind::PermissionDenied.into(),
    );
    assert_eq!(
        denied.to_string(),
        "permission denied on /run/tandem/tandemd.sock: the admin socket is root-only (run as root)"
    );
}

#[cfg(feature = "admin-cards")]
#[test]
fn cards_request_on_the_wire() {
    assert_eq!(
        serde_json::to_string(&Request::Cards).expect("encode"),
        CARDS_REQUEST
    );
    assert_eq!(parse_request(CARDS_REQUEST).expect("parse"), Request::Cards);
}

#[test]
fn cards_response_round_trips_and_renders_like_dahdi_tool() {
    let spans = vec![
        SpanStatus {
            card: "/dev/dahdi".into(),
            span: 1,
            name: "CARDSIM/0/1".into(),
            description: "tandem card simulator 0 span 1".into(),
            span_type: "E1".into(),
            alarms: "OK".into(),
            state: "started".into(),
            owned: true,
            fault: false,
            configured_channels: 8,
            total_channels: 8,
            channels: (1..=8)
                .map(|c| ChannelStatus {
                    channel: c,
                    state: if c == 2 { "answered" } else { "idle" }.into(),
                })
                .collect(),
            error: None,
        },
        SpanStatus {
            card: "/dev/dahdi".into(),
            span: 2,
            alarms: "RED|LOS".into(),
            state: "stopped".into(),
            fault: true,
            error: Some("/dev/dahdi/ctl: DAHDI_SPANSTAT failed: ENODEV".into()),
            ..Default::default()
        },
    ];
    let r = Response::Cards {
        spans: spans.clone(),
    };
    let line = format_response(&r);
    assert!(
        line.starts_with(r#"{"reply":"cards","spans":[{"card":"/dev/dahdi","span":1,"#),
        "{line}"
    );
    assert_eq!(
        serde_json::from_str::<Response>(line.trim_end()).expect("decode"),
        r
    );
    let t = render(&r);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "Card /dev/dahdi");
    assert_eq!(
        lines[1],
        "Span Name             Type Alarms           State    Owned Fault Channels"
    );
    assert_eq!(
        lines[2],
        "1    CARDSIM/0/1      E1   OK               started  yes   no         8/8"
    );
    assert_eq!(
        lines[3],
        "      1 idle        2 answered    3 idle        4 idle        5 idle        6 idle"
    );
    assert_eq!(lines[4], "      7 idle        8 idle");
    assert_eq!(
        lines[5],
        "2    -                -    RED|LOS          stopped  no    FAULT      0/0"
    );
    assert_eq!(
        lines[6],
        "     error: /dev/dahdi/ctl: DAHDI_SPANSTAT failed: ENODEV"
    );
    assert_eq!(lines.len(), 7);
    // A second card gets its own heading.
    let mut other = spans[1].clone();
    other.card = "/run/cardsim/b".into();
    let t = render_cards(&[spans[0].clone(), other]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[5], "");
    assert_eq!(lines[6], "Card /run/cardsim/b");
    assert!(lines[7].starts_with("Span Name"), "{t}");
}

#[test]
fn tables_look_like_ipvsadm() {
    let services = vec![ServiceStatus {
        vip: "198.18.0.100".parse().expect("ip"),
        port: 5060,
        protocol: "udp".into(),
        scheduler: "wlc".into(),
        forward: "dr".into(),
        flags: vec!["expire_nodest".into()],
        packets: 10,
        bytes: 1000,
        new_flows: 9,
        reals: vec![RealStatus {
            service: "udp/198.18.0.100:5060".into(),
            address: "198.18.0.21".parse().expect("ip"),
            port: 0,
            weight: 100,
            state: "up".into(),
            health: "alive".into(),
            flows: 3,
            channels: Some(12),
            capacity: Some(30),
            packets: 10,
            bytes: 1000,
            new_flows: 9,
            mac: None,
        }],
    }];
    let t = render_services(&services);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        lines[2],
        "UDP  198.18.0.100:5060                 wlc       expire_nodest"
    );
    assert_eq!(
        lines[3],
        "  -> 198.18.0.21:5060                  Route   100    up       alive   3"
    );
    let t = render_reals(&services[0].reals);
    assert!(t.lines().nth(1).expect("row").contains("12/30"), "{t}");
}

// ---------------------------------------------------------------------------
// Per-connection budgets (sans-IO time: every `now` below is simulated)
// ---------------------------------------------------------------------------

fn admin_pair(now: std::time::Instant) -> (UnixStream, Connection) {
    let (client, server) = UnixStream::pair().expect("pair");
    let conn = Connection::accepted(OwnedFd::from(server), now).expect("conn");
    (client, conn)
}

fn read_line_from(client: &UnixStream) -> String {
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut line = String::new();
    BufReader::new(client).read_line(&mut line).expect("read");
    line
}

#[test]
fn connection_dribbled_bytes_expire_without_a_complete_request() {
    let t0 = std::time::Instant::now();
    let (client, mut conn) = admin_pair(t0);
    assert_eq!(conn.deadline(), t0 + REQUEST_TIMEOUT);
    // One byte every 150 ms: each read takes what is there and returns.
    let mut t = t0;
    for b in br#"{"cmd":"sta"#.iter() {
        (&client).write_all(&[*b]).expect("write");
        t += Duration::from_millis(150);
        assert!(conn.read_requests_at(t).expect("read").is_empty());
        if t < t0 + REQUEST_TIMEOUT {
            assert!(!conn.expired(t), "at {:?}", t - t0);
        }
    }
    // Bytes that arrive do not move the deadline; only a complete request does.
    assert!(conn.expired(t0 + REQUEST_TIMEOUT));
    assert_eq!(conn.deadline(), t0 + REQUEST_TIMEOUT);
    assert!(conn.wants_read());
    assert!(!conn.is_finished());
}

#[test]
fn connection_request_split_across_reads_moves_the_deadline() {
    let t0 = std::time::Instant::now();
    let (client, mut conn) = admin_pair(t0);
    (&client).write_all(br#"{"cmd":"#).expect("write");
    assert!(conn.read_requests_at(t0).expect("read").is_empty());
    (&client).write_all(br#""sync"}"#).expect("write");
    assert!(conn.read_requests_at(t0).expect("read").is_empty());
    let t1 = t0 + Duration::from_millis(600);
    (&client).write_all(b"\n").expect("write");
    let got = conn.read_requests_at(t1).expect("read");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].as_ref().ok(), Some(&Request::Sync));
    // The next request is due a whole REQUEST_TIMEOUT after this one.
    assert_eq!(conn.deadline(), t1 + REQUEST_TIMEOUT);
    assert!(!conn.expired(t0 + REQUEST_TIMEOUT));
    assert!(conn.expired(t1 + REQUEST_TIMEOUT));
    // A blank line is not a request and moves nothing.
    (&client).write_all(b"\n \n").expect("write");
    assert!(
        conn.read_requests_at(t1 + Duration::from_millis(900))
            .expect("read")
            .is_empty()
    );
    assert_eq!(conn.deadline(), t1 + REQUEST_TIMEOUT);
    conn.queue(&Response::Done {
        message: "ok".into(),
    });
    assert!(conn.flush().expect("flush"));
    assert_eq!(
        read_line_from(&client),
        "{\"reply\":\"done\",\"message\":\"ok\"}\n"
    );
}

#[test]
fn connection_overlong_line_is_answered_with_an_error_then_closed() {
    let t0 = std::time::Instant::now();
    let (client, mut conn) = admin_pair(t0);
    // A good request, then a line one byte over the budget, then another
    // request that must not be read.
    let mut bytes = b"{\"cmd\":\"status\"}\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', MAX_LINE + 1));
    bytes.extend_from_slice(b"\n{\"cmd\":\"reals\"}\n");
    let writer = std::thread::spawn(move || {
        let _ = (&client).write_all(&bytes);
        client
    });
    let mut got = Vec::new();
    for _ in 0..200 {
        got.extend(conn.read_requests_at(t0).expect("read"));
        if !conn.wants_read() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let client = writer.join().expect("writer");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].as_ref().ok(), Some(&Request::Status));
    let e = got[1].as_ref().expect_err("over-long");
    assert_eq!(
        e.to_string(),
        format!("bad request \"\": line longer than {MAX_LINE} bytes")
    );
    assert!(!conn.wants_read(), "nothing after the refused line is read");
    assert!(conn.read_requests_at(t0).expect("read").is_empty());
    // The daemon answers both, flushes, and closes.
    conn.queue(&Response::Done {
        message: "status".into(),
    });
    conn.queue(&Response::Error {
        message: e.to_string(),
    });
    assert!(!conn.is_finished(), "answers still to send");
    assert!(conn.flush().expect("flush"));
    assert!(conn.is_finished());
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut reader = BufReader::new(&client);
    let mut line = String::new();
    reader.read_line(&mut line).expect("read");
    assert_eq!(line, "{\"reply\":\"done\",\"message\":\"status\"}\n");
    line.clear();
    reader.read_line(&mut line).expect("read");
    assert!(
        line.starts_with("{\"reply\":\"error\",\"message\":\"bad request"),
        "{line}"
    );
}

#[test]
fn connection_eof_takes_a_last_unterminated_line() {
    let t0 = std::time::Instant::now();
    let (client, mut conn) = admin_pair(t0);
    (&client).write_all(br#"{"cmd":"stats"}"#).expect("write");
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let got = conn.read_requests_at(t0).expect("read");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].as_ref().ok(), Some(&Request::Stats));
    assert!(conn.is_eof());
    assert!(!conn.wants_read());
    assert!(conn.is_finished(), "nothing queued yet");
    conn.queue(&Response::Stats {
        reasons: Vec::new(),
    });
    assert!(!conn.is_finished());
    assert!(conn.flush().expect("flush"));
    assert!(conn.is_finished());
    assert_eq!(
        read_line_from(&client),
        "{\"reply\":\"stats\",\"reasons\":[]}\n"
    );
    // A client that connects and closes: finished with nothing to answer.
    let (client, mut conn) = admin_pair(t0);
    drop(client);
    assert!(conn.read_requests_at(t0).expect("read").is_empty());
    assert!(conn.is_eof() && conn.is_finished());
}

#[test]
fn connection_drops_answers_a_client_does_not_read() {
    let t0 = std::time::Instant::now();
    let (client, mut conn) = admin_pair(t0);
    let size = 1024 * 1024;
    let big = Response::Metrics {
        text: "m".repeat(size),
    };
    let mut queued = 0;
    while !conn.is_finished() && queued < 100 {
        conn.queue(&big);
        queued += 1;
        // The socket takes some; the client reads nothing.
        let _ = conn.flush().expect("flush");
    }
    assert!(conn.is_finished(), "still holding answers after {queued}");
    assert!(!conn.wants_write() && !conn.wants_read());
    assert_eq!(conn.queued(), 0, "what was held is freed");
    assert!(queued > MAX_OUTPUT / size, "gave up after {queued} answers");
    // Nothing more is queued once it gave up.
    conn.queue(&Response::Done {
        message: "late".into(),
    });
    assert!(!conn.wants_write());
    drop(client);
}

#[test]
fn connection_answers_an_error_in_place_of_an_answer_over_the_budget() {
    let t0 = std::time::Instant::now();
    let (client, mut conn) = admin_pair(t0);
    conn.queue(&Response::Metrics {
        text: "m".repeat(MAX_OUTPUT),
    });
    assert!(conn.queued() < 1024, "{} bytes held", conn.queued());
    assert!(conn.flush().expect("flush"));
    let line = read_line_from(&client);
    let answer: Response = serde_json::from_str(line.trim_end()).expect("decode");
    let Response::Error { message } = answer else {
        panic!("{line}");
    };
    assert!(
        message.contains(&format!("over the {MAX_OUTPUT}")),
        "{message}"
    );
}

#[test]
fn answer_deadline_follows_progress_within_the_answer_timeout() {
    use super::server::after_progress;
    let t0 = std::time::Instant::now();
    let cap = t0 + ANSWER_TIMEOUT;
    let d = t0 + REQUEST_TIMEOUT;
    // No byte taken: the deadline stays.
    assert_eq!(
        after_progress(d, 0, t0 + Duration::from_millis(900), cap),
        d
    );
    // Bytes taken: ANSWER_IDLE after them.
    let at = t0 + Duration::from_millis(900);
    assert_eq!(after_progress(d, 1, at, cap), at + ANSWER_IDLE);
    // Never past the cap, and never earlier than it was.
    let late = cap - Duration::from_millis(100);
    assert_eq!(after_progress(late, 4096, late, cap), cap);
    assert_eq!(
        after_progress(cap, 4096, cap + Duration::from_secs(1), cap),
        cap
    );
}

#[test]
fn connection_never_read_expires_after_its_last_progress() {
    let t0 = std::time::Instant::now();
    let (client, mut conn) = admin_pair(t0);
    (&client)
        .write_all(b"{\"cmd\":\"metrics\"}\n")
        .expect("write");
    assert_eq!(conn.read_requests_at(t0).expect("read").len(), 1);
    conn.stop_reading();
    conn.queue(&Response::Metrics {
        text: "m".repeat(4 * 1024 * 1024),
    });
    // The socket takes its buffer's worth, then nothing: the client never reads.
    let first = t0 + Duration::from_millis(100);
    assert!(!conn.flush_at(first).expect("flush"));
    assert_eq!(conn.deadline(), first + ANSWER_IDLE);
    let second = t0 + Duration::from_millis(600);
    assert!(!conn.flush_at(second).expect("flush"));
    assert_eq!(
        conn.deadline(),
        first + ANSWER_IDLE,
        "nothing taken: no later"
    );
    assert!(!conn.expired(first + ANSWER_IDLE - Duration::from_millis(1)));
    assert!(conn.expired(first + ANSWER_IDLE));
    drop(client);
}

// ---------------------------------------------------------------------------
// The metrics endpoint's HTTP framer, over TCP on 127.0.0.1
// ---------------------------------------------------------------------------

fn http_pair(now: std::time::Instant) -> (std::net::TcpStream, HttpConnection) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let client =
        std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    let conn = HttpConnection::accepted(OwnedFd::from(server), now).expect("conn");
    (client, conn)
}

/// Reads until `want` says the bytes read so far are enough, or 5 s.
fn http_read_until(conn: &mut HttpConnection, want: HttpRead) -> HttpRead {
    let stop = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = conn.read_request().expect("read");
        if r == want || std::time::Instant::now() > stop {
            return r;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn http_head_dribbled_and_split_is_complete_only_at_the_blank_line() {
    let t0 = std::time::Instant::now();
    let (mut client, mut conn) = http_pair(t0);
    assert_eq!(
        conn.read_request().expect("read"),
        HttpRead::Pending,
        "nothing yet, no block"
    );
    let head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";
    let (first, last) = head.split_at(head.len() - 1);
    for chunk in first.chunks(7) {
        client.write_all(chunk).expect("write");
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(conn.read_request().expect("read"), HttpRead::Pending);
    }
    assert!(conn.wants_read());
    assert!(!conn.expired(t0 + HTTP_TIMEOUT - Duration::from_millis(1)));
    client.write_all(last).expect("write");
    assert_eq!(
        http_read_until(&mut conn, HttpRead::Complete),
        HttpRead::Complete
    );
    assert!(!conn.wants_read());
    assert!(!conn.is_finished(), "not answered yet");
    // The answer, flushed without blocking; the client gets all of it.
    let body = "tandem_up 1\n# EOF\n";
    let answer = crate::metrics::http_response(body);
    conn.queue(answer.as_bytes());
    assert!(conn.wants_write());
    let stop = std::time::Instant::now() + Duration::from_secs(5);
    while !conn.flush().expect("flush") && std::time::Instant::now() < stop {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(conn.is_finished());
    drop(conn);
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = String::new();
    std::io::Read::read_to_string(&mut client, &mut got).expect("read the answer");
    assert_eq!(got, answer);
}

#[test]
fn http_head_over_the_budget_is_too_large() {
    let t0 = std::time::Instant::now();
    let (mut client, mut conn) = http_pair(t0);
    let mut head = b"GET / HTTP/1.1\r\nX-Junk: ".to_vec();
    head.extend(std::iter::repeat_n(b'j', MAX_HTTP_REQUEST));
    client.write_all(&head).expect("write");
    assert_eq!(
        http_read_until(&mut conn, HttpRead::TooLarge),
        HttpRead::TooLarge
    );
    assert!(!conn.wants_read());
    // It stays so, whatever comes next.
    client.write_all(b"\r\n\r\n").expect("write");
    assert_eq!(conn.read_request().expect("read"), HttpRead::TooLarge);
}

#[test]
fn http_head_ending_exactly_at_the_budget_is_complete() {
    let t0 = std::time::Instant::now();
    let (mut client, mut conn) = http_pair(t0);
    let mut head = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
    head.extend(std::iter::repeat_n(b'p', MAX_HTTP_REQUEST - head.len() - 4));
    head.extend_from_slice(b"\r\n\r\n");
    assert_eq!(head.len(), MAX_HTTP_REQUEST);
    client.write_all(&head).expect("write");
    assert_eq!(
        http_read_until(&mut conn, HttpRead::Complete),
        HttpRead::Complete
    );
}

#[test]
fn http_silent_client_expires_and_eof_before_the_head_is_closed() {
    let t0 = std::time::Instant::now();
    let (client, mut conn) = http_pair(t0);
    assert_eq!(conn.read_request().expect("read"), HttpRead::Pending);
    assert_eq!(conn.deadline(), t0 + HTTP_TIMEOUT);
    assert!(!conn.expired(t0 + HTTP_TIMEOUT - Duration::from_millis(1)));
    assert!(conn.expired(t0 + HTTP_TIMEOUT));
    let (mut client2, mut conn2) = http_pair(t0);
    client2.write_all(b"GET / HTTP/1.0\r\n").expect("write");
    client2
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    assert_eq!(
        http_read_until(&mut conn2, HttpRead::Closed),
        HttpRead::Closed
    );
    assert!(!conn2.wants_read());
    drop(client);
}

#[test]
fn http_answer_deadline_follows_the_clients_progress() {
    let t0 = std::time::Instant::now();
    let (mut client, mut conn) = http_pair(t0);
    client
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("write");
    assert_eq!(
        http_read_until(&mut conn, HttpRead::Complete),
        HttpRead::Complete
    );
    let body = "m".repeat(8 * 1024 * 1024);
    conn.queue(crate::metrics::http_response(&body).as_bytes());
    // Past the head's deadline, the socket still takes bytes: not expired.
    let first = t0 + HTTP_TIMEOUT - Duration::from_millis(10);
    assert!(!conn.flush_at(first).expect("flush"));
    assert_eq!(conn.deadline(), first + ANSWER_IDLE);
    assert!(!conn.expired(t0 + HTTP_TIMEOUT));
    // The client reads nothing more: expired ANSWER_IDLE after the last progress.
    assert!(
        !conn
            .flush_at(first + Duration::from_millis(500))
            .expect("flush")
    );
    assert!(conn.expired(first + ANSWER_IDLE));
    assert!(conn.queued() > 0);
}

/// Issue 13: `[admin] read_group` members read; only root acts.
#[test]
fn only_root_may_act_and_read_group_members_may_read() {
    use super::protocol::authorize;
    for r in [Request::Switchover, Request::Save, Request::Status] {
        assert_eq!(authorize(&r, Some(0)), Ok(()), "root: {r:?}");
    }
    for r in [Request::Status, Request::Services, Request::Metrics, Request::Events { after: 0 }] {
        assert_eq!(authorize(&r, Some(1000)), Ok(()), "a reader: {r:?}");
    }
    for r in [Request::Switchover, Request::ReleaseHold, Request::Maintenance { on: true }, Request::Save] {
        let e = authorize(&r, Some(1000)).expect_err("refused");
        assert!(e.starts_with("permission denied") && e.contains(&format!("`{}`", r.name())) && e.contains("uid 1000"), "{e}");
        assert!(authorize(&r, None).is_err(), "an unknown uid is not root: {r:?}");
    }
}

// ---------------------------------------------------------------------------
// conns, zero, services --rate (issue 13: ipvsadm's views)
// ---------------------------------------------------------------------------

#[test]
fn conns_and_zero_on_the_wire() {
    let cases = [
        (r#"{"cmd":"conns"}"#, Request::Conns { vip: None, real: None, call_id: None, limit: None, after: None }),
        (
            r#"{"cmd":"conns","vip":"198.18.0.100","real":"198.18.0.21","call_id":"a@b","limit":20,"after":{"table":"calls","bucket":4096}}"#,
            Request::Conns {
                vip: Some("198.18.0.100".parse().unwrap()),
                real: Some("198.18.0.21".parse().unwrap()),
                call_id: Some("a@b".into()),
                limit: Some(20),
                after: Some(ConnCursor { table: ConnTable::Calls, bucket: 4096 }),
            },
        ),
        (r#"{"cmd":"zero"}"#, Request::Zero { service: None }),
        (r#"{"cmd":"zero","service":"udp/198.18.0.100:5060"}"#, Request::Zero { service: Some("udp/198.18.0.100:5060".into()) }),
    ];
    for (line, req) in cases {
        assert_eq!(serde_json::to_string(&req).expect("encode"), line);
        assert_eq!(parse_request(line).expect("parse"), req);
    }
    assert!(parse_request(r#"{"cmd":"conns","vip":"not-an-address"}"#).is_err());
    assert!(parse_request(r#"{"cmd":"conns","after":{"table":"nat","bucket":1}}"#).is_err());
    // conns reads; zero acts (root only).
    let conns = Request::Conns { vip: None, real: None, call_id: None, limit: None, after: None };
    assert!(conns.is_read() && authorize(&conns, Some(1000)).is_ok());
    let zero = Request::Zero { service: None };
    assert!(!zero.is_read());
    assert_eq!((conns.name(), zero.name()), ("conns", "zero"));
    assert!(authorize(&zero, Some(0)).is_ok());
    assert!(authorize(&zero, Some(1000)).unwrap_err().contains("`zero` is root's"));
}

fn conn_rows() -> Vec<ConnStatus> {
    vec![
        ConnStatus {
            kind: "flow".into(),
            protocol: "udp".into(),
            client: Some("198.18.0.1:40001".parse().unwrap()),
            vip: "198.18.0.100:5060".parse().unwrap(),
            real: Some("198.18.0.21:5060".parse().unwrap()),
            state: "udp".into(),
            expires_ms: 299_200,
            synced: "to peer".into(),
            service: "udp/198.18.0.100:5060".into(),
            call_id: None,
            call_hash: None,
        },
        ConnStatus {
            kind: "call".into(),
            protocol: "udp".into(),
            client: None,
            vip: "198.18.0.100:5060".parse().unwrap(),
            real: None,
            state: "sip".into(),
            expires_ms: 0,
            synced: "-".into(),
            service: "udp/198.18.0.100:5060".into(),
            call_id: None,
            call_hash: Some(0xdead_beef),
        },
        ConnStatus {
            kind: "call".into(),
            protocol: "tcp".into(),
            client: None,
            vip: "[2001:2::100]:5060".parse().unwrap(),
            real: Some("[2001:2::21]:5060".parse().unwrap()),
            state: "sip_learned".into(),
            expires_ms: 3_600_000,
            synced: "from peer".into(),
            service: "tcp/[2001:2::100]:5060".into(),
            call_id: Some("a84b4c76e66710@pc33".into()),
            call_hash: Some(1),
        },
    ]
}

#[test]
fn conns_table_looks_like_ipvsadm_lnc() {
    assert_eq!(render::expire_text(299_200), "05:00", "rounded up");
    assert_eq!(render::expire_text(59_000), "00:59");
    assert_eq!(render::expire_text(0), "00:00");
    assert_eq!(render::expire_text(3_600_000), "60:00");
    let t = render_conns(&conn_rows(), 3, false);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 4, "{t}");
    assert_eq!(
        lines[0],
        "Pro  Expire State        Source                   Virtual                  Destination              Synced    Call-ID"
    );
    assert_eq!(
        lines[1],
        "UDP  05:00  udp          198.18.0.1:40001         198.18.0.100:5060        198.18.0.21:5060         to peer"
    );
    assert_eq!(
        lines[2],
        "UDP  00:00  sip          -                        198.18.0.100:5060        -                        -         #00000000deadbeef"
    );
    assert_eq!(
        lines[3],
        "TCP  60:00  sip_learned  -                        [2001:2::100]:5060       [2001:2::21]:5060        from peer a84b4c76e66710@pc33"
    );
    let t = render_conns(&conn_rows()[..1], 1_000_000, true);
    assert_eq!(t.lines().last(), Some("(1 of 1000000 matching entries shown: --limit)"));
    // The answer round-trips, its cursor too.
    let r = Response::Conns {
        conns: conn_rows(),
        total: 7,
        truncated: true,
        next: Some(ConnCursor { table: ConnTable::Flows, bucket: 77 }),
    };
    let line = format_response(&r);
    assert!(line.starts_with(r#"{"reply":"conns","conns":[{"kind":"flow""#), "{line}");
    assert!(line.contains(r#""next":{"table":"flows","bucket":77}"#), "{line}");
    assert_eq!(serde_json::from_str::<Response>(line.trim_end()).unwrap(), r);
    assert_eq!(render(&r), render_conns(&conn_rows(), 7, true));
}

#[test]
fn services_answers_carry_the_daemons_clock() {
    let r = Response::Services { services: Vec::new(), taken_ns: 123_456_789 };
    let line = format_response(&r);
    assert_eq!(line, "{\"reply\":\"services\",\"services\":[],\"taken_ns\":123456789}\n");
    // From a daemon that does not send it: 0 (no rates can be computed).
    let old: Response = serde_json::from_str(r#"{"reply":"services","services":[]}"#).unwrap();
    assert_eq!(old, Response::Services { services: Vec::new(), taken_ns: 0 });
}

#[test]
fn service_names_from_what_an_operator_types() {
    assert_eq!(service_name("udp:198.18.0.100:5060").unwrap(), "udp/198.18.0.100:5060");
    assert_eq!(service_name("TCP:198.18.0.100:5061").unwrap(), "tcp/198.18.0.100:5061");
    assert_eq!(service_name("udp/198.18.0.100:5060").unwrap(), "udp/198.18.0.100:5060");
    assert_eq!(service_name("udp:[2001:2::100]:5060").unwrap(), "udp/[2001:2::100]:5060");
    for bad in ["198.18.0.100:5060", "sctp:198.18.0.100:5060", "udp:198.18.0.100", "udp:host:5060", ""] {
        let e = service_name(bad).unwrap_err();
        assert!(e.starts_with(&format!("service {bad:?}: ")), "{e}");
    }
}

#[test]
fn rates_table_looks_like_ipvsadm_rate() {
    use rate::{Rate, RatesReply, RealRate, ServiceRate};
    let r = RatesReply {
        interval_ns: 1_000_400_000,
        services: vec![ServiceRate {
            service: "udp/198.18.0.100:5060".into(),
            vip: "198.18.0.100".parse().unwrap(),
            port: 5060,
            protocol: "udp".into(),
            rate: Rate { cps: 12.4, in_pps: 250.5, out_pps: None, in_bps: 123_456.0, out_bps: None },
            reals: vec![RealRate {
                address: "198.18.0.21".parse().unwrap(),
                port: 0,
                rate: Rate { cps: 6.0, in_pps: 125.0, out_pps: None, in_bps: 61_728.0, out_bps: None },
            }],
        }],
    };
    let t = render_rates(&r);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "Prot LocalAddress:Port                      CPS     InPPS    OutPPS       InBPS      OutBPS");
    assert_eq!(lines[1], "  -> RemoteAddress:Port");
    assert_eq!(lines[2], "UDP  198.18.0.100:5060                       12       250         -      123456           -");
    assert_eq!(lines[3], "  -> 198.18.0.21:5060                         6       125         -       61728           -");
    assert_eq!(lines[4], "(over 1.000 s of tandemd's clock; Out: not counted per service)");
}
