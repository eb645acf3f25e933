//! What happened in `tandemd`, as typed events with `CLOCK_MONOTONIC`
//! timestamps: the timeline the daemon prints (one `<ns> <text>` line per
//! event on stdout, and a `tracing` record), keeps (bounded, the newest
//! [`CAPACITY`]) and serves over the admin socket (`{"cmd":"events"}`),
//! so that tests and benchmarks read typed events instead of log
//! sentences.
//!
//! It decides nothing and does no I/O beyond that print.

use std::{collections::VecDeque, fmt, io::Write, net::IpAddr};

use serde::{Deserialize, Serialize};

/// Events kept for `events` requests (older ones are dropped first).
pub const CAPACITY: usize = 4096;

/// One event of the daemon's life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Started { node_id: u32, name: String },
    /// The pair state machine changed state. `peer_heard`: on a takeover,
    /// how long ago the kernel last heard the peer on each path
    /// (ifindex, ms).
    StateChanged { from: String, to: String, epoch: u64, peer_heard: Vec<(u32, f64)> },
    TakeoverDone { epoch: u64, micros: u64 },
    VipsReleased,
    GarpResent,
    SpansShutDown,
    SpansStarted { root: String, ms: f64 },
    SpansFailed { root: String, error: String },
    CardAlarm { raised: bool },
    WitnessProbing,
    /// The witness answered a probe sent after the peer fell silent
    /// (`already`: an earlier probe had, no new probe was needed).
    WitnessAnswered { already: bool },
    WitnessUnreachable,
    IvrHealth { node_id: u32, alive: bool },
    SipOptions { real: IpAddr, answered: bool },
    SyncConnected { peer: String, dialed: bool },
    SyncClosed { peer: String, why: String },
    SyncInSync,
    LinkChanged { name: String, up: bool },
    LinksDown { names: Vec<String> },
    VipAddress { addr: IpAddr, interface: String, added: bool, micros: u64, error: Option<String> },
    Realtime { priority: u8, ok: bool, locked: bool, error: Option<String> },
    /// A signal that does not stop the daemon (SIGHUP until reload exists).
    SignalIgnored { signal: String },
    ShuttingDown { signal: String },
    /// A loop turn took long enough to delay heartbeats.
    SlowTurn { micros: u64, during: String },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Started { node_id, name } => write!(f, "tandemd node {node_id} ({name}) started"),
            Event::StateChanged { from, to, epoch, peer_heard } => {
                write!(f, "state {from} -> {to} (epoch {epoch})")?;
                if !peer_heard.is_empty() {
                    let heard: Vec<String> = peer_heard.iter().map(|(i, ms)| format!("{ms:.1} ms ago on ifindex {i}")).collect();
                    write!(f, " (peer last heard {})", heard.join(", "))?;
                }
                Ok(())
            }
            Event::TakeoverDone { epoch, micros } => write!(f, "takeover done: VIPs owned, GARP sent (epoch {epoch}; {micros} µs)"),
            Event::VipsReleased => f.write_str("released VIPs"),
            Event::GarpResent => f.write_str("GARP re-sent"),
            Event::SpansShutDown => f.write_str("spans shut down"),
            Event::SpansStarted { root, ms } => write!(f, "spans started alarm-free on {root} in {ms:.3} ms"),
            Event::SpansFailed { root, error } => write!(f, "spans on {root} failed to start: {error}"),
            Event::CardAlarm { raised: true } => f.write_str("card alarm raised: local fault"),
            Event::CardAlarm { raised: false } => f.write_str("card alarm cleared"),
            Event::WitnessProbing => f.write_str("probing the witness"),
            Event::WitnessAnswered { already: true } => f.write_str("witness answered after the peer fell silent"),
            Event::WitnessAnswered { already: false } => f.write_str("witness answered"),
            Event::WitnessUnreachable => f.write_str("witness unreachable"),
            Event::IvrHealth { node_id, alive: true } => write!(f, "ivr node {node_id} alive"),
            Event::IvrHealth { node_id, alive: false } => write!(f, "ivr node {node_id} dead: no new flows"),
            Event::SipOptions { real, answered: true } => write!(f, "real {real}: SIP OPTIONS answered again"),
            Event::SipOptions { real, answered: false } => write!(f, "real {real}: SIP OPTIONS unanswered: no new flows"),
            Event::SyncConnected { peer, dialed } => write!(f, "sync: connected {} {peer}", if *dialed { "to" } else { "from" }),
            Event::SyncClosed { peer, why } => write!(f, "sync: connection with {peer} closed: {why}"),
            Event::SyncInSync => f.write_str("sync: in sync with the active"),
            Event::LinkChanged { name, up } => write!(f, "link {name} {}", if *up { "up" } else { "down" }),
            Event::LinksDown { names } => write!(f, "local fault: {} down", names.join(", ")),
            Event::VipAddress { addr, interface, added, micros, error } => {
                let what = if *added { "added to" } else { "removed from" };
                match error {
                    None => write!(f, "VIP {addr} {what} {interface} ({micros} µs)"),
                    Some(e) => write!(f, "VIP {addr} not {what} {interface}: {e}"),
                }
            }
            Event::Realtime { priority, ok: true, locked, .. } => {
                write!(f, "running at SCHED_FIFO priority {priority}{}", if *locked { ", memory locked" } else { "" })
            }
            Event::Realtime { priority, error, .. } => write!(
                f,
                "node.realtime_priority {priority}: sched_setscheduler(SCHED_FIFO) failed: {}; normal scheduling",
                error.as_deref().unwrap_or("?")
            ),
            Event::SignalIgnored { signal } => write!(f, "signal {signal}: ignored (reload is not supported yet)"),
            Event::ShuttingDown { signal } => write!(f, "signal {signal}: shutting down"),
            Event::SlowTurn { micros, during } => {
                write!(f, "loop turn took {:.3} ms ({during}): heartbeats may have been late", *micros as f64 / 1000.0)
            }
        }
    }
}

impl Event {
    /// Events an operator must see as warnings.
    fn is_warning(&self) -> bool {
        matches!(
            self,
            Event::SpansFailed { .. }
                | Event::WitnessUnreachable
                | Event::SyncClosed { .. }
                | Event::LinksDown { .. }
                | Event::SlowTurn { .. }
                | Event::VipAddress { error: Some(_), .. }
                | Event::Realtime { ok: false, .. }
        )
    }
}

/// One event with its sequence number and `CLOCK_MONOTONIC` time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    pub seq: u64,
    pub at_ns: u64,
    #[serde(flatten)]
    pub event: Event,
}

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
        Timeline { events: VecDeque::new(), next_seq: 1, print }
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
        self.events.iter().filter(|e| e.seq > after).take(limit).cloned().collect()
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
        assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![CAPACITY as u64 + 9, CAPACITY as u64 + 10]);
    }

    #[test]
    fn events_serialize_tagged_and_print_as_before() {
        let e = Stamped {
            seq: 3,
            at_ns: 42,
            event: Event::StateChanged { from: "standby".into(), to: "takeover".into(), epoch: 7, peer_heard: vec![(4, 15.7)] },
        };
        let json = serde_json::to_string(&e).expect("json");
        assert!(json.contains(r#""event":"state_changed""#), "{json}");
        let back: Stamped = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, e);
        assert_eq!(e.event.to_string(), "state standby -> takeover (epoch 7) (peer last heard 15.7 ms ago on ifindex 4)");
        assert_eq!(Event::TakeoverDone { epoch: 2, micros: 31 }.to_string(), "takeover done: VIPs owned, GARP sent (epoch 2; 31 µs)");
    }
}
