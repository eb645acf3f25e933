//! Every transition of the pair state machine, driven with a simulated
//! clock: each test feeds events and asserts the states and the actions.

use super::*;
use NodeState::*;
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);
const INTERVAL: Duration = Duration::from_millis(10);
const INIT_HOLD: Duration = Duration::from_millis(100);
/// interval × multiplier with multiplier 3.
const DEADLINE: Duration = Duration::from_millis(30);

const A: u32 = 1;
const B: u32 = 2;

fn cfg(node_id: u32, priority: u8) -> PairConfig {
    PairConfig {
        node_id,
        priority,
        preempt: false,
        interval: INTERVAL,
        multiplier: 3,
        paths: 2,
        witness: false,
        init_hold: INIT_HOLD,
        // Off unless a test turns it on: the rules of today's machine.
        hold_down: Duration::ZERO,
        hold_down_max: Duration::ZERO,
        preempt_delay: Duration::ZERO,
        switchover_hold: Some(Duration::ZERO),
        sync: false,
        echo: true,
    }
}

/// A node under test and its simulated clock.
struct Node {
    pair: Pair,
    t0: Instant,
    now: Instant,
}

impl Node {
    fn new(cfg: PairConfig) -> Node {
        let t0 = Instant::now();
        Node {
            pair: Pair::new(cfg, t0),
            t0,
            now: t0,
        }
    }

    /// A node that already settled as Active (alone, no witness).
    fn active(cfg: PairConfig) -> Node {
        let mut n = Node::new(cfg);
        n.advance(INIT_HOLD);
        assert_eq!(n.pair.state(), Active);
        n.drain();
        n
    }

    /// A node that settled as Standby under an active peer `peer` (epoch 1).
    fn standby(cfg: PairConfig, peer: u32, peer_priority: u8) -> Node {
        let mut n = Node::new(cfg);
        n.hb_all(peer, Active, 1, peer_priority);
        assert_eq!(n.pair.state(), Standby);
        n.drain();
        n
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    fn handle(&mut self, ev: Event) {
        self.pair.handle(ev, self.now);
    }

    fn hb(&mut self, path: u8, from: u32, state: NodeState, epoch: u64, priority: u8) {
        self.handle(Event::Heartbeat {
            path,
            from,
            state,
            epoch,
            priority,
        });
    }

    /// A heartbeat on every path.
    fn hb_all(&mut self, from: u32, state: NodeState, epoch: u64, priority: u8) {
        for path in 0..self.pair.config().paths {
            self.hb(path, from, state, epoch, priority);
        }
    }

    /// Let `d` pass, calling handle_timeout at every deadline on the way,
    /// as the runtime would.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.pair.poll_timeout().filter(|&t| t <= end) {
            self.now = self.now.max(t);
            self.pair.handle_timeout(self.now);
            assert!(
                self.pair.poll_timeout().is_none_or(|t| t > self.now),
                "handle_timeout left a deadline at or before now"
            );
        }
        self.now = end;
    }

    /// The actions, with every StateChanged's reason set to [`ANY`]
    /// (the reasons have tests of their own: see [`Node::drain_raw`]).
    fn drain(&mut self) -> Vec<Action> {
        self.drain_raw()
            .into_iter()
            .map(|a| match a {
                Action::StateChanged {
                    from, to, epoch, ..
                } => Action::StateChanged {
                    from,
                    to,
                    epoch,
                    reason: ANY,
                },
                a => a,
            })
            .collect()
    }

    /// The actions as the machine emitted them.
    fn drain_raw(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.pair.poll_action()).collect()
    }
}

/// The reason [`Node::drain`] puts in every StateChanged.
const ANY: Reason = Reason::InitAlone;

fn changed(from: NodeState, to: NodeState, epoch: u64) -> Action {
    Action::StateChanged {
        from,
        to,
        epoch,
        reason: ANY,
    }
}

/// Deliver one heartbeat from `from` to `to` on every path (both at `to`'s clock).
fn exchange(from: &Node, to: &mut Node) {
    let (state, epoch, priority, id) = (
        from.pair.state(),
        from.pair.epoch(),
        from.pair.priority(),
        from.pair.config().node_id,
    );
    to.hb_all(id, state, epoch, priority);
}

// ---- Init ----

#[test]
fn init_hears_active_peer_becomes_standby() {
    let mut n = Node::new(cfg(A, 200));
    n.hb(0, B, Active, 7, 100);
    assert_eq!(n.pair.state(), Standby);
    assert_eq!(n.drain(), vec![changed(Init, Standby, 0)]);
    assert_eq!(n.pair.epoch(), 7, "adopts the epoch it hears");
}

#[test]
fn init_hears_takeover_peer_becomes_standby() {
    let mut n = Node::new(cfg(A, 200));
    n.hb(1, B, Takeover, 3, 100);
    assert_eq!(n.pair.state(), Standby);
    assert_eq!(n.drain(), vec![changed(Init, Standby, 0)]);
}

#[test]
fn init_wins_tie_break_by_priority_against_standby_peer() {
    let mut n = Node::new(cfg(B, 200));
    n.hb(0, A, Standby, 4, 100);
    assert_eq!(n.pair.state(), Active);
    assert_eq!(n.pair.epoch(), 5, "max seen + 1");
    assert_eq!(
        n.drain(),
        vec![changed(Init, Active, 5), Action::BecomeActive { epoch: 5 }]
    );
}

#[test]
fn init_loses_tie_break_by_priority_becomes_standby() {
    let mut n = Node::new(cfg(A, 100));
    n.hb(0, B, Init, 0, 200);
    assert_eq!(n.pair.state(), Standby);
    assert_eq!(n.drain(), vec![changed(Init, Standby, 0)]);
}

#[test]
fn init_tie_break_equal_priority_lower_node_id_wins() {
    let mut a = Node::new(cfg(A, 100));
    let mut b = Node::new(cfg(B, 100));
    exchange(&a, &mut b); // b hears a in Init
    assert_eq!(b.pair.state(), Standby, "higher node id loses");
    assert_eq!(b.drain(), vec![changed(Init, Standby, 0)]);
    exchange(&b, &mut a); // a hears b Standby
    assert_eq!(a.pair.state(), Active, "lower node id wins");
    assert_eq!(
        a.drain(),
        vec![changed(Init, Active, 1), Action::BecomeActive { epoch: 1 }]
    );
}

#[test]
fn init_both_starting_together_decide_consistently_in_either_order() {
    for a_first in [true, false] {
        let mut a = Node::new(cfg(A, 100));
        let mut b = Node::new(cfg(B, 100));
        // Both send Init, both heartbeats cross on the wire.
        let from_a = (a.pair.state(), a.pair.epoch(), a.pair.priority());
        let from_b = (b.pair.state(), b.pair.epoch(), b.pair.priority());
        if a_first {
            a.hb_all(B, from_b.0, from_b.1, from_b.2);
            b.hb_all(A, from_a.0, from_a.1, from_a.2);
        } else {
            b.hb_all(A, from_a.0, from_a.1, from_a.2);
            a.hb_all(B, from_b.0, from_b.1, from_b.2);
        }
        assert_eq!(
            a.pair.state(),
            Active,
            "lower node id wins at equal priority"
        );
        assert_eq!(b.pair.state(), Standby);
        assert_eq!(
            a.drain(),
            vec![changed(Init, Active, 1), Action::BecomeActive { epoch: 1 }]
        );
        assert_eq!(b.drain(), vec![changed(Init, Standby, 0)]);
        exchange(&a, &mut b);
        assert_eq!(b.pair.epoch(), 1);
        assert_eq!(b.pair.state(), Standby);
    }
}

#[test]
fn init_peer_in_fault_takes_over_at_once() {
    for peer_state in [Fault, Maintenance] {
        let mut n = Node::new(cfg(A, 1));
        n.hb(0, B, peer_state, 2, 255);
        assert_eq!(n.pair.state(), Active, "peer {peer_state:?} cannot serve");
        assert_eq!(
            n.drain(),
            vec![changed(Init, Active, 3), Action::BecomeActive { epoch: 3 }]
        );
    }
}

#[test]
fn init_alone_without_witness_becomes_active_at_init_hold() {
    let mut n = Node::new(cfg(A, 100));
    assert_eq!(n.pair.poll_timeout(), Some(n.t0 + INIT_HOLD));
    n.advance(INIT_HOLD - MS);
    assert_eq!(n.pair.state(), Init, "still listening");
    assert!(n.drain().is_empty());
    n.advance(MS);
    assert_eq!(n.pair.state(), Active);
    assert_eq!(
        n.drain(),
        vec![
            changed(Init, Takeover, 0),
            changed(Takeover, Active, 1),
            Action::BecomeActive { epoch: 1 }
        ]
    );
}

#[test]
fn init_alone_with_witness_reachable_becomes_active() {
    let mut n = Node::new(PairConfig {
        witness: true,
        ..cfg(A, 100)
    });
    n.advance(INIT_HOLD);
    assert_eq!(n.pair.state(), Takeover);
    assert_eq!(
        n.drain(),
        vec![changed(Init, Takeover, 0), Action::ProbeWitness]
    );
    n.handle(Event::Witness { reachable: true });
    assert_eq!(n.pair.state(), Active);
    assert_eq!(
        n.drain(),
        vec![
            changed(Takeover, Active, 1),
            Action::BecomeActive { epoch: 1 }
        ]
    );
}

#[test]
fn init_alone_with_witness_unreachable_faults_and_retries() {
    let c = PairConfig {
        witness: true,
        ..cfg(A, 100)
    };
    let retry = c.isolation_retry();
    let mut n = Node::new(c);
    n.advance(INIT_HOLD);
    n.drain();
    n.handle(Event::Witness { reachable: false });
    assert_eq!(n.pair.state(), Fault, "isolated: must not serve");
    assert_eq!(n.drain(), vec![changed(Takeover, Fault, 0)]);
    assert_eq!(n.pair.poll_timeout(), Some(n.now + retry));
    n.advance(retry);
    assert_eq!(n.pair.state(), Takeover, "retried");
    assert_eq!(
        n.drain(),
        vec![changed(Fault, Takeover, 0), Action::ProbeWitness]
    );
    n.handle(Event::Witness { reachable: true });
    assert_eq!(n.pair.state(), Active);
    assert_eq!(
        n.drain(),
        vec![
            changed(Takeover, Active, 1),
            Action::BecomeActive { epoch: 1 }
        ]
    );
}

#[test]
fn isolated_fault_ends_when_peer_heard() {
    let mut n = Node::new(PairConfig {
        witness: true,
        ..cfg(A, 100)
    });
    n.advance(INIT_HOLD);
    n.handle(Event::Witness { reachable: false });
    n.drain();
    n.hb(0, B, Active, 1, 100);
    assert_eq!(n.pair.state(), Standby);
    assert_eq!(n.drain(), vec![changed(Fault, Standby, 0)]);
}

// ---- Standby and Takeover ----

#[test]
fn standby_takes_over_after_silence_on_every_path() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    n.advance(INTERVAL);
    n.hb(1, B, Active, 1, 100); // the service path still carries heartbeats
    let last = n.now;
    n.advance(DEADLINE - MS);
    assert_eq!(
        n.pair.state(),
        Standby,
        "heard on path 1 within the deadline"
    );
    assert!(n.drain().is_empty());
    assert_eq!(n.pair.poll_timeout(), Some(last + DEADLINE));
    n.advance(MS);
    assert_eq!(n.pair.state(), Active);
    assert_eq!(n.elapsed(), INTERVAL + DEADLINE);
    assert_eq!(
        n.drain(),
        vec![
            changed(Standby, Takeover, 1),
            changed(Takeover, Active, 2),
            Action::BecomeActive { epoch: 2 }
        ]
    );
}

#[test]
fn standby_no_takeover_when_only_heartbeat_link_broke() {
    let mut n = Node::standby(
        PairConfig {
            witness: true,
            ..cfg(A, 100)
        },
        B,
        100,
    );
    // Path 0 (the dedicated link) goes quiet and is reported down; path 1 keeps going.
    n.handle(Event::PathDown { path: 0 });
    for _ in 0..20 {
        n.advance(INTERVAL);
        n.hb(1, B, Active, 1, 100);
    }
    assert_eq!(n.pair.state(), Standby);
    assert!(n.drain().is_empty(), "nothing happens");
    let peer = n.pair.peer().expect("peer known");
    assert!(peer.paths[0].reported_down);
    assert_eq!(peer.paths[1].last_seen, Some(n.now));
}

#[test]
fn standby_takeover_with_witness_reachable_takes_epoch_max_plus_one() {
    let mut n = Node::standby(
        PairConfig {
            witness: true,
            ..cfg(A, 100)
        },
        B,
        100,
    );
    n.hb(0, B, Active, 6, 100);
    n.advance(DEADLINE);
    assert_eq!(n.pair.state(), Takeover);
    assert_eq!(
        n.drain(),
        vec![changed(Standby, Takeover, 6), Action::ProbeWitness]
    );
    n.handle(Event::Witness { reachable: true });
    assert_eq!(n.pair.state(), Active);
    assert_eq!(n.pair.epoch(), 7);
    assert_eq!(
        n.drain(),
        vec![
            changed(Takeover, Active, 7),
            Action::BecomeActive { epoch: 7 }
        ]
    );
}

#[test]
fn standby_takeover_with_witness_unreachable_faults_isolated() {
    let mut n = Node::standby(
        PairConfig {
            witness: true,
            ..cfg(A, 100)
        },
        B,
        100,
    );
    n.advance(DEADLINE);
    n.drain();
    n.handle(Event::Witness { reachable: false });
    assert_eq!(n.pair.state(), Fault);
    assert_eq!(n.drain(), vec![changed(Takeover, Fault, 1)]);
    // A late "reachable" answer to the old probe changes nothing.
    n.handle(Event::Witness { reachable: true });
    assert_eq!(n.pair.state(), Fault);
    assert!(n.drain().is_empty());
}

#[test]
fn witness_probe_unanswered_counts_as_unreachable() {
    let c = PairConfig {
        witness: true,
        ..cfg(A, 100)
    };
    let timeout = c.witness_timeout();
    let mut n = Node::standby(c, B, 100);
    n.advance(DEADLINE);
    assert_eq!(n.pair.state(), Takeover);
    n.drain();
    n.advance(timeout);
    assert_eq!(n.pair.state(), Fault);
    assert_eq!(n.drain(), vec![changed(Takeover, Fault, 1)]);
}

#[test]
fn takeover_aborted_when_peer_heard_again() {
    let mut n = Node::standby(
        PairConfig {
            witness: true,
            ..cfg(A, 100)
        },
        B,
        100,
    );
    n.advance(DEADLINE);
    n.drain();
    n.hb(1, B, Active, 1, 100);
    assert_eq!(n.pair.state(), Standby);
    assert_eq!(n.drain(), vec![changed(Takeover, Standby, 1)]);
    n.handle(Event::Witness { reachable: true });
    assert_eq!(
        n.pair.state(),
        Standby,
        "the answer to an abandoned probe is ignored"
    );
    assert!(n.drain().is_empty());
}

#[test]
fn path_down_on_every_path_starts_takeover_at_once() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    n.advance(MS);
    n.handle(Event::PathDown { path: 0 });
    assert_eq!(n.pair.state(), Standby);
    n.handle(Event::PathDown { path: 1 });
    assert_eq!(n.pair.state(), Active, "no wait for our own deadline");
    assert_eq!(n.elapsed(), MS);
    assert_eq!(
        n.drain(),
        vec![
            changed(Standby, Takeover, 1),
            changed(Takeover, Active, 2),
            Action::BecomeActive { epoch: 2 }
        ]
    );
}

#[test]
fn path_down_on_one_path_only_changes_nothing() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    n.handle(Event::PathDown { path: 1 });
    n.handle(Event::PathDown { path: 7 }); // no such path: ignored
    assert_eq!(n.pair.state(), Standby);
    assert!(n.drain().is_empty());
    assert_eq!(
        n.pair.poll_timeout(),
        Some(n.now + DEADLINE),
        "path 0 keeps the peer alive"
    );
}

#[test]
fn standby_takes_over_at_once_when_peer_announces_fault_or_maintenance() {
    for peer_state in [Fault, Maintenance] {
        let mut n = Node::standby(cfg(A, 1), B, 200);
        n.hb(0, B, peer_state, 1, 200);
        assert_eq!(n.pair.state(), Active, "peer {peer_state:?}");
        assert_eq!(
            n.drain(),
            vec![
                changed(Standby, Active, 2),
                Action::BecomeActive { epoch: 2 }
            ]
        );
    }
}

#[test]
fn standby_with_nobody_active_tie_break_winner_takes_over() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    n.hb(0, B, Standby, 1, 100);
    assert_eq!(n.pair.state(), Active, "equal priority: lower node id wins");
    assert_eq!(
        n.drain(),
        vec![
            changed(Standby, Active, 2),
            Action::BecomeActive { epoch: 2 }
        ]
    );
}

#[test]
fn standby_with_nobody_active_tie_break_loser_waits() {
    let mut n = Node::standby(cfg(B, 100), A, 100);
    n.hb(0, A, Standby, 1, 100);
    assert_eq!(n.pair.state(), Standby);
    assert!(n.drain().is_empty());
    // The winner takes over; the loser stays.
    n.hb(0, A, Active, 2, 100);
    assert_eq!(n.pair.state(), Standby);
    assert_eq!(n.pair.epoch(), 2);
}

#[test]
fn standby_waits_while_peer_in_takeover() {
    let mut n = Node::standby(cfg(A, 255), B, 1);
    n.hb_all(B, Takeover, 1, 1);
    assert_eq!(n.pair.state(), Standby);
    assert!(n.drain().is_empty());
}

#[test]
fn standby_without_any_peer_takes_over() {
    let mut n = Node::new(cfg(A, 100));
    n.handle(Event::AdminMaintenance(true));
    n.handle(Event::AdminMaintenance(false));
    assert_eq!(
        n.pair.state(),
        Active,
        "Maintenance → Standby → no peer → Takeover → Active"
    );
    assert_eq!(
        n.drain(),
        vec![
            changed(Init, Maintenance, 0),
            changed(Maintenance, Standby, 0),
            changed(Standby, Takeover, 0),
            changed(Takeover, Active, 1),
            Action::BecomeActive { epoch: 1 },
        ]
    );
}

// ---- Active: dual active after a partition heals ----

#[test]
fn dual_active_higher_epoch_wins_loser_steps_down() {
    let mut n = Node::active(cfg(A, 255)); // epoch 1
    n.hb(0, B, Active, 4, 1);
    assert_eq!(n.pair.state(), Standby, "the epoch decides before priority");
    assert_eq!(n.pair.epoch(), 4);
    assert_eq!(
        n.drain(),
        vec![changed(Active, Standby, 1), Action::BecomeStandby]
    );
}

#[test]
fn dual_active_winner_sends_garp_once_per_heal() {
    let mut n = Node::active(cfg(B, 1)); // epoch 1
    n.hb_all(A, Active, 0, 255);
    assert_eq!(n.pair.state(), Active);
    assert_eq!(n.drain(), vec![Action::SendGarp], "once, not once per path");
    n.advance(INTERVAL);
    n.hb_all(A, Active, 0, 255);
    assert!(n.drain().is_empty(), "same episode");
    n.advance(INTERVAL);
    n.hb(0, A, Standby, 1, 255);
    // Partition again, then heal again: a new episode.
    n.advance(DEADLINE);
    n.hb(0, A, Active, 0, 255);
    assert_eq!(n.drain(), vec![Action::SendGarp]);
}

#[test]
fn dual_active_equal_epoch_higher_priority_wins() {
    let mut hi = Node::active(cfg(B, 200));
    let mut lo = Node::active(cfg(A, 100));
    let (s_hi, s_lo) = (hi.snapshot(), lo.snapshot());
    exchange(&s_hi, &mut lo);
    exchange(&s_lo, &mut hi);
    assert_eq!(lo.pair.state(), Standby);
    assert_eq!(hi.pair.state(), Active);
    assert_eq!(
        lo.drain(),
        vec![changed(Active, Standby, 1), Action::BecomeStandby]
    );
    assert_eq!(hi.drain(), vec![Action::SendGarp]);
}

#[test]
fn dual_active_equal_epoch_and_priority_lower_node_id_wins() {
    let mut a = Node::active(cfg(A, 100));
    let mut b = Node::active(cfg(B, 100));
    // Heartbeats cross: each sees the other active at epoch 1.
    let (sa, sb) = (a.snapshot(), b.snapshot());
    exchange(&sb, &mut a);
    exchange(&sa, &mut b);
    assert_eq!(a.pair.state(), Active);
    assert_eq!(b.pair.state(), Standby);
    assert_eq!(a.drain(), vec![Action::SendGarp]);
    assert_eq!(
        b.drain(),
        vec![changed(Active, Standby, 1), Action::BecomeStandby]
    );
    // Settled: b now hears a active and stays standby.
    exchange(&a, &mut b);
    exchange(&b, &mut a);
    assert_eq!((a.pair.state(), b.pair.state()), (Active, Standby));
    assert!(a.drain().is_empty() && b.drain().is_empty());
}

#[test]
fn active_ignores_standby_and_dead_peer() {
    let mut n = Node::active(cfg(B, 1));
    n.hb_all(A, Standby, 0, 255);
    n.advance(DEADLINE * 3);
    assert_eq!(n.pair.state(), Active);
    assert!(n.drain().is_empty());
    assert_eq!(
        n.pair.poll_timeout(),
        None,
        "an active has no deadline of its own"
    );
}

// ---- Preempt ----

#[test]
fn preempt_on_higher_priority_standby_takes_over_and_old_active_steps_down() {
    let mut hi = Node::new(PairConfig {
        preempt: true,
        ..cfg(A, 200)
    });
    let mut lo = Node::active(cfg(B, 100)); // epoch 1
    exchange(&lo, &mut hi); // hi returns, hears lo active
    assert_eq!(hi.pair.state(), Active, "preempts at once");
    assert_eq!(hi.pair.epoch(), 2);
    assert_eq!(
        hi.drain(),
        vec![
            changed(Init, Standby, 0),
            changed(Standby, Active, 2),
            Action::BecomeActive { epoch: 2 }
        ]
    );
    exchange(&hi, &mut lo);
    assert_eq!(lo.pair.state(), Standby, "sees the higher epoch");
    assert_eq!(lo.pair.epoch(), 2);
    assert_eq!(
        lo.drain(),
        vec![changed(Active, Standby, 1), Action::BecomeStandby]
    );
    exchange(&lo, &mut hi);
    assert!(hi.drain().is_empty());
}

#[test]
fn preempt_off_returning_node_stays_standby() {
    let mut hi = Node::new(cfg(A, 200));
    let lo = Node::active(cfg(B, 100));
    exchange(&lo, &mut hi);
    assert_eq!(hi.pair.state(), Standby);
    assert_eq!(hi.drain(), vec![changed(Init, Standby, 0)]);
}

#[test]
fn preempt_needs_strictly_higher_priority() {
    let mut n = Node::new(PairConfig {
        preempt: true,
        ..cfg(A, 100)
    });
    n.hb(0, B, Active, 1, 100);
    assert_eq!(n.pair.state(), Standby);
}

#[test]
fn preempting_loser_of_dual_active_keeps_role_under_new_epoch() {
    let mut hi = Node::active(PairConfig {
        preempt: true,
        ..cfg(A, 200)
    }); // epoch 1
    hi.hb(0, B, Active, 5, 100);
    assert_eq!(hi.pair.state(), Active, "no release-and-retake");
    assert_eq!(hi.pair.epoch(), 6);
    assert_eq!(hi.drain(), vec![Action::SendGarp]);
}

// ---- Admin switchover and yield ----

#[test]
fn switchover_hands_over_and_peer_takes_over_at_once() {
    let c = cfg(A, 200);
    let hold = c.yield_hold();
    let mut a = Node::active(c); // epoch 1
    let mut b = Node::standby(cfg(B, 100), A, 200);
    exchange(&b, &mut a);
    assert_eq!(a.pair.can_switchover(a.now), Ok(()));
    a.handle(Event::AdminSwitchover);
    assert_eq!(a.pair.state(), Standby);
    assert_eq!(a.pair.priority(), 0, "yielding");
    assert_eq!(
        a.drain(),
        vec![changed(Active, Standby, 1), Action::BecomeStandby]
    );
    exchange(&a, &mut b);
    assert_eq!(
        b.pair.state(),
        Active,
        "no active, the peer yields: take over at once"
    );
    assert_eq!(b.pair.epoch(), 2);
    assert_eq!(
        b.drain(),
        vec![
            changed(Standby, Active, 2),
            Action::BecomeActive { epoch: 2 }
        ]
    );
    // The yielding node does not claim the role meanwhile; its hold ends.
    let hold_end = a.now + hold;
    while a.now < hold_end {
        assert_eq!(a.pair.priority(), 0, "yielding");
        exchange(&b, &mut a);
        a.advance(INTERVAL);
    }
    exchange(&b, &mut a);
    assert_eq!(a.pair.priority(), 200, "yield over");
    assert_eq!(a.pair.state(), Standby, "preempt off: stays");
    assert!(a.drain().is_empty());
}

#[test]
fn yielding_standby_does_not_take_a_role_nobody_holds() {
    let mut a = Node::active(cfg(A, 200));
    a.hb(0, B, Standby, 1, 100);
    a.handle(Event::AdminSwitchover);
    a.drain();
    a.hb(0, B, Standby, 1, 100);
    assert_eq!(a.pair.state(), Standby, "yielding: waits for the peer");
    // But a peer that faults gets the role handed back at once.
    a.hb(0, B, Fault, 1, 100);
    assert_eq!(a.pair.state(), Active);
}

#[test]
fn yield_hold_ends_and_preempt_takes_the_role_back() {
    let c = PairConfig {
        preempt: true,
        ..cfg(A, 200)
    };
    let hold = c.yield_hold();
    let mut a = Node::active(c);
    a.hb(0, B, Standby, 1, 100);
    a.handle(Event::AdminSwitchover);
    a.drain();
    for _ in 0..(hold.as_millis() / INTERVAL.as_millis()) {
        a.hb(0, B, Active, 2, 100);
        assert_eq!(a.pair.state(), Standby, "no preempt while yielding");
        a.advance(INTERVAL);
    }
    a.hb(0, B, Active, 2, 100);
    assert_eq!(a.pair.state(), Active, "hold over: preempts");
    assert_eq!(a.pair.epoch(), 3);
}

#[test]
fn switchover_refused_without_healthy_standby_peer() {
    let mut a = Node::active(cfg(A, 100));
    assert_eq!(
        a.pair.can_switchover(a.now),
        Err(SwitchoverRefused::NoHealthyPeer)
    );
    a.handle(Event::AdminSwitchover);
    assert_eq!(a.pair.state(), Active, "alone: nobody would take the role");
    a.hb(0, B, Fault, 0, 100);
    a.handle(Event::AdminSwitchover);
    assert_eq!(a.pair.state(), Active, "the peer is faulted");
    assert!(a.drain().is_empty());
    assert_eq!(a.pair.priority(), 100);
}

#[test]
fn switchover_on_standby_is_ignored() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    assert_eq!(
        n.pair.can_switchover(n.now),
        Err(SwitchoverRefused::NotActive(Standby))
    );
    n.handle(Event::AdminSwitchover);
    assert_eq!(n.pair.state(), Standby);
    assert_eq!(n.pair.priority(), 100);
    assert!(n.drain().is_empty());
}

// ---- Local faults ----

#[test]
fn local_fault_on_active_with_healthy_standby_peer_hands_over() {
    let mut n = Node::active(cfg(A, 100));
    n.hb(0, B, Standby, 1, 100);
    n.handle(Event::LocalFault(FaultKind::CardAlarm));
    assert_eq!(n.pair.state(), Fault);
    assert_eq!(
        n.drain(),
        vec![changed(Active, Fault, 1), Action::BecomeStandby]
    );
    assert_eq!(n.pair.local_fault(), Some(FaultKind::CardAlarm));
}

#[test]
fn local_fault_on_active_alone_stays_active_degraded_until_peer_is_standby() {
    let mut n = Node::active(cfg(A, 100));
    n.handle(Event::LocalFault(FaultKind::InterfaceDown));
    assert_eq!(n.pair.state(), Active, "no peer to do better");
    assert!(n.drain().is_empty());
    n.hb(0, B, Init, 0, 100);
    assert_eq!(n.pair.state(), Active, "a starting peer is not ready yet");
    n.hb(0, B, Standby, 1, 100);
    assert_eq!(n.pair.state(), Fault, "hands over to the healthy standby");
    assert_eq!(
        n.drain(),
        vec![changed(Active, Fault, 1), Action::BecomeStandby]
    );
}

#[test]
fn local_fault_on_active_with_faulted_peer_stays_active() {
    let mut n = Node::active(cfg(A, 100));
    n.hb(0, B, Fault, 1, 100);
    n.handle(Event::LocalFault(FaultKind::Other));
    assert_eq!(n.pair.state(), Active);
    assert!(n.drain().is_empty());
}

#[test]
fn local_fault_on_standby_faults_and_never_takes_over() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    n.handle(Event::LocalFault(FaultKind::CardAlarm));
    assert_eq!(n.pair.state(), Fault);
    assert_eq!(n.drain(), vec![changed(Standby, Fault, 1)]);
    n.hb(0, B, Maintenance, 1, 100);
    n.advance(DEADLINE * 5);
    assert_eq!(
        n.pair.state(),
        Fault,
        "neither the peer's maintenance nor its death moves a faulted node"
    );
    assert!(n.drain().is_empty());
    assert_eq!(n.pair.poll_timeout(), None);
}

#[test]
fn local_fault_in_init_and_takeover_faults() {
    let mut n = Node::new(cfg(A, 100));
    n.handle(Event::LocalFault(FaultKind::InterfaceDown));
    assert_eq!(n.drain(), vec![changed(Init, Fault, 0)]);
    let mut n = Node::standby(
        PairConfig {
            witness: true,
            ..cfg(A, 100)
        },
        B,
        100,
    );
    n.advance(DEADLINE);
    assert_eq!(n.pair.state(), Takeover);
    n.drain();
    n.handle(Event::LocalFault(FaultKind::InterfaceDown));
    assert_eq!(n.drain(), vec![changed(Takeover, Fault, 1)]);
    n.handle(Event::Witness { reachable: true });
    assert_eq!(
        n.pair.state(),
        Fault,
        "the abandoned probe's answer is ignored"
    );
}

#[test]
fn local_fault_cleared_returns_to_standby_then_normal_rules() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    n.handle(Event::LocalFault(FaultKind::CardAlarm));
    n.drain();
    n.hb(0, B, Active, 1, 100);
    n.handle(Event::LocalFaultCleared);
    assert_eq!(n.pair.state(), Standby, "peer active: stays standby");
    assert_eq!(n.drain(), vec![changed(Fault, Standby, 1)]);
    n.handle(Event::LocalFault(FaultKind::CardAlarm));
    n.advance(DEADLINE); // the peer died meanwhile
    n.handle(Event::LocalFaultCleared);
    assert_eq!(
        n.pair.state(),
        Active,
        "peer dead: Standby → Takeover → Active"
    );
    assert_eq!(
        n.drain(),
        vec![
            changed(Standby, Fault, 1),
            changed(Fault, Standby, 1),
            changed(Standby, Takeover, 1),
            changed(Takeover, Active, 2),
            Action::BecomeActive { epoch: 2 },
        ]
    );
}

#[test]
fn local_fault_cleared_on_degraded_active_stays_active() {
    let mut n = Node::active(cfg(A, 100));
    n.handle(Event::LocalFault(FaultKind::CardAlarm));
    n.handle(Event::LocalFaultCleared);
    n.hb(0, B, Standby, 1, 100);
    assert_eq!(n.pair.state(), Active, "healthy again: no handover");
    assert!(n.drain().is_empty());
}

#[test]
fn local_fault_replaces_isolation() {
    let mut n = Node::new(PairConfig {
        witness: true,
        ..cfg(A, 100)
    });
    n.advance(INIT_HOLD);
    n.handle(Event::Witness { reachable: false });
    n.handle(Event::LocalFault(FaultKind::Other));
    n.drain();
    assert_eq!(
        n.pair.poll_timeout(),
        None,
        "no witness retries while locally faulted"
    );
    n.handle(Event::LocalFaultCleared);
    assert_eq!(n.pair.state(), Takeover);
    assert_eq!(
        n.drain(),
        vec![
            changed(Fault, Standby, 0),
            changed(Standby, Takeover, 0),
            Action::ProbeWitness
        ]
    );
}

// ---- Maintenance ----

#[test]
fn maintenance_on_active_releases_and_never_takes_over() {
    let mut n = Node::active(cfg(A, 100));
    n.handle(Event::AdminMaintenance(true));
    assert_eq!(n.pair.state(), Maintenance);
    assert_eq!(
        n.drain(),
        vec![changed(Active, Maintenance, 1), Action::BecomeStandby]
    );
    n.hb(0, B, Fault, 1, 100);
    n.advance(DEADLINE * 5);
    assert_eq!(n.pair.state(), Maintenance);
    assert!(n.drain().is_empty());
    n.hb(0, B, Active, 2, 100);
    n.handle(Event::AdminMaintenance(false));
    assert_eq!(n.pair.state(), Standby);
    assert_eq!(n.drain(), vec![changed(Maintenance, Standby, 2)]);
}

#[test]
fn maintenance_interrupts_takeover_and_local_fault_waits_behind_it() {
    let mut n = Node::standby(
        PairConfig {
            witness: true,
            ..cfg(A, 100)
        },
        B,
        100,
    );
    n.advance(DEADLINE);
    n.drain();
    n.handle(Event::AdminMaintenance(true));
    n.handle(Event::LocalFault(FaultKind::CardAlarm));
    assert_eq!(n.pair.state(), Maintenance);
    assert_eq!(n.drain(), vec![changed(Takeover, Maintenance, 1)]);
    n.handle(Event::AdminMaintenance(false));
    assert_eq!(n.pair.state(), Fault, "the fault still holds");
}

// ---- Epoch, input hygiene, timers ----

#[test]
fn epoch_adopts_max_heard_and_never_decreases() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    n.hb(0, B, Active, 9, 100);
    assert_eq!(n.pair.epoch(), 9);
    n.hb(0, B, Active, 3, 100);
    assert_eq!(n.pair.epoch(), 9, "a lower epoch is not adopted");
    assert_eq!(
        n.pair.peer().map(|p| p.epoch),
        Some(3),
        "but is what the peer says"
    );
}

#[test]
fn heartbeat_from_self_or_unknown_path_is_ignored() {
    let mut n = Node::new(cfg(A, 100));
    n.hb(0, A, Active, 5, 100);
    n.hb(2, B, Active, 5, 100);
    assert_eq!(n.pair.state(), Init);
    assert_eq!(n.pair.epoch(), 0);
    assert_eq!(n.pair.peer(), None);
}

#[test]
fn heartbeat_from_new_node_id_replaces_the_peer() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    n.hb(1, 3, Active, 1, 50);
    let peer = n.pair.peer().expect("peer");
    assert_eq!(peer.node_id, 3);
    assert_eq!(peer.paths[0].last_seen, None, "old node's paths forgotten");
    assert_eq!(peer.paths[1].last_seen, Some(n.now));
}

#[test]
fn priority_zero_is_reserved_for_yield() {
    let n = Node::new(cfg(A, 0));
    assert_eq!(n.pair.priority(), 1);
}

#[test]
fn poll_timeout_tracks_the_next_deadline_of_each_state() {
    let c = PairConfig {
        witness: true,
        ..cfg(A, 100)
    };
    let mut n = Node::new(c.clone());
    assert_eq!(
        n.pair.poll_timeout(),
        Some(n.t0 + INIT_HOLD),
        "Init: init_hold"
    );
    n.hb(0, B, Active, 1, 100);
    n.advance(5 * MS);
    n.hb(1, B, Active, 1, 100);
    assert_eq!(
        n.pair.poll_timeout(),
        Some(n.now + DEADLINE),
        "Standby: the latest path's deadline"
    );
    n.advance(DEADLINE);
    assert_eq!(n.pair.state(), Takeover);
    assert_eq!(
        n.pair.poll_timeout(),
        Some(n.now + c.witness_timeout()),
        "Takeover: the witness answer"
    );
    n.handle(Event::Witness { reachable: true });
    assert_eq!(n.pair.poll_timeout(), None, "Active: none");
}

/// A copy of a node as it is now, so that heartbeats can cross.
impl Node {
    fn snapshot(&self) -> Node {
        Node {
            pair: self.pair.clone(),
            t0: self.t0,
            now: self.now,
        }
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn event() -> impl Strategy<Value = Event> {
        let state = prop::sample::select(NodeState::ALL.to_vec());
        prop_oneof![
            4 => (0u8..3, 1u32..4, state, 0u64..6, 0u8..3).prop_map(|(path, from, state, epoch, priority)| {
                Event::Heartbeat { path, from, state, epoch, priority: priority * 100 }
            }),
            1 => (0u8..3).prop_map(|path| Event::PathDown { path }),
            1 => Just(Event::LocalFault(FaultKind::CardAlarm)),
            1 => Just(Event::LocalFaultCleared),
            1 => Just(Event::AdminSwitchover),
            1 => any::<bool>().prop_map(Event::AdminMaintenance),
            1 => any::<bool>().prop_map(|reachable| Event::Witness { reachable }),
            1 => (0u8..3, 0u64..8).prop_map(|(path, seq)| Event::EchoSent { path, seq }),
            1 => (0u8..3, 0u64..8).prop_map(|(path, seq)| Event::EchoReturned { path, seq }),
            1 => (0u8..3).prop_map(|path| Event::PeerBadMac { path }),
            1 => Just(Event::Fenced),
            1 => any::<bool>().prop_map(Event::PeerStateHeld),
            1 => Just(Event::AdminReleaseHold),
        ]
    }

    proptest! {
        /// Any input sequence: the epoch never goes back, BecomeActive and
        /// BecomeStandby alternate with the state, StateChanged chains, and
        /// handle_timeout always moves the next deadline past now.
        #[test]
        fn any_inputs_keep_the_invariants(
            witness in any::<bool>(),
            preempt in any::<bool>(),
            damping in any::<bool>(),
            sync in any::<bool>(),
            steps in prop::collection::vec((0u64..40, event()), 1..60),
        ) {
            let base = PairConfig { witness, preempt, sync, ..cfg(2, 100) };
            let c = if damping {
                PairConfig {
                    hold_down: 20 * MS,
                    hold_down_max: 80 * MS,
                    preempt_delay: 15 * MS,
                    switchover_hold: None,
                    ..base
                }
            } else {
                base
            };
            let mut n = Node::new(c);
            let mut serving = false;
            let mut state = Init;
            for (wait_ms, ev) in steps {
                let epoch = n.pair.epoch();
                n.advance(Duration::from_millis(wait_ms));
                n.handle(ev);
                prop_assert!(n.pair.epoch() >= epoch);
                for a in n.drain() {
                    match a {
                        Action::StateChanged { from, to, .. } => {
                            prop_assert_eq!(from, state);
                            prop_assert_ne!(from, to);
                            state = to;
                        }
                        Action::BecomeActive { epoch } => {
                            prop_assert!(!serving);
                            prop_assert!(epoch <= n.pair.epoch());
                            serving = true;
                        }
                        Action::BecomeStandby => { prop_assert!(serving); serving = false; }
                        Action::SendGarp => prop_assert!(serving),
                        Action::ProbeWitness => prop_assert!(witness && state == Takeover),
                        Action::Held { .. } => {}
                    }
                }
                prop_assert_eq!(state, n.pair.state());
                prop_assert_eq!(serving, n.pair.state() == Active);
            }
        }
    }
}

#[test]
fn local_fault_precedence_link_over_card() {
    use crate::pair::local_fault;
    assert_eq!(local_fault(false, false), None);
    assert_eq!(local_fault(false, true), Some(FaultKind::CardAlarm));
    assert_eq!(local_fault(true, false), Some(FaultKind::InterfaceDown));
    assert_eq!(local_fault(true, true), Some(FaultKind::InterfaceDown));
}

fn witness_standby() -> Node {
    Node::standby(
        PairConfig {
            witness: true,
            ..cfg(B, 100)
        },
        A,
        150,
    )
}

#[test]
fn standby_with_a_fresh_witness_answer_takes_over_without_a_probe() {
    let mut n = witness_standby();
    let last_hb = n.now;
    // The standby probes all along; this probe left after the peer had
    // missed two intervals (multiplier − 1), so its answer is fresh.
    n.advance(INTERVAL * 2);
    let sent = n.now;
    assert!(sent >= last_hb + INTERVAL * 2);
    n.advance(MS);
    n.handle(Event::WitnessAnswered { sent_at: sent });
    assert_eq!(n.pair.state(), Standby, "an answer alone takes nothing");
    n.advance(DEADLINE);
    assert_eq!(
        n.pair.state(),
        Active,
        "peer dead, witness fresh: no extra round trip"
    );
    assert_eq!(
        n.drain(),
        vec![
            changed(Standby, Takeover, 1),
            changed(Takeover, Active, 2),
            Action::BecomeActive { epoch: 2 }
        ]
    );
}

#[test]
fn standby_with_a_stale_witness_answer_probes_and_waits_for_a_fresh_one() {
    let mut n = witness_standby();
    // Answered a probe sent while the peer was still talking: stale.
    let stale = n.now;
    n.handle(Event::WitnessAnswered { sent_at: stale });
    n.advance(DEADLINE);
    assert_eq!(n.pair.state(), Takeover);
    assert_eq!(
        n.drain(),
        vec![changed(Standby, Takeover, 1), Action::ProbeWitness]
    );
    // A late answer to an old probe does not do either.
    n.handle(Event::WitnessAnswered {
        sent_at: stale + INTERVAL,
    });
    assert_eq!(n.pair.state(), Takeover);
    // The answer to the probe just sent does.
    let probe = n.now;
    n.advance(MS);
    n.handle(Event::WitnessAnswered { sent_at: probe });
    assert_eq!(n.pair.state(), Active);
    assert_eq!(
        n.drain(),
        vec![
            changed(Takeover, Active, 2),
            Action::BecomeActive { epoch: 2 }
        ]
    );
}

#[test]
fn takeover_without_a_fresh_witness_answer_is_isolated_at_its_timeout() {
    let c = PairConfig {
        witness: true,
        ..cfg(B, 100)
    };
    let timeout = c.witness_timeout();
    let mut n = Node::standby(c, A, 150);
    n.advance(DEADLINE);
    assert_eq!(n.pair.state(), Takeover);
    n.drain();
    n.advance(timeout);
    assert_eq!(n.pair.state(), Fault, "no answer: isolated, must not serve");
}

mod damping;
mod partition;
mod restart;

