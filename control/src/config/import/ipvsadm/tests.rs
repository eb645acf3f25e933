use tandem_dataplane::common::Scheduler;

use super::*;

fn v4(s: &str) -> IpAddr {
    s.parse().expect("address")
}

use crate::config::import::test_support::{causes, lines};

#[test]
fn a_dr_service_with_its_reals() {
    let i = parse(
        "-A -u 198.18.0.100:5060 -s wrr\n\
         -a -u 198.18.0.100:5060 -r 198.18.0.21:5060 -g -w 100\n\
         -a -u 198.18.0.100:5060 -r 198.18.0.22:5060 -g -w 0\n",
    );
    assert_eq!(i.unexpressed, vec![]);
    assert_eq!(i.services.len(), 1);
    let s = &i.services[0];
    assert_eq!(
        (s.vip, s.port, s.protocol, s.scheduler, s.forward),
        (
            v4("198.18.0.100"),
            5060,
            Protocol::Udp,
            Scheduler::Wrr,
            Forward::Dr
        )
    );
    let reals: Vec<(IpAddr, u16, u32, usize)> = s
        .reals
        .iter()
        .map(|r| (r.address, r.port, r.weight, r.line))
        .collect();
    assert_eq!(
        reals,
        vec![(v4("198.18.0.21"), 0, 100, 2), (v4("198.18.0.22"), 0, 0, 3)]
    );
}

#[test]
fn nat_keeps_the_real_port_and_a_missing_one_is_the_virtual_port() {
    let i = parse(
        "-A -t 198.18.0.100:80 -s rr\n\
         -a -t 198.18.0.100:80 -r 198.18.0.21:8080 -m -w 1\n\
         -a -t 198.18.0.100:80 -r 198.18.0.22 -m\n",
    );
    assert_eq!(i.unexpressed, vec![]);
    let s = &i.services[0];
    assert_eq!((s.protocol, s.forward), (Protocol::Tcp, Forward::Nat));
    let ports: Vec<(u16, u32)> = s.reals.iter().map(|r| (r.port, r.weight)).collect();
    assert_eq!(ports, vec![(8080, 1), (80, 1)]);
}

#[test]
fn long_options_and_the_ipvsadm_word_and_equals_values() {
    let i = parse(
        "ipvsadm --add-service --udp-service 198.18.0.100:5060 --scheduler=wlc\n\
         ipvsadm --add-server --udp-service 198.18.0.100:5060 --real-server 198.18.0.21:5060 --gatewaying --weight 7\n\
         --add-server --udp-service 198.18.0.100:5060 --real-server 198.18.0.22:5060 --masquerading --weight 7\n\
         --add-service --tcp-service 198.18.0.100:5061 --scheduler sh --persistent 60\n\
         --add-server --tcp-service 198.18.0.100:5061 --real-server 198.18.0.22:5061 --ipip\n",
    );
    assert_eq!(i.services.len(), 2);
    assert_eq!(i.services[0].scheduler, Scheduler::Wlc);
    assert_eq!(i.services[0].reals.len(), 1);
    assert_eq!(i.services[0].reals[0].weight, 7);
    assert_eq!(causes(&i, 3), vec![Cause::MixedForwarding]);
    assert_eq!(causes(&i, 4), vec![Cause::Persistence]);
    assert_eq!(causes(&i, 5), vec![Cause::Tunnel]);
    assert_eq!(i.services[1].reals, vec![]);
}

#[test]
fn blank_lines_comments_and_clear_are_expressed() {
    let i =
        parse("# saved by ipvsadm-save\n\n   \n-C\n-A -u 198.18.0.100:5060 -s rr # trailing\n");
    assert_eq!(i.unexpressed, vec![]);
    assert_eq!(i.services.len(), 1);
}

#[test]
fn tandem_schedulers_by_their_ipvs_names() {
    for s in Scheduler::ALL {
        let i = parse(&format!("-A -u 198.18.0.100:5060 -s {}\n", s.name()));
        assert_eq!(i.services[0].scheduler, s, "{}", s.name());
        assert_eq!(i.unexpressed, vec![]);
    }
}

#[test]
fn other_schedulers_skip_the_service_and_list_its_reals() {
    for name in ["lblc", "lblcr", "fo", "ovf", "twos", "nosuch"] {
        let i = parse(&format!(
            "-A -u 198.18.0.100:5060 -s {name}\n\
             -a -u 198.18.0.100:5060 -r 198.18.0.21:5060 -g -w 1\n\
             -a -u 198.18.0.100:5060 -r 198.18.0.22:5060 -g -w 1\n"
        ));
        assert_eq!(i.services, vec![], "{name}");
        assert_eq!(causes(&i, 1), vec![Cause::Scheduler]);
        assert_eq!(causes(&i, 2), vec![Cause::ServiceSkipped]);
        assert_eq!(causes(&i, 3), vec![Cause::ServiceSkipped]);
    }
}

#[test]
fn a_tunnelled_real_is_listed_and_left_out() {
    let i = parse(
        "-A -u 198.18.0.100:5060 -s rr\n\
         -a -u 198.18.0.100:5060 -r 198.18.0.23:5060 -i -w 1\n\
         -a -u 198.18.0.100:5060 -r 198.18.0.21:5060 -m -w 1\n",
    );
    assert_eq!(lines(&i), vec![2]);
    assert_eq!(causes(&i, 2), vec![Cause::Tunnel]);
    // The tunnelled one did not set the service's forwarding.
    assert_eq!(i.services[0].forward, Forward::Nat);
    assert_eq!(i.services[0].reals.len(), 1);
}

#[test]
fn scheduler_flags_and_ops_and_sip_engine() {
    let i = parse(
        "-A -u 198.18.0.100:5060 -s mh -b sh-fallback,sh-port -O\n\
         -A -u 198.18.0.101:5060 -s sh -b mh-fallback,mh-port,flag-3 -o\n\
         -A -t 198.18.0.102:5060 -s rr --ops\n\
         -A -u 198.18.0.103:5060 -s rr -p 120 --pe sip\n",
    );
    let flags: Vec<Vec<ServiceFlag>> = i.services.iter().map(|s| s.flags.clone()).collect();
    assert_eq!(
        flags,
        vec![
            vec![
                ServiceFlag::SchedFallback,
                ServiceFlag::SchedPort,
                ServiceFlag::OnePacket
            ],
            vec![
                ServiceFlag::SchedFallback,
                ServiceFlag::SchedPort,
                ServiceFlag::OnePacket
            ],
            vec![],
            vec![ServiceFlag::SipPersist],
        ]
    );
    assert_eq!(lines(&i), vec![2, 3, 4]);
    assert_eq!(causes(&i, 2), vec![Cause::Unsupported]);
    assert_eq!(causes(&i, 3), vec![Cause::Unsupported]);
    assert_eq!(causes(&i, 4), vec![Cause::Persistence]);
}

#[test]
fn persistence_is_listed_not_mapped() {
    let i = parse(
        "-A -u 198.18.0.100:5060 -s rr -p\n\
         -A -u 198.18.0.101:5060 -s rr -p 300 -M 255.255.255.0\n\
         -A -u 198.18.0.102:5060 -s rr -M 255.255.255.255\n",
    );
    assert_eq!(i.services.len(), 3);
    assert!(i.services.iter().all(|s| s.flags.is_empty()));
    assert_eq!(lines(&i), vec![1, 2]);
    assert_eq!(causes(&i, 1), vec![Cause::Persistence]);
    // Two reasons on one line, one entry.
    assert_eq!(causes(&i, 2), vec![Cause::Persistence]);
    let reason = &i.unexpressed[1].reason;
    assert!(
        reason.contains("-p 300") && reason.contains("-M 255.255.255.0"),
        "{reason}"
    );
}

#[test]
fn fwmark_and_sctp_services_are_listed_with_their_reals() {
    let i = parse(
        "-A -f 1 -s rr\n\
         -a -f 1 -r 198.18.0.21:0 -g -w 1\n\
         -A --sctp-service 198.18.0.100:5060 -s rr\n\
         -a --sctp-service 198.18.0.100:5060 -r 198.18.0.21:5060 -g\n",
    );
    assert_eq!(i.services, vec![]);
    assert_eq!(causes(&i, 1), vec![Cause::Fwmark]);
    assert_eq!(causes(&i, 2), vec![Cause::ServiceSkipped]);
    assert_eq!(causes(&i, 3), vec![Cause::Protocol]);
    assert_eq!(causes(&i, 4), vec![Cause::ServiceSkipped]);
}

#[test]
fn thresholds_are_listed_and_the_real_kept() {
    let i = parse(
        "-A -u 198.18.0.100:5060 -s rr\n\
         -a -u 198.18.0.100:5060 -r 198.18.0.21:5060 -g -w 1 -x 100 -y 50\n",
    );
    assert_eq!(i.services[0].reals.len(), 1);
    assert_eq!(causes(&i, 2), vec![Cause::Unsupported]);
}

#[test]
fn a_dr_real_on_another_port_is_imported_without_it_and_listed() {
    let i = parse(
        "-A -u 198.18.0.100:5060 -s rr\n\
         -a -u 198.18.0.100:5060 -r 198.18.0.21:5080 -g -w 1\n",
    );
    assert_eq!(i.services[0].reals[0].port, 0);
    assert_eq!(causes(&i, 2), vec![Cause::Unsupported]);
}

#[test]
fn duplicates_are_listed() {
    let i = parse(
        "-A -u 198.18.0.100:5060 -s rr\n\
         -A -u 198.18.0.100:5060 -s wrr\n\
         -a -u 198.18.0.100:5060 -r 198.18.0.21:5060 -g -w 1\n\
         -a -u 198.18.0.100:5060 -r 198.18.0.21:5060 -g -w 2\n",
    );
    assert_eq!(i.services.len(), 1);
    assert_eq!(i.services[0].scheduler, Scheduler::Rr);
    assert_eq!(i.services[0].reals.len(), 1);
    assert_eq!(causes(&i, 2), vec![Cause::Duplicate]);
    assert_eq!(causes(&i, 4), vec![Cause::Duplicate]);
}

#[test]
fn ipv6_services_and_mixed_families() {
    let i = parse(
        "-A -u [2001:db8::100]:5060 -s rr\n\
         -a -u [2001:db8::100]:5060 -r [2001:db8::21]:5060 -g -w 1\n\
         -a -u [2001:db8::100]:5060 -r 198.18.0.21:5060 -g -w 1\n\
         -a -u [2001:db8::100]:5060 -r [2001:db8::22] -g -w 1\n",
    );
    let s = &i.services[0];
    assert_eq!(s.vip, "2001:db8::100".parse::<IpAddr>().expect("v6"));
    assert_eq!(s.reals.len(), 2);
    assert_eq!(lines(&i), vec![3]);
    assert_eq!(causes(&i, 3), vec![Cause::AddressFamily]);
}

#[test]
fn malformed_lines_are_listed() {
    let cases = [
        "-A -u 198.18.0.300:5060 -s rr",
        "-A -u 198.18.0.100 -s rr",
        "-A -u 198.18.0.100:99999 -s rr",
        "-A -u sip.example.com:sip -s rr",
        "-A -u 198.18.0.100:5060",
        "-A -u 198.18.0.100:5060 -s",
        "-A -u 198.18.0.100:5060 -s rr -z",
        "-A -u 198.18.0.100:5060 -s rr -s wrr",
        "-A -s rr",
        "-A -u 198.18.0.100:5060 -t 198.18.0.100:5060 -s rr",
        "-A -u 198.18.0.100:5060 -s rr -w 1",
        "-A -u [2001:db8::1:5060 -s rr",
        "-u 198.18.0.100:5060 -s rr",
        "-A -a -u 198.18.0.100:5060",
        "stray words",
        "-A -f zero -s rr",
    ];
    for case in cases {
        let i = parse(case);
        assert_eq!(i.services, vec![], "{case}");
        assert_eq!(causes(&i, 1), vec![Cause::Malformed], "{case}");
    }
    let reals = [
        "-a -u 198.18.0.100:5060 -r 198.18.0.21:5060 -g -w 70000",
        "-a -u 198.18.0.100:5060 -r 198.18.0.21:5060 -g -m",
        "-a -u 198.18.0.100:5060 -g -w 1",
        "-a -u 198.18.0.100:5060 -r 198.18.0.21:x -g",
        "-a -u 198.18.0.100:5060 -r 198.18.0.21 -s rr",
        "-a -u 198.18.0.100:5060 -r 198.18.0.21 -x many",
        "-a -u 198.18.0.199:5060 -r 198.18.0.21:5060 -g -w 1",
    ];
    for case in reals {
        let i = parse(&format!("-A -u 198.18.0.100:5060 -s rr\n{case}\n"));
        assert_eq!(i.services[0].reals, vec![], "{case}");
        assert_eq!(causes(&i, 2), vec![Cause::Malformed], "{case}");
    }
}

#[test]
fn other_commands_are_listed() {
    let i = parse("-E -u 198.18.0.100:5060 -s rr\n--set 900 120 300\n-C -u 198.18.0.1:1\n");
    assert_eq!(causes(&i, 1), vec![Cause::Unsupported]);
    assert_eq!(causes(&i, 2), vec![Cause::Unsupported]);
    assert_eq!(causes(&i, 3), vec![Cause::Malformed]);
}

#[test]
fn listed_text_is_the_trimmed_line() {
    let i = parse("   -A -f 3 -s rr   \n");
    assert_eq!(i.unexpressed[0].text, "-A -f 3 -s rr");
    assert_eq!(i.unexpressed[0].line, 1);
}
