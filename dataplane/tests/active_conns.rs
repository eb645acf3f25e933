//! Active-connection counts when the program and the host count the same
//! real server at the same time: the program counts the flows it
//! schedules, the host the flows it learns from the other node (state
//! sync). Neither may lose the other's counts.

mod support;

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use support::*;
use tandem_dataplane::{
    BenchTarget, Dataplane, LoadOptions,
    common::*,
    config::{Protocol, addr16},
    packet::FrameSpec,
};

/// Offset of the IPv4 source address in an untagged frame: the wrapper's
/// counter written there makes every iteration a new client.
const SRC_ADDR_OFF: u32 = 14 + 12;
/// New flows per run of the wrapper: one (with more, every run switches
/// the kernel's XDP static key twice, which takes milliseconds).
const REPEAT: u32 = 1;
/// At most this many runs per phase (the program's side stops when the
/// host's is done).
const MAX_RUNS: u64 = 100_000;
/// Flows the host writes (and later removes).
const SYNCED: u32 = 15_000;

/// The host's side of one phase, run while the program schedules new flows
/// on the same real server from another thread. Returns the runs the
/// program made meanwhile.
fn with_new_flows_meanwhile(dp: &mut Dataplane, frame: &[u8], host: impl FnOnce(&mut Dataplane)) -> u64 {
    let runner = dp.bench_runner().expect("runner");
    let done = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let program = {
        let (done, runs, frame) = (done.clone(), runs.clone(), frame.to_vec());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) && runs.load(Ordering::Relaxed) < MAX_RUNS {
                assert_eq!(runner.run(&frame, REPEAT).expect("BPF_PROG_TEST_RUN"), XDP_TX);
                runs.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let start = Instant::now();
    while runs.load(Ordering::Relaxed) == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "the program's thread never ran");
        thread::yield_now();
    }
    let before = runs.load(Ordering::Relaxed);
    host(dp);
    let during = runs.load(Ordering::Relaxed) - before;
    done.store(true, Ordering::Relaxed);
    program.join().expect("program thread");
    during
}

#[test]
fn privileged_synced_flows_and_new_flows_on_one_real_are_all_counted() {
    if !privileged("privileged_synced_flows_and_new_flows_on_one_real_are_all_counted") {
        return;
    }
    let mut dp = Dataplane::load(LoadOptions { flow_entries: 1 << 18, nat_entries: 1 << 10 }).expect("load XDP object");
    // One real server: every flow, scheduled or synced, counts on slot 0.
    let cfg = service(IpAddr::V4(VIP4), 5060, Protocol::Udp, Scheduler::Wlc, Forward::Dr, vec![real4(0, 1)]);
    let id = dp.set_service(&cfg).unwrap().service.id;
    let real = (cfg.reals[0].addr, cfg.reals[0].port);
    // The program's flows come from port 40000 (the wrapper varies the
    // source address); the host's from port 50000, so they never meet.
    let frame = FrameSpec::udp(client4(0), 40000, IpAddr::V4(VIP4), 5060, &[0x5a; 22]).build();
    assert_eq!(dp.bench_run(BenchTarget::Dispatch, &frame, 1, Some(SRC_ADDR_OFF)).unwrap().verdict, XDP_TX);
    let synced: Vec<FlowKey> = (0..SYNCED)
        .map(|i| FlowKey::new(addr16(client4(i)), addr16(IpAddr::V4(VIP4)), 50000, 5060, PROTO_UDP))
        .collect();

    // The host adds flows while the program schedules others.
    let during = with_new_flows_meanwhile(&mut dp, &frame, |dp| {
        for k in &synced {
            assert!(dp.upsert_synced_flow(k, &cfg.key(), real, 1, FLOW_COUNTED).unwrap());
        }
    });
    assert_eq!(dp.reason(Reason::FlowInsertFailed).unwrap(), 0);
    let scheduled = dp.service_counters(id).unwrap().new_flows;
    eprintln!("phase 1: {scheduled} flows scheduled ({} while the host wrote {SYNCED})", during * REPEAT as u64);
    assert_eq!(dp.active_conns(id, 0).unwrap(), scheduled + SYNCED as u64, "counts lost while both counted");

    // The host removes its flows while the program schedules more.
    let during = with_new_flows_meanwhile(&mut dp, &frame, |dp| {
        for k in &synced {
            dp.remove_synced_flow(k).unwrap();
        }
    });
    assert_eq!(dp.reason(Reason::FlowInsertFailed).unwrap(), 0);
    let scheduled = dp.service_counters(id).unwrap().new_flows;
    eprintln!("phase 2: {scheduled} flows scheduled ({} while the host removed {SYNCED})", during * REPEAT as u64);
    assert_eq!(dp.active_conns(id, 0).unwrap(), scheduled, "counts lost while both counted");
}

