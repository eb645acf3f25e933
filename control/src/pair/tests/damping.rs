//! The rules of issue 12 with a simulated clock: echo liveness, a node's
//! own stalls, positively dead, flap damping and its back-off, fencing,
//! preemption gated on the peer's state, a misconfigured peer, the
//! switchover hold, and the reasons every transition carries.

use super::*;

/// Damping on: hold-down 100 ms (cap 800 ms), preempt delay 50 ms,
/// switchover held until released.
fn damped(node_id: u32, priority: u8) -> PairConfig {
    PairConfig {
        hold_down: 100 * MS,
        hold_down_max: 800 * MS,
        preempt_delay: 50 * MS,
        switchover_hold: None,
        ..cfg(node_id, priority)
    }
}

fn reasons(actions: &[Action]) -> Vec<(NodeState, NodeState, Reason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StateChanged {
                from, to, reason, ..
            } => Some((*from, *to, *reason)),
            _ => None,
        })
        .collect()
}

fn holds(actions: &[Action]) -> Vec<Hold> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Held { hold, .. } => Some(*hold),
            _ => None,
        })
        .collect()
}

impl Node {
    /// An active node comes back fenced after its peer started a takeover
    /// (heard in Takeover), and the peer then falls back to Standby: the
    /// node steps down (a flap) and faces a standby peer, held down.
    fn fenced_beside_a_takeover(&mut self, peer: u32, epoch: u64, priority: u8) {
        self.hb_all(peer, Takeover, epoch, priority);
        self.handle(Event::Fenced);
        self.hb_all(peer, Standby, epoch, priority);
    }

    /// Echo `seq` on every path sent now (and, if `back`, returned at once).
    fn echo_all(&mut self, seq: u64, back: bool) {
        for path in 0..self.pair.config().paths {
            self.handle(Event::EchoSent { path, seq });
            if back {
                self.handle(Event::EchoReturned { path, seq });
            }
        }
    }
}

/// Two nodes on one simulated clock, heartbeats (and optionally echoes)
/// exchanged every interval while the link is up. Counts role transfers.
struct Duo {
    a: Node,
    b: Node,
    link: bool,
    /// A stalled node's daemon does nothing; its kernel reflects no echo.
    stalled: [bool; 2],
    echo: bool,
    seq: u64,
    /// (elapsed, node, from, to) of every state change involving Active.
    role_changes: Vec<(Duration, usize, NodeState, NodeState)>,
}

impl Duo {
    fn new(ca: PairConfig, cb: PairConfig) -> Duo {
        let t0 = Instant::now();
        let node = |c| Node {
            pair: Pair::new(c, t0),
            t0,
            now: t0,
        };
        Duo {
            a: node(ca),
            b: node(cb),
            link: true,
            stalled: [false; 2],
            echo: false,
            seq: 0,
            role_changes: Vec::new(),
        }
    }

    fn record(&mut self) {
        for (i, n) in [&mut self.a, &mut self.b].into_iter().enumerate() {
            for (from, to, _) in reasons(&n.drain_raw()) {
                if from == Active || to == Active {
                    self.role_changes.push((n.elapsed(), i, from, to));
                }
            }
        }
    }

    /// One interval: exchange (if the link is up), then let it pass.
    fn tick(&mut self) {
        let [sa, sb] = self.stalled;
        if self.link {
            let (a, b) = (self.a.snapshot(), self.b.snapshot());
            if !sa {
                exchange(&a, &mut self.b);
            }
            if !sb {
                exchange(&b, &mut self.a);
            }
        }
        if self.echo {
            self.seq += 1;
            let seq = self.seq;
            if !sa {
                self.a.echo_all(seq, self.link && !sb);
            }
            if !sb {
                self.b.echo_all(seq, self.link && !sa);
            }
        }
        self.record();
        for (n, stalled) in [(&mut self.a, sa), (&mut self.b, sb)] {
            if stalled {
                n.now += INTERVAL;
            } else {
                n.advance(INTERVAL);
            }
        }
        self.record();
    }

    /// Stall node `i` for `d`; it comes back fenced (the dead-man tripped).
    fn stall(&mut self, i: usize, d: Duration) {
        self.stalled[i] = true;
        self.run(d);
        self.stalled[i] = false;
        let n = if i == 0 { &mut self.a } else { &mut self.b };
        n.handle(Event::Fenced);
        self.record();
    }

    fn run(&mut self, d: Duration) {
        for _ in 0..(d.as_millis() / INTERVAL.as_millis()) {
            self.tick();
        }
    }

    fn actives(&self) -> usize {
        [&self.a, &self.b]
            .iter()
            .filter(|n| n.pair.state() == Active)
            .count()
    }
}

// ---- Echo liveness ----

#[test]
fn echo_keeps_a_peer_with_stale_heartbeats_alive() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    n.echo_all(1, true);
    for seq in 2..=20 {
        n.advance(INTERVAL);
        n.echo_all(seq, true);
    }
    assert!(n.elapsed() > DEADLINE * 5, "heartbeats long stale");
    assert_eq!(n.pair.state(), Standby, "the echoes prove the peer alive");
    let live = n.pair.path_liveness(n.now);
    assert!(
        live.iter()
            .all(|p| !p.heartbeat_fresh && p.echo == EchoState::Alive && p.alive)
    );
    // The echoes stop coming back: Lost after `multiplier` lost ones.
    for seq in 21..=23 {
        n.advance(INTERVAL);
        n.echo_all(seq, false);
        assert_eq!(n.pair.state(), Standby, "fewer than 3 lost");
    }
    n.advance(INTERVAL);
    assert_eq!(n.pair.state(), Active);
    assert!(
        n.pair
            .path_liveness(n.now)
            .iter()
            .all(|p| p.echo == EchoState::Lost)
    );
    assert_eq!(
        reasons(&n.drain_raw())[0],
        (Standby, Takeover, Reason::PeerDead { positively: true })
    );
}

#[test]
fn own_stall_never_kills_the_peer() {
    for echo in [true, false] {
        let mut n = Node::standby(
            PairConfig {
                echo,
                ..cfg(A, 100)
            },
            B,
            100,
        );
        n.echo_all(1, true);
        // This node's loop stalls 50 ms: it sends nothing, hears nothing.
        n.advance(50 * MS);
        if echo {
            assert_eq!(n.pair.state(), Standby, "no echo sent, none lost");
            assert!(n.pair.peer_alive(n.now));
            assert_eq!(
                n.pair.path_liveness(n.now)[0].echo,
                EchoState::Alive,
                "an echo sent and back, nothing lost since"
            );
        } else {
            assert_eq!(
                n.pair.state(),
                Active,
                "without echo the stall looks like death"
            );
            assert_eq!(n.pair.path_liveness(n.now)[0].echo, EchoState::Unknown);
        }
    }
}

#[test]
fn echo_is_unknown_until_one_returns_and_forgotten_with_a_new_peer() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    n.echo_all(1, false);
    n.echo_all(2, false);
    assert_eq!(n.pair.path_liveness(n.now)[1].echo, EchoState::Unknown);
    n.handle(Event::EchoReturned { path: 1, seq: 2 });
    assert_eq!(n.pair.path_liveness(n.now)[1].echo, EchoState::Alive);
    assert_eq!(n.pair.path_liveness(n.now)[0].echo, EchoState::Unknown);
    n.hb(0, 3, Active, 9, 100); // another node replaces the peer
    assert_eq!(n.pair.path_liveness(n.now)[1].echo, EchoState::Unknown);
}

#[test]
fn poll_timeout_includes_the_instant_an_alive_echo_becomes_lost() {
    let mut n = Node::standby(cfg(A, 100), B, 100);
    n.echo_all(1, true);
    n.advance(DEADLINE); // heartbeats stale, echo keeps it alive
    assert_eq!(
        n.pair.poll_timeout(),
        None,
        "no echo pending: nothing can end"
    );
    let first = n.now;
    for seq in 2..=4 {
        n.echo_all(seq, false);
        n.advance(MS);
    }
    assert_eq!(
        n.pair.poll_timeout(),
        Some(first + 2 * MS + INTERVAL),
        "the third pending echo's send time + interval"
    );
}

// ---- Positively dead, hold-down, back-off ----

#[test]
fn positively_dead_overrides_the_hold_down() {
    for echo in [true, false] {
        let mut n = Node::active(PairConfig {
            echo,
            ..damped(A, 200)
        });
        n.fenced_beside_a_takeover(B, 1, 100);
        n.echo_all(1, true);
        assert_eq!(n.pair.state(), Standby);
        let held_until = n.pair.hold_down_until().expect("held down");
        assert_eq!(
            holds(&n.drain_raw()),
            vec![Hold::HoldDown],
            "it would win the tie-break"
        );
        // The peer goes silent; this node keeps sending echoes.
        for seq in 2..=6 {
            n.advance(INTERVAL);
            n.echo_all(seq, false);
        }
        n.advance(INTERVAL);
        if echo {
            assert_eq!(
                n.pair.state(),
                Active,
                "echo Lost on every path: positively dead"
            );
            assert!(n.now < held_until);
            let r = reasons(&n.drain_raw());
            assert_eq!(
                r[0],
                (Standby, Takeover, Reason::PeerDead { positively: true })
            );
        } else {
            assert_eq!(n.pair.state(), Standby, "merely silent: held down");
            assert_eq!(holds(&n.drain_raw()), vec![], "said once");
            n.advance(held_until - n.now);
            assert_eq!(n.pair.state(), Active, "the hold-down ended");
            assert_eq!(
                reasons(&n.drain_raw())[0],
                (Standby, Takeover, Reason::PeerDead { positively: false })
            );
        }
    }
}

#[test]
fn paths_reported_down_make_the_peer_positively_dead() {
    let mut n = Node::active(PairConfig {
        echo: false,
        ..damped(A, 200)
    });
    n.fenced_beside_a_takeover(B, 1, 100);
    n.drain();
    n.advance(DEADLINE);
    assert_eq!(n.pair.state(), Standby, "silent, not positively dead");
    n.handle(Event::PathDown { path: 0 });
    assert_eq!(n.pair.state(), Standby, "one path reported down of two");
    n.handle(Event::PathDown { path: 1 });
    assert_eq!(n.pair.state(), Active);
}

#[test]
fn repeated_flaps_double_the_hold_down_up_to_the_cap_and_are_forgotten() {
    // Each time, the peer is heard active with a higher epoch (A loses the
    // role: a flap), then reported down on every path (positively dead):
    // A takes the role straight back.
    let mut n = Node::active(PairConfig {
        echo: false,
        ..damped(A, 100)
    });
    let mut holds = Vec::new();
    for _ in 0..5 {
        n.hb_all(B, Active, n.pair.epoch() + 1, 100);
        assert_eq!(n.pair.state(), Standby, "a higher epoch wins");
        holds.push(n.pair.hold_down_until().expect("held") - n.now);
        n.handle(Event::PathDown { path: 0 });
        n.handle(Event::PathDown { path: 1 });
        assert_eq!(n.pair.state(), Active, "positively dead: back at once");
        n.advance(MS);
    }
    assert_eq!(
        holds,
        vec![100 * MS, 200 * MS, 400 * MS, 800 * MS, 800 * MS]
    );
    assert_eq!(n.pair.flaps(), 5);
    n.advance(800 * MS);
    assert_eq!(n.pair.flaps(), 0, "a flap is recent for hold_down_max");
    assert_eq!(n.pair.hold_down_until(), None);
    n.hb_all(B, Active, n.pair.epoch() + 1, 100);
    assert_eq!(
        n.pair.hold_down_until(),
        Some(n.now + 100 * MS),
        "from the start again"
    );
}

#[test]
fn operator_moves_are_not_flaps() {
    let mut n = Node::active(damped(A, 100));
    n.hb_all(B, Standby, 1, 100);
    n.handle(Event::AdminMaintenance(true));
    assert_eq!(n.pair.state(), Maintenance);
    assert_eq!((n.pair.flaps(), n.pair.hold_down_until()), (0, None));
    let mut n = Node::active(damped(A, 100));
    n.hb_all(B, Standby, 1, 100);
    n.handle(Event::AdminSwitchover);
    assert_eq!(n.pair.state(), Standby);
    assert_eq!((n.pair.flaps(), n.pair.hold_down_until()), (0, None));
}

#[test]
fn three_forced_flaps_settle_with_the_role_changes_the_hold_down_allows() {
    // A (priority 200, preempt) is forced out three times in a row: each
    // time it holds the role, its daemon stalls 40 ms (B takes over on the
    // echoes' loss) and it comes back fenced.
    let run = |damping: bool| {
        let (ca, cb) = if damping {
            (damped(A, 200), damped(B, 100))
        } else {
            (cfg(A, 200), cfg(B, 100))
        };
        let mut d = Duo::new(
            PairConfig {
                preempt: true,
                ..ca
            },
            cb,
        );
        d.echo = true;
        d.run(200 * MS);
        assert_eq!(d.a.pair.state(), Active);
        d.role_changes.clear();
        let mut regained = Vec::new();
        for _ in 0..3 {
            d.stall(0, 40 * MS);
            if damping {
                assert_eq!(d.b.pair.state(), Active, "B took over");
                assert_eq!(d.a.pair.state(), Standby, "A stepped down, fenced");
            }
            let lost = d.a.elapsed();
            let mut waited = Duration::ZERO;
            while d.a.pair.state() != Active && waited < 3000 * MS {
                d.tick();
                waited += INTERVAL;
            }
            regained.push(d.a.elapsed() - lost);
            d.run(5 * INTERVAL); // B hears A's new epoch and steps down
            assert_eq!(d.b.pair.state(), Standby);
            assert_eq!(d.a.pair.state(), Active);
        }
        let settled = d.role_changes.clone();
        d.run(5000 * MS);
        assert_eq!(d.actives(), 1);
        assert_eq!(d.role_changes, settled, "no role change after settling");
        (regained, settled.len())
    };
    let (regained, changes) = run(true);
    // The hold-down doubles: A waits 100, 200, 400 ms before preempting.
    for (gap, hold) in regained.iter().zip([100 * MS, 200 * MS, 400 * MS]) {
        assert!(
            *gap >= hold,
            "regained after {gap:?}, held {hold:?}: {regained:?}"
        );
        assert!(*gap < hold + 100 * MS, "and then preempts: {regained:?}");
    }
    // Each forced flap: A loses, B takes, A takes back, B loses.
    assert_eq!(changes, 3 * 4);
    let (undamped, _) = run(false);
    assert!(
        undamped.iter().all(|gap| *gap < 100 * MS),
        "without damping A takes the role back at once: {undamped:?}"
    );
}

// ---- Fencing ----

#[test]
fn fenced_active_beside_a_standby_peer_resumes_without_a_role_change() {
    // The stall fenced A, but B did not act on it (it was stalled too, or
    // the stall was shorter than its deadline): nothing to hand over.
    let mut d = Duo::new(
        PairConfig {
            preempt: true,
            ..damped(A, 200)
        },
        damped(B, 100),
    );
    d.run(200 * MS);
    assert_eq!((d.a.pair.state(), d.b.pair.state()), (Active, Standby));
    d.a.handle(Event::Fenced);
    assert_eq!(reasons(&d.a.drain_raw()), vec![], "no transition");
    assert_eq!((d.a.pair.flaps(), d.a.pair.hold_down_until()), (0, None));
    let mut n = Node::active(damped(A, 200));
    n.handle(Event::Fenced);
    assert_eq!(
        n.pair.state(),
        Active,
        "alone: nobody else serves, it resumes"
    );
    assert_eq!(n.pair.flaps(), 0);
}

#[test]
fn fenced_active_steps_down_is_held_down_and_lets_the_peer_serve() {
    let mut d = Duo::new(
        PairConfig {
            preempt: true,
            ..damped(A, 200)
        },
        damped(B, 100),
    );
    d.run(200 * MS);
    assert_eq!((d.a.pair.state(), d.b.pair.state()), (Active, Standby));
    // B started a takeover during A's stall; A hears it, then the fence.
    d.a.hb_all(B, Takeover, d.b.pair.epoch(), 100);
    d.a.handle(Event::Fenced);
    let acts = d.a.drain_raw();
    assert_eq!(reasons(&acts), vec![(Active, Standby, Reason::Fenced)]);
    assert!(acts.contains(&Action::BecomeStandby));
    assert_eq!(d.a.pair.flaps(), 1);
    assert_eq!(
        d.a.pair.priority(),
        0,
        "held down: lets the peer win the tie-break"
    );
    d.run(2 * INTERVAL);
    assert_eq!(d.b.pair.state(), Active, "B claims the role nobody holds");
    assert_eq!(
        d.a.pair.state(),
        Standby,
        "A does not preempt while held down"
    );
    d.a.handle(Event::Fenced);
    assert_eq!(d.a.pair.flaps(), 1, "Fenced on a standby is only noted");
}

// ---- Preemption gated on sync ----

#[test]
fn preemption_waits_for_the_peers_state_and_the_preempt_delay() {
    let c = PairConfig {
        preempt: true,
        sync: true,
        ..damped(A, 200)
    };
    let mut n = Node::new(c);
    n.hb_all(B, Active, 1, 100);
    let mut acts = n.drain_raw();
    for _ in 0..20 {
        n.advance(INTERVAL);
        n.hb_all(B, Active, 1, 100);
        acts.extend(n.drain_raw());
    }
    assert_eq!(n.pair.state(), Standby, "no state held: no preemption");
    assert_eq!(holds(&acts), vec![Hold::PreemptNeedsState], "said once");
    n.handle(Event::PeerStateHeld(true));
    assert!(n.pair.peer_state_held());
    let held_at = n.now;
    assert_eq!(
        n.drain_raw(),
        vec![Action::Held {
            hold: Hold::PreemptDelay,
            until: Some(held_at + 50 * MS)
        }]
    );
    // Lost again before the delay: the clock starts over.
    n.advance(INTERVAL);
    n.hb_all(B, Active, 1, 100);
    n.handle(Event::PeerStateHeld(false));
    n.handle(Event::PeerStateHeld(true));
    let held_at = n.now;
    while n.now < held_at + 50 * MS {
        assert_eq!(n.pair.state(), Standby);
        n.hb_all(B, Active, 1, 100);
        n.advance(INTERVAL);
    }
    n.hb_all(B, Active, 1, 100);
    assert_eq!(n.pair.state(), Active);
    assert!(reasons(&n.drain_raw()).contains(&(Standby, Active, Reason::Preempt)));
}

#[test]
fn a_dead_peer_is_taken_over_without_its_state() {
    let c = PairConfig {
        preempt: true,
        sync: true,
        ..damped(A, 200)
    };
    let mut n = Node::standby(c, B, 100);
    n.advance(DEADLINE);
    assert_eq!(n.pair.state(), Active, "a takeover is never gated on sync");
    assert!(!n.pair.peer_state_held());
}

#[test]
fn without_sync_preemption_waits_for_the_peer_alive_for_the_delay() {
    let c = PairConfig {
        preempt: true,
        ..damped(A, 200)
    };
    let mut n = Node::standby(c, B, 100);
    let start = n.now;
    while n.now < start + 50 * MS {
        assert_eq!(n.pair.state(), Standby);
        n.advance(INTERVAL);
        n.hb_all(B, Active, 1, 100);
    }
    assert_eq!(n.pair.state(), Active);
}

#[test]
fn a_returning_active_does_not_bounce_the_node_that_took_over() {
    // A (200, preempt) stalled; B took over with epoch 2. A comes back
    // active and hears B: without the gate it would keep the role under
    // epoch 3 and bounce B; with it, A steps down and is held.
    let c = PairConfig {
        preempt: true,
        ..damped(A, 200)
    };
    let mut n = Node::active(c);
    n.hb_all(B, Standby, 1, 100);
    n.drain();
    n.advance(10 * DEADLINE);
    n.hb_all(B, Active, 2, 100);
    assert_eq!(n.pair.state(), Standby);
    let acts = n.drain_raw();
    assert_eq!(
        reasons(&acts),
        vec![(Active, Standby, Reason::DualActiveLost { peer_epoch: 2 })]
    );
    // The keep-the-role preemption waited for the delay; stepped down, it
    // is held down.
    assert_eq!(holds(&acts), vec![Hold::HoldDown]);
    assert_eq!(n.pair.flaps(), 1);
}

// ---- Misconfigured peer ----

#[test]
fn a_peer_with_a_bad_mac_is_never_taken_over_beside() {
    let mut n = Node::new(damped(A, 200));
    let mut acts = Vec::new();
    for _ in 0..30 {
        n.handle(Event::PeerBadMac { path: 0 });
        assert!(n.pair.peer_misconfigured(n.now));
        n.advance(INTERVAL);
        acts.extend(n.drain_raw());
    }
    assert!(n.elapsed() > INIT_HOLD);
    assert_eq!(
        n.pair.state(),
        Standby,
        "alive with another key: no takeover"
    );
    assert_eq!(
        reasons(&acts),
        vec![(Init, Standby, Reason::PeerMisconfigured)]
    );
    assert_eq!(holds(&acts), vec![Hold::PeerMisconfigured]);
    assert!(n.pair.path_liveness(n.now)[0].bad_mac);
    // The misconfigured peer stops (or dies): its silence counts again,
    // once the misconfigured hold after its last bad MAC has passed.
    let hold = n.pair.config().misconfigured_hold();
    assert!(hold >= 10 * DEADLINE);
    n.advance(hold - 2 * INTERVAL);
    assert!(n.pair.peer_misconfigured(n.now), "still within the hold");
    assert_eq!(n.pair.state(), Standby);
    n.advance(2 * INTERVAL);
    assert!(!n.pair.peer_misconfigured(n.now));
    assert_eq!(n.pair.state(), Active);
}

#[test]
fn an_active_node_stays_active_beside_a_misconfigured_peer() {
    let mut n = Node::active(damped(A, 100));
    n.handle(Event::PeerBadMac { path: 1 });
    assert_eq!(n.pair.state(), Active);
    assert!(n.pair.peer_misconfigured(n.now));
    n.hb(1, B, Standby, 0, 100);
    assert!(
        !n.pair.peer_misconfigured(n.now),
        "a valid heartbeat on the path clears it"
    );
}

// ---- Switchover hold ----

#[test]
fn a_switchover_holds_preemption_until_released_or_its_timer() {
    for timer in [None, Some(200 * MS)] {
        let ca = PairConfig {
            preempt: true,
            preempt_delay: Duration::ZERO,
            switchover_hold: timer,
            ..damped(A, 200)
        };
        let mut d = Duo::new(ca, damped(B, 100));
        d.run(200 * MS);
        assert_eq!(d.a.pair.state(), Active);
        d.a.handle(Event::AdminSwitchover);
        let hold = d.a.pair.switchover_hold().expect("held");
        assert_eq!(hold, timer.map(|t| d.a.now + t));
        d.run(150 * MS);
        assert_eq!((d.a.pair.state(), d.b.pair.state()), (Standby, Active));
        assert!(
            d.a.pair.config().yield_hold() < 150 * MS,
            "the yield is over"
        );
        match timer {
            None => {
                d.run(1000 * MS);
                assert_eq!(d.a.pair.state(), Standby, "held until released");
                d.a.handle(Event::AdminReleaseHold);
                assert_eq!(d.a.pair.state(), Active, "released: preempts");
            }
            Some(_) => {
                d.run(100 * MS);
                assert_eq!(d.a.pair.state(), Active, "the timer ended the hold");
            }
        }
        assert_eq!(d.a.pair.switchover_hold(), None);
    }
}

#[test]
fn a_switchover_hold_gives_way_when_the_peer_dies() {
    let ca = PairConfig {
        preempt: true,
        ..damped(A, 200)
    };
    let mut d = Duo::new(ca, damped(B, 100));
    d.run(200 * MS);
    d.a.handle(Event::AdminSwitchover);
    d.run(100 * MS);
    assert_eq!(d.b.pair.state(), Active);
    d.link = false; // B dies as far as A can tell
    d.run(100 * MS);
    assert_eq!(d.a.pair.state(), Active, "the hold blocks preemption only");
    assert_eq!(d.a.pair.switchover_hold(), None, "ends on becoming active");
}

// ---- Dual active ----

#[test]
fn dual_active_still_converges_with_damping() {
    for (ea, eb) in [(3, 5), (5, 3), (4, 4)] {
        let mut a = Node::active(damped(A, 100));
        let mut b = Node::active(damped(B, 100));
        a.handle(Event::Heartbeat {
            path: 0,
            from: B,
            state: Active,
            epoch: eb,
            priority: 100,
        });
        b.handle(Event::Heartbeat {
            path: 0,
            from: A,
            state: Active,
            epoch: ea,
            priority: 100,
        });
        // Each was active under its own epoch.
        let (sa, sb) = (a.snapshot(), b.snapshot());
        exchange(&sb, &mut a);
        exchange(&sa, &mut b);
        for _ in 0..3 {
            let (sa, sb) = (a.snapshot(), b.snapshot());
            exchange(&sb, &mut a);
            exchange(&sa, &mut b);
            a.advance(INTERVAL);
            b.advance(INTERVAL);
        }
        let actives = [&a, &b].iter().filter(|n| n.pair.state() == Active).count();
        assert_eq!(actives, 1, "epochs {ea}/{eb}");
    }
}

// ---- Reasons ----

#[test]
fn every_transition_says_why() {
    let mut n = Node::new(cfg(A, 100));
    n.advance(INIT_HOLD);
    assert_eq!(
        reasons(&n.drain_raw()),
        vec![
            (Init, Takeover, Reason::InitAlone),
            (Takeover, Active, Reason::InitAlone)
        ]
    );
    let mut n = Node::new(cfg(A, 100));
    n.hb(0, B, Active, 4, 100);
    assert_eq!(
        reasons(&n.drain_raw()),
        vec![(Init, Standby, Reason::PeerHeardActive { epoch: 4 })]
    );
    n.handle(Event::LocalFault(FaultKind::CardAlarm));
    n.handle(Event::LocalFaultCleared);
    n.hb(0, B, Fault, 4, 100);
    assert_eq!(
        reasons(&n.drain_raw()),
        vec![
            (Standby, Fault, Reason::LocalFault),
            (Fault, Standby, Reason::FaultCleared),
            (Standby, Active, Reason::PeerCannotServe)
        ]
    );
    assert_eq!(
        Reason::PeerDead { positively: true }.name(),
        "peer_dead_positively"
    );
    assert_eq!(
        Reason::DualActiveLost { peer_epoch: 3 }.to_string(),
        "dual active lost (peer epoch 3)"
    );
    assert_eq!(Hold::PreemptNeedsState.to_string(), "preempt needs state");
}
