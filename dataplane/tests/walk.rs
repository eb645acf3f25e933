//! Walking the connection and call tables a batch at a time
//! (`TableWalk`, `BPF_MAP_LOOKUP_BATCH`): every entry is seen once, a walk
//! stopped part way resumes from its position, and a full default-sized
//! connection table (2^20 entries) is walked in a time an admin answer
//! can afford to spread over a few requests (printed with --nocapture).

mod support;

use std::{collections::HashSet, net::IpAddr, time::Instant};

use support::*;
use tandem_dataplane::{
    Dataplane, LoadOptions, TableWalk, WalkPosition, common::*, config::Protocol,
};

/// The client-side 5-tuple of flow `i` to VIP4:5060.
fn key(i: u32) -> FlowKey {
    let src = match client4(i) {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    let dst = VIP4.to_ipv6_mapped().octets();
    FlowKey::new(src, dst, 40000 + (i % 7) as u16, 5060, PROTO_UDP)
}

/// Walks the whole connection table with batches of `batch`; returns the
/// keys seen (with repeats) and the number of calls.
fn walk_all(dp: &Dataplane, batch: usize) -> (Vec<FlowKey>, usize) {
    let mut w: TableWalk<FlowKey, FlowValue> = TableWalk::new(batch, WalkPosition::Start);
    let mut seen = Vec::new();
    let mut calls = 0;
    // Bounded: a table of n entries takes at most n + 2 calls.
    while !w.is_done() && calls < 4 << 20 {
        dp.next_flows(&mut w).expect("walk");
        calls += 1;
        seen.extend(w.entries().map(|(k, _)| *k));
    }
    assert!(w.is_done(), "the walk did not end");
    (seen, calls)
}

/// A UDP round-robin DR service on the VIP over four real servers, set.
fn four_reals_rr(dp: &mut Dataplane) -> tandem_dataplane::ServiceConfig {
    let cfg = service(
        IpAddr::V4(VIP4),
        5060,
        Protocol::Udp,
        Scheduler::Rr,
        Forward::Dr,
        (0..4).map(|i| real4(i, 1)).collect(),
    );
    dp.set_service(&cfg).unwrap();
    cfg
}

#[test]
fn privileged_a_walk_sees_every_flow_and_call_once_and_resumes_where_it_stopped() {
    if !privileged("privileged_a_walk_sees_every_flow_and_call_once_and_resumes_where_it_stopped") {
        return;
    }
    let mut dp = load();
    let cfg = four_reals_rr(&mut dp);
    // An empty table: one call, nothing seen, the walk over.
    let (seen, calls) = walk_all(&dp, 64);
    assert_eq!((seen.len(), calls), (0, 1));

    let n = 5_000u32;
    for i in 0..n {
        let real = cfg.reals[(i % 4) as usize].addr;
        assert!(
            dp.upsert_synced_flow(&key(i), &cfg.key(), (real, 0), 0, 0)
                .unwrap()
        );
    }
    let want: HashSet<FlowKey> = (0..n).map(key).collect();
    let (seen, _) = walk_all(&dp, 256);
    assert_eq!(seen.len(), n as usize, "each flow once");
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), want);
    // The values are the table's: the real server each flow was written with.
    let mut w: TableWalk<FlowKey, FlowValue> = TableWalk::new(n as usize, WalkPosition::Start);
    let mut values = 0;
    while !w.is_done() {
        dp.next_flows(&mut w).unwrap();
        for (k, v) in w.entries() {
            assert_eq!(Some(*v), dp.flow(k));
            values += 1;
        }
    }
    assert_eq!(values, n);

    // Stopped after three batches, resumed from its position by a new walk
    // (as a later admin request does): together they see every flow once.
    let mut first: TableWalk<FlowKey, FlowValue> = TableWalk::new(100, WalkPosition::Start);
    let mut part = Vec::new();
    for _ in 0..3 {
        dp.next_flows(&mut first).unwrap();
        part.extend(first.entries().map(|(k, _)| *k));
    }
    let WalkPosition::Bucket(at) = first.position() else {
        panic!(
            "three batches of 100 did not stop inside a table of {n}: {:?}",
            first.position()
        );
    };
    let mut rest: TableWalk<FlowKey, FlowValue> = TableWalk::new(100, WalkPosition::Bucket(at));
    while !rest.is_done() {
        dp.next_flows(&mut rest).unwrap();
        part.extend(rest.entries().map(|(k, _)| *k));
    }
    assert_eq!(part.len(), n as usize);
    assert_eq!(part.into_iter().collect::<HashSet<_>>(), want);
    // A position past the table's last bucket ends the walk at once.
    let mut past: TableWalk<FlowKey, FlowValue> =
        TableWalk::new(100, WalkPosition::Bucket(u32::MAX));
    assert_eq!(dp.next_flows(&mut past).unwrap(), 0);
    assert!(past.is_done());

    // The call table the same way.
    for h in 0..300u64 {
        let real = cfg.reals[(h % 4) as usize].addr;
        assert!(
            dp.upsert_synced_call(&cfg.key(), 0x1000 + h, (real, 0), 0, true)
                .unwrap()
        );
    }
    let slots = dp.service(&cfg.key()).unwrap().slot_ids.clone();
    let mut calls: TableWalk<CallKey, CallValue> = TableWalk::new(64, WalkPosition::Start);
    let mut hashes = HashSet::new();
    while !calls.is_done() {
        dp.next_calls(&mut calls).unwrap();
        for (k, v) in calls.entries() {
            assert!(hashes.insert(k.hash), "call {:#x} seen twice", k.hash);
            let real = cfg.reals[((k.hash - 0x1000) % 4) as usize].addr;
            assert_eq!(
                slots[v.real_idx as usize].map(|s| s.0),
                Some(real),
                "{k:?} {v:?}"
            );
        }
    }
    assert_eq!(hashes, (0x1000..0x1000 + 300).collect());
    // The settings the program reads: the defaults at load.
    assert_eq!(dp.settings().unwrap(), Settings::default());
}

/// The cost of a walk of a full default-sized connection table: printed,
/// and bounded loosely (a busy 2-core VM), so that a regression to one
/// system call per entry (≈ 2 s) fails.
#[test]
fn privileged_a_full_connection_table_is_walked_in_batches_quickly() {
    if !privileged("privileged_a_full_connection_table_is_walked_in_batches_quickly") {
        return;
    }
    let mut dp = Dataplane::load(LoadOptions::default()).expect("load");
    let cfg = four_reals_rr(&mut dp);
    let n = DEFAULT_FLOW_ENTRIES;
    let filled = Instant::now();
    for i in 0..n {
        let real = cfg.reals[(i % 4) as usize].addr;
        dp.upsert_synced_flow(&key(i), &cfg.key(), (real, 0), 0, 0)
            .unwrap();
    }
    let filled = filled.elapsed();
    let mut report = Vec::new();
    for batch in [1024, 4096] {
        // The kernel's part alone: the batches read, nothing done with them.
        let mut w: TableWalk<FlowKey, FlowValue> = TableWalk::new(batch, WalkPosition::Start);
        let (mut seen, mut calls) = (0usize, 0usize);
        let t = Instant::now();
        while !w.is_done() && calls < 4 << 20 {
            seen += dp.next_flows(&mut w).expect("walk");
            calls += 1;
        }
        let took = t.elapsed();
        // The LRU table may have evicted a few of the 2^20 on the way in.
        assert!(seen as u32 > n - n / 8, "only {seen} of {n} flows seen");
        report.push(format!(
            "batch {batch}: {seen} entries in {calls} calls, {took:?} ({:.0} ns/entry)",
            took.as_nanos() as f64 / seen as f64
        ));
        assert!(
            took.as_millis() < 1500,
            "walking {seen} entries took {took:?}"
        );
    }
    eprintln!(
        "full connection table ({n} entries, filled in {filled:?}): {}",
        report.join("; ")
    );
}
