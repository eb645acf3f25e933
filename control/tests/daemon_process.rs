//! tandemd as a process, alone in a network namespace the test creates
//! (issue 10): a configuration it refuses changes nothing on the host
//! (defect 2: the DR `sip_options` check used to run after XDP was
//! attached and the VIP interface's ARP sysctls were written); SIGHUP
//! neither kills nor stops it (defect 4) but reloads the file, as
//! `tandemctl reload` does (issue 13); its errors reach stderr through
//! the tracing subscriber (defect 3).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tandem_control::{admin, events::Event};
use tandem_tests::{in_netns, require_privileged};

use tandem_tests::lab::netns::{Owned as Netns, single_director};

/// A sysctl of the namespace (network sysctls belong to the reading thread's namespace).
fn sysctl(ns: &str, key: &str) -> String {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    in_netns(ns, || std::fs::read_to_string(&path).expect("sysctl"))
        .trim()
        .to_string()
}

/// A namespace with a service veth (svc0, 198.18.0.11) and a heartbeat
/// veth (hb0, 198.18.1.1).
fn lab(tag: &str) -> Netns {
    single_director(tag)
}

/// One director's configuration; `service_extra` goes into its service.
fn config(socket: &Path, service_extra: &str) -> String {
    format!(
        r#"[node]
id = 1
peer_id = 2
name = "a"

[heartbeat]
interval_ms = 10
key = "000102030405060708090a0b0c0d0e0f"
paths = [{{ name = "link", interface = "hb0", local = "198.18.1.1", peer = "198.18.1.2" }}]

[[vip]]
address = "198.18.0.100"
interface = "svc0"

[dataplane]
xdp_mode = "generic"
interfaces = ["svc0", "hb0"]
flow_entries = 1024

[[service]]
vip = "198.18.0.100"
port = 5060
protocol = "udp"
scheduler = "rr"
forward = "dr"
{service_extra}

[[service.real]]
address = "198.18.0.21"
mac = "02:18:00:00:00:21"

[admin]
socket = "{}"
"#,
        socket.display()
    )
}

fn tandemd() -> std::ffi::OsString {
    std::env::var_os("TANDEMD").unwrap_or_else(|| env!("CARGO_BIN_EXE_tandemd").into())
}

/// A scratch directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("tandem-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tandemd this test started, killed by its PID on drop.
struct Daemon(Child);

impl Daemon {
    fn start(ns: &str, config: &Path, stderr: &Path) -> Daemon {
        let err = std::fs::File::create(stderr).expect("stderr file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(tandemd())
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("tandemd");
        Daemon(child)
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on the PID of our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(self.0.id() as libc::pid_t, sig) }, 0);
    }

    /// Waits (up to 15 s) until it answers `status` on `socket`; panics,
    /// with its stderr (`stderr`), if it exits or does not answer.
    fn wait_answering(&mut self, socket: &Path, stderr: &Path) {
        let end = Instant::now() + Duration::from_secs(15);
        let err = || std::fs::read_to_string(stderr).unwrap_or_default();
        while !matches!(
            admin::request(socket, &admin::Request::Status, Duration::from_millis(500)),
            Ok(admin::Response::Status(_))
        ) {
            assert!(Instant::now() < end, "tandemd did not answer: {}", err());
            assert!(self.exited(Duration::ZERO).is_none(), "tandemd exited: {}", err());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status within `within`, if it exited.
    fn exited(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + within;
        loop {
            if let Ok(Some(st)) = self.0.try_wait() {
                return Some(st);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn privileged_refused_config_changes_nothing_on_the_host() {
    if !require_privileged("privileged_refused_config_changes_nothing_on_the_host") {
        return;
    }
    let ns = lab("setup");
    let dir = Dir::new("setup");
    let cfg = dir.0.join("tandem.toml");
    // Valid as a file; refused at start-up: DR probes need a heartbeat
    // path on the VIP's interface (their source address), and the only
    // path is on hb0.
    let probes = "sip_options = { interval_ms = 1000, timeout_ms = 500, failures = 3 }";
    tandem_tests::write_private(&cfg, config(&dir.0.join("a.sock"), probes)).expect("config");
    let before = (
        sysctl(&ns.0, "net.ipv4.conf.svc0.arp_ignore"),
        sysctl(&ns.0, "net.ipv4.conf.svc0.arp_announce"),
    );
    assert_eq!(before, ("0".to_string(), "0".to_string()), "a fresh veth");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(tandemd())
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("tandemd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "tandemd must refuse the configuration; stderr: {stderr}"
    );
    assert!(
        stderr.contains("sip_options on a DR service"),
        "the refusal says why: {stderr}"
    );
    let after = (
        sysctl(&ns.0, "net.ipv4.conf.svc0.arp_ignore"),
        sysctl(&ns.0, "net.ipv4.conf.svc0.arp_announce"),
    );
    assert_eq!(
        after, before,
        "the refused start changed the VIP interface's ARP sysctls"
    );
    assert_eq!(sysctl(&ns.0, "net.ipv4.conf.svc0.accept_local"), "0");
}

#[test]
fn privileged_sighup_and_reload_apply_the_file_live_and_errors_reach_stderr() {
    if !require_privileged("privileged_sighup_and_reload_apply_the_file_live_and_errors_reach_stderr") {
        return;
    }
    let ns = lab("hup");
    let dir = Dir::new("hup");
    let socket = dir.0.join("a.sock");
    let cfg = dir.0.join("tandem.toml");
    tandem_tests::write_private(&cfg, config(&socket, "")).expect("config");
    let mut d = Daemon::start(&ns.0, &cfg, &dir.0.join("a.err"));
    let status = || admin::request(&socket, &admin::Request::Status, Duration::from_millis(500));
    d.wait_answering(&socket, &dir.0.join("a.err"));
    d.signal(libc::SIGHUP);
    assert_eq!(
        d.exited(Duration::from_millis(500)),
        None,
        "SIGHUP must not stop tandemd"
    );
    assert!(
        matches!(status(), Ok(admin::Response::Status(_))),
        "still answering after SIGHUP"
    );
    // `tandemctl save`: the running configuration as a file that
    // `tandemd --check` accepts and that reads back to the same one.
    let saved = dir.0.join("saved.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .arg("--socket")
        .arg(&socket)
        .arg("save")
        .output()
        .expect("tandemctl save");
    assert!(out.status.success(), "tandemctl save: {}", String::from_utf8_lossy(&out.stderr));
    tandem_tests::write_private(&saved, &out.stdout).expect("saved file");
    let check = Command::new(tandemd()).arg("--check").arg("--config").arg(&saved).output().expect("tandemd --check");
    assert!(check.status.success(), "tandemd --check refused the saved file: {}\n{}", String::from_utf8_lossy(&check.stderr), String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        tandem_control::config::Config::load(&saved).expect("saved"),
        tandem_control::config::Config::load(&cfg).expect("running"),
        "save round-trips to the running configuration"
    );
    // `tandemctl diff`: the plan of a reload of an edited file against the
    // running configuration; the daemon is not changed.
    let plan = |file: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
            .arg("--socket")
            .arg(&socket)
            .args(["--json", "diff", "--config"])
            .arg(file)
            .output()
            .expect("tandemctl diff");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("tandemctl diff --json: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), v)
    };
    let edited = dir.0.join("edited.toml");
    let base = config(&socket, "");
    tandem_tests::write_private(&edited, base.replacen("mac = \"02:18:00:00:00:21\"", "mac = \"02:18:00:00:00:21\"\nweight = 7", 1)).expect("edited");
    let (code, v) = plan(&edited);
    assert_eq!(code, Some(0), "a weight edit applies live: {v}");
    assert_eq!(v["changes"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["changes"][0]["change"], "real_edited", "{v}");
    assert_eq!((v["changes"][0]["fields"][0]["field"].as_str(), v["changes"][0]["fields"][0]["from"].as_str(), v["changes"][0]["fields"][0]["to"].as_str()), (Some("weight"), Some("1"), Some("7")), "{v}");
    tandem_tests::write_private(&edited, base.replacen("id = 1", "id = 5", 1)).expect("edited");
    let (code, v) = plan(&edited);
    assert_eq!(code, Some(1), "a new node id is refused: {v}");
    assert_eq!((v["refused"][0]["field"].as_str(), v["refused"][0]["why"].as_str()), (Some("node.id"), Some("identity")), "{v}");

    // Reloads, on the running daemon: the kernel's view (`reals` reads
    // the service images written to the maps) follows the file.
    let reals = || match admin::request(&socket, &admin::Request::Reals, Duration::from_secs(1)) {
        Ok(admin::Response::Reals { reals }) => reals.iter().map(|r| (r.address.to_string(), r.weight, r.state.clone())).collect::<Vec<_>>(),
        other => panic!("reals: {other:?}"),
    };
    let fingerprint = || match status() {
        Ok(admin::Response::Status(s)) => s.config_fingerprint,
        other => panic!("status: {other:?}"),
    };
    let reload = |dry_run: bool| match admin::request(&socket, &admin::Request::Reload { dry_run }, Duration::from_secs(5)) {
        Ok(admin::Response::Reload(r)) => r,
        other => panic!("reload: {other:?}"),
    };
    let first = fingerprint();
    assert_eq!(first.len(), 16, "status shows the services' fingerprint: {first:?}");
    assert_eq!(reals(), [("198.18.0.21".to_string(), 1, "up".to_string())]);
    // A weight edit and a second real server, by SIGHUP.
    let two = base.replacen(
        "mac = \"02:18:00:00:00:21\"",
        "mac = \"02:18:00:00:00:21\"\nweight = 7\n\n[[service.real]]\naddress = \"198.18.0.22\"\nmac = \"02:18:00:00:00:22\"\nstate = \"draining\"",
        1,
    );
    tandem_tests::write_private(&cfg, &two).expect("config");
    d.signal(libc::SIGHUP);
    let end = Instant::now() + Duration::from_secs(5);
    while reals().len() < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        reals(),
        [("198.18.0.21".to_string(), 7, "up".to_string()), ("198.18.0.22".to_string(), 1, "draining".to_string())],
        "SIGHUP applied the file"
    );
    let second = fingerprint();
    assert_ne!(second, first);
    let events = match admin::request(&socket, &admin::Request::Events { after: 0 }, Duration::from_secs(1)) {
        Ok(admin::Response::Events { events }) => events,
        other => panic!("events: {other:?}"),
    };
    assert!(
        events.iter().any(|e| matches!(&e.event, Event::Reloaded { changes: 2, fingerprint, .. } if *fingerprint == second)),
        "the reload is on the timeline: {events:?}"
    );
    // The same file again: nothing to do, nothing touched.
    let r = reload(false);
    assert!(r.applied && r.changes.is_empty() && r.fingerprint == second, "{r:?}");
    // A dry run of a removal says it and changes nothing.
    tandem_tests::write_private(&cfg, &base).expect("config");
    let r = reload(true);
    assert!(!r.applied && r.dry_run && r.error.is_none(), "{r:?}");
    assert_eq!(r.changes.len(), 2, "the removal and the weight back to 1: {r:?}");
    assert_eq!(reals().len(), 2, "a dry run changes nothing");
    // A file with an error, and one with a change that cannot be live:
    // refused whole, nothing changed, the reason named.
    tandem_tests::write_private(&cfg, base.replacen("scheduler = \"rr\"", "scheduler = \"fastest\"", 1)).expect("config");
    let r = reload(false);
    assert!(!r.applied, "{r:?}");
    assert!(r.error.as_deref().is_some_and(|e| e.contains("tandem.toml") && e.contains("service[0].scheduler")), "{r:?}");
    tandem_tests::write_private(&cfg, base.replacen("interval_ms = 10", "interval_ms = 20", 1).replacen("weight = 7", "", 1)).expect("config");
    let r = reload(false);
    assert!(!r.applied && r.refused.iter().any(|x| x.starts_with("heartbeat.interval_ms")), "{r:?}");
    assert_eq!(fingerprint(), second, "refused reloads change nothing");
    assert_eq!(reals().len(), 2);
    // tandemctl reload: the removal applied; exit 0.
    tandem_tests::write_private(&cfg, &base).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl")).arg("--socket").arg(&socket).arg("reload").output().expect("tandemctl reload");
    assert!(out.status.success(), "tandemctl reload: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(reals(), [("198.18.0.21".to_string(), 1, "up".to_string())]);
    assert_eq!(fingerprint(), first, "back to the first file, back to its fingerprint");
    d.signal(libc::SIGTERM);
    let st = d
        .exited(Duration::from_secs(5))
        .expect("SIGTERM stops tandemd");
    assert!(st.success(), "clean exit on SIGTERM: {st}");

    // An error on the way (an admin socket it cannot create) stops the
    // start and reaches stderr, once, with the object it concerns.
    let bad = PathBuf::from("/proc/tandem-no-such-dir/a.sock");
    tandem_tests::write_private(&cfg, config(&bad, "")).expect("config");
    let err = dir.0.join("b.err");
    let mut d = Daemon::start(&ns.0, &cfg, &err);
    let end = Instant::now() + Duration::from_secs(15);
    let logged = loop {
        let text = std::fs::read_to_string(&err).unwrap_or_default();
        if text.contains("/proc/tandem-no-such-dir/a.sock")
            || Instant::now() >= end
            || d.exited(Duration::ZERO).is_some()
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let st = d.exited(Duration::from_secs(5));
    assert!(st.is_some_and(|s| !s.success()), "tandemd must refuse to start without its admin socket: {st:?}\n{logged}");
    let lines: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("/proc/tandem-no-such-dir/a.sock"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "the admin socket error, logged once: {logged}"
    );
    assert!(lines[0].contains("ERROR"), "at error level: {}", lines[0]);
}

#[test]
fn privileged_a_second_daemon_on_the_same_admin_socket_refuses_to_start() {
    const NAME: &str = "privileged_a_second_daemon_on_the_same_admin_socket_refuses_to_start";
    if !require_privileged(NAME) {
        return;
    }
    let (ns1, ns2) = (lab("sock1"), lab("sock2"));
    let dir = Dir::new("samesock");
    let socket = dir.0.join("a.sock");
    let cfg = dir.0.join("tandem.toml");
    tandem_tests::write_private(&cfg, config(&socket, "")).expect("config");
    let mut first = Daemon::start(&ns1.0, &cfg, &dir.0.join("1.err"));
    let status = || admin::request(&socket, &admin::Request::Status, Duration::from_millis(500));
    first.wait_answering(&socket, &dir.0.join("1.err"));
    // The same socket path, in another namespace, under another name.
    let cfg2 = dir.0.join("second.toml");
    tandem_tests::write_private(&cfg2, config(&socket, "").replace("name = \"a\"", "name = \"second\"")).expect("config");
    let err = dir.0.join("2.err");
    let mut second = Daemon::start(&ns2.0, &cfg2, &err);
    let st = second.exited(Duration::from_secs(15));
    let text = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(st.is_some_and(|s| !s.success()), "the second tandemd must refuse to start: {st:?}\n{text}");
    let named: Vec<&str> = text.lines().filter(|l| l.contains(&*socket.to_string_lossy()) && l.contains("in use")).collect();
    assert_eq!(named.len(), 1, "the refusal names the socket in use, once: {text}");
    // The first keeps its socket and still answers for itself.
    match status() {
        Ok(admin::Response::Status(s)) => assert_eq!(s.node_name, "a", "the socket answers for the first tandemd"),
        other => panic!("the first tandemd stopped answering: {other:?}"),
    }
    assert!(first.exited(Duration::ZERO).is_none(), "the first tandemd exited");
}

#[test]
fn privileged_read_group_members_may_read_and_only_root_may_act() {
    const NAME: &str = "privileged_read_group_members_may_read_and_only_root_may_act";
    use std::os::unix::{fs::MetadataExt, process::CommandExt};
    if !require_privileged(NAME) {
        return;
    }
    // The group of the unprivileged user the test runs tandemctl as.
    const NOBODY: u32 = 65534;
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(NOBODY))
        .expect("group lookup")
        .expect("a group with gid 65534 (nogroup)")
        .name;
    let ns = lab("rgrp");
    let dir = Dir::new("rgrp");
    let socket = dir.0.join("a.sock");
    let cfg = dir.0.join("tandem.toml");
    tandem_tests::write_private(&cfg, config(&socket, "") + &format!("read_group = \"{group}\"\n")).expect("config");
    let mut d = Daemon::start(&ns.0, &cfg, &dir.0.join("a.err"));
    d.wait_answering(&socket, &dir.0.join("a.err"));
    let meta = std::fs::metadata(&socket).expect("socket");
    assert_eq!((meta.mode() & 0o777, meta.uid(), meta.gid()), (0o660, 0, NOBODY), "the socket is root's and the read group's");
    let as_nobody = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .expect("tandemctl as nobody");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for read in [&["--json", "status"][..], &["--json", "services"], &["--json", "metrics"]] {
        let (code, out, err) = as_nobody(read);
        assert_eq!(code, Some(0), "a read group member reads {read:?}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_ne!(v["reply"], "error", "{read:?}: {out}");
    }
    for act in [&["--json", "switchover"][..], &["--json", "maintenance", "on"], &["--json", "save"]] {
        let (code, out, _) = as_nobody(act);
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!((code, v["reply"].as_str()), (Some(1), Some("error")), "{act:?} refused to a read group member: {out}");
        assert!(v["message"].as_str().is_some_and(|m| m.starts_with("permission denied")), "{act:?}: {out}");
    }
    // Nothing was changed by the refused requests; root still may act.
    match admin::request(&socket, &admin::Request::Status, Duration::from_secs(1)) {
        Ok(admin::Response::Status(s)) => assert!(!s.maintenance, "maintenance was turned on by a refused request"),
        other => panic!("status: {other:?}"),
    }
    assert!(matches!(admin::request(&socket, &admin::Request::Save, Duration::from_secs(1)), Ok(admin::Response::Config { .. })), "root may save");
    d.signal(libc::SIGTERM);
    assert!(d.exited(Duration::from_secs(5)).is_some_and(|s| s.success()), "clean exit on SIGTERM");
}

#[test]
fn privileged_tandemctl_service_and_real_edit_the_file_and_the_running_daemon() {
    const NAME: &str = "privileged_tandemctl_service_and_real_edit_the_file_and_the_running_daemon";
    if !require_privileged(NAME) {
        return;
    }
    let ns = lab("edits");
    let dir = Dir::new("edits");
    let socket = dir.0.join("a.sock");
    let cfg = dir.0.join("tandem.toml");
    let err = dir.0.join("a.err");
    let base = format!("# kept through every edit\n{}", config(&socket, ""));
    tandem_tests::write_private(&cfg, &base).expect("config");
    let mut d = Daemon::start(&ns.0, &cfg, &err);
    d.wait_answering(&socket, &err);
    let ctl = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tandemctl")).arg("--socket").arg(&socket).args(args).output().expect("tandemctl");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let reals = || match admin::request(&socket, &admin::Request::Reals, Duration::from_secs(1)) {
        Ok(admin::Response::Reals { reals }) => {
            reals.iter().map(|r| (r.service.clone(), r.address.to_string(), r.weight, r.state.clone())).collect::<Vec<_>>()
        }
        other => panic!("reals: {other:?}"),
    };
    let row = |svc: &str, a: &str, w: u32, st: &str| (svc.to_string(), a.to_string(), w, st.to_string());
    const SIP: &str = "udp/198.18.0.100:5060";

    let (code, out) = ctl(&["real", "add", "-u", "198.18.0.100:5060", "-r", "198.18.0.22", "--mac", "02:18:00:00:00:22", "-w", "3"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(reals(), [row(SIP, "198.18.0.21", 1, "up"), row(SIP, "198.18.0.22", 3, "up")]);
    let (code, out) = ctl(&["real", "edit", "-r", "198.18.0.22", "-w", "0"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(reals()[1], row(SIP, "198.18.0.22", 0, "up"), "weight 0: quiescent");
    let (code, out) = ctl(&["service", "add", "-u", "198.18.0.100:5080", "-s", "wrr"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = ctl(&["real", "add", "-u", "198.18.0.100:5080", "-r", "198.18.0.21", "--mac", "02:18:00:00:00:21"]);
    assert_eq!(code, Some(0), "{out}");
    // Drain: in every service it serves; with nothing in flight --wait returns at once.
    let (code, out) = ctl(&["real", "drain", "198.18.0.21", "--wait", "--timeout", "5"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("198.18.0.21: drained"), "{out}");
    let mut now = reals();
    now.sort();
    assert_eq!(
        now,
        [row(SIP, "198.18.0.21", 1, "draining"), row(SIP, "198.18.0.22", 0, "up"), row("udp/198.18.0.100:5080", "198.18.0.21", 1, "draining")]
    );
    // Timeouts, as `ipvsadm --set` (0: unchanged), into the kernel.
    let timeouts = || match admin::request(&socket, &admin::Request::Timeouts, Duration::from_secs(1)) {
        Ok(admin::Response::Timeouts { tcp_s, tcp_fin_s, udp_s, sip_call_s }) => (tcp_s, tcp_fin_s, udp_s, sip_call_s),
        other => panic!("timeouts: {other:?}"),
    };
    assert_eq!(timeouts(), (900, 120, 300, 3600), "IPVS's defaults");
    let (code, out) = ctl(&["timeouts", "--set", "0", "60", "30", "--sip-call", "7200"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(timeouts(), (900, 60, 30, 7200));
    // Bad edits change neither the file nor the daemon, and say what is wrong.
    let before = std::fs::read_to_string(&cfg).expect("file");
    for (bad, why) in [
        (&["real", "edit", "-r", "198.18.0.22", "--state", "sideways"][..], "state"),
        (&["real", "delete", "-r", "198.18.0.99"], "no real server 198.18.0.99"),
        (&["service", "add", "-u", "198.18.0.100:5060", "-s", "rr"], "already exists"),
        (&["service", "edit", "-u", "198.18.0.100:5080", "-s", "fastest"], "scheduler"),
    ] {
        let (code, out) = ctl(bad);
        assert_eq!(code, Some(1), "{bad:?}: {out}");
        assert!(out.contains(why), "{bad:?} names {why:?}: {out}");
    }
    assert_eq!(std::fs::read_to_string(&cfg).expect("file"), before, "refused edits leave the file alone");
    let (code, out) = ctl(&["service", "delete", "-u", "198.18.0.100:5080"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = ctl(&["real", "delete", "-u", "198.18.0.100:5060", "-r", "198.18.0.22"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(reals(), [row(SIP, "198.18.0.21", 1, "draining")]);
    let text = std::fs::read_to_string(&cfg).expect("file");
    assert!(text.starts_with("# kept through every edit\n"), "comments are kept: {text}");

    // The file is the truth: a restarted daemon runs with the edits.
    d.signal(libc::SIGTERM);
    assert!(d.exited(Duration::from_secs(5)).is_some_and(|s| s.success()), "clean exit on SIGTERM");
    let mut d = Daemon::start(&ns.0, &cfg, &err);
    d.wait_answering(&socket, &err);
    assert_eq!(reals(), [row(SIP, "198.18.0.21", 1, "draining")], "the edits survive a restart");
    assert_eq!(timeouts(), (900, 60, 30, 7200), "and so do the timeouts");
    d.signal(libc::SIGTERM);
    assert!(d.exited(Duration::from_secs(5)).is_some_and(|s| s.success()), "clean exit on SIGTERM");
}

/// The notify socket's datagrams until `until` says stop (or 15 s pass).
fn notes_until(sock: &std::os::unix::net::UnixDatagram, mut until: impl FnMut(&str) -> bool) -> Vec<String> {
    let end = Instant::now() + Duration::from_secs(15);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            let note = String::from_utf8_lossy(&buf[..n]).into_owned();
            let stop = until(&note);
            got.push(note);
            if stop {
                break;
            }
        }
    }
    got
}

#[test]
fn privileged_systemd_is_told_ready_reloading_stopping_and_pinged_by_the_watchdog() {
    if !require_privileged("privileged_systemd_is_told_ready_reloading_stopping_and_pinged_by_the_watchdog") {
        return;
    }
    let ns = lab("sdnotify");
    let dir = Dir::new("sdnotify");
    let cfg = dir.0.join("tandem.toml");
    let socket = dir.0.join("a.sock");
    tandem_tests::write_private(&cfg, config(&socket, "")).expect("config");
    let notify = dir.0.join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let stderr = dir.0.join("stderr");
    // WATCHDOG_PID must be tandemd's own: the shell's, which exec keeps.
    let child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec ip netns exec \"$0\" \"$1\" --config \"$2\"")
        .arg(&ns.0)
        .arg(tandemd())
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "400000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&stderr).expect("stderr")))
        .spawn()
        .expect("tandemd");
    let mut d = Daemon(child);
    let err = || std::fs::read_to_string(&stderr).unwrap_or_default();
    let start = notes_until(&sock, |n| n == "READY=1\n");
    assert_eq!(start.last().map(String::as_str), Some("READY=1\n"), "no READY: {start:?} {}", err());
    assert!(
        start.iter().any(|n| n.starts_with("STATUS=role: ")),
        "the role in STATUS before READY: {start:?}"
    );
    // Pinged every 100 ms (a quarter of 400 ms): about 10 in 1 s.
    let t = Instant::now();
    let mut pings = 0;
    notes_until(&sock, |n| {
        pings += usize::from(n == "WATCHDOG=1\n");
        t.elapsed() > Duration::from_secs(1)
    });
    assert!((5..=14).contains(&pings), "{pings} watchdog pings in 1 s");
    d.wait_answering(&socket, &stderr);
    d.signal(libc::SIGHUP);
    let reload = notes_until(&sock, |n| n == "READY=1\n");
    let reloading = reload.iter().position(|n| n.starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert!(reloading.is_some(), "RELOADING=1 with MONOTONIC_USEC: {reload:?}");
    assert_eq!(reload.last().map(String::as_str), Some("READY=1\n"), "{reload:?}");
    d.signal(libc::SIGTERM);
    let stop = notes_until(&sock, |n| n == "STOPPING=1\n");
    assert_eq!(stop.last().map(String::as_str), Some("STOPPING=1\n"), "{stop:?} {}", err());
    assert!(d.exited(Duration::from_secs(10)).is_some_and(|s| s.success()), "{}", err());
}

/// Issue 14: the start-up report. Once systemd is told READY, `status`
/// serves where the time went, typed: every phase once, in order, summing
/// to the total (from `main`, so within the exec→READY this test measures),
/// every program's load, the tables' sizes and the pair's init hold; and
/// the timeline holds the same report once, as `ready`.
#[test]
fn privileged_the_startup_report_is_served_once_ready_and_adds_up() {
    if !require_privileged("privileged_the_startup_report_is_served_once_ready_and_adds_up") {
        return;
    }
    let ns = lab("startup");
    let dir = Dir::new("startup");
    let cfg = dir.0.join("tandem.toml");
    let socket = dir.0.join("a.sock");
    tandem_tests::write_private(&cfg, config(&socket, "")).expect("config");
    let notify = dir.0.join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
    let stderr = dir.0.join("stderr");
    let t0 = Instant::now();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(tandemd())
        .arg("--config")
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &notify)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&stderr).expect("stderr")))
        .spawn()
        .expect("tandemd");
    let mut d = Daemon(child);
    let err = || std::fs::read_to_string(&stderr).unwrap_or_default();
    let start = notes_until(&sock, |n| n == "READY=1\n");
    let exec_to_ready = t0.elapsed();
    assert_eq!(start.last().map(String::as_str), Some("READY=1\n"), "no READY: {start:?} {}", err());
    let r = match admin::request(&socket, &admin::Request::Status, Duration::from_secs(2)) {
        Ok(admin::Response::Status(s)) => s.startup.unwrap_or_else(|| panic!("no startup in status: {}", err())),
        other => panic!("status: {other:?} {}", err()),
    };
    assert_eq!(r.check(), Ok(()), "{r:?}");
    // Alone (no peer, no witness): active after the init hold, 2 × 10 ms × 3.
    assert_eq!(r.role, "active", "{r:?}");
    assert_eq!(r.init_hold_us, 60_000);
    assert_eq!((r.flow_entries, r.nat_entries), (1024, 1024));
    assert!(
        r.total_us <= exec_to_ready.as_micros() as u64,
        "main→ready {} µs within exec→READY {exec_to_ready:?}",
        r.total_us
    );
    use tandem_control::startup::Phase;
    for p in [Phase::Object, Phase::Verify, Phase::Stages, Phase::Attach] {
        assert!(r.phase_us(p).is_some_and(|us| us > 0), "{p:?} took time: {r:?}");
    }
    let mut names: Vec<&str> = r.programs.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["tandem_new_flow", "tandem_new_flow_load", "tandem_pass", "tandem_sip", "tandem_xdp"]);
    for p in &r.programs {
        // One thread's CPU time cannot exceed its wall time (1 ms of clock slack).
        assert!(p.cpu_us <= p.us + 1_000, "{p:?}");
    }
    assert!(r.verify_cpu_us() > 0, "{r:?}");
    let events = match admin::request(&socket, &admin::Request::Events { after: 0 }, Duration::from_secs(1)) {
        Ok(admin::Response::Events { events }) => events,
        other => panic!("events: {other:?}"),
    };
    let ready: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Ready { startup } => Some(startup),
            _ => None,
        })
        .collect();
    assert_eq!(ready, [&r], "the timeline holds the same report once");
    d.signal(libc::SIGTERM);
    assert!(d.exited(Duration::from_secs(10)).is_some_and(|s| s.success()), "{}", err());
}
