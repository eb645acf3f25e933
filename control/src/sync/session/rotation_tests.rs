//! Sync sessions through a key rotation (issue 14), on a simulated clock:
//! at every pair of steps the operator procedure puts the two nodes in
//! (both on the old key; one or both with the next key added; one or both
//! swapped; the next key dropped), a handshake completes in either role
//! and state flows; two nodes that share no key never get further than
//! the first handshake frame; new keys set on a running session leave it
//! running and apply to the next handshake.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use super::*;
use crate::sync::store::Store;
use crate::sync::wire::{self, FlowRecord, Nonce, Record, SyncKeys, VirtualService};
use tandem_common::FlowKey;

const OLD: [u8; 16] = [0x31; 16];
const NEW: [u8; 16] = [0x32; 16];
const STRANGER: [u8; 16] = [0x33; 16];
const ACTIVE: u32 = 1;
const STANDBY: u32 = 2;
const STREAM: NonZeroU64 = NonZeroU64::new(0x5eed).unwrap();

/// The four steps of the procedure, as one node's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Before: the old key alone.
    Old,
    /// Step 1: the new key added as the next key.
    NextAdded,
    /// Step 2: current and next swapped.
    Swapped,
    /// Step 3: the old key dropped.
    New,
}

impl Step {
    fn keys(self) -> SyncKeys {
        match self {
            Step::Old => SyncKeys::new(OLD, None),
            Step::NextAdded => SyncKeys::new(OLD, Some(NEW)),
            Step::Swapped => SyncKeys::new(NEW, Some(OLD)),
            Step::New => SyncKeys::new(NEW, None),
        }
    }
}

fn flow(i: u8) -> Record {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&[198, 18, 0, i]);
    let mut vip = a;
    vip[15] = 100;
    let key = FlowKey::new(a, vip, 1024 + u16::from(i), 5060, 17);
    Record::Flow(FlowRecord {
        key,
        service: VirtualService {
            addr: vip,
            port: 5060,
            proto: 17,
        },
        real_addr: a,
        real_port: 5060,
        age_ms: 1,
        flags: 1,
    })
}

/// A publisher and a subscriber under these keys, with the store the
/// publisher snapshots from (one flow in it).
struct Pair {
    p: Publisher,
    s: Subscriber,
    store: Store,
    now: Instant,
    nonces: u64,
}

impl Pair {
    fn new(publisher: SyncKeys, subscriber: SyncKeys) -> Pair {
        let now = Instant::now();
        let mut pair = Pair {
            p: Publisher::new(PublisherConfig::new(ACTIVE, publisher, STREAM)),
            s: Subscriber::new(SubscriberConfig::new(STANDBY, subscriber)),
            store: Store::new(),
            now,
            nonces: 0,
        };
        pair.change(flow(1));
        pair
    }

    fn change(&mut self, r: Record) {
        self.store.apply(&r, self.now);
        self.p.record(r, self.now).expect("a sendable record");
    }

    fn connect(&mut self) {
        self.nonces += 2;
        self.p.connected(self.now, Nonce::from(self.nonces));
        self.s.connected(self.now, Nonce::from(self.nonces + 1));
    }

    /// Moves frames both ways until nothing moves (the clock advancing
    /// 5 ms a round, so deltas leave); the first error, if any.
    fn pump(&mut self) -> Result<(), SessionError> {
        for _ in 0..200 {
            let mut moved = false;
            while let Some(f) = self.p.poll_transmit(self.now, &self.store) {
                moved = true;
                self.s.handle_frame(&f, self.now)?;
            }
            while let Some(f) = self.s.poll_transmit(self.now) {
                moved = true;
                self.p.handle_frame(&f, self.now)?;
            }
            self.now += Duration::from_millis(5);
            if !moved {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// A fresh session between a publisher at step `p` and a subscriber at
/// step `s`: in sync, holding the publisher's flow, or the error.
fn session(p: Step, s: Step) -> Result<Pair, SessionError> {
    let mut pair = Pair::new(p.keys(), s.keys());
    pair.connect();
    pair.pump()?;
    Ok(pair)
}

#[test]
fn at_every_step_of_the_procedure_either_node_can_publish() {
    use Step::*;
    // Each node's step while the other is at its own: the procedure moves
    // one node at a time, both through each step before the next.
    let meet = [
        (Old, Old),
        (Old, NextAdded),
        (NextAdded, NextAdded),
        (NextAdded, Swapped),
        (Swapped, Swapped),
        (Swapped, New),
        (New, New),
    ];
    for (a, b) in meet {
        for (p, s) in [(a, b), (b, a)] {
            let pair =
                session(p, s).unwrap_or_else(|e| panic!("publisher {p:?}, subscriber {s:?}: {e}"));
            assert_eq!(
                pair.s.state(),
                SubscriberState::InSync,
                "publisher {p:?}, subscriber {s:?}"
            );
            assert_eq!(
                pair.s.store().flows_len(),
                1,
                "publisher {p:?}, subscriber {s:?}"
            );
            assert_eq!(pair.p.state(), PublisherState::Streaming);
        }
    }
}

#[test]
fn nodes_that_share_no_key_never_get_past_the_first_frame() {
    use Step::*;
    // One node a step too far ahead: the one behind cannot take the
    // frames made under a key it does not hold yet (or any more).
    for (p, s) in [
        (Old, Swapped),
        (Swapped, Old),
        (Old, New),
        (New, Old),
        (NextAdded, New),
        (New, NextAdded),
    ] {
        let e = session(p, s)
            .err()
            .unwrap_or_else(|| panic!("publisher {p:?}, subscriber {s:?} got in sync"));
        assert_eq!(
            e,
            SessionError::Frame(wire::Error::BadMac),
            "publisher {p:?}, subscriber {s:?}"
        );
    }
    // A stranger's key, against each step.
    for step in [Old, NextAdded, Swapped, New] {
        let mut pair = Pair::new(step.keys(), SyncKeys::new(STRANGER, None));
        pair.connect();
        assert_eq!(
            pair.pump().err(),
            Some(SessionError::Frame(wire::Error::BadMac)),
            "{step:?}"
        );
        assert_eq!(pair.s.store().flows_len(), 0);
        let mut pair = Pair::new(SyncKeys::new(STRANGER, None), step.keys());
        pair.connect();
        assert_eq!(
            pair.pump().err(),
            Some(SessionError::Frame(wire::Error::BadMac)),
            "{step:?}"
        );
        assert_eq!(pair.s.store().flows_len(), 0);
    }
}

#[test]
fn new_keys_leave_the_running_session_alone_and_apply_to_the_next_handshake() {
    let mut pair = session(Step::NextAdded, Step::NextAdded).expect("in sync");
    // The publisher swaps, then the subscriber: the session goes on.
    pair.p.set_keys(Step::Swapped.keys());
    pair.change(flow(2));
    pair.pump().expect("the session goes on");
    pair.s.set_keys(Step::Swapped.keys());
    // Then both drop the old key.
    pair.p.set_keys(Step::New.keys());
    pair.s.set_keys(Step::New.keys());
    pair.change(flow(3));
    pair.pump().expect("still the same session");
    assert_eq!(pair.s.store().flows_len(), 3);
    assert_eq!(pair.p.stats().connections, 1, "no reconnect");
    // A new connection handshakes under the new key alone.
    pair.p.disconnected();
    pair.s.disconnected();
    pair.connect();
    pair.change(flow(4));
    pair.pump().expect("a handshake under the new key");
    assert_eq!(pair.s.state(), SubscriberState::InSync);
    assert_eq!(pair.s.store().flows_len(), 4);
    // And one of the old key is refused now.
    let mut old = Pair::new(Step::Old.keys(), Step::New.keys());
    old.connect();
    assert_eq!(
        old.pump().err(),
        Some(SessionError::Frame(wire::Error::BadMac))
    );
}
