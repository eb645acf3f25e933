mod support;

use std::net::IpAddr;

use support::*;
use tandem_dataplane::{
    common::{Forward, Reason, Scheduler, XDP_PASS, XDP_TX},
    config::Protocol,
    packet::FrameSpec,
};

#[test]
fn privileged_loads_and_forwards_one_udp_packet_dr() {
    if !privileged("privileged_loads_and_forwards_one_udp_packet_dr") {
        return;
    }
    let mut dp = load();
    let cfg = service(
        IpAddr::V4(VIP4),
        5060,
        Protocol::Udp,
        Scheduler::Rr,
        Forward::Dr,
        vec![real4(1, 1), real4(2, 1)],
    );
    let img = dp.set_service(&cfg).expect("set service");
    let frame = FrameSpec::udp(client4(1), 40000, IpAddr::V4(VIP4), 5060, b"INVITE").build();
    let r = dp.test_run(&frame).expect("test run");
    assert_eq!(r.verdict, XDP_TX);
    assert_eq!(&r.frame[0..6], &real4(1, 1).mac);
    assert_eq!(&r.frame[12..], &frame[12..]);
    assert_eq!(dp.reason(Reason::ForwardDr).unwrap(), 1);
    assert_eq!(dp.real_counters(img.service.id, 0).unwrap().new_flows, 1);
    let other = FrameSpec::udp(client4(1), 40000, client4(2), 5060, b"x").build();
    assert_eq!(dp.test_run(&other).unwrap().verdict, XDP_PASS);
    assert_eq!(dp.reason(Reason::NotService).unwrap(), 1);
}
