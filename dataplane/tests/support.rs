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
