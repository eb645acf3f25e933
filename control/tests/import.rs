//! `tandemctl import ipvsadm|keepalived` as a process, on the fixtures
//! under `tests/fixtures/import/`: the configuration it prints reads back
//! with the expected services, `tandemd --check` accepts the file it
//! writes, stderr lists exactly the lines that are not expressed, and the
//! exit code says whether anything was listed (1) or a file was refused (2).

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use tandem_control::config::Config;
use tandem_dataplane::{
    ServiceFlag,
    common::{Forward, Scheduler},
    config::Protocol,
};

fn fixture(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name);
    if name != "base.toml" {
        return path;
    }
    // The base holds keys inline: a private copy (a checkout's file is
    // 0644, which tandemctl warns of).
    static COPIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let copy = std::env::temp_dir().join(format!("tandem-import-base-{}-{n}.toml", std::process::id()));
    let text = std::fs::read(&path).expect("base fixture");
    tandem_tests::write_private(&copy, text).expect("private base");
    copy
}

/// A directory of this test's own, emptied.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-import-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn tandemctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .args(args)
        .output()
        .expect("run tandemctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The line numbers stderr lists as `FILE:LINE: not imported: …`, each
/// followed by the line's text.
fn listed(stderr: &str, file: &str) -> BTreeSet<usize> {
    let lines: Vec<&str> = stderr.lines().collect();
    let prefix = format!("{file}:");
    let mut out = BTreeSet::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.strip_prefix(&prefix) else {
            continue;
        };
        let Some((n, what)) = rest.split_once(": ") else {
            continue;
        };
        if !what.starts_with("not imported: ") {
            continue;
        }
        let n: usize = n.parse().expect("line number");
        assert!(
            lines
                .get(i + 1)
                .is_some_and(|t| t.starts_with("    ") && !t.trim().is_empty()),
            "line {n} is listed without its text:\n{stderr}"
        );
        assert!(out.insert(n), "line {n} listed twice:\n{stderr}");
    }
    out
}

/// One service as the test expects it: (vip, port, protocol, scheduler,
/// forward, flags, reals as (address, port, mac's last byte, weight)).
type Expected = (
    &'static str,
    u16,
    Protocol,
    Scheduler,
    Forward,
    Vec<ServiceFlag>,
    Vec<(&'static str, u16, u8, u32)>,
);

fn assert_services(c: &Config, want: &[Expected]) {
    let got: Vec<Expected> = c
        .services
        .iter()
        .zip(want)
        .map(|(s, w)| {
            let flags = ServiceFlag::ALL
                .into_iter()
                .filter(|f| s.flags & f.bit() != 0)
                .collect();
            let reals = s
                .reals
                .iter()
                .zip(&w.6)
                .map(|(r, wr)| {
                    assert_eq!(r.address, wr.0.parse::<IpAddr>().expect("address"));
                    // No MAC (tandemd resolves it): 00 in the table below.
                    let mac = r.mac.unwrap_or([0x02, 0x18, 0, 0, 0, 0]);
                    assert_eq!(mac[..5], [0x02, 0x18, 0, 0, 0], "mac of {}", r.address);
                    (wr.0, r.port, mac[5], r.weight)
                })
                .collect();
            assert_eq!(s.vip, w.0.parse::<IpAddr>().expect("vip"));
            (
                w.0,
                s.port,
                s.protocol,
                s.scheduler,
                s.forward,
                flags,
                reals,
            )
        })
        .collect();
    assert_eq!(c.services.len(), want.len(), "services: {:#?}", c.services);
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.6.len(), w.6.len(), "reals of {}", w.0);
    }
    assert_eq!(got, want);
}

/// Runs the import of `source` to stdout and to a file; checks the exit
/// code 1, that both outputs are the same and read back, that tandemd
/// accepts the file, and returns the configuration and the listed lines.
fn import(test: &str, kind: &str, source: &str, extra: &[&str]) -> (Config, BTreeSet<usize>) {
    let dir = scratch(test);
    let input = fixture(source);
    let input = input.to_str().expect("path");
    let base = fixture("base.toml");
    let arp = fixture("arp");
    let mut args = vec![
        "import",
        kind,
        input,
        "--base",
        base.to_str().expect("path"),
        "--arp",
        arp.to_str().expect("path"),
    ];
    args.extend_from_slice(extra);
    let out = tandemctl(&args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr:\n{stderr}");
    let config = Config::parse(&text(&out.stdout))
        .unwrap_or_else(|e| panic!("stdout does not read back: {e}\n{}", text(&out.stdout)));
    let lines = listed(&stderr, input);
    let summary = stderr.lines().last().unwrap_or_default();
    let reals: usize = config.services.iter().map(|s| s.reals.len()).sum();
    assert_eq!(
        summary,
        format!(
            "imported {} services, {reals} real servers; {} lines not expressed",
            config.services.len(),
            lines.len()
        )
    );
    let written = dir.join("tandem.toml");
    let mut with_output = args.clone();
    with_output.extend_from_slice(&["--output", written.to_str().expect("path")]);
    let out = tandemctl(&with_output);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "--output leaves stdout empty");
    let file = std::fs::read_to_string(&written).expect("the written file");
    assert_eq!(
        Config::parse(&file).expect("the written file reads back"),
        config
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n != "tandem.toml")
        .collect();
    assert_eq!(
        leftovers,
        Vec::<std::ffi::OsString>::new(),
        "no temporary file left"
    );
    let check = Command::new(env!("CARGO_BIN_EXE_tandemd"))
        .arg("--check")
        .arg("--config")
        .arg(&written)
        .output()
        .expect("tandemd --check");
    assert!(
        check.status.success(),
        "tandemd --check refused the imported file: {}\n{file}",
        text(&check.stderr)
    );
    let (base, _open) = Config::load_with(fixture("base.toml"), tandem_control::config::OpenKeys::Warn).expect("base");
    assert_eq!(
        (
            &config.node,
            &config.heartbeat,
            &config.vips,
            &config.sync,
            &config.witness,
            &config.admin
        ),
        (
            &base.node,
            &base.heartbeat,
            &base.vips,
            &base.sync,
            &base.witness,
            &base.admin
        ),
        "the base's tables are kept"
    );
    let _ = std::fs::remove_dir_all(&dir);
    (config, lines)
}

#[test]
fn ipvsadm_save() {
    let (config, lines) = import(
        "ipvsadm",
        "ipvsadm",
        "ipvsadm.save",
        &[
            "--mac",
            "198.18.0.22=02:18:00:00:00:22",
            "--mac",
            "198.18.0.24=02:18:00:00:00:24",
        ],
    );
    use Forward::*;
    use ServiceFlag::*;
    assert_services(
        &config,
        &[
            // MACs: .21 from the base, .22 and .24 given, .31 from the base's same service, .32 and .25 from the neighbour table.
            (
                "198.18.0.100",
                5060,
                Protocol::Udp,
                Scheduler::Wrr,
                Dr,
                vec![],
                vec![("198.18.0.21", 0, 0x21, 100), ("198.18.0.22", 0, 0x22, 50)],
            ),
            (
                "198.18.0.101",
                5060,
                Protocol::Udp,
                Scheduler::Rr,
                Nat,
                vec![],
                vec![
                    ("198.18.0.31", 5080, 0x31, 1),
                    ("198.18.0.32", 5080, 0x32, 2),
                ],
            ),
            (
                "198.18.0.102",
                5060,
                Protocol::Udp,
                Scheduler::Mh,
                Dr,
                vec![SchedFallback, SchedPort, OnePacket],
                // .29: no MAC anywhere, imported without one (a note).
                vec![("198.18.0.21", 0, 0x21, 1), ("198.18.0.22", 0, 0x22, 1), ("198.18.0.29", 0, 0x00, 1)],
            ),
            (
                "198.18.0.104",
                5060,
                Protocol::Udp,
                Scheduler::Wlc,
                Dr,
                vec![],
                vec![("198.18.0.24", 0, 0x24, 10), ("198.18.0.25", 0, 0x25, 20)],
            ),
        ],
    );
    // The NAT service keeps the base's gateway and client interface.
    assert_eq!(
        config.services[1].gateway_mac,
        Some([0x02, 0x18, 0, 0, 0, 0x01])
    );
    assert_eq!(config.services[1].client_interface.as_deref(), Some("svc0"));
    // 5 -i, 6 -p, 8 -x/-y, 13 lblc, 14 its real, 15 -f, 16 its real (12,
    // whose MAC is nowhere, is imported without one).
    assert_eq!(lines, BTreeSet::from([5, 6, 8, 13, 14, 15, 16]));
}

#[test]
fn keepalived_conf() {
    let (config, lines) = import(
        "keepalived",
        "keepalived",
        "keepalived.conf",
        &[
            "--mac",
            "198.18.0.22=02:18:00:00:00:22",
            "--gateway-mac",
            "02:18:00:00:00:02",
        ],
    );
    use Forward::*;
    use ServiceFlag::*;
    assert_services(
        &config,
        &[
            (
                "198.18.0.110",
                5060,
                Protocol::Udp,
                Scheduler::Wrr,
                Dr,
                vec![OnePacket],
                vec![("198.18.0.21", 0, 0x21, 100), ("198.18.0.22", 0, 0x22, 50)],
            ),
            (
                "198.18.0.111",
                5060,
                Protocol::Udp,
                Scheduler::Sh,
                Nat,
                vec![SchedFallback, SchedPort],
                vec![
                    ("198.18.0.31", 5080, 0x31, 1),
                    ("198.18.0.32", 5080, 0x32, 2),
                ],
            ),
        ],
    );
    assert_eq!(
        config.services[1].gateway_mac,
        Some([0x02, 0x18, 0, 0, 0, 0x02])
    );
    // 15 vrrp_instance; 36 delay_loop, 44 and 52 MISC_CHECK, 51
    // inhibit_on_failure; 65 persistence_timeout, 69 TCP_CHECK, 73
    // HTTP_GET; 83 fwmark and 86 its real; 91 the TUN service, 93 its
    // lb_kind, 95 its real.
    assert_eq!(
        lines,
        BTreeSet::from([15, 36, 44, 51, 52, 65, 69, 73, 83, 86, 91, 93, 95])
    );
}

#[test]
fn everything_expressed_exits_0() {
    let dir = scratch("complete");
    let input = dir.join("rules");
    std::fs::write(
        &input,
        "-A -u 198.18.0.100:5060 -s rr\n-a -u 198.18.0.100:5060 -r 198.18.0.21:5060 -g -w 1\n",
    )
    .expect("rules");
    let out = tandemctl(&[
        "import",
        "ipvsadm",
        input.to_str().expect("path"),
        "--base",
        fixture("base.toml").to_str().expect("path"),
        "--arp",
        fixture("arp").to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "imported 1 services, 1 real servers; 0 lines not expressed\n"
    );
    let config = Config::parse(&text(&out.stdout)).expect("reads back");
    assert_eq!(config.services.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreadable_files_exit_2_and_write_nothing() {
    let dir = scratch("unreadable");
    let bad_base = dir.join("bad.toml");
    std::fs::write(&bad_base, "[node]\nid = 0\n").expect("bad base");
    let out_file = dir.join("out.toml");
    let save = fixture("ipvsadm.save");
    let base = fixture("base.toml");
    let cases: [(&str, &Path, &Path); 3] = [
        ("a missing source", &dir.join("nope"), &base),
        ("a missing base", &save, &dir.join("nope.toml")),
        ("a base tandem refuses", &save, &bad_base),
    ];
    for (what, input, base) in cases {
        let out = tandemctl(&[
            "import",
            "ipvsadm",
            input.to_str().expect("path"),
            "--base",
            base.to_str().expect("path"),
            "--output",
            out_file.to_str().expect("path"),
        ]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).starts_with("tandemctl: "),
            "{what}: {}",
            text(&out.stderr)
        );
        assert!(!out_file.exists(), "{what}: nothing written");
    }
    let out = tandemctl(&[
        "import",
        "keepalived",
        fixture("keepalived.conf").to_str().expect("path"),
        "--base",
        base.to_str().expect("path"),
        "--mac",
        "198.18.0.22",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad --mac is refused by the argument parser"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
