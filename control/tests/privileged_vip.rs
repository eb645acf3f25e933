//! VIP takeover in a network namespace of the test's own: address add and
//! remove over rtnetlink, gratuitous ARP captured on the veth peer, and the
//! time an add + GARP takes. Needs root, network namespaces and `ip`; prints
//! `SKIP` otherwise (fails instead with `TANDEM_REQUIRE_PRIVILEGED=1`), by
//! the workspace's rule ([`tandem_tests::require_privileged`]).

use std::{
    fs::File,
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    process::Command,
    time::{Duration, Instant},
};

use tandem_control::vip::{AddressSocket, Change, GarpSender, Interface, Vip, VipError};
use tandem_tests::require_privileged;

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 100);

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace with a veth pair `va` (198.18.200.1/24) ↔ `vb`
/// (198.18.200.2/24), both up; deleted on drop, also after a panic.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("tdm-{tag}-{}", std::process::id());
        // A leftover of an earlier run with the same pid.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        let n = ns.name.as_str();
        ip(&[
            "-n", n, "link", "add", "va", "type", "veth", "peer", "name", "vb",
        ]);
        ip(&["-n", n, "addr", "add", "198.18.200.1/24", "dev", "va"]);
        ip(&["-n", n, "addr", "add", "198.18.200.2/24", "dev", "vb"]);
        ip(&["-n", n, "link", "set", "va", "up"]);
        ip(&["-n", n, "link", "set", "vb", "up"]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `f` on a thread that has entered the namespace.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns {path}: {e}"));
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// IPv4 addresses of `dev` as `ip -j addr` sees them.
    fn addresses(&self, dev: &str) -> Vec<String> {
        let out = ip(&["-j", "-n", &self.name, "-4", "addr", "show", "dev", dev]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j output is JSON");
        v.as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| {
                Some(format!(
                    "{}/{}",
                    a["local"].as_str()?,
                    a["prefixlen"].as_u64()?
                ))
            })
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// An AF_PACKET socket receiving ARP frames on one interface.
fn arp_capture(ifindex: u32) -> OwnedFd {
    let proto = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: plain socket(2), checked below.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            proto as i32,
        )
    };
    assert!(
        raw >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: fresh descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: zeroed sockaddr_ll is valid; fields set below.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = proto;
    sa.sll_ifindex = ifindex as i32;
    // SAFETY: sa valid for its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: tv valid for its size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    fd
}

/// Frames received within the socket's timeout, at most `max`.
fn receive_frames(fd: &OwnedFd, max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while out.len() < max && Instant::now() < deadline {
        let mut buf = [0u8; 2048];
        // SAFETY: buf valid for its length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            break;
        }
        out.push(buf[..n as usize].to_vec());
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn privileged_vip_add_remove_idempotent() {
    if !require_privileged("privileged_vip_add_remove_idempotent") {
        return;
    }
    let ns = Netns::new("vipadd");
    let changes = ns.run(|| {
        let iface = Interface::by_name("va").expect("va");
        let mut nl = AddressSocket::open().expect("netlink");
        let a1 = nl.add(&iface, VIP, 32).expect("add");
        let a2 = nl.add(&iface, VIP, 32).expect("add again");
        let listed = nl.list(&iface).expect("dump");
        (iface, a1, a2, listed)
    });
    let (iface, a1, a2, listed) = changes;
    assert_eq!((a1, a2), (Change::Added, Change::AlreadyPresent));
    assert!(listed.contains(&(VIP, 32)), "netlink dump: {listed:?}");
    assert!(
        listed.contains(&(Ipv4Addr::new(198, 18, 200, 1), 24)),
        "netlink dump: {listed:?}"
    );
    assert!(
        ns.addresses("va").contains(&format!("{VIP}/32")),
        "{:?}",
        ns.addresses("va")
    );
    assert!(!ns.addresses("vb").contains(&format!("{VIP}/32")));

    let (r1, r2, listed) = ns.run(|| {
        let mut nl = AddressSocket::open().expect("netlink");
        let r1 = nl.remove(&iface, VIP).expect("remove");
        let r2 = nl.remove(&iface, VIP).expect("remove again");
        (r1, r2, nl.list(&iface).expect("dump"))
    });
    assert_eq!((r1, r2), (Change::Removed, Change::AlreadyAbsent));
    assert!(!listed.iter().any(|(a, _)| *a == VIP), "{listed:?}");
    assert!(!ns.addresses("va").contains(&format!("{VIP}/32")));
    // The interface's own address is untouched.
    assert!(ns.addresses("va").contains(&"198.18.200.1/24".to_string()));
}

#[test]
fn privileged_vip_errors_name_interface_address_errno() {
    if !require_privileged("privileged_vip_errors_name_interface_address_errno") {
        return;
    }
    let ns = Netns::new("viperr");
    let msg = ns.run(|| {
        let mut nl = AddressSocket::open().expect("netlink");
        let ghost = Interface {
            name: "ghost0".into(),
            index: 999_999,
        };
        match nl.add(&ghost, VIP, 32) {
            Err(e @ VipError::Address { .. }) => e.to_string(),
            other => panic!("expected an address error, got {other:?}"),
        }
    });
    assert!(
        msg.contains("ghost0") && msg.contains("198.18.200.100/32"),
        "{msg}"
    );
    assert!(msg.contains(&format!("os error {}", libc::ENODEV)), "{msg}");
    println!("error for a missing interface: {msg}");
    // Loopback is no Ethernet: refused with its hardware type.
    let e = ns.run(|| {
        let lo = Interface::by_name("lo").expect("lo");
        GarpSender::open(&lo, VIP).err().map(|e| e.to_string())
    });
    assert_eq!(
        e.as_deref(),
        Some("interface `lo` is not Ethernet (hardware type 772)")
    );
}

#[test]
fn privileged_garp_burst_captured_on_peer() {
    if !require_privileged("privileged_garp_burst_captured_on_peer") {
        return;
    }
    let ns = Netns::new("garp");
    let (mac, frames) = ns.run(|| {
        let vb = Interface::by_name("vb").expect("vb");
        let capture = arp_capture(vb.index);
        let va = Interface::by_name("va").expect("va");
        let garp = GarpSender::open(&va, VIP).expect("garp socket");
        garp.send_burst(5, Duration::from_millis(2)).expect("burst");
        (garp.mac(), receive_frames(&capture, 16))
    });
    let ours: Vec<_> = frames
        .iter()
        .filter(|f| f.len() >= 42 && f[28..32] == VIP.octets())
        .collect();
    assert_eq!(
        ours.len(),
        5,
        "captured {} ARP frames, {} for the VIP",
        frames.len(),
        ours.len()
    );
    for f in ours {
        assert_eq!(&f[0..6], &[0xff; 6], "broadcast destination");
        assert_eq!(&f[6..12], &mac, "source MAC is va's");
        assert_eq!(&f[12..14], &[0x08, 0x06], "ARP ethertype");
        assert_eq!(
            &f[14..22],
            &[0, 1, 8, 0, 6, 4, 0, 1],
            "Ethernet/IPv4 ARP request"
        );
        assert_eq!(&f[22..28], &mac, "sender hardware address");
        assert_eq!(&f[28..32], &VIP.octets(), "sender protocol address");
        assert_eq!(&f[32..38], &[0; 6], "target hardware address");
        assert_eq!(&f[38..42], &VIP.octets(), "target protocol address");
    }
}

#[test]
fn privileged_vip_take_time() {
    if !require_privileged("privileged_vip_take_time") {
        return;
    }
    let ns = Netns::new("viptime");
    let (take, release, captured) = ns.run(|| {
        let vb = Interface::by_name("vb").expect("vb");
        let capture = arp_capture(vb.index);
        let mut vip = Vip::open("va", VIP).expect("vip");
        let (mut take, mut release) = (Vec::new(), Vec::new());
        for _ in 0..50 {
            let t = Instant::now();
            assert_eq!(vip.take().expect("take"), Change::Added);
            take.push(t.elapsed());
            assert!(vip.is_present().expect("dump"));
            let t = Instant::now();
            assert_eq!(vip.release().expect("release"), Change::Removed);
            release.push(t.elapsed());
        }
        let captured = receive_frames(&capture, 200)
            .iter()
            .filter(|f| f.len() >= 42 && f[28..32] == VIP.octets())
            .count();
        take.sort();
        release.sort();
        (take, release, captured)
    });
    assert_eq!(captured, 50, "one GARP per take");
    println!(
        "VIP take (address add + 1 GARP), 50 runs: min {:?} p50 {:?} p99 {:?} max {:?}",
        take[0],
        percentile(&take, 0.5),
        percentile(&take, 0.99),
        take[take.len() - 1]
    );
    println!(
        "VIP release (address remove), 50 runs: min {:?} p50 {:?} max {:?}",
        release[0],
        percentile(&release, 0.5),
        release[release.len() - 1]
    );
    // Generous bound (a loaded 2-core CI machine); the point is "not a fork+exec".
    assert!(
        percentile(&take, 0.5) < Duration::from_millis(5),
        "take p50 {:?}",
        percentile(&take, 0.5)
    );
}
