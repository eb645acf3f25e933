//! Rough cost per packet of the dispatcher's paths, the way `cargo xtask
//! bench dispatch` measures it but smaller: through the restoring wrapper,
//! each run paired with a run of the trivial XDP_TX floor, reported as the
//! median ns per packet and the median ratio to the floor. Debug build of
//! the test, release build of the program. A measurement, not a check:
//! run with `--ignored --nocapture`.

mod support;

use std::net::IpAddr;

use support::*;
use tandem_dataplane::{BenchTarget, Dataplane, common::*, config::Protocol, packet::FrameSpec};

/// Offset of the IPv4 source address in an untagged frame: the wrapper's
/// counter written there makes every iteration a new client.
const SRC_ADDR_OFF: u32 = 14 + 12;
const REPEAT: u32 = 10_000;
const RUNS: usize = 15;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median ns per packet and median ratio to the floor of `RUNS` runs,
/// checking that every iteration was counted under `reason`.
fn measure(dp: &mut Dataplane, frame: &[u8], vary: Option<u32>, reason: Reason) -> (f64, f64) {
    let before = dp.reason(reason).unwrap();
    let (mut ns, mut ratio) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let floor = dp.bench_run(BenchTarget::TrivialTx, frame, REPEAT, None).unwrap();
        let r = dp.bench_run(BenchTarget::Dispatch, frame, REPEAT, vary).unwrap();
        assert_eq!(r.verdict, XDP_TX);
        ns.push(r.duration_ns as f64);
        ratio.push(r.duration_ns as f64 / floor.duration_ns as f64);
    }
    assert_eq!(dp.reason(reason).unwrap() - before, RUNS as u64 * REPEAT as u64, "some iterations took another path");
    (median(&mut ns), median(&mut ratio))
}

fn frame(port: u16) -> Vec<u8> {
    FrameSpec::udp(client4(1), 40000, IpAddr::V4(VIP4), port, &[0x5a; 22]).build()
}

fn eight_reals(port: u16, sched: Scheduler) -> tandem_dataplane::ServiceConfig {
    let reals = (0..8).map(|i| real4(i, 1 + (i as u32 % 3))).collect();
    service(IpAddr::V4(VIP4), port, Protocol::Udp, sched, Forward::Dr, reals)
}

#[test]
#[ignore]
fn privileged_dispatch_cost() {
    if !privileged("privileged_dispatch_cost") {
        return;
    }
    let mut dp = load();
    let mut lines = Vec::new();

    dp.set_service(&eight_reals(5060, Scheduler::Rr)).unwrap();
    let f = frame(5060);
    assert_eq!(dp.test_run(&f).unwrap().verdict, XDP_TX);
    let (ns, r) = measure(&mut dp, &f, None, Reason::ForwardDr);
    lines.push(format!("{:<26} {ns:6.1} ns  x{r:.2}", "established_udp"));

    // New flows scheduled with the connection table bypassed (one-packet
    // scheduling): the scheduler's own cost.
    for (i, sched) in Scheduler::ALL.iter().enumerate() {
        let port = 6000 + i as u16;
        let mut cfg = eight_reals(port, *sched);
        cfg.flags |= FLAG_ONE_PACKET;
        dp.set_service(&cfg).unwrap();
        let (ns, r) = measure(&mut dp, &frame(port), Some(SRC_ADDR_OFF), Reason::ForwardDr);
        lines.push(format!("{:<26} {ns:6.1} ns  x{r:.2}", format!("new_flow_{}", sched.name())));
    }

    // New flows recorded in the connection table (LRU miss and insert).
    for (i, sched) in [Scheduler::Rr, Scheduler::Wlc].iter().enumerate() {
        let port = 6100 + i as u16;
        dp.set_service(&eight_reals(port, *sched)).unwrap();
        let (ns, r) = measure(&mut dp, &frame(port), Some(SRC_ADDR_OFF), Reason::ForwardDr);
        lines.push(format!("{:<26} {ns:6.1} ns  x{r:.2}", format!("new_flow_lru_insert_{}", sched.name())));
        dp.clear_flows().unwrap();
    }
    eprintln!("dispatch cost ({RUNS} runs of {REPEAT}, median; xN: ratio to the XDP_TX floor)\n{}", lines.join("\n"));
}
