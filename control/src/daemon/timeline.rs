//! What happened in `tandemd` ([`crate::events`]) with `CLOCK_MONOTONIC`
//! timestamps: the timeline the daemon prints (one `<ns> <text>` line per
//! event on stdout, and a `tracing` record), keeps (bounded, the newest
//! [`CAPACITY`]) and serves over the admin socket (`{"cmd":"events"}`),
//! so that tests and benchmarks read typed events instead of log
//! sentences.
//!
//! The `tracing` record carries the event's fields ([`Event::fields`]:
//! `kind`, `epoch`, `real`, `vip`, `reason`, …; journald stores them as
//! `KIND=`, `EPOCH=`, …). Warnings go through a [`RepeatLimiter`]: the
//! same warning within 10 s is counted, not logged, and summarised once
//! when its window closes ([`Timeline::tick`]); the timeline itself (kept,
//! printed, served) has every event.
//!
//! It decides nothing and does no I/O beyond that print.

use std::{collections::VecDeque, io::Write};

pub use crate::events::{Event, Stamped};
use crate::repeats::{RepeatLimiter, Verdict};

/// How many log records the timeline wrote and held back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogCounts {
    /// Events logged as records.
    pub logged: u64,
    /// Warnings held back as repeats.
    pub held: u64,
    /// "(repeated N times)" records.
    pub summaries: u64,
}

/// Events kept for `events` requests (older ones are dropped first).
pub const CAPACITY: usize = 4096;

/// The bounded timeline.
#[derive(Default)]
pub struct Timeline {
    events: VecDeque<Stamped>,
    next_seq: u64,
    /// Also print `<ns> <text>` lines on stdout (the daemon; not tests).
    print: bool,
    repeats: RepeatLimiter<Event>,
    counts: LogCounts,
}

impl Timeline {
    /// A timeline that prints each event (`print`) as it is recorded.
    pub fn new(print: bool) -> Timeline {
        Timeline {
            events: VecDeque::new(),
            next_seq: 1,
            print,
            repeats: RepeatLimiter::default(),
            counts: LogCounts::default(),
        }
    }

    /// The log records written and held back so far.
    pub fn log_counts(&self) -> LogCounts {
        self.counts
    }

    /// Logs the summaries of the repeat windows closed by `now_ns` (the
    /// loop calls it every turn).
    pub fn tick(&mut self, now_ns: u64) {
        while let Some((event, times)) = self.repeats.poll_summary(now_ns) {
            self.counts.summaries += 1;
            log(&event, Some(times));
        }
    }

    /// Records `event` at `at_ns`.
    pub fn record(&mut self, at_ns: u64, event: Event) {
        self.tick(at_ns);
        let verdict = if event.is_warning() {
            self.repeats.handle(&event.repeat_key(), at_ns, event.clone())
        } else {
            Verdict::Log
        };
        match verdict {
            Verdict::Log => {
                self.counts.logged += 1;
                log(&event, None);
            }
            Verdict::Held => self.counts.held += 1,
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

/// One record for `event` (warning or info) with its fields; `repeated`:
/// the summary of that many held back.
fn log(event: &Event, repeated: Option<u64>) {
    let f = event.fields();
    let real = f.real.map(tracing::field::display);
    let vip = f.vip.map(tracing::field::display);
    macro_rules! record {
        ($level:expr) => {
            match repeated {
                None => tracing::event!($level, kind = f.kind, ivr_node = f.ivr_node, sync_peer = f.sync_peer,
                    epoch = f.epoch, real, vip, object = f.object, reason = f.reason, "{event}"),
                Some(n) => tracing::event!($level, kind = f.kind, ivr_node = f.ivr_node, sync_peer = f.sync_peer,
                    epoch = f.epoch, real, vip, object = f.object, reason = f.reason, repeated = n,
                    "{event} (repeated {n} times in {} s)", crate::repeats::WINDOW_NS / 1_000_000_000),
            }
        };
    }
    if event.is_warning() {
        record!(tracing::Level::WARN);
    } else {
        record!(tracing::Level::INFO);
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
    fn repeated_warnings_are_held_and_summarised_but_all_kept() {
        const S: u64 = 1_000_000_000;
        let mut t = Timeline::new(false);
        // A loop late on every turn for 5 s (1 ms turns), then quiet.
        for i in 0..5000u64 {
            t.record(i * S / 1000, Event::LoopLate { micros: 1000 + i });
        }
        t.record(S, Event::GarpResent);
        assert_eq!(t.iter().count(), CAPACITY, "the timeline keeps every event (bounded)");
        assert_eq!(
            t.log_counts(),
            LogCounts { logged: 2, held: 4999, summaries: 0 }
        );
        t.tick(9 * S);
        assert_eq!(t.log_counts().summaries, 0, "window open");
        t.tick(10 * S);
        assert_eq!(t.log_counts().summaries, 1);
        t.tick(11 * S);
        assert_eq!(t.log_counts().summaries, 1, "summarised once");
        // Another object is another warning.
        t.record(12 * S, Event::SyncClosed { peer: "a".into(), why: "eof".into() });
        t.record(12 * S, Event::SyncClosed { peer: "b".into(), why: "eof".into() });
        assert_eq!(t.log_counts().logged, 4);
    }

    #[test]
    fn kinds_are_the_json_tags_and_fields_name_the_objects() {
        let events = [
            Event::LoopLate { micros: 1 },
            Event::VipsReleased,
            Event::StateChanged { from: "init".into(), to: "active".into(), epoch: 4, peer_heard: vec![], reason: "alone".into() },
            Event::SipOptions { real: "198.18.0.21".parse().unwrap(), answered: false },
            Event::TakeoverStepRecovered { step: crate::events::TakeoverStep::OwnVip, object: "vip".into(), failed: 2 },
        ];
        for e in &events {
            let json = serde_json::to_value(e).expect("json");
            assert_eq!(json["event"], e.kind(), "{e:?}");
        }
        let f = events[2].fields();
        assert_eq!((f.epoch, f.reason), (Some(4), Some("alone")));
        assert_eq!(events[3].fields().real, "198.18.0.21".parse().ok());
        assert_eq!(
            Event::LoopLate { micros: 3 }.repeat_key(),
            Event::LoopLate { micros: 4 }.repeat_key()
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
