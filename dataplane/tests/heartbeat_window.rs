//! The heartbeat admission rule (`tandem_common::heartbeat::window`) as
//! properties over any history: whatever an attacker sends, a refusal
//! never moves the window, nothing at or below the floor of a boot is
//! taken while it is fresh, a jump past the window never is, and a
//! sender that keeps sending — from 1 after a restart, under a new boot
//! id — is always heard. Host only: no BPF.

use proptest::prelude::*;
use tandem_dataplane::common::heartbeat::window::{
    NS_PER_EXTRA_SEQ, RESTART_SEQS, Reject, STALE_NS, WINDOW, Window, admit,
};

/// One datagram as the receiver sees it: (boot, seq, ns since the last).
fn datagram() -> impl Strategy<Value = (u64, u64, u64)> {
    let boot = prop_oneof![Just(1u64), Just(2), Just(3), any::<u64>()];
    let seq = prop_oneof![0u64..10_000, any::<u64>(), Just(u64::MAX)];
    let gap = prop_oneof![0u64..20_000_000, Just(STALE_NS - 1), Just(STALE_NS), any::<u64>().prop_map(|g| g >> 8)];
    (boot, seq, gap)
}

proptest! {
    #[test]
    fn refusals_move_nothing_and_takes_obey_the_window(history in proptest::collection::vec(datagram(), 1..200)) {
        let mut last: Option<Window> = None;
        let mut now = 1_000u64;
        for (boot, seq, gap) in history {
            now = now.saturating_add(gap);
            let r = admit(last.as_ref(), boot, seq, now, 0);
            match (last, r) {
                (_, Ok(w)) => {
                    prop_assert_eq!((w.boot, w.seq, w.seen_ns), (boot, seq, now));
                    if let Some(l) = last {
                        let fresh = now.saturating_sub(l.seen_ns) < STALE_NS;
                        if fresh && boot == l.boot {
                            let allowance = WINDOW + now.saturating_sub(l.seen_ns) / NS_PER_EXTRA_SEQ;
                            prop_assert!(seq > l.seq && seq - l.seq <= allowance);
                            prop_assert_eq!(w.prev_boot, l.prev_boot);
                        }
                        if fresh && boot != l.boot {
                            prop_assert!(seq <= RESTART_SEQS);
                            prop_assert!(l.prev_boot == 0 || boot != l.prev_boot);
                            prop_assert_eq!(w.prev_boot, l.boot);
                        }
                    }
                    last = Some(w);
                }
                (None, Err(e)) => prop_assert!(false, "first contact refused: {:?}", e),
                (Some(l), Err(e)) => {
                    prop_assert!(now.saturating_sub(l.seen_ns) < STALE_NS, "a stale record refused {:?}", e);
                    match e {
                        Reject::Replay => prop_assert!(boot == l.boot && seq <= l.seq),
                        Reject::SeqJump => prop_assert!(boot == l.boot && seq > l.seq),
                        Reject::StaleBoot => prop_assert!(boot != l.boot),
                    }
                }
            }
        }
    }

    /// Any history of forged datagrams interleaved with a real sender that
    /// restarts (new boot, from 1) and then sends every 10 ms: once the
    /// forgeries stop, the sender is heard within its first heartbeats.
    #[test]
    fn a_restarted_sender_is_heard_whatever_came_before(
        forged in proptest::collection::vec(datagram(), 0..100),
        boot in any::<u64>().prop_filter("a boot id is never 0", |b| *b != 0),
    ) {
        let mut last: Option<Window> = None;
        let mut now = 1_000u64;
        for (b, seq, gap) in forged {
            now = now.saturating_add(gap % 100_000_000);
            if let Ok(w) = admit(last.as_ref(), b, seq, now, 0) {
                last = Some(w);
            }
        }
        let mut heard = None;
        for seq in 1..=600u64 {
            now += 10_000_000;
            match admit(last.as_ref(), boot, seq, now, 0) {
                Ok(w) => {
                    heard.get_or_insert(seq);
                    last = Some(w);
                }
                Err(_) => prop_assert!(heard.is_none(), "heard at {:?}, then refused at {}", heard, seq),
            }
        }
        // Heard at once, or (its boot id replaced by a forgery of it, or a
        // forged boot ahead) once the record went stale: 5 s = 500 beats.
        let heard = heard.unwrap_or(u64::MAX);
        prop_assert!(heard <= STALE_NS / 10_000_000 + 1, "first heard at {}", heard);
    }
}
