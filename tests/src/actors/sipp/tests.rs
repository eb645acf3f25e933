//! Unit tests of the SIPp module: statistics rows, call-log records,
//! scenario text and the caller's time bound, from literal SIPp output.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use super::*;

const CSV: &str = "StartTime;LastResetTime;CurrentTime;ElapsedTime(P);ElapsedTime(C);TargetRate;CallRate(P);CallRate(C);IncomingCall(P);IncomingCall(C);OutgoingCall(P);OutgoingCall(C);TotalCallCreated;CurrentCall;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);FailedMaxUDPRetrans(P);FailedMaxUDPRetrans(C);FailedUnexpectedMessage(P);FailedUnexpectedMessage(C);Retransmissions(P);Retransmissions(C);\n\
2026-11-25\t18:59:54.761258\t1795633194.761258;x;y;00:00:00;00:00:04;5;0;2.49;0;0;0;10;10;0;0;10;0;0;0;0;0;0;0;0;\n\
2026-11-25\t18:59:54.761258\t1795633194.761258;x;y;00:00:00;00:00:04;5;0;2.49;0;0;0;12;12;1;0;9;0;2;0;1;0;1;0;5;\n";

#[test]
fn statistics_last_row_by_column() {
    let s = SippStats::parse(CSV).unwrap();
    assert_eq!(s.created(), 12);
    assert_eq!(s.outgoing(), 12);
    assert_eq!(s.current(), 1);
    assert_eq!(s.successful(), 9);
    assert_eq!(s.failed(), 2);
    assert_eq!(s.retransmissions(), 5);
    let f = s.failures();
    assert_eq!(f.get("MaxUDPRetrans"), Some(&1));
    assert_eq!(f.get("UnexpectedMessage"), Some(&1));
    assert_eq!(f.len(), 2);
    assert!(s.summary().contains("failed 2"), "{}", s.summary());
    assert!(
        SippStats::parse("StartTime;SuccessfulCall(C)\n").is_err(),
        "no row yet"
    );
    assert!(SippStats::parse("a;b\n1;2\n").is_err(), "not SIPp's");
}

#[test]
fn call_log_lines_make_records() {
    let log = "S 1 2026-11-25\t18:59:54.970061\t1795633194.970061\n\
E 1 ivr3 2026-11-25\t18:59:54.975000\t1795633194.975000 1-30009@198.18.0.10\n\
S 2 2026-11-25\t18:59:55.020000\t1795633195.020000\n\
D 1 ivr3 2026-11-25\t18:59:58.975000\t1795633198.975000\n\
S 3 2026-11-25\t18:59:55.070000\t1795633195.070000\n\
E 3 ivr1 2026-11-25\t18:59:55.075000\t1795633195.075000 3-30009@198.18.0.10\n\
D 3 ivr2 2026-11-25\t18:59:59.075000\t1795633199.075000\n\
garbage line\n";
    let c = parse_call_log(log);
    assert_eq!(c.len(), 3);
    assert!(
        !c[2].succeeded(),
        "a BYE answered by another IVR is no success"
    );
    assert_eq!(c[0].number, 1);
    assert_eq!(c[0].ivr.as_deref(), Some("ivr3"));
    assert_eq!(c[0].call_id.as_deref(), Some("1-30009@198.18.0.10"));
    assert!(c[0].succeeded());
    assert!((c[0].established.unwrap() - 1795633194.975).abs() < 1e-6);
    assert!(c[0].established_before(1795633195.0));
    assert!(!c[1].succeeded());
    assert!(c[1].started_after(1795633195.0));
    assert_eq!(c[1].established, None);
}

#[test]
fn scenarios_name_the_ivr_and_reference_every_variable() {
    let s = ivr_scenario("ivr2");
    assert!(s.contains("X-IVR: ivr2"));
    assert!(s.contains("c=IN IP[media_ip_type] [media_ip]"));
    let c = caller_scenario(true);
    assert!(c.contains(PCAP_G711A));
    assert!(c.contains("[$ivr]"));
    assert!(!caller_scenario(false).contains("play_pcap_audio"));
}

#[test]
fn caller_bound_covers_retransmissions() {
    let o = CallerOptions::new(20, 200, 4000);
    assert_eq!(o.placing(), Duration::from_secs(10));
    // 0.5 + 1 + 2 + 4 + 4 = 11.5 s of retransmissions, twice, + 5.
    assert!(
        o.bound() >= Duration::from_secs(10 + 4 + 23),
        "{:?}",
        o.bound()
    );
    assert!(o.bound() <= Duration::from_secs(50), "{:?}", o.bound());
}

#[test]
fn common_args_bind_sip_and_media_and_name_the_files() {
    let a = process::common_args(
        Path::new("/d/ivr1.xml"),
        Ipv4Addr::new(198, 18, 0, 100),
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 21), IVR_RTP_PORT),
        Path::new("/d/ivr1.csv"),
        Path::new("/d/ivr1-errors.log"),
        super::Transport::Udp,
    );
    let after = |flag: &str| {
        let i = a.iter().position(|x| x == flag).expect(flag);
        a[i + 1].as_str()
    };
    assert_eq!(after("-sf"), "/d/ivr1.xml");
    assert_eq!(after("-t"), "u1");
    assert_eq!(after("-i"), "198.18.0.100");
    assert_eq!(after("-p"), "5060");
    assert_eq!(after("-mi"), "198.18.0.21");
    assert_eq!(after("-mp"), "6000");
    assert_eq!(after("-stf"), "/d/ivr1.csv");
    assert_eq!(after("-fd"), "1");
    assert_eq!(after("-error_file"), "/d/ivr1-errors.log");
    assert!(a.iter().any(|x| x == "-nostdin") && a.iter().any(|x| x == "-trace_err"));
}
