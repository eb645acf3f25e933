//! A planned restart: the silent peer that announced one is alive for its
//! grace, no longer; a resumed node is Active under the same epoch; a
//! restarted node that yields lets the peer take the role.

use super::*;

const GRACE: Duration = Duration::from_millis(500);

/// B announces a restart on every path at `n.now` and falls silent.
fn announce(n: &mut Node) {
    n.hb_all(B, Active, 1, 100);
    let until = n.now + GRACE;
    n.handle(Event::PeerRestarting { until });
}

#[test]
fn a_standby_holds_through_the_peers_restart_grace_and_takes_over_after_it() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    announce(&mut n);
    n.drain();
    // Far past the deadline (30 ms), within the grace: held, still standby.
    n.advance(GRACE - MS);
    assert_eq!(n.pair.state(), Standby);
    assert!(n.pair.peer_alive(n.now));
    assert_eq!(n.pair.peer_restarting_until(n.now), Some(n.t0 + GRACE));
    let acts = n.drain_raw();
    assert!(
        acts.iter().any(|a| matches!(a, Action::Held { hold: Hold::PeerRestarting, .. })),
        "{acts:?}"
    );
    assert!(!acts.iter().any(|a| matches!(a, Action::StateChanged { .. })), "{acts:?}");
    // The grace ends with no word: the peer is dead, the standby takes over.
    n.advance(2 * MS);
    assert_eq!(n.pair.state(), Active);
    assert_eq!(n.pair.peer_restarting_until(n.now), None);
    assert!(n.drain_raw().iter().any(|a| matches!(
        a,
        Action::StateChanged { to: Active, reason: Reason::PeerDead { .. }, .. }
    )));
}

#[test]
fn the_restarted_peer_heard_again_ends_the_grace() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    announce(&mut n);
    n.advance(200 * MS);
    // The new process: same epoch, active, no announcement.
    n.hb_all(B, Active, 1, 100);
    assert_eq!(n.pair.peer_restarting_until(n.now), None);
    // Now silence is death after one deadline, not at the old grace's end.
    n.advance(DEADLINE + MS);
    assert_eq!(n.pair.state(), Active, "took over after a plain deadline");
}

#[test]
fn an_announcement_older_than_its_grace_changes_nothing() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    n.advance(DEADLINE - MS);
    // A record whose grace has already ended (read late) extends nothing.
    n.handle(Event::PeerRestarting { until: n.now - MS });
    assert_eq!(n.pair.peer_restarting_until(n.now), None);
    n.advance(2 * MS);
    assert_eq!(n.pair.state(), Active);
}

/// A restarted A that resumed the active role under `epoch`.
fn resumed(epoch: u64) -> Node {
    let t0 = Instant::now();
    Node { pair: Pair::resume(cfg(A, 100), t0, epoch), t0, now: t0 }
}

#[test]
fn a_resumed_node_is_active_under_its_epoch_and_keeps_the_role_beside_a_standby() {
    let mut n = resumed(7);
    assert_eq!(n.pair.state(), Active);
    assert_eq!(n.pair.epoch(), 7);
    assert_eq!(
        n.drain_raw(),
        vec![
            Action::StateChanged { from: Init, to: Active, epoch: 7, reason: Reason::Resumed },
            Action::BecomeActive { epoch: 7 },
        ]
    );
    n.hb_all(B, Standby, 7, 100);
    n.advance(INIT_HOLD * 3);
    n.hb_all(B, Standby, 7, 100);
    assert_eq!(n.pair.state(), Active);
    assert_eq!(n.pair.epoch(), 7);
    assert!(n.drain_raw().iter().all(|a| !matches!(a, Action::StateChanged { .. })));
}

#[test]
fn a_resumed_node_meeting_a_peer_active_under_a_higher_epoch_steps_down() {
    let mut n = resumed(7);
    n.drain();
    // The peer took over meanwhile (the grace ran out): epoch 8 wins.
    n.hb_all(B, Active, 8, 100);
    assert_eq!(n.pair.state(), Standby);
}

#[test]
fn a_restarted_node_that_yields_lets_the_standby_take_the_role() {
    // A (priority 200) restarted without its tables: it yields.
    let mut a = Node::new(cfg(A, 200));
    a.pair.yield_at_start(a.now);
    assert_eq!(a.pair.priority(), 0);
    // B, standby, hears A back in Init at priority 0: B wins the tie-break.
    let mut b = Node::standby(cfg(B, 100), A, 200);
    b.hb_all(A, Init, 1, a.pair.priority());
    assert_eq!(b.pair.state(), Active);
    let epoch = b.pair.epoch();
    assert_eq!(epoch, 2);
    // A hears B active: standby, never active on the way.
    a.hb_all(B, Active, epoch, 100);
    assert_eq!(a.pair.state(), Standby);
    assert!(a.drain_raw().iter().all(|x| !matches!(x, Action::BecomeActive { .. })));
}
