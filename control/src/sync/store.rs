//! The synced tables: the active's services (its configuration, in
//! parts), flows by their 5-tuple, calls by id, IVR channels by (node,
//! channel). The active keeps one as the source of its snapshots; a
//! standby's [`super::Subscriber`] keeps one as what it received.
//!
//! This module owns the tables, the order a snapshot walks them in
//! ([`SnapshotCursor`], resumable after any change to the tables) and the
//! mark-and-sweep that removes, at the end of a snapshot, what the snapshot
//! did not mention. It must not touch the kernel's tables or know about
//! sequence numbers or connections.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::time::Instant;

use tandem_common::FlowKey;

use super::wire::{CallRecord, CallState, ChannelState, FlowRecord, Record, ServicesPart};

/// A flow key as ordered bytes: src, dst, sport, dport (big-endian), proto.
type FlowBytes = [u8; 37];

fn flow_bytes(k: &FlowKey) -> FlowBytes {
    let mut b = [0u8; 37];
    b[..16].copy_from_slice(&k.src);
    b[16..32].copy_from_slice(&k.dst);
    b[32..34].copy_from_slice(&k.sport.to_be_bytes());
    b[34..36].copy_from_slice(&k.dport.to_be_bytes());
    b[36] = k.proto;
    b
}

#[derive(Clone, Debug)]
struct Slot<T> {
    value: T,
    /// When the value was stored (a flow's age counts from here).
    at: Instant,
    /// The sweep generation that last saw it.
    generation: u32,
}

/// Where a snapshot walk stands: each table in turn, by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SnapshotCursor {
    /// The services first: the flows and calls after them name them.
    #[default]
    Start,
    ServicesAfter(u16),
    Flows,
    FlowsAfter(FlowKey),
    Calls,
    CallsAfter(String),
    Channels,
    ChannelsAfter {
        node: u32,
        channel: u32,
    },
    Done,
}

/// Something a publisher can walk for a snapshot of the current records.
pub trait SnapshotSource {
    /// Calls `visit` with the records after `cursor`, in a stable order,
    /// advancing `cursor` past each record `visit` accepts (returns true
    /// for); stops at the first refusal, or sets `cursor` to
    /// [`SnapshotCursor::Done`] at the end. Records changed or added
    /// between calls may or may not be visited: the publisher sends every
    /// change recorded after the snapshot began, after the snapshot.
    fn visit(
        &self,
        cursor: &mut SnapshotCursor,
        now: Instant,
        visit: &mut dyn FnMut(&Record) -> bool,
    );
}

/// The synced tables.
#[derive(Clone, Debug, Default)]
pub struct Store {
    services: BTreeMap<u16, Slot<ServicesPart>>,
    flows: BTreeMap<FlowBytes, Slot<FlowRecord>>,
    calls: BTreeMap<String, Slot<CallRecord>>,
    channels: BTreeMap<(u32, u32), Slot<ChannelState>>,
    generation: u32,
    /// SIP calls (no card channel) as they hung up, oldest first: what
    /// [`Store::lingered`] hands out once their linger is over. An entry
    /// whose call went or is no longer hung up is skipped then.
    ended: VecDeque<(Instant, String)>,
}

fn aged(slot: &Slot<FlowRecord>, now: Instant) -> FlowRecord {
    let extra = now
        .saturating_duration_since(slot.at)
        .as_millis()
        .min(u32::MAX as u128) as u32;
    FlowRecord {
        age_ms: slot.value.age_ms.saturating_add(extra),
        ..slot.value
    }
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// Applies an upsert or a removal; returns whether the tables changed
    /// (a flow's age alone is no change). Unknown records change nothing.
    pub fn apply(&mut self, record: &Record, now: Instant) -> bool {
        let generation = self.generation;
        match record {
            Record::Flow(f) => {
                let slot = Slot {
                    value: *f,
                    at: now,
                    generation,
                };
                match self.flows.insert(flow_bytes(&f.key), slot) {
                    Some(old) => {
                        FlowRecord {
                            age_ms: f.age_ms,
                            ..old.value
                        } != *f
                    }
                    None => true,
                }
            }
            Record::FlowRemoved(k) => self.flows.remove(&flow_bytes(k)).is_some(),
            Record::Call(c) => {
                if c.state == CallState::HungUp && c.channel.is_none() {
                    let was_ended = self.calls.get(&c.id).is_some_and(|o| o.value.state == CallState::HungUp);
                    if !was_ended {
                        self.ended.push_back((now, c.id.clone()));
                    }
                }
                if let Some(old) = self.calls.get_mut(&c.id) {
                    old.generation = generation;
                    old.at = now;
                    if old.value == *c {
                        return false;
                    }
                    old.value = c.clone();
                    return true;
                }
                self.calls.insert(
                    c.id.clone(),
                    Slot {
                        value: c.clone(),
                        at: now,
                        generation,
                    },
                );
                true
            }
            Record::CallRemoved(id) => self.calls.remove(id).is_some(),
            Record::Channel(c) => {
                let slot = Slot {
                    value: *c,
                    at: now,
                    generation,
                };
                self.channels
                    .insert((c.node, c.channel), slot)
                    .is_none_or(|old| old.value != *c)
            }
            Record::ChannelRemoved { node, channel } => {
                self.channels.remove(&(*node, *channel)).is_some()
            }
            Record::ServicesPart(p) => {
                let slot = Slot {
                    value: p.clone(),
                    at: now,
                    generation,
                };
                // Parts past the count of this text are the previous one's.
                self.services.retain(|k, _| *k < p.parts);
                self.services.insert(p.part, slot).is_none_or(|old| old.value != *p)
            }
            Record::Unknown { .. } => false,
        }
    }

    /// The services text whose parts are all here, with its fingerprint
    /// (None: none, or some parts of the latest are missing).
    pub fn services(&self) -> Option<(u64, String)> {
        let first = self.services.values().next()?;
        let (fingerprint, parts) = (first.value.fingerprint, first.value.parts);
        let all: Vec<&ServicesPart> = self.services.values().map(|s| &s.value).collect();
        let complete = all.len() == parts as usize
            && all.iter().enumerate().all(|(i, p)| p.part as usize == i && p.fingerprint == fingerprint);
        if !complete {
            return None;
        }
        let bytes: Vec<u8> = all.iter().flat_map(|p| p.text.iter().copied()).collect();
        String::from_utf8(bytes).ok().map(|t| (fingerprint, t))
    }

    /// A flow, its age counted up to `now`.
    pub fn flow(&self, key: &FlowKey, now: Instant) -> Option<FlowRecord> {
        self.flows.get(&flow_bytes(key)).map(|s| aged(s, now))
    }
    pub fn call(&self, id: &str) -> Option<&CallRecord> {
        self.calls.get(id).map(|s| &s.value)
    }
    pub fn channel(&self, node: u32, channel: u32) -> Option<&ChannelState> {
        self.channels.get(&(node, channel)).map(|s| &s.value)
    }

    pub fn flows_len(&self) -> usize {
        self.flows.len()
    }
    /// Every call record, by id.
    pub fn calls(&self) -> impl Iterator<Item = &CallRecord> + '_ {
        self.calls.values().map(|s| &s.value)
    }

    pub fn calls_len(&self) -> usize {
        self.calls.len()
    }
    pub fn channels_len(&self) -> usize {
        self.channels.len()
    }
    /// Records of every table.
    pub fn len(&self) -> usize {
        self.flows.len() + self.calls.len() + self.channels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.services.clear();
        self.flows.clear();
        self.calls.clear();
        self.channels.clear();
        self.ended.clear();
    }

    /// Removes the SIP calls that hung up `linger` or more before `now`
    /// and are still hung up (at most `max` of them, oldest first),
    /// and returns their ids. How long a call's last messages may still
    /// come (the BYE's retransmissions and answer) is the caller's
    /// `linger`; an ended call kept past it is memory that never comes
    /// back, on both directors, at every call.
    pub fn lingered(&mut self, now: Instant, linger: std::time::Duration, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some((at, _)) = self.ended.front() else {
                break;
            };
            if now.saturating_duration_since(*at) < linger {
                break;
            }
            let (_, id) = self.ended.pop_front().expect("front seen");
            if self.calls.get(&id).is_some_and(|s| s.value.state == CallState::HungUp) {
                self.calls.remove(&id);
                out.push(id);
            }
        }
        out
    }

    /// Every record as an upsert: the services' parts, flows (ages
    /// counted up to `now`), then calls, then channels.
    pub fn snapshot(&self, now: Instant) -> impl Iterator<Item = Record> + '_ {
        let services = self.services.values().map(|s| Record::ServicesPart(s.value.clone()));
        let flows = self.flows.values().map(move |s| Record::Flow(aged(s, now)));
        let calls = self.calls.values().map(|s| Record::Call(s.value.clone()));
        let channels = self.channels.values().map(|s| Record::Channel(s.value));
        services.chain(flows).chain(calls).chain(channels)
    }

    /// Do both stores hold the same records (flow ages aside)?
    pub fn same_records(&self, other: &Store) -> bool {
        let flows = self.flows.len() == other.flows.len()
            && self
                .flows
                .iter()
                .zip(&other.flows)
                .all(|((ka, a), (kb, b))| {
                    ka == kb
                        && FlowRecord {
                            age_ms: 0,
                            ..a.value
                        } == FlowRecord {
                            age_ms: 0,
                            ..b.value
                        }
                });
        let calls = self.calls.len() == other.calls.len()
            && self
                .calls
                .iter()
                .zip(&other.calls)
                .all(|((ka, a), (kb, b))| ka == kb && a.value == b.value);
        let channels = self.channels.len() == other.channels.len()
            && self
                .channels
                .iter()
                .zip(&other.channels)
                .all(|((ka, a), (kb, b))| ka == kb && a.value == b.value);
        let services = self.services.len() == other.services.len()
            && self.services.iter().zip(&other.services).all(|((ka, a), (kb, b))| ka == kb && a.value == b.value);
        services && flows && calls && channels
    }

    /// Starts a sweep: from now on [`Store::apply`] marks what it touches,
    /// and [`Store::sweep`] removes everything else.
    pub fn begin_sweep(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Removes every record not applied since [`Store::begin_sweep`];
    /// returns them as removals.
    pub fn sweep(&mut self) -> Vec<Record> {
        self.sweep_keeping(false)
    }

    /// [`Store::sweep`], keeping every call when `keep_calls` (a resumed
    /// publisher's snapshot does not carry the calls it never saw).
    pub fn sweep_keeping(&mut self, keep_calls: bool) -> Vec<Record> {
        let g = self.generation;
        let mut removed = Vec::new();
        // Parts of services the snapshot did not carry go without a record
        // (there is no removal of a part: the next text replaces them).
        self.services.retain(|_, s| s.generation == g);
        self.flows.retain(|_, s| {
            let keep = s.generation == g;
            if !keep {
                removed.push(Record::FlowRemoved(s.value.key));
            }
            keep
        });
        self.calls.retain(|id, s| {
            let keep = keep_calls || s.generation == g;
            if !keep {
                removed.push(Record::CallRemoved(id.clone()));
            }
            keep
        });
        self.channels.retain(|&(node, channel), s| {
            let keep = s.generation == g;
            if !keep {
                removed.push(Record::ChannelRemoved { node, channel });
            }
            keep
        });
        removed
    }
}

impl SnapshotSource for Store {
    fn visit(
        &self,
        cursor: &mut SnapshotCursor,
        now: Instant,
        visit: &mut dyn FnMut(&Record) -> bool,
    ) {
        loop {
            match cursor {
                SnapshotCursor::Start | SnapshotCursor::ServicesAfter(_) => {
                    let lower = match cursor {
                        SnapshotCursor::ServicesAfter(k) => Bound::Excluded(*k),
                        _ => Bound::Unbounded,
                    };
                    for (k, s) in self.services.range((lower, Bound::Unbounded)) {
                        if !visit(&Record::ServicesPart(s.value.clone())) {
                            return;
                        }
                        *cursor = SnapshotCursor::ServicesAfter(*k);
                    }
                    *cursor = SnapshotCursor::Flows;
                }
                SnapshotCursor::Flows | SnapshotCursor::FlowsAfter(_) => {
                    let lower = match cursor {
                        SnapshotCursor::FlowsAfter(k) => Bound::Excluded(flow_bytes(k)),
                        _ => Bound::Unbounded,
                    };
                    for s in self.flows.range((lower, Bound::Unbounded)).map(|(_, s)| s) {
                        if !visit(&Record::Flow(aged(s, now))) {
                            return;
                        }
                        *cursor = SnapshotCursor::FlowsAfter(s.value.key);
                    }
                    *cursor = SnapshotCursor::Calls;
                }
                SnapshotCursor::Calls | SnapshotCursor::CallsAfter(_) => {
                    let lower = match cursor {
                        SnapshotCursor::CallsAfter(id) => Bound::Excluded(id.clone()),
                        _ => Bound::Unbounded,
                    };
                    for (id, s) in self.calls.range((lower, Bound::Unbounded)) {
                        if !visit(&Record::Call(s.value.clone())) {
                            return;
                        }
                        *cursor = SnapshotCursor::CallsAfter(id.clone());
                    }
                    *cursor = SnapshotCursor::Channels;
                }
                SnapshotCursor::Channels | SnapshotCursor::ChannelsAfter { .. } => {
                    let lower = match cursor {
                        SnapshotCursor::ChannelsAfter { node, channel } => {
                            Bound::Excluded((*node, *channel))
                        }
                        _ => Bound::Unbounded,
                    };
                    for (&(node, channel), s) in self.channels.range((lower, Bound::Unbounded)) {
                        if !visit(&Record::Channel(s.value)) {
                            return;
                        }
                        *cursor = SnapshotCursor::ChannelsAfter { node, channel };
                    }
                    *cursor = SnapshotCursor::Done;
                }
                SnapshotCursor::Done => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::wire::{ChannelRef, VirtualService};
    use std::time::Duration;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> [u8; 16] {
        let mut x = [0u8; 16];
        x[10] = 0xff;
        x[11] = 0xff;
        x[12..].copy_from_slice(&[a, b, c, d]);
        x
    }

    fn flow(i: u16) -> FlowRecord {
        let key = FlowKey::new(v4(198, 18, 0, 1), v4(198, 18, 1, 1), 10_000 + i, 5060, 17);
        FlowRecord {
            key,
            service: VirtualService {
                addr: key.dst,
                port: 5060,
                proto: 17,
            },
            real_addr: v4(198, 18, 2, 1),
            real_port: 5060,
            age_ms: 5,
            flags: 0,
        }
    }

    fn call(id: &str) -> CallRecord {
        CallRecord {
            id: id.into(),
            channel: None,
            flow: None,
            ivr: None,
            state: CallState::Ringing,
            created_ms: 1,
            updated_ms: 2,
        }
    }

    #[test]
    fn apply_upserts_removes_and_counts() {
        let t = Instant::now();
        let mut s = Store::new();
        assert!(s.apply(&Record::Flow(flow(1)), t));
        assert!(
            !s.apply(
                &Record::Flow(FlowRecord {
                    age_ms: 99,
                    ..flow(1)
                }),
                t
            ),
            "age alone is no change"
        );
        assert!(s.apply(
            &Record::Flow(FlowRecord {
                real_port: 1,
                ..flow(1)
            }),
            t
        ));
        assert!(s.apply(&Record::Call(call("a")), t));
        assert!(!s.apply(&Record::Call(call("a")), t));
        let ch = ChannelState {
            node: 7,
            channel: 3,
            state: CallState::Answered,
            updated_ms: 9,
        };
        assert!(s.apply(&Record::Channel(ch), t));
        assert_eq!(
            (s.flows_len(), s.calls_len(), s.channels_len(), s.len()),
            (1, 1, 1, 3)
        );
        assert_eq!(s.channel(7, 3), Some(&ch));
        assert!(s.apply(&Record::FlowRemoved(flow(1).key), t));
        assert!(!s.apply(&Record::FlowRemoved(flow(1).key), t));
        assert!(s.apply(&Record::CallRemoved("a".into()), t));
        assert!(s.apply(
            &Record::ChannelRemoved {
                node: 7,
                channel: 3
            },
            t
        ));
        assert!(s.is_empty());
        assert!(!s.apply(
            &Record::Unknown {
                kind: 200,
                data: vec![1]
            },
            t
        ));
    }

    #[test]
    fn a_flow_ages_from_when_it_was_stored() {
        let t = Instant::now();
        let mut s = Store::new();
        s.apply(&Record::Flow(flow(1)), t);
        let later = t + Duration::from_millis(250);
        assert_eq!(s.flow(&flow(1).key, later).map(|f| f.age_ms), Some(255));
        let Some(Record::Flow(f)) = s.snapshot(later).next() else {
            panic!("no flow in the snapshot")
        };
        assert_eq!(f.age_ms, 255);
    }

    #[test]
    fn a_walk_resumes_after_changes_and_visits_every_untouched_record_once() {
        let t = Instant::now();
        let mut s = Store::new();
        for i in 0..100 {
            s.apply(&Record::Flow(flow(i)), t);
        }
        for id in ["x", "y", "z"] {
            s.apply(&Record::Call(call(id)), t);
        }
        let ch = |c| ChannelState {
            node: 1,
            channel: c,
            state: CallState::Idle,
            updated_ms: 0,
        };
        for c in 0..5 {
            s.apply(&Record::Channel(ch(c)), t);
        }
        let mut cursor = SnapshotCursor::Start;
        let mut seen = Vec::new();
        let mut rounds = 0;
        while cursor != SnapshotCursor::Done {
            let mut n = 0;
            s.visit(&mut cursor, t, &mut |r| {
                if n == 7 {
                    return false;
                }
                n += 1;
                seen.push(r.clone());
                true
            });
            rounds += 1;
            if rounds == 3 {
                // Changes between chunks: one behind the cursor, one ahead.
                s.apply(&Record::FlowRemoved(flow(0).key), t);
                s.apply(&Record::FlowRemoved(flow(99).key), t);
            }
        }
        assert_eq!(
            seen.len(),
            100 - 1 + 3 + 5,
            "flow 0 was seen before its removal, flow 99 never"
        );
        assert!(seen.contains(&Record::Flow(flow(0))));
        assert!(!seen.contains(&Record::Flow(flow(99))));
        assert_eq!(seen.last(), Some(&Record::Channel(ch(4))));
        let mut dedup = seen.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), seen.len(), "no record twice");
    }

    #[test]
    fn a_sweep_removes_what_was_not_applied_since_it_began() {
        let t = Instant::now();
        let mut s = Store::new();
        for i in 0..4 {
            s.apply(&Record::Flow(flow(i)), t);
        }
        s.apply(&Record::Call(call("old")), t);
        s.apply(
            &Record::Channel(ChannelState {
                node: 2,
                channel: 1,
                state: CallState::Idle,
                updated_ms: 0,
            }),
            t,
        );
        s.begin_sweep();
        s.apply(&Record::Flow(flow(1)), t);
        s.apply(&Record::Flow(flow(3)), t);
        let mut removed = s.sweep();
        removed.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(removed.len(), 4);
        assert!(removed.contains(&Record::FlowRemoved(flow(0).key)));
        assert!(removed.contains(&Record::FlowRemoved(flow(2).key)));
        assert!(removed.contains(&Record::CallRemoved("old".into())));
        assert!(removed.contains(&Record::ChannelRemoved {
            node: 2,
            channel: 1
        }));
        assert_eq!(s.len(), 2);
        assert!(s.sweep().is_empty(), "a second sweep finds nothing new");
    }

    #[test]
    fn hung_up_sip_calls_go_after_their_linger_and_no_other_call_does() {
        let t0 = Instant::now();
        let linger = Duration::from_secs(32);
        let hung = |id: &str| CallRecord {
            state: CallState::HungUp,
            ..call(id)
        };
        let mut s = Store::new();
        for id in ["a", "b", "c", "live", "back"] {
            s.apply(&Record::Call(call(id)), t0);
        }
        s.apply(&Record::Call(hung("a")), t0);
        // Its BYE retransmitted: the same hang-up, not a second one.
        s.apply(&Record::Call(hung("a")), t0 + Duration::from_secs(1));
        s.apply(&Record::Call(hung("b")), t0 + Duration::from_secs(10));
        s.apply(&Record::Call(hung("back")), t0);
        // Answered again after its hang-up: not an ended call any more.
        s.apply(&Record::Call(call("back")), t0 + Duration::from_secs(2));
        // A card call's hang-up is the card side's to remove.
        let card = CallRecord {
            channel: Some(ChannelRef { span: 1, channel: 3 }),
            ..hung("card")
        };
        s.apply(&Record::Call(card), t0);
        assert!(s.lingered(t0 + linger - Duration::from_millis(1), linger, 10).is_empty(), "not yet");
        assert_eq!(s.lingered(t0 + linger, linger, 10), vec!["a".to_string()]);
        assert!(s.call("a").is_none());
        // Removed by a snapshot's sweep meanwhile: nothing to hand out.
        s.apply(&Record::CallRemoved("c".into()), t0);
        s.apply(&Record::Call(hung("c")), t0 + Duration::from_secs(11));
        s.apply(&Record::CallRemoved("c".into()), t0 + Duration::from_secs(12));
        let later = s.lingered(t0 + Duration::from_secs(3600), linger, 10);
        assert_eq!(later, vec!["b".to_string()], "bounded to what is still hung up");
        for id in ["live", "back", "card"] {
            assert!(s.call(id).is_some(), "{id} stays");
        }
        // At most `max` per call, the rest the next time.
        for i in 0..5 {
            s.apply(&Record::Call(hung(&format!("x{i}"))), t0);
        }
        assert_eq!(s.lingered(t0 + linger, linger, 2).len(), 2);
        assert_eq!(s.lingered(t0 + linger, linger, 10).len(), 3);
        s.apply(&Record::Call(hung("y")), t0);
        s.clear();
        assert!(s.lingered(t0 + linger, linger, 10).is_empty(), "a cleared store forgets its hang-ups");
    }
}
