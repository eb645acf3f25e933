//! What happened in `tandemd` ([`crate::events`]) with `CLOCK_MONOTONIC`
//! timestamps: the timeline the daemon prints (one `<ns> <text>` line per
//! event on stdout, and a `tracing` record), keeps (bounded, the newest
//! [`CAPACITY`]) and serves over the admin socket (`{"cmd":"events"}`),
//! so that tests and benchmarks read typed events instead of log
//! sentences.
//!
//! It decides nothing and does no I/O beyond that print.

use std::{collections::VecDeque, io::Write};

pub use crate::events::{Event, Stamped};

/// Events kept for `events` requests (older ones are dropped first).
pub const CAPACITY: usize = 4096;

/// The bounded timeline.
#[derive(Default)]
pub struct Timeline {
    events: VecDeque<Stamped>,
    next_seq: u64,
    /// Also print `<ns> <text>` lines on stdout (the daemon; not tests).
    print: bool,
}

impl Timeline {
    /// A timeline that prints each event (`print`) as it is recorded.
    pub fn new(print: bool) -> Timeline {
        Timeline {
            events: VecDeque::new(),
            next_seq: 1,
            print,
        }
    }

    /// Records `event` at `at_ns`.
    pub fn record(&mut self, at_ns: u64, event: Event) {
        if event.is_warning() {
            tracing::warn!("{event}");
        } else {
            tracing::info!("{event}");
        }
        if self.print {
            let mut out = std::io::stdout().lock();
            // Best effort: a closed stdout must not stop the daemon.
            let _ = writeln!(out, "{at_ns} {event}");
            let _ = out.flush();
        }
        if self.events.len() == CAPACITY {
            self.events.pop_front();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.events.push_back(Stamped { seq, at_ns, event });
    }

    /// Events with a sequence number above `after`, oldest first, at most
    /// `limit`.
    pub fn since(&self, after: u64, limit: usize) -> Vec<Stamped> {
        self.events
            .iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Stamped> {
        self.events.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_is_bounded_and_numbered() {
        let mut t = Timeline::new(false);
        for i in 0..(CAPACITY as u64 + 10) {
            t.record(i, Event::GarpResent);
        }
        assert_eq!(t.iter().count(), CAPACITY);
        assert_eq!(t.iter().next().map(|e| e.seq), Some(11));
        let tail = t.since(CAPACITY as u64 + 8, 100);
        assert_eq!(
            tail.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![CAPACITY as u64 + 9, CAPACITY as u64 + 10]
        );
    }

    #[test]
    fn events_serialize_tagged_and_print_as_before() {
        let e = Stamped {
            seq: 3,
            at_ns: 42,
            event: Event::StateChanged {
                from: "standby".into(),
                to: "takeover".into(),
                epoch: 7,
                peer_heard: vec![(4, 15_700)],
                reason: String::new(),
            },
        };
        let json = serde_json::to_string(&e).expect("json");
        assert!(json.contains(r#""event":"state_changed""#), "{json}");
        let back: Stamped = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, e);
        assert_eq!(
            e.event.to_string(),
            "state standby -> takeover (epoch 7) (peer last heard 15.7 ms ago on ifindex 4)"
        );
        assert_eq!(
            Event::TakeoverDone {
                epoch: 2,
                micros: 31
            }
            .to_string(),
            "takeover done: VIPs owned, GARP sent (epoch 2; 31 µs)"
        );
    }
}
