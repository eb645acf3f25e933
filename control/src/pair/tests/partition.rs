//! A node back from its links down (a partition's heal) knows its peer
//! only by its echoes until the next heartbeat: it must not act on the
//! role the peer advertised before the partition.

use super::*;

#[test]
fn a_node_back_from_its_links_down_waits_for_a_heartbeat_before_judging_the_peers_role() {
    // A active, B standby; A's links go down (a local fault) for 2 s, in
    // which B took over unheard by A. The links come back: B's dataplane
    // reflects A's echoes before A hears B's next heartbeat. A last heard B
    // as a standby, 2 s ago: it must not win a tie-break on that (it would
    // be active beside B), but wait, and stand by once B is heard active.
    let mut n = Node::active(cfg(A, 150));
    n.hb_all(B, Standby, 1, 100);
    n.handle(Event::LocalFault(FaultKind::InterfaceDown));
    assert_eq!(n.pair.state(), Fault);
    n.drain();
    n.advance(2000 * MS);
    for path in 0..2 {
        n.handle(Event::EchoSent { path, seq: 1 });
        n.handle(Event::EchoReturned { path, seq: 1 });
    }
    n.handle(Event::LocalFaultCleared);
    assert_eq!(n.pair.state(), Standby, "back in standby, alive peer by its echoes");
    assert!(n.pair.peer_alive(n.now));
    assert_eq!(n.drain(), vec![changed(Fault, Standby, 1)], "no tie-break on a stale role");
    assert!(n.pair.can_switchover(n.now).is_err());
    n.advance(INTERVAL / 2);
    assert_eq!(n.pair.state(), Standby);
    n.hb_all(B, Active, 2, 100);
    assert_eq!(n.pair.state(), Standby, "B is heard active: A stays standby");
    assert!(n.drain().is_empty());
}

#[test]
fn a_standby_peer_heard_again_after_its_echoes_is_judged_at_once() {
    // The same return, but B is heard a standby (nobody took over): the
    // tie-break is made as soon as the heartbeat says so.
    let mut n = Node::standby(cfg(A, 150), B, 100);
    n.handle(Event::LocalFault(FaultKind::InterfaceDown));
    n.drain();
    n.advance(2000 * MS);
    n.handle(Event::EchoSent { path: 0, seq: 1 });
    n.handle(Event::EchoReturned { path: 0, seq: 1 });
    n.handle(Event::LocalFaultCleared);
    assert_eq!(n.pair.state(), Standby);
    n.hb(0, B, Standby, 1, 100);
    assert_eq!(n.pair.state(), Active, "heard a standby: the tie-break is A's");
}
