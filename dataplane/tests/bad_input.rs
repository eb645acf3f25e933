//! Malformed and unusual frames: every truncation point of valid frames,
//! bad IHL and length fields, IPv4 options, fragments, double VLAN,
//! zero-length UDP. The program must not crash or read out of bounds (the
//! verifier guarantees the latter; these check the verdicts), must pass the
//! frame untouched with the right reason counter, and must never rewrite a
//! frame it did not fully understand.

mod support;

use std::net::IpAddr;

use support::*;
use tandem_dataplane::{
    Dataplane,
    common::*,
    config::Protocol,
    model::{self, Model},
    packet::FrameSpec,
};

fn setup() -> (Dataplane, Model) {
    let mut dp = load();
    let mut m = Model::new();
    for (vip, port, proto, fwd) in [
        (IpAddr::V4(VIP4), 5060, Protocol::Udp, Forward::Dr),
        (IpAddr::V4(VIP4), 5061, Protocol::Tcp, Forward::Nat),
        (IpAddr::V6(VIP6), 5060, Protocol::Udp, Forward::Dr),
    ] {
        let reals = (0..2)
            .map(|i| {
                if vip.is_ipv6() {
                    real6(i, 1)
                } else {
                    real4(i, 1)
                }
            })
            .collect();
        let img = dp
            .set_service(&service(vip, port, proto, Scheduler::Rr, fwd, reals))
            .unwrap();
        m.apply(&img);
    }
    (dp, m)
}

/// Runs `frame`, expects PASS with the frame untouched and exactly one
/// more count of `reason`.
fn expect_pass(dp: &mut Dataplane, frame: &[u8], reason: Reason, what: &str) {
    let before = dp.reason(reason).unwrap();
    let total_before = dp.total_reasons().unwrap();
    let r = dp
        .test_run(frame)
        .unwrap_or_else(|e| panic!("{what}: test run failed: {e}"));
    assert_eq!(r.verdict, XDP_PASS, "{what}: verdict");
    assert_eq!(r.frame, frame, "{what}: a passed frame must be untouched");
    assert_eq!(
        dp.reason(reason).unwrap(),
        before + 1,
        "{what}: counter {}",
        reason.name()
    );
    assert_eq!(
        dp.total_reasons().unwrap(),
        total_before + 1,
        "{what}: exactly one reason counted"
    );
}

fn valid_frames() -> Vec<(&'static str, Vec<u8>)> {
    let v4 = IpAddr::V4(VIP4);
    let v6 = IpAddr::V6(VIP6);
    let mut opts = FrameSpec::tcp(client4(1), 40000, v4, 5061, 0x02, b"SYN with options");
    opts.ipv4_options = vec![0x94, 0x04, 0, 0, 1, 1, 1, 0]; // router alert, NOPs, EOL
    let mut vlan = FrameSpec::udp(client4(2), 40001, v4, 5060, b"tagged");
    vlan.vlan = Some(100);
    vec![
        (
            "ipv4 udp",
            FrameSpec::udp(client4(3), 40002, v4, 5060, b"INVITE sip:ivr SIP/2.0").build(),
        ),
        ("ipv4 tcp with options", opts.build()),
        (
            "ipv6 udp",
            FrameSpec::udp(client6(4), 40003, v6, 5060, b"OPTIONS").build(),
        ),
        ("802.1q ipv4 udp", vlan.build()),
    ]
}

#[test]
fn privileged_every_truncation_point_passes_with_its_reason() {
    if !privileged("privileged_every_truncation_point_passes_with_its_reason") {
        return;
    }
    let (mut dp, _) = setup();
    let mut checked = 0;
    for (what, frame) in valid_frames() {
        for len in 0..frame.len() {
            let cut = &frame[..len];
            // The kernel refuses to test-run frames shorter than an Ethernet
            // header (no driver delivers those); the program never sees them.
            if len < 14 {
                assert!(
                    dp.test_run(cut).is_err(),
                    "{what}: {len}-byte frame should be refused by test_run"
                );
                continue;
            }
            let expected = model::parse(cut).expect_err("a truncated frame must not parse");
            expect_pass(
                &mut dp,
                cut,
                expected,
                &format!("{what} cut to {len} bytes"),
            );
            checked += 1;
        }
    }
    assert!(checked > 150, "checked {checked} truncations");
}

#[test]
fn privileged_malformed_headers_pass_with_the_documented_reason() {
    if !privileged("privileged_malformed_headers_pass_with_the_documented_reason") {
        return;
    }
    let (mut dp, _) = setup();
    let v4 = IpAddr::V4(VIP4);
    let base = FrameSpec::udp(client4(9), 40009, v4, 5060, b"payload").build();
    let l3 = 14;

    let mut f = base.clone();
    f[l3] = 0x44; // IHL 4 (16 bytes) < 20
    expect_pass(&mut dp, &f, Reason::BadIpv4Header, "ihl 4");
    let mut f = base.clone();
    f[l3] = 0x4f; // IHL 15 (60 bytes) > total length
    expect_pass(
        &mut dp,
        &f,
        Reason::BadIpv4Length,
        "ihl 15 beyond total length",
    );
    let mut f = base.clone();
    f[l3] = 0x65; // version 6 in an IPv4 frame
    expect_pass(
        &mut dp,
        &f,
        Reason::BadIpv4Header,
        "version 6 with ethertype ipv4",
    );
    let mut f = base.clone();
    f[l3 + 2..l3 + 4].copy_from_slice(&2000u16.to_be_bytes());
    expect_pass(
        &mut dp,
        &f,
        Reason::BadIpv4Length,
        "total length beyond frame",
    );
    let mut f = base.clone();
    f[l3 + 2..l3 + 4].copy_from_slice(&10u16.to_be_bytes());
    expect_pass(
        &mut dp,
        &f,
        Reason::BadIpv4Length,
        "total length below header",
    );
    let mut f = base.clone();
    f[l3 + 6] |= 0x20; // more fragments
    expect_pass(&mut dp, &f, Reason::Ipv4Fragment, "first fragment");
    let mut f = base.clone();
    f[l3 + 6..l3 + 8].copy_from_slice(&0x0010u16.to_be_bytes()); // offset 128
    expect_pass(&mut dp, &f, Reason::Ipv4Fragment, "later fragment");
    let mut f = base.clone();
    f[l3 + 9] = 1; // ICMP
    expect_pass(&mut dp, &f, Reason::NotUdpTcp, "icmp");
    let l4 = l3 + 20;
    let mut f = base.clone();
    f[l4 + 4..l4 + 6].copy_from_slice(&0u16.to_be_bytes());
    expect_pass(&mut dp, &f, Reason::BadUdpLength, "zero-length udp");
    let mut f = base.clone();
    f[l4 + 4..l4 + 6].copy_from_slice(&500u16.to_be_bytes());
    expect_pass(
        &mut dp,
        &f,
        Reason::BadUdpLength,
        "udp length beyond ip payload",
    );

    // Double VLAN (QinQ), and 802.1ad outer tag.
    let mut f = base[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x81, 0x00, 0x00, 0x65]);
    f.extend_from_slice(&base[12..]);
    expect_pass(&mut dp, &f, Reason::DoubleVlan, "double 802.1q");
    let mut f = base[..12].to_vec();
    f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x65]);
    f.extend_from_slice(&base[12..]);
    expect_pass(&mut dp, &f, Reason::DoubleVlan, "802.1ad + 802.1q");

    // TCP with a bad data offset, and a non-SYN segment without a flow.
    let t = FrameSpec::tcp(client4(5), 40100, v4, 5061, 0x02, b"").build();
    let mut f = t.clone();
    f[l4 + 12] = 0x40; // data offset 4
    expect_pass(&mut dp, &f, Reason::BadTcpHeader, "tcp data offset 4");
    let mut f = t.clone();
    f[l4 + 12] = 0xf0; // data offset 15 > segment
    expect_pass(
        &mut dp,
        &f,
        Reason::BadTcpHeader,
        "tcp data offset beyond segment",
    );
    let ack = FrameSpec::tcp(client4(5), 40101, v4, 5061, 0x10, b"").build();
    expect_pass(&mut dp, &ack, Reason::TcpNoFlow, "ack without a flow");

    // IPv6: extension header, fragment header, bad payload length, bad version.
    let six = FrameSpec::udp(client6(7), 40200, IpAddr::V6(VIP6), 5060, b"v6").build();
    let mut f = six.clone();
    f[l3 + 6] = 0; // hop-by-hop options
    expect_pass(&mut dp, &f, Reason::Ipv6ExtHeader, "ipv6 hop-by-hop");
    let mut f = six.clone();
    f[l3 + 6] = 44;
    expect_pass(&mut dp, &f, Reason::Ipv6Fragment, "ipv6 fragment header");
    let mut f = six.clone();
    f[l3 + 4..l3 + 6].copy_from_slice(&3000u16.to_be_bytes());
    expect_pass(
        &mut dp,
        &f,
        Reason::BadIpv6Length,
        "ipv6 payload length beyond frame",
    );
    let mut f = six.clone();
    f[l3] = 0x40;
    expect_pass(&mut dp, &f, Reason::BadIpv6Header, "ipv6 version 4");

    // Not IP at all, and ARP.
    let mut f = base.clone();
    f[12..14].copy_from_slice(&0x88ccu16.to_be_bytes()); // LLDP
    expect_pass(&mut dp, &f, Reason::NotIp, "lldp");
    let mut f = base.clone();
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    expect_pass(&mut dp, &f, Reason::Arp, "arp");
}

#[test]
fn privileged_ipv4_options_and_odd_frames_are_dispatched_correctly() {
    if !privileged("privileged_ipv4_options_and_odd_frames_are_dispatched_correctly") {
        return;
    }
    let (mut dp, mut m) = setup();
    // IPv4 with 40 bytes of options through NAT: rewritten at the right
    // offsets, identical to the model.
    let mut spec = FrameSpec::tcp(client4(11), 40300, IpAddr::V4(VIP4), 5061, 0x02, b"hello");
    spec.ipv4_options = vec![1; 40];
    let f = spec.build();
    let r = dp.test_run(&f).unwrap();
    let (v, out) = m.process(&f, 1, 1);
    assert_eq!(r.verdict, XDP_TX);
    assert_eq!((r.verdict, &r.frame), (v, &out));
    assert_ne!(r.frame, f, "NAT rewrote the frame");
    // UDP with checksum 0 over IPv4 stays 0 after NAT, and an empty UDP payload works.
    let mut spec = FrameSpec::udp(client4(12), 40301, IpAddr::V4(VIP4), 5060, b"");
    spec.udp_no_checksum = true;
    let f = spec.build();
    let r = dp.test_run(&f).unwrap();
    assert_eq!(r.verdict, XDP_TX);
    assert_eq!(&r.frame[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
    // Ethernet padding after the IP packet (minimum frame size) is fine.
    let mut f = FrameSpec::udp(client4(13), 40302, IpAddr::V4(VIP4), 5060, b"x").build();
    f.resize(60, 0);
    assert_eq!(dp.test_run(&f).unwrap().verdict, XDP_TX);
    // Binary garbage of every length from 14 to 200 never crashes and is
    // never rewritten unless it parses as a service packet.
    let mut seed = 0x1234_5678u32;
    for len in 14..200usize {
        let g: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        let r = dp.test_run(&g).unwrap();
        let (v, out) = m.process(&g, 1, 2);
        assert_eq!((r.verdict, &r.frame), (v, &out), "garbage of {len} bytes");
    }
}

/// SIP payloads without a usable Call-ID, to services with
/// `FLAG_SIP_PERSIST`: never dropped for it, forwarded by the connection
/// table, counted `SipNoCallId`, the same as the model.
#[test]
fn privileged_sip_payloads_without_a_usable_call_id_fall_back() {
    if !privileged("privileged_sip_payloads_without_a_usable_call_id_fall_back") {
        return;
    }
    let mut dp = load();
    let mut m = Model::new();
    let vip = IpAddr::V4(VIP4);
    for (proto, fwd) in [(Protocol::Udp, Forward::Dr), (Protocol::Tcp, Forward::Nat)] {
        let mut cfg = service(vip, 5060, proto, Scheduler::Rr, fwd, (0..2).map(|i| real4(i, 1)).collect());
        cfg.flags = FLAG_SIP_PERSIST;
        m.apply(&dp.set_service(&cfg).unwrap());
    }
    let now = std::cell::Cell::new(1_000u64);
    let check = |dp: &mut Dataplane, m: &mut Model, f: &[u8], what: &str| -> Vec<u8> {
        now.set(now.get() + 1_000);
        let now = now.get();
        let before = dp.reason(Reason::SipNoCallId).unwrap();
        let r = dp.test_run(f).unwrap_or_else(|e| panic!("{what}: {e}"));
        let (v, out) = m.process(f, 1, now);
        assert_eq!((r.verdict, &r.frame), (v, &out), "{what}: kernel vs model");
        assert_eq!(r.verdict, XDP_TX, "{what}: forwarded");
        assert_eq!(dp.reason(Reason::SipNoCallId).unwrap(), before + 1, "{what}: counted");
        r.frame
    };
    // Huge headers: the Call-ID is beyond the scan window.
    let mut big = b"INVITE sip:ivr@198.18.0.100 SIP/2.0\r\n".to_vec();
    while big.len() < 1100 {
        big.extend_from_slice(b"Via: SIP/2.0/UDP proxy.example.net:5060;branch=z9hG4bK-long-branch\r\n");
    }
    big.extend_from_slice(b"Call-ID: too-deep@198.19.0.1\r\n\r\n");
    let f = FrameSpec::udp(client4(1), 5060, vip, 5060, &big).build();
    check(&mut dp, &mut m, &f, "Call-ID beyond the window");
    // A Call-ID cut off by the end of the datagram; padding after the IP
    // packet (which would end the line) is not payload.
    let mut f = FrameSpec::udp(client4(2), 5060, vip, 5060, b"INVITE x SIP/2.0\r\nCall-ID: cut").build();
    f.extend_from_slice(b"\r\n\r\n");
    check(&mut dp, &mut m, &f, "Call-ID cut by the datagram's end");
    // The UDP length ends the payload before the line end that follows.
    let mut f = FrameSpec::udp(client4(3), 5060, vip, 5060, b"INVITE x SIP/2.0\r\nCall-ID: abc\r\n").build();
    let ulen = u16::from_be_bytes([f[38], f[39]]) - 3;
    f[38..40].copy_from_slice(&ulen.to_be_bytes());
    check(&mut dp, &mut m, &f, "UDP length shorter than the IP payload");
    // Binary garbage on 5060 of many lengths, up to past the window.
    let mut seed = 0x9e37_79b9u32;
    for len in (0..1200usize).step_by(37) {
        let g: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        let f = FrameSpec::udp(client4(4), 5060, vip, 5060, &g).build();
        check(&mut dp, &mut m, &f, &format!("garbage of {len} bytes"));
    }
    assert!(dp.calls().is_empty(), "no call from any of these");
    // A Call-ID split over two TCP segments: not learned, the connection
    // keeps its real server.
    let seg = |flags: u8, payload: &[u8]| FrameSpec::tcp(client4(5), 41000, vip, 5060, flags, payload).build();
    now.set(now.get() + 1_000);
    let r = dp.test_run(&seg(0x02, b"")).unwrap();
    m.process(&seg(0x02, b""), 1, now.get());
    let real = r.frame[33];
    let out = check(&mut dp, &mut m, &seg(0x18, b"INVITE sip:ivr SIP/2.0\r\nVia: v\r\nCall-ID: split-"), "first half");
    assert_eq!(out[33], real);
    let out = check(&mut dp, &mut m, &seg(0x18, b"call@198.19.0.1\r\nCSeq: 1 INVITE\r\n\r\n"), "second half");
    assert_eq!(out[33], real);
    assert_eq!(dp.reason(Reason::SipCallIdLearned).unwrap(), 0);
    assert!(dp.calls().is_empty());
    for r in Reason::ALL {
        assert_eq!(dp.reason(r).unwrap(), m.reason(r), "counter {}", r.name());
    }
}
