//! `tandemctl` and the admin client against a server thread that answers
//! canned data through the daemon's own pieces: the socket from
//! `admin::bind`, accepts and polls in the io_uring reactor, and
//! `admin::Connection` for the lines.

use std::{
    collections::HashMap,
    os::fd::AsRawFd,
    os::unix::{net::UnixListener, process::CommandExt},
    path::{Path, PathBuf},
    process::Command,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tandem_control::{
    admin::{
        self, ConnCursor, ConnStatus, Connection, PathStatus, PeerStatus, RealStatus, Request,
        Response, ServiceStatus, StatusReply, VipStatus, WitnessStatus,
    },
    uring::Reactor,
};
use tandem_tests::privileged::{Need, require};

const ACCEPT: u64 = 0;

fn socket_path(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandemctl-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("tandemd.sock")
}

fn reals() -> Vec<RealStatus> {
    reals_at(0)
}

/// The real servers' counters at the `n`th `services` answer: 500
/// packets, 25 000 bytes and 5 new flows per real server per answer.
fn reals_at(n: u64) -> Vec<RealStatus> {
    ["198.18.0.21", "198.18.0.22"]
        .iter()
        .enumerate()
        .map(|(i, a)| RealStatus {
            service: "udp/198.18.0.100:5060".into(),
            address: a.parse().expect("ip"),
            port: 5060,
            weight: 100,
            state: if i == 0 { "up" } else { "draining" }.into(),
            health: "alive".into(),
            flows: 7 + i as u64,
            channels: Some(12),
            capacity: Some(30),
            packets: 1234 + 500 * n,
            bytes: 567_890 + 25_000 * n,
            new_flows: 40 + 5 * n,
            mac: None,
        })
        .collect()
}

/// `services` answers so far: each is half a second later on the fake
/// daemon's clock, with counters grown in proportion, so that any two
/// give the same rates.
static SERVICES_ASKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Connection-table rows `i`: flows from 198.18.0.1, then SIP dialogs.
fn conn_row(i: u16) -> ConnStatus {
    let call = i >= 3;
    ConnStatus {
        kind: if call { "call" } else { "flow" }.into(),
        protocol: "udp".into(),
        client: (!call).then(|| format!("198.18.0.1:{}", 40000 + i).parse().expect("addr")),
        vip: "198.18.0.100:5060".parse().expect("addr"),
        real: Some(
            format!("198.18.0.{}:5060", 21 + i % 2)
                .parse()
                .expect("addr"),
        ),
        state: if call { "sip" } else { "udp" }.into(),
        expires_ms: 299_000 - u64::from(i) * 1000,
        synced: "to peer".into(),
        service: "udp/198.18.0.100:5060".into(),
        call_id: call.then(|| format!("call-{i}@198.18.0.1")),
        call_hash: call.then_some(u64::from(i)),
    }
}

/// The fake daemon's walk: three entries in the first slice, two in the
/// second (after the cursor of the first).
const FIRST_SLICE: ConnCursor = ConnCursor {
    table: admin::ConnTable::Calls,
    bucket: 512,
};

fn canned(req: &Request) -> Response {
    match req {
        Request::Status => Response::Status(StatusReply {
            node_id: 1,
            node_name: "director-a".into(),
            state: "active".into(),
            epoch: 7,
            priority: 150,
            preempt: true,
            maintenance: false,
            state_ms: 12_345,
            peer: Some(PeerStatus {
                node_id: 2,
                state: "standby".into(),
                epoch: 7,
                priority: 100,
            }),
            paths: vec![
                PathStatus {
                    name: "link".into(),
                    interface: "hb0".into(),
                    up: true,
                    last_heard_ms: Some(1),
                    ..Default::default()
                },
                PathStatus {
                    name: "service".into(),
                    interface: "svc0".into(),
                    up: false,
                    last_heard_ms: None,
                    ..Default::default()
                },
            ],
            vips: vec![VipStatus {
                address: "198.18.0.100".parse().expect("ip"),
                interface: "svc0".into(),
                owned: true,
                garp_sent: 5,
                garp_failed: 0,
                garp_retried: 0,
                garp_dropped: 0,
                garp_last_errno: None,
                own_failed: 0,
            }],
            witness: Some(WitnessStatus {
                address: "198.18.0.1".parse().expect("ip"),
                reachable: true,
            }),
            ..Default::default()
        }),
        Request::Services => {
            let n = SERVICES_ASKED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Response::Services {
                taken_ns: n * 500_000_000,
                services: vec![ServiceStatus {
                    vip: "198.18.0.100".parse().expect("ip"),
                    port: 5060,
                    protocol: "udp".into(),
                    scheduler: "wlc".into(),
                    forward: "dr".into(),
                    flags: vec!["expire_nodest".into()],
                    packets: 2468 + 1000 * n,
                    bytes: 1_135_780 + 50_000 * n,
                    new_flows: 80 + 10 * n,
                    reals: reals_at(n),
                }],
            }
        }
        Request::Reals => Response::Reals { reals: reals() },
        Request::Switchover => Response::Error {
            message: "the peer is not healthy: no switchover".into(),
        },
        Request::ReleaseHold => Response::Done {
            message: "no switchover hold was in force".into(),
        },
        Request::Cards => Response::Cards { spans: Vec::new() },
        Request::Metrics => Response::Metrics {
            text: "# EOF\n".into(),
        },
        Request::Save => Response::Config {
            text: "[node]\nid = 1\n".into(),
        },
        Request::Reload { dry_run } => Response::Reload(admin::ReloadReply {
            source: "/etc/tandem/tandem.toml".into(),
            dry_run: *dry_run,
            applied: !*dry_run,
            changes: vec!["~ real 198.18.0.21 in udp 198.18.0.100:5060: weight 1 -> 7".into()],
            fingerprint_before: "0000000000000001".into(),
            fingerprint: if *dry_run { "0000000000000001" } else { "0000000000000002" }.into(),
            read_us: 900,
            apply_us: 40,
            ..Default::default()
        }),
        Request::Sync => Response::Sync(admin::SyncReply {
            enabled: true,
            role: "publisher".into(),
            state: "streaming".into(),
            peer: Some("198.18.1.2:51234".into()),
            flows: 1000,
            calls: 12,
            channels: 0,
            last_seq: 1012,
            acked: 1010,
            queue: 2,
            records: 1012,
            lag_samples: 1010,
            lag_p50_us: 1_450,
            lag_p99_us: 5_800,
            lag_max_us: 9_100,
            connections: 1,
            snapshots: 1,
            bytes_sent: 32_000,
            bytes_received: 900,
            ..admin::SyncReply::default()
        }),
        Request::Stats => Response::Stats {
            reasons: vec![
                admin::ReasonCount {
                    reason: "forward_dr".into(),
                    packets: 2400,
                },
                admin::ReasonCount {
                    reason: "no_real".into(),
                    packets: 0,
                },
                admin::ReasonCount {
                    reason: "sip_callid_hit".into(),
                    packets: 1800,
                },
            ],
        },
        Request::Events { after } => Response::Events {
            events: vec![tandem_control::events::Stamped {
                seq: after + 1,
                at_ns: 42,
                event: tandem_control::events::Event::TakeoverDone {
                    epoch: 7,
                    micros: 31,
                },
            }],
        },
        Request::Maintenance { on } => Response::Done {
            message: format!("maintenance {}", if *on { "on" } else { "off" }),
        },
        Request::Conns { limit, after, .. } => {
            let (slice, next) = match after {
                None => (0..3, Some(FIRST_SLICE)),
                Some(_) => (3..5, None),
            };
            let limit = limit.map_or(admin::MAX_CONNS, |l| l as usize);
            let conns: Vec<ConnStatus> = slice.clone().map(conn_row).take(limit).collect();
            Response::Conns {
                truncated: conns.len() < slice.len(),
                total: slice.len() as u64,
                conns,
                next,
            }
        }
        Request::Timeouts => Response::Timeouts {
            tcp_s: 900,
            tcp_fin_s: 120,
            udp_s: 300,
            sip_call_s: 3600,
        },
        Request::Zero { service: None } => Response::Done {
            message: "zeroed 1 service(s) and 2 real server(s)".into(),
        },
        Request::Zero { service: Some(s) } if s == "udp/198.18.0.100:5060" => Response::Done {
            message: "zeroed 1 service(s) and 2 real server(s)".into(),
        },
        Request::Zero { service: Some(s) } => Response::Error {
            message: format!("no service {s}: the services are udp/198.18.0.100:5060"),
        },
    }
}

/// Serves `connections` clients (or stops after 10 s) and returns the
/// requests it saw.
fn serve(path: &Path, connections: usize) -> JoinHandle<Vec<Request>> {
    let listener: UnixListener = admin::bind(path).expect("bind the admin socket");
    std::thread::spawn(move || {
        let mut reactor = Reactor::new(32).expect("ring");
        let mut conns: HashMap<u64, Connection> = HashMap::new();
        let mut next = 1u64;
        let mut closed = 0;
        let mut seen = Vec::new();
        reactor
            .accept(ACCEPT, listener.as_raw_fd())
            .expect("accept");
        let stop = Instant::now() + Duration::from_secs(10);
        while closed < connections && Instant::now() < stop {
            let done = reactor
                .submit_and_wait(1, Some(Duration::from_millis(100)))
                .expect("wait");
            for mut c in done {
                if c.token == ACCEPT {
                    if let Some(fd) = c.accepted.take() {
                        let conn = Connection::new(fd).expect("connection");
                        reactor
                            .poll(next, conn.fd(), libc::POLLIN as u32)
                            .expect("poll");
                        conns.insert(next, conn);
                        next += 1;
                    }
                    reactor
                        .accept(ACCEPT, listener.as_raw_fd())
                        .expect("accept");
                    continue;
                }
                let Some(conn) = conns.get_mut(&c.token) else {
                    continue;
                };
                for r in conn.read_requests().expect("read") {
                    let response = match r {
                        Ok(req) => {
                            let resp = canned(&req);
                            seen.push(req);
                            resp
                        }
                        Err(e) => Response::Error {
                            message: e.to_string(),
                        },
                    };
                    conn.queue(&response);
                }
                let flushed = conn.flush().expect("flush");
                if conn.is_eof() && flushed {
                    conns.remove(&c.token);
                    closed += 1;
                } else {
                    let events = if flushed {
                        libc::POLLIN
                    } else {
                        libc::POLLIN | libc::POLLOUT
                    };
                    reactor
                        .poll(c.token, conn.fd(), events as u32)
                        .expect("re-arm");
                }
            }
        }
        seen
    })
}

fn tandemctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run tandemctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn client_function_against_server_thread() {
    let path = socket_path("client");
    let server = serve(&path, 3);
    let t = Duration::from_secs(2);
    let status = admin::request(&path, &Request::Status, t).expect("status");
    assert_eq!(status, canned(&Request::Status));
    let m = admin::request(&path, &Request::Maintenance { on: true }, t).expect("maintenance");
    assert_eq!(
        m,
        Response::Done {
            message: "maintenance on".into()
        }
    );
    let s = admin::request(&path, &Request::Switchover, t).expect("switchover");
    assert!(matches!(s, Response::Error { .. }));
    let seen = server.join().expect("server");
    assert_eq!(
        seen,
        vec![
            Request::Status,
            Request::Maintenance { on: true },
            Request::Switchover
        ]
    );
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}

#[test]
fn tandemctl_prints_tables_and_json() {
    let path = socket_path("tables");
    let server = serve(&path, 13);

    let (code, out, err) = tandemctl(&path, &["status"]);
    assert_eq!(code, 0, "{err}");
    println!("$ tandemctl status\n{out}");
    assert!(
        out.contains("node        1 (director-a)  priority 150  preempt on"),
        "{out}"
    );
    assert!(
        out.contains("state       active  epoch 7  for 12.3 s"),
        "{out}"
    );
    assert!(
        out.contains("peer        2  standby  epoch 7  priority 100"),
        "{out}"
    );
    assert!(
        out.contains("link         hb0              up     1 ms ago"),
        "{out}"
    );
    assert!(
        out.contains("service      svc0             down   never"),
        "{out}"
    );
    assert!(
        out.contains("198.18.0.100     svc0             yes"),
        "{out}"
    );

    let (code, out, _) = tandemctl(&path, &["services"]);
    assert_eq!(code, 0);
    println!("$ tandemctl services\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "Prot LocalAddress:Port                 Scheduler Flags"
    );
    assert_eq!(
        lines[2],
        "UDP  198.18.0.100:5060                 wlc       expire_nodest"
    );
    assert_eq!(
        lines[3],
        "  -> 198.18.0.21:5060                  Route   100    up       alive   7"
    );
    assert_eq!(
        lines[4],
        "  -> 198.18.0.22:5060                  Route   100    draining alive   8"
    );

    let (code, out, _) = tandemctl(&path, &["reals"]);
    assert_eq!(code, 0);
    println!("$ tandemctl reals\n{out}");
    assert!(
        out.lines()
            .nth(1)
            .expect("row")
            .starts_with("udp/198.18.0.100:5060        198.18.0.21:5060")
    );
    assert!(out.contains("12/30"));

    let (code, out, _) = tandemctl(&path, &["maintenance", "off"]);
    assert_eq!((code, out.as_str()), (0, "maintenance off\n"));

    let (code, out, err) = tandemctl(&path, &["switchover"]);
    assert_eq!(code, 1, "an error answer exits 1");
    assert!(out.is_empty());
    assert_eq!(
        err,
        "tandemctl: tandemd refused: the peer is not healthy: no switchover\n"
    );

    let (code, out, _) = tandemctl(&path, &["--json", "reals"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(v["reply"], "reals");
    assert_eq!(v["reals"][1]["state"], "draining");

    let (code, out, _) = tandemctl(&path, &["--json", "status"]);
    assert_eq!(code, 0);
    let back: Response = serde_json::from_str(&out).expect("a Response");
    assert_eq!(back, canned(&Request::Status));

    let (code, out, _) = tandemctl(&path, &["sync"]);
    assert_eq!(code, 0);
    println!("$ tandemctl sync\n{out}");
    assert!(
        out.contains("role        publisher  streaming  peer 198.18.1.2:51234"),
        "{out}"
    );
    assert!(
        out.contains("tables      1000 flows  12 calls  0 channels"),
        "{out}"
    );
    assert!(
        out.contains("sequence    last 1012  acked 1010  queued 2"),
        "{out}"
    );
    assert!(
        out.contains("lag         p50 1.45 ms  p99 5.80 ms  max 9.10 ms  (1010 samples)"),
        "{out}"
    );

    let (code, out, _) = tandemctl(&path, &["stats"]);
    assert_eq!(code, 0);
    println!("$ tandemctl stats\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "zero counts are left out: {out}");
    assert_eq!(lines[1], "forward_dr                         2400");
    assert_eq!(lines[2], "sip_callid_hit                     1800");
    let (code, out, _) = tandemctl(&path, &["--json", "stats"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(
        v["reasons"].as_array().map(Vec::len),
        Some(3),
        "--json keeps zero counts"
    );

    // `save` prints the file text as the daemon wrote it, nothing added.
    let (code, out, _) = tandemctl(&path, &["save"]);
    assert_eq!((code, out.as_str()), (0, "[node]\nid = 1\n"));

    // `reload` sends its flag and prints the plan, then what became of it.
    let (code, out, _) = tandemctl(&path, &["reload", "--dry-run"]);
    println!("$ tandemctl reload --dry-run\n{out}");
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "~ real 198.18.0.21 in udp 198.18.0.100:5060: weight 1 -> 7",
            "dry run of /etc/tandem/tandem.toml: 1 change(s) would apply; nothing changed"
        ]
    );
    let (code, out, _) = tandemctl(&path, &["reload"]);
    assert_eq!(code, 0);
    assert!(out.ends_with("fingerprint 0000000000000001 -> 0000000000000002\n"), "{out}");

    let seen = server.join().expect("server");
    assert_eq!(seen.len(), 13);
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}

/// `conns` (asked slice by slice until the walk is over, the rows capped
/// by --limit and the rest counted), `zero` (root's; a service by
/// PROTO:VIP:PORT) and `services --rate` (two answers, the daemon's clock).
#[test]
fn tandemctl_conns_zero_and_rates() {
    let path = socket_path("views");
    let server = serve(&path, 13);

    let (code, out, err) = tandemctl(&path, &["conns"]);
    assert_eq!(code, 0, "{err}");
    println!("$ tandemctl conns\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        6,
        "a header and the five rows of both slices: {out}"
    );
    assert!(
        lines[0].starts_with("Pro  Expire State        Source"),
        "{out}"
    );
    assert_eq!(
        lines[1],
        "UDP  04:59  udp          198.18.0.1:40000         198.18.0.100:5060        198.18.0.21:5060         to peer"
    );
    assert_eq!(
        lines[5],
        "UDP  04:55  sip          -                        198.18.0.100:5060        198.18.0.21:5060         to peer   call-4@198.18.0.1"
    );

    let (code, out, err) = tandemctl(
        &path,
        &[
            "conns",
            "--vip",
            "198.18.0.100",
            "--real",
            "198.18.0.21",
            "--call-id",
            "call-3@198.18.0.1",
            "--limit",
            "2",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[3], "(2 of 5 matching entries shown: --limit)");

    let (code, out, _) = tandemctl(&path, &["--json", "conns"]);
    assert_eq!(code, 0);
    match serde_json::from_str::<Response>(&out).expect("--json prints a Response") {
        Response::Conns {
            conns,
            total,
            truncated,
            next,
        } => {
            assert_eq!(conns, (0..5).map(conn_row).collect::<Vec<_>>());
            assert_eq!((total, truncated, next), (5, false, None));
        }
        other => panic!("{other:?}"),
    }

    let (code, out, _) = tandemctl(&path, &["zero"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "zeroed 1 service(s) and 2 real server(s)\n")
    );
    let (code, _, err) = tandemctl(&path, &["zero", "--service", "udp:198.18.0.100:5060"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = tandemctl(&path, &["zero", "--service", "udp:198.18.0.101:5060"]);
    assert_eq!((code, out.as_str()), (1, ""), "an error answer exits 1");
    assert_eq!(
        err,
        "tandemctl: tandemd refused: no service udp/198.18.0.101:5060: the services are udp/198.18.0.100:5060\n"
    );
    // A service tandemctl cannot read is refused before asking.
    let (code, _, err) = tandemctl(&path, &["zero", "--service", "sctp:198.18.0.100:5060"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(
            "tandemctl: service \"sctp:198.18.0.100:5060\": the protocol is udp or tcp"
        ),
        "{err}"
    );
    // --interval-ms only with --rate.
    let (code, _, _) = tandemctl(&path, &["services", "--interval-ms", "5"]);
    assert_eq!(code, 2);

    // 50 ms apart on the client's clock; the fake daemon's says 0.5 s per
    // answer: the rates are over the daemon's.
    let (code, out, err) = tandemctl(&path, &["services", "--rate", "--interval-ms", "50"]);
    assert_eq!(code, 0, "{err}");
    println!("$ tandemctl services --rate\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "Prot LocalAddress:Port                      CPS     InPPS    OutPPS       InBPS      OutBPS"
    );
    assert_eq!(
        lines[2],
        "UDP  198.18.0.100:5060                       20      2000         -      100000           -"
    );
    assert_eq!(
        lines[3],
        "  -> 198.18.0.21:5060                        10      1000         -       50000           -"
    );
    let (code, out, err) = tandemctl(
        &path,
        &["--json", "services", "--rate", "--interval-ms", "50"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("--json prints the rates");
    assert_eq!(v["services"][0]["service"], "udp/198.18.0.100:5060");
    assert_eq!(
        (
            v["services"][0]["cps"].as_f64(),
            v["services"][0]["in_pps"].as_f64()
        ),
        (Some(20.0), Some(2000.0))
    );
    assert!(v["services"][0]["out_pps"].is_null() && v["services"][0]["out_bps"].is_null());
    assert_eq!(
        v["services"][0]["reals"][1]["in_bps"].as_f64(),
        Some(50_000.0)
    );

    let seen = server.join().expect("server");
    assert_eq!(seen.len(), 13, "{seen:?}");
    // The slices were asked from where the previous one stopped, with the
    // filters, and the limit less what was already shown.
    let conns: Vec<&Request> = seen
        .iter()
        .filter(|r| matches!(r, Request::Conns { .. }))
        .collect();
    assert_eq!(conns.len(), 6);
    assert_eq!(
        conns[2],
        &Request::Conns {
            vip: Some("198.18.0.100".parse().unwrap()),
            real: Some("198.18.0.21".parse().unwrap()),
            call_id: Some("call-3@198.18.0.1".into()),
            limit: Some(2),
            after: None,
        }
    );
    assert!(
        matches!(conns[3], Request::Conns { limit: Some(0), after: Some(a), .. } if *a == FIRST_SLICE),
        "{:?}",
        conns[3]
    );
    assert!(seen.contains(&Request::Zero {
        service: Some("udp/198.18.0.100:5060".into())
    }));
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}

#[test]
fn tandemctl_names_a_missing_socket() {
    let path = socket_path("missing");
    let (code, out, err) = tandemctl(&path, &["status"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(
        err,
        format!(
            "tandemctl: no admin socket at {}: is tandemd running?\n",
            path.display()
        )
    );
}

#[test]
fn root_tandemctl_as_another_user_is_denied() {
    let test = "root_tandemctl_as_another_user_is_denied";
    if !require(test, &[Need::Root("to run tandemctl as another user")]) {
        return;
    }
    let path = socket_path("denied");
    let server = serve(&path, 1);
    // The directory is traversable by all; the socket is 0600 root.
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .arg("--socket")
        .arg(&path)
        .arg("status")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run tandemctl as nobody");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(
        err,
        format!(
            "tandemctl: permission denied on {}: the admin socket is root-only (run as root)\n",
            path.display()
        )
    );
    // Root still gets in; this also lets the server thread finish.
    let (code, _, e) = tandemctl(&path, &["status"]);
    assert_eq!(code, 0, "{e}");
    assert_eq!(server.join().expect("server").len(), 1);
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}

/// `tandemctl key`: a fresh key, and an IVR's own key as the director's
/// kernel checks it (the lab's derivation), never the master key itself.
#[test]
fn tandemctl_key_generates_and_derives_ivr_keys() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
            .args(args)
            .output()
            .expect("run tandemctl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    let (code, a) = run(&["key", "generate"]);
    let (_, b) = run(&["key", "generate"]);
    assert_eq!(code, 0);
    assert!(
        a.len() == 32 && a.chars().all(|c| c.is_ascii_hexdigit()),
        "{a}"
    );
    assert_ne!(a, b);

    let dir = std::env::temp_dir().join(format!("tandemctl-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tandem.toml");
    tandem_tests::write_private(
        &config,
        format!(
            "[node]\nid = 1\npeer_id = 2\nname = \"a\"\n[heartbeat]\nkey = \"{}\"\nivr_key = \"{}\"\n\
             paths = [{{ name = \"l\", interface = \"hb0\", local = \"198.18.1.1\", peer = \"198.18.1.2\" }}]\n",
            tandem_tests::lab::tandemd::KEY_HEX,
            tandem_tests::lab::tandemd::IVR_KEY_HEX
        ),
    )
    .unwrap();
    let (code, k) = run(&["key", "ivr", "101", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0);
    let want = tandem_tests::lab::tandemd::ivr_key_of(101);
    assert_eq!(k, tandem_control::keys::to_hex(&want));
    assert_ne!(k, tandem_tests::lab::tandemd::IVR_KEY_HEX);
    let (_, other) = run(&["key", "ivr", "102", "--config", config.to_str().unwrap()]);
    assert_ne!(k, other);
    let (code, _) = run(&[
        "key",
        "ivr",
        "101",
        "--config",
        dir.join("absent.toml").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    std::fs::remove_dir_all(&dir).ok();
}
