//! Prometheus's own checker passes on tandemd's metrics (issue 11,
//! finding 9): `promtool check metrics` on the full exposition of a running
//! tandemd at the design maximum (64 services × 32 real servers, sync on),
//! scraped from its metrics endpoint and asked with `tandemctl metrics`.
//!
//! Before the fix, promtool flagged `tandem_sync_lag_seconds` (a gauge with
//! a `quantile` label) and every counter (OpenMetrics names a counter's
//! family without `_total`, which promtool's text-format reader sees as
//! samples without help).
//!
//! promtool comes from Debian's `prometheus` package (`cargo xtask setup`
//! installs it). Without it the test skips, saying so, unless
//! `TANDEM_REQUIRE_PRIVILEGED=1` (`cargo xtask test` as root), where it fails.

mod large_lab;

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use tandem_control::admin::{Request, Response};
use tandem_tests::{in_netns, privileged::REQUIRE_ENV, require_privileged};

/// promtool on PATH, or where Debian's package or `cargo xtask setup` put it.
fn promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
}

/// promtool, or `None` after saying why the test skips (a panic where
/// skipping is forbidden).
fn require_promtool(test: &str) -> Option<PathBuf> {
    if let Some(p) = promtool() {
        return Some(p);
    }
    let reason = "promtool is not installed (`cargo xtask setup` installs it from Debian's `prometheus` package)";
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{test}: {reason}, and {REQUIRE_ENV}=1 forbids skipping it");
    }
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {reason}");
    None
}

/// What `promtool check metrics` says of `text`: its exit status and output.
fn check(promtool: &PathBuf, text: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    let mut stdin = child.stdin.take().expect("stdin");
    let text = text.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().expect("promtool");
    let _ = writer.join();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// One scrape of the endpoint (HTTP/1.0): the status line and the body.
fn scrape(addr: std::net::SocketAddr) -> (String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

#[test]
fn promtool_finds_nothing_to_flag_in_tandemds_metrics() {
    let test = "promtool_finds_nothing_to_flag_in_tandemds_metrics";
    if !require_privileged(test) {
        return;
    }
    let Some(promtool) = require_promtool(test) else {
        return;
    };
    // The checker is not vacuous: what tandemd used to write, it flags.
    let old = "# HELP tandem_sync_lag_seconds Lag.\n# TYPE tandem_sync_lag_seconds gauge\n\
               tandem_sync_lag_seconds{quantile=\"0.5\"} 0.001\n";
    let (ok, said) = check(&promtool, old);
    assert!(
        !ok && said.contains("quantile"),
        "promtool passed a gauge with a quantile label: {said}"
    );

    let d = large_lab::LargeDaemon::start("prom");
    let addr = d.metrics_addr();
    let (status, body) = in_netns(d.ns(), || scrape(addr));
    assert_eq!(status, "HTTP/1.0 200 OK", "{body}");
    let (ok, said) = check(&promtool, &body);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics on the scrape ({} bytes): {said}",
        body.len()
    );
    // The whole exposition was checked: the families that were flagged are in it.
    for family in [
        "tandem_sync_lag_seconds summary",
        "tandem_dispatch_packets_total counter",
        "tandem_real_packets_total counter",
    ] {
        assert!(
            body.contains(&format!("# TYPE {family}\n")),
            "no {family} in the scrape ({} bytes)",
            body.len()
        );
    }

    // `tandemctl metrics` answers the same exposition.
    let Ok(Response::Metrics { text }) = d.request(&Request::Metrics) else {
        panic!("no metrics answer on the admin socket");
    };
    let (ok, said) = check(&promtool, &text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics on `tandemctl metrics` ({} bytes): {said}",
        text.len()
    );
}
