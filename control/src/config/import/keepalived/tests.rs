use super::*;
use super::tree::{Tok, tokens};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

use crate::config::import::test_support::{causes, lines};

#[test]
fn a_dr_service_with_weights() {
    let i = parse(
        "virtual_server 198.18.0.110 5060 {\n\
         lb_algo wrr\n\
         lb_kind DR\n\
         protocol UDP\n\
         real_server 198.18.0.21 5060 {\n\
         weight 100\n\
         }\n\
         real_server 198.18.0.22 5060 {\n\
         weight 50\n\
         }\n\
         }\n",
    );
    assert_eq!(i.unexpressed, vec![]);
    let s = &i.services[0];
    assert_eq!(
        (s.line, s.vip, s.port, s.protocol, s.scheduler, s.forward),
        (
            1,
            ip("198.18.0.110"),
            5060,
            Protocol::Udp,
            Scheduler::Wrr,
            Forward::Dr
        )
    );
    let reals: Vec<(usize, IpAddr, u16, u32)> = s
        .reals
        .iter()
        .map(|r| (r.line, r.address, r.port, r.weight))
        .collect();
    assert_eq!(
        reals,
        vec![
            (5, ip("198.18.0.21"), 0, 100),
            (8, ip("198.18.0.22"), 0, 50)
        ]
    );
    assert_eq!(s.reals[0].text, "real_server 198.18.0.21 5060 {");
}

#[test]
fn nat_on_one_line_blocks_with_lvs_names_and_comments() {
    let i = parse(
        "virtual_server 198.18.0.111 5060 { # SIP\n\
         lvs_sched sh ! the scheduler\n\
         lvs_method NAT\n\
         protocol udp\n\
         sh-port\n\
         sh-fallback\n\
         ops\n\
         real_server 198.18.0.31 5080 { weight 2 }\n\
         real_server 198.18.0.32 { weight 3 }\n\
         }\n",
    );
    assert_eq!(i.unexpressed, vec![]);
    let s = &i.services[0];
    assert_eq!(
        (s.scheduler, s.forward, s.protocol),
        (Scheduler::Sh, Forward::Nat, Protocol::Udp)
    );
    assert_eq!(
        s.flags,
        vec![
            ServiceFlag::SchedPort,
            ServiceFlag::SchedFallback,
            ServiceFlag::OnePacket
        ]
    );
    let reals: Vec<(u16, u32)> = s.reals.iter().map(|r| (r.port, r.weight)).collect();
    assert_eq!(reals, vec![(5080, 2), (5060, 3)]);
}

#[test]
fn a_brace_on_the_next_line_opens_the_block() {
    let i = parse("virtual_server 198.18.0.110 5060\n{\nlb_algo rr\nlb_kind DR\n}\n");
    assert_eq!(i.unexpressed, vec![]);
    assert_eq!(i.services[0].scheduler, Scheduler::Rr);
}

#[test]
fn checkers_are_listed_once_each_and_the_real_kept() {
    let i = parse(
        "virtual_server 198.18.0.110 5060 {\n\
         delay_loop 6\n\
         lb_algo rr\n\
         lb_kind DR\n\
         protocol UDP\n\
         real_server 198.18.0.21 5060 {\n\
         weight 1\n\
         inhibit_on_failure\n\
         TCP_CHECK {\n\
         connect_timeout 3\n\
         }\n\
         HTTP_GET { url { path / } }\n\
         MISC_CHECK { misc_path \"/bin/check # not a comment\" }\n\
         }\n\
         }\n",
    );
    assert_eq!(lines(&i), vec![2, 8, 9, 12, 13]);
    for line in [2, 8, 9, 12, 13] {
        assert_eq!(causes(&i, line), vec![Cause::Checker], "line {line}");
    }
    assert_eq!(i.unexpressed[2].reason, CHECKERS);
    assert_eq!(i.services[0].reals.len(), 1);
}

#[test]
fn persistence_is_listed_and_the_sip_engine_mapped() {
    let i = parse(
        "virtual_server 198.18.0.110 5060 {\n\
         lb_algo rr\nlb_kind DR\nprotocol UDP\n\
         persistence_timeout 600\n\
         persistence_granularity 255.255.255.0\n\
         }\n\
         virtual_server 198.18.0.111 5060 {\n\
         lb_algo rr\nlb_kind DR\nprotocol UDP\n\
         persistence_engine sip\n\
         persistence_timeout 600\n\
         }\n",
    );
    assert_eq!(i.services[0].flags, vec![]);
    assert_eq!(i.services[1].flags, vec![ServiceFlag::SipPersist]);
    assert_eq!(lines(&i), vec![5, 6, 13]);
    assert!(
        i.unexpressed
            .iter()
            .all(|u| u.causes == vec![Cause::Persistence])
    );
}

#[test]
fn fwmark_group_and_tunnel_services_are_skipped_with_their_reals() {
    let i = parse(
        "virtual_server fwmark 7 {\n\
         lb_algo rr\n\
         real_server 198.18.0.21 5060 { weight 1 }\n\
         }\n\
         virtual_server group SIP {\n\
         real_server 198.18.0.21 5060\n\
         }\n\
         virtual_server 198.18.0.112 5060 {\n\
         lb_algo rr\n\
         lb_kind TUN\n\
         real_server 198.18.0.41 5060 { weight 1 }\n\
         }\n",
    );
    assert_eq!(i.services, vec![]);
    assert_eq!(lines(&i), vec![1, 3, 5, 6, 8, 10, 11]);
    assert_eq!(causes(&i, 1), vec![Cause::Fwmark]);
    assert_eq!(causes(&i, 3), vec![Cause::ServiceSkipped]);
    assert_eq!(causes(&i, 5), vec![Cause::Group]);
    assert_eq!(causes(&i, 6), vec![Cause::ServiceSkipped]);
    assert_eq!(causes(&i, 8), vec![Cause::Tunnel]);
    assert_eq!(causes(&i, 10), vec![Cause::Tunnel]);
    assert_eq!(causes(&i, 11), vec![Cause::ServiceSkipped]);
}

#[test]
fn schedulers_tandem_lacks_skip_the_service() {
    let i = parse(
        "virtual_server 198.18.0.110 5060 {\n\
         lb_algo lblcr\n\
         lb_kind DR\n\
         real_server 198.18.0.21 5060 { weight 1 }\n\
         }\n",
    );
    assert_eq!(i.services, vec![]);
    assert_eq!(causes(&i, 1), vec![Cause::Scheduler]);
    assert_eq!(causes(&i, 2), vec![Cause::Scheduler]);
    assert_eq!(causes(&i, 4), vec![Cause::ServiceSkipped]);
}

#[test]
fn what_is_not_about_services_is_ignored_and_vrrp_listed_once() {
    let i = parse(
        "! Configuration File for keepalived\n\
         global_defs {\n\
         router_id director_a\n\
         notification_email { noc@localhost }\n\
         }\n\
         vrrp_script chk { script \"/bin/true\" }\n\
         vrrp_instance VI_1 {\n\
         state MASTER\n\
         virtual_ipaddress {\n\
         198.18.0.110/24 dev eth0\n\
         }\n\
         }\n\
         include /etc/keepalived/more.conf\n\
         virtual_server_group G { 198.18.0.110 5060 }\n\
         frobnicate 3\n",
    );
    assert_eq!(i.services, vec![]);
    assert_eq!(lines(&i), vec![7, 13, 14, 15]);
    assert_eq!(causes(&i, 7), vec![Cause::Vrrp]);
    assert_eq!(i.unexpressed[0].reason, VRRP);
    assert_eq!(causes(&i, 13), vec![Cause::Unsupported]);
    assert_eq!(causes(&i, 14), vec![Cause::Group]);
    assert_eq!(causes(&i, 15), vec![Cause::Malformed]);
}

#[test]
fn defaults_assumed_are_listed() {
    let i = parse(
        "virtual_server 198.18.0.110 5060 {\n\
         real_server 198.18.0.21 5080\n\
         }\n",
    );
    let s = &i.services[0];
    assert_eq!(
        (s.protocol, s.scheduler, s.forward),
        (Protocol::Tcp, Scheduler::Wlc, Forward::Nat)
    );
    assert_eq!(s.reals[0].port, 5080);
    assert_eq!(lines(&i), vec![1]);
    assert_eq!(causes(&i, 1), vec![Cause::Assumed]);
}

#[test]
fn unbalanced_braces_are_listed() {
    let unclosed = parse(
        "virtual_server 198.18.0.110 5060 {\n\
         lb_algo rr\n\
         lb_kind DR\n\
         real_server 198.18.0.21 5060 {\n\
         weight 1\n\
         }\n",
    );
    assert_eq!(unclosed.services, vec![]);
    assert_eq!(causes(&unclosed, 1), vec![Cause::Malformed]);
    assert_eq!(causes(&unclosed, 4), vec![Cause::ServiceSkipped]);
    let stray = parse("}\n{\nvirtual_server 198.18.0.110 5060 { lb_algo rr\nlb_kind DR }\n}\n");
    assert_eq!(stray.services.len(), 1);
    assert_eq!(lines(&stray), vec![1, 2, 5]);
    assert!(
        stray
            .unexpressed
            .iter()
            .all(|u| u.causes == vec![Cause::Malformed])
    );
}

#[test]
fn malformed_values_are_listed() {
    let service = |body: &str| {
        parse(&format!(
            "virtual_server 198.18.0.110 5060 {{\nlb_algo rr\nlb_kind DR\n{body}\n}}\n"
        ))
    };
    for body in ["protocol ICMP", "lb_kind SNAT", "lb_algo", "protocol"] {
        let i = service(body);
        assert_eq!(i.services, vec![], "{body}");
        assert_eq!(causes(&i, 4), vec![Cause::Malformed], "{body}");
    }
    for body in [
        "real_server 198.18.0.300 5060",
        "real_server 198.18.0.21 0",
        "real_server 198.18.0.21 5060 { weight 70000 }",
        "real_server 198.18.0.21 5060 { weight }",
        "real_server",
    ] {
        let i = service(body);
        assert_eq!(i.services[0].reals, vec![], "{body}");
        assert_eq!(causes(&i, 4), vec![Cause::Malformed], "{body}");
    }
    for header in [
        "virtual_server 198.18.0.300 5060 {",
        "virtual_server 198.18.0.110 http {",
        "virtual_server 198.18.0.110 {",
    ] {
        let i = parse(&format!("{header}\nlb_algo rr\n}}\n"));
        assert_eq!(i.services, vec![], "{header}");
        assert_eq!(causes(&i, 1), vec![Cause::Malformed], "{header}");
    }
    let i = service("frobnicate\nreal_server 198.18.0.21 5060 { colour blue }");
    assert_eq!(i.services[0].reals.len(), 1);
    assert_eq!(causes(&i, 4), vec![Cause::Malformed]);
    assert_eq!(causes(&i, 5), vec![Cause::Malformed]);
}

#[test]
fn duplicates_and_mixed_forwarding_are_listed() {
    let i = parse(
        "virtual_server 198.18.0.110 5060 {\n\
         lb_algo rr\nlb_kind DR\nprotocol UDP\n\
         real_server 198.18.0.21 5060\n\
         real_server 198.18.0.21 5060\n\
         real_server 198.18.0.22 5060 { lb_kind NAT }\n\
         }\n\
         virtual_server 198.18.0.110 5060 {\n\
         lb_algo wrr\nlb_kind DR\nprotocol UDP\n\
         real_server 198.18.0.23 5060\n\
         }\n",
    );
    assert_eq!(i.services.len(), 1);
    assert_eq!(i.services[0].reals.len(), 1);
    assert_eq!(causes(&i, 6), vec![Cause::Duplicate]);
    assert_eq!(causes(&i, 7), vec![Cause::MixedForwarding]);
    assert_eq!(causes(&i, 9), vec![Cause::Duplicate]);
    assert_eq!(causes(&i, 13), vec![Cause::ServiceSkipped]);
}

#[test]
fn ipv6_virtual_servers() {
    let i = parse(
        "virtual_server 2001:db8::110 5060 {\n\
         lb_algo rr\nlb_kind DR\nprotocol UDP\n\
         real_server 2001:db8::21 5060\n\
         real_server 198.18.0.21 5060\n\
         }\n",
    );
    assert_eq!(i.services[0].vip, ip("2001:db8::110"));
    assert_eq!(i.services[0].reals.len(), 1);
    assert_eq!(causes(&i, 6), vec![Cause::AddressFamily]);
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    let deep = format!(
        "virtual_server 198.18.0.110 5060 {}{}",
        "{ x ".repeat(100_000),
        "}".repeat(100_001)
    );
    let i = parse(&deep);
    assert_eq!(i.services, vec![]);
    assert_eq!(causes(&i, 1), vec![Cause::Malformed]);
}

#[test]
fn tokens_split_braces_quotes_and_comments() {
    let t = tokens("a{b} \"c d\" # e\nf!g");
    let words: Vec<(usize, Tok)> = vec![
        (1, Tok::Word("a".into())),
        (1, Tok::Open),
        (1, Tok::Word("b".into())),
        (1, Tok::Close),
        (1, Tok::Word("c d".into())),
        (2, Tok::Word("f".into())),
    ];
    assert_eq!(t, words);
}
