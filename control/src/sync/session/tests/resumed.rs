//! A publisher that resumed a predecessor's tables (a restart without a
//! failover) knows its flows, not its calls: its snapshots ask the
//! standby to keep the calls they do not carry, until the time it was told.

use super::*;

/// The active restarts into a new stream that re-records the flows only,
/// keeping calls until `keep` from now (None: as a plain restart).
fn resume(sim: &mut Sim, keep: Option<Duration>) {
    sim.cut();
    sim.p = Publisher::new(PublisherConfig {
        stream: NonZeroU64::new(0xbeef).unwrap(),
        ..pcfg()
    });
    if let Some(d) = keep {
        sim.p.keep_calls_until(sim.now + d);
    }
    sim.active = Store::new();
    for i in 0..10 {
        sim.change(flow(i, 0));
    }
    sim.connect();
    sim.advance(2 * MS);
}

fn synced_with_calls() -> Sim {
    let mut sim = Sim::synced();
    for i in 0..10 {
        sim.change(flow(i, 0));
    }
    sim.change(call(1, 1));
    sim.change(call(2, 1));
    sim.advance(2 * MS);
    sim.assert_converged();
    sim
}

#[test]
fn a_resumed_publishers_snapshot_keeps_the_standbys_calls() {
    let mut sim = synced_with_calls();
    resume(&mut sim, Some(Duration::from_secs(60)));
    assert_eq!(sim.s.stream(), 0xbeef);
    assert_eq!(sim.s.store().flows_len(), 10);
    assert_eq!(sim.s.store().calls_len(), 2, "the calls the resumed publisher never saw are kept");
    assert_eq!(sim.s.stats().swept, 0);
}

#[test]
fn without_the_flag_or_after_its_time_the_snapshot_sweeps_calls() {
    let mut plain = synced_with_calls();
    resume(&mut plain, None);
    assert_eq!(plain.s.store().calls_len(), 0);
    let mut late = synced_with_calls();
    resume(&mut late, Some(Duration::ZERO));
    assert_eq!(late.s.store().calls_len(), 0, "a keep time already over is no keep");
}
