//! Differential test: generated services, real servers and packet
//! sequences go through the real XDP program (`BPF_PROG_TEST_RUN`) and
//! through the reference model; verdicts, output frames, counters, active
//! connection counts and connection tables must agree, and every frame the
//! program forwards must carry valid checksums (checked with pnet, an
//! implementation neither side uses).

mod support;

use std::{
    cell::RefCell,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use pnet_packet::{
    Packet,
    ethernet::{EtherTypes, EthernetPacket},
    ip::IpNextHeaderProtocols,
    ipv4::{self, Ipv4Packet},
    ipv6::Ipv6Packet,
    tcp::{self, TcpPacket},
    udp::{self, UdpPacket},
};
use proptest::{prelude::*, test_runner::TestRunner};
use support::*;
use tandem_dataplane::{
    RealConfig, RealState, ServiceConfig, common::*, config::Protocol, model::Model,
    packet::FrameSpec,
};

#[derive(Clone, Debug)]
struct RealGen {
    weight: u32,
    state: u8,
    port: u16,
    ifindex_sel: u8,
}

#[derive(Clone, Debug)]
struct SvcGen {
    v6: bool,
    tcp: bool,
    vip_sel: u8,
    port_sel: u8,
    sched: u8,
    nat: bool,
    flags: u16,
    mh_size: u32,
    reals: Vec<RealGen>,
}

#[derive(Clone, Debug)]
struct PktGen {
    kind: u8,
    svc: usize,
    client: u8,
    sport_sel: u8,
    tcp_flags_sel: u8,
    vlan: bool,
    opts_words: u8,
    no_udp_csum: bool,
    payload: Vec<u8>,
    /// A SIP message instead of `payload`.
    sip: Option<SipGen>,
    mutate: Option<(usize, u8)>,
    truncate: Option<usize>,
}

/// A SIP payload: one of a few Call-IDs (so that one call arrives from
/// several 5-tuples), full or compact header or none, CRLF or LF.
#[derive(Clone, Debug)]
struct SipGen {
    callid: u8,
    form: u8,
    lf: bool,
    start: u8,
    pad: u8,
}

fn sip_gen() -> impl Strategy<Value = SipGen> {
    (0u8..5, 0u8..8, any::<bool>(), 0u8..5, 0u8..3).prop_map(|(callid, form, lf, start, pad)| SipGen {
        callid,
        form,
        lf,
        start,
        pad,
    })
}

fn sip_payload(g: &SipGen) -> Vec<u8> {
    let eol = if g.lf { "\n" } else { "\r\n" };
    let start = match g.start {
        0 => "INVITE sip:ivr@198.18.0.100 SIP/2.0",
        1 => "BYE sip:ivr@198.18.0.100 SIP/2.0",
        2 => "SIP/2.0 200 OK",
        3 => "ACK sip:ivr SIP/2.0",
        // A keepalive.
        _ => return b"\r\n\r\n".to_vec(),
    };
    let header = match g.form {
        0 | 1 => "Call-ID: ",
        2 => "i: ",
        3 => "call-id:\t",
        4 => "I : ",
        // Look-alikes and no Call-ID at all.
        5 => "X-Call-ID: ",
        6 => "Subject: Call-ID: ",
        _ => "",
    };
    let mut m = format!("{start}{eol}Via: SIP/2.0/UDP 198.19.0.1;branch=z9hG4bK{}{eol}", g.pad);
    for _ in 0..g.pad {
        m += &format!("Record-Route: <sip:proxy.example;lr>{eol}");
    }
    if !header.is_empty() {
        m += &format!("{header}{}-call@198.19.0.1 {eol}", g.callid);
    }
    // A response names BYE in its CSeq now and then (the answer to an
    // IVR's BYE ends the call's count).
    let method = if g.start == 2 && g.pad == 1 { "BYE" } else { "INVITE" };
    m += &format!("CSeq: 1 {method}{eol}{eol}");
    m.into_bytes()
}

#[derive(Clone, Debug)]
struct Case {
    services: Vec<SvcGen>,
    packets: Vec<PktGen>,
    tiny_timeouts: bool,
    /// Give the first TCP service a UDP twin on its VIP and port, both
    /// with `FLAG_SIP_PERSIST` (TCP learning), its reals in reverse order.
    sip_twin: bool,
}

fn real_gen() -> impl Strategy<Value = RealGen> {
    (
        0u32..6,
        prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        prop_oneof![Just(0u16), Just(8080u16)],
        0u8..10,
    )
        .prop_map(|(weight, state, port, ifindex_sel)| RealGen {
            weight,
            state,
            port,
            ifindex_sel,
        })
}

fn svc_gen() -> impl Strategy<Value = SvcGen> {
    (
        any::<bool>(),
        any::<bool>(),
        0u8..2,
        0u8..2,
        0u8..9,
        any::<bool>(),
        // FLAG_SIP_PERSIST (bit 5) in half of the services.
        0u16..64,
        prop_oneof![Just(251u32), Just(1021u32)],
        prop::collection::vec(real_gen(), 1..7),
    )
        .prop_map(
            |(v6, tcp, vip_sel, port_sel, sched, nat, flags, mh_size, reals)| SvcGen {
                v6,
                tcp,
                vip_sel,
                port_sel,
                sched,
                nat,
                flags,
                mh_size,
                reals,
            },
        )
}

fn pkt_gen() -> impl Strategy<Value = PktGen> {
    (
        (0u8..12, 0usize..5, 0u8..6, 0u8..3, 0u8..6),
        (
            prop::bool::weighted(0.1),
            prop_oneof![6 => Just(0u8), 1 => 1u8..4],
            prop::bool::weighted(0.2),
        ),
        (
            prop::collection::vec(any::<u8>(), 0..24),
            prop::option::weighted(0.5, sip_gen()),
        ),
        prop::option::weighted(0.1, (0usize..90, any::<u8>())),
        prop::option::weighted(0.1, 0usize..90),
    )
        .prop_map(
            |(
                (kind, svc, client, sport_sel, tcp_flags_sel),
                (vlan, opts_words, no_udp_csum),
                (payload, sip),
                mutate,
                truncate,
            )| {
                PktGen {
                    kind,
                    svc,
                    client,
                    sport_sel,
                    tcp_flags_sel,
                    vlan,
                    opts_words,
                    no_udp_csum,
                    payload,
                    sip,
                    mutate,
                    truncate,
                }
            },
        )
}

fn case_gen() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(svc_gen(), 1..4),
        prop::collection::vec(pkt_gen(), 10..60),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(services, packets, tiny_timeouts, sip_twin)| Case {
            services,
            packets,
            tiny_timeouts,
            sip_twin,
        })
}

fn vip(g: &SvcGen) -> IpAddr {
    if g.v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0x2,
            0,
            0,
            0,
            0,
            0,
            0x100 + g.vip_sel as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100 + g.vip_sel))
    }
}

fn config(g: &SvcGen) -> ServiceConfig {
    let reals: Vec<RealConfig> = g
        .reals
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let base = if g.v6 {
                real6(i as u8, r.weight)
            } else {
                real4(i as u8, r.weight)
            };
            RealConfig {
                port: if g.nat { r.port } else { 0 },
                state: [RealState::Up, RealState::Draining, RealState::Down][r.state as usize],
                // Mostly XDP_TX (0 or the test-run ingress, lo = 1); sometimes
                // an interface missing from the devmap.
                ifindex: match r.ifindex_sel {
                    0 => 1,
                    1 => 7,
                    _ => 0,
                },
                ..base
            }
        })
        .collect();
    let mut cfg = service(
        vip(g),
        [5060, 5061][g.port_sel as usize],
        if g.tcp { Protocol::Tcp } else { Protocol::Udp },
        Scheduler::ALL[g.sched as usize],
        if g.nat { Forward::Nat } else { Forward::Dr },
        reals,
    );
    cfg.flags = g.flags;
    cfg.mh_size = g.mh_size;
    cfg
}

const TCP_FLAGS: [u8; 6] = [0x02, 0x10, 0x18, 0x11, 0x04, 0x12];

fn frame_for(p: &PktGen, svcs: &[ServiceConfig], model: &Model) -> Vec<u8> {
    let cfg = &svcs[p.svc % svcs.len()];
    let v6 = cfg.vip.is_ipv6();
    // TCP services with Call-ID learning: few 5-tuples, so that data
    // segments often find the connection a SYN opened.
    let few = cfg.proto == Protocol::Tcp && cfg.flags & FLAG_SIP_PERSIST != 0;
    let client_sel = if few { p.client as u32 % 2 } else { p.client as u32 };
    let client = if v6 {
        client6(client_sel)
    } else {
        client4(client_sel)
    };
    let sport = if few { 40000 } else { 40000 + p.sport_sel as u16 };
    let flags = TCP_FLAGS[p.tcp_flags_sel as usize];
    let payload = match &p.sip {
        Some(g) => sip_payload(g),
        None => p.payload.clone(),
    };
    let mut spec = match p.kind {
        // Replies of NAT flows, from the real server back to the client.
        0 | 1 if !model.nat_reverse.is_empty() => {
            let mut keys: Vec<_> = model.nat_reverse.keys().copied().collect();
            keys.sort_by_key(|k| (k.src, k.dst, k.sport, k.dport, k.proto));
            let k = keys[(p.client as usize + p.sport_sel as usize) % keys.len()];
            let ip = |a: [u8; 16]| {
                let v6 = std::net::Ipv6Addr::from(a);
                match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(v6),
                }
            };
            let proto = if k.proto == PROTO_TCP {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            let mut s = FrameSpec::udp(ip(k.src), k.sport, ip(k.dst), k.dport, &payload);
            s.proto = proto;
            s.tcp_flags = 0x18;
            s
        }
        // Not for a service: another destination or another port.
        2 => FrameSpec::udp(
            client,
            sport,
            if v6 { client6(99) } else { client4(99) },
            cfg.port,
            &payload,
        ),
        3 => FrameSpec::udp(client, sport, cfg.vip, 9, &payload),
        _ => {
            let mut s = FrameSpec::udp(client, sport, cfg.vip, cfg.port, &payload);
            s.proto = cfg.proto;
            s.tcp_flags = flags;
            s
        }
    };
    if p.vlan {
        spec.vlan = Some(42);
    }
    if !v6 && p.opts_words > 0 {
        // NOP options (type 1), then end of list.
        spec.ipv4_options = vec![1; p.opts_words as usize * 4];
    }
    spec.udp_no_checksum = p.no_udp_csum;
    let mut f = spec.build();
    if p.vlan && p.client % 3 == 0 {
        // QinQ: a second tag in front of the first.
        f.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
    }
    if let Some((pos, val)) = p.mutate {
        let pos = pos % f.len();
        f[pos] ^= val;
    }
    if let Some(t) = p.truncate {
        f.truncate(t.max(14));
    }
    f
}

/// Checks the IPv4 header and UDP/TCP checksums of a frame the program
/// sent (pnet computes them; 0 and 0xffff are the same one's-complement
/// zero).
fn check_checksums(f: &[u8]) -> Result<(), String> {
    let eth = EthernetPacket::new(f).ok_or("short ethernet")?;
    let (ethertype, l3) = if eth.get_ethertype() == EtherTypes::Vlan {
        (
            EtherTypes::Ipv4.0.max(u16::from_be_bytes([f[16], f[17]])),
            &f[18..],
        )
    } else {
        (eth.get_ethertype().0, &f[14..])
    };
    let same = |a: u16, b: u16| a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0);
    if ethertype == 0x0800 {
        let ip = Ipv4Packet::new(l3).ok_or("short ipv4")?;
        let c = ipv4::checksum(&ip);
        if !same(c, ip.get_checksum()) {
            return Err(format!(
                "ipv4 header checksum {:#06x}, expected {c:#06x}",
                ip.get_checksum()
            ));
        }
        let total = ip.get_total_length() as usize;
        let payload = &l3[ip.get_header_length() as usize * 4..total];
        match ip.get_next_level_protocol() {
            IpNextHeaderProtocols::Udp => {
                let u = UdpPacket::new(payload).ok_or("short udp")?;
                if u.get_checksum() != 0 {
                    let c = udp::ipv4_checksum(&u, &ip.get_source(), &ip.get_destination());
                    if !same(c, u.get_checksum()) {
                        return Err(format!(
                            "udp checksum {:#06x}, expected {c:#06x}",
                            u.get_checksum()
                        ));
                    }
                }
            }
            IpNextHeaderProtocols::Tcp => {
                let t = TcpPacket::new(payload).ok_or("short tcp")?;
                let c = tcp::ipv4_checksum(&t, &ip.get_source(), &ip.get_destination());
                if !same(c, t.get_checksum()) {
                    return Err(format!(
                        "tcp checksum {:#06x}, expected {c:#06x}",
                        t.get_checksum()
                    ));
                }
            }
            _ => {}
        }
    } else if ethertype == 0x86dd {
        let ip = Ipv6Packet::new(l3).ok_or("short ipv6")?;
        let payload = &ip.payload()[..ip.get_payload_length() as usize];
        match ip.get_next_header() {
            IpNextHeaderProtocols::Udp => {
                let u = UdpPacket::new(payload).ok_or("short udp")?;
                let c = udp::ipv6_checksum(&u, &ip.get_source(), &ip.get_destination());
                if !same(c, u.get_checksum()) {
                    return Err(format!(
                        "udp6 checksum {:#06x}, expected {c:#06x}",
                        u.get_checksum()
                    ));
                }
            }
            IpNextHeaderProtocols::Tcp => {
                let t = TcpPacket::new(payload).ok_or("short tcp")?;
                let c = tcp::ipv6_checksum(&t, &ip.get_source(), &ip.get_destination());
                if !same(c, t.get_checksum()) {
                    return Err(format!(
                        "tcp6 checksum {:#06x}, expected {c:#06x}",
                        t.get_checksum()
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[test]
fn privileged_xdp_program_matches_reference_model() {
    if !privileged("privileged_xdp_program_matches_reference_model") {
        return;
    }
    let dp = RefCell::new(load());
    let stats = RefCell::new((0u64, 0u64, 0u64, 0u64));
    let seen = RefCell::new([0u64; REASON_COUNT as usize]);
    let cases: u32 = std::env::var("TANDEM_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&case_gen(), |case| {
        let mut dp = dp.borrow_mut();
        dp.remove_all_services().unwrap();
        dp.clear_flows().unwrap();
        dp.reset_counters().unwrap();
        let mut model = Model::new();
        // Short timeouts with explicit ageing steps (kind 11) make flows
        // expire deterministically on both sides: the kernel's coarse clock
        // cannot be predicted, but no case runs for 10 s.
        let settings = if case.tiny_timeouts {
            Settings {
                udp_timeout_ns: 10 * SEC_NS,
                tcp_timeout_ns: 10 * SEC_NS,
                tcp_fin_timeout_ns: 10 * SEC_NS,
                call_timeout_ns: 10 * SEC_NS,
            }
        } else {
            Settings::default()
        };
        dp.set_settings(&settings).unwrap();
        model.settings = settings;
        let mut svcs: Vec<ServiceConfig> = Vec::new();
        let mut cfgs: Vec<ServiceConfig> = case.services.iter().map(config).collect();
        if case.sip_twin
            && let Some(t) = cfgs.iter_mut().find(|c| c.proto == Protocol::Tcp)
        {
            t.flags |= FLAG_SIP_PERSIST;
            let mut twin = t.clone();
            twin.proto = Protocol::Udp;
            twin.flags &= !FLAG_ONE_PACKET;
            twin.reals.reverse();
            cfgs.push(twin);
        }
        for cfg in cfgs {
            if svcs.iter().any(|s| s.key() == cfg.key()) {
                continue;
            }
            match dp.set_service(&cfg) {
                Ok(img) => {
                    model.apply(&img);
                    svcs.push(cfg);
                }
                // A configuration the validator refuses changes nothing.
                Err(e) => prop_assert!(
                    cfg.validate().is_err(),
                    "set_service failed on a valid config: {e}"
                ),
            }
        }
        prop_assume!(!svcs.is_empty());
        let mut now = 100 * SEC_NS;
        for (i, p) in case.packets.iter().enumerate() {
            if p.kind == 11 && case.tiny_timeouts {
                dp.age_flows(20 * SEC_NS).unwrap();
                model.age_flows(20 * SEC_NS);
                continue;
            }
            if p.kind == 9 && p.tcp_flags_sel == 0 {
                // An IVR reports its load (active channels of a capacity).
                let si = p.svc % svcs.len();
                let id = dp.service(&svcs[si].key()).unwrap().service.id;
                let slot = p.client as u32 % svcs[si].reals.len() as u32;
                let load = RealLoad { active: p.sport_sel as u32, capacity: if p.vlan { 0 } else { 2 } };
                dp.set_real_load(id, slot, load).unwrap();
                model.set_real_load(id, slot, load);
                continue;
            }
            if p.kind == 10 && p.tcp_flags_sel < 2 {
                // Reconfigure mid-stream: one real server goes down (or
                // comes back), expire_nodest toggles.
                let si = p.svc % svcs.len();
                let cfg = &mut svcs[si];
                let ri = p.client as usize % cfg.reals.len();
                cfg.reals[ri].state = if cfg.reals[ri].state == RealState::Down {
                    RealState::Up
                } else {
                    RealState::Down
                };
                if p.sport_sel == 1 {
                    cfg.flags ^= FLAG_EXPIRE_NODEST;
                }
                let img = dp.set_service(cfg).unwrap();
                model.apply(&img);
                continue;
            }
            let frame = frame_for(p, &svcs, &model);
            now += 1_000;
            let got = dp.test_run(&frame).expect("BPF_PROG_TEST_RUN");
            let (verdict, out) = model.process(&frame, 1, now);
            prop_assert_eq!(
                got.verdict,
                verdict,
                "packet {}: verdict differs for {:02x?}",
                i,
                frame
            );
            prop_assert_eq!(&got.frame, &out, "packet {}: output frame differs", i);
            stats.borrow_mut().0 += 1;
            if (verdict == XDP_TX || verdict == XDP_REDIRECT)
                && p.mutate.is_none()
                && p.truncate.is_none()
            {
                if let Err(e) = check_checksums(&got.frame) {
                    prop_assert!(false, "packet {}: {}: {:02x?}", i, e, got.frame);
                }
                stats.borrow_mut().1 += 1;
            }
        }
        let kr = dp.reasons().unwrap();
        for (r, n) in &kr {
            seen.borrow_mut()[*r as usize] += n;
        }
        for (r, n) in &kr {
            prop_assert_eq!(
                *n,
                model.reason(*r),
                "counter {}: kernel {:?} model {:?}",
                r.name(),
                kr.iter().filter(|x| x.1 > 0).collect::<Vec<_>>(),
                Reason::ALL
                    .iter()
                    .map(|x| (*x, model.reason(*x)))
                    .filter(|x| x.1 > 0)
                    .collect::<Vec<_>>()
            );
        }
        for cfg in &svcs {
            let img = dp.service(&cfg.key()).unwrap().clone();
            let id = img.service.id;
            let sc = dp.service_counters(id).unwrap();
            prop_assert_eq!(
                sc,
                model.service_stats[id as usize],
                "service {} counters",
                cfg.name()
            );
            for slot in 0..img.service.n_reals {
                let s = (id * MAX_REALS + slot) as usize;
                prop_assert_eq!(
                    dp.real_counters(id, slot).unwrap(),
                    model.real_stats[s],
                    "real counters {} slot {}",
                    cfg.name(),
                    slot
                );
                prop_assert_eq!(
                    dp.active_conns(id, slot).unwrap(),
                    model.active_conns(id, slot),
                    "active conns {} slot {}",
                    cfg.name(),
                    slot
                );
            }
        }
        let mut kflows: Vec<(FlowKey, u32, u32)> = dp
            .flows()
            .into_iter()
            .map(|(k, v)| (k, v.real_idx, v.flags))
            .collect();
        let mut mflows: Vec<(FlowKey, u32, u32)> = model
            .flows
            .iter()
            .map(|(k, v)| (*k, v.real_idx, v.flags))
            .collect();
        kflows.sort_by_key(|f| (f.0.src, f.0.dst, f.0.sport, f.0.dport, f.0.proto));
        mflows.sort_by_key(|f| (f.0.src, f.0.dst, f.0.sport, f.0.dport, f.0.proto));
        prop_assert_eq!(&kflows, &mflows, "connection tables differ");
        stats.borrow_mut().2 += kflows.len() as u64;
        let mut kcalls: Vec<(CallKey, u32, u32)> =
            dp.calls().into_iter().map(|(k, v)| (k, v.real_idx, v.flags)).collect();
        let mut mcalls: Vec<(CallKey, u32, u32)> =
            model.calls.iter().map(|(k, v)| (*k, v.real_idx, v.flags)).collect();
        kcalls.sort_by_key(|c| (c.0.service_id, c.0.hash));
        mcalls.sort_by_key(|c| (c.0.service_id, c.0.hash));
        prop_assert_eq!(&kcalls, &mcalls, "call tables differ");
        stats.borrow_mut().3 += kcalls.len() as u64;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (packets, checked, flows, calls) = *stats.borrow();
    eprintln!(
        "differential: {cases} cases, {packets} packets, {checked} forwarded frames checksum-verified, {flows} flows and {calls} calls compared"
    );
    assert!(packets >= 1000, "only {packets} packets were compared");
    // The generated cases must reach every interesting path, or the
    // comparison says little.
    let seen = seen.borrow();
    for r in [
        Reason::ForwardDr,
        Reason::ForwardNat,
        Reason::ReverseNat,
        Reason::NotService,
        Reason::NoReal,
        Reason::TcpNoFlow,
        Reason::FlowExpired,
        Reason::NodestExpired,
        Reason::RedirectFailed,
        Reason::DoubleVlan,
        Reason::SipCallIdNew,
        Reason::SipCallIdHit,
        Reason::SipNoCallId,
        Reason::SipCallIdExpired,
        Reason::SipCallIdLearned,
    ] {
        eprintln!("  {:>16}: {}", r.name(), seen[r as usize]);
        assert!(
            seen[r as usize] > 0,
            "no generated packet took the {} path",
            r.name()
        );
    }
    // Printed, not required (dataplane/tests/sip.rs covers it directly).
    let r = Reason::SipLearnNoTarget;
    eprintln!("  {:>16}: {}", r.name(), seen[r as usize]);
    assert!(
        checked >= 100,
        "only {checked} forwarded frames were checked"
    );
}
