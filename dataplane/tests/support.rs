//! Shared helpers of the dataplane's integration tests.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tandem_dataplane::{
    Dataplane, LoadOptions, RealConfig, RealState, ServiceConfig,
    common::{Forward, Scheduler},
    config::Protocol,
};
use tandem_tests::privileged::{Need, require};

/// True if this test may load BPF programs: the workspace's rule for
/// privileged tests ([`tandem_tests::privileged::require`]), which prints
/// why it skips, or fails under `TANDEM_REQUIRE_PRIVILEGED=1`.
pub fn privileged(test: &str) -> bool {
    require(test, &[Need::Bpf])
}

/// A dataplane with a small connection table (tests do not need 1M).
pub fn load() -> Dataplane {
    Dataplane::load(LoadOptions {
        flow_entries: 65_536,
        nat_entries: 65_536,
    })
    .expect("load XDP object")
}

pub const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 0x100);

pub fn real4(i: u8, weight: u32) -> RealConfig {
    RealConfig {
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10 + i)),
        port: 0,
        mac: [0x02, 0xaa, 0, 0, 0, 10 + i],
        weight,
        state: RealState::Up,
        ifindex: 0,
    }
}

pub fn real6(i: u8, weight: u32) -> RealConfig {
    RealConfig {
        addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0x2, 0, 1, 0, 0, 0, 10 + i as u16)),
        ..real4(i, weight)
    }
}

pub fn service(
    vip: IpAddr,
    port: u16,
    proto: Protocol,
    sched: Scheduler,
    fwd: Forward,
    reals: Vec<RealConfig>,
) -> ServiceConfig {
    ServiceConfig {
        vip,
        port,
        proto,
        scheduler: sched,
        forward: fwd,
        flags: 0,
        mh_size: 65_537,
        client_ifindex: 0,
        gateway_mac: [0x02, 0xbb, 0, 0, 0, 1],
        reals,
    }
}

pub fn client4(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i))
}

pub fn client6(i: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        0x2001,
        0x2,
        0,
        2,
        0,
        0,
        (i >> 16) as u16,
        i as u16,
    ))
}

/// Spawns `sleep 5`, arms the switch for it with a budget that never goes
/// stale during the test, kills it with SIGKILL and waits for the exit
/// fence to mark the entry (within 1 s).
pub fn arm_for_a_child_and_kill_it(dp: &mut Dataplane) {
    assert!(dp.exit_fence_attached(), "the exit fence (tandem_exit_fence on sched_process_exit) is attached");
    let mut child = std::process::Command::new("sleep").arg("5").spawn().expect("spawn sleep");
    dp.arm_dead_man(std::time::Duration::from_secs(10), child.id(), tandem_dataplane::monotonic_ns()).unwrap();
    assert_eq!(dp.dead_man().unwrap().tgid, child.id());
    assert!(!dp.dead_man().unwrap().exited);
    // A stamp keeps the tgid.
    dp.stamp(std::time::Duration::from_secs(10), tandem_dataplane::monotonic_ns()).unwrap();
    assert_eq!(dp.dead_man().unwrap().tgid, child.id());
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while !dp.dead_man().unwrap().exited {
        assert!(std::time::Instant::now() < deadline, "the exit fence did not mark the child's exit within 1 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

