//! The link monitor against the kernel, in a network namespace the test
//! creates: a change it missed because its receive queue overflowed is
//! still found (issue 10, defect 6: ENOBUFS was taken for "no data").

use std::{os::fd::AsRawFd, process::Command, time::Duration};

use tandem_control::link::LinkMonitor;
use tandem_tests::{in_netns, require_privileged};

fn ip(ns: &str, args: &str) {
    let st = Command::new("ip")
        .args(["-n", ns])
        .args(args.split_whitespace())
        .status()
        .expect("ip");
    assert!(st.success(), "ip -n {ns} {args}");
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn privileged_link_monitor_finds_a_change_lost_to_an_overrun() {
    if !require_privileged("privileged_link_monitor_finds_a_change_lost_to_an_overrun") {
        return;
    }
    let ns = Netns(format!("tl-link-{}", std::process::id()));
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns.0])
            .status()
            .expect("ip")
            .success()
    );
    ip(&ns.0, "link add w0 type veth peer name w1");
    ip(&ns.0, "link add n0 type veth peer name n1");
    for l in ["w0", "w1", "n0", "n1"] {
        ip(&ns.0, &format!("link set {l} up"));
    }
    let mut mon = in_netns(&ns.0, || {
        let idx = nix::net::if_::if_nametoindex("w0").expect("w0");
        let mut m = LinkMonitor::new(&[("w0".to_string(), idx)]).expect("monitor");
        // The smallest receive queue the kernel allows.
        let size: libc::c_int = 1;
        // SAFETY: setsockopt on the monitor's own socket with a valid int.
        let rc = unsafe {
            libc::setsockopt(
                m.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &size as *const _ as *const libc::c_void,
                4,
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUFFORCE");
        // Wait for carrier, then start from a known state.
        for _ in 0..100 {
            m.read_changes();
            if m.down().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    });
    assert!(mon.down().is_empty(), "w0 up at the start");
    // Fill the queue with changes of a link nobody watches, then take the
    // watched one down: its notification finds the queue full.
    for _ in 0..40 {
        ip(&ns.0, "link set n1 down");
        ip(&ns.0, "link set n1 up");
    }
    ip(&ns.0, "link set w0 down");
    let mut changes = Vec::new();
    for _ in 0..50 {
        changes.extend(mon.read_changes());
        if !mon.down().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        mon.overruns() > 0,
        "the test did not overflow the queue (no overrun seen)"
    );
    assert_eq!(
        mon.down(),
        vec!["w0".to_string()],
        "the lost change is found; changes reported: {changes:?}"
    );
    assert!(
        changes.contains(&("w0".to_string(), false)),
        "reported as a change: {changes:?}"
    );
    // And it comes back.
    ip(&ns.0, "link set w0 up");
    for _ in 0..50 {
        mon.read_changes();
        if mon.down().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(mon.down().is_empty(), "w0 up again");
}
